//! Secondary indexes: a typed hash index per indexed field, sharded like the records.
//!
//! Invariant: after every commit, for every record `r` of the table and every index on field
//! `f`, the index maps `f(r)` to `r`'s key, and maps nothing else. A unique index maps each
//! value to exactly one key.

use std::any::Any;
use std::collections::BTreeSet;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use crossbeam_utils::CachePadded;
use hashbrown::HashTable;
use hashbrown::hash_table::Entry;
use parking_lot::RwLock;

use crate::base::hasher::Hasher;
use crate::base::lock::CommitLock;
use crate::schema::field::{Field, FieldAt, FieldValue, Indexable};
use crate::schema::index_spec::{Duplicate, IndexSpec, TableIndex};
use crate::schema::record::Record;
use crate::schema::row::Row;
use crate::schema::stored::StoredRecord;

const INDEX_SHARDS: usize = 64;

impl<T: Record> IndexSpec<T> {
    pub(crate) fn new<V: FieldValue + Hash + Eq>(field: Field<T, V>, unique: bool) -> Self {
        let at = FieldAt::of(field);
        IndexSpec {
            field: field.name(),
            position: field.position(),
            unique,
            rows: Arc::new(move || {
                Arc::new(TypedIndex::<Row<T::Key>, V>::new(at, unique)) as Arc<dyn TableIndex<Row<T::Key>>>
            }),
            _record: std::marker::PhantomData,
        }
    }
}

impl<T: Record, V: FieldValue> Field<T, V> {
    /// Describes an index on this field; used by the derive for `#[index]`.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, email: String }
    /// let spec = User::EMAIL.index_spec(true);
    /// assert_eq!(spec.field(), "email");
    /// assert!(spec.is_unique());
    /// ```
    pub fn index_spec(self, unique: bool) -> IndexSpec<T>
    where
        V: Indexable,
    {
        IndexSpec::new(self, unique)
    }
}

/// The keys holding one value of a non-unique index: almost always one.
enum Owners<K> {
    One(K),
    Many(BTreeSet<K>),
}

/// One shard's entries. A unique index maps a value to one key (no room spent on sets);
/// a plain index maps it to the keys holding it, in key order. Entries are found by the
/// value's hash, computed once per operation (it also picks the shard).
enum Entries<V, K> {
    Unique(HashTable<(V, K)>),
    Multi(HashTable<(V, Owners<K>)>),
}

impl<V: Hash + Eq, K: Ord + Clone> Entries<V, K> {
    fn keys(&self, hash: u64, v: &V, out: &mut Vec<K>) {
        match self {
            Entries::Unique(t) => {
                if let Some((_, k)) = t.find(hash, |(x, _)| x == v) {
                    out.push(k.clone());
                }
            }
            Entries::Multi(t) => match t.find(hash, |(x, _)| x == v) {
                Some((_, Owners::One(k))) => out.push(k.clone()),
                Some((_, Owners::Many(ks))) => out.extend(ks.iter().cloned()),
                None => {}
            },
        }
    }

    /// The first `n` keys holding `v` after `after`, in key order.
    fn keys_from(&self, hash: u64, v: &V, after: Option<&K>, n: usize, out: &mut Vec<K>) {
        let past = |k: &K| after.is_none_or(|a| k > a);
        match self {
            Entries::Unique(t) => {
                if let Some((_, k)) = t.find(hash, |(x, _)| x == v).filter(|(_, k)| past(k) && n > 0) {
                    out.push(k.clone());
                }
            }
            Entries::Multi(t) => match t.find(hash, |(x, _)| x == v) {
                Some((_, Owners::One(k))) if past(k) && n > 0 => out.push(k.clone()),
                Some((_, Owners::Many(ks))) => {
                    let from = after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
                    out.extend(ks.range((from, std::ops::Bound::Unbounded)).take(n).cloned());
                }
                _ => {}
            },
        }
    }

    /// Whether some key other than those `keeps` accepts holds `v`; returns the first one.
    fn other_owner(&self, hash: u64, v: &V, ok: impl Fn(&K) -> bool) -> Option<K> {
        match self {
            Entries::Unique(t) => t.find(hash, |(x, _)| x == v).map(|(_, k)| k).filter(|k| !ok(k)).cloned(),
            Entries::Multi(t) => match t.find(hash, |(x, _)| x == v) {
                Some((_, Owners::One(k))) => (!ok(k)).then(|| k.clone()),
                Some((_, Owners::Many(ks))) => ks.iter().find(|k| !ok(k)).cloned(),
                None => None,
            },
        }
    }

    fn insert(&mut self, hash: u64, v: &V, key: &K, rehash: &dyn Fn(&V) -> u64)
    where
        V: Clone,
    {
        match self {
            Entries::Unique(t) => match t.entry(hash, |(x, _)| x == v, |(x, _)| rehash(x)) {
                Entry::Occupied(mut e) => e.get_mut().1 = key.clone(),
                Entry::Vacant(e) => {
                    e.insert((v.clone(), key.clone()));
                }
            },
            Entries::Multi(t) => match t.entry(hash, |(x, _)| x == v, |(x, _)| rehash(x)) {
                Entry::Occupied(mut e) => {
                    let owners = &mut e.get_mut().1;
                    match owners {
                        Owners::One(k) if k == key => {}
                        Owners::One(k) => {
                            let first = k.clone();
                            *owners = Owners::Many(BTreeSet::from([first, key.clone()]));
                        }
                        Owners::Many(set) => {
                            set.insert(key.clone());
                        }
                    }
                }
                Entry::Vacant(e) => {
                    e.insert((v.clone(), Owners::One(key.clone())));
                }
            },
        }
    }

    fn remove(&mut self, hash: u64, v: &V, key: &K) {
        match self {
            Entries::Unique(t) => {
                if let Ok(e) = t.find_entry(hash, |(x, k)| x == v && k == key) {
                    e.remove();
                }
            }
            Entries::Multi(t) => {
                let Ok(mut e) = t.find_entry(hash, |(x, _)| x == v) else { return };
                let gone = match &mut e.get_mut().1 {
                    Owners::One(k) => k == key,
                    Owners::Many(set) => {
                        set.remove(key);
                        if set.len() == 1 {
                            if let Some(last) = set.pop_first() {
                                e.get_mut().1 = Owners::One(last);
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

    fn empty_like(&self) -> Self {
        match self {
            Entries::Unique(_) => Entries::Unique(HashTable::new()),
            Entries::Multi(_) => Entries::Multi(HashTable::new()),
        }
    }

    fn memory(&self) -> usize {
        match self {
            Entries::Unique(t) => t.capacity() * (size_of::<(V, K)>() + 1),
            Entries::Multi(t) => t.capacity() * (size_of::<(V, Owners<K>)>() + 1),
        }
    }
}

struct IndexShardData<V, K> {
    version: u64,
    entries: Entries<V, K>,
}

struct IndexShard<V, K> {
    commit: CommitLock,
    data: RwLock<IndexShardData<V, K>>,
}

type Shards<V, K> = Box<[CachePadded<IndexShard<V, K>>]>;

/// One field's index, whatever the record type: the shards of (value, key) entries. Its
/// code is compiled once per value and key type, shared by every table indexing a field of
/// that type by a key of that type; [`TypedIndex`] is the thin part that knows the record.
struct ValueIndex<V, K> {
    unique: bool,
    hasher: Hasher,
    shards: Shards<V, K>,
}

impl<V: FieldValue + Hash + Eq, K: Ord + Clone> ValueIndex<V, K> {
    fn new(unique: bool) -> Self {
        let shards = (0..INDEX_SHARDS)
            .map(|_| {
                let entries =
                    if unique { Entries::Unique(HashTable::new()) } else { Entries::Multi(HashTable::new()) };
                CachePadded::new(IndexShard {
                    commit: CommitLock::new(),
                    data: RwLock::new(IndexShardData { version: 0, entries }),
                })
            })
            .collect();
        ValueIndex { unique, hasher: Hasher::default(), shards }
    }

    fn hash(&self, v: &V) -> u64 {
        self.hasher.hash_one(v)
    }

    fn shard_of(hash: u64) -> usize {
        crate::base::hasher::shard_of(hash, INDEX_SHARDS)
    }

    fn shard_of_value(&self, v: &V) -> usize {
        Self::shard_of(self.hash(v))
    }

    fn keys(&self, v: &V, out: &mut Vec<K>) -> (usize, u64) {
        let hash = self.hash(v);
        let shard = Self::shard_of(hash);
        let data = self.shards[shard].data.read();
        data.entries.keys(hash, v, out);
        (shard, data.version)
    }

    fn shard_version(&self, shard: usize) -> u64 {
        self.shards[shard].data.read().version
    }

    fn group_size(&self, v: &V) -> usize {
        let hash = self.hash(v);
        let data = self.shards[Self::shard_of(hash)].data.read();
        match &data.entries {
            Entries::Unique(t) => usize::from(t.find(hash, |(x, _)| x == v).is_some()),
            Entries::Multi(t) => match t.find(hash, |(x, _)| x == v) {
                Some((_, Owners::One(_))) => 1,
                Some((_, Owners::Many(ks))) => ks.len(),
                None => 0,
            },
        }
    }

    fn keys_from(&self, v: &V, after: Option<&K>, n: usize, out: &mut Vec<K>) -> (usize, u64) {
        let hash = self.hash(v);
        let shard = Self::shard_of(hash);
        let data = self.shards[shard].data.read();
        data.entries.keys_from(hash, v, after, n, out);
        (shard, data.version)
    }

    /// [`TableIndex::check_unique`] of the `n` values `put(i)` gives (key, value).
    fn check_unique<'p>(
        &self,
        n: usize,
        put: &dyn Fn(usize) -> (&'p K, &'p V),
        gives_up: &dyn Fn(&K, usize) -> bool,
    ) -> Result<(), Duplicate<K>>
    where
        V: 'p,
        K: 'p,
    {
        let dup = |v: &V, k: &K| Duplicate { value: format!("{v:?}"), owner: k.clone() };
        // Two records of the same commit claiming one value under different keys.
        if n > 1 {
            let mut seen: hashbrown::HashMap<&V, &K, Hasher> =
                hashbrown::HashMap::with_capacity_and_hasher(n, Hasher::default());
            for i in 0..n {
                let (k, v) = put(i);
                if let Some(other) = seen.insert(v, k)
                    && other != k
                {
                    return Err(dup(v, other));
                }
            }
        }
        for i in 0..n {
            let (k, v) = put(i);
            let hash = self.hash(v);
            let data = self.shards[Self::shard_of(hash)].data.read();
            if let Some(owner) = data.entries.other_owner(hash, v, |o| o == k || gives_up(o, i)) {
                return Err(dup(v, &owner));
            }
        }
        Ok(())
    }

    fn insert(&self, v: &V, key: &K, seq: u64) {
        let hash = self.hash(v);
        let mut data = self.shards[Self::shard_of(hash)].data.write();
        data.version = seq;
        data.entries.insert(hash, v, key, &|x| self.hasher.hash_one(x));
    }

    /// [`TableIndex::load_many`] of the `n` entries `item(i)` gives (value, key).
    fn load_many<'p>(
        &self,
        n: usize,
        item: &dyn Fn(usize) -> (&'p V, &'p K),
        seq: u64,
    ) -> Result<(), (usize, K)>
    where
        V: 'p,
        K: 'p,
    {
        let mut by_shard: Vec<Vec<(usize, u64)>> = (0..INDEX_SHARDS).map(|_| Vec::new()).collect();
        for at in 0..n {
            let hash = self.hash(item(at).0);
            by_shard[Self::shard_of(hash)].push((at, hash));
        }
        for (shard, items) in by_shard.into_iter().enumerate().filter(|(_, v)| !v.is_empty()) {
            let mut data = self.shards[shard].data.write();
            data.version = seq;
            for (at, hash) in items {
                let (v, key) = item(at);
                if let Entries::Unique(t) = &mut data.entries {
                    match t.entry(hash, |(x, _)| x == v, |(x, _)| self.hasher.hash_one(x)) {
                        Entry::Occupied(e) if &e.get().1 != key => return Err((at, e.get().1.clone())),
                        Entry::Occupied(_) => {}
                        Entry::Vacant(e) => {
                            e.insert((v.clone(), key.clone()));
                        }
                    }
                } else {
                    data.entries.insert(hash, v, key, &|x| self.hasher.hash_one(x));
                }
            }
        }
        Ok(())
    }

    fn remove(&self, v: &V, key: &K, seq: u64) {
        let hash = self.hash(v);
        let mut data = self.shards[Self::shard_of(hash)].data.write();
        data.version = seq;
        data.entries.remove(hash, v, key);
    }

    fn clear(&self, seq: u64) {
        for s in self.shards.iter() {
            let mut d = s.data.write();
            d.version = seq;
            d.entries = d.entries.empty_like();
        }
    }

    fn memory(&self) -> usize {
        self.shards.iter().map(|s| s.data.read().entries.memory()).sum()
    }

    fn reserve(&self, n: usize) {
        let per_shard = n / INDEX_SHARDS + 1;
        for s in self.shards.iter() {
            let rehash = |v: &V| self.hasher.hash_one(v);
            match &mut s.data.write().entries {
                Entries::Unique(t) => t.reserve(per_shard, |(v, _)| rehash(v)),
                Entries::Multi(t) => t.reserve(per_shard, |(v, _)| rehash(v)),
            }
        }
    }
}

/// A table's index on one field: the field's accessor over a [`ValueIndex`]. Compiled
/// once per key type and field type: the accessor reads the field at the record's address.
struct TypedIndex<T: StoredRecord, V> {
    field: FieldAt<V>,
    values: ValueIndex<V, T::Key>,
}

impl<T: StoredRecord, V: FieldValue + Hash + Eq> TypedIndex<T, V> {
    fn new(field: FieldAt<V>, unique: bool) -> Self {
        TypedIndex { field, values: ValueIndex::new(unique) }
    }

    /// The record's value of the indexed field.
    #[allow(unsafe_code)]
    #[inline]
    fn value<'a>(&self, rec: &'a T) -> &'a V {
        // SAFETY: an index is built for one table (from its record type's field) and is
        // given only that table's records, all of that type: a store holds the rows of one
        // record type (`Database::table` checks the type; a transform builds a new store
        // with new indexes).
        debug_assert!(rec.is_of(&self.field.kind()), "an index read a record of another type");
        unsafe { self.field.get(rec.base()) }
    }
}

impl<T: StoredRecord, V: FieldValue + Hash + Eq> TableIndex<T> for TypedIndex<T, V> {
    fn field(&self) -> &'static str {
        self.field.name
    }

    fn position(&self) -> usize {
        self.field.position
    }

    fn unique(&self) -> bool {
        self.values.unique
    }

    fn shard_count(&self) -> usize {
        INDEX_SHARDS
    }

    fn shard_of_record(&self, rec: &T) -> usize {
        self.values.shard_of_value(self.value(rec))
    }

    fn commit_lock(&self, shard: usize) -> &CommitLock {
        &self.values.shards[shard].commit
    }

    fn shard_version(&self, shard: usize) -> u64 {
        self.values.shard_version(shard)
    }

    fn lookup(&self, value: &dyn Any, out: &mut Vec<T::Key>) -> Option<(usize, u64)> {
        Some(self.values.keys(value.downcast_ref::<V>()?, out))
    }

    fn group_size(&self, value: &dyn Any) -> usize {
        value.downcast_ref::<V>().map_or(0, |v| self.values.group_size(v))
    }

    fn lookup_from(
        &self,
        value: &dyn Any,
        after: Option<&T::Key>,
        n: usize,
        out: &mut Vec<T::Key>,
    ) -> Option<(usize, u64)> {
        Some(self.values.keys_from(value.downcast_ref::<V>()?, after, n, out))
    }

    fn lookup_by_record(&self, rec: &T, out: &mut Vec<T::Key>) {
        self.values.keys(self.value(rec), out);
    }

    fn value_debug(&self, rec: &T) -> String {
        format!("{:?}", self.value(rec))
    }

    fn same_value(&self, a: &T, b: &T) -> bool {
        self.value(a) == self.value(b)
    }

    fn check_unique(
        &self,
        puts: &[(&T::Key, &T)],
        gives_up: &dyn Fn(&T::Key, &T) -> bool,
    ) -> Result<(), Duplicate<T::Key>> {
        self.values
            .check_unique(puts.len(), &|i| (puts[i].0, self.value(puts[i].1)), &|k, i| gives_up(k, puts[i].1))
    }

    fn insert(&self, rec: &T, seq: u64) {
        self.values.insert(self.value(rec), rec.key(), seq);
    }

    fn load_many(&self, recs: &[&T], seq: u64) -> Result<(), (usize, T::Key)> {
        self.values.load_many(recs.len(), &|i| (self.value(recs[i]), recs[i].key()), seq)
    }

    fn remove(&self, rec: &T, seq: u64) {
        self.values.remove(self.value(rec), rec.key(), seq);
    }

    fn clear(&self, seq: u64) {
        self.values.clear(seq);
    }

    fn memory(&self) -> usize {
        self.values.memory()
    }

    fn empty_copy(&self) -> Arc<dyn TableIndex<T>> {
        Arc::new(TypedIndex::new(self.field, self.values.unique))
    }

    fn reserve(&self, n: usize) {
        self.values.reserve(n);
    }
}

/// Support for the derive's `index_spec_for`: `(&&IndexProbe(field)).spec(unique)` is an
/// index spec when the field's type can be indexed and `None` otherwise, chosen at compile
/// time by method resolution (the impl on `&IndexProbe` is tried before the one on
/// `IndexProbe`).
#[doc(hidden)]
pub struct IndexProbe<T, V>(pub Field<T, V>);

#[doc(hidden)]
pub trait ProbeIndexable<T: Record> {
    fn spec(&self, unique: bool) -> Option<IndexSpec<T>>;
}

impl<T: Record, V: FieldValue + crate::schema::field::Indexable> ProbeIndexable<T> for &IndexProbe<T, V> {
    fn spec(&self, unique: bool) -> Option<IndexSpec<T>> {
        Some(IndexSpec::new(self.0, unique))
    }
}

#[doc(hidden)]
pub trait ProbeNotIndexable<T: Record> {
    fn spec(&self, unique: bool) -> Option<IndexSpec<T>>;
}

impl<T: Record, V> ProbeNotIndexable<T> for IndexProbe<T, V> {
    fn spec(&self, _unique: bool) -> Option<IndexSpec<T>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Rec;

    fn rec(id: u32, tag: &str, n: i64) -> Row<u32> {
        Row::new(crate::testing::rec(id, tag, n))
    }

    fn keys(idx: &dyn TableIndex<Row<u32>>, v: &str) -> Vec<u32> {
        let mut out = Vec::new();
        idx.lookup(&v.to_string(), &mut out);
        out
    }

    #[test]
    fn plain_index_keeps_keys_in_order_and_collapses() {
        let idx = (Rec::TAG.index_spec(false).rows)();
        for id in [5, 1, 3] {
            idx.insert(&rec(id, "x", 0), 1);
        }
        idx.insert(&rec(1, "x", 0), 2); // idempotent
        assert_eq!(keys(idx.as_ref(), "x"), [1, 3, 5]);
        idx.remove(&rec(3, "x", 0), 3);
        idx.remove(&rec(5, "x", 0), 4);
        assert_eq!(keys(idx.as_ref(), "x"), [1]);
        idx.remove(&rec(1, "x", 0), 5);
        assert!(keys(idx.as_ref(), "x").is_empty());
        assert!(idx.lookup(&7u8, &mut Vec::new()).is_none(), "a value of another type is refused");
    }

    #[test]
    fn unique_index_checks_owners_and_swaps() {
        let idx = (Rec::TAG.index_spec(true).rows)();
        idx.insert(&rec(1, "a", 0), 1);
        idx.insert(&rec(2, "b", 0), 1);
        let r = rec(3, "a", 0);
        let err = idx.check_unique(&[(&3, &r)], &|_, _| false).err().map(|d| format!("{:?}", d.owner));
        assert_eq!(err.as_deref(), Some("1"));
        // Key 1 gives "a" up in the same commit: allowed.
        assert!(idx.check_unique(&[(&3, &r)], &|k, _| *k == 1).is_ok());
        // The same key keeping its value is fine.
        let same = rec(1, "a", 9);
        assert!(idx.check_unique(&[(&1, &same)], &|_, _| false).is_ok());
        // Two new records of one commit with one value are refused.
        let (x, y) = (rec(7, "z", 0), rec(8, "z", 0));
        assert!(idx.check_unique(&[(&7, &x), (&8, &y)], &|_, _| false).is_err());
        // Removing checks the owner: a stale remove does not drop another key's entry.
        idx.remove(&rec(9, "b", 0), 2);
        assert_eq!(keys(idx.as_ref(), "b"), [2]);
        idx.clear(3);
        assert!(keys(idx.as_ref(), "a").is_empty());
    }
}
