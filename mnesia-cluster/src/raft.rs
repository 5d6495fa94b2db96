//! The Raft side: the types openraft orders, the log it keeps, and the state machine that
//! applies each commit record to the node's database.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::RangeBounds;
use std::sync::Arc;

use mnesia_runtime::{CommitRecord, Database, Error};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, RaftLogReader, RaftSnapshotBuilder, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership, Vote,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::faults::Disc;
use crate::log_file::{LogFile, LogOp};
use crate::snapshot::{Body, Saved, SnapshotBytes};
use crate::writes::Writes;

openraft::declare_raft_types!(
    /// The types of the cluster's Raft.
    pub(crate) Types:
        D = Batch,
        R = Vec<Placed>,
        NodeId = u64,
        Node = BasicNode,
        Entry = Entry<Types>,
        SnapshotData = SnapshotBytes,
);

/// A commit record as the log holds it, with the id of its proposal: a record proposed
/// again (the answer to the first proposal was lost with a leader or a connection) is
/// applied once, and the second answer is the first one's.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Proposal {
    pub(crate) id: ProposalId,
    pub(crate) record: CommitRecord,
}

/// The proposals one log entry holds, applied in their order: a node gathers the commits
/// proposed while its earlier entries are on their way into one entry, so that many commits
/// share the cost of an entry (its append, its replication, its round trips).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Batch(pub(crate) Vec<Proposal>);

/// A proposal's place in the database's order (0 for one applied before, at its first
/// place) and its verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Placed {
    pub(crate) place: u64,
    pub(crate) verdict: Verdict,
}

/// Who proposed a record: the node, that node's life (a random number drawn when it
/// starts), and the proposal's number in that life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct ProposalId {
    pub(crate) node: u64,
    pub(crate) life: u64,
    pub(crate) n: u64,
}

/// How many log entries back a proposal is recognised when proposed again (far more than
/// a commit's time allowed: `Options::write_timeout`) ...
const SEEN_WINDOW: u64 = 100_000;

/// ... and how many proposals at most (an entry holds many: this bounds the memory and the
/// snapshots; at 30,000 commits a second, more than six seconds of them).
const SEEN_PROPOSALS: usize = 200_000;

/// What applying a commit record decided, the same on every node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum Verdict {
    /// Applied.
    Committed,
    /// What it read was overwritten first: run the transaction again.
    Conflict,
    /// Refused alike everywhere (a unique value taken, ...): the error, in words.
    Refused(String),
}

/// The log, with the vote, as Raft sees it.
#[derive(Default)]
struct LogInner {
    entries: BTreeMap<u64, Entry<Types>>,
    last_purged: Option<LogId<u64>>,
    vote: Option<Vote<u64>>,
    committed: Option<LogId<u64>>,
    /// Where every change is written first, when the log is durable.
    file: Option<LogFile>,
    /// The directory's lock, held while the log is (see `log_file::claim`).
    _lock: Option<std::fs::File>,
}

impl LogInner {
    /// Writes `op` to the file, if any, then makes it to the log in memory; gives `op` back
    /// with the error when the file could not be written (the log unchanged).
    fn change(&mut self, op: LogOp) -> Result<(), (LogOp, std::io::Error)> {
        if let Some(file) = &mut self.file {
            // (A sync: off the runtime's async work.)
            if let Err(e) = tokio::task::block_in_place(|| file.write(&op)) {
                return Err((op, e));
            }
        }
        let purged = matches!(op, LogOp::Purge(_));
        self.apply(op);
        if purged && let Some(file) = &mut self.file {
            // The entries purged leave the file too (once per snapshot).
            let mut state: Vec<LogOp> = self.vote.map(LogOp::Vote).into_iter().collect();
            state.push(LogOp::Committed(self.committed));
            state.extend(self.last_purged.map(LogOp::Purge));
            // (Not rewritten: the file keeps the entries, after a record of the purge.)
            let _rewritten = tokio::task::block_in_place(|| file.rewrite(&state, self.entries.values()));
        }
        Ok(())
    }

    fn apply(&mut self, op: LogOp) {
        match op {
            LogOp::Append(entries) => {
                for e in entries {
                    self.entries.insert(e.log_id.index, e);
                }
            }
            LogOp::Vote(v) => self.vote = Some(v),
            LogOp::Committed(c) => self.committed = c,
            LogOp::Truncate(from) => {
                self.entries.split_off(&from);
            }
            LogOp::Purge(upto) => {
                self.entries = self.entries.split_off(&(upto.index + 1));
                self.last_purged = Some(upto);
            }
        }
    }
}

/// The Raft log of a node, shared with its readers.
#[derive(Clone, Default)]
pub(crate) struct LogStore {
    inner: Arc<parking_lot::Mutex<LogInner>>,
    /// How its writes fare (they are tried again until they succeed).
    writes: Arc<Writes>,
    /// For a log on disc, how many entries the snapshot in the directory holds (the log's
    /// first is entry 0; 0: there is none): the entries after them are never purged, whatever snapshot Raft holds in memory (one that could
    /// not be written, the disc full), so that the node can start again from its directory.
    on_disc: Option<Arc<std::sync::atomic::AtomicU64>>,
}

impl LogStore {
    /// The log kept in `dir` on `disc`, as the node left it, its writes faring as `writes`
    /// tells; `lock` (the directory's, see `log_file::claim`) is held as long as the log.
    pub(crate) fn open(
        dir: &std::path::Path,
        disc: Disc,
        writes: Arc<Writes>,
        lock: Option<std::fs::File>,
    ) -> std::io::Result<LogStore> {
        let (file, ops) = LogFile::open(dir, disc)?;
        let mut inner = LogInner { _lock: lock, ..LogInner::default() };
        for op in ops {
            inner.apply(op);
        }
        inner.file = Some(file);
        Ok(LogStore {
            inner: Arc::new(parking_lot::Mutex::new(inner)),
            writes,
            on_disc: Some(Arc::default()),
        })
    }

    /// Readies the log of a node starting from its directory's snapshot, which holds the
    /// entries up to `upto`: when the log does not hold that entry (the snapshot was sent
    /// by the leader: Raft purged the log up to it at once, before the snapshot was on
    /// disc, so the log kept what it held before, and a gap), the entries up to it go, and
    /// the log starts after it. Fails when the entries after it are not all there.
    pub(crate) fn start_after(&self, upto: LogId<u64>) -> std::io::Result<()> {
        let mut inner = self.inner.lock();
        if inner.entries.get(&upto.index).map(|e| e.log_id) != Some(upto)
            && inner.last_purged.is_none_or(|p| p.index < upto.index)
        {
            inner.change(LogOp::Purge(upto)).map_err(|(_, e)| e)?;
        }
        // The entries after it, one after the other (a node stopped while it retried writing
        // a snapshot its leader sent may hold later ones, with a gap before them).
        let mut next = upto.index + 1;
        for index in inner.entries.keys() {
            if *index > next {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "the Raft log lacks the entries {next} to {} after its snapshot: start the node on an empty directory to be sent the cluster's state",
                        index - 1
                    ),
                ));
            }
            next = index + 1;
        }
        Ok(())
    }

    /// Makes this log's node, `id`, the only member of its cluster, at `addr` (see
    /// `Options::recover_alone`): a vote for itself in a term after any the log knows, and
    /// after the last entry, one that gives the cluster this node alone as its members,
    /// both written (synced) before Raft reads the log. Raft takes the members of the last
    /// such entry of its log, committed or not: the node elects itself, and its first
    /// entry as leader commits every entry of its log. `Err` (why) when the log holds none
    /// (the node was never in a cluster).
    pub(crate) fn recover_alone(&self, id: u64, addr: std::net::SocketAddr) -> Result<LogId<u64>, String> {
        let mut inner = self.inner.lock();
        let last = inner
            .entries
            .values()
            .next_back()
            .map(|e| e.log_id)
            .or(inner.last_purged)
            .ok_or("its Raft log holds nothing: it was never in a cluster")?;
        let term = inner.vote.map_or(0, |v| v.leader_id().term).max(last.leader_id.term) + 1;
        let log_id = LogId::new(openraft::CommittedLeaderId::new(term, id), last.index + 1);
        let alone = openraft::Membership::new(
            vec![std::collections::BTreeSet::from([id])],
            BTreeMap::from([(id, BasicNode { addr: addr.to_string() })]),
        );
        let entry = Entry { log_id, payload: EntryPayload::Membership(alone) };
        inner.change(LogOp::Vote(Vote::new(term, id))).map_err(|(_, e)| e.to_string())?;
        inner.change(LogOp::Append(vec![entry])).map_err(|(_, e)| e.to_string())?;
        Ok(log_id)
    }

    /// Makes `op` to the log, written to its file first: a write that fails (a full disc)
    /// is tried again until it succeeds, Raft waiting meanwhile (see `writes.rs`), unless
    /// the node stops. Only the committed point, a hint that the leader tells again, is
    /// not: it is dropped.
    // (The error type is openraft's, as every storage method returns it.)
    #[allow(clippy::result_large_err)]
    async fn change(&self, op: LogOp) -> Result<(), StorageError<u64>> {
        if let LogOp::Committed(_) = op {
            // (Not told as a failure: nothing tries it again, so nothing would tell the
            // recovery, and a node whose writes fail refuses Raft's requests.)
            if let Err((_, e)) = self.inner.lock().change(op) {
                tracing::debug!(target: "mnesia::cluster", error = %e, "the committed point was not written");
            }
            return Ok(());
        }
        let mut op = Some(op);
        self.writes
            .until_done("the Raft log", || {
                let next = op.take().ok_or_else(|| std::io::Error::other("the log's change was lost"))?;
                self.inner.lock().change(next).map_err(|(back, e)| {
                    op = Some(back);
                    e
                })
            })
            .await
            .map_err(|e| StorageError::IO { source: StorageIOError::write_logs(&e) })
    }

    /// For a log on disc, where to tell it how many entries the directory's snapshot holds.
    pub(crate) fn snapshot_on_disc(&self) -> Option<Arc<std::sync::atomic::AtomicU64>> {
        self.on_disc.clone()
    }

    /// The last membership entry this log holds, if it holds one: its index and members.
    pub(crate) fn last_membership(&self) -> Option<(u64, openraft::Membership<u64, BasicNode>)> {
        let inner = self.inner.lock();
        inner.entries.values().rev().find_map(|e| match &e.payload {
            openraft::EntryPayload::Membership(m) => Some((e.log_id.index, m.clone())),
            _ => None,
        })
    }
}

impl RaftLogReader<Types> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<Types>>, StorageError<u64>> {
        Ok(self.inner.lock().entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<Types> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<Types>, StorageError<u64>> {
        let inner = self.inner.lock();
        let last = inner.entries.values().next_back().map(|e| e.log_id).or(inner.last_purged);
        Ok(LogState { last_purged_log_id: inner.last_purged, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError<u64>> {
        self.change(LogOp::Vote(*vote)).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError<u64>> {
        Ok(self.inner.lock().vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId<u64>>) -> Result<(), StorageError<u64>> {
        self.change(LogOp::Committed(committed)).await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, StorageError<u64>> {
        Ok(self.inner.lock().committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<Types>) -> Result<(), StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<Types>> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry<Types>> = entries.into_iter().collect();
        let result = self.change(LogOp::Append(entries)).await;
        callback
            .log_io_completed(result.as_ref().map(|_| ()).map_err(|e| std::io::Error::other(e.to_string())));
        result
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        self.change(LogOp::Truncate(log_id.index)).await
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        let Some(upto) = self.purged_up_to(log_id) else { return Ok(()) };
        self.change(LogOp::Purge(upto)).await
    }
}

impl LogStore {
    /// Up to which entry a purge that Raft asks up to `log_id` goes, if anything is purged.
    fn purged_up_to(&self, log_id: LogId<u64>) -> Option<LogId<u64>> {
        let inner = self.inner.lock();
        let upto = match &self.on_disc {
            Some(on_disc) => {
                let held = on_disc.load(std::sync::atomic::Ordering::Acquire);
                if log_id.index < held {
                    log_id
                } else {
                    // Raft purges after a snapshot the directory does not hold: only the
                    // entries the one there does (the rest go with the next one written).
                    // (Also on every snapshot a leader sends, purged before it is written:
                    // not worth a warning; one that cannot be written is told apart.)
                    tracing::debug!(
                        target: "mnesia::cluster",
                        asked = log_id.index,
                        held,
                        "the log keeps the entries the snapshot on disc does not hold"
                    );
                    held.checked_sub(1).and_then(|last| inner.entries.get(&last))?.log_id
                }
            }
            None => log_id,
        };
        inner.last_purged.is_none_or(|p| p.index < upto.index).then_some(upto)
    }
}

/// The state machine: the node's database, fed each committed record in log order.
pub(crate) struct StateMachine {
    pub(crate) db: Database,
    /// Where the latest snapshot is kept, if the node has a directory, and where the log
    /// is told the last entry the one there holds.
    dir: Option<(std::path::PathBuf, Arc<std::sync::atomic::AtomicU64>)>,
    /// The directory's disc, and how writes to it fare (a snapshot the leader sent is
    /// written before anything else happens: tried until it is).
    disc: (Disc, Arc<Writes>),
    /// The latest snapshot built or installed here.
    current: Option<Saved>,
    last_applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, BasicNode>,
    /// The index of the last entry applied, for the commits waiting to see theirs here.
    applied: watch::Sender<u64>,
    /// The errors of this node's own records refused here, by their place, for their
    /// writers to take (the latest ones).
    refused: Arc<parking_lot::Mutex<BTreeMap<u64, Error>>>,
    /// This node's id and life: whose refused records' errors are kept.
    me: (u64, u64),
    /// The verdicts of the proposals applied in the last [`SEEN_WINDOW`] entries (at most
    /// [`SEEN_PROPOSALS`]), and their order (the same on every node: kept from the log
    /// alone).
    seen: std::collections::HashMap<ProposalId, Verdict>,
    seen_order: std::collections::VecDeque<(u64, ProposalId)>,
    /// The index of the last entry applied here that ended a table's record type (a
    /// transform, a drop): the log before it is compacted away (see
    /// `snapshot::compact_after_type_ends`).
    pub(crate) type_ends: watch::Sender<u64>,
}

/// How many refused records' errors are kept for their commits to take.
const REFUSED_KEPT: usize = 1024;

impl StateMachine {
    pub(crate) fn new(
        db: Database,
        dir: Option<(std::path::PathBuf, Arc<std::sync::atomic::AtomicU64>)>,
        applied: watch::Sender<u64>,
        refused: Arc<parking_lot::Mutex<BTreeMap<u64, Error>>>,
        me: (u64, u64),
        disc: (Disc, Arc<Writes>),
    ) -> StateMachine {
        StateMachine {
            db,
            dir,
            disc,
            current: None,
            last_applied: None,
            membership: StoredMembership::default(),
            applied,
            refused,
            me,
            seen: std::collections::HashMap::new(),
            seen_order: std::collections::VecDeque::new(),
            type_ends: watch::channel(0).0,
        }
    }
}

impl StateMachine {
    /// Applies one proposal of entry `id` at the database's next place, unless it was
    /// applied already (then its first verdict, place 0). The places are the same on every
    /// node: each applies the same proposals of the same entries, and tells the ones applied
    /// before from the log alone.
    #[allow(clippy::result_large_err)]
    fn apply_proposal(&mut self, id: LogId<u64>, proposal: Proposal) -> Result<Placed, StorageError<u64>> {
        if let Some(verdict) = self.seen.get(&proposal.id) {
            return Ok(Placed { place: 0, verdict: verdict.clone() });
        }
        let place = self.db.applied_index() + 1;
        // Records: on the runtime's worker, not handed off with `block_in_place` (which wakes
        // another thread for every entry: 32 writers committed 14-15k times a second with
        // it, 20k without, logs in memory). Applying one waits at most for the commit locks
        // another install here holds (transactions take them only to install, never while
        // their closure runs) and, for a disc table, for its log's sync; meanwhile the
        // runtime's other worker keeps the node's network and Raft going. A change to a table
        // as a whole may wait for a backup or a checkpoint of this node, or scan the table:
        // off the worker.
        let record = &proposal.record;
        // (So is every record while a copy here waits to be filled: applying may wait for
        // an image being loaded, see `placed.rs`.)
        let result = if record.changes_whole_table() || self.db.filling() {
            tokio::task::block_in_place(|| self.db.apply_ordered(place, record))
        } else {
            self.db.apply_ordered(place, record)
        };
        let verdict = match result {
            Ok(()) => Verdict::Committed,
            Err(Error::Conflict) => Verdict::Conflict,
            // This node's own trouble (its disc, a table or struct the others do not share):
            // the entry's place is still free, and the node cannot go on applying.
            Err(e) if self.db.applied_index() < place => {
                return Err(StorageError::IO {
                    source: StorageIOError::apply(id, openraft::AnyError::error(e.to_string())),
                });
            }
            Err(e) => {
                let verdict = Verdict::Refused(e.to_string());
                if (proposal.id.node, proposal.id.life) == self.me {
                    let mut refused = self.refused.lock();
                    refused.insert(place, e);
                    while refused.len() > REFUSED_KEPT {
                        refused.pop_first();
                    }
                }
                verdict
            }
        };
        if matches!(verdict, Verdict::Committed) && proposal.record.ends_record_type() {
            self.type_ends.send_if_modified(|at| std::mem::replace(at, id.index) < id.index);
        }
        self.seen.insert(proposal.id, verdict.clone());
        self.seen_order.push_back((id.index, proposal.id));
        while let Some((at, old)) = self.seen_order.front().copied() {
            if at.saturating_add(SEEN_WINDOW) > id.index && self.seen_order.len() <= SEEN_PROPOSALS {
                break;
            }
            self.seen.remove(&old);
            self.seen_order.pop_front();
        }
        Ok(Placed { place, verdict })
    }
}

impl RaftStateMachine<Types> for StateMachine {
    type SnapshotBuilder = Built;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), StorageError<u64>> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Vec<Placed>>, StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<Types>> + Send,
        I::IntoIter: Send,
    {
        let mut out = Vec::new();
        for entry in entries {
            let id = entry.log_id;
            let placed = match entry.payload {
                EntryPayload::Blank => Vec::new(),
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(id), m);
                    Vec::new()
                }
                EntryPayload::Normal(batch) => {
                    let mut placed = Vec::with_capacity(batch.0.len());
                    for proposal in batch.0 {
                        placed.push(self.apply_proposal(id, proposal)?);
                    }
                    placed
                }
            };
            self.last_applied = Some(id);
            self.applied.send_replace(id.index);
            out.push(placed);
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        Built(self.snapshot_now())
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<SnapshotBytes>, StorageError<u64>> {
        Ok(Box::new(SnapshotBytes::new(Arc::default())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<SnapshotBytes>,
    ) -> Result<(), StorageError<u64>> {
        let saved = Saved { meta: meta.clone(), data: snapshot.into_inner() };
        let machine = &mut *self;
        tokio::task::block_in_place(|| machine.restore(&saved))
            .map_err(|why| snapshot_error(Some(meta), why))?;
        // Kept on disc (a node that did not keep what it was sent could not start again: its
        // log no longer leads to its database), tried until it is written (a full disc),
        // unless the node stops. (openraft purges the log up to it at once, before it is
        // written: the log keeps what the snapshot on disc does not hold, and a gap, which
        // `LogStore::start_after` closes when the node starts again.)
        let writes = Arc::clone(&self.disc.1);
        writes.until_done("the snapshot sent by the leader", || self.save(&saved)).await.map_err(|e| {
            StorageError::IO { source: StorageIOError::write_snapshot(Some(saved.meta.signature()), &e) }
        })?;
        self.current = Some(saved);
        tracing::info!(
            target: "mnesia::cluster",
            last_index = meta.last_log_id.map_or(0, |l| l.index),
            "snapshot installed"
        );
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<Types>>, StorageError<u64>> {
        Ok(self.current.as_ref().map(|saved| Snapshot {
            meta: saved.meta.clone(),
            snapshot: Box::new(SnapshotBytes::new(Arc::clone(&saved.data))),
        }))
    }
}

/// A snapshot built when openraft asks for the builder (applying waits meanwhile: the
/// database's cut and the proposals' verdicts must be those of one log entry).
pub(crate) struct Built(Result<Snapshot<Types>, StorageError<u64>>);

impl RaftSnapshotBuilder<Types> for Built {
    async fn build_snapshot(&mut self) -> Result<Snapshot<Types>, StorageError<u64>> {
        std::mem::replace(&mut self.0, Err(snapshot_error(None, "built once".into())))
    }
}

/// A snapshot's error as openraft takes it.
fn snapshot_error(meta: Option<&SnapshotMeta<u64, BasicNode>>, why: String) -> StorageError<u64> {
    StorageError::IO {
        source: StorageIOError::read_snapshot(meta.map(|m| m.signature()), openraft::AnyError::error(why)),
    }
}

impl StateMachine {
    /// A snapshot of the database at the last entry applied, kept as the current one (and
    /// in the directory, before the log before it may go). One that cannot be written
    /// there (the disc full) is still the current one, sent to the nodes that need it; the
    /// log keeps the entries after the one written last, so that this node can start
    /// again from its directory.
    #[allow(clippy::result_large_err)]
    fn snapshot_now(&mut self) -> Result<Snapshot<Types>, StorageError<u64>> {
        let db = self.db.clone();
        let seen: Vec<_> = self
            .seen_order
            .iter()
            .filter_map(|(at, id)| Some((*at, *id, self.seen.get(id)?.clone())))
            .collect();
        let data = tokio::task::block_in_place(|| {
            crate::snapshot::body(&seen, |out| {
                db.write_ordered_snapshot(out).map(drop).map_err(|e| format!("snapshot of the database: {e}"))
            })
        })
        .map_err(|why| snapshot_error(None, why))?;
        let data = Arc::new(data);
        let snapshot_id = match self.last_applied {
            Some(l) => format!("{}-{}-{}", l.leader_id.term, l.index, std::process::id()),
            None => format!("0-0-{}", std::process::id()),
        };
        let meta = SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.membership.clone(),
            snapshot_id,
        };
        let saved = Saved { meta: meta.clone(), data };
        if let Err(e) = self.save(&saved) {
            tracing::warn!(
                target: "mnesia::cluster",
                last_index = self.last_applied.map_or(0, |l| l.index),
                error = %e,
                "a snapshot could not be written: the log keeps the entries after the last one written"
            );
        }
        self.current = Some(saved.clone());
        tracing::info!(
            target: "mnesia::cluster",
            last_index = self.last_applied.map_or(0, |l| l.index),
            bytes = saved.data.len(),
            "snapshot built"
        );
        Ok(Snapshot { meta, snapshot: Box::new(SnapshotBytes::new(saved.data)) })
    }

    /// Writes `saved` as the directory's snapshot, if the node has a directory, and tells
    /// the log that it may purge the entries it holds.
    fn save(&self, saved: &Saved) -> std::io::Result<()> {
        if let Some((dir, on_disc)) = &self.dir {
            tokio::task::block_in_place(|| crate::snapshot::save(dir, saved, &self.disc.0))?;
            self.saved_up_to(on_disc, saved);
        }
        Ok(())
    }

    fn saved_up_to(&self, on_disc: &std::sync::atomic::AtomicU64, saved: &Saved) {
        let held = saved.meta.last_log_id.map_or(0, |l| l.index + 1);
        on_disc.store(held, std::sync::atomic::Ordering::Release);
    }

    /// Starts from the snapshot a node kept in its directory.
    pub(crate) fn start_from(&mut self, saved: Saved) -> std::result::Result<(), String> {
        self.restore(&saved)?;
        if let Some((_, on_disc)) = &self.dir {
            self.saved_up_to(on_disc, &saved);
        }
        self.current = Some(saved);
        Ok(())
    }

    /// Replaces the database and what was applied by the snapshot `saved`.
    fn restore(&mut self, saved: &Saved) -> std::result::Result<(), String> {
        let body: Body<'_> =
            postcard::from_bytes(&saved.data).map_err(|e| format!("the snapshot does not decode: {e}"))?;
        self.db.load_ordered_snapshot(body.db).map_err(|e| format!("the snapshot's database: {e}"))?;
        self.seen.clear();
        self.seen_order.clear();
        for (at, id, verdict) in body.seen {
            self.seen.insert(id, verdict);
            self.seen_order.push_back((at, id));
        }
        self.last_applied = saved.meta.last_log_id;
        self.membership = saved.meta.last_membership.clone();
        self.applied.send_replace(self.last_applied.map_or(0, |l| l.index));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mnesia::prelude::*;

    #[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
    struct Item {
        #[key]
        id: u32,
        n: i64,
    }

    /// The record of writing `item` on a database of its own.
    fn record_of(item: Item) -> CommitRecord {
        let db = Database::in_memory().expect("db");
        db.create_table::<Item>(TableOptions::new()).expect("table");
        let (tx, rx) = std::sync::mpsc::channel();
        db.replicate_to(move |r: &CommitRecord| {
            let _ = tx.send(r.clone());
        });
        db.scope(|| Item::write(item)).expect("write");
        rx.try_recv().expect("a record")
    }

    /// A state machine (node 1, life 7) on a database with the table, and where it tells
    /// the index of the last entry applied.
    fn machine() -> (Database, StateMachine, watch::Receiver<u64>) {
        let db = Database::in_memory().expect("db");
        db.create_table::<Item>(TableOptions::new()).expect("table");
        let (applied, seen) = watch::channel(0);
        (
            db.clone(),
            StateMachine::new(db, None, applied, Arc::default(), (1, 7), (Disc::sound(), Arc::default())),
            seen,
        )
    }

    fn at(index: u64) -> LogId<u64> {
        LogId::new(openraft::CommittedLeaderId::new(1, 1), index)
    }

    #[test]
    fn a_proposal_made_twice_is_applied_once() {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().expect("runtime");
        rt.block_on(async {
            let (db, mut machine, _) = machine();
            let first = Proposal {
                id: ProposalId { node: 1, life: 7, n: 0 },
                record: record_of(Item { id: 1, n: 5 }),
            };
            assert_eq!(
                machine.apply_proposal(at(1), first.clone()).expect("apply").verdict,
                Verdict::Committed
            );
            // Another write in between, then the first proposal again (its answer was lost).
            let other = Proposal {
                id: ProposalId { node: 2, life: 7, n: 0 },
                record: record_of(Item { id: 1, n: 6 }),
            };
            assert_eq!(machine.apply_proposal(at(2), other).expect("apply").verdict, Verdict::Committed);
            assert_eq!(
                machine.apply_proposal(at(3), first.clone()).expect("apply"),
                Placed { place: 0, verdict: Verdict::Committed }
            );
            assert_eq!(db.applied_index(), 2, "not applied again, no place taken");
            assert_eq!(
                db.scope(|| Item::read(&1)).expect("read"),
                Some(Item { id: 1, n: 6 }),
                "not overwritten"
            );
            // Another life of the same node is another proposal.
            let again = Proposal { id: ProposalId { life: 8, ..first.id }, record: first.record };
            assert_eq!(machine.apply_proposal(at(4), again).expect("apply").verdict, Verdict::Committed);
            assert_eq!(db.applied_index(), 3, "the next place");
        });
    }

    #[test]
    fn the_proposals_of_an_entry_take_the_next_places_in_their_order() {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().expect("runtime");
        rt.block_on(async {
            let (db, mut machine, seen) = machine();
            let proposal =
                |n, item| Proposal { id: ProposalId { node: 1, life: 7, n }, record: record_of(item) };
            let entry = |index, proposals: Vec<Proposal>| Entry::<Types> {
                log_id: at(index),
                payload: EntryPayload::Normal(Batch(proposals)),
            };
            let blank = Entry::<Types> { log_id: at(1), payload: EntryPayload::Blank };
            let first = proposal(0, Item { id: 1, n: 1 });
            let out = machine
                .apply([
                    blank,
                    entry(2, vec![first.clone(), proposal(1, Item { id: 2, n: 2 })]),
                    entry(
                        3,
                        vec![proposal(2, Item { id: 1, n: 3 }), first, proposal(3, Item { id: 3, n: 4 })],
                    ),
                ])
                .await
                .expect("apply");
            let places: Vec<Vec<u64>> = out.iter().map(|e| e.iter().map(|p| p.place).collect()).collect();
            assert_eq!(
                places,
                [vec![], vec![1, 2], vec![3, 0, 4]],
                "a blank takes no place, a proposal again none"
            );
            assert!(out.iter().flatten().all(|p| p.verdict == Verdict::Committed));
            assert_eq!(db.applied_index(), 4);
            assert_eq!(*seen.borrow(), 3, "the log's index");
            assert_eq!(
                db.scope(|| Item::read(&1)).expect("read"),
                Some(Item { id: 1, n: 3 }),
                "not applied again"
            );
        });
    }

    /// A log holding entries from before a snapshot the leader sent, then (after a gap)
    /// those after it, starts after the snapshot; one with a gap after the snapshot is
    /// refused, saying so.
    #[test]
    fn a_log_starts_after_its_snapshot_and_a_gap_after_it_is_refused() {
        let entries = |indexes: &[u64]| -> Vec<Entry<Types>> {
            indexes.iter().map(|i| Entry { log_id: at(*i), payload: EntryPayload::Blank }).collect()
        };
        let log = |indexes: &[u64]| {
            let dir = tempfile::tempdir().expect("dir");
            {
                let (mut file, _) = LogFile::open(dir.path(), Disc::sound()).expect("open");
                file.write(&LogOp::Append(entries(indexes))).expect("append");
            }
            let store = LogStore::open(dir.path(), Disc::sound(), Arc::default(), None).expect("log");
            (dir, store)
        };
        let (dir, store) = log(&[1, 2, 3, 6, 7, 8]);
        store.start_after(at(5)).expect("the gap is below the snapshot");
        assert_eq!(store.inner.lock().entries.keys().copied().collect::<Vec<_>>(), vec![6, 7, 8]);
        assert_eq!(store.inner.lock().last_purged, Some(at(5)));
        drop(store);
        let reopened = LogStore::open(dir.path(), Disc::sound(), Arc::default(), None).expect("reopen");
        assert_eq!(
            reopened.inner.lock().entries.keys().copied().collect::<Vec<_>>(),
            vec![6, 7, 8],
            "on disc"
        );
        let (_dir, store) = log(&[1, 2, 3, 7, 8]);
        let refused = store.start_after(at(5)).expect_err("entry 6 is missing");
        assert!(refused.to_string().contains("lacks the entries 6 to 6"), "{refused}");
        let (_dir, store) = log(&[1, 2, 3, 6, 8]);
        assert!(store.start_after(at(5)).is_err(), "entry 7 is missing");
    }
}
