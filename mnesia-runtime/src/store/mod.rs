//! The in-memory store of one table, compiled once for every record type: records in
//! shards, each shard a hash table (`set`), a B-tree (`ordered_set`) or a hash table of
//! record groups (`bag`), or a `disc_only_copies` table's file. Keys and records are trait
//! objects (`row.rs`); `typed.rs` is the thin typed edge the rest of the runtime uses.
//!
//! Invariants kept here:
//! - every record (or bag group) carries the commit sequence number that last wrote it; a
//!   shard carries the number of the last commit that changed anything in it. Transactions
//!   validate what they read against these numbers.
//! - only a commit holding the shard's commit lock exclusively changes a shard (see `tx`).

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crossbeam_utils::CachePadded;
use hashbrown::HashTable;
use hashbrown::hash_table::Entry;
use parking_lot::{MappedRwLockReadGuard, RwLock, RwLockReadGuard};

use crate::clock::Clock;
use crate::disk::only::DiscOnly;
use crate::disk::record::{EntryEncoder, Logged, SnapshotEntry};
use crate::error::{Error, Result};
use crate::lock::{CommitLock, HeldLocks, LockReq, lock_order};
use crate::prefetch::each_warmed;
use crate::table::{StorageType, TableType};

mod history;
pub(crate) mod row;
mod typed;

use row::{AnyKey, AnyRows, OwnedKey, RowType, Rows};
pub(crate) use typed::{IndexList, Sealed, TableStore, Write};

/// Shards of a `set` or `bag` table; an `ordered_set` keeps one shard so that it stays one
/// ordered structure.
pub(crate) const SHARDS: usize = 64;

pub(crate) type Hasher = hashbrown::DefaultHashBuilder;

/// A released table with this many keys or more is freed on a thread of its own.
const FREE_APART: usize = 10_000;

/// A key's records with the sequence number of the commit that wrote them.
pub(crate) struct Slot {
    pub(crate) version: u64,
    pub(crate) rec: Rows,
}

enum ShardMap {
    Set(HashTable<Slot>),
    Ordered(BTreeMap<OwnedKey, Slot>),
    Bag(HashTable<Slot>),
    /// A `disc_only_copies` table: the records are in the directory's redb file.
    Disc(Arc<DiscOnly>),
}

impl ShardMap {
    fn new(kind: TableType) -> ShardMap {
        match kind {
            TableType::Set => ShardMap::Set(HashTable::new()),
            TableType::OrderedSet => ShardMap::Ordered(BTreeMap::new()),
            TableType::Bag => ShardMap::Bag(HashTable::new()),
        }
    }

    /// The slot of a key held in memory (`None` for a disc-only table).
    fn get(&self, key: &dyn AnyKey, hash: u64) -> Option<&Slot> {
        let any = key.as_any();
        match self {
            ShardMap::Set(t) | ShardMap::Bag(t) => t.find(hash, |s| s.rec.key_is(any)),
            ShardMap::Ordered(m) => m.get(key),
            ShardMap::Disc(_) => None,
        }
    }

    /// Every slot held in memory, in key order for an `ordered_set`.
    fn slots(&self) -> Box<dyn Iterator<Item = &Slot> + '_> {
        match self {
            ShardMap::Set(t) | ShardMap::Bag(t) => Box::new(t.iter()),
            ShardMap::Ordered(m) => Box::new(m.values()),
            ShardMap::Disc(_) => Box::new(std::iter::empty()),
        }
    }

    fn len(&self) -> Option<usize> {
        match self {
            ShardMap::Set(t) | ShardMap::Bag(t) => Some(t.len()),
            ShardMap::Ordered(m) => Some(m.len()),
            ShardMap::Disc(_) => None,
        }
    }
}

/// The hash of the key a slot holds.
fn rehash(hasher: &Hasher) -> impl Fn(&Slot) -> u64 + '_ {
    move |s: &Slot| s.rec.key().map_or(0, |k| k.dyn_hash(hasher))
}

pub(crate) struct ShardData {
    pub(crate) version: u64,
    map: ShardMap,
    /// Versions replaced while snapshots were open (see `history.rs`).
    history: Option<Box<history::History>>,
}

pub(crate) struct Shard {
    pub(crate) commit: CommitLock,
    pub(crate) data: RwLock<ShardData>,
}

/// A backup in progress on a table: the commit it was cut at, the shards it has copied,
/// and the records — as they were at the cut — that later commits changed in shards it had
/// not copied yet (copy on write).
pub(crate) struct Cut {
    pub(crate) seq: u64,
    scanned: Box<[AtomicBool]>,
    saved: parking_lot::Mutex<Vec<(usize, SnapshotEntry)>>,
    /// A record could not be saved: the backup fails.
    failed: AtomicBool,
}

/// The failure that stopped a disc-only table.
struct Poison {
    /// The operating system's kind, for an I/O failure.
    kind: Option<std::io::ErrorKind>,
    /// The file, for an I/O failure.
    path: Option<std::path::PathBuf>,
    error: String,
}

/// A key's records as a read found them: in the shard (its read lock held until this is
/// dropped), decoded from a disc-only file, or none.
pub(crate) enum Found<'a> {
    Held(MappedRwLockReadGuard<'a, dyn AnyRows>),
    /// Decoded from a disc-only file, the shard's read lock held.
    Owned {
        rows: Rows,
        _lock: RwLockReadGuard<'a, ShardData>,
    },
    None,
}

impl Found<'_> {
    /// The records found.
    pub(crate) fn rows(&self) -> Option<&dyn AnyRows> {
        match self {
            Found::Held(g) => Some(&**g),
            Found::Owned { rows, .. } => Some(&**rows),
            Found::None => None,
        }
    }
}

/// A change a write made to a key: its records before and after.
pub(crate) type OnChange<'a> = &'a mut dyn FnMut(Option<&dyn AnyRows>, Option<&dyn AnyRows>);

/// One table's records and auto-increment counter, whatever its record type.
pub(crate) struct Store {
    /// The database holding the table.
    pub(crate) db_id: u64,
    /// The database's clock.
    pub(crate) clock: Clock,
    /// The table's id in the directory's schema for a disc table, 0 for a table in memory.
    /// Changed only while every commit lock of the table is held.
    pub(crate) disk_id: AtomicU64,
    pub(crate) id: u32,
    pub(crate) kind: TableType,
    /// The record type, for decoding and errors.
    row: &'static dyn RowType,
    pub(crate) hasher: Hasher,
    shards: Box<[CachePadded<Shard>]>,
    /// The highest id handed out or written for an `#[auto_increment]` key.
    pub(crate) counter: AtomicU64,
    pub(crate) dropped: AtomicBool,
    /// Dropped because a new store took its place (see `mark_replaced`).
    replaced: AtomicBool,
    /// A new store is about to take this one's place: its counter is final (see `Sealed`).
    pub(crate) sealed: AtomicBool,
    /// A `disc_only_copies` table failed to read or write its file: every later operation on
    /// it fails with this error (the commit log holds every commit; reopening replays it).
    poisoned: parking_lot::Mutex<Option<Poison>>,
    /// `poisoned` holds an error: checked on every operation without taking the mutex.
    is_poisoned: AtomicBool,
    /// Failures of the disc-only file so far (a `resume` clears only what it recovered).
    poisonings: AtomicU64,
    /// How many times the table was transformed to a new record type.
    pub(crate) version: std::sync::atomic::AtomicU32,
    /// The backup in progress, if any.
    pub(crate) cut: arc_swap::ArcSwapOption<Cut>,
    /// Closed while a transaction with priority works on the table (see `priority.rs`).
    pub(crate) gate: crate::priority::GateState,
    /// Some shard keeps replaced versions for snapshots (see `history.rs`).
    has_history: AtomicBool,
}

impl Store {
    pub(crate) fn new(db_id: u64, clock: Clock, id: u32, kind: TableType, row: &'static dyn RowType) -> Self {
        let count = if kind == TableType::OrderedSet { 1 } else { SHARDS };
        let shards = (0..count)
            .map(|_| {
                CachePadded::new(Shard {
                    commit: CommitLock::new(),
                    data: RwLock::new(ShardData { version: 0, map: ShardMap::new(kind), history: None }),
                })
            })
            .collect();
        Store {
            db_id,
            clock,
            disk_id: AtomicU64::new(0),
            id,
            kind,
            row,
            hasher: Hasher::default(),
            shards,
            counter: AtomicU64::new(0),
            dropped: AtomicBool::new(false),
            replaced: AtomicBool::new(false),
            sealed: AtomicBool::new(false),
            poisoned: parking_lot::Mutex::new(None),
            is_poisoned: AtomicBool::new(false),
            poisonings: AtomicU64::new(0),
            version: std::sync::atomic::AtomicU32::new(0),
            cut: arc_swap::ArcSwapOption::empty(),
            gate: crate::priority::GateState::default(),
            has_history: AtomicBool::new(false),
        }
    }

    /// The table's name.
    pub(crate) fn name(&self) -> &'static str {
        self.row.name()
    }

    /// The table's id in the schema, if it is on disc.
    pub(crate) fn disk_id(&self) -> Option<u64> {
        Some(self.disk_id.load(Ordering::Acquire)).filter(|id| *id != 0)
    }

    /// Makes this new table a `disc_only_copies` one, kept in `disc` under its schema id.
    pub(crate) fn make_disc_only(&mut self, disc: Arc<DiscOnly>, disk_id: u64) {
        self.disk_id.store(disk_id, Ordering::Release);
        self.shards = Box::new([CachePadded::new(Shard {
            commit: CommitLock::new(),
            data: RwLock::new(ShardData { version: 0, map: ShardMap::Disc(disc), history: None }),
        })]);
    }

    pub(crate) fn disc_only(&self) -> Option<Arc<DiscOnly>> {
        match &self.shards[0].data.read().map {
            ShardMap::Disc(d) => Some(Arc::clone(d)),
            _ => None,
        }
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
    /// that starts later finds the file working again ([`Store::resume`]).
    pub(crate) fn healthy(&self) -> Result<()> {
        if !self.is_poisoned.load(Ordering::Acquire) {
            return Ok(());
        }
        // No other lock is taken under this one (callers may hold shard locks).
        let Some(p) = &*self.poisoned.lock() else { return Ok(()) };
        let reason = format!(
            "table {} stopped after a failure of its file ({}); the next operation tries to reopen it",
            self.name(),
            p.error
        );
        Err(match (p.kind, &p.path) {
            (Some(kind), Some(path)) => {
                Error::Io { path: path.clone(), source: std::io::Error::new(kind, reason) }
            }
            _ => Error::TableStopped { table: self.name().to_owned(), reason: p.error.to_string() },
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

    /// A disc-only key's version and records (version 0 when absent).
    fn disc_get(&self, disc: &DiscOnly, key: &dyn AnyKey) -> Result<(u64, Option<Rows>)> {
        let Some(id) = self.disk_id() else { return Ok((0, None)) };
        match disc.get(id, &key.encode()?)? {
            Some((version, value)) => Ok((version, self.row.decode(self.kind, &value)?)),
            None => Ok((0, None)),
        }
    }

    /// Visits a disc-only table's keys, with their versions and records.
    pub(crate) fn disc_scan(
        &self,
        disc: &DiscOnly,
        f: &mut dyn FnMut(&dyn AnyKey, u64, &dyn AnyRows),
    ) -> Result<()> {
        let Some(id) = self.disk_id() else { return Ok(()) };
        disc.scan(id, |kb, version, value| {
            let key = self.row.decode_key(kb)?;
            if let Some(rows) = self.row.decode(self.kind, &value)? {
                f(&*key, version, &*rows);
            }
            Ok(())
        })
    }

    /// Visits a disc-only table's records, keeping the first failure of its file.
    fn disc_scan_or_poison(&self, disc: &DiscOnly, f: &mut dyn FnMut(&dyn AnyKey, u64, &dyn AnyRows)) {
        if let Err(e) = self.disc_scan(disc, f) {
            self.poison(e);
        }
    }

    pub(crate) fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The shard of a key hash. Uses bits that the hash tables inside a shard do not use for
    /// their bucket position or tag, so keys spread evenly within each shard too.
    pub(crate) fn shard_of(&self, hash: u64) -> usize {
        ((hash >> 40) as usize) & (self.shards.len() - 1)
    }

    pub(crate) fn shard(&self, i: usize) -> &Shard {
        &self.shards[i]
    }

    /// Reads a key: the version (0 when absent) and its records.
    pub(crate) fn get(&self, key: &dyn AnyKey, hash: u64) -> (u64, Found<'_>) {
        let data = self.shards[self.shard_of(hash)].data.read();
        if let ShardMap::Disc(d) = &data.map {
            return match self.disc_get(d, key) {
                Ok((version, Some(rows))) => (version, Found::Owned { rows, _lock: data }),
                Ok((version, None)) => (version, Found::None),
                Err(e) => {
                    self.poison(e);
                    (0, Found::None)
                }
            };
        }
        let mut version = 0;
        match RwLockReadGuard::try_map(data, |d| {
            d.map.get(key, hash).map(|s| {
                version = s.version;
                &*s.rec
            })
        }) {
            Ok(rows) => (version, Found::Held(rows)),
            Err(_) => (0, Found::None),
        }
    }

    /// The version of a key (0 when absent).
    pub(crate) fn version_of(&self, key: &dyn AnyKey, hash: u64) -> u64 {
        self.get(key, hash).0
    }

    /// Visits what every key of one shard holds, asking for each record's heap data a few
    /// keys before it is visited (for visits that read every field: export, copies).
    pub(crate) fn scan_shard_warmed(&self, shard: usize, f: &mut dyn FnMut(&dyn AnyRows)) {
        let data = self.shards[shard].data.read();
        if let ShardMap::Disc(_) = &data.map {
            drop(data);
            self.scan_shard_while(shard, &mut |r| {
                f(r);
                true
            });
            return;
        }
        let _ = each_warmed(
            data.map.slots(),
            |s| s.rec.warm(),
            |s| {
                f(&*s.rec);
                Ok(())
            },
        );
    }

    /// Visits what the keys of one shard hold until `f` returns false; returns the shard's
    /// version.
    pub(crate) fn scan_shard_while(&self, shard: usize, f: &mut dyn FnMut(&dyn AnyRows) -> bool) -> u64 {
        let data = self.shards[shard].data.read();
        match &data.map {
            ShardMap::Disc(d) => {
                let mut going = true;
                self.disc_scan_or_poison(d, &mut |_, _, rows| going = going && f(rows));
            }
            map => {
                let _ = map.slots().all(|s| f(&*s.rec));
            }
        }
        data.version
    }

    /// Visits what the keys of an `ordered_set` hold, in key order within bounds, until `f`
    /// returns false; returns the shard's version. Other table types visit everything
    /// unordered.
    pub(crate) fn scan_range(
        &self,
        lo: Bound<&dyn AnyKey>,
        hi: Bound<&dyn AnyKey>,
        f: &mut dyn FnMut(&dyn AnyRows) -> bool,
    ) -> u64 {
        let data = self.shards[0].data.read();
        if let ShardMap::Ordered(m) = &data.map {
            if !range_is_empty(lo, hi) {
                let _ = m.range::<dyn AnyKey, _>((lo, hi)).all(|(_, s)| f(&*s.rec));
            }
            return data.version;
        }
        drop(data);
        for i in 0..self.shards.len() {
            self.scan_shard_while(i, &mut |r| {
                f(r);
                true
            });
        }
        0
    }

    /// The version of one shard.
    pub(crate) fn shard_version(&self, shard: usize) -> u64 {
        self.shards[shard].data.read().version
    }

    /// How many keys the table holds, cheaply (a look at each shard's map); `None` for a
    /// `disc_only_copies` table, whose count reads the file.
    pub(crate) fn key_count(&self) -> Option<usize> {
        self.shards.iter().map(|s| s.data.read().map.len()).sum()
    }

    /// Number of records (bag: all records of all groups).
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let d = s.data.read();
                match &d.map {
                    ShardMap::Set(t) => t.len(),
                    ShardMap::Ordered(m) => m.len(),
                    ShardMap::Bag(t) => t.iter().map(|s| s.rec.count()).sum(),
                    ShardMap::Disc(disc) => {
                        let mut n = 0;
                        self.disc_scan_or_poison(disc, &mut |_, _, rows| n += rows.count());
                        n
                    }
                }
            })
            .sum()
    }

    /// Bytes held by the table's records and maps (records inline, hash tables, tree
    /// nodes), not counting heap data owned by the records' fields.
    pub(crate) fn memory(&self) -> usize {
        let (rec, key) = self.row.sizes();
        let slot = size_of::<Slot>();
        self.shards
            .iter()
            .map(|s| {
                let d = s.data.read();
                match &d.map {
                    ShardMap::Set(t) => t.capacity() * (slot + 1) + t.len() * rec,
                    ShardMap::Ordered(m) => m.len() * (slot + rec + 2 * key + 16),
                    ShardMap::Bag(t) => {
                        t.capacity() * (slot + 1) + t.iter().map(|s| s.rec.bytes()).sum::<usize>()
                    }
                    ShardMap::Disc(_) => 0,
                }
            })
            .sum()
    }

    /// Applies one write (`None`: the key is removed) to its shard, calling
    /// `on_change(old, new)` with the key's records before and after, while the shard is
    /// locked (to keep indexes in step). The caller holds the shard's commit lock
    /// exclusively. `floor` is the snapshot registry's, read after `seq` was taken: with a
    /// snapshot open, the replaced records are kept for it.
    pub(crate) fn install(
        &self,
        key: &dyn AnyKey,
        hash: u64,
        write: Option<Rows>,
        seq: u64,
        floor: u64,
        on_change: OnChange<'_>,
    ) {
        let shard = self.shard_of(hash);
        let mut guard = self.shards[shard].data.write();
        if let Some(cut) = self.cut.load().as_ref()
            && !cut.scanned[shard].load(Ordering::Acquire)
        {
            self.save_for_cut(cut, shard, &guard.map, key, hash);
        }
        let data = &mut *guard;
        data.version = seq;
        // With a snapshot open: the key's records as they were and the commit that wrote
        // them, if it held any.
        let keeping = floor != crate::snapshots::NONE_OPEN;
        let mut replaced: Option<(u64, Rows)> = None;
        let any = key.as_any();
        match &mut data.map {
            ShardMap::Set(t) | ShardMap::Bag(t) => match write {
                Some(rec) => match t.entry(hash, |s| s.rec.key_is(any), rehash(&self.hasher)) {
                    Entry::Occupied(mut e) => {
                        let slot = e.get_mut();
                        on_change(Some(&*slot.rec), Some(&*rec));
                        let old = std::mem::replace(&mut slot.rec, rec);
                        replaced = Some((std::mem::replace(&mut slot.version, seq), old));
                    }
                    Entry::Vacant(e) => {
                        on_change(None, Some(&*rec));
                        e.insert(Slot { version: seq, rec });
                    }
                },
                None => {
                    if let Ok(e) = t.find_entry(hash, |s| s.rec.key_is(any)) {
                        on_change(Some(&*e.get().rec), None);
                        let (old, _) = e.remove();
                        replaced = Some((old.version, old.rec));
                    }
                }
            },
            ShardMap::Ordered(m) => match write {
                Some(rec) => match m.get_mut(key) {
                    Some(slot) => {
                        on_change(Some(&*slot.rec), Some(&*rec));
                        let old = std::mem::replace(&mut slot.rec, rec);
                        replaced = Some((std::mem::replace(&mut slot.version, seq), old));
                    }
                    None => {
                        on_change(None, Some(&*rec));
                        m.insert(OwnedKey(key.to_box()), Slot { version: seq, rec });
                    }
                },
                None => {
                    if let Some(old) = m.remove(key) {
                        on_change(Some(&*old.rec), None);
                        replaced = Some((old.version, old.rec));
                    }
                }
            },
            ShardMap::Disc(d) => {
                let result = (|| -> Result<()> {
                    let (version, old) = self.disc_get(d, key)?;
                    on_change(old.as_deref(), write.as_deref());
                    let value = match &write {
                        Some(rows) => rows.logged()?,
                        None => Logged::Delete,
                    };
                    let id = self
                        .disk_id()
                        .ok_or_else(|| Error::Internal("a disc-only table without an id".into()))?;
                    d.apply(id, false, &[(key.encode()?, seq, value)], false)?;
                    replaced = old.map(|old| (version, old));
                    Ok(())
                })();
                if let Err(e) = result {
                    self.poison(e);
                }
            }
        }
        if !keeping {
            if data.history.is_some() {
                data.history = None;
            }
        } else if let Some((version, old)) = replaced {
            data.keep(key, version, seq, old, floor);
            self.has_history.store(true, Ordering::Release);
        }
    }

    /// Adds keys that must be new to a store being filled (a bulk load: nobody else reads
    /// or commits to it), grouped by shard so that each shard is locked once. Each item is
    /// its position, key hash, key, records and the sequence number of the commit that
    /// wrote it. Returns the position of a key found already there.
    pub(crate) fn insert_new(
        &self,
        items: Vec<(usize, u64, &dyn AnyKey, Rows, u64)>,
    ) -> std::result::Result<(), usize> {
        let mut by_shard: Vec<Vec<_>> = (0..self.shards.len()).map(|_| Vec::new()).collect();
        for item in items {
            by_shard[self.shard_of(item.1)].push(item);
        }
        for (shard, items) in by_shard.into_iter().enumerate().filter(|(_, v)| !v.is_empty()) {
            let mut data = self.shards[shard].data.write();
            for (at, hash, key, rec, seq) in items {
                data.version = data.version.max(seq);
                let any = key.as_any();
                let taken = match &mut data.map {
                    ShardMap::Set(t) | ShardMap::Bag(t) => {
                        match t.entry(hash, |s| s.rec.key_is(any), rehash(&self.hasher)) {
                            Entry::Vacant(e) => {
                                e.insert(Slot { version: seq, rec });
                                false
                            }
                            Entry::Occupied(_) => true,
                        }
                    }
                    ShardMap::Ordered(m) => {
                        if m.contains_key(key) {
                            true
                        } else {
                            m.insert(OwnedKey(key.to_box()), Slot { version: seq, rec });
                            false
                        }
                    }
                    // Disc-only stores are not bulk loaded.
                    ShardMap::Disc(_) => true,
                };
                if taken {
                    return Err(at);
                }
            }
        }
        Ok(())
    }

    /// Makes room for about `n` more keys.
    pub(crate) fn reserve(&self, n: usize) {
        let per_shard = n / self.shards.len() + 1;
        for s in self.shards.iter() {
            match &mut s.data.write().map {
                ShardMap::Set(t) | ShardMap::Bag(t) => t.reserve(per_shard, rehash(&self.hasher)),
                ShardMap::Ordered(_) | ShardMap::Disc(_) => {}
            }
        }
    }

    /// Every record encoded for a snapshot, with the version that wrote it. Taken shard by
    /// shard while writers go on: each shard is read under its commit lock, so a commit is
    /// either wholly in a shard's copy or (being later) replayed from the log.
    pub(crate) fn snapshot_entries(&self) -> Result<Vec<SnapshotEntry>> {
        self.entries(true)
    }

    /// Every record encoded, wherever it lives, for a caller that holds every commit lock
    /// (moving the table to another storage type).
    pub(crate) fn entries_locked(&self) -> Result<Vec<SnapshotEntry>> {
        let (Some(disc), Some(id)) = (self.disc_only(), self.disk_id()) else { return self.entries(false) };
        let mut out = Vec::new();
        disc.scan(id, |key, version, value| {
            out.push(SnapshotEntry { key: key.to_vec(), version, value });
            Ok(())
        })?;
        Ok(out)
    }

    /// Drops the table's records and marks it dropped, with `also` (its indexes): what a
    /// dropped table, or one of a closed database, keeps in memory is an empty shell
    /// (threads may still hold it in their spare transaction parts).
    pub(crate) fn release(&self, also: Box<dyn Send>) {
        self.dropped.store(true, Ordering::Release);
        let mut records = 0;
        let mut maps = Vec::with_capacity(self.shards.len());
        for s in self.shards.iter() {
            let mut d = s.data.write();
            records += d.map.len().unwrap_or(0);
            let empty =
                ShardMap::new(if matches!(d.map, ShardMap::Disc(_)) { TableType::Set } else { self.kind });
            maps.push(std::mem::replace(&mut d.map, empty));
            d.history = None;
        }
        // Freeing a million records takes a while: the caller need not wait for it.
        if records >= FREE_APART {
            let _ = std::thread::Builder::new().name("mnesia-free".into()).spawn(move || {
                drop(maps);
                drop(also);
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

    fn entries(&self, lock: bool) -> Result<Vec<SnapshotEntry>> {
        let mut out = Vec::new();
        for (i, shard) in self.shards.iter().enumerate() {
            let req =
                LockReq { order: lock_order(self.id, 0, i as u16), exclusive: false, lock: &shard.commit };
            let _held = lock.then(|| HeldLocks::acquire(vec![req]));
            let data = shard.data.read();
            match &data.map {
                // Its records are in its file: made durable here, nothing to copy.
                ShardMap::Disc(d) => d.sync()?,
                map => Self::map_entries(map, u64::MAX, &mut out)?,
            }
        }
        Ok(out)
    }

    /// Every record of a shard in memory written by a commit up to `max_version`, encoded.
    fn map_entries(map: &ShardMap, max_version: u64, out: &mut Vec<SnapshotEntry>) -> Result<()> {
        for s in map.slots().filter(|s| s.version <= max_version) {
            let Some(key) = s.rec.key() else { continue };
            out.push(SnapshotEntry { key: key.encode()?, version: s.version, value: s.rec.logged()? });
        }
        Ok(())
    }

    /// Starts a backup cut at commit `seq`. The caller holds every commit lock of the table
    /// (shared), so every commit up to `seq` is installed and none after has started.
    pub(crate) fn begin_cut(&self, seq: u64) -> Arc<Cut> {
        let cut = Arc::new(Cut {
            seq,
            scanned: (0..self.shards.len()).map(|_| AtomicBool::new(false)).collect(),
            saved: parking_lot::Mutex::new(Vec::new()),
            failed: AtomicBool::new(false),
        });
        self.cut.store(Some(Arc::clone(&cut)));
        cut
    }

    /// Ends the backup in progress.
    pub(crate) fn end_cut(&self) {
        self.cut.store(None);
    }

    /// Saves a key's records as they were at the cut, before a commit changes them.
    fn save_for_cut(&self, cut: &Cut, shard: usize, map: &ShardMap, key: &dyn AnyKey, hash: u64) {
        let found: Result<Option<(u64, Logged)>> = (|| {
            Ok(match map {
                ShardMap::Disc(d) => match self.disc_get(d, key)? {
                    (version, Some(rows)) => Some((version, rows.logged()?)),
                    (_, None) => None,
                },
                map => match map.get(key, hash) {
                    Some(s) => Some((s.version, s.rec.logged()?)),
                    None => None,
                },
            })
        })();
        match found.and_then(|f| f.map(|(v, value)| key.encode().map(|k| (v, k, value))).transpose()) {
            // Changed since the cut already (its state at the cut was saved then), or absent.
            Ok(Some((version, key, value))) if version <= cut.seq => {
                cut.saved.lock().push((shard, SnapshotEntry { key, version, value }));
            }
            Ok(_) => {}
            Err(_) => cut.failed.store(true, Ordering::Release),
        }
    }

    /// A shard's records as they were at the cut: those not changed since, copied under the
    /// shard's read lock (after which commits no longer save for it), and those saved.
    pub(crate) fn cut_shard(&self, cut: &Cut, shard: usize, out: &mut EntryEncoder) -> Result<()> {
        {
            let data = self.shards[shard].data.read();
            match &data.map {
                ShardMap::Disc(d) => {
                    if let Some(id) = self.disk_id() {
                        d.scan(id, |key, version, value| {
                            if version <= cut.seq {
                                out.entry(key, version, &value);
                            }
                            Ok(())
                        })?;
                    }
                }
                map => each_warmed(
                    map.slots().filter(|s| s.version <= cut.seq),
                    |s| s.rec.warm(),
                    |s| s.rec.encode_into(s.version, out),
                )?,
            }
            cut.scanned[shard].store(true, Ordering::Release);
        }
        let mut saved = cut.saved.lock();
        let (mine, rest): (Vec<_>, Vec<_>) =
            std::mem::take(&mut *saved).into_iter().partition(|(s, _)| *s == shard);
        *saved = rest;
        drop(saved);
        for (_, e) in mine {
            out.entry(&e.key, e.version, &e.value);
        }
        if cut.failed.load(Ordering::Acquire) {
            return Err(Error::Invalid(format!(
                "table {}: a record changed during the backup could not be saved",
                self.name()
            )));
        }
        Ok(())
    }

    /// Removes every record. The caller holds every shard's commit lock exclusively;
    /// `floor` is the snapshot registry's, read after `seq` was taken (with a snapshot
    /// open, the records are kept for it).
    pub(crate) fn clear_all(&self, seq: u64, floor: u64) {
        let cut = self.cut.load_full();
        for (i, s) in self.shards.iter().enumerate() {
            let mut d = s.data.write();
            if let Some(cut) = &cut
                && !cut.scanned[i].load(Ordering::Acquire)
            {
                // A backup has not copied this shard yet: it keeps the records of the cut.
                let mut kept = Vec::new();
                let copied = match &d.map {
                    ShardMap::Disc(disc) => self.disk_id().map_or(Ok(()), |id| {
                        disc.scan(id, |key, version, value| {
                            if version <= cut.seq {
                                kept.push(SnapshotEntry { key: key.to_vec(), version, value });
                            }
                            Ok(())
                        })
                    }),
                    map => Self::map_entries(map, cut.seq, &mut kept),
                };
                match copied {
                    Ok(()) => cut.saved.lock().extend(kept.into_iter().map(|e| (i, e))),
                    Err(_) => cut.failed.store(true, Ordering::Release),
                }
            }
            d.version = seq;
            if floor != crate::snapshots::NONE_OPEN {
                self.keep_all(&mut d, seq, floor);
            } else {
                d.history = None;
            }
            match &mut d.map {
                ShardMap::Set(t) | ShardMap::Bag(t) => *t = HashTable::new(),
                ShardMap::Ordered(m) => m.clear(),
                ShardMap::Disc(d) => {
                    if let Some(id) = self.disk_id()
                        && let Err(e) = d.apply(id, true, &[], false)
                    {
                        self.poison(e);
                    }
                }
            }
        }
    }

    /// The commit locks of every record shard, for table-wide operations.
    pub(crate) fn all_commit_locks(&self) -> impl Iterator<Item = (usize, &CommitLock)> {
        self.shards.iter().enumerate().map(|(i, s)| (i, &s.commit))
    }

    /// Whether the table was dropped (or its database closed).
    pub(crate) fn is_dropped(&self) -> bool {
        self.dropped.load(Ordering::Acquire)
    }
}

impl crate::priority::Gate for Store {
    fn gate_id(&self) -> u32 {
        self.id
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

fn range_is_empty<K: Ord + ?Sized>(lo: Bound<&K>, hi: Bound<&K>) -> bool {
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
    use crate::snapshots::NONE_OPEN;

    /// What a backup cut sees: every record as it was at the cut, whatever commits do while
    /// the shards are copied (updates, deletes, inserts, a clear).
    #[test]
    fn a_cut_keeps_the_records_as_they_were_whatever_commits_do_meanwhile() {
        use crate::testing::{Rec, rec};
        let store: TableStore<Rec> = TableStore::new(1, Clock::system(), 1, TableType::Set, Vec::new());
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
        let store: TableStore<Rec> = TableStore::new(1, Clock::system(), 2, TableType::Set, Vec::new());
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
        use std::hash::BuildHasher;
        let hasher = Hasher::default();
        let mut counts = [0u32; SHARDS];
        for k in 0u64..64_000 {
            counts[((hasher.hash_one(k) >> 40) as usize) & (SHARDS - 1)] += 1;
        }
        let (min, max) =
            (counts.iter().min().copied().unwrap_or(0), counts.iter().max().copied().unwrap_or(0));
        assert!(min > 700 && max < 1300, "uneven shards: {counts:?}");
    }
}
