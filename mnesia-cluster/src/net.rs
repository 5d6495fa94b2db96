//! The nodes' connections: the requests one node makes of another, the client side (one
//! connection per peer, opened on demand, opened again after a failure) and the server
//! side (every connection authenticated before its first request).

use std::sync::Arc;
use std::time::Duration;

use openraft::BasicNode;
use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};

use crate::faults::Faults;
use crate::liveness::Liveness;
use crate::raft::{Batch, Placed, Types};
use crate::wire::{self, MAX_FRAME, WireError};

/// What one node asks of another.
#[derive(Serialize, Deserialize)]
pub(crate) enum Request {
    Append(AppendEntriesRequest<Types>),
    Vote(VoteRequest<u64>),
    Snapshot(InstallSnapshotRequest<Types>),
    /// Order these commit records, in one entry (sent to the leader by a follower's
    /// commits).
    Propose(Batch),
    /// Are you there (sent to a peer nothing came from for a heartbeat)?
    Ping,
    /// The leader's read index (see `Node::sync_reads`).
    ReadIndex,
    /// Change the cluster's members (sent by a node joining to its seed, or to the leader).
    Change(crate::members::Change),
    /// How far has this node applied the log (asked by a `sync_transaction`)?
    Applied,
    /// Close these tables to your writers for a transaction of mine with priority (see
    /// `holds.rs`).
    Hold(crate::holds::Hold),
    /// End that hold.
    Release(crate::holds::HoldId),
    /// The records of this key of this table, which you hold (a read of a node without
    /// the table's records: see `placed.rs`).
    Read {
        table: String,
        key: Vec<u8>,
    },
    /// An image of this table, which you hold, of place `at` of the order or a later one
    /// (for a node at that place whose copy waits to be filled): its first part.
    Image {
        table: String,
        at: u64,
    },
    /// The part from byte `offset` of the image `id` you sent the first part of.
    ImagePart {
        id: u64,
        offset: u64,
    },
    /// Node `id`, you are no member any more (asked by node `by`: yourself when you left):
    /// the sender, the leader, removed you (you no longer hear from the leader, so you
    /// would not learn it otherwise).
    Removed {
        id: u64,
        by: u64,
    },
}

/// The answer to a [`Request`].
#[derive(Serialize, Deserialize)]
pub(crate) enum Response {
    Append(Result<AppendEntriesResponse<u64>, RaftError<u64>>),
    Vote(Result<VoteResponse<u64>, RaftError<u64>>),
    Snapshot(Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>),
    /// The entry's index in the log and each record's place and verdict, or why it was
    /// not ordered here.
    Proposed(Result<(u64, Vec<Placed>), String>),
    /// The answer to [`Request::Ping`].
    Pong,
    /// The answer to [`Request::ReadIndex`], or why this node could not give it.
    ReadIndex(Result<u64, String>),
    /// The answer to [`Request::Change`]: done, or why not.
    Changed(Result<(), String>),
    /// The answer to [`Request::Applied`]: the index of the last entry applied.
    Applied(u64),
    /// The answer to [`Request::Hold`]: once held, the index of the log applied there after
    /// its commits on their way were decided (`None`: not held).
    Held(Option<u64>),
    /// The answer to [`Request::Release`].
    Released,
    /// The answer to [`Request::Removed`].
    Noted,
    /// The leader's answer to a [`Request::Vote`] of a node that its decided members leave
    /// out, asked with a log that ends before they did (one removed while it was down,
    /// started again on its directory): why it is no member.
    NotMember(String),
    /// The answer to [`Request::Read`]: the records (encoded), or why not.
    Read(Result<Vec<Vec<u8>>, String>),
    /// The answer to [`Request::Image`] and [`Request::ImagePart`]: a part of the image,
    /// or why not.
    Image(Result<crate::placed::ImagePart, String>),
}

/// How long a request may wait for its answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a node works on a membership change asked by another (see `members.rs`).
pub(crate) const CHANGE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// What a node opens connections to its peers with.
#[derive(Clone)]
pub(crate) struct Dialer {
    /// This node's id.
    pub(crate) me: u64,
    pub(crate) cookie: Arc<[u8]>,
    /// How long a connection may stay idle (`Options::idle_timeout`).
    pub(crate) idle: Duration,
    /// The faults to obey (tests).
    pub(crate) faults: Faults,
    /// Where each call's outcome is told.
    pub(crate) liveness: Arc<Liveness>,
    /// TLS for every connection, when configured.
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<crate::tls::Tls>,
    /// Set when the leader answered this node's call for votes that it is no member (see
    /// [`Response::NotMember`]); the node then stops (see `members::retire`).
    pub(crate) told_no_member: Arc<tokio::sync::watch::Sender<Option<String>>>,
}

/// A connection to or from a peer: TCP, or TLS over it.
pub(crate) trait Conn: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + Sync {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + Sync> Conn for T {}

impl Dialer {
    /// The connection over `tcp`, dialled by this node: TLS first, when configured.
    async fn client_side(&self, tcp: TcpStream) -> Result<Box<dyn Conn>, WireError> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            let run = tls.connector.connect(tls.server_name(), tcp);
            let stream = tokio::time::timeout(wire::HANDSHAKE_TIMEOUT, run)
                .await
                .map_err(|_| WireError::Timeout)?
                .map_err(|e| match e.kind() {
                    // (rustls' refusals: a certificate, a protocol alert.)
                    std::io::ErrorKind::InvalidData => WireError::Tls(e.to_string()),
                    _ => WireError::Io(e),
                })?;
            return Ok(Box::new(stream));
        }
        Ok(Box::new(tcp))
    }

    /// The connection over `tcp`, accepted by this node: TLS first, when configured.
    async fn server_side(&self, tcp: TcpStream) -> Result<Box<dyn Conn>, WireError> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            let run = tls.acceptor.accept(tcp);
            let stream = tokio::time::timeout(wire::HANDSHAKE_TIMEOUT, run)
                .await
                .map_err(|_| WireError::Timeout)??;
            return Ok(Box::new(stream));
        }
        Ok(Box::new(tcp))
    }
}

impl Dialer {
    /// A connection to node `target` at `addr`, opened at its first call.
    pub(crate) fn peer(&self, target: u64, addr: String) -> Peer {
        Peer { dialer: self.clone(), target, addr, stream: None, used: None }
    }

    /// Sends one request to the node listening at `addr`, whose id this node does not know
    /// (a seed it joins through), on a connection of its own.
    pub(crate) async fn ask_at(
        &self,
        addr: &str,
        request: &Request,
        timeout: Duration,
    ) -> Result<Response, WireError> {
        // (Its liveness is not told: the node is no peer yet.)
        Peer { dialer: self.clone(), target: self.me, addr: addr.into(), stream: None, used: None }
            .exchange(request, timeout)
            .await
    }
}

/// The connections kept to each member (for one kind of request: one unless told), with
/// the address they were opened to.
pub(crate) struct MemberLinks {
    /// Connections per member.
    per_member: usize,
    links: parking_lot::Mutex<std::collections::BTreeMap<u64, MemberLink>>,
    /// The one given next when all of a member's are in use.
    turn: std::sync::atomic::AtomicUsize,
}

type Link = Arc<tokio::sync::Mutex<Option<Peer>>>;
type MemberLink = (String, Vec<Link>);

impl Default for MemberLinks {
    fn default() -> Self {
        MemberLinks::several(1)
    }
}

impl MemberLinks {
    /// `per_member` connections kept to each member (at least one).
    pub(crate) fn several(per_member: usize) -> MemberLinks {
        MemberLinks { per_member: per_member.max(1), links: Default::default(), turn: Default::default() }
    }

    /// A connection to `member` at `addr` (opened at its first request): one not in use
    /// if there is one, else each in turn; new ones for a new member under this id, or one
    /// that moved.
    pub(crate) fn to(&self, member: u64, addr: &str) -> Link {
        let mut links = self.links.lock();
        let link = links.entry(member).or_insert_with(|| (String::new(), Vec::new()));
        if link.0 != addr || link.1.is_empty() {
            *link = (addr.to_owned(), (0..self.per_member).map(|_| Link::default()).collect());
        }
        let free = link.1.iter().find(|l| l.try_lock().is_ok());
        let next = || {
            let turn = self.turn.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            &link.1[turn % link.1.len()]
        };
        Arc::clone(free.unwrap_or_else(next))
    }
}

/// An authenticated connection to a peer.
pub(crate) struct Peer {
    dialer: Dialer,
    target: u64,
    addr: String,
    stream: Option<Box<dyn Conn>>,
    /// When the connection last carried an answer.
    used: Option<tokio::time::Instant>,
}

impl Peer {
    /// As [`Peer::exchange`], telling the outcome to the node's liveness.
    pub(crate) async fn call(&mut self, request: &Request, timeout: Duration) -> Result<Response, WireError> {
        self.call_framed(&wire::frame(request)?, timeout).await
    }

    /// [`Peer::call`] with the request's frame (see [`wire::frame`]).
    async fn call_framed(&mut self, frame: &[u8], timeout: Duration) -> Result<Response, WireError> {
        let result = self.exchange_framed(frame, timeout).await;
        match &result {
            Ok(_) => self.dialer.liveness.heard(self.target),
            Err(_) => self.dialer.liveness.lost(self.target),
        }
        result
    }

    /// Sends `request` and reads its answer, opening the connection first if needed; a
    /// failure closes it (the next request opens a new one).
    pub(crate) async fn exchange(
        &mut self,
        request: &Request,
        timeout: Duration,
    ) -> Result<Response, WireError> {
        self.exchange_framed(&wire::frame(request)?, timeout).await
    }

    /// [`Peer::exchange`] with the request's frame (see [`wire::frame`]).
    ///
    /// The connection is taken out while a request is on it and put back only once its
    /// answer has been read whole: a call cancelled halfway (its caller timed out) drops the
    /// connection with it, so no later request can read another's answer.
    async fn exchange_framed(&mut self, frame: &[u8], timeout: Duration) -> Result<Response, WireError> {
        if self.dialer.faults.is_cut(self.dialer.me, self.target) {
            self.stream = None;
            return Err(WireError::Io(std::io::ErrorKind::ConnectionRefused.into()));
        }
        // A connection idle for half the idle timeout may be closed by the other side any
        // moment now: a new one instead.
        let stale = self.used.is_some_and(|at| at.elapsed() >= self.dialer.idle / 2);
        let stream = self.stream.take().filter(|_| !stale);
        let (me, target, addr, cookie) =
            (self.dialer.me, self.target, self.addr.as_str(), &*self.dialer.cookie);
        let delay = self.dialer.faults.delay_of(me, self.target);
        let dialer = &self.dialer;
        let exchange = async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let mut s = match stream {
                Some(s) => s,
                None => {
                    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
                        .await
                        .map_err(|_| WireError::Timeout)??;
                    tcp.set_nodelay(true)?;
                    let mut s = dialer.client_side(tcp).await?;
                    let answered = wire::dial(&mut s, cookie, me).await?;
                    // Another node at a member's address (one started in its place): its
                    // answers are not that member's (a vote counted twice).
                    if target != me && answered != target {
                        return Err(WireError::Garbage(format!(
                            "node {answered} answered at node {target}'s address"
                        )));
                    }
                    s
                }
            };
            wire::write_framed(&mut s, frame).await?;
            let response = wire::read_frame(&mut s, MAX_FRAME).await?;
            Ok::<_, WireError>((s, response))
        };
        let (s, response) =
            tokio::time::timeout(timeout, exchange).await.map_err(|_| WireError::Timeout)??;
        self.stream = Some(s);
        self.used = Some(tokio::time::Instant::now());
        Ok(response)
    }
}

/// Makes the connections of one node's Raft.
pub(crate) struct Network {
    pub(crate) dialer: Dialer,
}

/// Raft's connection to one peer.
pub(crate) struct PeerLink {
    target: u64,
    peer: Peer,
}

impl RaftNetworkFactory<Types> for Network {
    type Network = PeerLink;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> PeerLink {
        PeerLink { target, peer: self.dialer.peer(target, node.addr.clone()) }
    }
}

type RpcError<E = openraft::error::Infallible> = RPCError<u64, BasicNode, RaftError<u64, E>>;

impl PeerLink {
    async fn call(&mut self, request: Request, option: &RPCOption) -> Result<Response, WireError> {
        self.peer.call(&request, option.hard_ttl().min(REQUEST_TIMEOUT)).await
    }

    fn unreachable<E: std::error::Error>(e: WireError) -> RPCError<u64, BasicNode, RaftError<u64, E>> {
        RPCError::Unreachable(Unreachable::new(&e))
    }

    fn wrong<E: std::error::Error>(what: &str) -> RPCError<u64, BasicNode, RaftError<u64, E>> {
        RPCError::Network(NetworkError::new(&std::io::Error::other(format!("unexpected answer to {what}"))))
    }
}

/// The most bytes an append of several entries carries (see `append_entries`): a tenth of
/// a second's worth at 100 Mbit/s.
const APPEND_BYTES: usize = 1 << 20;

/// The wait before the first retry of a peer found unreachable; each next one doubles, up
/// to [`RETRY_UNREACHABLE_MAX`].
const RETRY_UNREACHABLE_FIRST: Duration = Duration::from_millis(10);

/// The longest wait between tries of a peer found unreachable: a node that comes back is
/// sent the log that soon (openraft's default, 500 ms, was most of a restarted node's
/// catch-up). openraft logs each failed try (targets `openraft::*`, warn and error): ten a
/// second for a peer that is down.
const RETRY_UNREACHABLE_MAX: Duration = Duration::from_millis(100);

impl RaftNetwork<Types> for PeerLink {
    fn backoff(&self) -> openraft::network::Backoff {
        let waits = std::iter::successors(Some(RETRY_UNREACHABLE_FIRST), |w| {
            Some((*w * 2).min(RETRY_UNREACHABLE_MAX))
        });
        openraft::network::Backoff::new(waits)
    }

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<Types>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RpcError> {
        // openraft gives an append one heartbeat to be answered, and sends the same entries
        // again when it times out: many large entries at once (a node catching up) would
        // never make it over a slow link. Over `APPEND_BYTES`, it is told to send fewer.
        let entries = rpc.entries.len() as u64;
        let frame = wire::frame(&Request::Append(rpc)).map_err(Self::unreachable)?;
        if entries > 1 && frame.len() > APPEND_BYTES {
            let fit = (entries * APPEND_BYTES as u64 / frame.len() as u64).max(1);
            return Err(RPCError::PayloadTooLarge(PayloadTooLarge::new_entries_hint(fit)));
        }
        let timeout = option.hard_ttl().min(REQUEST_TIMEOUT);
        match self.peer.call_framed(&frame, timeout).await.map_err(Self::unreachable)? {
            Response::Append(r) => r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e))),
            _ => Err(Self::wrong("append_entries")),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<Types>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RpcError<InstallSnapshotError>> {
        match self.call(Request::Snapshot(rpc), &option).await.map_err(Self::unreachable)? {
            Response::Snapshot(r) => r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e))),
            _ => Err(Self::wrong("install_snapshot")),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RpcError> {
        match self.call(Request::Vote(rpc), &option).await.map_err(Self::unreachable)? {
            Response::Vote(r) => r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e))),
            Response::NotMember(why) => {
                let refused = format!("node {} refused the vote: {why}", self.target);
                self.peer.dialer.told_no_member.send_replace(Some(why));
                Err(RPCError::Network(NetworkError::new(&std::io::Error::other(refused))))
            }
            _ => Err(Self::wrong("vote")),
        }
    }
}

/// `work`, given [`REQUEST_TIMEOUT`] at most (a connection waiting longer for Raft is
/// closed: its peer, which waits less, gave up already).
async fn bounded<T>(work: impl std::future::Future<Output = T>) -> Result<T, WireError> {
    tokio::time::timeout(REQUEST_TIMEOUT, work).await.map_err(|_| WireError::Timeout)
}

/// Serves the node's port: each connection is authenticated, then answered request by
/// request until it closes or fails. Every refusal is logged and ends that connection
/// alone.
pub(crate) async fn serve(listener: TcpListener, node: Arc<crate::node::Shared>) {
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(target: "mnesia::cluster", error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let node = Arc::clone(&node);
        tokio::spawn(async move {
            if let Err(e) = connection(stream, &node).await {
                match e {
                    WireError::Io(ref io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {}
                    e => {
                        tracing::warn!(target: "mnesia::cluster", %from, error = %e, "connection refused or ended")
                    }
                }
            }
        });
    }
}

async fn connection(tcp: TcpStream, node: &crate::node::Shared) -> Result<(), WireError> {
    tcp.set_nodelay(true)?;
    let mut stream = node.dialer.server_side(tcp).await?;
    let from = wire::accept(&mut stream, &node.dialer.cookie, node.id).await?;
    let idle = node.dialer.idle;
    loop {
        // A peer that sends nothing (or half a frame) for the idle timeout is let go.
        let Ok(request) =
            tokio::time::timeout(idle, wire::read_frame::<_, Request>(&mut stream, MAX_FRAME)).await
        else {
            tracing::debug!(target: "mnesia::cluster", from, "an idle connection closed");
            return Ok(());
        };
        let request = request?;
        if node.dialer.faults.is_cut(from, node.id) {
            return Ok(());
        }
        node.dialer.liveness.heard(from);
        // While a write to the directory fails (a full disc), Raft waits for it (see
        // `writes.rs`): requests for it would wait too, each holding its connection and
        // its entries until the disc has room. Refused at once instead (the peer sees this
        // node unreachable); and each bounded, in case the disc fills under one.
        // (Pings and questions too: a node whose Raft waits is down for the others, who
        // then wait for it no more, as `sync_transaction` would, once per call.)
        if node.writes.iter().any(|w| w.is_failing()) {
            tracing::debug!(target: "mnesia::cluster", from, "a request refused: this node's disc fails");
            return Ok(());
        }
        let response = match request {
            Request::Append(rpc) => Response::Append(bounded(node.raft.append_entries(rpc)).await?),
            Request::Vote(rpc) => match node.removed_candidate(from, &rpc).await {
                Some(why) => Response::NotMember(why),
                None => Response::Vote(bounded(node.raft.vote(rpc)).await?),
            },
            Request::Snapshot(rpc) => Response::Snapshot(bounded(node.raft.install_snapshot(rpc)).await?),
            Request::Propose(batch) => Response::Proposed(bounded(node.write_here(batch)).await?),
            Request::Ping => Response::Pong,
            Request::ReadIndex => Response::ReadIndex(node.read_index_here().await),
            // Bounded: a joining node that gave up (or died) leaves no task behind.
            Request::Change(change) => Response::Changed(
                tokio::time::timeout(CHANGE_TIMEOUT, node.change_members(change))
                    .await
                    .unwrap_or_else(|_| Err(format!("not done within {CHANGE_TIMEOUT:?}"))),
            ),
            Request::Applied => Response::Applied(node.applied_here()),
            Request::Read { table, key } => {
                crate::placed::answer_read(node.dialer.liveness.database(), &table, &key)
            }
            Request::Image { table, at } => {
                crate::placed::answer_image(&node.images, node.dialer.liveness.database(), &table, at).await
            }
            Request::ImagePart { id, offset } => Response::Image(node.images.part(id, offset)),
            Request::Hold(hold) => Response::Held(node.hold_here(from, hold).await),
            // (Another node at the address of the one removed is not told.)
            Request::Removed { id, by } if id == node.id => {
                let why = crate::members::removed_why(id, by);
                tokio::task::block_in_place(|| node.no_member(&why));
                Response::Noted
            }
            Request::Removed { .. } => Response::Noted,
            Request::Release(id) => {
                node.release_here(from, id);
                Response::Released
            }
        };
        // (Nor does one that takes no answer.)
        tokio::time::timeout(idle, wire::write_frame(&mut stream, &response))
            .await
            .map_err(|_| WireError::Timeout)??;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mnesia::prelude::*;
    use openraft::{Entry, EntryPayload, LogId, Vote};

    use crate::raft::{Batch, Proposal, ProposalId};

    #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    struct Blob {
        #[key]
        id: u32,
        bytes: Vec<u8>,
    }

    /// The commit record of writing a blob of `len` bytes.
    fn blob_record(len: usize) -> mnesia_runtime::CommitRecord {
        let db = Database::in_memory().expect("db");
        db.create_table::<Blob>(TableOptions::new()).expect("table");
        let (tx, rx) = std::sync::mpsc::channel();
        db.replicate_to(move |r: &mnesia_runtime::CommitRecord| {
            let _ = tx.send(r.clone());
        });
        db.scope(|| Blob::write(Blob { id: 1, bytes: vec![7; len] })).expect("write");
        rx.try_recv().expect("a record")
    }

    /// An append of `n` entries, each holding `record`.
    fn append(n: u64, record: &mnesia_runtime::CommitRecord) -> AppendEntriesRequest<Types> {
        let entries = (1..=n)
            .map(|index| Entry {
                log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
                payload: EntryPayload::Normal(Batch(vec![Proposal {
                    id: ProposalId { node: 1, life: 1, n: index },
                    record: record.clone(),
                }])),
            })
            .collect();
        AppendEntriesRequest { vote: Vote::new(1, 1), prev_log_id: None, leader_commit: None, entries }
    }

    /// An append of many large entries asks openraft to send fewer (which it does for the
    /// next appends), before anything is sent; one entry alone goes, however large.
    #[tokio::test]
    async fn an_append_over_its_bytes_asks_for_fewer_entries() {
        // An address nothing listens on.
        let addr = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
        let db = Database::in_memory().expect("db");
        let dialer = Dialer {
            me: 1,
            cookie: Arc::from(&b"cookie"[..]),
            idle: Duration::from_secs(60),
            faults: Faults::default(),
            liveness: Arc::new(Liveness::new(db, Duration::from_secs(1))),
            #[cfg(feature = "tls")]
            tls: None,
            told_no_member: Arc::default(),
        };
        let mut link = PeerLink { target: 2, peer: dialer.peer(2, addr.to_string()) };
        let record = blob_record(100 << 10);
        let option = RPCOption::new(Duration::from_millis(500));
        match link.append_entries(append(40, &record), option.clone()).await {
            Err(RPCError::PayloadTooLarge(too_large)) => {
                let hint = too_large.entries_hint();
                assert!((1..=10).contains(&hint), "{hint} entries of 100 KiB in an append");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            link.append_entries(append(5, &record), option.clone()).await,
            Err(RPCError::Unreachable(_))
        ));
        let big = blob_record(2 << 20);
        assert!(matches!(link.append_entries(append(1, &big), option).await, Err(RPCError::Unreachable(_))));
    }

    /// A peer that authenticates and then sends nothing, or half a frame, is let go once
    /// the idle timeout passes: no connection or task is held for it longer.
    #[test]
    fn a_peer_idle_or_stalled_after_the_handshake_is_let_go() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let db = Database::in_memory().expect("db");
        let options = crate::Options::new(1, "cookie").idle_timeout(Duration::from_secs(1));
        let node = crate::Node::start(&db, options).expect("node");
        let addr = node.local_addr();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async {
            for half_a_frame in [false, true] {
                let mut s = TcpStream::connect(addr).await.expect("connect");
                assert_eq!(wire::dial(&mut s, b"cookie", 9).await.expect("authenticated"), 1);
                wire::write_frame(&mut s, &Request::Ping).await.expect("ping");
                let pong: Response = wire::read_frame(&mut s, MAX_FRAME).await.expect("answered");
                assert!(matches!(pong, Response::Pong));
                if half_a_frame {
                    s.write_all(&[0, 0, 0, 100, 1, 2, 3]).await.expect("half a frame");
                }
                let mut buf = [0u8; 16];
                let read = tokio::time::timeout(Duration::from_secs(20), s.read(&mut buf)).await;
                assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "closed by the node: {read:?}");
            }
        });
        drop(node);
    }
}
