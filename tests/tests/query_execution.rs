//! Query execution that stops early (`limit` without an order reads no more than it needs;
//! an order with a limit keeps only the best few) gives the answers a full read would: a
//! property test against a simple model, with the transaction's own pending writes laid
//! over the table, on a `set` and an `ordered_set`.

use std::collections::BTreeMap;

use mnesia::prelude::*;
use proptest::prelude::*;

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Row {
    #[key]
    id: u32,
    #[index]
    group: u8,
    val: u16,
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(type = "ordered_set")]
struct Sorted {
    #[key]
    id: u32,
    #[index]
    group: u8,
    val: u16,
}

/// What a generated query asks.
#[derive(Clone, Debug)]
struct Ask {
    /// 0: everything; 1: `group == g` (through the index); 2: `val >= v` (a scan);
    /// 3: `id` between two bounds (a key range); 4: `group == g` and `val >= v` (the index,
    /// then a condition that skips keys of the group).
    filter: u8,
    g: u8,
    v: u16,
    lo: u32,
    hi: u32,
    /// 0: no order; 1: `val` ascending; 2: `val` descending; 3: the key ascending; 4: the
    /// key descending.
    order: u8,
    /// Keyset pagination: only keys after this one (below it in descending key order).
    after: Option<u32>,
    offset: usize,
    limit: Option<usize>,
}

fn ask() -> impl Strategy<Value = Ask> {
    (
        (0u8..5, 0u8..2, 0u16..100, 0u32..600, 0u32..600),
        (0u8..5, proptest::option::of(0u32..600), 0usize..6, proptest::option::of(0usize..12)),
    )
        .prop_map(|((filter, g, v, a, b), (order, after, offset, limit))| Ask {
            filter,
            g,
            v,
            lo: a.min(b),
            hi: a.max(b),
            order,
            after,
            offset,
            limit,
        })
}

/// A record as the model sees it: (id, group, val).
type Model = (u32, u8, u16);

fn matches(a: &Ask, r: &Model) -> bool {
    if a.after.is_some_and(|k| if a.order == 4 { r.0 >= k } else { r.0 <= k }) {
        return false;
    }
    match a.filter {
        0 => true,
        1 => r.1 == a.g,
        2 => r.2 >= a.v,
        3 => (a.lo..=a.hi).contains(&r.0),
        _ => r.1 == a.g && r.2 >= a.v,
    }
}

/// Checks one table type against the model: the table holds `stored`, the transaction
/// writes `pending` (`None`: deletes) and then runs the query.
macro_rules! check {
    ($t:ty, $ordered_by_key:expr, $stored:expr, $pending:expr, $ask:expr) => {{
        let (stored, pending, a): (&BTreeMap<u32, (u8, u16)>, &BTreeMap<u32, Option<(u8, u16)>>, &Ask) =
            ($stored, $pending, $ask);
        let db = Database::in_memory().expect("db");
        db.scope(|| -> mnesia::Result<()> {
            <$t>::create_table(TableOptions::new())?;
            <$t>::batch_write(stored.iter().map(|(id, (group, val))| <$t>::from_model(*id, *group, *val)))?;
            let mut view: BTreeMap<u32, (u8, u16)> = stored.clone();
            for (id, w) in pending {
                match w {
                    Some(v) => {
                        view.insert(*id, *v);
                    }
                    None => {
                        view.remove(id);
                    }
                }
            }
            let mut all: Vec<Model> =
                view.iter().map(|(id, (g, v))| (*id, *g, *v)).filter(|r| matches(a, r)).collect();
            match a.order {
                1 => all.sort_by(|x, y| x.2.cmp(&y.2).then(x.0.cmp(&y.0))),
                2 => all.sort_by(|x, y| y.2.cmp(&x.2).then(x.0.cmp(&y.0))),
                3 => all.sort_by_key(|x| x.0),
                4 => all.sort_by_key(|x| std::cmp::Reverse(x.0)),
                _ => {}
            }
            let want = all.len().saturating_sub(a.offset).min(a.limit.unwrap_or(usize::MAX));
            let expected: Vec<Model> = all.iter().copied().skip(a.offset).take(want).collect();
            mnesia::transaction(|| {
                for (id, w) in pending {
                    match w {
                        Some((g, v)) => {
                            <$t>::write(<$t>::from_model(*id, *g, *v))?;
                        }
                        None => {
                            <$t>::delete(id)?;
                        }
                    }
                }
                let mut q = <$t>::query();
                q = match a.filter {
                    0 => q,
                    1 => q.filter(<$t>::GROUP.eq(a.g)),
                    2 => q.filter(<$t>::VAL.ge(a.v)),
                    3 => q.filter(<$t>::ID.between(a.lo, a.hi)),
                    _ => q.filter(<$t>::GROUP.eq(a.g)).filter(<$t>::VAL.ge(a.v)),
                };
                q = match a.order {
                    1 => q.order_by(<$t>::VAL.asc()),
                    2 => q.order_by(<$t>::VAL.desc()),
                    3 => q.order_by(<$t>::ID.asc()),
                    4 => q.order_by(<$t>::ID.desc()),
                    _ => q,
                };
                if let Some(k) = a.after {
                    q = q.after(&k);
                }
                q = q.offset(a.offset);
                if let Some(l) = a.limit {
                    q = q.limit(l);
                }
                let got: Vec<Model> = q.all()?.iter().map(|r| (r.id, r.group, r.val)).collect();
                let projected: Vec<Model> = q.select((<$t>::ID, <$t>::GROUP, <$t>::VAL))?;
                let keys: Vec<u32> = q.keys()?;
                assert_eq!(q.count()?, want, "count {a:?}");
                let first = q.first()?.map(|r| (r.id, r.group, r.val));
                // `get_by` through the index: the group's first key in key order.
                let by = <$t>::get_by(<$t>::GROUP, a.g)?.map(|r| (r.id, r.group, r.val));
                let model_by = view.iter().find(|(_, (g, _))| *g == a.g).map(|(id, (g, v))| (*id, *g, *v));
                assert_eq!(by, model_by, "get_by {a:?}");
                // (`after` puts a query without an order in key order.)
                if a.order != 0 || $ordered_by_key || a.after.is_some() {
                    assert_eq!(got, expected, "{a:?}");
                    assert_eq!(projected, expected, "select {a:?}");
                    assert_eq!(keys, expected.iter().map(|r| r.0).collect::<Vec<_>>(), "keys {a:?}");
                    assert_eq!(first, expected.first().copied(), "first {a:?}");
                } else {
                    // Any `want` distinct matches, in no particular order.
                    assert_eq!(got.len(), want, "{a:?}");
                    assert_eq!(projected.len(), want, "select {a:?}");
                    assert!(projected.iter().all(|r| all.contains(r)), "select {a:?}");
                    let mut ids: Vec<u32> = got.iter().map(|r| r.0).collect();
                    ids.sort_unstable();
                    ids.dedup();
                    assert_eq!(ids.len(), want, "distinct {a:?}");
                    assert!(got.iter().all(|r| all.contains(r)), "{a:?}: {got:?} not all matches of {all:?}");
                    assert_eq!(keys.len(), want, "keys {a:?}");
                    assert_eq!(first.is_some(), want > 0, "first {a:?}");
                }
                Ok(())
            })
        })
        .expect("run");
    }};
}

impl Row {
    fn from_model(id: u32, group: u8, val: u16) -> Row {
        Row { id, group, val }
    }
}

impl Sorted {
    fn from_model(id: u32, group: u8, val: u16) -> Sorted {
        Sorted { id, group, val }
    }
}

fn stored() -> impl Strategy<Value = BTreeMap<u32, (u8, u16)>> {
    proptest::collection::btree_map(0u32..600, (0u8..2, 0u16..100), 0..400)
}

fn pending() -> impl Strategy<Value = BTreeMap<u32, Option<(u8, u16)>>> {
    proptest::collection::btree_map(0u32..600, proptest::option::of((0u8..2, 0u16..100)), 0..80)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn queries_with_limits_agree_with_the_model_on_a_set(s in stored(), p in pending(), a in ask()) {
        check!(Row, false, &s, &p, &a);
    }

    #[test]
    fn queries_with_limits_agree_with_the_model_on_an_ordered_set(s in stored(), p in pending(), a in ask()) {
        check!(Sorted, true, &s, &p, &a);
    }
}

/// Paging through an `ordered_set` with `after` visits every record once, in key order,
/// with the transaction's own writes among them.
#[test]
fn keyset_pages_cover_an_ordered_set_once_in_key_order() {
    let db = Database::in_memory().expect("db");
    db.scope(|| -> mnesia::Result<()> {
        Sorted::create_table(TableOptions::new())?;
        Sorted::batch_write((0..1000).step_by(3).map(|id| Sorted { id, group: 0, val: 0 }))?;
        mnesia::transaction(|| {
            Sorted::write(Sorted { id: 1, group: 1, val: 1 })?;
            Sorted::delete(&3)?;
            let mut seen = Vec::new();
            let mut last: Option<u32> = None;
            for _ in 0..100 {
                let q = Sorted::query().limit(7);
                let page = match last {
                    Some(k) => q.after(&k).all()?,
                    None => q.all()?,
                };
                let Some(tail) = page.last() else { break };
                last = Some(tail.id);
                seen.extend(page.iter().map(|r| r.id));
            }
            let mut expected: Vec<u32> = (0..1000).step_by(3).filter(|id| *id != 3).collect();
            expected.insert(1, 1);
            assert_eq!(seen, expected);
            assert_eq!(Sorted::query().after(&990).explain()?, mnesia::Plan::KeyRange);
            Ok(())
        })
    })
    .expect("run");
}

/// Keyset pages of a `set`, ordered by the key (the first page too), cover it once in key
/// order, forwards and backwards; `after` alone puts a query in key order (once, pages of
/// a `set` without an order skipped keys: any records above the last key were a page).
#[test]
fn keyset_pages_cover_a_set_once_forwards_and_backwards() {
    let db = Database::in_memory().expect("db");
    db.scope(|| -> mnesia::Result<()> {
        Row::create_table(TableOptions::new())?;
        Row::batch_write((0..100).map(|id| Row { id, group: 0, val: 0 }))?;
        for descending in [false, true] {
            let mut seen = Vec::new();
            let mut last: Option<u32> = None;
            for _ in 0..100 {
                let q = if descending {
                    Row::query().order_by(Row::ID.desc())
                } else {
                    Row::query().order_by(Row::ID)
                };
                let q = q.limit(7);
                let page = match last {
                    Some(k) => q.after(&k).keys()?,
                    None => q.keys()?,
                };
                let Some(tail) = page.last() else { break };
                last = Some(*tail);
                seen.extend(page);
            }
            let mut expected: Vec<u32> = (0..100).collect();
            if descending {
                expected.reverse();
            }
            assert_eq!(seen, expected, "descending: {descending}");
        }
        assert_eq!(Row::query().after(&50).limit(3).keys()?, vec![51, 52, 53]);
        // The order decides, given before or after `after`.
        assert_eq!(Row::query().after(&10).order_by(Row::ID.desc()).limit(3).keys()?, vec![9, 8, 7]);
        Row::batch_write((0..100).map(|id| Row { id, group: 0, val: (100 - id) as u16 }))?;
        assert_eq!(Row::query().after(&95).order_by(Row::VAL).keys()?, vec![99, 98, 97, 96]);
        assert_eq!(
            Row::query().after(&95).iter().map(|r| r.map(|r| r.id)).collect::<Result<Vec<_>, _>>()?,
            vec![96, 97, 98, 99]
        );
        Ok(())
    })
    .expect("run");
}

/// A large index group walked a piece at a time: the matches lie past the first pieces, and
/// the first keys of the group are deleted by the transaction itself.
#[test]
fn a_large_index_group_is_walked_past_its_first_pieces() {
    let db = Database::in_memory().expect("db");
    db.scope(|| -> mnesia::Result<()> {
        Row::create_table(TableOptions::new())?;
        Row::batch_write((0..1000).map(|id| Row { id, group: (id % 2) as u8, val: (id % 250) as u16 }))?;
        mnesia::transaction(|| {
            // Group 0 holds the even ids; `val >= 240` only 240..248 of each 250.
            let q = Row::query().filter(Row::GROUP.eq(0)).filter(Row::VAL.ge(240));
            assert_eq!(q.explain()?, mnesia::Plan::IndexLookup { field: "group", values: 1 });
            let got: Vec<u32> = q.clone().limit(12).all()?.iter().map(|r| r.id).collect();
            assert_eq!(got.len(), 12, "{got:?}");
            assert!(got.iter().all(|id| id % 2 == 0 && id % 250 >= 240), "{got:?}");
            assert_eq!(q.clone().limit(100).count()?, 20);
            // The first 300 keys of group 0 deleted here: get_by walks past them.
            for id in (0..600).step_by(2) {
                Row::delete(&id)?;
            }
            assert_eq!(Row::get_by(Row::GROUP, 0u8)?.map(|r| r.id), Some(600));
            let rest = q.limit(3).all()?;
            assert_eq!(rest.len(), 3);
            assert!(rest.iter().all(|r| r.id >= 600 && r.group == 0 && r.val >= 240), "{rest:?}");
            Ok(())
        })
    })
    .expect("run");
}

/// The planner weighs an index: a value held by half of a large table is read by a scan,
/// a rare one through the index, with the same answers either way.
#[test]
fn an_unselective_index_value_is_read_by_a_scan_and_a_rare_one_by_the_index() {
    let db = Database::in_memory().expect("db");
    db.scope(|| -> mnesia::Result<()> {
        Row::create_table(TableOptions::new())?;
        Row::batch_write((0..20_000).map(|id| Row { id, group: if id < 10 { 2 } else { (id % 2) as u8 }, val: 0 }))?;
        let common = Row::query().filter(Row::GROUP.eq(0));
        assert!(
            matches!(common.explain()?, mnesia::Plan::FullScanOverIndex { field: "group", estimate, records: 20_000 } if estimate > 9_000),
            "{}",
            common.explain()?
        );
        assert_eq!(common.count()?, 9_995);
        assert!(common.all()?.iter().all(|r| r.group == 0));
        let rare = Row::query().filter(Row::GROUP.eq(2));
        assert_eq!(rare.explain()?, mnesia::Plan::IndexLookup { field: "group", values: 1 });
        assert_eq!(rare.keys()?.len(), 10);
        Ok(())
    })
    .expect("run");
}
