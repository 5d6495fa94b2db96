//! Change events, mirroring MnesiaEx's `examples/04_events.exs`, except that here the
//! subscriber really receives and prints the events: writes, updates, deletes, batches, a
//! transaction that aborts (no events) and a clear.
//!
//! Run: `cargo run -p examples --example 04_events`

use std::time::Duration;

use mnesia::prelude::*;
use mnesia::{Event, SystemEvent};

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(name = "users")]
struct User {
    #[key]
    #[auto_increment]
    id: u64,
    name: String,
    age: u32,
}

fn user(name: &str, age: u32) -> User {
    User { id: 0, name: name.into(), age }
}

fn main() -> mnesia::Result<()> {
    let db = mnesia::start(Config::default())?;
    // System events: tables created and dropped, checkpoints, an overloaded log.
    let system = db.subscribe_system();
    User::create_table(TableOptions::new())?;

    // A detailed subscription: events also carry the record replaced or deleted.
    let events = User::subscribe_detailed()?;
    let listener = std::thread::spawn(move || {
        let mut seen = Vec::new();
        while let Some(event) = events.recv_timeout(Duration::from_millis(500)) {
            seen.push(match &event {
                Event::Write { old: None, .. } => "insert",
                Event::Write { old: Some(_), .. } => "update",
                Event::Delete { .. } => "delete",
                Event::Cleared => "cleared",
                Event::Dropped => "dropped",
                _ => "other",
            });
            match event {
                Event::Write { new, old: None } => println!("  event: inserted {new:?}"),
                Event::Write { new, old: Some(old) } => println!("  event: {old:?} became {new:?}"),
                Event::Delete { key, old, cause } => {
                    println!("  event: deleted key {key} ({cause:?}): {old:?}")
                }
                Event::Cleared => println!("  event: the table was cleared"),
                Event::Dropped => println!("  event: the table was dropped"),
                Event::Lagged { missed } => println!("  event: fell behind, {missed} events missed"),
                other => println!("  event: {other:?}"),
            }
        }
        seen
    });

    println!("write two users");
    let ann = User::insert(user("Ann", 30))?;
    User::insert(user("Bob", 25))?;
    println!("update Ann");
    User::update(&ann.id, |u| u.age += 1)?;
    println!("a transaction that aborts: no events");
    let _ = mnesia::transaction(|| {
        User::insert(user("Ghost", 1))?;
        Err::<(), _>(mnesia::Error::abort("changed my mind"))
    });
    println!("batch write and batch delete");
    let batch = User::batch_write([user("Cy", 40), user("Di", 41)])?;
    User::batch_delete(batch.iter().map(|u| u.id))?;
    println!("delete Bob, clear, then drop the table");
    User::delete(&2)?;
    User::clear()?;
    User::drop_table()?;

    let seen = listener.join().unwrap_or_default();
    println!("the subscriber received {} events", seen.len());
    // In commit order, and nothing of the aborted transaction.
    assert_eq!(
        seen,
        [
            "insert", "insert", "update", "insert", "insert", "delete", "delete", "delete", "cleared",
            "dropped"
        ]
    );
    let system_events: Vec<SystemEvent> = std::iter::from_fn(|| system.try_recv()).collect();
    for event in &system_events {
        println!("  system event: {event:?}");
    }
    assert!(matches!(system_events.first(), Some(SystemEvent::TableCreated { .. })), "{system_events:?}");
    assert!(matches!(system_events.last(), Some(SystemEvent::TableDropped { .. })), "{system_events:?}");
    drop(db);
    mnesia::stop()?;
    Ok(())
}

/// `cargo test` runs the example: its assertions are the README's promises.
#[test]
fn the_example_holds() {
    main().expect("example");
}
