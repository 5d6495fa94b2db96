//! The query engine under the typed query builder (`tx/query.rs`): a query on the rows of
//! a table, whatever its record type, compiled once per key type.

use std::any::Any;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::engine::meta::{RecordMeta, first_of};
use crate::error::Result;
use crate::schema::filter::{By, Cond, Filter, Op, Order, Test};
use crate::schema::record::TableType;
use crate::schema::stored::StoredRecord;
use crate::tx::context::run_tx;
use crate::tx::plan::Plan;
use crate::tx::select::Cursor;

/// Above this many wanted matches (`offset + limit`), an ordered query sorts every match
/// rather than keeping the best few.
const TOP_K_AT_MOST: usize = 1 << 16;

/// A query on the rows of the table `meta` describes (see the public `Query`, which wraps
/// it). Inside a transaction it runs in it; outside, in a transaction of its own.
pub(crate) struct RowQuery<T: StoredRecord> {
    /// The table's description.
    meta: &'static RecordMeta<T>,
    /// Claims the table for its type as a transaction first uses it.
    claim: crate::tx::Claim,
    filter: Filter<T>,
    order: Vec<Order<T>>,
    limit: Option<usize>,
    offset: usize,
    chunk: usize,
    /// The key pages start after (see [`RowQuery::after`]): made a condition (and an order)
    /// when the query runs, by the order it has then.
    after: Option<T::Key>,
}

impl<T: StoredRecord> Clone for RowQuery<T> {
    fn clone(&self) -> Self {
        RowQuery {
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

impl<T: StoredRecord> std::fmt::Debug for RowQuery<T> {
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

impl<T: StoredRecord> RowQuery<T> {
    /// A query on the table `meta` describes, which `claim` claims as a transaction first
    /// uses it.
    pub(crate) fn of(meta: &'static RecordMeta<T>, claim: crate::tx::Claim) -> Self {
        RowQuery {
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

impl<T: StoredRecord> RowQuery<T> {
    /// Adds a condition; several `filter` calls must all hold.
    pub(crate) fn filter(mut self, filter: impl Into<Filter<T>>) -> Self {
        self.filter = std::mem::replace(&mut self.filter, Filter::all()) & filter.into();
        self
    }

    /// Sorts the results; later calls break ties of earlier ones. Ties left over are in key
    /// order. Sorting reads every match before returning any.
    pub(crate) fn order_by(mut self, order: impl Into<Order<T>>) -> Self {
        self.order.push(order.into());
        self
    }

    /// Returns at most `n` records.
    pub(crate) fn limit(mut self, n: usize) -> Self {
        self.limit = Some(n);
        self
    }

    /// Skips the first `n` records.
    pub(crate) fn offset(mut self, n: usize) -> Self {
        self.offset = n;
        self
    }

    /// How many records `iter` reads at a time (default 1000).
    pub(crate) fn chunk_size(mut self, n: usize) -> Self {
        self.chunk = n.max(1);
        self
    }

    /// How this query reads the table.
    pub(crate) fn explain(&self) -> Result<Plan> {
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
        self.page(recs)
    }

    /// What is left of `all` after `offset`, at most `limit` of it (vector operations, not
    /// iterator adapters: this runs on every typed edge's own output type).
    fn page<X>(&self, mut v: Vec<X>) -> Vec<X> {
        if self.offset > 0 {
            v = v.split_off(self.offset.min(v.len()));
        }
        v.truncate(self.limit.unwrap_or(usize::MAX));
        v
    }

    /// Every matching record, sorted, after `offset`, at most `limit`.
    pub(crate) fn all(&self) -> Result<Vec<T>> {
        if self.after.is_some() {
            return self.resolved().all();
        }
        // Matches needed: `offset + limit`; reading stops there without an order, and with
        // one only that many are kept (a bounded selection, not a copy of every match).
        let wanted = self.limit.map(|l| l.saturating_add(self.offset));
        let recs = match wanted {
            Some(k) if self.in_key_order() => {
                run_tx(|tx| tx.select_in(self.meta, self.claim, &self.filter, k, T::clone))?
            }
            Some(k) if k <= TOP_K_AT_MOST => run_tx(|tx| self.top(tx, k))?,
            _ => run_tx(|tx| tx.select_in(self.meta, self.claim, &self.filter, usize::MAX, T::clone))?,
        };
        Ok(self.sorted(recs))
    }

    /// Whether running the query sorts its matches (`all` copies every record then, where
    /// [`RowQuery::select_map`] reads only what its function makes).
    pub(crate) fn sorts(&self) -> bool {
        self.after.is_some() || !self.in_key_order()
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
    pub(crate) fn after(mut self, key: &T::Key) -> Self {
        self.after = Some(key.clone());
        self
    }

    /// The query as it runs: [`RowQuery::after`]'s key made a condition, by the order the
    /// query has (keys below it when ordered by the key descending, above it otherwise),
    /// and a `set` or `bag` without an order put in key order (an `ordered_set` is read in
    /// it anyway).
    fn resolved(&self) -> RowQuery<T> {
        let mut q = self.clone();
        let Some(key) = q.after.take() else { return q };
        let descending = q.order.first().is_some_and(|o| o.is_key_descending(self.meta.key_position));
        let field = self.meta.fields.get(self.meta.key_position).map_or("key", |f| f.name);
        if q.order.is_empty() && self.meta.kind != TableType::OrderedSet {
            q.order.push(Order::new(field, self.meta.key_position, true, By::Key));
        }
        let bar = key.clone();
        let beyond = if descending { std::cmp::Ordering::Less } else { std::cmp::Ordering::Greater };
        let op = if descending { Op::Lt } else { Op::Gt };
        let test = Test::Record(Arc::new(move |r: &dyn Any| {
            r.downcast_ref::<T>().is_some_and(|r| r.key().cmp(&bar) == beyond)
        }));
        let cond = Cond { field, position: self.meta.key_position, op, values: vec![Arc::new(key)], test };
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

    /// `f` of each record `all` returns, in the same order (without an order, only what
    /// `f` makes is copied).
    pub(crate) fn select_map<X>(&self, f: impl Fn(&T) -> X) -> Result<Vec<X>> {
        if self.after.is_some() {
            return self.resolved().select_map(f);
        }
        if !self.in_key_order() {
            let all = self.all()?;
            let mut out = Vec::with_capacity(all.len());
            for r in &all {
                out.push(f(r));
            }
            return Ok(out);
        }
        let wanted = self.limit.map_or(usize::MAX, |l| l.saturating_add(self.offset));
        let values = run_tx(|tx| tx.select_in(self.meta, self.claim, &self.filter, wanted, &f))?;
        Ok(self.page(values))
    }

    /// The first record of `all`, if any.
    pub(crate) fn first(&self) -> Result<Option<T>> {
        // Stops at the first match (or keeps the best one, with an order); `limit(0)`
        // leaves `all` empty, so nothing comes first.
        let one = self.limit_or(1).min(1);
        Ok(first_of(self.clone().limit(one).all()?))
    }

    /// The limit set, or `none`.
    pub(crate) fn limit_or(&self, none: usize) -> usize {
        self.limit.unwrap_or(none)
    }

    /// How many records match (after `offset`, at most `limit`).
    pub(crate) fn count(&self) -> Result<usize> {
        if self.after.is_some() {
            return self.resolved().count();
        }
        let wanted = self.limit.map_or(usize::MAX, |l| l.saturating_add(self.offset));
        let n = run_tx(|tx| Ok(tx.select_in(self.meta, self.claim, &self.filter, wanted, |_| ())?.len()))?;
        Ok(n.saturating_sub(self.offset).min(self.limit.unwrap_or(usize::MAX)))
    }

    /// The keys of the records `all` returns, in the same order.
    pub(crate) fn keys(&self) -> Result<Vec<T::Key>> {
        if self.after.is_some() {
            return self.resolved().keys();
        }
        if self.in_key_order() {
            let wanted = self.limit.map_or(usize::MAX, |l| l.saturating_add(self.offset));
            let keys =
                run_tx(|tx| tx.select_in(self.meta, self.claim, &self.filter, wanted, |r| r.key().clone()))?;
            return Ok(self.page(keys));
        }
        Ok(self.all()?.into_iter().map(|r| r.key().clone()).collect())
    }

    /// Iterates over the matches a chunk at a time, without holding them all in memory
    /// (unless `order_by` is set: sorting needs them all). Each chunk is read in the current
    /// transaction, or outside one in a transaction of its own: outside a transaction the
    /// iteration as a whole is not one consistent snapshot (like Mnesia's `select` with a
    /// continuation). An `ordered_set` is visited in key order.
    pub(crate) fn iter(&self) -> RowQueryIter<T> {
        if self.after.is_some() {
            return self.resolved().iter();
        }
        let start =
            if self.meta.kind == TableType::OrderedSet { Cursor::After(None) } else { Cursor::Shard(0) };
        RowQueryIter {
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

/// The iterator returned by [`RowQuery::iter`].
pub(crate) struct RowQueryIter<T: StoredRecord> {
    query: RowQuery<T>,
    cursor: Cursor<T::Key>,
    sorted: bool,
    buffer: std::collections::VecDeque<T>,
    skipped: usize,
    yielded: usize,
    _t: PhantomData<T>,
}

impl<T: StoredRecord> std::fmt::Debug for RowQueryIter<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryIter").field("query", &self.query).finish_non_exhaustive()
    }
}

impl<T: StoredRecord> RowQueryIter<T> {
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
                run_tx(|tx| Ok(tx.part_to_scan(meta, claim)?.chunk(filter, cursor.clone(), size)))?;
            self.cursor = next;
            self.buffer.extend(chunk);
        }
        Ok(())
    }
}

impl<T: StoredRecord> Iterator for RowQueryIter<T> {
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
