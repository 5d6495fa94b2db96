//! Schema changes are records of the commit log, in their place among the commits: the
//! schema file is written by checkpoints only, and recovery applies the schema changes
//! the log holds. A child process that changes the schema and writes, killed with SIGKILL
//! at random moments, leaves a directory that opens with every acknowledged change.

use std::time::Duration;

use mnesia::prelude::*;
use mnesia::{Schema, StorageType};

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Item {
    #[key]
    id: u32,
    color: String,
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(name = "item")]
struct ItemV2 {
    #[key]
    id: u32,
    color: String,
    size: u32,
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Gone {
    #[key]
    id: u32,
}

/// The step counter of the child, never dropped.
#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Progress {
    #[key]
    id: u32,
    step: u64,
}

fn disc<T: Table>() -> TableOptions<T> {
    TableOptions::new().disc_copies(["local@localhost"])
}

fn item(id: u32) -> Item {
    Item { id, color: format!("c{}", id % 3) }
}

/// The log's bytes that ten index changes on `Item` add, with two other tables beside it
/// (`others`) or alone.
fn log_bytes_of_ten_index_changes(others: bool) -> u64 {
    let dir = tests::schema_dir();
    let db = Database::open(Config::default().dir(dir.path()).checkpoint_after_bytes(1 << 40)).expect("open");
    db.scope(|| -> mnesia::Result<u64> {
        Item::create_table(disc())?;
        if others {
            Gone::create_table(disc())?;
            Progress::create_table(disc())?;
        }
        let logged = || db.system_info().log.map_or(0, |l| l.bytes_since_checkpoint);
        let before = logged();
        for _ in 0..5 {
            Item::add_index(Item::COLOR)?;
            Item::remove_index(Item::COLOR)?;
        }
        Ok(logged() - before)
    })
    .expect("changes")
}

#[test]
fn a_schema_change_logs_what_changed_not_every_table() {
    let alone = log_bytes_of_ten_index_changes(false);
    let beside_two = log_bytes_of_ten_index_changes(true);
    // Each change logs the one definition it changed: the other tables add nothing (a
    // record of the whole schema would hold three definitions instead of one).
    assert!(alone > 0);
    assert!(beside_two < alone + alone / 4, "{beside_two} bytes beside two tables, {alone} alone");
}

#[test]
fn schema_changes_are_logged_and_recovered_without_a_checkpoint() {
    let dir = tests::schema_dir();
    let schema_file = dir.path().join("schema.json");
    let written = std::fs::read(&schema_file).expect("schema file");
    let db = Database::open(Config::default().dir(dir.path())).expect("open");
    db.scope(|| -> mnesia::Result<()> {
        Item::create_table(disc())?;
        Gone::create_table(disc())?;
        for id in 0..4 {
            Item::write(item(id))?;
        }
        Gone::write(Gone { id: 1 })?;
        Item::add_index(Item::COLOR)?;
        Gone::drop_table()?;
        Item::change_table_copy_type(&db.node(), StorageType::DiscOnlyCopies)?;
        Item::write(item(4))?;
        Ok(())
    })
    .expect("changes");
    assert_eq!(
        std::fs::read(&schema_file).expect("schema file"),
        written,
        "schema changes go to the log, not to the schema file"
    );
    // Tools read the schema the log leaves, the database running.
    assert_eq!(Schema::info(dir.path()).expect("info").tables, vec!["item".to_owned()]);

    // A crash now: the schema file names no table; the log has every change.
    let image = tests::crash_image(dir.path());
    let report = Schema::verify(image.path()).expect("verify");
    assert!(report.damage.is_empty(), "{:?}", report.damage);
    assert!(
        report.checked.iter().any(|c| c.holds.contains("schema changes")),
        "verify counts the log's schema changes: {:?}",
        report.checked
    );
    let info = Schema::inspect(image.path()).expect("inspect");
    assert!(info.log.schema_changes >= 5, "{:?}", info.log);
    assert_eq!(info.tables.len(), 1);
    let recovered = Database::open(Config::default().dir(image.path())).expect("open the crash image");
    recovered
        .scope(|| -> mnesia::Result<()> {
            assert!(!Gone::exists()?, "the drop is recovered");
            let info = Item::table_info()?;
            assert_eq!(info.storage_type, StorageType::DiscOnlyCopies, "the storage move is recovered");
            assert_eq!(info.indexes.len(), 1, "the index is recovered");
            assert_eq!(Item::count()?, 5);
            assert_eq!(Item::select(Item::COLOR.eq("c1"))?.len(), 2);
            // A transform (of a table in memory and on disc), then a crash again.
            Item::change_table_copy_type(&recovered.node(), StorageType::DiscCopies)?;
            ItemV2::transform(|old: Item| Ok(ItemV2 { id: old.id, color: old.color, size: old.id * 10 }))?;
            Ok(())
        })
        .expect("recovered");
    let again = tests::crash_image(image.path());
    drop(recovered);
    let reopened = Database::open(Config::default().dir(again.path())).expect("open the second image");
    reopened
        .scope(|| -> mnesia::Result<()> {
            assert_eq!(ItemV2::read(&3)?.map(|i| i.size), Some(30), "the transform is recovered");
            assert_eq!(ItemV2::count()?, 5);
            Ok(())
        })
        .expect("transformed");
    // No table is kept on disc only any more: the disc-only file went at the open.
    assert!(!again.path().join("disc_only.redb").exists());
    drop(reopened);

    // The closing checkpoint writes the schema file.
    db.close().expect("close");
    let after = String::from_utf8(std::fs::read(&schema_file).expect("schema file")).expect("utf-8");
    assert!(after.contains("\"item\"") && !after.contains("\"gone\""), "{after}");
}

/// The schema the child drives its table through, one change per step, in a cycle; every
/// state is one the parent can recognise from the table's storage and indexes.
fn next_change(step: u64) -> &'static str {
    ["create", "index", "disc_only", "unindex", "disc", "drop"][(step % 6) as usize]
}

const CHILD_ENV: &str = "MNESIA_SCHEMA_CRASH_DIR";

/// The child: runs only when the parent starts this test binary with the directory set.
/// Step `n` makes change `next_change(n)`, then writes item `n` with the step counter in
/// one transaction and prints `ACK n`.
#[test]
fn schema_crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let db = Database::open(Config::default().dir(&dir)).expect("child open");
    db.scope(|| -> mnesia::Result<()> {
        if !Progress::exists()? {
            Progress::create_table(disc())?;
        }
        let start = Progress::read(&0)?.map_or(0, |p| p.step + 1);
        for n in start.. {
            // The change of step `n`, unless a kill after it and before the step's commit
            // left it made already.
            let exists = Item::exists()?;
            match next_change(n) {
                "create" if !exists => Item::create_table(disc())?,
                "drop" if exists => Item::drop_table()?,
                "index" if exists && Item::table_info()?.indexes.is_empty() => Item::add_index(Item::COLOR)?,
                "unindex" if exists && !Item::table_info()?.indexes.is_empty() => {
                    Item::remove_index(Item::COLOR)?
                }
                "disc_only" if exists && Item::storage_type()? != StorageType::DiscOnlyCopies => {
                    Item::change_table_copy_type(&db.node(), StorageType::DiscOnlyCopies)?;
                }
                "disc" if exists && Item::storage_type()? != StorageType::DiscCopies => {
                    Item::change_table_copy_type(&db.node(), StorageType::DiscCopies)?;
                }
                _ => {}
            }
            mnesia::transaction(|| {
                if Item::exists()? {
                    Item::write(item(n as u32))?;
                }
                Progress::write(Progress { id: 0, step: n })
            })?;
            println!("ACK {n}");
        }
        Ok(())
    })
    .expect("child");
}

/// What the table looks like after the change of step `n`: (exists, storage, indexed).
fn state_after(n: u64) -> (bool, StorageType, bool) {
    match next_change(n) {
        "create" => (true, StorageType::DiscCopies, false),
        "index" => (true, StorageType::DiscCopies, true),
        "disc_only" => (true, StorageType::DiscOnlyCopies, true),
        "unindex" => (true, StorageType::DiscOnlyCopies, false),
        "disc" => (true, StorageType::DiscCopies, false),
        _ => (false, StorageType::DiscCopies, false),
    }
}

#[test]
fn every_acknowledged_schema_change_survives_sigkill() {
    let dir = tests::schema_dir();
    let mut last_ack: Option<u64> = None;
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for run in 0..30 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let lifetime = Duration::from_millis(10 + seed % 120);
        let child = tests::Child::spawn("schema_crash_child", &[(CHILD_ENV, dir.path().as_os_str())]);
        // (What followed `ACK `: the step numbers.)
        if let Some(n) = child.kill_after(lifetime).0.iter().filter_map(|n| n.parse::<u64>().ok()).max() {
            last_ack = Some(n);
        }
        let db = Database::open(Config::default().dir(dir.path())).expect("reopen after SIGKILL");
        db.scope(|| -> mnesia::Result<()> {
            let step = if Progress::exists()? { Progress::read(&0)?.map(|p| p.step) } else { None };
            assert!(step >= last_ack, "run {run}: acknowledged step {last_ack:?} lost (at {step:?})");
            // The table is as the change of the last step committed left it, or as the
            // next change (made before its step's commit) did.
            let Some(done) = step else { return Ok(()) };
            let seen = if Item::exists()? {
                let info = Item::table_info()?;
                (true, info.storage_type, !info.indexes.is_empty())
            } else {
                (false, StorageType::DiscCopies, false)
            };
            assert!(
                seen == state_after(done) || seen == state_after(done + 1),
                "run {run}: after step {done} the table is {seen:?}"
            );
            if seen.0 {
                // Every item written since the table was last created is there (none if
                // the creation of the next step is what was recovered), and the index (if
                // any) agrees with the records.
                let created = if state_after(done).0 {
                    (0..=done).rev().find(|n| next_change(*n) == "create").unwrap_or(0)
                } else {
                    done + 1
                };
                let items = Item::list()?;
                for n in (created..=done).filter(|n| state_after(*n).0) {
                    assert!(items.iter().any(|i| u64::from(i.id) == n), "run {run}: item {n} lost");
                }
                assert!(
                    items.iter().all(|i| u64::from(i.id) >= created),
                    "run {run}: an item of a dropped table"
                );
                if seen.2 {
                    for c in ["c0", "c1", "c2"] {
                        let by_index = Item::select(Item::COLOR.eq(c))?.len();
                        assert_eq!(
                            by_index,
                            items.iter().filter(|i| i.color == c).count(),
                            "run {run}: index of {c}"
                        );
                    }
                }
            }
            Ok(())
        })
        .expect("check");
    }
    assert!(last_ack.is_some_and(|n| n >= 6), "the child got through a whole cycle of changes: {last_ack:?}");
}
