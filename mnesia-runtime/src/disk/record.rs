//! What the log and the snapshots hold: records and keys encoded with postcard, grouped by
//! table, tagged with the commit sequence number.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Encodes a key or a record with postcard.
pub(crate) fn encode<S: Serialize + ?Sized>(value: &S) -> Result<Vec<u8>> {
    postcard::to_allocvec(value).map_err(|e| Error::Codec(e.to_string()))
}

/// A key's content after a write, encoded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Logged {
    /// The key's one record (`set`, `ordered_set`).
    Put(Vec<u8>),
    /// The key's records (`bag`).
    Group(Vec<Vec<u8>>),
    /// The key is gone.
    Delete,
}

/// One table's part of a commit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TableOps {
    /// The table's id in the schema (a new id for every table created, so a dropped table's
    /// records never reach a new table of the same name).
    pub(crate) table: u64,
    /// The commit emptied the table first.
    pub(crate) clear: bool,
    /// The table's auto-increment counter when the commit was logged (0 if it has none), so
    /// that no id is handed out twice after a restart. Replay keeps the highest, unless
    /// `reset` says the counter was set to this value on purpose.
    pub(crate) counter: u64,
    /// The counter was reset (`reset_counter`): replay sets it rather than raising it.
    pub(crate) reset: bool,
    /// Encoded key and its new content.
    pub(crate) writes: Vec<(Vec<u8>, Logged)>,
}

// A commit record in the log is the commit's sequence number (8 bytes, little endian)
// followed by its `Vec<TableOps>` encoded with postcard.

/// One record of a snapshot: a key, the sequence number of the commit that wrote it, and
/// its content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SnapshotEntry {
    pub(crate) key: Vec<u8>,
    pub(crate) version: u64,
    pub(crate) value: Logged,
}
