//! The untyped part of a secondary index, compiled once for every field type: values and
//! keys behind small trait objects, in shards of hash tables. `mod.rs` holds the typed
//! edge (`TypedIndex<T, V>`) that the engine uses through `TableIndex<T>`.

use std::any::Any;
use std::collections::BTreeSet;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;

use crossbeam_utils::CachePadded;
use hashbrown::HashTable;
use hashbrown::hash_table::Entry;
use parking_lot::RwLock;

use crate::field::FieldValue;
use crate::lock::CommitLock;
use crate::store::Hasher;
use crate::store::row::{AnyKey, OwnedKey};
use crate::table::Key;

pub(super) const INDEX_SHARDS: usize = 64;

/// A value of an indexed field.
pub(crate) trait AnyValue: Any + Send + Sync {
    /// Whether `other` (as `Any`) is an equal value of the same type.
    fn dyn_eq(&self, other: &dyn Any) -> bool;
    /// The value's hash, as `hasher.hash_one(value)` computes it for the typed value.
    fn dyn_hash(&self, hasher: &Hasher) -> u64;
    /// The value as `Any`.
    fn as_any(&self) -> &dyn Any;
    /// An owned copy.
    fn to_box(&self) -> Box<dyn AnyValue>;
    /// The value as `{:?}` shows it.
    fn debug(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result;
}

impl<V: FieldValue + Hash + Eq> AnyValue for V {
    #[inline]
    fn dyn_eq(&self, other: &dyn Any) -> bool {
        other.downcast_ref::<V>().is_some_and(|o| self == o)
    }

    fn dyn_hash(&self, hasher: &Hasher) -> u64 {
        hasher.hash_one(self)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn to_box(&self) -> Box<dyn AnyValue> {
        Box::new(self.clone())
    }

    fn debug(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl fmt::Debug for dyn AnyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.debug(f)
    }
}

/// A value with the one key holding it, in one allocation.
pub(crate) trait Pair: Send + Sync {
    fn value(&self) -> &dyn AnyValue;
    fn key(&self) -> &dyn AnyKey;
}

impl<V: AnyValue, K: AnyKey> Pair for (V, K) {
    fn value(&self) -> &dyn AnyValue {
        &self.0
    }

    fn key(&self) -> &dyn AnyKey {
        &self.1
    }
}

/// Makes the pairs of one index: the value and key types it holds.
pub(crate) trait PairType: Send + Sync + 'static {
    /// The pair of `value` and `key` (`None` if either is not of the index's types).
    fn pair(&self, value: &dyn AnyValue, key: &dyn AnyKey) -> Option<Box<dyn Pair>>;
    /// Bytes of a value and of a key, inline.
    fn sizes(&self) -> (usize, usize);
}

/// The [`PairType`] of values `V` and keys `K`.
pub(crate) struct PairTypeOf<V, K>(PhantomData<fn() -> (V, K)>);

impl<V: AnyValue + Clone, K: Key> PairTypeOf<V, K> {
    pub(crate) const REF: &'static dyn PairType = &PairTypeOf::<V, K>(PhantomData);
}

impl<V: AnyValue + Clone, K: Key> PairType for PairTypeOf<V, K> {
    fn pair(&self, value: &dyn AnyValue, key: &dyn AnyKey) -> Option<Box<dyn Pair>> {
        let v = value.as_any().downcast_ref::<V>()?;
        let k = key.as_any().downcast_ref::<K>()?;
        Some(Box::new((v.clone(), k.clone())))
    }

    fn sizes(&self) -> (usize, usize) {
        (size_of::<V>(), size_of::<K>())
    }
}

/// The keys holding one value of a non-unique index: almost always one.
enum Multi {
    One(Box<dyn Pair>),
    Many(Box<dyn AnyValue>, BTreeSet<OwnedKey>),
}

impl Multi {
    fn value(&self) -> &dyn AnyValue {
        match self {
            Multi::One(p) => p.value(),
            Multi::Many(v, _) => &**v,
        }
    }
}

/// One shard's entries. A unique index maps a value to one key (no room spent on sets);
/// a plain index maps it to the keys holding it, in key order. Entries are found by the
/// value's hash, computed once per operation (it also picks the shard).
enum Entries {
    Unique(HashTable<Box<dyn Pair>>),
    Multi(HashTable<Multi>),
}

struct IndexShardData {
    version: u64,
    entries: Entries,
}

struct IndexShard {
    commit: CommitLock,
    data: RwLock<IndexShardData>,
}

/// A value found to be held by another key already.
pub(crate) type Owner = Box<dyn AnyKey>;

/// The entries of one index, whatever its value and key types.
pub(crate) struct RawIndex {
    pub(super) unique: bool,
    pub(super) hasher: Hasher,
    pairs: &'static dyn PairType,
    shards: Box<[CachePadded<IndexShard>]>,
}

fn empty_entries(unique: bool) -> Entries {
    if unique { Entries::Unique(HashTable::new()) } else { Entries::Multi(HashTable::new()) }
}

impl RawIndex {
    pub(super) fn new(unique: bool, pairs: &'static dyn PairType) -> Self {
        let shards = (0..INDEX_SHARDS)
            .map(|_| {
                CachePadded::new(IndexShard {
                    commit: CommitLock::new(),
                    data: RwLock::new(IndexShardData { version: 0, entries: empty_entries(unique) }),
                })
            })
            .collect();
        RawIndex { unique, hasher: Hasher::default(), pairs, shards }
    }

    pub(super) fn shard_of(hash: u64) -> usize {
        ((hash >> 40) as usize) & (INDEX_SHARDS - 1)
    }

    pub(super) fn commit_lock(&self, shard: usize) -> &CommitLock {
        &self.shards[shard].commit
    }

    pub(super) fn shard_version(&self, shard: usize) -> u64 {
        self.shards[shard].data.read().version
    }

    /// Visits the keys holding `v` (in key order) and returns the shard and its version.
    pub(super) fn keys(&self, hash: u64, v: &dyn Any, f: &mut dyn FnMut(&dyn AnyKey)) -> (usize, u64) {
        let shard = Self::shard_of(hash);
        let data = self.shards[shard].data.read();
        match &data.entries {
            Entries::Unique(t) => {
                if let Some(p) = t.find(hash, |p| p.value().dyn_eq(v)) {
                    f(p.key());
                }
            }
            Entries::Multi(t) => match t.find(hash, |m| m.value().dyn_eq(v)) {
                Some(Multi::One(p)) => f(p.key()),
                Some(Multi::Many(_, ks)) => ks.iter().for_each(|k| f(&*k.0)),
                None => {}
            },
        }
        (shard, data.version)
    }

    /// How many keys hold `v`.
    pub(super) fn group_size(&self, hash: u64, v: &dyn Any) -> usize {
        let data = self.shards[Self::shard_of(hash)].data.read();
        match &data.entries {
            Entries::Unique(t) => usize::from(t.find(hash, |p| p.value().dyn_eq(v)).is_some()),
            Entries::Multi(t) => match t.find(hash, |m| m.value().dyn_eq(v)) {
                Some(Multi::One(_)) => 1,
                Some(Multi::Many(_, ks)) => ks.len(),
                None => 0,
            },
        }
    }

    /// Visits the first `n` keys holding `v` after `after`, in key order; returns the shard
    /// and its version.
    pub(super) fn keys_from(
        &self,
        hash: u64,
        v: &dyn Any,
        after: Option<&dyn AnyKey>,
        n: usize,
        f: &mut dyn FnMut(&dyn AnyKey),
    ) -> (usize, u64) {
        let shard = Self::shard_of(hash);
        let data = self.shards[shard].data.read();
        let past = |k: &dyn AnyKey| after.is_none_or(|a| k > a);
        let one = match &data.entries {
            Entries::Unique(t) => t.find(hash, |p| p.value().dyn_eq(v)).map(|p| p.key()),
            Entries::Multi(t) => match t.find(hash, |m| m.value().dyn_eq(v)) {
                Some(Multi::One(p)) => Some(p.key()),
                Some(Multi::Many(_, ks)) => {
                    let from = after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
                    ks.range::<dyn AnyKey, _>((from, std::ops::Bound::Unbounded))
                        .take(n)
                        .for_each(|k| f(&*k.0));
                    None
                }
                None => None,
            },
        };
        if let Some(k) = one.filter(|k| past(*k) && n > 0) {
            f(k);
        }
        (shard, data.version)
    }

    /// The first key holding `v` that `ok` does not accept.
    pub(super) fn other_owner(
        &self,
        hash: u64,
        v: &dyn Any,
        ok: &mut dyn FnMut(&dyn AnyKey) -> bool,
    ) -> Option<Owner> {
        let data = self.shards[Self::shard_of(hash)].data.read();
        match &data.entries {
            Entries::Unique(t) => {
                t.find(hash, |p| p.value().dyn_eq(v)).map(|p| p.key()).filter(|k| !ok(*k)).map(|k| k.to_box())
            }
            Entries::Multi(t) => match t.find(hash, |m| m.value().dyn_eq(v)) {
                Some(Multi::One(p)) => (!ok(p.key())).then(|| p.key().to_box()),
                Some(Multi::Many(_, ks)) => ks.iter().find(|k| !ok(&*k.0)).map(|k| k.0.to_box()),
                None => None,
            },
        }
    }

    /// Two of `items` (hash, value, key) holding one value under different keys: the value
    /// as `{:?}` shows it and the first of those keys.
    pub(super) fn same_value_twice(
        &self,
        items: &[(u64, &dyn AnyValue, &dyn AnyKey)],
    ) -> Option<(String, Owner)> {
        let mut seen: HashTable<(u64, &dyn AnyValue, &dyn AnyKey)> = HashTable::with_capacity(items.len());
        for &(hash, v, k) in items {
            match seen.entry(hash, |(_, x, _)| x.dyn_eq(v.as_any()), |(h, _, _)| *h) {
                Entry::Occupied(e) if e.get().2 != k => return Some((format!("{v:?}"), e.get().2.to_box())),
                Entry::Occupied(_) => {}
                Entry::Vacant(e) => {
                    e.insert((hash, v, k));
                }
            }
        }
        None
    }

    fn rehash(&self) -> impl Fn(&dyn AnyValue) -> u64 + '_ {
        move |v| v.dyn_hash(&self.hasher)
    }

    /// Records that `key` holds `v`.
    pub(super) fn insert(&self, hash: u64, v: &dyn AnyValue, key: &dyn AnyKey, seq: u64) {
        let mut data = self.shards[Self::shard_of(hash)].data.write();
        data.version = seq;
        self.insert_in(&mut data.entries, hash, v, key);
    }

    fn insert_in(&self, entries: &mut Entries, hash: u64, v: &dyn AnyValue, key: &dyn AnyKey) {
        let rehash = self.rehash();
        let any = v.as_any();
        let Some(pair) = self.pairs.pair(v, key) else { return };
        match entries {
            Entries::Unique(t) => match t.entry(hash, |p| p.value().dyn_eq(any), |p| rehash(p.value())) {
                Entry::Occupied(mut e) => *e.get_mut() = pair,
                Entry::Vacant(e) => {
                    e.insert(pair);
                }
            },
            Entries::Multi(t) => match t.entry(hash, |m| m.value().dyn_eq(any), |m| rehash(m.value())) {
                Entry::Occupied(mut e) => {
                    let owners = e.get_mut();
                    match owners {
                        Multi::One(p) if p.key() == key => {}
                        Multi::One(p) => {
                            let keys = BTreeSet::from([OwnedKey(p.key().to_box()), OwnedKey(key.to_box())]);
                            *owners = Multi::Many(v.to_box(), keys);
                        }
                        Multi::Many(_, set) => {
                            set.insert(OwnedKey(key.to_box()));
                        }
                    }
                }
                Entry::Vacant(e) => {
                    e.insert(Multi::One(pair));
                }
            },
        }
    }

    /// Adds values to an index being loaded (a bulk load), each shard locked once. Items
    /// are (position, hash, value, key); for a unique index, a value another key holds is
    /// refused with the item's position and the key holding the value.
    pub(super) fn load_many(
        &self,
        items: Vec<(usize, u64, &dyn AnyValue, &dyn AnyKey)>,
        seq: u64,
    ) -> Result<(), (usize, Owner)> {
        let mut by_shard: Vec<Vec<_>> = (0..INDEX_SHARDS).map(|_| Vec::new()).collect();
        for item in items {
            by_shard[Self::shard_of(item.1)].push(item);
        }
        for (shard, items) in by_shard.into_iter().enumerate().filter(|(_, v)| !v.is_empty()) {
            let mut data = self.shards[shard].data.write();
            data.version = seq;
            for (at, hash, v, key) in items {
                if let Entries::Unique(t) = &data.entries
                    && let Some(p) = t.find(hash, |p| p.value().dyn_eq(v.as_any()))
                    && p.key() != key
                {
                    return Err((at, p.key().to_box()));
                }
                self.insert_in(&mut data.entries, hash, v, key);
            }
        }
        Ok(())
    }

    /// Records that `key` no longer holds `v`.
    pub(super) fn remove(&self, hash: u64, v: &dyn Any, key: &dyn AnyKey, seq: u64) {
        let mut data = self.shards[Self::shard_of(hash)].data.write();
        data.version = seq;
        match &mut data.entries {
            Entries::Unique(t) => {
                if let Ok(e) = t.find_entry(hash, |p| p.value().dyn_eq(v) && p.key() == key) {
                    e.remove();
                }
            }
            Entries::Multi(t) => {
                let Ok(mut e) = t.find_entry(hash, |m| m.value().dyn_eq(v)) else { return };
                let gone = match e.get_mut() {
                    Multi::One(p) => p.key() == key,
                    Multi::Many(_, set) => {
                        set.remove(key);
                        if set.len() == 1 {
                            if let Some(last) = set.pop_first()
                                && let Some(pair) = self.pairs.pair(e.get().value(), &*last.0)
                            {
                                *e.get_mut() = Multi::One(pair);
                            }
                            false
                        } else {
                            set.is_empty()
                        }
                    }
                };
                if gone {
                    e.remove();
                }
            }
        }
    }

    pub(super) fn clear(&self, seq: u64) {
        for s in self.shards.iter() {
            let mut d = s.data.write();
            d.version = seq;
            d.entries = empty_entries(self.unique);
        }
    }

    pub(super) fn memory(&self) -> usize {
        let (value, key) = self.pairs.sizes();
        self.shards
            .iter()
            .map(|s| match &s.data.read().entries {
                Entries::Unique(t) => {
                    t.capacity() * (size_of::<Box<dyn Pair>>() + 1) + t.len() * (value + key)
                }
                Entries::Multi(t) => {
                    t.capacity() * (size_of::<Multi>() + 1)
                        + t.iter()
                            .map(|m| match m {
                                Multi::One(_) => value + key,
                                Multi::Many(_, ks) => value + ks.len() * (size_of::<OwnedKey>() + key),
                            })
                            .sum::<usize>()
                }
            })
            .sum()
    }

    pub(super) fn reserve(&self, n: usize) {
        let per_shard = n / INDEX_SHARDS + 1;
        let rehash = self.rehash();
        for s in self.shards.iter() {
            match &mut s.data.write().entries {
                Entries::Unique(t) => t.reserve(per_shard, |p| rehash(p.value())),
                Entries::Multi(t) => t.reserve(per_shard, |m| rehash(m.value())),
            }
        }
    }
}
