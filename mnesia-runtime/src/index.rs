//! Secondary indexes: a typed hash index per indexed field, sharded like the records.
//!
//! Invariant: after every commit, for every record `r` of the table and every index on field
//! `f`, the index maps `f(r)` to `r`'s key, and maps nothing else. A unique index maps each
//! value to exactly one key.

use std::any::Any;
use std::collections::BTreeSet;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use crossbeam_utils::CachePadded;
use hashbrown::HashMap;
use parking_lot::RwLock;

use crate::field::{Field, FieldValue};
use crate::lock::CommitLock;
use crate::store::Hasher;
use crate::table::Table;

const INDEX_SHARDS: usize = 64;

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
pub(crate) struct Duplicate {
    pub(crate) value: String,
    pub(crate) existing_key: String,
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
    ) -> Result<(), Duplicate>;
    fn insert(&self, rec: &T, seq: u64);
    fn remove(&self, rec: &T, seq: u64);
    fn clear(&self, seq: u64);
    fn memory(&self) -> usize;
}

struct IndexShardData<V, K> {
    version: u64,
    map: HashMap<V, Owners<K>, Hasher>,
}

/// The keys holding one value: almost always one.
enum Owners<K> {
    One(K),
    Many(BTreeSet<K>),
}

struct IndexShard<V, K> {
    commit: CommitLock,
    data: RwLock<IndexShardData<V, K>>,
}

type Shards<V, K> = Box<[CachePadded<IndexShard<V, K>>]>;

struct TypedIndex<T: Table, V> {
    field: Field<T, V>,
    unique: bool,
    hasher: Hasher,
    shards: Shards<V, T::Key>,
}

impl<T: Table, V: FieldValue + Hash + Eq> TypedIndex<T, V> {
    fn new(field: Field<T, V>, unique: bool) -> Self {
        let shards = (0..INDEX_SHARDS)
            .map(|_| {
                CachePadded::new(IndexShard {
                    commit: CommitLock::new(),
                    data: RwLock::new(IndexShardData {
                        version: 0,
                        map: HashMap::with_hasher(Hasher::default()),
                    }),
                })
            })
            .collect();
        TypedIndex { field, unique, hasher: Hasher::default(), shards }
    }

    fn shard_of(&self, v: &V) -> usize {
        ((self.hasher.hash_one(v) >> 40) as usize) & (INDEX_SHARDS - 1)
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
        self.unique
    }

    fn shard_count(&self) -> usize {
        INDEX_SHARDS
    }

    fn shard_of_record(&self, rec: &T) -> usize {
        self.shard_of(self.field.get(rec))
    }

    fn commit_lock(&self, shard: usize) -> &CommitLock {
        &self.shards[shard].commit
    }

    fn shard_version(&self, shard: usize) -> u64 {
        self.shards[shard].data.read().version
    }

    fn lookup(&self, value: &dyn Any, out: &mut Vec<T::Key>) -> Option<(usize, u64)> {
        let v = value.downcast_ref::<V>()?;
        let shard = self.shard_of(v);
        let data = self.shards[shard].data.read();
        match data.map.get(v) {
            Some(Owners::One(k)) => out.push(k.clone()),
            Some(Owners::Many(ks)) => out.extend(ks.iter().cloned()),
            None => {}
        }
        Some((shard, data.version))
    }

    fn lookup_by_record(&self, rec: &T, out: &mut Vec<T::Key>) {
        let v = self.field.get(rec);
        let data = self.shards[self.shard_of(v)].data.read();
        match data.map.get(v) {
            Some(Owners::One(k)) => out.push(k.clone()),
            Some(Owners::Many(ks)) => out.extend(ks.iter().cloned()),
            None => {}
        }
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
    ) -> Result<(), Duplicate> {
        let dup = |v: &V, k: &T::Key| Duplicate { value: format!("{v:?}"), existing_key: format!("{k:?}") };
        // Two records of the same commit claiming one value under different keys.
        if puts.len() > 1 {
            let mut seen: HashMap<&V, &T::Key, Hasher> =
                HashMap::with_capacity_and_hasher(puts.len(), Hasher::default());
            for (k, rec) in puts {
                let v = self.field.get(rec);
                if let Some(other) = seen.insert(v, k) {
                    if other != *k {
                        return Err(dup(v, other));
                    }
                }
            }
        }
        for (k, rec) in puts {
            let v = self.field.get(rec);
            let data = self.shards[self.shard_of(v)].data.read();
            let owners: Vec<&T::Key> = match data.map.get(v) {
                Some(Owners::One(o)) => vec![o],
                Some(Owners::Many(os)) => os.iter().collect(),
                None => continue,
            };
            for owner in owners {
                if owner != *k && !gives_up(owner, rec) {
                    return Err(dup(v, owner));
                }
            }
        }
        Ok(())
    }

    fn insert(&self, rec: &T, seq: u64) {
        let v = self.field.get(rec);
        let key = rec.key();
        let mut data = self.shards[self.shard_of(v)].data.write();
        data.version = seq;
        if self.unique {
            // Validation made the value free (or held by a key giving it up in this commit).
            data.map.insert(v.clone(), Owners::One(key.clone()));
            return;
        }
        match data.map.get_mut(v) {
            None => {
                data.map.insert(v.clone(), Owners::One(key.clone()));
            }
            Some(Owners::One(k)) if k == key => {}
            Some(o @ Owners::One(_)) => {
                let Owners::One(first) = std::mem::replace(o, Owners::Many(BTreeSet::new())) else {
                    return;
                };
                if let Owners::Many(set) = o {
                    set.insert(first);
                    set.insert(key.clone());
                }
            }
            Some(Owners::Many(set)) => {
                set.insert(key.clone());
            }
        }
    }

    fn remove(&self, rec: &T, seq: u64) {
        let v = self.field.get(rec);
        let key = rec.key();
        let mut data = self.shards[self.shard_of(v)].data.write();
        data.version = seq;
        let empty = match data.map.get_mut(v) {
            None => false,
            Some(Owners::One(k)) => k == key,
            Some(Owners::Many(set)) => {
                set.remove(key);
                if set.len() == 1 {
                    if let Some(last) = set.pop_first() {
                        data.map.insert(v.clone(), Owners::One(last));
                    }
                    false
                } else {
                    set.is_empty()
                }
            }
        };
        if empty {
            data.map.remove(v);
        }
    }

    fn clear(&self, seq: u64) {
        for s in self.shards.iter() {
            let mut d = s.data.write();
            d.version = seq;
            d.map = HashMap::with_hasher(Hasher::default());
        }
    }

    fn memory(&self) -> usize {
        let entry = size_of::<V>() + size_of::<Owners<T::Key>>() + 1;
        self.shards.iter().map(|s| s.data.read().map.capacity() * entry).sum()
    }
}
