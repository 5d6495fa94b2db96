//! The query builder: `User::query().filter(..).order_by(..).limit(..).all()`, a typed
//! edge over the query engine (`tx/row_query.rs`), which runs on the table's rows.

use std::marker::PhantomData;

use crate::engine::meta::{all_ok, as_record, first_of, into_record, into_records, meta_of};
use crate::error::Result;
use crate::schema::filter::{Filter, Order};
use crate::schema::record::Record;
use crate::schema::row::RowOf;
use crate::tx::plan::Plan;
use crate::tx::row_query::{RowQuery, RowQueryIter};

/// A query on table `T`, built step by step and run by `all`, `first`, `count`, `keys` or
/// `iter`. Inside a transaction it runs in it; outside, in a transaction of its own.
///
/// ```
/// use mnesia::prelude::*;
///
/// #[derive(Table, Clone, Debug, Serialize, Deserialize)]
/// struct User { #[key] id: u64, name: String, age: u32 }
///
/// let db = Database::in_memory()?;
/// db.scope(|| -> mnesia::Result<()> {
///     User::create_table(TableOptions::new())?;
///     for (id, age) in [(1, 25), (2, 35), (3, 45), (4, 55)] {
///         User::write(User { id, name: format!("u{id}"), age })?;
///     }
///     let page = User::query()
///         .filter(User::AGE.between(20, 50))
///         .order_by(User::AGE.desc())
///         .limit(2)
///         .all()?;
///     assert_eq!(page.iter().map(|u| u.id).collect::<Vec<_>>(), vec![3, 2]);
///     assert_eq!(User::query().filter(User::AGE.gt(30)).count()?, 3);
///     Ok(())
/// })?;
/// # Ok::<(), mnesia::Error>(())
/// ```
pub struct Query<T: Record> {
    inner: RowQuery<RowOf<T>>,
    _t: PhantomData<fn() -> T>,
}

impl<T: Record> Clone for Query<T> {
    fn clone(&self) -> Self {
        Query { inner: self.inner.clone(), _t: PhantomData }
    }
}

impl<T: Record> std::fmt::Debug for Query<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

impl<T: Record> Default for Query<T> {
    fn default() -> Self {
        Query { inner: RowQuery::of(meta_of::<T>(), crate::tx::claim_table::<T>), _t: PhantomData }
    }
}

impl<T: Record> Query<T> {
    /// A query matching every record.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64 }
    /// let q = Query::<User>::new();
    /// # let _ = q;
    /// ```
    pub fn new() -> Self {
        Query::default()
    }

    /// Adds a condition; several `filter` calls must all hold.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, age: u32 }
    /// let q = User::query().filter(User::AGE.ge(18)).filter(User::AGE.lt(65));
    /// # let _ = q;
    /// ```
    pub fn filter(self, filter: impl Into<Filter<T>>) -> Self {
        Query { inner: self.inner.filter(filter.into().for_rows()), _t: PhantomData }
    }

    /// Sorts the results; later calls break ties of earlier ones. Ties left over are in key
    /// order. Sorting reads every match before returning any.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, name: String, age: u32 }
    /// let q = User::query().order_by(User::AGE.desc()).order_by(User::NAME.asc());
    /// # let _ = q;
    /// ```
    pub fn order_by(self, order: impl Into<Order<T>>) -> Self {
        Query { inner: self.inner.order_by(order.into().for_rows()), _t: PhantomData }
    }

    /// Returns at most `n` records.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64 }
    /// let q = User::query().limit(10);
    /// # let _ = q;
    /// ```
    pub fn limit(self, n: usize) -> Self {
        Query { inner: self.inner.limit(n), _t: PhantomData }
    }

    /// Skips the first `n` records.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64 }
    /// let q = User::query().offset(20).limit(10);
    /// # let _ = q;
    /// ```
    pub fn offset(self, n: usize) -> Self {
        Query { inner: self.inner.offset(n), _t: PhantomData }
    }

    /// How many records `iter` reads at a time (default 1000).
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64 }
    /// let q = User::query().chunk_size(100);
    /// # let _ = q;
    /// ```
    pub fn chunk_size(self, n: usize) -> Self {
        Query { inner: self.inner.chunk_size(n), _t: PhantomData }
    }

    /// How this query reads the table.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, age: u32 }
    /// let db = Database::in_memory()?;
    /// db.scope(|| -> mnesia::Result<()> {
    ///     User::create_table(TableOptions::new())?;
    ///     assert_eq!(User::query().filter(User::ID.is_in([1, 2])).explain()?, Plan::KeyLookup { keys: 2 });
    ///     Ok(())
    /// })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn explain(&self) -> Result<Plan> {
        self.inner.explain()
    }

    /// Every matching record, sorted, after `offset`, at most `limit`.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64 }
    /// let db = Database::in_memory()?;
    /// db.scope(|| -> mnesia::Result<()> {
    ///     User::create_table(TableOptions::new())?;
    ///     User::write(User { id: 1 })?;
    ///     assert_eq!(User::query().all()?.len(), 1);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn all(&self) -> Result<Vec<T>> {
        if self.inner.sorts() {
            return into_records(self.inner.all()?);
        }
        all_ok(self.inner.select_map(|r| as_record::<T>(r).cloned())?)
    }

    /// Only the records whose key comes after `key` in key order: keyset pagination. Pages
    /// follow the key's order: ascending (keys above `key`), or descending when the query
    /// is ordered by the key descending (keys below `key`), whether `order_by` comes before
    /// or after `after`. A query without `order_by` is put in ascending key order: an
    /// `ordered_set` is read in that order anyway, and
    /// `after(&last).limit(n)` reads one page from the key on, whatever page it is (where
    /// `offset(n)` reads and skips `n` records each time); a `set` or `bag` is read in no
    /// order, so every match is looked at and the first `n` in key order kept. Give the
    /// first page the same order (`order_by(<key field>)`), on a `set` or `bag`: a query
    /// without `after` or `order_by` returns matches in no order. On a `bag`, every record
    /// of `key` is skipped, also those the last page did not hold.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct Event { #[key] id: u64, kind: String }
    /// let db = Database::in_memory()?;
    /// db.scope(|| -> mnesia::Result<()> {
    ///     Event::create_table(TableOptions::new())?;
    ///     Event::batch_write((0..25).map(|id| Event { id, kind: "click".into() }))?;
    ///     let mut seen = Vec::new();
    ///     let mut last = None;
    ///     loop {
    ///         // (A `set`: the first page in key order too.)
    ///         let q = Event::query().order_by(Event::ID).limit(10);
    ///         let page = match &last { Some(k) => q.after(k).all()?, None => q.all()? };
    ///         let Some(tail) = page.last() else { break };
    ///         last = Some(tail.id);
    ///         seen.extend(page.iter().map(|e| e.id));
    ///     }
    ///     assert_eq!(seen, (0..25).collect::<Vec<_>>());
    ///     // Backwards: the keys below the last one seen.
    ///     let back = Event::query().order_by(Event::ID.desc()).after(&10).limit(3).keys()?;
    ///     assert_eq!(back, vec![9, 8, 7]);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn after(self, key: &T::Key) -> Self {
        Query { inner: self.inner.after(key), _t: PhantomData }
    }

    /// The values of some fields of the records `all` returns, in the same order: one
    /// field, or a tuple of fields (MnesiaEx's `return_fields`). Without an order, only the
    /// chosen fields are copied.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, name: String, age: u32 }
    /// let db = Database::in_memory()?;
    /// db.scope(|| -> mnesia::Result<()> {
    ///     User::create_table(TableOptions::new())?;
    ///     User::write(User { id: 1, name: "Ann".into(), age: 30 })?;
    ///     User::write(User { id: 2, name: "Bob".into(), age: 20 })?;
    ///     let rows: Vec<(String, u32)> =
    ///         User::query().order_by(User::AGE).select((User::NAME, User::AGE))?;
    ///     assert_eq!(rows, [("Bob".to_string(), 20), ("Ann".to_string(), 30)]);
    ///     assert_eq!(User::query().filter(User::AGE.gt(25)).select(User::ID)?, [1]);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn select<P: crate::schema::projection::Projection<T>>(&self, fields: P) -> Result<Vec<P::Output>> {
        let values = self.inner.select_map(|r| as_record::<T>(r).map(|rec| fields.project(rec)))?;
        all_ok(values)
    }

    /// The first record of `all`, if any.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, age: u32 }
    /// let db = Database::in_memory()?;
    /// db.scope(|| -> mnesia::Result<()> {
    ///     User::create_table(TableOptions::new())?;
    ///     User::write(User { id: 1, age: 9 })?;
    ///     User::write(User { id: 2, age: 3 })?;
    ///     assert_eq!(User::query().order_by(User::AGE.asc()).first()?.map(|u| u.id), Some(2));
    ///     Ok(())
    /// })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn first(&self) -> Result<Option<T>> {
        // (Through `all`, which copies only the record kept.)
        let one = self.inner.limit_or(1).min(1);
        Ok(first_of(self.clone().limit(one).all()?))
    }

    /// How many records match (after `offset`, at most `limit`).
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64 }
    /// let db = Database::in_memory()?;
    /// db.scope(|| -> mnesia::Result<()> {
    ///     User::create_table(TableOptions::new())?;
    ///     assert_eq!(User::query().count()?, 0);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn count(&self) -> Result<usize> {
        self.inner.count()
    }

    /// The keys of the records `all` returns, in the same order.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # #[table(type = "ordered_set")]
    /// # struct User { #[key] id: u64 }
    /// let db = Database::in_memory()?;
    /// db.scope(|| -> mnesia::Result<()> {
    ///     User::create_table(TableOptions::new())?;
    ///     User::write(User { id: 2 })?;
    ///     User::write(User { id: 1 })?;
    ///     assert_eq!(User::query().keys()?, vec![1, 2]);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn keys(&self) -> Result<Vec<T::Key>> {
        self.inner.keys()
    }

    /// Iterates over the matches a chunk at a time, without holding them all in memory
    /// (unless `order_by` is set: sorting needs them all). Each chunk is read in the current
    /// transaction, or outside one in a transaction of its own: outside a transaction the
    /// iteration as a whole is not one consistent snapshot (like Mnesia's `select` with a
    /// continuation). An `ordered_set` is visited in key order.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, age: u32 }
    /// let db = Database::in_memory()?;
    /// db.scope(|| -> mnesia::Result<()> {
    ///     User::create_table(TableOptions::new())?;
    ///     User::batch_write((0..2500).map(|id| User { id, age: (id % 90) as u32 }))?;
    ///     let mut adults = 0;
    ///     for user in User::query().filter(User::AGE.ge(18)).chunk_size(500).iter() {
    ///         let _user: User = user?;
    ///         adults += 1;
    ///     }
    ///     assert_eq!(adults, User::query().filter(User::AGE.ge(18)).count()?);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn iter(&self) -> QueryIter<T> {
        QueryIter { inner: self.inner.iter(), _t: PhantomData }
    }
}

/// The iterator returned by [`Query::iter`].
///
/// ```
/// # use mnesia::prelude::*;
/// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
/// # struct User { #[key] id: u64 }
/// let db = Database::in_memory()?;
/// db.scope(|| -> mnesia::Result<()> {
///     User::create_table(TableOptions::new())?;
///     let it: QueryIter<User> = User::query().iter();
///     assert_eq!(it.count(), 0);
///     Ok(())
/// })?;
/// # Ok::<(), mnesia::Error>(())
/// ```
pub struct QueryIter<T: Record> {
    inner: RowQueryIter<RowOf<T>>,
    _t: PhantomData<fn() -> T>,
}

impl<T: Record> std::fmt::Debug for QueryIter<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

impl<T: Record> Iterator for QueryIter<T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        self.inner.next().map(|r| r.and_then(into_record))
    }
}
