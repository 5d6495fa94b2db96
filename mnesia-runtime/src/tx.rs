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

use std::any::{Any, TypeId};
use std::cell::RefCell;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::db::{Database, SnapshotGuard};
use crate::disk::record::{TableOps, encode};
use crate::error::{Error, Result};
use crate::events::{DeleteCause, Event};
use crate::index::TableIndex;
use crate::lock::{HeldLocks, LockReq, lock_order};
use crate::priority::Gate;
use crate::store::{IndexList, TableStore, Write};
use crate::table::{Table, TableType};
use crate::ttl::Alive;

/// One key a transaction writes.
#[derive(Clone)]
pub(crate) struct WriteEntry<T: Table> {
    pub(crate) key: T::Key,
    pub(crate) hash: u64,
    pub(crate) write: Write<T>,
}

/// The events of one key's change: a delete when the key is left empty; otherwise a write
/// per record now there that was not before and, in a bag, a delete per record removed
/// (carrying the record, whatever the subscription). A removed record whose deadline had
/// passed is a delete with the cause `Expired` (before the write that took its key, which
/// does not report it as its `old`).
fn change_events<T: Table>(
    key: T::Key,
    change: (&[T], &[T]),
    detailed: bool,
    cause: DeleteCause,
    alive: Alive,
    out: &mut Vec<Event<T>>,
) {
    let (old, new) = change;
    let cause_of = |r: &T| if alive.keeps(r) { cause } else { DeleteCause::Expired };
    if T::TYPE != TableType::Bag {
        if new.is_empty() {
            if let Some(gone) = old.first() {
                out.push(Event::Delete { key, old: detailed.then(|| gone.clone()), cause: cause_of(gone) });
            }
            return;
        }
        let replaced = old.first().filter(|r| alive.keeps(*r));
        if let Some(gone) = old.first().filter(|r| !alive.keeps(*r)) {
            // The expired record a write took the key of goes first.
            out.push(Event::Delete {
                key: key.clone(),
                old: detailed.then(|| gone.clone()),
                cause: DeleteCause::Expired,
            });
        }
        for n in new {
            out.push(Event::Write { new: n.clone(), old: detailed.then(|| replaced.cloned()).flatten() });
        }
        return;
    }
    if new.is_empty() {
        for r in old {
            out.push(Event::Delete { key: key.clone(), old: Some(r.clone()), cause: cause_of(r) });
        }
        return;
    }
    // Bag records are told apart by their encoding.
    let encoded = |r: &T| encode(r).unwrap_or_default();
    let before: Vec<Vec<u8>> = old.iter().map(encoded).collect();
    let after: Vec<Vec<u8>> = new.iter().map(encoded).collect();
    for (r, b) in old.iter().zip(&before) {
        if !after.contains(b) {
            out.push(Event::Delete { key: key.clone(), old: Some(r.clone()), cause: cause_of(r) });
        }
    }
    for (n, a) in new.iter().zip(&after) {
        if !before.contains(a) {
            out.push(Event::Write { new: n.clone(), old: None });
        }
    }
}

/// Why a commit's unique check failed.
pub(crate) enum UniqueFailure {
    /// A value another live record holds.
    Violation(Error),
    /// Values held only by records that have expired: the commit removes those records (as
    /// the reaper would) once its locks are released, then tries again.
    ExpiredOwners(RemoveExpired),
}

/// Removes expired records (see [`UniqueFailure::ExpiredOwners`]); returns how many.
pub(crate) type RemoveExpired = Box<dyn FnOnce(&crate::db::Database) -> Result<usize>>;

/// The buffered writes of one table, at most one entry per key.
#[derive(Clone)]
pub(crate) struct WriteSet<T: Table> {
    entries: Vec<WriteEntry<T>>,
    by_key: Option<hashbrown::HashMap<T::Key, usize>>,
}

const WRITE_SET_LINEAR: usize = 12;

impl<T: Table> WriteSet<T> {
    fn new() -> Self {
        WriteSet { entries: Vec::new(), by_key: None }
    }

    pub(crate) fn get(&self, key: &T::Key) -> Option<&Write<T>> {
        self.position(key).map(|i| &self.entries[i].write)
    }

    fn position(&self, key: &T::Key) -> Option<usize> {
        match &self.by_key {
            Some(m) => m.get(key).copied(),
            None => self.entries.iter().position(|e| e.key == *key),
        }
    }

    fn set(&mut self, key: T::Key, hash: u64, write: Write<T>) {
        if let Some(i) = self.position(&key) {
            self.entries[i].write = write;
            return;
        }
        if let Some(m) = &mut self.by_key {
            m.insert(key.clone(), self.entries.len());
        } else if self.entries.len() >= WRITE_SET_LINEAR {
            let mut m: hashbrown::HashMap<T::Key, usize> =
                self.entries.iter().enumerate().map(|(i, e)| (e.key.clone(), i)).collect();
            m.insert(key.clone(), self.entries.len());
            self.by_key = Some(m);
        }
        self.entries.push(WriteEntry { key, hash, write });
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &WriteEntry<T>> {
        self.entries.iter()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// What a commit prepared for one table before locking.
struct Prepared<T: Table> {
    /// The index list, held through a guard: no shared reference count is touched.
    indexes: arc_swap::Guard<Arc<IndexList<T>>>,
    /// Version of each written key when prepared, in write-set order.
    peeked: Vec<u64>,
    /// For each written key, the indexes (bits by position in `indexes`) whose entries for
    /// the key change.
    changed: Vec<u64>,
    /// `(structure, shard)` of every index shard whose entries the commit changes.
    index_shards: Vec<(u16, u16)>,
}

/// A transaction's view of one table: what it read and what it will write.
pub(crate) struct TxTable<T: Table> {
    pub(crate) store: Arc<TableStore<T>>,
    epoch: u64,
    /// Point reads: key, its hash, the version seen (0: absent).
    reads: Vec<(T::Key, u64, u64)>,
    /// Scanned record shards and the version seen.
    shard_reads: Vec<(usize, u64)>,
    /// Index lookups: the index, the shard and its version seen.
    index_reads: Vec<(Arc<dyn TableIndex<T>>, usize, u64)>,
    pub(crate) writes: RefCell<WriteSet<T>>,
    prepared: Option<Prepared<T>>,
    /// The snapshot this part reads at, once its transaction has one.
    snapshot: Option<SnapshotReads>,
}

/// Where a part's reads at a snapshot begin: the number of each kind of read made before.
/// A transaction that writes nothing validates only those earlier reads (what it read at
/// the snapshot is consistent); one that writes validates all.
#[derive(Clone, Copy)]
struct SnapshotReads {
    at: u64,
    reads: usize,
    shard_reads: usize,
    index_reads: usize,
    /// The record shards whose commits numbered up to `at` are known to be installed (bit
    /// per shard): before its first read of a shard, the part waits for the commit holding
    /// the shard's commit lock (see `snapshots.rs`).
    settled: u64,
}

/// Every shard settled.
const ALL_SETTLED: u64 = u64::MAX;

/// The bit of index `i` in a change mask; indexes past the 64th share the last bit.
fn index_bit(i: usize) -> u64 {
    1u64 << i.min(63)
}

fn structure_of(position: usize) -> u16 {
    u16::try_from(position + 1).unwrap_or(u16::MAX)
}

fn shard_u16(shard: usize) -> u16 {
    u16::try_from(shard).unwrap_or(u16::MAX)
}

impl<T: Table> TxTable<T> {
    pub(crate) fn new(store: Arc<TableStore<T>>) -> Self {
        let epoch = store.indexes.load().epoch;
        TxTable {
            store,
            epoch,
            reads: Vec::new(),
            shard_reads: Vec::new(),
            index_reads: Vec::new(),
            writes: RefCell::new(WriteSet::new()),
            prepared: None,
            snapshot: None,
        }
    }

    /// The snapshot this part reads at, if any.
    pub(crate) fn at(&self) -> Option<u64> {
        self.snapshot.map(|s| s.at)
    }

    /// The snapshot to read record shard `shard` at, if any, once the shard is settled.
    pub(crate) fn at_shard(&mut self, shard: usize) -> Option<u64> {
        let s = self.snapshot.as_mut()?;
        let bit = 1u64 << shard.min(63);
        if s.settled & bit == 0 {
            self.store.shard(shard).commit.wait_for_holder();
            s.settled |= bit;
        }
        Some(s.at)
    }

    /// The snapshot to read at, if any, once every record shard is settled: before an
    /// index lookup or a range, whose answers depend on every shard's commits.
    pub(crate) fn at_all(&mut self) -> Option<u64> {
        let s = self.snapshot.as_mut()?;
        if s.settled != ALL_SETTLED {
            for (i, lock) in self.store.all_commit_locks() {
                if s.settled & (1u64 << i.min(63)) == 0 {
                    lock.wait_for_holder();
                }
            }
            s.settled = ALL_SETTLED;
        }
        Some(s.at)
    }

    pub(crate) fn writes(&mut self) -> &WriteSet<T> {
        self.writes.get_mut()
    }

    /// The records a key holds as this transaction sees them (its own writes first).
    pub(crate) fn read_group(&mut self, key: &T::Key) -> Vec<T> {
        let alive = self.store.alive();
        let live = |recs: &[T]| recs.iter().filter(|r| alive.keeps(*r)).cloned().collect();
        if let Some(w) = self.writes.get_mut().get(key) {
            return live(w.records());
        }
        let hash = self.store.hash(key);
        let at = self.at_shard(self.store.shard_of(hash));
        let (version, recs) = self.store.get_at(key, hash, at, |v, recs| (v, live(recs)));
        self.reads.push((key.clone(), hash, version));
        recs
    }

    /// The first record of a key as this transaction sees it.
    pub(crate) fn read_one(&mut self, key: &T::Key) -> Option<T> {
        let alive = self.store.alive();
        if let Some(w) = self.writes.get_mut().get(key) {
            return w.records().iter().find(|r| alive.keeps(*r)).cloned();
        }
        let hash = self.store.hash(key);
        let at = self.at_shard(self.store.shard_of(hash));
        let (version, rec) =
            self.store.get_at(key, hash, at, |v, recs| (v, recs.iter().find(|r| alive.keeps(*r)).cloned()));
        self.reads.push((key.clone(), hash, version));
        rec
    }

    /// Whether the key holds a record, as this transaction sees it.
    pub(crate) fn exists(&mut self, key: &T::Key) -> bool {
        if T::TTL_FIELD.is_some() {
            return !self.read_group(key).is_empty();
        }
        if let Some(w) = self.writes.get_mut().get(key) {
            return !w.records().is_empty();
        }
        let hash = self.store.hash(key);
        let at = self.at_shard(self.store.shard_of(hash));
        let (version, present) = self.store.get_at(key, hash, at, |v, recs| (v, !recs.is_empty()));
        self.reads.push((key.clone(), hash, version));
        present
    }

    /// Buffers a write of the key's new content.
    pub(crate) fn set(&mut self, key: T::Key, write: Write<T>) {
        let hash = self.store.hash(&key);
        self.writes.get_mut().set(key, hash, write);
    }

    /// Writes a record: replaces the key's record (`set`, `ordered_set`) or adds it to the
    /// key's group unless an identical record is there (`bag`). Returns whether the key (set)
    /// or the identical record (bag) was there before.
    pub(crate) fn put(&mut self, rec: T) -> Result<()> {
        let key = rec.key().clone();
        if self.store.kind == TableType::Bag {
            let mut group = self.read_group(&key);
            let bytes = encode(&rec)?;
            let mut present = false;
            for r in &group {
                if encode(r)? == bytes {
                    present = true;
                    break;
                }
            }
            if !present {
                group.push(rec);
            }
            self.set(key, Write::Group(group));
        } else {
            self.set(key, Write::Put(rec));
        }
        Ok(())
    }

    /// Records that a record shard was scanned.
    pub(crate) fn note_shard(&mut self, shard: usize, version: u64) {
        self.shard_reads.push((shard, version));
    }

    /// Records an index lookup.
    pub(crate) fn note_index(&mut self, index: &Arc<dyn TableIndex<T>>, shard: usize, version: u64) {
        self.index_reads.push((Arc::clone(index), shard, version));
    }

    /// Records a point read made outside `read_one` (by a planned access).
    pub(crate) fn note_read(&mut self, key: &T::Key, hash: u64, version: u64) {
        self.reads.push((key.clone(), hash, version));
    }

    /// The reads to validate: all of them, or (`all` false) those made before the part
    /// read at a snapshot.
    #[allow(clippy::type_complexity)]
    fn to_validate(
        &self,
        all: bool,
    ) -> (&[(T::Key, u64, u64)], &[(usize, u64)], &[(Arc<dyn TableIndex<T>>, usize, u64)]) {
        match self.snapshot {
            Some(s) if !all => (
                &self.reads[..s.reads],
                &self.shard_reads[..s.shard_reads],
                &self.index_reads[..s.index_reads],
            ),
            _ => (&self.reads, &self.shard_reads, &self.index_reads),
        }
    }

    fn reads_unchanged(&self, all: bool) -> bool {
        let (reads, shard_reads, index_reads) = self.to_validate(all);
        // A store put aside for a new one (a restore, a move, a transform) is emptied: what
        // was read from it may be gone, though its versions now read as unchanged.
        !self.store.is_replaced()
            && reads.iter().all(|(k, h, v)| self.store.version_of(k, *h) == *v)
            && shard_reads.iter().all(|(s, v)| self.store.shard_version(*s) == *v)
            && index_reads.iter().all(|(i, s, v)| i.shard_version(*s) == *v)
    }

    fn read_count(&self) -> usize {
        self.reads.len() + self.shard_reads.len() + self.index_reads.len()
    }
}

/// The part of a transaction that touches one table, whatever its record type.
pub(crate) trait TxPart: Any {
    fn record_type(&self) -> TypeId;
    fn table_id(&self) -> u32;
    /// Whether the table's records can expire (it has a `#[ttl]` field).
    fn expires(&self) -> bool;
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn has_writes(&self) -> bool;
    fn read_count(&self) -> usize;
    /// Whether the part scanned a shard of records.
    fn scanned(&self) -> bool;
    fn prepare(&mut self);
    /// Lock requests for the reads to validate (see [`TxPart::validate`]) and the writes.
    fn collect_locks<'a>(&'a self, all_reads: bool, out: &mut Vec<LockReq<'a>>);
    /// Reads at snapshot `at` from now on (each record shard once its commits numbered up
    /// to `at` are installed).
    fn read_at(&mut self, at: u64);
    /// Checks, under the commit locks, that what the part read and the keys it writes are
    /// unchanged: `Err(Conflict)` otherwise.
    fn validate(&self, all_reads: bool) -> Result<()>;
    /// Checks, under the commit locks and once every part validated, that unique indexes
    /// stay unique, at the commit's time `now` (a record expired by then holds no value).
    fn check_unique(&self, now: SystemTime) -> std::result::Result<(), UniqueFailure>;
    /// `Err` if the table's disc-only file failed.
    fn healthy(&self) -> Result<()>;
    /// As an operation starts: a table stopped by its disc-only file resumes if the file
    /// works again (see `TableStore::resume`).
    fn resume(&self);
    /// The table's id and publish lock, if it has subscribers and this part writes.
    fn publish_lock(&self) -> Option<(u32, &parking_lot::Mutex<()>)>;
    /// The table's id and publish lock if this part writes, subscribers or not: what
    /// orders the commit records handed to a sink (see `commit.rs`).
    fn order_lock(&self) -> Option<(u32, &parking_lot::Mutex<()>)>;
    /// Whether the table has subscribers.
    fn has_subscribers(&self) -> bool;
    /// The part's writes for a commit record, if it writes.
    fn change(&self) -> Result<Option<crate::commit::TableChange>>;
    /// What the part read, as any copy can check it (see `ordered.rs`).
    fn read_summary(&self) -> Result<Option<crate::ordered::TableReads>>;
    /// Installs the writes; with `publish`, also delivers their events to the table's
    /// subscribers (the caller holds the table's publish lock). `now`: the commit's time.
    fn install(&self, seq: u64, floor: u64, publish: bool, now: SystemTime);
    fn reads_unchanged(&self, all: bool) -> bool;
    /// The table, as a gate a transaction with priority closes.
    fn gate(&self) -> Arc<dyn Gate>;
    /// The thread holding the table's gate closed, if this part writes and it is not this
    /// thread: the commit must wait for it.
    fn gate_closed(&self) -> Option<u64>;
    /// Empties the part for reuse by a later transaction of this thread. The spare keeps its
    /// buffers but holds its table weakly: a thread's spares never keep a table or a
    /// database alive.
    fn recycle(self: Box<Self>) -> Option<Box<dyn Spare>>;
    /// The part's writes encoded for the commit log, if its table is on disc.
    fn log_ops(&self) -> Result<Option<TableOps>>;
    /// A copy of the buffered writes, for a nested transaction's savepoint.
    fn save_writes(&self) -> Box<dyn Any>;
    /// Puts back writes saved by `save_writes` (or drops all with `None`).
    fn restore_writes(&mut self, saved: Option<Box<dyn Any>>);
}

impl<T: Table> TxPart for TxTable<T> {
    fn record_type(&self) -> TypeId {
        TypeId::of::<T>()
    }

    fn expires(&self) -> bool {
        T::TTL_FIELD.is_some()
    }

    fn table_id(&self) -> u32 {
        self.store.id
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn has_writes(&self) -> bool {
        !self.writes.borrow().is_empty()
    }

    fn read_count(&self) -> usize {
        TxTable::read_count(self)
    }

    fn scanned(&self) -> bool {
        !self.shard_reads.is_empty()
    }

    fn prepare(&mut self) {
        let writes = self.writes.get_mut();
        if writes.entries.is_empty() {
            self.prepared = None;
            return;
        }
        let indexes = self.store.indexes.load();
        let mut peeked = Vec::with_capacity(writes.entries.len());
        let mut changed = Vec::with_capacity(writes.entries.len());
        let mut index_shards = Vec::new();
        for e in &writes.entries {
            let new = e.write.records();
            let (version, mask) = self.store.get_with(&e.key, e.hash, |v, old| {
                let mut mask = 0u64;
                for (i, idx) in indexes.list.iter().enumerate() {
                    let same =
                        old.len() == new.len() && old.iter().zip(new).all(|(a, b)| idx.same_value(a, b));
                    if same {
                        // The index keeps its entries for this key: no lock, no check.
                        continue;
                    }
                    mask |= index_bit(i);
                    let structure = structure_of(idx.position());
                    for r in old.iter().chain(new) {
                        index_shards.push((structure, shard_u16(idx.shard_of_record(r))));
                    }
                }
                (v, mask)
            });
            peeked.push(version);
            changed.push(mask);
        }
        self.prepared = Some(Prepared { indexes, peeked, changed, index_shards });
    }

    fn read_at(&mut self, at: u64) {
        if self.snapshot.is_some() {
            return;
        }
        self.snapshot = Some(SnapshotReads {
            at,
            reads: self.reads.len(),
            shard_reads: self.shard_reads.len(),
            index_reads: self.index_reads.len(),
            settled: 0,
        });
    }

    fn collect_locks<'a>(&'a self, all_reads: bool, out: &mut Vec<LockReq<'a>>) {
        let (reads, shard_reads, index_reads) = self.to_validate(all_reads);
        let store = &self.store;
        let table = store.id;
        let req = |structure: u16, shard: usize, exclusive: bool, lock| LockReq {
            order: lock_order(table, structure, shard_u16(shard)),
            exclusive,
            lock,
        };
        for (_, h, _) in reads {
            let s = store.shard_of(*h);
            out.push(req(0, s, false, &store.shard(s).commit));
        }
        for (s, _) in shard_reads {
            out.push(req(0, *s, false, &store.shard(*s).commit));
        }
        for (idx, s, _) in index_reads {
            out.push(req(structure_of(idx.position()), *s, false, idx.commit_lock(*s)));
        }
        // SAFETY of the borrow: `writes` is only borrowed mutably by `install`, which runs
        // after the locks are collected and does not overlap with this shared borrow.
        let writes = self.writes.borrow();
        for e in &writes.entries {
            let s = store.shard_of(e.hash);
            out.push(req(0, s, true, &store.shard(s).commit));
        }
        if let Some(p) = &self.prepared {
            for (structure, shard) in &p.index_shards {
                if let Some(idx) = p.indexes.list.iter().find(|i| structure_of(i.position()) == *structure) {
                    out.push(req(
                        *structure,
                        usize::from(*shard),
                        true,
                        idx.commit_lock(usize::from(*shard)),
                    ));
                }
            }
        }
    }

    fn validate(&self, all_reads: bool) -> Result<()> {
        let store = &self.store;
        if store.is_dropped() {
            // Moved to another storage type meanwhile: run again on the new store.
            return Err(if store.is_replaced() {
                Error::Conflict
            } else {
                Error::NoSuchTable { table: T::NAME.to_owned() }
            });
        }
        store.healthy()?;
        let epoch = store.indexes.load().epoch;
        // An index added or removed since this transaction started: its index reads and
        // prepared index locks may be stale.
        if epoch != self.epoch || !self.reads_unchanged(all_reads) {
            return Err(Error::Conflict);
        }
        let Some(p) = &self.prepared else {
            return Ok(());
        };
        if p.indexes.epoch != epoch {
            return Err(Error::Conflict);
        }
        let writes = self.writes.borrow();
        for (e, v) in writes.entries.iter().zip(&p.peeked) {
            if store.version_of(&e.key, e.hash) != *v {
                return Err(Error::Conflict);
            }
        }
        Ok(())
    }

    fn resume(&self) {
        self.store.resume();
    }

    fn healthy(&self) -> Result<()> {
        // A store put aside for a new one is emptied: a read of it may have found nothing.
        if self.store.is_replaced() {
            return Err(Error::Conflict);
        }
        self.store.healthy()
    }

    fn publish_lock(&self) -> Option<(u32, &parking_lot::Mutex<()>)> {
        (self.store.subs.any() && !self.writes.borrow().is_empty())
            .then(|| (self.store.id, &self.store.subs.publishing))
    }

    fn has_subscribers(&self) -> bool {
        self.store.subs.any()
    }

    fn order_lock(&self) -> Option<(u32, &parking_lot::Mutex<()>)> {
        (!self.writes.borrow().is_empty()).then(|| (self.store.id, &self.store.subs.publishing))
    }

    fn change(&self) -> Result<Option<crate::commit::TableChange>> {
        let writes = self.writes.borrow();
        if writes.is_empty() {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(writes.entries.len());
        for e in &writes.entries {
            out.push(crate::commit::KeyChange {
                key: encode(&e.key)?,
                value: e.write.logged()?.into(),
                expired: matches!(e.write, Write::Expire(_)),
            });
        }
        Ok(Some(crate::commit::TableChange { table: T::NAME.to_owned(), writes: out }))
    }

    fn read_summary(&self) -> Result<Option<crate::ordered::TableReads>> {
        let whole = !self.shard_reads.is_empty() || !self.index_reads.is_empty();
        if self.reads.is_empty() && !whole {
            return Ok(None);
        }
        let mut buckets = Vec::with_capacity(self.reads.len());
        for (key, _, _) in &self.reads {
            buckets.push(crate::ordered::bucket(&encode(key)?));
        }
        buckets.sort_unstable();
        buckets.dedup();
        Ok(Some(crate::ordered::TableReads { table: T::NAME.to_owned(), buckets, whole }))
    }

    fn check_unique(&self, now: SystemTime) -> std::result::Result<(), UniqueFailure> {
        let Some(p) = &self.prepared else {
            return Ok(());
        };
        let writes = self.writes.borrow();
        let alive = Alive::at::<T>(|| now);
        // Owners whose record holding a wanted value has expired (the reaper has not removed
        // them yet): they give the value up once removed.
        let expired_owners: RefCell<Vec<T::Key>> = RefCell::new(Vec::new());
        for (i, idx) in p.indexes.list.iter().enumerate() {
            if !idx.unique() {
                continue;
            }
            // Only the records whose value of this field changes can break uniqueness.
            let puts: Vec<(&T::Key, &T)> = writes
                .entries
                .iter()
                .zip(&p.changed)
                .filter(|(_, mask)| *mask & index_bit(i) != 0)
                .flat_map(|(e, _)| e.write.records().iter().map(move |r| (&e.key, r)))
                .collect();
            if puts.is_empty() {
                continue;
            }
            let gives_up = |owner: &T::Key, rec: &T| {
                if let Some(w) = writes.get(owner) {
                    return !w.records().iter().any(|r| idx.same_value(r, rec));
                }
                if T::TTL_FIELD.is_none() {
                    return false;
                }
                let hash = self.store.hash(owner);
                let expired = self.store.get_with(owner, hash, |_, recs| {
                    let holds = |r: &&T| idx.same_value(r, rec);
                    recs.iter().filter(holds).all(|r| !alive.keeps(r)) && recs.iter().any(|r| holds(&r))
                });
                if expired {
                    expired_owners.borrow_mut().push(owner.clone());
                }
                expired
            };
            if let Err(d) = idx.check_unique(&puts, &gives_up) {
                return Err(UniqueFailure::Violation(Error::UniqueViolation {
                    table: T::NAME.to_owned(),
                    field: idx.field(),
                    value: d.value,
                    existing_key: format!("{:?}", d.owner),
                }));
            }
        }
        let owners = expired_owners.into_inner();
        if owners.is_empty() {
            return Ok(());
        }
        // Expired as of the commit's time, not the clock's: a commit record applied on
        // another copy decides alike.
        Err(UniqueFailure::ExpiredOwners(Box::new(move |db: &crate::db::Database| {
            crate::expiring::reap_keys::<T>(db, &owners, Some(now))
        })))
    }

    fn install(&self, seq: u64, floor: u64, publish: bool, now: SystemTime) {
        let Some(p) = &self.prepared else { return };
        let mut writes = self.writes.borrow_mut();
        let entries = std::mem::take(&mut writes.entries);
        writes.by_key = None;
        let detailed = publish && self.store.subs.any_detailed();
        let alive = Alive::at::<T>(|| now);
        let mut events = Vec::new();
        for (e, mask) in entries.into_iter().zip(&p.changed) {
            let mask = *mask;
            let key = publish.then(|| e.key.clone());
            let cause = if matches!(e.write, Write::Expire(_)) {
                DeleteCause::Expired
            } else {
                DeleteCause::Explicit
            };
            self.store.install(&e.key, e.hash, e.write, seq, floor, |old, new| {
                if let Some(key) = key {
                    change_events(key, (old, new), detailed, cause, alive, &mut events);
                }
                if mask == 0 {
                    return;
                }
                for (i, idx) in p.indexes.list.iter().enumerate() {
                    if mask & index_bit(i) == 0 {
                        continue;
                    }
                    for r in old {
                        if !new.iter().any(|n| idx.same_value(n, r)) {
                            idx.remove(r, seq);
                        }
                    }
                    for n in new {
                        if !old.iter().any(|r| idx.same_value(n, r)) {
                            idx.insert(n, seq);
                        }
                    }
                }
            });
        }
        if publish {
            self.store.subs.deliver(events, detailed);
        }
    }

    fn reads_unchanged(&self, all: bool) -> bool {
        TxTable::reads_unchanged(self, all)
    }

    fn gate(&self) -> Arc<dyn Gate> {
        Arc::clone(&self.store) as Arc<dyn Gate>
    }

    fn gate_closed(&self) -> Option<u64> {
        if self.writes.borrow().is_empty() {
            return None;
        }
        self.store.gate.closed_to_me()
    }

    fn recycle(self: Box<Self>) -> Option<Box<dyn Spare>> {
        let TxTable { store, mut reads, mut shard_reads, mut index_reads, writes, .. } = *self;
        let mut writes = writes.into_inner();
        if store.is_dropped() || reads.capacity() > 4096 || writes.entries.capacity() > 4096 {
            // A dropped table, or a big transaction whose buffers are not worth keeping.
            return None;
        }
        reads.clear();
        shard_reads.clear();
        index_reads.clear();
        writes.entries.clear();
        writes.by_key = None;
        Some(Box::new(SpareTable { store, reads, shard_reads, index_reads, writes }))
    }

    fn save_writes(&self) -> Box<dyn Any> {
        Box::new(self.writes.borrow().clone())
    }

    fn restore_writes(&mut self, saved: Option<Box<dyn Any>>) {
        let saved = saved.and_then(|b| b.downcast::<WriteSet<T>>().ok());
        *self.writes.get_mut() = saved.map_or_else(WriteSet::new, |b| *b);
    }

    fn log_ops(&self) -> Result<Option<TableOps>> {
        let Some(table) = self.store.disk_id() else { return Ok(None) };
        let writes = self.writes.borrow();
        if writes.is_empty() {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(writes.entries.len());
        for e in &writes.entries {
            out.push((encode(&e.key)?, e.write.logged()?));
        }
        let counter = self.store.counter.load(std::sync::atomic::Ordering::Acquire);
        Ok(Some(TableOps { table, clear: false, counter, reset: false, writes: out }))
    }
}

/// The buffers of a finished transaction's part, kept by its thread for the next one.
pub(crate) trait Spare: Any {
    fn record_type(&self) -> TypeId;
    fn db_id(&self) -> u64;
    /// A part for a new transaction, if the table still exists.
    fn revive(self: Box<Self>) -> Option<Box<dyn TxPart>>;
}

struct SpareTable<T: Table> {
    /// Held strongly (a weak handle would cost a shared reference count update per
    /// transaction): a dropped table or a closed database empties its store, so a spare
    /// keeps at most an empty shell alive.
    store: Arc<TableStore<T>>,
    reads: Vec<(T::Key, u64, u64)>,
    shard_reads: Vec<(usize, u64)>,
    index_reads: Vec<(Arc<dyn TableIndex<T>>, usize, u64)>,
    writes: WriteSet<T>,
}

impl<T: Table> Spare for SpareTable<T> {
    fn record_type(&self) -> TypeId {
        TypeId::of::<T>()
    }

    fn db_id(&self) -> u64 {
        self.store.db_id
    }

    fn revive(self: Box<Self>) -> Option<Box<dyn TxPart>> {
        let SpareTable { store, reads, shard_reads, index_reads, writes } = *self;
        if store.is_dropped() {
            return None;
        }
        let epoch = store.indexes.load().epoch;
        Some(Box::new(TxTable {
            store,
            epoch,
            reads,
            shard_reads,
            index_reads,
            writes: RefCell::new(writes),
            prepared: None,
            snapshot: None,
        }))
    }
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
}

/// A transaction writing nothing that makes this many reads reads at a snapshot from then
/// on (one that scans does at its first scan).
const SNAPSHOT_AFTER_READS: usize = crate::priority::LONG_ATTEMPT_READS;

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
    pub(crate) fn table_to_scan<T: Table>(&mut self) -> Result<&mut TxTable<T>> {
        self.read_at_snapshot();
        self.table::<T>()
    }

    /// This transaction's part for table `T`, for a point read: after many, a transaction
    /// that has written nothing reads at a snapshot.
    pub(crate) fn table_to_read<T: Table>(&mut self) -> Result<&mut TxTable<T>> {
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
    pub(crate) fn select<T: Table, X>(
        &mut self,
        filter: &crate::filter::Filter<T>,
        want: usize,
        f: impl FnMut(&T) -> X,
    ) -> Result<Vec<X>> {
        let access = self.table::<T>()?.access(filter);
        if access.reads_many() {
            self.read_at_snapshot();
        } else {
            self.count_read();
        }
        Ok(self.table::<T>()?.select_planned(access, filter, want, f))
    }

    /// This transaction's part for table `T`, created on first use.
    pub(crate) fn table<T: Table>(&mut self) -> Result<&mut TxTable<T>> {
        let ty = TypeId::of::<T>();
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
                    None => Box::new(TxTable::new(self.db.table::<T>()?)) as Box<dyn TxPart>,
                };
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
        self.parts[i]
            .as_any_mut()
            .downcast_mut::<TxTable<T>>()
            .ok_or_else(|| Error::Internal("transaction part of another type".into()))
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
            || self.parts.iter().map(|p| p.read_count()).sum::<usize>() >= crate::priority::LONG_ATTEMPT_READS
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

    /// Commits at `at` instead of the clock's time (see `commit.rs`).
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
            crate::commit::refuse_in_own_sink(&self.db)?;
            if let Some(sequencer) = self.db.sequencer() {
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
    fn propose(&mut self, sequencer: &Arc<Box<dyn crate::ordered::Sequencer>>) -> Result<()> {
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
        let record = crate::commit::CommitRecord { seq: 0, time, changes, based_on: self.based_on, reads };
        if self.defer {
            crate::async_tx::leave(sequencer, record);
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
            // Read after the number was taken (see `snapshots.rs`).
            let floor = self.db.snapshots().floor();
            for p in &self.parts {
                // Events only for a table whose publish lock this commit holds (taken
                // because it had subscribers, or for the sink and it has some).
                let held = publishing.iter().any(|(id, _)| *id == p.table_id());
                p.install(seq, floor, held && (sink.is_none() || p.has_subscribers()), now);
            }
            if let Some(sink) = sink {
                crate::commit::deliver(
                    &self.db,
                    &sink,
                    &crate::commit::CommitRecord { seq, time: now, changes, based_on: 0, reads: Vec::new() },
                );
            }
        }
        drop(held);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Rec, rec};

    #[test]
    fn write_set_keeps_one_entry_per_key_past_the_linear_size() {
        let mut ws: WriteSet<Rec> = WriteSet::new();
        for round in 0..2 {
            for id in 0..40u32 {
                ws.set(id, u64::from(id), Write::Put(rec(id, "t", round)));
            }
        }
        assert_eq!(ws.iter().count(), 40);
        assert!(ws.by_key.is_some());
        for id in 0..40u32 {
            match ws.get(&id) {
                Some(Write::Put(r)) => assert_eq!(r.n, 1, "the last write wins"),
                _ => panic!("missing {id}"),
            }
        }
        ws.set(3, 3, Write::Delete);
        assert!(matches!(ws.get(&3), Some(Write::Delete)));
        assert!(ws.get(&99).is_none());
    }
}
