//! The database: its tables, its configuration, and the default database that table-scoped
//! functions (`User::write(..)`) use.

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use crossbeam_utils::CachePadded;
use parking_lot::Mutex;

use crate::clock::Clock;
use crate::disk::Disk;
use crate::disk::record::TableOps;
use crate::disk::schema::TableDef;
use crate::disk::wal::Durability;
use crate::error::{Error, Result};
use crate::index::IndexSpec;
use crate::lock::{HeldLocks, LockReq, lock_order};
use crate::store::{IndexList, TableStore};
use crate::table::{StorageType, Table, TableInfo, TableType};

/// How a database runs.
///
/// ```
/// use mnesia::Config;
/// let config = Config::default().max_retries(50);
/// assert_eq!(config.retries(), 50);
/// ```
#[derive(Clone, Debug)]
pub struct Config {
    max_retries: u32,
    escalate_after: u32,
    node: String,
    dir: Option<PathBuf>,
    durability: Durability,
    checkpoint_bytes: u64,
    event_buffer: usize,
    cleanup_interval: Duration,
    auto_cleanup: bool,
    clock: Clock,
    slow_transaction: Duration,
    conflicts_to_report: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_retries: 1000,
            escalate_after: 8,
            node: "local@localhost".to_owned(),
            dir: None,
            durability: Durability::Immediate,
            checkpoint_bytes: 64 << 20,
            event_buffer: 10_000,
            cleanup_interval: Duration::from_secs(1),
            auto_cleanup: true,
            clock: Clock::system(),
            slow_transaction: Duration::from_millis(100),
            conflicts_to_report: 10,
        }
    }
}

impl Config {
    /// How many times a transaction runs before giving up with [`Error::TooManyRetries`]
    /// when it keeps conflicting with others (default 1000; at least 1).
    ///
    /// ```
    /// let c = mnesia::Config::default().max_retries(3);
    /// assert_eq!(c.retries(), 3);
    /// ```
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n.max(1);
        self
    }

    /// The configured retry bound.
    ///
    /// ```
    /// assert_eq!(mnesia::Config::default().retries(), 1000);
    /// ```
    pub fn retries(&self) -> u32 {
        self.max_retries
    }

    /// After how many conflicts in a row a transaction *escalates* (default 8; at least 1):
    /// its next attempts run with priority, and commits of other threads that write to
    /// the tables its last attempt touched wait until it is done, so it cannot lose again
    /// to them. A long transaction (one whose losing attempt scanned a table or read 64
    /// records or more) escalates after its first conflict. One transaction of a database
    /// holds the priority at a time; readers never wait for it.
    ///
    /// ```
    /// let c = mnesia::Config::default().escalate_after(1);
    /// assert_eq!(c.escalation_threshold(), 1);
    /// ```
    pub fn escalate_after(mut self, conflicts: u32) -> Self {
        self.escalate_after = conflicts.max(1);
        self
    }

    /// The configured escalation threshold.
    ///
    /// ```
    /// assert_eq!(mnesia::Config::default().escalation_threshold(), 8);
    /// ```
    pub fn escalation_threshold(&self) -> u32 {
        self.escalate_after
    }

    /// This node's name (`local@localhost` by default), as used in table copy options.
    ///
    /// ```
    /// let c = mnesia::Config::default().node_name("a@host");
    /// assert_eq!(c.node(), "a@host");
    /// ```
    pub fn node_name(mut self, name: impl Into<String>) -> Self {
        self.node = name.into();
        self
    }

    /// The node name.
    ///
    /// ```
    /// assert_eq!(mnesia::Config::default().node(), "local@localhost");
    /// ```
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The database directory, made with [`crate::Schema::create`]: `disc_copies` tables
    /// live there. Without one the database is in memory only.
    ///
    /// ```
    /// let c = mnesia::Config::default().dir("data");
    /// assert_eq!(c.directory(), Some(std::path::Path::new("data")));
    /// ```
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// The database directory, if any.
    ///
    /// ```
    /// assert!(mnesia::Config::default().directory().is_none());
    /// ```
    pub fn directory(&self) -> Option<&std::path::Path> {
        self.dir.as_deref()
    }

    /// When commits to disc tables become durable (default [`Durability::Immediate`]).
    ///
    /// ```
    /// use mnesia::{Config, Durability};
    /// let c = Config::default().durability(Durability::None);
    /// assert_eq!(c.durability_mode(), Durability::None);
    /// ```
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// The configured durability.
    ///
    /// ```
    /// assert_eq!(mnesia::Config::default().durability_mode(), mnesia::Durability::Immediate);
    /// ```
    pub fn durability_mode(&self) -> Durability {
        self.durability
    }

    /// How many unread events a table (or the system events) keeps for its subscribers
    /// before the oldest are dropped and counted (`Event::Lagged`); default 10 000. Events a
    /// reader has taken and not read yet are not counted; `Cleared` and `Dropped` are never
    /// dropped.
    ///
    /// ```
    /// let c = mnesia::Config::default().event_buffer(100);
    /// assert_eq!(c.events_buffered(), 100);
    /// ```
    pub fn event_buffer(mut self, events: usize) -> Self {
        self.event_buffer = events.max(1);
        self
    }

    /// The configured subscriber buffer.
    ///
    /// ```
    /// assert_eq!(mnesia::Config::default().events_buffered(), 10_000);
    /// ```
    pub fn events_buffered(&self) -> usize {
        self.event_buffer
    }

    /// Log size past which a checkpoint folds the log into table snapshots (default 64 MiB;
    /// like Mnesia's `dump_log_write_threshold`).
    ///
    /// ```
    /// let c = mnesia::Config::default().checkpoint_after_bytes(1 << 20);
    /// assert_eq!(c.checkpoint_threshold(), 1 << 20);
    /// ```
    pub fn checkpoint_after_bytes(mut self, bytes: u64) -> Self {
        self.checkpoint_bytes = bytes.max(1);
        self
    }

    /// The configured checkpoint threshold, in bytes of log.
    ///
    /// ```
    /// assert_eq!(mnesia::Config::default().checkpoint_threshold(), 64 << 20);
    /// ```
    pub fn checkpoint_threshold(&self) -> u64 {
        self.checkpoint_bytes
    }

    /// How often the reaper removes expired records (default 1 s). Reads never return an
    /// expired record in between: the interval only bounds how long one takes up memory.
    ///
    /// ```
    /// use std::time::Duration;
    /// let c = mnesia::Config::default().cleanup_interval(Duration::from_millis(100));
    /// assert_eq!(c.cleanup_every(), Duration::from_millis(100));
    /// ```
    pub fn cleanup_interval(mut self, every: Duration) -> Self {
        self.cleanup_interval = every.max(Duration::from_millis(1));
        self
    }

    /// The reaper's interval.
    ///
    /// ```
    /// assert_eq!(mnesia::Config::default().cleanup_every(), std::time::Duration::from_secs(1));
    /// ```
    pub fn cleanup_every(&self) -> Duration {
        self.cleanup_interval
    }

    /// Whether a reaper thread removes expired records on its own (default `true`). When
    /// off, [`Database::cleanup_expired`] does it on demand; reads never return an expired
    /// record either way.
    ///
    /// ```
    /// let c = mnesia::Config::default().auto_cleanup(false);
    /// assert!(!c.cleans_up());
    /// ```
    pub fn auto_cleanup(mut self, on: bool) -> Self {
        self.auto_cleanup = on;
        self
    }

    /// Whether the reaper thread runs.
    ///
    /// ```
    /// assert!(mnesia::Config::default().cleans_up());
    /// ```
    pub fn cleans_up(&self) -> bool {
        self.auto_cleanup
    }

    /// The clock that decides when `#[ttl]` records expire (default: the wall clock, see
    /// [`Clock::system`]). A [`ManualClock`](crate::ManualClock) makes expiry exact and
    /// instant in tests.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// let at = SystemTime::UNIX_EPOCH + Duration::from_secs(60);
    /// let db = mnesia::Database::open(mnesia::Config::default().clock(mnesia::ManualClock::new(at)))?;
    /// assert_eq!(db.clock().now(), at);
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn clock(mut self, clock: impl Into<Clock>) -> Self {
        self.clock = clock.into();
        self
    }

    /// A transaction that takes this long or longer, from its first attempt to its end
    /// (committed, failed or given up), is reported as a `tracing` warning (target `mnesia::transaction`; default 100 ms).
    /// Nothing is measured when no subscriber listens.
    ///
    /// ```
    /// use std::time::Duration;
    /// let c = mnesia::Config::default().slow_transaction(Duration::from_millis(20));
    /// assert_eq!(c.slow_transaction_threshold(), Duration::from_millis(20));
    /// ```
    pub fn slow_transaction(mut self, after: Duration) -> Self {
        self.slow_transaction = after;
        self
    }

    /// The duration past which a transaction is reported as slow.
    ///
    /// ```
    /// assert_eq!(mnesia::Config::default().slow_transaction_threshold(), std::time::Duration::from_millis(100));
    /// ```
    pub fn slow_transaction_threshold(&self) -> Duration {
        self.slow_transaction
    }

    /// A transaction that has lost this many conflicts in a row is reported as a `tracing`
    /// warning (target `mnesia::transaction`, once per transaction; default 10; at least 1).
    ///
    /// ```
    /// let c = mnesia::Config::default().report_conflicts_after(3);
    /// assert_eq!(c.conflicts_reported_after(), 3);
    /// ```
    pub fn report_conflicts_after(mut self, conflicts: u32) -> Self {
        self.conflicts_to_report = conflicts.max(1);
        self
    }

    /// How many conflicts in a row make a transaction reported.
    ///
    /// ```
    /// assert_eq!(mnesia::Config::default().conflicts_reported_after(), 10);
    /// ```
    pub fn conflicts_reported_after(&self) -> u32 {
        self.conflicts_to_report
    }
}

/// What the registry knows of a table without knowing its record type.
pub(crate) trait AnyTable: Send + Sync {
    fn as_any_arc(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
    fn type_name(&self) -> &'static str;
    fn info(&self) -> TableInfo;
    /// The table's records encoded for a snapshot, if it is a disc table.
    fn snapshot(&self) -> Option<Result<(u64, Vec<crate::disk::record::SnapshotEntry>)>>;
    /// The table's id in the schema, if it is on disc.
    fn disk_id(&self) -> Option<u64>;
    /// Where the table keeps its records.
    fn storage(&self) -> StorageType;
    /// Empties the table (it is dropped, or its database is gone).
    fn release(&self);
    /// Changes the table as a whole, here (an ordered copy applying the change's record):
    /// clears it, drops it, adds or removes an index.
    fn change_whole(self: Arc<Self>, db: &Database, op: &crate::commit::WholeTable) -> Result<()>;
    /// Drops the record versions kept for snapshots that `floor` says no open one needs.
    fn prune_history(&self, floor: &dyn Fn() -> u64);
    /// Removes the table's expired records; returns how many.
    fn reap(&self, db: &Database) -> Result<usize>;
    /// Shared requests for every commit lock of the table's records (a backup's cut).
    fn backup_locks<'a>(&'a self, out: &mut Vec<LockReq<'a>>);
    /// Starts a backup cut at `seq` (the caller holds every commit lock of the table) and
    /// returns the table's definition and counter.
    fn begin_backup(&self, seq: u64) -> crate::backup::BackupTable;
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
    /// Writes a backup's records into the transaction; returns how many.
    fn restore_into(
        &self,
        tx: &mut crate::tx::Tx,
        entries: &[crate::disk::record::SnapshotEntry],
        mode: crate::backup::RestoreMode,
    ) -> Result<u64>;
    /// Moves the auto-increment counter past `counter`.
    fn raise_counter(&self, counter: u64);
    /// The table's index list, to lend to [`AnyTable::exclusive_locks`].
    fn index_list(&self) -> Arc<dyn Any + Send + Sync>;
    /// A page of records as JSON (in the database's scope).
    fn browse(&self, browse: &crate::browse::Browse) -> Result<crate::browse::Page>;
    /// A subscription to the table's events, as JSON.
    fn subscribe_json(&self, capacity: usize) -> crate::browse::JsonSubscription;
    /// Writes a commit record's changes to this table into the transaction.
    fn apply_change(&self, tx: &mut crate::tx::Tx, writes: &[crate::commit::KeyChange]) -> Result<()>;
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
        backup: &crate::backup::BackupTable,
        recreate: bool,
    ) -> Result<Box<dyn crate::bulk::Loader>>;
}

impl<T: Table> AnyTable for TableStore<T> {
    fn as_any_arc(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }

    fn type_name(&self) -> &'static str {
        std::any::type_name::<T>()
    }

    fn disk_id(&self) -> Option<u64> {
        TableStore::disk_id(self)
    }

    fn storage(&self) -> StorageType {
        TableStore::storage(self)
    }

    fn release(&self) {
        TableStore::release(self);
    }

    fn change_whole(self: Arc<Self>, db: &Database, op: &crate::commit::WholeTable) -> Result<()> {
        use crate::commit::WholeTable;
        match op {
            // (Made by `Database::apply_commit`: there is no table to ask yet.)
            WholeTable::Create { .. } => Err(Error::TableExists { table: T::NAME.to_owned() }),
            WholeTable::Clear => db.clear_store(&self),
            WholeTable::Drop => db.drop_store(&self),
            WholeTable::AddIndex { field, unique } => {
                let spec = T::index_spec_for(field, *unique).ok_or_else(|| {
                    crate::commit::misfit(T::NAME, format!("an index on `{field}`, which it cannot index"))
                })?;
                db.add_index_to(&self, spec)
            }
            WholeTable::RemoveIndex { field } => db.remove_index_from(&self, field),
        }
    }

    fn prune_history(&self, floor: &dyn Fn() -> u64) {
        TableStore::prune_history(self, floor);
    }

    fn backup_locks<'a>(&'a self, out: &mut Vec<LockReq<'a>>) {
        for (i, lock) in self.all_commit_locks() {
            let order = lock_order(self.id, 0, u16::try_from(i).unwrap_or(u16::MAX));
            out.push(LockReq { order, exclusive: false, lock });
        }
    }

    fn begin_backup(&self, seq: u64) -> crate::backup::BackupTable {
        let infos = self.index_infos();
        let mut def = TableDef::untraced::<T>(self.disk_id().unwrap_or(0), self.storage(), infos);
        def.version = self.version.load(Ordering::Acquire);
        let counter = self.counter.load(Ordering::Acquire);
        let size_hint = if def.storage == StorageType::DiscOnlyCopies { 0 } else { self.len() as u64 };
        self.begin_cut(seq);
        crate::backup::BackupTable { def, counter, size_hint }
    }

    fn backup_stream(
        &self,
        out: &mut crate::disk::record::EntryEncoder,
        flush: &mut dyn FnMut(&mut crate::disk::record::EntryEncoder) -> Result<()>,
    ) -> Result<u64> {
        let Some(cut) = self.cut.load_full() else {
            return Err(Error::Internal(format!("table {}: no backup in progress", T::NAME)));
        };
        let start = out.count;
        for shard in 0..self.shard_count() {
            // A disc-only table whose file failed lacks commits the log has.
            self.healthy()?;
            self.cut_shard(&cut, shard, out)?;
            flush(out)?;
        }
        self.healthy()?;
        Ok(out.count - start)
    }

    fn end_backup(&self) {
        self.end_cut();
    }

    fn check_backup(&self, def: &TableDef) -> Result<()> {
        let differences = def.differences::<T>();
        if differences.is_empty() {
            Ok(())
        } else {
            Err(Error::SchemaMismatch { table: T::NAME.to_owned(), differences })
        }
    }

    fn restore_into(
        &self,
        tx: &mut crate::tx::Tx,
        entries: &[crate::disk::record::SnapshotEntry],
        mode: crate::backup::RestoreMode,
    ) -> Result<u64> {
        use crate::disk::record::Logged;
        use crate::store::Write;
        let bad = |e: postcard::Error| {
            Error::codec(format!("table {}: a record of the backup does not decode", T::NAME), e)
        };
        let part = tx.table::<T>()?;
        let existing = if mode == crate::backup::RestoreMode::ClearAndLoad {
            part.select_with(&crate::filter::Filter::all(), |r| r.key().clone())
        } else {
            Vec::new()
        };
        let mut restored = std::collections::HashSet::with_capacity(entries.len());
        let mut n = 0;
        for e in entries {
            let key: T::Key = postcard::from_bytes(&e.key).map_err(bad)?;
            let mut recs: Vec<T> = match &e.value {
                Logged::Put(b) => vec![postcard::from_bytes::<T>(b).map_err(bad)?],
                Logged::Group(bs) => {
                    bs.iter().map(|b| postcard::from_bytes::<T>(b)).collect::<Result<_, _>>().map_err(bad)?
                }
                Logged::Delete => continue,
            };
            if recs.iter().any(|r| r.key() != &key) || (T::TYPE != TableType::Bag && recs.len() != 1) {
                return Err(Error::Invalid(format!(
                    "table {}: the backup's records under the key {key:?} do not fit the table",
                    T::NAME
                )));
            }
            for r in &recs {
                // Ids written move the counter past them, as any write does.
                if let Some(id) = r.auto_id() {
                    self.counter.fetch_max(id, Ordering::AcqRel);
                }
            }
            n += recs.len() as u64;
            restored.insert(key.clone());
            let write = if T::TYPE != TableType::Bag {
                Write::Put(recs.remove(0))
            } else if mode == crate::backup::RestoreMode::KeepAndAdd {
                // A bag keeps its records and adds the backup's.
                let mut group = part.read_group(&key);
                let have: Vec<Vec<u8>> =
                    group.iter().map(crate::disk::record::encode).collect::<Result<_>>()?;
                for r in recs {
                    if !have.contains(&crate::disk::record::encode(&r)?) {
                        group.push(r);
                    }
                }
                Write::Group(group)
            } else {
                Write::Group(recs)
            };
            part.set(key, write);
        }
        for k in existing {
            if !restored.contains(&k) {
                part.set(k, Write::Delete);
            }
        }
        Ok(n)
    }

    fn raise_counter(&self, counter: u64) {
        self.counter.fetch_max(counter, Ordering::AcqRel);
    }

    fn index_list(&self) -> Arc<dyn Any + Send + Sync> {
        self.indexes.load_full()
    }

    fn exclusive_locks<'a>(
        &'a self,
        indexes: &'a (dyn Any + Send + Sync),
        out: &mut Vec<LockReq<'a>>,
    ) -> Result<()> {
        let indexes = indexes.downcast_ref::<IndexList<T>>().ok_or_else(|| {
            Error::Invalid(format!("table {}: an index list of another table was given", T::NAME))
        })?;
        push_exclusive_locks(self, indexes, out);
        Ok(())
    }

    fn restore_loader(
        self: Arc<Self>,
        db: &Database,
        seq: u64,
        backup: &crate::backup::BackupTable,
        recreate: bool,
    ) -> Result<Box<dyn crate::bulk::Loader>> {
        let shape = recreate.then_some((backup.def.indexes.as_slice(), backup.def.storage));
        Ok(Box::new(crate::bulk::TableLoader::shaped(
            db,
            self,
            seq,
            backup.size_hint,
            backup.counter,
            shape,
        )?))
    }

    fn reap(&self, db: &Database) -> Result<usize> {
        if self.expiry.is_none() {
            return Ok(0);
        }
        crate::expiring::reap::<T>(db)
    }

    fn browse(&self, browse: &crate::browse::Browse) -> Result<crate::browse::Page> {
        crate::browse::page::<T>(browse)
    }

    fn subscribe_json(&self, capacity: usize) -> crate::browse::JsonSubscription {
        crate::browse::JsonSubscription::new(self.subs.add(false, capacity))
    }

    fn apply_change(&self, tx: &mut crate::tx::Tx, writes: &[crate::commit::KeyChange]) -> Result<()> {
        use crate::commit::{Content, misfit};
        use crate::store::Write;
        /// Decodes one value, refusing bytes left over (a record of a shorter type).
        fn whole<V: serde::de::DeserializeOwned>(table: &str, bytes: &[u8]) -> Result<V> {
            match postcard::take_from_bytes::<V>(bytes) {
                Ok((v, [])) => Ok(v),
                Ok(_) => Err(misfit(table, "bytes left over after a value: another record type")),
                Err(e) => Err(misfit(table, e)),
            }
        }
        let bag = T::TYPE == TableType::Bag;
        // Every write decoded and checked before any is made.
        let mut decoded = Vec::with_capacity(writes.len());
        let mut claims = Vec::new();
        for w in writes {
            let key: T::Key = whole::<T::Key>(T::NAME, &w.key)?;
            if let Content::Whole(op) = &w.value {
                return Err(misfit(T::NAME, format!("{op:?} among other writes")));
            }
            if let Content::Claim(id) = w.value {
                if T::key_for_id(id).as_ref() != Some(&key) {
                    return Err(misfit(T::NAME, format!("id {id} claimed under the key {key:?}")));
                }
                claims.push(id);
                continue;
            }
            let records: Vec<T> = match &w.value {
                Content::Put(_) if bag => return Err(misfit(T::NAME, "one record for a key of a bag")),
                Content::Group(_) if !bag => {
                    return Err(misfit(T::NAME, "a group of records for a key of a set"));
                }
                Content::Put(b) => vec![whole(T::NAME, b)?],
                Content::Group(bs) => bs.iter().map(|b| whole(T::NAME, b)).collect::<Result<_>>()?,
                Content::Delete | Content::Claim(_) | Content::Whole(_) => Vec::new(),
            };
            if records.iter().any(|r| r.key() != &key) {
                return Err(misfit(T::NAME, format!("a record filed under another key than {key:?}")));
            }
            let write = match (&w.value, w.expired) {
                (_, true) => Write::Expire(records),
                (Content::Delete, false) => Write::Delete,
                (Content::Put(_), false) => match records.into_iter().next() {
                    Some(r) => Write::Put(r),
                    None => Write::Delete,
                },
                (Content::Group(_), false) => Write::Group(records),
                (Content::Claim(_) | Content::Whole(_), false) => continue,
            };
            decoded.push((key, write));
        }
        let part = tx.table::<T>()?;
        for id in claims {
            part.store.counter.fetch_max(id, Ordering::AcqRel);
        }
        for (key, write) in decoded {
            // Ids written move the counter past them, as any write does.
            for id in write.records().iter().filter_map(Table::auto_id) {
                part.store.counter.fetch_max(id, Ordering::AcqRel);
            }
            part.set(key, write);
        }
        Ok(())
    }

    fn snapshot(&self) -> Option<Result<(u64, Vec<crate::disk::record::SnapshotEntry>)>> {
        // The counter first: ids handed out while the copy is taken are above it anyway.
        let counter = self.counter.load(Ordering::Acquire);
        self.disk_id().map(|_| self.snapshot_entries().map(|e| (counter, e)))
    }

    fn info(&self) -> TableInfo {
        TableInfo {
            name: T::NAME.to_owned(),
            size: self.len(),
            memory: self.memory(),
            table_type: self.kind,
            storage_type: self.storage(),
            attributes: T::FIELDS.iter().map(|f| f.name.to_owned()).collect(),
            key: T::FIELDS.get(T::KEY_POSITION).map(|f| f.name.to_owned()).unwrap_or_default(),
            indexes: self.index_infos(),
            auto_increment: T::AUTO_INCREMENT,
            ttl_field: T::TTL_FIELD.map(str::to_owned),
            default_ttl: T::DEFAULT_TTL,
            expiring: self.expiry.as_ref().map_or(0, crate::ttl::ExpiryIndex::len),
            counter: self.counter.load(Ordering::Acquire),
            version: self.version.load(Ordering::Acquire),
            disk_bytes: None,
        }
    }
}

pub(crate) type TableMap = HashMap<String, Arc<dyn AnyTable>>;

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
    reaper: Arc<crate::expiring::Reaper>,
    pub(crate) system: Arc<crate::system::SystemHub>,
    stats: Arc<crate::info::Stats>,
    /// Which transaction, if any, runs with priority (see `priority.rs`).
    priority: Arc<crate::priority::Priority>,
    /// The snapshots transactions read at (see `snapshots.rs`).
    snapshots: crate::snapshots::Snapshots,
    /// Where commits are handed as records, if anywhere (see `commit.rs`).
    pub(crate) sink: ArcSwapOption<crate::commit::Sink>,
    /// Whether `sink` holds one (checked first: the common case pays no more).
    pub(crate) has_sink: std::sync::atomic::AtomicBool,
    /// Where commits are ordered, if they are (see `ordered.rs`).
    pub(crate) ordered: crate::ordered::Ordered,
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
        let system: Arc<crate::system::SystemHub> = Arc::default();
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
                snapshots: crate::snapshots::Snapshots::default(),
                placed_at: AtomicU64::new(0),
                sink: ArcSwapOption::empty(),
                has_sink: std::sync::atomic::AtomicBool::new(false),
                ordered: crate::ordered::Ordered::default(),
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
                    if log_bytes > threshold.saturating_mul(2) {
                        db.inner.system.overload(log_bytes);
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
    /// reads less log. Runs on its own in the background too; a no-op in memory.
    ///
    /// ```
    /// let db = mnesia::Database::in_memory()?;
    /// db.checkpoint()?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn checkpoint(&self) -> Result<()> {
        let Some(disk) = self.disk() else { return Ok(()) };
        // No table is created, claimed, dropped or moved while the checkpoint runs.
        let _schema = self.inner.schema.lock();
        let seq = self.inner.seq.load(Ordering::Acquire);
        disk.checkpoint(seq, |def| self.snapshot_of(def))?;
        self.inner.system.publish(crate::system::SystemEvent::CheckpointDone { seq });
        Ok(())
    }

    /// Subscribes to the database's [`crate::SystemEvent`]s: tables created and dropped,
    /// checkpoints, an overloaded log.
    ///
    /// ```
    /// let db = mnesia::Database::in_memory()?;
    /// let events = db.subscribe_system();
    /// # let _ = events;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn subscribe_system(&self) -> crate::system::SystemSubscription {
        self.inner.system.add(self.inner.config.event_buffer)
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
            self.inner.reaper.restart(self, self.inner.config.cleanup_interval)?;
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

    pub(crate) fn reaper(&self) -> Arc<crate::expiring::Reaper> {
        Arc::clone(&self.inner.reaper)
    }

    /// Starts the reaper thread for a table with a `#[ttl]` field (once per database).
    pub(crate) fn needs_reaper<T: Table>(&self) -> Result<()> {
        if T::TTL_FIELD.is_some() && self.inner.config.auto_cleanup {
            self.inner.reaper.start(self, self.inner.config.cleanup_interval)?;
        }
        Ok(())
    }

    /// Whether this database's reaper removes expired records at its runs (`true` unless
    /// told otherwise). A replication layer turns it off on every copy but one (the
    /// cluster's leader): that copy's deletions reach the others. Reads never return an
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
        let tables = self.inner.tables.load_full();
        let mut removed = 0;
        for t in tables.values() {
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
    pub(crate) fn priority(&self) -> &Arc<crate::priority::Priority> {
        &self.inner.priority
    }

    pub(crate) fn stats(&self) -> Arc<crate::info::Stats> {
        Arc::clone(&self.inner.stats)
    }

    /// Facts about the database: version, node, directory, tables, what transactions did,
    /// the commit log (Mnesia's `system_info`).
    ///
    /// ```
    /// let db = mnesia::Database::in_memory()?;
    /// let info = db.system_info();
    /// assert_eq!((info.directory, info.log), (None, None));
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn system_info(&self) -> crate::info::SystemInfo {
        let config = &self.inner.config;
        let log = self.disk().map(|d| crate::info::LogInfo {
            bytes_since_checkpoint: d.wal.bytes_since_roll(),
            checkpoint_after_bytes: config.checkpoint_bytes,
            durability: format!("{:?}", config.durability),
        });
        crate::info::SystemInfo::new(
            config.node.clone(),
            config.dir.clone(),
            self.table_infos(),
            self.last_commit(),
            &self.inner.stats,
            log,
            self.inner.system.cluster(),
        )
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
    pub(crate) fn sequence(&self, ops: &[TableOps]) -> Result<u64> {
        match (ops.is_empty(), self.disk()) {
            (false, Some(disk)) => disk.log_commit(|| self.next_seq(), ops),
            _ => Ok(self.next_seq()),
        }
    }

    /// The database's open snapshots.
    pub(crate) fn snapshots(&self) -> &crate::snapshots::Snapshots {
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

    /// The typed store of table `T` if its type has claimed it: for a caller holding the
    /// schema lock (claiming takes it).
    pub(crate) fn registered<T: Table>(&self) -> Result<Arc<TableStore<T>>> {
        let t =
            self.inner.tables.load().get(T::NAME).cloned().ok_or_else(|| Error::no_such_table(T::NAME))?;
        typed(t)
    }

    /// The typed store of table `T`.
    pub(crate) fn table<T: Table>(&self) -> Result<Arc<TableStore<T>>> {
        let known = self.inner.tables.load().get(T::NAME).cloned();
        let store = typed::<T>(match known {
            Some(t) => t,
            None => self.register::<T>()?,
        })?;
        // Every operation starts here, before it reads.
        store.resume();
        Ok(store)
    }

    /// Claims a disc table recovered from the directory for its Rust type `T` (Mnesia's
    /// `wait_for_tables`): checks `T` against the stored definition, decodes the records and
    /// builds the indexes. Nothing changes if `T` does not match.
    fn register<T: Table>(&self) -> Result<Arc<dyn AnyTable>> {
        let _schema = self.inner.schema.lock();
        if let Some(t) = self.inner.tables.load().get(T::NAME) {
            return Ok(Arc::clone(t)); // registered meanwhile
        }
        let disk = self.disk().ok_or_else(|| Error::no_such_table(T::NAME))?;
        self.needs_reaper::<T>()?;
        let mut pending = disk.pending.lock();
        let p = pending.get(T::NAME).ok_or_else(|| Error::no_such_table(T::NAME))?;
        let differences = p.def.differences::<T>();
        if !differences.is_empty() {
            return Err(Error::SchemaMismatch { table: T::NAME.to_owned(), differences });
        }
        // The declared indexes, and those added online before (when the field can be indexed).
        let specs = crate::index::specs_with::<T>(&p.def.indexes);
        let indexes: Vec<_> = specs.iter().map(IndexSpec::build).collect();
        let id = self.inner.next_table_id.fetch_add(1, Ordering::Relaxed);
        let mut store = TableStore::<T>::new(self.id(), self.clock().clone(), id, T::TYPE, indexes);
        store.disk_id.store(p.def.id, Ordering::Release);
        store.version.store(p.def.version, Ordering::Release);
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
        if let Some(format) = crate::disk::format::RecordFormat::stored::<T>()
            && p.def.format.as_ref() != Some(&format)
        {
            let id = p.def.id;
            let _ = disk.update_schema(|schema| {
                if let Some(def) = schema.tables.iter_mut().find(|t| t.id == id) {
                    def.format = Some(format);
                }
            });
        }
        pending.remove(T::NAME);
        let store: Arc<dyn AnyTable> = Arc::new(store);
        let mut next = (*self.inner.tables.load_full()).clone();
        next.insert(T::NAME.to_owned(), Arc::clone(&store));
        self.put_tables(next);
        Ok(store)
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
    pub fn exists<T: Table>(&self) -> bool {
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
    pub fn table_info<T: Table>(&self) -> Result<TableInfo> {
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

    /// Runs `f` as one serializable transaction on this database. `f` gets a handle with
    /// the same operations as the table-scoped functions, which also join this transaction
    /// when called inside it. On a conflict with another transaction `f` runs again (up to
    /// [`Config::max_retries`] times); when `f` returns `Err` every write is rolled back and
    /// the error is returned; a panic rolls back and propagates.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct Item { #[key] id: u32, n: i64 }
    /// let db = Database::in_memory()?;
    /// db.create_table::<Item>(TableOptions::new())?;
    /// let total = db.transaction(|tx| {
    ///     tx.write(Item { id: 1, n: 5 })?;
    ///     tx.write(Item { id: 2, n: 7 })?;
    ///     Ok::<_, mnesia::Error>(tx.list::<Item>()?.iter().map(|i| i.n).sum::<i64>())
    /// })?;
    /// assert_eq!(total, 12);
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn transaction<R, E: From<Error>>(
        &self,
        mut f: impl FnMut(&crate::Transaction) -> Result<R, E>,
    ) -> Result<R, E> {
        let handle = crate::Transaction::new();
        crate::context::transact(self.clone(), || f(&handle))
    }
}

/// A table's store as its record type `T`.
fn typed<T: Table>(t: Arc<dyn AnyTable>) -> Result<Arc<TableStore<T>>> {
    let stored = t.type_name();
    t.as_any_arc().downcast::<TableStore<T>>().map_err(|_| Error::TypeMismatch {
        table: T::NAME.to_owned(),
        stored,
        requested: std::any::type_name::<T>(),
    })
}

/// Locks every record shard and index shard of a table exclusively (for table-wide changes).
pub(crate) fn lock_all<'a, T: Table>(store: &'a TableStore<T>, indexes: &'a IndexList<T>) -> HeldLocks<'a> {
    let mut reqs = Vec::new();
    push_exclusive_locks(store, indexes, &mut reqs);
    HeldLocks::acquire(reqs)
}

/// Exclusive requests for every record shard and index shard of a table.
fn push_exclusive_locks<'a, T: Table>(
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

/// Facts about the current database: see [`Database::system_info`].
///
/// ```
/// let db = mnesia::Database::in_memory()?;
/// let info = db.scope(mnesia::system_info)?;
/// assert!(info.tables.is_empty());
/// # Ok::<(), mnesia::Error>(())
/// ```
pub fn system_info() -> Result<crate::info::SystemInfo> {
    Ok(current()?.system_info())
}
