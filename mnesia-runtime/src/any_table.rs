//! What the registry knows of a table without knowing its record type: the type-erased
//! table trait, and the table-wide locks.

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::db::Database;
use crate::disk::schema::TableDef;
use crate::error::{Error, Result};
use crate::lock::{HeldLocks, LockReq, lock_order};
use crate::record::{Record, StorageType, TableInfo, TableType};
use crate::store::{IndexList, TableStore};

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
    fn change_whole(self: Arc<Self>, db: &Database, op: &crate::commit::record::WholeTable) -> Result<()>;
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
    fn apply_change(&self, tx: &mut crate::tx::Tx, writes: &[crate::commit::record::KeyChange])
    -> Result<()>;
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

impl<T: Record> AnyTable for TableStore<T> {
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

    fn change_whole(self: Arc<Self>, db: &Database, op: &crate::commit::record::WholeTable) -> Result<()> {
        use crate::commit::record::WholeTable;
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

    fn apply_change(
        &self,
        tx: &mut crate::tx::Tx,
        writes: &[crate::commit::record::KeyChange],
    ) -> Result<()> {
        use crate::commit::misfit;
        use crate::commit::record::Content;
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
            for id in write.records().iter().filter_map(Record::auto_id) {
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

/// Locks every record shard and index shard of a table exclusively (for table-wide changes).
pub(crate) fn lock_all<'a, T: Record>(store: &'a TableStore<T>, indexes: &'a IndexList<T>) -> HeldLocks<'a> {
    let mut reqs = Vec::new();
    push_exclusive_locks(store, indexes, &mut reqs);
    HeldLocks::acquire(reqs)
}

/// Exclusive requests for every record shard and index shard of a table.
fn push_exclusive_locks<'a, T: Record>(
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
