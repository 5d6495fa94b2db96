//! Storage faults: a full disc or a failing device costs an error, never a reopen and never
//! an acknowledged commit. Faults are injected into the file layer with `mnesia::faults`
//! (every file operation of a directory goes through it); one test also fills a real,
//! small tmpfs when the machine allows mounting one.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use mnesia::faults::{self, Fault};
use mnesia::prelude::*;
use mnesia::{Durability, Error, SystemEvent};

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Note {
    #[key]
    id: u32,
    text: String,
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Page {
    #[key]
    id: u32,
    text: String,
}

fn open(dir: &Path, durability: Durability) -> mnesia::Result<Database> {
    Database::open(Config::default().dir(dir).durability(durability))
}

fn note(id: u32) -> Note {
    Note { id, text: format!("note {id}") }
}

fn page(id: u32) -> Page {
    Page { id, text: format!("page {id}") }
}

/// A fresh directory with the `Note` table on disc and the `Page` table on disc only,
/// closed.
fn prepared() -> tempfile::TempDir {
    let dir = tests::schema_dir();
    let db = open(dir.path(), Durability::Immediate).expect("open");
    db.create_table::<Note>(TableOptions::new().disc_copies([db.node()])).expect("create");
    db.create_table::<Page>(TableOptions::new().disc_only_copies([db.node()])).expect("create");
    db.close().expect("close");
    dir
}

/// Temporary files left in `dir` (by a failed atomic write, backup or export).
fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("ls")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp") || n.ends_with(".partial"))
        .collect()
}

/// The notes stored in `dir`, read after a reopen.
fn stored_notes(dir: &Path) -> BTreeMap<u32, Note> {
    let db = open(dir, Durability::Immediate).expect("reopen once the fault is gone");
    let notes = db.scope(Note::list).expect("read");
    db.close().expect("close");
    notes.into_iter().map(|n| (n.id, n)).collect()
}

/// The notes and the pages stored in `dir`, read after a reopen.
fn stored(dir: &Path) -> (BTreeMap<u32, Note>, BTreeMap<u32, Page>) {
    let db = open(dir, Durability::Immediate).expect("reopen once the fault is gone");
    let (notes, pages) = db.scope(|| Ok::<_, mnesia::Error>((Note::list()?, Page::list()?))).expect("read");
    db.close().expect("close");
    (notes.into_iter().map(|n| (n.id, n)).collect(), pages.into_iter().map(|p| (p.id, p)).collect())
}

/// Waits (boundedly) for a system event that `want` accepts.
fn wait_for(events: &mnesia::SystemSubscription, want: impl Fn(&SystemEvent) -> bool) -> SystemEvent {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some(e) = events.recv_timeout(Duration::from_millis(100))
            && want(&e)
        {
            return e;
        }
    }
    panic!("the expected system event never came");
}

#[test]
fn under_immediate_durability_a_full_disc_fails_each_commit_until_space_returns() {
    let dir = prepared();
    let db = open(dir.path(), Durability::Immediate).expect("open");
    let events = db.subscribe_system();
    db.scope(|| -> mnesia::Result<()> {
        for id in 1..=3 {
            Note::write(note(id))?;
        }
        {
            let full = faults::inject(dir.path(), Fault::NoSpace, 0, None);
            for id in 4..=6 {
                let err = Note::write(note(id)).expect_err("the disc is full");
                assert!(matches!(err, Error::Io { .. }), "{err:?}");
                assert_eq!(err.io_kind(), Some(std::io::ErrorKind::StorageFull), "{err}");
            }
            // Reads go on; nothing refused is visible.
            assert_eq!(Note::read(&1)?, Some(note(1)));
            assert_eq!(Note::read(&4)?, None);
            assert!(db.checkpoint().is_err());
            assert!(db.close().is_err(), "close cannot sync a full disc");
            assert!(full.fired() > 0);
            assert!(leftovers(dir.path()).is_empty(), "{:?}", leftovers(dir.path()));
        }
        // Space is back: commits, a checkpoint and close succeed without a reopen.
        Note::write(note(7))?;
        db.checkpoint()?;
        Note::write(note(8))?;
        Ok(())
    })
    .expect("service goes on");
    assert!(matches!(
        wait_for(&events, |e| matches!(e, SystemEvent::LogFailed { .. })),
        SystemEvent::LogFailed { kind: std::io::ErrorKind::StorageFull, .. }
    ));
    wait_for(&events, |e| *e == SystemEvent::LogRecovered);
    db.close().expect("close");
    let ids: Vec<u32> = stored_notes(dir.path()).into_keys().collect();
    assert_eq!(ids, [1, 2, 3, 7, 8]);
}

#[test]
fn under_relaxed_durability_a_failed_background_sync_is_told_and_the_held_commits_written_later() {
    for durability in [Durability::Relaxed { interval: Duration::from_millis(10) }, Durability::None] {
        let dir = prepared();
        let db = open(dir.path(), durability).expect("open");
        let events = db.subscribe_system();
        db.scope(|| -> mnesia::Result<()> {
            for id in 1..=3 {
                Note::write(note(id))?;
            }
            {
                let _full = faults::inject(dir.path(), Fault::NoSpace, 0, None);
                // Acknowledged at once; the background write fails and is told.
                Note::write(note(4))?;
                wait_for(&events, |e| matches!(e, SystemEvent::LogFailed { .. }));
                // The next commit learns of it: refused, as the log cannot be written.
                let err = Note::write(note(5)).expect_err("the log is unavailable");
                assert!(matches!(err, Error::LogUnavailable { .. }), "{err:?}");
                assert_eq!(err.io_kind(), Some(std::io::ErrorKind::StorageFull));
                assert_eq!(Note::read(&5)?, None);
            }
            // Space is back: the held commit 4 is written with the next ones.
            Note::write(note(6))?;
            wait_for(&events, |e| *e == SystemEvent::LogRecovered);
            Ok(())
        })
        .expect("service goes on");
        // Killed now (no close): what the log holds is what a crash keeps.
        let image = tests::crash_image(dir.path());
        drop(db);
        let ids: Vec<u32> = stored_notes(image.path()).into_keys().collect();
        // The held commit 4 was synced when the log recovered; 6 may still be in the
        // interval a crash loses.
        assert!(ids == [1, 2, 3, 4] || ids == [1, 2, 3, 4, 6], "{durability:?}: {ids:?}");
        let ids: Vec<u32> = stored_notes(dir.path()).into_keys().collect();
        assert_eq!(ids, [1, 2, 3, 4, 6], "{durability:?}, after the drop's sync");
    }
}

/// What one run of the workload under a fault did.
struct Run {
    /// Each note written, and whether the acknowledged commits leave it in the table.
    expected: BTreeMap<u32, bool>,
    /// Each page written, and whether its commit was acknowledged.
    pages: BTreeMap<u32, bool>,
    /// The database, if it opened and did not close.
    db: Option<Database>,
    /// What a crash just before the close would have left.
    image: Option<tempfile::TempDir>,
}

/// Opens the directory, commits, checkpoints, backs up, exports, commits again and closes, noting
/// which commits were acknowledged; any step may fail (none may panic).
fn workload(dir: &Path) -> Run {
    let (mut expected, mut pages) = (BTreeMap::new(), BTreeMap::new());
    let Ok(db) = open(dir, Durability::Immediate) else {
        return Run { expected, pages, db: None, image: None };
    };
    db.scope(|| {
        for id in 0..4 {
            expected.insert(id, Note::write(note(id)).is_ok());
            pages.insert(id, Page::write(page(id)).is_ok());
        }
        let _ = db.checkpoint();
        let _ = db.backup(dir.join("all.bak"));
        let _ = Note::export(dir.join("notes.json"));
        for id in 4..8 {
            expected.insert(id, Note::write(note(id)).is_ok());
        }
        if Note::delete(&0).is_ok() {
            expected.insert(0, false);
        }
    });
    let image = Some(tests::crash_image(dir));
    let open = db.close().is_err().then_some(db);
    Run { expected, pages, db: open, image }
}

#[test]
fn every_file_operation_failed_in_turn_loses_no_acknowledged_commit() {
    let mut faults_injected = 0;
    for fault in Fault::ALL {
        for skip in 0.. {
            assert!(skip < 400, "{fault:?}: the workload never ran out of file operations");
            let dir = prepared();
            let injected = faults::inject(dir.path(), fault, skip, Some(1));
            let run = workload(dir.path());
            let fired = injected.fired();
            drop(injected);
            if fired == 0 {
                // The workload ran without reaching the `skip`th operation: all covered.
                assert!(run.db.is_none(), "{fault:?} #{skip}: close failed with no fault");
                break;
            }
            faults_injected += 1;
            let at = format!("{fault:?} at operation #{skip}");
            if let Some(image) = &run.image {
                // A crash before the close keeps every acknowledged commit, and only those.
                let stored = stored_notes(image.path());
                let kept: Vec<u32> = stored.into_keys().collect();
                let acked: Vec<u32> = run.expected.iter().filter(|(_, e)| **e).map(|(id, _)| *id).collect();
                assert_eq!(kept, acked, "{at}: after a crash");
            }
            // Normal service once the fault is gone, without a reopen.
            if let Some(db) = run.db {
                db.scope(|| Note::write(note(100))).unwrap_or_else(|e| panic!("{at}: a commit after: {e}"));
                db.scope(|| Page::write(page(100)))
                    .unwrap_or_else(|e| panic!("{at}: a disc-only commit after: {e}"));
                db.checkpoint().unwrap_or_else(|e| panic!("{at}: a checkpoint after: {e}"));
                db.close().unwrap_or_else(|e| panic!("{at}: close after: {e}"));
            }
            assert!(leftovers(dir.path()).is_empty(), "{at}: {:?}", leftovers(dir.path()));
            let (stored, pages) = stored(dir.path());
            for (id, acked) in &run.pages {
                assert_eq!(pages.get(id) == Some(&page(*id)), *acked, "{at}: page {id}");
            }
            for (id, expected) in &run.expected {
                let present = stored.get(id) == Some(&note(*id));
                assert_eq!(present, *expected, "{at}: note {id}");
            }
            let after = usize::from(stored.contains_key(&100));
            assert_eq!(stored.len(), run.expected.values().filter(|e| **e).count() + after, "{at}");
        }
    }
    eprintln!("{faults_injected} faults injected");
    assert!(faults_injected > 20, "only {faults_injected} faults injected");
}

#[test]
fn a_failing_disc_only_file_stops_its_table_until_it_can_be_reopened() {
    let dir = prepared();
    let file = dir.path().join("disc_only.redb");
    let db = open(dir.path(), Durability::Immediate).expect("open");
    db.scope(|| -> mnesia::Result<()> {
        for id in 1..=3 {
            Page::write(page(id))?;
        }
        {
            let failing = faults::inject(&file, Fault::Eio, 0, None);
            // Logged, so acknowledged (redb may keep it in its cache for now).
            Page::write(page(4))?;
            // A checkpoint must write and sync the file: it fails, and the table stops.
            assert!(db.checkpoint().is_err(), "a checkpoint cannot sync the file");
            let err = Page::read(&1).expect_err("the table stopped");
            assert_eq!(err.io_kind(), Some(std::io::ErrorKind::Other), "{err}");
            assert!(Page::read(&4).is_err());
            assert!(Page::write(page(6)).is_err());
            // The other tables go on.
            Note::write(note(1))?;
            assert!(failing.fired() > 0);
        }
        // The file works again: the next operation reopens it and replays the log.
        assert_eq!(Page::read(&4)?, Some(page(4)));
        assert_eq!(Page::read(&1)?, Some(page(1)));
        Page::write(page(5))?;
        db.checkpoint()?;
        Ok(())
    })
    .expect("the table resumes without a reopen");
    db.close().expect("close");
    let (notes, pages) = stored(dir.path());
    assert_eq!(pages.into_keys().collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    assert_eq!(notes.into_keys().collect::<Vec<_>>(), [1]);
}

#[test]
fn under_immediate_durability_a_commit_is_invisible_until_its_log_sync_returns() {
    let dir = prepared();
    let db = open(dir.path(), Durability::Immediate).expect("open");
    // The table claimed by its type first (which writes the schema file).
    assert_eq!(db.scope(Note::count).expect("count"), 0);
    // The next sync, the commit's in the log, waits until `hold` is dropped.
    let hold = faults::inject(dir.path(), Fault::Hold, 0, Some(1));
    let writer = {
        let db = db.clone();
        std::thread::spawn(move || db.scope(|| Note::write(note(1)).map(drop)))
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while hold.fired() == 0 {
        assert!(Instant::now() < deadline, "the writer never reached its sync");
        std::thread::sleep(Duration::from_millis(1));
    }
    // Written to the log, not yet synced: no reader sees it.
    db.scope(|| -> mnesia::Result<()> {
        assert_eq!(Note::read(&1)?, None);
        assert_eq!(Note::dirty_read(&1)?, None);
        // (A scan would wait for the commit: it holds its shard's commit lock until synced.)
        Ok(())
    })
    .expect("read");
    assert!(!writer.is_finished());
    drop(hold);
    writer.join().expect("writer").expect("the commit");
    assert_eq!(db.scope(|| Note::read(&1)).expect("read"), Some(note(1)));
    db.close().expect("close");
}

#[test]
fn a_record_or_a_table_move_past_the_log_limit_is_refused_and_nothing_changes() {
    let dir = prepared();
    let db = open(dir.path(), Durability::Immediate).expect("open");
    db.scope(|| -> mnesia::Result<()> {
        Note::write(note(1))?;
        let err = Note::write(Note { id: 2, text: "x".repeat((1 << 30) + 1) }).expect_err("too large");
        assert!(matches!(err, Error::TooLarge { .. }) && err.to_string().contains("split it"), "{err}");
        assert_eq!(Note::read(&2)?, None);
        Note::write(note(3))?;
        Ok(())
    })
    .expect("service goes on");
    // A ram table of more than 1 GiB cannot move to disc_copies in one commit.
    db.drop_table::<Page>().expect("drop the disc-only table");
    db.create_table::<Page>(TableOptions::new()).expect("a ram table");
    db.scope(|| -> mnesia::Result<()> {
        for id in 0..2 {
            Page::write(Page { id, text: "y".repeat(600 << 20) })?;
        }
        Ok(())
    })
    .expect("fill");
    let err =
        db.change_table_copy_type::<Page>(mnesia::StorageType::DiscCopies).expect_err("too large to move");
    assert!(err.to_string().contains("moved to disc_copies"), "{err}");
    let info = db.table_info::<Page>().expect("info");
    assert_eq!((info.storage_type, info.size), (mnesia::StorageType::RamCopies, 2));
    db.close().expect("close");
    let ids: Vec<u32> = stored_notes(dir.path()).into_keys().collect();
    assert_eq!(ids, [1, 3]);
}

#[test]
fn a_deleted_checkpoint_file_is_named_not_taken_for_a_gap_in_the_log() {
    let dir = prepared();
    let db = open(dir.path(), Durability::Immediate).expect("open");
    db.scope(|| -> mnesia::Result<()> {
        Note::write(note(1))?;
        db.checkpoint()?;
        Note::write(note(2))?;
        Ok(())
    })
    .expect("write");
    drop(db);
    std::fs::remove_file(dir.path().join("checkpoint.json")).expect("delete");
    match Database::open(Config::default().dir(dir.path())) {
        Err(Error::Corrupt { file, reason, .. }) => {
            assert_eq!(file, dir.path().join("checkpoint.json"));
            assert!(reason.contains("missing"), "{reason}");
        }
        other => panic!("{:?}", other.map(drop)),
    }
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Session {
    #[key]
    id: u32,
    #[ttl]
    expires_at: Option<std::time::SystemTime>,
}

#[test]
fn a_close_that_fails_leaves_the_database_open_and_its_reaper_running() {
    let dir = tests::schema_dir();
    let config = Config::default().dir(dir.path()).cleanup_interval(Duration::from_millis(10));
    let db = Database::open(config).expect("open");
    db.create_table::<Session>(TableOptions::new().disc_copies([db.node()])).expect("create");
    {
        let _full = faults::inject(dir.path(), Fault::NoSpace, 0, None);
        assert!(db.close().is_err());
    }
    // Open still: a record that expires is removed by the reaper (its delete logged).
    let soon = std::time::SystemTime::now() + Duration::from_millis(50);
    db.scope(|| Session::write(Session { id: 1, expires_at: Some(soon) })).expect("write");
    let deadline = Instant::now() + Duration::from_secs(20);
    while db.table_info::<Session>().expect("info").size > 0 {
        assert!(Instant::now() < deadline, "the reaper never removed the expired record");
        std::thread::sleep(Duration::from_millis(10));
    }
    db.close().expect("close");
}

#[test]
fn a_checkpoint_whose_new_segment_fails_leaves_no_segment_behind() {
    let dir = prepared();
    let db = open(dir.path(), Durability::Immediate).expect("open");
    db.scope(|| Note::write(note(1))).expect("write");
    let wal_files = || {
        let mut v: Vec<String> = std::fs::read_dir(dir.path())
            .expect("ls")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".wal"))
            .collect();
        v.sort();
        v
    };
    let before = wal_files();
    {
        // The roll creates the next segment; its sync fails.
        let _failing = faults::inject(dir.path(), Fault::FailedSync, 0, Some(1));
        assert!(db.checkpoint().is_err());
    }
    assert_eq!(wal_files(), before, "the half-made segment is removed");
    // Service goes on; a crash now (a torn record at the end of the log) still opens.
    db.scope(|| Note::write(note(2))).expect("write after");
    let image = tests::crash_image(dir.path());
    let last = image.path().join(wal_files().last().expect("a segment"));
    let mut bytes = std::fs::read(&last).expect("read");
    bytes.extend_from_slice(&[7, 0, 0, 0, 1, 2]);
    std::fs::write(&last, bytes).expect("torn tail");
    let ids: Vec<u32> = stored_notes(image.path()).into_keys().collect();
    assert_eq!(ids, [1, 2]);
    db.checkpoint().expect("a checkpoint after");
    db.close().expect("close");
}

/// A checkpoint that fails after it started a new log segment (a snapshot cannot be
/// written) leaves the log counted from the last checkpoint that succeeded: the background
/// checkpointer tries again as soon as it can succeed, and `system_info` does not under-report.
#[test]
fn a_checkpoint_failing_after_its_roll_leaves_the_log_counted_from_the_last_one() {
    let dir = prepared();
    let db = open(dir.path(), Durability::Immediate).expect("open");
    let log_bytes = |db: &Database| db.system_info().log.map_or(0, |l| l.bytes_since_checkpoint);
    db.scope(|| Note::batch_write((1..=50).map(note)).map(drop)).expect("writes");
    let before = log_bytes(&db);
    assert!(before > 0);
    {
        // Note is the first table created: id 1; its snapshot is written beside as a .tmp.
        let full = faults::inject(&dir.path().join("table-1.tmp"), Fault::NoSpace, 0, None);
        assert!(db.checkpoint().is_err(), "the snapshot cannot be written");
        assert!(full.fired() > 0);
    }
    assert!(
        log_bytes(&db) >= before,
        "{} bytes counted after the failed checkpoint, {before} before",
        log_bytes(&db)
    );
    db.checkpoint().expect("space is back");
    assert!(log_bytes(&db) < before);
    db.close().expect("close");
}
