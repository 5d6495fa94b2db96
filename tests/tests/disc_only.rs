//! disc_only_copies tables: records on disc only (the directory's redb file), same API,
//! same transactions, recovered from the file plus the commit log.

use mnesia::Error;
use mnesia::prelude::*;

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(name = "archive")]
struct Archived {
    #[key]
    #[auto_increment]
    id: u64,
    #[index]
    owner: String,
    #[index(unique)]
    slug: String,
    body: String,
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(type = "bag")]
struct Label {
    #[key]
    item: u64,
    label: String,
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(type = "ordered_set")]
struct Ordered {
    #[key]
    id: u64,
}

fn only<T: Table>() -> TableOptions<T> {
    TableOptions::new().disc_only_copies(["local@localhost"])
}

fn doc(owner: &str, slug: &str) -> Archived {
    Archived { id: 0, owner: owner.into(), slug: slug.into(), body: format!("body of {slug}") }
}

fn open(dir: &std::path::Path) -> Database {
    Database::open(Config::default().dir(dir)).expect("open")
}

#[test]
fn the_whole_api_on_disc_only_tables_survives_reopen() {
    let dir = tests::schema_dir();
    let db = open(dir.path());
    db.scope(|| -> mnesia::Result<()> {
        Archived::create_table(only())?;
        Label::create_table(only())?;
        assert_eq!(Archived::storage_type()?, StorageType::DiscOnlyCopies);
        for i in 0..20 {
            Archived::insert(doc(if i % 2 == 0 { "ann" } else { "bob" }, &format!("s{i}")))?;
        }
        Archived::update(&3, |a| a.body = "edited".into())?;
        Archived::delete(&4)?;
        assert!(matches!(Archived::write(doc("cy", "s0")), Err(Error::UniqueViolation { .. })));
        assert_eq!(Archived::get_by(Archived::SLUG, "s7")?.map(|a| a.id), Some(8));
        assert_eq!(
            Archived::query().filter(Archived::OWNER.eq("ann")).explain()?,
            Plan::IndexLookup { field: "owner", values: 1 }
        );
        assert_eq!(Archived::select(Archived::OWNER.eq("ann"))?.len(), 10);
        assert_eq!(Archived::count()?, 19);
        let r: mnesia::Result<()> = mnesia::transaction(|| {
            Archived::insert(doc("ghost", "g"))?;
            Archived::delete(&1)?;
            Err(Error::abort("no"))
        });
        assert!(r.is_err());
        assert!(Archived::read(&1)?.is_some());
        Label::write(Label { item: 1, label: "a".into() })?;
        Label::write(Label { item: 1, label: "b".into() })?;
        Label::delete_object(&Label { item: 1, label: "a".into() })?;
        Archived::dirty_write(doc("dan", "dirty"))?;
        Ok(())
    })
    .expect("first run");
    db.close().expect("close");
    drop(db);

    let db = open(dir.path());
    db.scope(|| -> mnesia::Result<()> {
        assert_eq!(Archived::count()?, 20);
        assert_eq!(Archived::read(&3)?.map(|a| a.body), Some("edited".into()));
        assert_eq!(Archived::read(&4)?, None);
        assert_eq!(
            Archived::get_by(Archived::SLUG, "dirty")?.map(|a| a.owner),
            Some("dan".into()),
            "indexes rebuilt"
        );
        assert!(Archived::insert(doc("eve", "new"))?.id > 22, "ids continue past every id issued");
        assert_eq!(Label::read_all(&1)?, vec![Label { item: 1, label: "b".into() }]);
        let info = Archived::table_info()?;
        assert_eq!(info.storage_type, StorageType::DiscOnlyCopies);
        Archived::clear()?;
        assert_eq!(Archived::count()?, 0);
        Ok(())
    })
    .expect("second run");
    db.close().expect("close");
}

#[test]
fn the_log_replays_into_the_file_after_a_crash() {
    let dir = tests::schema_dir();
    let db = open(dir.path());
    db.scope(|| -> mnesia::Result<()> {
        Archived::create_table(only())?;
        for i in 0..50 {
            Archived::insert(doc("ann", &format!("s{i}")))?;
        }
        Archived::delete(&10)?;
        Ok(())
    })
    .expect("write");
    // A crash: the files as they are now, without a close.
    let image = tests::crash_image(dir.path());
    db.close().expect("close");
    let db2 = open(image.path());
    db2.scope(|| -> mnesia::Result<()> {
        assert_eq!(Archived::count()?, 49);
        assert_eq!(Archived::read(&10)?, None);
        assert_eq!(Archived::get_by(Archived::SLUG, "s49")?.map(|a| a.id), Some(50));
        Ok(())
    })
    .expect("recovered");
    db2.close().expect("close");
    // Recovering twice gives the same.
    let db3 = open(image.path());
    assert_eq!(db3.scope(Archived::count).expect("count"), 49);
    db3.close().expect("close");
}

#[test]
fn what_disc_only_does_not_do() {
    let dir = tests::schema_dir();
    let db = open(dir.path());
    db.scope(|| -> mnesia::Result<()> {
        assert!(
            matches!(Ordered::create_table(only()), Err(Error::Invalid(_))),
            "no ordered_set, as in Mnesia"
        );
        Ok(())
    })
    .expect("checks");
    db.close().expect("close");
    let mem = Database::in_memory().expect("db");
    assert!(matches!(mem.scope(|| Archived::create_table(only())), Err(Error::Invalid(_))));
}

#[test]
fn tables_move_to_and_from_disc_only() {
    let dir = tests::schema_dir();
    let db = open(dir.path());
    let node = db.node();
    db.scope(|| -> mnesia::Result<()> {
        Archived::create_table(TableOptions::new())?;
        for i in 0..30 {
            Archived::insert(doc(if i < 10 { "ann" } else { "bob" }, &format!("s{i}")))?;
        }
        for (to, label) in [
            (StorageType::DiscOnlyCopies, "ram -> disc_only"),
            (StorageType::DiscCopies, "disc_only -> disc_copies"),
            (StorageType::DiscOnlyCopies, "disc_copies -> disc_only"),
        ] {
            Archived::change_table_copy_type(&node, to)?;
            assert_eq!(Archived::storage_type()?, to, "{label}");
            assert_eq!(Archived::count()?, 30, "{label}");
            assert_eq!(Archived::select(Archived::OWNER.eq("ann"))?.len(), 10, "{label}: index rebuilt");
            assert!(matches!(Archived::write(doc("x", "s3")), Err(Error::UniqueViolation { .. })), "{label}");
        }
        Archived::insert(doc("cy", "after"))?;
        Ok(())
    })
    .expect("moves");
    db.close().expect("close");
    drop(db);
    let db = open(dir.path());
    db.scope(|| -> mnesia::Result<()> {
        assert_eq!(Archived::storage_type()?, StorageType::DiscOnlyCopies);
        assert_eq!(Archived::count()?, 31);
        assert!(Archived::insert(doc("dan", "later"))?.id > 31, "ids continue past every id handed out");
        Archived::change_table_copy_type(&db.node(), StorageType::RamCopies)?;
        assert_eq!(Archived::count()?, 32);
        Ok(())
    })
    .expect("reopen");
    db.close().expect("close");
    drop(db);
    let db = open(dir.path());
    assert!(!db.scope(Archived::exists).expect("exists"), "moved to memory: gone after a restart");
    db.close().expect("close");
}

#[test]
fn a_transaction_running_across_a_move_runs_again_on_the_new_store() {
    let dir = tests::schema_dir();
    let db = open(dir.path());
    db.scope(|| Archived::create_table(TableOptions::new()).and_then(|_| Archived::insert(doc("ann", "a"))))
        .expect("setup");
    let mut runs = 0;
    db.scope(|| {
        mnesia::transaction(|| {
            runs += 1;
            let a = Archived::read(&1)?;
            if runs == 1 {
                // Another thread moves the table while this transaction runs.
                let db2 = db.clone();
                std::thread::spawn(move || {
                    db2.change_table_copy_type::<Archived>(StorageType::DiscOnlyCopies)
                })
                .join()
                .expect("join")?;
            }
            Archived::write(Archived { body: "changed".into(), ..a.expect("exists") })
        })
    })
    .expect("transaction");
    assert_eq!(runs, 2);
    assert_eq!(db.scope(|| Archived::read(&1)).expect("read").map(|a| a.body), Some("changed".into()));
    db.close().expect("close");
}
