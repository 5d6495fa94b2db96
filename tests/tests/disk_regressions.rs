//! Regression tests for disc storage bugs found in review: each states a behaviour the
//! README promises (the comment above each test tells the scenario that once broke it).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use mnesia::prelude::*;
use mnesia::{Durability, Error};

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Big {
    #[key]
    id: u32,
    pad: String,
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Small {
    #[key]
    id: u32,
    name: String,
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Chain {
    #[key]
    id: u32,
    pad: String,
}

const BIG: u32 = 200_000;

fn disc<T: Table>() -> TableOptions<T> {
    TableOptions::new().disc_copies(["local@localhost"])
}

fn open(dir: &Path) -> mnesia::Result<Database> {
    Database::open(Config::default().dir(dir))
}

use tests::crash_image;

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("ls")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    v.sort();
    v
}

fn big_rows() -> impl Iterator<Item = Big> {
    (0..BIG).map(|id| Big { id, pad: format!("{id:0>40}") })
}

/// A disc table `Big` large enough that snapshotting it takes a while.
fn with_big(db: &Database) {
    db.scope(|| Big::create_table(disc()).and_then(|_| Big::batch_write(big_rows()))).expect("big table");
}

fn count_small(dir: &Path) -> usize {
    let db = open(dir).expect("open crash image");
    let n = db.scope(Small::count).expect("count");
    db.close().expect("close");
    n
}

// 1. A table recovered from the directory and claimed by its type (first use) while a
// checkpoint runs is left out of that checkpoint: `Database::checkpoint` loads the table map
// before the checkpoint starts, `Disk::checkpoint` finds the table neither in that stale map
// nor in `pending` any more, skips it, writes a checkpoint.json without it, deletes its
// snapshot ("snapshots of dropped tables") and the log segments. A crash after that
// checkpoint recovers the table empty.
#[test]
fn claiming_a_recovered_table_during_a_checkpoint_loses_it() {
    let dir = tests::schema_dir();
    let db = open(dir.path()).expect("open");
    with_big(&db);
    db.scope(|| {
        Small::create_table(disc())
            .and_then(|_| Small::batch_write((0..10).map(|id| Small { id, name: "s".into() })))
    })
    .expect("small");
    db.close().expect("close");
    drop(db);

    let db = open(dir.path()).expect("reopen");
    db.scope(Big::count).expect("claim Big");
    let other = db.clone();
    let started = Instant::now();
    let cp = std::thread::spawn(move || other.checkpoint());
    std::thread::sleep(Duration::from_millis(15));
    // First use of Small: claims the recovered table while the checkpoint snapshots Big.
    assert_eq!(db.scope(Small::count).expect("claim Small"), 10);
    cp.join().expect("join").expect("checkpoint");
    eprintln!("checkpoint took {:?}", started.elapsed());
    let image = crash_image(dir.path());
    assert_eq!(count_small(image.path()), 10, "Small's 10 committed records are lost after a crash");
}

// 2. The same stale map: a checkpoint that waits for another one (background checkpointer,
// or two callers) holds a map taken before it waited. A disc table created meanwhile, and
// its acknowledged (Immediate) commits, land in the segment this checkpoint then deletes,
// while the table itself is skipped (not in the stale map, not pending).
#[test]
fn commits_to_a_table_created_while_a_checkpoint_waits_are_lost() {
    let dir = tests::schema_dir();
    let db = open(dir.path()).expect("open");
    with_big(&db);
    let a = db.clone();
    let first = std::thread::spawn(move || a.checkpoint());
    std::thread::sleep(Duration::from_millis(10));
    let b = db.clone();
    let second = std::thread::spawn(move || b.checkpoint()); // loads the map, then waits
    std::thread::sleep(Duration::from_millis(10));
    db.scope(|| {
        Small::create_table(disc())
            .and_then(|_| Small::batch_write((0..10).map(|id| Small { id, name: "s".into() })))
    })
    .expect("acknowledged commits");
    first.join().expect("join").expect("checkpoint 1");
    second.join().expect("join").expect("checkpoint 2");
    let image = crash_image(dir.path());
    assert_eq!(count_small(image.path()), 10, "acknowledged commits to Small are lost after a crash");
}

// 3. Relaxed durability promises that what survives is a prefix of the commit order. A
// checkpoint's snapshot is taken shard by shard while writers go on, and relies on the log
// after the roll to fill the gaps — but under Relaxed that log is not yet written when the
// snapshot is made durable. A crash then recovers later commits without earlier ones.
#[test]
fn relaxed_checkpoint_recovers_a_prefix_of_the_commit_order() {
    let dir = tests::schema_dir();
    let relaxed = Durability::Relaxed { interval: Duration::from_secs(3600) };
    let db = Database::open(Config::default().dir(dir.path()).durability(relaxed)).expect("open");
    db.scope(|| {
        Chain::create_table(disc())
            .and_then(|_| Chain::batch_write((0..BIG).map(|id| Chain { id, pad: format!("{id:0>40}") })))
    })
    .expect("filler");
    db.checkpoint().expect("base checkpoint");
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU32::new(0));
    let writer = {
        let (db, stop, written) = (db.clone(), Arc::clone(&stop), Arc::clone(&written));
        std::thread::spawn(move || {
            db.scope(|| {
                let mut i = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    Chain::write(Chain { id: 1_000_000 + i, pad: String::new() }).expect("write");
                    i += 1;
                    written.store(i, Ordering::Relaxed);
                }
            })
        })
    };
    std::thread::sleep(Duration::from_millis(5));
    db.checkpoint().expect("checkpoint while writing");
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
    let image = crash_image(dir.path());
    let db2 = open(image.path()).expect("open crash image");
    let mut ids: Vec<u32> =
        db2.scope(Chain::all_keys).expect("keys").into_iter().filter(|id| *id >= 1_000_000).collect();
    ids.sort_unstable();
    let gap = ids.iter().enumerate().find(|(i, id)| **id != 1_000_000 + *i as u32);
    assert!(
        gap.is_none(),
        "recovered {} of {} sequential commits, not a prefix: commit #{} is missing but later ones survive (e.g. #{})",
        ids.len(),
        written.load(Ordering::Relaxed),
        gap.map_or(0, |(i, _)| i),
        ids.last().map_or(0, |l| l - 1_000_000),
    );
}

/// A directory whose log holds `n` single-record commits to `Small` (no checkpoint).
fn logged_dir(n: u32) -> tempfile::TempDir {
    let dir = tests::schema_dir();
    let db = open(dir.path()).expect("open");
    db.scope(|| -> mnesia::Result<()> {
        Small::create_table(disc())?;
        for id in 0..n {
            Small::write(Small { id, name: format!("item {id}") })?;
        }
        Ok(())
    })
    .expect("write");
    drop(db); // as a crash would (every commit is synced: Immediate)
    dir
}

/// Offsets of the frames of a log segment.
fn frames(bytes: &[u8]) -> Vec<usize> {
    let mut at = 8;
    let mut out = Vec::new();
    while at + 12 <= bytes.len() {
        out.push(at);
        at += 12 + u32::from_le_bytes(bytes[at..at + 4].try_into().expect("len")) as usize;
    }
    out
}

// 4. A flipped bit in the length field of a record in the middle of the last segment makes
// the frame "run past the end of the file", which the reader takes for a torn tail: every
// later (acknowledged) record is silently cut off — and the file truncated for good —
// instead of `Error::Corrupt`.
#[test]
fn a_flipped_length_bit_mid_log_is_corruption_not_a_torn_tail() {
    let dir = logged_dir(5);
    let seg = segments(dir.path()).pop().expect("segment");
    let mut bytes = std::fs::read(&seg).expect("read");
    let offs = frames(&bytes);
    assert!(offs.len() >= 5, "expected the table's records in {}", seg.display());
    let second = offs[offs.len() - 4];
    bytes[second + 3] ^= 0x10; // length += 256 MiB
    std::fs::write(&seg, &bytes).expect("write");
    let len_before = bytes.len();
    match open(dir.path()) {
        Err(Error::Corrupt { offset, .. }) => assert_eq!(offset, second as u64),
        Err(e) => panic!("unexpected error {e:?}"),
        Ok(db) => {
            let n = db.scope(Small::count).expect("count");
            drop(db);
            let len_after = std::fs::metadata(&seg).expect("stat").len();
            panic!(
                "open succeeded serving {n} of 5 acknowledged records; the segment was cut from {len_before} to {len_after} bytes"
            );
        }
    }
}

// 5. A zero-filled tail (a crash after the file size but before the data reached the disc,
// or preallocated space) parses as valid frames — length 0 and crc32("") == 0 — so it is not
// recognised as a torn tail: the commit decoder then rejects the empty record and the open
// fails with `Corrupt` instead of cutting the unacknowledged tail off.
#[test]
fn a_zero_filled_tail_is_cut_off_like_a_torn_tail() {
    let dir = logged_dir(3);
    let seg = segments(dir.path()).pop().expect("segment");
    let mut bytes = std::fs::read(&seg).expect("read");
    bytes.extend_from_slice(&[0u8; 4096]);
    std::fs::write(&seg, &bytes).expect("write");
    let db = match open(dir.path()) {
        Ok(db) => db,
        Err(e) => panic!("a zero-filled tail should be cut off like a torn tail, got {e:?}"),
    };
    assert_eq!(db.scope(Small::count).expect("count"), 3);
}

// 6. A log segment missing in the middle of the log (lost file) is not noticed: recovery
// replays the segments around the hole and silently serves a state that never existed.
#[test]
fn a_missing_log_segment_is_detected() {
    let dir = tests::schema_dir();
    for round in 0..3u32 {
        let db = open(dir.path()).expect("open");
        db.scope(|| -> mnesia::Result<()> {
            if round == 0 {
                Small::create_table(disc())?;
            }
            Small::write(Small { id: round, name: "r".into() })?;
            Ok(())
        })
        .expect("write");
        drop(db); // no checkpoint: each run leaves its own segment
    }
    let segs = segments(dir.path());
    assert!(segs.len() >= 3, "{segs:?}");
    std::fs::remove_file(&segs[1]).expect("lose the middle segment");
    match open(dir.path()) {
        Err(_) => {}
        Ok(db) => {
            let keys = db.scope(Small::all_keys).expect("keys");
            panic!("open succeeded without segment {}: serves keys {keys:?}", segs[1].display());
        }
    }
}

// 7. `close()` releases the directory while a checkpoint of the same handle (background
// checkpointer, or another thread) that passed the `is_closed` check is still waiting for
// the checkpoint lock: it then rolls the log, rewrites snapshots and checkpoint.json and
// deletes segments in a directory another opener may already hold.
#[test]
fn nothing_touches_the_directory_after_close_returns() {
    let dir = tests::schema_dir();
    let db = open(dir.path()).expect("open");
    with_big(&db);
    let a = db.clone();
    let closing = std::thread::spawn(move || a.close());
    std::thread::sleep(Duration::from_millis(10));
    let b = db.clone();
    let late = std::thread::spawn(move || b.checkpoint());
    closing.join().expect("join").expect("close");
    let cp = dir.path().join("checkpoint.json");
    let before = std::fs::read(&cp).expect("checkpoint.json");
    // Released: another process may open it now.
    let db2 = open(dir.path()).expect("reopen after close");
    late.join().expect("join").expect("late checkpoint");
    let after = std::fs::read(&cp).expect("checkpoint.json");
    drop(db2);
    assert_eq!(
        String::from_utf8_lossy(&before),
        String::from_utf8_lossy(&after),
        "the closed handle rewrote checkpoint.json of a directory another opener holds"
    );
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Blob {
    #[key]
    id: u32,
    data: Vec<u8>,
}

// 8. The background checkpointer compares `checkpoint_after_bytes` with the size of the
// *current* log segment, but the log rolls to a new segment every 64 MiB: with the default
// threshold (64 MiB) the condition holds only for the instant between the write that crosses
// 64 MiB and the next commit's roll, and with any threshold above 64 MiB never. The log then
// grows without bound (and every open replays all of it, holding it in memory).
#[test]
fn the_background_checkpoint_runs_once_the_log_passes_the_threshold() {
    let dir = tests::schema_dir();
    let db = open(dir.path()).expect("open");
    db.scope(|| -> mnesia::Result<()> {
        Blob::create_table(disc())?;
        for id in 0..80u32 {
            Blob::write(Blob { id, data: vec![id as u8; 1 << 20] })?; // 80 MiB of commits
        }
        Ok(())
    })
    .expect("write");
    // The checkpointer polls every 200 ms; writing an 80 MiB snapshot takes a moment.
    let started = Instant::now();
    while !dir.path().join("checkpoint.json").exists() && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let logged: u64 = segments(dir.path()).iter().map(|s| std::fs::metadata(s).map_or(0, |m| m.len())).sum();
    let checkpointed = dir.path().join("checkpoint.json").exists();
    drop(db);
    assert!(
        checkpointed,
        "no background checkpoint although the log holds {} MiB (> the 64 MiB default) in {} segments",
        logged >> 20,
        segments(dir.path()).len()
    );
}

// 9. After a checkpoint the log is only the (empty) segment the checkpoint named. If that
// file is missing, the next open does not notice: it starts the log at segment 1 — below
// the checkpoint's segment — so its acknowledged commits are skipped by every later
// recovery (until a checkpoint happens to rescue them).
#[test]
fn commits_after_a_missing_checkpoint_segment_are_not_silently_dropped() {
    let dir = tests::schema_dir();
    let db = open(dir.path()).expect("open");
    db.scope(|| {
        Small::create_table(disc())
            .and_then(|_| Small::batch_write((0..3).map(|id| Small { id, name: "s".into() })))
    })
    .expect("write");
    db.checkpoint().expect("checkpoint"); // cp.segment = 2, segment 1 removed
    db.checkpoint().expect("checkpoint"); // cp.segment = 3, segment 2 removed
    db.close().expect("close"); // cp.segment = 4
    drop(db);
    for s in segments(dir.path()) {
        std::fs::remove_file(s).expect("lose the empty segment");
    }
    let db = match open(dir.path()) {
        Ok(db) => db,
        Err(_) => return, // refusing to open is acceptable
    };
    db.scope(|| Small::write(Small { id: 99, name: "acknowledged".into() })).expect("commit");
    drop(db); // crash
    let db = open(dir.path()).expect("reopen");
    let acked = db.scope(|| Small::read(&99)).expect("read");
    let segs: Vec<String> = segments(dir.path())
        .iter()
        .map(|s| s.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())
        .collect();
    let cp = std::fs::read_to_string(dir.path().join("checkpoint.json")).unwrap_or_default();
    assert!(acked.is_some(), "the acknowledged commit is lost; segments {segs:?}, checkpoint {cp}");
}

// 10. A log segment named with the largest u64 (a damaged or foreign file) makes the open
// compute `last + 1` and overflow: a panic in debug builds; in release the log restarts at
// segment 0, below the others, so its commits are skipped by the next recovery.
#[test]
fn a_segment_numbered_u64_max_does_not_panic_the_open() {
    let dir = logged_dir(1);
    std::fs::write(dir.path().join(format!("{}.wal", u64::MAX)), b"MNSWAL01").expect("write");
    let r = std::panic::catch_unwind(|| open(dir.path()).map(|db| db.close()));
    assert!(r.is_ok(), "Database::open panicked on a directory listing");
}

// 11. Same stale map, other outcome: a disc table dropped and created again (new schema id)
// while a checkpoint waits. The waiting checkpoint looks the *name* up in its stale map,
// finds the dropped store (its disk id is never reset) and writes the dropped records as the
// snapshot of the new table id; the new table's acknowledged commit, logged before that
// checkpoint's roll, is deleted with the old segments. After a crash the new table serves
// the dropped table's records and misses its own.
#[test]
fn a_table_recreated_while_a_checkpoint_waits_gets_the_dropped_records() {
    let dir = tests::schema_dir();
    let db = open(dir.path()).expect("open");
    with_big(&db);
    db.scope(|| {
        Small::create_table(disc())
            .and_then(|_| Small::batch_write((0..10).map(|id| Small { id, name: "old".into() })))
    })
    .expect("old small");
    let a = db.clone();
    let first = std::thread::spawn(move || a.checkpoint());
    std::thread::sleep(Duration::from_millis(10));
    let b = db.clone();
    let second = std::thread::spawn(move || b.checkpoint());
    std::thread::sleep(Duration::from_millis(10));
    db.scope(|| -> mnesia::Result<()> {
        Small::drop_table()?;
        Small::create_table(disc())?;
        Small::write(Small { id: 100, name: "new".into() })?;
        Ok(())
    })
    .expect("drop and recreate");
    first.join().expect("join").expect("checkpoint 1");
    second.join().expect("join").expect("checkpoint 2");
    let image = crash_image(dir.path());
    let db2 = open(image.path()).expect("open crash image");
    let mut keys = db2.scope(Small::all_keys).expect("keys");
    keys.sort_unstable();
    assert_eq!(keys, vec![100], "the re-created table after a crash");
}

fn wal_segments(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .expect("ls")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".wal"))
        .count()
}

// 12. A program that stopped (or crashed) before writing `checkpoint_after_bytes` of log in
//     one run never got a checkpoint: the size counted from each open, and the log replayed
//     at every open grew run after run. And every open started a new segment, so opens that
//     wrote nothing piled up empty segments.
#[test]
fn the_log_left_by_earlier_runs_counts_towards_the_next_checkpoint() {
    let dir = tests::schema_dir();
    let config = |threshold: u64| Config::default().dir(dir.path()).checkpoint_after_bytes(threshold);
    for run in 0..3u32 {
        let db = Database::open(config(u64::MAX)).expect("open");
        db.scope(|| -> mnesia::Result<()> {
            if !Small::exists()? {
                Small::create_table(disc())?;
            }
            Small::batch_write((0..20).map(|i| Small { id: run * 100 + i, name: "x".repeat(40) })).map(drop)
        })
        .expect("writes");
        // A crash: no closing checkpoint.
        drop(db);
    }
    let db = Database::open(config(u64::MAX)).expect("open");
    let log_bytes = |db: &Database| db.system_info().log.map_or(0, |l| l.bytes_since_checkpoint);
    let carried = log_bytes(&db);
    assert!(carried > 3 * 20 * 40, "the log of the earlier runs counts: {carried} bytes");
    drop(db);
    // Opens that write nothing leave no segment behind.
    let segments = wal_segments(dir.path());
    for _ in 0..3 {
        drop(Database::open(config(u64::MAX)).expect("open"));
    }
    assert_eq!(
        wal_segments(dir.path()),
        segments,
        "an open that writes nothing reuses the empty last segment"
    );
    // With a threshold below what the earlier runs left, the next open checkpoints soon.
    let db = Database::open(config(1000)).expect("open");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !dir.path().join("checkpoint.json").exists() {
        assert!(Instant::now() < deadline, "no checkpoint came of the carried log");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(log_bytes(&db) < carried);
    db.scope(|| assert_eq!(Small::count().expect("count"), 60));
}
