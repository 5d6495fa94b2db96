//! The explicit transaction handle given to `db.transaction(|tx| ..)`.

use std::marker::PhantomData;

use crate::api::table::Table;
use crate::error::Result;
use crate::schema::field::{Compare, Field, FieldValue};
use crate::schema::filter::Filter;
use crate::schema::record::Upserted;
use crate::tx::ops;
use crate::tx::query::Query;

/// The handle of a running transaction. Its functions are the table-scoped ones, run in this
/// transaction (the same code: `tx.write(u)` and `User::write(u)` inside the closure do the
/// same thing). It cannot leave the closure's thread.
///
/// ```
/// use mnesia::prelude::*;
///
/// #[derive(Table, Clone, Debug, Serialize, Deserialize)]
/// struct User { #[key] id: u64, age: u32 }
///
/// let db = Database::in_memory()?;
/// db.create_table::<User>(TableOptions::new())?;
/// db.transaction(|tx| {
///     tx.write(User { id: 1, age: 30 })?;
///     let u = tx.read::<User>(&1)?;
///     assert_eq!(u.map(|u| u.age), Some(30));
///     Ok::<_, mnesia::Error>(())
/// })?;
/// # Ok::<(), mnesia::Error>(())
/// ```
#[derive(Debug)]
pub struct Transaction {
    _not_send: PhantomData<*const ()>,
}

impl Transaction {
    pub(crate) fn new() -> Self {
        Transaction { _not_send: PhantomData }
    }

    /// See [`Table::write`].
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64 }
    /// # let db = Database::in_memory()?;
    /// # db.create_table::<User>(TableOptions::new())?;
    /// db.transaction(|tx| tx.write(User { id: 1 }))?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn write<T: Table>(&self, record: T) -> Result<T> {
        ops::write(record)
    }

    /// See [`Table::insert`].
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] #[auto_increment] id: u64 }
    /// # let db = Database::in_memory()?;
    /// # db.create_table::<User>(TableOptions::new())?;
    /// let u = db.transaction(|tx| tx.insert(User { id: 0 }))?;
    /// assert_eq!(u.id, 1);
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn insert<T: Table>(&self, record: T) -> Result<T> {
        ops::insert(record)
    }

    /// See [`Table::read`].
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64 }
    /// # let db = Database::in_memory()?;
    /// # db.create_table::<User>(TableOptions::new())?;
    /// assert!(db.transaction(|tx| tx.read::<User>(&1))?.is_none());
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn read<T: Table>(&self, key: &T::Key) -> Result<Option<T>> {
        ops::read(key)
    }

    /// See [`Table::read_all`].
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64 }
    /// # let db = Database::in_memory()?;
    /// # db.create_table::<User>(TableOptions::new())?;
    /// assert!(db.transaction(|tx| tx.read_all::<User>(&1))?.is_empty());
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn read_all<T: Table>(&self, key: &T::Key) -> Result<Vec<T>> {
        ops::read_all(key)
    }

    /// See [`Table::update`].
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, n: u32 }
    /// # let db = Database::in_memory()?;
    /// # db.create_table::<User>(TableOptions::new())?;
    /// let u = db.transaction(|tx| {
    ///     tx.write(User { id: 1, n: 1 })?;
    ///     tx.update::<User>(&1, |u| u.n += 1)
    /// })?;
    /// assert_eq!(u.n, 2);
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn update<T: Table>(&self, key: &T::Key, f: impl FnMut(&mut T)) -> Result<T> {
        ops::update(key, f)
    }

    /// See [`Table::delete`].
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64 }
    /// # let db = Database::in_memory()?;
    /// # db.create_table::<User>(TableOptions::new())?;
    /// assert!(db.transaction(|tx| tx.delete::<User>(&1))?.is_none());
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn delete<T: Table>(&self, key: &T::Key) -> Result<Option<T>> {
        ops::delete(key)
    }

    /// See [`Table::delete_object`].
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64 }
    /// # let db = Database::in_memory()?;
    /// # db.create_table::<User>(TableOptions::new())?;
    /// assert!(!db.transaction(|tx| tx.delete_object(&User { id: 1 }))?);
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn delete_object<T: Table>(&self, record: &T) -> Result<bool> {
        ops::delete_object(record)
    }

    /// See [`Table::upsert`].
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64 }
    /// # let db = Database::in_memory()?;
    /// # db.create_table::<User>(TableOptions::new())?;
    /// assert!(db.transaction(|tx| tx.upsert(User { id: 1 }))?.inserted());
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn upsert<T: Table>(&self, record: T) -> Result<Upserted<T>> {
        ops::upsert(record)
    }

    /// See [`Table::get_by`].
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, #[index] name: String }
    /// # let db = Database::in_memory()?;
    /// # db.create_table::<User>(TableOptions::new())?;
    /// assert!(db.transaction(|tx| tx.get_by(User::NAME, "x"))?.is_none());
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn get_by<T: Table, V: FieldValue>(
        &self,
        field: Field<T, V>,
        value: impl Compare<V>,
    ) -> Result<Option<T>> {
        ops::get_by(field, value)
    }

    /// See [`Table::select`].
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, age: u32 }
    /// # let db = Database::in_memory()?;
    /// # db.create_table::<User>(TableOptions::new())?;
    /// assert!(db.transaction(|tx| tx.select(User::AGE.gt(3)))?.is_empty());
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn select<T: Table>(&self, filter: impl Into<Filter<T>>) -> Result<Vec<T>> {
        ops::select(&filter.into())
    }

    /// See [`Table::query`].
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64 }
    /// # let db = Database::in_memory()?;
    /// # db.create_table::<User>(TableOptions::new())?;
    /// assert_eq!(db.transaction(|tx| tx.query::<User>().count())?, 0);
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn query<T: Table>(&self) -> Query<T> {
        Query::new()
    }

    /// See [`Table::all_keys`].
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64 }
    /// # let db = Database::in_memory()?;
    /// # db.create_table::<User>(TableOptions::new())?;
    /// assert!(db.transaction(|tx| tx.all_keys::<User>())?.is_empty());
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn all_keys<T: Table>(&self) -> Result<Vec<T::Key>> {
        ops::all_keys::<T>()
    }

    /// See [`Table::list`].
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64 }
    /// # let db = Database::in_memory()?;
    /// # db.create_table::<User>(TableOptions::new())?;
    /// assert!(db.transaction(|tx| tx.list::<User>())?.is_empty());
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn list<T: Table>(&self) -> Result<Vec<T>> {
        ops::select(&Filter::all())
    }

    /// See [`Table::count`].
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64 }
    /// # let db = Database::in_memory()?;
    /// # db.create_table::<User>(TableOptions::new())?;
    /// assert_eq!(db.transaction(|tx| tx.count::<User>())?, 0);
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn count<T: Table>(&self) -> Result<usize> {
        ops::count::<T>()
    }

    /// See [`Table::batch_write`].
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64 }
    /// # let db = Database::in_memory()?;
    /// # db.create_table::<User>(TableOptions::new())?;
    /// db.transaction(|tx| tx.batch_write([User { id: 1 }, User { id: 2 }]))?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn batch_write<T: Table>(&self, records: impl IntoIterator<Item = T>) -> Result<Vec<T>> {
        ops::batch_write(records)
    }

    /// See [`Table::batch_delete`].
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64 }
    /// # let db = Database::in_memory()?;
    /// # db.create_table::<User>(TableOptions::new())?;
    /// assert!(db.transaction(|tx| tx.batch_delete::<User>([1]))?.is_empty());
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn batch_delete<T: Table>(&self, keys: impl IntoIterator<Item = T::Key>) -> Result<Vec<T>> {
        ops::batch_delete::<T>(keys)
    }
}

impl crate::db::Database {
    /// Runs `f` as one serializable transaction on this database. `f` gets a handle with
    /// the same operations as the table-scoped functions, which also join this transaction
    /// when called inside it. On a conflict with another transaction `f` runs again (up to
    /// [`Config::max_retries`](crate::Config::max_retries) times); when `f` returns `Err` every write is rolled back and
    /// the error is returned; a panic rolls back and propagates.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct Item { #[key] id: u32, n: i64 }
    /// let db = Database::in_memory()?;
    /// db.create_table::<Item>(TableOptions::new())?;
    /// let total = db.transaction(|tx| {
    ///     tx.write(Item { id: 1, n: 5 })?;
    ///     tx.write(Item { id: 2, n: 7 })?;
    ///     Ok::<_, mnesia::Error>(tx.list::<Item>()?.iter().map(|i| i.n).sum::<i64>())
    /// })?;
    /// assert_eq!(total, 12);
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn transaction<R, E: From<crate::Error>>(
        &self,
        mut f: impl FnMut(&crate::Transaction) -> Result<R, E>,
    ) -> Result<R, E> {
        let handle = crate::Transaction::new();
        crate::tx::context::transact(self.clone(), || f(&handle))
    }
}
