//! Transactions that read much and write nothing read a snapshot: what they see is the
//! database as it was at one commit, whatever commits land while they run, and they never
//! run twice for it.
//!
//! - a property test: a reader scans (which opens its snapshot), another thread then
//!   commits random writes, deletes and clears, and the reader's every kind of read
//!   (scans, counts, index lookups, point reads, key ranges) still answers as the table was
//!   at the snapshot; on a `set`, an `ordered_set` and a `bag`, in memory; and once on
//!   `disc_copies` and `disc_only_copies` tables;
//! - bank audits across two tables while transfers run: every audit sees the exact total,
//!   on its first run; transfers that scan before they write stay serializable.

use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use mnesia::Error;
use mnesia::prelude::*;
use proptest::prelude::*;

#[derive(Table, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Item {
    #[key]
    id: u32,
    #[index]
    bucket: u8,
    val: u32,
}

#[derive(Table, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[table(type = "ordered_set")]
struct Line {
    #[key]
    id: u32,
    #[index]
    bucket: u8,
    val: u32,
}

#[derive(Table, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[table(type = "bag")]
struct Tag {
    #[key]
    id: u32,
    #[index]
    bucket: u8,
    val: u32,
}

const KEYS: u32 = 40;
const BUCKETS: u8 = 3;

/// A change the other thread commits while the reader runs.
#[derive(Clone, Debug)]
enum Change {
    Write(u32, u8, u32),
    Delete(u32),
    Clear,
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        8 => (0..KEYS, 0..BUCKETS, 0u32..4).prop_map(|(id, b, v)| Change::Write(id, b, v)),
        3 => (0..KEYS).prop_map(Change::Delete),
        1 => Just(Change::Clear),
    ]
}

/// Everything a reader looks at, as sorted `(id, bucket, val)` lists.
#[derive(Debug, PartialEq)]
struct Views {
    list: Vec<(u32, u8, u32)>,
    count: usize,
    by_bucket: Vec<Vec<(u32, u8, u32)>>,
    /// The first match's key and bucket (a bag's records of one key come in no set order).
    first_by_bucket: Vec<Option<(u32, u8)>>,
    reads: Vec<(u32, u8, u32)>,
    range: Vec<(u32, u8, u32)>,
    /// `list()` in key order (always true for a `set` or a `bag`).
    listed_in_key_order: bool,
    /// The key `query().limit(1)` returns first on an `ordered_set` (else `None`).
    first_key: Option<u32>,
}

/// What the tests need of the three record types.
trait Rec: Table<Key = u32> + Ord {
    fn make(id: u32, bucket: u8, val: u32) -> Self;
    fn parts(&self) -> (u32, u8, u32);
    fn by_bucket(b: u8) -> mnesia::Result<Vec<Self>>;
    fn first_in_bucket(b: u8) -> mnesia::Result<Option<Self>>;
    fn range(lo: u32, hi: u32) -> mnesia::Result<Vec<Self>>;
}

macro_rules! rec {
    ($t:ident) => {
        impl Rec for $t {
            fn make(id: u32, bucket: u8, val: u32) -> Self {
                $t { id, bucket, val }
            }
            fn parts(&self) -> (u32, u8, u32) {
                (self.id, self.bucket, self.val)
            }
            fn by_bucket(b: u8) -> mnesia::Result<Vec<Self>> {
                $t::select($t::BUCKET.eq(b))
            }
            fn first_in_bucket(b: u8) -> mnesia::Result<Option<Self>> {
                $t::get_by($t::BUCKET, b)
            }
            fn range(lo: u32, hi: u32) -> mnesia::Result<Vec<Self>> {
                $t::select($t::ID.between(lo, hi))
            }
        }
    };
}
rec!(Item);
rec!(Line);
rec!(Tag);

fn sorted<T: Rec>(recs: Vec<T>) -> Vec<(u32, u8, u32)> {
    let mut v: Vec<_> = recs.iter().map(Rec::parts).collect();
    v.sort();
    v
}

/// The table as a model: `(id, bucket, val)` records; a set keeps one per key.
fn apply(model: &mut Vec<(u32, u8, u32)>, bag: bool, c: &Change) {
    match *c {
        Change::Write(id, b, v) => {
            if !bag {
                model.retain(|r| r.0 != id);
            }
            if !model.contains(&(id, b, v)) {
                model.push((id, b, v));
            }
        }
        Change::Delete(id) => model.retain(|r| r.0 != id),
        Change::Clear => model.clear(),
    }
    model.sort();
}

fn expected(model: &[(u32, u8, u32)], lo: u32, hi: u32, ordered: bool) -> Views {
    let by_bucket: Vec<Vec<_>> =
        (0..BUCKETS).map(|b| model.iter().copied().filter(|r| r.1 == b).collect()).collect();
    Views {
        list: model.to_vec(),
        count: model.len(),
        first_by_bucket: by_bucket.iter().map(|g| g.first().map(|r| (r.0, r.1))).collect(),
        by_bucket,
        reads: model.to_vec(),
        range: model.iter().copied().filter(|r| (lo..=hi).contains(&r.0)).collect(),
        listed_in_key_order: true,
        first_key: if ordered { model.first().map(|r| r.0) } else { None },
    }
}

/// Fills a table with `initial`, then runs a reader that scans (opening its snapshot),
/// lets another thread commit `changes`, and reads again every way it can. Returns what
/// it saw after the changes, how many times it ran, and the table's final contents.
fn read_while_changing<T: Rec>(
    db: &Database,
    options: TableOptions<T>,
    initial: &[(u32, u8, u32)],
    changes: &[Change],
    lo: u32,
    hi: u32,
) -> (Views, Views, u32, Vec<(u32, u8, u32)>) {
    db.scope(|| -> mnesia::Result<()> {
        T::create_table(options)?;
        T::batch_write(initial.iter().map(|&(id, b, v)| T::make(id, b, v))).map(drop)
    })
    .expect("fill");
    let bag = T::TYPE == TableType::Bag;
    let mut model: Vec<(u32, u8, u32)> = Vec::new();
    for &(id, b, v) in initial {
        apply(&mut model, bag, &Change::Write(id, b, v));
    }
    let ordered = T::TYPE == TableType::OrderedSet;
    let at_start = expected(&model, lo, hi, ordered);
    let started = Barrier::new(2);
    let changed = Barrier::new(2);
    let runs = AtomicU32::new(0);
    let seen = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            started.wait();
            db.scope(|| {
                for c in changes {
                    match *c {
                        Change::Write(id, b, v) => T::write(T::make(id, b, v)).map(drop),
                        Change::Delete(id) => T::delete(&id).map(drop),
                        Change::Clear => T::clear(),
                    }
                    .expect("change");
                }
            });
            changed.wait();
        });
        let seen = db.scope(|| {
            mnesia::transaction(|| {
                let first = runs.fetch_add(1, Ordering::SeqCst) == 0;
                let before = sorted(T::list()?);
                if first {
                    started.wait();
                    changed.wait();
                }
                let mut reads = Vec::new();
                for id in 0..KEYS {
                    reads.extend(T::read_all(&id)?.iter().map(Rec::parts));
                }
                reads.sort();
                let mut by_bucket = Vec::new();
                let mut first_by_bucket = Vec::new();
                for b in 0..BUCKETS {
                    by_bucket.push(sorted(T::by_bucket(b)?));
                    first_by_bucket.push(T::first_in_bucket(b)?.map(|r| (r.parts().0, r.parts().1)));
                }
                let listed = T::list()?;
                let keys: Vec<u32> = listed.iter().map(|r| r.parts().0).collect();
                let first_key = match ordered {
                    true => T::query().limit(1).all()?.first().map(|r| r.parts().0),
                    false => None,
                };
                let after = Views {
                    listed_in_key_order: !ordered || keys.windows(2).all(|w| w[0] <= w[1]),
                    first_key,
                    list: sorted(listed),
                    count: T::count()?,
                    by_bucket,
                    first_by_bucket,
                    reads,
                    range: sorted(T::range(lo, hi)?),
                };
                Ok::<_, Error>((before, after))
            })
        });
        writer.join().expect("writer");
        seen
    });
    let (before, after) = seen.expect("the reader failed");
    assert_eq!(before, at_start.list, "the first scan");
    for c in changes {
        apply(&mut model, bag, c);
    }
    let now = db.scope(|| T::list()).expect("list");
    (after, at_start, runs.load(Ordering::SeqCst), {
        assert_eq!(sorted(now), model, "the changes are in place after the reader");
        model
    })
}

fn check<T: Rec>(db: &Database, options: TableOptions<T>, initial: &[(u32, u8, u32)], changes: &[Change]) {
    let (seen, want, runs, _) = read_while_changing::<T>(db, options, initial, changes, 5, 25);
    assert_eq!(seen, want, "{}", T::NAME);
    assert_eq!(runs, 1, "{}: a reader at a snapshot runs once", T::NAME);
}

fn records() -> impl Strategy<Value = Vec<(u32, u8, u32)>> {
    proptest::collection::vec((0..KEYS, 0..BUCKETS, 0u32..4), 0..60)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn a_reader_sees_the_table_as_it_was_at_its_snapshot(
        initial in records(),
        changes in proptest::collection::vec(change(), 0..40),
    ) {
        let db = Database::open(Config::default()).expect("db");
        check::<Item>(&db, TableOptions::new(), &initial, &changes);
        check::<Line>(&db, TableOptions::new(), &initial, &changes);
        check::<Tag>(&db, TableOptions::new(), &initial, &changes);
    }
}

/// The same on disc: `disc_copies` and `disc_only_copies` tables.
#[test]
fn a_reader_sees_disc_tables_as_they_were_at_its_snapshot() {
    let initial: Vec<(u32, u8, u32)> = (0..KEYS).map(|id| (id, (id % 3) as u8, id % 4)).collect();
    let changes: Vec<Change> = (0..KEYS)
        .flat_map(|id| match id % 4 {
            0 => vec![Change::Delete(id)],
            1 => vec![Change::Write(id, ((id + 1) % 3) as u8, 9)],
            2 => vec![Change::Write(id + KEYS, 0, 1), Change::Write(id, (id % 3) as u8, 7)],
            _ => vec![],
        })
        .chain([Change::Clear, Change::Write(1, 1, 1)])
        .collect();
    let dir = tests::schema_dir();
    let db = Database::open(Config::default().dir(dir.path())).expect("open");
    check::<Item>(&db, TableOptions::new().disc_copies(["local@localhost"]), &initial, &changes);
    check::<Line>(&db, TableOptions::new().disc_copies(["local@localhost"]), &initial, &changes);
    check::<Tag>(&db, TableOptions::new().disc_only_copies(["local@localhost"]), &initial, &changes);
    let dir = tests::schema_dir();
    let db = Database::open(Config::default().dir(dir.path())).expect("open");
    check::<Item>(&db, TableOptions::new().disc_only_copies(["local@localhost"]), &initial, &changes);
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Checking {
    #[key]
    id: u32,
    balance: i64,
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Savings {
    #[key]
    id: u32,
    balance: i64,
}

const ACCOUNTS: u32 = 200;
const START: i64 = 1_000;

/// Moves `amount` from one account to another, in either table. With `scan_first`, the
/// transaction first counts a table (a scan: it reads at a snapshot from then on), so its
/// reads are at the snapshot and validated when it writes.
fn transfer(from: u32, to: u32, amount: i64, scan_first: bool) -> mnesia::Result<()> {
    mnesia::transaction(|| {
        if scan_first {
            assert_eq!(Checking::count()?, ACCOUNTS as usize);
        }
        let balance = |id: u32| -> mnesia::Result<i64> {
            Ok(if id < ACCOUNTS {
                Checking::read(&id)?.map_or(0, |a| a.balance)
            } else {
                Savings::read(&(id - ACCOUNTS))?.map_or(0, |a| a.balance)
            })
        };
        let set = |id: u32, balance: i64| -> mnesia::Result<()> {
            if id < ACCOUNTS {
                Checking::write(Checking { id, balance }).map(drop)
            } else {
                Savings::write(Savings { id: id - ACCOUNTS, balance }).map(drop)
            }
        };
        let (a, b) = (balance(from)?, balance(to)?);
        set(from, a - amount)?;
        set(to, b + amount)
    })
}

struct StopWhenBothDone<'a>(&'a AtomicU32, &'a AtomicBool);

impl Drop for StopWhenBothDone<'_> {
    fn drop(&mut self) {
        if self.0.fetch_add(1, Ordering::SeqCst) + 1 == 2 {
            self.1.store(true, Ordering::SeqCst);
        }
    }
}

#[test]
fn audits_across_two_tables_see_the_exact_total_on_their_first_run() {
    let db = Database::open(Config::default().max_retries(1000)).expect("db");
    db.scope(|| -> mnesia::Result<()> {
        Checking::create_table(TableOptions::new())?;
        Savings::create_table(TableOptions::new())?;
        Checking::batch_write((0..ACCOUNTS).map(|id| Checking { id, balance: START }))?;
        Savings::batch_write((0..ACCOUNTS).map(|id| Savings { id, balance: START })).map(drop)
    })
    .expect("setup");
    let total = 2 * i64::from(ACCOUNTS) * START;
    let stop = AtomicBool::new(false);
    let transfers = AtomicU64::new(0);
    let audits = AtomicU64::new(0);
    let audit_runs = AtomicU64::new(0);
    let auditors_done = AtomicU32::new(0);
    std::thread::scope(|s| {
        for w in 0..4u32 {
            let (db, stop, transfers) = (db.clone(), &stop, &transfers);
            s.spawn(move || {
                db.scope(|| {
                    let mut x = u64::from(w) * 7919 + 1;
                    // Bounded: the audits are done long before this many transfers.
                    for _ in 0..2_000_000 {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                        let from = ((x >> 33) % u64::from(2 * ACCOUNTS)) as u32;
                        let to = ((x >> 13) % u64::from(2 * ACCOUNTS)) as u32;
                        if from != to {
                            transfer(from, to, (x % 50) as i64, w % 2 == 1).expect("transfer");
                            transfers.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            });
        }
        for _ in 0..2 {
            let (db, stop, audits, audit_runs, transfers) =
                (db.clone(), &stop, &audits, &audit_runs, &transfers);
            let auditors_done = &auditors_done;
            s.spawn(move || {
                // The writers stop once both auditors are done, also if one fails.
                let _done = StopWhenBothDone(auditors_done, stop);
                db.scope(|| {
                    while transfers.load(Ordering::Relaxed) < 100 {
                        std::thread::yield_now();
                    }
                    for _ in 0..40 {
                        let sum = mnesia::transaction(|| {
                            audit_runs.fetch_add(1, Ordering::Relaxed);
                            let checking: i64 = Checking::list()?.iter().map(|a| a.balance).sum();
                            let savings: i64 = Savings::list()?.iter().map(|a| a.balance).sum();
                            Ok::<_, Error>(checking + savings)
                        })
                        .expect("audit");
                        assert_eq!(sum, total, "an audit saw money appear or vanish");
                        audits.fetch_add(1, Ordering::Relaxed);
                    }
                });
            });
        }
    });
    assert_eq!(audits.load(Ordering::Relaxed), 80);
    assert_eq!(audit_runs.load(Ordering::Relaxed), 80, "every audit ran once");
    let end: i64 = db
        .scope(|| -> mnesia::Result<i64> {
            Ok(Checking::list()?.iter().map(|a| a.balance).sum::<i64>()
                + Savings::list()?.iter().map(|a| a.balance).sum::<i64>())
        })
        .expect("sum");
    assert_eq!(end, total, "the transfers kept the total");
}

/// Two snapshots overlap while a writer keeps rewriting the same records: each keeps
/// seeing its own state after the older one closed (the versions only the older needed
/// are pruned, those the newer needs stay).
#[test]
fn overlapping_snapshots_each_keep_their_state_through_pruning() {
    use std::sync::mpsc;
    let db = Database::open(Config::default()).expect("db");
    db.scope(|| -> mnesia::Result<()> {
        Item::create_table(TableOptions::new())?;
        Item::batch_write((0..10).map(|id| Item { id, bucket: 0, val: 0 })).map(drop)
    })
    .expect("fill");
    let rewrite = |val: u32| {
        db.scope(|| -> mnesia::Result<()> {
            for round in 0..30 {
                for id in 0..10 {
                    Item::write(Item { id, bucket: (round % 3) as u8, val })?;
                }
            }
            Ok(())
        })
        .expect("rewrite")
    };
    let vals = |items: Vec<Item>| items.iter().map(|i| i.val).collect::<Vec<_>>();
    // A reader: lists once (its snapshot opens), reports, and lists again on each signal.
    let reader = |go: mpsc::Receiver<bool>, seen: mpsc::Sender<Vec<u32>>| {
        let db = db.clone();
        move || {
            db.scope(|| {
                mnesia::transaction(|| {
                    seen.send(vals(Item::list()?)).expect("send");
                    while go.recv().unwrap_or(false) {
                        let mut by_bucket = 0;
                        for b in 0..3 {
                            by_bucket += Item::select(Item::BUCKET.eq(b))?.len();
                        }
                        assert_eq!(by_bucket, 10);
                        seen.send(vals(Item::list()?)).expect("send");
                    }
                    Ok::<_, Error>(())
                })
            })
        }
    };
    std::thread::scope(|s| {
        let (go_a, rx_a) = mpsc::channel();
        let (tx_a, seen_a) = mpsc::channel();
        let a = s.spawn(reader(rx_a, tx_a));
        assert_eq!(seen_a.recv().expect("a"), vec![0; 10]);
        rewrite(1);
        let (go_b, rx_b) = mpsc::channel();
        let (tx_b, seen_b) = mpsc::channel();
        let b = s.spawn(reader(rx_b, tx_b));
        assert_eq!(seen_b.recv().expect("b"), vec![1; 10]);
        rewrite(2);
        go_a.send(true).expect("go");
        assert_eq!(seen_a.recv().expect("a"), vec![0; 10], "the older snapshot");
        go_a.send(false).expect("stop");
        a.join().expect("a").expect("a's transaction");
        // The older one closed: what only it needed may go; the newer one's state stays.
        rewrite(3);
        for _ in 0..2 {
            go_b.send(true).expect("go");
            assert_eq!(seen_b.recv().expect("b"), vec![1; 10], "the newer snapshot");
            rewrite(4);
        }
        go_b.send(false).expect("stop");
        b.join().expect("b").expect("b's transaction");
    });
    assert_eq!(db.scope(|| Item::list().map(vals)).expect("list"), vec![4; 10]);
}

/// A table dropped and created again after a transaction's snapshot opened holds records
/// numbered after the snapshot: the transaction runs again, at a new snapshot, and sees it.
#[test]
fn a_table_replaced_after_the_snapshot_makes_the_reader_run_again() {
    let db = Database::open(Config::default()).expect("db");
    db.scope(|| -> mnesia::Result<()> {
        Item::create_table(TableOptions::new())?;
        Line::create_table(TableOptions::new())?;
        Item::write(Item { id: 1, bucket: 0, val: 0 })?;
        Line::write(Line { id: 1, bucket: 0, val: 0 }).map(drop)
    })
    .expect("setup");
    let runs = AtomicU32::new(0);
    let seen = db
        .scope(|| {
            mnesia::transaction(|| {
                let first = runs.fetch_add(1, Ordering::SeqCst) == 0;
                let items = Item::list()?.len();
                if first {
                    let db = db.clone();
                    std::thread::spawn(move || {
                        db.scope(|| -> mnesia::Result<()> {
                            Line::drop_table()?;
                            Line::create_table(TableOptions::new())?;
                            Line::batch_write((0..5).map(|id| Line { id, bucket: 1, val: 9 })).map(drop)
                        })
                    })
                    .join()
                    .expect("replace")
                    .expect("replaced");
                }
                Ok::<_, Error>((items, Line::list()?.len(), Line::select(Line::BUCKET.eq(1))?.len()))
            })
        })
        .expect("reader");
    assert_eq!(seen, (1, 5, 5));
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}
