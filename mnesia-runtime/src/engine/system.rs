//! System events (`db.subscribe_system()`): tables created and dropped, checkpoints, and an
//! overloaded commit log, as Mnesia's `subscribe(system)` tells them.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::base::broadcast::{Notice, Reader, Ring};
use crate::schema::record::StorageType;

/// An event of the database as a whole.
///
/// ```
/// use mnesia::prelude::*;
/// use mnesia::SystemEvent;
///
/// #[derive(Table, Clone, Debug, Serialize, Deserialize)]
/// struct Item { #[key] id: u32 }
///
/// let db = Database::in_memory()?;
/// let events = db.subscribe_system();
/// db.create_table::<Item>(TableOptions::new())?;
/// db.drop_table::<Item>()?;
/// assert_eq!(
///     events.try_recv(),
///     Some(SystemEvent::TableCreated { table: "item".into(), storage: StorageType::RamCopies })
/// );
/// assert_eq!(events.try_recv(), Some(SystemEvent::TableDropped { table: "item".into() }));
/// # Ok::<(), mnesia::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SystemEvent {
    /// A table was created.
    TableCreated {
        /// Its name.
        table: String,
        /// Where it lives.
        storage: StorageType,
    },
    /// A table was dropped.
    TableDropped {
        /// Its name.
        table: String,
    },
    /// A checkpoint folded the commit log into table snapshots.
    CheckpointDone {
        /// The last commit it includes.
        seq: u64,
    },
    /// The commit log has grown past twice the checkpoint threshold: checkpoints do not keep
    /// up with the writers (Mnesia's `mnesia_overload`). Told at most once a second.
    Overload {
        /// Bytes of log since the last checkpoint.
        log_bytes: u64,
    },
    /// Writing or syncing the commit log failed (a full disc, a failing device). Until it
    /// is repaired, commits fail with the I/O error under `Immediate` durability; under
    /// `Relaxed` and `None` the commits already acknowledged are held in memory and new
    /// ones are refused with `Error::LogUnavailable`. Every flush and commit tries again.
    /// Told once per failure, not per failed commit.
    LogFailed {
        /// The operating system's kind of the failure (`StorageFull` for a full disc).
        kind: std::io::ErrorKind,
        /// The error, in words (with the file).
        reason: String,
    },
    /// The commit log works again after [`SystemEvent::LogFailed`]: what it holds is
    /// durable.
    LogRecovered,
    /// A change in the cluster this database's node belongs to, as the node sees it
    /// (`mnesia::cluster`).
    Cluster(ClusterEvent),
    /// The subscriber fell too far behind: this many events were dropped here.
    Lagged {
        /// How many events were dropped.
        missed: u64,
    },
}

/// A change in a cluster as one node sees it: told to that node's database by the
/// replication layer (the facade's `cluster` feature) through
/// [`Database::report_cluster_event`](crate::Database::report_cluster_event), and to its
/// system event subscribers as [`SystemEvent::Cluster`].
///
/// ```
/// use mnesia::prelude::*;
/// use mnesia::{ClusterEvent, SystemEvent};
///
/// let db = Database::in_memory()?;
/// let events = db.subscribe_system();
/// db.report_cluster_event(ClusterEvent::NodeDown { node: 3 });
/// assert_eq!(events.try_recv(), Some(SystemEvent::Cluster(ClusterEvent::NodeDown { node: 3 })));
/// # Ok::<(), mnesia::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClusterEvent {
    /// Another node answers (first contact, or again after [`ClusterEvent::NodeDown`]).
    NodeUp {
        /// Its id.
        node: u64,
    },
    /// Another node stopped answering: a request to it failed, or nothing came from it for
    /// several heartbeats.
    NodeDown {
        /// Its id.
        node: u64,
    },
    /// The node learned of another leader, or of none (an election is under way).
    LeaderChanged {
        /// The leader's id, `None` while there is none.
        leader: Option<u64>,
        /// The Raft term.
        term: u64,
    },
    /// Writing the node's Raft log (or a snapshot its leader sent) to its directory failed
    /// (a full disc, a failing device). The node's Raft waits and tries again until the
    /// write succeeds: meanwhile the node orders nothing and answers no other node (its
    /// writes fail once its write timeout passes), a leader loses its lead to the others,
    /// and the others go on without it. Told once per failure (of the log, or of a snapshot
    /// the leader sent, each on its own: the reason says which).
    LogFailed {
        /// The operating system's kind of the failure (`StorageFull` for a full disc).
        kind: std::io::ErrorKind,
        /// The error, in words.
        reason: String,
    },
    /// The node's Raft log is written again after [`ClusterEvent::LogFailed`]: the node goes
    /// on from where it stopped, and catches up with the others.
    LogRecovered,
}

impl Notice for SystemEvent {
    fn lagged(missed: u64) -> Self {
        SystemEvent::Lagged { missed }
    }
}

/// What a cluster node reports of its cluster, in [`SystemInfo`](crate::SystemInfo)
/// (see [`Database::report_cluster_with`](crate::Database::report_cluster_with)).
///
/// ```
/// use mnesia::{ClusterInfo, ClusterMember};
/// let info = ClusterInfo::new(1, Some(2), 3, 40, vec![ClusterMember::new(2, "127.0.0.1:4371", true)]);
/// assert_eq!((info.leader, info.members[0].up), (Some(2), true));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct ClusterInfo {
    /// This node's id.
    pub node: u64,
    /// The leader, if one is known.
    pub leader: Option<u64>,
    /// The current term.
    pub term: u64,
    /// The index of the last log entry applied here.
    pub last_applied: u64,
    /// The members, this node among them.
    pub members: Vec<ClusterMember>,
}

impl ClusterInfo {
    /// A report: this node, the leader, the term, the last entry applied, the members.
    ///
    /// ```
    /// let info = mnesia::ClusterInfo::new(1, None, 0, 0, Vec::new());
    /// assert_eq!(info.node, 1);
    /// ```
    pub fn new(
        node: u64,
        leader: Option<u64>,
        term: u64,
        last_applied: u64,
        members: Vec<ClusterMember>,
    ) -> Self {
        ClusterInfo { node, leader, term, last_applied, members }
    }
}

/// One member of a cluster, in a [`ClusterInfo`].
///
/// ```
/// let member = mnesia::ClusterMember::new(2, "127.0.0.1:4371", false);
/// assert_eq!(member.to_string(), "2@127.0.0.1:4371");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct ClusterMember {
    /// Its id.
    pub id: u64,
    /// The address it listens on.
    pub addr: String,
    /// Whether it answers this node (this node itself: always).
    pub up: bool,
    /// Whether it votes: `false` for a learner (a node joining, sent the log until it has
    /// caught up, or one that never did).
    pub voter: bool,
    /// How many entries of the leader's log it does not hold yet, as far as the leader
    /// knows (0 for the leader itself). Known on the leader only: `None` in the report of
    /// another node.
    pub behind: Option<u64>,
}

impl ClusterMember {
    /// A member: its id, its address, whether it answers.
    ///
    /// ```
    /// assert!(mnesia::ClusterMember::new(1, "127.0.0.1:4370", true).up);
    /// ```
    pub fn new(id: u64, addr: impl Into<String>, up: bool) -> Self {
        ClusterMember { id, addr: addr.into(), up, voter: true, behind: None }
    }

    /// The member as a learner: it does not vote (see
    /// [`ClusterMember::voter`](ClusterMember#structfield.voter)).
    ///
    /// ```
    /// let member = mnesia::ClusterMember::new(4, "127.0.0.1:4373", true).learner();
    /// assert!(!member.voter);
    /// ```
    pub fn learner(mut self) -> Self {
        self.voter = false;
        self
    }

    /// The member, with how many entries of the leader's log it lacks (see
    /// [`ClusterMember::behind`](ClusterMember#structfield.behind)).
    ///
    /// ```
    /// let member = mnesia::ClusterMember::new(2, "127.0.0.1:4371", true).with_behind(3);
    /// assert_eq!(member.behind, Some(3));
    /// ```
    pub fn with_behind(mut self, entries: u64) -> Self {
        self.behind = Some(entries);
        self
    }
}

impl fmt::Display for ClusterMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.id, self.addr)
    }
}

/// What a database asks for its cluster's report.
type ClusterReporter = Box<dyn Fn() -> Option<ClusterInfo> + Send + Sync>;

/// The system event subscribers of a database, and who reports its cluster.
#[derive(Default)]
pub(crate) struct SystemHub {
    ring: Arc<Ring<SystemEvent>>,
    last_overload: parking_lot::Mutex<Option<Instant>>,
    cluster: arc_swap::ArcSwapOption<ClusterReporter>,
}

impl SystemHub {
    pub(crate) fn publish(&self, event: SystemEvent) {
        if self.ring.has_readers() {
            self.ring.append(Arc::from([event]));
        }
    }

    /// Tells of an overloaded log, at most once a second.
    pub(crate) fn overload(&self, log_bytes: u64) {
        let mut last = self.last_overload.lock();
        if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            return;
        }
        *last = Some(Instant::now());
        drop(last);
        self.publish(SystemEvent::Overload { log_bytes });
    }

    /// Tells of the commit log failing or recovering.
    pub(crate) fn log_health(&self, health: crate::disk::wal::Health) {
        self.publish(match health {
            crate::disk::wal::Health::Failed { kind, reason } => SystemEvent::LogFailed { kind, reason },
            crate::disk::wal::Health::Recovered => SystemEvent::LogRecovered,
        });
    }

    pub(crate) fn report_cluster_with(&self, report: ClusterReporter) {
        self.cluster.store(Some(Arc::new(report)));
    }

    pub(crate) fn stop_reporting_cluster(&self) {
        self.cluster.store(None);
    }

    /// The cluster's report, when a cluster node reports one.
    pub(crate) fn cluster(&self) -> Option<ClusterInfo> {
        self.cluster.load().as_deref().and_then(|report| report())
    }

    pub(crate) fn add(&self, capacity: usize) -> SystemSubscription {
        SystemSubscription { reader: self.ring.subscribe(capacity) }
    }
}

/// A subscription to a database's [`SystemEvent`]s: a blocking iterator with
/// `recv_timeout` and `try_recv`, bounded like a table's (`Config::event_buffer`, then a
/// `Lagged` notice). Dropping it unsubscribes.
///
/// ```
/// let db = mnesia::Database::in_memory()?;
/// let events = db.subscribe_system();
/// assert!(events.try_recv().is_none());
/// # Ok::<(), mnesia::Error>(())
/// ```
pub struct SystemSubscription {
    reader: Reader<SystemEvent>,
}

impl fmt::Debug for SystemSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SystemSubscription").finish_non_exhaustive()
    }
}

impl SystemSubscription {
    /// The next event, waiting for one.
    ///
    /// ```no_run
    /// let db = mnesia::Database::in_memory()?;
    /// let events = db.subscribe_system();
    /// let _next = events.recv();
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn recv(&self) -> SystemEvent {
        self.reader.recv()
    }

    /// The next event, waiting at most `timeout`.
    ///
    /// ```
    /// let db = mnesia::Database::in_memory()?;
    /// let events = db.subscribe_system();
    /// assert!(events.recv_timeout(std::time::Duration::from_millis(1)).is_none());
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn recv_timeout(&self, timeout: Duration) -> Option<SystemEvent> {
        self.reader.take(Some(timeout), true)
    }

    /// The next event if one is waiting.
    ///
    /// ```
    /// let db = mnesia::Database::in_memory()?;
    /// assert!(db.subscribe_system().try_recv().is_none());
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn try_recv(&self) -> Option<SystemEvent> {
        self.reader.take(None, false)
    }
}

impl Iterator for SystemSubscription {
    type Item = SystemEvent;

    /// Waits for the next event (the iteration does not end by itself).
    fn next(&mut self) -> Option<SystemEvent> {
        Some(self.recv())
    }
}

/// With the `tokio` feature, a system subscription is also a stream of events.
#[cfg(feature = "tokio")]
impl futures_core::Stream for SystemSubscription {
    type Item = SystemEvent;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<SystemEvent>> {
        self.reader.poll(cx)
    }
}
