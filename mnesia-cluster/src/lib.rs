//! Replication for `mnesia`: several processes hold copies of a database, and every commit
//! is ordered among them by Raft ([openraft](https://docs.rs/openraft)), so a transaction
//! started on any node is applied by all of them or by none, and a side of a partition
//! without a majority cannot commit (nothing diverges). A commit that fails with
//! `Error::NoMajority` has an unknown fate: it may still commit if the cluster heals before
//! another leader is elected.
//!
//! Each node runs a [`Node`] for its [`Database`](mnesia_runtime::Database): nodes
//! authenticate each other with a shared cookie (HMAC-SHA256 challenge and response, both
//! ways) before any other frame, then exchange length-prefixed postcard frames over TCP. A
//! writing commit becomes a [`CommitRecord`](mnesia_runtime::CommitRecord) holding its
//! writes and a summary of its reads; the leader appends it to the Raft log; once a majority
//! holds it, every node applies it to its copy in log order and decides it the same way
//! (a conflict makes the transaction run again). Reads answer from the local copy.
//!
//! A record proposed again after its answer was lost (a leader killed, a connection cut)
//! is applied once: every proposal carries an id, and the nodes remember the verdicts of
//! the proposals of the last 100,000 log entries (at most the last 200,000). With
//! [`Options::dir`] the Raft log is durable and a node that stops comes back and catches
//! up.
//!
//! A write to the directory that fails (a full disc) is tried again until it succeeds:
//! meanwhile the node orders nothing and the others go on without it; it goes on once the
//! disc has room, and its database's system event subscribers hear of both
//! (`ClusterEvent::LogFailed`, `ClusterEvent::LogRecovered`).
//!
//! Snapshots keep the log short ([`Options::snapshots`]): a node snapshots its database
//! every so many entries and the entries before go; a node whose missing entries are gone
//! is sent the snapshot.
//!
//! Members change while the cluster runs: a node joins through any member
//! ([`Node::join`]), and members leave or are removed ([`Node::leave`], [`Node::remove`]).
//!
//! With the `tls` feature, every connection is TLS (`Options::tls`): each node proves
//! itself with a certificate of the cluster's CA, both ways, before the cookie's handshake.
//!
//! A table created on a running node with a list of nodes
//! (`TableOptions::ram_copies([..])`) keeps its records on those nodes alone; the others
//! forward its reads outside transactions to one of them, and a holder that loads a
//! snapshot made by a node without the records is filled from another holder; copies are
//! added and removed while the cluster runs (`Database::add_table_copy`,
//! `Database::del_table_copy`), each copy of a storage type every node knows
//! (`ram_copies([..])`, `disc_copies([..])`; a node with [`Options::dir`] keeps every
//! copy it holds in that directory).
//!
//! What is not there yet: the cluster's tables in the database's own files (the Raft
//! directory keeps them), `disc_only_copies` on a running node.
//!
//! ```no_run
//! use mnesia_cluster::{Node, Options};
//! let db = mnesia::Database::in_memory()?;
//! let node = Node::start(&db, Options::new(1, "cookie"))?;
//! node.initialize([(1, node.local_addr())])?;
//! node.wait_for_leader(std::time::Duration::from_secs(5))?;
//! # Ok::<(), mnesia::Error>(())
//! ```

#![deny(missing_docs)]
#![deny(unsafe_code)]

mod faults;
#[doc(hidden)]
pub mod fuzzing;
mod holds;
mod liveness;
mod log_file;
mod members;
mod net;
mod node;
mod placed;
mod raft;
mod sequencer;
mod snapshot;
#[cfg(feature = "tls")]
mod tls;
mod wire;
mod writes;

pub use faults::Faults;
pub use node::{Node, Options, Status};
#[cfg(feature = "tls")]
pub use tls::Tls;
