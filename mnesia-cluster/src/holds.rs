//! Tables held on the other nodes for a transaction with priority on this one.
//!
//! A transaction that keeps losing escalates: it closes the tables it touched to this
//! node's writers (the runtime's gates), and through [`ClusterSequencer::hold_elsewhere`]
//! asks every other member to close them to theirs ([`Request::Hold`]); each takes its
//! database's priority for it ([`Database::hold_tables`](mnesia_runtime::Database::hold_tables))
//! until the transaction's attempt ends ([`Request::Release`]) or twice its patience has
//! passed (the asker died, or the release was lost). Best effort: a member that does not
//! answer within [`HOLD_WAIT`] holds nothing, and no verdict depends on a hold (the log
//! alone decides every commit); a hold only keeps the other writers from proposing while
//! the transaction runs, so that its reads stay current.
//!
//! [`ClusterSequencer::hold_elsewhere`]: crate::sequencer::ClusterSequencer

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::net::{Peer, Request, Response};
use crate::node::Shared;

/// How long a member waits to take its priority for another's hold (a transaction of its
/// own may hold it), and about how long the asker waits for the answers.
pub(crate) const HOLD_WAIT: Duration = Duration::from_millis(100);

/// A hold's name: the asking node's life and the hold's number in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct HoldId {
    life: u64,
    n: u64,
}

/// What [`Request::Hold`] asks.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Hold {
    pub(crate) id: HoldId,
    /// The tables, by name.
    pub(crate) tables: Vec<String>,
    /// How long a writer waits at a closed table at most, each time.
    pub(crate) patience_ms: u64,
}

/// A connection to one member and the address it was opened to.
type Link = (String, Arc<tokio::sync::Mutex<Option<Peer>>>);

/// A node's holds: those it keeps for others (each ended by dropping its sender), its
/// connections for asking, and its commits on their way (what a hold waits for).
#[derive(Default)]
pub(crate) struct Holds {
    kept: parking_lot::Mutex<HashMap<(u64, HoldId), std::sync::mpsc::Sender<()>>>,
    links: parking_lot::Mutex<BTreeMap<u64, Link>>,
    next: std::sync::atomic::AtomicU64,
    /// This node's commits proposed and not yet answered.
    on_their_way: std::sync::atomic::AtomicUsize,
    /// Told when the last of them is answered.
    none_on_their_way: tokio::sync::Notify,
}

impl Holds {
    /// Ends every hold kept for others (the node stops).
    pub(crate) fn end_all(&self) {
        self.kept.lock().clear();
    }

    /// A commit of this node leaves.
    pub(crate) fn proposed(&self) {
        self.on_their_way.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// A commit of this node was answered.
    pub(crate) fn answered(&self) {
        if self.on_their_way.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) == 1 {
            self.none_on_their_way.notify_waiters();
        }
    }

    /// Waits until none of this node's commits is on its way, until `deadline` at most
    /// (under writes to other tables there may always be some).
    async fn drained(&self, deadline: tokio::time::Instant) {
        loop {
            let notified = self.none_on_their_way.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.on_their_way.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return;
            }
        }
    }
}

impl Shared {
    /// Asks every other member to hold `tables` (see the module's comment); returns the hold's
    /// id and the members that hold them.
    pub(crate) async fn hold_elsewhere(
        self: &Arc<Self>,
        tables: Vec<String>,
        patience: Duration,
    ) -> (HoldId, Vec<u64>) {
        let id =
            HoldId { life: self.life, n: self.holds.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) };
        let request = Arc::new(Request::Hold(Hold {
            id,
            tables,
            patience_ms: u64::try_from(patience.as_millis()).unwrap_or(u64::MAX),
        }));
        let mut asking = tokio::task::JoinSet::new();
        for (member, addr) in self.other_members() {
            let (shared, request) = (Arc::clone(self), Arc::clone(&request));
            asking.spawn(async move {
                let link = shared.hold_link(member, &addr);
                let mut peer = link.lock().await;
                let peer = peer.get_or_insert_with(|| shared.dialer.peer(member, addr));
                // (Not told to the liveness: a slow answer here is no sign of a node down.)
                match peer.exchange(&request, HOLD_WAIT * 2).await {
                    Ok(Response::Held(Some(applied))) => Some((member, applied)),
                    _ => None,
                }
            });
        }
        let mut held = Vec::new();
        let mut decided = 0;
        while let Some(answer) = asking.join_next().await {
            if let Ok(Some((member, applied))) = answer {
                held.push(member);
                decided = decided.max(applied);
            }
        }
        // This node's own commits on their way before its gates closed, and every commit
        // the others had on theirs: applied here before the transaction runs again, so
        // that none lands under it.
        let deadline = tokio::time::Instant::now() + HOLD_WAIT;
        self.holds.drained(deadline).await;
        let mut applied = self.applied.clone();
        let _ = tokio::time::timeout_at(deadline, applied.wait_for(|a| *a >= decided)).await;
        (id, held)
    }

    /// Tells `members` that hold `id` to end it.
    pub(crate) async fn release_elsewhere(self: &Arc<Self>, id: HoldId, members: Vec<u64>) {
        let addrs: BTreeMap<u64, String> = self.other_members().into_iter().collect();
        for member in members {
            let Some(addr) = addrs.get(&member) else { continue };
            let link = self.hold_link(member, addr);
            let mut peer = link.lock().await;
            let peer = peer.get_or_insert_with(|| self.dialer.peer(member, addr.clone()));
            // (Lost: the hold ends with its time.)
            let _ = peer.exchange(&Request::Release(id), HOLD_WAIT * 2).await;
        }
    }

    /// Holds the tables `hold` names for member `from` (see the module's comment): once
    /// they are held and this node's commits on their way before are decided, the index
    /// of the log this node has applied (`None`: not held).
    pub(crate) async fn hold_here(&self, from: u64, hold: Hold) -> Option<u64> {
        let db = self.dialer.liveness.database().clone();
        let patience = Duration::from_millis(hold.patience_ms);
        let (end, ended) = std::sync::mpsc::channel::<()>();
        let (answer, answered) = tokio::sync::oneshot::channel();
        let key = (from, hold.id);
        {
            // A member's transactions take its priority one at a time: a new hold of
            // its ends the ones before (whose release may still be on its way).
            let mut kept = self.holds.kept.lock();
            kept.retain(|(member, _), _| *member != from);
            kept.insert(key, end);
        }
        let shared_holds = Arc::clone(&self.holds);
        // On a thread of its own: the priority's holder is a thread, and waits.
        tokio::task::spawn_blocking(move || {
            let names: Vec<&str> = hold.tables.iter().map(String::as_str).collect();
            let held = db.hold_tables(&names, patience, HOLD_WAIT).ok().flatten();
            let _ = answer.send(held.is_some());
            if held.is_some() {
                // Until released (the sender dropped) or twice the patience.
                let _ = ended.recv_timeout(patience.saturating_mul(2));
            }
            drop(held);
            shared_holds.kept.lock().remove(&key);
        });
        if !answered.await.unwrap_or(false) {
            return None;
        }
        self.holds.drained(tokio::time::Instant::now() + HOLD_WAIT).await;
        Some(self.applied_here())
    }

    /// Ends the hold `id` kept for member `from`.
    pub(crate) fn release_here(&self, from: u64, id: HoldId) {
        self.holds.kept.lock().remove(&(from, id));
    }

    /// The connection used for holds to `member` at `addr`.
    fn hold_link(&self, member: u64, addr: &str) -> Arc<tokio::sync::Mutex<Option<Peer>>> {
        let mut links = self.holds.links.lock();
        let link = links.entry(member).or_insert_with(|| (String::new(), Arc::default()));
        if link.0 != addr {
            // A new member under this id, or one that moved: a new connection.
            *link = (addr.to_owned(), Arc::new(tokio::sync::Mutex::new(None)));
        }
        Arc::clone(&link.1)
    }

    /// The other members this node sees up, with their addresses.
    fn other_members(&self) -> Vec<(u64, String)> {
        let up = self.dialer.liveness.up();
        let metrics = self.raft.server_metrics();
        let m = metrics.borrow();
        m.membership_config
            .membership()
            .nodes()
            .filter(|(id, _)| **id != self.id && up.contains(id))
            .map(|(id, node)| (*id, node.addr.clone()))
            .collect()
    }
}
