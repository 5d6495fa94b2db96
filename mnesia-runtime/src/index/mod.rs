//! Secondary indexes: a hash index per indexed field, sharded like the records; the
//! entries are untyped (`raw.rs`, compiled once), `TypedIndex<T, V>` is the typed edge.
//!
//! Invariant: after every commit, for every record `r` of the table and every index on field
//! `f`, the index maps `f(r)` to `r`'s key, and maps nothing else. A unique index maps each
//! value to exactly one key.

use std::any::Any;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use crate::field::{Field, FieldValue};
use crate::lock::CommitLock;
use crate::store::row::AnyKey;
use crate::table::{Key, Table};

mod raw;

use raw::{AnyValue, INDEX_SHARDS, PairTypeOf, RawIndex};

/// How to build an index on one field: made by `Field::index_spec`, used by the derive for
/// `#[index]` and by `add_index`.
///
/// ```
/// # use mnesia::prelude::*;
/// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
/// # struct User { #[key] id: u64, age: u32 }
/// let spec = User::AGE.index_spec(false);
/// assert_eq!((spec.field(), spec.is_unique()), ("age", false));
/// ```
pub struct IndexSpec<T: Table> {
    field: &'static str,
    position: usize,
    unique: bool,
    build: Arc<dyn Fn() -> Arc<dyn TableIndex<T>> + Send + Sync>,
}

impl<T: Table> Clone for IndexSpec<T> {
    fn clone(&self) -> Self {
        IndexSpec {
            field: self.field,
            position: self.position,
            unique: self.unique,
            build: Arc::clone(&self.build),
        }
    }
}

impl<T: Table> fmt::Debug for IndexSpec<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IndexSpec").field("field", &self.field).field("unique", &self.unique).finish()
    }
}

/// The specs of a table's indexes: the struct's declared ones, and those of `infos` (a
/// stored table's, added at run time) the struct can index.
pub(crate) fn specs_with<T: Table>(infos: &[crate::table::IndexInfo]) -> Vec<IndexSpec<T>> {
    let mut specs = T::indexes();
    for info in infos {
        if !specs.iter().any(|s| s.field() == info.field) {
            specs.extend(T::index_spec_for(&info.field, info.unique));
        }
    }
    specs
}

impl<T: Table> IndexSpec<T> {
    pub(crate) fn new<V: FieldValue + Hash + Eq>(field: Field<T, V>, unique: bool) -> Self {
        IndexSpec {
            field: field.name(),
            position: field.position(),
            unique,
            build: Arc::new(move || Arc::new(TypedIndex::new(field, unique)) as Arc<dyn TableIndex<T>>),
        }
    }

    /// The indexed field's name.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, age: u32 }
    /// assert_eq!(User::AGE.index_spec(false).field(), "age");
    /// ```
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// Whether the index refuses two records with the same value.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, email: String }
    /// assert!(User::EMAIL.index_spec(true).is_unique());
    /// ```
    pub fn is_unique(&self) -> bool {
        self.unique
    }

    pub(crate) fn position(&self) -> usize {
        self.position
    }

    pub(crate) fn build(&self) -> Arc<dyn TableIndex<T>> {
        (self.build)()
    }
}

/// A value that is already owned by another key of a unique index.
pub(crate) struct Duplicate<K> {
    pub(crate) value: String,
    /// The key already holding the value.
    pub(crate) owner: K,
}

/// An index as the engine sees it, whatever the field's type.
pub(crate) trait TableIndex<T: Table>: Send + Sync {
    fn field(&self) -> &'static str;
    fn position(&self) -> usize;
    fn unique(&self) -> bool;
    fn shard_count(&self) -> usize;
    /// The shard holding a record's value.
    fn shard_of_record(&self, rec: &T) -> usize;
    fn commit_lock(&self, shard: usize) -> &CommitLock;
    fn shard_version(&self, shard: usize) -> u64;
    /// Appends the keys holding `value` (in key order) and returns the shard's version;
    /// `None` if `value` is not a `V`.
    fn lookup(&self, value: &dyn Any, out: &mut Vec<T::Key>) -> Option<(usize, u64)>;
    /// How many keys hold `value` (0 if it is not a `V`): what a lookup would read.
    fn group_size(&self, value: &dyn Any) -> usize;
    /// As [`TableIndex::lookup`], but only the first `n` keys after `after` (in key order):
    /// a large group is walked a piece at a time, never copied whole.
    fn lookup_from(
        &self,
        value: &dyn Any,
        after: Option<&T::Key>,
        n: usize,
        out: &mut Vec<T::Key>,
    ) -> Option<(usize, u64)>;
    /// Appends the keys holding the value that `rec` holds.
    fn lookup_by_record(&self, rec: &T, out: &mut Vec<T::Key>);
    /// The record's value of this field, formatted with `Debug`.
    fn value_debug(&self, rec: &T) -> String;
    /// Whether two records hold the same value of this field.
    fn same_value(&self, a: &T, b: &T) -> bool;
    /// For a unique index: checks that the records to be written keep every value on one
    /// key. `rewritten(k)` tells whether key `k` is rewritten by the same commit with another
    /// value (so it gives its current value up). The caller holds the commit locks of the
    /// shards of every new value.
    fn check_unique(
        &self,
        puts: &[(&T::Key, &T)],
        gives_up: &dyn Fn(&T::Key, &T) -> bool,
    ) -> Result<(), Duplicate<T::Key>>;
    fn insert(&self, rec: &T, seq: u64);
    /// Adds records' values to a table being loaded (a bulk load), each index shard locked
    /// once: for a unique index, a value another key holds is refused with the record's
    /// position in `recs` and the key holding the value.
    fn load_many(&self, recs: &[&T], seq: u64) -> Result<(), (usize, T::Key)>;
    fn remove(&self, rec: &T, seq: u64);
    fn clear(&self, seq: u64);
    fn memory(&self) -> usize;
    /// Makes room for about `n` more values.
    fn reserve(&self, n: usize);
    /// A new, empty index of the same field and kind.
    fn empty_copy(&self) -> Arc<dyn TableIndex<T>>;
}

struct TypedIndex<T: Table, V> {
    field: Field<T, V>,
    raw: RawIndex,
}

/// The keys a visit of the raw index finds, as `T::Key`s.
fn push_to<K: Key>(out: &mut Vec<K>) -> impl FnMut(&dyn AnyKey) + '_ {
    move |k| {
        if let Some(k) = k.as_any().downcast_ref::<K>() {
            out.push(k.clone());
        }
    }
}

/// A key the raw index found, as a `T::Key` (an index holds keys of its table only).
fn typed_key<K: Key>(k: &dyn AnyKey) -> Option<K> {
    k.as_any().downcast_ref::<K>().cloned()
}

impl<T: Table, V: FieldValue + Hash + Eq> TypedIndex<T, V> {
    fn new(field: Field<T, V>, unique: bool) -> Self {
        TypedIndex { field, raw: RawIndex::new(unique, PairTypeOf::<V, T::Key>::REF) }
    }

    #[inline]
    fn hash(&self, v: &V) -> u64 {
        self.raw.hasher.hash_one(v)
    }
}

impl<T: Table, V: FieldValue + Hash + Eq> TableIndex<T> for TypedIndex<T, V> {
    fn field(&self) -> &'static str {
        self.field.name()
    }

    fn position(&self) -> usize {
        self.field.position()
    }

    fn unique(&self) -> bool {
        self.raw.unique
    }

    fn shard_count(&self) -> usize {
        INDEX_SHARDS
    }

    fn shard_of_record(&self, rec: &T) -> usize {
        RawIndex::shard_of(self.hash(self.field.get(rec)))
    }

    fn commit_lock(&self, shard: usize) -> &CommitLock {
        self.raw.commit_lock(shard)
    }

    fn shard_version(&self, shard: usize) -> u64 {
        self.raw.shard_version(shard)
    }

    fn lookup(&self, value: &dyn Any, out: &mut Vec<T::Key>) -> Option<(usize, u64)> {
        let v = value.downcast_ref::<V>()?;
        Some(self.raw.keys(self.hash(v), v, &mut push_to(out)))
    }

    fn group_size(&self, value: &dyn Any) -> usize {
        let Some(v) = value.downcast_ref::<V>() else { return 0 };
        self.raw.group_size(self.hash(v), v)
    }

    fn lookup_from(
        &self,
        value: &dyn Any,
        after: Option<&T::Key>,
        n: usize,
        out: &mut Vec<T::Key>,
    ) -> Option<(usize, u64)> {
        let v = value.downcast_ref::<V>()?;
        Some(self.raw.keys_from(self.hash(v), v, after.map(|k| k as &dyn AnyKey), n, &mut push_to(out)))
    }

    fn lookup_by_record(&self, rec: &T, out: &mut Vec<T::Key>) {
        let v = self.field.get(rec);
        self.raw.keys(self.hash(v), v, &mut push_to(out));
    }

    fn value_debug(&self, rec: &T) -> String {
        format!("{:?}", self.field.get(rec))
    }

    fn same_value(&self, a: &T, b: &T) -> bool {
        self.field.get(a) == self.field.get(b)
    }

    fn check_unique(
        &self,
        puts: &[(&T::Key, &T)],
        gives_up: &dyn Fn(&T::Key, &T) -> bool,
    ) -> Result<(), Duplicate<T::Key>> {
        let dup = |value: String, owner: &dyn AnyKey| match typed_key(owner) {
            Some(owner) => Err(Duplicate { value, owner }),
            None => Ok(()),
        };
        // Two records of the same commit claiming one value under different keys.
        if puts.len() > 1 {
            let items: Vec<(u64, &dyn AnyValue, &dyn AnyKey)> = puts
                .iter()
                .map(|(k, rec)| {
                    let v = self.field.get(rec);
                    (self.hash(v), v as &dyn AnyValue, *k as &dyn AnyKey)
                })
                .collect();
            if let Some((value, owner)) = self.raw.same_value_twice(&items) {
                dup(value, &*owner)?;
            }
        }
        for (k, rec) in puts {
            let v = self.field.get(rec);
            let mut ok =
                |o: &dyn AnyKey| typed_key::<T::Key>(o).is_none_or(|o| o == **k || gives_up(&o, rec));
            if let Some(owner) = self.raw.other_owner(self.hash(v), v, &mut ok) {
                dup(format!("{v:?}"), &*owner)?;
            }
        }
        Ok(())
    }

    fn insert(&self, rec: &T, seq: u64) {
        let v = self.field.get(rec);
        self.raw.insert(self.hash(v), v, rec.key(), seq);
    }

    fn load_many(&self, recs: &[&T], seq: u64) -> Result<(), (usize, T::Key)> {
        let items = recs
            .iter()
            .enumerate()
            .map(|(at, rec)| {
                let v = self.field.get(rec);
                (at, self.hash(v), v as &dyn AnyValue, rec.key() as &dyn AnyKey)
            })
            .collect();
        self.raw
            .load_many(items, seq)
            .map_err(|(at, owner)| (at, typed_key(&*owner).unwrap_or_else(|| recs[at].key().clone())))
    }

    fn remove(&self, rec: &T, seq: u64) {
        let v = self.field.get(rec);
        self.raw.remove(self.hash(v), v, rec.key(), seq);
    }

    fn clear(&self, seq: u64) {
        self.raw.clear(seq);
    }

    fn memory(&self) -> usize {
        self.raw.memory()
    }

    fn empty_copy(&self) -> Arc<dyn TableIndex<T>> {
        Arc::new(TypedIndex::new(self.field, self.raw.unique))
    }

    fn reserve(&self, n: usize) {
        self.raw.reserve(n);
    }
}

/// Support for the derive's `index_spec_for`: `(&&IndexProbe(field)).spec(unique)` is an
/// index spec when the field's type can be indexed and `None` otherwise, chosen at compile
/// time by method resolution (the impl on `&IndexProbe` is tried before the one on
/// `IndexProbe`).
#[doc(hidden)]
pub struct IndexProbe<T, V>(pub Field<T, V>);

#[doc(hidden)]
pub trait ProbeIndexable<T: Table> {
    fn spec(&self, unique: bool) -> Option<IndexSpec<T>>;
}

impl<T: Table, V: FieldValue + crate::field::Indexable> ProbeIndexable<T> for &IndexProbe<T, V> {
    fn spec(&self, unique: bool) -> Option<IndexSpec<T>> {
        Some(IndexSpec::new(self.0, unique))
    }
}

#[doc(hidden)]
pub trait ProbeNotIndexable<T: Table> {
    fn spec(&self, unique: bool) -> Option<IndexSpec<T>>;
}

impl<T: Table, V> ProbeNotIndexable<T> for IndexProbe<T, V> {
    fn spec(&self, _unique: bool) -> Option<IndexSpec<T>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Rec, rec};

    fn keys(idx: &dyn TableIndex<Rec>, v: &str) -> Vec<u32> {
        let mut out = Vec::new();
        idx.lookup(&v.to_string(), &mut out);
        out
    }

    #[test]
    fn plain_index_keeps_keys_in_order_and_collapses() {
        let idx = Rec::TAG.index_spec(false).build();
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
        let idx = Rec::TAG.index_spec(true).build();
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
