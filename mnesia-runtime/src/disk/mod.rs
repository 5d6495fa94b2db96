//! Disc storage: the schema file, the commit log, checkpoints and recovery.
//!
//! A database directory holds:
//!
//! | file | what |
//! |---|---|
//! | `schema.json` | the tables and their definitions, as the last checkpoint left them |
//! | `NNNNNNNN.wal` | log segments: every commit touching a disc table and every schema change, in commit order |
//! | `table-ID.snap` | the last checkpoint's copy of each disc table |
//! | `checkpoint.json` | which log segment the last checkpoint starts the replay from |
//! | `LOCK` | held by the process that has the database open |
//!
//! Recovery takes the schema file with the schema changes the log holds since the
//! checkpoint applied in order (see `log_read::logged_schema`), loads the snapshots, then replays the log from the checkpoint's
//! segment on (table ids are never reused, so a commit of a table dropped meanwhile is of
//! no table in that schema, and is skipped). A
//! snapshot is taken while writers run, so it may already hold a write that the log replays
//! again: each key carries the sequence number of the commit that wrote it, and a replayed
//! write no newer than what the key holds is skipped. Replay is idempotent, so a crash during
//! recovery (or during a checkpoint) is harmless.

pub(crate) mod files;
pub(crate) mod format;
pub(crate) mod frame;
pub(crate) mod lock;
pub(crate) mod log_read;
pub(crate) mod only;
pub(crate) mod record;
pub(crate) mod schema;
pub(crate) mod snapshot;
pub(crate) mod wal;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use self::files::io_error;
pub use self::lock::lock_file;
pub(crate) use self::lock::{is_running, lock_dir, lock_dir_shared};
pub(crate) use self::log_read::{LogEntry, current_schema, decode_commit, decode_record, logged_schema};
use self::record::{Logged, LoggedRef, SnapshotEntry, TableOps, TableOpsRef};
use self::schema::{SchemaFile, TableDef};
use self::wal::{Durability, Wal};
use crate::error::{Error, Result};
use crate::schema::record::StorageType;

pub(crate) const CHECKPOINT: &str = "checkpoint.json";

/// What the last checkpoint left.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Checkpoint {
    /// Replay the log from this segment on.
    pub(crate) segment: u64,
    /// The commit sequence number when the checkpoint started.
    pub(crate) seq: u64,
    /// The tables that have a snapshot.
    pub(crate) tables: Vec<u64>,
}

/// Encoded key to the version and content of a recovered table's records.
pub(crate) type Rows = hashbrown::HashMap<Vec<u8>, (u64, Logged)>;

/// The most rows recovery reserves for a table's log writes at once (more grow as needed).
const RESERVE_AT_MOST: usize = 4 << 20;

/// A disc table recovered from the directory but not yet claimed by its Rust type: its
/// records are kept encoded until the program names the type.
pub(crate) struct Pending {
    pub(crate) def: TableDef,
    pub(crate) rows: Rows,
    /// The highest auto-increment counter seen.
    pub(crate) counter: u64,
}

/// Replays one commit's writes to a table onto its rows: a row already holding this commit
/// or a later one (from a snapshot taken while writers ran) is left as it is.
pub(crate) fn replay(rows: &mut Rows, seq: u64, ops: &TableOpsRef<'_>) {
    if ops.clear {
        rows.retain(|_, (v, _)| *v > seq);
    }
    for (key, value) in &ops.writes {
        match rows.get_mut(*key) {
            // The snapshot already holds this write or a later one.
            Some((v, _)) if *v >= seq => {}
            Some(_) if matches!(value, LoggedRef::Delete) => {
                rows.remove(*key);
            }
            Some(row) => *row = (seq, value.to_owned()),
            None if matches!(value, LoggedRef::Delete) => {}
            None => {
                rows.insert(key.to_vec(), (seq, value.to_owned()));
            }
        }
    }
}

impl Pending {
    pub(crate) fn apply(&mut self, seq: u64, ops: &TableOpsRef<'_>) {
        self.counter = if ops.reset { ops.counter } else { self.counter.max(ops.counter) };
        replay(&mut self.rows, seq, ops);
    }

    /// What `table_info` tells of a table not yet claimed by its type.
    pub(crate) fn info(&self) -> crate::schema::record::TableInfo {
        let d = &self.def;
        crate::schema::record::TableInfo {
            name: d.name.clone(),
            size: self
                .rows
                .values()
                .map(|(_, v)| match v {
                    Logged::Group(g) => g.len(),
                    _ => 1,
                })
                .sum(),
            memory: 0,
            table_type: d.table_type,
            storage_type: d.storage,
            attributes: d.attributes.iter().map(|(n, _)| n.clone()).collect(),
            key: d.key_name().to_owned(),
            indexes: d.indexes.clone(),
            auto_increment: d.auto_increment,
            // Known once the program names the table's type.
            ttl_field: None,
            default_ttl: None,
            expiring: 0,
            counter: self.counter,
            version: d.version,
            disk_bytes: None,
            local_content: d.local_content,
            nodes: Vec::new(),
            held: true,
            filling: Vec::new(),
            disc_copies: Vec::new(),
        }
    }

    /// The rows as snapshot entries.
    pub(crate) fn entries(&self) -> Vec<SnapshotEntry> {
        self.rows
            .iter()
            .map(|(k, (v, value))| SnapshotEntry { key: k.clone(), version: *v, value: value.clone() })
            .collect()
    }
}

/// The disc side of an open database.
pub(crate) struct Disk {
    pub(crate) dir: PathBuf,
    pub(crate) wal: Arc<Wal>,
    pub(crate) schema: Mutex<SchemaFile>,
    pub(crate) pending: Mutex<HashMap<String, Pending>>,
    /// Serializes checkpoints.
    checkpointing: Mutex<()>,
    /// The file of the `disc_only_copies` tables, opened when first needed.
    disc_only: Mutex<Option<Arc<only::DiscOnly>>>,
    /// The directory's lock, held while the database is open.
    lock: Mutex<Option<File>>,
}

/// The last checkpoint of `dir` (none yet: replay the whole log).
pub(crate) fn read_checkpoint(dir: &Path) -> Result<Checkpoint> {
    let path = dir.join(CHECKPOINT);
    match files::read_if_exists(&path)? {
        Some(b) => serde_json::from_slice(&b).map_err(|e| Error::Corrupt {
            file: path,
            offset: 0,
            reason: e.to_string(),
        }),
        None => Ok(Checkpoint::default()),
    }
}

/// `Err` if the checkpoint file of `dir` is gone with every log segment (`has_segments`
/// false): the schema file names tables only once a checkpoint wrote it, and a checkpoint
/// leaves its file and the segment it replays from; without them the tables would open
/// empty.
pub(crate) fn check_checkpoint_kept(dir: &Path, has_segments: bool) -> Result<()> {
    let path = dir.join(CHECKPOINT);
    if has_segments || path.exists() || schema::load(dir)?.next_table_id <= 1 {
        return Ok(());
    }
    Err(Error::Corrupt {
        file: path,
        offset: 0,
        reason: "missing, with every log segment: the schema file says tables were created and \
                 checkpointed, but neither the checkpoint (which names their snapshots) nor the \
                 log is left"
            .into(),
    })
}

/// Replays into a reopened `disc_only_copies` file the commits to its tables that the log
/// holds since the last checkpoint (see [`only::DiscOnly::recover`]), up to `end` (a
/// segment and how many of its bytes are durable: what lies past it may still be cut off):
/// `apply` gets each table part, with the commit's sequence number on every write.
pub(crate) fn replay_disc_only(
    dir: &Path,
    end: Option<(u64, u64)>,
    mut apply: impl FnMut(u64, bool, &[(Vec<u8>, u64, Logged)]) -> Result<()>,
) -> Result<()> {
    let mut log = wal::read_from(dir, read_checkpoint(dir)?.segment)?;
    log.records.retain(|rec| {
        let ends = rec.offset + (frame::HEADER + rec.payload.len()) as u64;
        !end.is_some_and(|(segment, bytes)| rec.segment > segment || (rec.segment == segment && ends > bytes))
    });
    // The tables the replayed log leaves on disc only (ids are never reused: the records of
    // a table dropped meanwhile are of no table in it).
    let ids: Vec<u64> = logged_schema(&log, || schema::load(dir))?
        .tables
        .iter()
        .filter(|d| d.storage == StorageType::DiscOnlyCopies)
        .map(|d| d.id)
        .collect();
    for rec in &log.records {
        let Some((seq, ops)) = decode_commit(rec)? else { continue };
        for op in ops.iter().filter(|op| ids.contains(&op.table)) {
            let writes: Vec<(Vec<u8>, u64, Logged)> =
                op.to_owned().writes.into_iter().map(|(k, v)| (k, seq, v)).collect();
            apply(op.table, op.clear, &writes)?;
        }
    }
    Ok(())
}

impl Disk {
    /// Opens the directory: takes its lock, recovers every disc table from the last
    /// checkpoint and the log, and opens the log for appending. Returns the highest commit
    /// sequence number seen.
    pub(crate) fn open(dir: &Path, durability: Durability) -> Result<(Disk, u64)> {
        let started = std::time::Instant::now();
        schema::load(dir)?; // "no schema here" before creating a lock file
        let lock = lock_dir(dir)?;
        // Read under the lock: no other process changes it from now on.
        let checkpoint = read_checkpoint(dir)?;
        let log = wal::read_from(dir, checkpoint.segment)?;
        check_checkpoint_kept(dir, log.last.is_some())?;
        // The schema the last checkpoint wrote, with the changes the log holds since.
        let schema = logged_schema(&log, || schema::load(dir))?;
        let mut max_seq = checkpoint.seq;
        let mut pending = HashMap::new();
        let mut by_id: HashMap<u64, String> = HashMap::new();
        for def in &schema.tables {
            let mut rows = Rows::default();
            let mut counter = 0;
            if checkpoint.tables.contains(&def.id) {
                let (c, entries) = snapshot::read(dir, def.id)?;
                counter = c;
                rows.reserve(entries.len());
                for e in entries {
                    max_seq = max_seq.max(e.version);
                    rows.insert(e.key, (e.version, e.value));
                }
            }
            by_id.insert(def.id, def.name.clone());
            pending.insert(def.name.clone(), Pending { def: def.clone(), rows, counter });
        }
        // Sized once for every write the log holds (a first pass reads the commits in place
        // and counts them): no rehashing while a million go in.
        let mut writes: HashMap<u64, usize> = HashMap::new();
        for rec in &log.records {
            for op in decode_commit(rec)?.map(|(_, ops)| ops).unwrap_or_default() {
                *writes.entry(op.table).or_default() += op.writes.len();
            }
        }
        for p in pending.values_mut().filter(|p| p.def.storage != StorageType::DiscOnlyCopies) {
            // Writes to one key count once each: a log of a few hot keys reserves no more
            // than this.
            p.rows.reserve(writes.get(&p.def.id).copied().unwrap_or(0).min(RESERVE_AT_MOST));
        }
        let mut disc_only_ops: Vec<(u64, TableOps)> = Vec::new();
        for rec in &log.records {
            let Some((seq, ops)) = decode_commit(rec)? else { continue };
            max_seq = max_seq.max(seq);
            for op in &ops {
                // Records of dropped tables are skipped: their ids are never reused.
                let Some(p) = by_id.get(&op.table).and_then(|n| pending.get_mut(n)) else { continue };
                if p.def.storage == StorageType::DiscOnlyCopies {
                    // Replayed into the table's file below; only the counter is kept here.
                    p.counter = if op.reset { op.counter } else { p.counter.max(op.counter) };
                    disc_only_ops.push((seq, op.to_owned()));
                } else {
                    p.apply(seq, op);
                }
            }
        }
        let has_disc_only = schema.tables.iter().any(|d| d.storage == StorageType::DiscOnlyCopies);
        let disc_only_file = dir.join(only::FILE);
        let disc_only = if has_disc_only {
            Some(Arc::new(only::DiscOnly::open(dir)?))
        } else {
            if disc_only_file.exists() {
                // No table is kept on disc only any more (the last one moved or dropped, or
                // a move to it that a crash cut short): the file holds nothing the schema
                // names. Removed, it is no longer reported after a crash as needing
                // recovery; a table moved to disc only makes it again.
                files::remove_file(&disc_only_file)?;
                files::sync_dir(&disc_only_file)?;
            }
            None
        };
        if let Some(disc) = &disc_only {
            let keep: Vec<u64> = schema
                .tables
                .iter()
                .filter(|d| d.storage == StorageType::DiscOnlyCopies)
                .map(|d| d.id)
                .collect();
            disc.remove_orphans(&keep)?;
            let replayed: usize = disc_only_ops
                .iter()
                .flat_map(|(_, op)| &op.writes)
                .map(|(k, v)| k.len() + record::logged_len(v))
                .sum();
            let replay = || -> Result<()> {
                for (seq, op) in disc_only_ops {
                    let writes: Vec<(Vec<u8>, u64, Logged)> =
                        op.writes.into_iter().map(|(k, v)| (k, seq, v)).collect();
                    disc.apply(op.table, op.clear, &writes, true)?;
                }
                disc.sync()
            };
            replay().map_err(|e| match e {
                Error::Io { path, source } if source.kind() == std::io::ErrorKind::StorageFull => Error::Io {
                    path,
                    source: std::io::Error::new(
                        source.kind(),
                        format!(
                            "{source}: replaying the log's {replayed} bytes of disc-only commits into this \
                             file needs about that much free space (more for redb's pages); free some and \
                             open again"
                        ),
                    ),
                },
                other => other,
            })?;
            // Commit numbers go on above anything the file holds.
            max_seq = max_seq.max(disc.max_version()?);
        }
        // Every record decoded: now the torn tail (never acknowledged) can go.
        if let Some((path, at)) = &log.torn {
            wal::cut_torn_tail(path, *at)?;
        }
        // The last segment again if it holds nothing but a header of the current format (an
        // open that wrote nothing, a roll just before a crash), else a new one.
        let empty_last = log.last.filter(|n| {
            log.records.last().is_none_or(|r| r.segment != *n)
                && std::fs::read(dir.join(wal::segment_name(*n)))
                    .is_ok_and(|b| b[..] == frame::magic(wal::KIND, wal::VERSION)[..])
        });
        let next = match empty_last {
            Some(n) => n,
            None => log
                .last
                .unwrap_or(checkpoint.segment)
                .checked_add(1)
                .ok_or_else(|| Error::Exhausted { what: "log segment numbers".into() })?,
        };
        // The log since the checkpoint counts towards the next one: a program that stops
        // (or crashes) before writing the threshold in one run still gets checkpoints.
        let carried: u64 = log.records.iter().map(|r| (frame::HEADER + r.payload.len()) as u64).sum();
        tracing::info!(
            target: "mnesia::recovery",
            dir = %dir.display(),
            tables = schema.tables.len(),
            snapshots = checkpoint.tables.len(),
            commits_replayed = log.records.len(),
            torn_tail = log.torn.is_some(),
            last_commit = max_seq,
            took_ms = started.elapsed().as_secs_f64() * 1e3,
            "recovered"
        );
        if max_seq > crate::schema::row::MAX_VERSION {
            // The database numbers no commit past a row's version (`Database::sequence`).
            return Err(Error::Corrupt {
                file: dir.to_path_buf(),
                offset: 0,
                reason: format!("a commit numbered {max_seq}, beyond the last possible"),
            });
        }
        let wal = Wal::open(dir, next, empty_last.is_some(), carried, durability)?;
        if let Some(disc) = &disc_only {
            disc.attach_log(&wal);
        }
        let disk = Disk {
            dir: dir.to_path_buf(),
            wal,
            schema: Mutex::new(schema),
            pending: Mutex::new(pending),
            checkpointing: Mutex::new(()),
            disc_only: Mutex::new(disc_only),
            lock: Mutex::new(Some(lock)),
        };
        Ok((disk, max_seq))
    }

    /// Appends a commit touching disc tables and waits until it is as durable as the mode
    /// promises. Returns the commit's sequence number.
    pub(crate) fn log_commit(&self, next_seq: impl FnOnce() -> u64, ops: &[TableOps]) -> Result<u64> {
        let too_large = || Error::TooLarge {
            what: format!(
                "a commit larger than the log's limit of {} bytes encoded cannot be logged: split it \
                     (a table moved to disc_copies is logged as one commit)",
                frame::MAX_FRAME
            ),
        };
        // The encoding stops at the limit: a huge commit costs no more than that.
        let body = record::encode(ops)
            .map_err(|e| if matches!(e, Error::TooLarge { .. }) { too_large() } else { e })?;
        if body.len() + wal::RECORD_HEADER > frame::MAX_FRAME {
            return Err(too_large());
        }
        let appended = self.wal.append(next_seq, wal::RecordKind::Commit, &body);
        // Appended (or failed): a sync leader has nothing more to wait for from this thread.
        wal::withdraw();
        let (seq, lsn) = appended?;
        self.wal.commit(lsn)?;
        Ok(seq)
    }

    /// The file of the `disc_only_copies` tables, created on first use.
    pub(crate) fn disc_only(&self) -> Result<Arc<only::DiscOnly>> {
        let mut d = self.disc_only.lock();
        if let Some(d) = &*d {
            return Ok(Arc::clone(d));
        }
        let disc = Arc::new(only::DiscOnly::open(&self.dir)?);
        disc.attach_log(&self.wal);
        *d = Some(Arc::clone(&disc));
        Ok(disc)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.wal.is_closed()
    }

    /// Removes the disc-only records of a table the schema no longer names (the file's
    /// commit syncs the log first, so the schema change is durable before they go). What
    /// cannot be removed now is removed when the directory is next opened.
    pub(crate) fn drop_disc_only(&self, table: &str, id: u64) {
        if let Err(e) = self.disc_only().and_then(|d| d.drop_table(id)) {
            tracing::warn!(
                target: "mnesia::disk",
                table,
                error = %e,
                "the disc-only records of a table no longer in the schema could not be removed; the next open removes them"
            );
        }
    }

    /// Changes the schema: what changed (the tables removed, the definitions added or
    /// replaced: a `SchemaDelta`) is appended to the log, in its place among the commits,
    /// and synced. Under `Durability::Immediate` a failed sync drops the
    /// record (as it drops a commit) and the schema is unchanged; under the other modes the
    /// record is acknowledged once appended, as a commit is: a failed sync is the log's
    /// failure (reported by its health events), the record is written when the log works
    /// again, and a crash before that loses it. The schema file is written by checkpoints
    /// only. The caller holds the database's schema lock, as checkpoints do: a change of
    /// several steps (records logged under a new id, then the schema naming it) is never
    /// cut by a checkpoint.
    pub(crate) fn update_schema<R>(&self, f: impl FnOnce(&mut SchemaFile) -> R) -> Result<R> {
        // (The change itself compiled once, not once per caller's closure.)
        let (mut f, mut out) = (Some(f), None);
        self.change_schema(&mut |schema| out = f.take().map(|f| f(schema)))?;
        out.ok_or_else(|| Error::Internal("a schema change was not made".into()))
    }

    /// [`Disk::update_schema`], its closure called once.
    fn change_schema(&self, f: &mut dyn FnMut(&mut SchemaFile)) -> Result<()> {
        let mut s = self.schema.lock();
        if self.is_closed() {
            return Err(Error::Closed { what: format!("the database in {}", self.dir.display()) });
        }
        let mut next = s.clone();
        f(&mut next);
        if next != *s {
            // What changed, or the whole schema when a change cannot say it.
            let (kind, body) = match schema::SchemaDelta::between(&s, &next) {
                Some(delta) => (wal::RecordKind::SchemaChange, delta.encode()?),
                None => (wal::RecordKind::Schema, schema::encode(&next, false)?),
            };
            if body.len() + wal::RECORD_HEADER > frame::MAX_FRAME {
                return Err(Error::TooLarge {
                    what: format!(
                        "a schema change of {} bytes encoded, over the log's record limit",
                        body.len()
                    ),
                });
            }
            // (A schema record has no sequence number of its own: its place in the log
            // orders it.)
            let (_, lsn) = self.wal.append(|| 0, kind, &body)?;
            self.wal.commit(lsn)?;
            *s = next;
            if let Err(e) = self.wal.sync_to(lsn) {
                tracing::warn!(
                    target: "mnesia::disk",
                    dir = %self.dir.display(),
                    error = %e,
                    "a schema change was logged but not synced: it is written once the log works again"
                );
            }
        }
        Ok(())
    }

    /// Writes a checkpoint: a new log segment, a snapshot of every disc table in the schema
    /// (from `snapshot_of` for the tables in use, from the recovered rows for the others),
    /// the schema file, the checkpoint file, then removes the log segments the checkpoint
    /// covers. A no-op once closed. The caller holds the database's schema lock (see
    /// [`Disk::update_schema`]).
    pub(crate) fn checkpoint(
        &self,
        seq: u64,
        snapshot_of: impl FnMut(&TableDef) -> Option<Result<Snapshot>>,
    ) -> Result<()> {
        self.checkpoint_then(seq, snapshot_of, false)
    }

    /// A last checkpoint, then the directory is released: no more commits, and another
    /// process (or this one) may open it.
    pub(crate) fn close(
        &self,
        seq: u64,
        snapshot_of: impl FnMut(&TableDef) -> Option<Result<Snapshot>>,
    ) -> Result<()> {
        self.checkpoint_then(seq, snapshot_of, true)
    }

    fn checkpoint_then(
        &self,
        seq: u64,
        snapshot_of: impl FnMut(&TableDef) -> Option<Result<Snapshot>>,
        close: bool,
    ) -> Result<()> {
        let _one = self.checkpointing.lock();
        if self.is_closed() {
            return Ok(());
        }
        self.checkpoint_locked(seq, snapshot_of)?;
        if close {
            self.wal.close();
            if let Err(e) = self.wal.sync() {
                // Still open: the caller may free space and close again.
                self.wal.reopen();
                return Err(e);
            }
            if let Some(disc) = self.disc_only.lock().take() {
                disc.close();
            }
            self.lock.lock().take();
        }
        Ok(())
    }

    fn checkpoint_locked(
        &self,
        seq: u64,
        snapshot_of: impl FnMut(&TableDef) -> Option<Result<Snapshot>>,
    ) -> Result<()> {
        let count = self.wal.count_start();
        let done = self.checkpoint_rolled(seq, snapshot_of);
        if done.is_err() {
            // The log still counts from the last checkpoint that succeeded, so that the next
            // try comes as soon as it can succeed.
            self.wal.count_from(count);
        }
        done
    }

    fn checkpoint_rolled(
        &self,
        seq: u64,
        mut snapshot_of: impl FnMut(&TableDef) -> Option<Result<Snapshot>>,
    ) -> Result<()> {
        let started = std::time::Instant::now();
        let segment = self.wal.roll()?;
        // The schema as it is now, after the roll (the caller holds the database's schema
        // lock: no schema change is under way, so every table created with its records
        // logged is in it); every schema change after this is in the new segment, and
        // recovery applies them to this.
        let schema_now = self.schema.lock().clone();
        let defs: &[TableDef] = &schema_now.tables;
        let mut snapshots = Vec::with_capacity(defs.len());
        for def in defs {
            let snapshot = match snapshot_of(def) {
                Some(snapshot) => snapshot?,
                None => match self.pending.lock().get(&def.name).filter(|p| p.def.id == def.id) {
                    Some(p) => (p.counter, p.entries()),
                    None => {
                        return Err(Error::Invalid(format!(
                            "checkpoint skipped: table {} is changing; the next one will include it",
                            def.name
                        )));
                    }
                },
            };
            snapshots.push((def.id, snapshot));
        }
        // The snapshots may hold commits appended after the roll: those must be durable in
        // the log before any snapshot is (so what survives a crash is a prefix of the commit
        // order, also under relaxed durability).
        self.wal.sync()?;
        let mut tables = Vec::with_capacity(snapshots.len());
        for (id, (counter, entries)) in &snapshots {
            snapshot::write(&self.dir, *id, *counter, entries)?;
            tables.push(*id);
        }
        // The schema before the checkpoint file that replays from the new segment on: the
        // changes in the older segments are in it.
        schema::store(&self.dir, &schema_now)?;
        let cp = Checkpoint { segment, seq, tables };
        let bytes =
            serde_json::to_vec_pretty(&cp).map_err(|e| Error::codec("writing the checkpoint file", e))?;
        let cp_path = self.dir.join(CHECKPOINT);
        files::write_atomically(&cp_path, |f| f.write_all(&bytes))?;
        // The new checkpoint file (and the snapshots it names) durable before any segment
        // it replaces goes.
        files::sync_dir(&cp_path)?;
        self.wal.remove_before(segment)?;
        tracing::info!(
            target: "mnesia::checkpoint",
            dir = %self.dir.display(),
            seq,
            tables = snapshots.len(),
            took_ms = started.elapsed().as_secs_f64() * 1e3,
            "checkpoint written"
        );
        // Snapshots of tables no longer in the schema.
        for e in std::fs::read_dir(&self.dir).map_err(|e| io_error(&self.dir, e))?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let id = name
                .strip_prefix("table-")
                .and_then(|n| n.strip_suffix(".snap"))
                .and_then(|n| n.parse::<u64>().ok());
            if id.is_some_and(|id| !defs.iter().any(|d| d.id == id)) {
                let _ = std::fs::remove_file(e.path());
            }
        }
        Ok(())
    }
}

/// A table's auto-increment counter and its records, as a checkpoint writes them.
pub(crate) type Snapshot = (u64, Vec<SnapshotEntry>);

/// Entry points for fuzzing the decoders of files read from disc (`fuzz/`). Each takes any
/// bytes and must return (an error, usually), never panic.
#[doc(hidden)]
pub mod fuzzing {
    use std::path::Path;

    use super::frame::{self, Frames};
    use super::{record, snapshot, wal};

    /// Decodes `bytes` as a log segment and each record in it (a commit, a whole schema or a
    /// schema change).
    pub fn log_segment(bytes: &[u8]) {
        let path = Path::new("fuzz.wal");
        let Ok(frames) = Frames::parse(path, bytes.to_vec(), wal::KIND, wal::OLDEST_VERSION..=wal::VERSION)
        else {
            return;
        };
        for (offset, payload) in frames.iter() {
            let rec = wal::LogRecord {
                segment: 1,
                version: frames.version,
                file: path.to_path_buf(),
                offset,
                payload: payload.to_vec(),
            };
            if let Ok(super::LogEntry::Commit(_, ops)) = super::decode_record(&rec) {
                ops.iter().for_each(|op| drop(op.to_owned()));
            }
        }
    }

    /// Decodes the bytes after the first 0 byte as a record of the stored record format given
    /// as JSON before it (the schema file's form), and as a record of a fixed rich format.
    pub fn stored_record(bytes: &[u8]) {
        use super::format::{RecordFormat, decode};
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        enum Shape {
            Dot,
            Circle(f64),
            Pair(i16, char),
            Named { label: String, inner: Option<Box<Shape>> },
        }
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        struct Rich {
            id: u128,
            n: i64,
            f: f32,
            flag: bool,
            text: String,
            list: Vec<Option<u16>>,
            map: std::collections::BTreeMap<String, [u8; 3]>,
            shape: Shape,
        }
        if let Some(rich) = RecordFormat::of::<Rich>() {
            let _ = decode(bytes, &rich);
        }
        let (head, body) = match bytes.iter().position(|b| *b == 0) {
            Some(at) => (&bytes[..at], &bytes[at + 1..]),
            None => (bytes, &[][..]),
        };
        let Ok(stored) = serde_json::from_slice::<serde_json::Value>(head) else { return };
        if let Ok(format) = RecordFormat::from_stored(&stored) {
            let _ = decode(body, &format);
        }
    }

    /// Decodes `bytes` as a table snapshot.
    pub fn snapshot_file(bytes: &[u8]) {
        let path = Path::new("fuzz.snap");
        if let Ok(frames) =
            Frames::parse(path, bytes.to_vec(), snapshot::KIND, snapshot::VERSION..=snapshot::VERSION)
        {
            let _ = snapshot::parse(path, 1, frames);
        }
        let _ = postcard::from_bytes::<record::SnapshotEntry>(bytes);
        let _ = frame::magic(b"MNSSNP", 1);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::frame::{encode_frame, magic};
    use super::fuzzing;
    use super::record::{Logged, TableOps};

    /// A log segment of format `version` with three commits to table 1 (key `[1, seq]`).
    fn segment(version: u8) -> Vec<u8> {
        let mut b = magic(super::wal::KIND, version).to_vec();
        for seq in 1..4u64 {
            let ops = vec![TableOps {
                table: 1,
                clear: false,
                counter: seq,
                reset: false,
                writes: vec![(vec![1, seq as u8], Logged::Put(vec![3; 10]))],
            }];
            let mut payload = seq.to_le_bytes().to_vec();
            if version > 1 {
                payload.push(super::wal::RecordKind::Commit as u8);
            }
            payload.extend(postcard::to_allocvec(&ops).unwrap_or_default());
            encode_frame(&payload, &mut b);
        }
        if version >= 3 {
            // And a schema change (what the fuzzed decoders must read too).
            let old = super::schema::SchemaFile {
                format: super::schema::FORMAT,
                node: "n".into(),
                next_table_id: 1,
                tables: Vec::new(),
            };
            let mut new = old.clone();
            new.next_table_id = 2;
            new.tables.push(super::schema::TableDef::of::<crate::testing::Rec>(
                1,
                crate::schema::record::StorageType::DiscCopies,
                Vec::new(),
            ));
            let mut payload = 0u64.to_le_bytes().to_vec();
            payload.push(super::wal::RecordKind::SchemaChange as u8);
            let delta = super::schema::SchemaDelta::between(&old, &new).and_then(|d| d.encode().ok());
            payload.extend(delta.unwrap_or_default());
            encode_frame(&payload, &mut b);
        }
        b
    }

    fn valid_segment() -> Vec<u8> {
        segment(super::wal::VERSION)
    }

    #[test]
    fn a_log_of_the_first_format_is_replayed_and_schema_changes_follow_it_in_a_new_segment() {
        use super::schema::{self, TableDef};
        use super::{Disk, StorageType, wal::Durability};
        let dir = tempfile::tempdir().expect("tempdir");
        let table = TableDef::of::<crate::testing::Rec>(1, StorageType::DiscCopies, Vec::new());
        let file = schema::SchemaFile {
            format: schema::FORMAT,
            node: "local@localhost".into(),
            next_table_id: 2,
            tables: vec![table],
        };
        schema::store(dir.path(), &file).expect("schema");
        // A directory an older build wrote: its log segment holds commits without a kind.
        std::fs::write(dir.path().join(super::wal::segment_name(1)), segment(1)).expect("segment");
        let (disk, seq) = Disk::open(dir.path(), Durability::Immediate).expect("open");
        assert_eq!(seq, 3);
        {
            let pending = disk.pending.lock();
            let rec = pending.get("rec").expect("the table");
            assert_eq!((rec.rows.len(), rec.counter), (3, 3));
        }
        // A schema change goes to the new segment (of the current format), the schema file
        // untouched; the next open reads both segments.
        let id = disk.update_schema(|s| s.allocate_id()).expect("logged").expect("an id");
        disk.update_schema(|s| {
            s.tables[0].indexes.push(crate::schema::record::IndexInfo { field: "tag".into(), unique: false })
        })
        .expect("logged");
        assert_eq!(schema::load(dir.path()).expect("file"), file);
        drop(disk);
        let (disk, _) = Disk::open(dir.path(), Durability::Immediate).expect("open again");
        let now = disk.schema.lock().clone();
        assert_eq!((now.next_table_id, now.tables[0].indexes.len()), (id + 1, 1));
        assert_eq!(disk.pending.lock().get("rec").map(|p| p.rows.len()), Some(3));
    }

    /// A segment of format 2 holding a commit of table 1 and then a whole schema record.
    fn format_2_segment_with_a_whole_schema(schema: &super::schema::SchemaFile) -> Vec<u8> {
        let mut b = segment(2);
        let mut payload = 0u64.to_le_bytes().to_vec();
        payload.push(super::wal::RecordKind::Schema as u8);
        payload.extend(super::schema::encode(schema, false).unwrap_or_default());
        encode_frame(&payload, &mut b);
        b
    }

    #[test]
    fn schema_changes_fold_over_whole_schema_records_and_over_a_newer_schema_file() {
        use super::schema::{self, TableDef};
        use super::{Disk, StorageType, wal::Durability};
        let dir = tempfile::tempdir().expect("tempdir");
        let def = |id| TableDef::of::<crate::testing::Rec>(id, StorageType::DiscCopies, Vec::new());
        let file = schema::SchemaFile {
            format: schema::FORMAT,
            node: "a@h".into(),
            next_table_id: 2,
            tables: vec![def(1)],
        };
        schema::store(dir.path(), &file).expect("schema");
        // An older build's log: commits, then a change it logged as the whole schema.
        let mut whole = file.clone();
        whole.tables[0].version = 7;
        std::fs::write(
            dir.path().join(super::wal::segment_name(1)),
            format_2_segment_with_a_whole_schema(&whole),
        )
        .expect("segment");
        let (disk, _) = Disk::open(dir.path(), Durability::Immediate).expect("open");
        assert_eq!(*disk.schema.lock(), whole, "the whole record over the schema file");
        // Changes after it: deltas, a whole record (a change a delta cannot say), deltas.
        let added = disk.update_schema(|s| s.allocate_id()).expect("logged").expect("an id");
        disk.update_schema(|s| s.tables.push(def(added))).expect("logged");
        disk.update_schema(|s| s.node = "b@h".into()).expect("logged");
        disk.update_schema(|s| s.tables.retain(|t| t.id != 1)).expect("logged");
        disk.update_schema(|s| s.tables[0].version = 3).expect("logged");
        let last = disk.schema.lock().clone();
        assert_eq!((last.node.as_str(), last.tables.len(), last.tables[0].version), ("b@h", 1, 3));
        drop(disk);
        let (disk, _) = Disk::open(dir.path(), Durability::Immediate).expect("open again");
        assert_eq!(*disk.schema.lock(), last);
        drop(disk);
        // A checkpoint that crashed after writing the schema file, before its own: the same
        // log replayed over the newer file gives the same schema.
        schema::store(dir.path(), &last).expect("newer schema file");
        let (disk, _) = Disk::open(dir.path(), Durability::Immediate).expect("open over the newer file");
        assert_eq!(*disk.schema.lock(), last);
        drop(disk);
        assert_eq!(super::current_schema(dir.path()).expect("read by a tool"), last);
    }

    proptest! {
        /// The decoders of files read from disc never panic, on noise or on damaged files.
        #[test]
        fn decoders_never_panic(noise in proptest::collection::vec(any::<u8>(), 0..256), at in any::<usize>(), bit in 0u8..8) {
            fuzzing::log_segment(&noise);
            fuzzing::snapshot_file(&noise);
            fuzzing::stored_record(&noise);
            let mut stored = br#"{"root":{"SEQ":{"OPTION":"STR"}},"registry":{}}"#.to_vec();
            stored.push(0);
            stored.extend(&noise);
            fuzzing::stored_record(&stored);
            let mut seg = valid_segment();
            let i = at % seg.len();
            seg[i] ^= 1 << bit;
            fuzzing::log_segment(&seg);
            seg.truncate(at % (seg.len() + 1));
            fuzzing::log_segment(&seg);
        }
    }
}
