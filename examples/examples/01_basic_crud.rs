//! Basic CRUD, mirroring MnesiaEx's `examples/01_basic_crud.exs`: create a table, write,
//! read, look up by index, select, update, upsert, delete, list keys, batch operations and
//! a composite transaction.
//!
//! Run: `cargo run -p examples --example 01_basic_crud`

use mnesia::prelude::*;

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(name = "users")]
struct User {
    #[key]
    #[auto_increment]
    id: u64,
    name: String,
    #[index(unique)]
    email: String,
    age: u32,
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(name = "posts")]
struct Post {
    #[key]
    #[auto_increment]
    id: u64,
    #[index]
    user_id: u64,
    title: String,
}

fn user(name: &str, email: &str, age: u32) -> User {
    User { id: 0, name: name.into(), email: email.into(), age }
}

fn main() -> mnesia::Result<()> {
    // MnesiaEx.start() -- an in-memory database installed as the process default.
    let db = mnesia::start(Config::default())?;
    println!("== create tables (ram_copies on {})", db.node());
    User::create_table(TableOptions::new().ram_copies([db.node()]))?;
    Post::create_table(TableOptions::new().ram_copies([db.node()]))?;
    println!("{:#?}", User::table_info()?);

    println!("\n== write / insert");
    let alice = User::insert(user("Alice", "alice@example.com", 30))?;
    let bob = User::insert(user("Bob", "bob@example.com", 17))?;
    let carol = User::write(User { id: 10, ..user("Carol", "carol@example.com", 45) })?;
    println!("inserted {alice:?}\ninserted {bob:?}\nwrote    {carol:?}");
    let dan = User::insert(user("Dan", "dan@example.com", 52))?;
    println!("next auto id continues after 10: {:?}", dan.id);
    assert_eq!((alice.id, bob.id, carol.id, dan.id), (1, 2, 10, 11));

    println!("\n== read");
    println!("read(1)   = {:?}", User::read(&1)?);
    println!("read(999) = {:?}", User::read(&999)?);
    assert_eq!(User::read(&1)?.as_ref(), Some(&alice));
    assert_eq!(User::read(&999)?, None);

    println!("\n== get_by (unique index on email)");
    println!("{:?}", User::get_by(User::EMAIL, "bob@example.com")?);
    assert_eq!(User::get_by(User::EMAIL, "bob@example.com")?.as_ref(), Some(&bob));
    println!("plan: {}", User::query().filter(User::EMAIL.eq("bob@example.com")).explain()?);

    println!("\n== select");
    let adults = User::select(User::AGE.ge(18))?;
    println!("adults: {:?}", adults.iter().map(|u| &u.name).collect::<Vec<_>>());
    let mut names: Vec<&str> = adults.iter().map(|u| u.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["Alice", "Carol", "Dan"]);
    let page = User::query().filter(User::AGE.between(18, 60)).order_by(User::AGE.desc()).limit(2).all()?;
    println!("two oldest adults: {:?}", page.iter().map(|u| (&u.name, u.age)).collect::<Vec<_>>());
    assert_eq!(page, [dan.clone(), carol.clone()]);

    println!("\n== update / upsert");
    let older = User::update(&1, |u| u.age += 1)?;
    println!("updated: {older:?}");
    assert_eq!(older.age, 31);
    match User::update(&999, |u| u.age += 1) {
        Err(e) => {
            println!("update of a missing key: {e}");
            assert!(matches!(e, mnesia::Error::NotFound { .. }), "{e:?}");
        }
        Ok(u) => panic!("unexpected: {u:?}"),
    }
    let up = User::upsert(User { id: 2, ..user("Bob", "bob@example.com", 18) })?;
    println!("upsert replaced an existing record: {}", !up.inserted());
    assert!(!up.inserted());
    assert_eq!(User::read(&2)?.map(|u| u.age), Some(18));

    println!("\n== unique index");
    match User::insert(user("Impostor", "alice@example.com", 99)) {
        Err(e) => {
            println!("refused: {e}");
            assert!(matches!(e, mnesia::Error::UniqueViolation { .. }), "{e:?}");
        }
        Ok(u) => panic!("unexpected: {u:?}"),
    }

    println!("\n== delete / all_keys / batches");
    let deleted = User::delete(&10)?;
    println!("deleted: {deleted:?}");
    assert_eq!(deleted, Some(carol));
    let mut keys = User::all_keys()?;
    keys.sort();
    println!("keys: {keys:?}");
    assert_eq!(keys, [1, 2, 11]);
    let batch = User::batch_write(
        (0..3).map(|i| user(&format!("Bulk{i}"), &format!("bulk{i}@example.com"), 20 + i)),
    )?;
    println!("batch wrote {} records", batch.len());
    let removed = User::batch_delete(batch.iter().map(|u| u.id))?;
    println!("batch deleted {} records; {} users left", removed.len(), User::count()?);
    assert_eq!((batch.len(), removed.len(), User::count()?), (3, 3, 3));

    println!("\n== a composite transaction");
    let (author, post) = mnesia::transaction(|| {
        let author = User::insert(user("Erin", "erin@example.com", 33))?;
        let post = Post::insert(Post { id: 0, user_id: author.id, title: "Hello".into() })?;
        Ok::<_, mnesia::Error>((author, post))
    })?;
    println!("{author:?} wrote {post:?}");
    let by_author = Post::select(Post::USER_ID.eq(author.id))?;
    println!("posts by {}: {:?}", author.name, by_author);
    assert_eq!(by_author, [post]);

    mnesia::stop()?;
    Ok(())
}

/// `cargo test` runs the example: its assertions are the README's promises.
#[test]
fn the_example_holds() {
    main().expect("example");
}
