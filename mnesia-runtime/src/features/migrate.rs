//! Migrations (Mnesia's `transform_table`): converting every record of a table to a new
//! record type, all or nothing, crash-safe on disc.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::db::{AnyTable, Database, lock_all};
use crate::disk::record::TableOps;
use crate::disk::schema::TableDef;
use crate::engine::commit_record::{CommitRecord, Content, KeyChange, TableReads, WholeTable};
use crate::engine::meta::{RecordMeta, into_records, meta_of};
use crate::engine::store::TableStore;
use crate::error::{Error, Result};
use crate::schema::index_spec::IndexSpec;
use crate::schema::record::{IndexInfo, Record, StorageType, TableType};
use crate::schema::row::{Row, RowOf};
use crate::schema::shape::RecordShape;
use crate::schema::stored::StoredRecord;

impl Database {
    /// Converts every record of table `Old` into a `New` (Mnesia's `transform_table`): the
    /// table keeps its name and storage, gets `New`'s declared indexes, keeps those it had
    /// (declared or added with `add_index`) on fields `New` still has, and gets a version one
    /// higher. All or nothing: if `f` fails for a record, or the new records break a key or
    /// unique constraint, nothing changes. On disc the new records are logged under a new
    /// table id before the schema change that switches the table to them, so a crash leaves
    /// either the old table or the new one. Writers of the table wait while it runs, and
    /// `f` must not use the table. Returns how many records were converted (expired ones
    /// are dropped). A `disc_only_copies` table is refused: move it to `disc_copies` first.
    ///
    /// With a commit-record sink ([`Database::replicate_to`]) the converted records reach
    /// it as one record. On an ordered copy (a cluster node) the records are read and
    /// converted here, and every copy makes the table anew with them at the record's place
    /// in the shared order (their program's type of `New`'s shape, [`Error::SchemaMismatch`]
    /// on a copy without one); a write of the table ordered after they were read makes the
    /// transform run again, `f` included (up to [`Config::max_retries`](crate::Config::max_retries)
    /// times: under a steady stream of writes to the table it may give up with
    /// [`Error::TooManyRetries`]), and a transaction that wrote the old table and is ordered
    /// after the transform runs again, on the new one. The converted records travel as one
    /// record: a cluster refuses one larger than it orders ([`Error::TooLarge`]).
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
        if Old::NAME != New::NAME {
            return Err(Error::Invalid(format!(
                "transform converts a table's records in place: {} and {} name different tables",
                std::any::type_name::<Old>(),
                std::any::type_name::<New>()
            )));
        }
        // (Claims a disc table recovered from the directory: claiming takes the schema lock.)
        // (A table this node keeps for itself is converted here alone.)
        if self.orders(self.table::<Old>()?.is_local()) {
            return self.order_transform(&mut f);
        }
        let _schema = self.inner.schema.lock();
        // The store in place under the schema lock, which every change of a table's store
        // holds (one looked up before may have been replaced meanwhile).
        let old = self.registered::<Old>()?;
        refuse_disc_only(&old)?;
        let old_indexes = old.indexes.load_full();
        let held = lock_all(&old, &old_indexes);
        // The counter is final from here on (see `Sealed`): the new table starts from it, so
        // that no id handed out, or of a record since deleted, is handed out again.
        let (sealed, counter) = crate::engine::store::Sealed::new(&old);
        let mut converted: Vec<New> = {
            let _converting = self.converting(Old::NAME);
            into_records::<Old>(live_records(&old))?.into_iter().map(&mut f).collect::<Result<_>>()?
        };
        let counter = assign_ids(&mut converted, counter)?;
        let count = converted.len();
        let converted: Vec<RowOf<New>> = converted.into_iter().map(Row::new).collect();
        let meta = meta_of::<New>();
        let seq = self.next_seq();
        let rows = rows_of(meta, &converted, seq)?;
        let specs = meta.specs_with(&old.index_infos());
        let fresh = self.checked_store(meta, &rows, &specs)?;
        fresh.counter.fetch_max(counter, Ordering::AcqRel);
        let version = old.version.load(Ordering::Acquire) + 1;
        fresh.version.store(version, Ordering::Release);
        // Made while every commit lock of the table is held, handed before the new store can
        // be written: in its place among the table's commits.
        let counter = fresh.counter.load(Ordering::Acquire);
        let replaced = self.replicating().then(|| replacement(meta, &rows, &specs, version, counter));
        self.put_in_place(meta, old.as_ref(), fresh, rows, &specs, replaced)?;
        sealed.keep();
        drop(held);
        self.needs_reaper(meta)?;
        Ok(count)
    }
}

impl Database {
    /// `transform` on an ordered copy (a cluster node): the records converted here, from
    /// this copy's table at a place of the order, go through the order as a record of their
    /// own ([`WholeTable::Replace`], which also reads the whole table), and every copy makes
    /// the table anew with them at the record's place. A write of the table ordered after
    /// the place the records were read at conflicts: they are read and converted again
    /// (`f` runs again), up to the database's retry limit.
    fn order_transform<Old: Record, New: Record>(
        &self,
        f: &mut impl FnMut(Old) -> Result<New>,
    ) -> Result<usize> {
        let attempts = self.inner.config.max_retries.max(1);
        for _ in 0..attempts {
            let sequencer = self
                .sequencer()
                .ok_or_else(|| Error::Invalid("transform: commits are no longer ordered".into()))?;
            let old = self.table::<Old>()?;
            refuse_disc_only(&old)?;
            // (It converts the records it holds: all of them, or it converts none.)
            old.place.check(Old::NAME)?;
            // Read with every commit lock held, at the place of the order applied by then:
            // no record is applied to the table meanwhile.
            let (based_on, records, counter, version, infos) = {
                let indexes = old.indexes.load_full();
                let _held = lock_all(&old, &indexes);
                // Replaced meanwhile (another copy's transform applied here): look again.
                if old.is_dropped() {
                    continue;
                }
                let based_on = self.applied_index();
                (
                    based_on,
                    into_records::<Old>(live_records(&old))?,
                    old.counter.load(Ordering::Acquire),
                    old.version.load(Ordering::Acquire),
                    old.index_infos(),
                )
            };
            let mut converted: Vec<New> = records.into_iter().map(&mut *f).collect::<Result<_>>()?;
            let counter = assign_ids(&mut converted, counter)?;
            let count = converted.len();
            let converted: Vec<RowOf<New>> = converted.into_iter().map(Row::new).collect();
            let meta = meta_of::<New>();
            let rows = rows_of(meta, &converted, 0)?;
            // The new records break no key or unique index: refused here, before any copy
            // drops its table.
            let specs = meta.specs_with(&infos);
            self.checked_store(meta, &rows, &specs)?;
            let replace = replacement(meta, &rows, &specs, version + 1, counter);
            let mut record = CommitRecord::whole(New::NAME, replace, based_on);
            record.reads = vec![TableReads { table: New::NAME.to_owned(), buckets: Vec::new(), whole: true }];
            match sequencer.order(record) {
                Err(Error::Conflict) => continue,
                done => return done.map(|()| count),
            }
        }
        Err(Error::TooManyRetries { attempts })
    }

    /// A store of the table `meta` describes holding `rows`, with the indexes `specs`: an
    /// error if the rows break a unique index.
    fn checked_store<R: StoredRecord>(
        &self,
        meta: &'static RecordMeta<R>,
        rows: &crate::disk::Rows,
        specs: &[IndexSpec<R>],
    ) -> Result<TableStore<R>> {
        let fresh = self.new_store(meta, specs)?;
        fresh.load(rows).map_err(|e| match e {
            Error::SchemaMismatch { differences, .. } => Error::Invalid(format!(
                "table {}: the converted records break a unique index: {}",
                meta.name,
                differences.join("; ")
            )),
            other => other,
        })?;
        Ok(fresh)
    }

    /// Puts `fresh`, holding `rows`, in the place of `old` (the caller holds the schema
    /// lock and every commit lock of `old`): on disc the rows are logged under a new table
    /// id before the schema change that switches the table to them (a record after them in
    /// the log), so a crash leaves the old table or the new one; `old`'s subscribers hear `Dropped`, and its
    /// transactions run again on `fresh`. `replaced` goes to the sink first, if any.
    fn put_in_place<R: StoredRecord>(
        &self,
        meta: &'static RecordMeta<R>,
        old: &dyn AnyTable,
        fresh: TableStore<R>,
        rows: crate::disk::Rows,
        specs: &[IndexSpec<R>],
        replaced: Option<WholeTable>,
    ) -> Result<()> {
        // Placed as the old one (this node's own stays so).
        fresh.place.copy_from(old.placement());
        let mut seq = None;
        if let (Some(old_id), Some(disk)) = (old.disk_id(), self.disk()) {
            let new_id = disk.update_schema(|schema| schema.allocate_id())??;
            let counter = fresh.counter.load(Ordering::Acquire);
            let writes = rows.into_iter().map(|(k, (_, v))| (k, v)).collect();
            seq = Some(self.sequence(&[TableOps {
                table: new_id,
                clear: true,
                counter,
                reset: false,
                writes,
            }])?);
            let infos = specs
                .iter()
                .map(|s| IndexInfo { field: s.field().to_owned(), unique: s.is_unique() })
                .collect();
            // (A copy keeping the table on disc only keeps it in memory and on disc from now
            // on: an `ordered_set`, say, is never on disc only.)
            let mut def =
                TableDef::traced(&meta.facts, (meta.format)(), new_id, StorageType::DiscCopies, infos);
            def.version = fresh.version.load(Ordering::Acquire);
            let def = def.local(old.is_local());
            // The new records are in the log before the schema change that names them: a
            // crash leaves the old table or the new one.
            disk.update_schema(|schema| {
                schema.tables.retain(|t| t.id != old_id);
                schema.tables.push(def);
            })?;
            fresh.disk_id.store(new_id, Ordering::Release);
            // The switch is made: the old records' file goes if it can (one left behind
            // holds a table the schema no longer names).
            if old.storage() == StorageType::DiscOnlyCopies {
                disk.drop_disc_only(meta.name, old_id);
            }
        }
        old.retire();
        let mut next = (*self.inner.tables.load_full()).clone();
        next.insert(meta.name.to_owned(), Arc::new(fresh) as Arc<dyn AnyTable>);
        // Before the new store can be written: in its place among the table's commits.
        if let Some(replaced) = replaced {
            self.hand_whole(meta.name, replaced, seq.unwrap_or_else(|| self.next_seq()));
        }
        self.put_tables(next);
        Ok(())
    }
}

/// Applies a [`WholeTable::Replace`] record (a transform, or a restore that recreates the
/// table) to `old`, the table here, with this program's type `New` for its shape: a new
/// store holding the record's rows, with exactly its indexes, version and counter, takes
/// `old`'s place at once, where `old` was kept (a reader meanwhile sees the old table or
/// the new one). A record whose rows do not decode, or break a unique index, changes
/// nothing. `Error::Conflict` if a new store took `old`'s place meanwhile.
pub(crate) fn replace_as<New: Record>(
    db: &Database,
    old: &Arc<dyn AnyTable>,
    replace: &WholeTable,
) -> Result<()> {
    replace_in(db, meta_of::<New>(), old, replace)
}

/// [`replace_as`] for the table `meta` describes.
fn replace_in<R: StoredRecord>(
    db: &Database,
    meta: &'static RecordMeta<R>,
    old: &Arc<dyn AnyTable>,
    replace: &WholeTable,
) -> Result<()> {
    let _schema = db.inner.schema.lock();
    match db.inner.tables.load().get(meta.name) {
        None => return Err(Error::no_such_table(meta.name)),
        // A new store took the table's place meanwhile: make the change on that one.
        Some(here) if !Arc::ptr_eq(here, old) => return Err(Error::Conflict),
        Some(_) => {}
    }
    let list = old.index_list();
    let mut reqs = Vec::new();
    old.exclusive_locks(list.as_ref(), &mut reqs)?;
    let held = crate::base::lock::HeldLocks::acquire(reqs);
    // The old counter is final from here on (an id taken meanwhile comes from the new
    // store), and the new store's never below it: no id handed out is handed out again.
    let (sealed, counter) = Arc::clone(old).seal();
    let (fresh, loaded, specs) = prepared(db, meta, replace)?;
    fresh.counter.fetch_max(counter, Ordering::AcqRel);
    let forwarded = db.replicating().then(|| replace.clone());
    db.put_in_place(meta, old.as_ref(), fresh, loaded, &specs, forwarded)?;
    sealed.keep();
    drop(held);
    db.needs_reaper(meta)
}

/// Checks that `replace` (a [`WholeTable::Replace`] record) makes a table of type `New`:
/// its rows decode, each key once in a `set`, its unique indexes hold.
pub(crate) fn check_replace<New: Record>(db: &Database, replace: &WholeTable) -> Result<()> {
    prepared(db, meta_of::<New>(), replace).map(drop)
}

/// A store made for a replacement, with its rows as the log keeps them and its index specs.
type Prepared<R> = (TableStore<R>, crate::disk::Rows, Vec<IndexSpec<R>>);

/// The store of type `New` a [`WholeTable::Replace`] record makes: its rows decoded and
/// filed again under their own keys (rows that do not fit the struct, or a key of a `set`
/// holding several records, are refused), its indexes built and checked, its version and
/// counter set; with the rows as the log keeps them and the index specs.
fn prepared<R: StoredRecord>(
    db: &Database,
    meta: &'static RecordMeta<R>,
    replace: &WholeTable,
) -> Result<Prepared<R>> {
    let WholeTable::Replace { indexes, version, counter, rows, .. } = replace else {
        return Err(Error::Internal("a Replace record was expected".into()));
    };
    let specs = exact_specs(meta, indexes)?;
    let mut records = Vec::with_capacity(rows.len());
    for change in rows {
        match &change.value {
            Content::Put(r) => records.push(meta.decode_whole(r)?),
            Content::Group(g) => {
                for r in g {
                    records.push(meta.decode_whole(r)?);
                }
            }
            other => return Err(crate::engine::commit_record::misfit(meta.name, format!("a row {other:?}"))),
        }
    }
    let loaded = rows_of(meta, &records, db.next_seq())?;
    let fresh = db.checked_store(meta, &loaded, &specs)?;
    fresh.counter.fetch_max(*counter, Ordering::AcqRel);
    fresh.version.store(*version, Ordering::Release);
    Ok((fresh, loaded, specs))
}

/// `Err` for a transform of a `disc_only_copies` table (its records are read into memory).
fn refuse_disc_only<R: StoredRecord>(old: &TableStore<R>) -> Result<()> {
    if old.storage() == StorageType::DiscOnlyCopies {
        return Err(Error::Invalid(format!(
            "table {}: transform a disc_only_copies table by moving it to disc_copies first (change_table_copy_type)",
            old.meta.name
        )));
    }
    Ok(())
}

/// The live records of `old` (expired ones left out), copied out shard by shard.
fn live_records<R: StoredRecord>(old: &TableStore<R>) -> Vec<R> {
    let alive = old.alive();
    let mut records = Vec::new();
    for shard in 0..old.shard_count() {
        old.scan_shard(shard, |r| {
            if alive.keeps(r) {
                records.push(r.clone());
            }
        });
    }
    records
}

/// Gives the records whose `#[auto_increment]` key `f` left at 0 ids past `counter` and
/// past every id the others hold, in their order (as a bulk load does); returns the counter
/// after them.
fn assign_ids<T: Record>(records: &mut [T], counter: u64) -> Result<u64> {
    if !T::AUTO_INCREMENT {
        return Ok(counter);
    }
    let mut last = records.iter().filter_map(Record::auto_id).fold(counter, u64::max);
    for rec in records.iter_mut().filter(|r| r.auto_id() == Some(0)) {
        last = last.checked_add(1).ok_or_else(|| {
            Error::Invalid(format!("table {}: the auto-increment counter is at its top", T::NAME))
        })?;
        rec.set_auto_id(last)?;
    }
    Ok(last)
}

/// `records` encoded as the log keeps them, one group per key, at version `seq`: an error
/// if two records of a `set` or `ordered_set` have one key.
fn rows_of<R: StoredRecord>(meta: &RecordMeta<R>, records: &[R], seq: u64) -> Result<crate::disk::Rows> {
    use crate::disk::record::{Logged, encode};
    let mut rows = crate::disk::Rows::default();
    for rec in records {
        let key = encode(rec.key())?;
        match (meta.kind, rows.get_mut(&key)) {
            (TableType::Bag, Some((_, Logged::Group(g)))) => g.push((meta.encode)(rec)?),
            (TableType::Bag, _) => {
                rows.insert(key, (seq, Logged::Group(vec![(meta.encode)(rec)?])));
            }
            (_, Some(_)) => {
                return Err(Error::Invalid(format!(
                    "table {}: two records have the key {:?}",
                    meta.name,
                    rec.key()
                )));
            }
            (_, None) => {
                rows.insert(key, (seq, Logged::Put((meta.encode)(rec)?)));
            }
        }
    }
    Ok(rows)
}

/// What every copy needs to make the table `meta` describes with the indexes `specs`: its
/// shape, its Rust name, and each index (field, unique).
pub(crate) fn described<R: StoredRecord>(
    meta: &RecordMeta<R>,
    specs: &[IndexSpec<R>],
) -> (RecordShape, String, Vec<(String, bool)>) {
    let indexes = specs.iter().map(|s| (s.field().to_owned(), s.is_unique())).collect();
    (RecordShape::of_facts(&meta.facts), (meta.type_name)().to_owned(), indexes)
}

/// The record of the table `meta` describes made anew holding `rows`, with the indexes
/// `specs`, at `version`, its counter at `counter`.
fn replacement<R: StoredRecord>(
    meta: &RecordMeta<R>,
    rows: &crate::disk::Rows,
    specs: &[IndexSpec<R>],
    version: u32,
    counter: u64,
) -> WholeTable {
    let (shape, type_name, indexes) = described(meta, specs);
    WholeTable::Replace {
        shape,
        type_name,
        indexes,
        version,
        counter,
        rows: rows
            .iter()
            .map(|(key, (_, value))| KeyChange {
                key: key.clone(),
                value: Content::from(value.clone()),
                expired: false,
            })
            .collect(),
    }
}

/// The index specs of the table `meta` describes for exactly `indexes` (the struct's own
/// where it declares one alike).
pub(crate) fn exact_specs<R: StoredRecord>(
    meta: &RecordMeta<R>,
    indexes: &[(String, bool)],
) -> Result<Vec<IndexSpec<R>>> {
    let declared = (meta.indexes)();
    indexes
        .iter()
        .map(|(field, unique)| {
            declared
                .iter()
                .find(|s| s.field() == field && s.is_unique() == *unique)
                .cloned()
                .or_else(|| (meta.index_spec_for)(field, *unique))
                .ok_or_else(|| {
                    crate::engine::commit_record::misfit(
                        meta.name,
                        format!("an index on `{field}`, which it cannot index"),
                    )
                })
        })
        .collect()
}
