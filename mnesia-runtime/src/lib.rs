//! The engine of [`mnesia`](https://docs.rs/mnesia): typed in-memory table stores,
//! serializable optimistic transactions, secondary indexes and a query planner.
//!
//! Users depend on the `mnesia` crate, which re-exports everything here together with
//! `#[derive(Table)]`. The runtime has one folder per layer, each using only those below
//! it:
//!
//! - `base/`: clocks, commit locks taken in one global order, priority (so that a
//!   transaction that keeps losing finishes), the broadcast ring, statistics.
//! - `schema/`: [`Record`], the trait the derive implements, and what describes a table:
//!   fields, conditions and filters, index specs, [`TableOptions`], [`RecordShape`].
//! - `disk/`: the directory of a database with `disc_copies` tables — the schema file,
//!   the commit log with group commit (`wal.rs`), framing and checksums, snapshots and
//!   checkpoints, recovery (`mod.rs`).
//! - `engine/`: records in shards (`store/`), secondary indexes, expiry, events, commit
//!   records and the order's versions.
//! - `db/`: the database, its table registry and the default database; the type-erased
//!   table the registry holds (`any_table.rs`) and a transaction's part as it sees it
//!   (`table_part.rs`); configuration; system info.
//! - `tx/`: read and write sets and the commit protocol; `context.rs`: the thread's
//!   current transaction and the retry loop; `ops.rs`: the typed operations; the planner
//!   and the planned reads (`plan.rs`, `select.rs`, `query.rs`).
//! - `features/`: backup and restore, bulk loads, export and import, transforms,
//!   browsing, schema changes, ordered commits, and (`erased.rs`) the implementation of
//!   the registry's table, above everything it uses.
//! - `api/`: [`Table`], the table-scoped API every record type has, and the explicit
//!   [`Transaction`] handle; both call `tx/ops.rs`.
#![deny(missing_docs)]
#![deny(unsafe_code)]
#![warn(unreachable_pub)]

mod api;
mod base;
mod db;
mod disk;
mod engine;
mod error;
mod features;
mod schema;
#[cfg(test)]
mod testing;
mod tx;

pub use api::handle::Transaction;
pub use base::activity::{Activity, Histogram};
pub use base::clock::{Clock, ManualClock};
pub use db::info::system_info;
pub use db::{Config, Database, cleanup_expired, start, stop, system_tables};
#[doc(hidden)]
pub use disk::files::faults;
pub use disk::fuzzing;
#[doc(hidden)]
pub use disk::lock_file;
pub use disk::wal::Durability;
pub use engine::backup_types::RestoreMode;
pub use engine::browse_types::{Browse, JsonSubscription, Page};
pub use engine::commit_record::CommitRecord;
pub use engine::events::{DeleteCause, Event, Subscription};
pub use engine::sequencer::{OrderFuture, Sequencer};
pub use error::{Error, Result};
#[doc(hidden)]
pub use features::backup::fuzz_backup_file;
pub use features::backup::{BackupInfo, BackupOptions, RestoreOptions};
pub use features::hold::TableHold;
pub use features::ordered_snapshot::OrderedSnapshot;
pub use schema::field::{Compare, Field, FieldValue, Indexable};
pub use schema::filter::{Filter, Order};
pub use schema::index_spec::IndexSpec;
pub use schema::shape::RecordShape;
pub use tx::async_tx::transaction_async;
pub use tx::context::{is_transaction, sync_transaction, transaction};
pub use tx::counters::{current_value, dirty_update_counter, has_counter, next_id, reset_counter};
pub use tx::expiring::Expiring;
/// What the derive's output reaches and nothing else should: not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::engine::index::{IndexProbe, ProbeIndexable, ProbeNotIndexable};
    pub use crate::features::kinds::TableKind;
    pub use crate::tx::async_tx::block_on;
    pub use inventory;
}
pub use api::table::Table;
pub use db::info::{LogInfo, SystemInfo};
pub use engine::system::{ClusterEvent, ClusterInfo, ClusterMember, SystemEvent, SystemSubscription};
pub use engine::ttl::Deadline;
pub use features::inspect::{
    CheckedFile, CheckpointInfo, Damage, DirectoryInfo, SegmentInfo, StoredLog, StoredTable, VerifyReport,
};
pub use features::schema::{Schema, SchemaInfo};
#[doc(hidden)]
pub use features::transfer::fuzzing as import_fuzzing;
pub use features::transfer::{ExportOptions, Format, ImportOptions};
pub use schema::options::TableOptions;
pub use schema::projection::Projection;
pub use schema::record::{FieldInfo, IndexInfo, Key, Record, StorageType, TableInfo, TableType, Upserted};
pub use tx::plan::Plan;
pub use tx::query::{Query, QueryIter};
