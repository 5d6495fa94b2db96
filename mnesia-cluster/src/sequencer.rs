//! The sequencer that sends a database's commits through the cluster's log, gathering the
//! commits proposed on this node while its earlier entries are on their way into one entry.
//!
//! A log entry costs the same whether it carries one commit or forty: the leader appends it
//! (and syncs, with a log on disc), sends it to every follower, waits for a majority, and a
//! follower's commit makes a round trip to the leader first. A node keeps a few entries of
//! its own on their way at once ([`IN_FLIGHT`]); the commits proposed meanwhile wait, and
//! leave together in the next entry. One writer alone waits for no one: its commit leaves
//! at once, in an entry of its own.

use std::sync::{Arc, Weak};
use std::time::Duration;

use mnesia_runtime::{CommitRecord, Error, OrderFuture, Result, Sequencer};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Instant;

use crate::node::{Shared, Unordered};
use crate::raft::{Batch, Proposal, ProposalId, Verdict};

/// The largest commit record the cluster orders, and the most an entry gathers (encoded;
/// one record alone may fill an entry): with at most [`crate::node::PAYLOAD_ENTRIES`]
/// entries in one append, an append stays well under a frame's limit.
const MAX_PROPOSAL: usize = 512 << 10;

/// Commits one entry gathers at most.
const MAX_GATHERED: usize = 256;

/// Entries of this node's commits on their way at once: more lets the leader's Raft take
/// the next one while the last is replicated; fewer makes each carry more commits. (The
/// leader's Raft appends one entry at a time, synced with a log on disc: with 32 writers
/// over three nodes, 2 gave 9,400-10,800 commits a second on disc and 33,100-37,700 in
/// memory, where 4 gave 7,300-8,600 and 31,500-33,700, and 1 fewer in memory.)
const IN_FLIGHT: usize = 2;

/// How long a commit that the cluster has decided waits for this node to apply it.
const APPLY_WAIT: Duration = Duration::from_secs(300);

/// What became of a proposal.
enum Outcome {
    /// Decided, and applied here: its place in the database's order (0: it had been
    /// applied before) and its verdict.
    Decided(u64, Verdict),
    /// This node's Raft stopped (the node stops, or its log failed) while the proposal was
    /// on its way: why. Its fate is unknown: the others may still order it.
    Stopped(String),
    /// No majority within the time allowed.
    NoMajority,
    /// Not ordered: this node is no member of the cluster (why). Nothing was committed.
    NotMember(String),
    /// Decided by the cluster, but this node is no member any more (why): it will not
    /// apply it.
    MadeElsewhere(String),
    /// Decided, but this node did not apply it in time (it stopped, or fell behind).
    NotApplied,
    /// What should not happen did.
    Bug(String),
}

/// A commit waiting to leave.
struct Pending {
    proposal: Proposal,
    /// Its record's encoded size.
    bytes: usize,
    /// When its writer stops waiting for a majority.
    deadline: Instant,
    reply: Box<dyn FnOnce(Outcome) + Send>,
}

/// Sends a database's commits through the cluster's log.
pub(crate) struct ClusterSequencer {
    /// Held weakly: the database holds its sequencer, and the node's parts hold the
    /// database (a strong reference would keep both alive once the `Node` is dropped, and
    /// the database's directory locked).
    shared: Weak<Shared>,
    /// The commits waiting to leave, for [`gather`] (which ends when the sequencer is
    /// dropped).
    queue: mpsc::UnboundedSender<Pending>,
    handle: tokio::runtime::Handle,
    timeout: Duration,
}

impl ClusterSequencer {
    /// The sequencer of the node `shared`, running on `handle`; a commit without a majority
    /// within `timeout` fails with [`Error::NoMajority`].
    pub(crate) fn new(shared: Arc<Shared>, handle: &tokio::runtime::Handle, timeout: Duration) -> Self {
        let (queue, waiting) = mpsc::unbounded_channel();
        handle.spawn(gather(Arc::clone(&shared), waiting));
        ClusterSequencer { shared: Arc::downgrade(&shared), queue, handle: handle.clone(), timeout }
    }

    /// The node, unless it was dropped.
    fn shared(&self) -> Result<Arc<Shared>> {
        self.shared.upgrade().ok_or_else(|| Error::Closed {
            what: "the cluster node (it has stopped: the commit was not sent)".into(),
        })
    }

    /// Proposes `record` through the cluster; `reply` is given what became of it.
    fn start(&self, record: CommitRecord, reply: impl FnOnce(Outcome) + Send + 'static) -> Result<()> {
        // (Counted, not written out.)
        let bytes = postcard::experimental::serialized_size(&record).unwrap_or(usize::MAX);
        if bytes > MAX_PROPOSAL {
            return Err(Error::TooLarge {
                what: format!(
                    "a commit of {bytes} bytes; a cluster orders commits of at most {MAX_PROPOSAL} bytes"
                ),
            });
        }
        let shared = &self.shared()?;
        if let Some(why) = shared.left.get() {
            return Err(not_member(why));
        }
        // (Else it would wait its timeout for a majority that no one asks.)
        if !shared.in_a_cluster() {
            return Err(Error::Closed {
                what: "this cluster node for writes (it is in no cluster yet: initialize it, or join one; the commit was not made)".into(),
            });
        }
        let n = shared.proposals.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Counted on its way until answered (or dropped): holds wait for it (`holds.rs`).
        let on_its_way = OnItsWay::new(shared, &record);
        let proposal = Proposal { id: ProposalId { node: shared.id, life: shared.life, n }, record };
        let deadline = Instant::now() + self.timeout;
        let reply = Box::new(move |outcome| {
            drop(on_its_way);
            reply(outcome);
        });
        // Refused only once the node's runtime is gone: the commit was not sent.
        self.queue.send(Pending { proposal, bytes, deadline, reply }).map_err(|_| Error::Closed {
            what: "the cluster node (it has stopped: the commit was not sent)".into(),
        })
    }
}

/// Takes the commits from `waiting` as they come, and sends them in entries: each entry the
/// commits that waited while [`IN_FLIGHT`] entries were on their way (those whose time ran
/// out meanwhile are answered [`Outcome::NoMajority`] and not sent).
async fn gather(shared: Arc<Shared>, mut waiting: mpsc::UnboundedReceiver<Pending>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut next = None;
    loop {
        let first = match next.take() {
            Some(first) => first,
            None => match waiting.recv().await {
                Some(first) => first,
                None => return,
            },
        };
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else { return };
        let mut bytes = first.bytes;
        let mut gathered = vec![first];
        while gathered.len() < MAX_GATHERED {
            match waiting.try_recv() {
                Ok(more) if bytes + more.bytes <= MAX_PROPOSAL => {
                    bytes += more.bytes;
                    gathered.push(more);
                }
                Ok(more) => {
                    next = Some(more);
                    break;
                }
                Err(_) => break,
            }
        }
        let now = Instant::now();
        let (late, gathered): (Vec<Pending>, Vec<Pending>) =
            gathered.into_iter().partition(|p| p.deadline <= now);
        for p in late {
            (p.reply)(Outcome::NoMajority);
        }
        if !gathered.is_empty() {
            tokio::spawn(send(Arc::clone(&shared), gathered, slot));
        }
    }
}

/// Orders the commits `gathered` in one entry, and tells each what became of it: each
/// commit is given until its own deadline (one whose time runs out first is answered
/// [`Outcome::NoMajority`] then); `slot` is given back once the entry is decided.
async fn send(shared: Arc<Shared>, gathered: Vec<Pending>, slot: OwnedSemaphorePermit) {
    let latest = gathered.iter().map(|p| p.deadline).max().unwrap_or_else(Instant::now);
    let (proposals, mut replies): (Vec<Proposal>, Vec<_>) =
        gathered.into_iter().map(|p| (p.proposal, Some((p.deadline, p.reply)))).unzip();
    let proposing = tokio::time::timeout_at(latest, shared.propose(Batch(proposals)));
    tokio::pin!(proposing);
    let decided = loop {
        let first_due = replies.iter().flatten().map(|(due, _)| *due).min().unwrap_or(latest);
        tokio::select! {
            decided = &mut proposing => break decided,
            () = tokio::time::sleep_until(first_due) => {
                let now = Instant::now();
                for waiting in &mut replies {
                    if waiting.as_ref().is_some_and(|(due, _)| *due <= now)
                        && let Some((_, reply)) = waiting.take()
                    {
                        reply(Outcome::NoMajority);
                    }
                }
            }
        }
    };
    drop(slot);
    let outcomes: Vec<Outcome> = match decided {
        Err(_) => replies.iter().map(|_| Outcome::NoMajority).collect(),
        Ok(Err(Unordered::Stopped(why))) => replies.iter().map(|_| Outcome::Stopped(why.clone())).collect(),
        Ok(Err(Unordered::NotMember(why))) => {
            replies.iter().map(|_| Outcome::NotMember(why.clone())).collect()
        }
        // Answered once this node has applied the entry too, so that a read here sees the
        // commits (waiting longer than for the majority: they are decided).
        Ok(Ok((index, placed))) => {
            let mut applied = shared.applied.clone();
            // (A node that is no member any more will not get the entry.)
            let here = tokio::time::timeout(APPLY_WAIT, async {
                tokio::select! {
                    here = applied.wait_for(|a| *a >= index) => here.is_ok(),
                    () = shared.gone() => false,
                }
            })
            .await;
            let here = here == Ok(true) || *shared.applied.borrow() >= index;
            if placed.len() != replies.len() {
                let why = format!("{} verdicts for {} commits in one entry", placed.len(), replies.len());
                replies.iter().map(|_| Outcome::Bug(why.clone())).collect()
            } else if here {
                placed.into_iter().map(|p| Outcome::Decided(p.place, p.verdict)).collect()
            } else {
                // A commit that changed nothing (a conflict, a refusal) is answered as such.
                let left = shared.left.get();
                placed
                    .into_iter()
                    .map(|p| match (p.verdict, left) {
                        (Verdict::Committed, Some(why)) => Outcome::MadeElsewhere(why.clone()),
                        (Verdict::Committed, None) => Outcome::NotApplied,
                        (verdict, _) => Outcome::Decided(p.place, verdict),
                    })
                    .collect()
            }
        }
    };
    for (waiting, outcome) in replies.into_iter().zip(outcomes) {
        if let Some((_, reply)) = waiting {
            reply(outcome);
        }
    }
}

/// A commit of this node on its way, until dropped: the tables it writes.
struct OnItsWay(Arc<Shared>, Vec<u64>);

impl OnItsWay {
    fn new(shared: &Arc<Shared>, record: &CommitRecord) -> OnItsWay {
        let mut tables: Vec<u64> = record.tables().into_iter().map(crate::holds::table_hash).collect();
        tables.sort_unstable();
        tables.dedup();
        shared.holds.proposed(&tables);
        OnItsWay(Arc::clone(shared), tables)
    }
}

impl Drop for OnItsWay {
    fn drop(&mut self) {
        self.0.holds.answered(&self.1);
    }
}

/// Tables held on other members; released when dropped.
struct Held {
    shared: Arc<Shared>,
    handle: tokio::runtime::Handle,
    id: crate::holds::HoldId,
    members: Vec<u64>,
}

impl Drop for Held {
    fn drop(&mut self) {
        let (shared, id, members) = (Arc::clone(&self.shared), self.id, std::mem::take(&mut self.members));
        self.handle.spawn(async move { shared.release_elsewhere(id, members).await });
    }
}

/// The error of a commit not ordered because this node is no member (`why`): nothing was
/// committed.
fn not_member(why: &str) -> Error {
    Error::Closed { what: format!("this cluster node for writes ({why}; the commit was not made)") }
}

/// [`verdict`], whether the node is still there or not (only a refusal's details need it).
fn answered(shared: &Weak<Shared>, timeout: Duration, outcome: Option<Outcome>) -> Result<()> {
    verdict(shared.upgrade().as_deref(), timeout, outcome)
}

/// The verdict of a proposal from what became of it (`None`: the node stopped first).
fn verdict(shared: Option<&Shared>, timeout: Duration, outcome: Option<Outcome>) -> Result<()> {
    match outcome {
        Some(Outcome::Decided(_, Verdict::Committed)) => Ok(()),
        Some(Outcome::Decided(_, Verdict::Conflict)) => Err(Error::Conflict),
        // The same error this node met applying it, with its details.
        Some(Outcome::Decided(place, Verdict::Refused(why))) => {
            Err(shared.and_then(|s| s.refused.lock().remove(&place)).unwrap_or(Error::Invalid(why)))
        }
        Some(Outcome::Stopped(why)) => Err(Error::Closed {
            what: format!(
                "this cluster node (its Raft stopped: {why}; the commit was on its way: the others may still order it, its fate is unknown)"
            ),
        }),
        Some(Outcome::NoMajority) => Err(Error::NoMajority { waited: timeout }),
        Some(Outcome::NotMember(why)) => Err(not_member(&why)),
        Some(Outcome::MadeElsewhere(why)) => Err(Error::Closed {
            what: format!(
                "this cluster node ({why}; the cluster decided the commit, but this node will not apply it: read it on a member)"
            ),
        }),
        Some(Outcome::Bug(why)) => Err(Error::Internal(why)),
        Some(Outcome::NotApplied) => Err(Error::Closed {
            what: "this cluster node (a commit was decided but the node did not apply it)".into(),
        }),
        None => Err(Error::Closed {
            what: "the cluster node (it stopped while a commit was on its way: the others may still order it, its fate is unknown)"
                .into(),
        }),
    }
}

impl Sequencer for ClusterSequencer {
    fn order(&self, record: CommitRecord) -> Result<()> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.start(record, move |outcome| {
            let _ = tx.send(outcome);
        })?;
        answered(&self.shared, self.timeout, rx.recv().ok())
    }

    fn order_async(&self, record: CommitRecord) -> OrderFuture {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if let Err(e) = self.start(record, move |outcome| {
            let _ = tx.send(outcome);
        }) {
            return Box::pin(std::future::ready(Err(e)));
        }
        let (shared, timeout) = (self.shared.clone(), self.timeout);
        Box::pin(async move { answered(&shared, timeout, rx.await.ok()) })
    }

    /// Asks the other members to hold `tables` for this node's transaction with priority
    /// (see `holds.rs`); the guard releases them.
    fn hold_elsewhere(&self, tables: &[&str], patience: Duration) -> Box<dyn Send> {
        let Ok(shared) = self.shared() else { return Box::new(()) };
        let held_by = Arc::clone(&shared);
        let tables = tables.iter().map(|t| (*t).to_owned()).collect();
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = tx.send(shared.hold_elsewhere(tables, patience).await);
        });
        match rx.recv() {
            Ok((id, members)) if !members.is_empty() => {
                Box::new(Held { shared: Arc::clone(&held_by), handle: self.handle.clone(), id, members })
            }
            _ => Box::new(()),
        }
    }

    /// Reads on a member holding the table's records (see `placed.rs`).
    fn read_elsewhere(&self, table: &str, key: &[u8]) -> Result<Vec<Vec<u8>>> {
        let shared = self.shared()?;
        let (table, key) = (table.to_owned(), key.to_vec());
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = tx.send(shared.read_elsewhere(table, key).await);
        });
        rx.recv().map_err(|_| Error::Closed { what: "the cluster node".into() })?
    }

    /// Waits until this node holds every entry decided before the call.
    fn catch_up(&self, timeout: Duration) -> Result<()> {
        let shared = self.shared()?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = tx.send(shared.current(timeout).await);
        });
        rx.recv().map_err(|_| Error::Closed { what: "the cluster node".into() })?
    }

    /// Waits until every other member this node sees up has applied as far as this node
    /// (each given the write timeout).
    fn sync(&self) -> Result<()> {
        let shared = self.shared()?;
        let index = shared.applied_here();
        let timeout = self.timeout;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            shared.synced_everywhere(index, tokio::time::Instant::now() + timeout).await;
            let _ = tx.send(());
        });
        rx.recv().map_err(|_| Error::Closed { what: "the cluster node".into() })
    }
}
