//! Record expiry: a record past its `#[ttl]` deadline is never returned by any read, even
//! before the reaper removes it; the reaper removes exactly what expired, in batches, as
//! logged commits that subscribers see as `Delete { cause: Expired }`; deadlines survive a
//! restart of a disc table.

use std::time::{Duration, SystemTime};

use mnesia::prelude::*;
use mnesia::{DeleteCause, Error, Event, ManualClock};

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Session {
    #[key]
    token: String,
    #[index]
    user: u64,
    #[index(unique)]
    handle: String,
    #[ttl]
    expires_at: Option<SystemTime>,
}

/// Every record has a deadline: the field is not an `Option`.
#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(type = "ordered_set")]
struct Lease {
    #[key]
    id: u64,
    #[ttl]
    until: SystemTime,
}

/// A default lifetime for records written without a deadline.
#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(ttl = "1h")]
struct Cache {
    #[key]
    id: u64,
    value: String,
    #[ttl]
    expires_at: Option<SystemTime>,
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(type = "bag")]
struct Mark {
    #[key]
    item: u32,
    label: String,
    #[ttl]
    expires_at: Option<SystemTime>,
}

fn session(token: &str, user: u64) -> Session {
    Session { token: token.into(), user, handle: format!("h-{token}"), expires_at: None }
}

/// A database whose reaper runs only when asked, on a clock that moves only when told.
fn manual() -> (Database, ManualClock) {
    let clock = ManualClock::starting_now();
    let db = Database::open(Config::default().auto_cleanup(false).clock(clock.clone())).expect("db");
    (db, clock)
}

fn key(s: &str) -> String {
    s.to_owned()
}

const SHORT: Duration = Duration::from_millis(50);

/// Moves the clock past [`SHORT`]: what was written with it has expired.
fn past_short(clock: &ManualClock) {
    clock.advance(SHORT + Duration::from_millis(1));
}

#[test]
fn an_expired_record_is_invisible_to_every_read_then_gone_after_the_reaper() {
    let (db, clock) = manual();
    db.scope(|| -> mnesia::Result<()> {
        Session::create_table(TableOptions::new())?;
        Session::write_with_ttl(session("a", 1), SHORT)?;
        Session::write(session("b", 1))?;
        let before = Session::table_info()?;
        assert_eq!(Session::count()?, 2);
        assert!(Session::read(&key("a"))?.is_some());
        past_short(&clock);

        assert_eq!(Session::read(&key("a"))?, None);
        assert_eq!(Session::dirty_read(&key("a"))?, None);
        assert_eq!(Session::read_all(&key("a"))?, Vec::<Session>::new());
        assert_eq!(Session::count()?, 1);
        assert_eq!(Session::all_keys()?, vec![key("b")]);
        assert_eq!(Session::select(Session::USER.eq(1))?.len(), 1);
        assert_eq!(Session::dirty_select(Session::USER.eq(1))?.len(), 1);
        assert_eq!(Session::get_by(Session::HANDLE, "h-a")?, None);
        assert_eq!(Session::dirty_get_by(Session::HANDLE, "h-a")?, None);
        assert_eq!(Session::query().count()?, 1);
        assert_eq!(Session::query().all()?.len(), 1);
        assert_eq!(Session::query().iter().collect::<mnesia::Result<Vec<_>>>()?.len(), 1);
        assert!(matches!(Session::ttl(&key("a")), Err(Error::NotFound { .. })));
        assert!(matches!(Session::update(&key("a"), |_| ()), Err(Error::NotFound { .. })));
        assert_eq!(Session::delete(&key("a"))?, None, "nothing visible to delete");
        // Still stored until the reaper runs.
        assert_eq!(Session::table_info()?.size, 2);

        assert_eq!(db.cleanup_expired()?, 1);
        let after = Session::table_info()?;
        assert_eq!((after.size, after.expiring), (1, 0));
        assert!(after.memory < before.memory, "{} -> {}", before.memory, after.memory);
        assert_eq!(Session::cleanup_expired()?, 0, "nothing left to remove");
        Ok(())
    })
    .expect("body");
}

#[test]
fn the_reaper_thread_removes_expired_records_on_its_own() {
    let db = Database::open(Config::default().cleanup_interval(Duration::from_millis(10))).expect("db");
    db.scope(|| -> mnesia::Result<()> {
        Session::create_table(TableOptions::new())?;
        for i in 0..100 {
            Session::write_with_ttl(session(&format!("s{i}"), i), Duration::from_millis(5))?;
        }
        Session::write(session("kept", 1))?;
        // Waits for the reaper, for as long as a loaded machine may need.
        for _ in 0..1000 {
            if Session::table_info()?.size == 1 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(Session::table_info()?.size, 1);
        assert!(Session::read(&key("kept"))?.is_some());
        Ok(())
    })
    .expect("body");
}

/// The reaper and every read go by the database's clock, not the wall clock: with a manual
/// clock, nothing expires until the clock passes the deadline, however long the reaper runs.
#[test]
fn the_reaper_goes_by_the_databases_clock() {
    let clock = ManualClock::starting_now();
    let db =
        Database::open(Config::default().cleanup_interval(Duration::from_millis(2)).clock(clock.clone()))
            .expect("db");
    db.scope(|| -> mnesia::Result<()> {
        Session::create_table(TableOptions::new())?;
        Session::write_with_ttl(session("a", 1), Duration::from_millis(1))?;
        // Many reaper passes on the wall clock, none on the database's.
        std::thread::sleep(Duration::from_millis(50));
        assert!(Session::read(&key("a"))?.is_some());
        assert_eq!(Session::table_info()?.size, 1);
        clock.advance(Duration::from_millis(1));
        assert_eq!(Session::read(&key("a"))?, None, "expired at its deadline exactly");
        for _ in 0..1000 {
            if Session::table_info()?.size == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(Session::table_info()?.size, 0, "the reaper removed it");
        Ok(())
    })
    .expect("body");
}

#[test]
fn ttl_expire_and_persist_set_read_and_clear_the_deadline() {
    let (db, clock) = manual();
    db.scope(|| -> mnesia::Result<()> {
        Session::create_table(TableOptions::new())?;
        Session::write(session("a", 1))?;
        assert_eq!(Session::ttl(&key("a"))?, None);
        Session::expire(&key("a"), Duration::from_secs(60))?;
        let left = Session::ttl(&key("a"))?.expect("deadline");
        assert!(left <= Duration::from_secs(60) && left > Duration::from_secs(50), "{left:?}");
        assert_eq!(Session::table_info()?.expiring, 1);
        Session::persist(&key("a"))?;
        assert_eq!(Session::ttl(&key("a"))?, None);
        assert_eq!(Session::read(&key("a"))?.and_then(|s| s.expires_at), None);
        assert_eq!(Session::table_info()?.expiring, 0);
        assert!(matches!(Session::expire(&key("zz"), SHORT), Err(Error::NotFound { .. })));
        assert!(matches!(Session::persist(&key("zz")), Err(Error::NotFound { .. })));
        assert!(matches!(Session::ttl(&key("zz")), Err(Error::NotFound { .. })));
        // A deadline set by the caller in the field works the same.
        let mut s = session("c", 3);
        s.expires_at = Some(clock.now() + SHORT);
        Session::insert(s)?;
        past_short(&clock);
        assert_eq!(Session::read(&key("c"))?, None);
        // A new record may take an expired record's key.
        Session::insert(session("c", 4))?;
        assert_eq!(Session::read(&key("c"))?.map(|s| s.user), Some(4));
        assert_eq!(db.cleanup_expired()?, 0, "the expired record was replaced, not left behind");
        Ok(())
    })
    .expect("body");
}

#[test]
fn expiry_functions_are_transactional() {
    let (db, clock) = manual();
    db.scope(|| -> mnesia::Result<()> {
        Session::create_table(TableOptions::new())?;
        Session::write(session("a", 1))?;
        let r: mnesia::Result<()> = mnesia::transaction(|| {
            Session::expire(&key("a"), Duration::from_millis(1))?;
            Session::write_with_ttl(session("b", 2), Duration::from_millis(1))?;
            Err(Error::Invalid("abort".into()))
        });
        assert!(r.is_err());
        clock.advance(Duration::from_millis(10));
        assert!(Session::read(&key("a"))?.is_some_and(|s| s.expires_at.is_none()));
        assert_eq!(Session::read(&key("b"))?, None);
        assert_eq!(Session::table_info()?.expiring, 0);
        Ok(())
    })
    .expect("body");
}

#[test]
fn a_plain_systemtime_deadline_cannot_be_cleared() {
    let (db, clock) = manual();
    db.scope(|| -> mnesia::Result<()> {
        Lease::create_table(TableOptions::new())?;
        Lease::write(Lease { id: 1, until: clock.now() + Duration::from_secs(60) })?;
        Lease::write(Lease { id: 2, until: clock.now() + SHORT })?;
        Lease::write(Lease { id: 3, until: SystemTime::UNIX_EPOCH })?;
        assert!(matches!(Lease::persist(&1), Err(Error::Invalid(_))));
        assert!(Lease::ttl(&1)?.is_some());
        assert_eq!(Lease::all_keys()?, vec![1, 2], "a deadline in the past is expired at once");
        past_short(&clock);
        assert_eq!(Lease::all_keys()?, vec![1]);
        assert_eq!(Lease::query().first()?.map(|l| l.id), Some(1));
        assert_eq!(db.cleanup_expired()?, 2);
        Ok(())
    })
    .expect("body");
}

#[test]
fn a_default_lifetime_applies_to_records_written_without_a_deadline() {
    let (db, clock) = manual();
    db.scope(|| -> mnesia::Result<()> {
        Cache::create_table(TableOptions::new())?;
        assert_eq!(Cache::DEFAULT_TTL, Some(Duration::from_secs(3600)));
        let c = Cache::write(Cache { id: 1, value: "v".into(), expires_at: None })?;
        assert!(c.expires_at.is_some(), "the returned record shows its deadline");
        assert_eq!(Cache::ttl(&1)?, Some(Duration::from_secs(3600)), "the default deadline");
        // A record's own deadline wins.
        Cache::write_with_ttl(Cache { id: 2, value: "w".into(), expires_at: None }, SHORT)?;
        assert_eq!(Cache::ttl(&2)?, Some(SHORT));
        // An update keeps the deadline; clearing it gives the default again, from now.
        clock.advance(Duration::from_millis(10));
        Cache::update(&2, |c| c.value = "x".into())?;
        assert_eq!(Cache::ttl(&2)?, Some(SHORT - Duration::from_millis(10)));
        Cache::update(&1, |c| c.expires_at = None)?;
        assert_eq!(Cache::ttl(&1)?, Some(Duration::from_secs(3600)));
        assert!(matches!(Cache::persist(&1), Err(Error::Invalid(_))));
        let info = Cache::table_info()?;
        assert_eq!((info.ttl_field.as_deref(), info.default_ttl), (Some("expires_at"), Cache::DEFAULT_TTL));
        Ok(())
    })
    .expect("body");
}

#[test]
fn an_expired_records_unique_value_is_free_for_another_key() {
    let (db, clock) = manual();
    db.scope(|| -> mnesia::Result<()> {
        Session::create_table(TableOptions::new())?;
        let events = Session::subscribe()?;
        Session::write_with_ttl(Session { handle: "ann".into(), ..session("a", 1) }, SHORT)?;
        assert!(matches!(
            Session::write(Session { handle: "ann".into(), ..session("b", 2) }),
            Err(Error::UniqueViolation { .. })
        ));
        past_short(&clock);
        // The write removes the expired holder of the value first, as the reaper would.
        Session::write(Session { handle: "ann".into(), ..session("b", 2) })?;
        assert_eq!(Session::get_by(Session::HANDLE, "ann")?.map(|s| s.token), Some(key("b")));
        assert_eq!(Session::table_info()?.size, 1);
        assert_eq!(db.cleanup_expired()?, 0);
        let got: Vec<Event<Session>> = std::iter::from_fn(|| events.try_recv()).collect();
        assert!(
            matches!(
                got.as_slice(),
                [Event::Write { .. }, Event::Delete { cause: DeleteCause::Expired, .. }, Event::Write { .. }]
            ),
            "{got:?}"
        );
        // The unique value stays taken by the live record.
        assert!(matches!(
            Session::write(Session { handle: "ann".into(), ..session("c", 3) }),
            Err(Error::UniqueViolation { .. })
        ));
        Ok(())
    })
    .expect("body");
}

#[test]
fn a_write_over_an_expired_record_reports_the_expiry_first() {
    let (db, clock) = manual();
    db.scope(|| -> mnesia::Result<()> {
        Session::create_table(TableOptions::new())?;
        Mark::create_table(TableOptions::new())?;
        let events = Session::subscribe_detailed()?;
        Session::write_with_ttl(session("a", 1), SHORT)?;
        past_short(&clock);
        Session::write(session("a", 2))?;
        let got: Vec<Event<Session>> = std::iter::from_fn(|| events.try_recv()).collect();
        match got.as_slice() {
            [
                Event::Write { old: None, .. },
                Event::Delete { old: Some(gone), cause: DeleteCause::Expired, .. },
                Event::Write { new, old: None },
            ] => assert_eq!((gone.user, new.user), (1, 2)),
            other => panic!("{other:?}"),
        }
        // Bag records that differ only by their deadline become one record.
        Mark::write_with_ttl(Mark { item: 1, label: "x".into(), expires_at: None }, Duration::from_secs(60))?;
        Mark::write_with_ttl(Mark { item: 1, label: "x".into(), expires_at: None }, Duration::from_secs(90))?;
        assert_eq!(Mark::read_all(&1)?.len(), 2);
        Mark::persist(&1)?;
        assert_eq!(Mark::read_all(&1)?, vec![Mark { item: 1, label: "x".into(), expires_at: None }]);
        Ok(())
    })
    .expect("body");
}

#[test]
fn closing_stops_the_reaper_so_the_directory_opens_again_at_once() {
    let dir = tests::schema_dir();
    for round in 0..3 {
        let db = Database::open(Config::default().dir(dir.path()).cleanup_interval(Duration::from_millis(1)))
            .expect("open");
        db.scope(|| -> mnesia::Result<()> {
            if round == 0 {
                Session::create_table(TableOptions::new().disc_copies(["local@localhost"]))?;
            }
            for i in 0..200 {
                Session::write_with_ttl(session(&format!("{round}-{i}"), i), Duration::from_millis(1))?;
            }
            Ok(())
        })
        .expect("body");
        db.close().expect("close");
        drop(db);
    }
}

#[test]
fn expiry_deletes_reach_subscribers_with_the_cause_expired() {
    let (db, clock) = manual();
    db.scope(|| -> mnesia::Result<()> {
        Session::create_table(TableOptions::new())?;
        Mark::create_table(TableOptions::new())?;
        let sessions = Session::subscribe_detailed()?;
        let marks = Mark::subscribe()?;
        Session::write_with_ttl(session("a", 1), SHORT)?;
        Session::write(session("b", 1))?;
        Mark::write_with_ttl(Mark { item: 1, label: "short".into(), expires_at: None }, SHORT)?;
        Mark::write(Mark { item: 1, label: "long".into(), expires_at: None })?;
        past_short(&clock);
        assert_eq!(Mark::read_all(&1)?.len(), 1);
        assert_eq!(db.cleanup_expired()?, 2);
        let got: Vec<Event<Session>> = std::iter::from_fn(|| sessions.try_recv()).collect();
        assert_eq!(got.len(), 3, "{got:?}");
        match &got[2] {
            Event::Delete { key, old: Some(old), cause: DeleteCause::Expired } => {
                assert_eq!((key.as_str(), old.user), ("a", 1));
            }
            other => panic!("{other:?}"),
        }
        let got: Vec<Event<Mark>> = std::iter::from_fn(|| marks.try_recv()).collect();
        assert!(
            matches!(
                got.as_slice(),
                [
                    Event::Write { .. },
                    Event::Write { .. },
                    Event::Delete { key: 1, cause: DeleteCause::Expired, .. }
                ]
            ),
            "{got:?}"
        );
        assert_eq!(Mark::read_all(&1)?.iter().map(|m| m.label.as_str()).collect::<Vec<_>>(), ["long"]);
        assert_eq!(Mark::table_info()?.size, 1);
        Ok(())
    })
    .expect("body");
}

#[test]
fn the_reaper_removes_100k_in_batches_while_writers_commit() {
    let (db, clock) = manual();
    db.scope(|| -> mnesia::Result<()> {
        Session::create_table(TableOptions::new())?;
        let n = 100_000u64;
        let chunk: Vec<u64> = (0..n).collect();
        for part in chunk.chunks(10_000) {
            let deadline = Some(clock.now());
            Session::batch_write(part.iter().map(|i| Session {
                token: format!("old{i}"),
                user: *i,
                handle: format!("old{i}"),
                expires_at: deadline,
            }))?;
        }
        clock.advance(Duration::from_millis(5));
        assert_eq!(Session::count()?, 0);
        let writers: Vec<_> = (0..2)
            .map(|w| {
                let db = db.clone();
                std::thread::spawn(move || {
                    db.scope(|| {
                        for i in 0..2_000u64 {
                            Session::write(session(&format!("new{w}-{i}"), i)).expect("write");
                        }
                    })
                })
            })
            .collect();
        let removed = db.cleanup_expired()?;
        for w in writers {
            w.join().expect("writer");
        }
        assert_eq!(removed, n as usize);
        let info = Session::table_info()?;
        assert_eq!((info.size, info.expiring), (4_000, 0));
        assert_eq!(Session::count()?, 4_000);
        Ok(())
    })
    .expect("body");
}

#[test]
fn deadlines_survive_a_restart_of_a_disc_table() {
    let dir = tests::schema_dir();
    let disc = |storage: StorageType| match storage {
        StorageType::DiscOnlyCopies => TableOptions::<Session>::new().disc_only_copies(["local@localhost"]),
        _ => TableOptions::<Session>::new().disc_copies(["local@localhost"]),
    };
    let clock = ManualClock::starting_now();
    for storage in [StorageType::DiscCopies, StorageType::DiscOnlyCopies] {
        let open = || {
            Database::open(Config::default().dir(dir.path()).auto_cleanup(false).clock(clock.clone()))
                .expect("open")
        };
        let db = open();
        db.scope(|| -> mnesia::Result<()> {
            Session::create_table(disc(storage))?;
            Session::write_with_ttl(session("long", 1), Duration::from_secs(3600))?;
            Session::write_with_ttl(session("short", 2), SHORT)?;
            Session::write(session("never", 3))?;
            Ok(())
        })
        .expect("first run");
        let long_deadline =
            db.scope(|| Session::read(&key("long"))).expect("read").and_then(|s| s.expires_at);
        db.close().expect("close");
        drop(db);
        past_short(&clock);

        let db = open();
        db.scope(|| -> mnesia::Result<()> {
            assert_eq!(Session::read(&key("long"))?.and_then(|s| s.expires_at), long_deadline);
            assert_eq!(Session::read(&key("short"))?, None);
            assert_eq!(Session::table_info()?.expiring, 2);
            assert_eq!(db.cleanup_expired()?, 1);
            Ok(())
        })
        .expect("second run");
        // The expiry delete was logged: it stays deleted.
        drop(db);
        let db = open();
        db.scope(|| -> mnesia::Result<()> {
            assert_eq!(Session::table_info()?.size, 2);
            assert_eq!(Session::all_keys()?.len(), 2);
            Session::drop_table()?;
            Ok(())
        })
        .expect("third run");
        db.close().expect("close");
    }
}

#[test]
fn expiry_deletes_and_deadlines_survive_a_crash() {
    let dir = tests::schema_dir();
    let clock = ManualClock::starting_now();
    let db = Database::open(Config::default().dir(dir.path()).auto_cleanup(false).clock(clock.clone()))
        .expect("open");
    db.scope(|| -> mnesia::Result<()> {
        Session::create_table(TableOptions::new().disc_copies(["local@localhost"]))?;
        for i in 0..50 {
            Session::write_with_ttl(session(&format!("gone{i}"), i), Duration::from_millis(1))?;
            Session::write_with_ttl(session(&format!("kept{i}"), i), Duration::from_secs(3600))?;
        }
        clock.advance(Duration::from_millis(70));
        assert_eq!(db.cleanup_expired()?, 50);
        Ok(())
    })
    .expect("first run");
    let kept = db.scope(|| Session::read(&key("kept7"))).expect("read").and_then(|s| s.expires_at);
    // What a SIGKILL would leave: the files as they are, with the database still open.
    let image = tests::crash_image(dir.path());
    drop(db);
    let db =
        Database::open(Config::default().dir(image.path()).auto_cleanup(false).clock(clock)).expect("reopen");
    db.scope(|| -> mnesia::Result<()> {
        let info = Session::table_info()?;
        assert_eq!((info.size, info.expiring), (50, 50), "the expiry deletes were logged");
        assert_eq!(Session::read(&key("kept7"))?.and_then(|s| s.expires_at), kept);
        assert_eq!(db.cleanup_expired()?, 0);
        Ok(())
    })
    .expect("after the crash");
}
