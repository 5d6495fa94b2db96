//! The part of a transaction that touches one table, as the transaction and the table
//! registry see it whatever the record type ([`TxPart`]; `tx/part.rs` implements it), and
//! the emptied part a thread keeps for its next transaction on the table ([`Spare`]).

use std::any::{Any, TypeId};
use std::sync::Arc;
use std::time::SystemTime;

use crate::base::lock::LockReq;
use crate::base::priority::Gate;
use crate::disk::record::{SnapshotEntry, TableOps};
use crate::engine::backup_types::RestoreMode;
use crate::engine::commit_record::KeyChange;
use crate::error::{Error, Result};

/// The part of a transaction that touches one table, whatever its record type.
pub(crate) trait TxPart: Any {
    fn record_type(&self) -> TypeId;
    fn table_id(&self) -> u32;
    /// Whether the table is this node's own (`TableOptions::local_content`): with ordered
    /// commits, a commit writing it is not ordered.
    fn is_local(&self) -> bool;
    /// Where the table's copies are.
    fn placement(&self) -> &crate::engine::placement::Placement;
    /// The table's name.
    fn table_name(&self) -> &'static str;
    /// Whether the table's records can expire (it has a `#[ttl]` field).
    fn expires(&self) -> bool;
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn has_writes(&self) -> bool;
    fn read_count(&self) -> usize;
    /// Whether the part scanned a shard of records.
    fn scanned(&self) -> bool;
    fn prepare(&mut self);
    /// Lock requests for the reads to validate (see [`TxPart::validate`]) and the writes.
    fn collect_locks<'a>(&'a self, all_reads: bool, out: &mut Vec<LockReq<'a>>);
    /// Reads at snapshot `at` from now on (each record shard once its commits numbered up
    /// to `at` are installed).
    fn read_at(&mut self, at: u64);
    /// Checks, under the commit locks, that what the part read and the keys it writes are
    /// unchanged: `Err(Conflict)` otherwise.
    fn validate(&self, all_reads: bool) -> Result<()>;
    /// Checks, under the commit locks and once every part validated, that unique indexes
    /// stay unique, at the commit's time `now` (a record expired by then holds no value).
    fn check_unique(&self, now: SystemTime) -> std::result::Result<(), UniqueFailure>;
    /// `Err` if the table's disc-only file failed.
    fn healthy(&self) -> Result<()>;
    /// As an operation starts: a table stopped by its disc-only file resumes if the file
    /// works again (see `TableStore::resume`).
    fn resume(&self);
    /// The table's id and publish lock, if it has subscribers and this part writes.
    fn publish_lock(&self) -> Option<(u32, &parking_lot::Mutex<()>)>;
    /// The table's id and publish lock if this part writes, subscribers or not: what
    /// orders the commit records handed to a sink (see `db/sink.rs`).
    fn order_lock(&self) -> Option<(u32, &parking_lot::Mutex<()>)>;
    /// Whether the table has subscribers.
    fn has_subscribers(&self) -> bool;
    /// The part's writes for a commit record, if it writes.
    fn change(&self) -> Result<Option<crate::engine::commit_record::TableChange>>;
    /// What the part read, as any copy can check it (see `ordered.rs`).
    fn read_summary(&self) -> Result<Option<crate::engine::commit_record::TableReads>>;
    /// Installs the writes; with `publish`, also delivers their events to the table's
    /// subscribers (the caller holds the table's publish lock). `now`: the commit's time.
    fn install(&self, seq: u64, floor: u64, publish: bool, now: SystemTime);
    fn reads_unchanged(&self, all: bool) -> bool;
    /// The versions now of what the part read that changed since (`all`: every read).
    fn changed_versions(&self, out: &mut Vec<u64>);
    /// The table, as a gate a transaction with priority closes.
    fn gate(&self) -> Arc<dyn Gate>;
    /// The thread holding the table's gate closed, if this part writes and it is not this
    /// thread: the commit must wait for it.
    fn gate_closed(&self) -> Option<u64>;
    /// Empties the part for reuse by a later transaction of this thread. The spare keeps its
    /// buffers but holds its table weakly: a thread's spares never keep a table or a
    /// database alive.
    fn recycle(self: Box<Self>) -> Option<Box<dyn Spare>>;
    /// The part's writes encoded for the commit log, if its table is on disc.
    fn log_ops(&self) -> Result<Option<TableOps>>;
    /// A copy of the buffered writes, for a nested transaction's savepoint.
    fn save_writes(&self) -> Box<dyn Any>;
    /// Puts back writes saved by `save_writes` (or drops all with `None`).
    fn restore_writes(&mut self, saved: Option<Box<dyn Any>>);
    /// Writes a commit record's changes to this table (every one decoded and checked
    /// before any is made).
    fn apply_change(&mut self, writes: &[KeyChange]) -> Result<()>;
    /// Writes a backup's entries, as `mode` says, and moves the table's auto-increment
    /// counter past `counter`, the backup's; returns how many records.
    fn restore(&mut self, entries: &[SnapshotEntry], mode: RestoreMode, counter: u64) -> Result<u64>;
}

/// The buffers of a finished transaction's part, kept by its thread for the next one.
pub(crate) trait Spare: Any {
    fn record_type(&self) -> TypeId;
    fn db_id(&self) -> u64;
    /// A part for a new transaction, if the table still exists.
    fn revive(self: Box<Self>) -> Option<Box<dyn TxPart>>;
}

/// Why a commit's unique check failed.
pub(crate) enum UniqueFailure {
    /// A value another live record holds.
    Violation(Error),
    /// Values held only by records that have expired: the commit removes those records (as
    /// the reaper would) once its locks are released, then tries again.
    ExpiredOwners(RemoveExpired),
}

/// Removes expired records (see [`UniqueFailure::ExpiredOwners`]); returns how many.
pub(crate) type RemoveExpired = Box<dyn FnOnce(&crate::db::Database) -> Result<usize>>;
