//! Which peers answer and who leads, as this node sees it, told to its database's system
//! event subscribers ([`ClusterEvent`]). Every request to a peer and every request from one
//! is a sign of life or of its absence; a peer nothing came from for a heartbeat is pinged,
//! and one silent for `silence` is down.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mnesia_runtime::{ClusterEvent, Database};
use parking_lot::Mutex;

use crate::net::{Dialer, Peer, Request};
use crate::node::Shared;
use crate::raft::Types;

/// What this node last knew of a peer.
struct Seen {
    up: bool,
    heard: Instant,
}

/// The peers' liveness as this node sees it.
pub(crate) struct Liveness {
    db: Database,
    /// A peer silent this long is down.
    silence: Duration,
    peers: Mutex<HashMap<u64, Seen>>,
}

impl Liveness {
    pub(crate) fn new(db: Database, silence: Duration) -> Liveness {
        Liveness { db, silence, peers: Mutex::new(HashMap::new()) }
    }

    /// The node's database.
    pub(crate) fn database(&self) -> &Database {
        &self.db
    }

    /// Something came from `node`, or it answered.
    pub(crate) fn heard(&self, node: u64) {
        let mut peers = self.peers.lock();
        let seen = peers.entry(node).or_insert(Seen { up: false, heard: Instant::now() });
        seen.heard = Instant::now();
        if !seen.up {
            seen.up = true;
            drop(peers);
            self.db.report_cluster_event(ClusterEvent::NodeUp { node });
        }
    }

    /// A request to `node` failed.
    pub(crate) fn lost(&self, node: u64) {
        let mut peers = self.peers.lock();
        if let Some(seen) = peers.get_mut(&node)
            && seen.up
        {
            seen.up = false;
            drop(peers);
            self.db.report_cluster_event(ClusterEvent::NodeDown { node });
        }
    }

    /// Marks down the peers silent for too long.
    fn sweep(&self) {
        let now = Instant::now();
        let mut down = Vec::new();
        for (node, seen) in self.peers.lock().iter_mut() {
            if seen.up && now.duration_since(seen.heard) >= self.silence {
                seen.up = false;
                down.push(*node);
            }
        }
        for node in down {
            self.db.report_cluster_event(ClusterEvent::NodeDown { node });
        }
    }

    /// The peers that answer.
    pub(crate) fn up(&self) -> std::collections::BTreeSet<u64> {
        self.peers.lock().iter().filter(|(_, s)| s.up).map(|(n, _)| *n).collect()
    }

    /// Whether nothing came from `node` for `within` (or ever).
    fn quiet(&self, node: u64, within: Duration) -> bool {
        self.peers.lock().get(&node).is_none_or(|s| s.heard.elapsed() >= within)
    }
}

/// Pings the members nothing came from for a heartbeat, and sweeps the silent ones, until
/// the Raft stops.
pub(crate) async fn watch_peers(raft: openraft::Raft<Types>, dialer: Dialer, heartbeat: Duration) {
    let mut pingers: HashMap<u64, Peer> = HashMap::new();
    let mut tick = tokio::time::interval(heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let metrics = raft.metrics();
    let wait = (heartbeat * 2).max(Duration::from_millis(100));
    let liveness = &dialer.liveness;
    loop {
        tick.tick().await;
        if metrics.has_changed().is_err() {
            return;
        }
        let members: Vec<(u64, String)> = {
            let m = metrics.borrow();
            m.membership_config.membership().nodes().map(|(id, node)| (*id, node.addr.clone())).collect()
        };
        for (id, addr) in members {
            if id == dialer.me || !liveness.quiet(id, heartbeat) {
                continue;
            }
            let peer = pingers.entry(id).or_insert_with(|| dialer.peer(id, addr));
            // The answer (or its absence) is recorded by the call itself.
            let _ = peer.call(&Request::Ping, wait).await;
        }
        liveness.sweep();
    }
}

/// Tells the database of each change of leader this node learns of, and lets its reaper
/// run only while this node leads (its deletions reach every copy), until the Raft stops.
/// A leader no majority has answered for an election timeout knows no leader (see
/// `Shared::led_by`): looked at every half of one too.
///
/// (It watches the server's metrics, which change with the vote, the leader or the members
/// alone: the whole metrics change at every step of Raft's core, several times a commit,
/// and waking this task for each cost the commits' latency.)
pub(crate) async fn watch_leader(shared: Arc<Shared>, db: Database) {
    let raft = shared.raft.clone();
    let mut metrics = raft.server_metrics();
    let mut told: Option<Option<u64>> = None;
    let mut tick = tokio::time::interval(shared.lease / 2);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let (leader, term) = {
            let m = raft.metrics();
            let m = m.borrow();
            (shared.led_by(&m), m.vote.leader_id().get_term())
        };
        if told != Some(leader) {
            told = Some(leader);
            db.set_reaping(leader == Some(shared.id));
            db.report_cluster_event(ClusterEvent::LeaderChanged { leader, term });
        }
        tokio::select! {
            changed = metrics.changed() => if changed.is_err() { return },
            _ = tick.tick() => {}
        }
    }
}
