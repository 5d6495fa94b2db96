//! Persistence: a `disc_copies` table in a database directory. Run it twice: the second run
//! finds what the first one committed.
//!
//! Run: `cargo run -p examples --example 08_persistence` (twice; add `-- --reset` to start
//! over). The directory is `target/mnesia-example-08` unless `MNESIA_DIR` says otherwise.

use std::path::PathBuf;

use mnesia::prelude::*;
use mnesia::{Durability, Schema};

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(name = "visits")]
struct Visit {
    #[key]
    #[auto_increment]
    id: u64,
    #[index]
    page: String,
    at_unix_ms: u128,
}

fn main() -> mnesia::Result<()> {
    let dir = std::env::var_os("MNESIA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/mnesia-example-08"));
    run(&dir, std::env::args().any(|a| a == "--reset")).map(drop)
}

/// One run of the program on `dir`: returns how many visits earlier runs had stored.
fn run(dir: &std::path::Path, reset: bool) -> mnesia::Result<usize> {
    if reset && Schema::exists(dir)? {
        Schema::delete(dir)?;
        println!("deleted the schema in {}", dir.display());
    }
    if !Schema::exists(dir)? {
        Schema::create(dir)?;
        println!("created a schema in {}", dir.display());
    }

    // Immediate durability (the default): a commit returns once it is synced to disc.
    let db = mnesia::start(Config::default().dir(dir).durability(Durability::Immediate))?;
    let mut found = 0;
    if Visit::exists()? {
        let info = Visit::table_info()?;
        println!(
            "found table `{}` ({}, {}) with {} records:",
            info.name, info.table_type, info.storage_type, info.size
        );
        let mut visits = Visit::list()?;
        visits.sort_by_key(|v| v.id);
        for v in &visits {
            println!("  #{} {} at {}", v.id, v.page, v.at_unix_ms);
        }
        let home = Visit::select(Visit::PAGE.eq("/home"))?.len();
        println!("visits of /home, through the index: {home}");
        // Every earlier run stored one visit of each page.
        found = visits.len();
        assert_eq!((info.size, home * 2), (found, found));
    } else {
        Visit::create_table(TableOptions::new().disc_copies([db.node()]))?;
        println!("first run: created the disc_copies table `visits`");
    }

    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let added = mnesia::transaction(|| {
        let a = Visit::insert(Visit { id: 0, page: "/home".into(), at_unix_ms: now })?;
        let b = Visit::insert(Visit { id: 0, page: "/about".into(), at_unix_ms: now })?;
        Ok::<_, mnesia::Error>((a.id, b.id))
    })?;
    println!("this run committed visits {} and {}; run again to see them", added.0, added.1);
    assert_eq!(added.1, added.0 + 1);
    assert_eq!(Visit::count()?, found + 2);
    println!("schema: {:?}", Schema::info(dir)?);

    // Checkpoint and release the directory.
    mnesia::stop()?;
    Ok(found)
}

/// `cargo test` runs the program three times on a new directory: each run finds what the
/// runs before it committed.
#[test]
fn the_example_holds() {
    let dir = std::env::temp_dir().join(format!("mnesia-example-08-test-{}", std::process::id()));
    for (i, expected) in [0, 2, 4].into_iter().enumerate() {
        assert_eq!(run(&dir, i == 0).expect("run"), expected, "run {i}");
    }
    Schema::delete(&dir).expect("clean up");
}
