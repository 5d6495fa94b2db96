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
use std::sync::atomic::{AtomicUsize, Ordering};
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
    /// Bytes ever appended (the log position of the last append's end).
    appended: u64,
    /// Bytes known written to the file.
    written: u64,
    /// Bytes known synced to the disc.
    synced: u64,
    /// A leader is writing; the file is in its hands.
    flushing: bool,
    file: Option<File>,
    segment: u64,
    segment_bytes: u64,
    /// The next flush starts a new segment first (asked for by a checkpoint).
    roll_next: bool,
    /// The segment the last requested roll started.
    rolled_to: u64,
    /// `appended` when the last requested roll was asked for.
    appended_at_roll: u64,
    /// A write or sync failed: the log accepts nothing more (the data is safe up to
    /// `synced`, and what follows was never acknowledged).
    failed: Option<String>,
    /// Closed: no more appends.
    closed: bool,
}

/// The log of one database directory.
pub(crate) struct Wal {
    dir: PathBuf,
    durability: Durability,
    state: Mutex<State>,
    flushed: Condvar,
    /// Transactions that hold their commit locks and are about to append.
    committing: AtomicUsize,
}

/// Registers a transaction that may soon append to the log, so that a sync leader waits a
/// little for it; unregisters when dropped (it appended, or ended without appending).
pub(crate) struct Committing(Arc<Wal>);

impl Drop for Committing {
    fn drop(&mut self) {
        self.0.committing.fetch_sub(1, Ordering::AcqRel);
    }
}

thread_local! {
    /// The running transaction's registration (see [`Committing`]).
    static ANNOUNCED: std::cell::RefCell<Option<Committing>> = const { std::cell::RefCell::new(None) };
}

/// Registers the calling thread's transaction with `wal` until [`withdraw`] (or the next
/// `announce`).
pub(crate) fn announce(wal: &Arc<Wal>) {
    wal.committing.fetch_add(1, Ordering::AcqRel);
    let c = Committing(Arc::clone(wal));
    let _ = ANNOUNCED.try_with(|a| a.borrow_mut().replace(c));
}

/// Ends the calling thread's registration, if any.
pub(crate) fn withdraw() {
    let _ = ANNOUNCED.try_with(|a| a.borrow_mut().take());
}

impl Wal {
    /// Opens the log for appending, in a new segment numbered `segment`.
    pub(crate) fn open(dir: &Path, segment: u64, durability: Durability) -> Result<Arc<Wal>> {
        let file = create_segment(dir, segment)?;
        let wal = Arc::new(Wal {
            dir: dir.to_path_buf(),
            durability,
            state: Mutex::new(State {
                buffer: Vec::new(),
                appended: 0,
                written: 0,
                synced: 0,
                flushing: false,
                file: Some(file),
                segment,
                segment_bytes: 8,
                roll_next: false,
                rolled_to: segment,
                appended_at_roll: 0,
                failed: None,
                closed: false,
            }),
            flushed: Condvar::new(),
            committing: AtomicUsize::new(0),
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
        if s.closed {
            return Err(Error::Invalid(format!("the database in {} is closed", self.dir.display())));
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

    /// Writes everything appended so far, and syncs it unless the mode is `None`.
    pub(crate) fn flush(&self) -> Result<()> {
        let lsn = self.state.lock().appended;
        self.wait(lsn, self.durability != Durability::None)
    }

    /// Writes and syncs everything appended so far, whatever the mode (checkpoints, close).
    pub(crate) fn sync(&self) -> Result<()> {
        let lsn = self.state.lock().appended;
        self.wait(lsn, true)
    }

    /// No more appends; what was appended stays to be written by `sync`.
    pub(crate) fn close(&self) {
        self.state.lock().closed = true;
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.state.lock().closed
    }

    fn wait(&self, lsn: u64, sync: bool) -> Result<()> {
        let mut s = self.state.lock();
        loop {
            if (if sync { s.synced } else { s.written }) >= lsn {
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
                // Commits that are on their way to the log (see `Committing`) are worth the
                // wait; otherwise a few quiet rounds end it.
                if quiet >= 3 && self.committing.load(Ordering::Acquire) == 0 {
                    break;
                }
            }
            let bytes = std::mem::take(&mut s.buffer);
            let target = s.appended;
            let forced = s.roll_next;
            let roll = forced || s.segment_bytes >= SEGMENT_BYTES;
            s.roll_next = false;
            let mut file = s.file.take();
            let mut segment = s.segment;
            drop(s);
            let mut result = Ok(());
            if roll {
                match segment
                    .checked_add(1)
                    .ok_or_else(|| Error::Invalid("log segment numbers exhausted".into()))
                {
                    Ok(next) => match create_segment(&self.dir, next) {
                        Ok(f) => {
                            file = Some(f);
                            segment = next;
                        }
                        Err(e) => result = Err(e),
                    },
                    Err(e) => result = Err(e),
                }
            }
            let path = self.dir.join(segment_name(segment));
            if result.is_ok()
                && let Some(f) = file.as_mut()
            {
                if !bytes.is_empty() {
                    result = f.write_all(&bytes).map_err(|e| io_error(&path, e));
                }
                if result.is_ok() && sync {
                    result = f.sync_data().map_err(|e| io_error(&path, e));
                }
            }
            s = self.state.lock();
            s.flushing = false;
            s.file = file;
            if roll && result.is_ok() {
                s.segment = segment;
                s.segment_bytes = 8;
                if forced {
                    s.rolled_to = segment;
                }
            }
            s.segment_bytes += bytes.len() as u64;
            match &result {
                Ok(()) => {
                    s.written = s.written.max(target);
                    if sync {
                        s.synced = s.synced.max(target);
                    }
                }
                Err(e) => s.failed = Some(e.to_string()),
            }
            self.flushed.notify_all();
            result?;
        }
    }

    /// Starts a new segment: every record appended from now on goes to it or a later one
    /// (records appended just before may go there too). Returns its number. Everything
    /// appended before is synced.
    pub(crate) fn roll(&self) -> Result<u64> {
        let target = {
            let mut s = self.state.lock();
            s.roll_next = true;
            s.appended_at_roll = s.appended;
            s.appended
        };
        // The flush that writes `target` starts with the new segment.
        self.wait(target, true)?;
        let mut s = self.state.lock();
        while s.flushing {
            self.flushed.wait(&mut s);
        }
        if s.roll_next {
            // Nothing was waiting to be written: start the segment here.
            let next = s
                .segment
                .checked_add(1)
                .ok_or_else(|| Error::Invalid("log segment numbers exhausted".into()))?;
            match create_segment(&self.dir, next) {
                Ok(f) => {
                    s.file = Some(f);
                    s.segment = next;
                    s.segment_bytes = 8;
                    s.rolled_to = next;
                    s.roll_next = false;
                }
                Err(e) => {
                    s.failed = Some(e.to_string());
                    return Err(e);
                }
            }
        }
        Ok(s.rolled_to)
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

    /// Bytes appended since the last checkpoint's roll.
    pub(crate) fn bytes_since_roll(&self) -> u64 {
        let s = self.state.lock();
        s.appended - s.appended_at_roll
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

/// What the log holds from a checkpoint on.
pub(crate) struct LogContents {
    pub(crate) records: Vec<LogRecord>,
    /// Where the last segment's torn tail starts, to be cut once the records are applied.
    pub(crate) torn: Option<(PathBuf, u64)>,
    /// The number of the last segment.
    pub(crate) last: Option<u64>,
}

/// Reads the records of the segments from `first` on (`first` = 0: from the first segment
/// ever, numbered 1). The segments must follow one another without a gap; a torn tail is
/// allowed only at the end of the last one. Nothing is changed on disc.
pub(crate) fn read_from(dir: &Path, first: u64) -> Result<LogContents> {
    let kept: Vec<u64> = segments(dir)?.into_iter().filter(|n| *n >= first).collect();
    let expected_first = first.max(1);
    let mut records = Vec::new();
    let mut torn = None;
    for (i, n) in kept.iter().enumerate() {
        let path = dir.join(segment_name(*n));
        let expected = expected_first + i as u64;
        if *n != expected {
            return Err(Error::Corrupt {
                file: dir.join(segment_name(expected)),
                offset: 0,
                reason: "a log segment is missing: the log has a gap".into(),
            });
        }
        let frames = frame::read_frames(&path, KIND, VERSION)?;
        if let End::Torn(at) = frames.end {
            if i + 1 != kept.len() {
                return Err(Error::Corrupt {
                    file: path,
                    offset: at,
                    reason: "a record cut short before the last segment".into(),
                });
            }
            torn = Some((path.clone(), at));
        }
        records.extend(frames.iter().map(|(offset, payload)| LogRecord {
            file: path.clone(),
            offset,
            payload: payload.to_vec(),
        }));
    }
    if first > 0 && kept.first() != Some(&first) {
        return Err(Error::Corrupt {
            file: dir.join(segment_name(first)),
            offset: 0,
            reason: "the log segment the last checkpoint starts from is missing".into(),
        });
    }
    Ok(LogContents { records, torn, last: kept.last().copied() })
}

/// Cuts a torn tail off, so that the next recovery reads the same log.
pub(crate) fn cut_torn_tail(path: &Path, at: u64) -> Result<()> {
    if at < 8 {
        return frame::write_file_atomically(path, KIND, VERSION, &[]);
    }
    let f = OpenOptions::new().write(true).open(path).map_err(|e| io_error(path, e))?;
    f.set_len(at).and_then(|_| f.sync_all()).map_err(|e| io_error(path, e))
}
