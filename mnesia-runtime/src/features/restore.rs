//! Restoring a backup (see `backup.rs` for the file).
//!
//! When every table restored is cleared and loaded and kept in memory (`ram_copies`,
//! `disc_copies`), the backup streams into new stores that then take the tables' place at
//! once (see `bulk.rs`): memory holds a few frames of the file and the new tables. A
//! damaged file, a record that does not fit, a key twice or a broken unique index leaves
//! everything as it was.
//!
//! Other restores (keep and add, `disc_only_copies` tables) collect the records and write
//! them in one transaction.

use std::io::Read;
use std::sync::Arc;

use crate::base::lock::HeldLocks;
use crate::base::progress::Ticker;
use crate::db::any_table::{Loader, LogBatch};
use crate::db::{AnyTable, Database};
use crate::disk::record::SnapshotEntry;
use crate::engine::backup_types::{BackupTable, RestoreMode};
use crate::engine::commit_record::{CommitRecord, Content, KeyChange, WholeTable};
use crate::error::{Error, Result};
use crate::features::backup::{BackupReader, RestoreOptions};
use crate::features::bulk::{fan_out, put_in_place};
use crate::schema::record::StorageType;
use std::sync::atomic::{AtomicU64, Ordering};

/// Loads runs of entries into the loaders of their tables: what one thread does. Counts
/// the entries per table in `found` and the records loaded in `records`.
struct Worker<'a> {
    path: &'a std::path::Path,
    loaders: &'a [Option<Box<dyn Loader>>],
    found: Vec<u64>,
    records: u64,
    logs: Vec<LogBatch>,
    /// Records loaded by every worker, for the progress callback.
    loaded: &'a AtomicU64,
}

impl<'a> Worker<'a> {
    fn new(path: &'a std::path::Path, loaders: &'a [Option<Box<dyn Loader>>], loaded: &'a AtomicU64) -> Self {
        Worker {
            path,
            loaders,
            found: vec![0; loaders.len()],
            records: 0,
            logs: loaders.iter().map(|_| LogBatch::default()).collect(),
            loaded,
        }
    }

    fn run(&mut self, table: usize, at: u64, entries: &[u8]) -> Result<()> {
        let log = &mut self.logs[table];
        let (n, records) = match &self.loaders[table] {
            Some(loader) => loader.push_run(self.path, at, entries, log)?,
            None => (crate::features::backup::each_entry(self.path, at, entries, |_| Ok(()))?, 0),
        };
        self.found[table] += n;
        self.records += records;
        self.loaded.fetch_add(records, Ordering::Relaxed);
        Ok(())
    }

    /// Logs what is left.
    fn finish(&mut self) -> Result<()> {
        for (loader, log) in self.loaders.iter().zip(&mut self.logs) {
            if let Some(loader) = loader {
                loader.log(log)?;
            }
        }
        Ok(())
    }
}

/// Reads every run of the backup and loads it on other threads while this one reads the
/// file (see [`fan_out`]); checks the entries found per table against the end frame;
/// returns how many records were loaded.
fn load_runs<R: Read>(
    reader: BackupReader<R>,
    loaders: &[Option<Box<dyn Loader>>],
    ticker: &mut Ticker<'_>,
) -> Result<u64> {
    let path = reader.path().to_path_buf();
    let loaded = AtomicU64::new(0);
    let (end, mut workers) = fan_out(
        || Worker::new(&path, loaders, &loaded),
        |w, (table, at, entries): (usize, u64, Vec<u8>)| w.run(table, at, &entries),
        |hand| {
            reader.runs(|table, at, entries| {
                ticker.at(loaded.load(Ordering::Relaxed));
                hand((table, at, entries.to_vec()))
            })
        },
    )?;
    let mut found = vec![0u64; loaders.len()];
    let mut records = 0;
    for w in &mut workers {
        w.finish()?;
        found.iter_mut().zip(&w.found).for_each(|(f, n)| *f += n);
        records += w.records;
    }
    end.check(&path, &found)?;
    Ok(records)
}

impl Database {
    /// Restores the backup `reader` reads (see [`Database::restore`]).
    pub(crate) fn load_backup<R: Read>(
        &self,
        reader: BackupReader<R>,
        options: &RestoreOptions,
    ) -> Result<u64> {
        // A table named in the options that the backup does not hold is a mistake (a typo
        // would leave the table meant to be skipped cleared and loaded).
        let held = |name: &str| reader.tables().iter().any(|t| t.def.name == name);
        if let Some(name) = options.named().find(|name| !held(name)) {
            let mut names: Vec<&str> = reader.tables().iter().map(|t| t.def.name.as_str()).collect();
            names.sort_unstable();
            return Err(Error::Invalid(format!(
                "the restore options name table {name}, which the backup does not hold (it holds: {})",
                names.join(", ")
            )));
        }
        // Decided with the schema lock held: no table is created, dropped or moved meanwhile.
        let schema = self.inner.schema.lock();
        if !self.unclaimed_in(reader.tables(), options).is_empty() {
            self.refuse_while_replicating("a restore into tables no type has claimed")?;
            return self.restore_unclaimed(reader, options, schema);
        }
        let targets = self.restore_targets(reader.tables(), options)?;
        let mut stream = true;
        for (t, backup) in targets.iter().zip(reader.tables()) {
            let Some(t) = t else { continue };
            let mode = options.mode_of(&backup.def.name);
            let here = t.storage();
            if mode == RestoreMode::Recreate {
                let name = &backup.def.name;
                let refused = match (here, backup.def.storage) {
                    (StorageType::DiscOnlyCopies, _) => Some(format!(
                        "table {name} is disc_only_copies here: move it to disc_copies (change_table_copy_type) to recreate it"
                    )),
                    (_, StorageType::DiscOnlyCopies) => Some(format!(
                        "table {name} is disc_only_copies in the backup: restore it with ClearAndLoad, then move it"
                    )),
                    (_, StorageType::DiscCopies) if self.disk().is_none() => Some(format!(
                        "table {name} is disc_copies in the backup: recreating it needs a database directory"
                    )),
                    _ => None,
                };
                if let Some(reason) = refused {
                    return Err(Error::Invalid(reason));
                }
            }
            stream &= matches!(mode, RestoreMode::ClearAndLoad | RestoreMode::Recreate)
                && here != StorageType::DiscOnlyCopies;
        }
        if stream && self.commits_elsewhere() {
            // Loading new stores does not reach the commit-record sink or the order: a table
            // recreated is a record of its own, the others are written by one transaction.
            drop(schema);
            self.restore_in_tx(reader, targets, options)
        } else if stream {
            self.restore_streaming(reader, &targets, options, schema)
        } else if let Some(t) =
            reader.tables().iter().find(|t| options.mode_of(&t.def.name) == RestoreMode::Recreate)
        {
            Err(Error::Invalid(format!(
                "table {}: a restore that recreates tables cannot also keep and add, or load a disc_only_copies table: restore those apart",
                t.def.name
            )))
        } else {
            drop(schema);
            self.restore_in_tx(reader, targets, options)
        }
    }

    /// Restores `reader` into new stores put in place at once, whether or not commits are
    /// ordered or replicated elsewhere (a snapshot of an ordered copy: see
    /// `ordered_snapshot.rs`): every table of the backup cleared and loaded.
    /// The caller holds the schema lock (`schema`).
    pub(crate) fn load_backup_here<R: Read>(
        &self,
        reader: BackupReader<R>,
        options: &RestoreOptions,
        schema: parking_lot::MutexGuard<'_, ()>,
    ) -> Result<u64> {
        let targets = self.restore_targets(reader.tables(), options)?;
        let here = targets.iter().zip(reader.tables());
        if let Some((_, t)) = here
            .filter_map(|(s, t)| Some((s.as_ref()?, t)))
            .find(|(s, _)| s.storage() == StorageType::DiscOnlyCopies)
        {
            return Err(Error::Invalid(format!(
                "table {} is disc_only_copies: a snapshot loads tables kept in memory",
                t.def.name
            )));
        }
        self.restore_streaming(reader, &targets, options, schema)
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
    /// place at once. The caller holds the schema lock (`schema`) until the end: no table is
    /// created, dropped or moved meanwhile, and no checkpoint runs (the new ids' log records
    /// must stay in the log until the schema names them).
    fn restore_streaming<R: Read>(
        &self,
        reader: BackupReader<R>,
        targets: &[Option<Arc<dyn AnyTable>>],
        options: &RestoreOptions,
        schema: parking_lot::MutexGuard<'_, ()>,
    ) -> Result<u64> {
        let lists: Vec<_> = targets.iter().flatten().map(|t| t.index_list()).collect();
        let mut reqs = Vec::new();
        for (t, list) in targets.iter().flatten().zip(&lists) {
            t.exclusive_locks(list.as_ref(), &mut reqs)?;
        }
        let held = HeldLocks::acquire(reqs);
        let seq = self.next_seq();
        let mut loaders: Vec<Option<Box<dyn Loader>>> = targets
            .iter()
            .zip(reader.tables())
            .map(|(t, backup)| {
                let recreate = options.mode_of(&backup.def.name) == RestoreMode::Recreate;
                t.as_ref().map(|t| Arc::clone(t).restore_loader(self, seq, backup, recreate)).transpose()
            })
            .collect::<Result<_>>()?;
        let mut ticker = Ticker::new(options.progress.as_ref());
        let restored = load_runs(reader, &loaders, &mut ticker)?;
        let switch = loaders.iter_mut().flatten().map(|l| l.switch()).collect::<Result<_>>()?;
        put_in_place(self, switch, |tables| {
            loaders.into_iter().flatten().map(|l| l.install(tables)).collect()
        })?;
        drop(held);
        drop(schema);
        ticker.end(restored);
        Ok(restored)
    }

    /// Any other restore: the records collected, then written in one transaction.
    fn restore_in_tx<R: Read>(
        &self,
        reader: BackupReader<R>,
        targets: Vec<Option<Arc<dyn AnyTable>>>,
        options: &RestoreOptions,
    ) -> Result<u64> {
        // On a cluster node, tables of both kinds cannot be restored together (their writes
        // are refused in one transaction): refused before anything is made.
        if self.ordering() {
            // (Nor a table whose records are on other nodes: restored on one holding them.)
            if let Some(elsewhere) = targets.iter().flatten().find(|t| !t.placement().is_held()) {
                return Err(elsewhere.placement().not_here(elsewhere.name()));
            }
            let local = targets.iter().flatten().find(|t| t.is_local());
            let shared = targets.iter().flatten().find(|t| !t.is_local());
            if let (Some(local), Some(shared)) = (local, shared) {
                return Err(Error::Invalid(format!(
                    "a restore on a cluster node of table {}, ordered with the cluster, and table {}, this node's own (local_content): restore them apart, skipping the others (RestoreOptions)",
                    shared.name(),
                    local.name()
                )));
            }
        }
        let backups = reader.tables().to_vec();
        let mut entries: Vec<Vec<SnapshotEntry>> = vec![Vec::new(); targets.len()];
        let mut ticker = Ticker::new(options.progress.as_ref());
        let mut read = 0;
        reader.for_each(|table, entry| {
            if let (Some(Some(_)), Some(list)) = (targets.get(table), entries.get_mut(table)) {
                list.push(entry.to_owned());
            }
            read += 1;
            ticker.at(read);
            Ok(())
        })?;
        // Tables recreated (only while commits are handed elsewhere: see `load_backup`),
        // each a record of its own, every one checked before any is made.
        let mut targets = targets;
        let mut recreations = Vec::new();
        for ((t, list), backup) in targets.iter_mut().zip(&mut entries).zip(&backups) {
            if options.mode_of(&backup.def.name) == RestoreMode::Recreate
                && let Some(table) = t.take()
            {
                let (replace, records) = recreation(&table, backup, std::mem::take(list));
                crate::features::kinds::check_replace(self, &replace)?;
                recreations.push((table, backup, replace, records));
            }
        }
        let mut recreated = 0;
        for (table, backup, replace, records) in recreations {
            self.recreate_elsewhere(table, backup, &replace)?;
            recreated += records;
        }
        // Raised first (raising is always safe): an insert running meanwhile cannot take an
        // id the backup's records use, and the commit logs the raised counter.
        for (t, backup) in targets.iter().zip(&backups) {
            if let Some(t) = t {
                t.raise_counter(backup.counter);
            }
        }
        let restored = crate::tx::context::transact(self.clone(), || {
            crate::tx::context::with_tx(|tx| {
                let mut n = 0;
                for ((t, list), backup) in targets.iter().zip(&entries).zip(&backups) {
                    if let Some(t) = t {
                        n += tx.part_of(t)?.restore(
                            list,
                            options.mode_of(&backup.def.name),
                            backup.counter,
                        )?;
                    }
                }
                Ok(n)
            })
        })?;
        ticker.end(recreated + restored);
        Ok(recreated + restored)
    }

    /// Recreates `table` as `replace` (its [`recreation`] from `backup`) says, while
    /// commits are handed elsewhere: a record of its own, which every copy (this one, a
    /// replica fed by the sink, every ordered copy) applies by putting a new store in the
    /// table's place, where it keeps it. Its subscribers hear `Dropped`.
    fn recreate_elsewhere(
        &self,
        table: Arc<dyn AnyTable>,
        backup: &BackupTable,
        replace: &WholeTable,
    ) -> Result<()> {
        let mut table = table;
        for _ in 0..RECREATE_ATTEMPTS {
            // (A table this node keeps for itself is recreated here alone.)
            let done = match self.sequencer_of(table.is_local()) {
                Some(sequencer) => {
                    sequencer.order(CommitRecord::whole(table.name(), replace.clone(), self.applied_index()))
                }
                None => crate::features::kinds::replace_declared(self, &table, replace),
            };
            match done {
                // A record made before the table was replaced here (dropped and created
                // again, transformed, moved) is made again on the table as it is.
                Err(Error::Conflict) => {
                    let again = self.any_table(table.name())?;
                    again.check_backup(&backup.def)?;
                    table = again;
                }
                done => return done,
            }
        }
        Err(Error::TooManyRetries { attempts: RECREATE_ATTEMPTS })
    }
}

/// The record recreating `table` from `backup`, holding `entries` ([`WholeTable::Replace`]):
/// the backup's records, version and counter, and its indexes with those the struct
/// declares (as a restore without a sink recreates it); and how many records.
fn recreation(
    table: &Arc<dyn AnyTable>,
    backup: &BackupTable,
    entries: Vec<SnapshotEntry>,
) -> (WholeTable, u64) {
    let mut records = 0;
    let rows: Vec<KeyChange> = entries
        .into_iter()
        .map(|e| {
            records += match &e.value {
                crate::disk::record::Logged::Group(g) => g.len() as u64,
                _ => 1,
            };
            KeyChange { key: e.key, value: Content::from(e.value), expired: false }
        })
        .collect();
    let mut indexes = table.declared_indexes();
    for i in &backup.def.indexes {
        if !indexes.iter().any(|(field, _)| *field == i.field) {
            indexes.push((i.field.clone(), i.unique));
        }
    }
    let replace = WholeTable::Replace {
        shape: table.info().shape(),
        type_name: table.type_name().to_owned(),
        indexes,
        version: backup.def.version,
        counter: backup.counter,
        rows,
    };
    (replace, records)
}

/// How many times a table is recreated again when a new store keeps taking its place.
const RECREATE_ATTEMPTS: u32 = 100;
