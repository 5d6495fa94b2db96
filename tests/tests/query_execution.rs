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
    /// 3: `id` between two bounds (a key range).
    filter: u8,
    g: u8,
    v: u16,
    lo: u32,
    hi: u32,
    /// 0: no order; 1: `val` ascending; 2: `val` descending.
    order: u8,
    offset: usize,
    limit: Option<usize>,
}

fn ask() -> impl Strategy<Value = Ask> {
    (0u8..4, 0u8..4, 0u16..100, 0u32..80, 0u32..80, 0u8..3, 0usize..6, proptest::option::of(0usize..12))
        .prop_map(|(filter, g, v, a, b, order, offset, limit)| Ask {
            filter,
            g,
            v,
            lo: a.min(b),
            hi: a.max(b),
            order,
            offset,
            limit,
        })
}

/// A record as the model sees it: (id, group, val).
type Model = (u32, u8, u16);

fn matches(a: &Ask, r: &Model) -> bool {
    match a.filter {
        0 => true,
        1 => r.1 == a.g,
        2 => r.2 >= a.v,
        _ => (a.lo..=a.hi).contains(&r.0),
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
                    _ => q.filter(<$t>::ID.between(a.lo, a.hi)),
                };
                q = match a.order {
                    1 => q.order_by(<$t>::VAL.asc()),
                    2 => q.order_by(<$t>::VAL.desc()),
                    _ => q,
                };
                q = q.offset(a.offset);
                if let Some(l) = a.limit {
                    q = q.limit(l);
                }
                let got: Vec<Model> = q.all()?.iter().map(|r| (r.id, r.group, r.val)).collect();
                let keys: Vec<u32> = q.keys()?;
                assert_eq!(q.count()?, want, "count {a:?}");
                let first = q.first()?.map(|r| (r.id, r.group, r.val));
                if a.order != 0 || $ordered_by_key {
                    assert_eq!(got, expected, "{a:?}");
                    assert_eq!(keys, expected.iter().map(|r| r.0).collect::<Vec<_>>(), "keys {a:?}");
                    assert_eq!(first, expected.first().copied(), "first {a:?}");
                } else {
                    // Any `want` distinct matches, in no particular order.
                    assert_eq!(got.len(), want, "{a:?}");
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
    proptest::collection::btree_map(0u32..80, (0u8..4, 0u16..100), 0..60)
}

fn pending() -> impl Strategy<Value = BTreeMap<u32, Option<(u8, u16)>>> {
    proptest::collection::btree_map(0u32..90, proptest::option::of((0u8..4, 0u16..100)), 0..6)
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
