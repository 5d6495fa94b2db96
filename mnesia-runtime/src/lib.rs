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

mod activity;
mod any_table;
mod async_tx;
mod backup;
mod backup_types;
mod broadcast;
mod browse;
mod browse_types;
mod bulk;
mod cells;
mod clock;
mod commit;
mod conditions;
mod config;
mod context;
mod counters;
mod db;
mod disk;
mod dump;
mod erased;
mod error;
mod events;
mod expiring;
mod field;
mod filter;
mod handle;
mod hasher;
mod index;
mod index_spec;
mod info;
mod inspect;
mod kinds;
mod lock;
mod migrate;
mod ops;
mod options;
mod ordered;
mod ordered_snapshot;
mod plan;
mod prefetch;
mod priority;
mod progress;
mod projection;
mod query;
mod reaper;
mod record;
mod restore;
mod restore_unclaimed;
mod schema;
mod schema_change;
mod select;
mod sequencer;
mod shape;
mod snapshots;
mod sort;
mod stats;
mod store;
mod system;
mod table;
mod table_part;
#[cfg(test)]
mod testing;
mod transfer;
mod ttl;
mod tx;

pub use activity::{Activity, Histogram};
pub use async_tx::transaction_async;
#[doc(hidden)]
pub use backup::fuzz_backup_file;
pub use backup::{BackupInfo, BackupOptions, RestoreOptions};
pub use backup_types::RestoreMode;
pub use browse_types::{Browse, JsonSubscription, Page};
pub use clock::{Clock, ManualClock};
pub use commit::record::CommitRecord;
pub use context::{is_transaction, sync_transaction, transaction};
pub use counters::{current_value, dirty_update_counter, has_counter, next_id, reset_counter};
pub use db::{Config, Database, cleanup_expired, start, stop, system_tables};
#[doc(hidden)]
pub use disk::files::faults;
pub use disk::fuzzing;
pub use disk::wal::Durability;
pub use error::{Error, Result};
pub use events::{DeleteCause, Event, Subscription};
pub use expiring::Expiring;
pub use field::{Compare, Field, FieldValue, Indexable};
pub use filter::{Filter, Order};
pub use handle::Transaction;
pub use index_spec::IndexSpec;
pub use info::system_info;
pub use ordered_snapshot::OrderedSnapshot;
pub use sequencer::{OrderFuture, Sequencer};
pub use shape::RecordShape;
/// What the derive's output reaches and nothing else should: not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::async_tx::block_on;
    pub use crate::index::{IndexProbe, ProbeIndexable, ProbeNotIndexable};
    pub use crate::kinds::TableKind;
    pub use inventory;
}
pub use info::{LogInfo, SystemInfo};
pub use inspect::{
    CheckedFile, CheckpointInfo, Damage, DirectoryInfo, SegmentInfo, StoredLog, StoredTable, VerifyReport,
};
pub use options::TableOptions;
pub use plan::Plan;
pub use projection::Projection;
pub use query::{Query, QueryIter};
pub use record::{FieldInfo, IndexInfo, Key, Record, StorageType, TableInfo, TableType, Upserted};
pub use schema::{Schema, SchemaInfo};
pub use system::{ClusterEvent, ClusterInfo, ClusterMember, SystemEvent, SystemSubscription};
pub use table::Table;
#[doc(hidden)]
pub use transfer::fuzzing as import_fuzzing;
pub use transfer::{ExportOptions, Format, ImportOptions};
pub use ttl::Deadline;
