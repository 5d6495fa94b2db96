//! The typed in-memory store of one table: records in shards, each shard a hash table
//! (`set`), a B-tree (`ordered_set`) or a hash table of record groups (`bag`).
//!
//! Invariants kept here:
//! - every record (or bag group) carries the commit sequence number that last wrote it; a
//!   shard carries the number of the last commit that changed anything in it. Transactions
//!   validate what they read against these numbers.
//! - only a commit holding the shard's commit lock exclusively changes a shard (see `tx`).

use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use arc_swap::ArcSwap;
use crossbeam_utils::CachePadded;
use hashbrown::HashTable;
use parking_lot::RwLock;

use crate::base::clock::Clock;
use crate::base::hasher::Hasher;
use crate::base::lock::{CommitLock, HeldLocks, LockReq, lock_order};
use crate::base::prefetch::each_warmed;
use crate::disk::only::DiscOnly;
use crate::disk::record::{Logged, encode};
use crate::engine::meta::RecordMeta;
use crate::engine::ttl::ExpiryIndex;
use crate::error::{Error, Result};
use crate::schema::index_spec::TableIndex;
use crate::schema::record::{StorageType, TableType};
use crate::schema::stored::{Slot, StoredRecord, Versioned};

mod cut;
mod dump;
mod history;
mod install;

pub(crate) use cut::Cut;

/// Shards of a `set` or `bag` table; an `ordered_set` keeps one shard so that it stays one
/// ordered structure.
pub(crate) const SHARDS: usize = 64;

/// A released table with this many keys or more is freed on a thread of its own.
const FREE_APART: usize = 10_000;

/// What a commit does to one key.
#[derive(Clone)]
pub(crate) enum Write<T> {
    /// Set or replace the record (`set`, `ordered_set`).
    Put(T),
    /// Replace the key's whole record group (`bag`); empty removes the key.
    Group(Vec<T>),
    /// Remove the key.
    Delete,
    /// Remove the key's expired records, keeping these (the reaper's write).
    Expire(Vec<T>),
}

impl<T> Write<T> {
    /// The records the key holds after this write.
    pub(crate) fn records(&self) -> &[T] {
        match self {
            Write::Put(r) => std::slice::from_ref(r),
            Write::Group(v) | Write::Expire(v) => v,
            Write::Delete => &[],
        }
    }

    /// The records the key holds after this write, by value.
    fn into_records(self) -> Vec<T> {
        match self {
            Write::Put(r) => vec![r],
            Write::Group(v) | Write::Expire(v) => v,
            Write::Delete => Vec::new(),
        }
    }
}

impl<T> Write<T> {
    /// The write as the log and the disc-only file keep it, its records encoded by `encode`.
    pub(crate) fn logged(&self, encode: fn(&T) -> Result<Vec<u8>>) -> Result<Logged> {
        Ok(match self.records() {
            [] => Logged::Delete,
            [r] if matches!(self, Write::Put(_)) => Logged::Put(encode(r)?),
            rs => Logged::Group(rs.iter().map(encode).collect::<Result<_>>()?),
        })
    }
}

enum ShardMap<T: StoredRecord> {
    Set(HashTable<T::Slot>),
    Ordered(BTreeMap<T::Key, T::Slot>),
    Bag(HashTable<Slot<Vec<T>>>),
    /// A `disc_only_copies` table: the records are in the directory's redb file.
    Disc(Arc<DiscOnly>),
}

/// A key's records as [`TableStore::lookup`] finds them.
pub(crate) enum Found<'a, T> {
    /// In memory: the version and the records, borrowed from the shard.
    Held(u64, &'a [T]),
    /// Read from the `disc_only_copies` file.
    Read(u64, Vec<T>),
    /// No record.
    Absent,
    /// The disc-only file failed (the store is poisoned: see `healthy`).
    Failed,
}

pub(crate) struct ShardData<T: StoredRecord> {
    pub(crate) version: u64,
    map: ShardMap<T>,
    /// Versions replaced while snapshots were open (see `history.rs`).
    history: Option<Box<history::History<T::Key>>>,
}

pub(crate) struct Shard<T: StoredRecord> {
    pub(crate) commit: CommitLock,
    pub(crate) data: RwLock<ShardData<T>>,
}

/// A store whose counter is fixed because a new store is about to take its place (the
/// holder has the schema lock): an id taken from it meanwhile is not handed out
/// (`ops::take_id` waits for the schema lock, then takes one from whichever store is in
/// place). Dropped without [`Sealed::keep`] (the change failed), the store is unsealed.
pub(crate) struct Sealed<T: StoredRecord>(Option<Arc<TableStore<T>>>);

impl<T: StoredRecord> Sealed<T> {
    /// Seals `store`; returns the guard and the final counter.
    pub(crate) fn new(store: &Arc<TableStore<T>>) -> (Sealed<T>, u64) {
        store.sealed.store(true, Ordering::SeqCst);
        // Pairs with the fence of `take_id`: either it sees the seal, or this sees its id.
        std::sync::atomic::fence(Ordering::SeqCst);
        let counter = store.counter.load(Ordering::SeqCst);
        (Sealed(Some(Arc::clone(store))), counter)
    }

    /// The new store took the old one's place: it stays sealed.
    pub(crate) fn keep(mut self) {
        self.0 = None;
    }
}

/// A [`Sealed`] store whatever its record type.
pub(crate) trait Seal: Send {
    /// See [`Sealed::keep`].
    fn keep(self: Box<Self>);
}

impl<T: StoredRecord> Seal for Sealed<T> {
    fn keep(self: Box<Self>) {
        Sealed::keep(*self);
    }
}

impl<T: StoredRecord> Drop for Sealed<T> {
    fn drop(&mut self) {
        if let Some(store) = self.0.take() {
            store.sealed.store(false, Ordering::SeqCst);
        }
    }
}

/// The indexes of a table, replaced as a whole when one is added or removed.
pub(crate) struct IndexList<T: StoredRecord> {
    pub(crate) epoch: u64,
    pub(crate) list: Vec<Arc<dyn TableIndex<T>>>,
}

/// The failure that stopped a disc-only table.
struct Poison {
    /// The operating system's kind, for an I/O failure.
    kind: Option<std::io::ErrorKind>,
    /// The file, for an I/O failure.
    path: Option<std::path::PathBuf>,
    error: String,
}

/// One table's records, indexes and auto-increment counter.
pub(crate) struct TableStore<T: StoredRecord> {
    /// The database holding the table.
    pub(crate) db_id: u64,
    /// The database's clock.
    pub(crate) clock: Clock,
    /// The table's id in the directory's schema for a disc table, 0 for a table in memory.
    /// Changed only while every commit lock of the table is held.
    pub(crate) disk_id: AtomicU64,
    pub(crate) id: u32,
    /// The table's type (`meta.kind`, at hand).
    pub(crate) kind: TableType,
    /// The record type's description.
    pub(crate) meta: &'static RecordMeta<T>,
    hasher: Hasher,
    shards: Box<[CachePadded<Shard<T>>]>,
    pub(crate) indexes: ArcSwap<IndexList<T>>,
    /// The highest id handed out or written for an `#[auto_increment]` key.
    pub(crate) counter: AtomicU64,
    pub(crate) dropped: AtomicBool,
    /// Dropped because a new store took its place (see `mark_replaced`).
    replaced: AtomicBool,
    /// A new store is about to take this one's place: its counter is final (see `seal`).
    sealed: AtomicBool,
    /// A `disc_only_copies` table failed to read or write its file: every later operation on
    /// it fails with this error (the commit log holds every commit; reopening replays it).
    poisoned: parking_lot::Mutex<Option<Poison>>,
    /// `poisoned` holds an error: checked on every operation without taking the mutex.
    is_poisoned: AtomicBool,
    /// Failures of the disc-only file so far (a `resume` clears only what it recovered).
    poisonings: AtomicU64,
    /// The table's change subscribers.
    pub(crate) subs: Arc<crate::engine::events::Subscribers<T>>,
    /// The records with a deadline, by deadline (tables with a `#[ttl]` field).
    pub(crate) expiry: Option<ExpiryIndex<T::Key>>,
    /// How many times the table was transformed to a new record type.
    pub(crate) version: std::sync::atomic::AtomicU32,
    /// The backup in progress, if any.
    pub(crate) cut: arc_swap::ArcSwapOption<Cut>,
    /// Closed while a transaction with priority works on the table (see `priority.rs`).
    pub(crate) gate: crate::base::priority::GateState,
    /// Some shard keeps replaced versions for snapshots (see `history.rs`).
    has_history: AtomicBool,
    /// Where the table's copies are (this node's own, every node's, chosen nodes'): set
    /// before the store is published, carried to the stores that take its place.
    pub(crate) place: crate::engine::placement::Placement,
}

fn key_of<T: StoredRecord>(s: &T::Slot) -> &T::Key {
    s.rec().key()
}

fn group_key<T: StoredRecord>(s: &Slot<Vec<T>>) -> Option<&T::Key> {
    s.rec().first().map(StoredRecord::key)
}

/// A `set` slot's hash, as its hash table rehashes it. (One closure type for every caller:
/// the table's growth is compiled once per record type, not once per call site.)
fn slot_hash<T: StoredRecord>(hasher: &Hasher) -> impl Fn(&T::Slot) -> u64 + '_ {
    move |s| hasher.hash_one(key_of::<T>(s))
}

/// A `bag` group's hash, as its hash table rehashes it (see [`slot_hash`]).
fn group_hash<T: StoredRecord>(hasher: &Hasher) -> impl Fn(&Slot<Vec<T>>) -> u64 + '_ {
    move |s| group_key(s).map_or(0, |k| hasher.hash_one(k))
}

impl<T: StoredRecord> TableStore<T> {
    /// The filter for a read of this table starting now (the clock is read only when the
    /// table has a `#[ttl]` field).
    #[inline]
    pub(crate) fn alive(&self) -> crate::engine::ttl::Alive {
        crate::engine::ttl::Alive::at(self.expiry.is_some(), || self.clock.now())
    }

    pub(crate) fn new(
        db_id: u64,
        clock: Clock,
        id: u32,
        meta: &'static RecordMeta<T>,
        indexes: Vec<Arc<dyn TableIndex<T>>>,
    ) -> Self {
        let kind = meta.kind;
        let count = if kind == TableType::OrderedSet { 1 } else { SHARDS };
        let shards = (0..count)
            .map(|_| {
                let map = match kind {
                    TableType::Set => ShardMap::Set(HashTable::new()),
                    TableType::OrderedSet => ShardMap::Ordered(BTreeMap::new()),
                    TableType::Bag => ShardMap::Bag(HashTable::new()),
                };
                CachePadded::new(Shard {
                    commit: CommitLock::new(),
                    data: RwLock::new(ShardData { version: 0, map, history: None }),
                })
            })
            .collect();
        TableStore {
            db_id,
            clock,
            disk_id: AtomicU64::new(0),
            id,
            kind,
            meta,
            hasher: Hasher::default(),
            shards,
            indexes: ArcSwap::from_pointee(IndexList { epoch: 0, list: indexes }),
            counter: AtomicU64::new(0),
            dropped: AtomicBool::new(false),
            replaced: AtomicBool::new(false),
            sealed: AtomicBool::new(false),
            poisoned: parking_lot::Mutex::new(None),
            is_poisoned: AtomicBool::new(false),
            poisonings: AtomicU64::new(0),
            subs: Arc::new(crate::engine::events::Subscribers::new(kind)),
            expiry: meta.ttl_field.map(|_| ExpiryIndex::new()),
            version: std::sync::atomic::AtomicU32::new(0),
            cut: arc_swap::ArcSwapOption::empty(),
            gate: crate::base::priority::GateState::default(),
            has_history: AtomicBool::new(false),
            place: crate::engine::placement::Placement::default(),
        }
    }

    /// The table's id in the schema, if it is on disc.
    pub(crate) fn disk_id(&self) -> Option<u64> {
        Some(self.disk_id.load(Ordering::Acquire)).filter(|id| *id != 0)
    }

    /// Makes this new table a `disc_only_copies` one, kept in `disc` under its schema id.
    pub(crate) fn into_disc_only(mut self, disc: Arc<DiscOnly>, disk_id: u64) -> Self {
        self.disk_id.store(disk_id, Ordering::Release);
        self.shards = Box::new([CachePadded::new(Shard {
            commit: CommitLock::new(),
            data: RwLock::new(ShardData { version: 0, map: ShardMap::Disc(disc), history: None }),
        })]);
        self
    }

    fn disc_only(&self) -> Option<Arc<DiscOnly>> {
        match &self.shards[0].data.read().map {
            ShardMap::Disc(d) => Some(Arc::clone(d)),
            _ => None,
        }
    }

    /// Whether the table is this node's own (see `place`).
    pub(crate) fn is_local(&self) -> bool {
        self.place.is_local()
    }

    pub(crate) fn storage(&self) -> StorageType {
        if self.disc_only().is_some() {
            StorageType::DiscOnlyCopies
        } else if self.disk_id().is_some() {
            StorageType::DiscCopies
        } else {
            StorageType::RamCopies
        }
    }

    /// `Err` once a disc-only table's file failed (see `poisoned`), until an operation
    /// that starts later finds the file working again ([`TableStore::resume`]).
    pub(crate) fn healthy(&self) -> Result<()> {
        if !self.is_poisoned.load(Ordering::Acquire) {
            return Ok(());
        }
        // No other lock is taken under this one (callers may hold shard locks).
        let Some(p) = &*self.poisoned.lock() else { return Ok(()) };
        let reason = format!(
            "table {} stopped after a failure of its file ({}); the next operation tries to reopen it",
            self.meta.name, p.error
        );
        Err(match (p.kind, &p.path) {
            (Some(kind), Some(path)) => {
                Error::Io { path: path.clone(), source: std::io::Error::new(kind, reason) }
            }
            _ => Error::TableStopped { table: self.meta.name.to_owned(), reason: p.error.to_string() },
        })
    }

    /// Called as an operation starts, holding no lock, before it reads: a table stopped by
    /// an I/O failure of its disc-only file resumes if the file can be reopened and brought
    /// up to date from the log. Never called between a read and its `healthy` check, so a
    /// failed read is never taken for "absent". (Damaged data stops the table until the
    /// database is reopened.)
    pub(crate) fn resume(&self) {
        if !self.is_poisoned.load(Ordering::Acquire) {
            return;
        }
        let before = self.poisonings.load(Ordering::Acquire);
        // Damaged data is no I/O failure: reopening the file would not mend it.
        if self.poisoned.lock().as_ref().is_none_or(|p| p.kind.is_none()) {
            return;
        }
        let Some(disc) = self.disc_only() else { return };
        if disc.recover().is_err() {
            return;
        }
        let mut p = self.poisoned.lock();
        // Unless the file failed again meanwhile.
        if self.poisonings.load(Ordering::Acquire) == before {
            *p = None;
            self.is_poisoned.store(false, Ordering::Release);
        }
    }

    fn poison(&self, e: Error) {
        let mut p = self.poisoned.lock();
        self.poisonings.fetch_add(1, Ordering::AcqRel);
        if p.is_none() {
            let path = match &e {
                Error::Io { path, .. } => Some(path.clone()),
                _ => None,
            };
            *p = Some(Poison { kind: e.io_kind(), path, error: e.to_string() });
        }
        self.is_poisoned.store(true, Ordering::Release);
    }

    /// A disc-only key's version and records.
    fn disc_get(&self, disc: &DiscOnly, key: &T::Key) -> Result<(u64, Vec<T>)> {
        let Some(id) = self.disk_id() else { return Ok((0, Vec::new())) };
        match disc.get(id, &encode(key)?)? {
            Some((version, value)) => Ok((version, self.meta.decode_logged(&value)?)),
            None => Ok((0, Vec::new())),
        }
    }

    /// Visits a disc-only table's records.
    #[allow(clippy::type_complexity)]
    fn disc_scan(&self, disc: &DiscOnly, f: &mut dyn FnMut(&T::Key, u64, &[T])) -> Result<()> {
        let Some(id) = self.disk_id() else { return Ok(()) };
        disc.scan(id, |kb, version, value| {
            let key: T::Key =
                postcard::from_bytes(kb).map_err(|e| Error::codec("decoding a stored key", e))?;
            f(&key, version, &self.meta.decode_logged(&value)?);
            Ok(())
        })
    }

    pub(crate) fn hash(&self, key: &T::Key) -> u64 {
        self.hasher.hash_one(key)
    }

    pub(crate) fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The shard of a key hash (see `hasher::shard_of`: every bit of the hash mixed in, so
    /// keys spread evenly over the shards, and within each, whose tables use the hash's
    /// own low and top bits).
    pub(crate) fn shard_of(&self, hash: u64) -> usize {
        crate::base::hasher::shard_of(hash, self.shards.len())
    }

    pub(crate) fn shard(&self, i: usize) -> &Shard<T> {
        &self.shards[i]
    }

    /// Reads a key: the version (0 when absent) and a view of its records.
    pub(crate) fn get_with<R>(&self, key: &T::Key, hash: u64, f: impl FnOnce(u64, &[T]) -> R) -> R {
        let data = self.shards[self.shard_of(hash)].data.read();
        // (The lookup compiled once per record type, not once per caller's closure.)
        match self.lookup(&data, key, hash) {
            Found::Held(version, recs) => f(version, recs),
            Found::Read(version, recs) => f(version, &recs),
            Found::Absent | Found::Failed => f(0, &[]),
        }
    }

    /// A key's records in a shard's `data`, and their version.
    pub(crate) fn lookup<'a>(&self, data: &'a ShardData<T>, key: &T::Key, hash: u64) -> Found<'a, T> {
        let held = |found: Option<(u64, &'a [T])>| found.map_or(Found::Absent, |(v, r)| Found::Held(v, r));
        match &data.map {
            ShardMap::Set(t) => held(
                t.find(hash, |s| key_of::<T>(s) == key).map(|s| (s.version(), std::slice::from_ref(s.rec()))),
            ),
            ShardMap::Ordered(m) => held(m.get(key).map(|s| (s.version(), std::slice::from_ref(s.rec())))),
            ShardMap::Bag(t) => {
                held(t.find(hash, |s| group_key(s) == Some(key)).map(|s| (s.version(), s.rec().as_slice())))
            }
            ShardMap::Disc(d) => match self.disc_get(d, key) {
                Ok((0, _)) => Found::Absent,
                Ok((version, recs)) => Found::Read(version, recs),
                Err(e) => {
                    self.poison(e);
                    Found::Failed
                }
            },
        }
    }

    /// The version of a key (0 when absent).
    pub(crate) fn version_of(&self, key: &T::Key, hash: u64) -> u64 {
        self.get_with(key, hash, |v, _| v)
    }

    /// Visits every record of one shard, asking for each record's heap data a few records
    /// before it is visited (for visits that read every field: export, copies).
    pub(crate) fn scan_shard_warmed(&self, shard: usize, mut f: impl FnMut(&T)) {
        self.scan_shard_warmed_dyn(shard, &mut f);
    }

    /// [`TableStore::scan_shard_warmed`], compiled once per record type.
    fn scan_shard_warmed_dyn(&self, shard: usize, f: &mut dyn FnMut(&T)) {
        let data = self.shards[shard].data.read();
        let visit = |r: &T| {
            f(r);
            Ok(())
        };
        let _ = match &data.map {
            ShardMap::Set(t) => each_warmed(t.iter().map(|s| s.rec()), self.meta.warm, visit),
            ShardMap::Ordered(m) => each_warmed(m.values().map(|s| s.rec()), self.meta.warm, visit),
            ShardMap::Bag(t) => {
                let mut visit = visit;
                let warm = self.meta.warm;
                each_warmed(
                    t.iter().map(|s| s.rec()),
                    |g: &Vec<T>| g.iter().for_each(warm),
                    |g| g.iter().try_for_each(&mut visit),
                )
            }
            ShardMap::Disc(_) => {
                drop(data);
                self.scan_shard(shard, f);
                return;
            }
        };
    }

    /// Visits every record of one shard; returns the shard's version.
    pub(crate) fn scan_shard(&self, shard: usize, mut f: impl FnMut(&T)) -> u64 {
        self.scan_shard_while(shard, &mut |r| {
            f(r);
            true
        })
    }

    /// Visits the records of one shard until `f` returns false; returns the shard's
    /// version.
    pub(crate) fn scan_shard_while(&self, shard: usize, f: &mut dyn FnMut(&T) -> bool) -> u64 {
        let data = self.shards[shard].data.read();
        match &data.map {
            ShardMap::Set(t) => {
                let _ = t.iter().try_for_each(|s| if f(s.rec()) { Ok(()) } else { Err(()) });
            }
            ShardMap::Ordered(m) => {
                let _ = m.values().try_for_each(|s| if f(s.rec()) { Ok(()) } else { Err(()) });
            }
            ShardMap::Bag(t) => {
                let _ = t
                    .iter()
                    .flat_map(|s| s.rec().iter())
                    .try_for_each(|r| if f(r) { Ok(()) } else { Err(()) });
            }
            ShardMap::Disc(d) => {
                let mut going = true;
                let scanned = self.disc_scan(d, &mut |_, _, recs| {
                    for r in recs.iter() {
                        going = going && f(r);
                    }
                });
                if let Err(e) = scanned {
                    self.poison(e);
                }
            }
        }
        data.version
    }

    /// Visits the records of an `ordered_set` in key order within bounds, until `f` returns
    /// false; returns the shard's version. Other table types visit everything unordered.
    pub(crate) fn scan_range(
        &self,
        lo: Bound<&T::Key>,
        hi: Bound<&T::Key>,
        f: &mut dyn FnMut(&T) -> bool,
    ) -> u64 {
        let data = self.shards[0].data.read();
        if let ShardMap::Ordered(m) = &data.map {
            if range_is_empty(lo, hi) {
                return data.version;
            }
            for s in m.range((lo, hi)).map(|(_, s)| s) {
                if !f(s.rec()) {
                    break;
                }
            }
            return data.version;
        }
        drop(data);
        for i in 0..self.shards.len() {
            self.scan_shard(i, |r| {
                f(r);
            });
        }
        0
    }

    /// The version of one shard.
    pub(crate) fn shard_version(&self, shard: usize) -> u64 {
        self.shards[shard].data.read().version
    }

    /// Number of records (bag: all records of all groups).
    /// How many keys the table holds, cheaply (a look at each shard's map); `None` for a
    /// `disc_only_copies` table, whose count reads the file.
    pub(crate) fn key_count(&self) -> Option<usize> {
        let mut n = 0;
        for s in &self.shards {
            n += match &s.data.read().map {
                ShardMap::Set(t) => t.len(),
                ShardMap::Ordered(m) => m.len(),
                ShardMap::Bag(t) => t.len(),
                ShardMap::Disc(_) => return None,
            };
        }
        Some(n)
    }

    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let d = s.data.read();
                match &d.map {
                    ShardMap::Set(t) => t.len(),
                    ShardMap::Ordered(m) => m.len(),
                    ShardMap::Bag(t) => t.iter().map(|s| s.rec().len()).sum(),
                    ShardMap::Disc(d) => {
                        let mut n = 0;
                        if let Err(e) = self.disc_scan(d, &mut |_, _, recs| n += recs.len()) {
                            self.poison(e);
                        }
                        n
                    }
                }
            })
            .sum()
    }

    /// Bytes held by the table's own structures (records inline, hash tables, tree nodes,
    /// indexes), not counting heap data owned by the records' fields.
    pub(crate) fn memory(&self) -> usize {
        let boxed = self.meta.boxed_bytes;
        let records: usize = self
            .shards
            .iter()
            .map(|s| {
                let d = s.data.read();
                match &d.map {
                    ShardMap::Set(t) => t.capacity() * (size_of::<T::Slot>() + 1) + t.len() * boxed,
                    ShardMap::Ordered(m) => {
                        m.len() * (size_of::<T::Slot>() + size_of::<T::Key>() + 16 + boxed)
                    }
                    ShardMap::Disc(_) => 0,
                    ShardMap::Bag(t) => {
                        t.capacity() * (size_of::<Slot<Vec<T>>>() + 1)
                            + t.iter()
                                .map(|s| s.rec().capacity() * size_of::<T>() + s.rec().len() * boxed)
                                .sum::<usize>()
                    }
                }
            })
            .sum();
        let indexes: usize = self.indexes.load().list.iter().map(|i| i.memory()).sum();
        records + indexes + self.expiry.as_ref().map_or(0, ExpiryIndex::memory)
    }

    /// Makes room for about `n` more keys, in the shards and the indexes.
    pub(crate) fn reserve(&self, n: usize) {
        let per_shard = n / self.shards.len() + 1;
        for s in self.shards.iter() {
            match &mut s.data.write().map {
                ShardMap::Set(t) => t.reserve(per_shard, slot_hash::<T>(&self.hasher)),
                ShardMap::Bag(t) => t.reserve(per_shard, group_hash(&self.hasher)),
                ShardMap::Ordered(_) | ShardMap::Disc(_) => {}
            }
        }
        for idx in &self.indexes.load().list {
            idx.reserve(n);
        }
    }

    /// The table's indexes as a schema names them.
    pub(crate) fn index_infos(&self) -> Vec<crate::schema::record::IndexInfo> {
        let list = self.indexes.load();
        list.list
            .iter()
            .map(|i| crate::schema::record::IndexInfo { field: i.field().to_owned(), unique: i.unique() })
            .collect()
    }

    /// Drops the table's records and indexes and marks it dropped: what a dropped table, or
    /// one of a closed database, keeps in memory is an empty shell (threads may still hold
    /// it in their spare transaction parts).
    pub(crate) fn release(&self) {
        self.dropped.store(true, Ordering::Release);
        let mut records = 0;
        let mut maps = Vec::with_capacity(self.shards.len());
        for s in self.shards.iter() {
            let mut d = s.data.write();
            let empty = match &d.map {
                ShardMap::Ordered(m) => {
                    records += m.len();
                    ShardMap::Ordered(BTreeMap::new())
                }
                ShardMap::Bag(t) => {
                    records += t.len();
                    ShardMap::Bag(HashTable::new())
                }
                ShardMap::Set(t) => {
                    records += t.len();
                    ShardMap::Set(HashTable::new())
                }
                ShardMap::Disc(_) => ShardMap::Set(HashTable::new()),
            };
            maps.push(std::mem::replace(&mut d.map, empty));
            d.history = None;
        }
        let epoch = self.indexes.load().epoch + 1;
        let indexes = self.indexes.swap(Arc::new(IndexList { epoch, list: Vec::new() }));
        if let Some(expiry) = &self.expiry {
            expiry.clear();
        }
        // Freeing a million records takes a while: the caller need not wait for it.
        if records >= FREE_APART {
            let _ = std::thread::Builder::new().name("mnesia-free".into()).spawn(move || {
                drop(maps);
                drop(indexes);
            });
        }
    }

    /// Marks a table whose place was taken by a new store of the same table (moved to
    /// another storage type): transactions holding the old one run again on the new one.
    pub(crate) fn mark_replaced(&self) {
        self.replaced.store(true, Ordering::Release);
        self.dropped.store(true, Ordering::Release);
    }

    pub(crate) fn is_replaced(&self) -> bool {
        self.replaced.load(Ordering::Acquire)
    }

    pub(crate) fn is_sealed(&self) -> bool {
        self.sealed.load(Ordering::SeqCst)
    }

    /// The commit locks of every record shard, for table-wide operations.
    pub(crate) fn all_commit_locks(&self) -> impl Iterator<Item = (usize, &CommitLock)> {
        self.shards.iter().enumerate().map(|(i, s)| (i, &s.commit))
    }

    /// Increments the dropped flag check.
    pub(crate) fn is_dropped(&self) -> bool {
        self.dropped.load(Ordering::Acquire)
    }
}

impl<T: StoredRecord> crate::base::priority::Gate for TableStore<T> {
    fn gate_id(&self) -> u32 {
        self.id
    }

    fn gate_name(&self) -> &'static str {
        self.meta.name
    }

    fn shared(&self) -> bool {
        !self.is_local()
    }

    fn raise(&self, owner: u64) {
        self.gate.close(owner);
    }

    fn lower(&self) {
        self.gate.open();
    }

    fn drain(&self) {
        // Every commit that writes to the table holds the commit lock of a record shard
        // exclusively while it installs: once each lock has been taken (shared, as readers
        // do) and released, those commits are done, and later ones see the gate.
        let reqs = self
            .all_commit_locks()
            .map(|(i, lock)| LockReq {
                order: lock_order(self.id, 0, u16::try_from(i).unwrap_or(u16::MAX)),
                exclusive: false,
                lock,
            })
            .collect();
        drop(HeldLocks::acquire(reqs));
    }
}

fn range_is_empty<K: Ord>(lo: Bound<&K>, hi: Bound<&K>) -> bool {
    match (lo, hi) {
        (Bound::Included(a), Bound::Included(b)) => a > b,
        (Bound::Included(a) | Bound::Excluded(a), Bound::Excluded(b))
        | (Bound::Excluded(a), Bound::Included(b)) => a >= b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::snapshots::NONE_OPEN;
    use crate::disk::record::{EntryEncoder, SnapshotEntry};

    /// What a backup cut sees: every record as it was at the cut, whatever commits do while
    /// the shards are copied (updates, deletes, inserts, a clear).
    #[test]
    fn a_cut_keeps_the_records_as_they_were_whatever_commits_do_meanwhile() {
        use crate::testing::{Rec, rec};
        let store: TableStore<Rec> =
            TableStore::new(1, Clock::system(), 1, crate::engine::meta::RecordMeta::<Rec>::of(), Vec::new());
        for id in 0..200u32 {
            store.install(&id, store.hash(&id), Write::Put(rec(id, "v1", 0)), 1, NONE_OPEN, |_, _| {});
        }
        let shard_entries = |store: &TableStore<Rec>, cut: &Cut, shard: usize| -> Vec<SnapshotEntry> {
            let mut enc = EntryEncoder::default();
            store.cut_shard(cut, shard, &mut enc).expect("shard");
            crate::disk::record::entries_in(&enc.bytes).map(|e| e.expect("entry").to_owned()).collect()
        };
        let collect = |store: &TableStore<Rec>, cut: &Cut, from: usize| -> Vec<(u32, String)> {
            let mut out = Vec::new();
            for shard in from..store.shard_count() {
                for e in shard_entries(store, cut, shard) {
                    let r: Rec = match e.value {
                        Logged::Put(b) => postcard::from_bytes(&b).expect("record"),
                        _ => panic!("a set table holds one record per key"),
                    };
                    out.push((r.id, r.tag));
                }
            }
            out.sort();
            out
        };
        let expected: Vec<(u32, String)> = (0..200).map(|id| (id, "v1".to_owned())).collect();

        // Commits after the cut, some in shards already copied, most not.
        let cut = store.begin_cut(1);
        let mut got = Vec::new();
        for shard in 0..8 {
            got.extend(shard_entries(&store, &cut, shard).into_iter().map(|e| e.key));
        }
        for (seq, id) in (2u64..).zip(0..200u32) {
            let write = match id % 3 {
                0 => Write::Put(rec(id, "v2", 0)),
                1 => Write::Delete,
                _ => Write::Put(rec(id + 1000, "new", 0)),
            };
            let key = if id % 3 == 2 { id + 1000 } else { id };
            store.install(&key, store.hash(&key), write, seq, NONE_OPEN, |_, _| {});
        }
        let mut all = collect(&store, &cut, 8);
        for k in got {
            let id: u32 = postcard::from_bytes(&k).expect("key");
            all.push((id, "v1".to_owned()));
        }
        all.sort();
        assert_eq!(all, expected);
        store.end_cut();

        // A clear after the cut.
        let store: TableStore<Rec> =
            TableStore::new(1, Clock::system(), 2, crate::engine::meta::RecordMeta::<Rec>::of(), Vec::new());
        for id in 0..200u32 {
            store.install(&id, store.hash(&id), Write::Put(rec(id, "v1", 0)), 1, NONE_OPEN, |_, _| {});
        }
        let cut = store.begin_cut(1);
        store.clear_all(2, NONE_OPEN);
        assert_eq!(collect(&store, &cut, 0), expected);
        store.end_cut();
    }

    /// Consecutive integer keys must spread over every shard, or concurrent commits on
    /// different keys would contend for a few shard locks.
    #[test]
    fn integer_keys_spread_over_shards() {
        let hasher = Hasher::default();
        let mut counts = [0u32; SHARDS];
        for k in 0u64..64_000 {
            counts[crate::base::hasher::shard_of(hasher.hash_one(k), SHARDS)] += 1;
        }
        let (min, max) =
            (counts.iter().min().copied().unwrap_or(0), counts.iter().max().copied().unwrap_or(0));
        assert!(min > 700 && max < 1300, "uneven shards: {counts:?}");
    }
}
