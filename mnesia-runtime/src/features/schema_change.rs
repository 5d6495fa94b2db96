//! Schema changes: creating, dropping and clearing tables, adding and removing their
//! indexes, moving them between storage types. On an ordered copy (a cluster node) each one
//! but the storage move goes through the shared order as a record of its own, and every
//! copy makes it at the record's place (the `..._here`, `..._store`, `..._to` and
//! `..._from` functions make it on this copy).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::Database;
use crate::db::{AnyTable, lock_all};
use crate::disk::Disk;
use crate::disk::record::TableOps;
use crate::disk::schema::TableDef;
use crate::engine::commit_record::{CommitRecord, WholeTable};
use crate::engine::meta::{RecordMeta, meta_of};
use crate::engine::store::{IndexList, TableStore};
use crate::error::{Error, Result};
use crate::features::making::Making;
use crate::schema::index_spec::{IndexSpec, TableIndex};
use crate::schema::options::TableOptions;
use crate::schema::record::{IndexInfo, Record, StorageType, TableType};
use crate::schema::row::RowOf;
use crate::schema::stored::StoredRecord;

/// The record of creating the table `meta` describes with the indexes `specs` (each copy
/// makes exactly these), on the nodes `nodes` (none: every node), those of `disc` among
/// them keeping a disc copy.
fn creation<R: StoredRecord>(
    meta: &RecordMeta<R>,
    specs: &[IndexSpec<R>],
    nodes: &[String],
    disc: Vec<String>,
) -> WholeTable {
    let (shape, type_name, indexes) = crate::features::migrate::described(meta, specs);
    match (nodes.is_empty(), disc.is_empty()) {
        (true, _) => WholeTable::Create { shape, type_name, indexes },
        (false, true) => WholeTable::CreateOn { shape, type_name, indexes, nodes: nodes.to_vec() },
        (false, false) => WholeTable::CreateCopies { shape, type_name, indexes, nodes: nodes.to_vec(), disc },
    }
}

impl Database {
    /// Creates table `T` (what `T::create_table` calls). While commits are
    /// [ordered](Database::order_commits_with) (on a running cluster node) the table is
    /// created on every copy, in memory, each copy with its own program's type for it
    /// (`Error::TableExists` when it is here already), holding its records on the nodes
    /// the options list (`ram_copies([..])`, `disc_copies([..])`, or both; on every node
    /// when they list none), unless it is this node's own
    /// ([`TableOptions::local_content`]): that one is made here alone. A node named
    /// twice is refused.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct Item { #[key] id: u32 }
    /// let db = Database::in_memory()?;
    /// db.create_table::<Item>(TableOptions::new())?;
    /// assert!(db.create_table::<Item>(TableOptions::new()).is_err());
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn create_table<T: Record>(&self, options: TableOptions<T>) -> Result<()> {
        if self.orders(options.is_local_content()) {
            return self.order_create(options);
        }
        self.create_table_here(options)
    }

    /// `create_table` on an ordered copy (a cluster node): a record of its own, made at its
    /// place on every copy, each with its own program's type for the table.
    fn order_create<T: Record>(&self, options: TableOptions<T>) -> Result<()> {
        self.order_create_in(meta_of::<T>(), Making::from(&options))
    }

    /// [`Database::order_create`] of the table `meta` describes.
    fn order_create_in<R: StoredRecord>(
        &self,
        meta: &'static RecordMeta<R>,
        making: Making<'_, R>,
    ) -> Result<()> {
        let name = meta.name;
        if self.inner.tables.load().contains_key(name)
            || self.disk().is_some_and(|d| d.pending.lock().contains_key(name))
        {
            return Err(Error::TableExists { table: name.to_owned() });
        }
        making.check_named_once(name)?;
        if making.kinds.contains(&StorageType::DiscOnlyCopies) {
            return Err(Error::Invalid(format!(
                "table {name}: a table created on a running cluster node is ram_copies or disc_copies on each node (disc_only_copies is not there yet)"
            )));
        }
        if making.nodes.is_empty() && making.storage != StorageType::RamCopies {
            return Err(Error::Invalid(format!(
                "table {name}: a table of every node created on a running cluster node is ram_copies (each node keeps it in its Raft directory): name the nodes to make them {}",
                making.storage
            )));
        }
        let shape = crate::schema::shape::RecordShape::of_facts(&meta.facts);
        if !crate::features::kinds::declared(&shape) {
            return Err(Error::Invalid(format!(
                "table {name}: created while commits are ordered, the other copies make it with their program's type for it, found through #[derive(Table)], which {} does not use",
                (meta.type_name)()
            )));
        }
        let Some(sequencer) = self.sequencer() else {
            return Err(Error::Invalid(format!(
                "table {name}: not created from the thread applying the shared order"
            )));
        };
        let specs = making.specs(meta)?;
        if !making.nodes.is_empty() && specs.iter().any(IndexSpec::is_unique) {
            return Err(crate::engine::placement::no_unique(name));
        }
        let made = creation(meta, &specs, making.nodes, making.disc_nodes());
        sequencer.order(CommitRecord::whole(name, made, self.applied_index()))
    }

    /// [`Database::create_table`] on this copy, ordered or not (the named counters' table,
    /// which every copy creates when a record first needs it).
    pub(crate) fn create_table_here<T: Record>(&self, options: TableOptions<T>) -> Result<()> {
        self.create_here(meta_of::<T>(), Making::from(&options))
    }

    /// [`Database::create_table_here`] of the table `meta` describes.
    pub(crate) fn create_here<R: StoredRecord>(
        &self,
        meta: &'static RecordMeta<R>,
        making: Making<'_, R>,
    ) -> Result<()> {
        let (name, storage) = (meta.name, making.storage);
        // A table the order places on some nodes (`create_table` with a list of nodes on a
        // cluster node): registered on every node, held on those it names.
        let placed = !making.nodes.is_empty() && crate::engine::sequencer::applying(self.id());
        making.check_named_once(name)?;
        if let Some(node) = making.nodes.iter().find(|n| !placed && n.as_str() != self.inner.config.node()) {
            return Err(Error::Invalid(format!(
                "table {name}: node {node} is not this node ({}): a table on other nodes is created on a node running in a cluster",
                self.inner.config.node()
            )));
        }
        match (storage, self.disk()) {
            (StorageType::RamCopies, _) | (StorageType::DiscCopies, Some(_)) => {}
            (StorageType::DiscOnlyCopies, Some(_)) if meta.kind != TableType::OrderedSet => {}
            (StorageType::DiscOnlyCopies, Some(_)) => {
                return Err(Error::Invalid(format!(
                    "table {name}: disc_only_copies tables are set or bag (as in Mnesia); use disc_copies for an ordered_set"
                )));
            }
            (_, None) => {
                return Err(Error::Invalid(format!(
                    "table {name}: {storage} needs a database directory: open the database with Config::default().dir(..)"
                )));
            }
        }
        let specs = making.specs(meta)?;
        self.needs_reaper(meta)?;
        let _schema = self.inner.schema.lock();
        let map = self.inner.tables.load_full();
        let on_disc = self.disk().is_some_and(|d| d.pending.lock().contains_key(name));
        if map.contains_key(name) || on_disc {
            return Err(Error::TableExists { table: name.to_owned() });
        }
        let mut store = self.new_store(meta, &specs)?;
        store.version.store(making.version, Ordering::Release);
        store.place.set_local(making.local_content);
        if placed {
            store.place.place(Some(making.nodes.to_vec()), self.inner.config.node());
        }
        if let (StorageType::DiscCopies | StorageType::DiscOnlyCopies, Some(disk)) = (storage, self.disk()) {
            let infos = specs
                .iter()
                .map(|s| IndexInfo { field: s.field().to_owned(), unique: s.is_unique() })
                .collect();
            let format = (meta.format)();
            let disk_id = disk.update_schema(|schema| {
                let disk_id = schema.allocate_id()?;
                let mut def = TableDef::traced(&meta.facts, format, disk_id, storage, infos)
                    .local(making.local_content);
                def.version = making.version;
                schema.tables.push(def);
                Ok(disk_id)
            })??;
            store.disk_id.store(disk_id, Ordering::Release);
            if storage == StorageType::DiscOnlyCopies {
                store = store.into_disc_only(disk.disc_only()?, disk_id);
            }
        }
        let store: Arc<dyn AnyTable> = Arc::new(store);
        let mut next = (*map).clone();
        next.insert(name.to_owned(), store);
        // Before the table can be written: its creation reaches the sink before any write.
        if self.replicating() {
            let seq = self.next_seq();
            self.hand_whole(name, creation(meta, &specs, &[], Vec::new()), seq);
        }
        self.put_tables(next);
        self.inner
            .system
            .publish(crate::engine::system::SystemEvent::TableCreated { table: name.to_owned(), storage });
        Ok(())
    }

    /// Deletes table `T` and all its records.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct Item { #[key] id: u32 }
    /// let db = Database::in_memory()?;
    /// db.create_table::<Item>(TableOptions::new())?;
    /// db.drop_table::<Item>()?;
    /// assert!(!db.exists::<Item>());
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn drop_table<T: Record>(&self) -> Result<()> {
        self.change_whole_table::<T>(|| WholeTable::Drop, |store| self.drop_store(store))
    }

    /// Changes table `T` as a whole: on an ordered copy, `op()` goes through the shared
    /// order as a record of its own, and every copy makes it at the record's place (its
    /// verdict); elsewhere `here` makes it on the table's store. Made again, on the table as
    /// it is then, when a new store took the table's place meanwhile (a transform, a
    /// storage move, a restore: `here` says so with `Error::Conflict`, and so does the
    /// order for a record made before a transform or a re-creation ordered ahead of it).
    fn change_whole_table<T: Record>(
        &self,
        op: impl Fn() -> WholeTable,
        here: impl Fn(&TableStore<RowOf<T>>) -> Result<()>,
    ) -> Result<()> {
        for _ in 0..STORE_ATTEMPTS {
            let store = self.table::<T>()?;
            // (A table this node keeps for itself is changed here alone.)
            let done = match self.sequencer_of(store.is_local()) {
                Some(sequencer) => sequencer.order(CommitRecord::whole(T::NAME, op(), self.applied_index())),
                None => here(&store),
            };
            match done {
                Err(Error::Conflict) => continue,
                done => return done,
            }
        }
        Err(Error::TooManyRetries { attempts: STORE_ATTEMPTS })
    }

    /// Drops `store`'s table here.
    pub(crate) fn drop_store<T: StoredRecord>(&self, store: &TableStore<T>) -> Result<()> {
        let _schema = self.inner.schema.lock();
        let indexes = store.indexes.load_full();
        let held = lock_all(store, &indexes);
        in_place(store)?;
        if let (Some(id), Some(disk)) = (store.disk_id(), self.disk()) {
            disk.update_schema(|schema| schema.tables.retain(|t| t.id != id))?;
            if store.storage() == StorageType::DiscOnlyCopies {
                disk.drop_disc_only(store.meta.name, id);
            }
            store.disk_id.store(0, Ordering::Release);
        }
        store.release();
        let mut next = (*self.inner.tables.load_full()).clone();
        next.remove(store.meta.name);
        self.put_tables(next);
        // While every commit lock is held: after every event and commit of the table.
        store.subs.publish(crate::engine::events::Applied::Dropped);
        if self.replicating() {
            self.hand_whole(store.meta.name, WholeTable::Drop, self.next_seq());
        }
        drop(held);
        self.inner
            .system
            .publish(crate::engine::system::SystemEvent::TableDropped { table: store.meta.name.to_owned() });
        Ok(())
    }

    /// Removes every record of table `T`, atomically.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct Item { #[key] id: u32 }
    /// let db = Database::in_memory()?;
    /// db.create_table::<Item>(TableOptions::new())?;
    /// db.clear_table::<Item>()?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn clear_table<T: Record>(&self) -> Result<()> {
        self.change_whole_table::<T>(|| WholeTable::Clear, |store| self.clear_store(store))
    }

    /// Clears `store` here: every record removed at one commit (logged on disc), the
    /// `Cleared` event delivered, and the clear handed to the sink, if there is one, as a
    /// record of its own (in its place among the table's commits: every commit lock of the
    /// table is held from its number to its delivery).
    pub(crate) fn clear_store<T: StoredRecord>(&self, store: &TableStore<T>) -> Result<()> {
        let indexes = store.indexes.load_full();
        let held = lock_all(store, &indexes);
        in_place(store)?;
        let logged = store.disk_id().map(|id| {
            let counter = store.counter.load(Ordering::Acquire);
            TableOps { table: id, clear: true, counter, reset: false, writes: Vec::new() }
        });
        let seq = self.sequence(logged.as_slice())?;
        store.clear_all(seq, self.snapshots().floor());
        store.subs.publish(crate::engine::events::Applied::Cleared);
        self.hand_whole(store.meta.name, WholeTable::Clear, seq);
        drop(held);
        Ok(())
    }

    /// Makes `next` the next id table `T`'s `#[auto_increment]` key hands out (what
    /// `T::reset_counter` calls): durably on disc, handed to the sink if there is one, and
    /// on an ordered copy (a cluster node) made on every copy at its place in the order.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct Post { #[key] #[auto_increment] id: u32 }
    /// let db = Database::in_memory()?;
    /// db.create_table::<Post>(TableOptions::new())?;
    /// db.reset_counter::<Post>(50)?;
    /// assert_eq!(db.scope(|| Post::insert(Post { id: 0 }))?.id, 50);
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn reset_counter<T: Record>(&self, next: u64) -> Result<()> {
        if !T::AUTO_INCREMENT || next == 0 {
            return Err(Error::Invalid(format!(
                "table {}: reset_counter needs an #[auto_increment] key and a next id of at least 1",
                T::NAME
            )));
        }
        self.change_whole_table::<T>(
            || WholeTable::ResetCounter { next },
            |store| self.reset_counter_of(store, next),
        )
    }

    /// Sets `store`'s counter so that `next` is its next id, here (logged on disc, handed
    /// to the sink if there is one, in its place among the table's commits).
    pub(crate) fn reset_counter_of<T: StoredRecord>(&self, store: &TableStore<T>, next: u64) -> Result<()> {
        let indexes = store.indexes.load_full();
        let held = lock_all(store, &indexes);
        in_place(store)?;
        let counter = next.saturating_sub(1);
        store.counter.store(counter, Ordering::Release);
        let logged = store.disk_id().map(|table| TableOps {
            table,
            clear: false,
            counter,
            reset: true,
            writes: Vec::new(),
        });
        let seq = self.sequence(logged.as_slice())?;
        self.hand_whole(store.meta.name, WholeTable::ResetCounter { next }, seq);
        drop(held);
        Ok(())
    }

    /// Adds an index on a field of table `T`, built online from the current records.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct Item { #[key] id: u32, color: String }
    /// let db = Database::in_memory()?;
    /// db.create_table::<Item>(TableOptions::new())?;
    /// db.add_index(Item::COLOR.index_spec(false))?;
    /// assert_eq!(db.table_info::<Item>()?.indexes.len(), 1);
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn add_index<T: Record>(&self, spec: IndexSpec<T>) -> Result<()> {
        if spec.position() == T::KEY_POSITION {
            return Err(Error::Invalid(format!(
                "table {}: the key field {} cannot have a secondary index",
                T::NAME,
                spec.field()
            )));
        }
        // (An index on one copy only would decide unique checks differently: on an ordered
        // copy every copy adds it, at one place of the order.)
        let whole = || WholeTable::AddIndex { field: spec.field().to_owned(), unique: spec.is_unique() };
        self.change_whole_table::<T>(whole, |store| self.add_index_to(store, spec.for_rows()))
    }

    /// Adds the index `spec` to `store`'s table here (and hands the change to the sink, if
    /// there is one, in its place among the table's commits).
    pub(crate) fn add_index_to<T: StoredRecord>(
        &self,
        store: &TableStore<T>,
        spec: IndexSpec<T>,
    ) -> Result<()> {
        let _schema = self.inner.schema.lock();
        in_place(store)?;
        let current = store.indexes.load_full();
        if current.list.iter().any(|i| i.field() == spec.field()) {
            return Err(Error::IndexExists { table: store.meta.name.to_owned(), field: spec.field() });
        }
        let index = spec.build()?;
        let held = lock_all(store, &current);
        let seq = self.next_seq();
        let mut dup = None;
        for shard in 0..store.shard_count() {
            store.scan_shard(shard, |r| {
                if index.unique() && dup.is_none() {
                    let mut keys = Vec::new();
                    index.lookup_by_record(r, &mut keys);
                    if let Some(k) = keys.iter().find(|k| *k != r.key()) {
                        dup = Some((index.value_debug(r), format!("{k:?}")));
                    }
                }
                index.insert(r, seq);
            });
        }
        if let Some((value, existing_key)) = dup {
            drop(held);
            return Err(Error::UniqueViolation {
                table: store.meta.name.to_owned(),
                field: index.field(),
                value,
                existing_key,
            });
        }
        let whole = WholeTable::AddIndex { field: index.field().to_owned(), unique: index.unique() };
        let mut list = current.list.clone();
        list.push(index);
        self.persist_indexes(store, &list)?;
        store.indexes.store(Arc::new(IndexList { epoch: current.epoch + 1, list }));
        self.hand_whole(store.meta.name, whole, seq);
        drop(held);
        Ok(())
    }

    /// Moves table `T` between storage types on this node, online and atomically: its
    /// records reach their new home (and are durable there) before the schema says the table
    /// lives there. Commits to the table wait while it moves; a transaction that was running
    /// meanwhile runs again. `disc_only_copies` takes `set` and `bag` tables. For a table
    /// created on a running cluster node with a list of nodes, it changes this node's copy
    /// between `ram_copies` and `disc_copies` through the cluster's log instead (see the
    /// README's "Cluster" section).
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct Item { #[key] id: u32 }
    /// let db = Database::in_memory()?;
    /// db.create_table::<Item>(TableOptions::new())?;
    /// // An in-memory database has no directory to move the table to.
    /// assert!(db.change_table_copy_type::<Item>(StorageType::DiscCopies).is_err());
    /// db.change_table_copy_type::<Item>(StorageType::RamCopies)?; // already there
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn change_table_copy_type<T: Record>(&self, to: StorageType) -> Result<()> {
        if self.copies_ordered::<T>()? {
            return self.order_copy_type::<T>(self.inner.config.node(), to);
        }
        // Where this copy keeps the table is its own: a commit-record sink is not told
        // (the records stay as they are), but an ordered copy does not move its tables yet
        // (but those it keeps for itself).
        if !self.table::<T>()?.is_local() {
            self.refuse_while_ordering("change_table_copy_type")?;
        }
        let _schema = self.inner.schema.lock();
        // The store in place under the schema lock, which every change of a table's store
        // holds (one looked up before may have been replaced meanwhile).
        let store = self.registered::<T>()?;
        let from = store.storage();
        if from == to {
            return Ok(());
        }
        let disk = match (to, self.disk()) {
            (StorageType::DiscOnlyCopies, Some(_)) if T::TYPE == TableType::OrderedSet => {
                return Err(Error::Invalid(format!(
                    "table {}: disc_only_copies tables are set or bag (as in Mnesia)",
                    T::NAME
                )));
            }
            (_, Some(disk)) => disk,
            (_, None) => {
                return Err(Error::Invalid(format!(
                    "table {}: disc_copies needs a database directory: open the database with Config::default().dir(..)",
                    T::NAME
                )));
            }
        };
        let indexes = store.indexes.load_full();
        let held = lock_all(&store, &indexes);
        if from == StorageType::DiscOnlyCopies || to == StorageType::DiscOnlyCopies {
            return self.move_disc_only::<T>(&store, disk, to);
        }
        match store.disk_id() {
            None => {
                let infos = store.index_infos();
                let id = disk.update_schema(|schema| schema.allocate_id())??;
                // The records so far were never logged: one commit brings them all, before
                // the schema names the table (a crash between leaves it a ram table).
                let counter = store.counter.load(Ordering::Acquire);
                let writes = store.entries_locked()?.into_iter().map(|e| (e.key, e.value)).collect();
                self.sequence(&[TableOps { table: id, clear: true, counter, reset: false, writes }])?;
                disk.update_schema(|schema| {
                    schema
                        .tables
                        .push(TableDef::of::<T>(id, StorageType::DiscCopies, infos).local(store.is_local()));
                })?;
                store.disk_id.store(id, Ordering::Release);
            }
            Some(id) => {
                disk.update_schema(|schema| schema.tables.retain(|t| t.id != id))?;
                store.disk_id.store(0, Ordering::Release);
            }
        }
        drop(held);
        Ok(())
    }

    /// Moves a table to or from `disc_only_copies` (the caller holds every commit lock): the
    /// records go to their new home and are durable there before the schema, rewritten in one
    /// step, says where the table lives; then a new store takes the old one's place.
    fn move_disc_only<T: Record>(
        &self,
        store: &Arc<TableStore<RowOf<T>>>,
        disk: &Disk,
        to: StorageType,
    ) -> Result<()> {
        let entries = store.entries_locked()?;
        // The counter is final from here on (see `Sealed`), and the new store starts from it.
        let (sealed, counter) = crate::engine::store::Sealed::new(store);
        let infos = store.index_infos();
        let new_id = match to {
            StorageType::RamCopies => None,
            _ => Some(disk.update_schema(|schema| schema.allocate_id())??),
        };
        match (to, new_id) {
            (StorageType::DiscOnlyCopies, Some(id)) => {
                let disc = disk.disc_only()?;
                let writes: Vec<_> =
                    entries.iter().map(|e| (e.key.clone(), e.version, e.value.clone())).collect();
                disc.apply(id, true, &writes, false)?;
                disc.sync()?;
            }
            (StorageType::DiscCopies, Some(id)) => {
                let writes = entries.iter().map(|e| (e.key.clone(), e.value.clone())).collect();
                self.sequence(&[TableOps { table: id, clear: true, counter, reset: false, writes }])?;
            }
            _ => {}
        }
        let old_id = store.disk_id();
        // The new id's records are in the log (or durable in the disc-only file) before the
        // schema change that names it, which follows them in the log: a crash leaves the
        // old table or the new one.
        disk.update_schema(|schema| {
            schema.tables.retain(|t| Some(t.id) != old_id);
            if let Some(id) = new_id {
                schema.tables.push(TableDef::of::<T>(id, to, infos.clone()).local(store.is_local()));
            }
        })?;
        if let (Some(id), StorageType::DiscOnlyCopies) = (old_id, store.storage()) {
            disk.drop_disc_only(T::NAME, id);
        }
        // The new store, with indexes of its own.
        let meta = meta_of::<T>();
        let mut fresh = self.new_store(meta, &meta.specs_with(&infos))?;
        fresh.place.copy_from(&store.place);
        match (to, new_id) {
            (StorageType::DiscOnlyCopies, Some(id)) => {
                fresh = fresh.into_disc_only(disk.disc_only()?, id);
                fresh.load_disc_only()?;
            }
            _ => {
                if let Some(id) = new_id {
                    fresh.disk_id.store(id, Ordering::Release);
                }
                let rows: crate::disk::Rows =
                    entries.into_iter().map(|e| (e.key, (e.version, e.value))).collect();
                fresh.load(&rows)?;
            }
        }
        fresh.counter.fetch_max(counter, Ordering::AcqRel);
        // The table's subscribers stay subscribed.
        fresh.subs = Arc::clone(&store.subs);
        store.mark_replaced();
        sealed.keep();
        store.release();
        let mut next = (*self.inner.tables.load_full()).clone();
        next.insert(T::NAME.to_owned(), Arc::new(fresh));
        self.put_tables(next);
        Ok(())
    }

    /// Records a disc table's indexes in the schema, so they are rebuilt on the next open.
    pub(crate) fn persist_indexes<T: StoredRecord>(
        &self,
        store: &TableStore<T>,
        list: &[Arc<dyn TableIndex<T>>],
    ) -> Result<()> {
        let (Some(id), Some(disk)) = (store.disk_id(), self.disk()) else { return Ok(()) };
        let infos: Vec<IndexInfo> =
            list.iter().map(|i| IndexInfo { field: i.field().to_owned(), unique: i.unique() }).collect();
        disk.update_schema(|schema| {
            if let Some(def) = schema.tables.iter_mut().find(|t| t.id == id) {
                def.indexes = infos;
            }
        })
    }

    /// Removes the index on a field of table `T`.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct Item { #[key] id: u32, #[index] color: String }
    /// let db = Database::in_memory()?;
    /// db.create_table::<Item>(TableOptions::new())?;
    /// db.remove_index::<Item>("color")?;
    /// assert!(db.table_info::<Item>()?.indexes.is_empty());
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn remove_index<T: Record>(&self, field: &'static str) -> Result<()> {
        let whole = || WholeTable::RemoveIndex { field: field.to_owned() };
        self.change_whole_table::<T>(whole, |store| self.remove_index_from(store, field))
    }

    /// Removes the index on `field` from `store`'s table here (and hands the change to the
    /// sink, if there is one, in its place among the table's commits).
    pub(crate) fn remove_index_from<T: StoredRecord>(
        &self,
        store: &TableStore<T>,
        field: &str,
    ) -> Result<()> {
        let _schema = self.inner.schema.lock();
        in_place(store)?;
        let current = store.indexes.load_full();
        let Some(field) = current.list.iter().map(|i| i.field()).find(|f| *f == field) else {
            let field = store.meta.fields.iter().map(|f| f.name).find(|f| *f == field).unwrap_or("?");
            return Err(Error::NoSuchIndex { table: store.meta.name.to_owned(), field });
        };
        let held = lock_all(store, &current);
        let list: Vec<_> = current.list.iter().filter(|i| i.field() != field).cloned().collect();
        self.persist_indexes(store, &list)?;
        store.indexes.store(Arc::new(IndexList { epoch: current.epoch + 1, list }));
        if self.replicating() {
            self.hand_whole(
                store.meta.name,
                WholeTable::RemoveIndex { field: field.to_owned() },
                self.next_seq(),
            );
        }
        drop(held);
        Ok(())
    }
}

/// How many times a change to a table as a whole is made again when a new store keeps
/// taking the table's place.
const STORE_ATTEMPTS: u32 = 100;

/// `Ok` if `store` is still its table's store here (for a caller holding its commit locks
/// or the schema lock, which every change of a table's store holds): `Error::Conflict` if a
/// new store took its place (make the change again on that one), `NoSuchTable` if the
/// table was dropped.
pub(crate) fn in_place<T: StoredRecord>(store: &TableStore<T>) -> Result<()> {
    if store.is_replaced() {
        return Err(Error::Conflict);
    }
    if store.is_dropped() {
        return Err(Error::no_such_table(store.meta.name));
    }
    Ok(())
}
