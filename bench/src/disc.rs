//! Figures of disc_copies tables: durable commits against the disk's own limit, group
//! commit, relaxed durability, recovery time and bytes on disc.

use std::hint::black_box;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use mnesia::prelude::*;
use mnesia::{Durability, Schema};
use serde_json::json;

use crate::{Report, User, round, user};

fn disc() -> TableOptions<User> {
    TableOptions::new().disc_copies(["local@localhost"])
}

fn open(dir: &Path, durability: Durability) -> mnesia::Result<Database> {
    if !Schema::exists(dir)? {
        Schema::create(dir)?;
    }
    Database::open(Config::default().dir(dir).durability(durability).checkpoint_after_bytes(u64::MAX))
}

/// Nanoseconds per single-record write transaction, `threads` writers on disjoint keys.
fn durable_writes(db: &Database, threads: u64, per_thread: u64) -> f64 {
    let t = Instant::now();
    std::thread::scope(|s| {
        for th in 0..threads {
            let db = db.clone();
            s.spawn(move || {
                db.scope(|| {
                    for i in 0..per_thread {
                        black_box(User::write(user(th * 1_000_000 + i)).ok());
                    }
                })
            });
        }
    });
    t.elapsed().as_nanos() as f64 / (threads * per_thread) as f64
}

/// The disk's limit: append a record of the same size and sync it, in a loop.
fn raw_synced_appends(dir: &Path, bytes: usize, n: u64) -> std::io::Result<f64> {
    let mut f = std::fs::File::create(dir.join("floor.bin"))?;
    let buf = vec![7u8; bytes];
    let t = Instant::now();
    for _ in 0..n {
        f.write_all(&buf)?;
        f.sync_data()?;
    }
    Ok(t.elapsed().as_nanos() as f64 / n as f64)
}

fn io(e: std::io::Error) -> mnesia::Error {
    mnesia::Error::Invalid(e.to_string())
}

pub fn figures(
    report: &mut Report,
    quick: bool,
    tx_write_floor: f64,
    tx_read_floor: f64,
) -> mnesia::Result<()> {
    let n: u64 = if quick { 300 } else { 2000 };
    // Commit record: sequence, table id, key and record, with frame header.
    let record_bytes = 8 + 8 + 16 + postcard::to_allocvec(&user(1)).map_or(64, |v| v.len());

    if report.wants("disc_tx_write_immediate") || report.wants("disc_tx_write_immediate_8") {
        let dir = tempfile::tempdir().map_err(io)?;
        let db = open(dir.path(), Durability::Immediate)?;
        db.scope(|| User::create_table(disc()))?;
        let one = durable_writes(&db, 1, n);
        let floor = raw_synced_appends(dir.path(), record_bytes, n).map_err(io)?;
        report.add("disc_tx_write_immediate", one, floor);
        let eight = durable_writes(&db, 8, n / 2);
        let scaling = one / eight;
        eprintln!(
            "disc_tx_write_immediate_8 {eight:>7.1} ns/op (8 writers)  1 writer {one:>10.1} ns/op   scaling {scaling:>6.2}"
        );
        report.figures.insert(
            "disc_tx_write_immediate_8".into(),
            json!({ "ns_per_op": round(eight), "floor_ns_per_op": round(one), "ratio": round(scaling) }),
        );
        db.close()?;
    }

    if report.wants("disc_only_tx_write") || report.wants("disc_only_read") {
        let dir = tempfile::tempdir().map_err(io)?;
        let db = open(dir.path(), Durability::Immediate)?;
        db.scope(|| User::create_table(TableOptions::new().disc_only_copies(["local@localhost"])))?;
        let ours = durable_writes(&db, 1, n);
        let floor = raw_synced_appends(dir.path(), record_bytes, n).map_err(io)?;
        report.add("disc_only_tx_write", ours, floor);
        let reads = n * 20;
        let ours = db.scope(|| {
            let t = Instant::now();
            for i in 0..reads {
                black_box(User::read(&(i % n)).ok());
            }
            t.elapsed().as_nanos() as f64 / reads as f64
        });
        report.add("disc_only_read", ours, tx_read_floor);
        db.close()?;
    }

    if report.wants("disc_schema_change") {
        // An index added or removed on a disc table of ten records, each change a record
        // of the log synced before it returns; floor: a synced append of that record's
        // size (the schema with its one table).
        let dir = tempfile::tempdir().map_err(io)?;
        let db = open(dir.path(), Durability::Immediate)?;
        let changes: u64 = if quick { 40 } else { 200 };
        let ours = db.scope(|| -> mnesia::Result<f64> {
            User::create_table(disc())?;
            User::batch_write((0..10).map(user))?;
            let t = Instant::now();
            for _ in 0..changes / 2 {
                User::add_index(User::AGE)?;
                User::remove_index(User::AGE)?;
            }
            Ok(t.elapsed().as_nanos() as f64 / changes as f64)
        })?;
        db.close()?;
        let schema_bytes = std::fs::metadata(dir.path().join("schema.json")).map_err(io)?.len() as usize;
        let floor = raw_synced_appends(dir.path(), schema_bytes, changes).map_err(io)?;
        report.add("disc_schema_change", ours, floor);
    }

    if report.wants("disc_tx_write_relaxed") {
        let dir = tempfile::tempdir().map_err(io)?;
        let db = open(dir.path(), Durability::Relaxed { interval: Duration::from_millis(100) })?;
        db.scope(|| User::create_table(disc()))?;
        let ours = durable_writes(&db, 1, n * 20);
        report.add("disc_tx_write_relaxed", ours, tx_write_floor);
        db.close()?;
    }

    if report.wants("recovery_1m_ms")
        || report.wants("recovery_1m_crash_ms")
        || report.wants("disk_bytes_per_record")
    {
        let records: u64 = if quick { 100_000 } else { 1_000_000 };
        let dir = tempfile::tempdir().map_err(io)?;
        let db = open(dir.path(), Durability::Relaxed { interval: Duration::from_millis(50) })?;
        db.scope(|| -> mnesia::Result<()> {
            User::create_table(disc())?;
            let all: Vec<User> = (0..records).map(user).collect();
            for chunk in all.chunks(10_000) {
                User::batch_write(chunk.iter().cloned())?;
            }
            Ok(())
        })?;
        // A crash: copy the directory as it is (log only, no checkpoint).
        db.scope(|| -> mnesia::Result<()> { User::count().map(|_| ()) })?;
        let crashed = tempfile::tempdir().map_err(io)?;
        std::thread::sleep(Duration::from_millis(120)); // the relaxed log is written
        copy_dir(dir.path(), crashed.path()).map_err(io)?;
        db.close()?;
        drop(db);

        let encoded: usize =
            (0..records).map(|i| postcard::to_allocvec(&user(i)).map_or(0, |v| v.len())).sum();
        let on_disc = dir_bytes(dir.path()).map_err(io)?;
        let per = on_disc as f64 / records as f64;
        let floor = encoded as f64 / records as f64;
        eprintln!(
            "disk_bytes_per_record  {per:>10.1} B        floor {floor:>10.1} B        ratio {:>6.2}",
            per / floor
        );
        report.figures.insert(
            "disk_bytes_per_record".into(),
            json!({ "bytes": round(per), "floor_bytes": round(floor), "ratio": round(per / floor) }),
        );

        for (name, path) in [("recovery_1m_ms", dir.path()), ("recovery_1m_crash_ms", crashed.path())] {
            let floor = {
                let t = Instant::now();
                black_box(read_all_files(path).map_err(io)?);
                t.elapsed().as_secs_f64() * 1000.0
            };
            let t = Instant::now();
            let db = open(path, Durability::Immediate)?;
            let n = db.scope(User::count)?;
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            if n as u64 != records {
                return Err(mnesia::Error::Invalid(format!("{name}: recovered {n} of {records} records")));
            }
            eprintln!("{name:<22} {ms:>10.1} ms        floor {floor:>10.1} ms (reading the files)");
            report.figures.insert(name.into(), json!({ "value": round(ms), "floor_ms": round(floor), "ratio": round(ms / floor), "records": records }));
            db.close()?;
        }
    }
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    for e in std::fs::read_dir(from)? {
        let e = e?;
        if e.file_name() != "LOCK" {
            std::fs::copy(e.path(), to.join(e.file_name()))?;
        }
    }
    Ok(())
}

fn dir_bytes(dir: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    for e in std::fs::read_dir(dir)? {
        total += e?.metadata()?.len();
    }
    Ok(total)
}

fn read_all_files(dir: &Path) -> std::io::Result<usize> {
    let mut total = 0;
    for e in std::fs::read_dir(dir)? {
        total += std::fs::read(e?.path())?.len();
    }
    Ok(total)
}
