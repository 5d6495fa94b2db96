//! The query planner: picks how a filter reads a table.
//!
//! Among the top-level conditions (those joined by `&`) it takes, in this order: equality
//! or `is_in` on the key (point reads); equality or `is_in` on an indexed field (a unique
//! index first); a key range on an `ordered_set`; otherwise a scan of the whole table. An
//! index lookup that would read more than a quarter of a large table gives way to a scan.
//! Whatever the access, every candidate record is then checked against the whole filter.

use std::any::Any;
use std::fmt;
use std::ops::Bound;
use std::sync::Arc;

use crate::engine::store::IndexList;
use crate::schema::filter::{Filter, Op};
use crate::schema::index_spec::TableIndex;
use crate::schema::record::TableType;
use crate::schema::stored::StoredRecord;

/// How a query reads its table, as told by `query().explain()`.
///
/// ```
/// use mnesia::prelude::*;
///
/// #[derive(Table, Clone, Debug, Serialize, Deserialize)]
/// struct User { #[key] id: u64, #[index(unique)] email: String, age: u32 }
///
/// let db = Database::in_memory()?;
/// db.scope(|| -> mnesia::Result<()> {
///     User::create_table(TableOptions::new())?;
///     assert_eq!(User::query().filter(User::ID.eq(7)).explain()?, Plan::KeyLookup { keys: 1 });
///     assert_eq!(
///         User::query().filter(User::EMAIL.eq("a@x.io")).explain()?,
///         Plan::IndexLookup { field: "email", values: 1 }
///     );
///     assert_eq!(User::query().filter(User::AGE.gt(3)).explain()?, Plan::FullScan);
///     Ok(())
/// })?;
/// # Ok::<(), mnesia::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Plan {
    /// Point reads of this many keys.
    KeyLookup {
        /// How many keys are read.
        keys: usize,
    },
    /// A range of keys of an `ordered_set`, in key order.
    KeyRange,
    /// Lookups of this many values in the index on `field`.
    IndexLookup {
        /// The indexed field.
        field: &'static str,
        /// How many values are looked up.
        values: usize,
    },
    /// Every record of the table.
    FullScan,
    /// Every record of the table, because the index on `field` would read too much of it:
    /// the values looked up are held by `estimate` of its `records` keys (more than a
    /// quarter, in a table of at least 10,000), and reading them one by one through the
    /// index costs more than a scan.
    FullScanOverIndex {
        /// The indexed field not used.
        field: &'static str,
        /// How many keys hold the values looked up.
        estimate: usize,
        /// How many keys the table holds.
        records: usize,
    },
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Plan::KeyLookup { keys } => write!(f, "key lookup ({keys} keys)"),
            Plan::KeyRange => f.write_str("key range"),
            Plan::IndexLookup { field, values } => {
                write!(f, "index lookup on {field} ({values} values)")
            }
            Plan::FullScan => f.write_str("full scan"),
            Plan::FullScanOverIndex { field, estimate, records } => {
                write!(f, "full scan (the index on {field} would read {estimate} of {records} records)")
            }
        }
    }
}

/// The chosen access path.
pub(crate) enum Access<T: StoredRecord> {
    Keys(Vec<T::Key>),
    Range(Bound<T::Key>, Bound<T::Key>),
    Index(Arc<dyn TableIndex<T>>, Vec<Arc<dyn Any + Send + Sync>>),
    Scan,
    /// A scan chosen over an index that would read too much of the table.
    ScanOverIndex {
        field: &'static str,
        estimate: usize,
        records: usize,
    },
}

impl<T: StoredRecord> Access<T> {
    /// Whether the access reads much of the table (a transaction that has written nothing
    /// then reads at a snapshot).
    pub(crate) fn reads_many(&self) -> bool {
        matches!(self, Access::Scan | Access::ScanOverIndex { .. } | Access::Range(..))
    }

    pub(crate) fn plan(&self) -> Plan {
        match self {
            Access::Keys(k) => Plan::KeyLookup { keys: k.len() },
            Access::Range(..) => Plan::KeyRange,
            Access::Index(i, v) => Plan::IndexLookup { field: i.field(), values: v.len() },
            Access::Scan => Plan::FullScan,
            Access::ScanOverIndex { field, estimate, records } => {
                Plan::FullScanOverIndex { field, estimate: *estimate, records: *records }
            }
        }
    }
}

fn keys_of<T: StoredRecord>(values: &[Arc<dyn Any + Send + Sync>]) -> Option<Vec<T::Key>> {
    values.iter().map(|v| v.downcast_ref::<T::Key>().cloned()).collect()
}

/// Tables with fewer keys than this use any index that applies, without weighing it.
const WEIGH_FROM: usize = 10_000;

/// Chooses the access path for `filter` on a table of this type with these indexes.
/// `records` tells how many keys the table holds (`None`: unknown, e.g. on disc), asked only
/// when an index lookup would read many keys: one that reads more than a quarter of a large
/// table gives way to a scan.
pub(crate) fn plan<T: StoredRecord>(
    filter: &Filter<T>,
    kind: TableType,
    key_position: usize,
    indexes: &IndexList<T>,
    records: &dyn Fn() -> Option<usize>,
) -> Access<T> {
    let conds = filter.conjuncts();
    // 1. The key, by equality.
    for c in &conds {
        if c.position == key_position
            && matches!(c.op, Op::Eq | Op::In)
            && let Some(mut keys) = keys_of::<T>(&c.values)
        {
            keys.sort();
            keys.dedup();
            return Access::Keys(keys);
        }
    }
    // 2. An index, by equality; a unique index first.
    let mut best: Option<(bool, Access<T>)> = None;
    for c in &conds {
        if !matches!(c.op, Op::Eq | Op::In) {
            continue;
        }
        if let Some(idx) = indexes.list.iter().find(|i| i.position() == c.position)
            && best.as_ref().is_none_or(|(unique, _)| !*unique && idx.unique())
        {
            best = Some((idx.unique(), Access::Index(Arc::clone(idx), c.values.clone())));
        }
    }
    let mut fallback = Access::Scan;
    match best {
        Some((_, Access::Index(idx, values))) => {
            let estimate: usize = values.iter().map(|v| idx.group_size(v.as_ref())).sum();
            match (estimate >= WEIGH_FROM / 4).then(records).flatten() {
                Some(records) if records >= WEIGH_FROM && estimate > records / 4 => {
                    fallback = Access::ScanOverIndex { field: idx.field(), estimate, records };
                }
                _ => return Access::Index(idx, values),
            }
        }
        Some((_, access)) => return access,
        None => {}
    }
    // 3. A key range on an ordered_set.
    if kind == TableType::OrderedSet {
        let (mut lo, mut hi) = (Bound::Unbounded, Bound::Unbounded);
        for c in &conds {
            if c.position != key_position {
                continue;
            }
            let Some(v) = keys_of::<T>(&c.values) else {
                continue;
            };
            match (c.op, v.as_slice()) {
                (Op::Gt, [x]) if matches!(lo, Bound::Unbounded) => lo = Bound::Excluded(x.clone()),
                (Op::Ge, [x]) if matches!(lo, Bound::Unbounded) => lo = Bound::Included(x.clone()),
                (Op::Lt, [x]) if matches!(hi, Bound::Unbounded) => hi = Bound::Excluded(x.clone()),
                (Op::Le, [x]) if matches!(hi, Bound::Unbounded) => hi = Bound::Included(x.clone()),
                (Op::Between, [a, b]) => {
                    if matches!(lo, Bound::Unbounded) {
                        lo = Bound::Included(a.clone());
                    }
                    if matches!(hi, Bound::Unbounded) {
                        hi = Bound::Included(b.clone());
                    }
                }
                _ => {}
            }
        }
        if !matches!((&lo, &hi), (Bound::Unbounded, Bound::Unbounded)) {
            return Access::Range(lo, hi);
        }
    }
    fallback
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::row::Row;
    use crate::testing::Rec;

    fn indexes(unique_n: bool) -> IndexList<Row<u32>> {
        let mut list = vec![(Rec::TAG.index_spec(false).rows)()];
        if unique_n {
            list.push((Rec::N.index_spec(true).rows)());
        }
        IndexList { epoch: 0, list }
    }

    fn plan_of(f: Filter<Rec>, kind: TableType) -> Plan {
        plan(&f.for_rows(), kind, 0, &indexes(true), &|| None).plan()
    }

    #[test]
    fn an_index_that_would_read_over_a_quarter_of_a_large_table_gives_way_to_a_scan() {
        let list = indexes(false);
        for id in 0..3000u32 {
            list.list[0].insert(&Row::new(crate::testing::rec(id, "common", 0)), 1);
        }
        list.list[0].insert(&Row::new(crate::testing::rec(9999, "rare", 0)), 1);
        let with = |records: usize, f: Filter<Rec>| {
            plan(&f.for_rows(), TableType::Set, 0, &list, &|| Some(records)).plan()
        };
        assert_eq!(
            with(10_000, Rec::TAG.eq("common")),
            Plan::FullScanOverIndex { field: "tag", estimate: 3000, records: 10_000 }
        );
        assert_eq!(with(20_000, Rec::TAG.eq("common")), Plan::IndexLookup { field: "tag", values: 1 });
        assert_eq!(with(10_000, Rec::TAG.eq("rare")), Plan::IndexLookup { field: "tag", values: 1 });
        // Small groups are never weighed, nor tables under 10,000 keys.
        assert_eq!(with(9_000, Rec::TAG.eq("common")), Plan::IndexLookup { field: "tag", values: 1 });
        assert_eq!(
            with(11_000, Rec::TAG.is_in(["common", "rare"])),
            Plan::FullScanOverIndex { field: "tag", estimate: 3001, records: 11_000 }
        );
        assert_eq!(
            with(10_000, Rec::TAG.eq("common")).to_string(),
            "full scan (the index on tag would read 3000 of 10000 records)"
        );
    }

    #[test]
    fn key_equality_wins_and_keys_are_deduplicated() {
        assert_eq!(plan_of(Rec::ID.eq(1) & Rec::TAG.eq("a"), TableType::Set), Plan::KeyLookup { keys: 1 });
        assert_eq!(plan_of(Rec::ID.is_in([3, 1, 3]), TableType::Set), Plan::KeyLookup { keys: 2 });
        match plan(&Rec::ID.is_in([3, 1, 3]).for_rows(), TableType::Set, 0, &indexes(false), &|| None) {
            Access::Keys(k) => assert_eq!(k, vec![1, 3]),
            _ => panic!("expected keys"),
        }
    }

    #[test]
    fn a_unique_index_is_preferred_and_or_scans() {
        assert_eq!(plan_of(Rec::TAG.eq("a"), TableType::Set), Plan::IndexLookup { field: "tag", values: 1 });
        assert_eq!(
            plan_of(Rec::TAG.eq("a") & Rec::N.eq(4), TableType::Set),
            Plan::IndexLookup { field: "n", values: 1 }
        );
        assert_eq!(plan_of(Rec::TAG.eq("a") | Rec::N.eq(4), TableType::Set), Plan::FullScan);
        assert_eq!(plan_of(!Rec::TAG.eq("a"), TableType::Set), Plan::FullScan);
        assert_eq!(plan_of(Rec::TAG.ne("a"), TableType::Set), Plan::FullScan);
    }

    #[test]
    fn key_ranges_only_on_ordered_sets() {
        assert_eq!(plan_of(Rec::ID.gt(3), TableType::Set), Plan::FullScan);
        assert_eq!(plan_of(Rec::ID.gt(3), TableType::OrderedSet), Plan::KeyRange);
        match plan(
            &(Rec::ID.ge(3) & Rec::ID.lt(9)).for_rows(),
            TableType::OrderedSet,
            0,
            &indexes(false),
            &|| None,
        ) {
            Access::Range(lo, hi) => assert_eq!((lo, hi), (Bound::Included(3), Bound::Excluded(9))),
            _ => panic!("expected a range"),
        }
        match plan(&Rec::ID.between(2, 5).for_rows(), TableType::OrderedSet, 0, &indexes(false), &|| None) {
            Access::Range(lo, hi) => assert_eq!((lo, hi), (Bound::Included(2), Bound::Included(5))),
            _ => panic!("expected a range"),
        }
    }
}
