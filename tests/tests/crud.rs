//! Every table-scoped function, on `set`, `ordered_set` and `bag` tables.

use mnesia::prelude::*;
use mnesia::{Error, Upserted};

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(name = "users")]
struct User {
    #[key]
    #[auto_increment]
    id: u64,
    name: String,
    #[index(unique)]
    email: String,
    #[index]
    age: u32,
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(type = "ordered_set")]
struct Event {
    #[key]
    at: (u32, u32),
    #[index]
    kind: String,
    note: Option<String>,
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(type = "bag")]
struct Tag {
    #[key]
    item: u32,
    #[index]
    tag: String,
}

fn user(id: u64, name: &str, age: u32) -> User {
    User { id, name: name.into(), email: format!("{}@x.io", name.to_lowercase()), age }
}

fn with_db(f: impl FnOnce() -> mnesia::Result<()>) {
    let db = Database::in_memory().expect("db");
    db.scope(|| {
        User::create_table(TableOptions::new()).expect("users");
        Event::create_table(TableOptions::new()).expect("events");
        Tag::create_table(TableOptions::new()).expect("tags");
        f().expect("test body");
    });
}

#[test]
fn table_lifecycle() {
    with_db(|| {
        assert!(User::exists()?);
        assert!(matches!(User::create_table(TableOptions::new()), Err(Error::TableExists { .. })));
        let info = User::table_info()?;
        assert_eq!(info.name, "users");
        assert_eq!(info.table_type, TableType::Set);
        assert_eq!(info.storage_type, StorageType::RamCopies);
        assert_eq!(info.attributes, ["id", "name", "email", "age"]);
        assert_eq!(info.key, "id");
        assert!(info.auto_increment);
        assert_eq!(info.indexes.len(), 2);
        assert_eq!(User::storage_type()?, StorageType::RamCopies);
        assert_eq!(Event::table_info()?.table_type, TableType::OrderedSet);
        assert_eq!(Tag::table_info()?.table_type, TableType::Bag);

        User::write(user(1, "Ann", 30))?;
        let before = User::table_info()?;
        assert_eq!(before.size, 1);
        User::clear()?;
        assert_eq!(User::count()?, 0);
        assert_eq!(User::get_by(User::EMAIL, "ann@x.io")?, None, "clear empties the indexes too");
        User::drop_table()?;
        assert!(!User::exists()?);
        assert!(matches!(User::read(&1), Err(Error::NoSuchTable { .. })));
        assert!(matches!(User::drop_table(), Err(Error::NoSuchTable { .. })));
        assert!(matches!(User::table_info(), Err(Error::NoSuchTable { .. })));
        Ok(())
    });
}

#[test]
fn disc_storage_is_refused_clearly_in_memory() {
    with_db(|| {
        User::drop_table()?;
        let err = User::create_table(TableOptions::new().disc_copies(["local@localhost"])).unwrap_err();
        assert!(matches!(err, Error::Invalid(_)), "{err}");
        assert!(!User::exists()?);
        Ok(())
    });
}

#[test]
fn write_read_update_delete_set() {
    with_db(|| {
        let ann = User::write(user(1, "Ann", 30))?;
        assert_eq!(User::read(&1)?, Some(ann.clone()));
        assert_eq!(User::read(&2)?, None);
        let older = User::update(&1, |u| u.age += 1)?;
        assert_eq!(older.age, 31);
        assert_eq!(User::read(&1)?.map(|u| u.age), Some(31));
        assert!(matches!(User::update(&9, |u| u.age += 1), Err(Error::NotFound { .. })));
        let err = User::update(&1, |u| u.id = 5).unwrap_err();
        assert!(matches!(err, Error::Invalid(_)));
        assert_eq!(User::read(&5)?, None);
        assert_eq!(User::delete(&1)?.map(|u| u.age), Some(31));
        assert_eq!(User::delete(&1)?, None);
        assert_eq!(User::read(&1)?, None);
        Ok(())
    });
}

#[test]
fn insert_assigns_ids_and_refuses_duplicates() {
    with_db(|| {
        let a = User::insert(user(0, "A", 1))?;
        let b = User::insert(user(0, "B", 1))?;
        assert_eq!((a.id, b.id), (1, 2));
        let manual = User::insert(user(100, "C", 1))?;
        assert_eq!(manual.id, 100);
        assert_eq!(User::insert(user(0, "D", 1))?.id, 101);
        let dup = User::insert(user(2, "E", 1)).unwrap_err();
        assert!(matches!(dup, Error::AlreadyExists { .. }), "{dup}");
        assert_eq!(User::read(&2)?.map(|u| u.name), Some("B".into()), "the stored record is untouched");
        // A plain write with a higher id moves the counter past it too.
        User::write(user(500, "F", 1))?;
        assert_eq!(User::insert(user(0, "G", 1))?.id, 501);
        // Ids are not reused after a delete.
        User::delete(&501)?;
        assert_eq!(User::insert(user(0, "H", 1))?.id, 502);
        Ok(())
    });
}

#[test]
fn upsert_tells_inserted_or_replaced() {
    with_db(|| {
        assert_eq!(User::upsert(user(1, "Ann", 30))?, Upserted::Inserted(user(1, "Ann", 30)));
        match User::upsert(user(1, "Ann", 31))? {
            Upserted::Replaced { new, old } => assert_eq!((new.age, old.age), (31, 30)),
            other => panic!("{other:?}"),
        }
        Ok(())
    });
}

#[test]
fn unique_index_is_enforced() {
    with_db(|| {
        User::write(user(1, "Ann", 30))?;
        let mut clash = user(2, "Bob", 20);
        clash.email = "ann@x.io".into();
        let err = User::write(clash.clone()).unwrap_err();
        match &err {
            Error::UniqueViolation { field, value, existing_key, .. } => {
                assert_eq!(*field, "email");
                assert_eq!(value, "\"ann@x.io\"");
                assert_eq!(existing_key, "1");
            }
            other => panic!("{other}"),
        }
        assert_eq!(User::read(&2)?, None);
        assert!(User::dirty_write(clash).is_err(), "dirty writes keep unique indexes too");
        // The same record rewritten keeps its value.
        User::write(user(1, "Ann", 31))?;
        // Two records swapping their values in one transaction is fine.
        User::write(user(2, "Bob", 20))?;
        mnesia::transaction(|| {
            User::update(&1, |u| u.email = "bob@x.io".into())?;
            User::update(&2, |u| u.email = "ann@x.io".into())?;
            Ok::<_, Error>(())
        })?;
        assert_eq!(User::get_by(User::EMAIL, "bob@x.io")?.map(|u| u.id), Some(1));
        assert_eq!(User::get_by(User::EMAIL, "ann@x.io")?.map(|u| u.id), Some(2));
        // Two new records with one value in one batch: refused, nothing written.
        let mut c = user(3, "Cy", 1);
        c.email = "same@x.io".into();
        let mut d = user(4, "Di", 1);
        d.email = "same@x.io".into();
        assert!(matches!(User::batch_write([c, d]), Err(Error::UniqueViolation { .. })));
        assert_eq!(User::count()?, 2);
        Ok(())
    });
}

#[test]
fn get_by_select_and_lists() {
    with_db(|| {
        User::batch_write([user(1, "Ann", 30), user(2, "Bob", 17), user(3, "Cy", 30), user(4, "Al", 65)])?;
        assert_eq!(User::get_by(User::EMAIL, "bob@x.io")?.map(|u| u.id), Some(2));
        assert_eq!(User::get_by(User::AGE, 30)?.map(|u| u.id), Some(1), "first in key order");
        assert_eq!(User::get_by(User::NAME, "Cy")?.map(|u| u.id), Some(3), "scan without index");
        assert_eq!(User::get_by(User::NAME, "Zed")?, None);
        let mut adults: Vec<u64> = User::select(User::AGE.ge(18))?.into_iter().map(|u| u.id).collect();
        adults.sort();
        assert_eq!(adults, [1, 3, 4]);
        let mut a: Vec<u64> = User::select([User::AGE.ge(18), User::NAME.starts_with("A")])?
            .into_iter()
            .map(|u| u.id)
            .collect();
        a.sort();
        assert_eq!(a, [1, 4]);
        let mut keys = User::all_keys()?;
        keys.sort();
        assert_eq!(keys, [1, 2, 3, 4]);
        assert_eq!(User::list()?.len(), 4);
        assert_eq!(User::count()?, 4);
        let removed = User::batch_delete([1, 2, 99])?;
        assert_eq!(removed.len(), 2);
        assert_eq!(User::count()?, 2);
        Ok(())
    });
}

#[test]
fn dirty_operations() {
    with_db(|| {
        User::dirty_write(user(1, "Ann", 30))?;
        assert_eq!(User::read(&1)?.map(|u| u.age), Some(30));
        assert_eq!(User::dirty_read(&1)?.map(|u| u.age), Some(30));
        assert_eq!(User::dirty_update(&1, |u| u.age = 40)?.age, 40);
        assert!(matches!(User::dirty_update(&2, |u| u.age = 40), Err(Error::NotFound { .. })));
        assert_eq!(User::dirty_select(User::AGE.eq(40))?.len(), 1);
        assert_eq!(User::dirty_get_by(User::EMAIL, "ann@x.io")?.map(|u| u.id), Some(1));
        assert_eq!(User::dirty_delete(&1)?.map(|u| u.id), Some(1));
        assert_eq!(User::dirty_delete(&1)?, None);
        assert_eq!(User::dirty_get_by(User::EMAIL, "ann@x.io")?, None, "index follows dirty deletes");
        // A dirty write inside a transaction that aborts stays.
        let r: mnesia::Result<()> = mnesia::transaction(|| {
            User::dirty_write(user(7, "Sev", 7))?;
            Err(Error::abort("no"))
        });
        assert!(r.is_err());
        assert!(User::read(&7)?.is_some());
        Ok(())
    });
}

#[test]
fn ordered_set_keeps_key_order() {
    with_db(|| {
        for (a, b) in [(3, 1), (1, 2), (2, 9), (1, 1), (10, 0)] {
            Event::write(Event {
                at: (a, b),
                kind: if a.is_multiple_of(2) { "even".into() } else { "odd".into() },
                note: None,
            })?;
        }
        let keys = Event::all_keys()?;
        assert_eq!(keys, [(1, 1), (1, 2), (2, 9), (3, 1), (10, 0)]);
        let list: Vec<(u32, u32)> = Event::list()?.into_iter().map(|e| e.at).collect();
        assert_eq!(list, keys);
        let range: Vec<(u32, u32)> =
            Event::select(Event::AT.between((1, 2), (3, 1)))?.into_iter().map(|e| e.at).collect();
        assert_eq!(range, [(1, 2), (2, 9), (3, 1)]);
        assert_eq!(Event::query().filter(Event::AT.gt((2, 0))).explain()?, Plan::KeyRange);
        let odd: Vec<(u32, u32)> = Event::select(Event::KIND.eq("odd"))?.into_iter().map(|e| e.at).collect();
        assert_eq!(odd, [(1, 1), (1, 2), (3, 1)]);
        // In a transaction, pending writes merge in key order.
        let seen = mnesia::transaction(|| {
            Event::write(Event { at: (2, 0), kind: "even".into(), note: Some("new".into()) })?;
            Event::delete(&(3, 1))?;
            Event::all_keys()
        })?;
        assert_eq!(seen, [(1, 1), (1, 2), (2, 0), (2, 9), (10, 0)]);
        assert_eq!(Event::select(Event::NOTE.is_some())?.len(), 1);
        Ok(())
    });
}

#[test]
fn bag_holds_distinct_records_per_key() {
    with_db(|| {
        Tag::write(Tag { item: 1, tag: "red".into() })?;
        Tag::write(Tag { item: 1, tag: "big".into() })?;
        Tag::write(Tag { item: 1, tag: "red".into() })?; // identical: kept once
        Tag::write(Tag { item: 2, tag: "red".into() })?;
        assert_eq!(Tag::read_all(&1)?.len(), 2);
        assert_eq!(Tag::count()?, 3);
        assert_eq!(Tag::all_keys()?, [1, 2]);
        assert_eq!(Tag::select(Tag::TAG.eq("red"))?.len(), 2);
        assert!(Tag::delete_object(&Tag { item: 1, tag: "red".into() })?);
        assert!(!Tag::delete_object(&Tag { item: 1, tag: "red".into() })?);
        assert_eq!(Tag::read_all(&1)?, [Tag { item: 1, tag: "big".into() }]);
        assert_eq!(Tag::select(Tag::TAG.eq("red"))?.len(), 1, "index follows delete_object");
        assert!(matches!(Tag::update(&1, |t| t.tag.push('!')), Err(Error::Invalid(_))));
        Tag::insert(Tag { item: 1, tag: "new".into() })?;
        assert_eq!(Tag::read_all(&1)?.len(), 2);
        Tag::delete(&1)?;
        assert!(Tag::read_all(&1)?.is_empty());
        assert_eq!(Tag::select(Tag::TAG.eq("big"))?.len(), 0);
        Ok(())
    });
}

#[test]
fn online_index_changes() {
    with_db(|| {
        let named = |i: u64, name: String| User { id: i, name, email: format!("{i}@x.io"), age: i as u32 };
        User::batch_write((1..=50).map(|i| named(i, format!("n{}", i % 5))))?;
        assert_eq!(User::query().filter(User::NAME.eq("n1")).explain()?, Plan::FullScan);
        User::add_index(User::NAME)?;
        assert!(matches!(User::add_index(User::NAME), Err(Error::IndexExists { .. })));
        assert_eq!(
            User::query().filter(User::NAME.eq("n1")).explain()?,
            Plan::IndexLookup { field: "name", values: 1 }
        );
        assert_eq!(User::select(User::NAME.eq("n1"))?.len(), 10);
        User::write(named(51, "n1".into()))?;
        assert_eq!(User::select(User::NAME.eq("n1"))?.len(), 11);
        assert!(matches!(User::add_unique_index(User::NAME), Err(Error::IndexExists { .. })));
        User::remove_index(User::NAME)?;
        assert!(matches!(User::remove_index(User::NAME), Err(Error::NoSuchIndex { .. })));
        assert_eq!(User::query().filter(User::NAME.eq("n1")).explain()?, Plan::FullScan);
        assert_eq!(User::select(User::NAME.eq("n1"))?.len(), 11);
        // A unique index over duplicated data is refused and not installed.
        assert!(matches!(User::add_unique_index(User::NAME), Err(Error::UniqueViolation { .. })));
        assert_eq!(User::table_info()?.indexes.len(), 2);
        Ok(())
    });
}

#[test]
fn wrong_type_for_a_table_name_is_an_error() {
    #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    #[table(name = "users")]
    struct Impostor {
        #[key]
        id: u64,
    }
    with_db(|| {
        assert!(matches!(Impostor::read(&1), Err(Error::TypeMismatch { .. })));
        Ok(())
    });
}

#[test]
fn no_database_is_a_typed_error() {
    // This test thread has no scope; the process default may be unset.
    if mnesia::stop().is_ok() {
        return; // another test started one; nothing to check here
    }
    assert!(matches!(User::read(&1), Err(Error::NoDatabase)));
}
