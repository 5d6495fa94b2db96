//! A shard's history: the versions of its records that commits replaced while snapshots
//! were open (see `snapshots.rs`), and the reads at a snapshot that use it.
//!
//! A kept version is visible at snapshot `S` when it was written at or before `S` and
//! replaced after `S`. A key has at most one version visible at `S`: its current one if
//! that is `S` or older, else at most one kept one (the versions of a key follow each
//! other). A key absent at `S` has neither.

use std::any::Any;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::Ordering;

use super::{Found, ShardData, ShardMap, TableStore, group_key, key_of, range_is_empty};
use crate::base::snapshots::NONE_OPEN;
use crate::schema::stored::{StoredRecord, Versioned};

/// The version a read at a snapshot records for something changed since the snapshot: it
/// matches no version, so a transaction that read it and writes runs again.
pub(crate) const CHANGED: u64 = u64::MAX;

/// Kept versions are pruned once there are this many, and then each time their number
/// doubled.
const FIRST_PRUNE: usize = 64;

/// One replaced version of a key's records.
struct Kept {
    /// The commit that wrote it.
    version: u64,
    /// The commit that replaced it.
    replaced_at: u64,
    /// The records, a `Vec<T>` of the table's record type: the history is compiled once
    /// per key type, not once per record type (it is used only while snapshots are open).
    recs: Box<dyn Any + Send + Sync>,
}

impl Kept {
    fn visible_at(&self, at: u64) -> bool {
        self.version <= at && at < self.replaced_at
    }
}

/// The replaced versions of a shard's keys, oldest first for each key.
pub(super) struct History<K> {
    kept: BTreeMap<K, Vec<Kept>>,
    len: usize,
    prune_at: usize,
}

impl<K: Ord + Clone> History<K> {
    fn new() -> Self {
        History { kept: BTreeMap::new(), len: 0, prune_at: FIRST_PRUNE }
    }

    /// Keeps `recs`, the key's records written by commit `version`, replaced by commit
    /// `seq`; prunes what no snapshot at or after `floor` needs when many are kept.
    fn keep(&mut self, key: &K, version: u64, seq: u64, recs: Box<dyn Any + Send + Sync>, floor: u64) {
        let kept = Kept { version, replaced_at: seq, recs };
        match self.kept.get_mut(key) {
            Some(list) => list.push(kept),
            None => {
                self.kept.insert(key.clone(), vec![kept]);
            }
        }
        self.len += 1;
        if self.len >= self.prune_at {
            self.prune(floor);
            self.prune_at = (self.len * 2).max(FIRST_PRUNE);
        }
    }

    /// Drops the versions replaced at or before `floor`: every open snapshot is newer.
    fn prune(&mut self, floor: u64) {
        let mut len = 0;
        self.kept.retain(|_, list| {
            list.retain(|k| k.replaced_at > floor);
            len += list.len();
            !list.is_empty()
        });
        self.len = len;
    }

    /// The key's records visible at `at` among the kept ones.
    fn at(&self, key: &K, at: u64) -> Option<&(dyn Any + Send + Sync)> {
        self.kept.get(key)?.iter().find(|k| k.visible_at(at)).map(|k| &*k.recs)
    }

    /// The keys with a kept version visible at `at`, and those records, in key order.
    fn visible<'a>(
        &'a self,
        lo: Bound<&'a K>,
        hi: Bound<&'a K>,
        at: u64,
    ) -> impl Iterator<Item = (&'a K, &'a (dyn Any + Send + Sync))> + 'a {
        let range = if range_is_empty(lo, hi) { None } else { Some(self.kept.range::<K, _>((lo, hi))) };
        range
            .into_iter()
            .flatten()
            .filter_map(move |(key, list)| list.iter().find(|k| k.visible_at(at)).map(|k| (key, &*k.recs)))
    }
}

/// Kept records as the table's records. A shard's history holds its own table's records
/// only (`ShardData::keep` is the one place that keeps any): the downcast cannot fail.
fn records<T: StoredRecord>(recs: &(dyn Any + Send + Sync)) -> &[T] {
    let recs = recs.downcast_ref::<Vec<T>>();
    debug_assert!(recs.is_some(), "a shard's history holds records of another type");
    recs.map_or(&[], Vec::as_slice)
}

impl<T: StoredRecord> ShardData<T> {
    /// Keeps `recs`, written by commit `version` and replaced by commit `seq`, for the
    /// snapshots open (the oldest at `floor` or after).
    pub(super) fn keep(&mut self, key: &T::Key, version: u64, seq: u64, recs: Vec<T>, floor: u64) {
        if recs.is_empty() {
            // An absent key needs no version: a read at a snapshot finds nothing visible.
            return;
        }
        self.history.get_or_insert_with(|| Box::new(History::new())).keep(
            key,
            version,
            seq,
            Box::new(recs),
            floor,
        );
    }

    /// Drops the kept versions that no snapshot open now needs.
    pub(super) fn prune(&mut self, floor: u64) {
        match (&mut self.history, floor) {
            (None, _) => {}
            (h, NONE_OPEN) => *h = None,
            (Some(h), floor) => {
                h.prune(floor);
                if h.len == 0 {
                    self.history = None;
                }
            }
        }
    }

    fn kept_at(&self, key: &T::Key, at: u64) -> Option<&[T]> {
        self.history.as_ref().and_then(|h| h.at(key, at)).map(records::<T>)
    }

    fn kept_visible<'a>(
        &'a self,
        lo: Bound<&'a T::Key>,
        hi: Bound<&'a T::Key>,
        at: u64,
    ) -> impl Iterator<Item = (&'a T::Key, &'a [T])> + 'a {
        self.history.iter().flat_map(move |h| h.visible(lo, hi, at)).map(|(k, recs)| (k, records::<T>(recs)))
    }

    /// The version a scan at `at` records for this shard.
    fn version_at(&self, at: u64) -> u64 {
        if self.version <= at { self.version } else { CHANGED }
    }
}

/// Visits an `ordered_set` shard's records within bounds as they were at `at`, in key
/// order, until `f` returns false: two key-ordered walks merged, the records unchanged since
/// the snapshot and the kept ones visible at it (a key is in at most one of them).
fn in_key_order_at<T: StoredRecord>(
    data: &ShardData<T>,
    map: &BTreeMap<T::Key, T::Slot>,
    lo: Bound<&T::Key>,
    hi: Bound<&T::Key>,
    at: u64,
    f: &mut dyn FnMut(&T) -> bool,
) {
    let mut live = map.range::<T::Key, _>((lo, hi)).filter(|(_, s)| s.version() <= at).peekable();
    let mut kept = data.kept_visible(lo, hi, at).peekable();
    loop {
        let take_live = match (live.peek(), kept.peek()) {
            (Some((a, _)), Some((b, _))) => *a < *b,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        let going = if take_live {
            live.next().is_none_or(|(_, s)| f(s.rec()))
        } else {
            kept.next().is_none_or(|(_, recs)| recs.iter().all(&mut *f))
        };
        if !going {
            break;
        }
    }
}

impl<T: StoredRecord> TableStore<T> {
    /// Reads a key as it was at snapshot `at` (or as it is, without one): the version to
    /// record for validation and a view of its records. The version is the record's when
    /// it has not changed since the snapshot, 0 when the key was and is absent, else
    /// [`CHANGED`].
    pub(crate) fn get_at<R>(
        &self,
        key: &T::Key,
        hash: u64,
        at: Option<u64>,
        f: impl FnOnce(u64, &[T]) -> R,
    ) -> R {
        let Some(at) = at else { return self.get_with(key, hash, f) };
        // (The lookup compiled once per record type, not once per caller's closure.)
        let (mut f, mut out) = (Some(f), None);
        self.get_at_dyn(key, hash, at, &mut |version, recs| out = f.take().map(|f| f(version, recs)));
        match (out, f) {
            (Some(out), _) => out,
            (None, Some(f)) => f(0, &[]),
            (None, None) => unreachable!("the closure is called or kept"),
        }
    }

    /// [`TableStore::get_at`] at a snapshot, calling `f` once.
    fn get_at_dyn(&self, key: &T::Key, hash: u64, at: u64, f: &mut dyn FnMut(u64, &[T])) {
        let data = self.shards[self.shard_of(hash)].data.read();
        let looked = self.lookup(&data, key, hash);
        let found = match &looked {
            Found::Held(version, recs) => Some((*version, *recs)),
            Found::Read(version, recs) => Some((*version, recs.as_slice())),
            Found::Absent => None,
            Found::Failed => return f(0, &[]),
        };
        match (found, data.kept_at(key, at)) {
            (Some((version, recs)), _) if version <= at => f(version, recs),
            (_, Some(recs)) => f(CHANGED, recs),
            (None, None) => f(0, &[]),
            // Written since the snapshot, absent at it.
            (Some(_), None) => f(CHANGED, &[]),
        }
    }

    /// Visits the records of one shard as they were at snapshot `at` (as they are, without
    /// one) until `f` returns false; returns the version to record for the shard.
    pub(crate) fn scan_shard_while_at(
        &self,
        shard: usize,
        at: Option<u64>,
        mut f: impl FnMut(&T) -> bool,
    ) -> u64 {
        self.scan_shard_while_at_dyn(shard, at, &mut f)
    }

    /// [`TableStore::scan_shard_while_at`], compiled once per record type.
    fn scan_shard_while_at_dyn(&self, shard: usize, at: Option<u64>, f: &mut dyn FnMut(&T) -> bool) -> u64 {
        let Some(at) = at else { return self.scan_shard_while(shard, f) };
        let data = self.shards[shard].data.read();
        if let ShardMap::Ordered(m) = &data.map {
            // In key order, as without a snapshot.
            in_key_order_at(&data, m, Bound::Unbounded, Bound::Unbounded, at, f);
            return data.version_at(at);
        }
        let mut going = true;
        let mut visit = |recs: &[T]| {
            for r in recs {
                going = going && f(r);
            }
            going
        };
        let done = match &data.map {
            ShardMap::Set(t) => {
                t.iter().filter(|s| s.version() <= at).all(|s| visit(std::slice::from_ref(s.rec())))
            }
            // Visited above.
            ShardMap::Ordered(_) => true,
            ShardMap::Bag(t) => t.iter().filter(|s| s.version() <= at).all(|s| visit(s.rec())),
            ShardMap::Disc(d) => {
                let mut going = true;
                let scanned = self.disc_scan(d, &mut |_, version, recs| {
                    if going && version <= at {
                        going = visit(recs);
                    }
                });
                if let Err(e) = scanned {
                    self.poison(e);
                }
                going
            }
        };
        if done {
            for (_, recs) in data.kept_visible(Bound::Unbounded, Bound::Unbounded, at) {
                if !visit(recs) {
                    break;
                }
            }
        }
        data.version_at(at)
    }

    /// As [`TableStore::scan_shard_while_at`], visiting every record.
    pub(crate) fn scan_shard_at(&self, shard: usize, at: Option<u64>, mut f: impl FnMut(&T)) -> u64 {
        self.scan_shard_while_at(shard, at, |r| {
            f(r);
            true
        })
    }

    /// Visits the records of an `ordered_set` within bounds, in key order, as they were at
    /// snapshot `at` (as they are, without one), until `f` returns false; returns the
    /// version to record. Other table types visit every record, unordered.
    pub(crate) fn scan_range_at(
        &self,
        lo: Bound<&T::Key>,
        hi: Bound<&T::Key>,
        at: Option<u64>,
        mut f: impl FnMut(&T) -> bool,
    ) -> u64 {
        self.scan_range_at_dyn(lo, hi, at, &mut f)
    }

    /// [`TableStore::scan_range_at`], compiled once per record type.
    fn scan_range_at_dyn(
        &self,
        lo: Bound<&T::Key>,
        hi: Bound<&T::Key>,
        at: Option<u64>,
        f: &mut dyn FnMut(&T) -> bool,
    ) -> u64 {
        let Some(at) = at else { return self.scan_range(lo, hi, f) };
        let data = self.shards[0].data.read();
        let ShardMap::Ordered(m) = &data.map else {
            drop(data);
            for i in 0..self.shards.len() {
                self.scan_shard_while_at_dyn(i, Some(at), &mut |r| {
                    f(r);
                    true
                });
            }
            return 0;
        };
        if !range_is_empty(lo, hi) {
            in_key_order_at(&data, m, lo, hi, at, f);
        }
        data.version_at(at)
    }

    /// Keeps every record of a shard that a clear (commit `seq`) is about to remove, for
    /// the snapshots open (the oldest at `floor` or after).
    pub(super) fn keep_all(&self, data: &mut ShardData<T>, seq: u64, floor: u64) {
        let mut kept = Vec::new();
        match &data.map {
            ShardMap::Set(t) => {
                kept.extend(t.iter().map(|s| (key_of::<T>(s).clone(), s.version(), vec![s.rec().clone()])))
            }
            ShardMap::Ordered(m) => {
                kept.extend(m.iter().map(|(k, s)| (k.clone(), s.version(), vec![s.rec().clone()])))
            }
            ShardMap::Bag(t) => kept
                .extend(t.iter().filter_map(|s| Some((group_key(s)?.clone(), s.version(), s.rec().clone())))),
            ShardMap::Disc(d) => {
                if let Err(e) =
                    self.disc_scan(d, &mut |k, version, recs| kept.push((k.clone(), version, recs.to_vec())))
                {
                    self.poison(e);
                }
            }
        }
        for (key, version, recs) in kept {
            data.keep(&key, version, seq, recs, floor);
        }
        self.has_history.store(true, Ordering::Release);
    }

    /// Appends the keys changed since snapshot `at` that held records at it: with an index
    /// lookup made before, every key that may have held a value at the snapshot.
    pub(crate) fn changed_since(&self, at: u64, out: &mut Vec<T::Key>) {
        for shard in self.shards.iter() {
            let data = shard.data.read();
            out.extend(data.kept_visible(Bound::Unbounded, Bound::Unbounded, at).map(|(k, _)| k.clone()));
        }
    }

    /// Drops the kept versions no open snapshot needs (`floor` as the registry tells it).
    pub(crate) fn prune_history(&self, floor: &dyn Fn() -> u64) {
        // Read first: most tables keep nothing, and their flag's line stays shared.
        if !self.has_history.load(Ordering::Acquire) || !self.has_history.swap(false, Ordering::AcqRel) {
            return;
        }
        for shard in self.shards.iter() {
            let mut data = shard.data.write();
            // Read under the shard's lock: a commit that kept a version here for a snapshot
            // opened meanwhile took its number after that snapshot lowered the floor.
            data.prune(floor());
            if data.history.is_some() {
                self.has_history.store(true, Ordering::Release);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::engine::store::Write;
    use crate::schema::record::TableType;
    use crate::testing::{Rec, rec};

    fn store(kind: TableType) -> Arc<TableStore<Rec>> {
        let base = crate::engine::meta::RecordMeta::<Rec>::of();
        let facts = crate::schema::record::RecordFacts { kind, ..base.facts };
        let meta = Box::leak(Box::new(crate::engine::meta::RecordMeta { facts, ..*base }));
        Arc::new(TableStore::new(0, crate::base::clock::Clock::system(), 1, meta, Vec::new()))
    }

    fn put(s: &TableStore<Rec>, id: u32, name: &str, seq: u64, floor: u64) {
        s.install(&id, s.hash(&id), Write::Put(rec(id, name, 0)), seq, floor, |_, _| {});
    }

    fn names_at(s: &TableStore<Rec>, at: u64) -> Vec<(u32, String)> {
        let mut out = Vec::new();
        for shard in 0..s.shard_count() {
            s.scan_shard_at(shard, Some(at), |r| out.push((r.id, r.tag.clone())));
        }
        out.sort();
        out
    }

    #[test]
    fn a_snapshot_reads_the_versions_current_at_it() {
        for kind in [TableType::Set, TableType::OrderedSet, TableType::Bag] {
            let s = store(kind);
            put(&s, 1, "a1", 1, NONE_OPEN);
            put(&s, 2, "b1", 2, NONE_OPEN);
            // A snapshot at 2 is open (floor 2): later commits keep what they replace.
            put(&s, 1, "a2", 3, 2);
            s.install(&2, s.hash(&2), Write::Delete, 4, 2, |_, _| {});
            put(&s, 3, "c1", 5, 2);
            put(&s, 1, "a3", 6, 2);
            let read = |id: u32, at| {
                s.get_at(&id, s.hash(&id), Some(at), |v, r| {
                    (v, r.iter().map(|r| r.tag.clone()).collect::<Vec<_>>())
                })
            };
            assert_eq!(read(1, 2), (CHANGED, vec!["a1".to_owned()]), "{kind:?}");
            assert_eq!(read(2, 2), (CHANGED, vec!["b1".to_owned()]), "{kind:?}");
            assert_eq!(read(3, 2), (CHANGED, vec![]), "{kind:?}");
            assert_eq!(read(1, 4), (CHANGED, vec!["a2".to_owned()]), "{kind:?}");
            assert_eq!(read(1, 6), (6, vec!["a3".to_owned()]), "{kind:?}");
            assert_eq!(read(9, 2), (0, vec![]), "{kind:?}");
            assert_eq!(names_at(&s, 2), vec![(1, "a1".into()), (2, "b1".into())], "{kind:?}");
            assert_eq!(names_at(&s, 5), vec![(1, "a2".into()), (3, "c1".into())], "{kind:?}");
            let mut changed = Vec::new();
            s.changed_since(2, &mut changed);
            changed.sort();
            assert_eq!(changed, vec![1, 2], "{kind:?}");
        }
    }

    #[test]
    fn a_range_at_a_snapshot_merges_kept_and_current_records_in_key_order() {
        let s = store(TableType::OrderedSet);
        for id in 0..10 {
            put(&s, id, "old", 1, NONE_OPEN);
        }
        for id in (0..10).step_by(3) {
            put(&s, id, "new", 2, 1);
        }
        s.install(&4, s.hash(&4), Write::Delete, 3, 1, |_, _| {});
        put(&s, 20, "new", 4, 1);
        let mut seen = Vec::new();
        s.scan_range_at(Bound::Included(&2), Bound::Unbounded, Some(1), |r| {
            seen.push((r.id, r.tag.clone()));
            seen.len() < 5
        });
        let want: Vec<(u32, String)> = (2..7).map(|id| (id, "old".to_owned())).collect();
        assert_eq!(seen, want);
    }

    #[test]
    fn kept_versions_go_once_no_snapshot_needs_them() {
        let s = store(TableType::Set);
        put(&s, 1, "a1", 1, NONE_OPEN);
        for seq in 2..200 {
            put(&s, 1, "again", seq, 1);
        }
        assert!(s.has_history.load(Ordering::Acquire));
        // The snapshot at 1 closed, one at 150 is open: only versions replaced after 150 stay.
        s.prune_history(&|| 150);
        assert_eq!(s.get_at(&1, s.hash(&1), Some(150), |v, _| v), CHANGED);
        assert_eq!(s.get_at(&1, s.hash(&1), Some(1), |_, r| r.len()), 0, "pruned");
        s.prune_history(&|| NONE_OPEN);
        assert!(!s.has_history.load(Ordering::Acquire));
        let data = s.shards[s.shard_of(s.hash(&1))].data.read();
        assert!(data.history.is_none());
    }
}
