//! The directory's lock (`LOCK`): held exclusively by the program that has the database
//! open, shared by the inspections that only read it (the `mnesia` tool's `info`, `log`,
//! `verify`, `dump`), for which an opening program waits.

use std::fs::File;
use std::path::Path;

use super::files::io_error;
use crate::error::{Error, Result};

/// The lock file's name.
pub(crate) const LOCK: &str = "LOCK";

/// How long the directory's lock is waited for before `Locked`: a process that starts a
/// program (fork, then exec) while it has a database open lends the child its lock until
/// the exec closes it, so a database closed and opened again at once may find the lock
/// held for that instant.
const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_millis(250);

/// Takes the directory's lock file, or says who has it.
pub(crate) fn lock_dir(dir: &Path) -> Result<File> {
    lock_file(dir, LOCK)
}

/// Takes the lock of file `name` in `dir` (made if missing), held while the returned file
/// is open; [`Error::Locked`] when another handle, in this process or another, holds it
/// (waited for a moment first, and up to 30 s while only inspections read the directory). For the cluster's Raft directory too: not part of the API.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let held = mnesia_runtime::lock_file(dir.path(), "LOCK")?;
/// assert!(matches!(mnesia_runtime::lock_file(dir.path(), "LOCK"), Err(mnesia_runtime::Error::Locked { .. })));
/// drop(held);
/// mnesia_runtime::lock_file(dir.path(), "LOCK")?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn lock_file(dir: &Path, name: &str) -> Result<File> {
    let p = dir.join(name);
    let f = File::options().create(true).truncate(false).write(true).open(&p).map_err(|e| io_error(&p, e))?;
    let started = std::time::Instant::now();
    loop {
        match f.try_lock() {
            Ok(()) => return Ok(f),
            Err(std::fs::TryLockError::WouldBlock)
                if started.elapsed() < LOCK_PATIENCE
                    || (started.elapsed() < READERS_PATIENCE && only_read(&p)) =>
            {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(std::fs::TryLockError::WouldBlock) => return Err(Error::Locked { dir: dir.to_path_buf() }),
            Err(std::fs::TryLockError::Error(e)) => return Err(io_error(&p, e)),
        }
    }
}

/// How long a program opening the database waits for the inspections reading it (the
/// `mnesia` tool's `info`, `verify`, `dump`: see [`lock_dir_shared`]) to end.
const READERS_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

/// Whether the lock file `path` is held shared only (by inspections reading the directory).
fn only_read(path: &Path) -> bool {
    File::open(path).is_ok_and(|f| f.try_lock_shared().is_ok())
}

/// Takes the directory's lock shared, for an inspection that only reads it: a program
/// opening the database waits for it to end (see [`READERS_PATIENCE`]). The lock file is
/// made if missing and the directory can be written; in a directory that cannot (a
/// read-only mount, another user's), the inspection reads without a lock (`None`).
pub(crate) fn lock_dir_shared(dir: &Path) -> Result<Option<File>> {
    let p = dir.join(LOCK);
    let opened = match File::options().create(true).truncate(false).write(true).open(&p) {
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
            ) =>
        {
            File::open(&p)
        }
        opened => opened,
    };
    let f = match opened {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(&p, e)),
    };
    let deadline = std::time::Instant::now() + LOCK_PATIENCE;
    loop {
        match f.try_lock_shared() {
            Ok(()) => return Ok(Some(f)),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(std::fs::TryLockError::WouldBlock) => return Err(Error::Locked { dir: dir.to_path_buf() }),
            Err(std::fs::TryLockError::Error(e)) => return Err(io_error(&p, e)),
        }
    }
}

/// Whether a program has the database in `dir` open (it holds the lock exclusively; an
/// inspection reading it does not count). A lock that cannot be judged counts as held.
pub(crate) fn is_running(dir: &Path) -> bool {
    let Ok(f) = File::open(dir.join(LOCK)) else { return false };
    match f.try_lock_shared() {
        Ok(()) => false,
        Err(std::fs::TryLockError::WouldBlock | std::fs::TryLockError::Error(_)) => true,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_open_waits_for_inspections_not_for_another_open() {
        let dir = tempfile::tempdir().expect("dir");
        // Two inspections at once; an open waits until they end, and a program counts as
        // running only while it holds the lock.
        assert!(!super::is_running(dir.path()));
        let readers = [
            super::lock_dir_shared(dir.path()).expect("shared").expect("held"),
            super::lock_dir_shared(dir.path()).expect("shared").expect("held"),
        ];
        let released = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let ending = {
            let released = std::sync::Arc::clone(&released);
            std::thread::spawn(move || {
                std::thread::sleep(super::LOCK_PATIENCE * 2);
                released.store(true, std::sync::atomic::Ordering::SeqCst);
                drop(readers);
            })
        };
        assert!(!super::is_running(dir.path()), "inspections are no program");
        let open = super::lock_dir(dir.path()).expect("the open waits for the inspections");
        assert!(super::is_running(dir.path()));
        assert!(released.load(std::sync::atomic::Ordering::SeqCst), "it waited for them");
        ending.join().expect("thread");
        // An open holds the lock: an inspection, or another open, is refused.
        assert!(matches!(super::lock_dir_shared(dir.path()), Err(crate::error::Error::Locked { .. })));
        assert!(matches!(super::lock_dir(dir.path()), Err(crate::error::Error::Locked { .. })));
        drop(open);
    }
}
