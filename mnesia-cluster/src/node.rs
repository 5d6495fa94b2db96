//! A cluster node: its Raft, its port, and the sequencer that sends its database's commits
//! through the Raft log.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mnesia_runtime::{CommitRecord, Database, Error, Result, Sequencer, StorageType};
use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::{BasicNode, Raft, SnapshotPolicy};
use tokio::sync::watch;

use crate::faults::Faults;
use crate::liveness::Liveness;
use crate::net::{Dialer, Network, Peer, Request, Response};
use crate::raft::{Batch, LogStore, Placed, StateMachine, Types};

/// How a node joins its cluster: its id, its port, the cookie and the timings.
///
/// ```
/// let options = mnesia_cluster::Options::new(1, "a shared secret")
///     .listen("127.0.0.1:0".parse().expect("address"))
///     .write_timeout(std::time::Duration::from_secs(2));
/// assert_eq!(options.node_id(), 1);
/// ```
#[derive(Clone, Debug)]
pub struct Options {
    id: u64,
    cookie: Arc<[u8]>,
    listen: SocketAddr,
    dir: Option<std::path::PathBuf>,
    write_timeout: Duration,
    heartbeat: Duration,
    election: (Duration, Duration),
    /// How long a connection from a peer may stay idle (see [`Options::idle_timeout`]).
    idle: Duration,
    /// Log entries applied since the last snapshot that make a new one, and entries kept
    /// before a snapshot.
    snapshots: (u64, u64),
    /// The node's runtime's worker threads (see [`Options::worker_threads`]).
    workers: usize,
    /// Start as the only member of the cluster (see [`Options::recover_alone`]).
    recover_alone: bool,
    /// The bytes of each part of a table's image sent to a node filling its copy (see
    /// [`Options::image_parts`]).
    image_part: usize,
    faults: Faults,
    #[cfg(feature = "tls")]
    tls: Option<crate::tls::Tls>,
}

/// The shortest write timeout (see [`Options::write_timeout`]).
const MIN_WRITE_TIMEOUT: Duration = Duration::from_millis(10);

/// Entries since the last snapshot that make a new one, unless told.
const SNAPSHOT_EVERY: u64 = 10_000;
/// Entries kept before a snapshot, unless told (a follower a little behind catches up from
/// them rather than from the whole snapshot).
const SNAPSHOT_KEEP: u64 = 1_000;

impl Options {
    /// A node numbered `id` (unique in its cluster), proving with `cookie` that it belongs
    /// (every node of a cluster has the same; a node with another is refused). It listens on
    /// 127.0.0.1 on a port the system picks unless told otherwise ([`Options::listen`]).
    ///
    /// ```
    /// let options = mnesia_cluster::Options::new(7, b"cookie".to_vec());
    /// assert_eq!(options.node_id(), 7);
    /// ```
    pub fn new(id: u64, cookie: impl Into<Vec<u8>>) -> Options {
        Options {
            id,
            cookie: cookie.into().into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            dir: None,
            write_timeout: Duration::from_secs(5),
            heartbeat: Duration::from_millis(100),
            election: (Duration::from_millis(400), Duration::from_millis(800)),
            idle: Duration::from_secs(60),
            snapshots: (SNAPSHOT_EVERY, SNAPSHOT_KEEP),
            workers: 2,
            recover_alone: false,
            image_part: crate::placed::IMAGE_PART,
            faults: Faults::default(),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// The address to listen on for the other nodes.
    ///
    /// ```
    /// let options = mnesia_cluster::Options::new(1, "c").listen("127.0.0.1:4370".parse().expect("address"));
    /// # let _ = options;
    /// ```
    pub fn listen(mut self, addr: SocketAddr) -> Options {
        self.listen = addr;
        self
    }

    /// Keeps the node's Raft log (its entries and its vote) in `dir`, synced before Raft
    /// counts on them: a node stopped (or killed) and started again with the same `dir`
    /// and id comes back as itself, fills its database from the log and catches up from
    /// the leader. Without it the log is in memory, and a node that stops must not come
    /// back under the same id. The database's tables are then filled from the log, not
    /// from its own files: its directory, if it has one, may keep only the tables the node
    /// keeps for itself (`TableOptions::local_content`), the others being in memory.
    ///
    /// ```
    /// let options = mnesia_cluster::Options::new(1, "c").dir("/var/lib/myapp/raft");
    /// # let _ = options;
    /// ```
    pub fn dir(mut self, dir: impl Into<std::path::PathBuf>) -> Options {
        self.dir = Some(dir.into());
        self
    }

    /// How long a commit waits for a majority of the nodes before it fails with
    /// [`Error::NoMajority`] (5 s unless told, 10 ms at least: no commit is made in no time).
    ///
    /// ```
    /// let options = mnesia_cluster::Options::new(1, "c").write_timeout(std::time::Duration::from_secs(1));
    /// # let _ = options;
    /// ```
    pub fn write_timeout(mut self, timeout: Duration) -> Options {
        self.write_timeout = timeout.max(MIN_WRITE_TIMEOUT);
        self
    }

    /// The leader's heartbeat, and the range a follower waits without one before it calls
    /// an election (100 ms, 400–800 ms unless told).
    ///
    /// ```
    /// use std::time::Duration;
    /// let options = mnesia_cluster::Options::new(1, "c")
    ///     .timings(Duration::from_millis(50), (Duration::from_millis(200), Duration::from_millis(400)));
    /// # let _ = options;
    /// ```
    pub fn timings(mut self, heartbeat: Duration, election: (Duration, Duration)) -> Options {
        self.heartbeat = heartbeat;
        self.election = election;
        self
    }

    /// How long a connection from another node may wait for its next request, or for the
    /// rest of one, or for its answer to be taken, before this node closes it (60 s unless
    /// told; at least a second): a peer that stalled, or a connection left unused, holds
    /// nothing for longer. A node stops using a connection itself once it has been idle
    /// for half as long, and opens a new one: give every node of a cluster the same.
    ///
    /// ```
    /// let options = mnesia_cluster::Options::new(1, "c").idle_timeout(std::time::Duration::from_secs(30));
    /// # let _ = options;
    /// ```
    pub fn idle_timeout(mut self, idle: Duration) -> Options {
        self.idle = idle.max(Duration::from_secs(1));
        self
    }

    /// Starts the node as the only member of its cluster, from its Raft directory
    /// ([`Options::dir`], required): for a cluster that lost a majority of its members
    /// for good (their machines gone), which can commit nothing any more. The node keeps
    /// every entry of its log, commits them (those a majority had not confirmed too), and
    /// goes on alone; start new nodes on empty directories and have them
    /// [`join`](Node::join) it. What the lost members held that this node lacks is lost:
    /// recover the member most advanced (the highest `status().last_applied`). The others,
    /// should they come back, must not start on their old directories (they would form a
    /// cluster of their own): empty them, and join. Done once: the recovery is in the
    /// log (and noted in the directory), and the node starts as usual afterwards; started
    /// with this option again it starts as usual while it is alone, and is refused once
    /// members joined it (it would leave them a cluster of their own). Refused too when
    /// it listens on every address (`0.0.0.0`): the nodes that join it must reach it at
    /// the address it gives them.
    ///
    /// ```
    /// let options = mnesia_cluster::Options::new(1, "c").dir("/var/lib/myapp/raft").recover_alone();
    /// # let _ = options;
    /// ```
    pub fn recover_alone(mut self) -> Options {
        self.recover_alone = true;
        self
    }

    /// How many threads run the node's network, Raft and the applying of committed entries
    /// (its runtime's workers): 2 unless told (one may be applying while the other keeps the
    /// network and Raft going), at least 1. Nodes sharing a machine's cores (several in one
    /// process, or more nodes than cores) do better with 1 each: fewer threads handing work
    /// to one another (three nodes in one process on two cores commit twice as fast, one
    /// writer, logs in memory; see the README's cluster figures).
    ///
    /// ```
    /// let options = mnesia_cluster::Options::new(1, "c").worker_threads(1);
    /// # let _ = options;
    /// ```
    pub fn worker_threads(mut self, workers: usize) -> Options {
        self.workers = workers.max(1);
        self
    }

    /// How the log is kept short: once `every` entries were applied since the last
    /// snapshot, the node takes a snapshot of its database (applying waits meanwhile) and
    /// the log before it goes, but for the last `keep` entries (a follower a little behind
    /// catches up from them; one further behind, or a new node, is sent the snapshot).
    /// 10,000 and 1,000 unless told; `every` is at least 1. With [`Options::dir`] the
    /// snapshot is kept there (`raft.snapshot`), and the log file is rewritten without
    /// the entries it replaces.
    ///
    /// ```
    /// let options = mnesia_cluster::Options::new(1, "c").snapshots(50_000, 5_000);
    /// # let _ = options;
    /// ```
    pub fn snapshots(mut self, every: u64, keep: u64) -> Options {
        self.snapshots = (every.max(1), keep);
        self
    }

    /// The size of each part in which this node sends an image of a table (the table's
    /// records at one place of the log) to a node whose copy of it waits to be filled: 8
    /// MiB unless told, at least 1 KiB and at most 32 MiB (a frame holds 64 MiB at most).
    /// The node keeps the image while the other takes its parts, one at a time, until the
    /// last is taken or 60 s pass without one asked (it looks every 200 ms); it keeps four
    /// at most, and refuses a fifth asker meanwhile (which asks again later).
    ///
    /// ```
    /// let options = mnesia_cluster::Options::new(1, "c").image_parts(4 << 20);
    /// # let _ = options;
    /// ```
    pub fn image_parts(mut self, bytes: usize) -> Options {
        self.image_part = bytes.clamp(1 << 10, 32 << 20);
        self
    }

    /// Every connection of this node in TLS (feature `tls`): it proves itself with `tls`'s
    /// certificate and accepts only peers whose certificate comes from the same CA, before
    /// the cookie's handshake. Every node of the cluster must use TLS.
    ///
    /// ```
    /// # let ca = rcgen::generate_simple_self_signed(vec!["mnesia".into()]).expect("a certificate");
    /// # let (cert, key) = (ca.cert.pem(), ca.key_pair.serialize_pem());
    /// let tls = mnesia_cluster::Tls::from_pem(cert.as_bytes(), key.as_bytes(), cert.as_bytes())?;
    /// let options = mnesia_cluster::Options::new(1, "c").tls(tls);
    /// # let _ = options;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: crate::tls::Tls) -> Options {
        self.tls = Some(tls);
        self
    }

    /// Network faults to obey (for tests): links the given [`Faults`] cut lose what
    /// this node sends over them and receives from them.
    ///
    /// ```
    /// let faults = mnesia_cluster::Faults::new();
    /// let options = mnesia_cluster::Options::new(1, "c").faults(faults.clone());
    /// # let _ = options;
    /// ```
    pub fn faults(mut self, faults: Faults) -> Options {
        self.faults = faults;
        self
    }

    /// Options from the process's environment, for deployments: `MNESIA_NODE_ID` (the id)
    /// and `MNESIA_COOKIE` (or `MNESIA_COOKIE_FILE`, a file holding it) are required;
    /// `MNESIA_LISTEN` (an address), `MNESIA_RAFT_DIR` (see [`Options::dir`]),
    /// `MNESIA_WRITE_TIMEOUT_MS`, `MNESIA_WORKER_THREADS`, and for TLS (feature `tls`) `MNESIA_TLS_CERT`,
    /// `MNESIA_TLS_KEY`, `MNESIA_TLS_CA` (PEM files, all three or none) and
    /// `MNESIA_TLS_NAME` are optional. A variable missing or malformed is an
    /// [`Error::Invalid`] naming it. See [`Options::from_vars`] for the rules.
    ///
    /// ```no_run
    /// let options = mnesia_cluster::Options::from_env()?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn from_env() -> Result<Options> {
        Options::from_vars(|name| std::env::var(name).ok())
    }

    /// Options from variables looked up by name (what [`Options::from_env`] reads from the
    /// environment).
    ///
    /// ```
    /// use std::collections::HashMap;
    /// let vars: HashMap<&str, &str> = HashMap::from([
    ///     ("MNESIA_NODE_ID", "2"),
    ///     ("MNESIA_COOKIE", "a shared secret"),
    ///     ("MNESIA_LISTEN", "127.0.0.1:4370"),
    ///     ("MNESIA_WRITE_TIMEOUT_MS", "1500"),
    /// ]);
    /// let options = mnesia_cluster::Options::from_vars(|k| vars.get(k).map(|v| v.to_string()))?;
    /// assert_eq!(options.node_id(), 2);
    ///
    /// let bad: HashMap<&str, &str> = HashMap::from([("MNESIA_NODE_ID", "two")]);
    /// let refused = mnesia_cluster::Options::from_vars(|k| bad.get(k).map(|v| v.to_string()));
    /// assert!(refused.unwrap_err().to_string().contains("MNESIA_NODE_ID"));
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Options> {
        fn parsed<X: std::str::FromStr>(name: &str, value: &str) -> Result<X>
        where
            X::Err: std::fmt::Display,
        {
            value.trim().parse().map_err(|e| Error::Invalid(format!("{name}={value:?}: {e}")))
        }
        let required = |name: &str| var(name).ok_or_else(|| Error::Invalid(format!("{name} is not set")));
        let id: u64 = parsed("MNESIA_NODE_ID", &required("MNESIA_NODE_ID")?)?;
        let cookie = match (var("MNESIA_COOKIE"), var("MNESIA_COOKIE_FILE")) {
            (Some(cookie), _) => cookie.into_bytes(),
            (None, Some(path)) => {
                let bytes = std::fs::read(&path).map_err(|e| Error::Io {
                    path: path.clone().into(),
                    source: std::io::Error::new(e.kind(), format!("MNESIA_COOKIE_FILE: {e}")),
                })?;
                // A trailing newline, as editors leave, is not part of the cookie.
                let end = bytes.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(0, |i| i + 1);
                bytes[..end].to_vec()
            }
            (None, None) => {
                return Err(Error::Invalid("MNESIA_COOKIE or MNESIA_COOKIE_FILE must be set".into()));
            }
        };
        if cookie.is_empty() {
            return Err(Error::Invalid("the cookie (MNESIA_COOKIE or MNESIA_COOKIE_FILE) is empty".into()));
        }
        let mut options = Options::new(id, cookie);
        if let Some(listen) = var("MNESIA_LISTEN") {
            options = options.listen(parsed("MNESIA_LISTEN", &listen)?);
        }
        if let Some(dir) = var("MNESIA_RAFT_DIR") {
            if dir.trim().is_empty() {
                return Err(Error::Invalid("MNESIA_RAFT_DIR is set but empty".into()));
            }
            options = options.dir(dir);
        }
        if let Some(ms) = var("MNESIA_WRITE_TIMEOUT_MS") {
            let timeout = Duration::from_millis(parsed("MNESIA_WRITE_TIMEOUT_MS", &ms)?);
            if timeout < MIN_WRITE_TIMEOUT {
                return Err(Error::Invalid(format!(
                    "MNESIA_WRITE_TIMEOUT_MS is {ms}: at least {} ms",
                    MIN_WRITE_TIMEOUT.as_millis()
                )));
            }
            options = options.write_timeout(timeout);
        }
        if let Some(n) = var("MNESIA_WORKER_THREADS") {
            options = options.worker_threads(parsed("MNESIA_WORKER_THREADS", &n)?);
        }
        const TLS: [&str; 3] = ["MNESIA_TLS_CERT", "MNESIA_TLS_KEY", "MNESIA_TLS_CA"];
        let files: Vec<Option<String>> = TLS.iter().map(|name| var(name)).collect();
        match files.as_slice() {
            [None, None, None] if var("MNESIA_TLS_NAME").is_some() => {
                return Err(Error::Invalid(
                    "MNESIA_TLS_NAME is set without MNESIA_TLS_CERT, MNESIA_TLS_KEY and MNESIA_TLS_CA".into(),
                ));
            }
            [None, None, None] => {}
            #[cfg(feature = "tls")]
            [Some(cert), Some(key), Some(ca)] => {
                let mut tls = crate::tls::Tls::from_pem_files(cert, key, ca)?;
                if let Some(name) = var("MNESIA_TLS_NAME") {
                    tls = tls.with_name(&name)?;
                }
                options = options.tls(tls);
            }
            #[cfg(not(feature = "tls"))]
            [Some(_), Some(_), Some(_)] => {
                return Err(Error::Invalid(
                    "MNESIA_TLS_CERT, MNESIA_TLS_KEY and MNESIA_TLS_CA are set, but this program was built without TLS (the `tls` feature)".into(),
                ));
            }
            _ => {
                let missing: Vec<&str> =
                    TLS.iter().zip(&files).filter(|(_, v)| v.is_none()).map(|(n, _)| *n).collect();
                return Err(Error::Invalid(format!("TLS needs {} too", missing.join(" and "))));
            }
        }
        Ok(options)
    }

    /// The node's id.
    ///
    /// ```
    /// assert_eq!(mnesia_cluster::Options::new(3, "c").node_id(), 3);
    /// ```
    pub fn node_id(&self) -> u64 {
        self.id
    }

    fn raft_config(&self) -> Result<openraft::Config> {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        openraft::Config {
            cluster_name: "mnesia".into(),
            heartbeat_interval: ms(self.heartbeat),
            election_timeout_min: ms(self.election.0),
            election_timeout_max: ms(self.election.1),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshots.0),
            max_in_snapshot_log_to_keep: self.snapshots.1,
            max_payload_entries: PAYLOAD_ENTRIES,
            // Each chunk of a snapshot (3 MiB) may take this long: openraft's 200 ms is a
            // quarter of a second's worth at 100 Mbit/s, and a chunk that times out is sent
            // again, never faster.
            install_snapshot_timeout: INSTALL_SNAPSHOT_TIMEOUT_MS,
            ..Default::default()
        }
        .validate()
        .map_err(|e| Error::Invalid(format!("cluster timings: {e}")))
    }
}

/// What a node knows of its cluster.
///
/// ```no_run
/// # fn show(node: &mnesia_cluster::Node) {
/// let status = node.status();
/// println!("node {} sees leader {:?} in term {}", status.node, status.leader, status.term);
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Status {
    /// This node's id.
    pub node: u64,
    /// The leader, if one is known (none once this node is no member: its Raft stopped).
    pub leader: Option<u64>,
    /// The current term.
    pub term: u64,
    /// The index of the last log entry applied to this node's database.
    pub last_applied: u64,
    /// The voting members.
    pub members: BTreeSet<u64>,
    /// The members that do not vote (yet): nodes joining, sent the log until they have
    /// caught up.
    pub learners: BTreeSet<u64>,
    /// The other members that answer this one (see [`ClusterEvent`](mnesia_runtime::ClusterEvent)).
    pub up: BTreeSet<u64>,
    /// Why this node is no member of the cluster any more (it left, or was removed), if it
    /// is not: the other fields are then its last view, which its log still holds.
    pub no_member: Option<String>,
    /// The last log entry the latest snapshot holds (see [`Options::snapshots`]).
    pub snapshot: Option<u64>,
    /// The last log entry purged: the log holds the entries after it.
    pub purged: Option<u64>,
}

/// Why a batch of proposals was not ordered.
pub(crate) enum Unordered {
    /// This node's Raft stopped (its fate is unknown: the others may still order it).
    Stopped(String),
    /// The leader counts this node no member: refused, not ordered.
    NotMember(String),
}

/// How a leader's refusal of a stranger's proposals begins (see [`Shared::write_here`]).
const NOT_MEMBER: &str = "not a member: ";

/// What the node's tasks share.
pub(crate) struct Shared {
    pub(crate) id: u64,
    /// How long this node counts itself the leader without a majority's answer: the
    /// longest election timeout (see [`Shared::led_by`]).
    pub(crate) lease: Duration,
    /// When this node last took the lead.
    pub(crate) leading: Leading,
    /// How it opens connections (its liveness: which peers answer, told to the database's
    /// system event subscribers).
    pub(crate) dialer: Dialer,
    pub(crate) raft: Raft<Types>,
    pub(crate) applied: watch::Receiver<u64>,
    /// The errors of records refused here, by their place in the database's order, until
    /// their commit takes them.
    pub(crate) refused: Arc<parking_lot::Mutex<BTreeMap<u64, Error>>>,
    /// This node's life: drawn when it starts, so that its proposals' ids are new.
    pub(crate) life: u64,
    /// Proposals made in this life.
    pub(crate) proposals: std::sync::atomic::AtomicU64,
    /// Connections to the leader, for commits made on a follower (several, so that the
    /// commits of many writers travel together).
    leader: parking_lot::Mutex<Option<(u64, Arc<Links>)>>,
    /// The holds of tables this node keeps for other members' transactions, and asks of
    /// them for its own (see `holds.rs`).
    pub(crate) holds: Arc<crate::holds::Holds>,
    /// A connection to each member (with the address it was opened to), for
    /// `sync_transaction`'s questions.
    sync_links: crate::net::MemberLinks,
    /// A few connections to each member, for reads of tables this node holds no records
    /// of (see `placed.rs`) ...
    pub(crate) read_links: crate::net::MemberLinks,
    /// ... and one for images of tables whose copy here waits to be filled.
    pub(crate) image_links: crate::net::MemberLinks,
    /// The images of tables this node sends to others in parts.
    pub(crate) images: crate::placed::KeptImages,
    /// The member that last answered a read of each table this node holds no records of.
    pub(crate) read_from: parking_lot::Mutex<std::collections::HashMap<String, u64>>,
    /// How writes to the node's directory fare (tried again until they succeed): those of
    /// its log, and those of the snapshots its leader sends (each fails and recovers on its
    /// own).
    pub(crate) writes: [Arc<crate::writes::Writes>; 2],
    /// Set once this node is no member of the cluster (it left, or was removed): why its
    /// writes fail (see [`Shared::no_member`]) ...
    pub(crate) left: std::sync::OnceLock<String>,
    /// ... and told to the commits waiting to be applied here.
    left_signal: tokio::sync::Notify,
    /// On the leader: the nodes being removed, whose proposals it refuses (those it took
    /// before reach them before they go: see `members.rs`).
    pub(crate) removing: parking_lot::Mutex<BTreeSet<u64>>,
    /// The node's Raft directory, if it has one.
    pub(crate) dir: Option<std::path::PathBuf>,
    /// Set once the node is in a cluster (see [`Shared::in_a_cluster`]).
    in_a_cluster: std::sync::atomic::AtomicBool,
}

/// A node's runtime while the node starts: dropped (the start failed) where a runtime may
/// be, outside any async context.
struct Unstarted(Option<tokio::runtime::Runtime>);

impl Drop for Unstarted {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            outside_async(move || drop(rt));
        }
    }
}

/// Runs `f` on this thread, or, from async code (where a runtime can neither be blocked
/// on nor dropped: tokio panics), on a thread of its own meanwhile.
fn outside_async<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(out) => out,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// Runs `f` on `rt` until it is done, blocking this thread; from async code (a runtime
/// cannot be blocked on in another's context: tokio panics), on a thread of its own
/// meanwhile. (The node's calls block their caller, as the database's do: from async
/// code, prefer `spawn_blocking`.)
pub(crate) fn block_on_outside<F>(rt: &tokio::runtime::Runtime, f: F) -> F::Output
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    outside_async(|| rt.block_on(f))
}

/// Whether `m` knows members (the node is in a cluster).
fn has_members(m: &openraft::RaftMetrics<u64, BasicNode>) -> bool {
    m.membership_config.membership().nodes().next().is_some()
}

/// Whether the others, sending to `given`, reach a node listening on `listening`: the same
/// port, and the same IP unless it listens on every one.
pub(crate) fn reaches(given: SocketAddr, listening: SocketAddr) -> bool {
    given.port() == listening.port() && (listening.ip().is_unspecified() || given.ip() == listening.ip())
}

/// When this node last took the lead, and in which term (see [`Shared::led_by`]).
#[derive(Default)]
pub(crate) struct Leading(parking_lot::Mutex<Option<(u64, Instant)>>);

impl Shared {
    /// The leader `m` (this node's metrics) knows of: none once this node's Raft stopped
    /// (it is no member: see `members::retire`), whatever it last knew; none either when
    /// this node leads but no majority has answered it for `lease` (an election timeout),
    /// or has not answered at all since it took the lead that long ago (openraft makes a
    /// node that voted for itself the leader again as it starts, answered or not): cut
    /// off, it counted itself the leader while the others had elected another.
    pub(crate) fn led_by(&self, m: &openraft::RaftMetrics<u64, BasicNode>) -> Option<u64> {
        let leader = m.current_leader.filter(|_| m.state != openraft::ServerState::Shutdown)?;
        if leader != m.id {
            return Some(leader);
        }
        let since = {
            let mut leading = self.leading.0.lock();
            match *leading {
                Some((term, at)) if term == m.current_term => at,
                _ => leading.insert((m.current_term, Instant::now())).1,
            }
        };
        let unanswered = match m.millis_since_quorum_ack {
            Some(ms) => u128::from(ms) > self.lease.as_millis(),
            None => since.elapsed() > self.lease,
        };
        (!unanswered).then_some(leader)
    }
}

/// If `node` is not among the members `m` gives: whether that membership is decided (its
/// entry applied here), and the entry's index.
pub(crate) fn left_out(m: &openraft::RaftMetrics<u64, BasicNode>, node: u64) -> Option<(bool, u64)> {
    if m.membership_config.membership().get_node(&node).is_some() {
        return None;
    }
    let at = m.membership_config.log_id().map(|l| l.index);
    Some((at <= m.last_applied.map(|l| l.index), at.unwrap_or(0)))
}

/// Connections to one node, and a permit for each: a writer holding a permit finds one of
/// them free.
struct Links {
    peers: Box<[tokio::sync::Mutex<Peer>]>,
    free: tokio::sync::Semaphore,
}

/// Connections a follower keeps to the leader.
const LEADER_LINKS: usize = 8;

impl Shared {
    /// Orders `batch` through this node's Raft, if it leads: its log index and each
    /// proposal's place and verdict.
    /// A member's proposals only: a node that left or was removed would wait in vain to
    /// apply its commit, which the cluster made ([`NOT_MEMBER`] then).
    pub(crate) async fn write_here(&self, batch: Batch) -> std::result::Result<(u64, Vec<Placed>), String> {
        let stranger = {
            let removing = self.removing.lock();
            let m = self.raft.metrics();
            let m = m.borrow();
            batch.0.iter().map(|p| p.id.node).find_map(|n| match left_out(&m, n) {
                Some((decided, _)) => Some((n, decided)),
                None => removing.contains(&n).then_some((n, false)),
            })
        };
        match stranger {
            // (Told so once its removal is decided; while it is being removed, or the change
            // could still be undone, refused without a word on its membership.)
            Some((node, true)) => {
                return Err(format!("{NOT_MEMBER}{}", crate::members::counted_out(node, self.id)));
            }
            Some((node, false)) => return Err(format!("node {node} is being removed from the cluster")),
            None => {}
        }
        match self.raft.client_write(batch).await {
            Ok(r) => Ok((r.log_id.index, r.data)),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Orders `batch` through the leader, wherever it is (bounded by the caller's timeout).
    pub(crate) async fn propose(&self, batch: Batch) -> std::result::Result<(u64, Vec<Placed>), Unordered> {
        // Whether an earlier try may have been ordered (its answer lost, or an error after
        // the leader took it): a refusal then says nothing of that try.
        let mut unsure = false;
        loop {
            // (Told meanwhile that it is no member: its Raft stops.)
            if let Some(why) = self.left.get() {
                return Err(if unsure {
                    Unordered::Stopped(format!("{why}; an earlier try of the commit may have been made"))
                } else {
                    Unordered::NotMember(why.clone())
                });
            }
            let forward = match self.raft.client_write(batch.clone()).await {
                Ok(r) => return Ok((r.log_id.index, r.data)),
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => f,
                Err(e) => return Err(Unordered::Stopped(e.to_string())),
            };
            if let (Some(id), Some(node)) = (forward.leader_id, forward.leader_node) {
                let request = Request::Propose(batch.clone());
                match self.ask(id, &node, &request).await.map_err(Unordered::Stopped)? {
                    Ok(Response::Proposed(Ok(placed))) => return Ok(placed),
                    Ok(Response::Proposed(Err(why))) if why.starts_with(NOT_MEMBER) => {
                        let why = &why[NOT_MEMBER.len()..];
                        tokio::task::block_in_place(|| self.no_member(why));
                        return Err(if unsure {
                            Unordered::Stopped(format!(
                                "{why}; an earlier try of the commit may have been made"
                            ))
                        } else {
                            Unordered::NotMember(why.to_owned())
                        });
                    }
                    _ => unsure = true,
                }
            }
            // No leader yet, or it just changed: ask again shortly.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The index of the log up to which this node, if it leads, has decided every entry, its
    /// leadership confirmed by a majority (Raft's read index).
    pub(crate) async fn read_index_here(&self) -> std::result::Result<u64, String> {
        match self.raft.get_read_log_id().await {
            Ok((read, _)) => Ok(read.map_or(0, |l| l.index)),
            Err(e) => Err(e.to_string()),
        }
    }

    /// The leader's read index, wherever the leader is (bounded by the caller's timeout).
    async fn read_index(&self) -> std::result::Result<u64, String> {
        loop {
            let forward = match self.raft.get_read_log_id().await {
                Ok((read, _)) => return Ok(read.map_or(0, |l| l.index)),
                Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => f,
                Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_))) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                Err(e) => return Err(e.to_string()),
            };
            if let (Some(id), Some(node)) = (forward.leader_id, forward.leader_node)
                && let Ok(Response::ReadIndex(Ok(index))) = self.ask(id, &node, &Request::ReadIndex).await?
            {
                return Ok(index);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// What this node knows of its cluster, for the database's `system_info`.
    fn report(&self) -> mnesia_runtime::ClusterInfo {
        let m = self.raft.metrics().borrow().clone();
        let up = self.dialer.liveness.up();
        // On the leader: what each member holds of its log.
        let last = m.last_log_index.unwrap_or(0);
        let behind = |id: &u64| {
            let matched = m.replication.as_ref()?.get(id).map(|l| l.map_or(0, |l| l.index));
            // (The leader is not among the followers it replicates to.)
            Some(last.saturating_sub(matched.unwrap_or(last)))
        };
        let membership = m.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let members = membership
            .nodes()
            .map(|(id, node)| {
                let member = mnesia_runtime::ClusterMember::new(
                    *id,
                    node.addr.clone(),
                    *id == self.id || up.contains(id),
                );
                let member = if voters.contains(id) { member } else { member.learner() };
                match behind(id) {
                    Some(entries) => member.with_behind(entries),
                    None => member,
                }
            })
            .collect();
        mnesia_runtime::ClusterInfo::new(
            self.id,
            self.led_by(&m),
            m.current_term,
            m.last_applied.map_or(0, |l| l.index),
            members,
        )
    }

    /// This node is no member of the cluster (`why`): its writes fail at once from now on,
    /// and its Raft directory says so (its log still counts it a member: started again on
    /// it, it would wait in vain; see `log_file::claim`).
    pub(crate) fn no_member(&self, why: &str) -> Option<Error> {
        if self.left.set(why.to_owned()).is_err() {
            return None;
        }
        self.left_signal.notify_waiters();
        tracing::warn!(target: "mnesia::cluster", node = self.id, why, "this node is no member of the cluster");
        let dir = self.dir.as_ref()?;
        let marked = crate::log_file::mark_left(dir).err()?;
        tracing::warn!(target: "mnesia::cluster", error = %marked, "the Raft directory could not be marked as left");
        Some(marked)
    }

    /// Returns once this node is no member of the cluster (see [`Shared::no_member`]).
    pub(crate) async fn gone(&self) {
        loop {
            let signal = self.left_signal.notified();
            tokio::pin!(signal);
            signal.as_mut().enable();
            if self.left.get().is_some() {
                return;
            }
            signal.await;
        }
    }

    /// Whether this node is in a cluster (it was formed or joined, here or before a restart):
    /// once it is, for good (no metrics read per commit from then on).
    pub(crate) fn in_a_cluster(&self) -> bool {
        if self.in_a_cluster.load(std::sync::atomic::Ordering::Acquire) {
            return true;
        }
        let known = has_members(&self.raft.metrics().borrow());
        if known {
            self.in_a_cluster.store(true, std::sync::atomic::Ordering::Release);
        }
        known
    }

    /// `Err` if this node is no member of the cluster any more.
    pub(crate) fn member(&self) -> Result<()> {
        match self.left.get() {
            Some(why) => Err(Error::Closed { what: format!("this cluster node ({why})") }),
            None => Ok(()),
        }
    }

    /// Waits until this node has applied every entry decided before the call, as the leader
    /// confirms with a majority (see `Node::sync_reads`).
    pub(crate) async fn current(&self, timeout: Duration) -> Result<()> {
        self.member()?;
        let started = Instant::now();
        let no_majority = || Error::NoMajority { waited: timeout };
        let index = tokio::time::timeout(timeout, self.read_index())
            .await
            .map_err(|_| no_majority())?
            .map_err(|reason| Error::Closed { what: format!("the cluster node ({reason})") })?;
        let mut applied = self.applied.clone();
        let left = timeout.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, applied.wait_for(|a| *a >= index)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(Error::Closed { what: "the cluster node".into() }),
            Err(_) => Err(no_majority()),
        }
    }

    /// The index of the last log entry applied here.
    pub(crate) fn applied_here(&self) -> u64 {
        *self.applied.borrow()
    }

    /// Waits until every other member this node sees up has applied the log up to `index`
    /// (each given until `deadline`: one that has not by then is taken for one not live).
    pub(crate) async fn synced_everywhere(&self, index: u64, deadline: tokio::time::Instant) {
        let voters: Vec<(u64, BasicNode)> = {
            let m = self.raft.metrics().borrow().clone();
            let membership = m.membership_config.membership();
            let voters: BTreeSet<u64> = membership.voter_ids().collect();
            membership
                .nodes()
                .filter(|(id, _)| **id != self.id && voters.contains(id))
                .map(|(id, n)| (*id, n.clone()))
                .collect()
        };
        let up = self.dialer.liveness.up();
        for (id, node) in voters.into_iter().filter(|(id, _)| up.contains(id)) {
            if !self.applied_by(id, &node.addr, index, deadline).await {
                tracing::warn!(
                    target: "mnesia::cluster",
                    node = id,
                    index,
                    "a sync_transaction did not see a live node apply its commit in time"
                );
            }
        }
    }

    /// Waits until member `id` (at `addr`) has applied the log up to `index`, asked over
    /// the connection kept to it; `false` if it had not by `deadline`.
    pub(crate) async fn applied_by(
        &self,
        id: u64,
        addr: &str,
        index: u64,
        deadline: tokio::time::Instant,
    ) -> bool {
        let peer = self.sync_links.to(id, addr);
        let mut peer = peer.lock().await;
        let peer = peer.get_or_insert_with(|| self.dialer.peer(id, addr.to_owned()));
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            // (Not told to the liveness: a slow answer here is no sign of a node down.)
            match peer.exchange(&Request::Applied, left).await {
                Ok(Response::Applied(at)) if at >= index => return true,
                // Not there yet, or the connection failed (a new one is opened): again.
                _ => tokio::time::sleep(Duration::from_millis(2)).await,
            }
        }
    }

    /// Sends `request` to the leader `id` over one of the connections kept to it. `Err`:
    /// the node stopped.
    pub(crate) async fn ask(
        &self,
        id: u64,
        node: &BasicNode,
        request: &Request,
    ) -> std::result::Result<std::result::Result<Response, crate::wire::WireError>, String> {
        let links = {
            let mut leader = self.leader.lock();
            match leader.as_ref() {
                Some((l, links)) if *l == id => Arc::clone(links),
                _ => {
                    let peers = (0..LEADER_LINKS)
                        .map(|_| tokio::sync::Mutex::new(self.dialer.peer(id, node.addr.clone())))
                        .collect();
                    let links = Arc::new(Links { peers, free: tokio::sync::Semaphore::new(LEADER_LINKS) });
                    *leader = Some((id, Arc::clone(&links)));
                    links
                }
            }
        };
        // A connection as soon as one is free.
        let Ok(_permit) = links.free.acquire().await else { return Err("the node stopped".into()) };
        let mut peer = match links.peers.iter().find_map(|l| l.try_lock().ok()) {
            Some(peer) => peer,
            None => links.peers[0].lock().await,
        };
        // A change of members takes as long as the leader gives it; anything else, 10 s.
        let wait = match request {
            Request::Change(_) => crate::net::CHANGE_TIMEOUT + Duration::from_secs(5),
            _ => Duration::from_secs(10),
        };
        Ok(peer.call(request, wait).await)
    }
}

/// How long a chunk of a snapshot may take to be sent and answered, in milliseconds.
const INSTALL_SNAPSHOT_TIMEOUT_MS: u64 = 5_000;

/// Log entries sent in one append at most.
pub(crate) const PAYLOAD_ENTRIES: u64 = 120;

/// The sequencer while a node starts: commits wait for none, they are refused.
struct Starting;

impl Sequencer for Starting {
    fn order(&self, _record: CommitRecord) -> Result<()> {
        Err(Error::Closed { what: "the cluster node (it is starting)".into() })
    }
}

/// A running cluster node: a database whose commits are ordered by Raft among the nodes.
///
/// Every writing commit of the database (transactions, dirty operations, batches,
/// counters) goes through the Raft log; each node applies the log to its own copy in
/// order, and every node decides each commit the same way. A commit returns once a
/// majority holds it and this node has applied it. Reads answer from this node's copy.
///
/// ```no_run
/// use mnesia_cluster::{Node, Options};
/// let db = mnesia::Database::in_memory()?;
/// let node = Node::start(&db, Options::new(1, "cookie"))?;
/// node.initialize([(1, node.local_addr())])?;
/// node.wait_for_leader(std::time::Duration::from_secs(5))?;
/// # Ok::<(), mnesia::Error>(())
/// ```
pub struct Node {
    pub(crate) shared: Arc<Shared>,
    pub(crate) addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Node {
    /// Starts node `options.node_id()` for `db`: listens for the other nodes and from now
    /// on orders the database's commits through the cluster (a node that is in no cluster
    /// yet commits nothing: see [`Node::initialize`]). Create the tables on every node
    /// first, alike. The database must be new to the cluster (a node started again gets a
    /// new one, which its log and snapshot fill): one that applied a cluster's commits is
    /// refused with [`Error::Invalid`], and so is, with TLS, a certificate that does not
    /// name the cluster.
    ///
    /// ```no_run
    /// let db = mnesia::Database::in_memory()?;
    /// let node = mnesia_cluster::Node::start(&db, mnesia_cluster::Options::new(1, "cookie"))?;
    /// println!("listening on {}", node.local_addr());
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn start(db: &Database, options: Options) -> Result<Node> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &options.tls {
            tls.names_the_cluster()?;
        }
        // From now on nothing commits on this copy alone: the log replayed below, then the
        // cluster, decide every commit (unless the node does not start).
        db.order_commits_with(Starting);
        Node::start_ordered(db, options).inspect_err(|_| db.stop_ordering())
    }

    fn start_ordered(db: &Database, options: Options) -> Result<Node> {
        // The log (and the snapshot) fill the database from the first entry on: one that
        // applied a cluster's commits already would apply them again, at other places.
        if db.applied_index() != 0 {
            return Err(Error::Invalid(format!(
                "the database applied {} commits of a cluster already: start the node on a new database",
                db.applied_index()
            )));
        }
        let config = Arc::new(options.raft_config()?);
        let disc = options.faults.disc_of(options.id);
        let writes = [
            Arc::new(crate::writes::Writes::told_to(db.clone())),
            Arc::new(crate::writes::Writes::told_to(db.clone())),
        ];
        // The database's directory may keep only the tables this node keeps for itself
        // (`local_content`): the others are filled from the Raft log.
        let on_disc = db
            .table_infos()
            .into_iter()
            .find(|t| t.storage_type != StorageType::RamCopies && !t.local_content);
        let log = match (&options.dir, on_disc) {
            (Some(dir), Some(table)) => {
                // (The named counters' table is made on disc when counters are used before
                // the node starts, on a database with a directory.)
                let counters = if table.name == "mnesia_counters" {
                    " (the named counters' table, made on disc by counters used before the node started: use them once it runs)"
                } else {
                    ""
                };
                return Err(Error::Invalid(format!(
                    "a node keeping its Raft log in {} fills its tables from that log, but table {}{counters} is {} in the database's directory: keep the cluster's tables in memory (only tables created with local_content() may be on disc)",
                    dir.display(),
                    table.name,
                    table.storage_type
                )));
            }
            (Some(dir), None) => {
                let lock = crate::log_file::claim(dir, options.id)?;
                LogStore::open(dir, disc.clone(), Arc::clone(&writes[0]), Some(lock))
                    .map_err(|e| Error::Io { path: dir.clone(), source: e })?
            }
            (None, _) => LogStore::default(),
        };
        // (Two unless told: one may be applying a commit, see `StateMachine::apply_proposal`.)
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(options.workers)
            .thread_name("mnesia-cluster")
            .enable_all()
            .build()
            .map_err(|e| Error::Io { path: "cluster runtime".into(), source: e })?;
        // (Dropped where it may be if the start fails: see `Unstarted`.)
        let mut runtime = Unstarted(Some(runtime));
        let runtime_ref = runtime.0.as_ref().unwrap_or_else(|| unreachable!());
        let listener = block_on_outside(runtime_ref, tokio::net::TcpListener::bind(options.listen))
            .map_err(|e| Error::Io { path: options.listen.to_string().into(), source: e })?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Io { path: options.listen.to_string().into(), source: e })?;
        // The index of the last log entry applied (not a place in the database's order: an entry
        // holds many commits, or none).
        let (applied_tx, applied) = watch::channel(0);
        let refused = Arc::new(parking_lot::Mutex::new(BTreeMap::new()));
        let life = life()?;
        let mut machine = StateMachine::new(
            db.clone(),
            options.dir.clone().zip(log.snapshot_on_disc()),
            applied_tx,
            Arc::clone(&refused),
            (options.id, life),
            (disc, Arc::clone(&writes[1])),
        );
        let saved = match &options.dir {
            Some(dir) => {
                crate::snapshot::load(dir).map_err(|e| Error::Io { path: dir.clone(), source: e })?
            }
            None => None,
        };
        // A member started again at another address: the others would still send to the
        // old one (its commits waited for ever to be applied here; elected, it led nodes
        // that forwarded to the old address). Refused before the database is filled.
        // The last change of members this node knows of (its log's, else its snapshot's):
        // where it is, and this node's address in it.
        let last_members = log.last_membership().or_else(|| {
            let stored = &saved.as_ref()?.meta.last_membership;
            Some(((*stored.log_id())?.index, stored.membership().clone()))
        });
        let known = last_members.as_ref().and_then(|(_, m)| m.get_node(&options.id)).map(|n| n.addr.clone());
        // (For a node asked to recover alone: see below.)
        let members_changed_at = last_members.as_ref().map(|(at, _)| *at);
        // A member of a cluster from the start (its metrics tell it only later: a write
        // right after a restart was refused as a node in no cluster's).
        let was_member = known.is_some();
        // (A node recovering alone may move: no other member sends to it.)
        if let Some(known) =
            known.as_ref().filter(|k| !options.recover_alone && k.parse().is_ok_and(|k| !reaches(k, addr)))
        {
            return Err(Error::Invalid(format!(
                "node {} is a member of its cluster at {known}, and was started listening on {addr}: start it with Options::listen({known}) (a member's address does not change)",
                options.id
            )));
        }
        if let (Some(dir), Some(saved)) = (&options.dir, saved) {
            if let Some(upto) = saved.meta.last_log_id {
                log.start_after(upto).map_err(|e| Error::Io { path: dir.clone(), source: e })?;
            }
            machine
                .start_from(saved)
                .map_err(|why| Error::Invalid(format!("the snapshot in {}: {why}", dir.display())))?;
        }
        if options.recover_alone {
            let Some(dir) = &options.dir else {
                return Err(Error::Invalid(
                    "recover_alone starts a node from its Raft log: give its directory (Options::dir)".into(),
                ));
            };
            // Known to the nodes that join it at the address it listens on: a given one (a
            // node listening on every address might advertise a machine that is gone).
            if addr.ip().is_unspecified() {
                return Err(Error::Invalid(format!(
                    "node {} recovering alone listens on {addr}: listen on the address the nodes that join it reach it at (Options::listen)",
                    options.id
                )));
            }
            // Started with the option again: alone since, it starts as usual; members
            // joined since, it would leave them a cluster of their own: refused.
            match (crate::log_file::recovered_at(dir), members_changed_at) {
                (Some(at), Some(changed)) if changed == at => {
                    tracing::info!(target: "mnesia::cluster", node = options.id, "recovered alone before: starting as usual");
                }
                (Some(at), Some(changed)) if changed > at => {
                    return Err(Error::Invalid(format!(
                        "node {} recovered alone at log entry {at}, and its members changed since (entry {changed}): recovering alone again would leave them a cluster of their own; start it without recover_alone",
                        options.id
                    )));
                }
                _ => {
                    let at = log.recover_alone(options.id, addr).map_err(|why| {
                        Error::Invalid(format!(
                            "node {} cannot recover alone from {}: {why}",
                            options.id,
                            dir.display()
                        ))
                    })?;
                    crate::log_file::mark_recovered(dir, at.index)?;
                    tracing::warn!(
                        target: "mnesia::cluster",
                        node = options.id,
                        entry = at.index,
                        "recovering alone: this node is now its cluster's only member"
                    );
                }
            }
        }
        let (type_ends, on_disc) = (machine.type_ends.subscribe(), log.snapshot_on_disc());
        // A peer nothing came from for three of the longest election timeouts is down.
        let dialer = Dialer {
            me: options.id,
            cookie: options.cookie,
            idle: options.idle,
            faults: options.faults,
            liveness: Arc::new(Liveness::new(db.clone(), options.election.1 * 3)),
            #[cfg(feature = "tls")]
            tls: options.tls.clone(),
            told_no_member: Arc::default(),
        };
        let network = Network { dialer: dialer.clone() };
        let raft = block_on_outside(runtime_ref, Raft::new(options.id, config, network, log, machine))
            .map_err(|e| Error::Internal(format!("starting the cluster node: {e}")))?;
        let shared = Arc::new(Shared {
            id: options.id,
            lease: options.election.1,
            leading: Leading::default(),
            dialer,
            life,
            proposals: std::sync::atomic::AtomicU64::new(0),
            raft,
            applied,
            refused,
            leader: parking_lot::Mutex::new(None),
            holds: Arc::default(),
            sync_links: crate::net::MemberLinks::default(),
            read_links: crate::net::MemberLinks::several(crate::placed::READ_LINKS),
            image_links: crate::net::MemberLinks::default(),
            images: crate::placed::KeptImages::new(options.image_part),
            read_from: parking_lot::Mutex::default(),
            writes,
            left: std::sync::OnceLock::new(),
            left_signal: tokio::sync::Notify::new(),
            removing: parking_lot::Mutex::default(),
            dir: options.dir.clone(),
            in_a_cluster: std::sync::atomic::AtomicBool::new(was_member || options.recover_alone),
        });
        runtime_ref.spawn(crate::net::serve(listener, Arc::clone(&shared)));
        runtime_ref.spawn(crate::members::retire(Arc::clone(&shared)));
        runtime_ref.spawn(crate::snapshot::compact_after_type_ends(shared.raft.clone(), type_ends, on_disc));
        runtime_ref.spawn(crate::liveness::watch_leader(Arc::clone(&shared), db.clone()));
        runtime_ref.spawn(crate::placed::fill_copies(Arc::clone(&shared), db.clone()));
        runtime_ref.spawn(crate::liveness::watch_peers(
            shared.raft.clone(),
            shared.dialer.clone(),
            options.heartbeat,
        ));
        let reporting = Arc::downgrade(&shared);
        db.report_cluster_with(move || Some(reporting.upgrade()?.report()));
        db.order_commits_with(crate::sequencer::ClusterSequencer::new(
            Arc::clone(&shared),
            runtime_ref.handle(),
            options.write_timeout,
        ));
        Ok(Node { shared, addr, runtime: runtime.0.take() })
    }

    /// The address the node listens on.
    ///
    /// ```no_run
    /// # let node: mnesia_cluster::Node = unimplemented!();
    /// println!("{}", node.local_addr());
    /// ```
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Forms a new cluster of `members` (node id and address, this node among them): call
    /// it on one node, once. The nodes elect a leader among themselves.
    ///
    /// ```no_run
    /// # let (a, b): (mnesia_cluster::Node, mnesia_cluster::Node) = unimplemented!();
    /// a.initialize([(1, a.local_addr()), (2, b.local_addr())])?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn initialize(&self, members: impl IntoIterator<Item = (u64, SocketAddr)>) -> Result<()> {
        let mut listed: BTreeMap<u64, SocketAddr> = BTreeMap::new();
        for (id, addr) in members {
            if listed.contains_key(&id) {
                return Err(Error::Invalid(format!("forming the cluster: node {id} is listed twice")));
            }
            if let Some((other, _)) = listed.iter().find(|(_, a)| **a == addr) {
                return Err(Error::Invalid(format!(
                    "forming the cluster: nodes {other} and {id} are both at {addr}"
                )));
            }
            if addr.ip().is_unspecified() || addr.port() == 0 {
                return Err(Error::Invalid(format!(
                    "forming the cluster: node {id} is listed at {addr}, which the others cannot send to: give the address they reach it at"
                )));
            }
            listed.insert(id, addr);
        }
        if !listed.contains_key(&self.shared.id) {
            return Err(Error::Invalid(format!(
                "forming the cluster: this node ({}) is not among the members listed",
                self.shared.id
            )));
        }
        // (The others would send to the address given: a node listed elsewhere than it
        // listens leads nodes that cannot reach it.)
        if let Some(given) = listed.get(&self.shared.id).copied()
            && !reaches(given, self.addr)
        {
            return Err(Error::Invalid(format!(
                "forming the cluster: this node ({}) is listed at {given}, and listens on {}",
                self.shared.id, self.addr
            )));
        }
        let members: BTreeMap<u64, BasicNode> =
            listed.into_iter().map(|(id, addr)| (id, BasicNode { addr: addr.to_string() })).collect();
        let raft = &self.shared.raft;
        self.block_on(raft.initialize(members)).map_err(|e| match e {
            RaftError::APIError(openraft::error::InitializeError::NotAllowed(_)) => Error::Invalid(
                "forming the cluster: this node is in one already (its log holds members): a cluster is formed once, on a new node".into(),
            ),
            e => Error::Invalid(format!("forming the cluster: {e}")),
        })?;
        // Once its members are known here (a write at once said it was in no cluster yet).
        let _ = self.block_on(raft.wait(Some(Duration::from_secs(2))).metrics(has_members, "the members"));
        Ok(())
    }

    /// What this node knows of the cluster.
    ///
    /// ```no_run
    /// # let node: mnesia_cluster::Node = unimplemented!();
    /// assert_eq!(node.status().node, 1);
    /// ```
    pub fn status(&self) -> Status {
        let m = self.shared.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        Status {
            node: self.shared.id,
            leader: self.shared.led_by(&m),
            term: m.current_term,
            last_applied: m.last_applied.map_or(0, |l| l.index),
            members: membership.voter_ids().collect(),
            learners: membership.learner_ids().collect(),
            // (A node removed but still running keeps asking: not a member that is up.)
            up: self
                .shared
                .dialer
                .liveness
                .up()
                .into_iter()
                .filter(|n| membership.get_node(n).is_some())
                .collect(),
            no_member: self.shared.left.get().cloned(),
            snapshot: m.snapshot.map(|l| l.index),
            purged: m.purged.map(|l| l.index),
        }
    }

    /// Waits until this node's database holds every commit decided before the call, as the
    /// leader confirms with a majority (Raft's read index): a read made on this node
    /// afterwards sees every write acknowledged anywhere in the cluster before the call.
    /// Reads without it answer at once from this node's copy, possibly stale. Fails with
    /// [`Error::NoMajority`] when, within `timeout`, no leader confirmed the index with a
    /// majority or this node did not apply the log that far.
    ///
    /// ```no_run
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct Account { #[key] id: u32, balance: i64 }
    /// # let (db, node): (Database, mnesia_cluster::Node) = unimplemented!();
    /// node.sync_reads(std::time::Duration::from_secs(5))?;
    /// let current = db.scope(|| Account::read(&1))?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn sync_reads(&self, timeout: Duration) -> Result<()> {
        let shared = Arc::clone(&self.shared);
        self.block_on(async move { shared.current(timeout).await })
    }

    /// Waits until the node knows a leader, and returns it.
    ///
    /// ```no_run
    /// # let node: mnesia_cluster::Node = unimplemented!();
    /// let leader = node.wait_for_leader(std::time::Duration::from_secs(5))?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn wait_for_leader(&self, timeout: Duration) -> Result<u64> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(leader) = self.status().leader {
                return Ok(leader);
            }
            if Instant::now() >= deadline {
                return Err(Error::NoMajority { waited: timeout });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Runs `f` on the node's runtime, on its own.
    pub(crate) fn spawn<F>(&self, f: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match &self.runtime {
            Some(rt) => rt.spawn(f),
            None => unreachable!("the runtime lives as long as the node"),
        }
    }

    pub(crate) fn block_on<F>(&self, f: F) -> F::Output
    where
        F: std::future::Future + Send,
        F::Output: Send,
    {
        match &self.runtime {
            Some(rt) => block_on_outside(rt, f),
            None => unreachable!("the runtime lives as long as the node"),
        }
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("id", &self.shared.id).field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Drop for Node {
    /// Stops the node and closes its port, waiting for its tasks (3 s at most; dropped in
    /// async code, the wait runs on a thread of its own, still holding the caller's). The
    /// node no longer holds its database, nor the database the node. The database's writing commits then fail with
    /// [`Error::Closed`] until [`Database::stop_ordering`] lets it commit on its own; a
    /// commit that was on its way when the node stopped fails with it too, its fate unknown
    /// (the other nodes may still order it, as after [`Error::NoMajority`]).
    fn drop(&mut self) {
        self.shared.holds.end_all();
        // A write to the directory tried again (a full disc) gives up: Raft can stop.
        self.shared.writes.iter().for_each(|w| w.stop());
        if let Some(rt) = self.runtime.take() {
            let raft = self.shared.raft.clone();
            let stop = move || {
                let _ = rt.block_on(async move {
                    tokio::time::timeout(Duration::from_secs(2), raft.shutdown()).await
                });
                rt.shutdown_timeout(Duration::from_secs(1));
            };
            outside_async(stop);
        }
        // The database's own reaper again (its commits fail until the ordering stops).
        let db = self.shared.dialer.liveness.database();
        db.set_reaping(true);
        db.stop_reporting_cluster();
    }
}

/// A random number for a node's life.
fn life() -> Result<u64> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| Error::Internal(format!("no random numbers: {e}")))?;
    Ok(u64::from_le_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn from(vars: &[(&str, &str)]) -> Result<Options> {
        let vars: HashMap<String, String> =
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Options::from_vars(|k| vars.get(k).cloned())
    }

    #[test]
    fn options_from_variables_name_what_is_missing_or_malformed() {
        let refused = |vars: &[(&str, &str)], named: &str| match from(vars) {
            Err(Error::Invalid(why)) => assert!(why.contains(named), "{why}"),
            other => panic!("{other:?}"),
        };
        refused(&[], "MNESIA_NODE_ID");
        refused(&[("MNESIA_NODE_ID", "1")], "MNESIA_COOKIE");
        refused(&[("MNESIA_NODE_ID", "1"), ("MNESIA_COOKIE", "")], "empty");
        // One variable malformed beside a good id and cookie: named.
        for (var, value) in [
            ("MNESIA_LISTEN", "nowhere"),
            ("MNESIA_WRITE_TIMEOUT_MS", "-1"),
            ("MNESIA_WRITE_TIMEOUT_MS", "0"),
            ("MNESIA_RAFT_DIR", " "),
            ("MNESIA_TLS_NAME", "x"),
            ("MNESIA_WORKER_THREADS", "many"),
        ] {
            refused(&[("MNESIA_NODE_ID", "1"), ("MNESIA_COOKIE", "c"), (var, value)], var);
        }
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("cookie");
        std::fs::write(&file, "from a file\n").expect("write");
        let options = from(&[
            ("MNESIA_NODE_ID", " 7 "),
            ("MNESIA_COOKIE_FILE", file.to_str().expect("path")),
            ("MNESIA_RAFT_DIR", "/tmp/raft"),
            ("MNESIA_WORKER_THREADS", "1"),
        ])
        .expect("options");
        assert_eq!((options.node_id(), options.workers), (7, 1));
        assert_eq!(&*options.cookie, b"from a file");
        assert_eq!(options.dir.as_deref(), Some(std::path::Path::new("/tmp/raft")));
        let missing = from(&[("MNESIA_NODE_ID", "1"), ("MNESIA_COOKIE_FILE", "/nonexistent/cookie")]);
        assert!(
            matches!(&missing, Err(e @ Error::Io { .. }) if e.to_string().contains("MNESIA_COOKIE_FILE")),
            "{missing:?}"
        );
        // TLS: all three files or none.
        refused(
            &[("MNESIA_NODE_ID", "1"), ("MNESIA_COOKIE", "c"), ("MNESIA_TLS_CERT", "node.pem")],
            "MNESIA_TLS_KEY and MNESIA_TLS_CA",
        );
        let tls = |cert: &str| {
            from(&[
                ("MNESIA_NODE_ID", "1"),
                ("MNESIA_COOKIE", "c"),
                ("MNESIA_TLS_CERT", cert),
                ("MNESIA_TLS_KEY", "/nonexistent/node.key"),
                ("MNESIA_TLS_CA", "/nonexistent/ca.pem"),
            ])
        };
        let outcome = tls("/nonexistent/node.pem");
        #[cfg(feature = "tls")]
        assert!(matches!(outcome, Err(Error::Io { .. })), "{outcome:?}");
        #[cfg(not(feature = "tls"))]
        assert!(matches!(outcome, Err(Error::Invalid(_))), "{outcome:?}");
    }
}
