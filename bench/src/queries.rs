//! Query figures over 1M records, each beside the same operation done by hand on a `Vec`
//! (or a `BTreeMap`, for keyset pages) of the same records: `query_top10_1m` (order_by +
//! limit 10), `query_first_1m`, `query_limit10_1m`, `query_page_deep_1m` (a keyset page
//! after 900k on an `ordered_set`), `get_by_low_cardinality` (an index of 2 values),
//! `select_unselective_1m` (the 500k records holding one of those 2 values).

use std::collections::{BTreeMap, BinaryHeap};
use std::hint::black_box;
use std::ops::Bound;

use mnesia::prelude::*;

use crate::{Report, time_per_op};

/// A record with a 2-value indexed field.
#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(name = "items")]
pub struct Item {
    #[key]
    id: u64,
    #[index]
    flag: u8,
    val: u32,
}

/// The same, in key order.
#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(name = "log_items", type = "ordered_set")]
pub struct LogItem {
    #[key]
    id: u64,
    val: u32,
}

fn item(id: u64) -> Item {
    Item { id, flag: (id % 2) as u8, val: (id.wrapping_mul(7919) % 1000) as u32 }
}

const NAMES: [&str; 6] = [
    "query_top10_1m",
    "query_first_1m",
    "query_limit10_1m",
    "query_page_deep_1m",
    "get_by_low_cardinality",
    "select_unselective_1m",
];

pub fn figures(report: &mut Report, quick: bool) -> mnesia::Result<()> {
    if !NAMES.iter().any(|n| report.wants(n)) {
        return Ok(());
    }
    let n: u64 = if quick { 100_000 } else { 1_000_000 };
    let db = Database::in_memory()?;
    db.scope(|| -> mnesia::Result<()> {
        Item::create_table(TableOptions::new())?;
        LogItem::create_table(TableOptions::new())?;
        for chunk in (0..n).collect::<Vec<_>>().chunks(100_000) {
            Item::batch_write(chunk.iter().map(|id| item(*id)))?;
            LogItem::batch_write(chunk.iter().map(|id| LogItem { id: *id, val: item(*id).val }))?;
        }
        let floor: Vec<Item> = (0..n).map(item).collect();
        let sorted: BTreeMap<u64, LogItem> =
            (0..n).map(|id| (id, LogItem { id, val: item(id).val })).collect();
        // A hand-made index of the flag: value to keys in key order.
        let mut by_flag: BTreeMap<u8, Vec<u64>> = BTreeMap::new();
        for r in &floor {
            by_flag.entry(r.flag).or_default().push(r.id);
        }

        if report.wants("query_top10_1m") {
            let q = Item::query().order_by(Item::VAL.asc()).limit(10);
            let ours = time_per_op(5, 3, |_| {
                black_box(q.all().ok());
            });
            let base = time_per_op(5, 3, |_| {
                let mut heap = BinaryHeap::with_capacity(11);
                for (i, r) in floor.iter().enumerate() {
                    heap.push((r.val, r.id, i));
                    if heap.len() > 10 {
                        heap.pop();
                    }
                }
                black_box(
                    heap.into_sorted_vec().iter().map(|(_, _, i)| floor[*i].clone()).collect::<Vec<_>>(),
                );
            });
            report.add("query_top10_1m", ours, base);
        }
        if report.wants("query_first_1m") {
            let q = Item::query().filter(Item::VAL.ge(500));
            let ours = time_per_op(10_000, 3, |_| {
                black_box(q.first().ok());
            });
            let base = time_per_op(10_000, 3, |_| {
                black_box(floor.iter().find(|r| r.val >= 500).cloned());
            });
            report.add("query_first_1m", ours, base);
        }
        if report.wants("query_limit10_1m") {
            let q = Item::query().filter(Item::VAL.ge(500)).limit(10);
            let ours = time_per_op(10_000, 3, |_| {
                black_box(q.all().ok());
            });
            let base = time_per_op(10_000, 3, |_| {
                black_box(floor.iter().filter(|r| r.val >= 500).take(10).cloned().collect::<Vec<_>>());
            });
            report.add("query_limit10_1m", ours, base);
        }
        if report.wants("query_page_deep_1m") {
            let after = n * 9 / 10;
            let q = LogItem::query().after(&after).limit(10);
            let ours = time_per_op(10_000, 3, |_| {
                black_box(q.all().ok());
            });
            let base = time_per_op(10_000, 3, |_| {
                let page: Vec<LogItem> = sorted
                    .range((Bound::Excluded(after), Bound::Unbounded))
                    .take(10)
                    .map(|(_, r)| r.clone())
                    .collect();
                black_box(page);
            });
            report.add("query_page_deep_1m", ours, base);
        }
        if report.wants("select_unselective_1m") {
            // Half the table holds the value: the planner scans rather than use the index.
            let ours = time_per_op(3, 3, |_| {
                black_box(Item::select(Item::FLAG.eq(0u8)).ok());
            });
            let base = time_per_op(3, 3, |_| {
                black_box(floor.iter().filter(|r| r.flag == 0).cloned().collect::<Vec<_>>());
            });
            report.add("select_unselective_1m", ours, base);
        }
        if report.wants("get_by_low_cardinality") {
            let ours = time_per_op(10_000, 3, |_| {
                black_box(Item::get_by(Item::FLAG, 0u8).ok());
            });
            let base = time_per_op(10_000, 3, |_| {
                let first = by_flag.get(&0).and_then(|ks| ks.first());
                black_box(first.and_then(|id| floor.get(*id as usize)).cloned());
            });
            report.add("get_by_low_cardinality", ours, base);
        }
        Ok(())
    })
}
