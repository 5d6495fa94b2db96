//! The current transaction of a thread, so that table-scoped calls join an enclosing
//! transaction, and the retry loop that runs a transaction's closure.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::base::priority::{Gate, LEAST_PATIENCE, merge};
use crate::base::stats::Stat;
use crate::db::{self, Database};
use crate::error::{Error, Result};
use crate::tx::Tx;

thread_local! {
    static CURRENT: RefCell<Option<Tx>> = const { RefCell::new(None) };
    static RNG: Cell<u64> = const { Cell::new(0) };
    /// The sequence numbers of the dirty commits this thread made while an attempt of its
    /// transaction ran: a conflict with one of them is the transaction's own doing.
    static OWN_DIRTY: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
    /// Set when this thread hands a commit to the sequencer (see [`sync_transaction`]).
    static PROPOSED: Cell<bool> = const { Cell::new(false) };
}

/// Notes that this thread handed a commit to the sequencer.
pub(crate) fn note_proposed() {
    PROPOSED.with(|p| p.set(true));
}

/// Notes that this thread made a dirty commit at `seq` on `db`, if a transaction of that
/// database runs on it (see [`lost_to_itself`]).
pub(crate) fn note_dirty_commit(db: &Database, seq: u64) {
    let inside = CURRENT
        .with(|c| c.try_borrow().ok().and_then(|tx| tx.as_ref().map(|tx| tx.db.same(db))).unwrap_or(false));
    if inside {
        OWN_DIRTY.with(|own| own.borrow_mut().push(seq));
    }
}

/// Whether `tx`, which lost, lost to itself: what it read was changed by a dirty operation
/// it made after reading it. Forgets the attempt's dirty commits.
fn lost_to_itself(tx: &Tx) -> bool {
    let own = OWN_DIRTY.with(|own| std::mem::take(&mut *own.borrow_mut()));
    !own.is_empty() && tx.changed_versions().iter().any(|v| own.contains(v))
}

/// What a transaction that lost to itself twice in a row (see [`lost_to_itself`]) fails
/// with: each run would lose again, and repeat its dirty operations.
fn losing_to_itself() -> Error {
    Error::Invalid(
        "the transaction read what a dirty operation inside it then wrote, twice in a row: it would conflict with itself on every run (and repeat the dirty operation); use the transactional form (write, update, delete, next_id) inside a transaction"
            .into(),
    )
}

/// Whether the calling thread is inside a transaction.
///
/// ```
/// let db = mnesia::Database::in_memory()?;
/// assert!(!mnesia::is_transaction());
/// db.transaction(|_| {
///     assert!(mnesia::is_transaction());
///     Ok::<_, mnesia::Error>(())
/// })?;
/// # Ok::<(), mnesia::Error>(())
/// ```
pub fn is_transaction() -> bool {
    CURRENT.with(|c| c.borrow().is_some())
}

/// The database of the current transaction, else the thread's default.
pub(crate) fn current_db() -> Result<Database> {
    if let Some(db) = CURRENT.with(|c| c.borrow().as_ref().map(|tx| tx.db.clone())) {
        return Ok(db);
    }
    db::current()
}

/// Runs `f` on the current transaction. Callers never run user code inside `f`.
pub(crate) fn with_tx<R>(f: impl FnOnce(&mut Tx) -> Result<R>) -> Result<R> {
    let mut f = Some(f);
    let mut out = None;
    on_current(&mut |tx| {
        if let Some(f) = f.take() {
            out = Some(f(tx));
        }
    });
    match out {
        Some(r) => r,
        None => Err(Error::NoTransaction),
    }
}

/// Calls `f` on the current transaction, if there is one (compiled once: the typed
/// callers' closures reach the thread-local through this).
fn on_current(f: &mut dyn FnMut(&mut Tx)) {
    CURRENT.with(|c| {
        if let Some(tx) = c.borrow_mut().as_mut() {
            f(tx);
        }
    });
}

/// Runs one table-scoped operation: inside the current transaction when there is one,
/// else as a transaction of its own on the default database.
///
/// A single operation reads at a snapshot only if it lost once: opening one costs more than
/// most single reads, and an operation that runs again without writing cannot lose twice.
pub(crate) fn run<R>(op: impl FnMut() -> Result<R>) -> Result<R> {
    if is_transaction() {
        let mut op = op;
        return op();
    }
    transact_with(db::current()?, SnapshotFrom::Retry, op)
}

/// [`run`] of an operation on the transaction itself: `run(|| with_tx(op))`, with one
/// small function per caller (the retry loop and the thread-local are reached through
/// `dyn`, compiled once). As with [`with_tx`], `op` runs no user code: the thread's
/// transaction is borrowed meanwhile.
pub(crate) fn run_tx<R>(mut op: impl FnMut(&mut Tx) -> Result<R>) -> Result<R> {
    let mut out: Option<Result<R>> = None;
    run_attempts(&mut |tx| {
        // The last attempt's result is not kept while the next one runs.
        out = None;
        let r = op(tx);
        let ok = r.is_ok();
        out = Some(r);
        ok
    })?;
    match out {
        Some(r) => r,
        // (`run_attempts` calls `op` on the thread's transaction, or on the one it installs.)
        None => Err(Error::Internal("transaction state lost".into())),
    }
}

/// [`run_tx`]'s body: `f` (which tells whether the operation returned `Ok`) on the
/// current transaction, or in attempts of a transaction of its own.
fn run_attempts(f: &mut dyn FnMut(&mut Tx) -> bool) -> Result<()> {
    let mut on_tx = || {
        let mut ok = false;
        on_current(&mut |tx| ok = f(tx));
        ok
    };
    if is_transaction() {
        on_tx();
        return Ok(());
    }
    attempts(db::current()?, SnapshotFrom::Retry, &mut on_tx)
}

/// When a transaction that has written nothing starts reading at a snapshot.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SnapshotFrom {
    /// At its first scan, or once it has made many point reads.
    FirstScan,
    /// Only on a run after one that lost.
    Retry,
}

/// Removes the thread's transaction when dropped: on return and on unwind.
struct Installed;

impl Installed {
    fn install(tx: Tx) -> Installed {
        CURRENT.with(|c| *c.borrow_mut() = Some(tx));
        Installed
    }

    fn take(self) -> Option<Tx> {
        let tx = CURRENT.with(|c| c.borrow_mut().take());
        std::mem::forget(self);
        tx
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        // Unwinding out of the closure: the transaction's writes are dropped, never applied.
        let _ = CURRENT.with(|c| c.try_borrow_mut().map(|mut b| b.take()));
    }
}

/// Runs `f` as a transaction on `db`, retrying it on conflicts. Inside a transaction of the
/// same database, `f` simply joins it.
pub(crate) fn transact<R, E: From<Error>>(db: Database, f: impl FnMut() -> Result<R, E>) -> Result<R, E> {
    transact_with(db, SnapshotFrom::FirstScan, f)
}

/// As [`transact`], with a snapshot opened as `snapshot_from` says.
fn transact_with<R, E: From<Error>>(
    db: Database,
    snapshot_from: SnapshotFrom,
    mut f: impl FnMut() -> Result<R, E>,
) -> Result<R, E> {
    // What the closure returned last; the attempts themselves run in code compiled once.
    let mut out: Option<Result<R, E>> = None;
    let mut attempt = || {
        // The last attempt's result is not kept while the next one runs.
        out = None;
        let r = f();
        let ok = r.is_ok();
        out = Some(r);
        ok
    };
    match (attempts(db, snapshot_from, &mut attempt), out) {
        (Ok(()), Some(r)) => r,
        (Ok(()), None) => Err(Error::Internal("transaction state lost".into()).into()),
        (Err(e), _) => Err(e.into()),
    }
}

/// What an attempt came to.
enum Outcome {
    Committed,
    /// The closure returned an error, having seen a consistent state.
    Failed,
    /// The commit failed.
    Error(Error),
}

/// Runs attempts of `f` (which tells whether the closure returned `Ok`) until one commits
/// or fails for good. `Ok(())`: the closure's last result is the transaction's.
fn attempts(db: Database, snapshot_from: SnapshotFrom, f: &mut dyn FnMut() -> bool) -> Result<(), Error> {
    // Whether this is `transaction_async`'s transaction (taken before anything runs inside).
    let defer = crate::tx::deferral::take_armed();
    if let Some(same) = CURRENT.with(|c| c.borrow().as_ref().map(|tx| tx.db.same(&db))) {
        if same {
            // A nested transaction joins the outer one; if it fails or panics, its own
            // writes are undone, and the outer one decides what to do with the error (or
            // whether to catch the panic).
            let savepoint = with_tx(|tx| Ok(tx.savepoint()))?;
            let undo = || {
                with_tx(|tx| {
                    tx.rollback_to(savepoint);
                    Ok(())
                })
            };
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(&mut *f)) {
                Ok(true) => {}
                Ok(false) => undo()?,
                Err(panic) => {
                    let _ = undo();
                    std::panic::resume_unwind(panic);
                }
            }
            return Ok(());
        }
        return Err(Error::Invalid(
            "a transaction on another database is already running on this thread".into(),
        ));
    }
    // (`transaction_async`'s rounds share one budget, and are one transaction: its first
    // round counts the start, and the end unless it leaves its commit to the future, which
    // then counts the end, whatever the later rounds do.)
    let attempts = defer.map_or(db.config().retries(), |b| b.attempts.max(1));
    let escalate_after = db.config().escalation_threshold();
    let stats = db.stats();
    let counted = defer.is_none_or(|b| b.first);
    if counted {
        stats.add(Stat::Start);
    }
    let end = |db: &Database, stat: Stat, began: Option<Instant>, attempt: u32, ended: &'static str| {
        if counted {
            stats.add(stat);
            timed_end(db, &stats, began, attempt, ended);
        }
    };
    let mut db = db;
    // Conflicts in a row, and the tables the attempts that lost touched.
    let mut conflicts = 0;
    // Attempts in a row that lost to their own dirty writes (see `lost_to_itself`).
    let mut lost_to_self = 0;
    let mut long = false;
    let mut touched: Vec<Arc<dyn Gate>> = Vec::new();
    // How long the losing attempts took, without priority and with it.
    let (mut lost_plain, mut lost_escalated) = (Duration::ZERO, Duration::ZERO);
    // Whether the attempts that lost wrote anything.
    let mut wrote = false;
    // Measured only when latencies are recorded or a subscriber listens for slow
    // transactions (from the first attempt's start, which is read anyway).
    let timed = timed(&stats);
    let mut began: Option<Instant> = None;
    for attempt in 1..=attempts {
        // One that lost without writing runs again at a snapshot, where it cannot lose
        // unless it writes this time (see `snapshots.rs`).
        let at_snapshot = conflicts > 0 && !wrote;
        // A transaction that keeps losing runs with priority: writers to the tables it
        // touched wait for it (see `priority.rs`). Taken before anything else, holding
        // no lock; given back when the attempt ends, also on unwind. With ordered
        // commits, the other copies hold those tables too (`hold.rs`). Not for the
        // applier of the order (it never waits), nor for an async transaction on an
        // ordered copy (its commit is ordered after the attempt ends, and its executor's
        // thread would wait for the priority).
        let escalate = (conflicts >= escalate_after || (conflicts > 0 && long))
            && !(db.ordering() && (defer.is_some() || crate::engine::sequencer::applying(db.id())));
        let escalated = (escalate && !at_snapshot).then(|| {
            stats.add(Stat::Escalation);
            let patience = patience(lost_plain, lost_escalated);
            let here = db.priority().take(&touched, patience);
            // (Not when this thread held the priority already: the outer attempt's hold
            // stands.)
            let names: Vec<&str> = touched.iter().filter(|t| t.shared()).map(|t| t.gate_name()).collect();
            let elsewhere = db
                .sequencer()
                .filter(|_| here.owns() && !names.is_empty())
                .map(|s| s.hold_elsewhere(&names, patience));
            (here, elsewhere)
        });
        let started = Instant::now();
        if timed && began.is_none() {
            began = Some(started);
        }
        // Lets a sync leader of the log wait a little for this transaction's commit; the
        // registration ends with the attempt, also on unwind.
        if let Some(disk) = db.disk() {
            crate::disk::wal::announce(&disk.wal);
        }
        let _withdraw = Withdraw;
        let mut tx = Tx::new(db);
        tx.defer = defer.is_some();
        if escalated.is_none() && !wrote && (at_snapshot || snapshot_from == SnapshotFrom::FirstScan) {
            tx.allow_snapshot(at_snapshot);
        }
        OWN_DIRTY.with(|own| own.borrow_mut().clear());
        let installed = Installed::install(tx);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(&mut *f));
        let Some(mut tx) = installed.take() else {
            return Err(Error::Internal("transaction state lost".into()));
        };
        let outcome = match result {
            Ok(true) => match tx.commit() {
                Ok(()) => Some(Outcome::Committed),
                Err(Error::Conflict) => None,
                Err(e) => Some(Outcome::Error(e)),
            },
            // The closure may have failed because it saw a state that never existed (reads
            // from before and after a concurrent commit): if what it read has changed, it
            // runs again instead, and the failure never reaches the caller.
            Ok(false) => tx.reads_unchanged().then_some(Outcome::Failed),
            Err(panic) => {
                if tx.reads_unchanged() {
                    let db = tx.db.clone();
                    drop(tx);
                    end(&db, Stat::Abort, began, attempt, "panicked");
                    std::panic::resume_unwind(panic);
                }
                None
            }
        };
        if outcome.is_none() {
            // (Once may be the closure's way: a dirty write on its first run only. Twice in a
            // row, it would go on until it gave up, repeating its dirty writes.)
            lost_to_self = if lost_to_itself(&tx) { lost_to_self + 1 } else { 0 };
            if lost_to_self == 2 {
                let db = tx.finish();
                end(&db, Stat::Abort, began, attempt, "failed");
                return Err(losing_to_itself());
            }
            conflicts += 1;
            wrote |= tx.wrote();
            long |= tx.long();
            let took = started.elapsed();
            if escalated.is_some() {
                lost_escalated = lost_escalated.max(took);
            } else {
                lost_plain = lost_plain.max(took);
            }
            merge(&mut touched, tx.gates());
        }
        db = tx.finish();
        match outcome {
            // (A commit left for `transaction_async` to order is counted once decided.)
            Some(Outcome::Committed) if defer.is_some() && crate::tx::deferral::left_after(attempt) => {
                return Ok(());
            }
            Some(Outcome::Committed) => {
                end(&db, Stat::Commit, began, attempt, "committed");
                return Ok(());
            }
            Some(Outcome::Failed) => {
                end(&db, Stat::Abort, began, attempt, "failed");
                return Ok(());
            }
            Some(Outcome::Error(e)) => {
                end(&db, Stat::Abort, began, attempt, "failed");
                return Err(e);
            }
            None => {}
        }
        if attempt == attempts {
            break;
        }
        stats.add(Stat::Retry);
        if conflicts == db.config().conflicts_reported_after() {
            tracing::warn!(
                target: "mnesia::transaction",
                conflicts,
                wrote,
                escalated = escalated.is_some(),
                "a transaction keeps losing to concurrent commits and runs again"
            );
        }
        if escalated.is_none() {
            backoff(attempt);
        }
    }
    end(&db, Stat::Abort, began, attempts, "gave up");
    // (`transaction_async`'s last round: the runs of every round.)
    Err(Error::TooManyRetries { attempts: defer.map_or(attempts, |_| db.config().retries()) })
}

/// Whether a transaction's time is measured: latencies are recorded, or a subscriber
/// listens for slow transactions.
pub(crate) fn timed(stats: &crate::base::stats::Stats) -> bool {
    stats.latencies.on() || tracing::enabled!(target: "mnesia::transaction", tracing::Level::WARN)
}

/// Records how long a timed transaction took, and reports it if it took the configured
/// threshold or longer, however it ended (`began`: when it started, if it is timed).
pub(crate) fn timed_end(
    db: &Database,
    stats: &crate::base::stats::Stats,
    began: Option<Instant>,
    attempts: u32,
    ended: &'static str,
) {
    let Some(began) = began else { return };
    let took = began.elapsed();
    if stats.latencies.on() {
        stats.latencies.record(took);
    }
    if took >= db.config().slow_transaction_threshold() {
        tracing::warn!(
            target: "mnesia::transaction",
            took_ms = took.as_secs_f64() * 1e3,
            attempts,
            ended,
            "a slow transaction {ended}"
        );
    }
}

/// How long commits wait at the gates of an escalated attempt: four times the longest
/// attempt that lost without priority (what the escalated one should take), and twice the
/// longest that lost with it (one whose writers went past the gates because it ran longer
/// than that), at least 20 ms.
fn patience(lost_plain: Duration, lost_escalated: Duration) -> Duration {
    (lost_plain * 4).max(lost_escalated * 2).max(LEAST_PATIENCE)
}

/// Ends the thread's registration with the commit log when dropped.
struct Withdraw;

impl Drop for Withdraw {
    fn drop(&mut self) {
        crate::disk::wal::withdraw();
    }
}

/// Waits a little before a retry: yields at first, then sleeps a random, growing time.
fn backoff(attempt: u32) {
    if attempt < 3 {
        std::thread::yield_now();
        return;
    }
    let r = RNG.with(|c| {
        let mut x = c.get();
        if x == 0 {
            x = (c as *const Cell<u64> as u64) | 1;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        c.set(x);
        x
    });
    let cap = 1u64 << attempt.min(10);
    std::thread::sleep(Duration::from_micros(r % cap + 1));
}

/// Runs `f` as one serializable transaction on the current database (see
/// [`Database::transaction`]). Table-scoped calls inside join it; a transaction inside
/// another joins the outermost one.
///
/// A transaction that scans, or makes many point reads, having written nothing reads a
/// snapshot from then on and commits on its first run whatever commits land meanwhile; one
/// that keeps losing to other commits takes priority over them (see the README's
/// "Every transaction finishes").
///
/// ```
/// use mnesia::prelude::*;
///
/// #[derive(Table, Clone, Debug, Serialize, Deserialize)]
/// struct Account { #[key] id: u32, balance: i64 }
///
/// let db = Database::in_memory()?;
/// db.scope(|| -> mnesia::Result<()> {
///     Account::create_table(TableOptions::new())?;
///     Account::write(Account { id: 1, balance: 100 })?;
///     Account::write(Account { id: 2, balance: 0 })?;
///     mnesia::transaction(|| {
///         Account::update(&1, |a| a.balance -= 30)?;
///         Account::update(&2, |a| a.balance += 30)?;
///         Ok::<_, mnesia::Error>(())
///     })?;
///     assert_eq!(Account::read(&2)?.map(|a| a.balance), Some(30));
///     Ok(())
/// })?;
/// # Ok::<(), mnesia::Error>(())
/// ```
pub fn transaction<R, E: From<Error>>(f: impl FnMut() -> Result<R, E>) -> Result<R, E> {
    transact(current_db()?, f)
}

/// Like [`transaction`], and returns only once every live copy of the database has
/// applied the commit: on one node it is the same; on a cluster node (any database whose
/// commits are [ordered](crate::Database::order_commits_with)) it then waits until every
/// other node it sees up has applied as far as this one ([`Sequencer::sync`](crate::Sequencer::sync)),
/// unless nothing went through the order (it wrote nothing, or only tables this node
/// keeps for itself: `TableOptions::local_content`).
/// Inside another transaction it joins that one and does not wait (the commit is the
/// outermost one's).
///
/// ```
/// let db = mnesia::Database::in_memory()?;
/// let v = db.scope(|| mnesia::sync_transaction(|| Ok::<_, mnesia::Error>(7)))?;
/// assert_eq!(v, 7);
/// # Ok::<(), mnesia::Error>(())
/// ```
pub fn sync_transaction<R, E: From<Error>>(f: impl FnMut() -> Result<R, E>) -> Result<R, E> {
    let db = current_db()?;
    let outermost = !is_transaction();
    // What an enclosing call noted is kept for it, also on unwind.
    struct Keep(bool);
    impl Drop for Keep {
        fn drop(&mut self) {
            PROPOSED.with(|p| p.set(self.0 || p.get()));
        }
    }
    let _keep = Keep(PROPOSED.with(|p| p.replace(false)));
    let result = transact(db.clone(), f);
    // (Only after a commit handed to the order: one that wrote only tables this node keeps
    // for itself, or nothing, has no other copy to wait for.)
    let proposed = PROPOSED.with(Cell::get);
    let result = result?;
    if outermost
        && proposed
        && let Some(sequencer) = db.sequencer()
    {
        sequencer.sync()?;
    }
    Ok(result)
}
