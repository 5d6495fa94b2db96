//! Looking into a database directory without opening the database and without its Rust
//! types: what tables it holds and how many records, what the log and the last checkpoint
//! hold ([`Schema::inspect`]), and whether every file is sound ([`Schema::verify`]). The
//! `mnesia` command line is built on these.
//!
//! Both take the directory's lock, shared, while they read, so a database open in another
//! process is refused rather than read as a moving target, and nothing on disc is changed
//! (a torn log tail is reported, not cut; only a missing lock file is made, empty); a
//! program opening the database meanwhile waits for them (30 s at most).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::disk::record::TableOps;
use crate::disk::schema::{self, TableDef};
use crate::disk::{self, Pending, Rows, frame, only, snapshot, wal};
use crate::error::{Error, Result};
use crate::features::schema::Schema;
use crate::schema::record::{IndexInfo, StorageType, TableType};

/// What a database directory holds, read by [`Schema::inspect`].
///
/// ```
/// let dir = std::env::temp_dir().join(format!("mnesia-doc-inspect-{}", std::process::id()));
/// # let _ = mnesia::Schema::delete(&dir);
/// mnesia::Schema::create(&dir)?;
/// let info = mnesia::Schema::inspect(&dir)?;
/// assert!(info.tables.is_empty() && info.log.commits == 0 && info.checkpoint.is_none());
/// # mnesia::Schema::delete(&dir)?;
/// # Ok::<(), mnesia::Error>(())
/// ```
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct DirectoryInfo {
    /// The directory.
    pub directory: PathBuf,
    /// The tables of the schema, by name.
    pub tables: Vec<StoredTable>,
    /// The last checkpoint, if one ran.
    pub checkpoint: Option<CheckpointInfo>,
    /// The commit log from the last checkpoint on (what the next open replays).
    pub log: StoredLog,
    /// Things worth knowing about what this could not tell (the disc-only file left by a
    /// crash, not read until an open recovers it).
    pub notes: Vec<String>,
}

/// A table as a directory holds it (see [`DirectoryInfo`]).
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("mnesia-doc-stored-{}", std::process::id()));
/// # let _ = mnesia::Schema::delete(&dir);
/// # mnesia::Schema::create(&dir)?;
/// for t in mnesia::Schema::inspect(&dir)?.tables {
///     println!("{}: {} records in {} keys", t.name, t.records, t.keys);
/// }
/// # mnesia::Schema::delete(&dir)?;
/// # Ok::<(), mnesia::Error>(())
/// ```
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct StoredTable {
    /// The table's name.
    pub name: String,
    /// The table's id in the schema (new for every table created).
    pub id: u64,
    /// `set`, `ordered_set` or `bag`.
    pub table_type: TableType,
    /// Where its records live.
    pub storage: StorageType,
    /// Its fields and their Rust types, in order.
    pub fields: Vec<(String, String)>,
    /// The key field.
    pub key: String,
    /// Its secondary indexes.
    pub indexes: Vec<IndexInfo>,
    /// Whether the key is `#[auto_increment]`.
    pub auto_increment: bool,
    /// The highest auto-increment id handed out (0 without one).
    pub counter: u64,
    /// How many times the table was transformed to a new record type.
    pub version: u32,
    /// Keys stored.
    pub keys: u64,
    /// Records stored (a bag key holds several); expired records not yet removed count.
    pub records: u64,
    /// Whether `keys` and `records` were counted: not for a `disc_only_copies` table whose
    /// file a crash left to be recovered by the next open (see [`DirectoryInfo::notes`]).
    pub counted: bool,
    /// Bytes of the table's snapshot from the last checkpoint, if it has one.
    pub snapshot_bytes: Option<u64>,
    /// Commits in the log (from the last checkpoint on) that touch the table.
    pub log_commits: u64,
    /// Writes (puts and deletes) of the table in those commits.
    pub log_writes: u64,
}

/// The last checkpoint (see [`DirectoryInfo`]).
///
/// ```
/// let c = mnesia::CheckpointInfo { segment: 3, seq: 120, tables: 2 };
/// assert_eq!(c.segment, 3);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CheckpointInfo {
    /// The log segment replay starts from.
    pub segment: u64,
    /// The commit sequence number when it started.
    pub seq: u64,
    /// How many tables it wrote a snapshot of.
    pub tables: usize,
}

/// The commit log of a directory (see [`DirectoryInfo`]).
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("mnesia-doc-storedlog-{}", std::process::id()));
/// # let _ = mnesia::Schema::delete(&dir);
/// # mnesia::Schema::create(&dir)?;
/// let log = mnesia::Schema::inspect(&dir)?.log;
/// assert_eq!((log.commits, log.last_seq, log.torn_tail), (0, None, None));
/// # mnesia::Schema::delete(&dir)?;
/// # Ok::<(), mnesia::Error>(())
/// ```
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct StoredLog {
    /// The segments, in order.
    pub segments: Vec<SegmentInfo>,
    /// Commits in all of them.
    pub commits: u64,
    /// Bytes of all of them.
    pub bytes: u64,
    /// The sequence number of the last commit.
    pub last_seq: Option<u64>,
    /// Schema changes in all of them (tables created, dropped, moved or transformed,
    /// indexes added or removed).
    pub schema_changes: u64,
    /// Where the last segment's torn tail starts: a commit cut short by a crash, never
    /// acknowledged, which the next open cuts off.
    pub torn_tail: Option<u64>,
}

/// One log segment (see [`StoredLog`]).
///
/// ```
/// let s = mnesia::SegmentInfo { number: 1, file: "00000001.wal".into(), bytes: 8, commits: 0, first_seq: None, last_seq: None };
/// assert_eq!(s.commits, 0);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SegmentInfo {
    /// Its number.
    pub number: u64,
    /// Its file.
    pub file: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// The commits it holds.
    pub commits: u64,
    /// The first commit's sequence number.
    pub first_seq: Option<u64>,
    /// The last commit's sequence number.
    pub last_seq: Option<u64>,
}

/// What [`Schema::verify`] found.
///
/// ```
/// let dir = std::env::temp_dir().join(format!("mnesia-doc-verify-{}", std::process::id()));
/// # let _ = mnesia::Schema::delete(&dir);
/// mnesia::Schema::create(&dir)?;
/// let report = mnesia::Schema::verify(&dir)?;
/// assert!(report.is_sound(), "{:?}", report.damage);
/// # mnesia::Schema::delete(&dir)?;
/// # Ok::<(), mnesia::Error>(())
/// ```
#[derive(Clone, Debug, Default, Serialize)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Every file checked, with what it holds.
    pub checked: Vec<CheckedFile>,
    /// Every damage found: file, byte offset and what is wrong.
    pub damage: Vec<Damage>,
    /// Things worth knowing that are not damage (a torn log tail left by a crash).
    pub notes: Vec<String>,
}

impl VerifyReport {
    /// Whether no damage was found.
    ///
    /// ```
    /// assert!(mnesia::VerifyReport::default().is_sound());
    /// ```
    pub fn is_sound(&self) -> bool {
        self.damage.is_empty()
    }
}

/// A file [`Schema::verify`] read whole.
///
/// ```
/// let f = mnesia::CheckedFile { file: "schema.json".into(), holds: "2 tables".into() };
/// assert_eq!(f.holds, "2 tables");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CheckedFile {
    /// The file.
    pub file: PathBuf,
    /// What it holds, in words.
    pub holds: String,
}

/// Damage [`Schema::verify`] found.
///
/// ```
/// let d = mnesia::Damage { file: "00000001.wal".into(), offset: 8, reason: "bad checksum".into() };
/// assert_eq!(d.to_string(), "00000001.wal at byte 8: bad checksum");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Damage {
    /// The damaged file.
    pub file: PathBuf,
    /// Where in it, in bytes.
    pub offset: u64,
    /// What is wrong.
    pub reason: String,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}: {}", self.file.display(), self.offset, self.reason)
    }
}

impl Damage {
    /// The damage an error describes (a file error without an offset is at byte 0).
    fn of(file: &Path, e: Error) -> Damage {
        match e {
            Error::Corrupt { file, offset, reason } => Damage { file, offset, reason },
            Error::UnsupportedFormat { file, found, supported } => Damage {
                file,
                offset: 0,
                reason: format!("format version {found}; this build reads version {supported}"),
            },
            Error::Io { path, source } => Damage { file: path, offset: 0, reason: source.to_string() },
            other => Damage { file: file.to_path_buf(), offset: 0, reason: other.to_string() },
        }
    }
}

impl Schema {
    /// What the database directory `dir` holds: its tables with their definitions and
    /// record counts, the last checkpoint and the log, read without opening the database
    /// and without its Rust types. Refused while a process has the database open; changes
    /// nothing on disc. Fails on the first damaged file ([`Schema::verify`] lists them all).
    ///
    /// ```
    /// use mnesia::prelude::*;
    /// #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// struct Item { #[key] id: u32 }
    ///
    /// let dir = std::env::temp_dir().join(format!("mnesia-doc-inspect2-{}", std::process::id()));
    /// # let _ = mnesia::Schema::delete(&dir);
    /// mnesia::Schema::create(&dir)?;
    /// let db = mnesia::Database::open(mnesia::Config::default().dir(&dir))?;
    /// db.scope(|| {
    ///     Item::create_table(TableOptions::new().disc_copies(["local@localhost"]))?;
    ///     Item::write(Item { id: 1 })
    /// })?;
    /// db.close()?;
    /// drop(db);
    /// let info = mnesia::Schema::inspect(&dir)?;
    /// assert_eq!((info.tables[0].name.as_str(), info.tables[0].records), ("item", 1));
    /// println!("{} commits to replay since the last checkpoint", info.log.commits);
    /// # mnesia::Schema::delete(&dir)?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn inspect(dir: impl AsRef<Path>) -> Result<DirectoryInfo> {
        let dir = dir.as_ref();
        schema::load(dir)?; // "no schema here" before taking the lock
        let _lock = disk::lock_dir_shared(dir)?;
        let read = Recovered::read(dir)?;
        let disc_only = read.disc_only_counts(dir)?;
        let mut notes = Vec::new();
        if disc_only.is_none() {
            notes.push(format!(
                "{} was not closed cleanly (a crash): its tables' keys and records are not counted until an open \
                 (the program, or `mnesia checkpoint`) recovers it",
                dir.join(only::FILE).display()
            ));
        }
        let mut segments = read.segments;
        for n in wal::segments(dir)?.into_iter().filter(|n| *n >= read.checkpoint.segment) {
            let file = dir.join(wal::segment_name(n));
            let at = segments.binary_search_by_key(&n, |s| s.number).unwrap_or_else(|at| {
                let empty = SegmentInfo {
                    number: n,
                    file: file.clone(),
                    bytes: 0,
                    commits: 0,
                    first_seq: None,
                    last_seq: None,
                };
                segments.insert(at, empty);
                at
            });
            segments[at].bytes =
                std::fs::metadata(&file).map_err(|e| crate::disk::files::io_error(&file, e))?.len();
        }
        let mut tables: Vec<StoredTable> = read
            .tables
            .into_iter()
            .map(|p| {
                let counts = match p.def.storage {
                    StorageType::DiscOnlyCopies => {
                        disc_only.as_ref().map(|c| c.get(&p.def.id).copied().unwrap_or((0, 0)))
                    }
                    _ => Some((p.rows.len() as u64, p.info().size as u64)),
                };
                let log = read.log_counts.get(&p.def.id).copied().unwrap_or((0, 0));
                let snapshot = read.snapshot_bytes.get(&p.def.id).copied();
                stored_table(p.def, p.counter, counts, snapshot, log)
            })
            .collect();
        // By name: the schema keeps them by id, where a table moved or transformed comes last.
        tables.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(DirectoryInfo {
            directory: dir.to_path_buf(),
            tables,
            checkpoint: read.has_checkpoint.then_some(CheckpointInfo {
                segment: read.checkpoint.segment,
                seq: read.checkpoint.seq,
                tables: read.checkpoint.tables.len(),
            }),
            log: StoredLog {
                commits: segments.iter().map(|s| s.commits).sum(),
                bytes: segments.iter().map(|s| s.bytes).sum(),
                segments,
                last_seq: read.last_seq,
                schema_changes: read.schema_changes,
                torn_tail: read.torn_tail,
            },
            notes,
        })
    }

    /// Checks every file of the database directory `dir`: the schema, the checkpoint, every
    /// log segment (each commit decoded), every snapshot and the `disc_only_copies` file
    /// (each value decoded). Lists all damage found, each with its file and byte offset;
    /// `Err` only when the directory cannot be read at all (no schema, open in another
    /// process). Changes nothing on disc.
    ///
    /// ```
    /// let dir = std::env::temp_dir().join(format!("mnesia-doc-verify2-{}", std::process::id()));
    /// # let _ = mnesia::Schema::delete(&dir);
    /// mnesia::Schema::create(&dir)?;
    /// std::fs::write(dir.join("00000001.wal"), b"not a log").expect("write");
    /// let report = mnesia::Schema::verify(&dir)?;
    /// assert!(!report.is_sound());
    /// assert!(report.damage[0].file.ends_with("00000001.wal"));
    /// # mnesia::Schema::delete(&dir)?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn verify(dir: impl AsRef<Path>) -> Result<VerifyReport> {
        let dir = dir.as_ref();
        let schema_path = schema::path(dir);
        if !schema_path.exists() {
            return Err(Error::NoSchema { dir: dir.to_path_buf() });
        }
        let _lock = disk::lock_dir_shared(dir)?;
        let mut report = VerifyReport::default();
        let tables: Vec<TableDef> = match schema::load(dir) {
            Ok(s) => {
                report.checked.push(CheckedFile {
                    file: schema_path,
                    holds: format!(
                        "{} as of the last checkpoint (the log holds the schema changes since)",
                        count(s.tables.len(), "table")
                    ),
                });
                s.tables
            }
            Err(e) => {
                report.damage.push(Damage::of(&schema_path, e));
                Vec::new()
            }
        };
        let checkpoint_path = dir.join(disk::CHECKPOINT);
        let checkpoint = match disk::read_checkpoint(dir) {
            Ok(c) => {
                if checkpoint_path.exists() {
                    report.checked.push(CheckedFile {
                        file: checkpoint_path.clone(),
                        holds: format!(
                            "replay from segment {}, {}",
                            c.segment,
                            count(c.tables.len(), "snapshot")
                        ),
                    });
                }
                Some(c)
            }
            Err(e) => {
                report.damage.push(Damage::of(&checkpoint_path, e));
                None
            }
        };
        verify_log(dir, checkpoint.as_ref().map_or(0, |c| c.segment), &mut report)?;
        if let Err(e) = disk::check_checkpoint_kept(dir, !wal::segments(dir)?.is_empty()) {
            report.damage.push(Damage::of(&checkpoint_path, e));
        }
        for id in checkpoint.iter().flat_map(|c| &c.tables) {
            let path = snapshot::path(dir, *id);
            match snapshot::read(dir, *id) {
                Ok((_, entries)) => {
                    let table = tables.iter().find(|t| t.id == *id);
                    let name = table.map_or("a dropped table", |t| t.name.as_str());
                    let elsewhere = if table.is_some_and(|t| t.storage == StorageType::DiscOnlyCopies) {
                        " (a disc_only_copies table: its records are in the disc-only file)"
                    } else {
                        ""
                    };
                    report.checked.push(CheckedFile {
                        file: path,
                        holds: format!("{} of {name}{elsewhere}", count(entries.len(), "key")),
                    });
                }
                Err(e) => report.damage.push(Damage::of(&path, e)),
            }
        }
        let disc_only_path = dir.join(only::FILE);
        match only::ReadOnly::open(dir).and_then(|f| match f {
            only::Opened::File(f) => f.census().map(Some),
            only::Opened::Missing => Ok(None),
            only::Opened::NeedsRecovery(path) => {
                report.notes.push(format!(
                    "{} was not closed cleanly (a crash): the next open repairs it and replays the log into it; its contents were not checked",
                    path.display()
                ));
                Ok(None)
            }
        }) {
            Ok(Some(census)) => report.checked.push(CheckedFile {
                file: disc_only_path,
                holds: format!(
                    "{} in {}",
                    count(census.values().map(|(k, _)| *k as usize).sum::<usize>(), "key"),
                    count(census.len(), "table")
                ),
            }),
            Ok(None) => {}
            Err(e) => report.damage.push(Damage::of(&disc_only_path, e)),
        }
        Ok(report)
    }
}

/// A directory's disc tables as recovery would rebuild them (snapshots, then the log
/// replayed), and what the log holds, read without changing anything.
pub(crate) struct Recovered {
    pub(crate) tables: Vec<Pending>,
    has_checkpoint: bool,
    checkpoint: disk::Checkpoint,
    snapshot_bytes: HashMap<u64, u64>,
    /// Per table id: commits and writes in the log.
    log_counts: HashMap<u64, (u64, u64)>,
    segments: Vec<SegmentInfo>,
    last_seq: Option<u64>,
    schema_changes: u64,
    torn_tail: Option<u64>,
    /// Per disc-only table id, its commits in the log since the checkpoint: the file may
    /// not hold them yet (it is written without syncing; the log is what is durable).
    disc_only_log: HashMap<u64, Vec<(u64, TableOps)>>,
}

impl Recovered {
    /// Reads `dir` (its lock held by the caller).
    pub(crate) fn read(dir: &Path) -> Result<Recovered> {
        let has_checkpoint = dir.join(disk::CHECKPOINT).exists();
        let checkpoint = disk::read_checkpoint(dir)?;
        let contents = wal::read_from(dir, checkpoint.segment)?;
        disk::check_checkpoint_kept(dir, contents.last.is_some())?;
        // The schema file as the last checkpoint wrote it, with the changes logged since.
        let schema = disk::logged_schema(&contents, || schema::load(dir))?;
        let mut tables: Vec<Pending> = schema
            .tables
            .iter()
            .map(|d| Pending { def: d.clone(), rows: Rows::default(), counter: 0 })
            .collect();
        let mut snapshot_bytes = HashMap::new();
        for p in &mut tables {
            if checkpoint.tables.contains(&p.def.id) {
                let (counter, entries) = snapshot::read(dir, p.def.id)?;
                p.counter = counter;
                p.rows.extend(entries.into_iter().map(|e| (e.key, (e.version, e.value))));
                let path = snapshot::path(dir, p.def.id);
                let bytes =
                    std::fs::metadata(&path).map_err(|e| crate::disk::files::io_error(&path, e))?.len();
                snapshot_bytes.insert(p.def.id, bytes);
            }
        }
        let by_id: HashMap<u64, usize> = tables.iter().enumerate().map(|(i, p)| (p.def.id, i)).collect();
        let mut log_counts: HashMap<u64, (u64, u64)> = HashMap::new();
        let mut segments: Vec<SegmentInfo> = Vec::new();
        let mut last_seq = None;
        let mut schema_changes = 0;
        let mut disc_only_log: HashMap<u64, Vec<(u64, TableOps)>> = HashMap::new();
        for rec in &contents.records {
            let Some((seq, ops)) = disk::decode_commit(rec)? else {
                schema_changes += 1;
                continue;
            };
            last_seq = Some(seq);
            segment_entry(&mut segments, rec.segment, &rec.file, seq);
            for op in &ops {
                let counts = log_counts.entry(op.table).or_default();
                counts.0 += 1;
                counts.1 += op.writes.len() as u64;
                let Some(&i) = by_id.get(&op.table) else { continue };
                let p = &mut tables[i];
                if p.def.storage == StorageType::DiscOnlyCopies {
                    // Its records are in its file; only the counter is kept here.
                    p.counter = if op.reset { op.counter } else { p.counter.max(op.counter) };
                    disc_only_log.entry(op.table).or_default().push((seq, op.to_owned()));
                } else {
                    p.apply(seq, op);
                }
            }
        }
        Ok(Recovered {
            tables,
            has_checkpoint,
            checkpoint,
            snapshot_bytes,
            log_counts,
            segments,
            last_seq,
            schema_changes,
            torn_tail: contents.torn.map(|(_, at)| at),
            disc_only_log,
        })
    }

    /// The disc-only file, opened read-only; an error saying what to do if it needs the
    /// recovery only the database's open performs.
    fn disc_only_file(dir: &Path) -> Result<Option<only::ReadOnly>> {
        match only::ReadOnly::open(dir)? {
            only::Opened::Missing => Ok(None),
            only::Opened::File(f) => Ok(Some(f)),
            only::Opened::NeedsRecovery(path) => Err(Error::Invalid(format!(
                "{} was not closed cleanly (a crash): open the database once (the program, or `mnesia checkpoint`) so that it recovers, then look again",
                path.display()
            ))),
        }
    }

    /// Per disc-only table id, its keys and records: the file's, with the log's commits
    /// since the checkpoint laid over them.
    /// `None`: the file was not closed cleanly, and is not read until an open recovers it.
    pub(crate) fn disc_only_counts(&self, dir: &Path) -> Result<Option<HashMap<u64, (u64, u64)>>> {
        if !self.tables.iter().any(|p| p.def.storage == StorageType::DiscOnlyCopies) {
            return Ok(Some(HashMap::new()));
        }
        let file = match only::ReadOnly::open(dir)? {
            only::Opened::Missing => return Ok(Some(HashMap::new())),
            only::Opened::File(f) => f,
            only::Opened::NeedsRecovery(_) => return Ok(None),
        };
        let mut counts = file.census()?;
        for (id, ops) in &self.disc_only_log {
            if ops.iter().any(|(_, op)| op.clear) {
                // A clear is rare: the table's rows are read whole.
                let rows = self.disc_only_rows_in(&file, *id)?;
                counts.insert(*id, (rows.len() as u64, rows.values().map(|(_, v)| v.records()).sum()));
                continue;
            }
            let (mut keys, mut records) = counts.get(id).copied().unwrap_or((0, 0));
            // Each key the log writes: its version and record count as of the last write seen.
            let mut seen: HashMap<&[u8], (u64, u64)> = HashMap::new();
            for (seq, op) in ops {
                for (key, value) in &op.writes {
                    let (version, had) = match seen.get(key.as_slice()) {
                        Some(v) => *v,
                        None => file.get(*id, key)?.map_or((0, 0), |(v, l)| (v, l.records())),
                    };
                    if version >= *seq {
                        continue;
                    }
                    let has = value.records();
                    keys = keys - u64::from(had > 0) + u64::from(has > 0);
                    records = records - had + has;
                    seen.insert(key, (*seq, has));
                }
            }
            counts.insert(*id, (keys, records));
        }
        Ok(Some(counts))
    }

    /// A disc-only table's rows: the file's, with the log's commits laid over them.
    pub(crate) fn disc_only_rows(&self, dir: &Path, id: u64) -> Result<Rows> {
        match Recovered::disc_only_file(dir)? {
            Some(file) => self.disc_only_rows_in(&file, id),
            None => {
                let mut rows = Rows::default();
                for (seq, op) in self.disc_only_log.get(&id).into_iter().flatten() {
                    disk::replay(&mut rows, *seq, &op.as_ref());
                }
                Ok(rows)
            }
        }
    }

    fn disc_only_rows_in(&self, file: &only::ReadOnly, id: u64) -> Result<Rows> {
        let mut rows = file.rows(id)?;
        for (seq, op) in self.disc_only_log.get(&id).into_iter().flatten() {
            disk::replay(&mut rows, *seq, &op.as_ref());
        }
        Ok(rows)
    }
}

/// Checks every log segment: numbered without a gap from the first one kept, each frame
/// whole and each commit decoded; a torn tail is allowed only at the end of the last one.
fn verify_log(dir: &Path, from: u64, report: &mut VerifyReport) -> Result<()> {
    let numbers = wal::segments(dir)?;
    if from > 0 && !numbers.contains(&from) {
        report.damage.push(Damage {
            file: dir.join(wal::segment_name(from)),
            offset: 0,
            reason: "the log segment the last checkpoint starts from is missing".into(),
        });
    }
    if from == 0
        && let Some(&first) = numbers.first()
        && first > 1
    {
        // Only a checkpoint removes segments, and it leaves its file first.
        report.damage.push(Damage {
            file: dir.join(wal::segment_name(1)),
            offset: 0,
            reason: format!(
                "missing: the log starts at segment {first}, and no checkpoint says where replay starts"
            ),
        });
    }
    for (i, n) in numbers.iter().enumerate() {
        let path = dir.join(wal::segment_name(*n));
        if i > 0 && numbers[i - 1] + 1 != *n {
            report.damage.push(Damage {
                file: dir.join(wal::segment_name(numbers[i - 1] + 1)),
                offset: 0,
                reason: "a log segment is missing: the log has a gap".into(),
            });
        }
        let frames = match frame::read_frames(&path, wal::KIND, wal::OLDEST_VERSION..=wal::VERSION) {
            Ok(f) => f,
            Err(e) => {
                report.damage.push(Damage::of(&path, e));
                continue;
            }
        };
        let mut commits = 0;
        let mut changes = 0;
        let mut bad = false;
        for (offset, payload) in frames.iter() {
            let rec = wal::LogRecord {
                segment: *n,
                version: frames.version,
                file: path.clone(),
                offset,
                payload: payload.to_vec(),
            };
            match disk::decode_record(&rec) {
                Ok(disk::LogEntry::Commit(..)) => commits += 1,
                Ok(disk::LogEntry::Schema) => changes += 1,
                Err(e) => {
                    report.damage.push(Damage::of(&path, e));
                    bad = true;
                    break;
                }
            }
        }
        if let frame::End::Torn(at) = frames.end {
            if i + 1 == numbers.len() {
                report.notes.push(format!(
                    "{} ends in a commit cut short at byte {at} (a crash; never acknowledged): the next open cuts it off",
                    path.display()
                ));
            } else {
                report.damage.push(Damage {
                    file: path.clone(),
                    offset: at,
                    reason: wal::DAMAGED_BEFORE_THE_END.into(),
                });
                bad = true;
            }
        }
        if !bad {
            let kept = if *n < from { " (before the last checkpoint: not replayed)" } else { "" };
            let changes =
                if changes > 0 { format!(", {}", count(changes, "schema change")) } else { String::new() };
            report.checked.push(CheckedFile {
                file: path,
                holds: format!("{}{changes}{kept}", count(commits, "commit")),
            });
        }
    }
    Ok(())
}

/// `n thing` or `n things`.
fn count(n: usize, thing: &str) -> String {
    if n == 1 { format!("1 {thing}") } else { format!("{n} {thing}s") }
}

/// Counts a commit in its segment's entry (segments come in order).
fn segment_entry(segments: &mut Vec<SegmentInfo>, number: u64, file: &Path, seq: u64) {
    if segments.last().is_none_or(|s| s.number != number) {
        segments.push(SegmentInfo {
            number,
            file: file.to_path_buf(),
            bytes: 0,
            commits: 0,
            first_seq: Some(seq),
            last_seq: None,
        });
    }
    if let Some(s) = segments.last_mut() {
        s.commits += 1;
        s.last_seq = Some(seq);
    }
}

/// `counts`: keys and records, if counted; `log`: commits and writes in the log.
fn stored_table(
    def: TableDef,
    counter: u64,
    counts: Option<(u64, u64)>,
    snapshot_bytes: Option<u64>,
    (log_commits, log_writes): (u64, u64),
) -> StoredTable {
    let (keys, records) = counts.unwrap_or((0, 0));
    StoredTable {
        key: def.key_name().to_owned(),
        name: def.name,
        id: def.id,
        table_type: def.table_type,
        storage: def.storage,
        fields: def.attributes,
        indexes: def.indexes,
        auto_increment: def.auto_increment,
        counter,
        version: def.version,
        keys,
        records,
        counted: counts.is_some(),
        snapshot_bytes,
        log_commits,
        log_writes,
    }
}
