//! What the table registry's backup and restore take: a table's entry in a backup
//! ([`BackupTable`]) and what a restore does with it ([`RestoreMode`]).

use serde::{Deserialize, Serialize};

use crate::disk::schema::TableDef;

/// One table in a backup.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct BackupTable {
    pub(crate) def: TableDef,
    pub(crate) counter: u64,
    /// About how many keys the table had at the cut (to size the restored table).
    pub(crate) size_hint: u64,
}

/// What a restore does with one table (Mnesia's restore options).
///
/// ```
/// assert_eq!(mnesia::RestoreMode::default(), mnesia::RestoreMode::ClearAndLoad);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RestoreMode {
    /// Remove the table's records, then load the backup's; the table keeps its indexes and
    /// storage (Mnesia's `clear_tables`).
    #[default]
    ClearAndLoad,
    /// Replace the table by the backup's: its records, its indexes (with those the struct
    /// declares) and its storage, `ram_copies` or `disc_copies` (Mnesia's
    /// `recreate_tables`). A table whose backup, or whose copy here, is
    /// `disc_only_copies` is refused: restore it with `ClearAndLoad`, then move it.
    Recreate,
    /// Keep the table's records and write the backup's over them (Mnesia's `keep_tables`).
    KeepAndAdd,
    /// Leave the table alone (Mnesia's `skip_tables`).
    Skip,
}
