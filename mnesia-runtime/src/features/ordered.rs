//! Ordered commits: the commit protocol of a replicated database, without the network.
//!
//! A database given a [`Sequencer`] no longer installs its writing commits itself. A
//! transaction runs on the local copy as always; at commit, its writes, a summary of what it
//! read and the point of the shared order its reads started from ([`CommitRecord`]) go to
//! the sequencer, which places the record in one order shared by every copy. Each copy then
//! applies the records in that order ([`Database::apply_ordered`]), and decides each one
//! the same way from the record and the order alone: the record conflicts if a key bucket
//! it read (or a table it scanned) was written by a record ordered after its starting
//! point. A conflicting transaction runs again; a committed one returns once its copy has
//! applied it.
//!
//! Every copy keeps, from the order alone, the last record writing each of a table's key
//! buckets and the table as a whole ([`Versions`]): a few kilobytes per table, whatever its
//! size. Two keys sharing a bucket, or a scan (an index lookup counts as one), can make a
//! transaction run again when it would not have to; never the other way round.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::engine::commit_record::CommitRecord;
use crate::engine::sequencer::{Applying, Sequencer, Versions};
use crate::{Database, Error, Result};

impl Database {
    /// From now on, hands every commit that writes to `sequencer` instead of installing it:
    /// the commit is installed when the sequencer has it applied here, in its order, by
    /// [`Database::apply_ordered`] (which decides conflicts). Dirty operations, batches,
    /// counters and the reaper's removals are ordered too. Replaces an earlier sequencer.
    ///
    /// `create_table`, `clear_table`, `drop_table`, `add_index`, `remove_index` and
    /// `reset_counter` are ordered too, each as a record of its own: every copy makes the change at the
    /// record's place (a unique index that the records break is refused alike on every
    /// copy); a transaction that read the table before a clear or a drop and commits after
    /// conflicts, and a record writing a table the order dropped is refused on every copy.
    /// A table created while ordering is in memory on every copy (given lists of nodes,
    /// `TableOptions::ram_copies([..])`, `disc_copies([..])`, every copy registers it and
    /// those whose `Config::node_name` they list hold its records: see
    /// [`Error::NotHere`]), each making it with its
    /// own program's type of the same name and shape (every `#[derive(Table)]` registers
    /// its type, so a copy need not have named it yet; a copy whose program has none stops
    /// applying, [`Error::SchemaMismatch`]). `transform` is ordered as the converted
    /// records, which every copy makes the table anew with (see [`Database::transform`]).
    /// A restore orders each table it recreates the same way, and writes the others in one
    /// transaction. Not ordered yet, and refused while a sequencer is attached:
    /// `change_table_copy_type` of a table of every copy (that of a table on chosen
    /// nodes is ordered) and restores into tables no type has claimed. A record written with an `#[auto_increment]` id
    /// conflicts with another copy's record given the same one, and runs again with a new
    /// id; `next_id` claims its id through the order (a record that moves the table's
    /// counter on every copy), so that no two copies hand one out, and is refused inside a
    /// transaction (the claim would wait for the transaction's own locks).
    ///
    /// ```
    /// # use mnesia::{CommitRecord, Database, Result, Sequencer};
    /// # struct Alone { db: Database, last: std::sync::Mutex<u64> }
    /// # impl Sequencer for Alone {
    /// #     fn order(&self, record: CommitRecord) -> Result<()> {
    /// #         let mut last = self.last.lock().expect("lock");
    /// #         *last += 1;
    /// #         self.db.apply_ordered(*last, &record)
    /// #     }
    /// # }
    /// use mnesia::prelude::*;
    /// #[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
    /// struct Item { #[key] id: u32, n: i64 }
    ///
    /// let db = Database::in_memory()?;
    /// db.create_table::<Item>(TableOptions::new())?;
    /// db.order_commits_with(Alone { db: db.clone(), last: std::sync::Mutex::new(0) });
    /// db.scope(|| Item::write(Item { id: 1, n: 5 }))?;
    /// assert_eq!(db.applied_index(), 1);
    /// assert_eq!(db.scope(|| Item::read(&1))?, Some(Item { id: 1, n: 5 }));
    /// # db.stop_ordering();
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn order_commits_with(&self, sequencer: impl Sequencer) {
        self.inner.ordered.sequencer.store(Some(Arc::new(Box::new(sequencer))));
        self.inner.ordered.on.store(true, Ordering::Release);
    }

    /// Installs commits here again, as without [`Database::order_commits_with`] (the
    /// sequencer is dropped).
    ///
    /// ```
    /// let db = mnesia::Database::in_memory()?;
    /// db.stop_ordering();
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn stop_ordering(&self) {
        self.inner.ordered.on.store(false, Ordering::Release);
        self.inner.ordered.sequencer.store(None);
    }

    /// The place, in the shared order, of the last record this database applied (0 before
    /// the first).
    ///
    /// ```
    /// assert_eq!(mnesia::Database::in_memory()?.applied_index(), 0);
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn applied_index(&self) -> u64 {
        self.inner.ordered.applied()
    }

    /// Applies the record placed at `index` of the shared order (a place after
    /// [`Database::applied_index`]: places may be skipped, as a replicated log's entries
    /// that are not commits, but never applied twice or out of order), and returns its verdict, the same on every copy:
    /// `Ok(())` when it committed; `Err(Error::Conflict)` when a record placed after the
    /// one its transaction read from wrote what it read (nothing changes); another error
    /// that every copy meets alike (a unique index already holding a value, a table an
    /// earlier record dropped) leaves everything as it was too. Either way the record's
    /// place is taken (`applied_index()` is `index` after the call). An error of this copy
    /// alone ([`Error::is_local_failure`]: its disc, a table the record names that this
    /// copy lacks) leaves the place free: apply the record again once the cause is gone.
    ///
    /// ```
    /// use mnesia::prelude::*;
    /// #[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
    /// struct Item { #[key] id: u32 }
    ///
    /// let (primary, copy) = (Database::in_memory()?, Database::in_memory()?);
    /// primary.create_table::<Item>(TableOptions::new())?;
    /// copy.create_table::<Item>(TableOptions::new())?;
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// primary.replicate_to(move |r: &mnesia::CommitRecord| { let _ = tx.send(r.clone()); });
    /// primary.scope(|| Item::write(Item { id: 7 }))?;
    /// let record = rx.recv().expect("a record");
    /// copy.apply_ordered(1, &record)?;
    /// assert_eq!(copy.scope(|| Item::read(&7))?, Some(Item { id: 7 }));
    /// assert_eq!(copy.applied_index(), 1);
    /// // A place already taken: refused.
    /// assert!(copy.apply_ordered(1, &record).is_err());
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn apply_ordered(&self, index: u64, record: &CommitRecord) -> Result<()> {
        let _one_at_a_time = self.inner.ordered.applying.lock();
        let verdict = self.apply_in_order(index, record);
        // Tables waiting to be filled: what the record did to them, and those whose image
        // is of the place reached or an earlier one.
        if self.inner.ordered.fills.any.load(Ordering::Acquire) {
            if verdict.is_ok() {
                self.note_skipped(index, record);
            }
            let _ = self.fill_due();
        }
        verdict
    }

    /// [`Database::apply_ordered`], holding `applying`.
    fn apply_in_order(&self, index: u64, record: &CommitRecord) -> Result<()> {
        // Before the versions' lock (the schema lock comes first on every path): the named
        // counters' table, which a copy creates when a record first needs it.
        if record.changes.iter().any(|c| c.table == crate::tx::counters::COUNTERS_TABLE) {
            crate::tx::counters::ensure(self)?;
        }
        let ordered = &self.inner.ordered;
        self.refuse_own_tables(record.changes.iter().map(|c| c.table.as_str()))?;
        if record.whole_table().is_some() {
            return self.apply_whole(index, record);
        }
        let mut versions = ordered.versions.lock();
        next_place(index, ordered.applied())?;
        if let Some(refusal) = versions.refusal(record) {
            return self.take_place(&mut versions, index, record, Err(refusal), true);
        }
        let verdict = self.apply_here(record);
        self.take_place(&mut versions, index, record, verdict, false)
    }

    /// [`Database::apply_ordered`] of a record changing a table as a whole (only a
    /// transform's reads the table, and may conflict). The change takes the schema lock, which every path
    /// takes before the versions' lock: it is made without the versions locked, they are
    /// locked only to decide and to note (the caller holds `applying`: no other record is
    /// applied, and no snapshot cut, meanwhile).
    fn apply_whole(&self, index: u64, record: &CommitRecord) -> Result<()> {
        let ordered = &self.inner.ordered;
        {
            let mut versions = ordered.versions.lock();
            next_place(index, ordered.applied())?;
            if let Some(refusal) = versions.refusal(record) {
                return self.take_place(&mut versions, index, record, Err(refusal), true);
            }
        }
        let verdict = self.apply_here(record);
        let mut versions = ordered.versions.lock();
        self.take_place(&mut versions, index, record, verdict, false)
    }

    /// Makes `record`'s changes here, as the record's own (not ordered again).
    fn apply_here(&self, record: &CommitRecord) -> Result<()> {
        let _applying = Applying::enter(self.id());
        self.apply_commit(record)
    }

    /// Takes place `index` with `verdict` (noting `record`'s writes if it committed),
    /// unless the verdict is this copy's own failure and not `decided` by the order alone:
    /// then the place stays free.
    fn take_place(
        &self,
        versions: &mut Versions,
        index: u64,
        record: &CommitRecord,
        verdict: Result<()>,
        decided: bool,
    ) -> Result<()> {
        match &verdict {
            Err(e) if !decided && e.is_local_failure() => return verdict,
            Ok(()) => versions.note(index, record),
            Err(_) => {}
        }
        // After the writes are installed: a transaction reading from here on reads them.
        self.inner.ordered.applied.store(index, Ordering::Release);
        verdict
    }

    /// Waits until the tables `names` can be read here with every committed write in them
    /// (Mnesia's `wait_for_tables`). Each must exist ([`Error::NoSuchTable`] otherwise; a
    /// disc table recovered from the directory counts once the program has named its type,
    /// as it must before reading it). On one database they are ready at once; on a cluster
    /// node (a database whose commits are [ordered](Database::order_commits_with)) this waits
    /// until the node holds every commit decided in the cluster before the call (a node
    /// that restarted: until it has caught up; a table another node created: until it is
    /// here too), and fails with [`Error::NoMajority`] when that is not confirmed within
    /// `timeout` (tables the node keeps for itself, `TableOptions::local_content`, need no
    /// wait: naming only those, it returns at once).
    ///
    /// ```
    /// use mnesia::prelude::*;
    /// #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// struct Item { #[key] id: u32 }
    /// let db = Database::in_memory()?;
    /// db.create_table::<Item>(TableOptions::new())?;
    /// db.wait_for_tables(&["item"], std::time::Duration::from_secs(5))?;
    /// assert!(matches!(
    ///     db.wait_for_tables(&["nope"], std::time::Duration::from_secs(5)),
    ///     Err(mnesia::Error::NoSuchTable { .. })
    /// ));
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn wait_for_tables(&self, names: &[&str], timeout: std::time::Duration) -> Result<()> {
        // (Tables this node keeps for itself are current as they are.)
        let own = |name: &&str| match self.any_table(name) {
            Ok(t) => t.is_local(),
            // (One on disc not claimed yet: its definition says.)
            Err(_) => {
                self.disk().is_some_and(|d| d.pending.lock().get(*name).is_some_and(|p| p.def.local_content))
            }
        };
        let deadline = std::time::Instant::now() + timeout;
        if let Some(sequencer) = self.sequencer()
            && (names.is_empty() || !names.iter().all(own))
        {
            sequencer.catch_up(timeout)?;
        }
        for name in names {
            self.any_table(name)?;
        }
        // Copies waiting to be filled from another node (after a snapshot made there), or
        // being filled (an image being loaded: no longer waiting, not held yet).
        let me = self.inner.config.node();
        let unfilled = |name: &&&str| self.any_table(name).is_ok_and(|t| t.placement().waits_here(me));
        while let Some(name) = names.iter().find(unfilled) {
            if std::time::Instant::now() >= deadline {
                return self.any_table(name)?.placement().check(name);
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        Ok(())
    }
}

impl Database {
    /// `Err` (this copy's own failure: the place stays free) when one of `tables`, named
    /// by the order, is one this node keeps for itself here (`TableOptions::local_content`):
    /// the program makes it its own here and the cluster's on another node.
    pub(crate) fn refuse_own_tables<'a>(&self, tables: impl IntoIterator<Item = &'a str>) -> Result<()> {
        for name in tables {
            if self.any_table(name).is_ok_and(|t| t.is_local()) {
                return Err(Error::SchemaMismatch {
                    table: name.to_owned(),
                    differences: vec![
                        "this node keeps it for itself (local_content), and the cluster orders it: make it alike on every node".into(),
                    ],
                });
            }
        }
        Ok(())
    }
}

/// `Err` unless `index` is a place after `applied`, the last one taken.
fn next_place(index: u64, applied: u64) -> Result<()> {
    if index <= applied {
        return Err(Error::Invalid(format!(
            "ordered record {index} applied after record {applied}: records are applied in their order, once"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Table as _;
    use crate::testing::{Rec, rec};

    /// The record of writing `rec(1, "a", 1)` on a database of its own.
    fn a_write() -> CommitRecord {
        let primary = Database::in_memory().expect("db");
        primary.create_table::<Rec>(crate::TableOptions::new()).expect("table");
        let (tx, rx) = std::sync::mpsc::channel();
        primary.replicate_to(move |r: &CommitRecord| {
            let _ = tx.send(r.clone());
        });
        primary.scope(|| Rec::write(rec(1, "a", 1))).expect("write");
        rx.try_recv().expect("a record")
    }

    #[test]
    fn a_record_naming_a_table_this_copy_lacks_leaves_its_place_free() {
        let record = a_write();
        let copy = Database::in_memory().expect("db");
        let lacking = copy.apply_ordered(1, &record);
        assert!(matches!(lacking, Err(Error::NoSuchTable { .. })), "{lacking:?}");
        assert_eq!(copy.applied_index(), 0, "the place is still free");
        copy.create_table::<Rec>(crate::TableOptions::new()).expect("table");
        copy.apply_ordered(1, &record).expect("applied once the table is there");
        assert_eq!(copy.applied_index(), 1);
    }

    #[test]
    fn a_record_naming_a_table_this_copy_keeps_for_itself_leaves_its_place_free() {
        let record = a_write();
        let copy = Database::in_memory().expect("db");
        copy.create_table::<Rec>(crate::TableOptions::new().local_content()).expect("table");
        let own = copy.apply_ordered(1, &record);
        assert!(
            matches!(&own, Err(Error::SchemaMismatch { differences, .. }) if differences[0].contains("local_content")),
            "{own:?}"
        );
        assert!(own.as_ref().is_err_and(Error::is_local_failure), "this copy's own failure");
        assert_eq!(copy.applied_index(), 0, "the place is still free");
        assert_eq!(copy.scope(|| Rec::read(&1)).expect("read"), None, "its own table untouched");
        let mut snapshot = Vec::new();
        let primary = Database::in_memory().expect("db");
        primary.create_table::<Rec>(crate::TableOptions::new()).expect("table");
        primary.write_ordered_snapshot(&mut snapshot).expect("snapshot");
        let loaded = copy.load_ordered_snapshot(&snapshot[..]);
        assert!(matches!(loaded, Err(Error::SchemaMismatch { .. })), "{loaded:?}");
    }

    #[test]
    fn a_record_naming_a_disc_table_no_type_has_claimed_leaves_its_place_free() {
        let dir = tempfile::tempdir().expect("tempdir");
        crate::Schema::create(dir.path()).expect("schema");
        let open = || Database::open(crate::Config::default().dir(dir.path())).expect("open");
        {
            let copy = open();
            copy.create_table::<Rec>(crate::TableOptions::new().disc_copies([copy.node()])).expect("table");
        }
        let record = a_write();
        let copy = open();
        assert_eq!(copy.tables(), ["rec"], "recovered, not claimed");
        let unclaimed = copy.apply_ordered(1, &record);
        assert!(matches!(unclaimed, Err(Error::Unclaimed { .. })), "{unclaimed:?}");
        assert!(unclaimed.as_ref().is_err_and(Error::is_local_failure), "this copy's own failure");
        assert_eq!(copy.applied_index(), 0, "the place is still free");
        assert_eq!(copy.scope(|| Rec::read(&1)).expect("claimed by a typed read"), None);
        copy.apply_ordered(1, &record).expect("applied once a type has claimed it");
        assert_eq!(copy.applied_index(), 1);
        assert_eq!(copy.scope(|| Rec::read(&1)).expect("read"), Some(rec(1, "a", 1)));
    }
}
