//! Counters, mirroring MnesiaEx's `examples/03_counters.exs`: auto-increment ids per table,
//! manual ids moving the counter, duplicates refused, reset, and named counters.
//!
//! Run: `cargo run -p examples --example 03_counters`

use mnesia::prelude::*;

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(name = "posts")]
struct Post {
    #[key]
    #[auto_increment]
    id: u64,
    title: String,
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(name = "tags")]
struct Tag {
    #[key]
    name: String,
}

fn post(title: &str) -> Post {
    Post { id: 0, title: title.into() }
}

fn main() -> mnesia::Result<()> {
    let _db = mnesia::start(Config::default())?;
    Post::create_table(TableOptions::new())?;
    Tag::create_table(TableOptions::new())?;

    println!("== auto-increment ids");
    for (title, id) in ["first", "second", "third"].into_iter().zip(1..) {
        let p = Post::insert(post(title))?;
        println!("inserted {p:?}");
        assert_eq!(p.id, id);
    }
    println!("current id: {}", Post::current_id()?);
    assert_eq!(Post::current_id()?, 3);

    println!("\n== a manual id moves the counter past it");
    println!("manual: {:?}", Post::insert(Post { id: 100, title: "manual".into() })?);
    let next = Post::insert(post("after manual"))?;
    println!("next auto: {next:?}");
    assert_eq!(next.id, 101);

    println!("\n== a duplicate id is refused, the stored record untouched");
    match Post::insert(Post { id: 2, title: "impostor".into() }) {
        Err(e) => {
            println!("refused: {e}");
            assert!(matches!(e, mnesia::Error::AlreadyExists { .. }), "{e:?}");
        }
        Ok(p) => panic!("unexpected: {p:?}"),
    }
    println!("record 2 is still {:?}", Post::read(&2)?);
    assert_eq!(Post::read(&2)?.map(|p| p.title), Some("second".to_owned()));

    println!("\n== reset");
    Post::reset_counter(500)?;
    let from_500 = Post::insert(post("from 500"))?;
    println!("after reset_counter(500): {from_500:?}");
    assert_eq!(from_500.id, 500);

    println!("\n== a table without a counter");
    Tag::write(Tag { name: "rust".into() })?;
    match Tag::next_id() {
        Err(e) => println!("Tag::next_id(): {e}"),
        Ok(id) => panic!("unexpected: {id:?}"),
    }

    println!("\n== named counters");
    println!("has_counter(invoices): {}", mnesia::has_counter("invoices")?);
    println!("current_value(invoices): {}", mnesia::current_value("invoices")?);
    assert!(!mnesia::has_counter("invoices")?);
    assert_eq!(mnesia::current_value("invoices")?, 0);
    for expected in 1..=3 {
        let id = mnesia::next_id("invoices")?;
        println!("next_id(invoices) = {id}");
        assert_eq!(id, expected);
    }
    let aborted: mnesia::Result<()> = mnesia::transaction(|| {
        println!("inside a transaction: next_id(invoices) = {}", mnesia::next_id("invoices")?);
        Err(mnesia::Error::abort("the invoice was not sent"))
    });
    println!(
        "aborted ({}) -> current_value(invoices) = {}",
        aborted.is_err(),
        mnesia::current_value("invoices")?
    );
    assert!(aborted.is_err());
    assert_eq!(mnesia::current_value("invoices")?, 3, "the aborted transaction's id was taken back");
    mnesia::reset_counter("invoices", 1000)?;
    let after_reset = mnesia::next_id("invoices")?;
    println!("after reset_counter(1000): next_id = {after_reset}");
    assert_eq!(after_reset, 1000);
    let (up, down) =
        (mnesia::dirty_update_counter("page_views", 10)?, mnesia::dirty_update_counter("page_views", -3)?);
    println!("dirty_update_counter(page_views, 10) = {up}");
    println!("dirty_update_counter(page_views, -3) = {down}");
    assert_eq!((up, down), (10, 7));

    mnesia::stop()?;
    Ok(())
}

/// `cargo test` runs the example: its assertions are the README's promises.
#[test]
fn the_example_holds() {
    main().expect("example");
}
