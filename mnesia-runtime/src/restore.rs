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
use crate::index::IndexSpec;
use crate::lock::HeldLocks;
use crate::store::{TableStore, Write};
use crate::table::{StorageType, Table, TableType};

/// Log batches of a restored disc table: about this many bytes a commit.
const LOG_BATCH: usize = 8 << 20;

/// Events of a restored table go out in batches of this many.
const EVENT_BATCH: usize = 4096;

/// A new store being filled with one table's records from a backup.
pub(crate) trait Loader {
    /// Adds one entry of the backup.
    fn push(&mut self, entry: EntryRef<'_>) -> Result<()>;
    /// Logs what is left to log; for a disc table, the old table's id and the definition
    /// the schema switches to.
    fn finish(&mut self) -> Result<Option<(u64, TableDef)>>;
    /// Puts the new store in the old one's place in `tables`; returns how many records it
    /// holds.
    fn install(self: Box<Self>, tables: &mut crate::db::TableMap) -> u64;
}

/// A disc table's records logged under its new id as they are loaded.
struct LogBatch {
    id: u64,
    writes: Vec<(Vec<u8>, Logged)>,
    bytes: usize,
    logged: bool,
}

pub(crate) struct TableLoader<T: Table> {
    db: Database,
    old: Arc<TableStore<T>>,
    fresh: TableStore<T>,
    seq: u64,
    records: u64,
    log: Option<LogBatch>,
}

impl<T: Table> TableLoader<T> {
    pub(crate) fn new(
        db: &Database,
        old: Arc<TableStore<T>>,
        seq: u64,
        backup: &BackupTable,
    ) -> Result<Self> {
        let id = db.inner.next_table_id.fetch_add(1, Ordering::Relaxed);
        let specs = crate::index::specs_with::<T>(&old.index_infos());
        let fresh = TableStore::<T>::new(db.id(), id, T::TYPE, specs.iter().map(IndexSpec::build).collect());
        fresh.reserve(usize::try_from(backup.size_hint).unwrap_or(0).min(1 << 28));
        fresh.counter.store(backup.counter, Ordering::Release);
        let log = match (old.disk_id(), db.disk()) {
            (Some(_), Some(disk)) => Some(LogBatch {
                id: disk.update_schema(|schema| schema.allocate_id())??,
                writes: Vec::new(),
                bytes: 0,
                logged: false,
            }),
            _ => None,
        };
        Ok(TableLoader { db: db.clone(), old, fresh, seq, records: 0, log })
    }

    fn flush(&mut self) -> Result<()> {
        let (Some(log), Some(disk)) = (&mut self.log, self.db.disk()) else { return Ok(()) };
        let ops = [TableOps {
            table: log.id,
            clear: !log.logged,
            counter: self.fresh.counter.load(Ordering::Acquire),
            reset: false,
            writes: std::mem::take(&mut log.writes),
        }];
        log.bytes = 0;
        log.logged = true;
        disk.log_commit(|| self.db.next_seq(), &ops)?;
        Ok(())
    }
}

impl<T: Table> Loader for TableLoader<T> {
    fn push(&mut self, entry: EntryRef<'_>) -> Result<()> {
        let bad = |e: postcard::Error| {
            Error::Codec(format!("table {}: a record of the backup does not decode: {e}", T::NAME))
        };
        let key: T::Key = postcard::from_bytes(entry.key).map_err(bad)?;
        let mut recs: Vec<T> = match &entry.value {
            LoggedRef::Put(b) => vec![postcard::from_bytes(b).map_err(bad)?],
            LoggedRef::Group(bs) => {
                bs.iter().map(|b| postcard::from_bytes(b)).collect::<Result<_, _>>().map_err(bad)?
            }
            LoggedRef::Delete => return Ok(()),
        };
        if recs.is_empty()
            || recs.iter().any(|r| r.key() != &key)
            || (T::TYPE != TableType::Bag && recs.len() != 1)
        {
            return Err(Error::Invalid(format!(
                "table {}: the backup's records under the key {key:?} do not fit the table",
                T::NAME
            )));
        }
        for r in &recs {
            if let Some(id) = r.auto_id() {
                self.fresh.counter.fetch_max(id, Ordering::AcqRel);
            }
        }
        self.records += recs.len() as u64;
        let write = if T::TYPE == TableType::Bag { Write::Group(recs) } else { Write::Put(recs.remove(0)) };
        let seq = self.seq;
        let hash = self.fresh.hash(&key);
        let indexes = self.fresh.indexes.load();
        let mut taken = None;
        self.fresh.install(&key, hash, write, seq, |old, new| {
            for idx in &indexes.list {
                // A key twice in the file: the later entry wins, as on replay.
                for r in old {
                    idx.remove(r, seq);
                }
                for r in new {
                    if let Err(other) = idx.load(r, seq) {
                        taken.get_or_insert_with(|| (idx.field(), idx.value_debug(r), other));
                    }
                }
            }
        });
        if let Some((field, value, other)) = taken {
            return Err(Error::Invalid(format!(
                "table {}: the backup's records with keys {other:?} and {key:?} share the value {value} of the unique index on `{field}`",
                T::NAME
            )));
        }
        if let Some(log) = &mut self.log {
            log.bytes += entry.key.len()
                + match &entry.value {
                    LoggedRef::Put(b) => b.len(),
                    LoggedRef::Group(bs) => bs.iter().map(|b| b.len()).sum(),
                    LoggedRef::Delete => 0,
                };
            log.writes.push((entry.key.to_vec(), entry.value.to_owned()));
            if log.bytes >= LOG_BATCH {
                self.flush()?;
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<Option<(u64, TableDef)>> {
        let (Some(old_id), Some(new_id)) = (self.old.disk_id(), self.log.as_ref().map(|l| l.id)) else {
            return Ok(None);
        };
        if self.log.as_ref().is_some_and(|l| !l.writes.is_empty()) {
            self.flush()?;
        }
        let mut def = TableDef::of::<T>(new_id, StorageType::DiscCopies, self.old.index_infos());
        def.version = self.old.version.load(Ordering::Acquire);
        Ok(Some((old_id, def)))
    }

    fn install(self: Box<Self>, tables: &mut crate::db::TableMap) -> u64 {
        let TableLoader { old, mut fresh, log, records, .. } = *self;
        fresh.subs = Arc::clone(&old.subs);
        fresh.version.store(old.version.load(Ordering::Acquire), Ordering::Release);
        // Ids handed out meanwhile (inserts take them before they commit) stay taken.
        fresh.counter.fetch_max(old.counter.load(Ordering::Acquire), Ordering::AcqRel);
        if let Some(log) = &log {
            fresh.disk_id.store(log.id, Ordering::Release);
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
        records
    }
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
        let mut loaders: Vec<Option<Box<dyn Loader>>> = targets
            .iter()
            .zip(reader.tables())
            .map(|(t, backup)| {
                t.as_ref().map(|t| Arc::clone(t).restore_loader(self, seq, backup)).transpose()
            })
            .collect::<Result<_>>()?;
        reader.for_each(|table, entry| match loaders.get_mut(table) {
            Some(Some(loader)) => loader.push(entry),
            _ => Ok(()),
        })?;
        let mut switch = Vec::new();
        for loader in loaders.iter_mut().flatten() {
            switch.extend(loader.finish()?);
        }
        if let (false, Some(disk)) = (switch.is_empty(), self.disk()) {
            disk.update_schema(|schema| {
                schema.tables.retain(|t| !switch.iter().any(|(old, _)| *old == t.id));
                schema.tables.extend(switch.into_iter().map(|(_, def)| def));
            })?;
        }
        let mut next = (*self.inner.tables.load_full()).clone();
        let restored = loaders.into_iter().flatten().map(|l| l.install(&mut next)).sum();
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
