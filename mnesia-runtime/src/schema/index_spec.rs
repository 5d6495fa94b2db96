//! How a table's index is described and what the engine asks of one: [`IndexSpec`] (made
//! by `Field::index_spec`, listed by the derive) and the `TableIndex` trait every index
//! implements, whatever its field's type.

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::base::lock::CommitLock;
use crate::schema::row::Row;
use crate::schema::stored::StoredRecord;

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
pub struct IndexSpec<T: StoredRecord> {
    pub(crate) field: &'static str,
    pub(crate) position: usize,
    pub(crate) unique: bool,
    /// Builds the index over rows (what every table's store holds).
    pub(crate) rows: RowIndexBuilder<T::Key>,
    pub(crate) _record: PhantomData<fn() -> T>,
}

/// What builds an index over rows of a key type.
pub(crate) type RowIndexBuilder<K> = Arc<dyn Fn() -> Arc<dyn TableIndex<Row<K>>> + Send + Sync>;

impl<T: StoredRecord> Clone for IndexSpec<T> {
    fn clone(&self) -> Self {
        self.relabeled()
    }
}

impl<T: StoredRecord> fmt::Debug for IndexSpec<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IndexSpec").field("field", &self.field).field("unique", &self.unique).finish()
    }
}

impl<T: StoredRecord> IndexSpec<T> {
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

    /// The same index, for a store of rows.
    pub(crate) fn for_rows(&self) -> IndexSpec<Row<T::Key>> {
        self.relabeled()
    }

    /// The same index, described for records of `U` (of the same key type).
    fn relabeled<U: StoredRecord<Key = T::Key>>(&self) -> IndexSpec<U> {
        IndexSpec {
            field: self.field,
            position: self.position,
            unique: self.unique,
            rows: Arc::clone(&self.rows),
            _record: PhantomData,
        }
    }

    /// A new, empty index for a store of `T`: a store of rows (`T` is a `Row`), which every
    /// table's store is; `Error::Internal` for any other.
    pub(crate) fn build(&self) -> crate::error::Result<Arc<dyn TableIndex<T>>> {
        let built: Box<dyn Any> = Box::new((self.rows)());
        built.downcast::<Arc<dyn TableIndex<T>>>().map(|b| *b).map_err(|_| {
            crate::error::Error::Internal(format!("index on {}: a store not of rows", self.field))
        })
    }
}

/// A value that is already owned by another key of a unique index.
pub(crate) struct Duplicate<K> {
    pub(crate) value: String,
    /// The key already holding the value.
    pub(crate) owner: K,
}

/// An index as the engine sees it, whatever the field's type.
pub(crate) trait TableIndex<T: StoredRecord>: Send + Sync {
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
