//! A cluster of three node processes on 127.0.0.1: a write on one is read on the others
//! (each node counts the reads it served in a table of its own, which no other node
//! sees); a table created with a `ram_copies` copy on node 1 and a `disc_copies` copy on
//! node 2 only is read on node 3 through them; the leader is killed, the other two elect another and go on; the killed node
//! starts again on its Raft log and catches up.
//!
//! Run: `cargo run -p examples --example 09_cluster`. The example starts three copies of
//! itself as nodes (each with its own database and Raft log) and drives them through
//! their stdin; a node answers on lines beginning with `@@ `.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use mnesia::cluster::{Node, Options};
use mnesia::prelude::*;

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Greeting {
    #[key]
    id: u32,
    text: String,
}

/// The reads a node served: a table each node keeps for itself (`local_content`), written
/// with no round trip to the others.
#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Served {
    #[key]
    what: String,
    count: u64,
}

/// Notes kept on nodes 1 and 2 only (created while the cluster runs).
#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Note {
    #[key]
    id: u32,
    text: String,
}

/// Node mode: a database and its cluster node, driven by commands on stdin.
fn node(id: u64, dir: &str, listen: &str) -> mnesia::Result<()> {
    // Each node named (a table's copies are placed on nodes by these names).
    let db = Database::open(Config::default().node_name(format!("node{id}")))?;
    db.scope(|| Greeting::create_table(TableOptions::new()))?;
    db.scope(|| Served::create_table(TableOptions::new().local_content()))?;
    let served =
        |db: &Database| db.scope(|| Served::read(&"reads".to_owned())).map(|s| s.map_or(0, |s| s.count));
    let node = Node::start(
        &db,
        Options::new(id, "the example's cookie")
            .dir(dir)
            .listen(listen.parse().map_err(|e| mnesia::Error::Invalid(format!("{listen}: {e}")))?),
    )?;
    let say = |line: String| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "@@ {line}");
        let _ = out.flush();
    };
    say(format!("addr {}", node.local_addr()));
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| mnesia::Error::Invalid(e.to_string()))?;
        let words: Vec<&str> = line.splitn(3, ' ').collect();
        match words.as_slice() {
            ["init", members] => {
                let members = members.split(',').filter_map(|m| {
                    let (id, addr) = m.split_once('=')?;
                    Some((id.parse().ok()?, addr.parse::<SocketAddr>().ok()?))
                });
                node.initialize(members)?;
                say("ok".into());
            }
            ["leader"] => say(format!("{}", node.wait_for_leader(Duration::from_secs(20))?)),
            ["write", id, text] => {
                let id = id.parse().map_err(|_| mnesia::Error::Invalid("an id".into()))?;
                db.scope(|| Greeting::write(Greeting { id, text: (*text).to_owned() }))?;
                say("ok".into());
            }
            ["read", id] => {
                let id = id.parse().map_err(|_| mnesia::Error::Invalid("an id".into()))?;
                // A node reads its own copy: wait (a little) for the write to arrive.
                let mut found = None;
                for _ in 0..200 {
                    found = db.scope(|| Greeting::read(&id))?;
                    if found.is_some() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                let count = served(&db)? + 1;
                db.scope(|| Served::write(Served { what: "reads".into(), count }))?;
                say(found.map_or("none".into(), |g| g.text));
            }
            ["served"] => say(served(&db)?.to_string()),
            ["place"] => {
                // A ram copy on node 1, a disc copy on node 2 (each node keeps what it holds
                // in its Raft directory).
                db.create_table::<Note>(TableOptions::new().ram_copies(["node1"]).disc_copies(["node2"]))?;
                say("ok".into());
            }
            ["note", id, text] => {
                let id = id.parse().map_err(|_| mnesia::Error::Invalid("an id".into()))?;
                db.wait_for_tables(&["note"], Duration::from_secs(20))?;
                db.scope(|| Note::write(Note { id, text: (*text).to_owned() }))?;
                say("ok".into());
            }
            ["readnote", id] => {
                let id = id.parse().map_err(|_| mnesia::Error::Invalid("an id".into()))?;
                db.wait_for_tables(&["note"], Duration::from_secs(20))?;
                // On a node without a copy, answered by a node with one.
                let found = db.scope(|| Note::read(&id))?;
                let here = db.table_info::<Note>()?.held;
                say(format!(
                    "{} ({})",
                    found.map_or("none".into(), |n| n.text),
                    if here { "copy here" } else { "no copy here" }
                ));
            }
            _ => say(format!("unknown command {line:?}")),
        }
    }
    Ok(())
}

/// A node process, killed when dropped.
struct Proc {
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
    fn start(id: u64, dir: &std::path::Path, listen: &str) -> Proc {
        let mut cmd = Command::new(std::env::current_exe().expect("this program"));
        // (Built as a test, the program runs its one test, which runs `main`.)
        if cfg!(test) {
            cmd.args(["--exact", "the_example_holds", "--nocapture", "--test-threads=1"]);
        }
        let dir = dir.join(format!("node{id}"));
        cmd.env("EXAMPLE_NODE", format!("{id} {} {listen}", dir.display()));
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("a node process");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, answers) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(at) = line.find("@@ ") {
                    let _ = tx.send(line[at + 3..].to_owned());
                }
            }
        });
        Proc { child, stdin, answers }
    }

    fn ask(&mut self, command: &str) -> String {
        if !command.is_empty() {
            writeln!(self.stdin, "{command}").expect("command");
            self.stdin.flush().expect("command");
        }
        self.answers.recv_timeout(Duration::from_secs(60)).expect("an answer")
    }
}

fn main() -> mnesia::Result<()> {
    if let Ok(args) = std::env::var("EXAMPLE_NODE") {
        let mut args = args.splitn(3, ' ');
        let (Some(id), Some(dir), Some(listen)) = (args.next(), args.next(), args.next()) else {
            return Err(mnesia::Error::Invalid("EXAMPLE_NODE: id dir address".into()));
        };
        return node(id.parse().map_err(|_| mnesia::Error::Invalid("a node id".into()))?, dir, listen);
    }
    let dir = std::env::temp_dir().join(format!("mnesia-cluster-example-{}", std::process::id()));
    let mut procs: BTreeMap<u64, Proc> =
        (1..=3).map(|id| (id, Proc::start(id, &dir, "127.0.0.1:0"))).collect();
    let addrs: BTreeMap<u64, String> =
        procs.iter_mut().map(|(id, p)| (*id, p.ask("").trim_start_matches("addr ").to_owned())).collect();
    println!("== three nodes: {addrs:?}");
    let members: Vec<String> = addrs.iter().map(|(id, a)| format!("{id}={a}")).collect();
    assert_eq!(procs.get_mut(&1).expect("node 1").ask(&format!("init {}", members.join(","))), "ok");
    let leader: u64 = procs.get_mut(&1).expect("node 1").ask("leader").parse().expect("leader");
    println!("== node {leader} leads");
    // Every node knows it too (a node hears of its cluster from the leader) before it
    // takes writes.
    for id in [2, 3] {
        assert_eq!(procs.get_mut(&id).expect("node").ask("leader"), leader.to_string());
    }

    assert_eq!(procs.get_mut(&2).expect("node 2").ask("write 1 hello from node 2"), "ok");
    for id in [1, 3] {
        let read = procs.get_mut(&id).expect("node").ask("read 1");
        println!("node {id} reads: {read}");
        assert_eq!(read, "hello from node 2");
    }
    // Each node counted the reads it served in its own table: the writer served none.
    let served: Vec<String> = (1..=3).map(|id| procs.get_mut(&id).expect("node").ask("served")).collect();
    println!("reads served by nodes 1, 2, 3 (each node's own table): {served:?}");
    assert_eq!(served, ["1", "0", "1"]);

    // A table on nodes 1 and 2 only, created from node 3: written on node 1, read on node
    // 3 (through a node with a copy).
    assert_eq!(procs.get_mut(&3).expect("node 3").ask("place"), "ok");
    assert_eq!(procs.get_mut(&1).expect("node 1").ask("note 1 kept on nodes 1 and 2"), "ok");
    for id in [2, 3] {
        let read = procs.get_mut(&id).expect("node").ask("readnote 1");
        println!("node {id} reads the note: {read}");
    }
    assert_eq!(procs.get_mut(&3).expect("node 3").ask("readnote 1"), "kept on nodes 1 and 2 (no copy here)");

    println!("== node {leader} (the leader) is killed");
    drop(procs.remove(&leader));
    let other = *procs.keys().next().expect("a live node");
    // (Until an election timeout passes, the others still name the old leader.)
    let mut new_leader = leader;
    for _ in 0..200 {
        new_leader = procs.get_mut(&other).expect("node").ask("leader").parse().expect("leader");
        if new_leader != leader {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("== node {new_leader} leads now");
    assert_ne!(new_leader, leader, "another leader elected");
    assert_eq!(procs.get_mut(&other).expect("node").ask("write 2 written without the old leader"), "ok");

    println!("== node {leader} starts again on its Raft log");
    let mut back = Proc::start(leader, &dir, &addrs[&leader]);
    back.ask("");
    for key in [1, 2] {
        let read = back.ask(&format!("read {key}"));
        println!("node {leader} reads {key}: {read}");
        assert_ne!(read, "none", "caught up");
    }
    drop(back);
    drop(procs);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[test]
fn the_example_holds() {
    main().expect("example");
}
