//! The cluster's members changing while it runs: a node joins through any member (it is
//! added as a learner, catches up from the log or a snapshot, then asks to vote), and a
//! member is removed (it left, or it is gone for good). Each change is a Raft membership change
//! decided by a majority (openraft's joint consensus), made by the leader wherever it is
//! asked.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mnesia_runtime::{Error, RecordShape, Result};
use openraft::error::{ClientWriteError, ForwardToLeader, RaftError};
use openraft::{BasicNode, ChangeMembers};
use serde::{Deserialize, Serialize};

use crate::net::{Request, Response};
use crate::node::{Node, Shared};
use crate::wire::WireError;

/// A change to the cluster's members.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum Change {
    /// Node `id`, listening at `addr`, with these tables: a learner, answered once it has
    /// caught up.
    Learn { id: u64, addr: String, tables: Vec<TableShape> },
    /// The learner `id` a voter: asked by the learner itself once it has caught up, so
    /// that a node that died meanwhile stays a learner (which no majority counts) instead
    /// of becoming a voter that never answers.
    Vote { id: u64 },
    /// Node `id` no longer a member, asked by node `by` (itself when it leaves).
    Remove { id: u64, by: u64 },
}

type ChangeError = RaftError<u64, ClientWriteError<u64, BasicNode>>;

/// A node being removed, in its leader's [`Shared::removing`] until dropped.
struct Removing<'a>(&'a Shared, u64);

impl<'a> Removing<'a> {
    fn new(shared: &'a Shared, id: u64) -> Removing<'a> {
        shared.removing.lock().insert(id);
        Removing(shared, id)
    }
}

impl Drop for Removing<'_> {
    fn drop(&mut self) {
        self.0.removing.lock().remove(&self.1);
    }
}

/// Why node `id` is no member, removed as node `by` asked.
pub(crate) fn removed_why(id: u64, by: u64) -> String {
    if by == id {
        format!("node {id} left the cluster")
    } else {
        format!("node {by} removed it from the cluster")
    }
}

/// How long a leader takes at most to confirm that it leads before it tells a node calling
/// for votes that it is no member (see [`Shared::removed_candidate`]).
const CONFIRM_LEAD: Duration = Duration::from_secs(1);

/// Why node `node` is no member, as node `by` (a leader) says it.
pub(crate) fn counted_out(node: u64, by: u64) -> String {
    format!("node {node} left the cluster or was removed from it: node {by} counts it no member")
}

/// Stops the node's Raft once it is no member of the cluster (it left, was removed, or the
/// leader answered its call for votes that it is not: see [`Shared::removed_candidate`]),
/// so that a node removed while it was down, started again on its directory, does not
/// campaign for ever. Its database keeps its records for reads; its writes fail at once.
pub(crate) async fn retire(node: Arc<Shared>) {
    let mut told = node.dialer.told_no_member.subscribe();
    tokio::select! {
        () = node.gone() => {}
        Ok(said) = told.wait_for(Option::is_some) => {
            let why = said.clone().unwrap_or_default();
            drop(said);
            tokio::task::block_in_place(|| node.no_member(&why));
        }
    }
    if let Err(e) = node.raft.shutdown().await {
        tracing::warn!(target: "mnesia::cluster", node = node.id, error = %e, "stopping Raft on a node no member");
    }
    // (It may have led: its reaper's deletes would fail.)
    node.dialer.liveness.database().set_reaping(false);
}

/// How a refused removal of a node that is no member begins (the node's id follows).
const NO_SUCH_MEMBER: &str = "no member of the cluster is node ";

/// How long a voter being removed is given to receive the log before it goes (see
/// `Shared::change_here`).
const CATCH_UP_BEFORE_REMOVAL: Duration = Duration::from_secs(5);

/// What of a table every copy must have alike to decide every commit alike: its shape
/// (name, type, fields, key, auto-increment key) and its indexes (a unique index decides
/// commits): (field, unique), sorted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TableShape {
    shape: RecordShape,
    indexes: Vec<(String, bool)>,
    /// The nodes holding a copy, when not every node (a joining node may lack such a
    /// table: the cluster's snapshot or log makes it there).
    nodes: Vec<String>,
}

/// The shapes of `db`'s tables, by name.
pub(crate) fn shapes(db: &mnesia_runtime::Database) -> Vec<TableShape> {
    db.table_infos()
        .into_iter()
        // (The named counters' table, `mnesia_counters`, is made by each copy when a
        // record first needs it: not part of the comparison.)
        .filter(|t| t.name != "mnesia_counters")
        // (Nor the tables each node keeps for itself, `local_content`: no other node
        // decides their commits.)
        .filter(|t| !t.local_content)
        .map(|t| {
            let mut indexes: Vec<(String, bool)> =
                t.indexes.iter().map(|i| (i.field.clone(), i.unique)).collect();
            indexes.sort();
            TableShape { shape: t.shape(), indexes, nodes: t.nodes }
        })
        .collect()
}

/// Why a node with the tables `theirs` cannot join a node with `ours`, if it cannot.
fn mismatch(ours: &[TableShape], theirs: &[TableShape]) -> Option<String> {
    let missing = ours
        .iter()
        .filter(|o| o.nodes.is_empty())
        .find(|o| !theirs.iter().any(|t| t.shape.name() == o.shape.name()));
    let extra = theirs.iter().find(|t| !ours.iter().any(|o| o.shape.name() == t.shape.name()));
    let differs = ours.iter().find(|o| theirs.iter().any(|t| t.shape.name() == o.shape.name() && t != *o));
    match (missing, extra, differs) {
        (Some(o), _, _) => Some(format!("the joining node lacks table {}", o.shape.name())),
        (_, Some(t), _) => {
            Some(format!("the joining node has table {}, which the cluster lacks", t.shape.name()))
        }
        (_, _, Some(o)) => Some(format!(
            "table {} differs (type, fields, key, indexes, auto-increment or the nodes holding it) between the joining node and the cluster",
            o.shape.name()
        )),
        _ => None,
    }
}

impl Shared {
    /// On the leader: why node `from`, calling for votes, is no member (`None` if it may
    /// be one). Said only when the members this node decided leave it out and its log ends
    /// before the entry that decided them (it missed its removal: it was down), and only
    /// once a majority confirms that this node still leads: a leader deposed without knowing
    /// it could lack a later change that added the node again. (A follower, or a leader
    /// whose members are not decided yet, says nothing: a node added later than it knows of
    /// would be told wrongly, and would stop for good.)
    pub(crate) async fn removed_candidate(
        &self,
        from: u64,
        rpc: &openraft::raft::VoteRequest<u64>,
    ) -> Option<String> {
        let counted_out_here = || {
            let metrics = self.raft.metrics();
            let m = metrics.borrow();
            let leads = m.current_leader == Some(self.id);
            let decided_at = crate::node::left_out(&m, from).and_then(|(decided, at)| decided.then_some(at));
            leads && decided_at.is_some_and(|at| rpc.last_log_id.is_none_or(|l| l.index < at))
        };
        if !counted_out_here() {
            return None;
        }
        let confirmed = tokio::time::timeout(CONFIRM_LEAD, self.raft.get_read_log_id()).await;
        (matches!(confirmed, Ok(Ok(_))) && counted_out_here()).then(|| counted_out(from, self.id))
    }

    /// Makes `change`, if this node leads.
    async fn change_here(&self, change: &Change) -> std::result::Result<(), ChangeError> {
        // The leader first (openraft checks a change against the members it knows before it
        // checks that it leads: a follower that has not heard of a learner yet would refuse
        // to make it a voter, instead of sending the change to the leader).
        let metrics = self.raft.metrics().borrow().clone();
        if metrics.current_leader != Some(self.id) {
            let leader = metrics.current_leader.and_then(|id| {
                let node = metrics.membership_config.membership().get_node(&id)?.clone();
                Some(ForwardToLeader::new(id, node))
            });
            let forward = leader.unwrap_or_else(ForwardToLeader::empty);
            return Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward)));
        }
        match change {
            Change::Learn { id, addr, .. } => {
                // Returns once the learner is a member: the joining node then waits, as
                // long as its caller lets it, until it holds the log up to the leader's
                // read index before it asks to vote. (Not once openraft counts it caught
                // up: this node answers within 30 s, and a join given longer on a large
                // database failed though the node was added.)
                self.raft.add_learner(*id, BasicNode { addr: addr.clone() }, false).await?;
            }
            Change::Vote { id } => {
                self.raft.change_membership(ChangeMembers::AddVoterIds([*id].into()), false).await?;
            }
            Change::Remove { id, by } => {
                let membership = metrics.membership_config.membership();
                if membership.get_node(id).is_none() {
                    return Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(
                        openraft::error::ChangeMembershipError::LearnerNotFound(
                            openraft::error::LearnerNotFound { node_id: *id },
                        ),
                    )));
                }
                let addr = membership.get_node(id).map(|n| n.addr.clone());
                // A voter is made a learner first, which stops its campaigns; from then on
                // its proposals are refused, and it goes once the log it lacks has reached
                // it (or it is not up): the commits it had on their way are applied there
                // (made by the cluster but never reaching it, its writers would wait for
                // them).
                if membership.voter_ids().any(|v| v == *id) {
                    self.raft.change_membership(ChangeMembers::RemoveVoters([*id].into()), true).await?;
                }
                let _removing = Removing::new(self, *id);
                // (A round through Raft's core: the proposals taken before are in the log.)
                let _ = self.raft.with_raft_state(|_| ()).await;
                let last = self.raft.metrics().borrow().last_log_index.unwrap_or(0);
                // (Given `CATCH_UP_BEFORE_REMOVAL` at most, if it is up.)
                if let Some(addr) = addr.as_ref().filter(|_| self.dialer.liveness.up().contains(id)) {
                    let deadline = tokio::time::Instant::now() + CATCH_UP_BEFORE_REMOVAL;
                    self.applied_by(*id, addr, last, deadline).await;
                }
                self.raft.change_membership(ChangeMembers::RemoveNodes([*id].into()), false).await?;
                // It no longer hears from the leader: told, if it is up (this node, the
                // leader removing itself, knows).
                let request = Request::Removed { id: *id, by: *by };
                if *id == self.id {
                    tokio::task::block_in_place(|| self.no_member(&removed_why(*id, *by)));
                } else if let Some(addr) = addr {
                    let _ = self.dialer.ask_at(&addr, &request, Duration::from_secs(2)).await;
                }
            }
        }
        Ok(())
    }

    /// On the leader: `Err` if removing voter `id` would leave voters of which no majority
    /// answers now (the change could not be decided, and every commit would wait for it:
    /// the nodes down are to come back, or be removed, first). Each is asked, rather than
    /// taken for up from what was last heard: a node killed a moment ago would count.
    async fn removal_keeps_a_majority(&self, id: u64) -> std::result::Result<(), String> {
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let voters: Vec<u64> = membership.voter_ids().collect();
        if m.current_leader != Some(self.id) || !voters.contains(&id) {
            return Ok(());
        }
        let after: Vec<(u64, Option<String>)> = voters
            .into_iter()
            .filter(|v| *v != id)
            .map(|v| (v, membership.get_node(&v).map(|n| n.addr.clone())))
            .collect();
        let mut down = Vec::new();
        for (voter, addr) in after.iter().filter(|(v, _)| *v != self.id) {
            let answered = match addr {
                Some(addr) => self.dialer.ask_at(addr, &Request::Ping, Duration::from_millis(500)).await,
                None => continue,
            };
            if !matches!(answered, Ok(Response::Pong)) {
                down.push(*voter);
            }
        }
        let live = after.len() - down.len();
        if live > after.len() / 2 {
            return Ok(());
        }
        let after: Vec<u64> = after.into_iter().map(|(v, _)| v).collect();
        Err(format!(
            "removing node {id} would leave the voters {after:?}, of which {live} answer, no majority (nodes {down:?} do not): bring them back, or remove them, first"
        ))
    }

    /// Makes `change` through the leader, wherever it is (bounded by the caller's timeout).
    pub(crate) async fn change_members(&self, change: Change) -> std::result::Result<(), String> {
        // A node whose tables differ would decide commits differently: refused at once.
        if let Change::Learn { tables, .. } = &change
            && let Some(why) = mismatch(&shapes(self.dialer.liveness.database()), tables)
        {
            return Err(why);
        }
        loop {
            if let Change::Remove { id, .. } = &change {
                self.removal_keeps_a_majority(*id).await?;
            }
            // (On the leader, whose members are the latest: a follower forwards the change.)
            if let Change::Learn { id, addr, .. } = &change {
                let metrics = self.raft.metrics();
                let m = metrics.borrow();
                let known = m.membership_config.membership().get_node(id).map(|n| n.addr.clone());
                if m.current_leader == Some(self.id)
                    && let Some(known) = known.filter(|k| k != addr)
                {
                    return Err(format!(
                        "node {id} is a member at {known}: a joining node takes an id of its own"
                    ));
                }
            }
            let forward = match self.change_here(&change).await {
                Ok(()) => return Ok(()),
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => f,
                // Another change on its way (a node leaving while another joins): this one
                // after it.
                Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(
                    openraft::error::ChangeMembershipError::InProgress(_),
                ))) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(
                    openraft::error::ChangeMembershipError::LearnerNotFound(missing),
                ))) => return Err(format!("{NO_SUCH_MEMBER}{}", missing.node_id)),
                Err(e) => return Err(e.to_string()),
            };
            if let (Some(id), Some(node)) = (forward.leader_id, forward.leader_node)
                && let Ok(Response::Changed(result)) =
                    self.ask(id, &node, &Request::Change(change.clone())).await?
            {
                return result;
            }
            // No leader yet, or it just changed: ask again shortly.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Asks the member at `seed` to make `change` (again until it answers: it may be starting,
/// or between leaders; the caller bounds the time).
async fn ask_seed(
    shared: &Shared,
    seed: SocketAddr,
    change: &Request,
    timeout: Duration,
) -> std::result::Result<(), String> {
    loop {
        match shared.dialer.ask_at(&seed.to_string(), change, timeout).await {
            Ok(Response::Changed(result)) => return result,
            Ok(_) => return Err("an unexpected answer".to_string()),
            // Asking again would not change these.
            Err(e @ (WireError::WrongCookie | WireError::Protocol(_) | WireError::Tls(_))) => {
                return Err(e.to_string());
            }
            Err(e) => {
                tracing::debug!(target: "mnesia::cluster", %seed, error = %e, "joining: the seed did not answer");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

impl Node {
    /// Joins the cluster that the node at `seed` belongs to (any member): this node, started
    /// with the same tables and cookie and in no cluster yet (not [`Node::initialize`]d), is
    /// added as a learner, is sent the log (or a snapshot of the database when the log
    /// before it is gone), then becomes a voting member. Returns once it is one; fails with
    /// [`Error::NoMajority`] when that did not happen within `timeout`, and with
    /// [`Error::Invalid`] when the cluster refused (its tables differ from this node's: the
    /// same names, types, fields, keys, indexes and auto-increment keys are required, and an
    /// id no member has at another address), when the seed does not share the cookie,
    /// speaks another version of the protocol or is refused by this node's TLS, and when
    /// the seed is this node's own address or this node listens on every address.
    ///
    /// ```no_run
    /// # let (node, seed): (mnesia_cluster::Node, std::net::SocketAddr) = unimplemented!();
    /// node.join(seed, std::time::Duration::from_secs(30))?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn join(&self, seed: SocketAddr, timeout: Duration) -> Result<()> {
        if let Some(why) = self.shared.left.get() {
            return Err(Error::Invalid(format!(
                "{why}: a node that left joins again as a new node (started on an empty directory, on a new database)"
            )));
        }
        if crate::node::reaches(seed, self.addr) {
            return Err(Error::Invalid(format!(
                "joining the cluster through {seed}: that is this node's own address; give a member's"
            )));
        }
        // (It is known by the address it listens on.)
        if self.addr.ip().is_unspecified() {
            return Err(Error::Invalid(format!(
                "this node listens on {}, which the others cannot send to: listen on the address they reach it at",
                self.addr
            )));
        }
        let (id, tables) = (self.shared.id, shapes(self.shared.dialer.liveness.database()));
        let learn = Request::Change(Change::Learn { id, addr: self.addr.to_string(), tables });
        let vote = Request::Change(Change::Vote { id });
        // A learner first; a voter once this node holds the log as far as the leader had
        // decided when it asked (openraft's own wait for a learner counts one a few
        // thousand entries behind as caught up), asked from here.
        let asked = self.block_on(async {
            tokio::time::timeout(timeout, async {
                ask_seed(&self.shared, seed, &learn, timeout).await.map_err(Some)?;
                // (A Raft that stopped, applying what it was sent, says why.)
                self.shared.current(timeout).await.map_err(|e| match e {
                    Error::NoMajority { .. } => None,
                    e => Some(e.to_string()),
                })?;
                ask_seed(&self.shared, seed, &vote, timeout).await.map_err(Some)
            })
            .await
        });
        match asked {
            Err(_) | Ok(Err(None)) => Err(Error::NoMajority { waited: timeout }),
            Ok(Err(Some(why))) => Err(Error::Invalid(format!("joining the cluster through {seed}: {why}"))),
            Ok(Ok(())) => Ok(()),
        }
    }

    /// Removes node `id` from the cluster's members (it left, or it is gone for good): the
    /// others no longer count it in a majority nor send it the log. Made by the leader
    /// wherever this node asks, in two steps: the node stops voting, then (once the log
    /// it lacks has reached it, 5 s at most while it is up; its writes refused meanwhile)
    /// it goes, and is told so. A removed node keeps its records for reads; its writes
    /// fail with [`Error::Closed`] saying it was removed (one that the cluster had decided
    /// but that never reached it says so too), and its Raft directory keeps that it is no
    /// member (see [`Node::leave`]). Fails with [`Error::NoMajority`] when the change was
    /// not decided within `timeout` (it may still be made), and with [`Error::Invalid`]
    /// when it was refused: `id` is no member, or no majority of the voters left answers
    /// (the change could not be decided, and every commit would wait for it: bring the
    /// nodes down back, or remove them, first).
    ///
    /// ```no_run
    /// # let node: mnesia_cluster::Node = unimplemented!();
    /// node.remove(3, std::time::Duration::from_secs(10))?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn remove(&self, id: u64, timeout: Duration) -> Result<()> {
        let shared = Arc::clone(&self.shared);
        if id == shared.id && shared.left.get().is_some() {
            return Ok(());
        }
        // Made on a task of its own (for `CHANGE_TIMEOUT` at most, as asked of the leader by
        // another node): a caller that stops waiting does not leave it half made (a voter
        // made a learner, never removed).
        let changing = self.spawn(async move {
            let change = shared.change_members(Change::Remove { id, by: shared.id });
            tokio::time::timeout(crate::net::CHANGE_TIMEOUT, change)
                .await
                .unwrap_or_else(|_| Err(format!("not done within {:?}", crate::net::CHANGE_TIMEOUT)))
        });
        let me = self.shared.id;
        match self.block_on(async { tokio::time::timeout(timeout, changing).await }) {
            Err(_) | Ok(Err(_)) => Err(Error::NoMajority { waited: timeout }),
            // This node left already (a `leave` that timed out, tried again).
            Ok(Ok(Err(why))) if id == me && why.starts_with(NO_SUCH_MEMBER) => self.left(),
            Ok(Ok(Err(why))) => Err(Error::Invalid(format!("removing node {id}: {why}"))),
            Ok(Ok(Ok(()))) if id == me => self.left(),
            Ok(Ok(Ok(()))) => Ok(()),
        }
    }

    /// This node left: see [`Shared::no_member`].
    fn left(&self) -> Result<()> {
        match self.shared.no_member(&format!("node {} left the cluster", self.shared.id)) {
            Some(Error::Io { path, source }) => Err(Error::Io {
                path,
                source: std::io::Error::new(
                    source.kind(),
                    format!(
                        "the node left the cluster, but its Raft directory could not be marked so ({source}): do not start a node on it"
                    ),
                ),
            }),
            _ => Ok(()),
        }
    }

    /// Removes this node from the cluster's members ([`Node::remove`] of its own id): drop
    /// it afterwards; its database keeps the records it had (reads answer from them), and
    /// its writing commits fail at once with [`Error::Closed`] saying it left. Its Raft
    /// directory, if it has one, keeps that it left: a node started on it is refused
    /// ([`Error::Invalid`]); start the node on an empty directory and [`Node::join`] to be
    /// a member again.
    ///
    /// ```no_run
    /// # let node: mnesia_cluster::Node = unimplemented!();
    /// node.leave(std::time::Duration::from_secs(10))?;
    /// drop(node);
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn leave(&self, timeout: Duration) -> Result<()> {
        self.remove(self.shared.id, timeout)
    }
}
