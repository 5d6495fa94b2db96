//! Imports into an empty table load a new store on several threads: every record arrives
//! (on disc too, after a reopen), subscribers see each one, ids are given in the input's
//! order, and a conflict between far-apart lines imports nothing, on disc included.

use mnesia::prelude::*;
use mnesia::{Error, Event, Format, ImportOptions};

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Member {
    #[key]
    #[auto_increment]
    id: u64,
    #[index(unique)]
    email: String,
    #[index]
    team: u32,
}

const N: u64 = 30_000;

/// `N` records; with `counted`, every tenth leaves its id to the counter.
fn lines(counted: bool, email_of: impl Fn(u64) -> String) -> String {
    (1..=N)
        .map(|i| {
            let id = if counted && i % 10 == 0 { 0 } else { i };
            serde_json::json!({ "id": id, "email": email_of(i), "team": i % 7 }).to_string() + "\n"
        })
        .collect()
}

fn open(dir: &std::path::Path) -> Database {
    Database::open(Config::default().dir(dir)).expect("open")
}

#[test]
fn a_large_import_into_an_empty_disc_table_arrives_whole_and_survives_a_reopen() {
    let data = tests::schema_dir();
    let db = open(data.path());
    db.scope(|| -> mnesia::Result<()> {
        Member::create_table(TableOptions::new().disc_copies([db.node()]))?;
        let events = Member::subscribe()?;
        let input = lines(true, |i| format!("m{i}@x.io"));
        assert_eq!(
            Member::import_from(input.as_bytes(), Format::JsonLines, &ImportOptions::new())?,
            N as usize
        );
        assert_eq!(Member::count()?, N as usize);
        // Each record is a write event, or among those a slow subscriber is told it missed.
        let mut written = 0;
        while let Some(e) = events.try_recv() {
            match e {
                Event::Write { .. } => written += 1,
                Event::Lagged { missed } => written += missed,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(written, N);
        // Records without an id got the ids after the highest given so far, in file order.
        assert_eq!(Member::get_by(Member::EMAIL, "m10@x.io".to_owned())?.map(|m| m.id), Some(10));
        assert_eq!(Member::get_by(Member::EMAIL, "m20@x.io".to_owned())?.map(|m| m.id), Some(20));
        assert_eq!(Member::get_by(Member::TEAM, 3u32)?.map(|m| m.team), Some(3));
        let next = Member::insert(Member { id: 0, email: "new@x.io".into(), team: 0 })?;
        assert!(next.id > N, "{next:?}");
        Ok(())
    })
    .expect("import");
    db.close().expect("close");
    let db = open(data.path());
    db.scope(|| {
        assert_eq!(Member::count().expect("count"), N as usize + 1);
        assert_eq!(Member::read(&7).expect("read").map(|m| m.email), Some("m7@x.io".to_owned()));
    });
}

#[test]
fn a_unique_value_repeated_far_apart_imports_nothing_even_after_a_reopen() {
    let data = tests::schema_dir();
    let db = open(data.path());
    db.scope(|| -> mnesia::Result<()> {
        Member::create_table(TableOptions::new().disc_copies([db.node()]))?;
        let input = lines(false, |i| if i == 25_001 { "m11@x.io".into() } else { format!("m{i}@x.io") });
        match Member::import_from(input.as_bytes(), Format::JsonLines, &ImportOptions::new()) {
            Err(Error::Import { line, column, .. }) => {
                assert!(line == 11 || line == 25_001, "line {line}");
                assert_eq!(column.as_deref(), Some("email"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(Member::count()?, 0);
        assert!(Member::get_by(Member::EMAIL, "m5@x.io".to_owned())?.is_none());
        // The table still takes writes and a good import.
        // (Ids the failed import gave are not given again: its records carry their own.)
        let good = lines(false, |i| format!("m{i}@x.io"));
        Member::import_from(good.as_bytes(), Format::JsonLines, &ImportOptions::new())?;
        Ok(())
    })
    .expect("import");
    db.close().expect("close");
    let db = open(data.path());
    db.scope(|| assert_eq!(Member::count().expect("count"), N as usize));
}
