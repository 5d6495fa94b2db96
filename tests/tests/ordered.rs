//! Ordered commits: three copies of a database share one order of commit records (as a
//! replicated log would give them), each applies every record in that order and decides it
//! alone, and transactions run on all three at once. The copies end identical, with the
//! same events, and the guarantees of one database hold across them: transfers keep their
//! total, no update is lost, no write skew, a unique value and an auto-increment id are
//! handed out once.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mnesia::prelude::*;
use mnesia::{CommitRecord, Error, Sequencer};

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Account {
    #[key]
    id: u32,
    balance: i64,
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Member {
    #[key]
    #[auto_increment]
    id: u64,
    #[index(unique)]
    email: String,
    #[index]
    copy: u32,
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(type = "bag")]
struct Tag {
    #[key]
    item: u32,
    text: String,
}

/// A table no copy has before ordering starts.
#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Late {
    #[key]
    id: u32,
}

/// A struct alike `Late` (same table name and shape), declared too: a copy that makes the
/// table `Late` created takes `Late`, named in the creation, not this one.
mod alike {
    use mnesia::prelude::*;

    #[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct Late {
        #[key]
        pub id: u32,
    }
}

/// Another one, with an index and an auto-increment key.
#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Later {
    #[key]
    #[auto_increment]
    id: u64,
    #[index]
    n: u32,
    text: String,
}

/// The shared order: what a replicated log holds; and the copies applying it (to answer
/// the reads of a copy without a table's records).
#[derive(Default)]
struct Log {
    entries: Mutex<Vec<CommitRecord>>,
    grown: Condvar,
    copies: Mutex<Vec<Database>>,
}

/// The places of a copy's own records, and their verdicts once decided.
type Mine = (HashSet<u64>, HashMap<u64, mnesia::Result<()>>);

/// Verdicts of one copy's own records, by place.
#[derive(Default)]
struct Verdicts {
    mine: Mutex<Mine>,
    decided: Condvar,
}

/// A copy's sequencer: appends to the log, then waits for the copy's applier to decide.
struct Propose {
    log: Arc<Log>,
    verdicts: Arc<Verdicts>,
}

impl Sequencer for Propose {
    fn order(&self, record: CommitRecord) -> mnesia::Result<()> {
        let index = {
            let mut entries = self.log.entries.lock().expect("log");
            entries.push(record);
            let index = entries.len() as u64;
            // Registered before any applier can see the entry.
            self.verdicts.mine.lock().expect("verdicts").0.insert(index);
            index
        };
        self.log.grown.notify_all();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut mine = self.verdicts.mine.lock().expect("verdicts");
        loop {
            if let Some(verdict) = mine.1.remove(&index) {
                return verdict;
            }
            let left = deadline.checked_duration_since(Instant::now()).expect("no verdict within 60 s");
            mine = self.verdicts.decided.wait_timeout(mine, left).expect("verdicts").0;
        }
    }

    fn read_elsewhere(&self, table: &str, key: &[u8]) -> mnesia::Result<Vec<Vec<u8>>> {
        let copies = self.log.copies.lock().expect("copies").clone();
        copies
            .iter()
            .find_map(|db| db.read_encoded(table, key).ok())
            .ok_or_else(|| Error::NotHere { table: table.to_owned(), nodes: Vec::new() })
    }
}

/// One copy: its database and the thread applying the log to it.
struct Copy {
    db: Database,
    stop: Arc<AtomicBool>,
    applier: Option<JoinHandle<()>>,
}

impl Copy {
    fn start(db: Database, log: &Arc<Log>) -> Copy {
        let verdicts = Arc::new(Verdicts::default());
        log.copies.lock().expect("copies").push(db.clone());
        db.order_commits_with(Propose { log: Arc::clone(log), verdicts: Arc::clone(&verdicts) });
        let stop = Arc::new(AtomicBool::new(false));
        let applier = {
            let (db, log, stop) = (db.clone(), Arc::clone(log), Arc::clone(&stop));
            std::thread::spawn(move || apply_all(&db, &log, &verdicts, &stop))
        };
        Copy { db, stop, applier: Some(applier) }
    }
}

impl Drop for Copy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(applier) = self.applier.take() {
            let _ = applier.join();
        }
        self.db.stop_ordering();
    }
}

/// Applies the log to `db` in order until stopped, handing the verdicts of its own records
/// to the waiting sequencer.
fn apply_all(db: &Database, log: &Log, verdicts: &Verdicts, stop: &AtomicBool) {
    loop {
        let next = db.applied_index() + 1;
        let record = {
            let mut entries = log.entries.lock().expect("log");
            loop {
                if let Some(r) = entries.get(next as usize - 1) {
                    break r.clone();
                }
                if stop.load(Ordering::Acquire) {
                    return;
                }
                entries = log.grown.wait_timeout(entries, Duration::from_millis(20)).expect("log").0;
            }
        };
        let verdict = db.apply_ordered(next, &record);
        if let Err(e) = &verdict {
            assert!(
                matches!(
                    e,
                    Error::Conflict
                        | Error::UniqueViolation { .. }
                        | Error::AlreadyExists { .. }
                        | Error::IndexExists { .. }
                        | Error::NoSuchTable { .. }
                        | Error::Invalid(_)
                ),
                "record {next}: {e}"
            );
            // A verdict, the same on every copy: the place is taken.
            assert_eq!(db.applied_index(), next, "record {next}: {e} is this copy's own failure");
        }
        let mut mine = verdicts.mine.lock().expect("verdicts");
        if mine.0.remove(&next) {
            mine.1.insert(next, verdict);
            verdicts.decided.notify_all();
        }
    }
}

/// Three databases with the tables, ordered by one log; the first holds them on disc when
/// `disc_dir` is given.
fn group(disc_dir: Option<&std::path::Path>) -> (Arc<Log>, Vec<Copy>) {
    let log = Arc::new(Log::default());
    let copies = (0..3)
        .map(|i| {
            let db = match disc_dir {
                Some(dir) if i == 0 => {
                    mnesia::Schema::create(dir).expect("schema");
                    Database::open(Config::default().dir(dir)).expect("open")
                }
                _ => Database::open(Config::default().node_name(format!("copy{i}@localhost"))).expect("open"),
            };
            let disc = disc_dir.is_some() && i == 0;
            db.scope(|| -> mnesia::Result<()> {
                let node = db.node();
                let on = |t: TableOptions<Account>| if disc { t.disc_copies([node.clone()]) } else { t };
                Account::create_table(on(TableOptions::new()))?;
                let on = |t: TableOptions<Member>| if disc { t.disc_copies([node.clone()]) } else { t };
                Member::create_table(on(TableOptions::new()))?;
                let on = |t: TableOptions<Tag>| if disc { t.disc_copies([node.clone()]) } else { t };
                Tag::create_table(on(TableOptions::new()))?;
                Ok(())
            })
            .expect("tables");
            Copy::start(db, &log)
        })
        .collect();
    (log, copies)
}

/// Waits until every copy has applied the whole log.
fn settle(log: &Log, copies: &[Copy]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let len = log.entries.lock().expect("log").len() as u64;
    for c in copies {
        while c.db.applied_index() < len {
            assert!(Instant::now() < deadline, "a copy did not catch up within 60 s");
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

fn exports(db: &Database) -> Vec<String> {
    db.scope(|| -> mnesia::Result<Vec<String>> {
        let mut out = Vec::new();
        for f in [
            &(|b: &mut Vec<u8>| Account::export_to(b, mnesia::Format::JsonLines))
                as &dyn Fn(&mut Vec<u8>) -> mnesia::Result<usize>,
            &|b| Member::export_to(b, mnesia::Format::JsonLines),
            &|b| Tag::export_to(b, mnesia::Format::JsonLines),
        ] {
            let mut buf = Vec::new();
            f(&mut buf)?;
            // (Sets list their records in an order of their own on each database.)
            let mut lines: Vec<String> =
                String::from_utf8(buf).expect("utf-8").lines().map(str::to_owned).collect();
            lines.sort();
            out.push(lines.join("\n"));
        }
        Ok(out)
    })
    .expect("exports")
}

/// Runs `work(copy, worker)` on `per_copy` threads of each copy at once.
fn on_all(copies: &[Copy], per_copy: u32, work: impl Fn(u32, u32) + Send + Sync + Clone + 'static) {
    let threads: Vec<_> = copies
        .iter()
        .enumerate()
        .flat_map(|(c, copy)| {
            let work = work.clone();
            (0..per_copy).map(move |w| {
                let (db, work) = (copy.db.clone(), work.clone());
                std::thread::spawn(move || db.scope(|| work(c as u32, w)))
            })
        })
        .collect();
    for t in threads {
        t.join().expect("worker");
    }
}

fn identical(log: &Log, copies: &[Copy]) -> Vec<String> {
    settle(log, copies);
    let first = exports(&copies[0].db);
    for c in &copies[1..] {
        assert_eq!(exports(&c.db), first, "copies differ");
    }
    first
}

fn transfers(disc: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, copies) = group(disc.then_some(dir.path()));
    let subs: Vec<_> = copies.iter().map(|c| c.db.scope(|| Account::subscribe().expect("sub"))).collect();
    copies[0]
        .db
        .scope(|| Account::batch_write((0..8).map(|id| Account { id, balance: 100 })))
        .expect("accounts");
    settle(&log, &copies);
    on_all(&copies, 2, |c, w| {
        for n in 0..120u32 {
            let from = (c * 7 + w * 3 + n) % 8;
            let to = (from + 1 + n % 7) % 8;
            mnesia::transaction(|| {
                let a = Account::read(&from)?.expect("account");
                let b = Account::read(&to)?.expect("account");
                let amount = i64::from(n % 30);
                if a.balance >= amount {
                    Account::write(Account { balance: a.balance - amount, ..a })?;
                    Account::write(Account { balance: b.balance + amount, ..b })?;
                }
                Ok::<_, Error>(())
            })
            .expect("transfer");
        }
    });
    identical(&log, &copies);
    for c in &copies {
        let total: i64 = c.db.scope(Account::list).expect("all").iter().map(|a| a.balance).sum();
        assert_eq!(total, 800);
    }
    // The same events on every copy, in the same order.
    let heard: Vec<Vec<String>> = subs
        .iter()
        .map(|s| std::iter::from_fn(|| s.try_recv()).map(|e| format!("{e:?}")).collect())
        .collect();
    assert!(!heard[0].is_empty());
    assert!(heard.iter().all(|h| *h == heard[0]), "events differ between copies");
}

#[test]
fn transfers_on_three_copies_keep_the_total() {
    transfers(false);
}

#[test]
fn transfers_keep_the_total_with_a_copy_on_disc() {
    transfers(true);
}

#[test]
fn no_update_is_lost_across_copies() {
    let (log, copies) = group(None);
    copies[1].db.scope(|| Account::write(Account { id: 1, balance: 0 })).expect("account");
    // (A copy reads what it has applied: the others may not have the account yet.)
    settle(&log, &copies);
    on_all(&copies, 2, |_, _| {
        for _ in 0..80 {
            Account::update(&1, |a| a.balance += 1).expect("update");
        }
    });
    identical(&log, &copies);
    for c in &copies {
        assert_eq!(c.db.scope(|| Account::read(&1)).expect("read").map(|a| a.balance), Some(480));
    }
}

#[test]
fn no_write_skew_across_copies() {
    // Two on call (balance 1); each of two copies takes one off if the other is still on.
    let (log, copies) = group(None);
    for round in 0..40 {
        copies[0]
            .db
            .scope(|| Account::batch_write([Account { id: 0, balance: 1 }, Account { id: 1, balance: 1 }]))
            .expect("on call");
        settle(&log, &copies);
        let go = Arc::new(std::sync::Barrier::new(2));
        let threads: Vec<_> = (0..2u32)
            .map(|me| {
                let (db, go) = (copies[me as usize].db.clone(), Arc::clone(&go));
                std::thread::spawn(move || {
                    db.scope(|| {
                        go.wait();
                        mnesia::transaction(|| {
                            let other = Account::read(&(1 - me))?.expect("doctor");
                            if other.balance == 1 {
                                Account::write(Account { id: me, balance: 0 })?;
                            }
                            Ok::<_, Error>(())
                        })
                    })
                })
            })
            .collect();
        for t in threads {
            t.join().expect("doctor").expect("transaction");
        }
        identical(&log, &copies);
        let on_call: i64 = copies[2].db.scope(Account::list).expect("all").iter().map(|a| a.balance).sum();
        assert!(on_call >= 1, "round {round}: nobody on call");
    }
}

#[test]
fn unique_values_and_auto_increment_ids_are_handed_out_once() {
    let (log, copies) = group(None);
    let won = Arc::new(Mutex::new(Vec::new()));
    let lost = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (w2, l2) = (Arc::clone(&won), Arc::clone(&lost));
    on_all(&copies, 2, move |c, w| {
        for n in 0..60u32 {
            // Every copy races for the same 40 addresses.
            let email = format!("user{}@x", (n * 7 + w) % 40);
            match Member::insert(Member { id: 0, email: email.clone(), copy: c }) {
                Ok(m) => w2.lock().expect("won").push((m.id, email)),
                Err(Error::UniqueViolation { .. }) => {
                    l2.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => panic!("insert: {e}"),
            }
        }
    });
    identical(&log, &copies);
    let won = won.lock().expect("won").clone();
    let members = copies[0].db.scope(Member::list).expect("all");
    assert_eq!(members.len(), won.len(), "every insert acknowledged is there, once");
    assert_eq!(won.len() + lost.load(Ordering::Relaxed), 3 * 2 * 60);
    let ids: HashSet<u64> = members.iter().map(|m| m.id).collect();
    let emails: HashSet<&str> = members.iter().map(|m| m.email.as_str()).collect();
    assert_eq!((ids.len(), emails.len()), (members.len(), members.len()));
    for (id, email) in &won {
        assert!(members.iter().any(|m| m.id == *id && m.email == *email), "{id} {email} lost");
    }
    assert_eq!(emails.len(), 40, "every address taken once");
}

#[test]
fn next_id_never_hands_out_an_id_twice_across_copies_nor_one_an_insert_took() {
    let (log, copies) = group(None);
    let taken = Arc::new(Mutex::new(Vec::new()));
    let t2 = Arc::clone(&taken);
    on_all(&copies, 2, move |c, w| {
        for n in 0..40u32 {
            if (n + w) % 2 == 0 {
                let id = Member::next_id().expect("next_id");
                t2.lock().expect("taken").push(id);
            } else {
                let m = Member::insert(Member { id: 0, email: format!("{c}-{w}-{n}@x"), copy: c })
                    .expect("insert");
                t2.lock().expect("taken").push(m.id);
            }
        }
    });
    identical(&log, &copies);
    let taken = taken.lock().expect("taken").clone();
    let distinct: HashSet<u64> = taken.iter().copied().collect();
    assert_eq!(distinct.len(), taken.len(), "an id handed out twice");
    // Every copy's counter is past every id handed out anywhere.
    let highest = taken.iter().copied().max().expect("ids");
    for c in &copies {
        assert!(c.db.scope(Member::current_id).expect("current_id") >= highest);
    }
    // Inside a transaction it is refused (the claim would wait for this copy's own locks).
    let inside = copies[0].db.scope(|| mnesia::transaction(Member::next_id));
    assert!(matches!(inside, Err(Error::Invalid(_))), "{inside:?}");
}

#[test]
fn an_async_transaction_orders_its_own_commit_once_and_a_dirty_one_inside_at_once() {
    let (log, copies) = group(None);
    let db = copies[0].db.clone();
    // The other copies bump the same counter meanwhile: the dirty bumps inside the async
    // transactions race with theirs.
    let stop = Arc::new(AtomicBool::new(false));
    let bumpers: Vec<_> = copies[1..]
        .iter()
        .map(|c| {
            let (db, stop) = (c.db.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut bumps = 0i64;
                while !stop.load(Ordering::Relaxed) && bumps < 2_000 {
                    db.scope(|| mnesia::dirty_update_counter("hits", 1)).expect("bump");
                    bumps += 1;
                }
                bumps
            })
        })
        .collect();
    for n in 0..30u32 {
        let done = db.scope(|| {
            mnesia::transaction_async(move || {
                mnesia::dirty_update_counter("hits", 1)?;
                let a = Account::read(&n)?.unwrap_or(Account { id: n, balance: 0 });
                Account::write(Account { balance: a.balance + 1, ..a })?;
                Ok::<_, Error>(n)
            })
        });
        assert_eq!(mnesia::__private::block_on(done).expect("async transaction"), n);
    }
    stop.store(true, Ordering::Relaxed);
    let others: i64 = bumpers.into_iter().map(|b| b.join().expect("bumper")).sum();
    identical(&log, &copies);
    for c in &copies {
        // Each transaction's write committed once (a rerun would have added 1 again); the
        // dirty bumps inside it count at least once each (a rerun bumps again).
        let accounts = c.db.scope(Account::list).expect("list");
        assert_eq!(accounts.len(), 30);
        assert!(accounts.iter().all(|a| a.balance == 1), "{accounts:?}");
        let hits = c.db.scope(|| mnesia::current_value("hits")).expect("value");
        assert!(hits >= others + 30, "{hits} < {others} + 30");
    }
}

/// A database allowing 5 runs per transaction, with the accounts, ordered by `sequencer`.
fn five_runs<S: Sequencer>(sequencer: impl FnOnce(Database) -> S) -> Database {
    let db = Database::open(Config::default().max_retries(5)).expect("db");
    db.create_table::<Account>(TableOptions::new()).expect("table");
    db.order_commits_with(sequencer(db.clone()));
    db
}

/// The transactions `db` counted: commits, aborts, retries, and those still running.
fn counted(db: &Database) -> (u64, u64, u64, u64) {
    let info = db.system_info();
    (info.commits, info.aborts, info.retries, info.running_transactions)
}

/// An order in which every record loses to another copy's.
struct AlwaysLoses;

impl Sequencer for AlwaysLoses {
    fn order(&self, _record: CommitRecord) -> mnesia::Result<()> {
        Err(Error::Conflict)
    }
}

/// `Config::max_retries` bounds the runs of an async transaction in all (those that lose in
/// the order and those that lose here share one budget), and the statistics count it as one
/// transaction that ran again and gave up, as a blocking one.
#[test]
fn an_async_transaction_runs_at_most_max_retries_times_in_all() {
    for blocking in [false, true] {
        let db = five_runs(|_| AlwaysLoses);
        let runs = std::sync::atomic::AtomicU32::new(0);
        let body = || {
            runs.fetch_add(1, Ordering::Relaxed);
            Account::write(Account { id: 1, balance: 1 })?;
            Ok::<_, Error>(())
        };
        let result = if blocking {
            db.scope(|| mnesia::transaction(body))
        } else {
            mnesia::__private::block_on(db.scope(|| mnesia::transaction_async(body)))
        };
        assert!(matches!(result, Err(Error::TooManyRetries { attempts: 5 })), "{result:?}");
        assert_eq!(runs.load(Ordering::Relaxed), 5, "blocking: {blocking}");
        assert_eq!(counted(&db), (0, 1, 4, 0), "blocking: {blocking}");
        db.stop_ordering();
    }
}

/// Applies the records ordered by blocking commits at once, and has every async one lose.
struct AsyncLoses {
    db: Database,
    last: Mutex<u64>,
}

impl Sequencer for AsyncLoses {
    fn order(&self, record: CommitRecord) -> mnesia::Result<()> {
        let mut last = self.last.lock().expect("last");
        *last += 1;
        self.db.apply_ordered(*last, &record)
    }

    fn order_async(&self, _record: CommitRecord) -> mnesia::OrderFuture {
        Box::pin(std::future::ready(Err(Error::Conflict)))
    }
}

/// The runs that lose here (a read overwritten before the commit) and those that lose in
/// the order come out of one budget: 5 runs in all, not 5 per round.
#[test]
fn an_async_transaction_losing_here_and_in_the_order_runs_max_retries_times() {
    let db = five_runs(|db| AsyncLoses { db, last: Mutex::new(0) });
    let runs = std::sync::atomic::AtomicU32::new(0);
    let body = || {
        let run = runs.fetch_add(1, Ordering::Relaxed) + 1;
        let a = Account::read(&1)?.unwrap_or(Account { id: 1, balance: 0 });
        if run % 2 == 1 {
            // Another thread overwrites what this run read: it loses here.
            let other = std::thread::scope(|s| {
                s.spawn(|| db.scope(|| Account::write(Account { id: 1, balance: -1 }))).join()
            });
            other.expect("thread").expect("write");
        }
        Account::write(Account { balance: a.balance + 1, ..a })?;
        Ok::<_, Error>(())
    };
    let result = mnesia::__private::block_on(db.scope(|| mnesia::transaction_async(body)));
    assert!(matches!(result, Err(Error::TooManyRetries { attempts: 5 })), "{result:?}");
    assert_eq!(runs.load(Ordering::Relaxed), 5);
    db.stop_ordering();
}

/// An async transaction whose later round panics, or fails, is one transaction that
/// ended without committing: counted once.
#[test]
fn an_async_transaction_ending_in_a_later_round_is_counted_once() {
    for panics in [true, false] {
        let db = five_runs(|db| AsyncLoses { db, last: Mutex::new(0) });
        let runs = std::sync::atomic::AtomicU32::new(0);
        let body = || {
            if runs.fetch_add(1, Ordering::Relaxed) == 1 {
                // The second run (the second round: the first lost in the order).
                if panics {
                    panic!("the closure panics");
                }
                return Err(Error::abort("given up"));
            }
            Account::write(Account { id: 1, balance: 1 })?;
            Ok::<_, Error>(())
        };
        let ended = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            mnesia::__private::block_on(db.scope(|| mnesia::transaction_async(body)))
        }));
        assert_eq!(ended.is_err(), panics);
        assert_eq!(runs.load(Ordering::Relaxed), 2);
        assert_eq!(counted(&db), (0, 1, 1, 0), "panics: {panics}");
        db.stop_ordering();
    }
}

#[test]
fn dirty_operations_batches_and_bags_reach_every_copy() {
    let (log, copies) = group(None);
    on_all(&copies, 1, |c, _| {
        for n in 0..50u32 {
            let item = n % 10;
            match n % 5 {
                0 => Tag::batch_write((0..3).map(|i| Tag { item, text: format!("{c}.{i}") })).map(drop),
                1 => Tag::delete_object(&Tag { item, text: format!("{c}.1") }).map(drop),
                2 => Account::dirty_write(Account { id: item, balance: i64::from(n) }).map(drop),
                3 => Account::dirty_delete(&(item + 1)).map(drop),
                _ => mnesia::dirty_update_counter("hits", 1).map(drop),
            }
            .expect("step");
        }
    });
    identical(&log, &copies);
    let hits: Vec<_> =
        copies.iter().map(|c| c.db.scope(|| mnesia::current_value("hits")).expect("hits")).collect();
    assert_eq!(hits, vec![30; 3], "named counters advance through the order");
}

#[test]
fn what_is_not_ordered_yet_is_refused() {
    let (log, copies) = group(None);
    let db = &copies[0].db;
    // Moving a table between storage types is this copy's own business: not ordered.
    let refused = db.change_table_copy_type::<Account>(mnesia::StorageType::RamCopies);
    assert!(matches!(refused, Err(Error::Invalid(ref m)) if m.contains("ordered")), "{refused:?}");
    // An import into an empty table is not a bulk load of this copy alone: it is ordered.
    let lines = "{\"id\":1,\"balance\":7}\n{\"id\":2,\"balance\":8}\n";
    let imported = db.scope(|| {
        Account::import_from(lines.as_bytes(), mnesia::Format::JsonLines, &mnesia::ImportOptions::default())
    });
    assert_eq!(imported.expect("import"), 2);
    identical(&log, &copies);
    assert_eq!(copies[2].db.scope(Account::count).expect("count"), 2);
    db.stop_ordering();
    db.create_table::<Late>(TableOptions::new()).expect("created once no longer ordered");
}

/// The indexes of `db`'s accounts table: (field, unique).
fn account_indexes(db: &Database) -> Vec<(String, bool)> {
    let info = db.table_info::<Account>().expect("info");
    info.indexes.iter().map(|i| (i.field.clone(), i.unique)).collect()
}

#[test]
fn index_changes_reach_every_copy_at_their_place_and_a_unique_one_is_refused_alike() {
    let dir = tempfile::tempdir().expect("dir");
    let (log, copies) = group(Some(dir.path()));
    copies[0]
        .db
        .scope(|| -> mnesia::Result<()> {
            for id in 0..10 {
                Account::write(Account { id, balance: i64::from(id % 5) })?;
            }
            Ok(())
        })
        .expect("writes");
    // Two accounts share each balance: a unique index is refused, on every copy.
    let refused = copies[1].db.add_index(Account::BALANCE.index_spec(true));
    assert!(matches!(refused, Err(Error::UniqueViolation { .. })), "{refused:?}");
    settle(&log, &copies);
    assert!(copies.iter().all(|c| account_indexes(&c.db).is_empty()), "no copy kept the unique index");
    // Added on one copy, there on every copy, and used there.
    copies[1].db.add_index(Account::BALANCE.index_spec(false)).expect("add_index");
    settle(&log, &copies);
    for c in &copies {
        assert_eq!(account_indexes(&c.db), [("balance".to_owned(), false)]);
        let found = c.db.scope(|| Account::get_by(Account::BALANCE, 3)).expect("get_by");
        assert_eq!(found.map(|a| a.id), Some(3));
    }
    let again = copies[2].db.add_index(Account::BALANCE.index_spec(false));
    assert!(matches!(again, Err(Error::IndexExists { .. })), "{again:?}");
    copies[2].db.remove_index::<Account>("balance").expect("remove_index");
    settle(&log, &copies);
    assert!(copies.iter().all(|c| account_indexes(&c.db).is_empty()), "removed everywhere");
    identical(&log, &copies);
}

#[test]
fn a_drop_reaches_every_copy_and_what_writes_the_table_after_it_is_refused_alike() {
    let (log, copies) = group(None);
    let events: Vec<_> = copies.iter().map(|c| c.db.subscribe_system()).collect();
    let db0 = copies[0].db.clone();
    let dropping = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(5));
        db0.drop_table::<Account>().expect("drop_table");
    });
    // Writers on every copy until the table is gone (a bounded loop): each write either
    // commits before the drop or is refused, never half.
    let refusals = Arc::new(Mutex::new(0u32));
    let counted = Arc::clone(&refusals);
    on_all(&copies, 2, move |c, w| {
        for n in 0..1_000_000u32 {
            match Account::write(Account { id: c * 100 + w, balance: i64::from(n) }) {
                Ok(_) => {}
                Err(Error::NoSuchTable { .. }) => {
                    *counted.lock().expect("count") += 1;
                    return;
                }
                Err(e) => panic!("write: {e:?}"),
            }
        }
    });
    dropping.join().expect("dropping thread");
    settle(&log, &copies);
    for c in &copies {
        assert!(!c.db.exists::<Account>(), "a copy kept the dropped table");
        assert_eq!(c.db.applied_index(), copies[0].db.applied_index());
    }
    assert_eq!(*refusals.lock().expect("count"), 6, "every writer went on until the drop");
    for e in &events {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut dropped = false;
        while !dropped && Instant::now() < deadline {
            if let Some(event) = e.recv_timeout(Duration::from_millis(100)) {
                dropped =
                    matches!(event, mnesia::SystemEvent::TableDropped { ref table } if table == "account");
            }
        }
        assert!(dropped, "a copy did not tell of the drop");
    }
    // The other tables go on.
    copies[2].db.scope(|| Tag::write(Tag { item: 1, text: "after".into() })).expect("write");
    settle(&log, &copies);
    assert!(copies.iter().all(|c| c.db.scope(Tag::count).expect("count") == 1));
}

#[test]
fn a_clear_reaches_every_copy_at_its_place_and_conflicts_with_what_read_the_table() {
    let dir = tempfile::tempdir().expect("dir");
    let (log, copies) = group(Some(dir.path()));
    let events: Vec<_> = copies.iter().map(|c| c.db.scope(Account::subscribe).expect("subscribe")).collect();
    copies[1]
        .db
        .scope(|| -> mnesia::Result<()> {
            for id in 0..20 {
                Account::write(Account { id, balance: 1 })?;
            }
            Ok(())
        })
        .expect("writes");
    settle(&log, &copies);
    // Transfers on every copy while copy 0 clears the table: each transfer sees the table
    // whole or empty (a transfer that read before the clear and commits after runs again).
    let db0 = copies[0].db.clone();
    let clearing = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(5));
        db0.scope(Account::clear).expect("clear");
    });
    on_all(&copies, 2, |c, w| {
        for n in 0..20u32 {
            mnesia::transaction(|| {
                let (from, to) = ((c * 7 + w * 3 + n) % 20, (c * 7 + w * 3 + n + 1) % 20);
                match (Account::read(&from)?, Account::read(&to)?) {
                    (Some(a), Some(b)) => {
                        Account::write(Account { balance: a.balance - 1, ..a })?;
                        Account::write(Account { balance: b.balance + 1, ..b })?;
                    }
                    // Both gone, or both there: never one of the two.
                    (None, None) => {}
                    (a, b) => panic!("a transfer saw half a clear: {a:?} {b:?}"),
                }
                Ok::<_, Error>(())
            })
            .expect("transfer");
        }
    });
    clearing.join().expect("clearing thread");
    identical(&log, &copies);
    // In any serial order the table ends empty: a transfer after the clear reads nothing
    // and writes nothing, and one that read before it and committed after would bring two
    // accounts back (it must conflict and run again). Every copy heard the clear.
    let left = copies[2].db.scope(Account::list).expect("list");
    assert!(left.is_empty(), "accounts written back after the clear: {left:?}");
    for e in &events {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut cleared = false;
        while !cleared && Instant::now() < deadline {
            if let Some(event) = e.recv_timeout(Duration::from_millis(100)) {
                cleared = matches!(event, mnesia::Event::Cleared);
            }
        }
        assert!(cleared, "a copy did not see the clear");
    }
}

#[test]
fn a_table_created_on_one_copy_is_created_on_every_copy_with_its_program_type() {
    let (log, copies) = group(None);
    copies[0].db.create_table::<Late>(TableOptions::new()).expect("create_table");
    let indexed = TableOptions::new().unique_index(Later::TEXT);
    copies[1].db.create_table::<Later>(indexed).expect("create_table");
    settle(&log, &copies);
    for c in &copies {
        assert!(c.db.exists::<Late>() && c.db.exists::<Later>(), "a copy lacks a created table");
        let indexes = c.db.table_info::<Later>().expect("info").indexes;
        let fields: Vec<(&str, bool)> = indexes.iter().map(|i| (i.field.as_str(), i.unique)).collect();
        assert_eq!(fields, [("n", false), ("text", true)]);
    }
    // Written on one copy, read on the others (each made it with `Late`, not `alike::Late`).
    copies[2].db.scope(|| Late::write(Late { id: 7 })).expect("write");
    let other = copies[1].db.scope(|| alike::Late::read(&7));
    assert!(matches!(other, Err(Error::TypeMismatch { .. })), "{other:?}");
    copies[0].db.scope(|| Later::insert(Later { id: 0, n: 1, text: "a".into() })).expect("insert");
    let dup = copies[2].db.scope(|| Later::insert(Later { id: 0, n: 2, text: "a".into() }));
    assert!(matches!(dup, Err(Error::UniqueViolation { .. })), "{dup:?}");
    settle(&log, &copies);
    for c in &copies {
        assert_eq!(c.db.scope(|| Late::read(&7)).expect("read"), Some(Late { id: 7 }));
        assert_eq!(c.db.scope(Later::count).expect("count"), 1);
    }
    // There already: refused here, without going through the order.
    let again = copies[1].db.create_table::<Late>(TableOptions::new());
    assert!(matches!(again, Err(Error::TableExists { .. })), "{again:?}");
    // Tables made while ordering are in memory or on disc, not on disc only.
    copies[1].db.drop_table::<Later>().expect("drop_table");
    let node = copies[1].db.node();
    let disc = copies[1].db.create_table::<Later>(TableOptions::new().disc_only_copies([node]));
    assert!(matches!(disc, Err(Error::Invalid(ref m)) if m.contains("disc_only_copies")), "{disc:?}");
    // Dropped, then created again (empty) from another copy, once that copy has applied
    // the drop (until then the table is there, on that copy).
    settle(&log, &copies);
    copies[2].db.create_table::<Later>(TableOptions::new()).expect("created again");
    settle(&log, &copies);
    copies[0].db.scope(|| Later::insert(Later { id: 0, n: 3, text: "b".into() })).expect("insert");
    settle(&log, &copies);
    for c in &copies {
        let all = c.db.scope(Later::list).expect("list");
        assert_eq!(all.iter().map(|l| l.text.as_str()).collect::<Vec<_>>(), ["b"]);
        assert!(c.db.table_info::<Later>().expect("info").indexes.iter().all(|i| i.field == "n"));
    }
    identical(&log, &copies);
}

/// `Account` after a transform: the same table with a field and an index more.
#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(name = "account")]
struct AccountV2 {
    #[key]
    id: u32,
    balance: i64,
    #[index]
    rich: bool,
}

#[test]
fn a_transform_reaches_every_copy_at_its_place_and_what_wrote_the_old_table_runs_again() {
    let (log, copies) = group(None);
    let events: Vec<_> = copies.iter().map(|c| c.db.scope(Account::subscribe).expect("subscribe")).collect();
    copies[0]
        .db
        .scope(|| Account::batch_write((0..40).map(|id| Account { id, balance: 100 })))
        .expect("accounts");
    settle(&log, &copies);
    // Transfers on copies 1 and 2 while copy 0 transforms: each commits before the
    // transform (then converted with it) or, made for the old table, runs again and finds
    // the new one (its struct no longer the table's). They stop there, or once the
    // transform has returned (if it failed, the test does).
    let moved = Arc::new(Mutex::new(0i64));
    let over = Arc::new(AtomicBool::new(false));
    let db0 = copies[0].db.clone();
    let done = Arc::clone(&over);
    let transforming = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(5));
        let converted =
            db0.transform(|a: Account| Ok(AccountV2 { id: a.id, balance: a.balance, rich: a.balance > 100 }));
        done.store(true, Ordering::SeqCst);
        converted
    });
    let (counted, done) = (Arc::clone(&moved), Arc::clone(&over));
    on_all(&copies[1..], 2, move |c, w| {
        for n in 0..1_000_000u32 {
            let (from, to) = ((c * 7 + w * 3 + n) % 40, (c * 11 + w + n + 1) % 40);
            let transfer = mnesia::transaction(|| {
                let a = Account::read(&from)?.expect("account");
                let b = Account::read(&to)?.expect("account");
                Account::write(Account { balance: a.balance - 1, ..a })?;
                Account::write(Account { balance: b.balance + 1, ..b })?;
                Ok::<_, Error>(())
            });
            match transfer {
                Ok(()) => *counted.lock().expect("count") += 1,
                Err(Error::TypeMismatch { .. }) => return,
                Err(e) => panic!("transfer: {e:?}"),
            }
            if done.load(Ordering::SeqCst) {
                return;
            }
        }
    });
    let converted = transforming.join().expect("transforming thread").expect("transform");
    assert_eq!(converted, 40);
    settle(&log, &copies);
    let mut all: Vec<Vec<AccountV2>> = Vec::new();
    for c in &copies {
        let info = c.db.table_info::<AccountV2>().expect("info");
        assert_eq!(info.version, 1);
        assert_eq!(info.indexes.iter().map(|i| i.field.as_str()).collect::<Vec<_>>(), ["rich"]);
        let mut accounts = c.db.scope(AccountV2::list).expect("list");
        accounts.sort_by_key(|a| a.id);
        assert_eq!(accounts.iter().map(|a| a.balance).sum::<i64>(), 4000, "the total is kept");
        // The new index is there and agrees with the records.
        let rich = c.db.scope(|| AccountV2::select(AccountV2::RICH.eq(true))).expect("by index");
        assert_eq!(rich.len(), accounts.iter().filter(|a| a.rich).count());
        all.push(accounts);
    }
    assert!(all.windows(2).all(|w| w[0] == w[1]), "copies differ");
    assert!(*moved.lock().expect("count") > 0, "transfers ran before the transform");
    for e in &events {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut dropped = false;
        while !dropped && Instant::now() < deadline {
            dropped = matches!(e.recv_timeout(Duration::from_millis(100)), Some(mnesia::Event::Dropped));
        }
        assert!(dropped, "a copy's subscribers of the old struct were not told");
    }
    // Written after it, on any copy, with the new struct.
    copies[2].db.scope(|| AccountV2::write(AccountV2 { id: 99, balance: 1, rich: false })).expect("write");
    settle(&log, &copies);
    assert!(copies.iter().all(|c| c.db.scope(|| AccountV2::read(&99)).expect("read").is_some()));
}

#[test]
fn a_counter_reset_on_one_copy_reaches_every_copy_at_its_place() {
    let (log, copies) = group(None);
    copies[0].db.scope(|| Member::insert(Member { id: 0, email: "a@x".into(), copy: 0 })).expect("insert");
    copies[1].db.scope(|| Member::reset_counter(100)).expect("reset");
    settle(&log, &copies);
    for c in &copies {
        assert_eq!(c.db.table_info::<Member>().expect("info").counter, 99);
    }
    let next = copies[2]
        .db
        .scope(|| Member::insert(Member { id: 0, email: "b@x".into(), copy: 2 }))
        .expect("insert");
    assert_eq!(next.id, 100);
    identical(&log, &copies);
}

#[test]
fn two_copies_transforming_at_once_convert_the_records_once() {
    let (log, copies) = group(None);
    copies[0]
        .db
        .scope(|| Account::batch_write((0..30).map(|id| Account { id, balance: 100 + i64::from(id) })))
        .expect("accounts");
    settle(&log, &copies);
    // Every copy's program runs the same migration at start-up: one converts, the others
    // then find the table converted (their struct no longer its struct), never an empty one.
    let threads: Vec<_> = copies
        .iter()
        .map(|c| {
            let db = c.db.clone();
            std::thread::spawn(move || {
                db.transform(|a: Account| {
                    Ok(AccountV2 { id: a.id, balance: a.balance, rich: a.balance > 110 })
                })
            })
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join().expect("thread")).collect();
    let done = results.iter().filter(|r| matches!(r, Ok(30))).count();
    assert_eq!(done, 1, "one transform converted the table: {results:?}");
    assert!(
        results.iter().all(|r| matches!(r, Ok(30) | Err(Error::TypeMismatch { .. }))),
        "the others found it converted: {results:?}"
    );
    settle(&log, &copies);
    for c in &copies {
        let info = c.db.table_info::<AccountV2>().expect("info");
        assert_eq!((info.size, info.version), (30, 1));
        let rich = c.db.scope(|| AccountV2::select(AccountV2::RICH.eq(true))).expect("select");
        assert_eq!(rich.len(), 19);
    }
}

#[test]
fn a_restore_that_recreates_a_table_on_one_copy_reaches_every_copy() {
    let dir = tempfile::tempdir().expect("dir");
    let (log, copies) = group(None);
    copies[0]
        .db
        .scope(|| Account::batch_write((0..20).map(|id| Account { id, balance: 7 })))
        .expect("accounts");
    copies[1].db.add_index(Account::BALANCE.index_spec(false)).expect("index");
    settle(&log, &copies);
    let backup = dir.path().join("accounts.bak");
    copies[0].db.backup_with(&backup, &mnesia::BackupOptions::new().tables(["account"])).expect("backup");
    copies[2].db.remove_index::<Account>("balance").expect("remove_index");
    copies[2].db.scope(|| Account::write(Account { id: 99, balance: 1 })).expect("write after the backup");
    let recreate = mnesia::RestoreOptions::new().all(mnesia::RestoreMode::Recreate);
    assert_eq!(copies[1].db.restore(&backup, &recreate).expect("restore"), 20);
    identical(&log, &copies);
    for c in &copies {
        assert_eq!(c.db.scope(Account::count).expect("count"), 20);
        assert_eq!(account_indexes(&c.db), [("balance".to_owned(), false)], "the backup's index");
    }
}

/// A table each copy keeps for itself (`local_content`), with an auto-increment key.
#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Note {
    #[key]
    #[auto_increment]
    id: u64,
    #[index]
    text: String,
}

/// Another, whose records expire.
#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Visit {
    #[key]
    id: u32,
    #[ttl]
    until: std::time::SystemTime,
}

fn notes(db: &Database) -> Vec<String> {
    let mut texts: Vec<String> = db.scope(Note::list).expect("notes").into_iter().map(|n| n.text).collect();
    texts.sort();
    texts
}

#[test]
fn a_table_each_copy_keeps_for_itself_commits_here_alone() {
    let (log, copies) = group(None);
    // Created while ordering, on two copies only; each its own.
    for c in &copies[..2] {
        c.db.create_table::<Note>(TableOptions::new().local_content()).expect("local table");
        assert!(c.db.table_info::<Note>().expect("info").local_content);
    }
    assert!(!copies[2].db.exists::<Note>(), "not created on the others");
    for (i, c) in copies[..2].iter().enumerate() {
        c.db.scope(|| -> mnesia::Result<()> {
            for n in 0..3 {
                Note::insert(Note { id: 0, text: format!("copy {i} note {n}") })?;
            }
            Note::batch_write([Note { id: 10, text: format!("copy {i} batch") }])?;
            Note::dirty_write(Note { id: 11, text: format!("copy {i} dirty") })?;
            mnesia::transaction(|| {
                let first = Note::read(&1)?.expect("note 1");
                Note::write(Note { text: format!("{} (edited)", first.text), ..first })
            })?;
            Ok(())
        })
        .expect("local writes");
    }
    assert!(log.entries.lock().expect("log").is_empty(), "nothing went through the order");
    assert_eq!(copies[0].db.applied_index(), 0);
    // Ids were handed out by each copy alone: 1, 2, 3 on both.
    let ids = |db: &Database| {
        let mut ids: Vec<u64> = db.scope(Note::list).expect("notes").iter().map(|n| n.id).collect();
        ids.sort_unstable();
        ids
    };
    assert_eq!(ids(&copies[0].db), [1, 2, 3, 10, 11]);
    assert_eq!(ids(&copies[1].db), [1, 2, 3, 10, 11]);
    assert!(notes(&copies[0].db).iter().all(|t| t.starts_with("copy 0")), "{:?}", notes(&copies[0].db));
    assert!(notes(&copies[1].db).iter().all(|t| t.starts_with("copy 1")), "{:?}", notes(&copies[1].db));
    assert_eq!(
        copies[1].db.scope(|| Note::read(&1)).expect("read").map(|n| n.text).as_deref(),
        Some("copy 1 note 0 (edited)")
    );
    // Schema changes of a copy's own table are its own too.
    copies[0].db.clear_table::<Note>().expect("clear");
    copies[0].db.scope(|| Note::remove_index(Note::TEXT)).expect("index removed");
    copies[0].db.scope(|| Note::add_index(Note::TEXT)).expect("index added");
    copies[0].db.change_table_copy_type::<Note>(mnesia::StorageType::RamCopies).expect("no move needed");
    assert!(notes(&copies[0].db).is_empty());
    copies[0].db.scope(|| Note::reset_counter(50)).expect("counter reset");
    let id = copies[0]
        .db
        .scope(|| Note::insert(Note { id: 0, text: "after the reset".into() }))
        .expect("insert")
        .id;
    assert_eq!(id, 50);
    let next = copies[0].db.scope(Note::next_id).expect("next id");
    assert_eq!(next, 51);
    assert_eq!(notes(&copies[1].db).len(), 5, "the other copy's table is untouched");
    copies[0].db.drop_table::<Note>().expect("drop");
    assert!(!copies[0].db.exists::<Note>());
    assert!(copies[1].db.exists::<Note>(), "the other copy's table stays");
    assert!(log.entries.lock().expect("log").is_empty(), "nothing went through the order");
    // The shared tables are ordered as always.
    copies[1].db.scope(|| Account::write(Account { id: 1, balance: 5 })).expect("write");
    identical(&log, &copies);
    assert_eq!(copies[0].db.applied_index(), 1);
}

#[test]
fn a_transaction_writing_a_local_table_and_an_ordered_one_is_refused_and_writes_neither() {
    let (log, copies) = group(None);
    let db = &copies[0].db;
    db.create_table::<Note>(TableOptions::new().local_content()).expect("local table");
    let both = db.scope(|| {
        mnesia::transaction(|| {
            Note::write(Note { id: 1, text: "here".into() })?;
            Account::write(Account { id: 1, balance: 1 })
        })
    });
    assert!(
        matches!(&both, Err(Error::Invalid(m)) if m.contains("note") && m.contains("account") && m.contains("two transactions")),
        "{both:?}"
    );
    assert_eq!(db.scope(Note::count).expect("count"), 0);
    assert_eq!(db.scope(Account::count).expect("count"), 0);
    assert!(log.entries.lock().expect("log").is_empty());
    // Reading one and writing ordered tables is refused too (what it read could not be
    // held until the order's verdict); reading ordered tables and writing one is fine.
    db.scope(|| Note::write(Note { id: 1, text: "7".into() })).expect("note");
    let read_here = db.scope(|| {
        mnesia::transaction(|| {
            let n: i64 = Note::read(&1)?.expect("note").text.parse().expect("number");
            Account::write(Account { id: 1, balance: n })
        })
    });
    assert!(
        matches!(&read_here, Err(Error::Invalid(m)) if m.contains("reads table note") && m.contains("read it before")),
        "{read_here:?}"
    );
    let async_read_here = mnesia::__private::block_on(db.scope(|| {
        mnesia::transaction_async(|| {
            let n = Note::count()? as i64;
            Account::write(Account { id: 1, balance: n })
        })
    }));
    assert!(matches!(&async_read_here, Err(Error::Invalid(_))), "{async_read_here:?}");
    assert!(log.entries.lock().expect("log").is_empty());
    db.scope(|| Account::write(Account { id: 1, balance: 7 })).expect("account");
    settle(&log, &copies);
    db.scope(|| {
        mnesia::transaction(|| {
            let a = Account::read(&1)?.expect("account");
            Note::write(Note { id: 2, text: a.balance.to_string() })
        })
    })
    .expect("ordered read, local write");
    assert_eq!(db.scope(|| Note::read(&2)).expect("read").map(|n| n.text).as_deref(), Some("7"));
    assert_eq!(log.entries.lock().expect("log").len(), 1, "only the account's write was ordered");
    // A restore of both kinds at once is refused before anything is made; apart, each is.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("both.bak");
    db.backup(&file).expect("backup");
    db.scope(|| Note::write(Note { id: 3, text: "after the backup".into() })).expect("note");
    let both = db.restore(&file, &mnesia::RestoreOptions::new());
    assert!(matches!(&both, Err(Error::Invalid(m)) if m.contains("restore them apart")), "{both:?}");
    assert_eq!(db.scope(Note::count).expect("count"), 3, "nothing restored");
    db.restore(
        &file,
        &mnesia::RestoreOptions::new()
            .all(mnesia::RestoreMode::Skip)
            .table("note", mnesia::RestoreMode::ClearAndLoad),
    )
    .expect("this node's own table alone");
    assert_eq!(db.scope(Note::count).expect("count"), 2);
    assert_eq!(log.entries.lock().expect("log").len(), 1, "not ordered");
}

/// A sequencer ordering alone (applying each record at once, on a thread of its own, as
/// an applier does), counting its syncs.
struct Counting {
    db: Database,
    last: Mutex<u64>,
    syncs: Arc<std::sync::atomic::AtomicU32>,
}

impl Sequencer for Counting {
    fn order(&self, record: CommitRecord) -> mnesia::Result<()> {
        let mut last = self.last.lock().expect("last");
        *last += 1;
        let (db, at) = (&self.db, *last);
        std::thread::scope(|s| s.spawn(|| db.apply_ordered(at, &record)).join().expect("applier"))
    }

    fn sync(&self) -> mnesia::Result<()> {
        self.syncs.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[test]
fn sync_transaction_waits_for_the_other_copies_only_after_an_ordered_commit() {
    let db = Database::in_memory().expect("db");
    db.create_table::<Account>(TableOptions::new()).expect("accounts");
    db.create_table::<Note>(TableOptions::new().local_content()).expect("notes");
    let syncs = Arc::new(std::sync::atomic::AtomicU32::new(0));
    db.order_commits_with(Counting { db: db.clone(), last: Mutex::new(0), syncs: Arc::clone(&syncs) });
    let count = || syncs.load(Ordering::SeqCst);
    db.scope(|| mnesia::sync_transaction(|| Note::write(Note { id: 1, text: "here".into() })))
        .expect("local");
    db.scope(|| mnesia::sync_transaction(|| Note::read(&1))).expect("read only");
    assert_eq!(count(), 0, "nothing went through the order");
    db.scope(|| mnesia::sync_transaction(|| Account::write(Account { id: 1, balance: 1 }))).expect("ordered");
    assert_eq!(count(), 1);
    // A dirty write inside, ordered on its own, counts too.
    db.scope(|| {
        mnesia::sync_transaction(|| {
            Account::dirty_write(Account { id: 2, balance: 2 })?;
            Note::write(Note { id: 2, text: "here".into() })
        })
    })
    .expect("dirty ordered write inside a local one");
    assert_eq!(count(), 2);
    db.stop_ordering();
}

#[test]
fn a_copy_that_does_not_reap_still_reaps_the_tables_it_keeps_for_itself() {
    let db = Database::open(Config::default().cleanup_interval(Duration::from_millis(10))).expect("db");
    db.create_table::<Visit>(TableOptions::new().local_content()).expect("local");
    db.set_reaping(false);
    let past = std::time::SystemTime::now() - Duration::from_secs(1);
    db.scope(|| Visit::write(Visit { id: 1, until: past })).expect("visit");
    let deadline = Instant::now() + Duration::from_secs(10);
    while db.table_info::<Visit>().expect("info").size > 0 {
        assert!(Instant::now() < deadline, "the expired record was never removed");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn an_ordered_snapshot_leaves_out_the_tables_a_copy_keeps_for_itself_and_its_load_keeps_them() {
    let (log, copies) = group(None);
    let db = &copies[0].db;
    db.create_table::<Note>(TableOptions::new().local_content()).expect("local");
    db.scope(|| Note::write(Note { id: 1, text: "copy 0".into() })).expect("note");
    db.scope(|| Account::write(Account { id: 1, balance: 3 })).expect("account");
    settle(&log, &copies);
    let mut snapshot = Vec::new();
    db.write_ordered_snapshot(&mut snapshot).expect("snapshot");
    let fresh = Database::in_memory().expect("db");
    for t in [
        |d: &Database| d.create_table::<Account>(TableOptions::new()),
        |d: &Database| d.create_table::<Member>(TableOptions::new()),
        |d: &Database| d.create_table::<Tag>(TableOptions::new()),
        |d: &Database| d.create_table::<Note>(TableOptions::new().local_content()),
    ] {
        t(&fresh).expect("table");
    }
    fresh.scope(|| Note::write(Note { id: 9, text: "fresh".into() })).expect("note");
    assert_eq!(fresh.load_ordered_snapshot(&snapshot[..]).expect("load"), 1);
    assert_eq!(notes(&fresh), ["fresh"], "its own table kept, the other copy's not loaded");
    assert_eq!(fresh.scope(|| Account::read(&1)).expect("read").map(|a| a.balance), Some(3));
}

#[test]
fn a_table_kept_for_itself_stays_so_on_disc() {
    let dir = tempfile::tempdir().expect("tempdir");
    mnesia::Schema::create(dir.path()).expect("schema");
    let open = || Database::open(Config::default().dir(dir.path())).expect("open");
    {
        let db = open();
        db.create_table::<Note>(TableOptions::new().disc_copies([db.node()]).local_content()).expect("local");
        db.create_table::<Account>(TableOptions::new().disc_copies([db.node()])).expect("shared");
        db.scope(|| Note::insert(Note { id: 0, text: "kept".into() })).expect("note");
        // Moved, it stays its own.
        db.change_table_copy_type::<Note>(mnesia::StorageType::RamCopies).expect("to ram");
        db.change_table_copy_type::<Note>(mnesia::StorageType::DiscCopies).expect("to disc");
    }
    {
        let db = open();
        assert!(db.table_info::<Note>().expect("info").local_content, "moved to disc");
        // Moved to disc only and back, transformed, and restored, too.
        db.change_table_copy_type::<Note>(mnesia::StorageType::DiscOnlyCopies).expect("to disc only");
        assert!(db.table_info::<Note>().expect("info").local_content, "moved to disc only");
        db.change_table_copy_type::<Note>(mnesia::StorageType::DiscCopies).expect("back to disc");
        db.transform::<Note, Note>(|n| Ok(Note { text: format!("{}!", n.text), ..n })).expect("transform");
        let backup = dir.path().join("notes.bak");
        db.backup_with(&backup, &mnesia::BackupOptions::new().tables(["note"])).expect("backup");
        db.restore(&backup, &mnesia::RestoreOptions::new()).expect("restore");
        assert!(db.table_info::<Note>().expect("info").local_content, "restored");
    }
    let db = open();
    let info = db.table_info::<Note>().expect("info");
    assert!(info.local_content, "{info}");
    assert!(info.to_string().contains("local content"), "{info}");
    assert!(!db.table_info::<Account>().expect("info").local_content);
    assert_eq!(notes(&db), ["kept!"]);
}

/// A table placed on some copies (no other struct has its shape).
#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Placed {
    #[key]
    id: u32,
}

/// The keys of `Placed` on `db`, sorted.
fn placed_keys(db: &Database) -> mnesia::Result<Vec<u32>> {
    let mut keys: Vec<u32> = db.scope(Placed::list)?.into_iter().map(|l| l.id).collect();
    keys.sort_unstable();
    Ok(keys)
}

/// Writes `Placed` records of keys `ids` on `copy`, one transaction each.
fn write_placed(copy: &Copy, ids: std::ops::Range<u32>) {
    for id in ids {
        copy.db.scope(|| Placed::write(Placed { id })).expect("write");
    }
}

const HOLDERS: [&str; 2] = ["copy0@localhost", "copy1@localhost"];

fn not_here<T: std::fmt::Debug>(result: mnesia::Result<T>) {
    match result {
        Err(Error::NotHere { table, nodes }) => {
            assert_eq!((table.as_str(), nodes), ("placed", HOLDERS.map(String::from).to_vec()))
        }
        other => panic!("expected NotHere, got {other:?}"),
    }
}

#[test]
fn a_table_on_two_copies_keeps_its_records_there_and_the_third_reads_them_from_one() {
    let (log, copies) = group(None);
    // Created from the copy without a copy of it.
    copies[2].db.create_table::<Placed>(TableOptions::new().ram_copies(HOLDERS)).expect("create_table");
    settle(&log, &copies);
    copies[0].db.scope(|| Placed::write(Placed { id: 1 })).expect("write");
    // One transaction writing it and a table of every copy.
    copies[1]
        .db
        .scope(|| {
            mnesia::transaction(|| {
                Placed::write(Placed { id: 2 })?;
                Account::write(Account { id: 9, balance: 90 })
            })
        })
        .expect("transaction");
    settle(&log, &copies);
    for c in &copies[..2] {
        assert_eq!(placed_keys(&c.db).expect("list"), [1, 2]);
        let info = c.db.table_info::<Placed>().expect("info");
        assert!(info.held && info.nodes == HOLDERS);
    }
    let third = &copies[2].db;
    assert_eq!(third.scope(|| Account::read(&9)).expect("read"), Some(Account { id: 9, balance: 90 }));
    let info = third.table_info::<Placed>().expect("info");
    assert!(!info.held && info.size == 0 && info.nodes == HOLDERS, "{info:?}");
    assert!(info.to_string().contains("copies on copy0@localhost, copy1@localhost (none here)"), "{info}");
    // Reads outside a transaction are answered by a copy holding the records; anything
    // else on the table is refused, naming where it is.
    assert_eq!(third.scope(|| Placed::read(&1)).expect("read"), Some(Placed { id: 1 }));
    assert_eq!(third.scope(|| Placed::dirty_read(&2)).expect("dirty_read"), Some(Placed { id: 2 }));
    assert_eq!(third.scope(|| Placed::read(&3)).expect("read"), None);
    not_here(third.scope(Placed::list));
    not_here(third.scope(|| mnesia::transaction(|| Placed::read(&1))));
    not_here(third.scope(|| Placed::write(Placed { id: 3 })));
    not_here(third.scope(|| Placed::dirty_write(Placed { id: 3 })));
    not_here(third.scope(|| Placed::export_to(&mut Vec::new(), mnesia::Format::JsonLines)));
    // A backup of a holder, restored on the third: refused there (it would replace the
    // holders' records from a node holding none); a backup of the third leaves it out.
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("placed.bak");
    copies[0].db.backup(&file).expect("backup");
    for mode in [mnesia::RestoreMode::Recreate, mnesia::RestoreMode::ClearAndLoad] {
        let only = mnesia::RestoreOptions::new().all(mnesia::RestoreMode::Skip).table("placed", mode);
        not_here(third.restore(&file, &only));
    }
    let theirs = dir.path().join("third.bak");
    third.backup(&theirs).expect("backup");
    let all = mnesia::RestoreOptions::new().all(mnesia::RestoreMode::ClearAndLoad);
    copies[0].db.restore(&theirs, &all).expect("restore");
    settle(&log, &copies);
    assert_eq!(placed_keys(&copies[1].db).expect("list"), [1, 2], "the third's backup held the table");
    // A unique index: refused alike on every copy (a copy without the records could not
    // tell whether a value is taken).
    let unique =
        copies[0].db.create_table::<Later>(TableOptions::new().ram_copies(HOLDERS).unique_index(Later::TEXT));
    assert!(matches!(&unique, Err(Error::Invalid(m)) if m.contains("unique")), "{unique:?}");
    copies[0].db.create_table::<Later>(TableOptions::new().ram_copies(["copy2@localhost"])).expect("create");
    settle(&log, &copies);
    let added = copies[0].db.add_index(Later::TEXT.index_spec(true));
    assert!(matches!(&added, Err(Error::Invalid(m)) if m.contains("unique")), "{added:?}");
    settle(&log, &copies);
    for c in &copies {
        let indexes = c.db.table_info::<Later>().expect("info").indexes;
        assert!(indexes.iter().all(|i| !i.unique), "{indexes:?}");
    }
    // Inserted on the only copy with its records: ids from its counter.
    copies[2].db.scope(|| Later::insert(Later { id: 0, n: 1, text: "x".into() })).expect("insert");
    assert!(matches!(copies[0].db.scope(Later::next_id), Err(Error::NotHere { .. })));
    // A drop from a copy without the records: gone everywhere.
    copies[2].db.drop_table::<Placed>().expect("drop_table");
    settle(&log, &copies);
    assert!(copies.iter().all(|c| !c.db.exists::<Placed>()));
}

#[test]
fn a_copy_loaded_from_a_snapshot_of_a_copy_without_a_table_is_filled_from_one_with_it() {
    let (log, copies) = group(None);
    copies[0].db.create_table::<Placed>(TableOptions::new().ram_copies(HOLDERS)).expect("create_table");
    settle(&log, &copies);
    let write = |from: usize, ids: std::ops::Range<u32>| write_placed(&copies[from], ids);
    write(0, 1..6);
    settle(&log, &copies);
    let mut early = Vec::new();
    let early_at = copies[0].db.write_table_image("placed", &mut early).expect("image");
    write(1, 6..11);
    settle(&log, &copies);
    // A snapshot of the copy without the table's records...
    let mut snapshot = Vec::new();
    let at = copies[2].db.write_ordered_snapshot(&mut snapshot).expect("snapshot").applied;
    assert!(matches!(copies[2].db.write_table_image("placed", &mut Vec::new()), Err(Error::NotHere { .. })));
    write(0, 11..16);
    settle(&log, &copies);
    let mut image = Vec::new();
    let image_at = copies[0].db.write_table_image("placed", &mut image).expect("image");
    assert!(early_at < at && at < image_at);
    write(1, 16..21);
    settle(&log, &copies);

    // ...loaded by a copy that holds it (as a node far behind gets its leader's snapshot).
    let fresh = Database::open(Config::default().node_name(HOLDERS[1])).expect("open");
    fresh.scope(|| Account::create_table(TableOptions::new())).expect("table");
    assert_eq!(fresh.load_ordered_snapshot(&snapshot[..]).expect("load"), at);
    assert_eq!(fresh.unfilled_tables(), [("placed".to_owned(), at)]);
    not_here(placed_keys(&fresh));
    not_here(fresh.wait_for_tables(&["placed"], Duration::from_millis(50)));
    // An image of a place before this copy's: not taken (asked again).
    assert!(!fresh.fill_table(early).expect("stale image"));
    // One of a later place: taken there; the table's records until then are in it.
    assert!(fresh.fill_table(image).expect("image"));
    // Kept: not waiting for an image any more, but not filled before its place either.
    assert!(fresh.unfilled_tables().is_empty());
    not_here(placed_keys(&fresh));
    assert!(fresh.filling());
    let fresh = Copy::start(fresh, &log);
    fresh.db.wait_for_tables(&["placed"], Duration::from_secs(30)).expect("filled");
    write(0, 21..26);
    settle(&log, &copies);
    settle(&log, std::slice::from_ref(&fresh));
    assert!(fresh.db.unfilled_tables().is_empty());
    assert_eq!(placed_keys(&fresh.db).expect("list"), (1..26).collect::<Vec<_>>());
    assert_eq!(placed_keys(&fresh.db).expect("list"), placed_keys(&copies[0].db).expect("list"));
    // A snapshot of the filled copy holds the records.
    let mut again = Vec::new();
    assert_eq!(fresh.db.write_ordered_snapshot(&mut again).expect("snapshot").records, 25);
}

#[test]
fn a_copy_added_on_a_node_is_filled_there_and_a_copy_removed_empties_its_node() {
    let (log, copies) = group(None);
    copies[0].db.create_table::<Placed>(TableOptions::new().ram_copies([HOLDERS[0]])).expect("create_table");
    settle(&log, &copies);
    let write = |from: usize, ids: std::ops::Range<u32>| write_placed(&copies[from], ids);
    write(0, 1..6);
    settle(&log, &copies);
    // Asked from a node that holds none.
    copies[2]
        .db
        .scope(|| Placed::add_table_copy(HOLDERS[1], mnesia::StorageType::RamCopies))
        .expect("add_table_copy");
    settle(&log, &copies);
    let new = &copies[1].db;
    let at = new.applied_index();
    assert_eq!(new.unfilled_tables(), [("placed".to_owned(), at)]);
    for c in &copies {
        assert_eq!(c.db.table_info::<Placed>().expect("info").nodes, HOLDERS);
    }
    not_here(placed_keys(new));
    // A copy added on the third node and removed again meanwhile: the second still waits,
    // from the same place (the records did not change).
    copies[1]
        .db
        .add_table_copy::<Placed>("copy2@localhost", mnesia::StorageType::RamCopies)
        .expect("add_table_copy");
    settle(&log, &copies);
    assert!(!copies[2].db.unfilled_tables().is_empty());
    copies[1].db.del_table_copy::<Placed>("copy2@localhost").expect("del_table_copy");
    settle(&log, &copies);
    assert!(
        copies[2].db.unfilled_tables().is_empty() && !copies[2].db.table_info::<Placed>().expect("info").held
    );
    assert!(!new.table_info::<Placed>().expect("info").held);
    not_here(placed_keys(new));
    assert_eq!(new.unfilled_tables(), [("placed".to_owned(), at)]);
    // An image of a place since, then writes: skipped on the new copy while it waits,
    // made again over the image.
    let mut image = Vec::new();
    let image_at = copies[0].db.write_table_image("placed", &mut image).expect("image");
    assert!(image_at > at);
    write(0, 6..9);
    settle(&log, &copies);
    assert!(new.applied_index() > image_at);
    // Until the new copy says it is filled, the first one stays.
    let early = copies[2].db.del_table_copy::<Placed>(HOLDERS[0]);
    assert!(matches!(&early, Err(Error::Invalid(m)) if m.contains("not filled")), "{early:?}");
    assert!(new.fill_table(image).expect("fill"));
    assert!(new.unfilled_tables().is_empty());
    assert_eq!(placed_keys(new).expect("list"), (1..9).collect::<Vec<_>>());
    assert_eq!(new.table_info::<Placed>().expect("info").filling, [HOLDERS[1]]);
    assert_eq!(new.confirm_filled_copies().expect("confirm"), ["placed"]);
    settle(&log, &copies);
    assert!(copies.iter().all(|c| c.db.table_info::<Placed>().expect("info").filling.is_empty()));
    assert!(new.confirm_filled_copies().expect("confirm").is_empty());
    // Written on the new copy: reaches the first.
    write(1, 9..12);
    settle(&log, &copies);
    assert_eq!(placed_keys(&copies[0].db).expect("list"), (1..12).collect::<Vec<_>>());
    // Refused alike on every node: a copy there already, none to remove, the last one.
    let again = copies[0].db.add_table_copy::<Placed>(HOLDERS[1], mnesia::StorageType::RamCopies);
    assert!(matches!(&again, Err(Error::Invalid(m)) if m.contains("already")), "{again:?}");
    let none = copies[0].db.del_table_copy::<Placed>("copy2@localhost");
    assert!(matches!(&none, Err(Error::Invalid(m)) if m.contains("no copy")), "{none:?}");
    // The first copy removed: emptied there, its reads answered by the other.
    copies[2].db.del_table_copy::<Placed>(HOLDERS[0]).expect("del_table_copy");
    settle(&log, &copies);
    let info = copies[0].db.table_info::<Placed>().expect("info");
    assert!(!info.held && info.size == 0 && info.nodes == [HOLDERS[1]], "{info:?}");
    assert_eq!(copies[0].db.scope(|| Placed::read(&3)).expect("read"), Some(Placed { id: 3 }));
    let last = copies[0].db.del_table_copy::<Placed>(HOLDERS[1]);
    assert!(matches!(&last, Err(Error::Invalid(m)) if m.contains("last copy")), "{last:?}");
    // Not for a table of every node, nor on a database alone.
    let every = copies[0].db.add_table_copy::<Account>("copy2@localhost", mnesia::StorageType::RamCopies);
    assert!(matches!(&every, Err(Error::Invalid(m)) if m.contains("every node")), "{every:?}");
    settle(&log, &copies);
    assert_eq!(placed_keys(&copies[1].db).expect("list"), (1..12).collect::<Vec<_>>());
}

#[test]
fn copies_on_disc_and_in_memory_are_known_alike_and_kept_through_snapshots() {
    use mnesia::StorageType::{DiscCopies, DiscOnlyCopies, RamCopies};
    let (log, copies) = group(None);
    // Refused alike: a node named twice, copies only on disc.
    let twice = copies[2]
        .db
        .create_table::<Placed>(TableOptions::new().ram_copies(HOLDERS).disc_copies([HOLDERS[0]]));
    assert!(matches!(&twice, Err(Error::Invalid(m)) if m.contains("named twice")), "{twice:?}");
    let disc_only = copies[2].db.create_table::<Placed>(TableOptions::new().disc_only_copies(HOLDERS));
    assert!(matches!(&disc_only, Err(Error::Invalid(m)) if m.contains("disc_only_copies")), "{disc_only:?}");
    let every = copies[2].db.create_table::<Placed>(TableOptions::new().disc_copies(Vec::<String>::new()));
    assert!(matches!(&every, Err(Error::Invalid(m)) if m.contains("name the nodes")), "{every:?}");
    // In memory on the first node, on disc on the second; created from the third.
    let options = TableOptions::new().ram_copies([HOLDERS[0]]).disc_copies([HOLDERS[1]]);
    copies[2].db.create_table::<Placed>(options).expect("create_table");
    settle(&log, &copies);
    write_placed(&copies[0], 1..6);
    settle(&log, &copies);
    let disc_nodes = |db: &Database| db.table_info::<Placed>().expect("info").disc_copies;
    for c in &copies {
        let info = c.db.table_info::<Placed>().expect("info");
        assert_eq!(
            (info.nodes, info.disc_copies),
            (HOLDERS.map(String::from).to_vec(), vec![HOLDERS[1].to_owned()])
        );
    }
    assert_eq!(copies[0].db.table_info::<Placed>().expect("info").storage_type, RamCopies);
    let on_disc = copies[1].db.table_info::<Placed>().expect("info");
    assert_eq!(on_disc.storage_type, DiscCopies);
    assert!(on_disc.to_string().contains("(on disc: copy1@localhost)"), "{on_disc}");
    // A snapshot keeps the lists: a node started again from its own has them, and its
    // copy in memory with its records.
    let mut own = Vec::new();
    let at = copies[0].db.write_ordered_snapshot(&mut own).expect("snapshot").applied;
    let again = Database::open(Config::default().node_name(HOLDERS[0])).expect("open");
    again.scope(|| Account::create_table(TableOptions::new())).expect("table");
    assert_eq!(again.load_ordered_snapshot(&own[..]).expect("load"), at);
    assert_eq!(placed_keys(&again).expect("list"), (1..6).collect::<Vec<_>>());
    assert_eq!(disc_nodes(&again), [HOLDERS[1]]);
    assert_eq!(again.table_info::<Placed>().expect("info").storage_type, RamCopies);
    drop(again);

    // Started again from the snapshot of a node without the records (its leader's, say),
    // the first node's copy waits, and tells the others (which know nothing of it): the
    // copy on disc, the only other, may not go meanwhile.
    let mut theirs = Vec::new();
    assert_eq!(copies[2].db.write_ordered_snapshot(&mut theirs).expect("snapshot").applied, at);
    let mut image = Vec::new();
    assert_eq!(copies[1].db.write_table_image("placed", &mut image).expect("image"), at);
    let fresh = Database::open(Config::default().node_name(HOLDERS[0])).expect("open");
    fresh.scope(|| Account::create_table(TableOptions::new())).expect("table");
    assert_eq!(fresh.load_ordered_snapshot(&theirs[..]).expect("load"), at);
    assert_eq!(fresh.unfilled_tables(), [("placed".to_owned(), at)]);
    not_here(placed_keys(&fresh));
    assert_eq!(disc_nodes(&fresh), [HOLDERS[1]]);
    let fresh = Copy::start(fresh, &log);
    assert!(fresh.db.confirm_filled_copies().expect("tell").is_empty());
    settle(&log, &copies);
    settle(&log, std::slice::from_ref(&fresh));
    assert!(copies.iter().all(|c| c.db.table_info::<Placed>().expect("info").filling == [HOLDERS[0]]));
    let early = copies[2].db.del_table_copy::<Placed>(HOLDERS[1]);
    assert!(matches!(&early, Err(Error::Invalid(m)) if m.contains("not filled")), "{early:?}");
    settle(&log, std::slice::from_ref(&fresh));
    // (Those changes of copies left the wait as it was: the image is still of its place.)
    assert!(fresh.db.fill_table(image).expect("fill"));
    assert_eq!(placed_keys(&fresh.db).expect("list"), (1..6).collect::<Vec<_>>());
    assert_eq!(fresh.db.confirm_filled_copies().expect("tell"), ["placed"]);
    settle(&log, &copies);
    settle(&log, std::slice::from_ref(&fresh));
    assert!(copies.iter().all(|c| c.db.table_info::<Placed>().expect("info").filling.is_empty()));
    drop(fresh);

    // The first node's copy moved to disc (asked from the third), the second's to memory
    // (on its own node): every node knows.
    copies[2].db.scope(|| Placed::change_table_copy_type(HOLDERS[0], DiscCopies)).expect("to disc");
    settle(&log, &copies);
    assert!(copies.iter().all(|c| disc_nodes(&c.db) == [HOLDERS[1], HOLDERS[0]]));
    assert_eq!(copies[0].db.table_info::<Placed>().expect("info").storage_type, DiscCopies);
    copies[1].db.change_table_copy_type::<Placed>(RamCopies).expect("to memory");
    settle(&log, &copies);
    assert!(copies.iter().all(|c| disc_nodes(&c.db) == [HOLDERS[0]]));
    assert_eq!(copies[1].db.table_info::<Placed>().expect("info").storage_type, RamCopies);
    let none = copies[2].db.change_table_copy_type::<Placed>(DiscCopies);
    assert!(matches!(&none, Err(Error::Invalid(m)) if m.contains("no copy")), "{none:?}");
    let disc_only = copies[0].db.change_table_copy_type::<Placed>(DiscOnlyCopies);
    assert!(matches!(&disc_only, Err(Error::Invalid(m)) if m.contains("disc_only_copies")), "{disc_only:?}");

    // A copy added on disc on the third node: filled there, listed on disc everywhere;
    // removed: listed nowhere.
    let refused = copies[2].db.add_table_copy::<Placed>("copy2@localhost", DiscOnlyCopies);
    assert!(matches!(&refused, Err(Error::Invalid(m)) if m.contains("disc_only_copies")), "{refused:?}");
    copies[2].db.add_table_copy::<Placed>("copy2@localhost", DiscCopies).expect("add_table_copy");
    settle(&log, &copies);
    assert!(copies.iter().all(|c| disc_nodes(&c.db) == [HOLDERS[0], "copy2@localhost"]));
    let third = &copies[2].db;
    let mut image = Vec::new();
    copies[1].db.write_table_image("placed", &mut image).expect("image");
    assert!(third.fill_table(image).expect("fill"));
    assert_eq!(third.confirm_filled_copies().expect("confirm"), ["placed"]);
    settle(&log, &copies);
    assert_eq!(third.table_info::<Placed>().expect("info").storage_type, DiscCopies);
    assert_eq!(placed_keys(third).expect("list"), (1..6).collect::<Vec<_>>());
    copies[0].db.del_table_copy::<Placed>("copy2@localhost").expect("del_table_copy");
    settle(&log, &copies);
    assert!(copies.iter().all(|c| disc_nodes(&c.db) == [HOLDERS[0]]));
    assert_eq!(placed_keys(&copies[1].db).expect("list"), (1..6).collect::<Vec<_>>());
}
