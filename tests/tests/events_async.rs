//! With the `tokio` feature a subscription is a `Stream`: an async task receives the events.

use std::future::poll_fn;
use std::pin::Pin;

use futures_core::Stream;
use mnesia::Event;
use mnesia::prelude::*;

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Item {
    #[key]
    id: u32,
}

#[tokio::test]
async fn an_async_task_receives_events() {
    let db = Database::in_memory().expect("db");
    db.scope(|| Item::create_table(TableOptions::new())).expect("table");
    let mut events = db.scope(Item::subscribe).expect("subscribe");
    let writer = {
        let db = db.clone();
        std::thread::spawn(move || {
            db.scope(|| {
                for id in 0..5 {
                    std::thread::sleep(std::time::Duration::from_millis(2));
                    Item::write(Item { id }).expect("write");
                }
            })
        })
    };
    let mut got = Vec::new();
    while got.len() < 5 {
        match poll_fn(|cx| Pin::new(&mut events).poll_next(cx)).await {
            Some(Event::Write { new, .. }) => got.push(new.id),
            other => panic!("{other:?}"),
        }
    }
    writer.join().expect("writer");
    assert_eq!(got, vec![0, 1, 2, 3, 4]);
}

/// The system subscription is a `Stream` too.
#[tokio::test]
async fn an_async_task_receives_system_events() {
    let db = Database::in_memory().expect("db");
    let mut events = db.subscribe_system();
    let creator = {
        let db = db.clone();
        std::thread::spawn(move || db.scope(|| Item::create_table(TableOptions::new())).expect("table"))
    };
    match poll_fn(|cx| Pin::new(&mut events).poll_next(cx)).await {
        Some(mnesia::SystemEvent::TableCreated { table, .. }) => assert_eq!(table, "item"),
        other => panic!("{other:?}"),
    }
    creator.join().expect("creator");
}
