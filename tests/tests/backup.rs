//! Backup and restore: a backup taken while transfers run restores to an exact total; a
//! damaged or truncated backup is refused and changes nothing; restore modes; a restore
//! into a fresh directory survives a reopen; a struct that does not match is refused.

use mnesia::prelude::*;
use mnesia::{Error, RestoreMode, RestoreOptions};

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Account {
    #[key]
    id: u32,
    balance: i64,
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(type = "bag")]
struct Tag {
    #[key]
    item: u32,
    label: String,
}

const ACCOUNTS: u32 = 2000;
const TOTAL: i64 = ACCOUNTS as i64 * 100;

fn bank(db: &Database) {
    db.scope(|| -> mnesia::Result<()> {
        Account::create_table(TableOptions::new())?;
        Tag::create_table(TableOptions::new())?;
        Account::batch_write((0..ACCOUNTS).map(|id| Account { id, balance: 100 }))?;
        Tag::batch_write((0..20).map(|i| Tag { item: i % 4, label: format!("l{i}") }))?;
        Ok(())
    })
    .expect("bank");
}

/// One transfer between two accounts picked by `i`.
fn transfer(i: u32) {
    let (from, to) = (i % ACCOUNTS, (i * 7 + 3) % ACCOUNTS);
    mnesia::transaction(|| {
        Account::update(&from, |a| a.balance -= 1)?;
        Account::update(&to, |a| a.balance += 1)?;
        Ok::<_, Error>(())
    })
    .expect("transfer");
}

fn total() -> i64 {
    Account::list().expect("list").iter().map(|a| a.balance).sum()
}

#[test]
fn a_backup_taken_while_transfers_run_restores_to_the_exact_total() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Database::in_memory().expect("db");
    bank(&db);
    let workers = tests::Workers::start(&db, 4, transfer);
    let mut files = Vec::new();
    for n in 0..10 {
        let file = dir.path().join(format!("b{n}.bak"));
        let info = db.backup(&file).expect("backup");
        assert_eq!(info.tables, ["account", "tag"]);
        files.push(file);
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    workers.stop();
    for file in files {
        let fresh = Database::in_memory().expect("fresh");
        fresh
            .scope(|| -> mnesia::Result<()> {
                Account::create_table(TableOptions::new())?;
                Tag::create_table(TableOptions::new())?;
                let n = fresh.restore(&file, &RestoreOptions::new())?;
                assert_eq!(n, u64::from(ACCOUNTS) + 20);
                assert_eq!(total(), TOTAL, "{}", file.display());
                assert_eq!(Tag::read_all(&1)?.len(), 5);
                Ok(())
            })
            .expect("restore");
    }
}

#[test]
fn a_damaged_or_truncated_backup_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Database::in_memory().expect("db");
    bank(&db);
    let file = dir.path().join("good.bak");
    db.backup(&file).expect("backup");
    let good = std::fs::read(&file).expect("read");
    db.scope(|| -> mnesia::Result<()> {
        // The database now differs from the backup: a refused restore must leave it so.
        Account::write(Account { id: 0, balance: 42 })?;
        Account::write(Account { id: 9_999, balance: 0 })?;
        let before = Account::list()?;
        let bad = dir.path().join("bad.bak");
        let step = (good.len() / 97).max(1);
        for at in (0..good.len()).step_by(step) {
            let mut bytes = good.clone();
            bytes[at] ^= 0x55;
            std::fs::write(&bad, &bytes).expect("write");
            assert!(db.restore(&bad, &RestoreOptions::new()).is_err(), "a flip at {at} was accepted");
            std::fs::write(&bad, &good[..at]).expect("write");
            assert!(db.restore(&bad, &RestoreOptions::new()).is_err(), "a cut at {at} was accepted");
        }
        let mut after = Account::list()?;
        let mut before = before;
        before.sort_by_key(|a| a.id);
        after.sort_by_key(|a| a.id);
        assert_eq!(after, before);
        // The good one still restores.
        db.restore(&file, &RestoreOptions::new())?;
        assert_eq!(total(), TOTAL);
        assert!(Account::read(&9_999)?.is_none());
        Ok(())
    })
    .expect("body");
}

#[test]
fn restore_modes_keep_skip_or_replace_each_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Database::in_memory().expect("db");
    bank(&db);
    let file = dir.path().join("b.bak");
    db.backup(&file).expect("backup");
    db.scope(|| -> mnesia::Result<()> {
        Account::write(Account { id: 9_500, balance: 1 })?;
        Account::write(Account { id: 0, balance: 0 })?;
        Tag::write(Tag { item: 9, label: "new".into() })?;
        // Keep and add: 9500 stays, 0 comes back; tags skipped.
        let opts = RestoreOptions::new().all(RestoreMode::KeepAndAdd).table("tag", RestoreMode::Skip);
        db.restore(&file, &opts)?;
        assert_eq!(Account::read(&0)?.map(|a| a.balance), Some(100));
        assert!(Account::read(&9_500)?.is_some());
        assert_eq!(Tag::read_all(&9)?.len(), 1);
        // Keep and add on a bag: the key keeps its records and gets the backup's.
        Tag::write(Tag { item: 1, label: "extra".into() })?;
        db.restore(
            &file,
            &RestoreOptions::new().all(RestoreMode::Skip).table("tag", RestoreMode::KeepAndAdd),
        )?;
        assert_eq!(Tag::read_all(&1)?.len(), 6);
        // Clear and load: exactly the backup.
        db.restore(&file, &RestoreOptions::new())?;
        assert!(Account::read(&9_500)?.is_none());
        assert!(Tag::read_all(&9)?.is_empty());
        assert_eq!(Tag::read_all(&1)?.len(), 5);
        assert_eq!(Account::count()?, ACCOUNTS as usize);
        Ok(())
    })
    .expect("body");
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(name = "account")]
struct AccountV2 {
    #[key]
    id: u32,
    balance: i64,
    owner: String,
}

#[test]
fn a_restore_needs_each_table_here_with_a_matching_struct() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Database::in_memory().expect("db");
    bank(&db);
    let file = dir.path().join("b.bak");
    db.backup(&file).expect("backup");
    let other = Database::in_memory().expect("other");
    other
        .scope(|| -> mnesia::Result<()> {
            Tag::create_table(TableOptions::new())?;
            assert!(matches!(other.restore(&file, &RestoreOptions::new()), Err(Error::Invalid(_))));
            AccountV2::create_table(TableOptions::new())?;
            // (Said of the backup's definition, not "on disc": this database has no disc.)
            match other.restore(&file, &RestoreOptions::new()) {
                Err(Error::SchemaMismatch { differences, .. }) => {
                    assert!(differences.iter().all(|d| d.contains("in the backup")), "{differences:?}")
                }
                r => panic!("{r:?}"),
            }
            assert!(Tag::list()?.is_empty(), "nothing restored");
            // Skipping the table that does not match restores the rest.
            other.restore(&file, &RestoreOptions::new().table("account", RestoreMode::Skip))?;
            assert_eq!(Tag::list()?.len(), 20);
            Ok(())
        })
        .expect("body");
}

#[test]
fn a_restore_into_a_fresh_directory_survives_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Database::in_memory().expect("db");
    bank(&db);
    let file = dir.path().join("b.bak");
    db.backup(&file).expect("backup");
    let data = tests::schema_dir();
    let disc = Database::open(Config::default().dir(data.path()).node_name("other@host")).expect("open");
    disc.scope(|| -> mnesia::Result<()> {
        Account::create_table(TableOptions::new().disc_copies([disc.node()]))?;
        Tag::create_table(TableOptions::new().disc_copies([disc.node()]))?;
        disc.restore(&file, &RestoreOptions::new())?;
        Ok(())
    })
    .expect("restore");
    disc.close().expect("close");
    drop(disc);
    let again = Database::open(Config::default().dir(data.path()).node_name("other@host")).expect("reopen");
    again
        .scope(|| -> mnesia::Result<()> {
            assert_eq!(total(), TOTAL);
            assert_eq!(Tag::list()?.len(), 20);
            Ok(())
        })
        .expect("after reopen");
}
