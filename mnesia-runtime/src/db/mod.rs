//! The database: its tables, its configuration, and the default database that table-scoped
//! functions (`User::write(..)`) use.

pub(crate) mod any_table;
pub(crate) mod config;
pub(crate) mod info;
pub(crate) mod sink;
pub(crate) mod table_part;

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use arc_swap::{ArcSwap, ArcSwapOption};
use crossbeam_utils::CachePadded;
use parking_lot::Mutex;

use crate::base::clock::Clock;
use crate::disk::Disk;
use crate::disk::record::TableOps;
use crate::disk::schema::TableDef;
use crate::engine::meta::{RecordMeta, meta_of};
use crate::engine::store::TableStore;
use crate::error::{Error, Result};
use crate::schema::index_spec::IndexSpec;
use crate::schema::record::RecordFacts;
use crate::schema::record::{Record, StorageType, TableInfo};
use crate::schema::row::RowOf;
use crate::schema::stored::StoredRecord;

pub(crate) use crate::db::any_table::{AnyTable, TableMap, lock_all};
pub use crate::db::config::Config;

/// The last commit [`Database::sequence`] numbers (see there).
const LAST_COMMIT: u64 = crate::schema::row::MAX_VERSION - (1 << 24);

pub(crate) struct DbInner {
    /// Unique among the databases of the process.
    id: u64,
    pub(crate) config: Config,
    pub(crate) tables: ArcSwap<TableMap>,
    /// Serializes schema changes (create, drop, index changes).
    pub(crate) schema: Mutex<()>,
    pub(crate) next_table_id: AtomicU32,
    pub(crate) seq: CachePadded<AtomicU64>,
    /// The directory side, for a database opened with `Config::dir`.
    disk: Option<Disk>,
    reaper: Arc<crate::base::reaper::Reaper>,
    pub(crate) system: Arc<crate::engine::system::SystemHub>,
    pub(crate) stats: Arc<crate::base::stats::Stats>,
    /// Which transaction, if any, runs with priority (see `priority.rs`).
    priority: Arc<crate::base::priority::Priority>,
    /// The snapshots transactions read at (see `snapshots.rs`).
    snapshots: crate::base::snapshots::Snapshots,
    /// Where commits are handed as records, if anywhere (see `sink.rs`).
    pub(crate) sink: ArcSwapOption<crate::engine::commit_record::Sink>,
    /// Whether `sink` holds one (checked first: the common case pays no more).
    pub(crate) has_sink: std::sync::atomic::AtomicBool,
    /// Where commits are ordered, if they are (see `ordered.rs`).
    pub(crate) ordered: crate::engine::sequencer::Ordered,
    /// The last commit number at which a table's store took its place (created, dropped,
    /// restored, transformed, moved): a snapshot older than that cannot read the table.
    placed_at: AtomicU64,
}

/// An open snapshot of a database (see `snapshots.rs`): closed on drop, which prunes the
/// versions kept for it once no other snapshot needs them.
pub(crate) struct SnapshotGuard {
    db: Database,
    pub(crate) at: u64,
}

impl Drop for SnapshotGuard {
    fn drop(&mut self) {
        let snapshots = &self.db.inner.snapshots;
        if snapshots.end(self.at) {
            for t in self.db.inner.tables.load().values() {
                t.prune_history(&|| snapshots.floor());
            }
        }
    }
}

impl Drop for DbInner {
    fn drop(&mut self) {
        self.reaper.stop();
        // Threads may still hold the stores in their spare transaction parts: empty them.
        for t in self.tables.load().values() {
            t.release();
        }
        if let Some(disk) = &self.disk {
            // Whatever the durability mode, what was committed reaches the disc on close.
            let _ = disk.wal.sync();
        }
    }
}

/// A database: a set of tables and the transactions over them. Cheap to clone (a handle).
///
/// Most programs start one with [`crate::start`] and use the table-scoped functions
/// (`User::write(..)`); tests use [`Database::in_memory`] with [`Database::scope`] so that
/// tests running in parallel do not share state.
///
/// ```
/// use mnesia::prelude::*;
///
/// #[derive(Table, Clone, Debug, Serialize, Deserialize)]
/// struct Item { #[key] id: u32, name: String }
///
/// let db = Database::in_memory()?;
/// db.scope(|| -> mnesia::Result<()> {
///     Item::create_table(TableOptions::new())?;
///     Item::write(Item { id: 1, name: "pen".into() })?;
///     assert_eq!(Item::count()?, 1);
///     Ok(())
/// })?;
/// # Ok::<(), mnesia::Error>(())
/// ```
#[derive(Clone)]
pub struct Database {
    pub(crate) inner: Arc<DbInner>,
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database").field("node", &self.inner.config.node).finish_non_exhaustive()
    }
}

impl Database {
    /// Opens a database with this configuration.
    ///
    /// ```
    /// let db = mnesia::Database::open(mnesia::Config::default())?;
    /// assert!(db.tables().is_empty());
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn open(config: Config) -> Result<Database> {
        let (disk, seq) = match config.directory() {
            Some(dir) => {
                let (disk, seq) = Disk::open(dir, config.durability)?;
                (Some(disk), seq)
            }
            None => (None, 0),
        };
        let system: Arc<crate::engine::system::SystemHub> = Arc::default();
        if let Some(disk) = &disk {
            let hub = Arc::clone(&system);
            disk.wal.on_health(Box::new(move |health| hub.log_health(health)));
        }
        let db = Database {
            inner: Arc::new(DbInner {
                id: NEXT_DB_ID.fetch_add(1, Ordering::Relaxed),
                config,
                tables: ArcSwap::from_pointee(HashMap::new()),
                schema: Mutex::new(()),
                next_table_id: AtomicU32::new(1),
                seq: CachePadded::new(AtomicU64::new(seq)),
                disk,
                reaper: Arc::default(),
                system,
                stats: Arc::default(),
                priority: Arc::default(),
                snapshots: crate::base::snapshots::Snapshots::default(),
                placed_at: AtomicU64::new(0),
                sink: ArcSwapOption::empty(),
                has_sink: std::sync::atomic::AtomicBool::new(false),
                ordered: crate::engine::sequencer::Ordered::default(),
            }),
        };
        if db.inner.disk.is_some() {
            db.start_checkpointer()?;
        }
        Ok(db)
    }

    /// A thread that writes a checkpoint whenever the log has grown past the threshold. It
    /// holds the database weakly and ends with it.
    fn start_checkpointer(&self) -> Result<()> {
        let weak = Arc::downgrade(&self.inner);
        let dir = self.inner.config.dir.clone().unwrap_or_default();
        std::thread::Builder::new()
            .name("mnesia-checkpointer".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(std::time::Duration::from_millis(200));
                    let Some(inner) = weak.upgrade() else { return };
                    let db = Database { inner };
                    let threshold = db.inner.config.checkpoint_bytes;
                    let log_bytes = db.disk().map_or(0, |d| d.wal.bytes_since_roll());
                    // Overloaded when this process's writers outrun the checkpoints (the log
                    // an earlier run left, checkpointed below, is no sign of it).
                    let written_here = db.disk().map_or(0, |d| d.wal.bytes_appended_since_roll());
                    if written_here > threshold.saturating_mul(2) {
                        db.inner.system.overload(written_here);
                    }
                    if log_bytes > threshold {
                        let _ = db.checkpoint();
                    }
                }
            })
            .map_err(|e| crate::disk::files::io_error(&dir, e))?;
        Ok(())
    }

    pub(crate) fn disk(&self) -> Option<&Disk> {
        self.inner.disk.as_ref()
    }

    /// Writes a checkpoint now: folds the log into table snapshots, so that the next open
    /// reads less log. Runs on its own in the background too; a no-op in memory;
    /// [`Error::Closed`] once the database was closed ([`Database::close`]).
    ///
    /// ```
    /// let db = mnesia::Database::in_memory()?;
    /// db.checkpoint()?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn checkpoint(&self) -> Result<()> {
        let Some(disk) = self.disk() else { return Ok(()) };
        if disk.is_closed() {
            return Err(Error::Closed { what: format!("the database in {}", disk.dir.display()) });
        }
        // No table is created, claimed, dropped or moved while the checkpoint runs.
        let _schema = self.inner.schema.lock();
        let seq = self.inner.seq.load(Ordering::Acquire);
        disk.checkpoint(seq, |def| self.snapshot_of(def))?;
        self.inner.system.publish(crate::engine::system::SystemEvent::CheckpointDone { seq });
        Ok(())
    }

    /// The snapshot of a disc table in use, looked up now (not from an older list: a table
    /// may have been created, claimed, dropped or moved meanwhile).
    fn snapshot_of(&self, def: &TableDef) -> Option<Result<crate::disk::Snapshot>> {
        let tables = self.inner.tables.load();
        let table = tables.get(&def.name).filter(|t| t.disk_id() == Some(def.id))?;
        table.snapshot()
    }

    /// Makes everything committed durable, writes a checkpoint (so that the next open is
    /// fast) and releases the directory. Disc tables accept no more writes afterwards; the
    /// directory can be opened again. Also done by [`crate::stop`]. A no-op in memory.
    ///
    /// ```
    /// let db = mnesia::Database::in_memory()?;
    /// db.close()?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn close(&self) -> Result<()> {
        let Some(disk) = self.disk() else { return Ok(()) };
        // No expiry delete runs into a closed log.
        let reaping = self.inner.reaper.stop_and_wait();
        let _schema = self.inner.schema.lock();
        let seq = self.inner.seq.load(Ordering::Acquire);
        let closed = disk.close(seq, |def| self.snapshot_of(def));
        if closed.is_err() && reaping {
            // Still open (a full disc, say): expiry goes on until a close succeeds.
            self.inner.reaper.rearm();
            self.start_reaper()?;
        }
        closed
    }

    /// A fresh database that lives in memory only, with the default configuration.
    ///
    /// ```
    /// let db = mnesia::Database::in_memory()?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn in_memory() -> Result<Database> {
        Database::open(Config::default())
    }

    /// The configuration this database runs with.
    ///
    /// ```
    /// let db = mnesia::Database::in_memory()?;
    /// assert_eq!(db.config().retries(), 1000);
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The clock this database goes by (see [`Config::clock`]).
    ///
    /// ```
    /// let db = mnesia::Database::in_memory()?;
    /// assert!(db.clock().now() > std::time::SystemTime::UNIX_EPOCH);
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn clock(&self) -> &Clock {
        &self.inner.config.clock
    }

    /// This node's name, for table copy options.
    ///
    /// ```
    /// let db = mnesia::Database::in_memory()?;
    /// assert_eq!(db.node(), "local@localhost");
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn node(&self) -> String {
        self.inner.config.node.clone()
    }

    /// Runs `f` with this database as the default of the current thread: table-scoped
    /// functions called inside use it. Scopes nest; the previous default comes back after.
    ///
    /// ```
    /// let db = mnesia::Database::in_memory()?;
    /// let n = db.scope(|| mnesia::system_tables().map(|t| t.len()))?;
    /// assert_eq!(n, 0);
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn scope<R>(&self, f: impl FnOnce() -> R) -> R {
        SCOPED.with(|s| s.borrow_mut().push(self.clone()));
        struct Pop;
        impl Drop for Pop {
            fn drop(&mut self) {
                SCOPED.with(|s| s.borrow_mut().pop());
            }
        }
        let _pop = Pop;
        f()
    }

    pub(crate) fn downgrade(&self) -> Weak<DbInner> {
        Arc::downgrade(&self.inner)
    }

    pub(crate) fn upgrade(weak: &Weak<DbInner>) -> Option<Database> {
        weak.upgrade().map(|inner| Database { inner })
    }

    pub(crate) fn reaper(&self) -> Arc<crate::base::reaper::Reaper> {
        Arc::clone(&self.inner.reaper)
    }

    /// Starts the reaper thread for a table with a `#[ttl]` field (once per database).
    pub(crate) fn needs_reaper(&self, facts: &RecordFacts) -> Result<()> {
        if facts.ttl_field.is_some() && self.inner.config.auto_cleanup {
            self.start_reaper()?;
        }
        Ok(())
    }

    /// Starts the reaper's thread (unless it runs), holding this database weakly.
    fn start_reaper(&self) -> Result<()> {
        let weak = self.downgrade();
        self.inner.reaper.start(self.inner.config.cleanup_interval, move || {
            let Some(db) = Database::upgrade(&weak) else { return false };
            // A failure (a disc table closed meanwhile) is retried at the next run. Paused
            // (another copy reaps for this one), it still reaps the tables this node keeps
            // for itself.
            let _ = db.reap_where(db.reaping(), false);
            true
        })
    }

    /// Whether this database's reaper removes expired records at its runs (`true` unless
    /// told otherwise). A replication layer turns it off on every copy but one (the
    /// cluster's leader): that copy's deletions reach the others (tables this node keeps
    /// for itself, [`TableOptions::local_content`](crate::TableOptions::local_content),
    /// are reaped here regardless). Reads never return an
    /// expired record either way, and [`Database::cleanup_expired`] works regardless.
    ///
    /// ```
    /// let db = mnesia::Database::in_memory()?;
    /// db.set_reaping(false);
    /// assert!(!db.reaping());
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn set_reaping(&self, on: bool) {
        self.inner.reaper.pause(!on);
    }

    /// Whether this database's reaper removes expired records at its runs (see
    /// [`Database::set_reaping`]).
    ///
    /// ```
    /// assert!(mnesia::Database::in_memory()?.reaping());
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn reaping(&self) -> bool {
        !self.inner.reaper.paused()
    }

    /// Removes every expired record of every table now, rather than at the reaper's next
    /// run; returns how many. Tables of a directory not yet claimed by their type wait.
    ///
    /// ```
    /// let db = mnesia::Database::in_memory()?;
    /// assert_eq!(db.cleanup_expired()?, 0);
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn cleanup_expired(&self) -> Result<usize> {
        self.reap_where(true, true)
    }

    /// [`Database::cleanup_expired`] of the tables whose records this node holds: every
    /// one when `asked`; else those it keeps for itself alone (`TableOptions::local_content`),
    /// those with copies on some nodes that name it first, and those of every node when
    /// `leading` (one node reaps each table).
    fn reap_where(&self, leading: bool, asked: bool) -> Result<usize> {
        let me = self.inner.config.node();
        let reaps = |t: &&Arc<dyn AnyTable>| {
            let place = t.placement();
            place.is_held()
                && (asked
                    || t.is_local()
                    || place.holders().map_or(leading, |nodes| nodes.first().is_some_and(|n| n == me)))
        };
        let tables = self.inner.tables.load_full();
        let mut removed = 0;
        for t in tables.values().filter(reaps) {
            match t.reap(self) {
                Ok(n) => removed += n,
                // Dropped meanwhile.
                Err(Error::NoSuchTable { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(removed)
    }

    /// The database's priority, for transactions that keep losing.
    pub(crate) fn priority(&self) -> &Arc<crate::base::priority::Priority> {
        &self.inner.priority
    }

    pub(crate) fn stats(&self) -> Arc<crate::base::stats::Stats> {
        Arc::clone(&self.inner.stats)
    }

    /// The sequence number of the last commit.
    pub(crate) fn last_commit(&self) -> u64 {
        self.inner.seq.load(Ordering::Acquire)
    }

    /// Whether two handles are the same database.
    pub(crate) fn same(&self, other: &Database) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    pub(crate) fn id(&self) -> u64 {
        self.inner.id
    }

    /// Takes the next commit sequence number. (`SeqCst`: see `snapshots.rs`.)
    pub(crate) fn next_seq(&self) -> u64 {
        self.inner.seq.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// The one door through which commits are logged and numbered: a commit with writes
    /// to disc tables (`ops`, one per table) is appended to the log and made as durable as
    /// the mode promises, then gets its number; one without gets a number at once.
    /// Transactions, dirty operations, clears, counters, bulk loads, restore, transform and
    /// storage moves log through here. (Bulk loads, restore, transform and `add_index` also
    /// take a bare number from `next_seq` to stamp the versions of what they load.)
    ///
    /// Refuses once the numbers near the end of a row's version (48 bits, see
    /// `schema/row.rs`): 2.8 · 10^14 commits, with 16 M left for the bare numbers taken
    /// meanwhile.
    pub(crate) fn sequence(&self, ops: &[TableOps]) -> Result<u64> {
        if self.inner.seq.load(Ordering::Relaxed) >= LAST_COMMIT {
            return Err(Error::Exhausted { what: "commit sequence numbers".into() });
        }
        match (ops.is_empty(), self.disk()) {
            (false, Some(disk)) => disk.log_commit(|| self.next_seq(), ops),
            _ => Ok(self.next_seq()),
        }
    }

    /// The database's open snapshots.
    pub(crate) fn snapshots(&self) -> &crate::base::snapshots::Snapshots {
        &self.inner.snapshots
    }

    /// Puts a new table map in place (a store created, dropped or replaced).
    pub(crate) fn put_tables(&self, next: TableMap) {
        // A number of its own (dropping and creating a table number nothing else), taken
        // before the stores are reachable: a snapshot opened before, which may have seen
        // the old stores, is older than it.
        self.inner.placed_at.fetch_max(self.next_seq(), Ordering::SeqCst);
        self.inner.tables.store(Arc::new(next));
    }

    /// Whether a snapshot at `at` may read the stores now in place: none took its place
    /// after `at` (its records would be numbered after the snapshot, without their history).
    pub(crate) fn stores_older_than(&self, at: u64) -> bool {
        self.inner.placed_at.load(Ordering::SeqCst) <= at
    }

    /// Opens a snapshot at the last commit; it closes when the guard is dropped.
    pub(crate) fn open_snapshot(&self) -> SnapshotGuard {
        let at = self.inner.snapshots.begin(&self.inner.seq);
        SnapshotGuard { db: self.clone(), at }
    }

    /// The store of table `T` (its rows) if its type has claimed it: for a caller holding the
    /// schema lock (claiming takes it).
    pub(crate) fn registered<T: Record>(&self) -> Result<Arc<TableStore<RowOf<T>>>> {
        let t =
            self.inner.tables.load().get(T::NAME).cloned().ok_or_else(|| Error::no_such_table(T::NAME))?;
        typed::<T>(t)
    }

    /// The current store of a registered table, as described by `meta` (the engine's way
    /// to the store that took the place of one it holds). Unlike [`Database::table`], it
    /// neither claims a table recovered from the directory nor refuses the table a
    /// transform is converting.
    pub(crate) fn current_store<T: StoredRecord>(&self, meta: &RecordMeta<T>) -> Result<Arc<TableStore<T>>> {
        let t = self
            .inner
            .tables
            .load()
            .get(meta.name)
            .cloned()
            .ok_or_else(|| Error::no_such_table(meta.name))?;
        let store = typed_as(meta, t)?;
        store.resume();
        Ok(store)
    }

    /// The store of table `T` (its rows), claimed for `T`.
    pub(crate) fn table<T: Record>(&self) -> Result<Arc<TableStore<RowOf<T>>>> {
        if CONVERTING.get().is_some_and(|(db, table)| db == self.id() && table == T::NAME) {
            return Err(Error::Invalid(format!(
                "table {}: transform's function must not use the table it converts (the transform holds its locks)",
                T::NAME
            )));
        }
        let known = self.inner.tables.load().get(T::NAME).cloned();
        let store = typed::<T>(match known {
            Some(t) => t,
            None => self.register(meta_of::<T>())?,
        })?;
        // Every operation starts here, before it reads.
        store.resume();
        Ok(store)
    }

    /// Claims a disc table recovered from the directory for its Rust type `T` (Mnesia's
    /// `wait_for_tables`): checks `T` against the stored definition, decodes the records and
    /// builds the indexes. Nothing changes if `T` does not match.
    fn register<R: StoredRecord>(&self, meta: &'static RecordMeta<R>) -> Result<Arc<dyn AnyTable>> {
        let name = meta.name;
        let _schema = self.inner.schema.lock();
        if let Some(t) = self.inner.tables.load().get(name) {
            return Ok(Arc::clone(t)); // registered meanwhile
        }
        let disk = self.disk().ok_or_else(|| Error::no_such_table(name))?;
        self.needs_reaper(meta)?;
        let mut pending = disk.pending.lock();
        let p = pending.get(name).ok_or_else(|| Error::no_such_table(name))?;
        let differences = p.def.differences_from(&meta.facts, meta.format, "on disc");
        if !differences.is_empty() {
            return Err(Error::SchemaMismatch { table: name.to_owned(), differences });
        }
        // The declared indexes, and those added online before (when the field can be indexed).
        let mut store = self.new_store(meta, &meta.specs_with(&p.def.indexes))?;
        store.disk_id.store(p.def.id, Ordering::Release);
        store.version.store(p.def.version, Ordering::Release);
        store.place.set_local(p.def.local_content);
        if p.def.storage == StorageType::DiscOnlyCopies {
            store = store.into_disc_only(disk.disc_only()?, p.def.id);
            store.load_disc_only()?;
        } else {
            store.load(&p.rows)?;
        }
        store.counter.fetch_max(p.counter, Ordering::AcqRel);
        // The indexes as now built (declared ones included) are what the next open rebuilds.
        self.persist_indexes(&store, &store.indexes.load().list)?;
        // The stored record format follows the type: a table stored before formats were
        // kept gets one, and one whose type changed shape compatibly (an enum gained a
        // variant) gets the new one. Only for tools: a failure to write it is not the
        // program's, and the next open tries again.
        if let Some(format) = (meta.format)().and_then(crate::disk::format::RecordFormat::into_stored)
            && p.def.format.as_ref() != Some(&format)
        {
            let id = p.def.id;
            let _ = disk.update_schema(|schema| {
                if let Some(def) = schema.tables.iter_mut().find(|t| t.id == id) {
                    def.format = Some(format);
                }
            });
        }
        pending.remove(name);
        let store: Arc<dyn AnyTable> = Arc::new(store);
        let mut next = (*self.inner.tables.load_full()).clone();
        next.insert(name.to_owned(), Arc::clone(&store));
        self.put_tables(next);
        Ok(store)
    }

    /// A new, empty store of the table `meta` describes, with the indexes `specs`, under a
    /// table id of its own.
    pub(crate) fn new_store<T: StoredRecord>(
        &self,
        meta: &'static RecordMeta<T>,
        specs: &[IndexSpec<T>],
    ) -> Result<TableStore<T>> {
        let indexes = specs.iter().map(IndexSpec::build).collect::<Result<_>>()?;
        let id = self.inner.next_table_id.fetch_add(1, Ordering::Relaxed);
        Ok(TableStore::new(self.id(), self.clock().clone(), id, meta, indexes))
    }

    /// The names of the tables, sorted.
    ///
    /// ```
    /// let db = mnesia::Database::in_memory()?;
    /// assert!(db.tables().is_empty());
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn tables(&self) -> Vec<String> {
        let mut v: Vec<String> = self.inner.tables.load().keys().cloned().collect();
        if let Some(disk) = self.disk() {
            v.extend(disk.pending.lock().keys().cloned());
        }
        v.sort();
        v
    }

    /// The table named `name`, whatever its type; a table on disc that no type has claimed
    /// yet is an error that says so.
    pub(crate) fn any_table(&self, name: &str) -> Result<Arc<dyn AnyTable>> {
        if let Some(t) = self.inner.tables.load().get(name) {
            return Ok(Arc::clone(t));
        }
        if self.disk().is_some_and(|d| d.pending.lock().contains_key(name)) {
            return Err(Error::Unclaimed { table: name.to_owned() });
        }
        Err(Error::NoSuchTable { table: name.to_owned() })
    }

    /// Whether table `T` exists.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct Item { #[key] id: u32 }
    /// let db = Database::in_memory()?;
    /// assert!(!db.exists::<Item>());
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn exists<T: Record>(&self) -> bool {
        self.inner.tables.load().contains_key(T::NAME)
            || self.disk().is_some_and(|d| d.pending.lock().contains_key(T::NAME))
    }

    /// Facts about table `T`: size, memory, type, storage, attributes, indexes.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct Item { #[key] id: u32 }
    /// let db = Database::in_memory()?;
    /// db.create_table::<Item>(TableOptions::new())?;
    /// assert_eq!(db.table_info::<Item>()?.size, 0);
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn table_info<T: Record>(&self) -> Result<TableInfo> {
        let store = self.table::<T>()?;
        Ok(self.with_disk_bytes(store.info(), store.disk_id()))
    }

    /// `info` with the size of the table's snapshot, for a `disc_copies` table.
    fn with_disk_bytes(&self, mut info: TableInfo, disk_id: Option<u64>) -> TableInfo {
        if let (Some(disk), Some(id), StorageType::DiscCopies) = (self.disk(), disk_id, info.storage_type) {
            let snapshot = crate::disk::snapshot::path(&disk.dir, id);
            info.disk_bytes = Some(std::fs::metadata(snapshot).map_or(0, |m| m.len()));
        }
        info
    }

    /// Facts about every table, sorted by name.
    ///
    /// ```
    /// let db = mnesia::Database::in_memory()?;
    /// assert!(db.table_infos().is_empty());
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn table_infos(&self) -> Vec<TableInfo> {
        let mut v: Vec<TableInfo> =
            self.inner.tables.load().values().map(|t| self.with_disk_bytes(t.info(), t.disk_id())).collect();
        if let Some(disk) = self.disk() {
            v.extend(disk.pending.lock().values().map(|p| self.with_disk_bytes(p.info(), Some(p.def.id))));
        }
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }
}

/// A table's store as its record type `T`'s.
fn typed<T: Record>(t: Arc<dyn AnyTable>) -> Result<Arc<TableStore<RowOf<T>>>> {
    typed_as(meta_of::<T>(), t)
}

/// A table's store as that of the record type `meta` describes.
fn typed_as<T: StoredRecord>(meta: &RecordMeta<T>, t: Arc<dyn AnyTable>) -> Result<Arc<TableStore<T>>> {
    // Stores of rows of one key type are one Rust type: the record type is the meta's.
    if t.record_type() != (meta.type_id)() {
        return Err(Error::TypeMismatch {
            table: meta.name.to_owned(),
            stored: t.type_name(),
            requested: (meta.type_name)(),
        });
    }
    t.as_any_arc()
        .downcast::<TableStore<T>>()
        .map_err(|_| Error::Internal(format!("table {}: a store of another kind", meta.name)))
}

static NEXT_DB_ID: AtomicU64 = AtomicU64::new(1);

static DEFAULT: ArcSwapOption<DbInner> = ArcSwapOption::const_empty();

thread_local! {
    static SCOPED: RefCell<Vec<Database>> = const { RefCell::new(Vec::new()) };
}

/// The database table-scoped functions use: the innermost [`Database::scope`] of this
/// thread, else the one [`start`] installed.
pub(crate) fn current() -> Result<Database> {
    if let Some(db) = SCOPED.with(|s| s.borrow().last().cloned()) {
        return Ok(db);
    }
    DEFAULT.load_full().map(|inner| Database { inner }).ok_or(Error::NoDatabase)
}

/// Starts a database and installs it as the process-wide default used by the table-scoped
/// functions. Fails if one is already running (call [`stop`] first).
///
/// ```
/// use mnesia::prelude::*;
///
/// #[derive(Table, Clone, Debug, Serialize, Deserialize)]
/// struct Counter { #[key] name: String, value: i64 }
///
/// let db = mnesia::start(Config::default())?;
/// Counter::create_table(TableOptions::new().ram_copies([db.node()]))?;
/// Counter::write(Counter { name: "hits".into(), value: 1 })?;
/// assert_eq!(Counter::read(&"hits".to_string())?.map(|c| c.value), Some(1));
/// mnesia::stop()?;
/// # Ok::<(), mnesia::Error>(())
/// ```
pub fn start(config: Config) -> Result<Database> {
    let db = Database::open(config)?;
    let prev = DEFAULT.compare_and_swap(&None::<Arc<DbInner>>, Some(Arc::clone(&db.inner)));
    if prev.is_some() {
        return Err(Error::AlreadyRunning);
    }
    Ok(db)
}

/// Stops the process-wide default database: closes it (see [`Database::close`]). Its
/// in-memory tables are gone once no handle is left.
///
/// ```
/// mnesia::start(mnesia::Config::default())?;
/// mnesia::stop()?;
/// assert!(mnesia::stop().is_err());
/// # Ok::<(), mnesia::Error>(())
/// ```
pub fn stop() -> Result<()> {
    match DEFAULT.swap(None) {
        Some(inner) => Database { inner }.close(),
        None => Err(Error::NoDatabase),
    }
}

/// Facts about every table of the current database.
///
/// ```
/// let db = mnesia::Database::in_memory()?;
/// assert!(db.scope(mnesia::system_tables)?.is_empty());
/// # Ok::<(), mnesia::Error>(())
/// ```
pub fn system_tables() -> Result<Vec<TableInfo>> {
    Ok(current()?.table_infos())
}

/// Removes every expired record of the current database's tables now; returns how many.
/// See [`Database::cleanup_expired`].
///
/// ```
/// let db = mnesia::Database::in_memory()?;
/// assert_eq!(db.scope(mnesia::cleanup_expired)?, 0);
/// # Ok::<(), mnesia::Error>(())
/// ```
pub fn cleanup_expired() -> Result<usize> {
    current()?.cleanup_expired()
}

impl Database {
    /// The sequencer, unless this thread is applying an ordered record here.
    pub(crate) fn sequencer(&self) -> Option<Arc<Box<dyn crate::engine::sequencer::Sequencer>>> {
        if !self.ordering() {
            return None;
        }
        let sequencer = self.inner.ordered.sequencer.load_full()?;
        (!crate::engine::sequencer::applying(self.id())).then_some(sequencer)
    }

    /// Whether commits are ordered by a sequencer.
    pub(crate) fn ordering(&self) -> bool {
        self.inner.ordered.on.load(Ordering::Acquire)
    }

    /// Whether commits to a table are ordered: by a sequencer, unless the table is one this
    /// node keeps for itself (`local`: `TableOptions::local_content`).
    pub(crate) fn orders(&self, local: bool) -> bool {
        self.ordering() && !local
    }

    /// [`Database::sequencer`] for a table, unless it is one this node keeps for itself.
    pub(crate) fn sequencer_of(
        &self,
        local: bool,
    ) -> Option<Arc<Box<dyn crate::engine::sequencer::Sequencer>>> {
        self.sequencer().filter(|_| !local)
    }
}

thread_local! {
    /// The table (database id, name) whose records this thread converts, while
    /// `transform`'s function runs with the table's commit locks held: an operation on it
    /// there would wait for them forever.
    static CONVERTING: std::cell::Cell<Option<(u64, &'static str)>> = const { std::cell::Cell::new(None) };
}

/// While alive, the thread converts the records of a table (see [`Database::converting`]).
pub(crate) struct Converting(Option<(u64, &'static str)>);

impl Database {
    /// Marks the thread as converting `table`'s records until the guard is dropped: the
    /// table's operations on this thread fail meanwhile, instead of waiting forever.
    pub(crate) fn converting(&self, table: &'static str) -> Converting {
        Converting(CONVERTING.replace(Some((self.id(), table))))
    }
}

impl Drop for Converting {
    fn drop(&mut self) {
        CONVERTING.set(self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::table::Table;
    use crate::schema::options::TableOptions;
    use crate::testing::{Rec, rec};

    #[test]
    fn commits_past_the_last_version_are_refused_and_lose_nothing() -> Result<()> {
        let db = Database::in_memory()?;
        db.scope(|| -> Result<()> {
            Rec::create_table(TableOptions::new())?;
            Rec::write(rec(1, "kept", 1))?;
            db.inner.seq.store(LAST_COMMIT, Ordering::SeqCst);
            let refused = Rec::write(rec(1, "lost", 2));
            assert!(matches!(refused, Err(Error::Exhausted { .. })), "{refused:?}");
            assert!(matches!(Rec::write(rec(2, "new", 0)), Err(Error::Exhausted { .. })));
            assert_eq!(Rec::read(&1)?.map(|r| r.tag), Some("kept".to_string()));
            assert_eq!(Rec::read(&2)?, None);
            Ok(())
        })
    }
}
