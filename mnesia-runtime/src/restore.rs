//! Restoring a backup (see `backup.rs` for the file).
//!
//! When every table restored is cleared and loaded and kept in memory (`ram_copies`,
//! `disc_copies`), the backup streams into new stores built beside the tables, with the
//! tables' commit locks held: memory holds one frame of the file and the new tables. A disc
//! table's new records are logged under a new table id as they come, and one write of the
//! schema then switches every table at once, so a crash leaves the old tables or the new
//! ones. Nothing is visible before the switch, so a damaged file, a record that does not
//! fit or a broken unique index leaves everything as it was.
//!
//! Other restores (keep and add, `disc_only_copies` tables) collect the records and write
//! them in one transaction.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::backup::{BackupReader, BackupTable, RestoreMode, RestoreOptions};
use crate::db::{AnyTable, Database};
use crate::disk::record::{EntryRef, Logged, LoggedRef, SnapshotEntry, TableOps};
use crate::disk::schema::TableDef;
use crate::error::{Error, Result};
use crate::events::Event;
use crate::lock::HeldLocks;
use crate::store::{IndexList, TableStore, Write};
use crate::table::{StorageType, Table, TableType};

/// Log batches of a restored disc table: about this many bytes a commit.
const LOG_BATCH: usize = 8 << 20;

/// Events of a restored table go out in batches of this many.
const EVENT_BATCH: usize = 4096;

/// At most this many threads decode and load a backup's frames.
const MAX_WORKERS: usize = 4;

/// A new store being filled with one table's records from a backup, by several threads.
pub(crate) trait Loader: Send + Sync {
    /// Adds one entry of the backup; a disc table's entry is also added to `log`. Returns
    /// how many records it held.
    fn push(&self, entry: EntryRef<'_>, log: &mut LogBatch) -> Result<u64>;
    /// Logs the entries of `log` under the new table id, and empties it.
    fn log(&self, log: &mut LogBatch) -> Result<()>;
    /// For a disc table, the old table's id and the definition the schema switches to.
    fn switch(&self) -> Option<(u64, TableDef)>;
    /// Puts the new store in the old one's place in `tables`.
    fn install(self: Box<Self>, tables: &mut crate::db::TableMap);
}

/// A disc table's entries waiting to be logged under its new id.
#[derive(Default)]
pub(crate) struct LogBatch {
    writes: Vec<(Vec<u8>, Logged)>,
    bytes: usize,
}

pub(crate) struct TableLoader<T: Table> {
    db: Database,
    old: Arc<TableStore<T>>,
    fresh: TableStore<T>,
    /// The new store's indexes (they do not change while it loads).
    indexes: Arc<IndexList<T>>,
    seq: u64,
    /// The new table id of a disc table.
    new_id: Option<u64>,
}

impl<T: Table> TableLoader<T> {
    pub(crate) fn new(
        db: &Database,
        old: Arc<TableStore<T>>,
        seq: u64,
        backup: &BackupTable,
    ) -> Result<Self> {
        let id = db.inner.next_table_id.fetch_add(1, Ordering::Relaxed);
        let indexes = old.indexes.load().list.iter().map(|i| i.empty_copy()).collect();
        let fresh = TableStore::<T>::new(db.id(), id, T::TYPE, indexes);
        fresh.reserve(usize::try_from(backup.size_hint).unwrap_or(0).min(1 << 28));
        fresh.counter.store(backup.counter, Ordering::Release);
        let new_id = match (old.disk_id(), db.disk()) {
            (Some(_), Some(disk)) => Some(disk.update_schema(|schema| schema.allocate_id())??),
            _ => None,
        };
        let indexes = fresh.indexes.load_full();
        Ok(TableLoader { db: db.clone(), old, fresh, indexes, seq, new_id })
    }
}

impl<T: Table> Loader for TableLoader<T> {
    fn push(&self, entry: EntryRef<'_>, log: &mut LogBatch) -> Result<u64> {
        let bad = |e: postcard::Error| {
            Error::Codec(format!("table {}: a record of the backup does not decode: {e}", T::NAME))
        };
        let key: T::Key = postcard::from_bytes(entry.key).map_err(bad)?;
        let write = match &entry.value {
            LoggedRef::Put(b) if T::TYPE != TableType::Bag => {
                Write::Put(postcard::from_bytes::<T>(b).map_err(bad)?)
            }
            LoggedRef::Group(bs) if T::TYPE == TableType::Bag && !bs.is_empty() => Write::Group(
                bs.iter().map(|b| postcard::from_bytes::<T>(b)).collect::<Result<_, _>>().map_err(bad)?,
            ),
            _ => {
                return Err(Error::Invalid(format!(
                    "table {}: the backup's entry for the key {key:?} does not fit the table",
                    T::NAME
                )));
            }
        };
        let recs = write.records();
        if recs.iter().any(|r| r.key() != &key) {
            return Err(Error::Invalid(format!(
                "table {}: the backup holds a record under the key {key:?} that is not its own",
                T::NAME
            )));
        }
        for r in recs {
            if let Some(id) = r.auto_id() {
                self.fresh.counter.fetch_max(id, Ordering::AcqRel);
            }
        }
        let records = recs.len() as u64;
        let seq = self.seq;
        let hash = self.fresh.hash(&key);
        let indexes = &self.indexes;
        let mut failed = None;
        self.fresh.install(&key, hash, write, seq, |old, new| {
            if !old.is_empty() {
                failed = Some(format!("the backup holds the key {key:?} twice"));
                return;
            }
            for idx in &indexes.list {
                for r in new {
                    if let Err(other) = idx.load(r, seq) {
                        failed.get_or_insert_with(|| {
                            format!(
                                "the backup's records with keys {other:?} and {key:?} share the value {} of the unique index on `{}`",
                                idx.value_debug(r),
                                idx.field()
                            )
                        });
                    }
                }
            }
        });
        if let Some(reason) = failed {
            return Err(Error::Invalid(format!("table {}: {reason}", T::NAME)));
        }
        if self.new_id.is_some() {
            log.bytes += entry.key.len()
                + match &entry.value {
                    LoggedRef::Put(b) => b.len(),
                    LoggedRef::Group(bs) => bs.iter().map(|b| b.len()).sum(),
                    LoggedRef::Delete => 0,
                };
            log.writes.push((entry.key.to_vec(), entry.value.to_owned()));
            if log.bytes >= LOG_BATCH {
                self.log(log)?;
            }
        }
        Ok(records)
    }

    fn log(&self, log: &mut LogBatch) -> Result<()> {
        let (Some(id), Some(disk)) = (self.new_id, self.db.disk()) else { return Ok(()) };
        if log.writes.is_empty() {
            return Ok(());
        }
        // The id is new: nothing was logged under it before, so no commit clears it.
        let ops = [TableOps {
            table: id,
            clear: false,
            counter: self.fresh.counter.load(Ordering::Acquire),
            reset: false,
            writes: std::mem::take(&mut log.writes),
        }];
        log.bytes = 0;
        disk.log_commit(|| self.db.next_seq(), &ops)?;
        Ok(())
    }

    fn switch(&self) -> Option<(u64, TableDef)> {
        let (old_id, new_id) = (self.old.disk_id()?, self.new_id?);
        let mut def = TableDef::of::<T>(new_id, StorageType::DiscCopies, self.old.index_infos());
        def.version = self.old.version.load(Ordering::Acquire);
        Some((old_id, def))
    }

    fn install(self: Box<Self>, tables: &mut crate::db::TableMap) {
        let TableLoader { old, mut fresh, new_id, .. } = *self;
        fresh.subs = Arc::clone(&old.subs);
        fresh.version.store(old.version.load(Ordering::Acquire), Ordering::Release);
        // Ids handed out meanwhile (inserts take them before they commit) stay taken.
        fresh.counter.fetch_max(old.counter.load(Ordering::Acquire), Ordering::AcqRel);
        if let Some(id) = new_id {
            fresh.disk_id.store(id, Ordering::Release);
        }
        let fresh = Arc::new(fresh);
        if fresh.subs.any() {
            let _order = fresh.subs.publishing.lock();
            fresh.subs.deliver(vec![Event::Cleared], true);
            for shard in 0..fresh.shard_count() {
                let mut batch = Vec::new();
                fresh.scan_shard(shard, |r| batch.push(Event::Write { new: r.clone(), old: None }));
                for events in batch.chunks(EVENT_BATCH) {
                    fresh.subs.deliver(events.to_vec(), true);
                }
            }
        }
        old.mark_replaced();
        old.release();
        tables.insert(T::NAME.to_owned(), fresh as Arc<dyn AnyTable>);
    }
}

/// Loads runs of entries into the loaders of their tables: what one thread does. Counts
/// the entries per table in `found` and the records loaded in `records`; logs what is left
/// at the end.
struct Worker<'a> {
    path: &'a std::path::Path,
    loaders: &'a [Option<Box<dyn Loader>>],
    found: Vec<u64>,
    records: u64,
    logs: Vec<LogBatch>,
}

impl<'a> Worker<'a> {
    fn new(path: &'a std::path::Path, loaders: &'a [Option<Box<dyn Loader>>]) -> Self {
        Worker {
            path,
            loaders,
            found: vec![0; loaders.len()],
            records: 0,
            logs: loaders.iter().map(|_| LogBatch::default()).collect(),
        }
    }

    fn run(&mut self, table: usize, at: u64, entries: &[u8]) -> Result<()> {
        let log = &mut self.logs[table];
        let records = &mut self.records;
        let n = match &self.loaders[table] {
            Some(loader) => crate::backup::each_entry(self.path, at, entries, |e| {
                *records += loader.push(e, log)?;
                Ok(())
            })?,
            None => crate::backup::each_entry(self.path, at, entries, |_| Ok(()))?,
        };
        self.found[table] += n;
        Ok(())
    }

    /// Logs what is left; returns the entries found per table and the records loaded.
    fn finish(mut self) -> Result<(Vec<u64>, u64)> {
        for (loader, log) in self.loaders.iter().zip(&mut self.logs) {
            if let Some(loader) = loader {
                loader.log(log)?;
            }
        }
        Ok((self.found, self.records))
    }
}

/// Reads every run of the backup and loads it, on up to [`MAX_WORKERS`] threads while this
/// one reads the file; checks the entries found per table against the end frame; returns
/// how many records were loaded.
fn load_runs<R: Read>(reader: BackupReader<R>, loaders: &[Option<Box<dyn Loader>>]) -> Result<u64> {
    let path = reader.path().to_path_buf();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_WORKERS);
    if workers < 2 {
        let mut worker = Worker::new(&path, loaders);
        let end = reader.runs(|table, at, entries| worker.run(table, at, entries))?;
        let (found, records) = worker.finish()?;
        return end.check(&path, &found).map(|()| records);
    }
    let (send, receive) = std::sync::mpsc::sync_channel::<(usize, u64, Vec<u8>)>(2 * workers);
    let receive = parking_lot::Mutex::new(receive);
    let failed = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| -> Result<(Vec<u64>, u64)> {
                    let mut worker = Worker::new(&path, loaders);
                    loop {
                        let Ok((table, at, entries)) = receive.lock().recv() else { break };
                        if let Err(e) = worker.run(table, at, &entries) {
                            failed.store(true, Ordering::Release);
                            return Err(e);
                        }
                    }
                    worker.finish()
                })
            })
            .collect();
        let read = reader.runs(|table, at, entries| {
            if failed.load(Ordering::Acquire) {
                return Err(Error::Invalid("stopped".into()));
            }
            send.send((table, at, entries.to_vec()))
                .map_err(|_| Error::Invalid("the restore's threads stopped".into()))
        });
        drop(send);
        let (mut found, mut records) = (vec![0u64; loaders.len()], 0);
        let mut first_error = None;
        for h in handles {
            match h.join() {
                Ok(Ok((counts, loaded))) => {
                    found.iter_mut().zip(counts).for_each(|(f, n)| *f += n);
                    records += loaded;
                }
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(_) => {
                    first_error.get_or_insert(Error::Invalid("a restore thread panicked".into()));
                }
            }
        }
        // A worker's error explains why reading stopped.
        if let Some(e) = first_error {
            return Err(e);
        }
        read?.check(&path, &found).map(|()| records)
    })
}

impl Database {
    /// Restores the backup `reader` reads (see [`Database::restore`]).
    pub(crate) fn load_backup<R: Read>(
        &self,
        reader: BackupReader<R>,
        options: &RestoreOptions,
    ) -> Result<u64> {
        let targets = self.restore_targets(reader.tables(), options)?;
        let stream = targets.iter().zip(reader.tables()).all(|(t, backup)| {
            t.as_ref().is_none_or(|t| {
                options.mode_of(&backup.def.name) == RestoreMode::ClearAndLoad
                    && t.storage() != StorageType::DiscOnlyCopies
            })
        });
        if stream {
            self.restore_streaming(reader, options)
        } else {
            self.restore_in_tx(reader, targets, options)
        }
    }

    fn not_open(table: &str) -> Error {
        Error::Invalid(format!(
            "table {table} of the backup is not open here: create it (on a directory, name its type once) or skip it"
        ))
    }

    /// The tables of the backup to restore, in its order (`None`: skipped).
    fn restore_targets(
        &self,
        tables: &[BackupTable],
        options: &RestoreOptions,
    ) -> Result<Vec<Option<Arc<dyn AnyTable>>>> {
        let registered = self.inner.tables.load();
        tables
            .iter()
            .map(|t| {
                if options.mode_of(&t.def.name) == RestoreMode::Skip {
                    return Ok(None);
                }
                let store = registered.get(&t.def.name).ok_or_else(|| Self::not_open(&t.def.name))?;
                store.check_backup(&t.def)?;
                Ok(Some(Arc::clone(store)))
            })
            .collect()
    }

    /// Clear and load of tables in memory: new stores filled from the stream, then put in
    /// place at once.
    fn restore_streaming<R: Read>(&self, reader: BackupReader<R>, options: &RestoreOptions) -> Result<u64> {
        // No table is created, dropped or moved meanwhile, and no checkpoint runs (the new
        // ids' log records must stay in the log until the schema names them).
        let _schema = self.inner.schema.lock();
        let targets = self.restore_targets(reader.tables(), options)?;
        let lists: Vec<_> = targets.iter().flatten().map(|t| t.index_list()).collect();
        let mut reqs = Vec::new();
        for (t, list) in targets.iter().flatten().zip(&lists) {
            t.exclusive_locks(list.as_ref(), &mut reqs);
        }
        let held = HeldLocks::acquire(reqs);
        let seq = self.next_seq();
        let loaders: Vec<Option<Box<dyn Loader>>> = targets
            .iter()
            .zip(reader.tables())
            .map(|(t, backup)| {
                t.as_ref().map(|t| Arc::clone(t).restore_loader(self, seq, backup)).transpose()
            })
            .collect::<Result<_>>()?;
        let restored = load_runs(reader, &loaders)?;
        let switch: Vec<(u64, TableDef)> = loaders.iter().flatten().filter_map(|l| l.switch()).collect();
        if let (false, Some(disk)) = (switch.is_empty(), self.disk()) {
            disk.update_schema(|schema| {
                schema.tables.retain(|t| !switch.iter().any(|(old, _)| *old == t.id));
                schema.tables.extend(switch.into_iter().map(|(_, def)| def));
            })?;
        }
        let mut next = (*self.inner.tables.load_full()).clone();
        loaders.into_iter().flatten().for_each(|l| l.install(&mut next));
        self.inner.tables.store(Arc::new(next));
        drop(held);
        Ok(restored)
    }

    /// Any other restore: the records collected, then written in one transaction.
    fn restore_in_tx<R: Read>(
        &self,
        reader: BackupReader<R>,
        targets: Vec<Option<Arc<dyn AnyTable>>>,
        options: &RestoreOptions,
    ) -> Result<u64> {
        let backups = reader.tables().to_vec();
        let mut entries: Vec<Vec<SnapshotEntry>> = vec![Vec::new(); targets.len()];
        reader.for_each(|table, entry| {
            if let (Some(Some(_)), Some(list)) = (targets.get(table), entries.get_mut(table)) {
                list.push(entry.to_owned());
            }
            Ok(())
        })?;
        // Raised first (raising is always safe): an insert running meanwhile cannot take an
        // id the backup's records use, and the commit logs the raised counter.
        for (t, backup) in targets.iter().zip(&backups) {
            if let Some(t) = t {
                t.raise_counter(backup.counter);
            }
        }
        crate::context::transact(self.clone(), || {
            crate::context::with_tx(|tx| {
                let mut n = 0;
                for ((t, list), backup) in targets.iter().zip(&entries).zip(&backups) {
                    if let Some(t) = t {
                        n += t.restore_into(tx, list, options.mode_of(&backup.def.name))?;
                    }
                }
                Ok(n)
            })
        })
    }
}
