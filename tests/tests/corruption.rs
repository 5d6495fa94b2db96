//! Damaged files: a torn last log record is cut off; damage anywhere else is a typed error
//! naming the file and offset, and the files are left as they were.

use std::path::{Path, PathBuf};

use mnesia::Error;
use mnesia::prelude::*;

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Item {
    #[key]
    id: u32,
    name: String,
}

fn disc() -> TableOptions<Item> {
    TableOptions::new().disc_copies(["local@localhost"])
}

fn open(dir: &Path) -> mnesia::Result<Database> {
    Database::open(Config::default().dir(dir))
}

/// A directory whose log holds `n` single-record commits (no checkpoint).
fn logged_dir(n: u32) -> tempfile::TempDir {
    let dir = tests::schema_dir();
    let db = open(dir.path()).expect("open");
    db.scope(|| -> mnesia::Result<()> {
        Item::create_table(disc())?;
        for id in 0..n {
            Item::write(Item { id, name: format!("item {id}") })?;
        }
        Ok(())
    })
    .expect("write");
    // Leave without a checkpoint: everything is in the log.
    drop_without_close(db);
    dir
}

/// Lets the handle go without `close`, as a crash would (but releases the directory).
fn drop_without_close(db: Database) {
    drop(db);
}

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

/// The segment holding the records, and the offset where its last record starts.
fn last_record(dir: &Path) -> (PathBuf, usize) {
    for seg in segments(dir).into_iter().rev() {
        let bytes = std::fs::read(&seg).expect("read");
        let mut at = 8;
        let mut last = None;
        while at + 12 <= bytes.len() {
            let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("len")) as usize;
            last = Some(at);
            at += 12 + len;
        }
        if let Some(last) = last {
            return (seg, last);
        }
    }
    panic!("no record in the log");
}

fn count(dir: &Path) -> mnesia::Result<usize> {
    let db = open(dir)?;
    let n = db.scope(Item::count);
    db.close()?;
    n
}

#[test]
fn a_torn_last_record_is_cut_off_at_every_offset() {
    let dir = logged_dir(5);
    let (seg, last) = last_record(dir.path());
    let whole = std::fs::read(&seg).expect("read");
    for cut in last..whole.len() {
        let copy = tests::crash_image(dir.path());
        let torn = copy.path().join(seg.file_name().expect("name"));
        std::fs::write(&torn, &whole[..cut]).expect("truncate");
        assert_eq!(count(copy.path()).expect("recovers"), 4, "cut at {cut}");
        // Recovery is idempotent: a second open reads the same.
        assert_eq!(count(copy.path()).expect("recovers again"), 4, "cut at {cut}, second open");
    }
}

#[test]
fn a_flipped_byte_inside_the_log_is_reported_with_file_and_offset() {
    let dir = logged_dir(5);
    let (seg, last) = last_record(dir.path());
    let mut bytes = std::fs::read(&seg).expect("read");
    // Inside the first record's payload: records follow it, so this is not a torn tail.
    bytes[8 + 8 + 3] ^= 0x55;
    std::fs::write(&seg, &bytes).expect("write");
    let before = std::fs::read(&seg).expect("read");
    match open(dir.path()) {
        Err(Error::Corrupt { file, offset, .. }) => {
            assert_eq!(file, seg);
            assert_eq!(offset, 8);
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    assert_eq!(std::fs::read(&seg).expect("read"), before, "a failed open changes nothing");
    assert!(last > 8);
}

#[test]
fn a_flipped_byte_in_a_snapshot_is_reported() {
    let dir = tests::schema_dir();
    let db = open(dir.path()).expect("open");
    db.scope(|| {
        Item::create_table(disc())
            .and_then(|_| Item::batch_write((0..20).map(|id| Item { id, name: "x".into() })))
    })
    .expect("write");
    db.close().expect("close"); // writes the snapshot
    let snap = std::fs::read_dir(dir.path())
        .expect("ls")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "snap"))
        .expect("a snapshot");
    let mut bytes = std::fs::read(&snap).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&snap, &bytes).expect("write");
    match open(dir.path()) {
        Err(Error::Corrupt { file, .. }) => assert_eq!(file, snap),
        other => panic!("expected corruption, got {other:?}"),
    }
    // Truncated snapshot: also corruption (snapshots are renamed into place whole).
    std::fs::write(&snap, &bytes[..bytes.len() - 3]).expect("write");
    assert!(matches!(open(dir.path()), Err(Error::Corrupt { .. })));
}

#[test]
fn empty_and_foreign_files() {
    let dir = logged_dir(3);
    // An empty segment after the others (created, never written): harmless.
    let last = segments(dir.path()).len();
    let next = dir.path().join(format!("{:08}.wal", last + 1));
    std::fs::write(&next, b"").expect("write");
    assert_eq!(count(dir.path()).expect("recovers"), 3);
    // A gap in the numbering is a lost segment: refused, not replayed around.
    let gap = segments(dir.path()).into_iter().next().expect("segment");
    let moved = dir.path().join("moved.bak");
    std::fs::rename(&gap, &moved).expect("hide a segment");
    std::fs::write(&gap, b"").expect("placeholder");
    std::fs::remove_file(&gap).expect("remove");
    if segments(dir.path()).len() > 1 {
        assert!(matches!(open(dir.path()), Err(Error::Corrupt { .. })));
    }
    std::fs::rename(&moved, &gap).expect("put it back");
    // A file from a future format version is refused, not misread.
    let seg = segments(dir.path()).into_iter().next().expect("segment");
    let mut bytes = std::fs::read(&seg).expect("read");
    bytes[6] = b'9';
    std::fs::write(&seg, &bytes).expect("write");
    assert!(matches!(open(dir.path()), Err(Error::UnsupportedFormat { .. })));
    // A schema that is not one.
    let other = tempfile::tempdir().expect("tempdir");
    std::fs::write(other.path().join("schema.json"), b"{ not json").expect("write");
    assert!(matches!(open(other.path()), Err(Error::Corrupt { .. })));
}

/// The README's recipe after `Error::Corrupt`: copy the directory, truncate the damaged
/// segment at `offset` and open the copy: every commit before the damage is there, none
/// after it.
#[test]
fn the_documented_recipe_keeps_the_commits_before_the_damage() {
    let dir = logged_dir(20);
    let (seg, _) = last_record(dir.path());
    let mut bytes = std::fs::read(&seg).expect("read");
    // The middle of the log: records follow the damage, so it is not a torn tail.
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&seg, &bytes).expect("write");
    let offset = match open(dir.path()) {
        Err(Error::Corrupt { file, offset, .. }) => {
            assert_eq!(file, seg);
            offset
        }
        other => panic!("expected corruption, got {other:?}"),
    };
    let copy = tests::crash_image(dir.path());
    let copied = copy.path().join(seg.file_name().expect("name"));
    let f = std::fs::OpenOptions::new().write(true).open(&copied).expect("open copy");
    f.set_len(offset).expect("truncate");
    drop(f);
    let db = open(copy.path()).expect("the copy opens");
    let kept: Vec<u32> = db
        .scope(Item::list)
        .expect("list")
        .into_iter()
        .map(|i| i.id)
        .collect::<std::collections::BTreeSet<u32>>()
        .into_iter()
        .collect();
    // A prefix of the commit order, cut where the damage was.
    let n = u32::try_from(kept.len()).expect("count");
    assert!(n > 0 && n < 20, "{kept:?}");
    assert_eq!(kept, (0..n).collect::<Vec<_>>());
}

/// The last record of a segment before the last one damaged (nothing valid after it in
/// that segment): refused on open and by `verify`, which names it damaged (not cut short
/// by a crash: only the log's end can be) and does not also list the segment as sound.
#[test]
fn a_damaged_last_record_of_an_earlier_segment_is_damage_not_a_torn_tail() {
    let dir = logged_dir(3);
    // A second run writes to a segment of its own.
    let db = open(dir.path()).expect("open");
    db.scope(|| Item::write(Item { id: 9, name: "later".into() })).expect("write");
    drop_without_close(db);
    let all = segments(dir.path());
    assert!(all.len() >= 2, "{all:?}");
    let first = &all[0];
    let mut bytes = std::fs::read(first).expect("read");
    let at = bytes.len() - 3;
    bytes[at] ^= 0x40;
    std::fs::write(first, &bytes).expect("write");
    match open(dir.path()) {
        Err(Error::Corrupt { file, reason, .. }) => {
            assert_eq!(&file, first);
            assert!(reason.contains("damaged"), "{reason}");
        }
        other => panic!("expected Corrupt, got {:?}", other.map(|_| ())),
    }
    let report = mnesia::Schema::verify(dir.path()).expect("verify");
    assert!(
        report.damage.iter().any(|d| &d.file == first && d.reason.contains("damaged")),
        "{:?}",
        report.damage
    );
    assert!(!report.checked.iter().any(|c| &c.file == first), "listed as sound too: {:?}", report.checked);
}

/// A checkpointed directory whose checkpoint file and log are gone (the snapshots too, or
/// kept): refused, not opened empty; the tool's `verify` says so too. Lost, the segment the
/// checkpoint replays from is refused the same way.
#[test]
fn a_checkpoint_lost_with_the_log_is_refused_not_opened_empty() {
    let checkpointed = || {
        let dir = logged_dir(5);
        let db = open(dir.path()).expect("open");
        db.checkpoint().expect("checkpoint");
        db.close().expect("close");
        dir
    };
    let named = |r: mnesia::Result<Database>, file: &str| match r {
        Err(Error::Corrupt { file: f, .. }) => {
            assert!(f.to_string_lossy().ends_with(file), "{}", f.display())
        }
        Err(e) => panic!("{e}"),
        Ok(db) => panic!("opened, with {:?} items", db.scope(Item::count)),
    };
    for keep_snapshots in [false, true] {
        let dir = checkpointed();
        for e in std::fs::read_dir(dir.path()).expect("ls").flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".wal")
                || name == "checkpoint.json"
                || (!keep_snapshots && name.ends_with(".snap"))
            {
                std::fs::remove_file(e.path()).expect("remove");
            }
        }
        named(open(dir.path()), "checkpoint.json");
        let report = mnesia::Schema::verify(dir.path()).expect("verify");
        assert!(report.damage.iter().any(|d| d.file.ends_with("checkpoint.json")), "{:?}", report.damage);
    }
    let dir = checkpointed();
    for seg in segments(dir.path()) {
        std::fs::remove_file(seg).expect("remove");
    }
    named(open(dir.path()), ".wal");
    // A new directory, never checkpointed, opens (empty) without a log.
    let fresh = tests::schema_dir();
    open(fresh.path()).expect("a new directory opens").close().expect("close");
}
