//! Backup and restore of a whole database (Mnesia's `backup` and `restore`).
//!
//! A backup is one file: a header frame (the format, the commit it was taken at, each
//! table's definition, counter and record count), then one frame per key, each checked by
//! its CRC. It is taken at one point in commit order: every commit lock of every table is
//! held, shared, while the records are copied (writers wait for the copy, readers do not),
//! then the file is written with the locks released, under a temporary name renamed when
//! complete. A restore reads and checks the whole file before it changes anything, then
//! writes every table in one transaction.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::db::Database;
use crate::disk::frame::{self, End};
use crate::disk::record::{SnapshotEntry, encode};
use crate::disk::schema::TableDef;
use crate::error::{Error, Result};

const KIND: &[u8; 6] = b"MNSBAK";
const VERSION: u8 = 1;

/// One table in a backup.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct BackupTable {
    pub(crate) def: TableDef,
    pub(crate) counter: u64,
    pub(crate) entries: u64,
}

/// Every table of a backup with its entries.
pub(crate) type Tables = Vec<(BackupTable, Vec<SnapshotEntry>)>;

#[derive(Serialize, Deserialize)]
struct Header {
    /// The last commit the backup holds.
    seq: u64,
    tables: Vec<BackupTable>,
}

/// What [`Database::backup`] wrote.
///
/// ```
/// let db = mnesia::Database::in_memory()?;
/// let file = std::env::temp_dir().join(format!("empty-{}.bak", std::process::id()));
/// let info = db.backup(&file)?;
/// assert_eq!((info.tables.len(), info.records), (0, 0));
/// # std::fs::remove_file(&file).ok();
/// # Ok::<(), mnesia::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct BackupInfo {
    /// The tables, by name.
    pub tables: Vec<String>,
    /// Records (a bag: keys) written.
    pub records: u64,
    /// The last commit the backup holds.
    pub last_commit: u64,
}

/// What a restore does with one table (Mnesia's restore options).
///
/// ```
/// assert_eq!(mnesia::RestoreMode::default(), mnesia::RestoreMode::ClearAndLoad);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RestoreMode {
    /// Remove the table's records, then load the backup's (Mnesia's `recreate_tables` /
    /// `clear_tables`).
    #[default]
    ClearAndLoad,
    /// Keep the table's records and write the backup's over them (Mnesia's `keep_tables`).
    KeepAndAdd,
    /// Leave the table alone (Mnesia's `skip_tables`).
    Skip,
}

/// Options for [`Database::restore`]: a mode for every table, and per table.
///
/// ```
/// use mnesia::{RestoreMode, RestoreOptions};
/// let opts = RestoreOptions::new().table("sessions", RestoreMode::Skip);
/// assert_eq!(opts.mode_of("sessions"), RestoreMode::Skip);
/// assert_eq!(opts.mode_of("users"), RestoreMode::ClearAndLoad);
/// ```
#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    default: RestoreMode,
    tables: HashMap<String, RestoreMode>,
}

impl RestoreOptions {
    /// Every table cleared and loaded.
    ///
    /// ```
    /// let opts = mnesia::RestoreOptions::new();
    /// # let _ = opts;
    /// ```
    pub fn new() -> Self {
        RestoreOptions::default()
    }

    /// The mode of the tables not named with [`RestoreOptions::table`].
    ///
    /// ```
    /// let opts = mnesia::RestoreOptions::new().all(mnesia::RestoreMode::KeepAndAdd);
    /// # let _ = opts;
    /// ```
    pub fn all(mut self, mode: RestoreMode) -> Self {
        self.default = mode;
        self
    }

    /// The mode of one table.
    ///
    /// ```
    /// let opts = mnesia::RestoreOptions::new().table("users", mnesia::RestoreMode::Skip);
    /// # let _ = opts;
    /// ```
    pub fn table(mut self, name: impl Into<String>, mode: RestoreMode) -> Self {
        self.tables.insert(name.into(), mode);
        self
    }

    /// The mode a table gets.
    ///
    /// ```
    /// assert_eq!(mnesia::RestoreOptions::new().mode_of("x"), mnesia::RestoreMode::ClearAndLoad);
    /// ```
    pub fn mode_of(&self, table: &str) -> RestoreMode {
        self.tables.get(table).copied().unwrap_or(self.default)
    }
}

/// Writes the backup file: the header, then one frame per entry tagged with its table,
/// streamed to a temporary file that is synced and renamed into place when complete.
pub(crate) fn write(path: &Path, seq: u64, tables: Tables) -> Result<BackupInfo> {
    use std::io::Write as _;
    let header = Header { seq, tables: tables.iter().map(|(t, _)| t.clone()).collect() };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = std::path::PathBuf::from(tmp);
    let io = |e: std::io::Error| frame::io_error(&tmp, e);
    let file = std::fs::File::create(&tmp).map_err(io)?;
    let mut out = std::io::BufWriter::new(file);
    let mut records = 0;
    let result = (|| -> Result<()> {
        out.write_all(&frame::magic(KIND, VERSION)).map_err(io)?;
        let mut buf = Vec::new();
        let mut put = |payload: &[u8], out: &mut std::io::BufWriter<std::fs::File>| -> Result<()> {
            buf.clear();
            frame::encode_frame(payload, &mut buf);
            out.write_all(&buf).map_err(io)
        };
        put(&encode(&header)?, &mut out)?;
        for (i, (_, entries)) in tables.iter().enumerate() {
            let table = u32::try_from(i).map_err(|_| Error::Invalid("too many tables".into()))?;
            for e in entries {
                put(&encode(&(table, e))?, &mut out)?;
                records += 1;
            }
        }
        let file = out.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(|e| frame::io_error(path, e))?;
        frame::sync_dir(path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    Ok(BackupInfo {
        tables: header.tables.iter().map(|t| t.def.name.clone()).collect(),
        records,
        last_commit: seq,
    })
}

/// A backup read and checked whole: each table with its entries.
pub(crate) fn read(path: &Path) -> Result<Tables> {
    let frames = frame::read_frames(path, KIND, VERSION)?;
    parse(path, &frames)
}

fn parse(path: &Path, frames: &frame::Frames) -> Result<Tables> {
    let corrupt = |offset: u64, reason: String| Error::Corrupt { file: path.to_path_buf(), offset, reason };
    if let End::Torn(at) = frames.end {
        return Err(corrupt(at, "the backup ends in the middle of a record".into()));
    }
    let mut it = frames.iter();
    let Some((at, head)) = it.next() else {
        return Err(corrupt(8, "the backup has no header".into()));
    };
    let header: Header = postcard::from_bytes(head).map_err(|e| corrupt(at, format!("bad header: {e}")))?;
    let mut out: Tables = header.tables.into_iter().map(|t| (t, Vec::new())).collect();
    for (at, payload) in it {
        let (table, entry): (u32, SnapshotEntry) =
            postcard::from_bytes(payload).map_err(|e| corrupt(at, format!("bad record: {e}")))?;
        let slot = out.get_mut(table as usize).ok_or_else(|| {
            corrupt(at, format!("a record of table {table}, which the header does not list"))
        })?;
        slot.1.push(entry);
    }
    for (t, entries) in &out {
        if entries.len() as u64 != t.entries {
            return Err(corrupt(
                8,
                format!("table {} has {} records, its header says {}", t.def.name, entries.len(), t.entries),
            ));
        }
    }
    Ok(out)
}

/// Entry point for fuzzing the backup decoder (see `fuzz/`).
#[doc(hidden)]
pub fn fuzz_backup_file(bytes: &[u8]) {
    let path = Path::new("fuzz.bak");
    if let Ok(frames) = frame::Frames::parse(path, bytes.to_vec(), KIND, VERSION) {
        let _ = parse(path, &frames);
    }
}

impl Database {
    /// Writes a backup of every table to `path`: one file, taken at one point in commit
    /// order (no transaction half in it), checked by a CRC per record, and not tied to this
    /// node or directory. Writers wait while the records are copied (readers do not); the
    /// file is written after, under a temporary name renamed when complete. Tables of a
    /// directory not yet claimed by their type are included as they are on disc.
    ///
    /// ```
    /// use mnesia::prelude::*;
    /// use mnesia::RestoreOptions;
    ///
    /// #[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
    /// struct Item { #[key] id: u32, name: String }
    ///
    /// let file = std::env::temp_dir().join(format!("items-{}.bak", std::process::id()));
    /// let db = Database::in_memory()?;
    /// db.scope(|| -> mnesia::Result<()> {
    ///     Item::create_table(TableOptions::new())?;
    ///     Item::write(Item { id: 1, name: "pen".into() })?;
    ///     db.backup(&file)?;
    ///     Item::write(Item { id: 2, name: "ink".into() })?;
    ///     db.restore(&file, &RestoreOptions::new())?;
    ///     assert_eq!(Item::all_keys()?, vec![1]);
    ///     Ok(())
    /// })?;
    /// # std::fs::remove_file(&file).ok();
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn backup(&self, path: impl AsRef<Path>) -> Result<BackupInfo> {
        let (seq, tables) = self.copy_for_backup()?;
        write(path.as_ref(), seq, tables)
    }

    /// Restores a backup written by [`Database::backup`]: reads and checks the whole file
    /// first (a damaged or truncated file gives [`Error::Corrupt`] and changes nothing),
    /// checks each table against its Rust type here ([`Error::SchemaMismatch`]), then
    /// writes every table in one transaction, each as `options` say. Each table must exist
    /// in this database (create it, or on a directory name its type once); the backup may
    /// come from another node or machine. Returns how many records were written.
    ///
    /// ```
    /// let db = mnesia::Database::in_memory()?;
    /// let missing = std::env::temp_dir().join("no-such-backup.bak");
    /// assert!(db.restore(&missing, &mnesia::RestoreOptions::new()).is_err());
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn restore(&self, path: impl AsRef<Path>, options: &RestoreOptions) -> Result<u64> {
        let tables = read(path.as_ref())?;
        self.load_backup(tables, options)
    }
}
