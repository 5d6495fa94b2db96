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
    for title in ["first", "second", "third"] {
        println!("inserted {:?}", Post::insert(post(title))?);
    }
    println!("current id: {}", Post::current_id()?);

    println!("\n== a manual id moves the counter past it");
    println!("manual: {:?}", Post::insert(Post { id: 100, title: "manual".into() })?);
    println!("next auto: {:?}", Post::insert(post("after manual"))?);

    println!("\n== a duplicate id is refused, the stored record untouched");
    match Post::insert(Post { id: 2, title: "impostor".into() }) {
        Err(e) => println!("refused: {e}"),
        Ok(p) => println!("unexpected: {p:?}"),
    }
    println!("record 2 is still {:?}", Post::read(&2)?);

    println!("\n== reset");
    Post::reset_counter(500)?;
    println!("after reset_counter(500): {:?}", Post::insert(post("from 500"))?);

    println!("\n== a table without a counter");
    Tag::write(Tag { name: "rust".into() })?;
    match Tag::next_id() {
        Err(e) => println!("Tag::next_id(): {e}"),
        Ok(id) => println!("unexpected: {id:?}"),
    }

    println!("\n== named counters");
    println!("has_counter(invoices): {}", mnesia::has_counter("invoices")?);
    println!("current_value(invoices): {}", mnesia::current_value("invoices")?);
    for _ in 0..3 {
        println!("next_id(invoices) = {}", mnesia::next_id("invoices")?);
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
    mnesia::reset_counter("invoices", 1000)?;
    println!("after reset_counter(1000): next_id = {}", mnesia::next_id("invoices")?);
    println!("dirty_update_counter(page_views, 10) = {}", mnesia::dirty_update_counter("page_views", 10)?);
    println!("dirty_update_counter(page_views, -3) = {}", mnesia::dirty_update_counter("page_views", -3)?);

    mnesia::stop()?;
    Ok(())
}
