//! The replication seam: a database hands each commit to a sink as a `CommitRecord`, and a
//! second database applies them. Under a concurrent workload of transactions, dirty
//! operations and batches on all three table types (indexes, auto-increment ids, a bag, a
//! TTL table reaped by a manual clock), the replica ends with the same records as the
//! primary, and its subscribers see the same events in the same order, table by table.

use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use mnesia::prelude::*;
use mnesia::{CommitRecord, Error, ManualClock};

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Member {
    #[key]
    #[auto_increment]
    id: u64,
    #[index(unique)]
    email: String,
    #[index]
    level: u32,
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(type = "ordered_set")]
struct Reading {
    #[key]
    at: (u32, u32),
    value: i64,
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(type = "bag")]
struct Label {
    #[key]
    item: u32,
    text: String,
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Session {
    #[key]
    token: String,
    #[ttl]
    expires: Option<SystemTime>,
}

fn opts<T: Table>(db: &Database, disc: bool) -> TableOptions<T> {
    if disc { TableOptions::new().disc_copies([db.node()]) } else { TableOptions::new() }
}

fn create(db: &Database, disc: bool) {
    db.scope(|| -> mnesia::Result<()> {
        Member::create_table(opts(db, disc))?;
        Reading::create_table(opts(db, disc))?;
        Label::create_table(opts(db, disc))?;
        Session::create_table(opts(db, disc))?;
        Ok(())
    })
    .expect("tables");
}

/// Every event of every table, in order, as text.
struct Heard {
    members: mnesia::Subscription<Member>,
    readings: mnesia::Subscription<Reading>,
    labels: mnesia::Subscription<Label>,
    sessions: mnesia::Subscription<Session>,
}

impl Heard {
    fn new(db: &Database) -> Heard {
        db.scope(|| Heard {
            members: Member::subscribe_detailed().expect("sub"),
            readings: Reading::subscribe_detailed().expect("sub"),
            labels: Label::subscribe_detailed().expect("sub"),
            sessions: Session::subscribe_detailed().expect("sub"),
        })
    }

    fn drain(&self) -> [Vec<String>; 4] {
        fn all<T: Table + std::fmt::Debug>(s: &mnesia::Subscription<T>) -> Vec<String> {
            std::iter::from_fn(|| s.try_recv()).map(|e| format!("{e:?}")).collect()
        }
        [all(&self.members), all(&self.readings), all(&self.labels), all(&self.sessions)]
    }
}

/// Hands every commit of `primary` to `replica` as it is made.
fn feed(primary: &Database, replica: &Database) {
    let replica = replica.clone();
    primary.replicate_to(move |r: &CommitRecord| replica.apply_commit(r).expect("applies"));
}

/// An in-memory primary feeding a replica opened in `dir` (a new schema there), both with
/// the `Member` table: the replica's made first with `storage(options, its node)`, the
/// primary's creation keeping it.
fn members_on_a_disc_replica(
    dir: &std::path::Path,
    storage: impl Fn(TableOptions<Member>, String) -> TableOptions<Member>,
) -> (Database, Database) {
    mnesia::Schema::create(dir).expect("schema");
    let primary = Database::in_memory().expect("primary");
    let replica = Database::open(Config::default().dir(dir)).expect("open replica");
    let node = replica.node();
    replica.create_table::<Member>(storage(TableOptions::new(), node)).expect("replica's table");
    feed(&primary, &replica);
    primary.create_table::<Member>(TableOptions::new()).expect("create");
    (primary, replica)
}

fn exports(db: &Database) -> Vec<String> {
    db.scope(|| -> mnesia::Result<Vec<String>> {
        let mut out = Vec::new();
        let mut one = |f: &dyn Fn(&mut Vec<u8>) -> mnesia::Result<usize>| -> mnesia::Result<()> {
            let mut buf = Vec::new();
            f(&mut buf)?;
            out.push(String::from_utf8(buf).expect("utf-8"));
            Ok(())
        };
        one(&|b| Member::export_to(b, mnesia::Format::JsonLines))?;
        one(&|b| Reading::export_to(b, mnesia::Format::JsonLines))?;
        one(&|b| Label::export_to(b, mnesia::Format::JsonLines))?;
        one(&|b| Session::export_to(b, mnesia::Format::JsonLines))?;
        Ok(out)
    })
    .expect("exports")
}

/// One step of worker `w`'s workload, picked by `n`.
fn step(w: u32, n: u32, clock: &ManualClock) -> mnesia::Result<()> {
    let k = (n.wrapping_mul(2654435761) >> 7) % 40;
    match n % 9 {
        0 => Member::insert(Member { id: 0, email: format!("m{w}-{n}@x"), level: k % 5 }).map(drop),
        1 => mnesia::transaction(|| {
            if let Some(m) = Member::query().filter(Member::LEVEL.eq(k % 5)).first()? {
                Member::update(&m.id, |m| m.level += 1)?;
            }
            Ok::<_, Error>(())
        }),
        2 => Reading::write(Reading { at: (k, w), value: i64::from(n) }).map(drop),
        3 => Reading::dirty_delete(&(k, w)).map(drop),
        4 => Label::batch_write((0..3).map(|i| Label { item: k, text: format!("{w}.{i}") })).map(drop),
        5 => Label::delete_object(&Label { item: k, text: format!("{w}.1") }).map(drop),
        6 => Session::write_with_ttl(
            Session { token: format!("s{k}"), expires: None },
            Duration::from_secs(u64::from(1 + n % 3)),
        )
        .map(drop),
        7 => Member::dirty_write(Member { id: 10_000 + u64::from(k), email: format!("d{k}@x"), level: 9 })
            .map(drop),
        _ => {
            if w == 0 && n % 27 == 8 {
                clock.advance(Duration::from_secs(1));
                mnesia::cleanup_expired().map(drop)
            } else {
                Member::delete(&u64::from(k)).map(drop)
            }
        }
    }
}

/// Runs the workload on a primary replicating to a replica; with `later`, the records are
/// applied only once the workload is over (the clock then stands past many deadlines: the
/// replica must decide expiry at each record's time, not its own).
fn replicate(disc: bool, later: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000));
    let config = |c: Config| c.clock(clock.clone()).auto_cleanup(false);
    let primary = if disc {
        mnesia::Schema::create(dir.path()).expect("schema");
        Database::open(config(Config::default().dir(dir.path()))).expect("open")
    } else {
        Database::open(config(Config::default())).expect("open")
    };
    let replica = Database::open(config(Config::default().node_name("replica@localhost"))).expect("replica");
    create(&primary, disc);
    create(&replica, false);
    let heard_primary = Heard::new(&primary);
    let heard_replica = Heard::new(&replica);

    let (to_replica, records) = mpsc::channel::<CommitRecord>();
    primary.replicate_to(move |r: &CommitRecord| {
        let _ = to_replica.send(r.clone());
    });
    let applier = {
        let replica = replica.clone();
        std::thread::spawn(move || -> usize {
            let records: Box<dyn Iterator<Item = CommitRecord>> = if later {
                Box::new(records.iter().collect::<Vec<_>>().into_iter())
            } else {
                Box::new(records.iter())
            };
            // Records of one table arrive in commit order.
            let mut last: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
            let mut n = 0;
            for r in records {
                for t in r.tables() {
                    let before = last.insert(t.to_owned(), r.seq()).unwrap_or(0);
                    assert!(r.seq() > before, "table {t}: commit {} arrived after {before}", r.seq());
                }
                replica.apply_commit(&r).expect("applies");
                n += 1;
            }
            n
        })
    };
    let workers: Vec<_> = (0..4u32)
        .map(|w| {
            let (db, clock) = (primary.clone(), clock.clone());
            std::thread::spawn(move || {
                db.scope(|| {
                    for n in 0..400u32 {
                        match step(w, n, &clock) {
                            Ok(()) | Err(Error::UniqueViolation { .. }) | Err(Error::NotFound { .. }) => {}
                            Err(e) => panic!("worker {w} step {n}: {e}"),
                        }
                    }
                })
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
    primary.stop_replicating();
    let applied = applier.join().expect("applier");
    assert!(applied > 1000, "only {applied} commit records");

    for (i, (p, r)) in exports(&primary).iter().zip(exports(&replica)).enumerate() {
        let sorted = |t: &str| {
            let mut v: Vec<String> = t.lines().map(str::to_owned).collect();
            v.sort();
            v
        };
        let (p, r) = (sorted(p), sorted(&r));
        let only_p: Vec<&String> = p.iter().filter(|l| !r.contains(l)).take(5).collect();
        let only_r: Vec<&String> = r.iter().filter(|l| !p.contains(l)).take(5).collect();
        assert!(
            p == r,
            "table {i}: {} records here, {} on the replica; only here: {only_p:?}; only there: {only_r:?}",
            p.len(),
            r.len()
        );
    }
    let (p, r) = (heard_primary.drain(), heard_replica.drain());
    for (i, (p, r)) in p.iter().zip(&r).enumerate() {
        assert!(!p.is_empty(), "table {i} had events");
        if let Some(at) = p.iter().zip(r).position(|(a, b)| a != b) {
            panic!("table {i}: events differ at {at} of {}/{}: {} | {}", p.len(), r.len(), p[at], r[at]);
        }
        assert_eq!(p.len(), r.len(), "table {i}: as many events");
    }
    assert!(p[3].iter().any(|e| e.contains("Expired")), "the reaper's removals are replicated as expiries");
    let counter = |db: &Database| db.scope(Member::table_info).expect("info").counter;
    assert!(counter(&replica) <= counter(&primary));
    if disc {
        // Recovery (the log replayed: the primary is dropped without a closing checkpoint)
        // makes what the live commits made: opened again, it holds what the replica holds.
        drop((heard_primary, heard_replica));
        drop(primary);
        let recovered = Database::open(config(Config::default().dir(dir.path()))).expect("open again");
        for (i, (p, r)) in exports(&recovered).iter().zip(exports(&replica)).enumerate() {
            let sorted = |t: &str| {
                let mut v: Vec<String> = t.lines().map(str::to_owned).collect();
                v.sort();
                v
            };
            assert!(
                sorted(p) == sorted(&r),
                "table {i}: recovered from the log, it differs from the replica"
            );
        }
    }
}

#[test]
fn a_replica_fed_the_commit_records_of_ram_tables_matches_the_primary() {
    replicate(false, false);
}

#[test]
fn a_replica_fed_the_commit_records_of_disc_tables_matches_the_primary() {
    replicate(true, false);
}

#[test]
fn a_replica_applying_the_records_late_decides_expiry_at_each_commits_time() {
    replicate(false, true);
}

#[test]
fn records_cross_a_serde_format_and_named_counters_replicate() {
    let primary = Database::in_memory().expect("db");
    let replica = Database::in_memory().expect("replica");
    create(&primary, false);
    create(&replica, false);
    let (tx, rx) = mpsc::channel::<String>();
    primary.replicate_to(move |r: &CommitRecord| {
        let _ = tx.send(serde_json::to_string(r).expect("to JSON"));
    });
    primary
        .scope(|| -> mnesia::Result<()> {
            Member::insert(Member { id: 0, email: "a@x".into(), level: 1 })?;
            Label::write(Label { item: 1, text: "one".into() })?;
            mnesia::dirty_update_counter("hits", 5)?;
            mnesia::dirty_update_counter("hits", 2)?;
            Ok(())
        })
        .expect("writes");
    for text in rx.try_iter() {
        let record: CommitRecord = serde_json::from_str(&text).expect("from JSON");
        replica.apply_commit(&record).expect("applies");
    }
    replica
        .scope(|| -> mnesia::Result<()> {
            assert_eq!(Member::read(&1)?.map(|m| m.email), Some("a@x".to_string()));
            assert_eq!(Label::read_all(&1)?.len(), 1);
            assert_eq!(mnesia::current_value("hits")?, 7);
            Ok(())
        })
        .expect("replica");
}

#[test]
fn a_sink_that_writes_to_its_own_database_is_refused_and_one_that_panics_stops_replication() {
    let db = Database::in_memory().expect("db");
    create(&db, false);
    let inner = db.clone();
    let (tx, rx) = mpsc::channel::<String>();
    db.replicate_to(move |r: &CommitRecord| {
        if r.tables() == ["label"] {
            let refused = inner.scope(|| Label::write(Label { item: 9, text: "from the sink".into() }));
            let _ = tx.send(format!("{refused:?}"));
        }
    });
    db.scope(|| Label::write(Label { item: 1, text: "x".into() })).expect("the commit stands");
    let said = rx.try_recv().expect("the sink ran");
    assert!(said.contains("must not write to the database it serves"), "{said}");
    assert_eq!(db.scope(|| Label::read_all(&9)).expect("read"), Vec::<Label>::new());

    db.replicate_to(|_: &CommitRecord| panic!("a sink that fails"));
    db.scope(|| Label::write(Label { item: 2, text: "y".into() })).expect("the commit stands");
    assert_eq!(db.scope(|| Label::read_all(&2)).expect("read").len(), 1);
    // Replication stopped: what it cannot tell is allowed again.
    db.scope(Label::clear).expect("clear without a sink");
}

#[test]
fn a_restore_that_recreates_tables_reaches_the_replica() {
    let dir = tempfile::tempdir().expect("tempdir");
    let primary = Database::in_memory().expect("primary");
    let replica = Database::in_memory().expect("replica");
    feed(&primary, &replica);
    create(&primary, false);
    primary
        .scope(|| -> mnesia::Result<()> {
            for i in 0..10 {
                Member::insert(Member { id: 0, email: format!("m{i}@x"), level: i })?;
            }
            Label::write(Label { item: 1, text: "one".into() })?;
            Label::write(Label { item: 1, text: "uno".into() })?;
            Ok(())
        })
        .expect("writes");
    primary.add_index(Label::TEXT.index_spec(false)).expect("index");
    let backup = dir.path().join("all.bak");
    primary.backup(&backup).expect("backup");
    // Changed since the backup: records, an index removed, the counter moved on.
    primary
        .scope(|| -> mnesia::Result<()> {
            Member::delete(&3)?;
            Member::insert(Member { id: 0, email: "late@x".into(), level: 99 })?;
            Label::clear()?;
            Ok(())
        })
        .expect("changes");
    primary.remove_index::<Label>("text").expect("remove_index");
    let heard = Heard::new(&replica);
    let recreate = mnesia::RestoreOptions::new().all(mnesia::RestoreMode::Recreate);
    let restored = primary.restore(&backup, &recreate).expect("restore");
    assert_eq!(restored, 12);
    for (i, (p, r)) in exports(&primary).iter().zip(exports(&replica)).enumerate() {
        let sorted = |t: &str| {
            let mut v: Vec<String> = t.lines().map(str::to_owned).collect();
            v.sort();
            v
        };
        assert_eq!(sorted(p), sorted(&r), "table {i}");
    }
    for db in [&primary, &replica] {
        let members = db.table_info::<Member>().expect("info");
        // The records as the backup holds them; the counter never below an id handed out.
        assert_eq!((members.size, members.counter), (10, 11));
        let labels = db.table_info::<Label>().expect("info");
        assert_eq!(labels.indexes.len(), 1, "the backup's index is back");
        assert_eq!(db.scope(|| Label::read_all(&1)).expect("labels").len(), 2);
    }
    // The replica's subscribers heard the tables recreated (their subscriptions end there).
    let [members_heard, _, labels_heard, _] = heard.drain();
    assert_eq!(members_heard, ["Dropped"]);
    assert_eq!(labels_heard, ["Dropped"]);
}

/// A second version of `Member`: the struct `transform` converts its records to.
#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(name = "member")]
struct MemberV2 {
    #[key]
    #[auto_increment]
    id: u64,
    #[index(unique)]
    email: String,
    level: u32,
    vip: bool,
}

#[test]
fn table_creation_drops_and_transforms_reach_a_replica_that_started_empty() {
    let dir = tempfile::tempdir().expect("tempdir");
    mnesia::Schema::create(dir.path()).expect("schema");
    let primary = Database::open(Config::default().dir(dir.path())).expect("open");
    let replica = Database::in_memory().expect("replica");
    feed(&primary, &replica);
    create(&primary, true);
    assert_eq!(replica.tables(), primary.tables(), "created on the replica, before any write");
    let heard = Heard::new(&replica);
    primary
        .scope(|| -> mnesia::Result<()> {
            for i in 0..5 {
                Member::insert(Member { id: 0, email: format!("m{i}@x"), level: i })?;
            }
            Member::delete(&5)?;
            Label::write(Label { item: 1, text: "one".into() })?;
            Ok(())
        })
        .expect("writes");
    // Where the primary keeps a table is its own: the replica is not told, and need not be.
    primary.change_table_copy_type::<Label>(StorageType::DiscOnlyCopies).expect("moved");
    primary.scope(|| Label::write(Label { item: 2, text: "two".into() })).expect("write after the move");
    primary.drop_table::<Reading>().expect("dropped");
    assert!(!replica.tables().contains(&"reading".to_string()), "dropped on the replica");
    let converted = primary
        .transform(|m: Member| Ok(MemberV2 { id: m.id, email: m.email, level: m.level, vip: m.level > 2 }))
        .expect("transformed");
    assert_eq!(converted, 4);
    // The new struct's tables go on: ids after the highest ever handed out.
    let id = primary
        .scope(|| MemberV2::insert(MemberV2 { id: 0, email: "new@x".into(), level: 9, vip: true }))
        .expect("insert after");
    assert_eq!(id.id, 6);
    // Ids handed out without a record, and a counter set back: the replica's counter follows.
    let counter = |db: &Database| db.table_info::<MemberV2>().expect("info").counter;
    assert_eq!(primary.scope(MemberV2::next_id).expect("next_id"), 7);
    assert_eq!(counter(&replica), 7);
    primary.scope(|| MemberV2::reset_counter(3)).expect("reset");
    assert_eq!(counter(&replica), 2);
    primary.scope(|| MemberV2::reset_counter(7)).expect("reset");
    let members = |db: &Database| {
        let mut all = db.scope(MemberV2::list).expect("members");
        all.sort_by_key(|m| m.id);
        all
    };
    assert_eq!(members(&replica), members(&primary));
    assert_eq!(members(&replica).iter().filter(|m| m.vip).count(), 2);
    let info = |db: &Database| db.table_info::<MemberV2>().expect("info");
    let (p, r) = (info(&primary), info(&replica));
    assert_eq!((r.version, r.counter, r.indexes.clone()), (p.version, p.counter, p.indexes.clone()));
    assert_eq!((r.version, r.storage_type), (1, StorageType::RamCopies), "kept where the replica kept it");
    assert_eq!(replica.scope(|| Label::read_all(&2)).expect("labels").len(), 1);
    // The unique index came along: a duplicate is refused on the replica as on the primary.
    let dup =
        replica.scope(|| MemberV2::insert(MemberV2 { id: 0, email: "m1@x".into(), level: 0, vip: false }));
    assert!(matches!(dup, Err(Error::UniqueViolation { .. })), "{dup:?}");
    let [members_heard, readings_heard, _, _] = heard.drain();
    assert_eq!(members_heard.last().map(String::as_str), Some("Dropped"), "{members_heard:?}");
    assert_eq!(readings_heard, ["Dropped"]);
    // Made again: a table of the same shape, empty.
    primary.create_table::<Reading>(TableOptions::new()).expect("created again");
    primary.scope(|| Reading::write(Reading { at: (1, 1), value: 3 })).expect("write");
    assert_eq!(replica.scope(Reading::list).expect("readings"), [Reading { at: (1, 1), value: 3 }]);
}

#[test]
fn a_clear_and_index_changes_reach_the_replica_in_their_place_among_the_commits() {
    let primary = Database::in_memory().expect("db");
    let replica = Database::in_memory().expect("replica");
    create(&primary, false);
    create(&replica, false);
    let heard = Heard::new(&replica);
    feed(&primary, &replica);
    primary
        .scope(|| -> mnesia::Result<()> {
            Label::write(Label { item: 1, text: "before".into() })?;
            Label::write(Label { item: 2, text: "before".into() })?;
            Label::clear()?;
            Label::write(Label { item: 3, text: "after".into() })?;
            Ok(())
        })
        .expect("writes");
    let labels = |db: &Database| db.scope(Label::list).expect("labels");
    assert_eq!(labels(&replica), labels(&primary));
    assert_eq!(labels(&replica), [Label { item: 3, text: "after".into() }]);
    let indexes = |db: &Database| db.table_info::<Label>().expect("info").indexes;
    primary.add_index(Label::TEXT.index_spec(false)).expect("index added");
    assert_eq!(indexes(&replica), indexes(&primary));
    assert_eq!(indexes(&replica).len(), 1);
    assert_eq!(
        replica.scope(|| Label::get_by(Label::TEXT, "after")).expect("by index").map(|l| l.item),
        Some(3)
    );
    primary.remove_index::<Label>("text").expect("index removed");
    assert!(indexes(&replica).is_empty());
    let [_, _, events, _] = heard.drain();
    assert_eq!(events.len(), 4, "{events:?}");
    assert!(events[2].contains("Cleared"), "{events:?}");
}

#[test]
fn a_record_for_a_missing_table_or_with_bytes_that_do_not_decode_changes_nothing() {
    let primary = Database::in_memory().expect("db");
    create(&primary, false);
    let (tx, rx) = mpsc::channel::<CommitRecord>();
    primary.replicate_to(move |r: &CommitRecord| {
        let _ = tx.send(r.clone());
    });
    primary.scope(|| Member::insert(Member { id: 0, email: "a@x".into(), level: 1 })).expect("insert");
    let record = rx.try_recv().expect("a record");
    let empty = Database::in_memory().expect("empty");
    assert!(matches!(empty.apply_commit(&record), Err(Error::NoSuchTable { .. })));
    // A table of the same name with other fields: the bytes do not decode.
    #[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[table(name = "member")]
    struct Other {
        #[key]
        id: u64,
        note: Vec<u64>,
        more: String,
    }
    let other = Database::in_memory().expect("other");
    other.create_table::<Other>(TableOptions::new()).expect("create");
    assert!(other.apply_commit(&record).is_err());
    assert_eq!(other.scope(Other::count).expect("count"), 0);
    // A shorter type whose fields are a prefix of the record's: bytes are left over.
    #[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[table(name = "member")]
    struct Short {
        #[key]
        id: u64,
        email: String,
    }
    let short = Database::in_memory().expect("short");
    short.create_table::<Short>(TableOptions::new()).expect("create");
    match short.apply_commit(&record) {
        Err(e @ Error::SchemaMismatch { .. }) => {
            assert!(e.to_string().contains("left over"), "{e}");
            assert!(e.is_local_failure(), "a copy with another struct must not decide otherwise");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(short.scope(Short::count).expect("count"), 0);
}

#[test]
fn a_transform_reaches_a_replica_keeping_the_table_on_disc_and_survives_its_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let open_replica = || Database::open(Config::default().dir(dir.path())).expect("open replica");
    // The replica keeps its copy on disc only: given beforehand, kept by the creation.
    let (primary, replica) = members_on_a_disc_replica(dir.path(), |o, node| o.disc_only_copies([node]));
    primary
        .scope(|| -> mnesia::Result<()> {
            for i in 0..30 {
                Member::insert(Member { id: 0, email: format!("m{i}@x"), level: i })?;
            }
            Ok(())
        })
        .expect("inserts");
    primary
        .transform(|m: Member| Ok(MemberV2 { id: m.id, email: m.email, level: m.level, vip: m.level >= 20 }))
        .expect("transform");
    primary.stop_replicating();
    let info = replica.table_info::<MemberV2>().expect("info");
    assert_eq!((info.size, info.version, info.counter), (30, 1, 30));
    assert_eq!(info.storage_type, StorageType::DiscCopies, "on disc still (not disc only: a new table)");
    drop(replica);
    let again = open_replica();
    let info = again.table_info::<MemberV2>().expect("info after a restart");
    assert_eq!((info.size, info.version, info.counter), (30, 1, 30));
    let vip = again.scope(|| MemberV2::select(MemberV2::VIP.eq(true))).expect("select");
    assert_eq!(vip.len(), 10);
}

#[test]
fn whole_table_changes_racing_a_transform_and_ids_racing_resets_leave_the_replica_as_the_primary() {
    for round in 0..5 {
        let primary = Database::in_memory().expect("primary");
        let replica = Database::in_memory().expect("replica");
        feed(&primary, &replica);
        primary.create_table::<Member>(TableOptions::new()).expect("create");
        primary
            .scope(|| {
                Member::batch_write((1..=50).map(|id| Member { id, email: format!("m{id}@x"), level: 1 }))
            })
            .expect("members");
        let over = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        // Ids taken, the counter set back and clears, on three threads, while a fourth
        // transforms the table: each lands before the transform (on the old table) or after
        // it on the new one, never on a store put aside, and the sink hears them in that order.
        let racers: Vec<_> = (0..3)
            .map(|t| {
                let (db, over) = (primary.clone(), over.clone());
                std::thread::spawn(move || {
                    db.scope(|| {
                        for n in 0..2_000u64 {
                            let step = match (t, n % 2) {
                                (0, _) => Member::next_id().map(drop),
                                (1, _) => Member::reset_counter(40 + n % 20),
                                (_, 0) => Member::clear(),
                                _ => Member::next_id().map(drop),
                            };
                            match step {
                                Ok(()) => {}
                                Err(Error::TypeMismatch { .. }) => return,
                                Err(e) => panic!("round {round}, thread {t}: {e:?}"),
                            }
                            if over.load(std::sync::atomic::Ordering::SeqCst) {
                                return;
                            }
                        }
                    })
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(1 + round));
        primary
            .transform(|m: Member| Ok(MemberV2 { id: m.id, email: m.email, level: m.level, vip: false }))
            .expect("transform");
        over.store(true, std::sync::atomic::Ordering::SeqCst);
        for r in racers {
            r.join().expect("racer");
        }
        let state = |db: &Database| {
            let info = db.table_info::<MemberV2>().expect("info");
            let mut all = db.scope(MemberV2::list).expect("list");
            all.sort_by_key(|m| m.id);
            (info.counter, info.version, all)
        };
        assert_eq!(state(&replica), state(&primary), "round {round}");
    }
}

#[test]
fn ids_taken_while_the_counter_is_set_back_leave_the_replica_counter_as_the_primary() {
    let primary = Database::in_memory().expect("primary");
    let replica = Database::in_memory().expect("replica");
    feed(&primary, &replica);
    primary.create_table::<Member>(TableOptions::new()).expect("create");
    let counter = |db: &Database| db.table_info::<Member>().expect("info").counter;
    for round in 0..40u64 {
        // Resets to a low value while ids are taken: a claim handed after a reset it came
        // before would leave the replica's counter ahead of the primary's.
        let threads: Vec<_> = (0..2u64)
            .map(|t| {
                let db = primary.clone();
                std::thread::spawn(move || {
                    db.scope(|| {
                        for n in 0..200u64 {
                            if t == 0 {
                                Member::reset_counter(1 + (n + round) % 7).expect("reset");
                            } else {
                                Member::next_id().expect("next_id");
                            }
                        }
                    })
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        assert_eq!(counter(&replica), counter(&primary), "round {round}");
    }
}

#[test]
fn a_recreating_restore_that_cannot_recreate_every_table_changes_nothing_here_or_on_the_replica() {
    // The same fields as `Member`, without its unique index: two records share an email.
    #[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[table(name = "member")]
    struct LooseMember {
        #[key]
        #[auto_increment]
        id: u64,
        email: String,
        level: u32,
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("loose.bak");
    let source = Database::in_memory().expect("source");
    source
        .scope(|| -> mnesia::Result<()> {
            Label::create_table(TableOptions::new())?;
            Label::write(Label { item: 1, text: "from the backup".into() })?;
            LooseMember::create_table(TableOptions::new())?;
            LooseMember::write(LooseMember { id: 1, email: "same@x".into(), level: 1 })?;
            LooseMember::write(LooseMember { id: 2, email: "same@x".into(), level: 2 })?;
            Ok(())
        })
        .expect("source");
    source.backup(&file).expect("backup");
    let primary = Database::in_memory().expect("primary");
    let replica = Database::in_memory().expect("replica");
    feed(&primary, &replica);
    create(&primary, false);
    primary.scope(|| Label::write(Label { item: 7, text: "here".into() })).expect("write");
    let recreate = mnesia::RestoreOptions::new().all(mnesia::RestoreMode::Recreate);
    let refused = primary.restore(&file, &recreate);
    assert!(refused.is_err(), "the members break the unique index: {refused:?}");
    for db in [&primary, &replica] {
        let labels = db.scope(Label::list).expect("labels");
        assert_eq!(labels, [Label { item: 7, text: "here".into() }], "the labels were not recreated either");
        assert_eq!(db.scope(Member::count).expect("count"), 0);
    }
}

#[test]
fn ids_handed_out_without_a_record_stay_handed_out_on_a_disc_replica_after_its_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let open_replica = || Database::open(Config::default().dir(dir.path())).expect("open replica");
    let (primary, replica) = members_on_a_disc_replica(dir.path(), |o, node| o.disc_copies([node]));
    for want in 1..=3u64 {
        assert_eq!(primary.scope(Member::next_id).expect("next_id"), want);
    }
    primary.stop_replicating();
    drop(replica);
    let again = open_replica();
    assert_eq!(again.table_info::<Member>().expect("info").counter, 3, "the claims were logged");
    let next =
        again.scope(|| Member::insert(Member { id: 0, email: "x@x".into(), level: 0 })).expect("insert");
    assert_eq!(next.id, 4);
}

#[test]
fn a_write_buffered_before_a_counter_reset_and_committed_after_leaves_both_counters_past_its_id() {
    let primary = Database::in_memory().expect("primary");
    let replica = Database::in_memory().expect("replica");
    feed(&primary, &replica);
    primary.create_table::<Member>(TableOptions::new()).expect("create");
    let (buffered, go_on) = (mpsc::channel::<()>(), mpsc::channel::<()>());
    let (tell, wait) = (buffered.0, go_on.1);
    let writer = {
        let db = primary.clone();
        std::thread::spawn(move || {
            let mut first = true;
            db.scope(|| {
                mnesia::transaction(|| {
                    Member::write(Member { id: 10, email: "ten@x".into(), level: 0 })?;
                    if std::mem::take(&mut first) {
                        tell.send(()).expect("tell");
                        wait.recv().expect("wait");
                    }
                    Ok::<_, Error>(())
                })
            })
        })
    };
    buffered.1.recv().expect("buffered");
    // The write raised the counter to 10 as it was buffered; the reset sets it back.
    primary.scope(|| Member::reset_counter(3)).expect("reset");
    go_on.0.send(()).expect("go on");
    writer.join().expect("writer").expect("committed");
    let counter = |db: &Database| db.table_info::<Member>().expect("info").counter;
    assert_eq!(counter(&primary), 10, "the commit moved it past the id it wrote");
    assert_eq!(counter(&replica), counter(&primary));
}
