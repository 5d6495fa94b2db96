//! Every table's registry entry, whatever its record type: `TableStore<T>` as an
//! [`AnyTable`], built on the features that need the record type (backup and restore,
//! browsing, reaping, changes to a table as a whole, transaction parts). The trait is
//! `any_table.rs`; this file is its one implementation, above every layer it uses.

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::base::lock::{LockReq, lock_order};
use crate::db::Database;
use crate::db::any_table::{AnyTable, push_exclusive_locks};
use crate::disk::schema::TableDef;
use crate::engine::store::{IndexList, TableStore};
use crate::error::{Error, Result};
use crate::schema::record::{StorageType, TableInfo};
use crate::schema::stored::StoredRecord;

impl<T: StoredRecord> AnyTable for TableStore<T> {
    fn as_any_arc(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }

    fn gate(self: Arc<Self>) -> Arc<dyn crate::base::priority::Gate> {
        self
    }

    fn name(&self) -> &'static str {
        self.meta.name
    }

    fn record_type(&self) -> std::any::TypeId {
        (self.meta.type_id)()
    }

    fn new_part(self: Arc<Self>) -> Box<dyn crate::db::table_part::TxPart> {
        Box::new(crate::tx::TxTable::new(self))
    }

    fn resume(&self) {
        TableStore::resume(self);
    }

    fn type_name(&self) -> &'static str {
        (self.meta.type_name)()
    }

    fn disk_id(&self) -> Option<u64> {
        TableStore::disk_id(self)
    }

    fn storage(&self) -> StorageType {
        TableStore::storage(self)
    }

    fn is_local(&self) -> bool {
        TableStore::is_local(self)
    }

    fn placement(&self) -> &crate::engine::placement::Placement {
        &self.place
    }

    fn read_encoded(&self, key: &[u8]) -> Result<Vec<Vec<u8>>> {
        self.place.check(self.meta.name)?;
        let key: T::Key = crate::engine::commit_record::decode_whole(self.meta.name, key)?;
        let alive = self.alive();
        let found = self.get_with(&key, self.hash(&key), |_, recs| {
            recs.iter().filter(|r| alive.keeps(*r)).map(|r| (self.meta.encode)(r)).collect::<Result<Vec<_>>>()
        });
        self.healthy()?;
        found
    }

    fn release(&self) {
        TableStore::release(self);
    }

    fn retire(&self) {
        // Subscribers of this type are told the table they watched is gone; transactions
        // holding this store run again on the one in its place.
        self.subs.publish(crate::engine::events::Applied::Dropped);
        self.mark_replaced();
        TableStore::release(self);
    }

    fn change_whole(
        self: Arc<Self>,
        db: &Database,
        op: &crate::engine::commit_record::WholeTable,
    ) -> Result<()> {
        use crate::engine::commit_record::WholeTable;
        match op {
            // (Made by `Database::apply_commit`: there is no table to ask yet.)
            WholeTable::Create { .. } | WholeTable::CreateOn { .. } | WholeTable::CreateCopies { .. } => {
                Err(Error::TableExists { table: self.meta.name.to_owned() })
            }
            // (Nor a change of copies.)
            WholeTable::AddCopy { .. }
            | WholeTable::AddDiscCopy { .. }
            | WholeTable::DelCopy { .. }
            | WholeTable::CopyFilled { .. }
            | WholeTable::CopyWaits { .. }
            | WholeTable::CopyType { .. } => {
                Err(Error::Internal("a change of copies is made by apply_commit".into()))
            }
            WholeTable::Clear => db.clear_store(&self),
            WholeTable::Drop => db.drop_store(&self),
            WholeTable::AddIndex { field, unique } => {
                let spec = (self.meta.index_spec_for)(field, *unique).ok_or_else(|| {
                    crate::engine::commit_record::misfit(
                        self.meta.name,
                        format!("an index on `{field}`, which it cannot index"),
                    )
                })?;
                db.add_index_to(&self, spec)
            }
            WholeTable::RemoveIndex { field } => db.remove_index_from(&self, field),
            WholeTable::ResetCounter { next } => db.reset_counter_of(&self, *next),
            WholeTable::Replace { .. } => {
                crate::features::kinds::replace_declared(db, &(self as Arc<dyn AnyTable>), op)
            }
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

    fn begin_backup(&self, seq: u64) -> crate::engine::backup_types::BackupTable {
        let infos = self.index_infos();
        let mut def = TableDef::untraced(self.meta, self.disk_id().unwrap_or(0), self.storage(), infos)
            .local(self.is_local());
        def.version = self.version.load(Ordering::Acquire);
        let counter = self.counter.load(Ordering::Acquire);
        let size_hint = if def.storage == StorageType::DiscOnlyCopies { 0 } else { self.len() as u64 };
        self.begin_cut(seq);
        crate::engine::backup_types::BackupTable { def, counter, size_hint }
    }

    fn backup_stream(
        &self,
        out: &mut crate::disk::record::EntryEncoder,
        flush: &mut dyn FnMut(&mut crate::disk::record::EntryEncoder) -> Result<()>,
    ) -> Result<u64> {
        let Some(cut) = self.cut.load_full() else {
            return Err(Error::Internal(format!("table {}: no backup in progress", self.meta.name)));
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
        let differences = def.differences_from(self.meta, self.meta.format, "in the backup");
        if differences.is_empty() {
            Ok(())
        } else {
            Err(Error::SchemaMismatch { table: self.meta.name.to_owned(), differences })
        }
    }

    fn raise_counter(&self, counter: u64) {
        self.counter.fetch_max(counter, Ordering::AcqRel);
    }

    fn seal(self: Arc<Self>) -> (Box<dyn crate::engine::store::Seal>, u64) {
        let (sealed, counter) = crate::engine::store::Sealed::new(&self);
        (Box::new(sealed), counter)
    }

    fn claim(&self, db: &Database, id: u64) -> Result<()> {
        let Some((_, lock)) = self.all_commit_locks().next() else { return Ok(()) };
        let order = lock_order(self.id, 0, 0);
        let _held = crate::base::lock::HeldLocks::acquire(vec![LockReq { order, exclusive: false, lock }]);
        self.counter.fetch_max(id, Ordering::AcqRel);
        if let Some(table) = self.disk_id() {
            let counter = self.counter.load(Ordering::Acquire);
            let ops = crate::disk::record::TableOps {
                table,
                clear: false,
                counter,
                reset: false,
                writes: Vec::new(),
            };
            db.sequence(&[ops])?;
        }
        Ok(())
    }

    fn declared_indexes(&self) -> Vec<(String, bool)> {
        (self.meta.indexes)().iter().map(|s| (s.field().to_owned(), s.is_unique())).collect()
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
            Error::Invalid(format!("table {}: an index list of another table was given", self.meta.name))
        })?;
        push_exclusive_locks(self, indexes, out);
        Ok(())
    }

    fn restore_loader(
        self: Arc<Self>,
        db: &Database,
        seq: u64,
        backup: &crate::engine::backup_types::BackupTable,
        recreate: bool,
    ) -> Result<Box<dyn crate::db::any_table::Loader>> {
        let shape = recreate.then_some((backup.def.indexes.as_slice(), backup.def.storage));
        Ok(Box::new(crate::features::bulk::TableLoader::shaped(
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
        crate::tx::expiring::reap(db, self.meta)
    }

    fn browse(
        &self,
        browse: &crate::engine::browse_types::Browse,
    ) -> Result<crate::engine::browse_types::Page> {
        crate::features::browse::page(self.meta, browse)
    }

    fn subscribe_json(&self, capacity: usize) -> crate::engine::browse_types::JsonSubscription {
        let reader = self.subs.reader(false, capacity);
        crate::engine::browse_types::JsonSubscription::new(self.meta.name, reader, self.meta.to_json)
    }

    fn snapshot(&self) -> Option<Result<(u64, Vec<crate::disk::record::SnapshotEntry>)>> {
        // The counter first: ids handed out while the copy is taken are above it anyway.
        let counter = self.counter.load(Ordering::Acquire);
        self.disk_id().map(|_| self.snapshot_entries().map(|e| (counter, e)))
    }

    fn info(&self) -> TableInfo {
        TableInfo {
            name: self.meta.name.to_owned(),
            size: self.len(),
            memory: self.memory(),
            table_type: self.kind,
            storage_type: if self.place.is_disc_here() { StorageType::DiscCopies } else { self.storage() },
            attributes: self.meta.fields.iter().map(|f| f.name.to_owned()).collect(),
            key: self.meta.fields.get(self.meta.key_position).map(|f| f.name.to_owned()).unwrap_or_default(),
            indexes: self.index_infos(),
            auto_increment: self.meta.auto_increment,
            ttl_field: self.meta.ttl_field.map(str::to_owned),
            default_ttl: self.meta.default_ttl,
            expiring: self.expiry.as_ref().map_or(0, crate::engine::ttl::ExpiryIndex::len),
            counter: self.counter.load(Ordering::Acquire),
            version: self.version.load(Ordering::Acquire),
            disk_bytes: None,
            local_content: self.is_local(),
            nodes: self.place.holders().map(|h| h.to_vec()).unwrap_or_default(),
            held: self.place.is_held(),
            filling: self.place.filling().into_iter().map(|(node, _)| node).collect(),
            disc_copies: self.place.disc(),
        }
    }
}
