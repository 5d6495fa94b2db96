//! The query builder: `User::query().filter(..).order_by(..).limit(..).all()`.

use std::marker::PhantomData;

use crate::engine::meta::RecordMeta;
use crate::error::Result;
use crate::schema::filter::{Filter, Order};
use crate::schema::record::{Record, TableType};
use crate::schema::stored::StoredRecord;
use crate::tx::context::{run, with_tx};
use crate::tx::plan::Plan;
use crate::tx::select::Cursor;

/// Above this many wanted matches (`offset + limit`), an ordered query sorts every match
/// rather than keeping the best few.
const TOP_K_AT_MOST: usize = 1 << 16;

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
pub struct Query<T: StoredRecord> {
    /// The table's record type.
    meta: &'static RecordMeta<T>,
    /// Claims the table for its type as a transaction first uses it.
    claim: crate::tx::Claim,
    filter: Filter<T>,
    order: Vec<Order<T>>,
    limit: Option<usize>,
    offset: usize,
    chunk: usize,
    /// The key pages start after (see [`Query::after`]): made a condition (and an order)
    /// when the query runs, by the order it has then.
    after: Option<T::Key>,
}

impl<T: StoredRecord> Clone for Query<T> {
    fn clone(&self) -> Self {
        Query {
            meta: self.meta,
            claim: self.claim,
            filter: self.filter.clone(),
            order: self.order.clone(),
            limit: self.limit,
            offset: self.offset,
            chunk: self.chunk,
            after: self.after.clone(),
        }
    }
}

impl<T: StoredRecord> std::fmt::Debug for Query<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Query")
            .field("table", &self.meta.name)
            .field("filter", &self.filter)
            .field("order", &self.order)
            .field("limit", &self.limit)
            .field("offset", &self.offset)
            .field("after", &self.after)
            .finish()
    }
}

impl<T: Record> Default for Query<T> {
    fn default() -> Self {
        Query::of(RecordMeta::<T>::of(), crate::tx::claim_table::<T>)
    }
}

impl<T: StoredRecord> Query<T> {
    /// A query on the table `meta` describes, which `claim` claims as a transaction first
    /// uses it.
    pub(crate) fn of(meta: &'static RecordMeta<T>, claim: crate::tx::Claim) -> Self {
        Query {
            meta,
            claim,
            filter: Filter::all(),
            order: Vec::new(),
            limit: None,
            offset: 0,
            chunk: 1000,
            after: None,
        }
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
}

impl<T: StoredRecord> Query<T> {
    /// Adds a condition; several `filter` calls must all hold.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, age: u32 }
    /// let q = User::query().filter(User::AGE.ge(18)).filter(User::AGE.lt(65));
    /// # let _ = q;
    /// ```
    pub fn filter(mut self, filter: impl Into<Filter<T>>) -> Self {
        self.filter = std::mem::replace(&mut self.filter, Filter::all()) & filter.into();
        self
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
    pub fn order_by(mut self, order: impl Into<Order<T>>) -> Self {
        self.order.push(order.into());
        self
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
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = Some(n);
        self
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
    pub fn offset(mut self, n: usize) -> Self {
        self.offset = n;
        self
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
    pub fn chunk_size(mut self, n: usize) -> Self {
        self.chunk = n.max(1);
        self
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
        if self.after.is_some() {
            return self.resolved().explain();
        }
        let db = crate::tx::context::current_db()?;
        (self.claim)(&db)?;
        let store = db.current_store(self.meta)?;
        Ok(crate::tx::plan::plan(
            &self.filter,
            store.kind,
            store.meta.key_position,
            &store.indexes.load(),
            &|| store.key_count(),
        )
        .plan())
    }

    fn sorted(&self, mut recs: Vec<T>) -> Vec<T> {
        if !self.order.is_empty() {
            crate::base::sort::sort_by(&mut recs, |a, b| self.compare(a, b));
        }
        recs.into_iter().skip(self.offset).take(self.limit.unwrap_or(usize::MAX)).collect()
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
        if self.after.is_some() {
            return self.resolved().all();
        }
        // Matches needed: `offset + limit`; reading stops there without an order, and with
        // one only that many are kept (a bounded selection, not a copy of every match).
        let wanted = self.limit.map(|l| l.saturating_add(self.offset));
        let recs = match wanted {
            Some(k) if self.in_key_order() => {
                run(|| with_tx(|tx| tx.select_in(self.meta, self.claim, &self.filter, k, T::clone)))?
            }
            Some(k) if k <= TOP_K_AT_MOST => run(|| with_tx(|tx| self.top(tx, k)))?,
            _ => {
                run(|| with_tx(|tx| tx.select_in(self.meta, self.claim, &self.filter, usize::MAX, T::clone)))?
            }
        };
        Ok(self.sorted(recs))
    }

    /// Whether the records come as the query wants them without sorting: no order, or the
    /// key's ascending order on an `ordered_set` (which is read in key order).
    fn in_key_order(&self) -> bool {
        match self.order.as_slice() {
            [] => true,
            [o] => self.meta.kind == TableType::OrderedSet && o.is_key_ascending(self.meta.key_position),
            _ => false,
        }
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
    pub fn after(mut self, key: &T::Key) -> Self {
        self.after = Some(key.clone());
        self
    }

    /// The query as it runs: [`Query::after`]'s key made a condition, by the order the
    /// query has (keys below it when ordered by the key descending, above it otherwise),
    /// and a `set` or `bag` without an order put in key order (an `ordered_set` is read in
    /// it anyway).
    fn resolved(&self) -> Query<T> {
        let mut q = self.clone();
        let Some(key) = q.after.take() else { return q };
        let descending = q.order.first().is_some_and(|o| o.is_key_descending(self.meta.key_position));
        let field = self.meta.fields.get(self.meta.key_position).map_or("key", |f| f.name);
        if q.order.is_empty() && self.meta.kind != TableType::OrderedSet {
            let by_key: crate::schema::filter::Comparator<T> =
                std::sync::Arc::new(|a: &T, b: &T| a.key().cmp(b.key()));
            q.order.push(Order::new(field, self.meta.key_position, true, by_key));
        }
        let bar = key.clone();
        #[allow(clippy::type_complexity)]
        let (op, test): (_, std::sync::Arc<dyn Fn(&T) -> bool + Send + Sync>) = if descending {
            (crate::schema::filter::Op::Lt, std::sync::Arc::new(move |r: &T| r.key() < &bar))
        } else {
            (crate::schema::filter::Op::Gt, std::sync::Arc::new(move |r: &T| r.key() > &bar))
        };
        let cond = crate::schema::filter::Cond {
            field,
            position: self.meta.key_position,
            op,
            values: vec![std::sync::Arc::new(key)],
            test,
        };
        q.filter(Filter::from_cond(cond))
    }

    /// How two records compare in the query's order (then by key).
    fn compare(&self, a: &T, b: &T) -> std::cmp::Ordering {
        self.order.iter().map(|o| o.compare(a, b)).find(|o| o.is_ne()).unwrap_or_else(|| a.key().cmp(b.key()))
    }

    /// The `k` first matches in the query's order, keeping at most `2k` copies at a time.
    fn top(&self, tx: &mut crate::tx::Tx, k: usize) -> Result<Vec<T>> {
        let mut best: Vec<T> = Vec::new();
        // After a compaction, `best[..k]` is sorted and `best[k - 1]` is the bar to pass.
        let mut compacted = false;
        tx.select_in(self.meta, self.claim, &self.filter, usize::MAX, |r| {
            if k == 0 || (compacted && self.compare(r, &best[k - 1]).is_ge()) {
                return;
            }
            best.push(r.clone());
            if best.len() >= 2 * k {
                crate::base::sort::sort_by(&mut best, |a, b| self.compare(a, b));
                best.truncate(k);
                compacted = true;
            }
        })?;
        Ok(best)
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
        if self.after.is_some() {
            return self.resolved().select(fields);
        }
        if !self.in_key_order() {
            return Ok(self.all()?.iter().map(|r| fields.project(r)).collect());
        }
        let wanted = self.limit.map_or(usize::MAX, |l| l.saturating_add(self.offset));
        let values = run(|| {
            with_tx(|tx| tx.select_in(self.meta, self.claim, &self.filter, wanted, |r| fields.project(r)))
        })?;
        Ok(values.into_iter().skip(self.offset).take(self.limit.unwrap_or(usize::MAX)).collect())
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
        // Stops at the first match (or keeps the best one, with an order); `limit(0)`
        // leaves `all` empty, so nothing comes first.
        let one = self.limit.map_or(1, |l| l.min(1));
        Ok(self.clone().limit(one).all()?.into_iter().next())
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
        if self.after.is_some() {
            return self.resolved().count();
        }
        let wanted = self.limit.map_or(usize::MAX, |l| l.saturating_add(self.offset));
        let n = run(|| {
            with_tx(|tx| Ok(tx.select_in(self.meta, self.claim, &self.filter, wanted, |_| ())?.len()))
        })?;
        Ok(n.saturating_sub(self.offset).min(self.limit.unwrap_or(usize::MAX)))
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
        if self.after.is_some() {
            return self.resolved().keys();
        }
        if self.in_key_order() {
            let wanted = self.limit.map_or(usize::MAX, |l| l.saturating_add(self.offset));
            let keys = run(|| {
                with_tx(|tx| tx.select_in(self.meta, self.claim, &self.filter, wanted, |r| r.key().clone()))
            })?;
            return Ok(keys.into_iter().skip(self.offset).take(self.limit.unwrap_or(usize::MAX)).collect());
        }
        Ok(self.all()?.into_iter().map(|r| r.key().clone()).collect())
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
        if self.after.is_some() {
            return self.resolved().iter();
        }
        let start =
            if self.meta.kind == TableType::OrderedSet { Cursor::After(None) } else { Cursor::Shard(0) };
        QueryIter {
            query: self.clone(),
            cursor: if self.order.is_empty() { start } else { Cursor::Pending },
            sorted: !self.order.is_empty(),
            buffer: std::collections::VecDeque::new(),
            skipped: 0,
            yielded: 0,
            _t: PhantomData,
        }
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
pub struct QueryIter<T: StoredRecord> {
    query: Query<T>,
    cursor: Cursor<T::Key>,
    sorted: bool,
    buffer: std::collections::VecDeque<T>,
    skipped: usize,
    yielded: usize,
    _t: PhantomData<T>,
}

impl<T: StoredRecord> std::fmt::Debug for QueryIter<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryIter").field("query", &self.query).finish_non_exhaustive()
    }
}

impl<T: StoredRecord> QueryIter<T> {
    fn refill(&mut self) -> Result<()> {
        while self.buffer.is_empty() && !matches!(self.cursor, Cursor::Done) {
            if self.sorted {
                // Sorting needs every match: one read, then done.
                let all = self.query.clone().offset(0).limit(usize::MAX).all()?;
                self.buffer.extend(all);
                self.cursor = Cursor::Done;
                break;
            }
            let cursor = std::mem::replace(&mut self.cursor, Cursor::Done);
            let filter = &self.query.filter;
            let (meta, claim, size) = (self.query.meta, self.query.claim, self.query.chunk);
            let (chunk, next) =
                run(|| with_tx(|tx| Ok(tx.part_to_scan(meta, claim)?.chunk(filter, cursor.clone(), size))))?;
            self.cursor = next;
            self.buffer.extend(chunk);
        }
        Ok(())
    }
}

impl<T: StoredRecord> Iterator for QueryIter<T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        loop {
            if self.yielded >= self.query.limit.unwrap_or(usize::MAX) {
                return None;
            }
            if let Err(e) = self.refill() {
                self.cursor = Cursor::Done;
                self.buffer.clear();
                return Some(Err(e));
            }
            let rec = self.buffer.pop_front()?;
            if self.skipped < self.query.offset {
                self.skipped += 1;
                continue;
            }
            self.yielded += 1;
            return Some(Ok(rec));
        }
    }
}
