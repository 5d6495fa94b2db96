//! A serializability check of the cluster, after the list-append method: transactions on
//! all three nodes at once read lists and append values no one else appends to them; once
//! done, each list's final order tells which transaction wrote after which, each read which
//! writes it saw and which it missed. The committed transactions are serializable if and
//! only if those dependencies (write-write, write-read, read-write) form no cycle; the
//! check also finds lost and doubled appends, appends of transactions that did not commit,
//! and reads that are no prefix of the final list.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use mnesia::prelude::*;
use mnesia_cluster::{Node, Options};

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Cell {
    #[key]
    k: u32,
    vals: Vec<u64>,
}

const KEYS: u32 = 6;

/// What one committed transaction did: per key, the list it read (before its own append,
/// if it appended) and the value it appended, if any.
#[derive(Debug, Default)]
struct Done {
    reads: Vec<(u32, Vec<u64>)>,
    appends: Vec<(u32, u64)>,
}

/// A small deterministic generator (xorshift), one per writer.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

fn three() -> (Vec<Database>, Vec<Node>) {
    let dbs: Vec<Database> = (0..3)
        .map(|_| {
            let db = Database::in_memory().expect("db");
            db.scope(|| Cell::create_table(TableOptions::new())).expect("table");
            db
        })
        .collect();
    let options = |id| {
        Options::new(id, "a test cookie")
            .timings(Duration::from_millis(50), (Duration::from_millis(200), Duration::from_millis(400)))
            .write_timeout(Duration::from_secs(10))
    };
    let nodes: Vec<Node> =
        dbs.iter().zip(1..).map(|(db, id)| Node::start(db, options(id)).expect("node")).collect();
    nodes[0].initialize(nodes.iter().zip(1..).map(|(n, id)| (id, n.local_addr()))).expect("initialize");
    for n in &nodes {
        n.wait_for_leader(Duration::from_secs(10)).expect("a leader");
    }
    (dbs, nodes)
}

/// Runs `each` transactions on each of `writers` threads per node; returns the committed ones.
fn workload(dbs: &[Database], writers: u64, each: u64) -> Vec<Done> {
    let threads: Vec<_> = dbs
        .iter()
        .enumerate()
        .flat_map(|(node, db)| {
            (0..writers).map(move |w| {
                let db = db.clone();
                std::thread::spawn(move || {
                    let mut dice = Dice(0x9E37_79B9_7F4A_7C15 ^ ((node as u64) << 32 | w) | 1);
                    let mut done = Vec::new();
                    db.scope(|| {
                        for n in 0..each {
                            // Two or three distinct keys; each read, or appended to (a value
                            // no other transaction appends); one in four reads only.
                            let count = 2 + dice.roll(2) as usize;
                            let mut keys: Vec<u32> = Vec::new();
                            while keys.len() < count {
                                let k = dice.roll(u64::from(KEYS)) as u32;
                                if !keys.contains(&k) {
                                    keys.push(k);
                                }
                            }
                            let read_only = dice.roll(4) == 0;
                            let appends: Vec<bool> =
                                keys.iter().map(|_| !read_only && dice.roll(2) == 0).collect();
                            let value = |j: usize| ((node as u64 * 100 + w) * 10_000 + n) * 10 + j as u64;
                            let attempt = mnesia::transaction(|| {
                                let mut this = Done::default();
                                for (j, (&k, &append)) in keys.iter().zip(&appends).enumerate() {
                                    let vals = Cell::read(&k)?.map(|c| c.vals).unwrap_or_default();
                                    this.reads.push((k, vals.clone()));
                                    if append {
                                        let mut vals = vals;
                                        vals.push(value(j));
                                        Cell::write(Cell { k, vals })?;
                                        this.appends.push((k, value(j)));
                                    }
                                }
                                Ok::<_, mnesia::Error>(this)
                            });
                            done.push(attempt.expect("a transaction on a healthy cluster"));
                        }
                    });
                    done
                })
            })
        })
        .collect();
    threads.into_iter().flat_map(|t| t.join().expect("writer")).collect()
}

/// The cycle in `edges` (from → to, over `0..n`), if there is one.
fn cycle(
    n: usize,
    edges: &BTreeMap<usize, Vec<(usize, &'static str)>>,
) -> Option<Vec<(usize, &'static str)>> {
    // Depth first, iteratively: 0 unseen, 1 on the path, 2 done.
    let mut state = vec![0u8; n];
    for start in 0..n {
        if state[start] != 0 {
            continue;
        }
        let mut path: Vec<(usize, usize)> = vec![(start, 0)];
        let mut via: Vec<&'static str> = Vec::new();
        state[start] = 1;
        while let Some(&mut (at, ref mut next)) = path.last_mut() {
            let out = edges.get(&at).map(Vec::as_slice).unwrap_or_default();
            if let Some(&(to, kind)) = out.get(*next) {
                *next += 1;
                match state[to] {
                    0 => {
                        state[to] = 1;
                        via.push(kind);
                        path.push((to, 0));
                    }
                    1 => {
                        let from = path.iter().position(|(p, _)| *p == to).unwrap_or(0);
                        // Each transaction on the cycle with the kind of its edge to the next.
                        let kinds = via[from..].iter().copied().chain(std::iter::once(kind));
                        let found = path[from..].iter().map(|(p, _)| *p).zip(kinds).collect();
                        return Some(found);
                    }
                    _ => {}
                }
            } else {
                state[at] = 2;
                path.pop();
                via.pop();
            }
        }
    }
    None
}

/// Checks the committed transactions `done` against the final lists: what the check above
/// says; panics with what it found.
fn check(done: &[Done], lists: &HashMap<u32, Vec<u64>>) {
    let mut writer: HashMap<u64, usize> = HashMap::new();
    for (t, d) in done.iter().enumerate() {
        for (_, v) in &d.appends {
            assert!(writer.insert(*v, t).is_none(), "value {v} appended twice");
        }
    }
    for (k, list) in lists {
        let mut seen = std::collections::HashSet::new();
        for v in list {
            assert!(seen.insert(v), "key {k}: {v} twice in {list:?}");
            assert!(writer.contains_key(v), "key {k}: {v}, from a transaction that did not commit");
        }
    }
    for (t, d) in done.iter().enumerate() {
        for (k, v) in &d.appends {
            assert!(lists[k].contains(v), "transaction {t}'s append of {v} to key {k} is lost");
        }
    }
    let mut edges: BTreeMap<usize, Vec<(usize, &'static str)>> = BTreeMap::new();
    let mut edge = |from: usize, to: usize, kind| {
        if from != to {
            edges.entry(from).or_default().push((to, kind));
        }
    };
    for list in lists.values() {
        for pair in list.windows(2) {
            edge(writer[&pair[0]], writer[&pair[1]], "ww");
        }
    }
    for (t, d) in done.iter().enumerate() {
        for (k, read) in &d.reads {
            let list = &lists[k];
            assert!(
                list.starts_with(read),
                "transaction {t} read {read:?} of key {k}, no prefix of {list:?}"
            );
            if let Some(last) = read.last() {
                edge(writer[last], t, "wr");
            }
            if let Some(next) = list.get(read.len()) {
                edge(t, writer[next], "rw");
            }
        }
    }
    if let Some(found) = cycle(done.len(), &edges) {
        let shown: Vec<String> =
            found.iter().map(|(t, kind)| format!("{t} {:?} -{kind}->", done[*t])).collect();
        panic!("not serializable, a cycle of dependencies:\n{}", shown.join("\n"));
    }
}

#[test]
fn transactions_on_every_node_at_once_are_serializable() {
    let (dbs, nodes) = three();
    let done = workload(&dbs, 4, 40);
    // Every node holds every commit acknowledged anywhere.
    for n in &nodes {
        n.sync_reads(Duration::from_secs(10)).expect("current");
    }
    let lists = |db: &Database| -> HashMap<u32, Vec<u64>> {
        db.scope(Cell::list).expect("list").into_iter().map(|c| (c.k, c.vals)).collect()
    };
    let first = lists(&dbs[0]);
    for db in &dbs[1..] {
        assert_eq!(lists(db), first, "the copies differ");
    }
    let appended: usize = done.iter().map(|d| d.appends.len()).sum();
    assert!(appended > 100, "a workload that writes: {appended} appends");
    let reads: usize = done.iter().map(|d| d.reads.len()).sum();
    eprintln!("{} transactions, {reads} reads, {appended} appends: serializable", done.len());
    check(&done, &first);
}

#[test]
fn the_check_finds_a_cycle_and_a_read_no_prefix() {
    // Two transactions, each reading the key the other appends to, before the other's
    // append (write skew): a cycle of read-write dependencies.
    let skew = [
        Done { reads: vec![(0, vec![]), (1, vec![])], appends: vec![(1, 10)] },
        Done { reads: vec![(0, vec![]), (1, vec![])], appends: vec![(0, 20)] },
    ];
    let lists: HashMap<u32, Vec<u64>> = [(0, vec![20]), (1, vec![10])].into();
    let caught = std::panic::catch_unwind(|| check(&skew, &lists));
    assert!(caught.is_err(), "write skew passed the check");
    // Serial, the same two pass.
    let serial = [
        Done { reads: vec![(0, vec![]), (1, vec![])], appends: vec![(1, 10)] },
        Done { reads: vec![(0, vec![]), (1, vec![10])], appends: vec![(0, 20)] },
    ];
    check(&serial, &lists);
    // An append lost, and a read of an order the list does not have.
    let lost = [Done { reads: vec![(0, vec![])], appends: vec![(0, 7)] }];
    let caught = std::panic::catch_unwind(|| check(&lost, &[(0, vec![])].into()));
    assert!(caught.is_err(), "a lost append passed the check");
    let torn = [
        Done { reads: vec![(0, vec![])], appends: vec![(0, 7)] },
        Done { reads: vec![(0, vec![8])], appends: vec![(0, 8)] },
    ];
    let caught = std::panic::catch_unwind(|| check(&torn, &[(0, vec![7, 8])].into()));
    assert!(caught.is_err(), "a read no prefix of the list passed the check");
}
