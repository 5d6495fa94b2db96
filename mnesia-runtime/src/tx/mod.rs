//! Transactions: buffered writes, recorded reads, and the commit protocol.
//!
//! Concurrency control is optimistic (in the manner of Silo): a transaction reads committed
//! records directly and records the version it saw; it buffers its writes. Commit then
//!
//! 1. *prepares*: notes the current version of every key it writes and the index shards its
//!    old and new records live in;
//! 2. *locks* the commit locks of every shard it read (shared) or writes (exclusive), of
//!    records and of indexes, in one global order — so commits never deadlock;
//! 3. *validates*: every version it read or prepared is unchanged, every shard or index shard
//!    it scanned is unchanged (no phantom), unique indexes stay unique;
//! 4. *installs* its writes under one new commit sequence number, then unlocks.
//!
//! While a commit holds a shard's lock exclusively no other commit validates against that
//! shard, so validation and installation happen at one point of a serial order.

pub(crate) mod async_tx;
pub(crate) mod context;
pub(crate) mod counters;
pub(crate) mod expiring;
pub(crate) mod ops;
pub(crate) mod plan;
pub(crate) mod query;
pub(crate) mod row_query;
pub(crate) mod select;

use std::any::{Any, TypeId};
use std::cell::RefCell;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::base::lock::HeldLocks;
use crate::base::priority::Gate;
use crate::db::any_table::AnyTable;
use crate::db::{Database, SnapshotGuard};
use crate::engine::meta::{RecordMeta, all_ok, as_record, meta_of};
use crate::error::{Error, Result};
use crate::schema::record::Record;
use crate::schema::row::RowOf;
use crate::schema::stored::StoredRecord;

mod apply;
pub(crate) mod deferral;
mod part;
mod write_set;

pub(crate) use part::TxTable;

use crate::db::table_part::{Spare, TxPart, UniqueFailure};

/// What makes sure a table is its record type's before a transaction first uses it: a
/// disc table recovered from the directory is claimed by the first typed operation on it
/// ([`claim_table`]); the engine's own callers hold a store already ([`claimed`]).
pub(crate) type Claim = fn(&Database) -> Result<()>;

/// Claims table `T` for its type (see `Database::table`).
pub(crate) fn claim_table<T: Record>(db: &Database) -> Result<()> {
    db.table::<T>().map(drop)
}

/// A table with a store already: nothing to claim.
pub(crate) fn claimed(_: &Database) -> Result<()> {
    Ok(())
}

/// A transaction in progress: one part per table it touched.
pub(crate) struct Tx {
    pub(crate) db: Database,
    /// `transaction_async`'s transaction: an ordered commit leaves its record to it.
    pub(crate) defer: bool,
    parts: Vec<Box<dyn TxPart>>,
    /// The snapshot the transaction reads at, once it has one (see `snapshots.rs`).
    snapshot: Option<SnapshotGuard>,
    /// Whether it may take one: only transactions (not dirty operations), and not an
    /// attempt with priority or one after an attempt that wrote.
    may_snapshot: bool,
    /// Reads so far: a transaction that makes many, writing nothing, takes a snapshot.
    reads: usize,
    /// It met a table whose store took its place after its snapshot: it must run again.
    stale: bool,
    /// The commit's time, when it is given rather than read from the clock: a commit
    /// record applied from another database commits at that database's time.
    commit_time: Option<SystemTime>,
    /// The place of the shared order of commits that the transaction reads from (see
    /// `ordered.rs`): the last record applied when it started.
    based_on: u64,
    /// The sequence number its writes were installed under, once they were.
    installed_at: std::cell::Cell<Option<u64>>,
}

/// A transaction writing nothing that makes this many reads reads at a snapshot from then
/// on (one that scans does at its first scan).
const SNAPSHOT_AFTER_READS: usize = crate::base::priority::LONG_ATTEMPT_READS;

/// How many emptied parts a thread keeps for its next transactions.
const SPARE_PARTS: usize = 8;

thread_local! {
    /// Parts of this thread's finished transactions, kept with their buffers and their
    /// table, so that the next transaction on the same table allocates and looks up nothing.
    static SPARE: RefCell<Vec<Box<dyn Spare>>> = const { RefCell::new(Vec::new()) };
}

impl Tx {
    pub(crate) fn new(db: Database) -> Tx {
        let based_on = db.inner.ordered.applied();
        Tx {
            based_on,
            defer: false,
            db,
            parts: Vec::new(),
            snapshot: None,
            may_snapshot: false,
            reads: 0,
            stale: false,
            commit_time: None,
            installed_at: std::cell::Cell::new(None),
        }
    }

    /// Lets this transaction read at a snapshot once it turns out to read much and write
    /// nothing; `now`: from its start.
    pub(crate) fn allow_snapshot(&mut self, now: bool) {
        self.may_snapshot = true;
        if now {
            self.read_at_snapshot();
        }
    }

    /// Whether the transaction has buffered writes.
    pub(crate) fn wrote(&self) -> bool {
        self.parts.iter().any(|p| p.has_writes())
    }

    /// From now on, reads at a snapshot if the transaction may and has written nothing.
    fn read_at_snapshot(&mut self) {
        if !self.may_snapshot || self.snapshot.is_some() || self.wrote() {
            return;
        }
        // (A part whose store has been replaced since it was made fails validation.)
        let snapshot = self.db.open_snapshot();
        for p in &mut self.parts {
            p.read_at(snapshot.at);
        }
        self.snapshot = Some(snapshot);
    }

    /// This transaction's part for table `T`, for a read of many records (a scan, a
    /// query): a transaction that has written nothing reads at a snapshot from now on.
    pub(crate) fn table_to_scan<T: Record>(&mut self) -> Result<&mut TxTable<RowOf<T>>> {
        self.read_at_snapshot();
        self.table::<T>()
    }

    /// [`Tx::table_to_scan`] for the table `meta` describes.
    pub(crate) fn part_to_scan<T: StoredRecord>(
        &mut self,
        meta: &'static RecordMeta<T>,
        claim: Claim,
    ) -> Result<&mut TxTable<T>> {
        self.read_at_snapshot();
        self.part_for(meta, claim)
    }

    /// This transaction's part for table `T`, for a point read: after many, a transaction
    /// that has written nothing reads at a snapshot.
    pub(crate) fn table_to_read<T: Record>(&mut self) -> Result<&mut TxTable<RowOf<T>>> {
        self.count_read();
        self.table::<T>()
    }

    /// Counts a point read (or a lookup): the one that makes many opens a snapshot.
    fn count_read(&mut self) {
        self.reads += 1;
        if self.reads == SNAPSHOT_AFTER_READS {
            self.read_at_snapshot();
        }
    }

    /// The records of `T` passing `filter`, mapped by `f`, up to `want` of them (see
    /// [`TxTable::select_up_to`]); a transaction that has written nothing reads at a
    /// snapshot from a scan or a range on.
    pub(crate) fn select<T: Record, X>(
        &mut self,
        filter: &crate::schema::filter::Filter<T>,
        want: usize,
        mut f: impl FnMut(&T) -> X,
    ) -> Result<Vec<X>> {
        let rows = filter.for_rows();
        let xs =
            self.select_in(meta_of::<T>(), claim_table::<T>, &rows, want, |r| as_record::<T>(r).map(&mut f))?;
        all_ok(xs)
    }

    /// [`Tx::select`] on the table `meta` describes.
    pub(crate) fn select_in<T: StoredRecord, X>(
        &mut self,
        meta: &'static RecordMeta<T>,
        claim: Claim,
        filter: &crate::schema::filter::Filter<T>,
        want: usize,
        f: impl FnMut(&T) -> X,
    ) -> Result<Vec<X>> {
        let access = self.part_for(meta, claim)?.access(filter);
        if access.reads_many() {
            self.read_at_snapshot();
        } else {
            self.count_read();
        }
        Ok(self.part_for(meta, claim)?.select_planned(access, filter, want, f))
    }

    /// This transaction's part for the table `meta` describes, created on first use from
    /// the registry's current store.
    pub(crate) fn part_for<T: StoredRecord>(
        &mut self,
        meta: &'static RecordMeta<T>,
        claim: Claim,
    ) -> Result<&mut TxTable<T>> {
        self.part((meta.type_id)(), &|db| {
            claim(db)?;
            Ok(Box::new(TxTable::new(db.current_store(meta)?)) as Box<dyn TxPart>)
        })?
        .as_any_mut()
        .downcast_mut::<TxTable<T>>()
        .ok_or_else(|| Error::Internal("transaction part of another type".into()))
    }

    /// This transaction's part for table `T`, created on first use.
    pub(crate) fn table<T: Record>(&mut self) -> Result<&mut TxTable<RowOf<T>>> {
        self.part(TypeId::of::<T>(), &|db| Ok(Box::new(TxTable::new(db.table::<T>()?)) as Box<dyn TxPart>))?
            .as_any_mut()
            .downcast_mut::<TxTable<RowOf<T>>>()
            .ok_or_else(|| Error::Internal("transaction part of another type".into()))
    }

    /// This transaction's part for the table of `table`'s name and record type, created on
    /// first use from the registry's current store (one that replaced `table`'s since it
    /// was looked up, as a restore or a transform does, is the one written).
    pub(crate) fn part_of(&mut self, table: &Arc<dyn AnyTable>) -> Result<&mut dyn TxPart> {
        let ty = table.record_type();
        self.part(ty, &|db| {
            let current = db.any_table(table.name())?;
            if current.record_type() != ty {
                return Err(Error::TypeMismatch {
                    table: table.name().to_owned(),
                    stored: current.type_name(),
                    requested: table.type_name(),
                });
            }
            // What `Database::table` does as an operation starts.
            current.resume();
            Ok(current.new_part())
        })
    }

    /// The part for the table of record type `ty`: the one this transaction has, else one
    /// of this thread's spares, else `new(db)`.
    fn part(
        &mut self,
        ty: TypeId,
        new: &dyn Fn(&Database) -> Result<Box<dyn TxPart>>,
    ) -> Result<&mut dyn TxPart> {
        let i = match self.parts.iter().position(|p| p.record_type() == ty) {
            Some(i) => i,
            None => {
                let db = self.db.id();
                let spare = SPARE
                    .try_with(|s| {
                        let mut s = s.try_borrow_mut().ok()?;
                        let at = s.iter().position(|p| p.record_type() == ty && p.db_id() == db)?;
                        s.swap_remove(at).revive()
                    })
                    .ok()
                    .flatten();
                let mut part = match spare {
                    Some(part) => {
                        // What `Database::table` does as an operation starts.
                        part.resume();
                        part
                    }
                    None => new(&self.db)?,
                };
                // A table whose records are on other nodes of the cluster (or a copy being
                // filled, which only the applier of the order writes meanwhile).
                if !part.placement().is_held() && !crate::engine::sequencer::applying(self.db.id()) {
                    return Err(part.placement().not_here(part.table_name()));
                }
                if let Some(snapshot) = &self.snapshot {
                    if self.db.stores_older_than(snapshot.at) {
                        part.read_at(snapshot.at);
                    } else {
                        // Its records are numbered after the snapshot: it reads them as they
                        // are now, and runs again (at a new snapshot) whatever it returns.
                        self.stale = true;
                    }
                }
                self.parts.push(part);
                self.parts.len() - 1
            }
        };
        Ok(self.parts[i].as_mut())
    }

    /// Ends the transaction (committed or not): hands its parts back to the thread for
    /// later transactions, and returns the database handle.
    pub(crate) fn finish(self) -> Database {
        let Tx { db, parts, .. } = self;
        let _ = SPARE.try_with(|s| {
            let Ok(mut s) = s.try_borrow_mut() else { return };
            for p in parts {
                if let Some(spare) = p.recycle() {
                    if s.len() == SPARE_PARTS {
                        s.remove(0);
                    }
                    s.push(spare);
                }
            }
        });
        db
    }

    /// The tables this transaction touched, as gates (see `priority.rs`).
    pub(crate) fn gates(&self) -> Vec<Arc<dyn Gate>> {
        self.parts.iter().map(|p| p.gate()).collect()
    }

    /// Whether the transaction scanned a table or read many records: costly to run again.
    pub(crate) fn long(&self) -> bool {
        self.parts.iter().any(|p| p.scanned())
            || self.parts.iter().map(|p| p.read_count()).sum::<usize>()
                >= crate::base::priority::LONG_ATTEMPT_READS
    }

    /// The buffered writes as they are now, to roll a nested transaction back to.
    pub(crate) fn savepoint(&self) -> Vec<Box<dyn Any>> {
        self.parts.iter().map(|p| p.save_writes()).collect()
    }

    /// Drops the writes buffered since `savepoint` (what it read stays recorded: that only
    /// makes validation stricter).
    pub(crate) fn rollback_to(&mut self, savepoint: Vec<Box<dyn Any>>) {
        let mut saved = savepoint.into_iter();
        for p in &mut self.parts {
            p.restore_writes(saved.next());
        }
    }

    /// Whether what this transaction read is still what is committed, checked under the
    /// commit locks (so no commit is half installed meanwhile): tells a conflict from a real
    /// failure when the transaction's closure returns an error or panics.
    /// What it read at a snapshot is consistent: only the reads made before are checked.
    /// The versions now of what the transaction read that changed since it read them.
    pub(crate) fn changed_versions(&self) -> Vec<u64> {
        let mut out = Vec::new();
        for p in &self.parts {
            p.changed_versions(&mut out);
        }
        out
    }

    /// The sequence number the commit's writes were installed under, once they were (here,
    /// not through the order).
    pub(crate) fn installed_at(&self) -> Option<u64> {
        self.installed_at.get()
    }

    pub(crate) fn reads_unchanged(&mut self) -> bool {
        if self.stale {
            return false;
        }
        let mut reqs = Vec::new();
        for p in &self.parts {
            p.collect_locks(false, &mut reqs);
        }
        let _held = HeldLocks::acquire(reqs);
        self.parts.iter().all(|p| p.reads_unchanged(false))
    }

    /// Commits at `at` instead of the clock's time (see `features/apply_commit.rs`).
    pub(crate) fn commit_at(&mut self, at: SystemTime) {
        self.commit_time = Some(at);
    }

    /// Validates and installs the transaction. `Err(Error::Conflict)` means: run it again.
    pub(crate) fn commit(&mut self) -> Result<()> {
        if self.stale {
            return Err(Error::Conflict);
        }
        let writes = self.wrote();
        if writes {
            crate::db::sink::refuse_in_own_sink(&self.db)?;
            if let Some(sequencer) = self.db.sequencer()
                && self.writes_ordered()?
            {
                return self.propose(&sequencer);
            }
        }
        // (With a snapshot, a read before it must be validated: it may not be what the
        // snapshot holds.)
        if !writes && self.snapshot.is_none() && self.parts.iter().map(|p| p.read_count()).sum::<usize>() <= 1
        {
            // A single read is atomic on its own: nothing to validate (but a read that failed
            // on a disc-only table's file, or of a store since replaced, must not pass for
            // "absent").
            for p in &self.parts {
                p.healthy()?;
            }
            return Ok(());
        }
        self.apply()
    }

    /// Whether the commit's writes go through the order: `false` when they are all to this
    /// node's own tables (`TableOptions::local_content`), which commit here as on a database
    /// alone (what the transaction read of the others is checked here, under their commit
    /// locks, as on a database alone). An error when it writes tables of the order and
    /// touched this node's own: its writes to them would be installed apart from the
    /// order's verdict (and lost with a commit whose fate is unknown), and what it read of
    /// them could only be kept as it read it by holding their locks until the verdict,
    /// which the applier of the order could end up waiting for (through a writer holding a
    /// lock it needs while it waits for them).
    fn writes_ordered(&self) -> Result<bool> {
        let shared = self.parts.iter().find(|p| p.has_writes() && !p.is_local());
        let Some(shared) = shared else { return Ok(false) };
        match self.parts.iter().find(|p| p.is_local()) {
            None => Ok(true),
            Some(local) => Err(Error::Invalid(format!(
                "a transaction writes table {}, ordered with the cluster, and {} table {}, this node's own (local_content): {}",
                shared.table_name(),
                if local.has_writes() { "writes" } else { "reads" },
                local.table_name(),
                if local.has_writes() {
                    "write them in two transactions"
                } else {
                    "read it before, outside the transaction (its value is then not held until the commit)"
                }
            ))),
        }
    }

    /// The commit's time, read once: it decides what has expired for the unique check and
    /// for the events, however long the commit waits for its locks. (Not read when nothing
    /// the commit touches can expire.)
    fn time(&self) -> SystemTime {
        match self.commit_time {
            Some(at) => at,
            None if self.parts.iter().any(|p| p.expires()) => self.db.clock().now(),
            None => UNIX_EPOCH,
        }
    }

    /// Hands the commit to the sequencer, which has it applied here in its order (see
    /// `ordered.rs`).
    /// For [`transaction_async`](crate::transaction_async)'s transaction, the record is left
    /// for it to order, and the commit reports done.
    fn propose(&mut self, sequencer: &Arc<Box<dyn crate::engine::sequencer::Sequencer>>) -> Result<()> {
        // A table closed by a transaction with priority, of this copy or another one (see
        // `hold.rs`): wait for it first, holding no lock, at most its patience. (Not for an
        // async transaction's commit: its caller's executor thread would wait.)
        if !self.defer
            && let Some(owner) = self.parts.iter().find_map(|p| p.gate_closed())
        {
            self.db.priority().wait_for(owner);
        }
        // A read already overwritten here was overwritten after the transaction's start in
        // the shared order too: it would conflict there.
        if !self.reads_unchanged() {
            return Err(Error::Conflict);
        }
        let time = self.time();
        let mut changes = Vec::new();
        let mut reads = Vec::new();
        for p in &self.parts {
            changes.extend(p.change()?);
            reads.extend(p.read_summary()?);
        }
        let record = crate::engine::commit_record::CommitRecord {
            seq: 0,
            time,
            changes,
            based_on: self.based_on,
            reads,
        };
        crate::tx::context::note_proposed();
        if self.defer {
            crate::tx::deferral::leave(sequencer, record);
            return Ok(());
        }
        sequencer.order(record)
    }

    fn apply(&mut self) -> Result<()> {
        let writes = self.wrote();
        let now = self.time();
        // Set once a wait at a gate ran out of patience: the commit goes ahead.
        let mut past_gates = false;
        loop {
            for p in &mut self.parts {
                p.prepare();
            }
            let mut reqs = Vec::new();
            for p in &self.parts {
                p.collect_locks(writes, &mut reqs);
            }
            let held = HeldLocks::acquire(reqs);
            // A table closed by a transaction with priority: wait for it, holding no lock.
            // (Not for a commit record made elsewhere: it is decided, and the transaction
            // holding the gate may be waiting for it, applied in order.)
            if writes
                && !past_gates
                && self.commit_time.is_none()
                && let Some(owner) = self.parts.iter().find_map(|p| p.gate_closed())
            {
                drop(held);
                past_gates = !self.db.priority().wait_for(owner);
                continue;
            }
            // Every read first: a stale read means "run again", whatever else fails.
            for p in &self.parts {
                p.validate(writes)?;
            }
            let mut removals = Vec::new();
            for p in &self.parts {
                match p.check_unique(now) {
                    Ok(()) => {}
                    Err(UniqueFailure::Violation(e)) => return Err(e),
                    Err(UniqueFailure::ExpiredOwners(remove)) => removals.push(remove),
                }
            }
            if removals.is_empty() {
                return self.install_all(writes, held, now);
            }
            // Expired records hold values this commit needs: remove them, then try again
            // (the reads are validated again, so a transaction that read them runs again).
            drop(held);
            let mut removed = 0;
            for remove in removals {
                removed += remove(&self.db)?;
            }
            if removed == 0 {
                return Err(Error::Conflict);
            }
        }
    }

    /// Logs, numbers and installs the writes of a validated commit, under its locks.
    fn install_all(&self, writes: bool, held: HeldLocks<'_>, now: SystemTime) -> Result<()> {
        if writes {
            // Disc tables: logged (and, by the durability mode, synced) before anyone can
            // see the writes, while the commit locks keep conflicting commits waiting.
            let mut ops = Vec::new();
            for p in &self.parts {
                ops.extend(p.log_ops()?);
            }
            // With a sink, the commit's record, encoded before the writes are installed.
            let sink = self.db.sink();
            let changes = match &sink {
                Some(_) => self
                    .parts
                    .iter()
                    .map(|p| p.change())
                    .filter_map(Result::transpose)
                    .collect::<Result<Vec<_>>>()?,
                None => Vec::new(),
            };
            // Tables with subscribers: their events go out in commit order, so the publish
            // locks are held from the sequence number to the delivery (in table order).
            // With a sink, every table written: its records go out in commit order too.
            let mut publishing: Vec<(u32, &parking_lot::Mutex<()>)> = if sink.is_some() {
                self.parts.iter().filter_map(|p| p.order_lock()).collect()
            } else {
                self.parts.iter().filter_map(|p| p.publish_lock()).collect()
            };
            publishing.sort_by_key(|(id, _)| *id);
            let _published: Vec<_> = publishing.iter().map(|(_, m)| m.lock()).collect();
            let seq = self.db.sequence(&ops)?;
            self.installed_at.set(Some(seq));
            // Read after the number was taken (see `snapshots.rs`).
            let floor = self.db.snapshots().floor();
            for p in &self.parts {
                // Events only for a table whose publish lock this commit holds (taken
                // because it had subscribers, or for the sink and it has some).
                let held = publishing.iter().any(|(id, _)| *id == p.table_id());
                p.install(seq, floor, held && (sink.is_none() || p.has_subscribers()), now);
            }
            if let Some(sink) = sink {
                crate::db::sink::deliver(
                    &self.db,
                    &sink,
                    &crate::engine::commit_record::CommitRecord {
                        seq,
                        time: now,
                        changes,
                        based_on: 0,
                        reads: Vec::new(),
                    },
                );
            }
        }
        drop(held);
        Ok(())
    }
}
