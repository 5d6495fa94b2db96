//! The typed edge of a table's store: [`TableStore<T>`] is the untyped [`Store`] (reached
//! through `Deref`) plus what must know `T` — the indexes, the change subscribers and the
//! expiry index — and methods that turn `T`, `T::Key` and closures over `&T` into the
//! store's trait objects. Each method is a few lines: the work is in `Store`, compiled once.

use std::ops::{Bound, Deref};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arc_swap::ArcSwap;

use super::Store;
use super::row::{AnyKey, AnyRows, RowTypeOf, Rows, records, rows_of};
use crate::clock::Clock;
use crate::disk::only::DiscOnly;
use crate::disk::record::{Logged, encode};
use crate::error::{Error, Result};
use crate::index::TableIndex;
use crate::table::{Table, TableType};
use crate::ttl::ExpiryIndex;

/// Rows of a recovered table loaded at a time (see `TableStore::load`).
const LOAD_CHUNK: usize = 1 << 16;

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

impl<T: serde::Serialize> Write<T> {
    /// The write as the log and the disc-only file keep it.
    pub(crate) fn logged(&self) -> Result<Logged> {
        Ok(match self.records() {
            [] => Logged::Delete,
            [r] if matches!(self, Write::Put(_)) => Logged::Put(encode(r)?),
            rs => Logged::Group(rs.iter().map(encode).collect::<Result<_>>()?),
        })
    }
}

/// The indexes of a table, replaced as a whole when one is added or removed.
pub(crate) struct IndexList<T: Table> {
    pub(crate) epoch: u64,
    pub(crate) list: Vec<Arc<dyn TableIndex<T>>>,
}

/// A store whose counter is fixed because a new store is about to take its place (the
/// holder has the schema lock): an id taken from it meanwhile is not handed out
/// (`ops::take_id` waits for the schema lock, then takes one from whichever store is in
/// place). Dropped without [`Sealed::keep`] (the change failed), the store is unsealed.
pub(crate) struct Sealed<T: Table>(Option<Arc<TableStore<T>>>);

impl<T: Table> Sealed<T> {
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

impl<T: Table> Drop for Sealed<T> {
    fn drop(&mut self) {
        if let Some(store) = self.0.take() {
            store.sealed.store(false, Ordering::SeqCst);
        }
    }
}

/// One table's records, indexes and auto-increment counter.
pub(crate) struct TableStore<T: Table> {
    raw: Store,
    pub(crate) indexes: ArcSwap<IndexList<T>>,
    /// The table's change subscribers.
    pub(crate) subs: Arc<crate::events::Subscribers<T>>,
    /// The records with a deadline, by deadline (tables with a `#[ttl]` field).
    pub(crate) expiry: Option<ExpiryIndex<T::Key>>,
}

impl<T: Table> Deref for TableStore<T> {
    type Target = Store;

    fn deref(&self) -> &Store {
        &self.raw
    }
}

/// A typed visitor as the store's.
fn each<T: Table>(mut f: impl FnMut(&T) -> bool) -> impl FnMut(&dyn AnyRows) -> bool {
    move |rows| records::<T>(Some(rows)).iter().all(&mut f)
}

/// Typed bounds as the store's.
fn bounds<'a, K: AnyKey>(
    lo: Bound<&'a K>,
    hi: Bound<&'a K>,
) -> (Bound<&'a dyn AnyKey>, Bound<&'a dyn AnyKey>) {
    (lo.map(|k| k as &dyn AnyKey), hi.map(|k| k as &dyn AnyKey))
}

impl<T: Table> TableStore<T> {
    /// The filter for a read of this table starting now (the clock is read only when the
    /// table has a `#[ttl]` field).
    #[inline]
    pub(crate) fn alive(&self) -> crate::ttl::Alive {
        crate::ttl::Alive::at::<T>(|| self.clock.now())
    }

    pub(crate) fn new(
        db_id: u64,
        clock: Clock,
        id: u32,
        kind: TableType,
        indexes: Vec<Arc<dyn TableIndex<T>>>,
    ) -> Self {
        TableStore {
            raw: Store::new(db_id, clock, id, kind, RowTypeOf::<T>::REF),
            indexes: ArcSwap::from_pointee(IndexList { epoch: 0, list: indexes }),
            subs: Arc::new(crate::events::Subscribers::default()),
            expiry: T::TTL_FIELD.map(|_| ExpiryIndex::new()),
        }
    }

    /// Makes this new table a `disc_only_copies` one, kept in `disc` under its schema id.
    pub(crate) fn into_disc_only(mut self, disc: Arc<DiscOnly>, disk_id: u64) -> Self {
        self.raw.make_disc_only(disc, disk_id);
        self
    }

    #[inline]
    pub(crate) fn hash(&self, key: &T::Key) -> u64 {
        std::hash::BuildHasher::hash_one(&self.hasher, key)
    }

    /// Reads a key: the version (0 when absent) and a view of its records.
    #[inline]
    pub(crate) fn get_with<R>(&self, key: &T::Key, hash: u64, f: impl FnOnce(u64, &[T]) -> R) -> R {
        let (version, found) = self.raw.get(key, hash);
        f(version, records(found.rows()))
    }

    /// Reads a key as it was at snapshot `at` (see [`Store::get_at`]).
    #[inline]
    pub(crate) fn get_at<R>(
        &self,
        key: &T::Key,
        hash: u64,
        at: Option<u64>,
        f: impl FnOnce(u64, &[T]) -> R,
    ) -> R {
        let (version, found) = self.raw.get_at(key, hash, at);
        f(version, records(found.rows()))
    }

    /// The version of a key (0 when absent).
    pub(crate) fn version_of(&self, key: &T::Key, hash: u64) -> u64 {
        self.raw.version_of(key, hash)
    }

    /// Visits every record of one shard, warming records ahead (see
    /// [`Store::scan_shard_warmed`]).
    pub(crate) fn scan_shard_warmed(&self, shard: usize, mut f: impl FnMut(&T)) {
        self.raw.scan_shard_warmed(shard, &mut |rows| records::<T>(Some(rows)).iter().for_each(&mut f));
    }

    /// Visits every record of one shard; returns the shard's version.
    pub(crate) fn scan_shard(&self, shard: usize, mut f: impl FnMut(&T)) -> u64 {
        self.scan_shard_while(shard, |r| {
            f(r);
            true
        })
    }

    /// Visits the records of one shard until `f` returns false; returns the shard's
    /// version.
    pub(crate) fn scan_shard_while(&self, shard: usize, f: impl FnMut(&T) -> bool) -> u64 {
        self.raw.scan_shard_while(shard, &mut each(f))
    }

    /// Visits the records of an `ordered_set` in key order within bounds, until `f` returns
    /// false (see [`Store::scan_range`]).
    pub(crate) fn scan_range(
        &self,
        lo: Bound<&T::Key>,
        hi: Bound<&T::Key>,
        f: impl FnMut(&T) -> bool,
    ) -> u64 {
        let (lo, hi) = bounds(lo, hi);
        self.raw.scan_range(lo, hi, &mut each(f))
    }

    /// Visits the records of one shard as they were at snapshot `at` (see
    /// [`Store::scan_shard_while_at`]).
    pub(crate) fn scan_shard_while_at(
        &self,
        shard: usize,
        at: Option<u64>,
        f: impl FnMut(&T) -> bool,
    ) -> u64 {
        self.raw.scan_shard_while_at(shard, at, &mut each(f))
    }

    /// As [`TableStore::scan_shard_while_at`], visiting every record.
    pub(crate) fn scan_shard_at(&self, shard: usize, at: Option<u64>, mut f: impl FnMut(&T)) -> u64 {
        self.scan_shard_while_at(shard, at, |r| {
            f(r);
            true
        })
    }

    /// Visits the records of an `ordered_set` within bounds as they were at snapshot `at`
    /// (see [`Store::scan_range_at`]).
    pub(crate) fn scan_range_at(
        &self,
        lo: Bound<&T::Key>,
        hi: Bound<&T::Key>,
        at: Option<u64>,
        f: impl FnMut(&T) -> bool,
    ) -> u64 {
        let (lo, hi) = bounds(lo, hi);
        self.raw.scan_range_at(lo, hi, at, &mut each(f))
    }

    /// Appends the keys changed since snapshot `at` that held records at it (see
    /// [`Store::changed_since`]).
    pub(crate) fn changed_since(&self, at: u64, out: &mut Vec<T::Key>) {
        self.raw.changed_since(at, &mut |k| {
            if let Some(k) = k.as_any().downcast_ref::<T::Key>() {
                out.push(k.clone());
            }
        });
    }

    /// What the store holds for a write's records.
    fn rows(&self, write: Write<T>) -> Option<Rows> {
        match (self.kind, write) {
            (TableType::Bag, write) => rows_of(TableType::Bag, write.into_records()),
            (_, Write::Put(rec)) => Some(Box::new(rec)),
            // A set or ordered_set key holds one record: anything but a put removes it.
            (_, _) => None,
        }
    }

    /// Applies one write to its shard, calling `on_change(old, new)` with the key's records
    /// before and after (see [`Store::install`]); keeps the expiry index in step.
    pub(crate) fn install(
        &self,
        key: &T::Key,
        hash: u64,
        write: Write<T>,
        seq: u64,
        floor: u64,
        on_change: impl FnOnce(&[T], &[T]),
    ) {
        let mut on_change = Some(on_change);
        let rows = self.rows(write);
        self.raw.install(key, hash, rows, seq, floor, &mut |old, new| {
            let (old, new) = (records::<T>(old), records::<T>(new));
            if let Some(expiry) = &self.expiry {
                expiry.change(key, old, new);
            }
            if let Some(f) = on_change.take() {
                f(old, new);
            }
        });
    }

    /// Adds keys that must be new to a store being filled (see [`Store::insert_new`]).
    /// Returns the position in `items` of a key found already there, and the key.
    pub(crate) fn insert_new(
        &self,
        items: Vec<(T::Key, Write<T>, u64)>,
    ) -> std::result::Result<(), (usize, T::Key)> {
        let mut keys = Vec::with_capacity(items.len());
        let mut rest = Vec::with_capacity(items.len());
        for (key, write, seq) in items {
            if let Some(expiry) = &self.expiry {
                expiry.change(&key, &[], write.records());
            }
            rest.push((self.rows(write), seq));
            keys.push(key);
        }
        let raw = keys
            .iter()
            .zip(rest)
            .enumerate()
            .filter_map(|(at, (key, (rows, seq)))| Some((at, self.hash(key), key as &dyn AnyKey, rows?, seq)))
            .collect();
        self.raw.insert_new(raw).map_err(|at| (at, keys[at].clone()))
    }

    /// Makes room for about `n` more keys, in the shards and the indexes.
    pub(crate) fn reserve(&self, n: usize) {
        self.raw.reserve(n);
        for idx in &self.indexes.load().list {
            idx.reserve(n);
        }
    }

    /// The table's indexes as a schema names them.
    pub(crate) fn index_infos(&self) -> Vec<crate::table::IndexInfo> {
        let list = self.indexes.load();
        list.list
            .iter()
            .map(|i| crate::table::IndexInfo { field: i.field().to_owned(), unique: i.unique() })
            .collect()
    }

    /// Bytes held by the table's own structures (records inline, hash tables, tree nodes,
    /// indexes), not counting heap data owned by the records' fields.
    pub(crate) fn memory(&self) -> usize {
        let indexes: usize = self.indexes.load().list.iter().map(|i| i.memory()).sum();
        self.raw.memory() + indexes + self.expiry.as_ref().map_or(0, ExpiryIndex::memory)
    }

    /// Fills a new table with records recovered from disc, building its indexes: a chunk of
    /// rows at a time, each shard of the table and of its indexes locked once per chunk.
    pub(crate) fn load(&self, rows: &crate::disk::Rows) -> Result<()> {
        let bad = |e: postcard::Error| {
            Error::codec(
                format!(
                    "table {}: a stored record does not decode as {}",
                    T::NAME,
                    std::any::type_name::<T>()
                ),
                e,
            )
        };
        let indexes = self.indexes.load();
        // Sized once: no rehashing while a million records go in.
        self.reserve(rows.len());
        let mut max_id = 0;
        let mut rows = rows.iter();
        loop {
            let mut items = Vec::new();
            let mut read = 0;
            for (kb, (version, value)) in rows.by_ref().take(LOAD_CHUNK) {
                read += 1;
                let key: T::Key = postcard::from_bytes(kb).map_err(bad)?;
                let write = match value {
                    Logged::Put(b) => Write::Put(postcard::from_bytes::<T>(b).map_err(bad)?),
                    Logged::Group(bs) => Write::Group(
                        bs.iter().map(|b| postcard::from_bytes(b)).collect::<Result<_, _>>().map_err(bad)?,
                    ),
                    Logged::Delete => continue,
                };
                for r in write.records() {
                    max_id = max_id.max(r.auto_id().unwrap_or(0));
                }
                items.push((key, write, *version));
            }
            if read == 0 {
                break;
            }
            let recs: Vec<&T> = items.iter().flat_map(|(_, w, _)| w.records()).collect();
            let version = items.iter().map(|(_, _, v)| *v).max().unwrap_or(0);
            for idx in &indexes.list {
                // A unique index declared since the records were stored may not hold for them.
                if let Err((i, other)) = idx.load_many(&recs, version) {
                    return Err(Error::SchemaMismatch {
                        table: T::NAME.to_owned(),
                        differences: vec![format!(
                            "the struct declares a unique index on `{}`, but the stored records with keys {other:?} and {:?} share the value {}",
                            idx.field(),
                            recs[i].key(),
                            idx.value_debug(recs[i])
                        )],
                    });
                }
            }
            self.insert_new(items).map_err(|(_, key)| {
                Error::codec_msg(format!("table {}: the key {key:?} is stored twice", T::NAME))
            })?;
        }
        self.counter.fetch_max(max_id, Ordering::AcqRel);
        Ok(())
    }

    /// Builds a disc-only table's indexes, expiry index and counter from its file.
    pub(crate) fn load_disc_only(&self) -> Result<()> {
        let Some(disc) = self.disc_only() else { return Ok(()) };
        let indexes = self.indexes.load();
        let mut max_id = 0;
        let mut dup = None;
        self.raw.disc_scan(&disc, &mut |key, version, rows| {
            let (Some(key), recs) = (key.as_any().downcast_ref::<T::Key>(), records::<T>(Some(rows))) else {
                return;
            };
            if let Some(expiry) = &self.expiry {
                expiry.change(key, &[], recs);
            }
            for r in recs {
                max_id = max_id.max(r.auto_id().unwrap_or(0));
                for idx in &indexes.list {
                    if idx.unique() && dup.is_none() {
                        let mut owners = Vec::new();
                        idx.lookup_by_record(r, &mut owners);
                        if let Some(other) = owners.iter().find(|k| *k != key) {
                            dup = Some(format!(
                                "the struct declares a unique index on `{}`, but the stored records with keys {other:?} and {key:?} share the value {}",
                                idx.field(),
                                idx.value_debug(r)
                            ));
                        }
                    }
                    idx.insert(r, version);
                }
            }
        })?;
        if let Some(d) = dup {
            return Err(Error::SchemaMismatch { table: T::NAME.to_owned(), differences: vec![d] });
        }
        self.counter.fetch_max(max_id, Ordering::AcqRel);
        Ok(())
    }

    /// Drops the table's records and indexes and marks it dropped (see [`Store::release`]).
    pub(crate) fn release(&self) {
        self.dropped.store(true, Ordering::Release);
        let epoch = self.indexes.load().epoch + 1;
        let indexes = self.indexes.swap(Arc::new(IndexList { epoch, list: Vec::new() }));
        if let Some(expiry) = &self.expiry {
            expiry.clear();
        }
        self.raw.release(Box::new(indexes));
    }

    /// Removes every record (see [`Store::clear_all`]), and every index entry.
    pub(crate) fn clear_all(&self, seq: u64, floor: u64) {
        self.raw.clear_all(seq, floor);
        for i in self.indexes.load().list.iter() {
            i.clear(seq);
        }
        if let Some(expiry) = &self.expiry {
            expiry.clear();
        }
    }
}

impl<T: Table> crate::priority::Gate for TableStore<T> {
    fn gate_id(&self) -> u32 {
        self.raw.gate_id()
    }

    fn raise(&self, owner: u64) {
        self.raw.raise(owner);
    }

    fn lower(&self) {
        self.raw.lower();
    }

    fn drain(&self) {
        self.raw.drain();
    }
}
