//! Change events: after commit, in commit order, exactly once, never for aborted work; a
//! slow subscriber is told what it missed and never slows the writers.

use std::time::Duration;

use mnesia::prelude::*;
use mnesia::{DeleteCause, Error, Event};

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Item {
    #[key]
    id: u32,
    version: u32,
}

fn with_db(f: impl FnOnce(&Database) -> mnesia::Result<()>) {
    let db = Database::open(Config::default().event_buffer(100_000)).expect("db");
    db.scope(|| {
        Item::create_table(TableOptions::new()).expect("table");
        f(&db).expect("body");
    });
}

fn drain(s: &mnesia::Subscription<Item>) -> Vec<Event<Item>> {
    std::iter::from_fn(|| s.try_recv()).collect()
}

#[test]
fn every_subscriber_gets_every_commit_once_in_order() {
    with_db(|_| {
        let a = Item::subscribe()?;
        let b = Item::subscribe_detailed()?;
        Item::write(Item { id: 1, version: 1 })?;
        mnesia::transaction(|| {
            Item::update(&1, |i| i.version = 2)?;
            Item::write(Item { id: 2, version: 1 })?;
            Ok::<_, Error>(())
        })?;
        let r: mnesia::Result<()> = mnesia::transaction(|| {
            Item::write(Item { id: 3, version: 1 })?;
            Err(Error::abort("no"))
        });
        assert!(r.is_err());
        Item::delete(&2)?;
        Item::dirty_write(Item { id: 4, version: 1 })?;
        Item::batch_write([Item { id: 5, version: 1 }, Item { id: 6, version: 1 }])?;
        Item::clear()?;
        let simple = drain(&a);
        assert_eq!(
            simple,
            vec![
                Event::Write { new: Item { id: 1, version: 1 }, old: None },
                Event::Write { new: Item { id: 1, version: 2 }, old: None },
                Event::Write { new: Item { id: 2, version: 1 }, old: None },
                Event::Delete { key: 2, old: None, cause: DeleteCause::Explicit },
                Event::Write { new: Item { id: 4, version: 1 }, old: None },
                Event::Write { new: Item { id: 5, version: 1 }, old: None },
                Event::Write { new: Item { id: 6, version: 1 }, old: None },
                Event::Cleared,
            ]
        );
        let detailed = drain(&b);
        assert_eq!(detailed.len(), simple.len());
        assert_eq!(
            detailed[1],
            Event::Write { new: Item { id: 1, version: 2 }, old: Some(Item { id: 1, version: 1 }) }
        );
        assert_eq!(
            detailed[3],
            Event::Delete { key: 2, old: Some(Item { id: 2, version: 1 }), cause: DeleteCause::Explicit }
        );
        Ok(())
    });
}

#[test]
fn concurrent_writers_are_seen_in_commit_order() {
    with_db(|db| {
        let events = Item::subscribe()?;
        let per = 300u32;
        std::thread::scope(|s| {
            for t in 0..4u32 {
                let db = db.clone();
                s.spawn(move || {
                    db.scope(|| {
                        for v in 1..=per {
                            // Every thread bumps its own key and a shared one.
                            mnesia::transaction(|| {
                                Item::write(Item { id: t, version: v })?;
                                let shared = Item::read(&100)?.map_or(0, |i| i.version);
                                Item::write(Item { id: 100, version: shared + 1 })
                            })
                            .expect("commit");
                        }
                    })
                });
            }
        });
        let got = drain(&events);
        assert_eq!(got.len(), (4 * per * 2) as usize, "exactly once");
        let mut last = [0u32; 101];
        for e in &got {
            let Event::Write { new, .. } = e else { panic!("{e:?}") };
            let slot = &mut last[new.id as usize];
            assert_eq!(new.version, *slot + 1, "key {} out of commit order", new.id);
            *slot = new.version;
        }
        assert_eq!(last[100], 4 * per);
        Ok(())
    });
}

#[test]
fn a_slow_subscriber_is_told_what_it_missed() {
    let db = Database::open(Config::default().event_buffer(10)).expect("db");
    db.scope(|| -> mnesia::Result<()> {
        Item::create_table(TableOptions::new())?;
        let slow = Item::subscribe()?;
        for v in 0..100 {
            Item::write(Item { id: 1, version: v })?; // never waits for the subscriber
        }
        // The oldest events went; the notice stands where they were, then the newest 10.
        let got = drain(&slow);
        assert_eq!(got.len(), 11);
        assert_eq!(got[0], Event::Lagged { missed: 90 });
        assert!(matches!(&got[1], Event::Write { new, .. } if new.version == 90));
        assert!(matches!(&got[10], Event::Write { new, .. } if new.version == 99));
        Item::write(Item { id: 1, version: 100 })?;
        assert!(matches!(slow.recv_timeout(Duration::from_secs(1)), Some(Event::Write { new, .. }) if new.version == 100));
        Ok(())
    })
    .expect("body");
}

#[test]
fn dropping_a_subscription_unsubscribes() {
    with_db(|_| {
        let kept = Item::subscribe()?;
        {
            let _gone = Item::subscribe()?;
        }
        Item::write(Item { id: 1, version: 1 })?;
        assert_eq!(drain(&kept).len(), 1);
        Ok(())
    });
}
