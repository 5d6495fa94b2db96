//! The file layer: every file operation of a database directory — the log, checkpoints,
//! snapshots, the schema, backups, exports and the `disc_only_copies` file — goes through
//! here, so that a test can make any one of them fail (see [`faults`]). Errors keep the
//! operating system's kind and name the file.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// An error of the file layer, naming the file.
pub(crate) fn io_error(path: &Path, e: io::Error) -> Error {
    Error::Io { path: path.to_path_buf(), source: e }
}

/// A file of the database, with its path (for errors and for fault injection).
#[derive(Debug)]
pub(crate) struct DiscFile {
    file: File,
    path: PathBuf,
}

impl DiscFile {
    fn open_with(path: &Path, options: &OpenOptions, op: faults::Op) -> Result<DiscFile> {
        faults::check(op, path).map_err(|e| io_error(path, e))?;
        let file = options.open(path).map_err(|e| io_error(path, e))?;
        Ok(DiscFile { file, path: path.to_path_buf() })
    }

    /// Creates `path` empty (or empties it), for writing.
    pub(crate) fn create(path: &Path) -> Result<DiscFile> {
        Self::open_with(path, OpenOptions::new().create(true).write(true).truncate(true), faults::Op::Create)
    }

    /// Opens an existing file for reading.
    pub(crate) fn open(path: &Path) -> Result<DiscFile> {
        Self::open_with(path, OpenOptions::new().read(true), faults::Op::Open)
    }

    /// Opens an existing file for writing, at its start.
    pub(crate) fn open_write(path: &Path) -> Result<DiscFile> {
        Self::open_with(path, OpenOptions::new().write(true), faults::Op::Open)
    }

    fn err(&self, e: io::Error) -> Error {
        io_error(&self.path, e)
    }

    /// Writes all of `bytes` at the current position.
    pub(crate) fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        self.write_all_io(bytes).map_err(|e| self.err(e))
    }

    fn write_all_io(&mut self, bytes: &[u8]) -> io::Result<()> {
        if let Some(half) = faults::check_write(&self.path, bytes.len())? {
            // An injected short write: part of the bytes reach the file, then it fails.
            self.file.write_all(&bytes[..half])?;
            return Err(faults::error(faults::Fault::ShortWrite));
        }
        self.file.write_all(bytes)
    }

    /// Syncs the file's data (and the metadata needed to read it back, such as its length).
    pub(crate) fn sync_data(&mut self) -> Result<()> {
        faults::check(faults::Op::Sync, &self.path)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| self.err(e))
    }

    /// Syncs the file's data and all its metadata.
    pub(crate) fn sync_all(&mut self) -> Result<()> {
        faults::check(faults::Op::Sync, &self.path)
            .and_then(|()| self.file.sync_all())
            .map_err(|e| self.err(e))
    }

    /// Cuts (or extends) the file to `len` bytes and moves the position there.
    pub(crate) fn truncate_to(&mut self, len: u64) -> Result<()> {
        faults::check(faults::Op::SetLen, &self.path)
            .and_then(|()| self.file.set_len(len))
            .and_then(|()| self.file.seek(SeekFrom::Start(len)).map(drop))
            .map_err(|e| self.err(e))
    }

    /// Moves the position to `pos` (for writing there).
    pub(crate) fn seek_to(&mut self, pos: u64) -> Result<()> {
        self.file.seek(SeekFrom::Start(pos)).map(drop).map_err(|e| self.err(e))
    }

    /// Reads the rest of the file.
    pub(crate) fn read_to_end(&mut self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.read_to_end_io(&mut out).map_err(|e| self.err(e))?;
        Ok(out)
    }

    fn read_to_end_io(&mut self, out: &mut Vec<u8>) -> io::Result<usize> {
        faults::check(faults::Op::Read, &self.path)?;
        self.file.read_to_end(out)
    }
}

impl Read for DiscFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        faults::check(faults::Op::Read, &self.path)?;
        self.file.read(buf)
    }
}

impl Write for DiscFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all_io(buf).map(|()| buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Reads a whole file; `None` if it does not exist.
pub(crate) fn read_if_exists(path: &Path) -> Result<Option<Vec<u8>>> {
    let read = faults::check(faults::Op::Read, path).and_then(|()| std::fs::read(path));
    match read {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(path, e)),
    }
}

/// Renames `from` to `to`, replacing `to`.
pub(crate) fn rename(from: &Path, to: &Path) -> Result<()> {
    faults::check(faults::Op::Rename, to)
        .and_then(|()| std::fs::rename(from, to))
        .map_err(|e| io_error(to, e))
}

/// Removes a file.
pub(crate) fn remove_file(path: &Path) -> Result<()> {
    faults::check(faults::Op::Remove, path)
        .and_then(|()| std::fs::remove_file(path))
        .map_err(|e| io_error(path, e))
}

/// Makes a rename or a new file in `path`'s directory durable.
pub(crate) fn sync_dir(path: &Path) -> Result<()> {
    // A bare file name ("all.bak") has the empty path as its parent: the current directory.
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    faults::check(faults::Op::Sync, path)
        .and_then(|()| File::open(dir))
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(dir, e))
}

/// Writes a file atomically: to a temporary file beside it, synced, then renamed over
/// `path`, and the directory synced. A crash leaves the old file or the new one; an error
/// leaves the old one and no temporary file. The rename is the point of no return: once it
/// is done the new file is in place and `Ok` is returned, even if the directory sync fails
/// (a crash may then bring the old file back, as it may anyway before the sync). A caller
/// that must know the rename durable before going on (a checkpoint, before it removes the
/// log) syncs the directory itself.
pub(crate) fn write_atomically(path: &Path, write: impl FnOnce(&mut DiscFile) -> Result<()>) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let written = DiscFile::create(&tmp).and_then(|mut f| {
        write(&mut f)?;
        f.sync_all()
    });
    if let Err(e) = written.and_then(|()| rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let _ = sync_dir(path);
    Ok(())
}

/// The `disc_only_copies` file's storage for redb: its file, through this layer.
#[derive(Debug)]
pub(crate) struct RedbFile {
    inner: redb::backends::FileBackend,
    path: PathBuf,
}

impl RedbFile {
    /// Opens (or creates) the file at `path`.
    pub(crate) fn open(path: &Path) -> Result<RedbFile> {
        faults::check(faults::Op::Open, path).map_err(|e| io_error(path, e))?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| io_error(path, e))?;
        let inner = redb::backends::FileBackend::new(file)
            .map_err(|e| io_error(path, io::Error::other(e.to_string())))?;
        Ok(RedbFile { inner, path: path.to_path_buf() })
    }
}

impl redb::StorageBackend for RedbFile {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        faults::check(faults::Op::Read, &self.path)?;
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        faults::check(faults::Op::SetLen, &self.path)?;
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        faults::check(faults::Op::Sync, &self.path)?;
        self.inner.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        if faults::check_write(&self.path, data.len())?.is_some() {
            return Err(faults::error(faults::Fault::ShortWrite));
        }
        self.inner.write(offset, data)
    }

    fn close(&self) -> io::Result<()> {
        self.inner.close()
    }

    fn try_lock_range(
        &self,
        start: std::ops::Bound<u64>,
        end: std::ops::Bound<u64>,
    ) -> std::result::Result<bool, redb::BackendError> {
        self.inner.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: std::ops::Bound<u64>,
        end: std::ops::Bound<u64>,
    ) -> std::result::Result<bool, redb::BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }

    fn lock_range(
        &self,
        start: std::ops::Bound<u64>,
        end: std::ops::Bound<u64>,
    ) -> std::result::Result<(), redb::BackendError> {
        self.inner.lock_range(start, end)
    }

    fn lock_shared_range(
        &self,
        start: std::ops::Bound<u64>,
        end: std::ops::Bound<u64>,
    ) -> std::result::Result<(), redb::BackendError> {
        self.inner.lock_shared_range(start, end)
    }

    fn unlock_range(
        &self,
        start: std::ops::Bound<u64>,
        end: std::ops::Bound<u64>,
    ) -> std::result::Result<(), redb::BackendError> {
        self.inner.unlock_range(start, end)
    }
}

/// Fault injection for tests, in the spirit of SQLite's I/O-error tests: make the file
/// operations under a directory fail, from the Nth on.
///
/// Not part of the stable API: it exists so that the crate's own tests (and a cautious
/// user's) can check what a full disc or a failing device does to a database.
///
/// ```
/// use mnesia::faults::{self, Fault};
/// use mnesia::prelude::*;
///
/// #[derive(Table, Clone, Debug, Serialize, Deserialize)]
/// struct Item { #[key] id: u32 }
///
/// let dir = std::env::temp_dir().join(format!("mnesia-doc-faults-{}", std::process::id()));
/// # let _ = Schema::delete(&dir);
/// Schema::create(&dir)?;
/// let db = Database::open(Config::default().dir(&dir))?;
/// db.create_table::<Item>(TableOptions::new().disc_copies([db.node()]))?;
/// db.scope(|| -> mnesia::Result<()> {
///     {
///         // Every write to a file of the directory fails as on a full disc.
///         let _full = faults::inject(&dir, Fault::NoSpace, 0, None);
///         let err = Item::write(Item { id: 1 }).expect_err("the disc is full");
///         assert_eq!(err.io_kind(), Some(std::io::ErrorKind::StorageFull));
///     }
///     // The fault is gone: the next commit succeeds, without a reopen.
///     Item::write(Item { id: 2 })?;
///     assert!(Item::read(&1)?.is_none());
///     Ok(())
/// })?;
/// db.close()?;
/// # Schema::delete(&dir)?;
/// # Ok::<(), mnesia::Error>(())
/// ```
#[doc(hidden)]
pub mod faults {
    use std::io;
    use std::path::{Path, PathBuf};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

    use parking_lot::Mutex;

    /// A kind of file operation.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) enum Op {
        Create,
        Open,
        Read,
        Write,
        Sync,
        SetLen,
        Rename,
        Remove,
    }

    /// What an injected fault does.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Fault {
        /// The disc is full (`StorageFull`): creating a file, writing, extending and syncing
        /// fail.
        NoSpace,
        /// The device fails: every operation, reads included.
        Eio,
        /// A write puts part of its bytes in the file, then fails.
        ShortWrite,
        /// A sync fails (after which nothing written since the last good sync can be
        /// trusted).
        FailedSync,
        /// A rename fails.
        FailedRename,
        /// A sync waits until the injection is dropped (at most 10 s), then succeeds: the
        /// moment between a commit's write and its sync, held open for a test to look.
        Hold,
    }

    impl Fault {
        /// Every kind, for loops over them.
        pub const ALL: [Fault; 5] =
            [Fault::NoSpace, Fault::Eio, Fault::ShortWrite, Fault::FailedSync, Fault::FailedRename];

        fn hits(self, op: Op) -> bool {
            match self {
                Fault::NoSpace => matches!(op, Op::Create | Op::Write | Op::SetLen | Op::Sync),
                Fault::Eio => op != Op::Remove,
                Fault::ShortWrite => op == Op::Write,
                Fault::FailedSync => op == Op::Sync,
                Fault::FailedRename => op == Op::Rename,
                Fault::Hold => op == Op::Sync,
            }
        }
    }

    pub(crate) fn error(fault: Fault) -> io::Error {
        match fault {
            Fault::NoSpace => {
                io::Error::new(io::ErrorKind::StorageFull, "no space left on device (injected)")
            }
            Fault::ShortWrite => io::Error::new(io::ErrorKind::WriteZero, "short write (injected)"),
            Fault::Eio | Fault::FailedSync | Fault::FailedRename | Fault::Hold => {
                io::Error::other(format!("input/output error (injected {fault:?})"))
            }
        }
    }

    struct Plan {
        id: u64,
        dir: PathBuf,
        fault: Fault,
        /// Matching operations still let through.
        skip: AtomicU64,
        /// Failures still to inject (`u64::MAX`: until removed).
        left: AtomicU64,
        fired: AtomicU64,
        /// The injection was dropped (ends a [`Fault::Hold`]).
        dropped: std::sync::atomic::AtomicBool,
    }

    static ARMED: AtomicUsize = AtomicUsize::new(0);
    static PLANS: Mutex<Vec<Arc<Plan>>> = parking_lot::const_mutex(Vec::new());
    static NEXT_ID: AtomicU64 = AtomicU64::new(1);

    /// An injected fault, in force until dropped.
    pub struct Injected {
        plan: Arc<Plan>,
    }

    impl Injected {
        /// How many operations it made fail so far.
        pub fn fired(&self) -> u64 {
            self.plan.fired.load(Ordering::Acquire)
        }
    }

    impl Drop for Injected {
        fn drop(&mut self) {
            self.plan.dropped.store(true, Ordering::Release);
            let mut plans = PLANS.lock();
            plans.retain(|p| p.id != self.plan.id);
            ARMED.store(plans.len(), Ordering::Release);
        }
    }

    /// Makes the file operations on paths under `dir` that `fault` concerns fail: the first
    /// `skip` go through, then the next `times` fail (`None`: every one, until the returned
    /// guard is dropped).
    pub fn inject(dir: &Path, fault: Fault, skip: u64, times: Option<u64>) -> Injected {
        // Paths are compared as the database names them: from the same directory path.
        let plan = Arc::new(Plan {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            dir: dir.to_path_buf(),
            fault,
            skip: AtomicU64::new(skip),
            left: AtomicU64::new(times.unwrap_or(u64::MAX)),
            fired: AtomicU64::new(0),
            dropped: std::sync::atomic::AtomicBool::new(false),
        });
        let mut plans = PLANS.lock();
        plans.push(Arc::clone(&plan));
        ARMED.store(plans.len(), Ordering::Release);
        Injected { plan }
    }

    /// The fault to inject into this operation, if any (a [`Fault::Hold`] is waited out
    /// here and injects nothing).
    fn fire(op: Op, path: &Path) -> Option<Fault> {
        let (fault, plan) = pick(op, path)?;
        if fault != Fault::Hold {
            return Some(fault);
        }
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !plan.dropped.load(Ordering::Acquire) && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        None
    }

    fn pick(op: Op, path: &Path) -> Option<(Fault, Arc<Plan>)> {
        if ARMED.load(Ordering::Acquire) == 0 {
            return None;
        }
        let plans = PLANS.lock();
        for p in plans.iter().filter(|p| p.fault.hits(op) && path.starts_with(&p.dir)) {
            if p.skip.load(Ordering::Acquire) > 0 {
                p.skip.fetch_sub(1, Ordering::AcqRel);
                continue;
            }
            let left = p.left.load(Ordering::Acquire);
            if left == 0 {
                continue;
            }
            if left != u64::MAX {
                p.left.store(left - 1, Ordering::Release);
            }
            p.fired.fetch_add(1, Ordering::AcqRel);
            return Some((p.fault, Arc::clone(p)));
        }
        None
    }

    /// Fails if a fault is injected into this operation.
    pub(crate) fn check(op: Op, path: &Path) -> io::Result<()> {
        match fire(op, path) {
            Some(fault) => Err(error(fault)),
            None => Ok(()),
        }
    }

    /// For a write of `len` bytes: an error, or `Some(n)` when only the first `n` bytes are
    /// to be written before the write fails.
    pub(crate) fn check_write(path: &Path, len: usize) -> io::Result<Option<usize>> {
        match fire(Op::Write, path) {
            Some(Fault::ShortWrite) => Ok(Some(len / 2)),
            Some(fault) => Err(error(fault)),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::faults::{Fault, inject};
    use super::*;

    #[test]
    fn a_bare_file_name_syncs_the_current_directory() {
        // Its parent is the empty path, which cannot be opened.
        sync_dir(Path::new("all.bak")).expect("the current directory");
        sync_dir(&std::env::temp_dir().join("x")).expect("a directory");
    }

    #[test]
    fn a_failed_atomic_write_keeps_the_old_file_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        write_atomically(&path, |f| f.write_all(b"old")).expect("first write");
        for fault in Fault::ALL {
            let injected = inject(dir.path(), fault, 0, None);
            let err = write_atomically(&path, |f| f.write_all(b"new")).expect_err("fails");
            assert!(injected.fired() > 0, "{fault:?}");
            drop(injected);
            assert!(matches!(err, Error::Io { .. }), "{fault:?}: {err:?}");
            assert_eq!(std::fs::read(&path).expect("read"), b"old", "{fault:?}");
            let names: Vec<_> =
                std::fs::read_dir(dir.path()).expect("ls").flatten().map(|e| e.file_name()).collect();
            assert_eq!(names, ["state.json"], "{fault:?}");
            write_atomically(&path, |f| f.write_all(b"old")).expect("after the fault");
        }
    }

    #[test]
    fn once_renamed_the_new_file_stays_even_if_the_directory_sync_fails() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        write_atomically(&path, |f| f.write_all(b"old")).expect("first write");
        // The second sync is the directory's, after the rename.
        let injected = inject(dir.path(), Fault::FailedSync, 1, Some(1));
        write_atomically(&path, |f| f.write_all(b"new")).expect("in place: not an error");
        assert_eq!(injected.fired(), 1);
        assert_eq!(std::fs::read(&path).expect("read"), b"new");
        let names: Vec<_> =
            std::fs::read_dir(dir.path()).expect("ls").flatten().map(|e| e.file_name()).collect();
        assert_eq!(names, ["state.json"]);
    }

    #[test]
    fn faults_hit_only_their_directory_and_operations_and_count_what_they_skip() {
        let a = tempfile::tempdir().expect("tempdir");
        let b = tempfile::tempdir().expect("tempdir");
        let injected = inject(a.path(), Fault::FailedRename, 1, Some(1));
        write_atomically(&b.path().join("x"), |f| f.write_all(b"1")).expect("another directory");
        write_atomically(&a.path().join("x"), |f| f.write_all(b"1")).expect("the first rename is skipped");
        assert!(write_atomically(&a.path().join("x"), |f| f.write_all(b"2")).is_err());
        write_atomically(&a.path().join("x"), |f| f.write_all(b"3")).expect("one failure only");
        assert_eq!(injected.fired(), 1);
    }
}
