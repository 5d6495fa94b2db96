//! Commit records: the whole description of a committed transaction's writes (and, for
//! ordered commits, of what it read), as every copy applies it.

use std::fmt;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::disk::record::Logged;

/// One committed transaction's writes, encoded as the log encodes them, in the order the
/// database committed it (see [`Database::replicate_to`](crate::Database::replicate_to)). Serializable (serde), to cross a
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
    pub(crate) reads: Vec<TableReads>,
}

/// One table's writes in a [`CommitRecord`].
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct TableChange {
    pub(crate) table: String,
    pub(crate) writes: Vec<KeyChange>,
}

/// What a commit did to one key: its encoded key and the records it holds after, and
/// whether the records removed had expired (the reaper's write).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct KeyChange {
    pub(crate) key: Vec<u8>,
    pub(crate) value: Content,
    pub(crate) expired: bool,
}

/// A key's encoded records after a commit. (Plain byte sequences, not serde's bytes: a
/// record must round-trip through any serde format, those with a bytes type of their own
/// included.)
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
        shape: crate::schema::shape::RecordShape,
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
    /// The table's records and record type replaced (`transform`): each copy drops the
    /// table and makes it anew, where it kept it, with its own program's type of `shape`,
    /// exactly `indexes`, and `rows`.
    Replace {
        /// What the table's struct is from now on, on every copy.
        shape: crate::schema::shape::RecordShape,
        /// The new struct's Rust name where the change was made.
        type_name: String,
        /// Every index of the table from now on: (field, unique).
        indexes: Vec<(String, bool)>,
        /// The table's version from now on.
        version: u32,
        /// The auto-increment counter the table keeps.
        counter: u64,
        /// Every record of the table from now on (each a key's `Put` or `Group`).
        rows: Vec<KeyChange>,
    },
    /// The auto-increment counter set so that `next` is the next id (`reset_counter`).
    ResetCounter {
        /// The next id handed out.
        next: u64,
    },
    /// The table created as [`WholeTable::Create`], its copies on the nodes `nodes` alone
    /// (`create_table` with a list of nodes): every copy registers it, those it names
    /// hold its records.
    CreateOn {
        /// What the table's struct must be on every copy.
        shape: crate::schema::shape::RecordShape,
        /// The struct's Rust name where it was created.
        type_name: String,
        /// Every index of the table: (field, unique).
        indexes: Vec<(String, bool)>,
        /// The nodes holding a copy, by name (`Config::node_name`).
        nodes: Vec<String>,
    },
    /// A copy of the table (one with copies on some nodes) added on node `node`
    /// (`add_table_copy`): its records are taken there from a node holding them.
    AddCopy {
        /// The node, by name.
        node: String,
    },
    /// The copy of the table on node `node` removed (`del_table_copy`).
    DelCopy {
        /// The node, by name.
        node: String,
    },
    /// The copy of the table given to node `node` at place `given` is filled (said by
    /// that node).
    CopyFilled {
        /// The node, by name.
        node: String,
        /// The place of the `AddCopy` that gave it (a word about an earlier copy, given
        /// and removed since, changes nothing).
        given: u64,
    },
    /// The table created as [`WholeTable::CreateOn`], the nodes `disc` among `nodes`
    /// keeping a disc copy (`TableOptions::disc_copies([..])`), the others one in memory.
    CreateCopies {
        /// What the table's struct must be on every copy.
        shape: crate::schema::shape::RecordShape,
        /// The struct's Rust name where it was created.
        type_name: String,
        /// Every index of the table: (field, unique).
        indexes: Vec<(String, bool)>,
        /// The nodes holding a copy, by name (`Config::node_name`).
        nodes: Vec<String>,
        /// Those of `nodes` whose copy is `disc_copies`.
        disc: Vec<String>,
    },
    /// A copy of the table added on node `node`, as [`WholeTable::AddCopy`], kept on disc
    /// there (`add_table_copy(node, StorageType::DiscCopies)`).
    AddDiscCopy {
        /// The node, by name.
        node: String,
    },
    /// The copy of the table on node `node` waits to be filled (it lost its records: that
    /// node started again from a snapshot without them), said by that node: until it says
    /// [`WholeTable::CopyFilled`], it is not counted on as a filled copy.
    CopyWaits {
        /// The node, by name.
        node: String,
    },
    /// The copy of the table on node `node` made `disc_copies` (`disc`) or `ram_copies`
    /// (`change_table_copy_type` on a running cluster node).
    CopyType {
        /// The node, by name.
        node: String,
        /// Whether its copy is kept on disc from now on.
        disc: bool,
    },
}

impl WholeTable {
    /// Whether this creates the table (on every node, or on some).
    pub(crate) fn creates(&self) -> bool {
        matches!(
            self,
            WholeTable::Create { .. } | WholeTable::CreateOn { .. } | WholeTable::CreateCopies { .. }
        )
    }

    /// Whether this changes where the table's copies are, or what they are.
    pub(crate) fn changes_copies(&self) -> bool {
        matches!(
            self,
            WholeTable::AddCopy { .. }
                | WholeTable::AddDiscCopy { .. }
                | WholeTable::DelCopy { .. }
                | WholeTable::CopyFilled { .. }
                | WholeTable::CopyWaits { .. }
                | WholeTable::CopyType { .. }
        )
    }
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

    /// Whether the record changes a table as a whole (creates, drops, clears or transforms
    /// it, adds or removes an index, resets its counter) rather than writing records: applying it may wait for a backup or
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

    /// Whether the table's records may be of another type after this record (it transforms
    /// or drops the table): the records of earlier records may not decode in a program that
    /// has only the new type, so a copy that keeps a log of records (a cluster node) should
    /// not need the ones before it to start again.
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
    /// assert!(!rx.try_recv().expect("a record").ends_record_type());
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn ends_record_type(&self) -> bool {
        matches!(self.whole_table(), Some((_, WholeTable::Replace { .. } | WholeTable::Drop)))
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

/// What a committed transaction read of one table, as every copy can check it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TableReads {
    pub(crate) table: String,
    /// The key buckets read (see [`bucket`]), sorted, once each.
    pub(crate) buckets: Vec<u32>,
    /// Whether it scanned the table or looked an index up: any write to it conflicts.
    pub(crate) whole: bool,
}

/// Where a database hands its commit records.
pub(crate) type Sink = std::sync::Arc<dyn Fn(&CommitRecord) + Send + Sync>;

/// The error of a commit record that does not fit the table it names: this copy's struct
/// is not the one that made the record (a local failure, see
/// [`Error::is_local_failure`]: an ordered copy stops rather than decide otherwise).
pub(crate) fn misfit(table: &str, what: impl fmt::Display) -> crate::error::Error {
    crate::error::Error::SchemaMismatch {
        table: table.to_owned(),
        differences: vec![format!("a commit record does not fit it: {what}")],
    }
}

/// A value of a commit record, decoded whole for table `table` ([`misfit`] if the bytes do
/// not decode, or hold more than one value: another record type).
pub(crate) fn decode_whole<V: serde::de::DeserializeOwned>(
    table: &str,
    bytes: &[u8],
) -> crate::error::Result<V> {
    decode_whole_by(table, bytes, |b| postcard::take_from_bytes::<V>(b))
}

/// [`decode_whole`], the value decoded by `take` (which returns it and the bytes after it).
pub(crate) fn decode_whole_by<V>(
    table: &str,
    bytes: &[u8],
    take: impl FnOnce(&[u8]) -> postcard::Result<(V, &[u8])>,
) -> crate::error::Result<V> {
    match take(bytes) {
        Ok((v, [])) => Ok(v),
        Ok(_) => Err(misfit(table, "bytes left over after a value: another record type")),
        Err(e) => Err(misfit(table, e)),
    }
}
