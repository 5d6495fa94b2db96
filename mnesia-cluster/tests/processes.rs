//! Three node processes on 127.0.0.1 (this test binary started again in node mode), their
//! Raft logs on disc. Transfers run on all three; the leader is killed with SIGKILL under
//! load, again and again; each time it is started again from its snapshot and log and
//! catches up (a snapshot every 40 entries: the log before it goes, and a node far behind
//! is sent one).
//! Afterwards every acknowledged commit is on every node, the total is kept, and the
//! nodes hold the same records. Each node also marks each transfer it made in a table of
//! its own on disc (`local_content`, in its database's directory beside its Raft log):
//! every mark acknowledged before a kill is there after the restart.
//!
//! A node process reads commands on stdin and answers on stdout, each answer on a line of
//! its own starting with `@@ ` (the test harness prints other lines).

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mnesia::Error;
use mnesia::prelude::*;
use mnesia_cluster::{Node, Options};

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Account {
    #[key]
    id: u32,
    balance: i64,
}

/// How many transfers of a node committed, counted by the transfers themselves: equal to
/// the node's receipts unless a commit was applied twice.
#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Tally {
    #[key]
    node: u64,
    count: u64,
}

/// One per acknowledged transfer, written by it: `(node, number)`.
#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Receipt {
    #[key]
    id: (u64, u64),
}

/// A node's own mark of each transfer it made: a `local_content` table on disc, written
/// with no round trip to the others.
#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Mark {
    #[key]
    seq: u64,
}

const COOKIE: &str = "processes test cookie";
const ACCOUNTS: u32 = 8;

/// Node mode: runs only when started by the test below, with `MNESIA_TEST_NODE` set.
#[test]
fn node_process() {
    let Ok(id) = std::env::var("MNESIA_TEST_NODE") else { return };
    let id: u64 = id.parse().expect("node id");
    let dir = std::env::var("MNESIA_TEST_DIR").expect("dir");
    let listen = std::env::var("MNESIA_TEST_LISTEN").unwrap_or_else(|_| "127.0.0.1:0".into());
    let data = std::path::PathBuf::from(&dir).with_extension("data");
    if !data.exists() {
        mnesia::Schema::create(&data).expect("schema");
    }
    let db = Database::open(Config::default().dir(&data)).expect("db");
    db.scope(|| -> mnesia::Result<()> {
        Account::create_table(TableOptions::new())?;
        Receipt::create_table(TableOptions::new())?;
        Tally::create_table(TableOptions::new())?;
        if !Mark::exists()? {
            Mark::create_table(TableOptions::new().disc_copies([db.node()]).local_content())?;
        }
        Ok(())
    })
    .expect("tables");
    let node = Node::start(
        &db,
        Options::new(id, COOKIE)
            .dir(dir)
            .listen(listen.parse().expect("address"))
            .timings(Duration::from_millis(50), (Duration::from_millis(250), Duration::from_millis(500)))
            .write_timeout(Duration::from_secs(5))
            // Snapshots, log rewrites and restarts from a snapshot all along the kills.
            .snapshots(40, 10),
    )
    .expect("node");
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let say = |line: String| {
        let mut o = out.lock().expect("stdout");
        writeln!(o, "@@ {line}").expect("stdout");
        o.flush().expect("stdout");
    };
    say(format!("addr {}", node.local_addr()));
    // (A node started again numbers its receipts after those of its earlier life.)
    let mut receipts: u64 = std::env::var("MNESIA_TEST_SEQ").map_or(0, |s| s.parse().expect("seq"));
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("stdin");
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["init", members @ ..] => {
                let members = members.iter().map(|m| {
                    let (id, addr) = m.split_once('=').expect("id=addr");
                    (id.parse().expect("id"), addr.parse().expect("addr"))
                });
                node.initialize(members).expect("initialize");
                say("ok".into());
            }
            ["leader"] => {
                say(format!("leader {}", node.wait_for_leader(Duration::from_secs(20)).expect("leader")))
            }
            ["setup"] => {
                db.scope(|| Account::batch_write((0..ACCOUNTS).map(|id| Account { id, balance: 100 })))
                    .expect("setup");
                say("ok".into());
            }
            ["load", n] => {
                // Two writers; each acknowledged transfer is told at once.
                let n: u64 = n.parse().expect("count");
                let first = receipts;
                receipts += 2 * n;
                let workers: Vec<_> = (0..2u64)
                    .map(|w| {
                        let (db, out) = (db.clone(), Arc::clone(&out));
                        std::thread::spawn(move || {
                            db.scope(|| {
                                for k in 0..n {
                                    let seq = first + w * n + k;
                                    let from = ((seq * 7 + id) % u64::from(ACCOUNTS)) as u32;
                                    let to = (from + 1 + (seq % 5) as u32) % ACCOUNTS;
                                    let r = mnesia::transaction(|| {
                                        let a = Account::read(&from)?.expect("account");
                                        let b = Account::read(&to)?.expect("account");
                                        let amount = (seq % 13) as i64;
                                        if a.balance >= amount {
                                            Account::write(Account { balance: a.balance - amount, ..a })?;
                                            Account::write(Account { balance: b.balance + amount, ..b })?;
                                        }
                                        Receipt::write(Receipt { id: (id, seq) })?;
                                        let count = Tally::read(&id)?.map_or(0, |t| t.count);
                                        Tally::write(Tally { node: id, count: count + 1 })?;
                                        Ok::<_, Error>(())
                                    });
                                    // Marked here, on this node's disc alone.
                                    if r.is_ok() {
                                        Mark::write(Mark { seq }).expect("mark");
                                    }
                                    let mut o = out.lock().expect("stdout");
                                    match r {
                                        Ok(()) => writeln!(o, "@@ ack {seq}"),
                                        Err(Error::NoMajority { .. }) => writeln!(o, "@@ nomajority {seq}"),
                                        Err(e) => panic!("transfer {seq}: {e}"),
                                    }
                                    .expect("stdout");
                                    o.flush().expect("stdout");
                                }
                            })
                        })
                    })
                    .collect();
                for w in workers {
                    w.join().expect("writer");
                }
                say("loaded".into());
            }
            ["state"] => {
                let mut accounts = db.scope(Account::list).expect("accounts");
                accounts.sort_by_key(|a| a.id);
                let mut receipts: Vec<(u64, u64)> =
                    db.scope(Receipt::list).expect("receipts").into_iter().map(|r| r.id).collect();
                receipts.sort();
                let state = serde_json::to_string(&(
                    accounts.iter().map(|a| a.balance).collect::<Vec<_>>(),
                    receipts,
                ))
                .expect("json");
                say(format!("state {} {state}", db.applied_index()));
            }
            ["marks"] => {
                let marks: Vec<u64> =
                    db.scope(Mark::list).expect("marks").into_iter().map(|m| m.seq).collect();
                say(format!("marks {}", serde_json::to_string(&marks).expect("json")));
            }
            other => panic!("unknown command {other:?}"),
        }
    }
}

/// A node process, killed when dropped.
struct Proc {
    id: u64,
    child: Child,
    stdin: ChildStdin,
    answers: Receiver<String>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    fn start(
        id: u64,
        dir: &std::path::Path,
        restart: Option<(&str, u64)>,
        acks: Arc<Mutex<BTreeSet<(u64, u64)>>>,
    ) -> Proc {
        let mut cmd = Command::new(std::env::current_exe().expect("test binary"));
        cmd.args(["--exact", "node_process", "--nocapture", "--test-threads=1"])
            .env("MNESIA_TEST_NODE", id.to_string())
            .env("MNESIA_TEST_DIR", dir.join(format!("node{id}")))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some((listen, seq)) = restart {
            cmd.env("MNESIA_TEST_LISTEN", listen).env("MNESIA_TEST_SEQ", seq.to_string());
        }
        let mut child = cmd.spawn().expect("node process");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, answers) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // (The harness's "test node_process ... " may begin the first line.)
                let Some(at) = line.find("@@ ") else { continue };
                let answer = &line[at + 3..];
                if let Some(seq) = answer.strip_prefix("ack ") {
                    acks.lock().expect("acks").insert((id, seq.parse().expect("seq")));
                } else if !answer.starts_with("nomajority") && tx.send(answer.to_owned()).is_err() {
                    break;
                }
            }
        });
        Proc { id, child, stdin, answers }
    }

    fn send(&mut self, command: &str) {
        writeln!(self.stdin, "{command}").expect("command");
        self.stdin.flush().expect("command");
    }

    fn answer(&self, timeout: Duration) -> String {
        self.answers.recv_timeout(timeout).unwrap_or_else(|e| panic!("node {}: no answer: {e}", self.id))
    }

    fn ask(&mut self, command: &str) -> String {
        self.send(command);
        self.answer(Duration::from_secs(60))
    }
}

/// The transfers a node marked in its own table.
fn marks(p: &mut Proc) -> BTreeSet<u64> {
    let answer = p.ask("marks");
    serde_json::from_str(answer.strip_prefix("marks ").expect("marks")).expect("json")
}

/// `(applied index, state)` of a node.
fn state(p: &mut Proc) -> (u64, String) {
    let answer = p.ask("state");
    let rest = answer.strip_prefix("state ").expect("state");
    let (applied, state) = rest.split_once(' ').expect("state");
    (applied.parse().expect("applied"), state.to_owned())
}

/// Waits until the nodes hold the same state, and returns it.
fn converge(procs: &mut [Proc]) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let states: Vec<(u64, String)> = procs.iter_mut().map(state).collect();
        if states.iter().all(|s| *s == states[0]) {
            return states[0].1.clone();
        }
        assert!(
            Instant::now() < deadline,
            "nodes did not converge: {:?}",
            states.iter().map(|s| s.0).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_leader_killed_under_load_comes_back_and_nothing_acknowledged_is_lost() {
    if std::env::var("MNESIA_TEST_NODE").is_ok() {
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    let acks = Arc::new(Mutex::new(BTreeSet::new()));
    let mut procs: Vec<Proc> =
        (1..=3).map(|id| Proc::start(id, dir.path(), None, Arc::clone(&acks))).collect();
    let addrs: HashMap<u64, String> = procs
        .iter()
        .map(|p| (p.id, p.answer(Duration::from_secs(60)).strip_prefix("addr ").expect("addr").to_owned()))
        .collect();
    let members: Vec<String> = (1..=3).map(|id| format!("{id}={}", addrs[&id])).collect();
    assert_eq!(procs[0].ask(&format!("init {}", members.join(" "))), "ok");
    let leader_of = |p: &mut Proc| -> u64 {
        p.ask("leader").strip_prefix("leader ").expect("leader").parse().expect("id")
    };
    leader_of(&mut procs[0]);
    assert_eq!(procs[0].ask("setup"), "ok");
    converge(&mut procs);

    let rounds: usize = std::env::var("MNESIA_KILL_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(10);
    for round in 0..rounds {
        let leader = leader_of(&mut procs[0]) as usize - 1;
        for p in procs.iter_mut() {
            p.send("load 15");
        }
        // Under load: the leader dies without a chance to say anything.
        std::thread::sleep(Duration::from_millis(100 + 37 * (round as u64 % 5)));
        let id = procs[leader].id;
        procs[leader].child.kill().expect("SIGKILL");
        let _ = procs[leader].child.wait();
        for (i, p) in procs.iter().enumerate() {
            if i != leader {
                assert_eq!(p.answer(Duration::from_secs(120)), "loaded", "round {round}: node {}", p.id);
            }
        }
        // Started again on its own log and address: it catches up.
        let seq = (round as u64 + 1) * 1_000_000;
        procs[leader] = Proc::start(id, dir.path(), Some((&addrs[&id], seq)), Arc::clone(&acks));
        assert!(procs[leader].answer(Duration::from_secs(60)).starts_with("addr "));
        let state = converge(&mut procs);
        let (balances, receipts): (Vec<i64>, Vec<(u64, u64)>) = serde_json::from_str(&state).expect("state");
        assert_eq!(balances.iter().sum::<i64>(), i64::from(ACCOUNTS) * 100, "round {round}: total kept");
        let receipts: BTreeSet<(u64, u64)> = receipts.into_iter().collect();
        let acked = acks.lock().expect("acks").clone();
        let lost: Vec<_> = acked.difference(&receipts).collect();
        assert!(lost.is_empty(), "round {round}: acknowledged commits lost: {lost:?}");
        // The killed node's own marks, from its database's directory: each transfer it
        // acknowledged was marked before (a mark whose write the kill cut may be missing
        // only for a transfer not acknowledged yet).
        let marks = marks(&mut procs[leader]);
        let unmarked: Vec<_> = acked.iter().filter(|(n, seq)| *n == id && !marks.contains(seq)).collect();
        assert!(unmarked.is_empty(), "round {round}: node {id}'s marks lost: {unmarked:?}");
    }

    // Every node killed at once, under load: what was acknowledged comes back from the logs.
    for p in procs.iter_mut() {
        p.send("load 15");
    }
    std::thread::sleep(Duration::from_millis(150));
    for p in procs.iter_mut() {
        p.child.kill().expect("SIGKILL");
        let _ = p.child.wait();
    }
    let acked = acks.lock().expect("acks").clone();
    procs = (1..=3u64)
        .map(|id| Proc::start(id, dir.path(), Some((&addrs[&id], 99_000_000)), Arc::clone(&acks)))
        .collect();
    for p in &procs {
        assert!(p.answer(Duration::from_secs(60)).starts_with("addr "));
    }
    leader_of(&mut procs[0]);
    let state = converge(&mut procs);
    let (balances, receipts): (Vec<i64>, BTreeSet<(u64, u64)>) = serde_json::from_str(&state).expect("state");
    assert_eq!(balances.iter().sum::<i64>(), i64::from(ACCOUNTS) * 100, "total kept");
    let lost: Vec<_> = acked.difference(&receipts).collect();
    assert!(lost.is_empty(), "acknowledged commits lost when every node died: {lost:?}");
    for p in procs.iter_mut() {
        let (id, marks) = (p.id, marks(p));
        let unmarked: Vec<_> = acked.iter().filter(|(n, seq)| *n == id && !marks.contains(seq)).collect();
        assert!(unmarked.is_empty(), "node {id}'s marks lost when every node died: {unmarked:?}");
    }
    // The nodes came back from snapshots, not only from their logs.
    for id in 1..=3 {
        let snapshot = dir.path().join(format!("node{id}")).join("raft.snapshot");
        assert!(snapshot.exists(), "node {id} kept no snapshot");
    }
}
