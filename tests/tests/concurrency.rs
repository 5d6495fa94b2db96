//! Serializability under contention, with 8 threads, with the default escalation and with
//! escalation from the first conflict.

use std::sync::atomic::{AtomicBool, Ordering};

use mnesia::Error;
use mnesia::prelude::*;

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Account {
    #[key]
    id: u32,
    balance: i64,
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Doctor {
    #[key]
    name: String,
    on_call: bool,
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Booking {
    #[key]
    #[auto_increment]
    id: u64,
    room: u32,
}

const THREADS: u32 = 8;

fn rng(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[test]
fn bank_transfers_keep_the_total() {
    bank_transfers_keep_the_total_with(Config::default());
}

/// The same with escalation from the first conflict: a transaction that lost once runs
/// with priority, and writers to its tables wait for it.
#[test]
fn bank_transfers_keep_the_total_escalating_at_once() {
    bank_transfers_keep_the_total_with(Config::default().escalate_after(1));
}

fn bank_transfers_keep_the_total_with(config: Config) {
    let db = Database::open(config.clone()).expect("db");
    let accounts = 10u32;
    db.scope(|| -> mnesia::Result<()> {
        Account::create_table(TableOptions::new())?;
        Account::batch_write((0..accounts).map(|id| Account { id, balance: 1000 }))?;
        Ok(())
    })
    .expect("setup");
    let total = i64::from(accounts) * 1000;
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let mut writers = Vec::new();
        for t in 0..THREADS {
            let db = db.clone();
            writers.push(s.spawn(move || {
                db.scope(|| {
                    let mut seed = u64::from(t) * 7919 + 1;
                    for _ in 0..300 {
                        let from = (rng(&mut seed) % u64::from(accounts)) as u32;
                        let to = (rng(&mut seed) % u64::from(accounts)) as u32;
                        let amount = (rng(&mut seed) % 50) as i64;
                        mnesia::transaction(|| {
                            Account::update(&from, |a| a.balance -= amount)?;
                            Account::update(&to, |a| a.balance += amount)?;
                            Ok::<_, Error>(())
                        })
                        .expect("transfer");
                    }
                })
            }));
        }
        // Readers look at every moment they can: each committed read sees the exact total.
        for _ in 0..2 {
            let db = db.clone();
            let stop = &stop;
            s.spawn(move || {
                db.scope(|| {
                    let mut looks = 0;
                    while !stop.load(Ordering::Relaxed) || looks == 0 {
                        let sum: i64 = mnesia::transaction(|| {
                            let mut sum = 0;
                            for id in 0..accounts {
                                sum += Account::read(&id)?.map_or(0, |a| a.balance);
                            }
                            Ok::<_, Error>(sum)
                        })
                        .expect("read");
                        assert_eq!(sum, total, "a reader saw a torn state");
                        let listed: i64 = Account::list().expect("list").iter().map(|a| a.balance).sum();
                        assert_eq!(listed, total, "a scan saw a torn state");
                        looks += 1;
                    }
                })
            });
        }
        for w in writers {
            w.join().expect("writer");
        }
        stop.store(true, Ordering::Relaxed);
    });
    let sum: i64 = db.scope(Account::list).expect("list").iter().map(|a| a.balance).sum();
    assert_eq!(sum, total);
}

#[test]
fn concurrent_increments_are_never_lost() {
    concurrent_increments_are_never_lost_with(Config::default());
}

/// The same with escalation from the first conflict: a transaction that lost once runs
/// with priority, and writers to its tables wait for it.
#[test]
fn concurrent_increments_are_never_lost_escalating_at_once() {
    concurrent_increments_are_never_lost_with(Config::default().escalate_after(1));
}

fn concurrent_increments_are_never_lost_with(config: Config) {
    let db = Database::open(config.clone()).expect("db");
    db.scope(|| -> mnesia::Result<()> {
        Account::create_table(TableOptions::new())?;
        Account::write(Account { id: 1, balance: 0 })?;
        Ok(())
    })
    .expect("setup");
    let per = 500;
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            let db = db.clone();
            s.spawn(move || {
                db.scope(|| {
                    for _ in 0..per {
                        Account::update(&1, |a| a.balance += 1).expect("increment");
                    }
                })
            });
        }
    });
    let n = db.scope(|| Account::read(&1)).expect("read").map(|a| a.balance);
    assert_eq!(n, Some(i64::from(THREADS) * per));
}

#[test]
fn write_skew_is_prevented() {
    write_skew_is_prevented_with(Config::default());
}

/// The same with escalation from the first conflict: a transaction that lost once runs
/// with priority, and writers to its tables wait for it.
#[test]
fn write_skew_is_prevented_escalating_at_once() {
    write_skew_is_prevented_with(Config::default().escalate_after(1));
}

fn write_skew_is_prevented_with(config: Config) {
    // Two doctors on call; each transaction takes one off call if the other is still on.
    // Under snapshot isolation both could succeed and leave nobody on call.
    for round in 0..50 {
        let db = Database::open(config.clone()).expect("db");
        db.scope(|| -> mnesia::Result<()> {
            Doctor::create_table(TableOptions::new())?;
            Doctor::write(Doctor { name: "a".into(), on_call: true })?;
            Doctor::write(Doctor { name: "b".into(), on_call: true })?;
            Ok(())
        })
        .expect("setup");
        let barrier = std::sync::Barrier::new(2);
        std::thread::scope(|s| {
            for (me, other) in [("a", "b"), ("b", "a")] {
                let db = db.clone();
                let barrier = &barrier;
                s.spawn(move || {
                    let mut first = true;
                    db.scope(|| {
                        mnesia::transaction(|| {
                            let other_on = Doctor::read(&other.to_string())?.is_some_and(|d| d.on_call);
                            if first {
                                first = false;
                                barrier.wait(); // both have read before either writes
                            }
                            if other_on {
                                Doctor::update(&me.to_string(), |d| d.on_call = false)?;
                            }
                            Ok::<_, Error>(())
                        })
                    })
                    .expect("tx");
                });
            }
        });
        let on = db.scope(|| Doctor::select(Doctor::ON_CALL.eq(true))).expect("select").len();
        assert_eq!(on, 1, "round {round}: write skew left {on} doctors on call");
    }
}

#[test]
fn select_then_insert_phantom_is_prevented() {
    select_then_insert_phantom_is_prevented_with(Config::default());
}

/// The same with escalation from the first conflict: a transaction that lost once runs
/// with priority, and writers to its tables wait for it.
#[test]
fn select_then_insert_phantom_is_prevented_escalating_at_once() {
    select_then_insert_phantom_is_prevented_with(Config::default().escalate_after(1));
}

fn select_then_insert_phantom_is_prevented_with(config: Config) {
    // Each transaction books room 7 only if a select finds no booking for it.
    for round in 0..50 {
        let db = Database::open(config.clone()).expect("db");
        db.scope(|| Booking::create_table(TableOptions::new())).expect("setup");
        let barrier = std::sync::Barrier::new(2);
        std::thread::scope(|s| {
            for _ in 0..2 {
                let db = db.clone();
                let barrier = &barrier;
                s.spawn(move || {
                    let mut first = true;
                    db.scope(|| {
                        mnesia::transaction(|| {
                            let taken = !Booking::select(Booking::ROOM.eq(7))?.is_empty();
                            if first {
                                first = false;
                                barrier.wait();
                            }
                            if !taken {
                                Booking::insert(Booking { id: 0, room: 7 })?;
                            }
                            Ok::<_, Error>(())
                        })
                    })
                    .expect("tx");
                });
            }
        });
        let n = db.scope(Booking::count).expect("count");
        assert_eq!(n, 1, "round {round}: a phantom let {n} bookings in");
    }
}

#[test]
fn parallel_inserts_get_distinct_ids() {
    let db = Database::in_memory().expect("db");
    db.scope(|| Booking::create_table(TableOptions::new())).expect("setup");
    let per = 1000;
    let ids: Vec<Vec<u64>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..THREADS)
            .map(|_| {
                let db = db.clone();
                s.spawn(move || {
                    db.scope(|| {
                        (0..per)
                            .map(|_| Booking::insert(Booking { id: 0, room: 1 }).expect("insert").id)
                            .collect()
                    })
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("join")).collect()
    });
    for list in &ids {
        assert!(list.windows(2).all(|w| w[0] < w[1]), "ids increase within a thread");
    }
    let mut all: Vec<u64> = ids.concat();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), (THREADS * per) as usize);
    assert_eq!(db.scope(Booking::count).expect("count"), (THREADS * per) as usize);
}
