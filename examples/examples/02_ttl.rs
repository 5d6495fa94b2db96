//! Record expiry, mirroring MnesiaEx's `examples/02_ttl.exs`, except that here expired
//! sessions really disappear: reads stop returning a session the moment its deadline
//! passes, and the reaper then removes it (a subscriber sees the delete, cause `Expired`).
//!
//! Run: `cargo run -p examples --example 02_ttl`

use std::time::{Duration, SystemTime};

use mnesia::prelude::*;
use mnesia::{DeleteCause, Event};

/// A login session: `#[ttl]` marks the field holding its deadline.
#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(name = "sessions")]
struct Session {
    #[key]
    token: String,
    #[index]
    user_id: u64,
    #[ttl]
    expires_at: Option<SystemTime>,
}

/// A cache whose entries live 2 seconds unless written with a deadline of their own.
#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(name = "cache", ttl = "2s")]
struct CacheEntry {
    #[key]
    key: String,
    value: String,
    #[ttl]
    expires_at: Option<SystemTime>,
}

fn session(token: &str, user_id: u64) -> Session {
    Session { token: token.into(), user_id, expires_at: None }
}

fn main() -> mnesia::Result<()> {
    // The reaper runs every 100 ms here (the default is every second).
    let db = mnesia::start(Config::default().cleanup_interval(Duration::from_millis(100)))?;
    Session::create_table(TableOptions::new())?;
    CacheEntry::create_table(TableOptions::new())?;
    let events = Session::subscribe()?;

    println!("a session for 300 ms, one for an hour, one without a deadline");
    Session::write_with_ttl(session("short", 1), Duration::from_millis(300))?;
    Session::write_with_ttl(session("long", 1), Duration::from_secs(3600))?;
    Session::write(session("forever", 2))?;
    for token in ["short", "long", "forever"] {
        println!("  {token}: time left {:?}", Session::ttl(&token.to_owned())?);
    }
    assert!(Session::ttl(&"short".to_owned())?.is_some_and(|d| d <= Duration::from_millis(300)));
    assert!(Session::ttl(&"long".to_owned())?.is_some_and(|d| d > Duration::from_secs(3500)));
    assert_eq!(Session::ttl(&"forever".to_owned())?, None);

    println!("extend `forever` to 10 minutes, then make it permanent again");
    Session::expire(&"forever".to_owned(), Duration::from_secs(600))?;
    let left = Session::ttl(&"forever".to_owned())?;
    println!("  forever: time left {left:?}");
    assert!(left.is_some_and(|d| d > Duration::from_secs(500) && d <= Duration::from_secs(600)));
    Session::persist(&"forever".to_owned())?;
    println!("  forever: time left {:?}", Session::ttl(&"forever".to_owned())?);
    assert_eq!(Session::ttl(&"forever".to_owned())?, None);

    std::thread::sleep(Duration::from_millis(350));
    println!("after 350 ms");
    println!("  read(short) = {:?}", Session::read(&"short".to_owned())?);
    println!("  sessions of user 1: {}", Session::select(Session::USER_ID.eq(1))?.len());
    println!("  count = {}", Session::count()?);
    // Gone for readers at once, whether or not the reaper has run.
    assert_eq!(Session::read(&"short".to_owned())?, None);
    assert_eq!(Session::select(Session::USER_ID.eq(1))?.len(), 1);
    assert_eq!(Session::count()?, 2);

    // The reaper removes what expired; its deletes reach subscribers.
    let mut expired = None;
    while let Some(event) = events.recv_timeout(Duration::from_secs(5)) {
        if let Event::Delete { key, cause: DeleteCause::Expired, .. } = event {
            println!("  event: session {key} expired and was removed");
            expired = Some(key);
            break;
        }
    }
    assert_eq!(expired.as_deref(), Some("short"), "the reaper's delete reached the subscriber");
    println!("  records stored: {}", Session::table_info()?.size);
    assert_eq!(Session::table_info()?.size, 2);

    println!("a cache entry gets the table's default lifetime of 2 s");
    let entry = CacheEntry::write(CacheEntry { key: "k".into(), value: "v".into(), expires_at: None })?;
    println!("  it has a deadline: {}", entry.expires_at.is_some());
    println!("  time left {:?}", CacheEntry::ttl(&"k".to_owned())?);
    assert!(entry.expires_at.is_some());
    assert!(CacheEntry::ttl(&"k".to_owned())?.is_some_and(|d| d <= Duration::from_secs(2)));

    // The reaper can also be run by hand (say with `Config::auto_cleanup(false)`).
    println!("a cache entry for 50 ms, then the expired records removed by hand");
    CacheEntry::write_with_ttl(
        CacheEntry { key: "brief".into(), value: "v".into(), expires_at: None },
        Duration::from_millis(50),
    )?;
    std::thread::sleep(Duration::from_millis(120));
    println!("  read(brief) = {:?}", CacheEntry::read(&"brief".to_owned())?);
    assert_eq!(CacheEntry::read(&"brief".to_owned())?, None);
    let removed = db.cleanup_expired()?;
    println!(
        "  removed {removed} (0 if the reaper got there first); stored now: {}",
        CacheEntry::table_info()?.size
    );
    assert!(removed <= 1);
    assert_eq!(CacheEntry::table_info()?.size, 1, "only `k` is left");
    mnesia::stop()
}

/// `cargo test` runs the example: its assertions are the README's promises.
#[test]
fn the_example_holds() {
    main().expect("example");
}
