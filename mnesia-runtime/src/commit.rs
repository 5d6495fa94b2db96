//! Commit records: a committed transaction's writes, encoded, handed to a sink as the
//! database commits them ([`Database::replicate_to`]) and applied to another database
//! ([`Database::apply_commit`]). The seam replication is built on.
//!
//! What goes through it today: every transaction, dirty operation and batch, and the
//! reaper's removals of expired records, on tables of any storage and type. Not yet: table
//! creation and other schema changes, `clear_table`, bulk loads, restores, transforms and
//! named counters (a replica is given its tables and does not run these).

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::disk::record::Logged;
use crate::{Database, Error, Result};

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
    pub(crate) value: Logged,
    pub(crate) expired: bool,
}

impl CommitRecord {
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
    /// installed here: commits that touch a table in common reach it in their commit order
    /// (the sink is called under the tables' commit order), others in any order (they
    /// commute). A database with a sink pays, on each commit, the encoding of its writes
    /// and the call. Replaces an earlier sink. See the module's scope: schema changes,
    /// clears, bulk loads, restores and transforms do not go through it yet.
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

    /// The sink, if commits are handed to one (without one, a commit pays a relaxed load).
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
        let tables = record.changes.iter().map(|c| self.any_table(&c.table)).collect::<Result<Vec<_>>>()?;
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

/// The error of a commit record that does not fit the table it names.
pub(crate) fn misfit(table: &str, what: impl fmt::Display) -> Error {
    Error::Invalid(format!("a commit record does not fit table {table}: {what}"))
}
