//! Reads inside a transaction: a key's first record (`read`), and the planned reads that
//! `select`, `get_by`, `count`, `all_keys` and the query builder run. Each read is recorded
//! for validation at commit, and the transaction's own pending writes are laid over the
//! committed records (read-your-writes).

use std::ops::Bound;

use crate::schema::filter::Filter;
use crate::schema::record::TableType;
use crate::schema::stored::StoredRecord;
use crate::tx::TxTable;
use crate::tx::plan::{Access, plan};

/// How many keys of an index group are read at a time when only the first few are needed.
const INDEX_PIECE: usize = 64;

/// How many records a visit passed on, and their keys when they are to be ordered.
struct Visited<K> {
    n: usize,
    keys: Vec<K>,
}

/// Where a chunked scan goes on from.
#[derive(Clone, Debug)]
pub(crate) enum Cursor<K> {
    /// The next shard to read (`set`, `bag`).
    Shard(usize),
    /// After this key (`ordered_set`); `None`: from the start.
    After(Option<K>),
    /// Committed records are done; the transaction's pending records come next.
    Pending,
    Done,
}

impl<T: StoredRecord> TxTable<T> {
    /// The first record of a key as this transaction sees it, seen through `f` (not
    /// copied).
    pub(crate) fn read_one_with<X>(&mut self, key: &T::Key, f: impl FnOnce(&T) -> X) -> Option<X> {
        let mut f = Some(f);
        let mut out = None;
        self.read_one_visit(key, &mut |r| {
            if let Some(f) = f.take() {
                out = Some(f(r));
            }
        });
        out
    }

    /// [`TxTable::read_one_with`]'s body, compiled once per store type (rows: once per key
    /// type), not once per caller: calls `f` on the record, if there is one.
    fn read_one_visit(&mut self, key: &T::Key, f: &mut dyn FnMut(&T)) {
        let alive = self.store.alive();
        if let Some(w) = self.writes.get_mut().get(key) {
            if let Some(r) = w.records().iter().find(|r| alive.keeps(*r)) {
                f(r);
            }
            return;
        }
        let hash = self.store.hash(key);
        let at = self.at_shard(self.store.shard_of(hash));
        let version = self.store.get_at(key, hash, at, |v, recs| {
            if let Some(r) = recs.iter().find(|r| alive.keeps(*r)) {
                f(r);
            }
            v
        });
        self.note_read(key, hash, version);
    }

    /// The first record, in key order, whose `field` equals `value`, through the field's
    /// index; `None` when the field has no index (the caller then plans a query).
    /// `matches`: whether a record's field equals `value`.
    pub(crate) fn first_by_index(
        &mut self,
        position: usize,
        value: &dyn std::any::Any,
        matches: &dyn Fn(&T) -> bool,
    ) -> Option<Option<T>> {
        if self.at().is_some() {
            // At a snapshot, the index (which is current) gives only some of the keys.
            return None;
        }
        let indexes = self.store.indexes.load_full();
        let idx = indexes.list.iter().find(|i| i.position() == position)?;
        let alive = self.store.alive();
        let mut best: Option<T> = None;
        // Keys come in key order, a few at a time: the first committed match not rewritten
        // here wins, and a large group is never copied whole.
        let mut after: Option<T::Key> = None;
        'walk: loop {
            let mut keys = Vec::with_capacity(INDEX_PIECE);
            let (shard, version) = idx.lookup_from(value, after.as_ref(), INDEX_PIECE, &mut keys)?;
            self.note_index(idx, shard, version);
            let last = keys.len() < INDEX_PIECE;
            for k in keys {
                if self.writes.get_mut().get(&k).is_some() {
                    after = Some(k);
                    continue;
                }
                let hash = self.store.hash(&k);
                let (v, found) = self.store.get_with(&k, hash, |v, recs| {
                    (v, recs.iter().find(|r| matches(r) && alive.keeps(*r)).cloned())
                });
                self.note_read(&k, hash, v);
                if found.is_some() {
                    best = found;
                    break 'walk;
                }
                after = Some(k);
            }
            if last {
                break;
            }
        }
        for e in self.writes.get_mut().iter() {
            for r in e.write.records() {
                let earlier = best.as_ref().is_none_or(|b| r.key() < b.key());
                if matches(r) && earlier && alive.keeps(r) {
                    best = Some(r.clone());
                }
            }
        }
        Some(best)
    }

    /// Plans `filter` against the table's current indexes and size.
    pub(crate) fn access(&self, filter: &Filter<T>) -> Access<T> {
        plan(filter, self.store.kind, self.store.meta.key_position, &self.store.indexes.load(), &|| {
            self.store.key_count()
        })
    }

    /// Every record passing `filter`, mapped by `f`; in key order on an `ordered_set`.
    pub(crate) fn select_with<X>(&mut self, filter: &Filter<T>, f: impl FnMut(&T) -> X) -> Vec<X> {
        self.select_up_to(filter, usize::MAX, f)
    }

    /// As [`TxTable::select_with`], but the committed records are read only until `want`
    /// of them matched: any `want` matches (the first `want` in key order on an
    /// `ordered_set`), then the transaction's own pending matches. Only what was read is
    /// validated at commit: a `limit` without an order reads no more than it returns.
    pub(crate) fn select_up_to<X>(
        &mut self,
        filter: &Filter<T>,
        want: usize,
        f: impl FnMut(&T) -> X,
    ) -> Vec<X> {
        let access = self.access(filter);
        self.select_planned(access, filter, want, f)
    }

    /// As [`TxTable::select_up_to`], with `filter` planned as `access`.
    pub(crate) fn select_planned<X>(
        &mut self,
        access: Access<T>,
        filter: &Filter<T>,
        want: usize,
        mut f: impl FnMut(&T) -> X,
    ) -> Vec<X> {
        let mut xs = Vec::new();
        if let Some(keys) = self.select_visit(access, filter, want, &mut |r| xs.push(f(r))) {
            crate::base::sort::sort_by_keys(&mut xs, &keys);
        }
        xs
    }

    /// Calls `f` on every record passing `filter`, as [`TxTable::select_planned`] reads
    /// them (compiled once per record type, not once per caller). Returns the key of each
    /// record visited when they must be put in key order (an `ordered_set`'s own pending
    /// records came after the committed ones), else `None`.
    fn select_visit(
        &mut self,
        access: Access<T>,
        filter: &Filter<T>,
        want: usize,
        f: &mut dyn FnMut(&T),
    ) -> Option<Vec<T::Key>> {
        // An index lookup or a range at a snapshot waits for every shard to settle; a scan
        // settles each shard as it comes to it.
        let at = match access {
            Access::Index(..) | Access::Range(..) => self.at_all(),
            _ => self.at(),
        };
        // An ordered_set is read in key order; its keys are kept beside the values only to
        // merge the transaction's own pending records into that order.
        let ordered = self.store.kind == TableType::OrderedSet && !self.writes.get_mut().is_empty();
        let mut out = Visited { n: 0, keys: Vec::new() };
        let alive = self.store.alive();
        let mut push = |r: &T, out: &mut Visited<T::Key>| {
            if alive.keeps(r) {
                if ordered {
                    out.keys.push(r.key().clone());
                }
                out.n += 1;
                f(r);
            }
        };
        match access {
            Access::Keys(keys) => {
                for k in keys {
                    if out.n >= want {
                        break;
                    }
                    for r in self.read_group(&k) {
                        if filter.matches(&r) {
                            push(&r, &mut out);
                        }
                    }
                }
                return None;
            }
            Access::Index(idx, values) => {
                let mut keys = Vec::new();
                if let ([v], true, None) = (values.as_slice(), want < usize::MAX, at) {
                    // One value and a limit: the group is walked a piece at a time.
                    let mut after: Option<T::Key> = None;
                    while out.n < want {
                        keys.clear();
                        let Some((shard, version)) =
                            idx.lookup_from(v.as_ref(), after.as_ref(), INDEX_PIECE, &mut keys)
                        else {
                            break;
                        };
                        self.note_index(&idx, shard, version);
                        for k in &keys {
                            if out.n >= want {
                                break;
                            }
                            if self.writes().get(k).is_some() {
                                continue;
                            }
                            let hash = self.store.hash(k);
                            let version = self.store.get_with(k, hash, |v, recs| {
                                for r in recs {
                                    if filter.matches(r) {
                                        push(r, &mut out);
                                    }
                                }
                                v
                            });
                            self.note_read(k, hash, version);
                        }
                        if keys.len() < INDEX_PIECE {
                            break;
                        }
                        after = keys.last().cloned();
                    }
                    keys.clear();
                } else {
                    for v in &values {
                        if let Some((shard, version)) = idx.lookup(v.as_ref(), &mut keys) {
                            self.note_index(&idx, shard, version);
                        }
                    }
                    // At a snapshot: also every key changed since (looked up after the
                    // index, so that a key changed meanwhile is in one or the other).
                    if let Some(at) = at {
                        self.store.changed_since(at, &mut keys);
                    }
                    keys.sort();
                    keys.dedup();
                }
                for k in keys {
                    if out.n >= want {
                        break;
                    }
                    if self.writes().get(&k).is_some() {
                        continue;
                    }
                    let store = &self.store;
                    let hash = store.hash(&k);
                    let version = store.get_at(&k, hash, at, |v, recs| {
                        for r in recs {
                            if filter.matches(r) {
                                push(r, &mut out);
                            }
                        }
                        v
                    });
                    self.note_read(&k, hash, version);
                }
            }
            Access::Range(lo, hi) => {
                let writes = self.writes.get_mut();
                let mine = !writes.is_empty();
                let version = self.store.scan_range_at(lo.as_ref(), hi.as_ref(), at, |r| {
                    if !(mine && writes.get(r.key()).is_some()) && filter.matches(r) {
                        push(r, &mut out);
                    }
                    out.n < want
                });
                self.note_shard(0, version);
            }
            Access::Scan | Access::ScanOverIndex { .. } => {
                for shard in 0..self.store.shard_count() {
                    if out.n >= want {
                        break;
                    }
                    let at = self.at_shard(shard);
                    let writes = self.writes.get_mut();
                    let mine = !writes.is_empty();
                    let version = self.store.scan_shard_while_at(shard, at, |r| {
                        if !(mine && writes.get(r.key()).is_some()) && filter.matches(r) {
                            push(r, &mut out);
                        }
                        out.n < want
                    });
                    self.note_shard(shard, version);
                }
            }
        }
        let committed = out.n;
        for e in self.writes.get_mut().iter() {
            for r in e.write.records() {
                if filter.matches(r) {
                    push(r, &mut out);
                }
            }
        }
        (ordered && out.n > committed).then_some(out.keys)
    }

    /// How many records the table holds, as this transaction sees it.
    pub(crate) fn count(&mut self) -> usize {
        let alive = self.store.alive();
        let live = |recs: &[T]| recs.iter().filter(|r| alive.keeps(*r)).count();
        let mut n: usize = 0;
        for shard in 0..self.store.shard_count() {
            let mut c = 0;
            let at = self.at_shard(shard);
            let version = self.store.scan_shard_at(shard, at, |r| c += usize::from(alive.keeps(r)));
            n += c;
            self.note_shard(shard, version);
        }
        let pending: Vec<(T::Key, usize)> =
            self.writes().iter().map(|e| (e.key.clone(), live(e.write.records()))).collect();
        for (k, now) in pending {
            let hash = self.store.hash(&k);
            let at = self.at_shard(self.store.shard_of(hash));
            let before = self.store.get_at(&k, hash, at, |_, recs| live(recs));
            n = n.saturating_sub(before) + now;
        }
        n
    }

    /// The next chunk of records passing `filter`, about `size` of them, and where to go on.
    pub(crate) fn chunk(
        &mut self,
        filter: &Filter<T>,
        cursor: Cursor<T::Key>,
        size: usize,
    ) -> (Vec<T>, Cursor<T::Key>) {
        let size = size.max(1);
        let alive = self.store.alive();
        match cursor {
            Cursor::Shard(mut shard) => {
                let mut out = Vec::new();
                while shard < self.store.shard_count() && out.len() < size {
                    let at = self.at_shard(shard);
                    let writes = self.writes.get_mut();
                    let version = self.store.scan_shard_at(shard, at, |r| {
                        if writes.get(r.key()).is_none() && filter.matches(r) && alive.keeps(r) {
                            out.push(r.clone());
                        }
                    });
                    // The transaction's own records of this shard come with it: a record the
                    // caller changes after its shard was visited is not visited again.
                    for e in writes.iter().filter(|e| self.store.shard_of(e.hash) == shard) {
                        out.extend(
                            e.write
                                .records()
                                .iter()
                                .filter(|r| filter.matches(r) && alive.keeps(*r))
                                .cloned(),
                        );
                    }
                    self.note_shard(shard, version);
                    shard += 1;
                }
                let next = if shard < self.store.shard_count() { Cursor::Shard(shard) } else { Cursor::Done };
                (out, next)
            }
            Cursor::After(after) => {
                let lo = after.as_ref().map_or(Bound::Unbounded, Bound::Excluded);
                let mut committed: Vec<T> = Vec::new();
                let mut last: Option<T::Key> = None;
                let at = self.at_all();
                let writes = self.writes.get_mut();
                let version = self.store.scan_range_at(lo, Bound::Unbounded, at, |r| {
                    last = Some(r.key().clone());
                    if writes.get(r.key()).is_none() && filter.matches(r) && alive.keeps(r) {
                        committed.push(r.clone());
                    }
                    committed.len() < size
                });
                self.note_shard(0, version);
                let exhausted = committed.len() < size;
                let hi = if exhausted { None } else { last.clone() };
                let mut out = committed;
                for e in self.writes.get_mut().iter() {
                    let above = after.as_ref().is_none_or(|a| e.key > *a);
                    let below = hi.as_ref().is_none_or(|h| e.key <= *h);
                    if above && below {
                        out.extend(
                            e.write
                                .records()
                                .iter()
                                .filter(|r| filter.matches(r) && alive.keeps(*r))
                                .cloned(),
                        );
                    }
                }
                crate::base::sort::sort_by(&mut out, |a, b| a.key().cmp(b.key()));
                let next = if exhausted { Cursor::Done } else { Cursor::After(last) };
                (out, next)
            }
            Cursor::Pending => {
                let out = self
                    .writes
                    .get_mut()
                    .iter()
                    .flat_map(|e| e.write.records().iter())
                    .filter(|r| filter.matches(r) && alive.keeps(*r))
                    .cloned()
                    .collect();
                (out, Cursor::Done)
            }
            Cursor::Done => (Vec::new(), Cursor::Done),
        }
    }
}
