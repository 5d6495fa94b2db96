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
    println!("next auto id continues after 10: {:?}", User::insert(user("Dan", "dan@example.com", 52))?.id);

    println!("\n== read");
    println!("read(1)   = {:?}", User::read(&1)?);
    println!("read(999) = {:?}", User::read(&999)?);

    println!("\n== get_by (unique index on email)");
    println!("{:?}", User::get_by(User::EMAIL, "bob@example.com")?);
    println!("plan: {}", User::query().filter(User::EMAIL.eq("bob@example.com")).explain()?);

    println!("\n== select");
    let adults = User::select(User::AGE.ge(18))?;
    println!("adults: {:?}", adults.iter().map(|u| &u.name).collect::<Vec<_>>());
    let page = User::query().filter(User::AGE.between(18, 60)).order_by(User::AGE.desc()).limit(2).all()?;
    println!("two oldest adults: {:?}", page.iter().map(|u| (&u.name, u.age)).collect::<Vec<_>>());

    println!("\n== update / upsert");
    let older = User::update(&1, |u| u.age += 1)?;
    println!("updated: {older:?}");
    match User::update(&999, |u| u.age += 1) {
        Err(e) => println!("update of a missing key: {e}"),
        Ok(u) => println!("unexpected: {u:?}"),
    }
    let up = User::upsert(User { id: 2, ..user("Bob", "bob@example.com", 18) })?;
    println!("upsert replaced an existing record: {}", !up.inserted());

    println!("\n== unique index");
    match User::insert(user("Impostor", "alice@example.com", 99)) {
        Err(e) => println!("refused: {e}"),
        Ok(u) => println!("unexpected: {u:?}"),
    }

    println!("\n== delete / all_keys / batches");
    println!("deleted: {:?}", User::delete(&10)?);
    let mut keys = User::all_keys()?;
    keys.sort();
    println!("keys: {keys:?}");
    let batch = User::batch_write(
        (0..3).map(|i| user(&format!("Bulk{i}"), &format!("bulk{i}@example.com"), 20 + i)),
    )?;
    println!("batch wrote {} records", batch.len());
    let removed = User::batch_delete(batch.iter().map(|u| u.id))?;
    println!("batch deleted {} records; {} users left", removed.len(), User::count()?);

    println!("\n== a composite transaction");
    let (author, post) = mnesia::transaction(|| {
        let author = User::insert(user("Erin", "erin@example.com", 33))?;
        let post = Post::insert(Post { id: 0, user_id: author.id, title: "Hello".into() })?;
        Ok::<_, mnesia::Error>((author, post))
    })?;
    println!("{author:?} wrote {post:?}");
    println!("posts by {}: {:?}", author.name, Post::select(Post::USER_ID.eq(author.id))?);

    mnesia::stop()?;
    Ok(())
}
