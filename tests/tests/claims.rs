//! README claims that no other test checked: each test names the claim it keeps.

use std::time::Duration;

use mnesia::prelude::*;
use mnesia::{Error, Event, Format, ImportOptions};

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Ticket {
    #[key]
    #[auto_increment]
    id: u64,
    title: String,
}

fn ticket(id: u64, title: &str) -> Ticket {
    Ticket { id, title: title.into() }
}

fn with_db(f: impl FnOnce() -> mnesia::Result<()>) {
    let db = Database::in_memory().expect("db");
    db.scope(f).expect("body");
}

/// "`insert` (and `write`, `upsert`, `batch_write`) with the key at 0 takes the next id".
#[test]
fn write_and_upsert_take_the_next_id_for_a_zero_key() {
    with_db(|| {
        Ticket::create_table(TableOptions::new())?;
        assert_eq!(Ticket::write(ticket(0, "a"))?.id, 1);
        let up = Ticket::upsert(ticket(0, "b"))?;
        assert!(up.inserted());
        assert_eq!(up.record().id, 2);
        assert_eq!(
            Ticket::batch_write([ticket(0, "c"), ticket(0, "d")])?.iter().map(|t| t.id).collect::<Vec<_>>(),
            [3, 4]
        );
        assert_eq!(Ticket::count()?, 4);
        Ok(())
    });
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(name = "cached")]
struct Cached {
    #[key]
    id: u32,
    kept: String,
    #[serde(skip)]
    scratch: Vec<u8>,
}

/// "Fields marked `#[serde(skip)]` are not stored: they come back as their default after a
/// restart."
#[test]
fn serde_skip_fields_come_back_as_their_default_after_a_restart() {
    let dir = tests::schema_dir();
    let open = || Database::open(Config::default().dir(dir.path())).expect("open");
    let db = open();
    db.scope(|| -> mnesia::Result<()> {
        Cached::create_table(TableOptions::new().disc_copies(["local@localhost"]))?;
        Cached::write(Cached { id: 1, kept: "k".into(), scratch: vec![1, 2, 3] })?;
        // In memory the record is the one written, skipped field included.
        assert_eq!(Cached::read(&1)?.map(|c| c.scratch), Some(vec![1, 2, 3]));
        Ok(())
    })
    .expect("first run");
    db.close().expect("close");
    drop(db);
    let db = open();
    let back = db.scope(|| Cached::read(&1)).expect("read");
    assert_eq!(back, Some(Cached { id: 1, kept: "k".into(), scratch: Vec::new() }));
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(name = "people")]
struct IndexedPerson {
    #[key]
    id: u32,
    #[index]
    city: String,
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(name = "people")]
struct PlainPerson {
    #[key]
    id: u32,
    city: String,
}

/// "removing `#[index]` from the struct does not drop a stored index: call `remove_index`".
#[test]
fn removing_an_index_attribute_keeps_the_stored_index() {
    let dir = tests::schema_dir();
    let open = || Database::open(Config::default().dir(dir.path())).expect("open");
    let db = open();
    db.scope(|| -> mnesia::Result<()> {
        IndexedPerson::create_table(TableOptions::new().disc_copies(["local@localhost"]))?;
        IndexedPerson::write(IndexedPerson { id: 1, city: "Oslo".into() })?;
        Ok(())
    })
    .expect("first run");
    db.close().expect("close");
    drop(db);
    let db = open();
    db.scope(|| -> mnesia::Result<()> {
        let indexes = PlainPerson::table_info()?.indexes;
        assert!(indexes.iter().any(|i| i.field == "city"), "{indexes:?}");
        assert!(
            PlainPerson::query().filter(PlainPerson::CITY.eq("Oslo")).explain()?.to_string().contains("city")
        );
        assert_eq!(PlainPerson::select(PlainPerson::CITY.eq("Oslo"))?.len(), 1);
        db.remove_index::<PlainPerson>("city")?;
        assert!(PlainPerson::table_info()?.indexes.is_empty());
        Ok(())
    })
    .expect("second run");
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Token {
    #[key]
    id: u32,
    #[ttl]
    expires_at: Option<std::time::SystemTime>,
}

/// "expired records are left out" of an export.
#[test]
fn export_leaves_expired_records_out() {
    let clock = mnesia::ManualClock::starting_now();
    let db = Database::open(Config::default().auto_cleanup(false).clock(clock.clone())).expect("db");
    db.scope(|| -> mnesia::Result<()> {
        Token::create_table(TableOptions::new())?;
        Token::write_with_ttl(Token { id: 1, expires_at: None }, Duration::from_millis(20))?;
        Token::write(Token { id: 2, expires_at: None })?;
        clock.advance(Duration::from_millis(20));
        assert_eq!(Token::table_info()?.size, 2, "still stored: no reaper");
        for format in [Format::Json, Format::JsonLines, Format::Csv] {
            let mut out = Vec::new();
            assert_eq!(Token::export_to(&mut out, format)?, 1, "{format:?}");
        }
        Ok(())
    })
    .expect("body");
}

/// "`Config::auto_cleanup(false)` turns it off": no reaper removes expired records, and
/// `cleanup_expired` does on demand.
#[test]
fn without_auto_cleanup_nothing_is_reaped_until_asked() {
    let db = Database::open(Config::default().auto_cleanup(false).cleanup_interval(Duration::from_millis(5)))
        .expect("db");
    db.scope(|| -> mnesia::Result<()> {
        Token::create_table(TableOptions::new())?;
        for id in 0..10 {
            Token::write_with_ttl(Token { id, expires_at: None }, Duration::from_millis(10))?;
        }
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(Token::count()?, 0, "invisible once expired");
        assert_eq!(Token::table_info()?.size, 10, "but no reaper removed them");
        assert_eq!(db.cleanup_expired()?, 10);
        assert_eq!(Token::table_info()?.size, 0);
        Ok(())
    })
    .expect("body");
}

/// A table's operations claim a disc table recovered from the directory, `cleanup_expired`
/// too: as the first operation after a reopen it reaps, rather than saying there is no such
/// table.
#[test]
fn cleanup_expired_first_after_a_reopen_claims_the_table() {
    let dir = tests::schema_dir();
    let open = || Database::open(Config::default().dir(dir.path()).auto_cleanup(false)).expect("open");
    open()
        .scope(|| -> mnesia::Result<()> {
            Token::create_table(TableOptions::new().disc_copies(["local@localhost"]))?;
            for id in 0..5 {
                Token::write_with_ttl(Token { id, expires_at: None }, Duration::from_millis(1))?;
            }
            Token::write(Token { id: 9, expires_at: None })?;
            Ok(())
        })
        .expect("first run");
    std::thread::sleep(Duration::from_millis(20));
    open()
        .scope(|| -> mnesia::Result<()> {
            assert_eq!(Token::cleanup_expired()?, 5);
            assert_eq!(Token::table_info()?.size, 1);
            Ok(())
        })
        .expect("after the reopen");
}

/// "`replace_existing(true)`, where a key given twice keeps its last record"; and "the
/// counter moves past every imported id (also when the import then fails)".
#[test]
fn imports_keep_the_last_of_a_repeated_key_and_move_the_counter_even_when_failing() {
    with_db(|| {
        Ticket::create_table(TableOptions::new())?;
        Ticket::write(ticket(1, "old"))?;
        let input = "{\"id\":1,\"title\":\"first\"}\n{\"id\":1,\"title\":\"last\"}\n";
        Ticket::import_from(
            input.as_bytes(),
            Format::JsonLines,
            &ImportOptions::new().replace_existing(true),
        )?;
        assert_eq!(Ticket::read(&1)?.map(|t| t.title), Some("last".to_owned()));

        // A failing import: an id was handed out to the first record, then the second
        // record's key exists. The id is not handed out again.
        let failing = "{\"id\":0,\"title\":\"x\"}\n{\"id\":1,\"title\":\"taken\"}\n";
        let r = Ticket::import_from(failing.as_bytes(), Format::JsonLines, &ImportOptions::new());
        assert!(matches!(r, Err(Error::Import { line: 2, .. })), "{r:?}");
        assert_eq!(Ticket::count()?, 1, "nothing written");
        assert_eq!(Ticket::read(&1)?.map(|t| t.title), Some("last".to_owned()));
        assert_eq!(Ticket::insert(ticket(0, "next"))?.id, 3, "id 2 went to the failed import");
        Ok(())
    });
}

/// "A `disc_only_copies` table is refused" by `transform`.
#[test]
fn transform_refuses_a_disc_only_table() {
    let dir = tests::schema_dir();
    let db = Database::open(Config::default().dir(dir.path())).expect("open");
    db.scope(|| -> mnesia::Result<()> {
        IndexedPerson::create_table(TableOptions::new().disc_only_copies(["local@localhost"]))?;
        IndexedPerson::write(IndexedPerson { id: 1, city: "Rome".into() })?;
        let r = PlainPerson::transform(|old: IndexedPerson| Ok(PlainPerson { id: old.id, city: old.city }));
        match r {
            Err(Error::Invalid(m)) => assert!(m.contains("disc_only_copies"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(IndexedPerson::read(&1)?.map(|p| p.city), Some("Rome".to_owned()));
        Ok(())
    })
    .expect("body");
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Note {
    #[key]
    id: u32,
    due: Option<u32>,
}

/// "Conditions on an `Option` field ... follow Rust's order, in which `None` comes before
/// every `Some`."
#[test]
fn none_comes_before_every_some_in_conditions_and_order() {
    with_db(|| {
        Note::create_table(TableOptions::new())?;
        Note::batch_write([
            Note { id: 1, due: None },
            Note { id: 2, due: Some(3) },
            Note { id: 3, due: Some(9) },
        ])?;
        let ids = |mut v: Vec<Note>| {
            v.sort_by_key(|n| n.id);
            v.into_iter().map(|n| n.id).collect::<Vec<_>>()
        };
        assert_eq!(ids(Note::select(Note::DUE.lt(Some(5)))?), [1, 2]);
        assert_eq!(ids(Note::select(Note::DUE.gt(None))?), [2, 3]);
        let ordered: Vec<u32> = Note::query().order_by(Note::DUE).all()?.into_iter().map(|n| n.id).collect();
        assert_eq!(ordered, [1, 2, 3]);
        Ok(())
    });
}

/// "a thread spawned inside does not inherit it: clone the handle and call `scope` there
/// too".
#[test]
fn a_thread_spawned_inside_a_scope_does_not_inherit_it() {
    with_db(|| {
        Ticket::create_table(TableOptions::new())?;
        let inside = std::thread::spawn(Ticket::count).join().expect("thread");
        assert!(matches!(inside, Err(Error::NoDatabase)), "{inside:?}");
        assert_eq!(Ticket::count()?, 0, "the scope itself still has it");
        Ok(())
    });
}

/// A second opening of a directory already open is refused by its lock (as another process
/// is: the lock is a file lock held by the open database).
#[test]
fn a_directory_open_elsewhere_is_refused() {
    let dir = tests::schema_dir();
    let db = Database::open(Config::default().dir(dir.path())).expect("open");
    match Database::open(Config::default().dir(dir.path())) {
        Err(e @ Error::Locked { .. }) => assert!(e.to_string().contains("open in another process"), "{e}"),
        other => panic!("{other:?}"),
    }
    db.close().expect("close");
    drop(db);
    Database::open(Config::default().dir(dir.path())).expect("open once released");
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct OnDisc {
    #[key]
    id: u32,
    n: i64,
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct OnlyOnDisc {
    #[key]
    id: u32,
    n: i64,
}

/// "a transaction may mix all three storage types": all or nothing across them, and the
/// disc parts survive a reopen.
#[test]
fn a_transaction_mixes_all_three_storage_types() {
    let dir = tests::schema_dir();
    let open = || Database::open(Config::default().dir(dir.path())).expect("open");
    let db = open();
    db.scope(|| -> mnesia::Result<()> {
        Ticket::create_table(TableOptions::new())?;
        OnDisc::create_table(TableOptions::new().disc_copies(["local@localhost"]))?;
        OnlyOnDisc::create_table(TableOptions::new().disc_only_copies(["local@localhost"]))?;
        let aborted: mnesia::Result<()> = mnesia::transaction(|| {
            Ticket::write(ticket(1, "ram"))?;
            OnDisc::write(OnDisc { id: 1, n: 1 })?;
            OnlyOnDisc::write(OnlyOnDisc { id: 1, n: 1 })?;
            Err(Error::abort("no"))
        });
        assert!(aborted.is_err());
        assert_eq!((Ticket::count()?, OnDisc::count()?, OnlyOnDisc::count()?), (0, 0, 0));
        mnesia::transaction(|| {
            Ticket::write(ticket(1, "ram"))?;
            OnDisc::write(OnDisc { id: 1, n: 2 })?;
            OnlyOnDisc::write(OnlyOnDisc { id: 1, n: 3 })?;
            Ok::<_, Error>(())
        })?;
        assert_eq!((Ticket::count()?, OnDisc::count()?, OnlyOnDisc::count()?), (1, 1, 1));
        Ok(())
    })
    .expect("first run");
    db.close().expect("close");
    drop(db);
    let db = open();
    db.scope(|| -> mnesia::Result<()> {
        assert_eq!(OnDisc::read(&1)?.map(|r| r.n), Some(2));
        assert_eq!(OnlyOnDisc::read(&1)?.map(|r| r.n), Some(3));
        Ok(())
    })
    .expect("second run");
}

/// The blocking `for event in subscription` loop of the README: it waits for each event in
/// commit order, and a `break` on `Dropped` ends it.
#[test]
fn a_blocking_for_loop_over_a_subscription_sees_every_event() {
    let db = Database::in_memory().expect("db");
    db.scope(|| Ticket::create_table(TableOptions::new())).expect("table");
    let events = db.scope(Ticket::subscribe).expect("subscribe");
    let listener = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for event in events {
            match event {
                Event::Write { new, .. } => seen.push(new.title),
                Event::Delete { .. } => seen.push("delete".into()),
                Event::Dropped => break,
                _ => {}
            }
        }
        seen
    });
    db.scope(|| -> mnesia::Result<()> {
        Ticket::write(ticket(1, "a"))?;
        Ticket::write(ticket(2, "b"))?;
        Ticket::delete(&1)?;
        Ticket::drop_table()
    })
    .expect("writes");
    assert_eq!(listener.join().expect("listener"), ["a", "b", "delete"]);
}

/// "`system_info()` ... retries": a conflict that runs a transaction again is counted.
#[test]
fn system_info_counts_retries() {
    let db = Database::open(Config::default()).expect("db");
    db.create_table::<Ticket>(TableOptions::new()).expect("table");
    db.scope(|| Ticket::write(ticket(1, "x"))).expect("seed");
    let before = db.system_info();
    let mut first = true;
    db.transaction(|tx| {
        let t = tx.read::<Ticket>(&1)?;
        if std::mem::take(&mut first) {
            // Another thread changes what this attempt read: it runs again.
            std::thread::scope(|s| {
                s.spawn(|| db.scope(|| Ticket::update(&1, |t| t.title.push('!'))))
                    .join()
                    .expect("join")
                    .expect("update");
            });
        }
        tx.write(ticket(2, &t.map(|t| t.title).unwrap_or_default()))?;
        Ok::<_, Error>(())
    })
    .expect("transaction");
    let after = db.system_info();
    assert_eq!(after.retries - before.retries, 1);
    assert_eq!(db.scope(|| Ticket::read(&2)).expect("read").map(|t| t.title), Some("x!".to_owned()));
}

/// The reaper removes expired records "in commits of at most 1000 keys" (and
/// `cleanup_expired` the same way).
#[test]
fn expired_records_are_removed_1000_a_commit() {
    let db = Database::open(Config::default().auto_cleanup(false)).expect("db");
    db.scope(|| -> mnesia::Result<()> {
        Token::create_table(TableOptions::new())?;
        for id in 0..2500 {
            Token::write_with_ttl(Token { id, expires_at: None }, Duration::from_millis(1))?;
        }
        Ok(())
    })
    .expect("setup");
    std::thread::sleep(Duration::from_millis(20));
    let before = db.system_info().commits;
    assert_eq!(db.cleanup_expired().expect("cleanup"), 2500);
    assert_eq!(db.system_info().commits - before, 3, "1000 + 1000 + 500");
}
