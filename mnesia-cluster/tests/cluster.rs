//! Three nodes on 127.0.0.1, in one process, each with its own database: commits made on
//! any of them are ordered by Raft and applied on all; the total of concurrent transfers is
//! kept; the leader stops and the other two go on; a node left alone cannot commit; a wrong
//! cookie and garbage on the port are refused.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use mnesia::prelude::*;
use mnesia::{ClusterEvent, Error, SystemEvent};
use mnesia_cluster::{Faults, Node, Options};

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Account {
    #[key]
    id: u32,
    balance: i64,
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Member {
    #[key]
    #[auto_increment]
    id: u64,
    #[index(unique)]
    email: String,
}

const COOKIE: &str = "a test cookie";

fn quick(id: u64) -> Options {
    Options::new(id, COOKIE)
        .timings(Duration::from_millis(50), (Duration::from_millis(200), Duration::from_millis(400)))
        .write_timeout(Duration::from_secs(3))
}

struct Running {
    dbs: Vec<Database>,
    nodes: Vec<Option<Node>>,
}

/// A database named `name` with the tables of every node of these tests.
fn database(name: &str) -> Database {
    database_with(Config::default().node_name(name))
}

/// [`database`], opened with `config`.
fn database_with(config: Config) -> Database {
    database_with_members::<Member>(config)
}

/// [`database_with`], its `member` table made with the struct `M`.
fn database_with_members<M: Table>(config: Config) -> Database {
    let db = Database::open(config).expect("open");
    db.scope(|| -> mnesia::Result<()> {
        Account::create_table(TableOptions::new())?;
        M::create_table(TableOptions::new())?;
        Session::create_table(TableOptions::new())?;
        Slot::create_table(TableOptions::new())?;
        Ok(())
    })
    .expect("tables");
    db
}

/// Three nodes with the tables, formed into one cluster with a leader.
fn three() -> Running {
    three_with(&Faults::new())
}

/// [`three`], the nodes obeying `faults`.
fn three_with(faults: &Faults) -> Running {
    three_options(|id| quick(id).faults(faults.clone()))
}

/// [`three`], node `id` started with `options(id)`.
fn three_options(options: impl Fn(u64) -> Options) -> Running {
    three_configured(options, |config| config)
}

/// [`three_options`], each database opened with `config` of its default.
fn three_configured(options: impl Fn(u64) -> Options, config: impl Fn(Config) -> Config) -> Running {
    let dbs: Vec<Database> = (1..=3)
        .map(|i| database_with(config(Config::default().node_name(format!("n{i}@127.0.0.1")))))
        .collect();
    let nodes: Vec<Node> =
        dbs.iter().zip(1..).map(|(db, id)| Node::start(db, options(id)).expect("node")).collect();
    nodes[0].initialize(nodes.iter().zip(1..).map(|(n, id)| (id, n.local_addr()))).expect("initialize");
    for n in &nodes {
        n.wait_for_leader(Duration::from_secs(10)).expect("a leader");
    }
    Running { dbs, nodes: nodes.into_iter().map(Some).collect() }
}

impl Running {
    fn live(&self) -> Vec<(usize, &Database)> {
        self.dbs.iter().enumerate().filter(|(i, _)| self.nodes[*i].is_some()).collect()
    }

    /// Waits until every live node has applied as far as the most advanced one.
    fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let applied: Vec<u64> = self.live().iter().map(|(_, db)| db.applied_index()).collect();
            if applied.iter().all(|a| *a == applied[0]) {
                // Nothing on its way: a second look agrees.
                std::thread::sleep(Duration::from_millis(150));
                let again: Vec<u64> = self.live().iter().map(|(_, db)| db.applied_index()).collect();
                if again == applied {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "nodes did not converge: {applied:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn accounts(&self, i: usize) -> Vec<Account> {
        let mut all = self.dbs[i].scope(Account::list).expect("list");
        all.sort_by_key(|a| a.id);
        all
    }

    fn leader(&self) -> usize {
        let n = self.nodes.iter().flatten().next().expect("a live node");
        let leader = n.wait_for_leader(Duration::from_secs(10)).expect("leader");
        (leader - 1) as usize
    }
}

fn transfers(run: &Running, per_node: u32, rounds: u32) {
    let threads: Vec<_> = run
        .live()
        .into_iter()
        .flat_map(|(i, db)| {
            (0..per_node).map(move |w| {
                let db = db.clone();
                std::thread::spawn(move || {
                    db.scope(|| {
                        for n in 0..rounds {
                            let from = (i as u32 * 5 + w * 3 + n) % 8;
                            let to = (from + 1 + n % 7) % 8;
                            mnesia::transaction(|| {
                                let a = Account::read(&from)?.expect("account");
                                let b = Account::read(&to)?.expect("account");
                                let amount = i64::from(n % 20);
                                if a.balance >= amount {
                                    Account::write(Account { balance: a.balance - amount, ..a })?;
                                    Account::write(Account { balance: b.balance + amount, ..b })?;
                                }
                                Ok::<_, Error>(())
                            })
                            .expect("transfer");
                        }
                    })
                })
            })
        })
        .collect();
    for t in threads {
        t.join().expect("worker");
    }
}

#[test]
fn commits_on_any_node_reach_all_and_survive_the_leader_stopping() {
    let mut run = three();
    run.dbs[1]
        .scope(|| Account::batch_write((0..8).map(|id| Account { id, balance: 100 })))
        .expect("accounts");
    // A commit returns once its node has applied it; the others follow.
    assert_eq!(run.accounts(1).len(), 8);
    run.settle();
    transfers(&run, 2, 40);
    run.settle();
    let first = run.accounts(0);
    assert_eq!(first.iter().map(|a| a.balance).sum::<i64>(), 800);
    assert_eq!(run.accounts(1), first);
    assert_eq!(run.accounts(2), first);

    // The leader stops: the other two elect another and go on.
    let leader = run.leader();
    run.nodes[leader] = None;
    transfers(&run, 2, 20);
    run.settle();
    let live: Vec<usize> = run.live().iter().map(|(i, _)| *i).collect();
    let after = run.accounts(live[0]);
    assert_eq!(after.iter().map(|a| a.balance).sum::<i64>(), 800);
    assert_eq!(run.accounts(live[1]), after);
    // The stopped node's database refuses writes rather than diverge.
    let refused = run.dbs[leader].scope(|| Account::write(Account { id: 99, balance: 1 }));
    assert!(matches!(refused, Err(Error::Closed { .. })), "{refused:?}");
}

/// Writes on their way when their node stops fail as writes of unknown fate (the others
/// may still order them), never as refused: each is `Closed` or `NoMajority`; the two nodes
/// left agree on what was ordered.
#[test]
fn a_write_on_its_way_when_its_node_stops_fails_with_its_fate_unknown() {
    let mut run = three();
    let leader = run.leader();
    let written = std::sync::atomic::AtomicU32::new(0);
    let failures = std::thread::scope(|s| {
        let writers: Vec<_> = (0..4u32)
            .map(|w| {
                let (db, written) = (&run.dbs[leader], &written);
                s.spawn(move || {
                    db.scope(|| {
                        let mut failed = Vec::new();
                        // Bounded: the node stops long before.
                        for i in 0..20_000u32 {
                            let id = 1_000_000 + w * 100_000 + i;
                            match Account::write(Account { id, balance: 1 }) {
                                Ok(_) => {
                                    written.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                }
                                Err(e) => {
                                    failed.push((id, e));
                                    break;
                                }
                            }
                        }
                        failed
                    })
                })
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(30);
        while written.load(std::sync::atomic::Ordering::Relaxed) < 200 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        run.nodes[leader] = None;
        writers.into_iter().flat_map(|w| w.join().expect("writer")).collect::<Vec<_>>()
    });
    assert!(!failures.is_empty(), "the writers stopped with their node");
    for (id, e) in &failures {
        assert!(
            matches!(e, Error::Closed { .. } | Error::NoMajority { .. }),
            "a write of {id} on its way failed as if refused: {e:?}"
        );
    }
    // A write after the node stopped was never sent, and says so.
    let after = run.dbs[leader].scope(|| Account::write(Account { id: 5, balance: 1 }));
    assert!(matches!(&after, Err(Error::Closed { what }) if what.contains("not sent")), "{after:?}");
    run.leader();
    run.settle();
    let live: Vec<usize> = run.live().iter().map(|(i, _)| *i).collect();
    assert_eq!(run.accounts(live[0]), run.accounts(live[1]), "the two left agree on what was ordered");
}

#[test]
fn unique_values_and_ids_are_decided_alike_on_every_node() {
    let run = three();
    let threads: Vec<_> = run
        .dbs
        .iter()
        .enumerate()
        .map(|(i, db)| {
            let db = db.clone();
            std::thread::spawn(move || {
                db.scope(|| {
                    let mut won = Vec::new();
                    for n in 0..20u32 {
                        match Member::insert(Member { id: 0, email: format!("u{}@x", (n + i as u32) % 15) }) {
                            Ok(m) => won.push(m.id),
                            Err(Error::UniqueViolation { .. }) => {}
                            Err(e) => panic!("insert: {e}"),
                        }
                    }
                    won
                })
            })
        })
        .collect();
    let won: Vec<u64> = threads.into_iter().flat_map(|t| t.join().expect("worker")).collect();
    run.settle();
    let members: Vec<Vec<Member>> = (0..3)
        .map(|i| {
            let mut m = run.dbs[i].scope(Member::list).expect("list");
            m.sort_by_key(|m| m.id);
            m
        })
        .collect();
    assert_eq!(members[0].len(), 15, "every address once");
    assert_eq!(members[0].len(), won.len(), "every acknowledged insert, once");
    assert_eq!(won.iter().collect::<HashSet<_>>().len(), won.len(), "ids handed out once");
    assert!(members.iter().all(|m| *m == members[0]), "nodes differ");
}

#[test]
fn a_commit_too_large_for_the_log_is_refused_and_changes_nothing() {
    let run = three();
    let email = "x".repeat(600 << 10);
    let big = run.dbs[0].scope(|| Member::insert(Member { id: 0, email }));
    assert!(matches!(big, Err(Error::TooLarge { .. })), "{:?}", big.map(|m| m.id));
    run.dbs[0].scope(|| Member::insert(Member { id: 0, email: "a@x".into() })).expect("a small one");
    run.settle();
    for db in &run.dbs {
        assert_eq!(db.scope(Member::count).expect("count"), 1);
    }
}

#[test]
fn commits_made_at_once_share_log_entries_and_each_gets_its_own_verdict() {
    let run = three();
    let (writers, each) = (10u32, 12u32);
    let threads: Vec<_> = run
        .dbs
        .iter()
        .enumerate()
        .flat_map(|(i, db)| {
            (0..writers).map(move |w| {
                let db = db.clone();
                std::thread::spawn(move || {
                    db.scope(|| {
                        let (mut won, mut lost) = (0u32, 0u32);
                        for n in 0..each {
                            // Every other address is also taken by a writer on each other node.
                            let email = if n % 2 == 0 {
                                format!("{i}.{w}.{n}@x")
                            } else {
                                format!("shared.{w}.{n}@x")
                            };
                            match Member::insert(Member { id: 0, email }) {
                                Ok(_) => won += 1,
                                // The error itself, as this node met it applying the record.
                                Err(Error::UniqueViolation { .. }) => lost += 1,
                                Err(e) => panic!("insert: {e}"),
                            }
                        }
                        (won, lost)
                    })
                })
            })
        })
        .collect();
    let (won, lost) = threads
        .into_iter()
        .map(|t| t.join().expect("worker"))
        .fold((0, 0), |(w, l), (won, lost)| (w + won, l + lost));
    run.settle();
    let commits = 3 * writers * each;
    assert_eq!(won + lost, commits);
    assert_eq!(lost, 2 * writers * each / 2, "each shared address taken once, refused twice");
    let members: Vec<Vec<Member>> = (0..3)
        .map(|i| {
            let mut m = run.dbs[i].scope(Member::list).expect("list");
            m.sort_by_key(|m| m.id);
            m
        })
        .collect();
    assert_eq!(members[0].len() as u32, won, "every acknowledged insert, once");
    assert!(members.iter().all(|m| *m == members[0]), "nodes differ");
    // A place for each record applied (a conflict's too: its transaction ran again), the
    // same on every node; fewer log entries than records (the log's blank and membership
    // entries included).
    let places = run.dbs[0].applied_index();
    assert!(places >= u64::from(commits), "{places} places for {commits} commits");
    assert!(run.dbs.iter().all(|db| db.applied_index() == places), "the same places everywhere");
    let entries = run.nodes[0].as_ref().expect("node").status().last_applied;
    assert!(entries < places, "{places} records in {entries} log entries: none shared one");
}

#[test]
fn a_node_alone_cannot_commit() {
    let mut run = three();
    run.dbs[0].scope(|| Account::write(Account { id: 1, balance: 5 })).expect("write");
    run.settle();
    // Two of three stop: the last cannot reach a majority.
    let leader = run.leader();
    let alone = (leader + 1) % 3;
    for i in 0..3 {
        if i != alone {
            run.nodes[i] = None;
        }
    }
    let started = Instant::now();
    let refused = run.dbs[alone].scope(|| Account::write(Account { id: 1, balance: 6 }));
    assert!(matches!(refused, Err(Error::NoMajority { .. })), "{refused:?}");
    assert!(started.elapsed() < Duration::from_secs(30), "bounded");
    // Reads still answer from the local copy.
    assert_eq!(run.dbs[alone].scope(|| Account::read(&1)).expect("read").map(|a| a.balance), Some(5));
}

#[test]
fn a_wrong_cookie_and_garbage_are_refused() {
    let run = three();
    let addr = run.nodes[0].as_ref().expect("node").local_addr();
    // Garbage: the node closes the connection.
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    s.write_all(&[0xff; 64]).expect("write");
    let mut buf = [0u8; 16];
    assert!(matches!(s.read(&mut buf), Ok(0) | Err(_)), "closed");
    // A node with another cookie asks node 1 for its vote, term after term: were its
    // requests read, node 1 would move to the stranger's higher terms.
    let term = run.nodes[0].as_ref().expect("node").status().term;
    let stranger_db = Database::in_memory().expect("db");
    stranger_db.scope(|| Account::create_table(TableOptions::new())).expect("table");
    let stranger = Node::start(
        &stranger_db,
        Options::new(9, "another cookie")
            .timings(Duration::from_millis(50), (Duration::from_millis(150), Duration::from_millis(300)))
            .write_timeout(Duration::from_secs(1)),
    )
    .expect("node");
    stranger.initialize([(9, stranger.local_addr()), (1, addr)]).expect("its own view");
    std::thread::sleep(Duration::from_secs(2));
    assert!(stranger.status().term > term + 2, "the stranger kept calling elections");
    assert_eq!(run.nodes[0].as_ref().expect("node").status().term, term, "node 1 never heard it");
    let write = stranger_db.scope(|| Account::write(Account { id: 1, balance: 1 }));
    assert!(matches!(write, Err(Error::NoMajority { .. })), "{write:?}");
    // The real cluster still works.
    run.dbs[2].scope(|| Account::write(Account { id: 3, balance: 3 })).expect("still writes");
}

#[test]
fn a_leader_cut_off_cannot_commit_and_the_majority_goes_on() {
    let faults = Faults::new();
    let run = three_with(&faults);
    run.dbs[0].scope(|| Account::write(Account { id: 1, balance: 10 })).expect("write");
    run.settle();
    // The leader is cut off from both others.
    let leader = run.leader();
    let id = leader as u64 + 1;
    let events = run.dbs[leader].subscribe_system();
    faults.isolate(id, (1..=3).filter(|n| *n != id));
    let started = Instant::now();
    let refused = run.dbs[leader].scope(|| Account::write(Account { id: 2, balance: 99 }));
    assert!(matches!(refused, Err(Error::NoMajority { .. })), "{refused:?}");
    assert!(started.elapsed() < Duration::from_secs(30), "bounded");
    // The other two elect a leader of their own and commit.
    let other = (leader + 1) % 3;
    run.dbs[other].scope(|| Account::write(Account { id: 3, balance: 30 })).expect("the majority commits");
    // Reads on the cut-off side answer from its copy (stale).
    assert_eq!(run.dbs[leader].scope(|| Account::read(&3)).expect("read"), None);
    // Unanswered by a majority, it no longer reports itself the leader (it did for ever).
    let cut_off = run.nodes[leader].as_ref().expect("node");
    eventually("the cut-off leader stops reporting itself", || cut_off.status().leader.is_none());
    let info = run.dbs[leader].system_info();
    assert_eq!(info.cluster.expect("cluster").leader, None);
    wait_for_event(&events, |e| {
        matches!(e, SystemEvent::Cluster(ClusterEvent::LeaderChanged { leader: None, .. }))
    });
    eventually("a leader cut off does not reap", || !run.dbs[leader].reaping());
    // Joined again: it follows the new leader, and the write it could not commit is gone.
    faults.heal();
    run.settle();
    for i in 0..3 {
        let accounts = run.accounts(i);
        assert_eq!(
            accounts,
            vec![Account { id: 1, balance: 10 }, Account { id: 3, balance: 30 }],
            "node {}",
            i + 1
        );
    }
    run.dbs[leader].scope(|| Account::write(Account { id: 4, balance: 4 })).expect("writes again");
}

/// Waits (at most 20 s) for a system event that `want` accepts.
fn wait_for_event(events: &mnesia::SystemSubscription, want: impl Fn(&SystemEvent) -> bool) -> SystemEvent {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Some(e) = events.recv_timeout(Duration::from_millis(100)) {
            if want(&e) {
                return e;
            }
            seen.push(e);
        }
    }
    panic!("the event never came; seen: {seen:?}");
}

#[test]
fn peers_going_and_coming_back_and_a_new_leader_are_system_events() {
    let faults = Faults::new();
    let mut run = three_with(&faults);
    let leader = run.leader();
    let (watcher, third) = ((leader + 1) % 3, (leader + 2) % 3);
    let (leader_id, watcher_id, third_id) = (leader as u64 + 1, watcher as u64 + 1, third as u64 + 1);
    let events = run.dbs[watcher].subscribe_system();
    let watching = run.nodes[watcher].as_ref().expect("watcher");
    let deadline = Instant::now() + Duration::from_secs(20);
    while watching.status().up != [leader_id, third_id].into() {
        assert!(Instant::now() < deadline, "{:?}", watching.status());
        std::thread::sleep(Duration::from_millis(10));
    }
    // The third node cut off from the watcher alone: the watcher sees it go, and come back.
    faults.cut(watcher_id, third_id);
    wait_for_event(&events, |e| *e == SystemEvent::Cluster(ClusterEvent::NodeDown { node: third_id }));
    faults.heal();
    wait_for_event(&events, |e| *e == SystemEvent::Cluster(ClusterEvent::NodeUp { node: third_id }));
    // The leader stops: the watcher sees it go and learns of another leader.
    run.nodes[leader] = None;
    wait_for_event(&events, |e| *e == SystemEvent::Cluster(ClusterEvent::NodeDown { node: leader_id }));
    wait_for_event(
        &events,
        |e| matches!(e, SystemEvent::Cluster(ClusterEvent::LeaderChanged { leader: Some(l), .. }) if *l != leader_id),
    );
}

#[test]
fn synced_reads_see_every_acknowledged_write_or_fail() {
    let faults = Faults::new();
    let run = three_with(&faults);
    run.dbs[0].scope(|| Account::write(Account { id: 1, balance: 1 })).expect("write");
    // On every node, the leader's and the followers' (whose ask goes to the leader).
    for (i, node) in run.nodes.iter().enumerate() {
        node.as_ref().expect("node").sync_reads(Duration::from_secs(10)).expect("synced");
        let read = run.dbs[i].scope(|| Account::read(&1)).expect("read");
        assert_eq!(read, Some(Account { id: 1, balance: 1 }), "node {}", i + 1);
    }
    // A follower cut off cannot confirm that it is current: it says so in bounded time.
    let follower = (run.leader() + 1) % 3;
    let id = follower as u64 + 1;
    faults.isolate(id, (1..=3).filter(|n| *n != id));
    let other = (follower + 1) % 3;
    run.dbs[other].scope(|| Account::write(Account { id: 1, balance: 2 })).expect("the majority writes");
    let cut_off = run.nodes[follower].as_ref().expect("follower");
    let refused = cut_off.sync_reads(Duration::from_millis(800));
    assert!(matches!(refused, Err(Error::NoMajority { .. })), "{refused:?}");
    // Its plain read is its own copy's (stale); once healed, a synced read is current.
    let stale = run.dbs[follower].scope(|| Account::read(&1)).expect("read");
    assert_eq!(stale.map(|a| a.balance), Some(1));
    faults.heal();
    cut_off.sync_reads(Duration::from_secs(20)).expect("synced after healing");
    let current = run.dbs[follower].scope(|| Account::read(&1)).expect("read");
    assert_eq!(current.map(|a| a.balance), Some(2));
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Slot {
    #[key]
    id: u32,
    generation: u64,
}

/// A transaction that reads many records and writes one, while writers on every node keep
/// committing to those records, commits within a few attempts: after losing once it
/// escalates, and the tables it touched are closed to the writers of every node that
/// answers until it is done (on one node only, the other nodes' writers would make it lose
/// every attempt).
#[test]
fn a_long_transaction_finishes_while_every_node_writes_to_its_records() {
    const RECORDS: u32 = 1000;
    let run = three_configured(quick, |config| config.max_retries(6));
    run.dbs[0].scope(|| Slot::batch_write((0..RECORDS).map(|id| Slot { id, generation: 0 }))).expect("slots");
    run.settle();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let writes = std::sync::atomic::AtomicU64::new(0);
    let runs = std::sync::atomic::AtomicU32::new(0);
    let result = std::thread::scope(|s| {
        for (w, db) in run.dbs.iter().chain(&run.dbs).enumerate() {
            let (stop, writes) = (&stop, &writes);
            s.spawn(move || {
                db.scope(|| {
                    let mut i = w as u64;
                    // Bounded: the long transaction ends well before this many writes.
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) && i < 5_000_000 {
                        let id = u32::try_from(i.wrapping_mul(7) % u64::from(RECORDS)).expect("id");
                        Slot::write(Slot { id, generation: i + 1 }).expect("write");
                        writes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        i += 6;
                    }
                })
            });
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while writes.load(std::sync::atomic::Ordering::Relaxed) < 300 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        let result = run.dbs[1].scope(|| {
            mnesia::transaction(|| {
                runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let mut sum = 0;
                for id in 0..RECORDS {
                    sum += Slot::read(&id)?.map_or(0, |s| s.generation);
                }
                // Into a record the writers never write.
                Slot::write(Slot { id: RECORDS, generation: sum })?;
                Ok::<_, Error>(sum)
            })
        });
        // The writers go on once it is done: no table stays closed to them.
        let after = writes.load(std::sync::atomic::Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_secs(30);
        while writes.load(std::sync::atomic::Ordering::Relaxed) < after + 100 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        let resumed = writes.load(std::sync::atomic::Ordering::Relaxed) >= after + 100;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(resumed, "the writers did not resume after the long transaction");
        result
    });
    let runs = runs.load(std::sync::atomic::Ordering::Relaxed);
    let sum = result.unwrap_or_else(|e| panic!("the long transaction failed after {runs} runs: {e:?}"));
    assert!(sum > 0, "the writers' records are seen");
    run.settle();
    for db in &run.dbs {
        let total = db.scope(|| Slot::read(&RECORDS)).expect("read");
        assert_eq!(total.map(|s| s.generation), Some(sum), "every copy holds the sum");
    }
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Session {
    #[key]
    token: u32,
    #[ttl]
    expires_at: Option<std::time::SystemTime>,
}

#[test]
fn only_the_leader_reaps_and_its_deletions_reach_every_copy() {
    let run = three();
    let leader = run.leader();
    let want: Vec<bool> = (0..3).map(|i| i == leader).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reaping: Vec<bool> = run.dbs.iter().map(Database::reaping).collect();
        if reaping == want {
            break;
        }
        assert!(Instant::now() < deadline, "reaping {reaping:?}, leader {}", leader + 1);
        std::thread::sleep(Duration::from_millis(10));
    }
    // Events on a follower: the expired sessions' deletions arrive there once each.
    let follower = (leader + 1) % 3;
    let events = run.dbs[follower].scope(Session::subscribe).expect("subscribe");
    let soon = std::time::SystemTime::now() + Duration::from_millis(200);
    run.dbs[follower]
        .scope(|| Session::batch_write((0..20).map(|token| Session { token, expires_at: Some(soon) })))
        .expect("write");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut deleted = HashSet::new();
    while deleted.len() < 20 {
        assert!(Instant::now() < deadline, "deleted so far: {deleted:?}");
        if let Some(e) = events.recv_timeout(Duration::from_millis(100))
            && let mnesia::Event::Delete { key, .. } = e
        {
            assert!(deleted.insert(key), "deleted twice");
        }
    }
    run.settle();
    for (i, db) in run.dbs.iter().enumerate() {
        assert_eq!(db.scope(Session::count).expect("count"), 0, "node {}", i + 1);
    }
}

#[test]
fn every_node_hears_every_committed_write_once_in_the_same_order() {
    let run = three();
    for id in 0..5 {
        run.dbs[0].scope(|| Account::write(Account { id, balance: 0 })).expect("write");
    }
    run.settle();
    let subscriptions: Vec<_> =
        run.dbs.iter().map(|db| db.scope(Account::subscribe_detailed).expect("subscribe")).collect();
    // Increments of five accounts from four writers on each node: many conflict, and run
    // again; each committed one is one event on every node.
    let (writers, each) = (4u32, 15u32);
    let threads: Vec<_> = run
        .dbs
        .iter()
        .flat_map(|db| {
            (0..writers).map(move |w| {
                let db = db.clone();
                std::thread::spawn(move || {
                    db.scope(|| {
                        for n in 0..each {
                            let id = (w + n) % 5;
                            mnesia::transaction(|| {
                                let a = Account::read(&id)?.expect("account");
                                Account::write(Account { balance: a.balance + 1, ..a })
                            })
                            .expect("increment");
                        }
                    })
                })
            })
        })
        .collect();
    for t in threads {
        t.join().expect("writer");
    }
    run.settle();
    let heard: Vec<Vec<mnesia::Event<Account>>> = subscriptions
        .iter()
        .map(|events| std::iter::from_fn(|| events.recv_timeout(Duration::from_millis(300))).collect())
        .collect();
    let commits = (3 * writers * each) as usize;
    assert_eq!(heard[0].len(), commits, "one event per committed write");
    assert!(heard.iter().all(|h| *h == heard[0]), "the nodes heard different sequences");
    // Each event follows the one before it on its key: old is the new before.
    let mut last: std::collections::HashMap<u32, i64> = (0..5).map(|id| (id, 0)).collect();
    for e in &heard[0] {
        match e {
            mnesia::Event::Write { new, old: Some(old) } => {
                assert_eq!(old.balance, last[&new.id], "{e:?}");
                assert_eq!(new.balance, old.balance + 1, "{e:?}");
                last.insert(new.id, new.balance);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(last.values().sum::<i64>(), commits as i64);
}

/// An address on 127.0.0.1 free a moment ago, for a node started again at its address.
fn free_addr() -> std::net::SocketAddr {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    probe.local_addr().expect("addr")
}

/// Waits until `check` holds, for 20 s at most.
fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within 20 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_node_behind_the_purged_log_is_sent_a_snapshot_and_converges() {
    behind_the_purged_log(false);
}

#[test]
fn a_node_with_a_directory_sent_a_snapshot_starts_again_from_it() {
    behind_the_purged_log(true);
}

/// A node cut off while the leader purged the entries it lacks is sent a snapshot once
/// healed, converges and goes on; with directories (`dirs`), it then starts again from its
/// own (before it snapshots again itself: its log holds the entries from before the cut,
/// then those after the snapshot) and converges again.
fn behind_the_purged_log(dirs: bool) {
    let faults = Faults::new();
    let dirs: Vec<_> = (0..3).filter(|_| dirs).map(|_| tempfile::tempdir().expect("dir")).collect();
    let options = |id: u64| {
        let options = quick(id).faults(faults.clone()).snapshots(20, 5);
        match dirs.get(id as usize - 1) {
            Some(dir) => options.dir(dir.path()),
            None => options,
        }
    };
    let mut run = three_options(options);
    let leader = run.leader();
    let behind = (leader + 1) % 3;
    let others: Vec<u64> = (1..=3).filter(|id| *id != behind as u64 + 1).collect();
    faults.isolate(behind as u64 + 1, others);
    let stale = run.nodes[behind].as_ref().expect("node").status().last_applied;
    let db = &run.dbs[leader];
    for id in 0..150 {
        db.scope(|| Account::write(Account { id, balance: i64::from(id) })).expect("write");
    }
    // Transfers that read what the snapshot holds: decided alike once it is loaded.
    db.scope(|| {
        mnesia::transaction(|| {
            let a = Account::read(&3)?.expect("account");
            Account::write(Account { balance: a.balance + 1, ..a })
        })
    })
    .expect("transfer");
    // (The leader purges once no append to the node cut off is on its way.)
    let leader_node = run.nodes[leader].as_ref().expect("leader");
    eventually("the leader purges the entries the node lacks", || {
        leader_node.status().purged.is_some_and(|p| p > stale)
    });
    let status = leader_node.status();
    assert!(status.snapshot > status.purged, "{status:?}");
    faults.heal();
    run.settle();
    assert_eq!(run.accounts(behind), run.accounts(leader));
    assert_eq!(run.accounts(behind).len(), 150);
    let node = run.nodes[behind].as_ref().expect("node");
    eventually("the node holds a snapshot", || node.status().snapshot.is_some());
    // It goes on with the others.
    run.dbs[behind]
        .scope(|| Account::write(Account { id: 1000, balance: 7 }))
        .expect("write on the node that caught up");
    run.settle();
    for (i, _) in run.live() {
        assert_eq!(run.accounts(i), run.accounts(leader), "node {}", i + 1);
    }
    if dirs.is_empty() {
        return;
    }
    let addr = run.nodes[behind].as_ref().expect("node").local_addr();
    run.nodes[behind] = None;
    let db = database(&format!("n{}@127.0.0.1", behind + 1));
    let node =
        Node::start(&db, options(behind as u64 + 1).listen(addr)).expect("started again from its directory");
    run.dbs[behind] = db;
    run.nodes[behind] = Some(node);
    run.dbs[leader].scope(|| Account::write(Account { id: 1001, balance: 8 })).expect("write");
    run.settle();
    for (i, _) in run.live() {
        assert_eq!(run.accounts(i), run.accounts(leader), "node {} after the restart", i + 1);
    }
}

/// A database with the accounts table only, as a program creates it when it starts.
fn fresh() -> Database {
    let db = Database::in_memory().expect("db");
    db.scope(|| Account::create_table(TableOptions::new())).expect("table");
    db
}

/// A node started by `start` on a fresh database, a cluster of one with itself as leader.
fn alone(start: impl Fn(&Database) -> Node) -> (Database, Node) {
    let db = fresh();
    let node = start(&db);
    node.initialize([(1, node.local_addr())]).expect("initialize");
    node.wait_for_leader(Duration::from_secs(10)).expect("leader");
    (db, node)
}

/// Stops `node` (its database holding `records` accounts), starts it again with `start` on a
/// fresh database, and checks that it comes back with the same accounts.
fn started_again(
    db: &Database,
    node: Node,
    start: impl Fn(&Database) -> Node,
    records: usize,
) -> (Database, Node) {
    drop(node);
    let mut before = db.scope(Account::list).expect("list");
    before.sort_by_key(|a| a.id);
    assert_eq!(before.len(), records);
    let db = fresh();
    let node = start(&db);
    node.wait_for_leader(Duration::from_secs(10)).expect("leader");
    eventually("the node applied its log again", || db.applied_index() >= records as u64);
    let mut after = db.scope(Account::list).expect("list");
    after.sort_by_key(|a| a.id);
    assert_eq!(after, before);
    (db, node)
}

#[test]
fn a_node_starts_again_from_its_snapshot_and_the_rest_of_its_log() {
    let dir = tempfile::tempdir().expect("dir");
    let addr = free_addr();
    let start = |db: &Database| {
        Node::start(db, quick(1).dir(dir.path()).snapshots(20, 5).listen(addr)).expect("node")
    };
    let (db, node) = alone(start);
    let log_size = || std::fs::metadata(dir.path().join("raft.log")).expect("log").len();
    let mut early = 0;
    for id in 0..95 {
        db.scope(|| Account::write(Account { id, balance: i64::from(id) })).expect("write");
        if id == 9 {
            early = log_size();
        }
    }
    let status = node.status();
    assert!(status.purged.is_some(), "{status:?}");
    let log = log_size();
    let (db, _node) = started_again(&db, node, start, 95);
    db.scope(|| Account::write(Account { id: 500, balance: 1 })).expect("write after the restart");
    // The log file holds the entries after the snapshot (at most 20 + 5), not the 95
    // written: less than 5 times its size after the first 10.
    assert!(log < early * 5, "the log file is {log} bytes, {early} after 10 entries");
}

/// A Raft directory is one node's: a second node started on it while the first runs is
/// refused (it wrote its own votes into the same log), and so is another node's id, even
/// once it is free (it would take that node's log and vote for its own). Found trying the
/// cluster as a new user would.
#[test]
fn a_raft_directory_is_one_nodes_own() {
    let dir = tempfile::tempdir().expect("dir");
    let addr = free_addr();
    let (_db, node) =
        alone(|db: &Database| Node::start(db, quick(1).dir(dir.path()).listen(addr)).expect("node"));
    let again = Node::start(&fresh(), quick(1).dir(dir.path())).err();
    assert!(matches!(again, Some(Error::Locked { .. })), "{again:?}");
    drop(node);
    let other = Node::start(&fresh(), quick(2).dir(dir.path())).err();
    assert!(matches!(&other, Some(Error::Invalid(why)) if why.contains("node 1's")), "{other:?}");
    let node = Node::start(&fresh(), quick(1).dir(dir.path()).listen(addr))
        .expect("its own node starts again on it");
    node.wait_for_leader(Duration::from_secs(10)).expect("leader");
}

#[test]
fn a_snapshot_that_cannot_be_written_stops_nothing_and_the_log_keeps_what_it_lacks() {
    let dir = tempfile::tempdir().expect("dir");
    let addr = free_addr();
    let start = |db: &Database| {
        Node::start(db, quick(1).dir(dir.path()).snapshots(20, 5).listen(addr)).expect("node")
    };
    let (db, node) = alone(start);
    // Where a snapshot is written first: a directory in the way, as a full disc would be.
    let obstacle = dir.path().join("raft.snapshot.tmp");
    std::fs::create_dir(&obstacle).expect("obstacle");
    for id in 0..95 {
        db.scope(|| Account::write(Account { id, balance: i64::from(id) })).expect("write");
    }
    assert!(node.status().snapshot.is_some(), "built, held in memory: {:?}", node.status());
    assert!(!dir.path().join("raft.snapshot").exists(), "not written");
    // Started again from its directory: the log kept every entry no snapshot there holds.
    let (db, _node) = started_again(&db, node, start, 95);
    // The disc writable again: the next snapshot is written, and the log purged.
    std::fs::remove_dir(&obstacle).expect("obstacle gone");
    let log_size = || std::fs::metadata(dir.path().join("raft.log")).expect("log").len();
    let long = log_size();
    for id in 95..140 {
        db.scope(|| Account::write(Account { id, balance: 1 })).expect("write");
    }
    eventually("a snapshot on disc", || dir.path().join("raft.snapshot").exists());
    eventually("the log purged", || log_size() < long);
}

/// A node that created a table while it ran starts again on its log (with a snapshot
/// taken after the creation every `every` entries, or none) from a program that creates
/// only its first table: the created one comes back with its records.
fn a_table_created_while_running_comes_back(every: u64) {
    let dir = tempfile::tempdir().expect("dir");
    let addr = free_addr();
    let start = |db: &Database| {
        Node::start(db, quick(1).dir(dir.path()).snapshots(every, 5).listen(addr)).expect("node")
    };
    let (db, node) = alone(start);
    db.scope(|| Later::create_table(TableOptions::new())).expect("create_table while running");
    for id in 0..30 {
        db.scope(|| Later::write(Later { id, n: id % 3 })).expect("write");
    }
    assert_eq!(node.status().snapshot.is_some(), every < 30, "{:?}", node.status());
    drop(node);

    let db = fresh();
    let node = start(&db);
    node.wait_for_leader(Duration::from_secs(10)).expect("leader");
    db.wait_for_tables(&["later"], Duration::from_secs(20)).expect("the created table is back");
    assert_eq!(db.scope(Later::count).expect("count"), 30);
    let found = db.scope(|| Later::get_by(Later::N, 2)).expect("get_by");
    assert_eq!(found.map(|l| l.id), Some(2));
}

#[test]
fn a_table_created_while_running_comes_back_from_the_log() {
    a_table_created_while_running_comes_back(1_000);
}

#[test]
fn a_table_created_while_running_comes_back_from_a_snapshot() {
    a_table_created_while_running_comes_back(10);
}

#[test]
fn a_node_joins_a_running_cluster_and_members_leave_or_are_removed() {
    let options = |id| quick(id).snapshots(20, 5);
    let mut run = three_options(options);
    for id in 0..60 {
        run.dbs[0].scope(|| Account::write(Account { id, balance: 10 })).expect("write");
    }
    // A fourth node, with the same tables, joins through a follower; the log it would need
    // is purged, so it is sent a snapshot.
    let leader = run.leader();
    let leader_node = run.nodes[leader].as_ref().expect("leader");
    eventually("the leader purges its log", || leader_node.status().purged.is_some());
    let seed = run.nodes[(leader + 1) % 3].as_ref().expect("seed").local_addr();
    let db = database("n4@127.0.0.1");
    let node = Node::start(&db, options(4)).expect("node");
    node.join(seed, Duration::from_secs(20)).expect("join");
    run.dbs.push(db);
    run.nodes.push(Some(node));
    let members = |run: &Running, i: usize| run.nodes[i].as_ref().expect("node").status().members;
    for i in 0..4 {
        eventually("every node counts four members", || members(&run, i) == [1, 2, 3, 4].into());
    }
    run.settle();
    assert_eq!(run.accounts(3), run.accounts(0));
    assert_eq!(run.accounts(3).len(), 60);
    run.dbs[3].scope(|| Account::write(Account { id: 100, balance: 1 })).expect("write on the new node");
    run.settle();
    assert_eq!(run.accounts(0), run.accounts(3));

    // A follower leaves; another node is stopped and removed by the others: two remain,
    // and commit.
    let leader = run.leader();
    let (leaving, gone) = {
        let followers: Vec<usize> = (0..4).filter(|i| *i != leader).collect();
        (followers[0], followers[1])
    };
    run.nodes[leaving].as_ref().expect("node").leave(Duration::from_secs(10)).expect("leave");
    run.nodes[leaving] = None;
    run.nodes[gone] = None;
    let remover = run.live()[0].0;
    run.nodes[remover]
        .as_ref()
        .expect("node")
        .remove(gone as u64 + 1, Duration::from_secs(10))
        .expect("remove");
    let left: std::collections::BTreeSet<u64> = run.live().iter().map(|(i, _)| *i as u64 + 1).collect();
    for (i, _) in run.live() {
        eventually("the members left", || members(&run, i) == left);
    }
    for (i, db) in run.live() {
        db.scope(|| Account::write(Account { id: 200 + i as u32, balance: 2 }))
            .expect("write with two members");
    }
    run.settle();
    let (a, b) = (run.live()[0].0, run.live()[1].0);
    assert_eq!(run.accounts(a), run.accounts(b));
    assert_eq!(run.accounts(a).len(), 63);
}

#[test]
fn a_node_that_left_says_so_and_its_directory_is_not_a_member_again() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("dir")).collect();
    let mut run = three_options(|id| quick(id).dir(dirs[id as usize - 1].path()));
    write_through(&run.dbs[0], 0..5);
    run.settle();
    let leaving = (run.leader() + 1) % 3;
    let node = run.nodes[leaving].take().expect("node");
    node.leave(Duration::from_secs(10)).expect("leave");
    // Its writes fail at once, saying why (not a NoMajority after the write timeout).
    let write = run.dbs[leaving].scope(|| Account::write(Account { id: 50, balance: 1 }));
    assert!(matches!(&write, Err(Error::Closed { what }) if what.contains("left the cluster")), "{write:?}");
    assert_eq!(
        node.status().no_member.as_deref(),
        Some(format!("node {} left the cluster", leaving + 1).as_str())
    );
    // (Once each has applied the removal: a follower may still be on its way.)
    for (i, _) in run.live() {
        let node = run.nodes[i].as_ref().expect("node");
        eventually("the others leave it out of the members up", || {
            let status = node.status();
            status.no_member.is_none() && !status.up.contains(&(leaving as u64 + 1))
        });
    }
    // Reads still answer from its copy.
    assert_eq!(run.dbs[leaving].scope(|| Account::read(&0)).expect("read").map(|a| a.balance), Some(0));
    // Joining again, it is a new node.
    let seed = run.nodes[(leaving + 1) % 3].as_ref().expect("seed").local_addr();
    let rejoin = node.join(seed, Duration::from_secs(5));
    assert!(matches!(&rejoin, Err(Error::Invalid(why)) if why.contains("new node")), "{rejoin:?}");
    node.leave(Duration::from_secs(5)).expect("leaving again: done already");
    drop(node);
    // Started again on its directory, it does not campaign as a member: refused, saying how.
    let again = Node::start(&fresh(), quick(leaving as u64 + 1).dir(dirs[leaving].path())).err();
    assert!(matches!(&again, Some(Error::Invalid(why)) if why.contains("left the cluster")), "{again:?}");
    // The others go on.
    let (a, b) = (run.live()[0].1, run.live()[1].1);
    write_through(a, 10..15);
    write_through(b, 20..25);
    run.settle();
    assert_eq!(run.accounts(run.live()[0].0), run.accounts(run.live()[1].0));
    // A running follower removed by the leader while it writes: each of its writes ends
    // (none waits for a commit that never reaches its copy), every one acknowledged is
    // the cluster's, and once removed its writes are refused as a stranger's.
    let leader = run.leader();
    let removed = run.live().iter().map(|(i, _)| *i).find(|i| *i != leader).expect("a follower");
    let (done_tx, done) = std::sync::mpsc::channel();
    let writer = {
        let db = run.dbs[removed].clone();
        std::thread::spawn(move || {
            let mut acknowledged = Vec::new();
            for id in 1000..1200u32 {
                match db.scope(|| Account::write(Account { id, balance: 1 })) {
                    Ok(_) => acknowledged.push(id),
                    Err(Error::Closed { what }) if what.contains("removed") => break,
                    Err(_) => {}
                }
            }
            let _ = done_tx.send(acknowledged);
        })
    };
    std::thread::sleep(Duration::from_millis(20));
    run.nodes[leader]
        .as_ref()
        .expect("leader")
        .remove(removed as u64 + 1, Duration::from_secs(20))
        .expect("remove");
    let acknowledged =
        done.recv_timeout(Duration::from_secs(60)).expect("every write of the removed node ends");
    writer.join().expect("writer");
    for id in acknowledged {
        assert!(run.dbs[leader].scope(|| Account::read(&id)).expect("read").is_some(), "acknowledged {id}");
    }
    let write = run.dbs[removed].scope(|| Account::write(Account { id: 60, balance: 1 }));
    assert!(matches!(&write, Err(Error::Closed { what }) if what.contains("removed")), "{write:?}");
    let removed_node = run.nodes[removed].take().expect("removed node");
    let synced = removed_node.sync_reads(Duration::from_secs(30));
    assert!(matches!(&synced, Err(Error::Closed { .. })), "at once: {synced:?}");
    write_through(&run.dbs[leader], 30..35);
    assert_eq!(run.dbs[leader].scope(|| Account::read(&60)).expect("read"), None);
}

#[test]
fn a_removal_leaving_no_majority_up_is_refused_and_a_removed_leader_knows_it() {
    let mut run = three_options(quick);
    write_through(&run.dbs[0], 0..5);
    run.settle();
    let leader = run.leader();
    let (a, b) = ((leader + 1) % 3, (leader + 2) % 3);
    // One follower down: removing the other would leave the leader and the one down, no
    // majority up (every commit would wait for the change): refused, and writes go on.
    run.nodes[b] = None;
    let stalled = run.nodes[leader].as_ref().expect("leader").remove(a as u64 + 1, Duration::from_secs(10));
    assert!(matches!(&stalled, Err(Error::Invalid(why)) if why.contains("no majority")), "{stalled:?}");
    write_through(&run.dbs[a], 10..15);
    // The node down removed instead; then the leader, asked by the other: it knows.
    let leader_node = run.nodes[leader].as_ref().expect("leader");
    leader_node.remove(b as u64 + 1, Duration::from_secs(10)).expect("remove the node down");
    run.nodes[a]
        .as_ref()
        .expect("node")
        .remove(leader as u64 + 1, Duration::from_secs(10))
        .expect("remove the leader");
    let write = run.dbs[leader].scope(|| Account::write(Account { id: 50, balance: 1 }));
    assert!(matches!(&write, Err(Error::Closed { what }) if what.contains("removed")), "{write:?}");
    write_through(&run.dbs[a], 20..25);
}

#[test]
fn a_node_removed_while_down_and_started_again_learns_it_and_stops_campaigning() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("dir")).collect();
    let mut run = three_options(|id| quick(id).dir(dirs[id as usize - 1].path()));
    write_through(&run.dbs[0], 0..5);
    run.settle();
    let leader = run.leader();
    let down = (leader + 1) % 3;
    let id = down as u64 + 1;
    let addr = run.nodes[down].take().expect("node").local_addr();
    let leader_node = run.nodes[leader].as_ref().expect("leader");
    leader_node.remove(id, Duration::from_secs(10)).expect("remove the node down");
    write_through(&run.dbs[leader], 10..15);
    // Started again on its directory (not marked: it was down when it was removed), it
    // calls for votes as a member of its log's cluster; the leader answers that it is none,
    // without a write of its own to be refused.
    let db = fresh();
    let node = Node::start(&db, quick(id).dir(dirs[down].path()).listen(addr)).expect("started again");
    // ... and stops its Raft (it knows no leader from then on).
    eventually("the node learns it is no member and stops", || {
        let status = node.status();
        status.no_member.is_some() && status.leader.is_none()
    });
    let why = node.status().no_member.unwrap_or_default();
    assert!(why.contains(&format!("node {id} left the cluster or was removed")), "{why}");
    // It campaigns no more: its term stays put, and the leader's too.
    let (term, leader_term) = (node.status().term, leader_node.status().term);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!((node.status().term, leader_node.status().term), (term, leader_term));
    let write = db.scope(|| Account::write(Account { id: 50, balance: 1 }));
    assert!(matches!(&write, Err(Error::Closed { what }) if what.contains("no member")), "{write:?}");
    // Its directory says so: started on it again, refused.
    drop(node);
    let again = Node::start(&fresh(), quick(id).dir(dirs[down].path())).err();
    assert!(matches!(&again, Some(Error::Invalid(why)) if why.contains("left the cluster")), "{again:?}");
    write_through(&run.dbs[leader], 20..25);
    let other = (leader + 2) % 3;
    run.settle();
    assert_eq!(run.accounts(other), run.accounts(leader));
}

#[test]
fn a_member_started_again_at_another_address_is_refused_saying_which() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("dir")).collect();
    let mut run = three_options(|id| quick(id).dir(dirs[id as usize - 1].path()));
    write_through(&run.dbs[0], 0..5);
    run.settle();
    let follower = (run.leader() + 1) % 3;
    let id = follower as u64 + 1;
    let addr = run.nodes[follower].take().expect("node").local_addr();
    // The others would still send to the old address: its commits waited for ever.
    // Refused before its database is filled: started again on it at its address, it comes
    // back and catches up.
    let db = fresh();
    let moved = Node::start(&db, quick(id).dir(dirs[follower].path())).err();
    let told = format!("Options::listen({addr})");
    assert!(matches!(&moved, Some(Error::Invalid(why)) if why.contains(&told)), "{moved:?}");
    let node = Node::start(&db, quick(id).dir(dirs[follower].path()).listen(addr)).expect("started again");
    db.wait_for_tables(&["account"], Duration::from_secs(20)).expect("caught up");
    write_through(&db, 10..12);
    run.nodes[follower] = Some(node);
    run.dbs[follower] = db;
    run.settle();
    assert_eq!(run.accounts(follower), run.accounts(run.leader()));
}

#[test]
fn a_node_is_started_used_and_dropped_from_async_code() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let db = fresh();
    rt.block_on(async {
        // (tokio panicked: a runtime blocked on, or dropped, in another's context.)
        let node = Node::start(&db, quick(1)).expect("node");
        node.initialize([(1, node.local_addr())]).expect("initialize");
        node.wait_for_leader(Duration::from_secs(10)).expect("leader");
        db.scope(|| mnesia::transaction_async(|| Account::write(Account { id: 1, balance: 5 })))
            .await
            .expect("async commit");
        node.sync_reads(Duration::from_secs(5)).expect("synced");
        drop(node);
        // A node that fails to start once its runtime runs (its address in use) drops it
        // there too.
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let in_use = taken.local_addr().expect("addr");
        assert!(Node::start(&fresh(), quick(2).listen(in_use)).is_err());
    });
    assert_eq!(db.scope(|| Account::read(&1)).expect("read").map(|a| a.balance), Some(5));
}

#[test]
fn a_dropped_node_lets_its_database_go() {
    let dir = tempfile::tempdir().expect("dir");
    mnesia::Schema::create(dir.path()).expect("schema");
    let open = || Database::open(Config::default().dir(dir.path()));
    let db = open().expect("db");
    db.scope(|| Account::create_table(TableOptions::new().disc_copies([db.node()]))).expect("table");
    let node = Node::start(&db, quick(1)).expect("node");
    node.initialize([(1, node.local_addr())]).expect("initialize");
    node.wait_for_leader(Duration::from_secs(10)).expect("leader");
    write_through(&db, 0..3);
    drop(node);
    drop(db);
    // The node's parts held the database, and the database the node: never freed, its
    // directory stayed locked.
    let again = open();
    assert!(again.is_ok(), "{:?}", again.err());
}

#[test]
fn a_cluster_formed_with_a_node_twice_or_without_itself_is_refused() {
    let db = fresh();
    let node = Node::start(&db, quick(1)).expect("node");
    let (me, other) = (node.local_addr(), std::net::SocketAddr::from(([127, 0, 0, 1], 9)));
    for (members, says) in [
        (vec![(1, me), (1, other)], "node 1 is listed twice"),
        (vec![(1, me), (2, me)], "both at"),
        (vec![(2, other)], "not among the members"),
        (vec![(1, other)], "is listed at"),
        (vec![(1, me), (2, std::net::SocketAddr::from(([0, 0, 0, 0], 9)))], "cannot send to"),
    ] {
        let formed = node.initialize(members);
        assert!(matches!(&formed, Err(Error::Invalid(why)) if why.contains(says)), "{formed:?}");
    }
    // In no cluster yet, a write fails at once, saying so (it waited for a majority).
    let write = db.scope(|| Account::write(Account { id: 1, balance: 1 }));
    assert!(matches!(&write, Err(Error::Closed { what }) if what.contains("no cluster yet")), "{write:?}");
    node.initialize([(1, me)]).expect("initialize");
    // A write at once waits for the leader (it said the node was in no cluster yet).
    db.scope(|| Account::write(Account { id: 1, balance: 1 })).expect("write just after initialize");
    let again = node.initialize([(1, me)]);
    assert!(matches!(&again, Err(Error::Invalid(why)) if why.contains("in one already")), "{again:?}");
}

#[test]
fn a_node_joining_with_a_members_id_or_through_itself_is_refused_saying_so() {
    let run = three();
    let seed = run.nodes[0].as_ref().expect("seed").local_addr();
    let db = database("twin@127.0.0.1");
    let twin = Node::start(&db, quick(2)).expect("node");
    let joined = twin.join(seed, Duration::from_secs(20));
    assert!(
        matches!(&joined, Err(Error::Invalid(why)) if why.contains("node 2 is a member at")),
        "{joined:?}"
    );
    let own = twin.join(twin.local_addr(), Duration::from_secs(20));
    assert!(matches!(&own, Err(Error::Invalid(why)) if why.contains("own address")), "{own:?}");
    let status = run.nodes[0].as_ref().expect("node").status();
    assert_eq!(status.members, [1, 2, 3].into());
}

/// A database with the tables of these tests as a program has them after the transform of
/// `member` to `MemberV2`.
fn database_after_transform(name: &str) -> Database {
    database_with_members::<MemberV2>(Config::default().node_name(name))
}

#[test]
fn after_a_transform_a_node_on_the_new_struct_starts_again_and_joins() {
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().expect("dir")).collect();
    let mut run = three_options(|id| quick(id).dir(dirs[id as usize - 1].path()));
    for i in 0..20 {
        run.dbs[0].scope(|| Member::insert(Member { id: 0, email: format!("m{i}@x") })).expect("insert");
    }
    run.dbs[1]
        .transform(|m: Member| Ok(MemberV2 { id: m.id, email: m.email, verified: true }))
        .expect("transform");
    run.settle();
    // Every node compacts its log past the transform (its entries before it hold records
    // of the old struct, which the new program cannot read).
    for i in 0..3 {
        let node = run.nodes[i].as_ref().expect("node");
        eventually("the log compacted past the transform", || node.status().purged.is_some());
    }
    let members = |db: &Database| {
        let mut all = db.scope(MemberV2::list).expect("list");
        all.sort_by_key(|m| m.id);
        all
    };
    // A follower started again on its directory, with the new program: it failed to
    // replay the entries before the transform.
    let follower = (run.leader() + 1) % 3;
    let addr = run.nodes[follower].take().expect("node").local_addr();
    let db = database_after_transform("again@127.0.0.1");
    let options = quick(follower as u64 + 1).dir(dirs[follower].path()).listen(addr);
    run.nodes[follower] = Some(Node::start(&db, options).expect("started again on the new struct"));
    run.dbs[follower] = db;
    run.settle();
    let leader = run.leader();
    assert_eq!(members(&run.dbs[follower]), members(&run.dbs[leader]));
    assert_eq!(members(&run.dbs[follower]).len(), 20);
    // A new node with the new program joins (sent the snapshot: the entries are gone).
    let db = database_after_transform("n4@127.0.0.1");
    let node = Node::start(&db, quick(4).dir(dirs[3].path())).expect("node");
    let seed = run.nodes[leader].as_ref().expect("seed").local_addr();
    node.join(seed, Duration::from_secs(20)).expect("join");
    run.dbs.push(db);
    run.nodes.push(Some(node));
    run.settle();
    assert_eq!(members(&run.dbs[3]), members(&run.dbs[leader]));
}

/// Writes accounts `ids` on `db`, each tried again (a leader being elected) for 20 s at most.
fn write_through(db: &Database, ids: std::ops::Range<u32>) {
    for id in ids {
        let deadline = Instant::now() + Duration::from_secs(20);
        while let Err(e) = db.scope(|| Account::write(Account { id, balance: i64::from(id) })) {
            assert!(Instant::now() < deadline, "account {id}: {e}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn a_full_disc_costs_its_node_errors_until_it_has_room_and_the_others_go_on() {
    let faults = Faults::new();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("dir")).collect();
    let mut run = three_options(|id| quick(id).faults(faults.clone()).dir(dirs[id as usize - 1].path()));
    write_through(&run.dbs[0], 0..10);
    run.settle();
    // A follower's disc fills, then the leader's.
    for (round, base) in [(0, 100), (1, 200)] {
        let leader = run.leader();
        let full = if round == 0 { (leader + 1) % 3 } else { leader };
        let other = (0..3).find(|i| *i != full).expect("another node");
        let events = run.dbs[full].subscribe_system();
        faults.fill_disc(full as u64 + 1);
        // The other two go on (electing a leader of their own, if the full node led).
        write_through(&run.dbs[other], base..base + 20);
        let failed =
            wait_for_event(&events, |e| matches!(e, SystemEvent::Cluster(ClusterEvent::LogFailed { .. })));
        assert!(
            matches!(
                &failed,
                SystemEvent::Cluster(ClusterEvent::LogFailed { kind: std::io::ErrorKind::StorageFull, .. })
            ),
            "{failed:?}"
        );
        // A write on the full node fails (its fate unknown: it may be ordered without it),
        // once its timeout passes: it does not hang.
        let started = Instant::now();
        let refused = run.dbs[full].scope(|| Account::write(Account { id: base + 50, balance: 1 }));
        assert!(refused.is_err(), "{refused:?}");
        assert!(started.elapsed() < Duration::from_secs(30), "bounded");
        // Room again: the node goes on where it stopped, catches up and writes again.
        faults.free_disc(full as u64 + 1);
        wait_for_event(&events, |e| matches!(e, SystemEvent::Cluster(ClusterEvent::LogRecovered)));
        write_through(&run.dbs[full], base + 60..base + 61);
        run.settle();
        for i in 0..3 {
            assert_eq!(run.accounts(i), run.accounts(other), "node {} after round {round}", i + 1);
        }
        assert!(run.accounts(full).len() >= 10 + 20 * (round + 1) + (round + 1));
    }
    // The node whose disc was full starts again from its directory: its log file holds no
    // damage from the writes cut short, and it comes back with every record.
    let leader = run.leader();
    let back = (leader + 1) % 3;
    let addr = run.nodes[back].as_ref().expect("node").local_addr();
    run.nodes[back] = None;
    let db = database(&format!("n{}@127.0.0.1", back + 1));
    let node =
        Node::start(&db, quick(back as u64 + 1).faults(faults.clone()).dir(dirs[back].path()).listen(addr))
            .expect("started again from its directory");
    run.dbs[back] = db;
    run.nodes[back] = Some(node);
    write_through(&run.dbs[leader], 300..301);
    run.settle();
    for i in 0..3 {
        assert_eq!(run.accounts(i), run.accounts(leader), "node {} started again", i + 1);
    }
}

#[test]
fn a_node_without_a_directory_comes_back_under_its_id_and_is_filled_from_the_others() {
    let mut run = three();
    for id in 0..20 {
        run.dbs[0].scope(|| Account::write(Account { id, balance: 10 })).expect("write");
    }
    run.settle();
    // A follower stops: its database and its Raft log, both in memory, are gone.
    let leader = run.leader();
    let back = (leader + 1) % 3;
    let addr = run.nodes[back].as_ref().expect("node").local_addr();
    run.nodes[back] = None;
    let other = (leader + 2) % 3;
    for id in 20..40 {
        run.dbs[other].scope(|| Account::write(Account { id, balance: 20 })).expect("write without it");
    }
    // Started again under its id and address on an empty database, it joins through any
    // member and is sent what it lacks.
    let db = database(&format!("n{}@127.0.0.1", back + 1));
    let id = back as u64 + 1;
    let node = Node::start(&db, quick(id).listen(addr)).expect("node");
    node.join(run.nodes[other].as_ref().expect("seed").local_addr(), Duration::from_secs(20)).expect("join");
    run.dbs[back] = db;
    run.nodes[back] = Some(node);
    run.settle();
    assert_eq!(run.accounts(back).len(), 40);
    assert_eq!(run.accounts(back), run.accounts(leader));
    let members = run.nodes[back].as_ref().expect("node").status().members;
    assert_eq!(members, [1, 2, 3].into());
    run.dbs[back].scope(|| Account::write(Account { id: 100, balance: 1 })).expect("write on it");
    run.settle();
    for i in 0..3 {
        assert_eq!(run.accounts(i), run.accounts(back), "node {}", i + 1);
    }
}

#[test]
fn a_joining_node_that_never_caught_up_stays_a_learner_and_can_be_removed() {
    let faults = Faults::new();
    let run = three_with(&faults);
    let leader = run.leader();
    let leader_id = leader as u64 + 1;
    // Node 4 cannot hear from the leader: it is made a learner, and never catches up.
    faults.cut(leader_id, 4);
    let db = database("n4@127.0.0.1");
    let node = Node::start(&db, quick(4).faults(faults.clone())).expect("node");
    let seed = run.nodes[(leader + 1) % 3].as_ref().expect("seed").local_addr();
    let joined = node.join(seed, Duration::from_secs(2));
    assert!(matches!(joined, Err(Error::NoMajority { .. })), "{joined:?}");
    drop(node);
    let status = || run.nodes[leader].as_ref().expect("leader").status();
    eventually("node 4 a learner", || status().learners == [4].into());
    assert_eq!(status().members, [1, 2, 3].into(), "not a voter");
    let reported = run.dbs[leader].system_info().cluster.expect("a cluster node");
    let four = reported.members.iter().find(|m| m.id == 4).expect("node 4 reported");
    assert!(!four.voter && !four.up, "{four:?}");
    // Gone for good: removed, it is no member at all.
    run.nodes[leader].as_ref().expect("leader").remove(4, Duration::from_secs(10)).expect("remove");
    eventually("node 4 removed", || status().learners.is_empty());
    assert_eq!(status().members, [1, 2, 3].into());
    run.dbs[0].scope(|| Account::write(Account { id: 1, balance: 1 })).expect("the three go on");
}

#[test]
fn a_node_is_not_started_again_on_a_database_that_applied_its_log() {
    let (db, node) = alone(|db| Node::start(db, quick(1)).expect("node"));
    db.scope(|| Account::write(Account { id: 1, balance: 1 })).expect("write");
    drop(node);
    // Its log would be applied again, at other places.
    let again = Node::start(&db, quick(1));
    assert!(matches!(again, Err(Error::Invalid(_))), "{:?}", again.map(|_| ()));
    db.stop_ordering();
    assert_eq!(db.scope(Account::list).expect("list"), [Account { id: 1, balance: 1 }]);
}

#[test]
fn a_node_with_another_cookie_cannot_join() {
    let run = three();
    let db = Database::in_memory().expect("db");
    let stranger = Node::start(&db, Options::new(9, "another cookie")).expect("node");
    let seed = run.nodes[0].as_ref().expect("seed").local_addr();
    // Refused as such (not a NoMajority once the time is up: asking again would not help).
    let joined = stranger.join(seed, Duration::from_secs(30));
    assert!(matches!(&joined, Err(Error::Invalid(why)) if why.contains("cookie")), "{joined:?}");
    let status = run.nodes[0].as_ref().expect("node").status();
    assert_eq!(status.members, [1, 2, 3].into());
}

#[test]
fn sync_transaction_returns_once_every_live_node_applied_it() {
    let faults = Faults::new();
    let run = three_with(&faults);
    let leader = run.leader();
    let slow = (leader + 1) % 3;
    // What the leader sends the slow node leaves 30 ms late (within the heartbeat, the time
    // an append may take, so that the node stays up): a majority (the leader and the third
    // node) commits without it. (With `transaction` instead, the check below fails.)
    faults.delay(leader as u64 + 1, slow as u64 + 1, Duration::from_millis(30));
    let db = &run.dbs[leader];
    for id in 0..5 {
        db.scope(|| mnesia::sync_transaction(|| Account::write(Account { id, balance: 1 }))).expect("commit");
        let here = db.applied_index();
        for (i, other) in run.live() {
            assert!(other.applied_index() >= here, "node {} behind after sync_transaction", i + 1);
        }
    }
    // A node down is not waited for.
    faults.heal();
    let mut run = run;
    run.nodes[slow] = None;
    let db = &run.dbs[leader];
    db.scope(|| mnesia::sync_transaction(|| Account::write(Account { id: 9, balance: 1 }))).expect("commit");
}

#[test]
fn an_async_commit_waits_for_the_cluster_without_blocking_the_executor() {
    let faults = Faults::new();
    let run = three_with(&faults);
    let leader = run.leader();
    let follower = (leader + 1) % 3;
    // The follower's commits reach the leader 30 ms late.
    faults.delay(follower as u64 + 1, leader as u64 + 1, Duration::from_millis(30));
    let db = run.dbs[follower].clone();
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime");
    rt.block_on(async {
        // Another task of the same single-threaded executor: it runs only while the commit
        // below is pending without holding the thread.
        let ticks = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let ticker = {
            let ticks = std::sync::Arc::clone(&ticks);
            tokio::spawn(async move {
                loop {
                    ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
        };
        tokio::task::yield_now().await;
        for id in 0..3 {
            let before = ticks.load(std::sync::atomic::Ordering::Relaxed);
            let written = db.scope(|| Account::write_async(Account { id, balance: 5 })).await.expect("write");
            assert_eq!(written.balance, 5);
            let during = ticks.load(std::sync::atomic::Ordering::Relaxed) - before;
            assert!(during > 0, "the executor's thread was held through the commit");
        }
        ticker.abort();
    });
    faults.heal();
    run.settle();
    for (i, _) in run.live() {
        assert_eq!(run.accounts(i).len(), 3, "node {}", i + 1);
    }
}

#[test]
fn async_updates_on_every_node_at_once_lose_nothing() {
    let run = three();
    run.dbs[0].scope(|| Account::write(Account { id: 0, balance: 0 })).expect("write");
    run.settle();
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build().expect("runtime");
    rt.block_on(async {
        let tasks: Vec<_> = (0..30)
            .map(|n| {
                let db = run.dbs[n % 3].clone();
                tokio::spawn(db.scope(|| Account::update_async(0, |a| a.balance += 1)))
            })
            .collect();
        for t in tasks {
            t.await.expect("task").expect("update");
        }
    });
    run.settle();
    for (i, _) in run.live() {
        assert_eq!(run.accounts(i), vec![Account { id: 0, balance: 30 }], "node {}", i + 1);
    }
}

#[test]
fn system_info_reports_the_cluster() {
    let run = three();
    let leader = run.leader() as u64 + 1;
    for (i, db) in run.live() {
        eventually("every member answers", || db.system_info().running_nodes.len() == 3);
        let info = db.system_info();
        let cluster = info.cluster.clone().expect("a cluster node reports its cluster");
        assert_eq!((cluster.node, cluster.leader), (i as u64 + 1, Some(leader)));
        assert_eq!(cluster.members.iter().map(|m| m.id).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(info.known_nodes.len(), 3);
        // Every member named alike, this node first.
        let addr = run.nodes[i].as_ref().expect("node").local_addr();
        assert_eq!(info.known_nodes[0], format!("{}@{addr}", i + 1));
        let mut known = info.known_nodes.clone();
        known.sort();
        assert_eq!(known, cluster.members.iter().map(ToString::to_string).collect::<Vec<_>>());
        assert!(info.to_string().contains(&format!("leader {leader}")), "{info}");
        assert!(info.to_string().contains(&format!("(cluster member {}@{addr})", i + 1)), "{info}");
    }
    let mut run = run;
    let db = run.dbs[0].clone();
    run.nodes[0] = None;
    assert!(db.system_info().cluster.is_none(), "a node stopped reports no cluster");
}

#[test]
fn the_leader_reports_how_far_behind_each_member_is() {
    let faults = Faults::new();
    let run = three_with(&faults);
    let leader = run.leader();
    let behind = |i: usize| -> Vec<Option<u64>> {
        let cluster = run.dbs[i].system_info().cluster.expect("a cluster");
        cluster.members.iter().map(|m| m.behind).collect()
    };
    run.dbs[leader].scope(|| Account::write(Account { id: 1, balance: 1 })).expect("write");
    eventually("every member holds the leader's log", || behind(leader) == [Some(0); 3]);
    let follower = (leader + 1) % 3;
    assert!(behind(follower).iter().all(Option::is_none), "only the leader knows: {:?}", behind(follower));
    // A follower cut off falls behind by the entries committed without it.
    let cut = follower as u64 + 1;
    faults.isolate(cut, (1..=3).filter(|n| *n != cut));
    for n in 0..5 {
        run.dbs[leader].scope(|| Account::write(Account { id: 2, balance: n })).expect("the majority writes");
    }
    let lagging = behind(leader)[follower].expect("reported by the leader");
    assert!(lagging >= 5, "{lagging} entries behind");
    faults.heal();
    eventually("the follower caught up", || behind(leader) == [Some(0); 3]);
}

#[test]
fn wait_for_tables_returns_once_the_node_is_current_or_fails_cut_off() {
    let faults = Faults::new();
    let run = three_with(&faults);
    let follower = (run.leader() + 1) % 3;
    let id = follower as u64 + 1;
    faults.isolate(id, (1..=3).filter(|n| *n != id));
    let other = (follower + 1) % 3;
    run.dbs[other].scope(|| Account::write(Account { id: 1, balance: 2 })).expect("the majority writes");
    let db = &run.dbs[follower];
    let refused = db.wait_for_tables(&["account"], Duration::from_millis(800));
    assert!(matches!(refused, Err(Error::NoMajority { .. })), "{refused:?}");
    // A table the node keeps for itself needs no majority: waited for and written cut off.
    db.create_table::<Note>(TableOptions::new().local_content()).expect("local table");
    db.wait_for_tables(&["note"], Duration::from_millis(800)).expect("its own table is current");
    db.scope(|| Note::insert(Note { id: 0, text: "cut off".into() })).expect("written cut off");
    let both = db.wait_for_tables(&["note", "account"], Duration::from_millis(800));
    assert!(matches!(both, Err(Error::NoMajority { .. })), "{both:?}");
    faults.heal();
    db.wait_for_tables(&["account", "member"], Duration::from_secs(20)).expect("current after healing");
    let missing = db.wait_for_tables(&["nope"], Duration::from_secs(20));
    assert!(matches!(missing, Err(Error::NoSuchTable { .. })), "{missing:?}");
    assert_eq!(db.scope(|| Account::read(&1)).expect("read").map(|a| a.balance), Some(2));
}

#[test]
fn a_table_cleared_on_one_node_is_cleared_on_every_node() {
    let run = three();
    for id in 0..10 {
        run.dbs[0].scope(|| Account::write(Account { id, balance: 1 })).expect("write");
    }
    run.dbs[2].scope(Account::clear).expect("clear");
    run.dbs[1].scope(|| Account::write(Account { id: 99, balance: 1 })).expect("write after");
    run.settle();
    for (i, _) in run.live() {
        assert_eq!(run.accounts(i), vec![Account { id: 99, balance: 1 }], "node {}", i + 1);
    }
}

#[test]
fn index_changes_and_drops_made_on_one_node_reach_every_node() {
    let run = three();
    for id in 0..10 {
        run.dbs[0].scope(|| Account::write(Account { id, balance: i64::from(id % 5) })).expect("write");
    }
    // Refused alike on every node: two accounts share each balance.
    let unique = run.dbs[1].add_index(Account::BALANCE.index_spec(true));
    assert!(matches!(unique, Err(Error::UniqueViolation { .. })), "{unique:?}");
    run.dbs[1].add_index(Account::BALANCE.index_spec(false)).expect("add_index");
    run.settle();
    for (i, db) in run.live() {
        let indexes = db.table_info::<Account>().expect("info").indexes;
        assert_eq!(
            indexes.iter().map(|x| (x.field.as_str(), x.unique)).collect::<Vec<_>>(),
            [("balance", false)]
        );
        let found = db.scope(|| Account::get_by(Account::BALANCE, 4)).expect("get_by");
        assert_eq!(found.map(|a| a.id), Some(4), "node {}", i + 1);
    }
    run.dbs[2].remove_index::<Account>("balance").expect("remove_index");
    run.dbs[0].drop_table::<Account>().expect("drop_table");
    run.settle();
    for (i, db) in run.live() {
        assert!(!db.exists::<Account>(), "node {} kept the dropped table", i + 1);
    }
    let gone = run.dbs[1].scope(|| Account::write(Account { id: 1, balance: 1 }));
    assert!(matches!(gone, Err(Error::NoSuchTable { .. })), "{gone:?}");
    // Every node goes on applying.
    run.dbs[2].scope(|| Member::insert(Member { id: 0, email: "after@drop".into() })).expect("insert");
    run.settle();
    for (_, db) in run.live() {
        assert_eq!(db.scope(Member::count).expect("count"), 1);
    }
}

/// A table the nodes' program creates once the cluster runs.
#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Later {
    #[key]
    id: u32,
    #[index]
    n: u32,
}

#[test]
fn a_table_created_on_one_running_node_is_created_on_every_node() {
    let run = three();
    run.dbs[1].scope(|| Later::create_table(TableOptions::new())).expect("create_table");
    // Another node has it once it holds what was decided before (Mnesia's wait_for_tables).
    run.dbs[2].wait_for_tables(&["later"], Duration::from_secs(20)).expect("there");
    run.dbs[2].scope(|| Later::write(Later { id: 1, n: 5 })).expect("write on another node");
    run.settle();
    for (i, db) in run.live() {
        let found = db.scope(|| Later::get_by(Later::N, 5)).expect("get_by");
        assert_eq!(found, Some(Later { id: 1, n: 5 }), "node {}", i + 1);
    }
    let again = run.dbs[0].scope(|| Later::create_table(TableOptions::new()));
    assert!(matches!(again, Err(Error::TableExists { .. })), "{again:?}");
}

#[test]
fn a_node_with_other_tables_cannot_join() {
    let run = three();
    let seed = run.nodes[0].as_ref().expect("seed").local_addr();
    // One table missing.
    let fewer = Database::in_memory().expect("db");
    fewer
        .scope(|| -> mnesia::Result<()> {
            Account::create_table(TableOptions::new())?;
            Session::create_table(TableOptions::new())?;
            Ok(())
        })
        .expect("tables");
    let node = Node::start(&fewer, quick(5)).expect("node");
    match node.join(seed, Duration::from_secs(5)) {
        Err(Error::Invalid(why)) => assert!(why.contains("lacks table member"), "{why}"),
        other => panic!("{other:?}"),
    }
    // The same tables, one with an index the others lack.
    let indexed = database("n6@127.0.0.1");
    indexed.add_index(Account::BALANCE.index_spec(false)).expect("index");
    let node = Node::start(&indexed, quick(6)).expect("node");
    match node.join(seed, Duration::from_secs(5)) {
        Err(Error::Invalid(why)) => assert!(why.contains("table account differs"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(run.nodes[0].as_ref().expect("node").status().members, [1, 2, 3].into());
}

/// `Member` after a transform: a field more, the email no longer unique.
#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(name = "member")]
struct MemberV2 {
    #[key]
    #[auto_increment]
    id: u64,
    #[index]
    email: String,
    verified: bool,
}

#[test]
fn a_transform_on_one_node_reaches_every_node_and_one_too_large_is_refused() {
    let run = three();
    for i in 0..20 {
        run.dbs[0].scope(|| Member::insert(Member { id: 0, email: format!("m{i}@x") })).expect("insert");
    }
    let converted = run.dbs[1]
        .transform(|m: Member| Ok(MemberV2 { id: m.id, email: m.email, verified: m.id.is_multiple_of(2) }))
        .expect("transform");
    assert_eq!(converted, 20);
    run.settle();
    for (i, db) in run.live() {
        let info = db.table_info::<MemberV2>().expect("info");
        assert_eq!((info.version, info.size, info.counter), (1, 20, 20), "node {}", i + 1);
        let verified = db.scope(|| MemberV2::select(MemberV2::VERIFIED.eq(true))).expect("select");
        assert_eq!(verified.len(), 10, "node {}", i + 1);
    }
    // Ids go on after the transform, from any node; the email is no longer unique.
    let next = run.dbs[2]
        .scope(|| MemberV2::insert(MemberV2 { id: 0, email: "m0@x".into(), verified: true }))
        .expect("insert");
    assert_eq!(next.id, 21);
    // Converted records larger than one entry of the log: refused, nothing changes.
    let big = "x".repeat(64 << 10);
    for id in 100..110 {
        run.dbs[0]
            .scope(|| MemberV2::write(MemberV2 { id, email: format!("{id}{big}"), verified: false }))
            .expect("write");
    }
    let refused =
        run.dbs[0].transform(|m: MemberV2| Ok(Member { id: m.id, email: format!("{}.{}", m.id, m.email) }));
    assert!(matches!(refused, Err(Error::TooLarge { .. })), "{refused:?}");
    run.settle();
    for (_, db) in run.live() {
        assert_eq!(db.table_info::<MemberV2>().expect("info").size, 31);
    }
}

/// A table each node keeps for itself (`local_content`).
#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Note {
    #[key]
    #[auto_increment]
    id: u64,
    text: String,
}

fn note_texts(db: &Database) -> Vec<String> {
    let mut texts: Vec<String> = db.scope(Note::list).expect("notes").into_iter().map(|n| n.text).collect();
    texts.sort();
    texts
}

#[test]
fn tables_each_node_keeps_for_itself_commit_there_with_no_round_trip() {
    let mut run = three();
    run.dbs[0].scope(|| Account::write(Account { id: 1, balance: 4 })).expect("write");
    run.settle();
    let before: Vec<u64> = run.dbs.iter().map(Database::applied_index).collect();
    for (i, db) in run.dbs.iter().enumerate() {
        db.create_table::<Note>(TableOptions::new().local_content()).expect("local table");
        db.scope(|| -> mnesia::Result<()> {
            for n in 0..3 {
                Note::insert(Note { id: 0, text: format!("node {i}, note {n}") })?;
            }
            mnesia::transaction(|| {
                let a = Account::read(&1)?.expect("account");
                Note::write(Note { id: 10, text: format!("node {i} read {}", a.balance) })
            })?;
            Ok(())
        })
        .expect("local writes");
    }
    // No entry went through the log, and each node holds its own notes alone.
    let after: Vec<u64> = run.dbs.iter().map(Database::applied_index).collect();
    assert_eq!(after, before, "local commits took no log entry");
    for (i, db) in run.dbs.iter().enumerate() {
        let texts = note_texts(db);
        assert_eq!(texts.len(), 4, "{texts:?}");
        assert!(texts.iter().all(|t| t.starts_with(&format!("node {i}"))), "{texts:?}");
        assert!(db.table_info::<Note>().expect("info").local_content);
    }
    // A transaction writing the cluster's tables and touching a node's own is refused;
    // read first, the value is written on every node.
    let both = run.dbs[1].scope(|| {
        mnesia::transaction(|| {
            Note::write(Note { id: 20, text: "both".into() })?;
            Account::write(Account { id: 2, balance: 1 })
        })
    });
    assert!(matches!(&both, Err(Error::Invalid(m)) if m.contains("two transactions")), "{both:?}");
    let read_here = run.dbs[1].scope(|| {
        mnesia::transaction(|| {
            let notes = Note::count()? as i64;
            Account::write(Account { id: 2, balance: notes })
        })
    });
    assert!(matches!(&read_here, Err(Error::Invalid(m)) if m.contains("read it before")), "{read_here:?}");
    let notes = run.dbs[1].scope(Note::count).expect("count") as i64;
    run.dbs[1].scope(|| Account::write(Account { id: 2, balance: notes })).expect("cluster write");
    run.settle();
    for i in 0..3 {
        assert_eq!(run.accounts(i), [Account { id: 1, balance: 4 }, Account { id: 2, balance: 4 }]);
    }
    // A node joining with a table of its own that the others lack, and without theirs,
    // is accepted.
    let seed = run.nodes[0].as_ref().expect("node").local_addr();
    let db = database("n4@127.0.0.1");
    db.create_table::<Scratch>(TableOptions::new().local_content()).expect("local table");
    db.scope(|| Scratch::write(Scratch { id: 1 })).expect("scratch");
    let node = Node::start(&db, quick(4)).expect("node");
    node.join(seed, Duration::from_secs(20)).expect("join with a table of its own");
    run.dbs.push(db);
    run.nodes.push(Some(node));
    run.settle();
    assert_eq!(run.accounts(3), run.accounts(0));
    assert_eq!(run.dbs[3].scope(Scratch::count).expect("count"), 1);
    assert!(!run.dbs[3].exists::<Note>());
}

/// A table only the fourth node has, for itself.
#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Scratch {
    #[key]
    id: u32,
}

#[test]
fn a_node_keeps_its_own_tables_on_disc_beside_its_raft_log_and_no_other() {
    let (data, raft) = (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
    mnesia::Schema::create(data.path()).expect("schema");
    let addr = free_addr();
    let open = || {
        let db = Database::open(Config::default().dir(data.path())).expect("open");
        db.scope(|| -> mnesia::Result<()> {
            Account::create_table(TableOptions::new())?;
            if !Note::exists()? {
                Note::create_table(TableOptions::new().disc_copies([db.node()]).local_content())?;
            }
            Ok(())
        })
        .expect("tables");
        db
    };
    let start = |db: &Database| Node::start(db, quick(1).dir(raft.path()).listen(addr)).expect("node");
    let db = open();
    let node = start(&db);
    node.initialize([(1, addr)]).expect("initialize");
    node.wait_for_leader(Duration::from_secs(10)).expect("leader");
    db.scope(|| Account::write(Account { id: 1, balance: 9 })).expect("cluster write");
    db.scope(|| Note::insert(Note { id: 0, text: "on disc".into() })).expect("own write");
    drop(node);
    drop(db);
    // Started again: its own table from its directory, the cluster's from the Raft log.
    let db = open();
    assert_eq!(note_texts(&db), ["on disc"]);
    let node = start(&db);
    node.wait_for_leader(Duration::from_secs(10)).expect("leader");
    eventually("the node applied its log again", || {
        db.scope(|| Account::read(&1)).expect("read").is_some_and(|a| a.balance == 9)
    });
    drop(node);
    // A table of the cluster on disc in the directory: refused, saying which.
    let (data, raft) = (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
    mnesia::Schema::create(data.path()).expect("schema");
    let db = Database::open(Config::default().dir(data.path())).expect("open");
    db.create_table::<Account>(TableOptions::new().disc_copies([db.node()])).expect("table");
    let refused = Node::start(&db, quick(1).dir(raft.path()));
    assert!(
        matches!(&refused, Err(Error::Invalid(m)) if m.contains("table account is disc_copies")),
        "{:?}",
        refused.err()
    );
}

/// A cluster whose majority is gone for good commits nothing; its last member recovers
/// alone from its directory with what it held, commits, and takes new members.
#[test]
fn a_member_left_without_a_majority_for_good_recovers_alone_and_takes_new_members() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("dir")).collect();
    let mut run = three_options(|id| quick(id).dir(dirs[id as usize - 1].path()));
    write_through(&run.dbs[0], 0..20);
    run.settle();
    let addr = run.nodes[0].as_ref().expect("node").local_addr();
    // Nodes 2 and 3 are lost with their directories; node 1 stops too.
    run.nodes = vec![None, None, None];
    let start = |options: Options| {
        let db = fresh();
        let node = Node::start(&db, options.dir(dirs[0].path()).listen(addr));
        (db, node)
    };
    // Started as usual, it has no majority: nothing commits.
    let (db, node) = start(quick(1).write_timeout(Duration::from_millis(500)));
    let node = node.expect("started again");
    let write = db.scope(|| Account::write(Account { id: 100, balance: 1 }));
    assert!(matches!(write, Err(Error::NoMajority { .. })), "{write:?}");
    drop(node);
    // Recovering alone: leader of itself, with every record it held.
    let (db, node) = start(quick(1).recover_alone());
    let node = node.expect("recovered");
    assert_eq!(node.wait_for_leader(Duration::from_secs(10)).expect("leader"), 1);
    assert_eq!(node.status().members, [1].into());
    eventually("the records are back", || db.scope(Account::count).expect("count") >= 20);
    write_through(&db, 100..105);
    assert_eq!(db.scope(Account::count).expect("count"), 25);
    // Started with the option again before anyone joined: as usual (alone already).
    drop(node);
    let (db, node) = start(quick(1).recover_alone());
    let node = node.expect("started again, alone already");
    assert_eq!(node.wait_for_leader(Duration::from_secs(10)).expect("leader"), 1);
    eventually("the records are back", || db.scope(Account::count).expect("count") == 25);
    // A new node joins it and holds the same records.
    let joiner = fresh();
    let new = Node::start(&joiner, quick(4)).expect("node");
    new.join(addr, Duration::from_secs(20)).expect("join the recovered node");
    eventually("the new node holds every record", || joiner.scope(Account::count).expect("count") == 25);
    drop(new);
    drop(node);
    // The recovery is in its log: started as usual afterwards, it is a cluster of one and
    // four (node 4 joined): it waits for node 4 as for any member.
    let (db, node) = start(quick(1));
    let node = node.expect("started again");
    eventually("it counts itself and node 4", || node.status().members == [1, 4].into());
    eventually("the records are back", || db.scope(Account::count).expect("count") == 25);
    drop(node);
    // Recovering alone again would leave node 4 a cluster of its own: refused.
    let (_, again) = start(quick(1).recover_alone());
    let again = again.err();
    assert!(
        matches!(&again, Some(Error::Invalid(why)) if why.contains("members changed since")),
        "{again:?}"
    );
    // Listening on every address, a node recovering alone is refused (it would advertise
    // an address no one can send to).
    let anywhere = std::net::SocketAddr::from(([0, 0, 0, 0], 0));
    let unspecified =
        Node::start(&fresh(), quick(1).dir(dirs[0].path()).listen(anywhere).recover_alone()).err();
    assert!(
        matches!(&unspecified, Some(Error::Invalid(why)) if why.contains("listen on the address")),
        "{unspecified:?}"
    );
    // Without a directory, or on a directory of no cluster: refused, saying why.
    let no_dir = Node::start(&fresh(), quick(5).recover_alone()).err();
    assert!(matches!(&no_dir, Some(Error::Invalid(why)) if why.contains("Options::dir")), "{no_dir:?}");
    let empty = tempfile::tempdir().expect("dir");
    let never = Node::start(&fresh(), quick(6).dir(empty.path()).recover_alone()).err();
    assert!(matches!(&never, Some(Error::Invalid(why)) if why.contains("never in a cluster")), "{never:?}");
}

/// A leader started again cut off from the others (openraft makes a node that voted for
/// itself the leader again as it starts) is answered by no one: it does not report itself
/// the leader for ever.
#[test]
fn a_leader_started_again_cut_off_does_not_report_itself_the_leader() {
    let faults = Faults::new();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("dir")).collect();
    let mut run = three_options(|id| quick(id).faults(faults.clone()).dir(dirs[id as usize - 1].path()));
    write_through(&run.dbs[0], 0..3);
    run.settle();
    let leader = run.leader();
    let id = leader as u64 + 1;
    let addr = run.nodes[leader].take().expect("leader").local_addr();
    faults.isolate(id, (1..=3).filter(|n| *n != id));
    let db = fresh();
    let node = Node::start(&db, quick(id).faults(faults.clone()).dir(dirs[leader].path()).listen(addr))
        .expect("started");
    // However it starts (leader at once, or a candidate), it ends knowing no leader.
    std::thread::sleep(Duration::from_millis(1500));
    eventually("it reports no leader", || node.status().leader.is_none());
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(node.status().leader, None, "still none");
    faults.heal();
    eventually("it follows the others' leader", || node.status().leader.is_some_and(|l| l != id));
}

/// A table created while the cluster runs, on some nodes only.
#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Spot {
    #[key]
    id: u32,
    n: u32,
}

fn spots(db: &Database) -> Vec<u32> {
    let mut ids: Vec<u32> = db.scope(Spot::list).expect("list").into_iter().map(|s| s.id).collect();
    ids.sort_unstable();
    ids
}

#[test]
fn a_table_on_two_nodes_keeps_its_records_there_and_a_holder_far_behind_is_filled_from_the_other() {
    // (Images in parts of 1 KiB: the table's, several.)
    let mut run = three_options(|id| quick(id).snapshots(20, 5).image_parts(1024));
    let leader = run.leader();
    // Its copies on the two followers; created from the leader, which holds none.
    let (a, b) = ((leader + 1) % 3, (leader + 2) % 3);
    let holders = [a, b].map(|i| format!("n{}@127.0.0.1", i + 1));
    run.dbs[leader]
        .create_table::<Spot>(TableOptions::new().ram_copies(holders.clone()))
        .expect("create_table");
    run.settle();
    for id in 0..10 {
        run.dbs[a].scope(|| Spot::write(Spot { id, n: id })).expect("write");
    }
    run.settle();
    assert_eq!(spots(&run.dbs[b]), (0..10).collect::<Vec<_>>());
    let info = run.dbs[leader].table_info::<Spot>().expect("info");
    assert!(!info.held && info.size == 0 && info.nodes == holders, "{info:?}");
    // The leader reads them from a holder, outside transactions only.
    assert_eq!(run.dbs[leader].scope(|| Spot::read(&3)).expect("read"), Some(Spot { id: 3, n: 3 }));
    let inside = run.dbs[leader].scope(|| mnesia::transaction(|| Spot::read(&3)));
    assert!(matches!(&inside, Err(Error::NotHere { nodes, .. }) if *nodes == holders), "{inside:?}");

    // Holder `b` stops; its database and log, in memory, are gone. Meanwhile the log moves
    // past what the leader keeps: `b` comes back to the leader's snapshot, which lacks the
    // table's records, and is filled from `a`.
    let addr = run.nodes[b].as_ref().expect("node").local_addr();
    run.nodes[b] = None;
    for id in 10..120 {
        run.dbs[a].scope(|| Spot::write(Spot { id, n: id })).expect("write without b");
    }
    let leader_node = run.nodes[leader].as_ref().expect("leader");
    eventually("the leader purges its log", || leader_node.status().purged.is_some());
    let db = database(&format!("n{}@127.0.0.1", b + 1));
    let node =
        Node::start(&db, quick(b as u64 + 1).snapshots(20, 5).image_parts(1024).listen(addr)).expect("node");
    node.join(run.nodes[a].as_ref().expect("seed").local_addr(), Duration::from_secs(20)).expect("join");
    run.dbs[b] = db;
    run.nodes[b] = Some(node);
    run.dbs[b].wait_for_tables(&["spot"], Duration::from_secs(20)).expect("filled");
    run.dbs[a].scope(|| Spot::write(Spot { id: 500, n: 5 })).expect("write");
    run.settle();
    eventually("b holds what a holds", || spots(&run.dbs[b]) == spots(&run.dbs[a]));
    assert_eq!(spots(&run.dbs[b]).len(), 121);
    assert!(run.dbs[b].table_info::<Spot>().expect("info").held);
    assert_eq!(run.dbs[leader].table_info::<Spot>().expect("info").size, 0);
}

#[test]
fn a_copy_added_on_a_running_node_is_filled_there_and_one_removed_goes() {
    let run = three();
    let name = |i: usize| format!("n{}@127.0.0.1", i + 1);
    run.dbs[0].create_table::<Spot>(TableOptions::new().ram_copies([name(0)])).expect("create_table");
    run.settle();
    for id in 0..50 {
        run.dbs[0].scope(|| Spot::write(Spot { id, n: id })).expect("write");
    }
    // Node 2 takes a copy, asked from node 3; written to meanwhile.
    run.dbs[2].add_table_copy::<Spot>(&name(1), mnesia::StorageType::RamCopies).expect("add_table_copy");
    for id in 50..60 {
        run.dbs[0].scope(|| Spot::write(Spot { id, n: id })).expect("write");
    }
    run.dbs[1].wait_for_tables(&["spot"], Duration::from_secs(20)).expect("filled");
    run.settle();
    assert_eq!(spots(&run.dbs[1]), (0..60).collect::<Vec<_>>());
    // Once node 2 has told the others that its copy is filled, the first copy may go:
    // node 1 reads through node 2 from then on.
    eventually("node 2's copy told filled", || {
        run.dbs[0].table_info::<Spot>().is_ok_and(|i| i.filling.is_empty())
    });
    run.dbs[1].del_table_copy::<Spot>(&name(0)).expect("del_table_copy");
    run.settle();
    let info = run.dbs[0].table_info::<Spot>().expect("info");
    assert!(!info.held && info.size == 0 && info.nodes == [name(1)], "{info:?}");
    assert_eq!(run.dbs[0].scope(|| Spot::read(&7)).expect("read"), Some(Spot { id: 7, n: 7 }));
    run.dbs[1].scope(|| Spot::write(Spot { id: 60, n: 60 })).expect("write on the copy");
    run.settle();
    assert_eq!(spots(&run.dbs[1]).len(), 61);
}

#[test]
fn a_copy_moved_to_another_node_holds_every_record_there_and_none_is_left_behind() {
    let run = three();
    let name = |i: usize| format!("n{}@127.0.0.1", i + 1);
    run.dbs[0].create_table::<Spot>(TableOptions::new().ram_copies([name(0)])).expect("create_table");
    run.settle();
    for id in 0..40 {
        run.dbs[0].scope(|| Spot::write(Spot { id, n: id })).expect("write");
    }
    // Asked from the third node: node 1's copy goes to node 2 once node 2's is filled.
    run.dbs[2].move_table_copy::<Spot>(&name(0), &name(1), Duration::from_secs(20)).expect("move_table_copy");
    run.settle();
    assert_eq!(spots(&run.dbs[1]), (0..40).collect::<Vec<_>>());
    let info = run.dbs[0].table_info::<Spot>().expect("info");
    assert!(!info.held && info.size == 0 && info.nodes == [name(1)], "{info:?}");
    assert_eq!(run.dbs[0].scope(|| Spot::read(&9)).expect("read"), Some(Spot { id: 9, n: 9 }));
}

#[test]
fn copies_in_memory_and_on_disc_start_again_from_their_directories() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("dir")).collect();
    let options = |id: u64| quick(id).dir(dirs[id as usize - 1].path()).snapshots(20, 5);
    let mut run = three_options(options);
    let leader = run.leader();
    let name = |i: usize| format!("n{}@127.0.0.1", i + 1);
    // In memory on one follower, on disc on the other; created from the leader.
    let (ram, disc) = ((leader + 1) % 3, (leader + 2) % 3);
    let copies = TableOptions::new().ram_copies([name(ram)]).disc_copies([name(disc)]);
    run.dbs[leader].create_table::<Spot>(copies).expect("create_table");
    run.settle();
    for id in 0..60 {
        run.dbs[ram].scope(|| Spot::write(Spot { id, n: id })).expect("write");
    }
    run.settle();
    let lists = |db: &Database| {
        let info = db.table_info::<Spot>().expect("info");
        (info.nodes, info.disc_copies)
    };
    let wanted = (vec![name(ram), name(disc)], vec![name(disc)]);
    assert!(run.dbs.iter().all(|db| lists(db) == wanted));
    assert_eq!(run.dbs[disc].table_info::<Spot>().expect("info").storage_type, StorageType::DiscCopies);
    for i in [ram, disc] {
        let node = run.nodes[i].as_ref().expect("node");
        eventually("the holders snapshot and purge their logs", || node.status().purged.is_some());
    }
    // Each holder stops and starts again from its directory while the other is down: its
    // snapshot and log give it every record and the lists (the first writes are in no
    // log any more).
    let addrs: Vec<_> = run.nodes.iter().map(|n| n.as_ref().expect("node").local_addr()).collect();
    let start = |run: &mut Running, i: usize| {
        let db = database(&name(i));
        let node = Node::start(&db, options(i as u64 + 1).listen(addrs[i])).expect("started again");
        run.dbs[i] = db;
        run.nodes[i] = Some(node);
    };
    run.nodes[disc] = None;
    run.nodes[ram] = None;
    start(&mut run, ram);
    run.dbs[ram].wait_for_tables(&["spot"], Duration::from_secs(20)).expect("current");
    assert_eq!(spots(&run.dbs[ram]), (0..60).collect::<Vec<_>>());
    assert_eq!(lists(&run.dbs[ram]), wanted);
    run.dbs[ram].scope(|| Spot::write(Spot { id: 60, n: 60 })).expect("write");
    run.nodes[ram] = None;
    start(&mut run, disc);
    run.dbs[disc].wait_for_tables(&["spot"], Duration::from_secs(20)).expect("current");
    assert_eq!(spots(&run.dbs[disc]), (0..61).collect::<Vec<_>>());
    assert_eq!(lists(&run.dbs[disc]), wanted);
    assert!(run.dbs[disc].table_info::<Spot>().expect("info").held);
}
