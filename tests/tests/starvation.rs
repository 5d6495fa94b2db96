//! Long transactions finish while writers keep committing: each test runs one long
//! transaction against 4 threads that commit single-record writes without pause, on a
//! database that allows 3 attempts, and checks what the transaction saw. Read-only ones
//! read at a snapshot and run once; the others escalate.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mnesia::Error;
use mnesia::prelude::*;

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Slot {
    #[key]
    id: u32,
    generation: u64,
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(type = "ordered_set")]
struct Reading {
    #[key]
    at: u32,
    value: u64,
}

const WRITERS: u32 = 4;
const RECORDS: u32 = 10_000;

/// Runs `long` on a database whose tables `setup` filled, while `WRITERS` threads run
/// `write(i)` with growing `i` until it is done. Returns what `long` returned and how many
/// times it ran.
fn under_write_load<R: Send>(
    setup: impl FnOnce() -> mnesia::Result<()>,
    write: impl Fn(u64) -> mnesia::Result<()> + Sync,
    mut long: impl FnMut() -> mnesia::Result<R> + Send,
) -> (R, u32) {
    let db = Database::open(Config::default().max_retries(3)).expect("db");
    db.scope(setup).expect("setup");
    let stop = AtomicBool::new(false);
    let writes = AtomicU64::new(0);
    let runs = AtomicU32::new(0);
    let result = std::thread::scope(|s| {
        for w in 0..WRITERS {
            let (db, stop, writes, write) = (db.clone(), &stop, &writes, &write);
            s.spawn(move || {
                db.scope(|| {
                    let mut i = u64::from(w);
                    // Bounded: the long transaction ends well before this many writes.
                    while !stop.load(Ordering::Relaxed) && i < 50_000_000 {
                        write(i).expect("write");
                        writes.fetch_add(1, Ordering::Relaxed);
                        i += u64::from(WRITERS);
                    }
                })
            });
        }
        // Let the writers get going first.
        while writes.load(Ordering::Relaxed) < 1000 {
            std::thread::yield_now();
        }
        let r = db.scope(|| {
            mnesia::transaction(|| {
                runs.fetch_add(1, Ordering::Relaxed);
                long()
            })
        });
        // The writers go on once it is done: no table stays closed to them.
        let after = writes.load(Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_secs(60);
        while writes.load(Ordering::Relaxed) < after + 100 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        let resumed = writes.load(Ordering::Relaxed) >= after + 100;
        stop.store(true, Ordering::Relaxed);
        assert!(resumed, "the writers did not resume after the long transaction");
        r
    });
    let runs = runs.load(Ordering::Relaxed);
    let info = db.system_info();
    assert!(info.escalations < u64::from(runs.max(1)), "{info:?}");
    match result {
        Ok(r) => (r, runs),
        Err(e) => panic!("the long transaction failed after {runs} runs: {e:?}"),
    }
}

fn fill_slots() -> mnesia::Result<()> {
    Slot::create_table(TableOptions::new())?;
    Slot::batch_write((0..RECORDS).map(|id| Slot { id, generation: 0 })).map(drop)
}

fn write_slot(i: u64) -> mnesia::Result<()> {
    // Every record written again and again, with the write's number as its generation.
    let id = u32::try_from(i.wrapping_mul(7) % u64::from(RECORDS)).expect("id");
    Slot::write(Slot { id, generation: i + 1 }).map(drop)
}

#[test]
fn a_read_only_scan_finishes_under_write_load() {
    let ((count, listed), runs) =
        under_write_load(fill_slots, write_slot, || Ok::<_, Error>((Slot::count()?, Slot::list()?.len())));
    assert_eq!((count, listed), (RECORDS as usize, RECORDS as usize));
    assert_eq!(runs, 1, "a read-only transaction reads at a snapshot and never runs again");
}

#[test]
fn a_read_only_ordered_query_finishes_under_write_load() {
    let (top, runs) = under_write_load(fill_slots, write_slot, || {
        Slot::query().order_by(Slot::GENERATION.desc()).limit(10).all()
    });
    assert_eq!(top.len(), 10);
    assert!(top.windows(2).all(|w| w[0].generation >= w[1].generation), "{top:?}");
    assert!(top[0].generation > 0, "the writers' records are seen");
    assert_eq!(runs, 1, "a read-only transaction reads at a snapshot and never runs again");
}

#[test]
fn a_transaction_reading_10k_records_and_writing_one_finishes_under_write_load() {
    let (sum, runs) = under_write_load(fill_slots, write_slot, || {
        let mut sum = 0u64;
        for id in 0..RECORDS {
            sum += Slot::read(&id)?.map_or(0, |s| s.generation);
        }
        // The total goes into a record the writers never write (theirs are below RECORDS).
        Slot::write(Slot { id: RECORDS, generation: sum })?;
        Ok::<_, Error>(sum)
    });
    assert!(runs <= 3, "{runs} runs");
    assert!(sum > 0, "the writers' records are seen");
}

#[test]
fn an_ordered_set_range_transaction_finishes_under_write_load() {
    let setup = || {
        Reading::create_table(TableOptions::new())?;
        Reading::batch_write((0..RECORDS).map(|at| Reading { at, value: 0 })).map(drop)
    };
    let write = |i: u64| {
        let at = u32::try_from(i.wrapping_mul(13) % u64::from(RECORDS)).expect("at");
        Reading::write(Reading { at, value: i + 1 }).map(drop)
    };
    let ((n, max), runs) = under_write_load(setup, write, || {
        let range = Reading::select(Reading::AT.between(1000, 8999))?;
        let max = range.iter().map(|r| r.value).max().unwrap_or(0);
        Reading::write(Reading { at: RECORDS + 1, value: max })?;
        Ok::<_, Error>((range.len(), max))
    });
    assert_eq!(n, 8000);
    assert!(max > 0, "the writers' records are seen");
    assert!(runs <= 3, "{runs} runs");
}
