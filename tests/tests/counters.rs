//! Counters: auto-increment keys per table, named counters, MnesiaEx's counter behaviours.

use mnesia::Error;
use mnesia::prelude::*;

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Post {
    #[key]
    #[auto_increment]
    id: u64,
    title: String,
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Product {
    #[key]
    #[auto_increment]
    id: u32,
    name: String,
}

fn post(id: u64) -> Post {
    Post { id, title: format!("p{id}") }
}

fn with_db(f: impl FnOnce() -> mnesia::Result<()>) {
    let db = Database::in_memory().expect("db");
    db.scope(|| {
        Post::create_table(TableOptions::new()).expect("posts");
        Product::create_table(TableOptions::new()).expect("products");
        f().expect("body");
    });
}

#[test]
fn each_table_has_its_own_sequence() {
    with_db(|| {
        assert_eq!(
            [Post::insert(post(0))?.id, Post::insert(post(0))?.id, Post::insert(post(0))?.id],
            [1, 2, 3]
        );
        assert_eq!(Product::insert(Product { id: 0, name: "a".into() })?.id, 1);
        assert_eq!(Post::current_id()?, 3);
        assert_eq!(Product::current_id()?, 1);
        assert_eq!(Product::next_id()?, 2);
        assert_eq!(Product::insert(Product { id: 0, name: "b".into() })?.id, 3);
        Ok(())
    });
}

#[test]
fn manual_ids_move_the_counter_and_duplicates_are_refused() {
    with_db(|| {
        Post::insert(post(0))?;
        Post::insert(post(0))?;
        assert_eq!(Post::insert(post(100))?.id, 100);
        assert_eq!(Post::insert(post(0))?.id, 101);
        // A duplicate manual id is refused and the stored record is untouched.
        let dup = Post::insert(Post { id: 2, title: "other".into() });
        assert!(matches!(dup, Err(Error::AlreadyExists { .. })));
        assert_eq!(Post::read(&2)?.map(|p| p.title), Some("p0".into()));
        assert_eq!(Post::insert(post(0))?.id, 102);
        // Batches take consecutive ids.
        let batch = Post::batch_write((0..3).map(|_| post(0)))?;
        assert_eq!(batch.iter().map(|p| p.id).collect::<Vec<_>>(), [103, 104, 105]);
        Ok(())
    });
}

#[test]
fn reset_never_overwrites() {
    with_db(|| {
        for _ in 0..5 {
            Post::insert(post(0))?;
        }
        Post::reset_counter(100)?;
        assert_eq!(Post::insert(post(0))?.id, 100);
        Post::reset_counter(3)?;
        // Ids 3 to 5 are taken: skipped, never overwritten.
        assert_eq!(Post::insert(post(0))?.id, 6);
        assert_eq!(Post::read(&3)?.map(|p| p.id), Some(3));
        assert!(Post::reset_counter(0).is_err());
        Ok(())
    });
}

#[test]
fn named_counters() {
    with_db(|| {
        assert!(!mnesia::has_counter("orders")?);
        assert_eq!(mnesia::current_value("orders")?, 0);
        assert_eq!(mnesia::next_id("orders")?, 1);
        assert_eq!(mnesia::next_id("orders")?, 2);
        assert!(mnesia::has_counter("orders")?);
        assert_eq!(mnesia::next_id("orders_eu")?, 1, "names never collide");
        mnesia::reset_counter("orders", 10)?;
        assert_eq!(mnesia::next_id("orders")?, 10);
        // Inside an aborted transaction the value is taken back.
        let r: mnesia::Result<()> = mnesia::transaction(|| {
            assert_eq!(mnesia::next_id("orders")?, 11);
            Err(Error::abort("no"))
        });
        assert!(r.is_err());
        assert_eq!(mnesia::current_value("orders")?, 10);
        // dirty_update_counter is kept even when the surrounding transaction aborts.
        let r: mnesia::Result<()> = mnesia::transaction(|| {
            mnesia::dirty_update_counter("hits", 3)?;
            Err(Error::abort("no"))
        });
        assert!(r.is_err());
        assert_eq!(mnesia::current_value("hits")?, 3);
        assert_eq!(mnesia::dirty_update_counter("hits", -5)?, -2);
        Ok(())
    });
}

#[test]
fn concurrent_counters_lose_nothing() {
    let db = Database::in_memory().expect("db");
    db.scope(|| Post::create_table(TableOptions::new())).expect("posts");
    let ids: Vec<Vec<u64>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|_| {
                let db = db.clone();
                s.spawn(move || {
                    db.scope(|| {
                        let mut ids = Vec::new();
                        for _ in 0..500 {
                            ids.push(Post::insert(post(0)).expect("insert").id);
                            mnesia::dirty_update_counter("hits", 1).expect("dirty counter");
                            mnesia::next_id("tickets").expect("named counter");
                        }
                        ids
                    })
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("join")).collect()
    });
    let mut all: Vec<u64> = ids.concat();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 4000, "8 threads x 500 inserts: distinct ids");
    db.scope(|| -> mnesia::Result<()> {
        assert_eq!(mnesia::current_value("hits")?, 4000);
        assert_eq!(mnesia::current_value("tickets")?, 4000);
        Ok(())
    })
    .expect("totals");
}

#[test]
fn counters_persist_and_are_never_reissued_after_a_crash() {
    let dir = tests::schema_dir();
    let db = Database::open(Config::default().dir(dir.path())).expect("open");
    db.scope(|| -> mnesia::Result<()> {
        Post::create_table(TableOptions::new().disc_copies([db.node()]))?;
        for _ in 0..5 {
            Post::insert(post(0))?;
        }
        Post::delete(&5)?;
        for _ in 0..7 {
            mnesia::next_id("orders")?;
        }
        Ok(())
    })
    .expect("write");
    let image = tests::crash_image(dir.path());
    db.close().expect("close");
    let db = Database::open(Config::default().dir(image.path())).expect("reopen");
    db.scope(|| -> mnesia::Result<()> {
        assert_eq!(Post::insert(post(0))?.id, 6, "id 5 was handed out before the crash");
        assert_eq!(mnesia::next_id("orders")?, 8);
        Ok(())
    })
    .expect("after the crash");
    db.close().expect("close");
}

/// A named counter set below zero hands out no id (not 0 either, from -1) and stays as it was, also when the
/// refused `next_id` ran inside a transaction that then commits; a next value the counter
/// cannot hold is refused by `reset_counter` rather than by every later `next_id`.
#[test]
fn a_refused_next_id_leaves_the_counter_as_it_was() {
    with_db(|| {
        mnesia::dirty_update_counter("c", -5)?;
        assert!(matches!(mnesia::next_id("c"), Err(Error::Invalid(_))));
        assert_eq!(mnesia::current_value("c")?, -5);
        mnesia::transaction(|| {
            assert!(mnesia::next_id("c").is_err());
            Ok::<_, Error>(())
        })?;
        assert_eq!(mnesia::current_value("c")?, -5);
        // At -1 its next value would be 0, which no id is.
        mnesia::dirty_update_counter("c", 4)?;
        assert!(matches!(mnesia::next_id("c"), Err(Error::Invalid(_))));
        assert_eq!(mnesia::current_value("c")?, -1);
        mnesia::dirty_update_counter("c", 1)?;
        assert_eq!(mnesia::next_id("c")?, 1);
        assert!(mnesia::reset_counter("d", i64::MAX as u64 + 1).is_err());
        mnesia::reset_counter("d", i64::MAX as u64)?;
        assert_eq!(mnesia::next_id("d")?, i64::MAX as u64);
        Ok(())
    });
}
