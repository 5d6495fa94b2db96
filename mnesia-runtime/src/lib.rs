//! The engine of [`mnesia`](https://docs.rs/mnesia): typed in-memory table stores,
//! serializable optimistic transactions, secondary indexes and a query planner.
//!
//! Users depend on the `mnesia` crate, which re-exports everything here together with
//! `#[derive(Table)]`. The engine's layout:
//!
//! - [`Table`] (`table.rs`): the trait the derive implements, whose provided functions are
//!   the table-scoped API; they call `ops.rs`, as does the explicit [`Transaction`] handle.
//! - `context.rs`: the thread's current transaction and the retry loop.
//! - `tx/`: read and write sets, and the commit protocol; `lock.rs`: commit locks taken
//!   in one global order; `priority.rs`: escalation, so that a transaction that keeps
//!   losing finishes.
//! - `store/`: records in shards; `index.rs`: secondary indexes.
//! - `field.rs`, `filter.rs`, `plan.rs`, `select.rs`, `query.rs`: typed conditions, the
//!   planner and the planned reads.
//! - `db.rs`: the database, its tables and the default database; `config.rs`: its
//!   configuration; `any_table.rs`: the type-erased table trait the registry holds.
//! - `disk/`: the directory of a database with `disc_copies` tables — the schema file
//!   (`schema.rs`), the commit log with group commit (`wal.rs`), framing and checksums
//!   (`frame.rs`), snapshots and checkpoints, recovery (`mod.rs`); `schema.rs` at the top is
//!   the public `Schema` API.
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
