//! Tables held on the other nodes for a transaction with priority on this one.
//!
//! A transaction that keeps losing escalates: it closes the tables it touched to this
//! node's writers (the runtime's gates), and through [`ClusterSequencer::hold_elsewhere`]
//! asks every other member to close them to theirs ([`Request::Hold`]); each takes its
//! database's priority for it ([`Database::hold_tables`](mnesia_runtime::Database::hold_tables))
//! until the transaction's attempt ends ([`Request::Release`], sent to every member asked)
//! or twice its patience has passed (the asker died, or the release was lost). A member
//! answers once it holds them and its own commits to them that were on their way are
//! decided, with how far it has applied the log; the asker waits until it has applied as
//! far, so that none of those commits lands under the transaction. Best effort, within
//! [`HOLD_WAIT`] at each step: a member that cannot take its priority in that time holds
//! nothing, and no verdict depends on a hold (the log alone decides every commit); a hold
//! only keeps the other members' writers from proposing while the transaction runs.
//!
//! [`ClusterSequencer::hold_elsewhere`]: crate::sequencer::ClusterSequencer

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::net::{Request, Response};
use crate::node::Shared;

/// How long a member works on a hold before it answers (taking its priority, which a
/// transaction of its own may hold; its commits on their way), and how long the asker
/// waits to have applied what the members had decided.
pub(crate) const HOLD_WAIT: Duration = Duration::from_millis(100);

/// How long the asker waits for a member's answer (a connection opened first included).
const ANSWER_WAIT: Duration = Duration::from_millis(300);

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

/// A node's holds: those it keeps for others (each ended by dropping its sender), its
/// connections for asking, and its commits on their way (what a hold waits for).
#[derive(Default)]
pub(crate) struct Holds {
    kept: parking_lot::Mutex<Kept>,
    links: crate::net::MemberLinks,
    next: std::sync::atomic::AtomicU64,
    /// This node's commits proposed and not yet answered, by table (its name's hash).
    on_their_way: parking_lot::Mutex<HashMap<u64, usize>>,
    /// Told when a table's last commit on its way is answered.
    answered: tokio::sync::Notify,
}

/// The holds kept for other members, and whether the node stopped (no new one then).
#[derive(Default)]
struct Kept {
    holds: HashMap<(u64, HoldId), std::sync::mpsc::Sender<()>>,
    stopped: bool,
}

/// A table's name as [`Holds`] counts it.
pub(crate) fn table_hash(name: &str) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault};
    BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(name)
}

impl Holds {
    /// Ends every hold kept for others, and takes no new one (the node stops).
    pub(crate) fn end_all(&self) {
        let mut kept = self.kept.lock();
        kept.stopped = true;
        kept.holds.clear();
    }

    /// A commit of this node writing `tables` leaves.
    pub(crate) fn proposed(&self, tables: &[u64]) {
        let mut counts = self.on_their_way.lock();
        for t in tables {
            *counts.entry(*t).or_default() += 1;
        }
    }

    /// A commit of this node writing `tables` was answered.
    pub(crate) fn answered(&self, tables: &[u64]) {
        let mut counts = self.on_their_way.lock();
        let mut none_left = false;
        for t in tables {
            if let Some(n) = counts.get_mut(t) {
                *n -= 1;
                if *n == 0 {
                    counts.remove(t);
                    none_left = true;
                }
            }
        }
        drop(counts);
        if none_left {
            self.answered.notify_waiters();
        }
    }

    /// Waits until none of this node's commits writing `tables` is on its way, until
    /// `deadline` at most.
    async fn drained(&self, tables: &[u64], deadline: tokio::time::Instant) {
        loop {
            let notified = self.answered.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !tables.iter().any(|t| self.on_their_way.lock().contains_key(t)) {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return;
            }
        }
    }
}

impl Shared {
    /// Asks every other member it sees up to hold `tables` (see the module's comment), and
    /// waits until this node's own commits to them on their way are decided and it has
    /// applied what the members had; returns the hold's id and the members asked.
    pub(crate) async fn hold_elsewhere(
        self: &Arc<Self>,
        tables: Vec<String>,
        patience: Duration,
    ) -> (HoldId, Vec<u64>) {
        let id =
            HoldId { life: self.life, n: self.holds.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) };
        let hashes: Vec<u64> = tables.iter().map(|t| table_hash(t)).collect();
        let request = Arc::new(Request::Hold(Hold {
            id,
            tables,
            patience_ms: u64::try_from(patience.as_millis()).unwrap_or(u64::MAX),
        }));
        let members = self.other_members();
        let asked: Vec<u64> = members.iter().map(|(member, _)| *member).collect();
        let mut asking = tokio::task::JoinSet::new();
        for (member, addr) in members {
            let (shared, request) = (Arc::clone(self), Arc::clone(&request));
            asking.spawn(async move {
                let link = shared.holds.links.to(member, &addr);
                let mut peer = link.lock().await;
                let peer = peer.get_or_insert_with(|| shared.dialer.peer(member, addr));
                // (Not told to the liveness: a slow answer here is no sign of a node down.)
                match peer.exchange(&request, ANSWER_WAIT).await {
                    Ok(Response::Held(Some(applied))) => Some(applied),
                    _ => None,
                }
            });
        }
        let drained = self.holds.drained(&hashes, tokio::time::Instant::now() + HOLD_WAIT);
        let mut decided = 0;
        while let Some(answer) = asking.join_next().await {
            if let Ok(Some(applied)) = answer {
                decided = decided.max(applied);
            }
        }
        drained.await;
        let mut applied = self.applied.clone();
        let until = tokio::time::Instant::now() + HOLD_WAIT;
        let _ = tokio::time::timeout_at(until, applied.wait_for(|a| *a >= decided)).await;
        (id, asked)
    }

    /// Tells `members` to end hold `id` (those that did not take it, or already ended it,
    /// have nothing to end).
    pub(crate) async fn release_elsewhere(self: &Arc<Self>, id: HoldId, members: Vec<u64>) {
        let addrs: BTreeMap<u64, String> = self.other_members().into_iter().collect();
        for member in members {
            let Some(addr) = addrs.get(&member) else { continue };
            let link = self.holds.links.to(member, addr);
            let mut peer = link.lock().await;
            let peer = peer.get_or_insert_with(|| self.dialer.peer(member, addr.clone()));
            // (Lost: the hold ends with its time.)
            let _ = peer.exchange(&Request::Release(id), ANSWER_WAIT).await;
        }
    }

    /// Holds the tables `hold` names for member `from` (see the module's comment): once
    /// they are held and this node's commits to them on their way before are decided, the
    /// index of the log this node has applied (`None`: not held).
    pub(crate) async fn hold_here(&self, from: u64, hold: Hold) -> Option<u64> {
        let deadline = tokio::time::Instant::now() + HOLD_WAIT;
        let db = self.dialer.liveness.database().clone();
        let patience = Duration::from_millis(hold.patience_ms);
        let hashes: Vec<u64> = hold.tables.iter().map(|t| table_hash(t)).collect();
        let (end, ended) = std::sync::mpsc::channel::<()>();
        let (answer, answered) = tokio::sync::oneshot::channel();
        let key = (from, hold.id);
        {
            let mut kept = self.holds.kept.lock();
            if kept.stopped {
                return None;
            }
            // A member's transactions take its priority one at a time: a new hold of
            // its ends the ones before (whose release may still be on its way).
            kept.holds.retain(|(member, _), _| *member != from);
            kept.holds.insert(key, end);
        }
        let holds = Arc::clone(&self.holds);
        // On a thread of its own: the priority's holder is a thread, and waits.
        tokio::task::spawn_blocking(move || {
            let names: Vec<&str> = hold.tables.iter().map(String::as_str).collect();
            let wait = deadline.saturating_duration_since(tokio::time::Instant::now());
            let held = db.hold_tables(&names, patience, wait);
            // Held until released (the sender dropped), twice the patience, or at once if
            // no one waits for the answer any more.
            if answer.send(held.is_some()).is_ok() && held.is_some() {
                let _ = ended.recv_timeout(patience.saturating_mul(2));
            }
            drop(held);
            holds.kept.lock().holds.remove(&key);
        });
        if !answered.await.unwrap_or(false) {
            return None;
        }
        self.holds.drained(&hashes, deadline).await;
        Some(self.applied_here())
    }

    /// Ends the hold `id` kept for member `from`.
    pub(crate) fn release_here(&self, from: u64, id: HoldId) {
        self.holds.kept.lock().holds.remove(&(from, id));
    }

    /// The other members this node sees up, with their addresses.
    pub(crate) fn other_members(&self) -> Vec<(u64, String)> {
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
