//! Regression tests for disc_only_copies bugs found in review: each states a promise of the
//! README that a crash at a particular moment once broke.

use std::time::Duration;

use mnesia::Durability;
use mnesia::prelude::*;

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Small {
    #[key]
    id: u32,
    name: String,
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct OnDisc {
    #[key]
    id: u32,
    name: String,
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Other {
    #[key]
    id: u32,
}

fn only<T: Table>() -> TableOptions<T> {
    TableOptions::new().disc_only_copies(["local@localhost"])
}

fn disc<T: Table>() -> TableOptions<T> {
    TableOptions::new().disc_copies(["local@localhost"])
}

use tests::crash_image;

// Recovery computes the next commit sequence number from the checkpoint, the snapshots and
// the log, never from the versions stored in disc_only.redb. A table moved from ram_copies
// carries versions that were never logged; after a crash the counter restarts below them, a
// new acknowledged (Immediate) commit gets a smaller version, and on the next recovery the
// replay's "only newer" check skips it: the acknowledged write is lost.
#[test]
fn acknowledged_write_survives_after_ram_to_disc_only_move_and_two_crashes() {
    let dir = tests::schema_dir();
    let db = Database::open(Config::default().dir(dir.path())).expect("open");
    db.scope(|| -> mnesia::Result<()> {
        Small::create_table(TableOptions::new())?;
        for i in 0..20 {
            Small::write(Small { id: 1, name: format!("old{i}") })?;
        }
        Small::change_table_copy_type("local@localhost", StorageType::DiscOnlyCopies)?;
        Ok(())
    })
    .expect("first life");
    let crash1 = crash_image(dir.path());
    let db1 = Database::open(Config::default().dir(crash1.path())).expect("open after crash 1");
    db1.scope(|| -> mnesia::Result<()> {
        Small::write(Small { id: 1, name: "new".into() })?; // durable when it returns
        assert_eq!(Small::read(&1)?.map(|s| s.name), Some("new".into()));
        Ok(())
    })
    .expect("second life");
    let crash2 = crash_image(crash1.path());
    let db2 = Database::open(Config::default().dir(crash2.path())).expect("open after crash 2");
    let got = db2.scope(|| Small::read(&1)).expect("read");
    assert_eq!(got.map(|s| s.name), Some("new".into()), "an acknowledged write was lost");
    drop((db, db1, db2));
}

// Under Relaxed durability the README promises that what survives a crash is a prefix of
// the commit order. A disc_only install is a non-durable redb commit made before the commit's
// log record is even written; any later durable redb commit (here dropping another disc_only
// table; also a move to disc_only, or a checkpoint's redb sync which precedes its wal.sync)
// makes it durable. A crash then keeps half of a transaction.
#[test]
fn relaxed_crash_never_keeps_half_a_transaction() {
    let dir = tests::schema_dir();
    let relaxed = Durability::Relaxed { interval: Duration::from_secs(3600) };
    let db = Database::open(Config::default().dir(dir.path()).durability(relaxed)).expect("open");
    db.scope(|| -> mnesia::Result<()> {
        Small::create_table(disc())?;
        OnDisc::create_table(only())?;
        Other::create_table(only())?;
        std::thread::sleep(Duration::from_millis(200)); // the flusher's first pass is done
        db.transaction(|tx| {
            tx.write(Small { id: 7, name: "a".into() })?;
            tx.write(OnDisc { id: 7, name: "b".into() })?;
            Ok(())
        })?;
        Other::drop_table()?;
        Ok(())
    })
    .expect("first life");
    let crash = crash_image(dir.path());
    let db2 = Database::open(Config::default().dir(crash.path())).expect("open after crash");
    let (a, b) = db2.scope(|| Ok::<_, mnesia::Error>((Small::read(&7)?, OnDisc::read(&7)?))).expect("read");
    assert_eq!(a.is_some(), b.is_some(), "half a transaction survived: disc_copies {a:?}, disc_only {b:?}");
    drop((db, db2));
}
