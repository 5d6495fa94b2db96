//! Benchmarks every headline operation against a floor measured in the same run, and prints
//! one JSON object: `{"figures": {"<name>": {"ns_per_op", "floor_ns_per_op", "ratio"}}}`.
//! `ratio` is ours / floor (lower is better) except for `concurrent_tx_write`, where it is
//! the throughput of 2 threads over 1 (higher is better).
//!
//! Run: `cargo run --release -p bench -- --json` (`--quick` for a short run, `--only NAME`
//! for one figure, `--save` to also write `bench/results/DATE.json` with the machine,
//! `--tracing` to measure with a `tracing` subscriber listening to the database's warnings,
//! `--latencies` to measure with transaction latencies recorded, as while an observer runs;
//! `BENCH_RECORDS=N` for a table of `N` records instead of 100k, 20k with `--quick`).

mod alloc;
mod cluster;
mod disc;
mod fairness;
mod floor;
mod queries;
mod readme;
mod saved;
mod transfer;
mod ttl;

use std::hint::black_box;
use std::time::Instant;

use mnesia::prelude::*;
use serde_json::{Map, Value, json};

use crate::floor::Floor;

#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(name = "users")]
pub struct User {
    #[key]
    id: u64,
    name: String,
    #[index(unique)]
    email: String,
    age: u32,
}

/// Auto-increment inserts (`concurrent_insert`).
#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ticket {
    #[key]
    #[auto_increment]
    id: u64,
    note: String,
}

pub fn user(id: u64) -> User {
    User { id, name: format!("user {id}"), email: format!("u{id}@example.com"), age: (id % 100) as u32 }
}

/// Nanoseconds per operation of `f(i)` over `n` operations, best of `rounds`.
fn time_per_op(n: u64, rounds: u32, mut f: impl FnMut(u64)) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..rounds {
        let t = Instant::now();
        for i in 0..n {
            f(i);
        }
        best = best.min(t.elapsed().as_nanos() as f64 / n as f64);
    }
    best
}

pub struct Report {
    pub figures: Map<String, Value>,
    only: Option<String>,
}

impl Report {
    /// Whether figure `name` is to be measured (`--only NAME` restricts the run to one).
    pub fn wants(&self, name: &str) -> bool {
        self.only.as_deref().is_none_or(|o| o == name)
    }

    pub fn add(&mut self, name: &str, ours: f64, floor: f64) {
        let ratio = ours / floor;
        eprintln!("{name:<22} {ours:>10.1} ns/op   floor {floor:>10.1} ns/op   ratio {ratio:>6.2}");
        self.figures.insert(
            name.into(),
            json!({ "ns_per_op": round(ours), "floor_ns_per_op": round(floor), "ratio": round(ratio) }),
        );
    }
}

pub fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// `--readme FILE.json`: writes the README's performance table from a saved run, measuring
/// nothing. Returns whether it was asked for.
fn readme_from_saved_run() -> mnesia::Result<bool> {
    let args: Vec<String> = std::env::args().collect();
    let Some(file) = args.iter().position(|a| a == "--readme").and_then(|i| args.get(i + 1)) else {
        return Ok(false);
    };
    if !file.ends_with(".json") {
        return Ok(false);
    }
    let fail = |e: String| mnesia::Error::Invalid(e);
    let run: Value = std::fs::read(file)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        .map_err(|e| fail(format!("{file}: {e}")))?;
    let source = saved::relative(std::path::Path::new(file));
    readme::rewrite(&saved::readme(), &run, &source).map_err(fail)?;
    eprintln!("README table written from {source}");
    Ok(true)
}

/// A `tracing` subscriber that listens to the database's warnings and drops them: with
/// `--tracing`, the figures are measured as a program with a subscriber sees them.
struct Listening;

impl tracing::Subscriber for Listening {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        metadata.target().starts_with("mnesia") && *metadata.level() <= tracing::Level::WARN
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

fn main() -> mnesia::Result<()> {
    if readme_from_saved_run()? {
        return Ok(());
    }
    if std::env::args().any(|a| a == "--tracing") {
        tracing::subscriber::set_global_default(Listening)
            .map_err(|e| mnesia::Error::Invalid(format!("a tracing subscriber is already set: {e}")))?;
    }
    let quick = std::env::args().any(|a| a == "--quick");
    let default_records = if quick { 20_000 } else { 100_000 };
    let records: u64 =
        std::env::var("BENCH_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(default_records);
    let ops: u64 = if quick { 50_000 } else { 200_000 };
    let rounds = 3;
    let args: Vec<String> = std::env::args().collect();
    let only = args.iter().position(|a| a == "--only").and_then(|i| args.get(i + 1)).cloned();
    let mut report = Report { figures: Map::new(), only };

    let db = Database::in_memory()?;
    db.record_latencies(std::env::args().any(|a| a == "--latencies"));
    let floor = Floor::default();
    db.scope(|| -> mnesia::Result<()> {
        User::create_table(TableOptions::new())?;
        User::batch_write((0..records).map(user))?;
        floor.write_many((0..records).map(user).collect());
        let prepared: Vec<User> = (0..records).map(user).collect();
        let pick = |i: u64| (i.wrapping_mul(7919)) % records;

        if report.wants("tx_write") {
            let ours = time_per_op(ops, rounds, |i| {
                black_box(User::write(prepared[pick(i) as usize].clone()).ok());
            });
            let base = time_per_op(ops, rounds, |i| {
                black_box(floor.write(prepared[pick(i) as usize].clone()));
            });
            report.add("tx_write", ours, base);
        }

        if report.wants("tx_read") {
            let ours = time_per_op(ops, rounds, |i| {
                black_box(User::read(&pick(i)).ok());
            });
            let base = time_per_op(ops, rounds, |i| {
                black_box(floor.read(pick(i)));
            });
            report.add("tx_read", ours, base);
        }

        if report.wants("tx_update") {
            let ours = time_per_op(ops, rounds, |i| {
                black_box(User::update(&pick(i), |u| u.age = u.age.wrapping_add(1)).ok());
            });
            let base = time_per_op(ops, rounds, |i| {
                black_box(floor.update(pick(i), |u| u.age = u.age.wrapping_add(1)));
            });
            report.add("tx_update", ours, base);
        }

        if report.wants("dirty_write") {
            let ours = time_per_op(ops, rounds, |i| {
                black_box(User::dirty_write(prepared[pick(i) as usize].clone()).ok());
            });
            let base = time_per_op(ops, rounds, |i| {
                black_box(floor.write(prepared[pick(i) as usize].clone()));
            });
            report.add("dirty_write", ours, base);
        }

        if report.wants("dirty_read") {
            let ours = time_per_op(ops, rounds, |i| {
                black_box(User::dirty_read(&pick(i)).ok());
            });
            let base = time_per_op(ops, rounds, |i| {
                black_box(floor.read(pick(i)));
            });
            report.add("dirty_read", ours, base);
        }

        let batch = 1000u64;
        let batches = (ops / batch).max(1);
        if report.wants("batch_write") {
            let ours = time_per_op(batches, rounds, |b| {
                let recs: Vec<User> =
                    (0..batch).map(|j| prepared[pick(b * batch + j) as usize].clone()).collect();
                black_box(User::batch_write(recs).ok());
            }) / batch as f64;
            let base = time_per_op(batches, rounds, |b| {
                let recs: Vec<User> =
                    (0..batch).map(|j| prepared[pick(b * batch + j) as usize].clone()).collect();
                floor.write_many(recs);
            }) / batch as f64;
            report.add("batch_write", ours, base);
        }

        let emails: Vec<String> = (0..records).map(|i| format!("u{i}@example.com")).collect();
        if report.wants("index_get") {
            let ours = time_per_op(ops, rounds, |i| {
                black_box(User::get_by(User::EMAIL, &emails[pick(i) as usize]).ok());
            });
            let base = time_per_op(ops, rounds, |i| {
                black_box(floor.by_email(&emails[pick(i) as usize]));
            });
            report.add("index_get", ours, base);
        }

        let scans = if quick { 5 } else { 20 };
        if report.wants("select_scan") {
            let ours = time_per_op(scans, rounds, |_| {
                black_box(User::select(User::AGE.ge(50)).ok());
            });
            let base = time_per_op(scans, rounds, |_| {
                black_box(floor.select(|u| u.age >= 50));
            });
            report.add("select_scan", ours, base);
        }

        if report.wants("query_limit_10") {
            let q = User::query().filter(User::AGE.ge(50)).limit(10);
            let ours = time_per_op(ops / 20, rounds, |_| {
                black_box(q.all().ok());
            });
            let base = time_per_op(ops / 20, rounds, |_| {
                black_box(floor.first_n(10, |u| u.age >= 50));
            });
            report.add("query_limit_10", ours, base);
        }

        if report.wants("query_order_limit_10") {
            let q = User::query().order_by(User::AGE.asc()).limit(10);
            let ours = time_per_op(scans, rounds, |_| {
                black_box(q.all().ok());
            });
            let base = time_per_op(scans, rounds, |_| {
                black_box(floor.youngest(10));
            });
            report.add("query_order_limit_10", ours, base);
        }
        Ok(())
    })?;

    concurrent(&db, &mut report, records, ops)?;
    if report.wants("contended_increment") {
        contended(&mut report, ops / 4)?;
    }
    if report.wants("bytes_per_record") {
        bytes_per_record(&mut report, if quick { 100_000 } else { 1_000_000 })?;
    }
    if report.wants("event_fanout") {
        event_fanout(&mut report, ops)?;
    }
    fairness::figures(&mut report, records)?;
    queries::figures(&mut report, quick)?;
    ttl::figures(&mut report, records, ops)?;
    transfer::figures(&mut report, quick)?;
    let tx_write_floor =
        report.figures.get("tx_write").and_then(|f| f["ns_per_op"].as_f64()).unwrap_or(1000.0);
    let tx_read_floor = report.figures.get("tx_read").and_then(|f| f["ns_per_op"].as_f64()).unwrap_or(350.0);
    disc::figures(&mut report, quick, tx_write_floor, tx_read_floor)?;
    cluster::figures(&mut report, quick, tx_write_floor)?;

    let mut out = json!({
        "figures": report.figures,
        "records": records,
        "ops_per_figure": ops,
        "notes": "ratio = ours / floor in time per op (lower is better); concurrent_tx_write, concurrent_insert and disc_tx_write_immediate_8 ratio = throughput of more threads / 1 thread (higher is better); bytes_per_record figures are bytes, not ns",
    });
    if std::env::args().any(|a| a == "--save") {
        let path =
            saved::save(&mut out).map_err(|e| mnesia::Error::Invalid(format!("saving the results: {e}")))?;
        eprintln!("saved to {}", path.display());
        if std::env::args().any(|a| a == "--readme") {
            readme::rewrite(&saved::readme(), &out, &saved::relative(&path))
                .map_err(mnesia::Error::Invalid)?;
            eprintln!("README table written");
        }
    }
    println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    Ok(())
}

/// Throughput of single-record write transactions on disjoint keys: 1 thread, then 2.
/// The throughput of `op(thread, i)` on 2 threads over 1 thread's, as figure `name`.
fn scaling(db: &Database, report: &mut Report, name: &str, ops: u64, op: impl Fn(u64, u64) + Sync) {
    let run = |threads: u64| -> f64 {
        let per = ops / threads;
        let t = Instant::now();
        std::thread::scope(|s| {
            for th in 0..threads {
                let db = db.clone();
                let op = &op;
                s.spawn(move || db.scope(|| (0..per).for_each(|i| op(th, i))));
            }
        });
        t.elapsed().as_nanos() as f64 / (per * threads) as f64
    };
    let (mut one, mut two) = (f64::MAX, f64::MAX);
    for _ in 0..3 {
        one = one.min(run(1));
        two = two.min(run(2));
    }
    let ratio = one / two;
    eprintln!("{name:<22} {two:>10.1} ns/op (2 threads)   1 thread {one:>10.1} ns/op   scaling {ratio:>6.2}");
    report.figures.insert(
        name.into(),
        json!({ "ns_per_op": round(two), "floor_ns_per_op": round(one), "ratio": round(ratio) }),
    );
}

/// Single-record write transactions on disjoint keys, and auto-increment inserts: 2 threads
/// against 1.
fn concurrent(db: &Database, report: &mut Report, records: u64, ops: u64) -> mnesia::Result<()> {
    if report.wants("concurrent_tx_write") {
        scaling(db, report, "concurrent_tx_write", ops, |th, i| {
            // Each thread writes its own half of the keys.
            let half = records / 2;
            black_box(User::write(user(th * half + i % half)).ok());
        });
    }
    if report.wants("concurrent_insert") {
        db.scope(|| Ticket::create_table(TableOptions::new()))?;
        scaling(db, report, "concurrent_insert", ops, |_, i| {
            black_box(Ticket::insert(Ticket { id: 0, note: format!("ticket {i}") }).ok());
        });
    }
    Ok(())
}

/// One writer, 4 subscribers draining their events, against the same writes with none.
fn event_fanout(report: &mut Report, ops: u64) -> mnesia::Result<()> {
    let db = Database::in_memory()?;
    db.scope(|| Ticket::create_table(TableOptions::new()))?;
    let write = |n: u64| {
        let t = Instant::now();
        db.scope(|| {
            for i in 0..n {
                black_box(Ticket::write(Ticket { id: i % 10_000 + 1, note: "x".into() }).ok());
            }
        });
        t.elapsed().as_nanos() as f64 / n as f64
    };
    let n = ops / 2;
    let base = (0..3).map(|_| write(n)).fold(f64::MAX, f64::min);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let ours = std::thread::scope(|s| -> mnesia::Result<f64> {
        for _ in 0..4 {
            let events = db.scope(Ticket::subscribe)?;
            let stop = &stop;
            s.spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    black_box(events.recv_timeout(std::time::Duration::from_millis(10)));
                }
            });
        }
        let ours = (0..3).map(|_| write(n)).fold(f64::MAX, f64::min);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(ours)
    })?;
    report.add("event_fanout", ours, base);
    Ok(())
}

/// Two threads incrementing one record in transactions, against the floor doing the same.
fn contended(report: &mut Report, ops: u64) -> mnesia::Result<()> {
    let db = Database::in_memory()?;
    db.scope(|| -> mnesia::Result<()> {
        User::create_table(TableOptions::new())?;
        User::write(user(1))?;
        Ok(())
    })?;
    let floor = Floor::default();
    floor.write(user(1));
    let per = ops / 2;
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..2 {
            let db = db.clone();
            s.spawn(move || {
                db.scope(|| {
                    for _ in 0..per {
                        black_box(User::update(&1, |u| u.age += 1).ok());
                    }
                })
            });
        }
    });
    let ours = t.elapsed().as_nanos() as f64 / (per * 2) as f64;
    let expected = 1 + 2 * per as u32;
    let got = db.scope(|| User::read(&1))?.map(|u| u.age).unwrap_or(0);
    if got != expected {
        return Err(mnesia::Error::Invalid(format!("contended_increment lost updates: {got} != {expected}")));
    }
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..per {
                    black_box(floor.update(1, |u| u.age += 1));
                }
            });
        }
    });
    let base = t.elapsed().as_nanos() as f64 / (per * 2) as f64;
    report.add("contended_increment", ours, base);
    Ok(())
}

/// Live heap bytes per record of a table of `n` records, against the floor's.
fn bytes_per_record(report: &mut Report, n: u64) -> mnesia::Result<()> {
    let recs: Vec<User> = (0..n).map(user).collect();
    let (db, ours) = alloc::retained(|| -> mnesia::Result<Database> {
        let db = Database::in_memory()?;
        db.scope(|| -> mnesia::Result<()> {
            User::create_table(TableOptions::new())?;
            for chunk in recs.chunks(10_000) {
                User::batch_write(chunk.iter().cloned())?;
            }
            Ok(())
        })?;
        Ok(db)
    });
    let db = db?;
    let (floor, base) = alloc::retained(|| {
        let f = Floor::default();
        for chunk in recs.chunks(10_000) {
            f.write_many(chunk.to_vec());
        }
        f
    });
    let (ours, base) = (ours as f64 / n as f64, base as f64 / n as f64);
    let ratio = ours / base;
    eprintln!("bytes_per_record       {ours:>10.1} B        floor {base:>10.1} B        ratio {ratio:>6.2}");
    report.figures.insert(
        "bytes_per_record".into(),
        json!({ "bytes": round(ours), "floor_bytes": round(base), "ratio": round(ratio) }),
    );
    drop(db);
    drop(floor);
    Ok(())
}
