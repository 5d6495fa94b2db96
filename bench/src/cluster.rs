//! Three cluster nodes in this process on 127.0.0.1, their Raft logs on disc (synced):
//! - `cluster_tx_write`: one writer's single-record transactions, each committed by a
//!   majority and applied on its node, against the same transaction on one database alone;
//! - `cluster_tx_write_32`: commits per second of 32 writers spread over the three nodes
//!   (`value`), against one writer's;
//! - `cluster_snapshot_100k_ms`: a node's snapshot of a copy of 100k records (writing it,
//!   and `load_ms`, loading it on another), beside a backup file of the same copy;
//! - `cluster_snapshot_peak_mb`: the most heap a node holding 100k records takes while it
//!   builds its Raft snapshot and writes it to its directory, against the snapshot's size;
//! - `cluster_catch_up_100k_ms`: a node stopped while 100k records are written (in
//!   transactions of 100) starts again on its log; the time until it holds them (`value`);
//! - `cluster_local_write`: one writer's single-record transactions to a table the node
//!   keeps for itself (`local_content`: no round trip), against the same on a database
//!   alone, measured alternately in the same run;
//! - `cluster_forwarded_read`: `read`s of a table with its copy on another node only
//!   (answered there), against the same reads on that node;
//! - `cluster_forwarded_read_8`: such reads per second of 8 readers at once (`value`),
//!   against one reader's;
//! - `cluster_copy_fill_100k_ms`: a copy of a table of 100k records (12 MB) added on
//!   another node (`add_table_copy`) and filled there from an image in parts, against
//!   the floor of the image's writing on the holder.
//!
//! The same two commit figures with the Raft logs in memory (`_ram_log`), as Mnesia's
//! ram copies keep them.
//!
//! The three nodes share this machine's cores: each runs one worker thread
//! (`Options::worker_threads(1)`; `BENCH_CLUSTER_WORKERS=2` for the default of a node alone
//! on its machine).
//!
//! For reference, Mnesia with three nodes on this kind of machine (ram copies): 842 µs per
//! one-writer commit, 3.1k commits/s with 32 writers, 380–750 ms to catch up 100k records.

use std::hint::black_box;
use std::time::{Duration, Instant};

use mnesia::cluster::{Node, Options};
use mnesia::prelude::*;
use serde_json::json;

use crate::ttl::{Session, session};
use crate::{Report, Ticket, User, round, user};

/// A node's options: its Raft log in `dir`, or (`None`) in memory.
fn options(id: u64, dir: Option<&std::path::Path>) -> Options {
    let workers = std::env::var("BENCH_CLUSTER_WORKERS").ok().and_then(|w| w.parse().ok()).unwrap_or(1);
    let o = Options::new(id, "bench cookie").write_timeout(Duration::from_secs(30)).worker_threads(workers);
    match dir {
        Some(dir) => o.dir(dir.join(format!("node{id}"))),
        None => o,
    }
}

/// A node's database (node `id`, named `bench{id}`) with the users' table.
fn database(id: u64) -> mnesia::Result<Database> {
    let db = Database::open(Config::default().node_name(format!("bench{id}")))?;
    db.scope(|| User::create_table(TableOptions::new()))?;
    Ok(db)
}

/// Waits until `db` has applied `index`.
fn wait_for(db: &Database, index: u64, limit: Duration) -> mnesia::Result<()> {
    let deadline = Instant::now() + limit;
    while db.applied_index() < index {
        if Instant::now() > deadline {
            return Err(mnesia::Error::Invalid(format!("a node did not catch up within {limit:?}")));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    Ok(())
}

pub fn figures(report: &mut Report, quick: bool, tx_write_floor: f64) -> mnesia::Result<()> {
    run(report, quick, tx_write_floor, true)?;
    run(report, quick, tx_write_floor, false)
}

/// The figures of a cluster whose Raft logs are `durable` (on disc, synced), or in memory
/// (named `..._ram_log`; no catch-up figure: such a node does not come back).
fn run(report: &mut Report, quick: bool, tx_write_floor: f64, durable: bool) -> mnesia::Result<()> {
    let suffix = if durable { "" } else { "_ram_log" };
    let name = |n: &str| format!("{n}{suffix}");
    let wanted = |r: &Report, n: &str| r.wants(&name(n));
    let commits = ["cluster_tx_write", "cluster_tx_write_32"].iter().any(|n| wanted(report, n))
        || (durable
            && ["cluster_local_write", FORWARDED, FORWARDED_8, COPY_FILL].iter().any(|n| report.wants(n)));
    let catch_up = durable
        && ["cluster_catch_up_100k_ms", "cluster_snapshot_100k_ms", "cluster_snapshot_peak_mb"]
            .iter()
            .any(|n| report.wants(n));
    if !commits && !catch_up {
        return Ok(());
    }
    let dir = tempfile::tempdir().map_err(|e| mnesia::Error::Invalid(e.to_string()))?;
    let logs = durable.then_some(dir.path());
    let dbs = [database(1)?, database(2)?, database(3)?];
    let mut nodes: Vec<Option<Node>> = Vec::new();
    for (db, id) in dbs.iter().zip(1..) {
        nodes.push(Some(Node::start(db, options(id, logs))?));
    }
    let addrs: Vec<_> = nodes.iter().flatten().map(Node::local_addr).collect();
    if let Some(first) = &nodes[0] {
        first.initialize((1..).zip(addrs.iter().copied()))?;
        first.wait_for_leader(Duration::from_secs(10))?;
    }

    let n: u64 = if quick { 300 } else { 1000 };
    if wanted(report, "cluster_tx_write") {
        let ours = dbs[0].scope(|| {
            let t = Instant::now();
            for i in 0..n {
                black_box(User::write(user(i % 1000)).ok());
            }
            t.elapsed().as_nanos() as f64 / n as f64
        });
        report.add(&name("cluster_tx_write"), ours, tx_write_floor);
    }

    if wanted(report, "cluster_tx_write_32") {
        let per = if quick { 20 } else { 60 };
        let t = Instant::now();
        std::thread::scope(|s| {
            for w in 0..32u64 {
                let db = dbs[(w % 3) as usize].clone();
                s.spawn(move || {
                    db.scope(|| {
                        for i in 0..per {
                            black_box(User::write(user(10_000 + w * 1000 + i)).ok());
                        }
                    })
                });
            }
        });
        let ours = (32 * per) as f64 / t.elapsed().as_secs_f64();
        let t = Instant::now();
        dbs[0].scope(|| {
            for i in 0..per * 4 {
                black_box(User::write(user(50_000 + i)).ok());
            }
        });
        let one = (per * 4) as f64 / t.elapsed().as_secs_f64();
        let label = name("cluster_tx_write_32");
        eprintln!("{label:<22} {ours:>10.1} commits/s   1 writer {one:>10.1} commits/s");
        report.figures.insert(
            label,
            json!({ "value": round(ours), "one_writer": round(one), "ratio": round(ours / one) }),
        );
    }

    if durable && report.wants("cluster_local_write") {
        let (ours, floor) = local_writes(&dbs[0], n)?;
        report.add("cluster_local_write", ours, floor);
    }

    if durable && [FORWARDED, FORWARDED_8].iter().any(|n| report.wants(n)) {
        let (ours, floor) = forwarded_reads(&dbs[0], &dbs[1], n)?;
        if report.wants(FORWARDED) {
            report.add(FORWARDED, ours, floor);
        }
        if report.wants(FORWARDED_8) {
            let (eight, one) = forwarded_reads_at_once(&dbs[0], n);
            eprintln!("{FORWARDED_8:<22} {eight:>10.1} reads/s   1 reader {one:>10.1} reads/s");
            let figure =
                json!({ "value": round(eight), "one_reader": round(one), "ratio": round(eight / one) });
            report.figures.insert(FORWARDED_8.into(), figure);
        }
    }

    if durable && report.wants(COPY_FILL) {
        let (ms, floor_ms, bytes) = copy_fill(&dbs[0], &dbs[1], if quick { 20_000 } else { 100_000 })?;
        eprintln!("{COPY_FILL} {ms:>8.1} ms (image {bytes} bytes, written in {floor_ms:.1} ms)");
        let figure = json!({ "value": round(ms), "floor_ms": round(floor_ms), "ratio": round(ms / floor_ms), "image_bytes": bytes });
        report.figures.insert(COPY_FILL.into(), figure);
    }

    if durable && report.wants("cluster_catch_up_100k_ms") {
        let records: u64 = if quick { 20_000 } else { 100_000 };
        // Node 3 stops; 100k records are written on the others.
        nodes[2] = None;
        dbs[0].scope(|| -> mnesia::Result<()> {
            for chunk in (0..records).collect::<Vec<_>>().chunks(100) {
                User::batch_write(chunk.iter().map(|i| user(100_000 + i)))?;
            }
            Ok(())
        })?;
        let target = dbs[0].applied_index();
        let fresh = database(3)?;
        let t = Instant::now();
        let back = Node::start(&fresh, options(3, logs).listen(addrs[2]))?;
        wait_for(&fresh, target, Duration::from_secs(120))?;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        let held = fresh.scope(User::count)?;
        eprintln!("cluster_catch_up_100k_ms {ms:>8.1} ms ({records} records, {held} held)");
        report.figures.insert(
            "cluster_catch_up_100k_ms".into(),
            json!({ "value": round(ms), "records": records, "reference_mnesia_ms": [380, 750] }),
        );
        nodes[2] = Some(back);
    }

    if durable && report.wants("cluster_snapshot_100k_ms") {
        // What a snapshot costs the node that takes it (applying waits meanwhile) and the
        // node that loads it, on a copy holding at least 100k records; the floor: the same
        // records written as a backup file (the same copy, to a file, synced).
        let records: u64 = if quick { 20_000 } else { 100_000 };
        dbs[0].scope(|| -> mnesia::Result<()> {
            let held = User::count()? as u64;
            for chunk in (held..records).collect::<Vec<_>>().chunks(100) {
                User::batch_write(chunk.iter().map(|i| user(300_000 + i)))?;
            }
            Ok(())
        })?;
        let mut bytes = Vec::new();
        let t = Instant::now();
        let taken = dbs[0].write_ordered_snapshot(&mut bytes)?;
        let write_ms = t.elapsed().as_secs_f64() * 1000.0;
        let copy = database(2)?;
        let t = Instant::now();
        copy.load_ordered_snapshot(&bytes[..])?;
        let load_ms = t.elapsed().as_secs_f64() * 1000.0;
        let file = dir.path().join("floor.bak");
        let t = Instant::now();
        dbs[0].backup(&file)?;
        let backup_ms = t.elapsed().as_secs_f64() * 1000.0;
        eprintln!(
            "cluster_snapshot_100k_ms write {write_ms:>8.1} ms, load {load_ms:>8.1} ms ({} records, {} bytes); backup file {backup_ms:>8.1} ms",
            taken.records,
            bytes.len()
        );
        report.figures.insert(
            "cluster_snapshot_100k_ms".into(),
            json!({
                "value": round(write_ms),
                "load_ms": round(load_ms),
                "floor_backup_file_ms": round(backup_ms),
                "ratio": round(write_ms / backup_ms),
                "records": taken.records,
                "bytes": bytes.len(),
            }),
        );
    }
    if durable && report.wants("cluster_snapshot_peak_mb") {
        report.figures.insert("cluster_snapshot_peak_mb".into(), snapshot_peak(quick, dir.path())?);
    }
    drop(nodes);
    Ok(())
}

/// Nanoseconds per single-record transaction to a `local_content` table of the cluster
/// node `node` (the users' fields, as `Session`s without a deadline), and (the floor) to
/// the same table on a database alone: the best of five alternated rounds of `n` each.
fn local_writes(node: &Database, n: u64) -> mnesia::Result<(f64, f64)> {
    let alone = Database::in_memory()?;
    for db in [node, &alone] {
        db.create_table::<Session>(TableOptions::new().local_content())?;
    }
    let round = |db: &Database| {
        db.scope(|| {
            let t = Instant::now();
            for i in 0..n {
                black_box(Session::write(session(i % 1000)).ok());
            }
            t.elapsed().as_nanos() as f64 / n as f64
        })
    };
    let (mut ours, mut floor) = (f64::MAX, f64::MAX);
    for _ in 0..5 {
        ours = ours.min(round(node));
        floor = floor.min(round(&alone));
    }
    Ok((ours, floor))
}

const FORWARDED: &str = "cluster_forwarded_read";
const COPY_FILL: &str = "cluster_copy_fill_100k_ms";

/// A table of `cluster_copy_fill_100k_ms`.
#[derive(Table, Clone, Debug, Serialize, Deserialize)]
struct Copied {
    #[key]
    id: u64,
    note: String,
}

/// `cluster_copy_fill_100k_ms`: milliseconds from `add_table_copy` on node `there` of a
/// table of `records` records held by node `here` alone until `there` holds them, the
/// floor (milliseconds to write the table's image on `here`), and the image's bytes.
fn copy_fill(here: &Database, there: &Database, records: u64) -> mnesia::Result<(f64, f64, usize)> {
    here.create_table::<Copied>(TableOptions::new().ram_copies([here.node()]))?;
    here.scope(|| -> mnesia::Result<()> {
        for chunk in (0..records).collect::<Vec<_>>().chunks(1000) {
            Copied::batch_write(chunk.iter().map(|&id| Copied { id, note: format!("{id:0>100}") }))?;
        }
        Ok(())
    })?;
    let mut image = Vec::new();
    let t = Instant::now();
    here.write_table_image("copied", &mut image)?;
    let floor_ms = t.elapsed().as_secs_f64() * 1000.0;
    let t = Instant::now();
    here.add_table_copy::<Copied>(&there.node(), StorageType::RamCopies)?;
    there.wait_for_tables(&["copied"], Duration::from_secs(120))?;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    let held = there.table_info::<Copied>()?.size as u64;
    if held != records {
        return Err(mnesia::Error::Invalid(format!("the copy holds {held} records, not {records}")));
    }
    Ok((ms, floor_ms, image.len()))
}
const FORWARDED_8: &str = "cluster_forwarded_read_8";

/// Forwarded `read`s per second on node `here` (of the table [`forwarded_reads`] made)
/// of 8 readers at once, and (the floor) of one: the best of three alternated rounds of `n`
/// reads each.
fn forwarded_reads_at_once(here: &Database, n: u64) -> (f64, f64) {
    let rate = |readers: u64| {
        let t = Instant::now();
        std::thread::scope(|s| {
            for r in 0..readers {
                let db = here.clone();
                s.spawn(move || {
                    db.scope(|| {
                        for i in 0..n / readers {
                            black_box(Ticket::read(&((r * 7919 + i) % 1000 + 1)).ok());
                        }
                    })
                });
            }
        });
        (n / readers * readers) as f64 / t.elapsed().as_secs_f64()
    };
    let (mut eight, mut one) = (0.0f64, 0.0f64);
    for _ in 0..3 {
        one = one.max(rate(1));
        eight = eight.max(rate(8));
    }
    (eight, one)
}

/// Nanoseconds per `read` on node `here` of a table whose copy is on node `there` alone
/// (each answered there), and (the floor) per the same read on `there`: the best of five
/// alternated rounds of `n` each.
fn forwarded_reads(here: &Database, there: &Database, n: u64) -> mnesia::Result<(f64, f64)> {
    here.create_table::<Ticket>(TableOptions::new().ram_copies([there.node()]))?;
    there.wait_for_tables(&["ticket"], Duration::from_secs(30))?;
    there.scope(|| Ticket::batch_write((1..=1000).map(|id| Ticket { id, note: format!("ticket {id}") })))?;
    let round = |db: &Database| {
        db.scope(|| {
            let t = Instant::now();
            for i in 0..n {
                black_box(Ticket::read(&(i % 1000 + 1)).ok());
            }
            t.elapsed().as_nanos() as f64 / n as f64
        })
    };
    // (Each record there, once the write above has reached `here` too.)
    here.wait_for_tables(&["ticket"], Duration::from_secs(30))?;
    let (mut ours, mut floor) = (f64::MAX, f64::MAX);
    for _ in 0..5 {
        ours = ours.min(round(here));
        floor = floor.min(round(there));
    }
    Ok((ours, floor))
}

/// `cluster_snapshot_peak_mb`: the most heap a node of one holding 100k records takes
/// above what it held while it builds its Raft snapshot and writes it to its directory,
/// against the floor of the snapshot's own size (a snapshot held whole in memory takes
/// that at least).
fn snapshot_peak(quick: bool, dir: &std::path::Path) -> mnesia::Result<serde_json::Value> {
    let records: u64 = if quick { 20_000 } else { 100_000 };
    let db = database(1)?;
    // A snapshot every 200 entries: none while the records are loaded (in 1,000 per
    // commit, one entry each), the first once the writes below cross it.
    let node = Node::start(&db, options(9, Some(dir)).snapshots(200, 50))?;
    node.initialize([(9, node.local_addr())])?;
    node.wait_for_leader(Duration::from_secs(10))?;
    db.scope(|| -> mnesia::Result<()> {
        for chunk in (0..records).collect::<Vec<_>>().chunks(1000) {
            User::batch_write(chunk.iter().map(|i| user(*i)))?;
        }
        Ok(())
    })?;
    if node.status().snapshot.is_some() {
        return Err(mnesia::Error::Invalid("a snapshot was taken before the measure".into()));
    }
    let mut size = Vec::new();
    db.write_ordered_snapshot(&mut size)?;
    let (taken, peak) = crate::alloc::peak(|| {
        db.scope(|| -> mnesia::Result<bool> {
            for i in 0..400 {
                User::write(user(i))?;
                if node.status().snapshot.is_some() {
                    return Ok(true);
                }
            }
            Ok(false)
        })
    });
    if !taken? {
        return Err(mnesia::Error::Invalid("no snapshot was taken within 400 entries".into()));
    }
    let mb = |b: f64| b / (1024.0 * 1024.0);
    let (peak, floor) = (mb(peak as f64), mb(size.len() as f64));
    eprintln!("cluster_snapshot_peak_mb {peak:>8.1} MB above the heap before; the snapshot is {floor:.1} MB");
    Ok(
        json!({ "value": round(peak), "floor": round(floor), "ratio": round(peak / floor), "records": records }),
    )
}
