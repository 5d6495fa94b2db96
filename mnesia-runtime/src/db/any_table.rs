//! What the registry knows of a table without knowing its record type: the type-erased
//! table trait, the table-wide locks, and what a bulk load into a new store offers
//! ([`Loader`], made by a table for a restore) and leaves for the log and the schema
//! ([`LogBatch`], [`Switch`]; the loading itself is `features/bulk.rs`).

use std::any::Any;
use std::sync::Arc;

use crate::base::lock::{HeldLocks, LockReq, lock_order};
use crate::db::Database;
use crate::disk::record::Logged;
use crate::disk::schema::TableDef;
use crate::engine::store::{IndexList, TableStore};
use crate::error::Result;
use crate::schema::record::{StorageType, TableInfo};
use crate::schema::stored::StoredRecord;

/// The registry: every table by name.
pub(crate) type TableMap = std::collections::HashMap<String, Arc<dyn AnyTable>>;

/// What the registry knows of a table without knowing its record type.
pub(crate) trait AnyTable: Send + Sync {
    fn as_any_arc(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
    /// The table's name.
    fn name(&self) -> &'static str;
    /// The table's gate (see `base/priority.rs`).
    fn gate(self: Arc<Self>) -> Arc<dyn crate::base::priority::Gate>;
    /// The record type's id (what finds a transaction's part for the table).
    fn record_type(&self) -> std::any::TypeId;
    /// A new transaction part for the table.
    fn new_part(self: Arc<Self>) -> Box<dyn crate::db::table_part::TxPart>;
    /// As an operation starts: a table stopped by its disc-only file resumes if the file
    /// works again (see `TableStore::resume`).
    fn resume(&self);
    fn type_name(&self) -> &'static str;
    fn info(&self) -> TableInfo;
    /// The table's records encoded for a snapshot, if it is a disc table.
    fn snapshot(&self) -> Option<Result<(u64, Vec<crate::disk::record::SnapshotEntry>)>>;
    /// The table's id in the schema, if it is on disc.
    fn disk_id(&self) -> Option<u64>;
    /// Where the table keeps its records.
    fn storage(&self) -> StorageType;
    /// Whether the table is this node's own (`TableOptions::local_content`).
    fn is_local(&self) -> bool;
    /// Where the table's copies are.
    fn placement(&self) -> &crate::engine::placement::Placement;
    /// The live records of the key `key` (encoded), each encoded as a commit record
    /// carries it: a read this node answers for another ([`Error::NotHere`] when it
    /// holds none).
    fn read_encoded(&self, key: &[u8]) -> Result<Vec<Vec<u8>>>;
    /// Empties the table (it is dropped, or its database is gone).
    fn release(&self);
    /// Empties the table as a new store takes its place (a transform): its subscribers
    /// hear `Dropped`, and transactions holding it run again on the new one.
    fn retire(&self);
    /// Changes the table as a whole, here (an ordered copy applying the change's record):
    /// clears it, drops it, adds or removes an index.
    fn change_whole(
        self: Arc<Self>,
        db: &Database,
        op: &crate::engine::commit_record::WholeTable,
    ) -> Result<()>;
    /// Drops the record versions kept for snapshots that `floor` says no open one needs.
    fn prune_history(&self, floor: &dyn Fn() -> u64);
    /// Removes the table's expired records; returns how many.
    fn reap(&self, db: &Database) -> Result<usize>;
    /// Shared requests for every commit lock of the table's records (a backup's cut).
    fn backup_locks<'a>(&'a self, out: &mut Vec<LockReq<'a>>);
    /// Starts a backup cut at `seq` (the caller holds every commit lock of the table) and
    /// returns the table's definition and counter.
    fn begin_backup(&self, seq: u64) -> crate::engine::backup_types::BackupTable;
    /// Encodes the table's records as they were at the cut into `out`, handing it to
    /// `flush` after each shard; returns how many entries.
    fn backup_stream(
        &self,
        out: &mut crate::disk::record::EntryEncoder,
        flush: &mut dyn FnMut(&mut crate::disk::record::EntryEncoder) -> Result<()>,
    ) -> Result<u64>;
    /// Ends the backup.
    fn end_backup(&self);
    /// Whether records of the stored definition `def` can be restored into this table.
    fn check_backup(&self, def: &TableDef) -> Result<()>;
    /// Moves the auto-increment counter past `counter`.
    fn raise_counter(&self, counter: u64);
    /// Seals the table's store (see `Sealed`): its counter is final, an id asked of it
    /// meanwhile comes from the store that takes its place. Returns the guard (dropped
    /// without [`Seal::keep`], it unseals) and the final counter.
    fn seal(self: Arc<Self>) -> (Box<dyn crate::engine::store::Seal>, u64);
    /// Moves the auto-increment counter past `id`, claimed without a record (another copy's
    /// `next_id`), and logs it on disc: with a commit lock of the table held, so that a
    /// counter reset (which holds every one) is logged before or after, not between.
    fn claim(&self, db: &Database, id: u64) -> Result<()>;
    /// The indexes the table's struct declares: (field, unique).
    fn declared_indexes(&self) -> Vec<(String, bool)>;
    /// The table's index list, to lend to [`AnyTable::exclusive_locks`].
    fn index_list(&self) -> Arc<dyn Any + Send + Sync>;
    /// A page of records as JSON (in the database's scope).
    fn browse(
        &self,
        browse: &crate::engine::browse_types::Browse,
    ) -> Result<crate::engine::browse_types::Page>;
    /// A subscription to the table's events, as JSON.
    fn subscribe_json(&self, capacity: usize) -> crate::engine::browse_types::JsonSubscription;
    /// Exclusive requests for every commit lock of the table and of `indexes` (its
    /// [`AnyTable::index_list`]).
    fn exclusive_locks<'a>(
        &'a self,
        indexes: &'a (dyn Any + Send + Sync),
        out: &mut Vec<LockReq<'a>>,
    ) -> Result<()>;
    /// A new store of the table, to be filled with a backup's records and put in the old
    /// one's place (a restore that clears and loads). The caller holds the schema lock and
    /// the table's [`AnyTable::exclusive_locks`].
    fn restore_loader(
        self: Arc<Self>,
        db: &Database,
        seq: u64,
        backup: &crate::engine::backup_types::BackupTable,
        recreate: bool,
    ) -> Result<Box<dyn crate::db::any_table::Loader>>;
}

/// Locks every record shard and index shard of a table exclusively (for table-wide changes).
pub(crate) fn lock_all<'a, T: StoredRecord>(
    store: &'a TableStore<T>,
    indexes: &'a IndexList<T>,
) -> HeldLocks<'a> {
    let mut reqs = Vec::new();
    push_exclusive_locks(store, indexes, &mut reqs);
    HeldLocks::acquire(reqs)
}

/// Exclusive requests for every record shard and index shard of a table.
pub(crate) fn push_exclusive_locks<'a, T: StoredRecord>(
    store: &'a TableStore<T>,
    indexes: &'a IndexList<T>,
    reqs: &mut Vec<LockReq<'a>>,
) {
    reqs.extend(store.all_commit_locks().map(|(i, l)| LockReq {
        order: lock_order(store.id, 0, u16::try_from(i).unwrap_or(u16::MAX)),
        exclusive: true,
        lock: l,
    }));
    for idx in &indexes.list {
        let structure = u16::try_from(idx.position() + 1).unwrap_or(u16::MAX);
        for s in 0..idx.shard_count() {
            reqs.push(LockReq {
                order: lock_order(store.id, structure, u16::try_from(s).unwrap_or(u16::MAX)),
                exclusive: true,
                lock: idx.commit_lock(s),
            });
        }
    }
}

/// A disc table's records waiting to be logged under its new id.
#[derive(Default)]
pub(crate) struct LogBatch {
    pub(crate) writes: Vec<(Vec<u8>, Logged)>,
    pub(crate) bytes: usize,
}

/// A [`TableLoader`] whatever its record type: what a restore holds for each table.
pub(crate) trait Loader: Send + Sync {
    /// Adds the entries of a run of a backup (`path`, the frame at `at`); returns how many
    /// entries and how many records they held.
    fn push_run(&self, path: &std::path::Path, at: u64, run: &[u8], log: &mut LogBatch)
    -> Result<(u64, u64)>;
    /// See [`TableLoader::log`].
    fn log(&self, log: &mut LogBatch) -> Result<()>;
    /// See [`TableLoader::switch`].
    fn switch(&mut self) -> Result<Switch>;
    /// See [`TableLoader::install`] (with `Cleared`).
    fn install(self: Box<Self>, tables: &mut TableMap) -> Box<dyn FnOnce() + Send>;
}

/// What a bulk load changes in the schema for one table.
pub(crate) struct Switch {
    /// The old table's id, if it was on disc.
    pub(crate) old: Option<u64>,
    /// The new table's definition, if it goes on disc.
    pub(crate) new: Option<TableDef>,
}
