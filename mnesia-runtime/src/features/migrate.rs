//! Migrations (Mnesia's `transform_table`): converting every record of a table to a new
//! record type, all or nothing, crash-safe on disc.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::db::{AnyTable, Database, lock_all};
use crate::disk::record::TableOps;
use crate::disk::schema::TableDef;
use crate::engine::commit_record::{Content, KeyChange, WholeTable};
use crate::engine::store::TableStore;
use crate::error::{Error, Result};
use crate::schema::index_spec::IndexSpec;
use crate::schema::record::{IndexInfo, Record, StorageType, TableType};

impl Database {
    /// Converts every record of table `Old` into a `New` (Mnesia's `transform_table`): the
    /// table keeps its name and storage, gets `New`'s declared indexes and a version one
    /// higher. All or nothing: if `f` fails for a record, or the new records break a key or
    /// unique constraint, nothing changes. On disc the new records are logged under a new
    /// table id before one write of the schema switches the table to them, so a crash leaves
    /// either the old table or the new one. Writers of the table wait while it runs, and
    /// `f` must not use the table. Returns how many records were converted (expired ones
    /// are dropped). A `disc_only_copies` table is refused: move it to `disc_copies` first.
    ///
    /// ```
    /// use mnesia::prelude::*;
    ///
    /// #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// #[table(name = "users")]
    /// struct UserV1 { #[key] id: u64, name: String }
    ///
    /// #[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
    /// #[table(name = "users")]
    /// struct User { #[key] id: u64, first: String, last: String }
    ///
    /// let db = Database::in_memory()?;
    /// db.scope(|| -> mnesia::Result<()> {
    ///     UserV1::create_table(TableOptions::new())?;
    ///     UserV1::write(UserV1 { id: 1, name: "Ann Lee".into() })?;
    ///     User::transform(|old: UserV1| {
    ///         let (first, last) = old.name.split_once(' ').unwrap_or((&old.name, ""));
    ///         Ok(User { id: old.id, first: first.into(), last: last.into() })
    ///     })?;
    ///     assert_eq!(User::read(&1)?.map(|u| u.last), Some("Lee".into()));
    ///     assert_eq!(User::table_info()?.version, 1);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn transform<Old: Record, New: Record>(
        &self,
        mut f: impl FnMut(Old) -> Result<New>,
    ) -> Result<usize> {
        self.refuse_while_ordering("transform")?;
        if Old::NAME != New::NAME {
            return Err(Error::Invalid(format!(
                "transform converts a table's records in place: {} and {} name different tables",
                std::any::type_name::<Old>(),
                std::any::type_name::<New>()
            )));
        }
        let old = self.table::<Old>()?;
        let storage = old.storage();
        if storage == StorageType::DiscOnlyCopies {
            return Err(Error::Invalid(format!(
                "table {}: transform a disc_only_copies table by moving it to disc_copies first (change_table_copy_type)",
                Old::NAME
            )));
        }
        let _schema = self.inner.schema.lock();
        if old.is_dropped() {
            return Err(Error::no_such_table(Old::NAME));
        }
        let old_indexes = old.indexes.load_full();
        let held = lock_all(&old, &old_indexes);
        // The counter is final from here on (see `Sealed`): the new table starts from it, so
        // that no id handed out, or of a record since deleted, is handed out again.
        let (sealed, counter) = crate::engine::store::Sealed::new(&old);
        // The live records, copied out shard by shard, then converted.
        let alive = old.alive();
        let mut records: Vec<Old> = Vec::new();
        for shard in 0..old.shard_count() {
            old.scan_shard(shard, |r| {
                if alive.keeps(r) {
                    records.push(r.clone());
                }
            });
        }
        let converted: Vec<New> = records.into_iter().map(&mut f).collect::<Result<_>>()?;
        // The new records, encoded as the log keeps them, one group per key.
        let seq = self.next_seq();
        use crate::disk::record::{Logged, encode};
        let mut rows = crate::disk::Rows::default();
        for rec in &converted {
            let key = encode(rec.key())?;
            match (New::TYPE, rows.get_mut(&key)) {
                (TableType::Bag, Some((_, Logged::Group(g)))) => g.push(encode(rec)?),
                (TableType::Bag, _) => {
                    rows.insert(key, (seq, Logged::Group(vec![encode(rec)?])));
                }
                (_, Some(_)) => {
                    return Err(Error::Invalid(format!(
                        "table {}: two records convert to the key {:?}",
                        New::NAME,
                        rec.key()
                    )));
                }
                (_, None) => {
                    rows.insert(key, (seq, Logged::Put(encode(rec)?)));
                }
            }
        }
        let specs = New::indexes();
        let id = self.inner.next_table_id.fetch_add(1, Ordering::Relaxed);
        let fresh = TableStore::<New>::new(
            self.id(),
            self.clock().clone(),
            id,
            New::TYPE,
            specs.iter().map(IndexSpec::build).collect(),
        );
        // Checks the unique indexes; nothing is written yet.
        fresh.load(&rows).map_err(|e| match e {
            Error::SchemaMismatch { differences, .. } => Error::Invalid(format!(
                "table {}: the converted records break a unique index: {}",
                New::NAME,
                differences.join("; ")
            )),
            other => other,
        })?;
        fresh.counter.fetch_max(counter, Ordering::AcqRel);
        let version = old.version.load(Ordering::Acquire) + 1;
        fresh.version.store(version, Ordering::Release);
        // Made while every commit lock of the table is held, handed before the new store can
        // be written: in its place among the table's commits.
        let replaced = self.replicating().then(|| WholeTable::Replace {
            shape: crate::schema::shape::RecordShape::of::<New>(),
            type_name: std::any::type_name::<New>().to_owned(),
            indexes: specs.iter().map(|s| (s.field().to_owned(), s.is_unique())).collect(),
            version,
            counter: fresh.counter.load(Ordering::Acquire),
            rows: rows
                .iter()
                .map(|(key, (_, value))| KeyChange {
                    key: key.clone(),
                    value: Content::from(value.clone()),
                    expired: false,
                })
                .collect(),
        });
        if let (Some(old_id), Some(disk)) = (old.disk_id(), self.disk()) {
            let new_id = disk.update_schema(|schema| schema.allocate_id())??;
            let counter = fresh.counter.load(Ordering::Acquire);
            let writes = rows.into_iter().map(|(k, (_, v))| (k, v)).collect();
            self.sequence(&[TableOps { table: new_id, clear: true, counter, reset: false, writes }])?;
            let infos = specs
                .iter()
                .map(|s| IndexInfo { field: s.field().to_owned(), unique: s.is_unique() })
                .collect();
            let mut def = TableDef::of::<New>(new_id, storage, infos);
            def.version = version;
            // The new records are on disc before the schema names them, whatever the
            // durability mode: a crash leaves the old table or the new one.
            disk.wal.sync()?;
            disk.update_schema(|schema| {
                schema.tables.retain(|t| t.id != old_id);
                schema.tables.push(def);
            })?;
            fresh.disk_id.store(new_id, Ordering::Release);
        }
        // Subscribers of the old type are told the table they watched is gone.
        old.subs.deliver(vec![crate::engine::events::Event::Dropped], false);
        old.mark_replaced();
        sealed.keep();
        old.release();
        let mut next = (*self.inner.tables.load_full()).clone();
        next.insert(New::NAME.to_owned(), Arc::new(fresh) as Arc<dyn AnyTable>);
        if let Some(replaced) = replaced {
            let seq = self.next_seq();
            self.hand_whole(New::NAME, replaced, seq);
        }
        self.put_tables(next);
        drop(held);
        self.needs_reaper::<New>()?;
        Ok(converted.len())
    }
}

impl Database {
    /// Applies a [`WholeTable::Replace`] record (another copy's `transform`) to the table
    /// kept here in `storage`, which `drop` drops: the table made anew with this program's
    /// type of the record's shape, where it was kept, holding the record's rows. Refused,
    /// changing nothing, when this program has no type of that shape. (The table is gone
    /// for a moment: a reader of this copy meanwhile finds no table.)
    pub(crate) fn replace_here(
        &self,
        replace: &WholeTable,
        storage: StorageType,
        drop: impl FnOnce() -> Result<()>,
    ) -> Result<()> {
        let WholeTable::Replace { shape, type_name, indexes, version, counter, rows } = replace else {
            return Err(Error::Internal("replace_here applies a Replace record".into()));
        };
        if !crate::features::kinds::declared(shape) {
            return Err(crate::engine::commit_record::misfit(
                shape.name(),
                "this program has no record type of the shape the table was transformed to",
            ));
        }
        let storage = match storage {
            // disc_only_copies tables are set or bag.
            StorageType::DiscOnlyCopies if shape.table_type == format!("{:?}", TableType::OrderedSet) => {
                StorageType::DiscCopies
            }
            storage => storage,
        };
        drop()?;
        let made = crate::features::kinds::Made { storage, version: *version };
        crate::features::kinds::create_declared(self, shape, type_name, indexes, made)?;
        let table = self.any_table(shape.name())?;
        table.raise_counter(*counter);
        crate::tx::context::transact(self.clone(), || {
            crate::tx::context::with_tx(|tx| tx.part_of(&table)?.apply_change(rows))
        })
    }
}
