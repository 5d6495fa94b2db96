//! The commit log: segment files of framed commit records, appended in commit order.
//!
//! Group commit: committers append their record to an in-memory buffer; the first one to
//! need it flushed becomes the leader, writes everything buffered so far and syncs it once,
//! while the others wait for that one sync. One fsync thus covers every commit that arrived
//! while the previous one ran.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use super::frame::{self, End, encode_frame_parts, io_error};
use crate::error::{Error, Result};

pub(crate) const KIND: &[u8; 6] = b"MNSWAL";
pub(crate) const VERSION: u8 = 1;
/// How many times a sync leader lets arriving commits join its sync.
const GATHER_ROUNDS: usize = 64;
/// A segment is closed and a new one started past this size.
const SEGMENT_BYTES: u64 = 64 << 20;

/// When a commit to a disc table is made durable.
///
/// ```
/// use std::time::Duration;
/// use mnesia::Durability;
/// assert_eq!(Durability::default(), Durability::Immediate);
/// let relaxed = Durability::Relaxed { interval: Duration::from_millis(100) };
/// assert_ne!(relaxed, Durability::None);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// The commit is written and synced to disc (fsync) before it returns, and before
    /// any other transaction can see it. Concurrent commits share one sync.
    #[default]
    Immediate,
    /// Commits return at once; the log is written and synced every `interval`. A crash loses
    /// at most the commits of the last `interval` (like Mnesia, which does not sync per
    /// commit). Recovered data is always a prefix of the commit order.
    Relaxed {
        /// How often the log is synced.
        interval: Duration,
    },
    /// Commits return at once; the log is written every 100 ms and synced only at
    /// checkpoints and on close. For data you can rebuild.
    None,
}

pub(crate) fn segment_name(n: u64) -> String {
    format!("{n:08}.wal")
}

/// Segment numbers present in `dir`, sorted.
pub(crate) fn segments(dir: &Path) -> Result<Vec<u64>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
        let e = e.map_err(|e| io_error(dir, e))?;
        let name = e.file_name();
        let name = name.to_string_lossy();
        if let Some(n) = name.strip_suffix(".wal").and_then(|n| n.parse::<u64>().ok()) {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

struct State {
    /// Whole frames appended and not yet written.
    buffer: Vec<u8>,
    /// Bytes ever appended (the log sequence number of the last append's end).
    appended: u64,
    /// Bytes known written (and synced, if the mode syncs).
    durable: u64,
    /// A leader is writing; the file is in its hands.
    flushing: bool,
    file: Option<File>,
    segment: u64,
    segment_bytes: u64,
    /// A write or sync failed: the log accepts nothing more (the data is safe up to
    /// `durable`, and what follows was never acknowledged).
    failed: Option<String>,
}

/// The log of one database directory.
pub(crate) struct Wal {
    dir: PathBuf,
    durability: Durability,
    state: Mutex<State>,
    flushed: Condvar,
}

impl Wal {
    /// Opens the log for appending, in a new segment after `last`.
    pub(crate) fn open(dir: &Path, last: Option<u64>, durability: Durability) -> Result<Arc<Wal>> {
        let segment = last.map_or(1, |n| n + 1);
        let file = create_segment(dir, segment)?;
        let wal = Arc::new(Wal {
            dir: dir.to_path_buf(),
            durability,
            state: Mutex::new(State {
                buffer: Vec::new(),
                appended: 0,
                durable: 0,
                flushing: false,
                file: Some(file),
                segment,
                segment_bytes: 8,
                failed: None,
            }),
            flushed: Condvar::new(),
        });
        let interval = match durability {
            Durability::Immediate => None,
            Durability::Relaxed { interval } => Some(interval),
            Durability::None => Some(Duration::from_millis(100)),
        };
        if let Some(interval) = interval {
            let weak = Arc::downgrade(&wal);
            std::thread::Builder::new()
                .name("mnesia-log-flusher".into())
                .spawn(move || {
                    while let Some(wal) = weak.upgrade() {
                        let _ = wal.flush();
                        drop(wal);
                        std::thread::sleep(interval);
                    }
                })
                .map_err(|e| io_error(dir, e))?;
        }
        Ok(wal)
    }

    /// Appends one commit record: its sequence number, taken from `next_seq` while the log
    /// is locked (so the log's order is the commit order), then `body`. Returns the sequence
    /// number and the log position to wait on.
    pub(crate) fn append(&self, next_seq: impl FnOnce() -> u64, body: &[u8]) -> Result<(u64, u64)> {
        let mut s = self.state.lock();
        if let Some(f) = &s.failed {
            return Err(Error::Invalid(format!(
                "the commit log failed earlier and accepts no more commits: {f}"
            )));
        }
        let seq = next_seq();
        let before = s.buffer.len();
        encode_frame_parts(&[&seq.to_le_bytes(), body], &mut s.buffer);
        s.appended += (s.buffer.len() - before) as u64;
        Ok((seq, s.appended))
    }

    /// Waits until the record ending at `lsn` is durable as the mode promises: written and
    /// synced for `Immediate`; nothing to wait for otherwise.
    pub(crate) fn commit(&self, lsn: u64) -> Result<()> {
        if self.durability == Durability::Immediate { self.wait(lsn, true) } else { Ok(()) }
    }

    /// Writes and syncs everything appended so far.
    pub(crate) fn flush(&self) -> Result<()> {
        let lsn = self.state.lock().appended;
        self.wait(lsn, self.durability != Durability::None)
    }

    /// Writes and syncs everything appended so far, whatever the mode (checkpoints, close).
    pub(crate) fn sync(&self) -> Result<()> {
        let lsn = self.state.lock().appended;
        self.wait(lsn, true)
    }

    fn wait(&self, lsn: u64, sync: bool) -> Result<()> {
        let mut s = self.state.lock();
        loop {
            if s.durable >= lsn {
                return Ok(());
            }
            if let Some(f) = &s.failed {
                return Err(Error::Invalid(format!("the commit log failed: {f}")));
            }
            if s.flushing {
                self.flushed.wait(&mut s);
                continue;
            }
            // Lead: take everything buffered, write it outside the lock, sync once. Before
            // taking the buffer, give the committers that are about to append (those the
            // previous sync just released) a moment: as long as appends keep arriving, the
            // sync waits a little for them, so that it carries them too.
            s.flushing = true;
            let mut quiet = 0;
            for _ in 0..GATHER_ROUNDS {
                let before = s.appended;
                drop(s);
                std::thread::yield_now();
                s = self.state.lock();
                quiet = if s.appended == before { quiet + 1 } else { 0 };
                if quiet == 2 {
                    break;
                }
            }
            let bytes = std::mem::take(&mut s.buffer);
            let target = s.appended;
            let roll = s.segment_bytes >= SEGMENT_BYTES;
            let mut file = s.file.take();
            let mut segment = s.segment;
            drop(s);
            let mut result = Ok(());
            if roll {
                segment += 1;
                match create_segment(&self.dir, segment) {
                    Ok(f) => file = Some(f),
                    Err(e) => result = Err(e),
                }
            }
            let path = self.dir.join(segment_name(segment));
            if result.is_ok()
                && let Some(f) = file.as_mut()
            {
                result = f.write_all(&bytes).map_err(|e| io_error(&path, e));
                if result.is_ok() && sync {
                    result = f.sync_data().map_err(|e| io_error(&path, e));
                }
            }
            s = self.state.lock();
            s.flushing = false;
            s.file = file;
            if roll {
                s.segment = segment;
                s.segment_bytes = 8;
            }
            s.segment_bytes += bytes.len() as u64;
            match &result {
                Ok(()) => s.durable = s.durable.max(target),
                Err(e) => s.failed = Some(e.to_string()),
            }
            self.flushed.notify_all();
            result?;
        }
    }

    /// Starts a new segment for the records appended from now on; returns its number. Every
    /// record appended before is written (not necessarily synced) to earlier segments.
    pub(crate) fn roll(&self) -> Result<u64> {
        self.sync()?;
        let mut s = self.state.lock();
        while s.flushing {
            self.flushed.wait(&mut s);
        }
        if !s.buffer.is_empty() {
            // Appended after the sync above: write it to the old segment first.
            let bytes = std::mem::take(&mut s.buffer);
            let path = self.dir.join(segment_name(s.segment));
            if let Some(f) = s.file.as_mut() {
                f.write_all(&bytes).and_then(|_| f.sync_data()).map_err(|e| io_error(&path, e))?;
            }
            s.durable = s.appended;
        }
        s.segment += 1;
        s.file = Some(create_segment(&self.dir, s.segment)?);
        s.segment_bytes = 8;
        Ok(s.segment)
    }

    /// Deletes the segments before `first_kept`.
    pub(crate) fn remove_before(&self, first_kept: u64) -> Result<()> {
        for n in segments(&self.dir)? {
            if n < first_kept {
                let p = self.dir.join(segment_name(n));
                std::fs::remove_file(&p).map_err(|e| io_error(&p, e))?;
            }
        }
        Ok(())
    }

    /// Bytes in the segment being appended to.
    pub(crate) fn current_segment_bytes(&self) -> u64 {
        let s = self.state.lock();
        s.segment_bytes + s.buffer.len() as u64
    }
}

fn create_segment(dir: &Path, n: u64) -> Result<File> {
    let path = dir.join(segment_name(n));
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&path)
        .map_err(|e| io_error(&path, e))?;
    f.write_all(&frame::magic(KIND, VERSION)).and_then(|_| f.sync_data()).map_err(|e| io_error(&path, e))?;
    frame::sync_dir(&path)?;
    Ok(f)
}

/// A record read back from the log, with where it was.
pub(crate) struct LogRecord {
    pub(crate) file: PathBuf,
    pub(crate) offset: u64,
    pub(crate) payload: Vec<u8>,
}

/// Reads the records of every segment from `first` on, in order. A torn tail is allowed only
/// at the end of the last segment, which is then cut there (so recovery can run again).
pub(crate) fn read_from(dir: &Path, first: u64) -> Result<(Vec<LogRecord>, Option<u64>)> {
    let all = segments(dir)?;
    let kept: Vec<u64> = all.iter().copied().filter(|n| *n >= first).collect();
    let mut records = Vec::new();
    for (i, n) in kept.iter().enumerate() {
        let path = dir.join(segment_name(*n));
        let frames = frame::read_frames(&path, KIND, VERSION)?;
        if let End::Torn(at) = frames.end {
            if i + 1 != kept.len() {
                return Err(Error::Corrupt {
                    file: path,
                    offset: at,
                    reason: "a record cut short before the last segment".into(),
                });
            }
            // Cut the torn record off, so that a second recovery reads the same log.
            if at < 8 {
                frame::write_file_atomically(&path, KIND, VERSION, &[])?;
            } else {
                let f = OpenOptions::new().write(true).open(&path).map_err(|e| io_error(&path, e))?;
                f.set_len(at).and_then(|_| f.sync_all()).map_err(|e| io_error(&path, e))?;
            }
        }
        records.extend(frames.iter().map(|(offset, payload)| LogRecord {
            file: path.clone(),
            offset,
            payload: payload.to_vec(),
        }));
    }
    Ok((records, all.last().copied()))
}
