//! What each durability mode loses under SIGKILL, as the README's table says: a child
//! process commits numbered records and reports each one (with the wall-clock time) when
//! its commit returns; the parent kills it and reopens the directory.
//!
//! - `Immediate`: every acknowledged commit survives.
//! - `Relaxed { interval }` and `None`: what survives is a prefix of the commit order, and
//!   every commit acknowledged more than the interval (100 ms for `None`) before the kill
//!   survives. A second of slack covers a loaded machine: the check is that losses are
//!   bounded by the last moments, not how tight the bound is.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mnesia::prelude::*;

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(type = "ordered_set")]
struct Entry {
    #[key]
    n: u64,
}

const CHILD_DIR: &str = "MNESIA_DURABILITY_CHILD_DIR";
const CHILD_MODE: &str = "MNESIA_DURABILITY_CHILD_MODE";
const SLACK: Duration = Duration::from_secs(1);

fn mode(name: &str) -> Durability {
    match name {
        "relaxed" => Durability::Relaxed { interval: Duration::from_millis(50) },
        "none" => Durability::None,
        _ => Durability::Immediate,
    }
}

fn now_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis())
}

/// The child: runs only when the parent starts this test binary with the directory set.
#[test]
fn durability_child() {
    let (Ok(dir), Ok(name)) = (std::env::var(CHILD_DIR), std::env::var(CHILD_MODE)) else { return };
    let db = Database::open(Config::default().dir(&dir).durability(mode(&name))).expect("child open");
    db.scope(|| -> mnesia::Result<()> {
        Entry::create_table(TableOptions::new().disc_copies(["local@localhost"]))?;
        for n in 0u64.. {
            Entry::write(Entry { n })?;
            println!("ACK {n} {}", now_ms());
        }
        Ok(())
    })
    .expect("child");
}

/// Runs the child in `mode` on a new directory for `lifetime`, kills it, and checks what
/// survived against what it acknowledged.
fn kill_and_check(name: &str, lifetime: Duration) {
    let dir = tests::schema_dir();
    let child = tests::Child::spawn(
        "durability_child",
        &[(CHILD_DIR, dir.path().as_os_str()), (CHILD_MODE, std::ffi::OsStr::new(name))],
    );
    let (lines, killed_at) = child.kill_after(lifetime);
    let killed_at = killed_at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let acked: Vec<(u64, u128)> = lines
        .iter()
        .filter_map(|l| {
            let (n, at) = l.split_once(' ')?;
            Some((n.parse().ok()?, at.parse().ok()?))
        })
        .collect();
    assert!(!acked.is_empty(), "{name}: the child acknowledged nothing");

    let db = Database::open(Config::default().dir(dir.path())).expect("reopen after SIGKILL");
    let kept: Vec<u64> = db.scope(Entry::all_keys).expect("keys");
    let kept_n = u64::try_from(kept.len()).expect("count");
    assert_eq!(
        kept,
        (0..kept_n).collect::<Vec<_>>(),
        "{name}: what survives is a prefix of the commit order"
    );
    let bound = match mode(name) {
        Durability::Immediate => Duration::ZERO,
        Durability::Relaxed { interval } => interval + SLACK,
        Durability::None => Duration::from_millis(100) + SLACK,
    };
    let lost: Vec<&(u64, u128)> = acked.iter().filter(|(n, _)| *n >= kept_n).collect();
    eprintln!(
        "{name}: {} acknowledged, {} kept, {} of the acknowledged lost",
        acked.len(),
        kept_n,
        lost.len()
    );
    if bound.is_zero() {
        assert!(
            lost.is_empty(),
            "{name}: {} acknowledged commits lost, first {:?}",
            lost.len(),
            lost.first()
        );
    } else {
        for (n, at) in lost {
            assert!(
                killed_at.saturating_sub(*at) <= bound.as_millis(),
                "{name}: commit {n}, acknowledged {} ms before the kill, was lost",
                killed_at.saturating_sub(*at)
            );
        }
    }
    db.close().expect("close");
}

#[test]
fn immediate_loses_no_acknowledged_commit() {
    for lifetime in [80, 250] {
        kill_and_check("immediate", Duration::from_millis(lifetime));
    }
}

#[test]
fn relaxed_loses_at_most_the_last_interval() {
    for lifetime in [300, 1500] {
        kill_and_check("relaxed", Duration::from_millis(lifetime));
    }
}

#[test]
fn none_loses_at_most_the_last_moments() {
    for lifetime in [300, 1500] {
        kill_and_check("none", Duration::from_millis(lifetime));
    }
}
