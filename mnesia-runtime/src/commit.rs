//! Commit records: a committed transaction's writes, encoded, handed to a sink as the
//! database commits them ([`Database::replicate_to`]) and applied to another database
//! ([`Database::apply_commit`]). The seam replication is built on; ordered commits
//! (`ordered.rs`) carry the same records, with what the transaction read.
//!
//! What goes through it today: every transaction, dirty operation and batch, named
//! counters, and the reaper's removals of expired records, on tables of any storage and
//! type. Not yet: table creation and other schema changes, `clear_table`, `drop_table`,
//! bulk loads, restores that load new stores, transforms (refused while a sink is
//! attached), and ids handed out by `next_id` without a write. A replica is given its
//! tables, and runs with `Config::auto_cleanup(false)`: its expiries come from the
//! primary's reaper. (Ordered commits also carry `create_table`, `clear_table`,
//! `drop_table`, index changes and the ids `next_id` hands out.)

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::disk::record::Logged;
use crate::{Database, Error, Result};

thread_local! {
    /// The database whose sink this thread is running, if any: a commit to it from inside
    /// its own sink is refused (it would wait for locks the commit calling the sink holds).
    static IN_SINK: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
}

/// One committed transaction's writes, encoded as the log encodes them, in the order the
/// database committed it (see [`Database::replicate_to`]). Serializable (serde), to cross a
/// process boundary.
///
/// ```
/// use mnesia::prelude::*;
/// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
/// # struct Item { #[key] id: u32 }
/// let db = Database::in_memory()?;
/// db.create_table::<Item>(TableOptions::new())?;
/// let (tx, rx) = std::sync::mpsc::channel();
/// db.replicate_to(move |record: &mnesia::CommitRecord| { let _ = tx.send(record.clone()); });
/// db.scope(|| Item::write(Item { id: 1 }))?;
/// let record = rx.try_recv().expect("a record");
/// assert_eq!(record.tables(), ["item"]);
/// # Ok::<(), mnesia::Error>(())
/// ```
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct CommitRecord {
    /// The commit's number on the database that made it.
    pub(crate) seq: u64,
    /// The commit's time on the database that made it (what had expired, for the unique
    /// check and the events): the replica commits at the same time. The epoch when the
    /// commit touched no table with a `#[ttl]` field.
    pub(crate) time: SystemTime,
    pub(crate) changes: Vec<TableChange>,
    /// Ordered commits (see `ordered.rs`): the place of the shared order the transaction
    /// read from (0 for a record handed to a sink).
    pub(crate) based_on: u64,
    /// Ordered commits: what the transaction read, table by table (empty for a sink's).
    pub(crate) reads: Vec<crate::ordered::TableReads>,
}

/// One table's writes in a [`CommitRecord`].
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct TableChange {
    pub(crate) table: String,
    pub(crate) writes: Vec<KeyChange>,
}

/// What a commit did to one key: its encoded key and the records it holds after, and
/// whether the records removed had expired (the reaper's write).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct KeyChange {
    pub(crate) key: Vec<u8>,
    pub(crate) value: Content,
    pub(crate) expired: bool,
}

/// A key's encoded records after a commit. (Plain byte sequences, not serde's bytes: a
/// record must round-trip through any serde format, those with a bytes type of their own
/// included.)
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Content {
    /// The key's one record (`set`, `ordered_set`).
    Put(Vec<u8>),
    /// The key's records (`bag`).
    Group(Vec<Vec<u8>>),
    /// The key is gone.
    Delete,
    /// No record: the id the key holds is handed out (`next_id` on an ordered copy), and
    /// the table's counter moves past it on every copy.
    Claim(u64),
    /// A change to the table as a whole (on an ordered copy: the record's only change,
    /// under an empty key).
    Whole(WholeTable),
}

/// A change to a table as a whole, made on an ordered copy by a record of its own, at the
/// same place of the order on every copy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum WholeTable {
    /// The table created (`create_table`), as ram copies, with `indexes`: each copy makes
    /// it with its own program's type of that shape (`TableExists`, alike, when it is
    /// there already).
    Create {
        /// What the table's struct must be on every copy.
        shape: crate::shape::RecordShape,
        /// The struct's Rust name where it was created (of two types alike, the one to
        /// take).
        type_name: String,
        /// Every index of the table, the struct's included: (field, unique).
        indexes: Vec<(String, bool)>,
    },
    /// Every record removed (`clear_table`).
    Clear,
    /// The table gone (`drop_table`).
    Drop,
    /// An index added on a field (`add_index`).
    AddIndex {
        /// The field.
        field: String,
        /// Whether it is unique.
        unique: bool,
    },
    /// The index on a field removed (`remove_index`).
    RemoveIndex {
        /// The field.
        field: String,
    },
}

impl From<Logged> for Content {
    fn from(logged: Logged) -> Self {
        match logged {
            Logged::Put(r) => Content::Put(r),
            Logged::Group(g) => Content::Group(g),
            Logged::Delete => Content::Delete,
        }
    }
}

/// Hands `record` to `sink`, for database `db`: a panic of the sink is caught (the commit
/// has happened: it must not look failed), reported, and ends the replication.
pub(crate) fn deliver(db: &Database, sink: &Sink, record: &CommitRecord) {
    let before = IN_SINK.with(|s| s.replace(Some(db.id())));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sink(record)));
    IN_SINK.with(|s| s.set(before));
    if result.is_err() {
        db.stop_replicating();
        tracing::error!(
            target: "mnesia::replication",
            seq = record.seq,
            "the commit-record sink panicked: replication stopped (the commit itself stands)"
        );
    }
}

/// `Err` when this thread is running the sink of `db`: a commit to `db` from there would
/// wait for the locks of the commit that called the sink.
pub(crate) fn refuse_in_own_sink(db: &Database) -> Result<()> {
    if IN_SINK.with(|s| s.get()) == Some(db.id()) {
        return Err(Error::Invalid(
            "a commit-record sink must not write to the database it serves (hand the record to another thread or database)"
                .into(),
        ));
    }
    Ok(())
}

impl CommitRecord {
    /// The record of `op` on table `table` of an ordered copy, made at `based_on`.
    pub(crate) fn whole(table: &str, op: WholeTable, based_on: u64) -> CommitRecord {
        CommitRecord {
            seq: 0,
            time: std::time::UNIX_EPOCH,
            changes: vec![TableChange {
                table: table.to_owned(),
                writes: vec![KeyChange { key: Vec::new(), value: Content::Whole(op), expired: false }],
            }],
            based_on,
            reads: Vec::new(),
        }
    }

    /// The table this record changes as a whole, and how, if it is such a record.
    pub(crate) fn whole_table(&self) -> Option<(&str, &WholeTable)> {
        match self.changes.as_slice() {
            [change] => match change.writes.as_slice() {
                [KeyChange { value: Content::Whole(op), .. }] => Some((&change.table, op)),
                _ => None,
            },
            _ => None,
        }
    }

    /// Whether the record changes a table as a whole (creates, drops or clears it, adds or
    /// removes an index) rather than writing records: applying it may wait for a backup or
    /// a checkpoint of the copy, and may scan the table.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct Item { #[key] id: u32 }
    /// # let db = Database::in_memory()?;
    /// # db.create_table::<Item>(TableOptions::new())?;
    /// # let (tx, rx) = std::sync::mpsc::channel();
    /// # db.replicate_to(move |r: &mnesia::CommitRecord| { let _ = tx.send(r.clone()); });
    /// db.scope(|| Item::write(Item { id: 1 }))?;
    /// assert!(!rx.try_recv().expect("a record").changes_whole_table());
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn changes_whole_table(&self) -> bool {
        self.whole_table().is_some()
    }

    /// The commit's number on the database that made it.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct Item { #[key] id: u32 }
    /// # let db = Database::in_memory()?;
    /// # db.create_table::<Item>(TableOptions::new())?;
    /// # let (tx, rx) = std::sync::mpsc::channel();
    /// # db.replicate_to(move |r: &mnesia::CommitRecord| { let _ = tx.send(r.clone()); });
    /// db.scope(|| Item::write(Item { id: 1 }))?;
    /// assert_eq!(rx.try_recv().expect("a record").seq(), db.system_info().last_commit);
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The tables the commit wrote, in the order it lists them.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct Item { #[key] id: u32 }
    /// # let db = Database::in_memory()?;
    /// # db.create_table::<Item>(TableOptions::new())?;
    /// # let (tx, rx) = std::sync::mpsc::channel();
    /// # db.replicate_to(move |r: &mnesia::CommitRecord| { let _ = tx.send(r.clone()); });
    /// db.scope(|| Item::write(Item { id: 1 }))?;
    /// assert_eq!(rx.try_recv().expect("a record").tables(), ["item"]);
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn tables(&self) -> Vec<&str> {
        self.changes.iter().map(|c| c.table.as_str()).collect()
    }
}

impl fmt::Debug for CommitRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let writes: Vec<(&str, usize)> =
            self.changes.iter().map(|c| (c.table.as_str(), c.writes.len())).collect();
        f.debug_struct("CommitRecord").field("seq", &self.seq).field("writes", &writes).finish()
    }
}

/// Where a database hands its commit records.
pub(crate) type Sink = Arc<dyn Fn(&CommitRecord) + Send + Sync>;

impl Database {
    /// Hands every commit from now on to `sink`, as a [`CommitRecord`], once it is
    /// installed here. Commits that write a table in common reach it in their commit order;
    /// others may come in any order (their writes commute, but a reader outside a
    /// transaction may have seen one before the other). Replaces an earlier sink.
    ///
    /// The sink runs on the committing thread while the commit holds the locks of the
    /// tables it wrote: it must be quick (send the record to a channel or apply it to
    /// another database) and must not use this database; a write to it from the sink is
    /// refused with [`Error::Invalid`]. While a sink is attached, writers of one table
    /// commit one at a time, including the wait for the log's sync on disc. A sink that
    /// panics is dropped (replication stops, with an error on the `mnesia::replication`
    /// tracing target); the commit stands.
    ///
    /// What goes through it: transactions, dirty operations, batches, named counters and
    /// the reaper's removals. While it is attached, what does not go through it yet is
    /// refused rather than missed: `clear_table`, `drop_table`, `transform`, and restores
    /// that would load new stores (a restore that writes in one transaction, and imports,
    /// go through it). Ids handed out by `next_id` without a write, and table creation,
    /// are not told: create the replica's tables yourself.
    ///
    /// ```
    /// let db = mnesia::Database::in_memory()?;
    /// db.replicate_to(|record: &mnesia::CommitRecord| println!("{record:?}"));
    /// db.stop_replicating();
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn replicate_to(&self, sink: impl Fn(&CommitRecord) + Send + Sync + 'static) {
        self.inner.sink.store(Some(Arc::new(Arc::new(sink) as Sink)));
        self.inner.has_sink.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Stops handing commits to the sink given to [`Database::replicate_to`].
    ///
    /// ```
    /// let db = mnesia::Database::in_memory()?;
    /// db.stop_replicating();
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn stop_replicating(&self) {
        self.inner.has_sink.store(false, std::sync::atomic::Ordering::Release);
        self.inner.sink.store(None);
    }

    /// Whether this database's commits are handed elsewhere (a sink, a sequencer): what
    /// would change a store without a commit record (bulk loads, new stores) is not done.
    pub(crate) fn commits_elsewhere(&self) -> bool {
        self.replicating() || self.ordering()
    }

    /// Whether a sink is attached.
    pub(crate) fn replicating(&self) -> bool {
        self.inner.has_sink.load(std::sync::atomic::Ordering::Acquire)
    }

    /// `Err` for an operation that does not go through the sink yet, while one is attached.
    pub(crate) fn refuse_while_replicating(&self, what: &str) -> Result<()> {
        if self.replicating() {
            return Err(Error::Invalid(format!(
                "{what} does not reach the commit-record sink yet: refused while commits are replicated (stop_replicating first)"
            )));
        }
        if self.ordering() {
            return Err(Error::Invalid(format!(
                "{what} is not ordered yet: refused while commits are ordered (stop_ordering first)"
            )));
        }
        Ok(())
    }

    /// The sink, if commits are handed to one (without one, a commit pays one load).
    pub(crate) fn sink(&self) -> Option<Sink> {
        if !self.inner.has_sink.load(std::sync::atomic::Ordering::Acquire) {
            return None;
        }
        self.inner.sink.load().as_deref().map(Arc::clone)
    }

    /// Applies a commit record made by another database (with the same tables, created
    /// here beforehand) as one transaction, at the commit's time there (not this
    /// database's clock): the same records end up here, with the same events for this
    /// database's subscribers (an expired record's removal included). A
    /// record naming a table this database does not have, or holding bytes that do not
    /// decode as its records, is refused and changes nothing.
    ///
    /// ```
    /// use mnesia::prelude::*;
    /// #[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
    /// struct Item { #[key] id: u32, n: i64 }
    ///
    /// let (primary, replica) = (Database::in_memory()?, Database::in_memory()?);
    /// primary.create_table::<Item>(TableOptions::new())?;
    /// replica.create_table::<Item>(TableOptions::new())?;
    /// let to_replica = replica.clone();
    /// primary.replicate_to(move |r: &mnesia::CommitRecord| to_replica.apply_commit(r).expect("applied"));
    /// primary.scope(|| Item::write(Item { id: 1, n: 5 }))?;
    /// assert_eq!(replica.scope(|| Item::read(&1))?, Some(Item { id: 1, n: 5 }));
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn apply_commit(&self, record: &CommitRecord) -> Result<()> {
        if crate::context::is_transaction() {
            return Err(Error::Invalid(
                "apply_commit runs a transaction of its own: call it outside one".into(),
            ));
        }
        if record.changes.iter().any(|c| c.table == crate::counters::COUNTERS_TABLE) {
            crate::counters::ensure(self)?;
        }
        if let Some((_, WholeTable::Create { shape, type_name, indexes })) = record.whole_table() {
            return self.create_ordered_here(shape, type_name, indexes);
        }
        let tables = record.changes.iter().map(|c| self.any_table(&c.table)).collect::<Result<Vec<_>>>()?;
        if let (Some((_, op)), [table]) = (record.whole_table(), tables.as_slice()) {
            return Arc::clone(table).change_whole(self, op);
        }
        crate::context::transact(self.clone(), || {
            crate::context::with_tx(|tx| {
                tx.commit_at(record.time);
                for (table, change) in tables.iter().zip(&record.changes) {
                    table.apply_change(tx, &change.writes)?;
                }
                Ok(())
            })
        })
    }
}

impl Database {
    /// Makes, here, the table an ordered `create_table` created, with this program's type
    /// of `shape` ([`Error::TableExists`] when it is here already, alike on every copy).
    fn create_ordered_here(
        &self,
        shape: &crate::shape::RecordShape,
        type_name: &str,
        indexes: &[(String, bool)],
    ) -> Result<()> {
        // Whether the table is here at this place of the order is the same on every copy
        // (tables come and go through the order): a second creation is refused alike.
        if self.any_table(shape.name()).is_ok() {
            return Err(Error::TableExists { table: shape.name().to_owned() });
        }
        crate::kinds::create_declared(self, shape, type_name, indexes)
    }
}

/// The error of a commit record that does not fit the table it names: this copy's struct
/// is not the one that made the record (a local failure, see
/// [`Error::is_local_failure`]: an ordered copy stops rather than decide otherwise).
pub(crate) fn misfit(table: &str, what: impl fmt::Display) -> Error {
    Error::SchemaMismatch {
        table: table.to_owned(),
        differences: vec![format!("a commit record does not fit it: {what}")],
    }
}
