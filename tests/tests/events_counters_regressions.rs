//! Regression tests for event and counter bugs found in review: each states a promise of
//! the README that once failed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mnesia::Event;
use mnesia::prelude::*;

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Post {
    #[key]
    #[auto_increment]
    id: u64,
    title: String,
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Item {
    #[key]
    id: u32,
    version: u32,
}

fn disc_db(dir: &std::path::Path) -> Database {
    Database::open(Config::default().dir(dir)).expect("open")
}

/// `Post::next_id()` takes an id outside any commit: nothing logs it, so after a crash the
/// same id is handed out again (README: "never handing out an id twice").
#[test]
fn review_table_next_id_is_reissued_after_a_crash() {
    let dir = tests::schema_dir();
    let db = disc_db(dir.path());
    let mut taken = 0;
    db.scope(|| -> mnesia::Result<()> {
        Post::create_table(TableOptions::new().disc_copies([db.node()]))?;
        Post::insert(Post { id: 0, title: "a".into() })?;
        for _ in 0..3 {
            taken = Post::next_id()?;
        }
        Ok(())
    })
    .expect("write");
    assert_eq!(taken, 4);
    let image = tests::crash_image(dir.path());
    db.close().expect("close");
    let db = disc_db(image.path());
    db.scope(|| -> mnesia::Result<()> {
        let again = Post::next_id()?;
        assert!(again > taken, "id {again} handed out twice (last before crash: {taken})");
        Ok(())
    })
    .expect("after crash");
    db.close().expect("close");
}

/// `Post::reset_counter` only stores the atomic: a crash right after forgets it.
#[test]
fn review_table_reset_counter_is_lost_after_a_crash() {
    let dir = tests::schema_dir();
    let db = disc_db(dir.path());
    db.scope(|| -> mnesia::Result<()> {
        Post::create_table(TableOptions::new().disc_copies([db.node()]))?;
        Post::insert(Post { id: 0, title: "a".into() })?;
        Post::reset_counter(100)?;
        Ok(())
    })
    .expect("write");
    let image = tests::crash_image(dir.path());
    db.close().expect("close");
    let db = disc_db(image.path());
    db.scope(|| -> mnesia::Result<()> {
        assert_eq!(Post::insert(Post { id: 0, title: "b".into() })?.id, 100);
        Ok(())
    })
    .expect("after crash");
    db.close().expect("close");
}

/// A downward reset followed by commits does not survive a clean restart either: replay
/// takes the maximum counter of every logged commit.
#[test]
fn review_table_reset_counter_down_is_undone_by_restart() {
    let dir = tests::schema_dir();
    let db = disc_db(dir.path());
    db.scope(|| -> mnesia::Result<()> {
        Post::create_table(TableOptions::new().disc_copies([db.node()]))?;
        Post::insert(Post { id: 1000, title: "a".into() })?;
        Post::delete(&1000)?;
        Post::reset_counter(10)?;
        assert_eq!(Post::insert(Post { id: 0, title: "b".into() })?.id, 10);
        Ok(())
    })
    .expect("write");
    let image = tests::crash_image(dir.path());
    db.close().expect("close");
    let db = disc_db(image.path());
    db.scope(|| -> mnesia::Result<()> {
        assert_eq!(Post::current_id()?, 10, "the reset counter after restart");
        Ok(())
    })
    .expect("after crash");
    db.close().expect("close");
}

/// `Subscription` is `Sync`; two threads blocked in `recv` on one subscription: a commit of
/// two events wakes only one (`notify_one`, and only when idle): the other sleeps on with an
/// event waiting.
#[test]
fn review_shared_subscription_loses_a_wakeup() {
    let db = Database::open(Config::default()).expect("db");
    db.scope(|| {
        Item::create_table(TableOptions::new()).expect("table");
    });
    let sub = Arc::new(db.scope(Item::subscribe).expect("sub"));
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            let sub = Arc::clone(&sub);
            std::thread::spawn(move || {
                let start = Instant::now();
                let e = sub.recv_timeout(Duration::from_secs(3));
                (e.is_some(), start.elapsed())
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    db.scope(|| {
        mnesia::transaction(|| {
            Item::write(Item { id: 1, version: 1 })?;
            Item::write(Item { id: 2, version: 1 })?;
            Ok::<_, mnesia::Error>(())
        })
    })
    .expect("commit");
    for w in waiters {
        let (got, took) = w.join().expect("join");
        assert!(got);
        assert!(took < Duration::from_millis(1500), "a waiter slept {took:?} with an event queued");
    }
}

/// A commit larger than the free buffer space is split: part delivered, part `Lagged`, so
/// the subscriber sees half a commit ("each commit's events together").
#[test]
fn review_commit_split_by_full_buffer() {
    let db = Database::open(Config::default().event_buffer(2)).expect("db");
    db.scope(|| -> mnesia::Result<()> {
        Item::create_table(TableOptions::new())?;
        let s = Item::subscribe()?;
        mnesia::transaction(|| {
            for id in 0..3 {
                Item::write(Item { id, version: 1 })?;
            }
            Ok::<_, mnesia::Error>(())
        })?;
        let got: Vec<_> = std::iter::from_fn(|| s.try_recv()).collect();
        let writes = got.iter().filter(|e| matches!(e, Event::Write { .. })).count();
        assert!(writes == 0 || writes == 3, "half a commit delivered: {got:?}");
        Ok(())
    })
    .expect("body");
}

mod ttl_and_events_review {
    //! Findings of the review of expiry and the shared event batches.

    use std::time::{Duration, SystemTime};

    use mnesia::prelude::*;
    use mnesia::{DeleteCause, Event};

    #[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
    struct Account {
        #[key]
        id: u32,
        #[index(unique)]
        handle: String,
        #[ttl]
        expires_at: Option<SystemTime>,
    }

    #[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[table(type = "bag")]
    struct Tag {
        #[key]
        item: u32,
        tag: String,
    }

    #[test]
    fn many_expired_holders_of_unique_values_cost_no_retries() {
        let db = Database::open(Config::default().auto_cleanup(false).max_retries(1)).expect("db");
        db.scope(|| -> mnesia::Result<()> {
            Account::create_table(TableOptions::new())?;
            let gone = Some(SystemTime::UNIX_EPOCH);
            Account::batch_write((0..50).map(|i| Account {
                id: i,
                handle: format!("h{i}"),
                expires_at: gone,
            }))?;
            // New keys take the 50 values: one commit, with a single attempt allowed.
            Account::batch_write((100..150).map(|i| Account {
                id: i,
                handle: format!("h{}", i - 100),
                expires_at: None,
            }))?;
            assert_eq!(Account::table_info()?.size, 50);
            assert_eq!(Account::get_by(Account::HANDLE, "h7")?.map(|a| a.id), Some(107));
            Ok(())
        })
        .expect("body");
    }

    #[test]
    fn cleared_and_dropped_reach_a_subscriber_whose_buffer_is_full() {
        let db = Database::open(Config::default().event_buffer(1)).expect("db");
        db.scope(|| -> mnesia::Result<()> {
            Tag::create_table(TableOptions::new())?;
            let events = Tag::subscribe()?;
            for i in 0..3 {
                Tag::write(Tag { item: i, tag: "t".into() })?;
            }
            Tag::clear()?;
            Tag::drop_table()?;
            let got: Vec<Event<Tag>> = std::iter::from_fn(|| events.try_recv()).collect();
            assert!(
                matches!(got.as_slice(), [Event::Lagged { missed: 3 }, Event::Cleared, Event::Dropped]),
                "{got:?}"
            );
            Ok(())
        })
        .expect("body");
    }

    #[test]
    fn deleting_a_bag_key_tells_each_record_removed() {
        let db = Database::in_memory().expect("db");
        db.scope(|| -> mnesia::Result<()> {
            Tag::create_table(TableOptions::new())?;
            Tag::write(Tag { item: 1, tag: "a".into() })?;
            Tag::write(Tag { item: 1, tag: "b".into() })?;
            let events = Tag::subscribe()?;
            Tag::delete(&1)?;
            let got: Vec<Event<Tag>> = std::iter::from_fn(|| events.try_recv()).collect();
            let removed: Vec<&str> = got
                .iter()
                .filter_map(|e| match e {
                    Event::Delete { key: 1, old: Some(t), cause: DeleteCause::Explicit } => {
                        Some(t.tag.as_str())
                    }
                    _ => None,
                })
                .collect();
            assert_eq!((removed.len(), got.len()), (2, 2), "{got:?}");
            Ok(())
        })
        .expect("body");
    }

    #[test]
    fn a_very_long_timeout_waits_rather_than_panics() {
        let db = Database::in_memory().expect("db");
        db.scope(|| -> mnesia::Result<()> {
            Tag::create_table(TableOptions::new())?;
            let events = Tag::subscribe()?;
            let writer = {
                let db = db.clone();
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(20));
                    db.scope(|| Tag::write(Tag { item: 9, tag: "late".into() })).map(|_| ())
                })
            };
            assert!(matches!(events.recv_timeout(Duration::MAX), Some(Event::Write { .. })));
            writer.join().expect("writer")?;
            Ok(())
        })
        .expect("body");
    }

    #[test]
    fn subscribers_stay_subscribed_when_the_table_changes_storage() {
        let dir = tests::schema_dir();
        let db = Database::open(Config::default().dir(dir.path())).expect("db");
        db.scope(|| -> mnesia::Result<()> {
            Tag::create_table(TableOptions::new())?;
            let events = Tag::subscribe()?;
            Tag::change_table_copy_type(&db.node(), StorageType::DiscCopies)?;
            Tag::write(Tag { item: 1, tag: "after".into() })?;
            assert!(matches!(events.try_recv(), Some(Event::Write { .. })));
            Ok(())
        })
        .expect("body");
    }
}
