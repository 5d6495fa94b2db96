//! System information: what the database holds and what its transactions did, as a struct
//! that serializes and prints.

use mnesia::Error;
use mnesia::prelude::*;

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Account {
    #[key]
    #[auto_increment]
    id: u64,
    #[index(unique)]
    owner: String,
    balance: i64,
}

#[test]
fn commits_aborts_and_tables_are_reported() {
    let db = Database::in_memory().expect("db");
    db.scope(|| -> mnesia::Result<()> {
        Account::create_table(TableOptions::new())?;
        let before = db.system_info();
        Account::insert(Account { id: 0, owner: "ann".into(), balance: 10 })?;
        Account::insert(Account { id: 0, owner: "bob".into(), balance: 5 })?;
        let failed: mnesia::Result<()> = mnesia::transaction(|| {
            Account::update(&1, |a| a.balance -= 100)?;
            Err(Error::abort("overdrawn"))
        });
        assert!(failed.is_err());
        assert!(Account::insert(Account { id: 0, owner: "ann".into(), balance: 1 }).is_err());
        Account::dirty_write(Account { id: 9, owner: "cy".into(), balance: 0 })?;
        let info = mnesia::system_info()?;
        assert_eq!(info.commits - before.commits, 3);
        assert_eq!(info.aborts - before.aborts, 2);
        assert_eq!(info.running_transactions, 0);
        assert!(info.last_commit >= 3);
        assert_eq!((info.directory.clone(), info.log.clone()), (None, None));
        assert_eq!(info.tables.len(), 1);
        assert_eq!(info.tables[0].size, 3);
        let shown = info.to_string();
        assert!(shown.contains("account (set, ram_copies): 3 records"), "{shown}");
        assert!(shown.contains("owner (unique)"), "{shown}");
        let json = serde_json::to_value(&info).expect("json");
        assert_eq!(json["tables"][0]["name"], "account");
        assert_eq!(json["commits"], info.commits);
        Ok(())
    })
    .expect("body");
}

#[test]
fn conflicts_are_counted_as_retries() {
    let db = Database::in_memory().expect("db");
    db.scope(|| Account::create_table(TableOptions::new())).expect("table");
    db.scope(|| Account::write(Account { id: 1, owner: "x".into(), balance: 0 })).expect("write");
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let db = db.clone();
            std::thread::spawn(move || {
                db.scope(|| {
                    for _ in 0..500 {
                        Account::update(&1, |a| a.balance += 1).expect("update");
                    }
                })
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let info = db.system_info();
    assert_eq!(db.scope(|| Account::read(&1)).expect("read").map(|a| a.balance), Some(2000));
    assert!(info.commits >= 2001);
    // Retries depend on scheduling; the count is there either way.
    let _ = info.retries;
}

#[test]
fn a_database_on_disc_reports_its_directory_and_log() {
    let dir = tests::schema_dir();
    let db = Database::open(Config::default().dir(dir.path())).expect("db");
    db.scope(|| -> mnesia::Result<()> {
        Account::create_table(TableOptions::new().disc_copies(["local@localhost"]))?;
        Account::insert(Account { id: 0, owner: "ann".into(), balance: 10 })?;
        let info = db.system_info();
        assert_eq!(info.directory.as_deref(), Some(dir.path()));
        let log = info.log.clone().expect("log");
        assert!(log.bytes_since_checkpoint > 0);
        assert_eq!(log.durability, "Immediate");
        db.checkpoint()?;
        let after = db.system_info();
        assert_eq!(after.log.map(|l| l.bytes_since_checkpoint), Some(0));
        let table = &after.tables[0];
        assert!(table.disk_bytes.is_some_and(|b| b > 0), "{table:?}");
        assert_eq!(table.counter, 1);
        assert!(info.to_string().contains("disc_copies"));
        Ok(())
    })
    .expect("body");
}
