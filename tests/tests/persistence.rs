//! disc_copies tables: what is committed survives a close and reopen, with its indexes;
//! the schema is checked against the struct.

use mnesia::prelude::*;
use mnesia::{Durability, Error, Schema};

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(name = "users")]
struct User {
    #[key]
    #[auto_increment]
    id: u64,
    name: String,
    #[index(unique)]
    email: String,
    age: u32,
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(type = "bag")]
struct Tag {
    #[key]
    item: u32,
    tag: String,
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(type = "ordered_set")]
struct Temp {
    #[key]
    at: u64,
    celsius: i32,
}

fn user(name: &str, age: u32) -> User {
    User { id: 0, name: name.into(), email: format!("{name}@x.io"), age }
}

fn open(dir: &std::path::Path) -> Database {
    Database::open(Config::default().dir(dir)).expect("open")
}

fn disc<T: Table>() -> TableOptions<T> {
    TableOptions::new().disc_copies(["local@localhost"])
}

#[test]
fn committed_data_survives_reopen() {
    let dir = tests::schema_dir();
    let db = open(dir.path());
    db.scope(|| -> mnesia::Result<()> {
        User::create_table(disc())?;
        Tag::create_table(disc())?;
        Temp::create_table(disc())?;
        User::insert(user("ann", 30))?;
        User::insert(user("bob", 40))?;
        User::update(&2, |u| u.age = 41)?;
        User::insert(user("cy", 50))?;
        User::delete(&3)?;
        Tag::write(Tag { item: 1, tag: "a".into() })?;
        Tag::write(Tag { item: 1, tag: "b".into() })?;
        Temp::batch_write((0..100).map(|at| Temp { at, celsius: at as i32 - 50 }))?;
        let r: mnesia::Result<()> = mnesia::transaction(|| {
            User::insert(user("ghost", 1))?;
            Err(Error::abort("rolled back"))
        });
        assert!(r.is_err());
        Ok(())
    })
    .expect("first run");
    db.close().expect("close");
    assert!(matches!(db.scope(|| User::insert(user("late", 1))), Err(Error::Closed { .. })), "closed");
    // (A checkpoint asked of a closed database said Ok: found trying the crate as a new
    // user would.)
    assert!(matches!(db.checkpoint(), Err(Error::Closed { .. })), "a checkpoint after the close");
    db.close().expect("closing again is a no-op");
    drop(db);

    let db = open(dir.path());
    db.scope(|| -> mnesia::Result<()> {
        assert!(User::exists()?);
        assert_eq!(User::count()?, 2);
        assert_eq!(User::read(&2)?.map(|u| u.age), Some(41));
        assert_eq!(User::read(&3)?, None);
        assert_eq!(User::get_by(User::EMAIL, "ann@x.io")?.map(|u| u.id), Some(1), "indexes are rebuilt");
        assert!(User::get_by(User::EMAIL, "ghost@x.io")?.is_none());
        assert_eq!(User::insert(user("dan", 9))?.id, 5, "ids continue after the highest ever issued");
        assert_eq!(Tag::read_all(&1)?.len(), 2);
        assert_eq!(Temp::all_keys()?, (0..100).collect::<Vec<_>>());
        assert_eq!(User::storage_type()?, StorageType::DiscCopies);
        assert!(matches!(User::create_table(disc()), Err(Error::TableExists { .. })));
        Ok(())
    })
    .expect("second run");
    db.close().expect("close");
}

#[test]
fn the_log_alone_recovers_without_a_checkpoint() {
    let dir = tests::schema_dir();
    {
        let db = open(dir.path());
        db.scope(|| -> mnesia::Result<()> {
            Temp::create_table(disc())?;
            for at in 0..500 {
                Temp::write(Temp { at, celsius: 1 })?;
            }
            Temp::clear()?;
            Temp::write(Temp { at: 7, celsius: 7 })?;
            Temp::dirty_write(Temp { at: 8, celsius: 8 })?;
            Ok(())
        })
        .expect("write");
        // No close: like a crash after the commits returned (Immediate: already synced).
        std::mem::forget(db);
    }
    // The forgotten handle still holds the directory lock in this process: open a copy, as
    // the end of the process would release it.
    let copy = tests::crash_image(dir.path());
    let db = open(copy.path());
    let temps = db.scope(Temp::list).expect("list");
    assert_eq!(temps, vec![Temp { at: 7, celsius: 7 }, Temp { at: 8, celsius: 8 }]);
    db.close().expect("close");
}

#[test]
fn a_checkpoint_and_more_log_recover_together() {
    let dir = tests::schema_dir();
    let db = open(dir.path());
    db.scope(|| -> mnesia::Result<()> {
        User::create_table(disc())?;
        for i in 0..50 {
            User::insert(user(&format!("u{i}"), i))?;
        }
        Ok(())
    })
    .expect("write");
    db.checkpoint().expect("checkpoint");
    db.scope(|| -> mnesia::Result<()> {
        User::update(&1, |u| u.age = 100)?;
        User::delete(&2)?;
        User::add_index(User::AGE)?;
        Ok(())
    })
    .expect("more");
    db.close().expect("close");
    drop(db);
    let db = open(dir.path());
    db.scope(|| -> mnesia::Result<()> {
        assert_eq!(User::count()?, 49);
        assert_eq!(User::read(&1)?.map(|u| u.age), Some(100));
        assert_eq!(
            User::query().filter(User::AGE.eq(100)).explain()?,
            Plan::IndexLookup { field: "age", values: 1 }
        );
        assert_eq!(User::select(User::AGE.eq(100))?.len(), 1);
        Ok(())
    })
    .expect("reopen");
    db.close().expect("close");
}

#[test]
fn a_struct_that_changed_is_refused_and_the_data_stays() {
    let dir = tests::schema_dir();
    let db = open(dir.path());
    db.scope(|| User::create_table(disc()).and_then(|_| User::insert(user("ann", 3)))).expect("write");
    db.close().expect("close");
    drop(db);

    #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    #[table(name = "users")]
    struct UserV2 {
        #[key]
        id: u64,
        name: String,
        email: String,
        age: u64,
        nickname: String,
    }
    let db = open(dir.path());
    let err = db.scope(|| UserV2::read(&1)).expect_err("mismatch");
    match &err {
        Error::SchemaMismatch { table, differences } => {
            assert_eq!(table, "users");
            let all = differences.join("\n");
            assert!(all.contains("`age` is `u32` on disc but `u64`"), "{all}");
            assert!(all.contains("`nickname: String` is in the struct but not on disc"), "{all}");
        }
        other => panic!("{other}"),
    }
    // The original struct still reads everything.
    assert_eq!(db.scope(|| User::read(&1)).expect("read").map(|u| u.name), Some("ann".into()));
    db.close().expect("close");
}

/// A field type spelled another way (`std::string::String` for `String`, an alias) is the
/// same type when the records' serde format is: the stored format decides, not the spelling.
#[test]
fn a_type_spelled_differently_with_the_same_format_is_accepted() {
    let dir = tests::schema_dir();
    let db = open(dir.path());
    db.scope(|| User::create_table(disc()).and_then(|_| User::insert(user("ann", 3)))).expect("write");
    db.close().expect("close");
    drop(db);

    type Years = u32;
    #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    #[table(name = "users")]
    struct Spelled {
        #[key]
        #[auto_increment]
        id: u64,
        name: std::string::String,
        #[index(unique)]
        email: String,
        age: Years,
    }
    let db = open(dir.path());
    let read = db.scope(|| Spelled::read(&1)).expect("the same format: accepted");
    assert_eq!(read.map(|u| (u.name, u.age)), Some(("ann".to_owned(), 3)));
    db.close().expect("close");
    // The record format is in the schema file for tools to read.
    let records = Schema::records(dir.path(), "users", None).expect("records");
    assert_eq!(records[0]["name"], "ann");
}

#[test]
fn schema_functions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    assert!(!Schema::exists(&path).expect("exists"));
    assert!(matches!(Database::open(Config::default().dir(&path)), Err(Error::NoSchema { .. })));
    Schema::create(&path).expect("create");
    assert!(matches!(Schema::create(&path), Err(Error::SchemaExists { .. })));
    let db = open(&path);
    db.scope(|| User::create_table(disc())).expect("table");
    let info = Schema::info(&path).expect("info");
    assert_eq!(info.tables, ["users"]);
    assert!(info.running);
    assert!(matches!(Schema::delete(&path), Err(Error::Locked { .. })), "not while open");
    assert!(
        matches!(Database::open(Config::default().dir(&path)), Err(Error::Locked { .. })),
        "one process at a time"
    );
    db.close().expect("close");
    assert!(!Schema::info(&path).expect("info").running);
    Schema::delete(&path).expect("delete");
    assert!(!Schema::exists(&path).expect("exists"));
}

#[test]
fn relaxed_and_none_modes_keep_data_on_close() {
    for mode in [Durability::Relaxed { interval: std::time::Duration::from_millis(5) }, Durability::None] {
        let dir = tests::schema_dir();
        let db = Database::open(Config::default().dir(dir.path()).durability(mode)).expect("open");
        db.scope(|| {
            Temp::create_table(disc())?;
            Temp::batch_write((0..10).map(|at| Temp { at, celsius: 0 }))
        })
        .expect("write");
        db.close().expect("close");
        drop(db);
        let db = open(dir.path());
        assert_eq!(db.scope(Temp::count).expect("count"), 10, "{mode:?}");
        db.close().expect("close");
    }
}

#[test]
fn tables_move_between_memory_and_disc() {
    let dir = tests::schema_dir();
    let db = open(dir.path());
    db.scope(|| -> mnesia::Result<()> {
        User::create_table(TableOptions::new())?; // ram_copies in a disc database
        User::insert(user("ann", 1))?;
        User::insert(user("bob", 2))?;
        assert_eq!(User::storage_type()?, StorageType::RamCopies);
        User::change_table_copy_type(&db.node(), StorageType::DiscCopies)?;
        assert_eq!(User::storage_type()?, StorageType::DiscCopies);
        User::insert(user("cy", 3))?;
        Ok(())
    })
    .expect("first run");
    db.close().expect("close");
    drop(db);

    let db = open(dir.path());
    db.scope(|| -> mnesia::Result<()> {
        assert_eq!(User::count()?, 3, "records from before and after the move survive");
        assert_eq!(User::get_by(User::EMAIL, "bob@x.io")?.map(|u| u.id), Some(2));
        User::change_table_copy_type(&db.node(), StorageType::RamCopies)?;
        assert_eq!(User::count()?, 3, "moving to memory keeps the records");
        Ok(())
    })
    .expect("second run");
    db.close().expect("close");
    drop(db);

    let db = open(dir.path());
    assert!(!db.scope(User::exists).expect("exists"), "a ram_copies table does not outlive the process");
    db.close().expect("close");
}

#[test]
fn a_unique_index_declared_over_duplicates_is_refused_on_open() {
    #[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[table(name = "people")]
    struct Person {
        #[key]
        id: u32,
        name: String,
    }
    #[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[table(name = "people")]
    struct UniquePerson {
        #[key]
        id: u32,
        #[index(unique)]
        name: String,
    }
    let dir = tests::schema_dir();
    let db = open(dir.path());
    db.scope(|| {
        Person::create_table(TableOptions::new().disc_copies(["local@localhost"]))?;
        Person::batch_write(
            (0..6).map(|id| Person { id, name: if id < 3 { "n".into() } else { format!("m{id}") } }),
        )
    })
    .expect("write");
    db.close().expect("close");
    drop(db);
    let db = open(dir.path());
    match db.scope(|| UniquePerson::select(UniquePerson::NAME.eq("n"))) {
        Err(Error::SchemaMismatch { differences, .. }) => {
            assert!(differences[0].contains("unique index on `name`"), "{differences:?}");
        }
        other => panic!("expected a schema mismatch, got {other:?}"),
    }
    // The data is untouched and the original struct reads all of it.
    assert_eq!(db.scope(|| Person::select(Person::NAME.eq("n"))).expect("select").len(), 3);
    assert_eq!(db.tables(), ["people"]);
    db.close().expect("close");
}
