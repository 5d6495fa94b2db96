//! System events: tables created and dropped, checkpoints, an overloaded log; a table's
//! subscribers are told when it is dropped.

use std::time::{Duration, Instant};

use mnesia::prelude::*;
use mnesia::{Event, SystemEvent};

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Item {
    #[key]
    id: u32,
    note: String,
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Other {
    #[key]
    id: u32,
}

fn drain(s: &mnesia::SystemSubscription) -> Vec<SystemEvent> {
    std::iter::from_fn(|| s.try_recv()).collect()
}

#[test]
fn table_creation_and_drop_are_told_in_order() {
    let db = Database::in_memory().expect("db");
    let events = db.subscribe_system();
    db.scope(|| -> mnesia::Result<()> {
        Item::create_table(TableOptions::new())?;
        Other::create_table(TableOptions::new())?;
        let item_events = Item::subscribe()?;
        Item::write(Item { id: 1, note: "a".into() })?;
        Item::drop_table()?;
        assert!(matches!(item_events.try_recv(), Some(Event::Write { .. })));
        assert_eq!(item_events.try_recv(), Some(Event::Dropped));
        assert_eq!(item_events.try_recv(), None);
        // A failed creation tells nothing.
        assert!(Other::create_table(TableOptions::new()).is_err());
        Ok(())
    })
    .expect("body");
    let ram = StorageType::RamCopies;
    assert_eq!(
        drain(&events),
        vec![
            SystemEvent::TableCreated { table: "item".into(), storage: ram },
            SystemEvent::TableCreated { table: "other".into(), storage: ram },
            SystemEvent::TableDropped { table: "item".into() },
        ]
    );
}

#[test]
fn a_slow_system_subscriber_is_told_what_it_missed() {
    let db = Database::open(Config::default().event_buffer(1)).expect("db");
    let events = db.subscribe_system();
    db.create_table::<Item>(TableOptions::new()).expect("create");
    db.drop_table::<Item>().expect("drop");
    db.create_table::<Item>(TableOptions::new()).expect("create");
    assert_eq!(
        drain(&events),
        vec![
            SystemEvent::Lagged { missed: 2 },
            SystemEvent::TableCreated { table: "item".into(), storage: StorageType::RamCopies },
        ]
    );
}

#[test]
fn checkpoints_and_an_overloaded_log_are_told() {
    let dir = tests::schema_dir();
    // A tiny threshold: the log is always past twice of it between two checkpointer runs.
    let db = Database::open(Config::default().dir(dir.path()).checkpoint_after_bytes(16)).expect("db");
    let events = db.subscribe_system();
    db.scope(|| -> mnesia::Result<()> {
        Item::create_table(TableOptions::new().disc_copies(["local@localhost"]))?;
        db.checkpoint()?;
        let mut seen = drain(&events);
        assert!(seen.iter().any(|e| matches!(e, SystemEvent::CheckpointDone { .. })), "{seen:?}");
        let start = Instant::now();
        let mut i = 0;
        // Waits for the background checkpointer, for as long as a loaded machine may need.
        while !seen.iter().any(|e| matches!(e, SystemEvent::Overload { .. }))
            && start.elapsed() < Duration::from_secs(60)
        {
            i += 1;
            Item::write(Item { id: i, note: "x".repeat(100) })?;
            seen.extend(events.recv_timeout(Duration::from_millis(5)));
        }
        let overload = seen.iter().find_map(|e| match e {
            SystemEvent::Overload { log_bytes } => Some(*log_bytes),
            _ => None,
        });
        assert!(overload.is_some_and(|b| b > 32), "{seen:?}");
        // The log stays overloaded while writes go on: it is told at most once a second.
        let since = Instant::now();
        let mut told = 0u64;
        while since.elapsed() < Duration::from_millis(1500) {
            i += 1;
            Item::write(Item { id: i, note: "x".repeat(100) })?;
            told +=
                events.try_recv().into_iter().filter(|e| matches!(e, SystemEvent::Overload { .. })).count()
                    as u64;
        }
        told += drain(&events).iter().filter(|e| matches!(e, SystemEvent::Overload { .. })).count() as u64;
        let seconds = since.elapsed().as_secs();
        eprintln!("overload told {told} times in {:?}", since.elapsed());
        assert!(told <= seconds + 1, "{told} overload events in {:?}", since.elapsed());
        Ok(())
    })
    .expect("body");
}
