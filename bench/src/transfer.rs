//! Export, import, backup and restore figures over 1M records (100k with `--quick`):
//! `export_json_1m_ms`, `export_csv_1m_ms`, `import_csv_1m_ms`, `import_jsonl_1m_ms`,
//! `backup_1m_ms`, `restore_1m_ms`, each against the same rows written from (read into) a `Vec` by
//! `serde_json` / `csv` / `postcard` to (from) a file in the same run, with the peak heap
//! each used.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::time::Instant;

use mnesia::prelude::*;
use serde_json::json;

use crate::{Report, User, alloc, round, user};

fn io(e: impl std::fmt::Display) -> mnesia::Error {
    mnesia::Error::Invalid(format!("bench i/o: {e}"))
}

/// Milliseconds and peak heap bytes of `f`.
fn measure<R>(f: impl FnOnce() -> mnesia::Result<R>) -> mnesia::Result<(f64, isize)> {
    let t = Instant::now();
    let (r, peak) = alloc::peak(f);
    r?;
    Ok((t.elapsed().as_secs_f64() * 1000.0, peak))
}

fn add(report: &mut Report, name: &str, ours: (f64, isize), floor: (f64, isize), records: u64) {
    let ratio = ours.0 / floor.0;
    eprintln!(
        "{name:<22} {:>10.1} ms        floor {:>10.1} ms   ratio {ratio:>6.2}   peak {} MB (floor {} MB)",
        ours.0,
        floor.0,
        ours.1 >> 20,
        floor.1 >> 20
    );
    report.figures.insert(
        name.into(),
        json!({
            "value": round(ours.0), "floor_ms": round(floor.0), "ratio": round(ratio),
            "peak_bytes": ours.1, "floor_peak_bytes": floor.1, "records": records,
        }),
    );
}

pub fn figures(report: &mut Report, quick: bool) -> mnesia::Result<()> {
    let names = [
        "export_json_1m_ms",
        "export_csv_1m_ms",
        "import_csv_1m_ms",
        "import_jsonl_1m_ms",
        "backup_1m_ms",
        "restore_1m_ms",
    ];
    if !names.iter().any(|n| report.wants(n)) {
        return Ok(());
    }
    let records: u64 = if quick { 100_000 } else { 1_000_000 };
    let dir = tempfile::tempdir().map_err(io)?;
    let db = Database::in_memory()?;
    db.scope(|| -> mnesia::Result<()> {
        User::create_table(TableOptions::new())?;
        let all: Vec<User> = (0..records).map(user).collect();
        for chunk in all.chunks(10_000) {
            User::batch_write(chunk.iter().cloned())?;
        }
        let json_path = dir.path().join("users.json");
        let csv_path = dir.path().join("users.csv");
        let floor_path = dir.path().join("floor");
        if report.wants("export_json_1m_ms") {
            let ours = measure(|| User::export(&json_path))?;
            let floor = measure(|| {
                let mut out = BufWriter::new(File::create(&floor_path).map_err(io)?);
                serde_json::to_writer(&mut out, &all).map_err(io)?;
                out.flush().map_err(io)
            })?;
            add(report, "export_json_1m_ms", ours, floor, records);
        }
        // The CSV file is needed by the import figure too.
        let ours = measure(|| User::export(&csv_path))?;
        if report.wants("export_csv_1m_ms") {
            let floor = measure(|| {
                let mut w = csv::Writer::from_writer(BufWriter::new(File::create(&floor_path).map_err(io)?));
                for u in &all {
                    w.serialize(u).map_err(io)?;
                }
                w.flush().map_err(io)
            })?;
            add(report, "export_csv_1m_ms", ours, floor, records);
        }
        if report.wants("backup_1m_ms") || report.wants("restore_1m_ms") {
            let bak = dir.path().join("all.bak");
            let ours = measure(|| mnesia::Database::backup(&db, &bak))?;
            // The floor: the same rows written from a Vec by postcard to a file, and read back.
            let floor = measure(|| {
                let bytes = postcard::to_allocvec(&all).map_err(io)?;
                std::fs::write(&floor_path, bytes).map_err(io)
            })?;
            if report.wants("backup_1m_ms") {
                add(report, "backup_1m_ms", ours, floor, records);
            }
            if report.wants("restore_1m_ms") {
                let floor = measure(|| {
                    let bytes = std::fs::read(&floor_path).map_err(io)?;
                    let rows: Vec<User> = postcard::from_bytes(&bytes).map_err(io)?;
                    Ok(rows.len())
                })?;
                let ours = measure(|| db.restore(&bak, &mnesia::RestoreOptions::new()))?;
                // The replaced table's records are freed on a thread of their own: let that
                // finish before the next figure.
                std::thread::sleep(std::time::Duration::from_millis(500));
                add(report, "restore_1m_ms", ours, floor, records);
            }
        }
        if report.wants("import_csv_1m_ms") {
            User::clear()?;
            let floor = measure(|| {
                let mut r = csv::Reader::from_reader(BufReader::new(File::open(&csv_path).map_err(io)?));
                let rows: Vec<User> = r.deserialize().collect::<Result<_, _>>().map_err(io)?;
                Ok(rows.len())
            })?;
            // Into the empty table, from the file (the store is sized from the file's length).
            let ours = measure(|| User::import(&csv_path))?;
            if User::count()? as u64 != records {
                return Err(mnesia::Error::Invalid("import_csv_1m_ms: records missing".into()));
            }
            add(report, "import_csv_1m_ms", ours, floor, records);
        }
        if report.wants("import_jsonl_1m_ms") {
            let jsonl_path = dir.path().join("users.jsonl");
            User::export(&jsonl_path)?;
            User::clear()?;
            let floor = measure(|| {
                let input = BufReader::new(File::open(&jsonl_path).map_err(io)?);
                let rows: Vec<User> = std::io::BufRead::lines(input)
                    .map(|line| serde_json::from_str(&line.map_err(io)?).map_err(io))
                    .collect::<mnesia::Result<_>>()?;
                Ok(rows.len())
            })?;
            let ours = measure(|| User::import(&jsonl_path))?;
            if User::count()? as u64 != records {
                return Err(mnesia::Error::Invalid("import_jsonl_1m_ms: records missing".into()));
            }
            add(report, "import_jsonl_1m_ms", ours, floor, records);
        }
        Ok(())
    })
}
