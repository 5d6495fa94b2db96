//! The on-disc store of `disc_only_copies` tables: one redb file per directory, a redb table
//! per disc-only table, from encoded key to `[version: u64 LE][content encoded]`.
//!
//! The commit log stays the single source of truth: a commit is logged first, then applied
//! here without a sync of its own. Invariant: *what is durable in this file is durable in the
//! log* — every durable commit of this file (checkpoint, drop, move) first syncs the log while
//! it holds redb's single write transaction, so no apply slips in between. Recovery replays
//! the log's tail into the file with the same version check as for snapshots (replaying
//! twice is harmless), and a clear in the log empties the whole table (whatever the file
//! holds past it is in the log too and is replayed after it). The file keeps the highest
//! version it ever held, so that commit numbers restart above it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use redb::{Durability, ReadableDatabase, ReadableTable, TableDefinition, TableHandle};

use super::record::Logged;
use crate::error::{Error, Result};

pub(crate) const FILE: &str = "disc_only.redb";

/// The redb file of a directory.
/// A visitor of [`DiscOnly::scan`]: encoded key, version and content.
type ScanVisitor<'a> = dyn FnMut(&[u8], u64, Logged) -> Result<()> + 'a;

pub(crate) struct DiscOnly {
    path: PathBuf,
    /// `None` once closed: the file is released (redb holds a lock on it while open).
    db: parking_lot::RwLock<Option<redb::Database>>,
    /// The commit log, synced before this file is (set once the log is open).
    log: std::sync::OnceLock<std::sync::Weak<super::wal::Wal>>,
    /// A read or write of the file failed: redb refuses every later use until the file is
    /// reopened, which [`DiscOnly::recover`] does.
    broken: AtomicBool,
}

const META: TableDefinition<'static, &str, u64> = TableDefinition::new("mnesia_meta");
const MAX_VERSION: &str = "max_version";

fn table_name(table: u64) -> String {
    format!("t{table}")
}

fn decode_value(path: &Path, bytes: &[u8]) -> Result<(u64, Logged)> {
    let corrupt = |reason: String| Error::Corrupt { file: path.to_path_buf(), offset: 0, reason };
    let (v, rest) = bytes.split_at_checked(8).ok_or_else(|| corrupt("a value too short".into()))?;
    let version = u64::from_le_bytes(v.try_into().map_err(|_| corrupt("bad version".into()))?);
    let value = postcard::from_bytes(rest).map_err(|e| corrupt(format!("bad value: {e}")))?;
    Ok((version, value))
}

fn encode_value(version: u64, value: &Logged) -> Result<Vec<u8>> {
    let mut out = version.to_le_bytes().to_vec();
    out.extend(postcard::to_allocvec(value).map_err(|e| Error::codec("encoding a value", e))?);
    Ok(out)
}

impl DiscOnly {
    pub(crate) fn open(dir: &Path) -> Result<DiscOnly> {
        let path = dir.join(FILE);
        let db = open_file(&path)?;
        Ok(DiscOnly {
            path,
            db: parking_lot::RwLock::new(Some(db)),
            log: std::sync::OnceLock::new(),
            broken: AtomicBool::new(false),
        })
    }

    /// After a failed read or write: reopens the file and brings it up to date from the
    /// commit log (what redb held only in memory is lost with the reopen, and is in the
    /// log since the last checkpoint). A no-op while the file works.
    pub(crate) fn recover(&self) -> Result<()> {
        if !self.broken.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut held = self.db.write();
        if !self.broken.load(Ordering::Acquire) {
            return Ok(()); // another thread did it
        }
        let wal = self.log.get().and_then(std::sync::Weak::upgrade);
        let Some(wal) = wal else {
            return Err(Error::Closed { what: self.path.display().to_string() });
        };
        // Every commit logged so far is durable in the log's files, to be replayed; what
        // is appended from now on is applied after this (its apply waits for the lock held
        // here), and nothing past the durable end is read (it may yet be cut off).
        wal.sync()?;
        let end = wal.durable_end();
        // Released first: redb holds a lock on the file while open.
        drop(held.take());
        let db = open_file(&self.path)?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        super::replay_disc_only(dir, end, |table, clear, writes| {
            apply_to(&db, &self.path, table, clear, writes, true)
        })?;
        let mut w = db.begin_write().map_err(|e| storage(&self.path, e))?;
        w.set_durability(Durability::Immediate).map_err(|e| storage(&self.path, e))?;
        w.commit().map_err(|e| storage(&self.path, e))?;
        *held = Some(db);
        self.broken.store(false, Ordering::Release);
        Ok(())
    }

    /// The log to sync before this file.
    pub(crate) fn attach_log(&self, wal: &std::sync::Arc<super::wal::Wal>) {
        let _ = self.log.set(std::sync::Arc::downgrade(wal));
    }

    /// A durable commit of this file: the log is synced first, while redb's one write
    /// transaction keeps applies out (see the module's invariant).
    fn durable_commit(&self, mut w: redb::WriteTransaction) -> Result<()> {
        if let Some(wal) = self.log.get().and_then(std::sync::Weak::upgrade) {
            wal.sync()?;
        }
        w.set_durability(Durability::Immediate).map_err(|e| self.err(e))?;
        w.commit().map_err(|e| self.err(e))
    }

    /// The highest version the file ever held.
    pub(crate) fn max_version(&self) -> Result<u64> {
        let r = self.db()?.begin_read().map_err(|e| self.err(e))?;
        match r.open_table(META) {
            Ok(t) => Ok(t.get(MAX_VERSION).map_err(|e| self.err(e))?.map_or(0, |v| v.value())),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Removes the tables whose id is not in `keep` (left by a crash in the middle of a
    /// drop or a move).
    pub(crate) fn remove_orphans(&self, keep: &[u64]) -> Result<()> {
        let orphans: Vec<String> = {
            let r = self.db()?.begin_read().map_err(|e| self.err(e))?;
            let tables = r.list_tables().map_err(|e| self.err(e))?;
            tables
                .map(|t| redb::TableHandle::name(&t).to_owned())
                .filter(|n| {
                    n.strip_prefix('t')
                        .and_then(|id| id.parse::<u64>().ok())
                        .is_some_and(|id| !keep.contains(&id))
                })
                .collect()
        };
        if orphans.is_empty() {
            return Ok(());
        }
        let w = self.db()?.begin_write().map_err(|e| self.err(e))?;
        for name in &orphans {
            let def: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new(name);
            w.delete_table(def).map_err(|e| self.err(e))?;
        }
        self.durable_commit(w)
    }

    /// Releases the file; every later use fails.
    pub(crate) fn close(&self) {
        self.db.write().take();
    }

    fn db(&self) -> Result<parking_lot::MappedRwLockReadGuard<'_, redb::Database>> {
        self.recover()?;
        parking_lot::RwLockReadGuard::try_map(self.db.read(), Option::as_ref)
            .map_err(|_| Error::Closed { what: self.path.display().to_string() })
    }

    fn err(&self, e: impl Into<redb::Error>) -> Error {
        self.broken.store(true, Ordering::Release);
        storage(&self.path, e)
    }

    /// A key's version and content.
    pub(crate) fn get(&self, table: u64, key: &[u8]) -> Result<Option<(u64, Logged)>> {
        let name = table_name(table);
        let def: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new(&name);
        let r = self.db()?.begin_read().map_err(|e| self.err(e))?;
        let t = match r.open_table(def) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(self.err(e)),
        };
        match t.get(key).map_err(|e| self.err(e))? {
            Some(v) => decode_value(&self.path, v.value()).map(Some),
            None => Ok(None),
        }
    }

    /// Visits every key with its version and content.
    pub(crate) fn scan(&self, table: u64, mut f: impl FnMut(&[u8], u64, Logged) -> Result<()>) -> Result<()> {
        self.scan_dyn(table, &mut f)
    }

    /// [`DiscOnly::scan`], compiled once rather than once per visitor of every record type.
    fn scan_dyn(&self, table: u64, f: &mut ScanVisitor<'_>) -> Result<()> {
        let name = table_name(table);
        let def: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new(&name);
        let r = self.db()?.begin_read().map_err(|e| self.err(e))?;
        let t = match r.open_table(def) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
            Err(e) => return Err(self.err(e)),
        };
        for entry in t.iter().map_err(|e| self.err(e))? {
            let (k, v) = entry.map_err(|e| self.err(e))?;
            let (version, value) = decode_value(&self.path, v.value())?;
            f(k.value(), version, value)?;
        }
        Ok(())
    }

    /// Applies writes in one redb transaction, not synced (the commit log is). With
    /// `clear`, the table is emptied first. With `only_newer`, a write no newer than what a
    /// key holds is skipped (log replay).
    pub(crate) fn apply(
        &self,
        table: u64,
        clear: bool,
        writes: &[(Vec<u8>, u64, Logged)],
        only_newer: bool,
    ) -> Result<()> {
        let applied = apply_to(&*self.db()?, &self.path, table, clear, writes, only_newer);
        if matches!(applied, Err(Error::Io { .. })) {
            self.broken.store(true, Ordering::Release);
        }
        applied
    }

    /// Removes a table, durably.
    pub(crate) fn drop_table(&self, table: u64) -> Result<()> {
        let name = table_name(table);
        let def: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new(&name);
        let w = self.db()?.begin_write().map_err(|e| self.err(e))?;
        w.delete_table(def).map_err(|e| self.err(e))?;
        self.durable_commit(w)
    }

    /// Makes everything applied so far durable (after the log: see the module's invariant).
    pub(crate) fn sync(&self) -> Result<()> {
        let w = self.db()?.begin_write().map_err(|e| self.err(e))?;
        self.durable_commit(w)
    }
}
/// A directory's `disc_only_copies` file opened read-only, for tools (the database must
/// not be open).
pub(crate) struct ReadOnly {
    path: std::path::PathBuf,
    /// One read transaction for every read: the file does not change while a tool holds the
    /// directory's lock.
    read: redb::ReadTransaction,
}

/// What [`ReadOnly::open`] found.
pub(crate) enum Opened {
    /// There is no disc-only file.
    Missing,
    /// The file was not closed cleanly (a crash): only the database's next open, which
    /// repairs it and replays the log into it, makes it readable.
    NeedsRecovery(std::path::PathBuf),
    /// The file, open.
    File(ReadOnly),
}

impl ReadOnly {
    pub(crate) fn open(dir: &Path) -> Result<Opened> {
        let path = dir.join(FILE);
        if !path.exists() {
            return Ok(Opened::Missing);
        }
        let db = match redb::ReadOnlyDatabase::open(&path) {
            Ok(db) => db,
            Err(redb::DatabaseError::RepairAborted) => return Ok(Opened::NeedsRecovery(path)),
            Err(e) => return Err(storage(&path, e)),
        };
        let read = db.begin_read().map_err(|e| storage(&path, e))?;
        Ok(Opened::File(ReadOnly { path, read }))
    }

    /// Table `table` of the file, if it has one.
    fn table(&self, table: u64) -> Result<Option<redb::ReadOnlyTable<&'static [u8], &'static [u8]>>> {
        let name = table_name(table);
        let def: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new(&name);
        match self.read.open_table(def) {
            Ok(t) => Ok(Some(t)),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(storage(&self.path, e)),
        }
    }

    /// Per table id, the keys and records the file holds, each value decoded (one that
    /// does not decode is [`Error::Corrupt`]).
    pub(crate) fn census(&self) -> Result<std::collections::HashMap<u64, (u64, u64)>> {
        let err = |e: redb::Error| storage(&self.path, e);
        let mut out = std::collections::HashMap::new();
        for handle in self.read.list_tables().map_err(|e| err(e.into()))? {
            let Some(id) = handle.name().strip_prefix('t').and_then(|n| n.parse::<u64>().ok()) else {
                continue;
            };
            let Some(t) = self.table(id)? else { continue };
            let (mut keys, mut records) = (0u64, 0u64);
            for item in t.iter().map_err(|e| err(e.into()))? {
                let (_, v) = item.map_err(|e| err(e.into()))?;
                keys += 1;
                records += decode_value(&self.path, v.value())?.1.records();
            }
            out.insert(id, (keys, records));
        }
        Ok(out)
    }

    /// Table `table`'s rows: encoded key to version and content.
    pub(crate) fn rows(&self, table: u64) -> Result<super::Rows> {
        let err = |e: redb::Error| storage(&self.path, e);
        let Some(t) = self.table(table)? else { return Ok(super::Rows::default()) };
        let mut out = super::Rows::default();
        for item in t.iter().map_err(|e| err(e.into()))? {
            let (k, v) = item.map_err(|e| err(e.into()))?;
            out.insert(k.value().to_vec(), decode_value(&self.path, v.value())?);
        }
        Ok(out)
    }

    /// One key's version and content in table `table`.
    pub(crate) fn get(&self, table: u64, key: &[u8]) -> Result<Option<(u64, Logged)>> {
        let Some(t) = self.table(table)? else { return Ok(None) };
        match t.get(key).map_err(|e| storage(&self.path, e))? {
            Some(v) => decode_value(&self.path, v.value()).map(Some),
            None => Ok(None),
        }
    }
}

/// Opens (or creates) the file, through the file layer.
fn open_file(path: &Path) -> Result<redb::Database> {
    // A file of no bytes holds nothing: one whose creation was cut short before this file
    // was made beside it and renamed into place.
    let absent = std::fs::metadata(path).map(|m| m.len() == 0).unwrap_or(true);
    if absent {
        create_file(path)?;
    }
    let file = super::files::RedbFile::open(path)?;
    redb::Database::builder().create_with_backend(file).map_err(|e| storage(path, e))
}

/// Creates the redb file whole or not at all: made beside it, its header synced by a first
/// durable commit, then renamed into place and the directory synced. A process killed
/// meanwhile leaves at most the temporary file, which the next creation replaces.
fn create_file(path: &Path) -> Result<()> {
    let tmp = path.with_extension("redb.tmp");
    let created = (|| {
        if tmp.exists() {
            super::files::remove_file(&tmp)?;
        }
        let db = redb::Database::builder()
            .create_with_backend(super::files::RedbFile::open(&tmp)?)
            .map_err(|e| storage(&tmp, e))?;
        let mut w = db.begin_write().map_err(|e| storage(&tmp, e))?;
        w.set_durability(Durability::Immediate).map_err(|e| storage(&tmp, e))?;
        w.commit().map_err(|e| storage(&tmp, e))?;
        drop(db);
        super::files::rename(&tmp, path)
    })();
    if created.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    created?;
    super::files::sync_dir(path)
}

/// Applies writes to `db` in one redb transaction, not synced (see [`DiscOnly::apply`]).
fn apply_to(
    db: &redb::Database,
    path: &Path,
    table: u64,
    clear: bool,
    writes: &[(Vec<u8>, u64, Logged)],
    only_newer: bool,
) -> Result<()> {
    let err = |e: redb::Error| storage(path, e);
    let name = table_name(table);
    let def: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new(&name);
    let mut w = db.begin_write().map_err(|e| err(e.into()))?;
    w.set_durability(Durability::None).map_err(|e| err(e.into()))?;
    if clear {
        w.delete_table(def).map_err(|e| err(e.into()))?;
    }
    {
        let mut t = w.open_table(def).map_err(|e| err(e.into()))?;
        for (key, version, value) in writes {
            if only_newer
                && let Some(old) = t.get(key.as_slice()).map_err(|e| err(e.into()))?
                && decode_value(path, old.value())?.0 >= *version
            {
                continue;
            }
            match value {
                Logged::Delete => {
                    t.remove(key.as_slice()).map_err(|e| err(e.into()))?;
                }
                v => {
                    let bytes = encode_value(*version, v)?;
                    t.insert(key.as_slice(), bytes.as_slice()).map_err(|e| err(e.into()))?;
                }
            }
        }
    }
    if let Some(top) = writes.iter().map(|(_, v, _)| *v).max() {
        let mut meta = w.open_table(META).map_err(|e| err(e.into()))?;
        let held = meta.get(MAX_VERSION).map_err(|e| err(e.into()))?.map_or(0, |v| v.value());
        if top > held {
            meta.insert(MAX_VERSION, top).map_err(|e| err(e.into()))?;
        }
    }
    w.commit().map_err(|e| err(e.into()))
}

/// A redb failure as an I/O error on the file, keeping the operating system's kind when
/// redb has one.
fn storage(path: &Path, e: impl Into<redb::Error>) -> Error {
    let source = match e.into() {
        redb::Error::Io(io) => io,
        redb::Error::PreviousIo => std::io::Error::other(
            "an earlier I/O error on this file stopped its tables until the database is reopened",
        ),
        other => std::io::Error::other(other.to_string()),
    };
    Error::Io { path: path.to_path_buf(), source }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process killed while it created the file leaves no half-made file behind: a
    /// leftover temporary file or an empty file (from before files were created whole) is
    /// made again; a file with anything else in it is refused, never replaced.
    #[test]
    fn a_file_cut_short_at_creation_is_made_again_and_a_damaged_one_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join(FILE);
        std::fs::write(path.with_extension("redb.tmp"), b"half a header").expect("tmp");
        std::fs::write(&path, b"").expect("empty");
        let disc = DiscOnly::open(dir.path()).expect("an empty file is made again");
        disc.apply(1, false, &[(b"k".to_vec(), 1, Logged::Put(b"v".to_vec()))], false).expect("apply");
        disc.sync().expect("sync");
        assert!(disc.get(1, b"k").expect("get").is_some());
        drop(disc);
        assert!(!path.with_extension("redb.tmp").exists(), "the temporary file is gone");
        assert!(DiscOnly::open(dir.path()).expect("reopen").get(1, b"k").expect("get").is_some());

        let other = tempfile::tempdir().expect("dir");
        std::fs::write(other.path().join(FILE), b"not a redb file at all").expect("garbage");
        assert!(DiscOnly::open(other.path()).is_err(), "damage is refused");
        let kept = std::fs::read(other.path().join(FILE)).expect("read");
        assert_eq!(kept, b"not a redb file at all", "and left as it was");
    }
}
