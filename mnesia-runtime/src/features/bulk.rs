//! Bulk loads (a restore that clears and loads or recreates, an import into an empty
//! table): a new store is filled beside the live one while the live table's commit locks
//! and the schema lock are held, by several threads, a batch at a time (each shard of the
//! table and of its indexes locked once per batch); then it takes the live one's place at
//! once. A disc table's new records are logged under a new table id as they come; the log is
//! synced and one write of the schema switches to it, so a crash leaves the old table or the
//! new one. Nothing is visible before the switch: a failure anywhere leaves everything as
//! it was. The old store is sealed before the switch (see `Sealed`), so that no
//! auto-increment id is handed out twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::db::any_table::{Loader, LogBatch, Switch};
use crate::db::{AnyTable, Database, TableMap};
use crate::disk::record::{EntryRef, Logged, LoggedRef, TableOps, encode, logged_len};
use crate::disk::schema::TableDef;
use crate::engine::events::Applied;
use crate::engine::store::{IndexList, Sealed, TableStore, Write};
use crate::error::{Error, Result};
use crate::schema::record::{StorageType, TableType};
use crate::schema::stored::StoredRecord;

/// Log batches of a loaded disc table: about this many bytes a commit.
pub(crate) const LOG_BATCH: usize = 8 << 20;

/// Events of a loaded table go out in batches of this many.
const EVENT_BATCH: usize = 4096;

/// At most this many threads load.
const MAX_WORKERS: usize = 4;

/// Why a record could not be loaded.
pub(crate) enum Conflict<K> {
    /// Its key (given back) was loaded before.
    Twice(K),
    /// Another key holds its value of a unique index.
    Unique { key: K, field: &'static str, value: String, other: K },
    /// Anything else (encoding it for the log).
    Failed(Error),
}

/// One key's records to load, with the key and records as the log keeps them if they are
/// at hand.
pub(crate) type Loadable<T> = (<T as StoredRecord>::Key, Write<T>, Option<(Vec<u8>, Logged)>);

/// A new store of table `T` being filled, to take the place of `old`.
pub(crate) struct TableLoader<T: StoredRecord> {
    db: Database,
    old: Arc<TableStore<T>>,
    fresh: TableStore<T>,
    /// The new store's indexes (they do not change while it loads).
    indexes: Arc<IndexList<T>>,
    seq: u64,
    /// The new table id of a disc table.
    new_id: Option<u64>,
    /// The old store, sealed by [`TableLoader::switch`].
    sealed: Option<Sealed<T>>,
}

impl<T: StoredRecord> TableLoader<T> {
    /// A loader of about `size_hint` keys (a hint: it only sizes the new store), the
    /// table's counter first raised to `counter`. The caller holds the schema lock and
    /// every commit lock of `old`; `seq` numbers the records.
    pub(crate) fn new(
        db: &Database,
        old: Arc<TableStore<T>>,
        seq: u64,
        size_hint: u64,
        counter: u64,
    ) -> Result<Self> {
        Self::shaped(db, old, seq, size_hint, counter, None)
    }

    /// [`TableLoader::new`], the new table shaped as `shape` says (Mnesia's recreate): the
    /// indexes the struct declares and those listed, kept in memory or on disc. Without a
    /// shape it is the old table's.
    pub(crate) fn shaped(
        db: &Database,
        old: Arc<TableStore<T>>,
        seq: u64,
        size_hint: u64,
        counter: u64,
        shape: Option<(&[crate::schema::record::IndexInfo], StorageType)>,
    ) -> Result<Self> {
        let id = db.inner.next_table_id.fetch_add(1, Ordering::Relaxed);
        let (indexes, on_disc) = match shape {
            None => {
                (old.indexes.load().list.iter().map(|i| i.empty_copy()).collect(), old.disk_id().is_some())
            }
            Some((infos, storage)) => {
                let on_disc = match (storage, db.disk()) {
                    (StorageType::RamCopies, _) => false,
                    (StorageType::DiscCopies, Some(_)) => true,
                    _ => {
                        return Err(Error::Invalid(format!(
                            "table {}: recreating it as {storage:?} needs {}",
                            old.meta.name,
                            if storage == StorageType::DiscCopies {
                                "a database directory"
                            } else {
                                "a restore into disc_copies first, then change_table_copy_type"
                            }
                        )));
                    }
                };
                let specs = old.meta.specs_with(infos);
                (
                    specs.iter().map(crate::schema::index_spec::IndexSpec::build).collect::<Result<_>>()?,
                    on_disc,
                )
            }
        };
        let fresh = TableStore::<T>::new(db.id(), db.clock().clone(), id, old.meta, indexes);
        // Placed as the old one (this node's own stays so).
        fresh.place.copy_from(&old.place);
        fresh.reserve(usize::try_from(size_hint).unwrap_or(0));
        // Raised on the live table first: ids it hands out meanwhile (`next_id` needs no
        // lock) stay clear of the loaded ones.
        old.counter.fetch_max(counter, Ordering::AcqRel);
        fresh.counter.store(old.counter.load(Ordering::Acquire), Ordering::Release);
        let new_id = match (on_disc, db.disk()) {
            (true, Some(disk)) => Some(disk.update_schema(|schema| schema.allocate_id())??),
            _ => None,
        };
        let indexes = fresh.indexes.load_full();
        Ok(TableLoader { db: db.clone(), old, fresh, indexes, seq, new_id, sealed: None })
    }

    /// The new store.
    pub(crate) fn store(&self) -> &TableStore<T> {
        &self.fresh
    }

    /// Adds keys' records (with the key and records as the log keeps them, if the caller
    /// has them), refusing a key loaded before and a unique value another key holds; each
    /// shard of the table and of its indexes is locked once, so that the inserts' memory
    /// waits overlap. Returns how many records; a refusal gives the position in `items` of
    /// the record refused. A disc table's writes are added to `log`.
    pub(crate) fn load_batch(
        &self,
        items: Vec<Loadable<T>>,
        log: &mut LogBatch,
    ) -> Result<u64, (usize, Conflict<T::Key>)> {
        let seq = self.seq;
        let mut max_id = 0;
        let records = {
            // The indexes first: they only read the records, which then move into the table.
            let mut recs: Vec<&T> = Vec::with_capacity(items.len());
            let mut of_item: Vec<usize> = Vec::with_capacity(items.len());
            for (at, (_, write, _)) in items.iter().enumerate() {
                for r in write.records() {
                    max_id = max_id.max(r.auto_id().unwrap_or(0));
                    recs.push(r);
                    of_item.push(at);
                }
            }
            for idx in &self.indexes.list {
                if let Err((i, other)) = idx.load_many(&recs, seq) {
                    let at = of_item[i];
                    let (field, value) = (idx.field(), idx.value_debug(recs[i]));
                    return Err((at, Conflict::Unique { key: items[at].0.clone(), field, value, other }));
                }
            }
            recs.len() as u64
        };
        self.fresh.counter.fetch_max(max_id, Ordering::AcqRel);
        let mut keyed = Vec::with_capacity(items.len());
        for (at, (key, write, encoded)) in items.into_iter().enumerate() {
            if self.new_id.is_some() {
                let (k, v) = match encoded {
                    Some(e) => e,
                    None => (
                        encode(&key).map_err(|e| (at, Conflict::Failed(e)))?,
                        write.logged(self.fresh.meta.encode).map_err(|e| (at, Conflict::Failed(e)))?,
                    ),
                };
                log.bytes += k.len() + logged_len(&v);
                log.writes.push((k, v));
            }
            keyed.push((key, write, seq));
        }
        self.fresh.insert_new(keyed).map_err(|(at, key)| (at, Conflict::Twice(key)))?;
        Ok(records)
    }

    /// Logs a batch once it is large.
    pub(crate) fn log_if_full(&self, log: &mut LogBatch) -> Result<()> {
        if log.bytes >= LOG_BATCH { self.log(log) } else { Ok(()) }
    }

    /// Logs the writes of `log` under the new table id, and empties it.
    pub(crate) fn log(&self, log: &mut LogBatch) -> Result<()> {
        let (Some(id), Some(_)) = (self.new_id, self.db.disk()) else { return Ok(()) };
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
        self.db.sequence(&ops)?;
        Ok(())
    }

    /// Seals the old store (its counter is final: see [`Sealed`]) and says what the schema
    /// changes: the old table's id leaves it (if it was on disc) and the new table's
    /// definition enters it (if it goes on disc). A new disc table's counter is logged under
    /// its id first, so that no id handed out is handed out again after a crash, even if
    /// nothing was loaded.
    pub(crate) fn switch(&mut self) -> Result<Switch> {
        let (sealed, counter) = Sealed::new(&self.old);
        self.sealed = Some(sealed);
        self.fresh.counter.fetch_max(counter, Ordering::AcqRel);
        let mut def = None;
        if let (Some(new_id), Some(_)) = (self.new_id, self.db.disk()) {
            let counter = self.fresh.counter.load(Ordering::Acquire);
            let ops = [TableOps { table: new_id, clear: false, counter, reset: false, writes: Vec::new() }];
            self.db.sequence(&ops)?;
            let mut d = TableDef::traced(
                self.fresh.meta,
                (self.fresh.meta.format)(),
                new_id,
                StorageType::DiscCopies,
                self.fresh.index_infos(),
            );
            d.version = self.old.version.load(Ordering::Acquire);
            def = Some(d.local(self.old.is_local()));
        }
        Ok(Switch { old: self.old.disk_id(), new: def })
    }

    /// Puts the new store in the old one's place in `tables` (after [`TableLoader::switch`]),
    /// the old one marked replaced (transactions holding it run again); subscribers get
    /// `Cleared` (when `cleared`) and a write for each record, before any commit of the new
    /// store can publish. Returns what is left once `tables` is in use: emptying the old
    /// store.
    pub(crate) fn install(self, tables: &mut TableMap, cleared: bool) -> Box<dyn FnOnce() + Send> {
        let TableLoader { old, mut fresh, new_id, sealed, .. } = self;
        fresh.subs = Arc::clone(&old.subs);
        fresh.version.store(old.version.load(Ordering::Acquire), Ordering::Release);
        fresh.disk_id.store(new_id.unwrap_or(0), Ordering::Release);
        old.mark_replaced();
        if let Some(sealed) = sealed {
            sealed.keep();
        }
        if fresh.subs.any() {
            let _order = fresh.subs.publishing.lock();
            if cleared {
                fresh.subs.publish(Applied::Cleared);
            }
            for shard in 0..fresh.shard_count() {
                let mut batch = Vec::with_capacity(EVENT_BATCH);
                fresh.scan_shard(shard, |r| {
                    batch.push(r.clone());
                    if batch.len() == EVENT_BATCH {
                        fresh.subs.publish(Applied::Loaded(std::mem::take(&mut batch)));
                    }
                });
                fresh.subs.publish(Applied::Loaded(batch));
            }
        }
        tables.insert(fresh.meta.name.to_owned(), Arc::new(fresh) as Arc<dyn AnyTable>);
        Box::new(move || old.release())
    }
}

impl<T: StoredRecord> TableLoader<T> {
    /// One entry of a backup, decoded and checked.
    fn entry(&self, entry: EntryRef<'_>) -> Result<Loadable<T>> {
        let bad = |e: postcard::Error| {
            Error::codec(format!("table {}: a record of the backup does not decode", self.fresh.meta.name), e)
        };
        let key: T::Key = postcard::from_bytes(entry.key).map_err(bad)?;
        let write = match &entry.value {
            LoggedRef::Put(b) if self.fresh.kind != TableType::Bag => {
                Write::Put(self.fresh.meta.decode(b).map_err(bad)?)
            }
            LoggedRef::Group(bs) if self.fresh.kind == TableType::Bag && !bs.is_empty() => Write::Group(
                bs.iter().map(|b| self.fresh.meta.decode(b)).collect::<Result<_, _>>().map_err(bad)?,
            ),
            _ => {
                return Err(Error::Invalid(format!(
                    "table {}: the backup's entry for the key {key:?} does not fit the table",
                    self.fresh.meta.name
                )));
            }
        };
        if write.records().iter().any(|r| r.key() != &key) {
            return Err(Error::Invalid(format!(
                "table {}: the backup holds a record under the key {key:?} that is not its own",
                self.fresh.meta.name
            )));
        }
        // The key encoded anew: the log's rows are found by these bytes, and a key read from
        // the file may carry bytes after it.
        let encoded = match self.new_id {
            Some(_) => Some((encode(&key)?, entry.value.to_owned())),
            None => None,
        };
        Ok((key, write, encoded))
    }
}

impl<T: StoredRecord> Loader for TableLoader<T> {
    fn push_run(
        &self,
        path: &std::path::Path,
        at: u64,
        run: &[u8],
        log: &mut LogBatch,
    ) -> Result<(u64, u64)> {
        let mut items = Vec::new();
        let entries = crate::features::backup::each_entry(path, at, run, |e| {
            items.push(self.entry(e)?);
            Ok(())
        })?;
        let records = self.load_batch(items, log).map_err(|(_, c)| {
            Error::Invalid(match c {
                Conflict::Twice(key) => format!("table {}: the backup holds the key {key:?} twice", self.fresh.meta.name),
                Conflict::Unique { key, field, value, other } => format!(
                    "table {}: the backup's records with keys {other:?} and {key:?} share the value {value} of the unique index on `{field}`",
                    self.fresh.meta.name
                ),
                Conflict::Failed(e) => return e,
            })
        })?;
        self.log_if_full(log)?;
        Ok((entries, records))
    }

    fn log(&self, log: &mut LogBatch) -> Result<()> {
        TableLoader::log(self, log)
    }

    fn switch(&mut self) -> Result<Switch> {
        TableLoader::switch(self)
    }

    fn install(self: Box<Self>, tables: &mut TableMap) -> Box<dyn FnOnce() + Send> {
        TableLoader::install(*self, tables, true)
    }
}

/// Switches the schema for every table of `switch` in one write, once the log holding the
/// new tables' records is on disc whatever the durability mode; then puts every new store
/// in place with `install`, and runs what it returns once they are.
pub(crate) fn put_in_place(
    db: &Database,
    switch: Vec<Switch>,
    install: impl FnOnce(&mut TableMap) -> Vec<Box<dyn FnOnce() + Send>>,
) -> Result<()> {
    let changes = switch.iter().any(|s| s.old.is_some() || s.new.is_some());
    if let (true, Some(disk)) = (changes, db.disk()) {
        disk.wal.sync()?;
        disk.update_schema(|schema| {
            schema.tables.retain(|t| !switch.iter().any(|s| s.old == Some(t.id)));
            schema.tables.extend(switch.into_iter().filter_map(|s| s.new));
        })?;
    }
    let mut next = (*db.inner.tables.load_full()).clone();
    let after = install(&mut next);
    db.put_tables(next);
    after.into_iter().for_each(|f| f());
    Ok(())
}

/// Runs `produce` on this thread, handing what it makes to up to [`MAX_WORKERS`] threads
/// (as many as there are cores), each of which hands it to `consume` with a state of its
/// own made by `state`. Returns what `produce` returned and the states. With one core,
/// everything runs here. The first error of a `consume` stops the others and `produce`,
/// and is the one returned.
pub(crate) fn fan_out<I: Send, S: Send, R>(
    state: impl Fn() -> S + Sync,
    consume: impl Fn(&mut S, I) -> Result<()> + Sync,
    produce: impl FnOnce(&mut dyn FnMut(I) -> Result<()>) -> Result<R>,
) -> Result<(R, Vec<S>)> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_WORKERS);
    if workers < 2 {
        let mut s = state();
        let r = produce(&mut |item| consume(&mut s, item))?;
        return Ok((r, vec![s]));
    }
    let (send, receive) = std::sync::mpsc::sync_channel::<I>(2 * workers);
    // Taken away (dropped) by the first thread to fail, so that `produce` is not left
    // waiting on a full channel nobody reads.
    let receive = parking_lot::Mutex::new(Some(receive));
    let failed = AtomicBool::new(false);
    /// Marks the loading failed, and closes the channel, when a thread stops early (an
    /// error or a panic).
    struct Stop<'a, I> {
        receive: &'a parking_lot::Mutex<Option<std::sync::mpsc::Receiver<I>>>,
        failed: &'a AtomicBool,
        armed: bool,
    }
    impl<I> Drop for Stop<'_, I> {
        fn drop(&mut self) {
            if self.armed {
                self.failed.store(true, Ordering::Release);
                drop(self.receive.lock().take());
            }
        }
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| -> Result<S> {
                    let mut stop = Stop { receive: &receive, failed: &failed, armed: true };
                    let mut s = state();
                    loop {
                        let item = match &*receive.lock() {
                            Some(r) => r.recv(),
                            None => break,
                        };
                        let Ok(item) = item else { break };
                        consume(&mut s, item)?;
                    }
                    stop.armed = false;
                    Ok(s)
                })
            })
            .collect();
        let produced = produce(&mut |item| {
            if failed.load(Ordering::Acquire) {
                return Err(Error::Internal("stopped: another thread failed".into()));
            }
            send.send(item).map_err(|_| Error::Internal("stopped: the loading threads are gone".into()))
        });
        drop(send);
        let mut states = Vec::with_capacity(workers);
        let mut first_error = None;
        for h in handles {
            match h.join() {
                Ok(Ok(s)) => states.push(s),
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(_) => {
                    first_error.get_or_insert(Error::Internal("a loading thread panicked".into()));
                }
            }
        }
        // A thread's error explains why `produce` stopped.
        if let Some(e) = first_error {
            return Err(e);
        }
        Ok((produced?, states))
    })
}
