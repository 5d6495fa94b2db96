//! Regression tests for bugs found in review: each states a behaviour the README promises
//! and once failed.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mnesia::Error;
use mnesia::prelude::*;

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(type = "bag")]
struct Tag {
    #[key]
    owner: u32,
    label: String,
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Slot {
    #[key]
    id: u32,
    generation: u64,
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Member {
    #[key]
    #[auto_increment]
    id: u64,
    #[index(unique)]
    email: String,
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Cfg {
    #[key]
    id: u32,
    next_email: String,
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Reading {
    #[key]
    id: u32,
    value: f64,
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(type = "bag")]
struct Doc {
    #[key]
    id: u32,
    attrs: HashMap<String, u32>,
}

fn with_db<R>(f: impl FnOnce() -> mnesia::Result<R>) -> R {
    let db = Database::in_memory().expect("db");
    db.scope(f).expect("test body")
}

/// F1: a dirty write to a bag reads the key's group, adds the record and installs the whole
/// group without checking that the group it read is still current: a concurrent write of
/// another record to the same key is silently lost.
#[test]
fn dirty_write_on_bag_keeps_concurrent_records() {
    let db = Database::in_memory().expect("db");
    db.scope(|| Tag::create_table(TableOptions::new())).expect("create");
    const PER_THREAD: usize = 1500;
    std::thread::scope(|s| {
        for t in 0..2 {
            let db = db.clone();
            s.spawn(move || {
                db.scope(|| {
                    for i in 0..PER_THREAD {
                        Tag::dirty_write(Tag { owner: 1, label: format!("t{t}-{i}") }).expect("dirty_write");
                    }
                })
            });
        }
    });
    let n = db.scope(|| Tag::read_all(&1)).expect("read_all").len();
    assert_eq!(n, 2 * PER_THREAD, "records lost by concurrent dirty writes to one bag key");
}

const SLOTS: u32 = 3000;

/// Runs a writer that keeps rewriting every slot with one new generation in one transaction
/// (the install of such a commit takes a while, key after key), while `reader` runs.
fn with_generation_writer(db: &Database, reader: impl FnOnce() + Send) {
    db.scope(|| Slot::batch_write((0..SLOTS).map(|id| Slot { id, generation: 0 }))).expect("setup");
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let writer = {
            let db = db.clone();
            let stop = &stop;
            s.spawn(move || {
                db.scope(|| {
                    let mut g = 1;
                    while !stop.load(Ordering::Relaxed) {
                        Slot::batch_write((0..SLOTS).map(|id| Slot { id, generation: g })).expect("writer");
                        g += 1;
                    }
                })
            })
        };
        reader();
        stop.store(true, Ordering::Relaxed);
        writer.join().expect("writer thread");
    });
}

/// F2: a closure that returns `Err` after reading a half-installed commit gets its error
/// handed back to the caller: `reads_unchanged` is checked without the commit locks, so it
/// passes while the concurrent commit is still installing. The user sees an error computed
/// from a state that never existed.
#[test]
fn an_error_is_never_returned_from_a_torn_snapshot() {
    let db = Database::in_memory().expect("db");
    db.scope(|| Slot::create_table(TableOptions::new())).expect("create");
    let torn_errors = AtomicUsize::new(0);
    with_generation_writer(&db, || {
        db.scope(|| {
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline && torn_errors.load(Ordering::Relaxed) == 0 {
                // Always ends with Err (no commit to wait for): "same" is an expected
                // outcome, "torn" must never reach the caller.
                let r: mnesia::Result<()> = mnesia::transaction(|| {
                    let first = Slot::read(&0)?.map(|s| s.generation);
                    let last = Slot::read(&(SLOTS - 1))?.map(|s| s.generation);
                    if first != last {
                        return Err(Error::abort(format!("torn: {first:?} vs {last:?}")));
                    }
                    Err(Error::abort("same"))
                });
                if let Err(e) = r
                    && e.to_string().contains("torn")
                {
                    eprintln!("reached the caller: {e}");
                    torn_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    });
    assert_eq!(torn_errors.load(Ordering::Relaxed), 0, "an Err computed from a torn read reached the caller");
}

/// F3: `validate` runs per table part, read check then unique check. A part validated before
/// another part's stale read reports `UniqueViolation` instead of `Conflict`, so the caller
/// gets an error that no serial execution produces (a retry would succeed).
#[test]
fn unique_violation_is_not_reported_from_a_stale_read() {
    with_db(|| {
        Member::create_table(TableOptions::new())?;
        Cfg::create_table(TableOptions::new())?;
        Cfg::write(Cfg { id: 0, next_email: "a@x".into() })?;
        let first_attempt = AtomicBool::new(true);
        let r = mnesia::transaction(|| {
            let _ = Member::read(&999)?; // the Member part comes first
            let cfg = Cfg::read(&0)?.ok_or_else(|| Error::abort("no cfg"))?;
            if first_attempt.swap(false, Ordering::SeqCst) {
                // A concurrent client (applied at once): takes "a@x" and moves the config on.
                Member::dirty_write(Member { id: 500, email: "a@x".into() })?;
                Cfg::dirty_write(Cfg { id: 0, next_email: "b@x".into() })?;
            }
            Member::insert(Member { id: 0, email: cfg.next_email })
        });
        assert!(r.is_ok(), "a retry would read b@x and succeed, got {r:?}");
        Ok(())
    });
}

/// F4: an inner `transaction` that returns `Err` does not roll its writes back when the
/// outer one goes on (README: "Returning Err(e) rolls everything back").
#[test]
fn an_inner_transaction_error_rolls_its_writes_back() {
    with_db(|| {
        Slot::create_table(TableOptions::new())?;
        mnesia::transaction(|| {
            let inner: mnesia::Result<()> = mnesia::transaction(|| {
                Slot::write(Slot { id: 1, generation: 1 })?;
                Err(Error::abort("inner gives up"))
            });
            assert!(inner.is_err());
            Ok::<_, Error>(())
        })?;
        assert_eq!(Slot::read(&1)?, None, "the aborted inner transaction's write was committed");
        Ok(())
    });
}

/// An inner `transaction` that panics, the panic caught by the outer closure, left its
/// writes in the outer one, which committed them (README: "A panic rolls back and
/// propagates"; found trying the crate as a new user would).
#[test]
fn an_inner_transaction_panic_caught_outside_rolls_its_writes_back() {
    with_db(|| {
        Slot::create_table(TableOptions::new())?;
        mnesia::transaction(|| {
            Slot::write(Slot { id: 1, generation: 1 })?;
            let inner = catch_unwind(AssertUnwindSafe(|| {
                mnesia::transaction(|| {
                    Slot::write(Slot { id: 2, generation: 2 })?;
                    Slot::write(Slot { id: 1, generation: 3 })?;
                    if Slot::read(&2)?.is_some() {
                        panic!("the inner closure panics");
                    }
                    Ok::<_, Error>(())
                })
            }));
            assert!(inner.is_err(), "the panic propagates");
            assert_eq!(Slot::read(&2)?, None, "undone inside the outer transaction");
            Ok::<_, Error>(())
        })?;
        assert_eq!(
            Slot::read(&1)?,
            Some(Slot { id: 1, generation: 1 }),
            "the outer write, not the inner one"
        );
        assert_eq!(Slot::read(&2)?, None, "the panicked inner transaction's write was committed");
        Ok(())
    });
}

/// A transaction that dirty-writes, on every run, what it read conflicted with itself on
/// every run: it ran until it gave up (`TooManyRetries` after 1,000 runs, the dirty write
/// made 1,000 times), though nothing else ran. It fails on its second run now, saying why;
/// one that does so once (a stand-in for a concurrent client, above) still runs again and
/// commits. Found trying the crate as a new user would.
#[test]
fn a_transaction_dirty_writing_what_it_read_on_every_run_fails_on_its_second() {
    with_db(|| {
        Slot::create_table(TableOptions::new())?;
        Slot::write(Slot { id: 1, generation: 0 })?;
        Slot::write(Slot { id: 2, generation: 0 })?;
        let runs = AtomicUsize::new(0);
        let r = mnesia::transaction(|| {
            runs.fetch_add(1, Ordering::SeqCst);
            let a = Slot::read(&1)?.ok_or_else(|| Error::abort("slot 1"))?;
            Slot::dirty_update(&1, |s| s.generation += 1)?;
            Slot::write(Slot { id: 2, generation: a.generation + 10 })
        });
        match r {
            Err(Error::Invalid(why)) => assert!(why.contains("dirty operation"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert_eq!(Slot::read(&1)?.map(|s| s.generation), Some(2), "each run's dirty update");
        assert_eq!(Slot::read(&2)?.map(|s| s.generation), Some(0), "the transaction's own write: never made");
        // Named counters: a transaction's next_id, then a dirty update of the same counter.
        let r = mnesia::transaction(|| {
            mnesia::next_id("e")?;
            mnesia::dirty_update_counter("e", 10)?;
            mnesia::next_id("e")
        });
        assert!(matches!(r, Err(Error::Invalid(_))), "{r:?}");
        assert_eq!(mnesia::current_value("e")?, 20);
        Ok(())
    });
}

/// F5: the auto-increment counter overflows: after a record with id u64::MAX, `insert` with
/// id 0 evaluates `u64::MAX + 1` (a panic in debug builds; id 0 and then reused ids in
/// release builds, where `insert` skips its existence check for assigned ids).
#[test]
fn auto_increment_at_the_top_of_the_range_errs_instead_of_panicking() {
    with_db(|| {
        Member::create_table(TableOptions::new())?;
        Member::write(Member { id: u64::MAX, email: "max@x".into() })?;
        let r = catch_unwind(AssertUnwindSafe(|| Member::insert(Member { id: 0, email: "next@x".into() })));
        match r {
            Err(_) => panic!("library code panicked on insert after id u64::MAX"),
            Ok(Ok(m)) => panic!("insert handed out id {} after u64::MAX", m.id),
            Ok(Err(_)) => {}
        }
        Ok(())
    });
}

/// F6: `insert` with an auto-assigned id skips the existence check, so a record written
/// with that id in between is silently overwritten ("insert refuses a key that exists").
#[test]
fn insert_with_an_assigned_id_never_overwrites() {
    with_db(|| {
        Member::create_table(TableOptions::new())?;
        let r = mnesia::transaction(|| {
            let m = Member::insert(Member { id: 0, email: "auto@x".into() })?;
            // Another client writes that id meanwhile (applied at once).
            Member::dirty_write(Member { id: m.id, email: "explicit@x".into() })?;
            Ok::<_, Error>(m.id)
        });
        if let Ok(id) = r {
            let now = Member::read(&id)?;
            assert_eq!(
                now.map(|m| m.email),
                Some("explicit@x".to_string()),
                "insert overwrote an existing record"
            );
        }
        Ok(())
    });
}

/// F7: `order_by` on a float field uses `partial_cmp(..).unwrap_or(Equal)`: with NaN the
/// comparator is not a total order, and the standard sort may panic on it.
#[test]
fn order_by_a_float_field_with_nan_does_not_panic() {
    with_db(|| {
        Reading::create_table(TableOptions::new())?;
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        Reading::batch_write((0..2000u32).map(|id| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let value = if seed.is_multiple_of(3) { f64::NAN } else { (seed % 1000) as f64 };
            Reading { id, value }
        }))?;
        let r = catch_unwind(AssertUnwindSafe(|| Reading::query().order_by(Reading::VALUE.asc()).all()));
        assert!(r.is_ok(), "sorting by a float field with NaN panicked");
        Ok(())
    });
}

/// F10: an optimistic scan under a steady stream of small writes kept failing validation
/// until `TooManyRetries`; it now reads at a snapshot and finishes on its first run (see
/// `snapshots.rs` and `starvation.rs`).
#[test]
fn a_read_only_scan_completes_under_write_load() {
    let db = Database::open(Config::default().max_retries(200)).expect("db");
    db.scope(|| {
        Slot::create_table(TableOptions::new())?;
        Slot::batch_write((0..20_000).map(|id| Slot { id, generation: 0 }))
    })
    .expect("setup");
    let stop = AtomicBool::new(false);
    let writes = AtomicU64::new(0);
    let result = std::thread::scope(|s| {
        {
            let db = db.clone();
            let (stop, writes) = (&stop, &writes);
            s.spawn(move || {
                db.scope(|| {
                    let mut id = 0;
                    while !stop.load(Ordering::Relaxed) {
                        Slot::write(Slot { id, generation: 1 }).expect("write");
                        id = (id + 7) % 20_000;
                        writes.fetch_add(1, Ordering::Relaxed);
                    }
                })
            });
        }
        let runs = AtomicU64::new(0);
        let r = db.scope(|| {
            mnesia::transaction(|| {
                runs.fetch_add(1, Ordering::Relaxed);
                let n = Slot::count()?;
                let sum: u64 = Slot::list()?.iter().map(|s| s.generation).sum();
                Ok::<_, Error>((n, sum))
            })
        });
        stop.store(true, Ordering::Relaxed);
        r.map(|r| (r, runs.load(Ordering::Relaxed)))
    });
    let ((n, _), runs) = result
        .unwrap_or_else(|e| panic!("scan starved after {} writes: {e:?}", writes.load(Ordering::Relaxed)));
    assert_eq!((n, runs), (20_000, 1));
}

/// F12: iterating a `set` inside a transaction while updating the visited records yields
/// every updated record a second time: `chunk` hides committed records that are in the
/// write set, then emits the whole write set in its `Pending` phase, including records the
/// caller already got.
#[test]
fn iterating_while_updating_visits_each_record_once() {
    with_db(|| {
        Slot::create_table(TableOptions::new())?;
        Slot::batch_write((0..100).map(|id| Slot { id, generation: 0 }))?;
        let visits = mnesia::transaction(|| {
            let mut visits = 0;
            for s in Slot::query().iter() {
                let s = s?;
                visits += 1;
                Slot::update(&s.id, |x| x.generation += 1)?;
            }
            Ok::<_, Error>(visits)
        })?;
        assert_eq!(visits, 100, "records visited twice");
        assert!(Slot::list()?.iter().all(|s| s.generation == 1));
        Ok(())
    });
}

static LIVE_CANARIES: std::sync::atomic::AtomicIsize = std::sync::atomic::AtomicIsize::new(0);

#[derive(Debug, Serialize, Deserialize)]
#[serde(from = "u8", into = "u8")]
struct Canary;

impl Canary {
    fn new() -> Self {
        LIVE_CANARIES.fetch_add(1, Ordering::SeqCst);
        Canary
    }
}
impl Clone for Canary {
    fn clone(&self) -> Self {
        Canary::new()
    }
}
impl Drop for Canary {
    fn drop(&mut self) {
        LIVE_CANARIES.fetch_sub(1, Ordering::SeqCst);
    }
}
impl From<u8> for Canary {
    fn from(_: u8) -> Self {
        Canary::new()
    }
}
impl From<Canary> for u8 {
    fn from(_: Canary) -> u8 {
        0
    }
}

#[derive(Table, Clone, Debug, Serialize, Deserialize)]
struct Bird {
    #[key]
    id: u32,
    canary: Canary,
}

/// F14: after the last `Database` handle is dropped, the thread that ran transactions keeps
/// the database (`SPARE_DB`) and table parts (`SPARE`) alive in thread-locals: every record
/// stays in memory until that thread runs a transaction on another database or exits
/// (`stop()` says "Its tables are gone once no handle is left").
#[test]
fn a_dropped_database_frees_its_records() {
    {
        let db = Database::in_memory().expect("db");
        db.scope(|| {
            Bird::create_table(TableOptions::new())?;
            Bird::batch_write((0..10).map(|id| Bird { id, canary: Canary::new() }))?;
            let _ = Bird::read(&1)?;
            Ok::<_, Error>(())
        })
        .expect("body");
    }
    assert_eq!(LIVE_CANARIES.load(Ordering::SeqCst), 0, "records still alive after the database was dropped");
}

/// Checked sound: two threads moving unique values between records, deleting and
/// re-inserting, leave the unique index exactly matching the records.
#[test]
fn unique_index_stays_consistent_under_contention() {
    let db = Database::in_memory().expect("db");
    db.scope(|| Member::create_table(TableOptions::new())).expect("create");
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let db = db.clone();
            s.spawn(move || {
                db.scope(|| {
                    let mut seed = t * 7919 + 13;
                    for _ in 0..4000 {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        let id = 1 + seed % 8;
                        let email = format!("e{}", (seed >> 8) % 10);
                        let r = match (seed >> 20) % 4 {
                            0 => Member::delete(&id).map(|_| ()),
                            1 => Member::dirty_write(Member { id, email }).map(|_| ()),
                            _ => Member::write(Member { id, email }).map(|_| ()),
                        };
                        match r {
                            Ok(()) | Err(Error::UniqueViolation { .. }) => {}
                            Err(e) => panic!("{e}"),
                        }
                    }
                })
            });
        }
    });
    db.scope(|| {
        let all = Member::list()?;
        for m in &all {
            assert_eq!(Member::get_by(Member::EMAIL, m.email.clone())?.map(|x| x.id), Some(m.id));
        }
        for v in 0..10 {
            let e = format!("e{v}");
            let via_index = Member::select(Member::EMAIL.eq(e.clone()))?.len();
            let via_scan = all.iter().filter(|m| m.email == e).count();
            assert_eq!(via_index, via_scan);
            assert!(via_scan <= 1);
        }
        Ok::<_, Error>(())
    })
    .expect("check");
}
