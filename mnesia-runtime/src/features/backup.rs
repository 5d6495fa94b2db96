//! Backup and restore of a whole database (Mnesia's `backup` and `restore`).
//!
//! A backup is one file: a header frame (the commit it was taken at, each table's
//! definition and counter), frames of entries (one entry per key, about 256 KiB of them a
//! frame) and an end frame with each table's count, each frame checked by its CRC. It is
//! taken at one point in commit order without stopping writers: every commit lock is held,
//! shared, only for the moment of the cut; then the tables are copied shard by shard while
//! commits go on, and a commit that changes a record in a shard not yet copied first saves
//! the record as it was at the cut (copy on write). Memory holds one shard's copy and what
//! commits changed meanwhile. The file is written under a temporary name renamed when
//! complete. A restore reads the file a frame at a time (see `restore.rs`).

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::base::lock::HeldLocks;
use crate::base::progress::{Progress, Ticker};
use crate::db::{AnyTable, Database};
use crate::disk::files::{self, DiscFile, io_error};
use crate::disk::frame::{self, FrameReader};
use crate::disk::record::{EntryEncoder, EntryRef, encode, entries_in};
use crate::engine::backup_types::{BackupTable, RestoreMode};
use crate::error::{Error, Result};

const KIND: &[u8; 6] = b"MNSBAK";
const VERSION: u8 = 2;

/// What a frame after the header holds: a run of one table's entries (the entries follow
/// this head in the frame), or the end with each table's count of entries.
#[derive(Serialize, Deserialize)]
enum Head {
    Entries(u32),
    End(Vec<u64>),
}

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
    pub(crate) progress: Option<Progress>,
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

    /// The tables named with [`RestoreOptions::table`].
    pub(crate) fn named(&self) -> impl Iterator<Item = &str> {
        self.tables.keys().map(String::as_str)
    }

    /// The mode a table gets.
    ///
    /// ```
    /// assert_eq!(mnesia::RestoreOptions::new().mode_of("x"), mnesia::RestoreMode::ClearAndLoad);
    /// ```
    pub fn mode_of(&self, table: &str) -> RestoreMode {
        self.tables.get(table).copied().unwrap_or(self.default)
    }

    /// Calls `f` with the number of records read so far, about every 10 000 records, and
    /// with the number restored once the restore succeeded. `f` runs on the restoring
    /// thread, which may hold the tables' locks: it must not use the tables restored nor
    /// create, drop or move tables.
    ///
    /// ```
    /// let opts = mnesia::RestoreOptions::new().progress(|n| eprintln!("{n} records"));
    /// # let _ = opts;
    /// ```
    pub fn progress(mut self, f: impl Fn(u64) + Send + Sync + 'static) -> Self {
        self.progress = Some(Progress::new(f));
        self
    }
}

/// Options for [`Database::backup_with`]: which tables, a progress callback.
///
/// ```
/// let opts = mnesia::BackupOptions::new().tables(["users", "posts"]);
/// # let _ = opts;
/// ```
#[derive(Clone, Debug, Default)]
pub struct BackupOptions {
    tables: Option<Vec<String>>,
    progress: Option<Progress>,
    /// Leaves out the tables this node keeps for itself (`TableOptions::local_content`):
    /// an ordered snapshot's.
    pub(crate) shared_only: bool,
}

impl BackupOptions {
    /// Every table, no progress callback.
    ///
    /// ```
    /// let opts = mnesia::BackupOptions::new();
    /// # let _ = opts;
    /// ```
    pub fn new() -> Self {
        BackupOptions::default()
    }

    /// Only these tables (each must exist).
    ///
    /// ```
    /// let opts = mnesia::BackupOptions::new().tables(["users"]);
    /// # let _ = opts;
    /// ```
    pub fn tables(mut self, names: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.tables = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Calls `f` with the number of records written so far, about every 10 000 records,
    /// and with the number backed up at the end. `f` runs on the backing-up thread, which
    /// holds the schema lock: it must not create, drop or move tables.
    ///
    /// ```
    /// let opts = mnesia::BackupOptions::new().progress(|n| eprintln!("{n} records"));
    /// # let _ = opts;
    /// ```
    pub fn progress(mut self, f: impl Fn(u64) + Send + Sync + 'static) -> Self {
        self.progress = Some(Progress::new(f));
        self
    }

    fn wants(&self, table: &str) -> bool {
        self.tables.as_ref().is_none_or(|t| t.iter().any(|n| n == table))
    }
}

/// A backup being written: its frames, streamed to `out` (`name` names it in errors).
pub(crate) struct BackupWriter<W> {
    name: std::path::PathBuf,
    out: W,
    buf: Vec<u8>,
}

impl<W: std::io::Write> BackupWriter<W> {
    /// Starts a backup in `out`: writes the magic.
    pub(crate) fn new(name: &Path, mut out: W) -> Result<BackupWriter<W>> {
        out.write_all(&frame::magic(KIND, VERSION)).map_err(|e| io_error(name, e))?;
        Ok(BackupWriter { name: name.to_path_buf(), out, buf: Vec::new() })
    }

    fn frame(&mut self, parts: &[&[u8]]) -> Result<()> {
        self.buf.clear();
        frame::encode_frame_parts(parts, &mut self.buf);
        self.out.write_all(&self.buf).map_err(|e| io_error(&self.name, e))
    }

    /// Writes the entries `enc` holds as frames of table `table`, and empties it.
    fn entries(&mut self, table: u32, enc: &mut EntryEncoder) -> Result<()> {
        let head = encode(&Head::Entries(table))?;
        for run in enc.chunks() {
            self.frame(&[&head, run])?;
        }
        enc.clear();
        Ok(())
    }

    /// The output, every frame written to it.
    pub(crate) fn into_inner(self) -> W {
        self.out
    }
}

/// A file written under a temporary name beside its place, synced and renamed into place
/// by [`PartialFile::finish`]; dropped unfinished, the temporary file goes.
struct PartialFile {
    path: std::path::PathBuf,
    tmp: std::path::PathBuf,
    out: Option<std::io::BufWriter<DiscFile>>,
}

impl PartialFile {
    fn create(path: &Path) -> Result<PartialFile> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".partial");
        let tmp = std::path::PathBuf::from(tmp);
        let file = DiscFile::create(&tmp)?;
        // From here on, a failure drops it, which removes the temporary file.
        Ok(PartialFile {
            path: path.to_path_buf(),
            tmp,
            out: Some(std::io::BufWriter::with_capacity(1 << 20, file)),
        })
    }

    fn out(&mut self) -> std::io::Result<&mut std::io::BufWriter<DiscFile>> {
        self.out.as_mut().ok_or_else(|| std::io::Error::other("the file is closed"))
    }

    fn finish(mut self) -> Result<()> {
        use std::io::Write as _;
        let tmp = self.tmp.clone();
        let out = self.out().map_err(|e| io_error(&tmp, e))?;
        out.flush().map_err(|e| io_error(&tmp, e))?;
        out.get_mut().sync_all()?;
        files::rename(&self.tmp, &self.path)?;
        // In place: nothing left to remove.
        self.out = None;
        files::sync_dir(&self.path)
    }
}

impl std::io::Write for PartialFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.out()?.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.out()?.write_all(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out()?.flush()
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if self.out.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// A backup being read a frame at a time: the header first, then every entry, each frame
/// checked by its CRC, the counts checked against the end frame.
pub(crate) struct BackupReader<R> {
    frames: FrameReader<R>,
    path: std::path::PathBuf,
    tables: Vec<BackupTable>,
}

impl BackupReader<std::io::BufReader<DiscFile>> {
    /// Opens a backup file and reads its header.
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let len = std::fs::metadata(path).map_err(|e| io_error(path, e))?.len();
        let file = DiscFile::open(path)?;
        BackupReader::new(path, std::io::BufReader::with_capacity(1 << 20, file), len)
    }
}

impl<R: Read> BackupReader<R> {
    /// Reads the header of the backup `input` holds (`path` names it in errors; `len` is its
    /// length in bytes).
    pub(crate) fn new(path: &Path, input: R, len: u64) -> Result<Self> {
        let mut frames = FrameReader::new(path, input, KIND, VERSION)?;
        let corrupt =
            |offset: u64, reason: String| Error::Corrupt { file: path.to_path_buf(), offset, reason };
        let Some((at, head)) = frames.next_frame()? else {
            return Err(corrupt(8, "the backup has no header".into()));
        };
        let mut header: Header =
            postcard::from_bytes(head).map_err(|e| corrupt(at, format!("bad header: {e}")))?;
        let mut names = std::collections::HashSet::new();
        // Hints that size the restored tables: together no more keys than the file has room
        // for (an entry takes at least 16 bytes).
        let mut budget = len / 16;
        for t in &mut header.tables {
            if !names.insert(t.def.name.clone()) {
                return Err(corrupt(at, format!("the header lists the table {} twice", t.def.name)));
            }
            t.size_hint = t.size_hint.min(budget);
            budget -= t.size_hint;
        }
        Ok(BackupReader { frames, path: path.to_path_buf(), tables: header.tables })
    }

    /// The backup's tables, in the order entries name them.
    pub(crate) fn tables(&self) -> &[BackupTable] {
        &self.tables
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Reads every entry, handing each with its table's position to `f`; fails on any
    /// damage, on entries of a table the header does not list, on a missing end frame and
    /// on counts that differ from the end frame's.
    pub(crate) fn for_each(self, mut f: impl FnMut(usize, EntryRef<'_>) -> Result<()>) -> Result<()> {
        let path = self.path.clone();
        let mut found = vec![0u64; self.tables.len()];
        let end = self.runs(|table, at, run| {
            found[table] += each_entry(&path, at, run, |e| f(table, e))?;
            Ok(())
        })?;
        end.check(&path, &found)
    }

    /// Reads every run of entries, handing each with its table's position and its frame's
    /// offset to `f` (see [`each_entry`]); returns the end frame, having checked that
    /// nothing follows it. Fails on any damage and on runs of a table the header does not
    /// list.
    pub(crate) fn runs(mut self, mut f: impl FnMut(usize, u64, &[u8]) -> Result<()>) -> Result<BackupEnd> {
        let path = self.path;
        let corrupt = |offset: u64, reason: String| Error::Corrupt { file: path.clone(), offset, reason };
        let mut last = 8;
        while let Some((at, payload)) = self.frames.next_frame()? {
            last = at;
            let (head, rest) = postcard::take_from_bytes::<Head>(payload)
                .map_err(|e| corrupt(at, format!("bad record: {e}")))?;
            match head {
                Head::Entries(table) => {
                    let table = table as usize;
                    if table >= self.tables.len() {
                        return Err(corrupt(
                            at,
                            format!("records of table {table}, which the header does not list"),
                        ));
                    }
                    f(table, at, rest)?;
                }
                Head::End(counts) => {
                    if !rest.is_empty() {
                        return Err(corrupt(at, "bytes after the end record".into()));
                    }
                    if let Some((at, _)) = self.frames.next_frame()? {
                        return Err(corrupt(at, "records after the end of the backup".into()));
                    }
                    return Ok(BackupEnd { at, counts });
                }
            }
        }
        Err(corrupt(last, "the backup has no end: it was cut short".into()))
    }
}

/// The end frame of a backup: where it is and how many entries it says each table has.
pub(crate) struct BackupEnd {
    at: u64,
    counts: Vec<u64>,
}

impl BackupEnd {
    /// Checks the entries found per table against the end frame's counts.
    pub(crate) fn check(&self, path: &Path, found: &[u64]) -> Result<()> {
        if found == self.counts {
            return Ok(());
        }
        Err(Error::Corrupt {
            file: path.to_path_buf(),
            offset: self.at,
            reason: format!("the backup holds {found:?} records per table, its end says {:?}", self.counts),
        })
    }
}

/// Hands each entry of a run (from the frame at `at` of the backup `path`) to `f`; returns
/// how many there were.
pub(crate) fn each_entry(
    path: &Path,
    at: u64,
    run: &[u8],
    mut f: impl FnMut(EntryRef<'_>) -> Result<()>,
) -> Result<u64> {
    let mut n = 0;
    for e in entries_in(run) {
        let e = e.map_err(|e| Error::Corrupt {
            file: path.to_path_buf(),
            offset: at,
            reason: format!("bad record: {e}"),
        })?;
        n += 1;
        f(e)?;
    }
    Ok(n)
}

/// Entry point for fuzzing the backup decoder (see `fuzz/`). An even first byte makes
/// the rest a list of frame payloads (each after a length byte), framed with valid
/// checksums, so that the decoders behind the checksums see any bytes too; an odd one
/// reads the rest as a whole file.
#[doc(hidden)]
pub fn fuzz_backup_file(bytes: &[u8]) {
    let Some((first, rest)) = bytes.split_first() else { return };
    let framed;
    let bytes = if first % 2 == 0 {
        let mut file = frame::magic(KIND, VERSION).to_vec();
        let mut rest = rest;
        while let Some((len, tail)) = rest.split_first() {
            let (payload, tail) = tail.split_at(usize::from(*len).min(tail.len()));
            frame::encode_frame(payload, &mut file);
            rest = tail;
        }
        framed = file;
        &framed[..]
    } else {
        rest
    };
    if let Ok(reader) = BackupReader::new(Path::new("fuzz.bak"), bytes, bytes.len() as u64) {
        let _ = reader.for_each(|_, e| {
            let _ = e.to_owned();
            Ok(())
        });
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
        self.backup_with(path, &BackupOptions::new())
    }

    /// [`Database::backup`] with options: only some tables, a progress callback.
    ///
    /// ```
    /// use mnesia::prelude::*;
    /// use mnesia::{BackupOptions, RestoreOptions};
    ///
    /// #[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
    /// struct Item { #[key] id: u32 }
    /// #[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
    /// struct Log { #[key] id: u32 }
    ///
    /// let file = std::env::temp_dir().join(format!("some-{}.bak", std::process::id()));
    /// let db = Database::in_memory()?;
    /// db.scope(|| -> mnesia::Result<()> {
    ///     Item::create_table(TableOptions::new())?;
    ///     Log::create_table(TableOptions::new())?;
    ///     let info = db.backup_with(&file, &BackupOptions::new().tables(["item"]))?;
    ///     assert_eq!(info.tables, ["item"]);
    ///     assert!(db.backup_with(&file, &BackupOptions::new().tables(["nope"])).is_err());
    ///     Ok(())
    /// })?;
    /// # std::fs::remove_file(&file).ok();
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn backup_with(&self, path: impl AsRef<Path>, options: &BackupOptions) -> Result<BackupInfo> {
        let path = path.as_ref();
        let mut w = BackupWriter::new(path, PartialFile::create(path)?)?;
        let info = self.backup_into(&mut w, options, || ())?;
        w.into_inner().finish()?;
        tracing::info!(
            target: "mnesia::backup",
            path = %path.display(),
            tables = info.tables.len(),
            records = info.records,
            last_commit = info.last_commit,
            "backup written"
        );
        Ok(info)
    }

    /// Writes a backup of the tables `options` names into `w`. `at_cut` is called once, with
    /// the schema lock held, just before the commit locks are taken for the cut; what it
    /// returns is dropped once the cut is made (a lock it took is held across the cut).
    pub(crate) fn backup_into<W: std::io::Write, G>(
        &self,
        w: &mut BackupWriter<W>,
        options: &BackupOptions,
        at_cut: impl FnOnce() -> G,
    ) -> Result<BackupInfo> {
        // No table is created, dropped or moved meanwhile.
        let _schema = self.inner.schema.lock();
        let tables = self.inner.tables.load_full();
        let pending_names: Vec<String> =
            self.disk().map(|d| d.pending.lock().keys().cloned().collect()).unwrap_or_default();
        for name in options.tables.iter().flatten() {
            if !tables.contains_key(name) && !pending_names.contains(name) {
                return Err(Error::no_such_table(name));
            }
        }
        let mut names: Vec<&String> = tables
            .iter()
            // (A user's backup leaves out the tables whose records are on other nodes.)
            .filter(|(n, t)| options.wants(n) && !(options.shared_only && t.is_local()))
            .filter(|(_, t)| options.shared_only || t.placement().is_held())
            .map(|(n, _)| n)
            .collect();
        names.sort();
        let open: Vec<&Arc<dyn AnyTable>> = names.iter().map(|n| &tables[*n]).collect();
        // The cut: with every commit lock held shared, every commit numbered so far is
        // installed and none after has started; from here on, a commit saves what it changes
        // in a shard the backup has not copied yet.
        let (seq, mut heads) = {
            let _around = at_cut();
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
        // Tables of the directory not claimed by their type: nothing can change them. A
        // disc-only table's records are in its file, not among the recovered rows.
        let mut pending: Vec<(BackupTable, EntryEncoder)> = Vec::new();
        if let Some(disk) = self.disk() {
            let wanted = |p: &&crate::disk::Pending| {
                options.wants(&p.def.name) && !(options.shared_only && p.def.local_content)
            };
            for p in disk.pending.lock().values().filter(wanted) {
                let mut enc = EntryEncoder::default();
                if p.def.storage == crate::schema::record::StorageType::DiscOnlyCopies {
                    disk.disc_only()?.scan(p.def.id, |k, v, value| {
                        enc.entry(k, v, &value);
                        Ok(())
                    })?;
                } else {
                    for (k, (v, value)) in &p.rows {
                        enc.entry(k, *v, value);
                    }
                }
                let table = BackupTable { def: p.def.clone(), counter: p.counter, size_hint: enc.count };
                pending.push((table, enc));
            }
        }
        pending.sort_by(|a, b| a.0.def.name.cmp(&b.0.def.name));
        heads.extend(pending.iter().map(|(t, _)| t.clone()));
        let header = Header { seq, tables: heads };
        w.frame(&[&encode(&header)?])?;
        let mut counts = Vec::with_capacity(header.tables.len());
        let mut enc = EntryEncoder::default();
        let mut ticker = Ticker::new(options.progress.as_ref());
        for (i, t) in open.iter().enumerate() {
            let table = u32::try_from(i)
                .map_err(|_| Error::Exhausted { what: "table numbers of a backup".into() })?;
            counts.push(t.backup_stream(&mut enc, &mut |enc| {
                w.entries(table, enc)?;
                ticker.at(enc.count);
                Ok(())
            })?);
        }
        for (i, (_, mut enc)) in pending.into_iter().enumerate() {
            let table = u32::try_from(open.len() + i)
                .map_err(|_| Error::Exhausted { what: "table numbers of a backup".into() })?;
            counts.push(enc.count);
            w.entries(table, &mut enc)?;
        }
        let records = counts.iter().sum();
        w.frame(&[&encode(&Head::End(counts))?])?;
        ticker.end(records);
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
    /// While commits are handed to a sink ([`Database::replicate_to`]) or ordered (a
    /// cluster node), a table the restore recreates ([`RestoreMode::Recreate`]) is a
    /// record of its own, which every copy applies by making the table anew, where it
    /// keeps it, with the backup's records and version, and its indexes with the struct's
    /// (its subscribers hear `Dropped`); the other tables are written in one transaction
    /// after them. Every table recreated is checked (records, keys, unique indexes) before
    /// any is; what fails after that (the other tables' transaction, a disc, a cluster
    /// refusing a record too large for one entry) leaves the tables recreated so far
    /// recreated: such a restore is all or nothing table by table, not as a whole.
    ///
    /// ```
    /// let db = mnesia::Database::in_memory()?;
    /// let missing = std::env::temp_dir().join("no-such-backup.bak");
    /// assert!(db.restore(&missing, &mnesia::RestoreOptions::new()).is_err());
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn restore(&self, path: impl AsRef<Path>, options: &RestoreOptions) -> Result<u64> {
        let started = std::time::Instant::now();
        let restored = self.load_backup(BackupReader::open(path.as_ref())?, options)?;
        tracing::info!(
            target: "mnesia::backup",
            path = %path.as_ref().display(),
            records = restored,
            took_ms = started.elapsed().as_secs_f64() * 1e3,
            "backup restored"
        );
        Ok(restored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Table as _;
    use crate::testing::{Rec, rec};

    /// Writes a backup of table `rec` holding `recs` (keys as given, in order).
    fn craft(path: &Path, db: &Database, recs: &[Rec]) {
        let def = db.scope(|| db.table::<Rec>().map(|t| t.begin_backup(0))).expect("table");
        db.scope(|| db.table::<Rec>().map(|t| t.end_backup())).expect("end");
        let mut w = BackupWriter::new(path, PartialFile::create(path).expect("create")).expect("start");
        w.frame(&[&encode(&Header { seq: 0, tables: vec![def] }).expect("header")]).expect("frame");
        let mut enc = EntryEncoder::default();
        for r in recs {
            enc.record(&r.id, 1, r, postcard::to_extend).expect("entry");
        }
        let n = enc.count;
        w.entries(0, &mut enc).expect("entries");
        w.frame(&[&encode(&Head::End(vec![n])).expect("end")]).expect("end frame");
        w.into_inner().finish().expect("finish");
    }

    #[test]
    fn a_backup_holding_a_key_twice_or_a_unique_value_twice_is_refused_and_changes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Database::in_memory().expect("db");
        db.scope(|| -> Result<()> {
            db.create_table::<Rec>(crate::TableOptions::new())?;
            db.add_index::<Rec>(Rec::N.index_spec(true))?;
            Rec::write(rec(1, "kept", 10))?;
            let cases = [
                ("twice.bak", vec![rec(1, "a", 1), rec(2, "b", 2), rec(1, "c", 3)], "twice"),
                ("unique.bak", vec![rec(1, "a", 7), rec(2, "b", 8), rec(3, "c", 7)], "unique index on `n`"),
            ];
            for (name, recs, says) in cases {
                let file = dir.path().join(name);
                craft(&file, &db, &recs);
                match db.restore(&file, &RestoreOptions::new()) {
                    Err(Error::Invalid(reason)) => assert!(reason.contains(says), "{reason}"),
                    other => panic!("{name}: {other:?}"),
                }
                assert_eq!(Rec::list()?, vec![rec(1, "kept", 10)]);
                assert_eq!(Rec::get_by(Rec::N, 10)?, Some(rec(1, "kept", 10)));
            }
            let good = dir.path().join("good.bak");
            craft(&good, &db, &[rec(4, "d", 10), rec(5, "e", 11)]);
            assert_eq!(db.restore(&good, &RestoreOptions::new())?, 2);
            assert_eq!(Rec::get_by(Rec::N, 10)?, Some(rec(4, "d", 10)));
            assert_eq!(Rec::read(&1)?, None);
            Ok(())
        })
        .expect("body");
    }
}
