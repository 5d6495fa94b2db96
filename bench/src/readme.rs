//! `--readme`: the README's performance table, written from a saved run
//! (`bench/results/DATE.json`) between the markers `<!-- bench-table:start -->` and
//! `<!-- bench-table:end -->`, so that every figure the README shows is one a run measured.

use std::path::Path;

use serde_json::Value;

const START: &str = "<!-- bench-table:start -->";
const END: &str = "<!-- bench-table:end -->";

/// What a figure's ratio is held to.
enum Target {
    /// At most this (time over the floor's: lower is better).
    AtMost(f64),
    /// At least this (a throughput gain: higher is better).
    AtLeast(f64),
    /// The figure's own time at most this many milliseconds.
    WithinMs(f64),
    /// The figure's own time per operation at most this many microseconds.
    WithinUs(f64),
    /// No target: shown for comparison.
    None,
}

/// One row of the table: the figure's key in the run, what it measures, its target.
struct Row {
    key: &'static str,
    what: &'static str,
    target: Target,
}

const fn row(key: &'static str, what: &'static str, target: Target) -> Row {
    Row { key, what, target }
}

/// The table's rows, in order.
const ROWS: &[Row] = &[
    row("tx_write", "single-record transaction", Target::AtMost(3.0)),
    row("tx_read", "", Target::AtMost(2.0)),
    row("tx_update", "", Target::AtMost(3.0)),
    row("dirty_write", "", Target::AtMost(2.0)),
    row("dirty_read", "", Target::AtMost(1.5)),
    row("batch_write", "per record, 1000 per transaction", Target::AtMost(2.0)),
    row("index_get", "unique index", Target::AtMost(2.0)),
    row("select_scan", "age ≥ 50 over 100k", Target::AtMost(3.0)),
    row(
        "query_limit_10",
        "`query().filter(age ≥ 50).limit(10).all()` over 100k; floor: the first 10 matches of the `HashMap`",
        Target::AtMost(3.0),
    ),
    row(
        "query_order_limit_10",
        "`query().order_by(age).limit(10).all()` over 100k; floor: a heap of 10 over the `HashMap`, cloning the winners",
        Target::AtMost(3.0),
    ),
    row(
        "query_top10_1m",
        "`order_by(val).limit(10)` over 1M; floor: a heap of 10 over a `Vec` of the records",
        Target::AtMost(3.0),
    ),
    row(
        "query_first_1m",
        "`filter(val ≥ 500).first()` over 1M; floor: `find` on a `Vec`",
        Target::WithinUs(10.0),
    ),
    row(
        "query_limit10_1m",
        "`filter(val ≥ 500).limit(10)` over 1M; floor: `filter().take(10)` on a `Vec`",
        Target::WithinUs(10.0),
    ),
    row(
        "query_page_deep_1m",
        "`after(&900_000).limit(10)` on a 1M `ordered_set`; floor: a `BTreeMap` range",
        Target::WithinUs(10.0),
    ),
    row(
        "get_by_low_cardinality",
        "`get_by` on an index of 2 values over 1M; floor: the first key of a hand-made group",
        Target::WithinUs(2.0),
    ),
    row(
        "select_unselective_1m",
        "`select(flag == 0)`, 500k of 1M holding one value of a 2-value index, which the planner passes over for a scan (through the index: about 12 times slower); floor: `filter` on a `Vec` of plain records",
        Target::None,
    ),
    row("concurrent_tx_write", "2 threads' throughput over 1 thread's", Target::AtLeast(1.6)),
    row("concurrent_insert", "auto-increment inserts, 2 threads over 1", Target::AtLeast(1.3)),
    row(
        "event_fanout",
        "1 writer, 4 draining subscribers, over no subscriber; the 4 subscriber threads share 2 cores with the writer",
        Target::AtMost(1.5),
    ),
    row(
        "ttl_write",
        "`write_with_ttl`; floor: `tx_write` of the same record without a deadline",
        Target::None,
    ),
    row(
        "reaper_100k_ms",
        "100k expired records removed; floor: `batch_delete` of the same keys, 1000 per commit",
        Target::None,
    ),
    row("export_json_1m_ms", "floor: `serde_json` writing the same rows from a `Vec`", Target::AtMost(2.0)),
    row("export_csv_1m_ms", "floor: `csv` serializing the same rows from a `Vec`", Target::AtMost(2.0)),
    row(
        "import_csv_1m_ms",
        "a bulk load into the empty table; floor: `csv` reading the rows into a `Vec`, building no table",
        Target::AtMost(2.0),
    ),
    row(
        "backup_1m_ms",
        "floor: `postcard` writing the same rows from a `Vec` to a file, no fsync; ours syncs, and writers go on meanwhile",
        Target::AtMost(2.0),
    ),
    row(
        "restore_1m_ms",
        "floor: `postcard` reading them back into a `Vec`, building no table",
        Target::AtMost(2.0),
    ),
    row("contended_increment", "2 threads, one record", Target::None),
    row(
        "scan_under_write_load",
        "a transaction counting and listing 100k records while 2 threads commit single-record writes without pause; floor: the same scan alone",
        Target::None,
    ),
    row("bytes_per_record", "live heap bytes per record at 1M records", Target::AtMost(1.0)),
    row("disc_tx_write_immediate", "floor: `write_all` + `sync_data`", Target::AtMost(1.25)),
    row("disc_tx_write_immediate_8", "8 writers' throughput over 1", Target::AtLeast(4.0)),
    row("disc_tx_write_relaxed", "floor: in-memory `tx_write`", Target::AtMost(3.0)),
    row("disc_only_tx_write", "floor: `write_all` + `sync_data`", Target::None),
    row(
        "disc_schema_change",
        "an index added or removed on a disc table; floor: `write_all` + `sync_data` of the schema's size",
        Target::None,
    ),
    row("disc_only_read", "floor: in-memory `tx_read`; 2000 records", Target::AtMost(5.0)),
    row("recovery_1m_ms", "open after a clean close; floor: reading the files", Target::WithinMs(1500.0)),
    row("recovery_1m_crash_ms", "open from the log only; floor: reading the files", Target::WithinMs(1500.0)),
    row("disk_bytes_per_record", "floor: postcard size", Target::None),
];

/// A time in nanoseconds, in a readable unit.
fn time(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.1} ms", ns / 1e6)
    } else if ns >= 1e4 {
        format!("{:.0} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

fn num(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

/// The figure's own and floor cells, and anything more the run measured for it.
fn cells(key: &str, f: &Value) -> (String, String, Vec<String>) {
    let mut more = Vec::new();
    if let (Some(peak), Some(floor)) = (num(f, "peak_bytes"), num(f, "floor_peak_bytes")) {
        more.push(format!("peak heap {:.0} MB against {:.0} MB", peak / 1e6, floor / 1e6));
    }
    if let (Some(retries), Some(scans)) = (num(f, "retries"), num(f, "scans")) {
        more.push(format!("{retries:.0} retries in {scans:.0} scans"));
    }
    if let (Some(during), Some(alone)) =
        (num(f, "writer_commits_per_s_during_scans"), num(f, "writer_commits_per_s_alone"))
    {
        more.push(format!(
            "writers {:.0}k commits/s during the scans against {:.0}k/s without",
            during / 1e3,
            alone / 1e3
        ));
    }
    if key.starts_with("concurrent_") || key.ends_with("_8") {
        return (String::new(), String::new(), more);
    }
    let pair = if let (Some(ours), Some(floor)) = (num(f, "ns_per_op"), num(f, "floor_ns_per_op")) {
        (time(ours), time(floor))
    } else if let (Some(ours), Some(floor)) = (num(f, "value"), num(f, "floor_ms")) {
        (format!("{ours:.0} ms"), format!("{floor:.0} ms"))
    } else if let (Some(ours), Some(floor)) = (num(f, "bytes"), num(f, "floor_bytes")) {
        (format!("{ours:.1} B"), format!("{floor:.1} B"))
    } else {
        (String::new(), String::new())
    };
    (pair.0, pair.1, more)
}

fn target_cell(target: &Target, f: &Value) -> String {
    let ratio = num(f, "ratio");
    let (text, met) = match *target {
        Target::AtMost(t) => (format!("≤ {t}"), ratio.map(|r| r <= t)),
        Target::AtLeast(t) => (format!("≥ {t}"), ratio.map(|r| r >= t)),
        Target::WithinMs(t) => (format!("≤ {t} ms"), num(f, "value").map(|ms| ms <= t)),
        Target::WithinUs(t) => (format!("≤ {t} µs"), num(f, "ns_per_op").map(|ns| ns <= t * 1e3)),
        Target::None => return "—".into(),
    };
    match met {
        Some(false) => format!("{text} (not met in this run)"),
        _ => text,
    }
}

/// The table (with the line saying where it comes from) for the saved run `run`, read from
/// `source`.
pub fn table(run: &Value, source: &str) -> String {
    let machine = &run["machine"];
    let mut out = format!(
        "From `{source}`, measured on {} ({} cores, {} GiB, {}) at commit `{}`:\n\n",
        machine["cpu"].as_str().unwrap_or("an unnamed CPU"),
        machine["cores"],
        machine["memory_gib"],
        machine["rustc"].as_str().unwrap_or("rustc"),
        machine["commit"].as_str().unwrap_or("?"),
    );
    out.push_str("| Figure | Ours | Floor | Ratio | Target |\n|---|---|---|---|---|\n");
    for row in ROWS {
        let Some(f) = run["figures"].get(row.key) else { continue };
        let ratio = num(f, "ratio");
        let (ours, floor, more) = cells(row.key, f);
        let mut what: Vec<String> = Vec::new();
        if !row.what.is_empty() {
            what.push(row.what.to_owned());
        }
        what.extend(more);
        let name = if what.is_empty() {
            format!("`{}`", row.key)
        } else {
            format!("`{}` ({})", row.key, what.join("; "))
        };
        let ratio_cell = ratio.map_or(String::new(), |r| format!("{r:.2}"));
        out.push_str(&format!(
            "| {name} | {ours} | {floor} | {ratio_cell} | {} |\n",
            target_cell(&row.target, f)
        ));
    }
    out
}

/// Writes the table for `run` into the README at `readme`, between the markers.
pub fn rewrite(readme: &Path, run: &Value, source: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(readme).map_err(|e| format!("{}: {e}", readme.display()))?;
    let (Some(start), Some(end)) = (text.find(START), text.find(END)) else {
        return Err(format!("{} has no {START} … {END} markers", readme.display()));
    };
    let head = &text[..start + START.len()];
    let tail = &text[end..];
    let updated = format!("{head}\n{}{tail}", table(run, source));
    std::fs::write(readme, updated).map_err(|e| format!("{}: {e}", readme.display()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn rows_show_units_targets_and_what_was_not_met() {
        let run = json!({
            "machine": {"cpu": "CPU", "cores": 2, "memory_gib": 8, "rustc": "rustc 1.95.0", "commit": "abc"},
            "figures": {
                "tx_write": {"ns_per_op": 986.4, "floor_ns_per_op": 665.0, "ratio": 1.48},
                "select_scan": {"ns_per_op": 9_800_000.0, "floor_ns_per_op": 8_600_000.0, "ratio": 1.14},
                "concurrent_tx_write": {"ns_per_op": 1.0, "floor_ns_per_op": 2.0, "ratio": 1.5},
                "backup_1m_ms": {"value": 88.0, "floor_ms": 41.0, "ratio": 2.15, "peak_bytes": 2e6, "floor_peak_bytes": 64e6},
                "recovery_1m_ms": {"value": 1600.0, "floor_ms": 17.0, "ratio": 94.1},
            }
        });
        let t = table(&run, "bench/results/x.json");
        assert!(t.starts_with(
            "From `bench/results/x.json`, measured on CPU (2 cores, 8 GiB, rustc 1.95.0) at commit `abc`"
        ));
        assert!(
            t.contains("| `tx_write` (single-record transaction) | 986 ns | 665 ns | 1.48 | ≤ 3 |"),
            "{t}"
        );
        assert!(t.contains("| 9.8 ms | 8.6 ms | 1.14 |"), "{t}");
        assert!(
            t.contains("2 threads' throughput over 1 thread's) |  |  | 1.50 | ≥ 1.6 (not met in this run) |"),
            "{t}"
        );
        assert!(
            t.contains("peak heap 2 MB against 64 MB) | 88 ms | 41 ms | 2.15 | ≤ 2 (not met in this run) |"),
            "{t}"
        );
        assert!(t.contains("| 1600 ms | 17 ms | 94.10 | ≤ 1500 ms (not met in this run) |"), "{t}");
        assert!(!t.contains("tx_read"), "figures the run lacks are left out");
    }
}
