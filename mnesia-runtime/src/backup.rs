//! Backup and restore of a whole database (Mnesia's `backup` and `restore`).
//!
//! A backup is one file: a header frame (the commit it was taken at, each table's
//! definition and counter), one frame per key, and an end frame with each table's count,
//! each frame checked by its CRC. It is taken at one point in commit order without stopping
//! writers: every commit lock is held, shared, only for the moment of the cut; then the
//! tables are copied shard by shard while commits go on, and a commit that changes a record
//! in a shard not yet copied first saves the record as it was at the cut (copy on write).
//! Memory holds one shard's copy and what commits changed meanwhile. The file is written
//! under a temporary name renamed when complete. A restore reads and checks the whole file before it changes anything, then
//! writes every table in one transaction.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::db::{AnyTable, Database};
use crate::disk::frame::{self, End};
use crate::disk::record::{SnapshotEntry, encode};
use crate::disk::schema::TableDef;
use crate::error::{Error, Result};
use crate::lock::HeldLocks;

const KIND: &[u8; 6] = b"MNSBAK";
const VERSION: u8 = 1;

/// One table in a backup.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct BackupTable {
    pub(crate) def: TableDef,
    pub(crate) counter: u64,
}

/// A frame after the header: one key's records, or the end with each table's count.
#[derive(Serialize, Deserialize)]
enum Body {
    Entry(u32, SnapshotEntry),
    End(Vec<u64>),
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

/// A backup file being written: frames streamed to a temporary file, synced and renamed
/// into place by [`BackupWriter::finish`]; dropped unfinished, the temporary file goes.
struct BackupWriter {
    path: std::path::PathBuf,
    tmp: std::path::PathBuf,
    out: Option<std::io::BufWriter<std::fs::File>>,
    buf: Vec<u8>,
}

impl BackupWriter {
    fn create(path: &Path) -> Result<BackupWriter> {
        use std::io::Write as _;
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".partial");
        let tmp = std::path::PathBuf::from(tmp);
        let file = std::fs::File::create(&tmp).map_err(|e| frame::io_error(&tmp, e))?;
        let mut out = std::io::BufWriter::new(file);
        out.write_all(&frame::magic(KIND, VERSION)).map_err(|e| frame::io_error(&tmp, e))?;
        Ok(BackupWriter { path: path.to_path_buf(), tmp, out: Some(out), buf: Vec::new() })
    }

    fn frame(&mut self, payload: &[u8]) -> Result<()> {
        use std::io::Write as _;
        self.buf.clear();
        frame::encode_frame(payload, &mut self.buf);
        let out = self.out.as_mut().ok_or_else(|| Error::Invalid("the backup file is closed".into()))?;
        out.write_all(&self.buf).map_err(|e| frame::io_error(&self.tmp, e))
    }

    fn finish(mut self) -> Result<()> {
        let out = self.out.take().ok_or_else(|| Error::Invalid("the backup file is closed".into()))?;
        let file = out.into_inner().map_err(|e| frame::io_error(&self.tmp, e.into_error()))?;
        file.sync_all().map_err(|e| frame::io_error(&self.tmp, e))?;
        std::fs::rename(&self.tmp, &self.path).map_err(|e| frame::io_error(&self.path, e))?;
        frame::sync_dir(&self.path)
    }
}

impl Drop for BackupWriter {
    fn drop(&mut self) {
        if self.out.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
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
    let mut ended = None;
    for (at, payload) in it {
        if ended.is_some() {
            return Err(corrupt(at, "records after the end of the backup".into()));
        }
        match postcard::from_bytes(payload).map_err(|e| corrupt(at, format!("bad record: {e}")))? {
            Body::Entry(table, entry) => {
                let slot = out.get_mut(table as usize).ok_or_else(|| {
                    corrupt(at, format!("a record of table {table}, which the header does not list"))
                })?;
                slot.1.push(entry);
            }
            Body::End(counts) => ended = Some((at, counts)),
        }
    }
    let Some((at, counts)) = ended else {
        return Err(corrupt(
            frames.iter().last().map_or(8, |(at, _)| at),
            "the backup has no end: it was cut short".into(),
        ));
    };
    let found: Vec<u64> = out.iter().map(|(_, e)| e.len() as u64).collect();
    if found != counts {
        return Err(corrupt(
            at,
            format!("the backup holds {found:?} records per table, its end says {counts:?}"),
        ));
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
    /// node or directory. Writers go on while it runs (they wait only for the moment of the
    /// cut); memory holds one shard's copy and the records commits changed meanwhile. The
    /// file is written under a temporary name renamed when complete. Tables of a directory
    /// not yet claimed by their type are included as they are on disc. Tables cannot be
    /// created, dropped or moved while a backup runs.
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
        // No table is created, dropped or moved meanwhile.
        let _schema = self.inner.schema.lock();
        let tables = self.inner.tables.load_full();
        let mut names: Vec<&String> = tables.keys().collect();
        names.sort();
        let open: Vec<&Arc<dyn AnyTable>> = names.iter().map(|n| &tables[*n]).collect();
        // The cut: with every commit lock held shared, every commit numbered so far is
        // installed and none after has started; from here on, a commit saves what it changes
        // in a shard the backup has not copied yet.
        let (seq, mut heads) = {
            let mut reqs = Vec::new();
            for t in &open {
                t.backup_locks(&mut reqs);
            }
            let _held = HeldLocks::acquire(reqs);
            let seq = self.inner.seq.load(Ordering::Acquire);
            (seq, open.iter().map(|t| t.begin_backup(seq)).collect::<Vec<_>>())
        };
        struct EndCuts<'a>(&'a [&'a Arc<dyn AnyTable>]);
        impl Drop for EndCuts<'_> {
            fn drop(&mut self) {
                for t in self.0 {
                    t.end_backup();
                }
            }
        }
        let _end = EndCuts(&open);
        // Tables of the directory not claimed by their type: nothing can change them.
        let pending: Tables = match self.disk() {
            Some(disk) => {
                let pending = disk.pending.lock();
                let mut v: Vec<_> = pending
                    .values()
                    .map(|p| {
                        let entries = p
                            .rows
                            .iter()
                            .map(|(k, (v, value))| SnapshotEntry {
                                key: k.clone(),
                                version: *v,
                                value: value.clone(),
                            })
                            .collect();
                        (BackupTable { def: p.def.clone(), counter: p.counter }, entries)
                    })
                    .collect();
                v.sort_by(|a, b| a.0.def.name.cmp(&b.0.def.name));
                v
            }
            None => Vec::new(),
        };
        heads.extend(pending.iter().map(|(t, _)| t.clone()));
        let header = Header { seq, tables: heads };
        let mut w = BackupWriter::create(path.as_ref())?;
        w.frame(&encode(&header)?)?;
        let mut counts = Vec::with_capacity(header.tables.len());
        for (i, t) in open.iter().enumerate() {
            let table = u32::try_from(i).map_err(|_| Error::Invalid("too many tables".into()))?;
            counts.push(t.backup_stream(&mut |e| w.frame(&encode(&Body::Entry(table, e))?))?);
        }
        for (i, (_, entries)) in pending.into_iter().enumerate() {
            let table =
                u32::try_from(open.len() + i).map_err(|_| Error::Invalid("too many tables".into()))?;
            counts.push(entries.len() as u64);
            for e in entries {
                w.frame(&encode(&Body::Entry(table, e))?)?;
            }
        }
        let records = counts.iter().sum();
        w.frame(&encode(&Body::End(counts))?)?;
        w.finish()?;
        Ok(BackupInfo {
            tables: header.tables.iter().map(|t| t.def.name.clone()).collect(),
            records,
            last_commit: seq,
        })
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
