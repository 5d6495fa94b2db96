//! `scan_under_write_load`: a transaction scanning a table while 2 threads commit
//! single-record write transactions without pause, against the same scan alone; with the
//! retries the scan took and the writers' commit rate during the scan against without it.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mnesia::prelude::*;
use serde_json::json;

use crate::{Report, User, round, user};

const WRITERS: u64 = 2;

/// How many times the scan's closure ran.
static RUNS: AtomicU64 = AtomicU64::new(0);

/// The scan: a transaction counting the table and summing a field of every record.
fn scan() -> mnesia::Result<(usize, u64)> {
    mnesia::transaction(|| {
        RUNS.fetch_add(1, Ordering::Relaxed);
        let n = User::count()?;
        let ages: u64 = User::list()?.iter().map(|u| u64::from(u.age)).sum();
        Ok::<_, mnesia::Error>((n, ages))
    })
}

pub fn figures(report: &mut Report, records: u64) -> mnesia::Result<()> {
    if !report.wants("scan_under_write_load") {
        return Ok(());
    }
    let db = Database::in_memory()?;
    db.scope(|| -> mnesia::Result<()> {
        User::create_table(TableOptions::new())?;
        User::batch_write((0..records).map(user))?;
        Ok(())
    })?;
    let scans: u64 = 5;
    let mut alone = f64::MAX;
    for _ in 0..scans {
        let t = Instant::now();
        black_box(db.scope(scan)?);
        alone = alone.min(t.elapsed().as_nanos() as f64);
    }

    let stop = AtomicBool::new(false);
    let writes = AtomicU64::new(0);
    let (under_load, retries, rate_alone, rate_during) = std::thread::scope(|s| {
        for w in 0..WRITERS {
            let (db, stop, writes) = (db.clone(), &stop, &writes);
            s.spawn(move || {
                db.scope(|| {
                    let mut i = w;
                    while !stop.load(Ordering::Relaxed) {
                        black_box(User::write(user(i.wrapping_mul(7919) % records)).ok());
                        writes.fetch_add(1, Ordering::Relaxed);
                        i += WRITERS;
                    }
                })
            });
        }
        // The writers' commit rate with no scan running.
        let (w0, t0) = (writes.load(Ordering::Relaxed), Instant::now());
        std::thread::sleep(Duration::from_millis(300));
        let rate_alone = (writes.load(Ordering::Relaxed) - w0) as f64 / t0.elapsed().as_secs_f64();
        let runs_before = RUNS.load(Ordering::Relaxed);
        let mut best = f64::MAX;
        let (mut scan_writes, mut scan_time) = (0u64, 0f64);
        let mut result = Ok(());
        for _ in 0..scans {
            let (w0, t) = (writes.load(Ordering::Relaxed), Instant::now());
            if let Err(e) = db.scope(scan) {
                result = Err(e);
                break;
            }
            let took = t.elapsed();
            scan_writes += writes.load(Ordering::Relaxed) - w0;
            scan_time += took.as_secs_f64();
            best = best.min(took.as_nanos() as f64);
        }
        let retries = RUNS.load(Ordering::Relaxed) - runs_before - scans;
        stop.store(true, Ordering::Relaxed);
        result.map(|()| (best, retries, rate_alone, scan_writes as f64 / scan_time))
    })?;
    let ratio = under_load / alone;
    eprintln!(
        "{:<22} {under_load:>10.1} ns/op   floor {alone:>10.1} ns/op   ratio {ratio:>6.2}   retries {retries} in {scans} scans   writers {rate_during:.0}/s during, {rate_alone:.0}/s alone",
        "scan_under_write_load"
    );
    report.figures.insert(
        "scan_under_write_load".into(),
        json!({
            "ns_per_op": round(under_load),
            "floor_ns_per_op": round(alone),
            "ratio": round(ratio),
            "scans": scans,
            "retries": retries,
            "writer_commits_per_s_during_scans": round(rate_during),
            "writer_commits_per_s_alone": round(rate_alone),
        }),
    );
    Ok(())
}
