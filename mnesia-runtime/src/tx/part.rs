//! A transaction's part for one table: what it read (to validate) and what it will write
//! (to prepare, lock, check and install), and the emptied part a thread keeps for its next
//! transaction on the table.

use std::any::{Any, TypeId};
use std::cell::RefCell;
use std::sync::Arc;
use std::time::SystemTime;

use crate::base::lock::{LockReq, lock_order};
use crate::base::priority::Gate;
use crate::disk::record::{TableOps, encode};
use crate::engine::events::DeleteCause;
use crate::engine::store::{IndexList, TableStore, Write};
use crate::engine::ttl::Alive;
use crate::error::{Error, Result};
use crate::schema::index_spec::TableIndex;
use crate::schema::record::TableType;
use crate::schema::stored::StoredRecord;

use super::write_set::WriteSet;
use crate::db::table_part::{Spare, TxPart, UniqueFailure};

/// What a commit prepared for one table before locking.
struct Prepared<T: StoredRecord> {
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
pub(crate) struct TxTable<T: StoredRecord> {
    /// The record type's id (`RecordMeta::type_id`), kept: parts are found by it.
    record_type: TypeId,
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

impl<T: StoredRecord> TxTable<T> {
    pub(crate) fn new(store: Arc<TableStore<T>>) -> Self {
        let epoch = store.indexes.load().epoch;
        TxTable {
            record_type: (store.meta.type_id)(),
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

    /// Whether the key holds a record, as this transaction sees it.
    pub(crate) fn exists(&mut self, key: &T::Key) -> bool {
        if self.store.meta.ttl_field.is_some() {
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
            let encode = self.store.meta.encode;
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

    /// Records a point read made outside `read_one_with` (by a planned access).
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

    fn changed_versions(&self, out: &mut Vec<u64>) {
        let now = |was: u64, now: u64| (now != was).then_some(now);
        out.extend(self.reads.iter().filter_map(|(k, h, v)| now(*v, self.store.version_of(k, *h))));
        out.extend(self.shard_reads.iter().filter_map(|(s, v)| now(*v, self.store.shard_version(*s))));
        out.extend(self.index_reads.iter().filter_map(|(i, s, v)| now(*v, i.shard_version(*s))));
    }
}

impl<T: StoredRecord> TxPart for TxTable<T> {
    fn record_type(&self) -> TypeId {
        self.record_type
    }

    fn expires(&self) -> bool {
        self.store.meta.ttl_field.is_some()
    }

    fn table_id(&self) -> u32 {
        self.store.id
    }

    fn is_local(&self) -> bool {
        self.store.is_local()
    }

    fn placement(&self) -> &crate::engine::placement::Placement {
        &self.store.place
    }

    fn table_name(&self) -> &'static str {
        self.store.meta.name
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
        if writes.is_empty() {
            self.prepared = None;
            return;
        }
        let indexes = self.store.indexes.load();
        let mut peeked = Vec::with_capacity(writes.len());
        let mut changed = Vec::with_capacity(writes.len());
        let mut index_shards = Vec::new();
        for e in writes.iter() {
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
        for e in writes.iter() {
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
                Error::NoSuchTable { table: self.store.meta.name.to_owned() }
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
        for (e, v) in writes.iter().zip(&p.peeked) {
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

    fn change(&self) -> Result<Option<crate::engine::commit_record::TableChange>> {
        let writes = self.writes.borrow();
        if writes.is_empty() {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(writes.len());
        for e in writes.iter() {
            out.push(crate::engine::commit_record::KeyChange {
                key: encode(&e.key)?,
                value: e.write.logged(self.store.meta.encode)?.into(),
                expired: matches!(e.write, Write::Expire(_)),
            });
        }
        Ok(Some(crate::engine::commit_record::TableChange {
            table: self.store.meta.name.to_owned(),
            writes: out,
        }))
    }

    fn read_summary(&self) -> Result<Option<crate::engine::commit_record::TableReads>> {
        let whole = !self.shard_reads.is_empty() || !self.index_reads.is_empty();
        if self.reads.is_empty() && !whole {
            return Ok(None);
        }
        let mut buckets = Vec::with_capacity(self.reads.len());
        for (key, _, _) in &self.reads {
            buckets.push(crate::engine::sequencer::bucket(&encode(key)?));
        }
        buckets.sort_unstable();
        buckets.dedup();
        Ok(Some(crate::engine::commit_record::TableReads {
            table: self.store.meta.name.to_owned(),
            buckets,
            whole,
        }))
    }

    fn check_unique(&self, now: SystemTime) -> std::result::Result<(), UniqueFailure> {
        let Some(p) = &self.prepared else {
            return Ok(());
        };
        let writes = self.writes.borrow();
        let alive = Alive::at(self.store.expiry.is_some(), || now);
        // Owners whose record holding a wanted value has expired (the reaper has not removed
        // them yet): they give the value up once removed.
        let expired_owners: RefCell<Vec<T::Key>> = RefCell::new(Vec::new());
        for (i, idx) in p.indexes.list.iter().enumerate() {
            if !idx.unique() {
                continue;
            }
            // Only the records whose value of this field changes can break uniqueness.
            let puts: Vec<(&T::Key, &T)> = writes
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
                if self.store.meta.ttl_field.is_none() {
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
                    table: self.store.meta.name.to_owned(),
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
        let meta = self.store.meta;
        Err(UniqueFailure::ExpiredOwners(Box::new(move |db: &crate::db::Database| {
            crate::tx::expiring::reap_keys(db, meta, &owners, Some(now))
        })))
    }

    fn install(&self, seq: u64, floor: u64, publish: bool, now: SystemTime) {
        let Some(p) = &self.prepared else { return };
        let mut writes = self.writes.borrow_mut();
        let entries = writes.take_entries();
        let detailed = publish && self.store.subs.any_detailed();
        let alive = Alive::at(self.store.expiry.is_some(), || now);
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
                    crate::engine::events::key_events(
                        self.store.meta,
                        key,
                        (old, new),
                        detailed,
                        cause,
                        alive,
                        &mut events,
                    );
                }
                if self.store.meta.auto_increment {
                    // Raised when the write was buffered, and again here: a counter reset
                    // made meanwhile must not leave it below an id written (a copy applying
                    // the commit after the reset raises it too).
                    for id in new.iter().filter_map(StoredRecord::auto_id) {
                        if self.store.counter.load(std::sync::atomic::Ordering::Acquire) < id {
                            self.store.counter.fetch_max(id, std::sync::atomic::Ordering::AcqRel);
                        }
                    }
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
            self.store.subs.publish(crate::engine::events::Applied::Keys { events, detailed });
        }
    }

    fn reads_unchanged(&self, all: bool) -> bool {
        TxTable::reads_unchanged(self, all)
    }

    fn changed_versions(&self, out: &mut Vec<u64>) {
        TxTable::changed_versions(self, out);
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
        let TxTable { record_type, store, mut reads, mut shard_reads, mut index_reads, writes, .. } = *self;
        let mut writes = writes.into_inner();
        if store.is_dropped() || reads.capacity() > 4096 || writes.capacity() > 4096 {
            // A dropped table, or a big transaction whose buffers are not worth keeping.
            return None;
        }
        reads.clear();
        shard_reads.clear();
        index_reads.clear();
        writes.clear();
        Some(Box::new(SpareTable { record_type, store, reads, shard_reads, index_reads, writes }))
    }

    fn save_writes(&self) -> Box<dyn Any> {
        Box::new(self.writes.borrow().clone())
    }

    fn apply_change(&mut self, writes: &[crate::engine::commit_record::KeyChange]) -> Result<()> {
        self.apply_writes(writes)
    }

    fn restore(
        &mut self,
        entries: &[crate::disk::record::SnapshotEntry],
        mode: crate::engine::backup_types::RestoreMode,
        counter: u64,
    ) -> Result<u64> {
        self.restore_entries(entries, mode, counter)
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
        let mut out = Vec::with_capacity(writes.len());
        for e in writes.iter() {
            out.push((encode(&e.key)?, e.write.logged(self.store.meta.encode)?));
        }
        let counter = self.store.counter.load(std::sync::atomic::Ordering::Acquire);
        Ok(Some(TableOps { table, clear: false, counter, reset: false, writes: out }))
    }
}

struct SpareTable<T: StoredRecord> {
    record_type: TypeId,
    /// Held strongly (a weak handle would cost a shared reference count update per
    /// transaction): a dropped table or a closed database empties its store, so a spare
    /// keeps at most an empty shell alive.
    store: Arc<TableStore<T>>,
    reads: Vec<(T::Key, u64, u64)>,
    shard_reads: Vec<(usize, u64)>,
    index_reads: Vec<(Arc<dyn TableIndex<T>>, usize, u64)>,
    writes: WriteSet<T>,
}

impl<T: StoredRecord> Spare for SpareTable<T> {
    fn record_type(&self) -> TypeId {
        self.record_type
    }

    fn db_id(&self) -> u64 {
        self.store.db_id
    }

    fn revive(self: Box<Self>) -> Option<Box<dyn TxPart>> {
        let SpareTable { record_type, store, reads, shard_reads, index_reads, writes } = *self;
        if store.is_dropped() {
            return None;
        }
        let epoch = store.indexes.load().epoch;
        Some(Box::new(TxTable {
            record_type,
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
