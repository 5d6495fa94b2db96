//! The commit log: segment files of framed commit records, appended in commit order.
//!
//! Group commit: committers append their record to an in-memory buffer; the first one to
//! need it flushed becomes the leader, writes everything buffered so far and syncs it once,
//! while the others wait for that one sync. One fsync thus covers every commit that arrived
//! while the previous one ran.

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use super::files::{self, DiscFile, io_error};
use super::frame::{self, End, encode_frame_parts};
use crate::error::{Error, Result};

pub(crate) const KIND: &[u8; 6] = b"MNSWAL";
/// The format written: each record is `[sequence number: u64 LE][kind: u8][body]` (see
/// [`RecordKind`]). Version 2 held no schema changes (`RecordKind::SchemaChange`).
pub(crate) const VERSION: u8 = 3;
/// The oldest format read: version 1 segments hold commits only, `[sequence number][body]`.
pub(crate) const OLDEST_VERSION: u8 = 1;

/// Why a segment before the last is refused when it does not end in a whole record: a
/// crash cuts only the log's end short, so the record there is damaged (or the segment was
/// cut).
pub(crate) const DAMAGED_BEFORE_THE_END: &str = "a damaged record (one that does not read whole) in a segment before the last: only the log's end is ever cut short by a crash";

/// The bytes a record's payload has before its body: the sequence number and the kind.
pub(crate) const RECORD_HEADER: usize = 9;

/// What a log record holds (the byte after its sequence number, from format version 2 on).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum RecordKind {
    /// A commit: its table parts, postcard-encoded.
    Commit = 0,
    /// The whole schema after a change, as `schema.json` keeps it (JSON); its sequence
    /// number is 0 (its place in the log orders it).
    Schema = 1,
    /// A schema change: what it removed and what it added or replaced (a `SchemaDelta`,
    /// JSON), applied to the schema before it; sequence number 0.
    SchemaChange = 2,
}
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
    /// checkpoints, on close and whenever 8 MiB are written but not synced (what a failed
    /// write must write again from memory). For data you can rebuild.
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

/// The segment being appended to. While a flush runs, the flush holds it.
struct Segment {
    file: DiscFile,
    number: u64,
    /// Bytes written to the file (the magic included).
    bytes: u64,
    /// Bytes of the file known durable: a failed write or sync cuts the file back to this.
    synced_bytes: u64,
}

/// A write or sync of the log that failed, until a later flush repairs the log.
#[derive(Clone, Debug)]
struct Fault {
    path: PathBuf,
    kind: io::ErrorKind,
    message: String,
}

impl Fault {
    fn of(e: &Error) -> Fault {
        match e {
            Error::Io { path, source } => {
                Fault { path: path.clone(), kind: source.kind(), message: source.to_string() }
            }
            other => Fault { path: PathBuf::new(), kind: io::ErrorKind::Other, message: other.to_string() },
        }
    }

    fn io(&self) -> io::Error {
        io::Error::new(self.kind, self.message.clone())
    }
}

/// What the log tells about its health (as system events).
#[derive(Clone, Debug)]
pub(crate) enum Health {
    /// A write or sync failed: commits fail (or, under relaxed durability, are held in
    /// memory) until a later flush repairs the log.
    Failed { kind: io::ErrorKind, reason: String },
    /// The log was repaired: what it holds is durable again.
    Recovered,
}

struct State {
    /// Whole frames appended and not yet taken by a flush.
    buffer: Vec<u8>,
    /// Bytes ever appended (the log position of the last append's end).
    appended: u64,
    /// Bytes ever taken by a flush.
    taken: u64,
    /// Bytes known written to the file.
    written: u64,
    /// Bytes known synced to the disc.
    synced: u64,
    /// A leader is writing; the segment is in its hands.
    flushing: bool,
    segment: Option<Segment>,
    /// Batches written to the segment past its last good sync. Under `Relaxed` and `None`
    /// they were acknowledged: after a failed write or sync they are written again (the
    /// bytes in the file are never trusted after a failed sync).
    unsynced: Vec<Vec<u8>>,
    unsynced_bytes: usize,
    /// The next flush starts a new segment first (asked for by a checkpoint).
    roll_next: bool,
    /// Rolls asked for so far; the last one a flush carried out, and the last one whose
    /// flush failed before the new segment existed.
    rolls_asked: u64,
    rolls_done: u64,
    rolls_failed: u64,
    /// The segment the last requested roll started.
    rolled_to: u64,
    /// `appended` when the last requested roll was asked for.
    appended_at_roll: u64,
    /// Log bytes the directory held since its last checkpoint when it was opened (until
    /// the first roll).
    carried: u64,
    /// The last flush failed: the next one repairs the segment first.
    fault: Option<Fault>,
    /// Log positions of batches that failed under `Immediate`: their commits were refused
    /// and their bytes dropped. Adjacent ranges are merged (a full disc fails batch after
    /// batch: one range), and the last [`DROPPED_KEPT`] kept: a waiter is woken as soon as
    /// the flush that carried it ends, long before thousands of failures alternate with
    /// successes.
    dropped: VecDeque<(u64, u64)>,
    /// Closed: no more appends.
    closed: bool,
}

impl State {
    fn dropped(&self, lsn: u64) -> bool {
        self.dropped.iter().any(|(from, to)| *from < lsn && lsn <= *to)
    }

    fn drop_batch(&mut self, from: u64, to: u64) {
        match self.dropped.back_mut() {
            Some(last) if last.1 == from => last.1 = to,
            _ => {
                if self.dropped.len() == DROPPED_KEPT {
                    self.dropped.pop_front();
                }
                self.dropped.push_back((from, to));
            }
        }
    }
}

/// How many failed batch ranges the log remembers.
const DROPPED_KEPT: usize = 4096;
/// Under `None`, a flush also syncs once this much is written but not synced, which bounds
/// what a failed write must write again from memory.
const UNSYNCED_AT_MOST: usize = 8 << 20;

/// The log of one database directory.
pub(crate) struct Wal {
    dir: PathBuf,
    durability: Durability,
    state: Mutex<State>,
    flushed: Condvar,
    /// Transactions that hold their commit locks and are about to append.
    committing: AtomicUsize,
    /// Told when the log fails and when it recovers.
    health: std::sync::OnceLock<Box<dyn Fn(Health) + Send + Sync>>,
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

/// What one flush does, decided under the lock and carried out without it.
struct Pass {
    batch: Vec<u8>,
    /// Cut the segment back to its last good sync and write `unsynced` again first.
    repair: bool,
    unsynced: Vec<Vec<u8>>,
    roll: bool,
    sync: bool,
}

impl Wal {
    /// Opens the log for appending, in segment `segment`: a new one, or (`reuse`) the
    /// existing last one, which holds nothing but its header of the current format (an
    /// open that wrote nothing leaves no empty segment behind for the next). `carried`: the
    /// bytes of log the directory held since its last checkpoint, which count towards the
    /// next one as if appended now.
    pub(crate) fn open(
        dir: &Path,
        segment: u64,
        reuse: bool,
        carried: u64,
        durability: Durability,
    ) -> Result<Arc<Wal>> {
        let file = if reuse {
            let path = dir.join(segment_name(segment));
            let mut f = DiscFile::open_write(&path)?;
            f.seek_to(8)?;
            // Durable, and named durably in the directory, before a commit is acknowledged
            // in it (as `create_segment` makes a new one): a crash may have left it written
            // but not synced.
            f.sync_data()?;
            files::sync_dir(&path)?;
            f
        } else {
            create_segment(dir, segment)?
        };
        let wal = Arc::new(Wal {
            dir: dir.to_path_buf(),
            durability,
            state: Mutex::new(State {
                buffer: Vec::new(),
                appended: 0,
                taken: 0,
                written: 0,
                synced: 0,
                flushing: false,
                segment: Some(Segment { file, number: segment, bytes: 8, synced_bytes: 8 }),
                unsynced: Vec::new(),
                unsynced_bytes: 0,
                roll_next: false,
                rolls_asked: 0,
                rolls_done: 0,
                rolls_failed: 0,
                rolled_to: segment,
                appended_at_roll: 0,
                carried,
                fault: None,
                dropped: VecDeque::new(),
                closed: false,
            }),
            flushed: Condvar::new(),
            committing: AtomicUsize::new(0),
            health: std::sync::OnceLock::new(),
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
                        // A failure is told through `health` and to the next committer.
                        let _ = wal.flush();
                        drop(wal);
                        std::thread::sleep(interval);
                    }
                })
                .map_err(|e| io_error(dir, e))?;
        }
        Ok(wal)
    }

    /// Where the log's failures and recoveries are told (once).
    pub(crate) fn on_health(&self, tell: Box<dyn Fn(Health) + Send + Sync>) {
        let _ = self.health.set(tell);
    }

    fn tell(&self, health: Health) {
        if let Some(tell) = self.health.get() {
            tell(health);
        }
    }

    /// Appends one record of `kind`: its sequence number, taken from `next_seq` while the
    /// log is locked (so the log's order is the commit order), then `body`. Returns the
    /// sequence number and the log position to wait on.
    ///
    /// Under `Relaxed` and `None`, a commit is acknowledged once appended: if the last
    /// flush failed, the log is repaired first, and the commit refused if that fails.
    pub(crate) fn append(
        &self,
        next_seq: impl FnOnce() -> u64,
        kind: RecordKind,
        body: &[u8],
    ) -> Result<(u64, u64)> {
        let mut s = self.state.lock();
        if s.fault.is_some() && self.durability != Durability::Immediate {
            drop(s);
            self.sync().map_err(|e| match e {
                Error::Io { source, .. } => Error::LogUnavailable { dir: self.dir.clone(), source },
                other => other,
            })?;
            s = self.state.lock();
        }
        if s.closed {
            return Err(Error::Closed { what: format!("the database in {}", self.dir.display()) });
        }
        let seq = next_seq();
        let before = s.buffer.len();
        encode_frame_parts(&[&seq.to_le_bytes(), &[kind as u8], body], &mut s.buffer);
        s.appended += (s.buffer.len() - before) as u64;
        Ok((seq, s.appended))
    }

    /// Waits until the record ending at `lsn` is durable as the mode promises: written and
    /// synced for `Immediate`; nothing to wait for otherwise.
    pub(crate) fn commit(&self, lsn: u64) -> Result<()> {
        if self.durability == Durability::Immediate { self.wait(lsn, true, None) } else { Ok(()) }
    }

    /// Writes everything appended so far, and syncs it unless the mode is `None`.
    pub(crate) fn flush(&self) -> Result<()> {
        let lsn = self.state.lock().appended;
        self.wait(lsn, self.durability != Durability::None, None)
    }

    /// Writes and syncs everything up to `lsn`, whatever the mode.
    pub(crate) fn sync_to(&self, lsn: u64) -> Result<()> {
        self.wait(lsn, true, None)
    }

    /// Writes and syncs everything appended so far, whatever the mode (checkpoints, close).
    pub(crate) fn sync(&self) -> Result<()> {
        let lsn = self.state.lock().appended;
        self.wait(lsn, true, None)
    }

    /// No more appends; what was appended stays to be written by `sync`.
    pub(crate) fn close(&self) {
        self.state.lock().closed = true;
    }

    /// Takes appends again after a close whose last sync failed.
    pub(crate) fn reopen(&self) {
        self.state.lock().closed = false;
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.state.lock().closed
    }

    /// Waits until everything up to `lsn` is written (and synced, with `sync`), leading a
    /// flush when no other thread is; with `roll`, also until that roll is done (or failed).
    fn wait(&self, lsn: u64, sync: bool, roll: Option<u64>) -> Result<()> {
        let mut s = self.state.lock();
        loop {
            let roll_failed = roll.is_some_and(|r| s.rolls_failed >= r && s.rolls_done < r);
            if s.dropped(lsn) || roll_failed {
                let fault = s.fault.clone();
                return Err(match fault {
                    Some(f) => Error::Io { path: f.path.clone(), source: f.io() },
                    None => Error::Io {
                        path: self.dir.clone(),
                        source: io::Error::other("the commit log failed to write this commit"),
                    },
                });
            }
            let done = if sync { s.synced } else { s.written } >= lsn;
            if done && roll.is_none_or(|r| s.rolls_done >= r) {
                return Ok(());
            }
            if s.flushing {
                self.flushed.wait(&mut s);
                continue;
            }
            s = self.lead(s, sync)?;
        }
    }

    /// One flush: takes everything buffered, writes it outside the lock, syncs once.
    fn lead<'a>(
        &'a self,
        mut s: parking_lot::MutexGuard<'a, State>,
        sync: bool,
    ) -> Result<parking_lot::MutexGuard<'a, State>> {
        // Before taking the buffer, give the committers that are about to append (those the
        // previous sync just released) a moment: as long as appends keep arriving, the sync
        // waits a little for them, so that it carries them too.
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
        let from = s.taken;
        let target = s.appended;
        s.taken = target;
        let forced = s.roll_next;
        let roll_asked = s.rolls_asked;
        s.roll_next = false;
        let Some(mut segment) = s.segment.take() else {
            s.flushing = false;
            return Err(Error::Internal("the commit log has no segment".into()));
        };
        let pass = Pass {
            batch: std::mem::take(&mut s.buffer),
            repair: s.fault.is_some(),
            unsynced: std::mem::take(&mut s.unsynced),
            roll: forced || segment.bytes >= SEGMENT_BYTES,
            sync: sync || s.unsynced_bytes > UNSYNCED_AT_MOST,
        };
        let sync = pass.sync;
        drop(s);
        let (result, unsynced, rolled) = self.carry_out(&mut segment, pass);
        let mut s = self.state.lock();
        s.flushing = false;
        if forced {
            if rolled {
                s.rolled_to = segment.number;
                s.rolls_done = roll_asked;
            } else if result.is_err() {
                s.rolls_failed = roll_asked;
            }
        }
        s.segment = Some(segment);
        match &result {
            Ok(()) => {
                s.written = s.written.max(target);
                if sync {
                    s.synced = s.synced.max(target);
                }
                s.unsynced_bytes = unsynced.iter().map(Vec::len).sum();
                s.unsynced = unsynced;
                if s.fault.take().is_some() {
                    self.tell(Health::Recovered);
                }
            }
            Err(e) => {
                if self.durability == Durability::Immediate {
                    // Its committers are told it failed: the batch is dropped, never written
                    // again. (Under `Immediate` every flush syncs, so nothing else is held.)
                    s.drop_batch(from, target);
                    s.unsynced = Vec::new();
                    s.unsynced_bytes = 0;
                } else {
                    s.unsynced_bytes = unsynced.iter().map(Vec::len).sum();
                    s.unsynced = unsynced;
                }
                let first = s.fault.is_none();
                s.fault = Some(Fault::of(e));
                if first {
                    self.tell(Health::Failed {
                        kind: e.io_kind().unwrap_or(io::ErrorKind::Other),
                        reason: e.to_string(),
                    });
                }
            }
        }
        self.flushed.notify_all();
        result.map(|()| s)
    }

    /// Does a flush's file work on `segment`. Returns the outcome, the batches in the
    /// segment past its last good sync (to keep; the new batch included unless synced), and
    /// whether a new segment was started.
    fn carry_out(&self, segment: &mut Segment, pass: Pass) -> (Result<()>, Vec<Vec<u8>>, bool) {
        let Pass { batch, repair, unsynced: mut held, roll, sync } = pass;
        let mut rolled = false;
        let result = (|| -> Result<()> {
            if repair {
                // What follows the last good sync is not trusted: cut it off and write the
                // acknowledged batches again from memory.
                segment.file.truncate_to(segment.synced_bytes)?;
                segment.bytes = segment.synced_bytes;
                for chunk in &held {
                    segment.file.write_all(chunk)?;
                    segment.bytes += chunk.len() as u64;
                }
            }
            if roll {
                if segment.bytes > segment.synced_bytes {
                    segment.file.sync_data()?;
                    segment.synced_bytes = segment.bytes;
                    held.clear();
                }
                let next = segment
                    .number
                    .checked_add(1)
                    .ok_or_else(|| Error::Exhausted { what: "log segment numbers".into() })?;
                let created = create_segment(&self.dir, next)?;
                *segment = Segment { file: created, number: next, bytes: 8, synced_bytes: 8 };
                rolled = true;
            }
            if !batch.is_empty() {
                segment.file.write_all(&batch)?;
                segment.bytes += batch.len() as u64;
            }
            if sync && segment.bytes > segment.synced_bytes {
                segment.file.sync_data()?;
                segment.synced_bytes = segment.bytes;
            }
            Ok(())
        })();
        if !batch.is_empty() {
            held.push(batch);
        }
        let result = match result {
            Ok(()) => {
                if segment.synced_bytes == segment.bytes {
                    held.clear();
                }
                Ok(())
            }
            // Cut what may have reached the file off at once, before anyone is told: a
            // commit refused now must not come back after a crash. (The held batches are
            // written again by the next flush.)
            Err(e) => {
                match segment.file.truncate_to(segment.synced_bytes).and_then(|()| segment.file.sync_data()) {
                    Ok(()) => {
                        segment.bytes = segment.synced_bytes;
                        Err(e)
                    }
                    Err(_) => Err(match e {
                        Error::Io { path, source } => Error::Io {
                            path,
                            source: io::Error::new(
                                source.kind(),
                                format!(
                                    "{source}; cutting the log back failed too, so the commit may still be in it"
                                ),
                            ),
                        },
                        other => other,
                    }),
                }
            }
        };
        (result, held, rolled)
    }

    /// Starts a new segment: every record appended from now on goes to it or a later one
    /// (records appended just before may go there too). Returns its number. Everything
    /// appended before is synced.
    pub(crate) fn roll(&self) -> Result<u64> {
        let (target, asked, before) = {
            let mut s = self.state.lock();
            s.roll_next = true;
            s.rolls_asked += 1;
            let appended = s.appended;
            let before = std::mem::replace(&mut s.appended_at_roll, appended);
            (s.appended, s.rolls_asked, before)
        };
        // The flush that writes `target` starts with the new segment.
        if let Err(e) = self.wait(target, true, Some(asked)) {
            // No checkpoint came of it: the log still counts from the last one.
            self.state.lock().appended_at_roll = before;
            return Err(e);
        }
        let mut s = self.state.lock();
        s.carried = 0;
        Ok(s.rolled_to)
    }

    /// The segment being appended to and how many of its bytes are known durable, once no
    /// flush is running: what a replay of the log may read without reading a commit that
    /// might still be refused.
    pub(crate) fn durable_end(&self) -> Option<(u64, u64)> {
        let mut s = self.state.lock();
        while s.flushing {
            self.flushed.wait(&mut s);
        }
        s.segment.as_ref().map(|seg| (seg.number, seg.synced_bytes))
    }

    /// Deletes the segments before `first_kept`.
    pub(crate) fn remove_before(&self, first_kept: u64) -> Result<()> {
        for n in segments(&self.dir)? {
            if n < first_kept {
                files::remove_file(&self.dir.join(segment_name(n)))?;
            }
        }
        Ok(())
    }

    /// Bytes appended since the last checkpoint's roll (or, before any, since the
    /// directory's last checkpoint: the log it was opened with counts).
    pub(crate) fn bytes_since_roll(&self) -> u64 {
        let s = self.state.lock();
        s.appended - s.appended_at_roll + s.carried
    }

    /// Bytes appended by this process since the last checkpoint's roll (what its writers
    /// added, the log it was opened with left out).
    pub(crate) fn bytes_appended_since_roll(&self) -> u64 {
        let s = self.state.lock();
        s.appended - s.appended_at_roll
    }

    /// Where the count of [`Wal::bytes_since_roll`] starts: taken before a checkpoint's
    /// roll, and put back with [`Wal::count_from`] if the checkpoint then fails (the log
    /// still counts from the last one that succeeded).
    pub(crate) fn count_start(&self) -> (u64, u64) {
        let s = self.state.lock();
        (s.appended_at_roll, s.carried)
    }

    /// See [`Wal::count_start`].
    pub(crate) fn count_from(&self, (appended_at_roll, carried): (u64, u64)) {
        let mut s = self.state.lock();
        s.appended_at_roll = appended_at_roll;
        s.carried = carried;
    }
}

fn create_segment(dir: &Path, n: u64) -> Result<DiscFile> {
    let path = dir.join(segment_name(n));
    let mut f = DiscFile::create(&path)?;
    let made = f
        .write_all(&frame::magic(KIND, VERSION))
        .and_then(|()| f.sync_data())
        .and_then(|()| files::sync_dir(&path));
    if let Err(e) = made {
        // Not left behind: a later crash would leave a torn segment before it.
        drop(f);
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    Ok(f)
}

/// A record read back from the log, with where it was.
pub(crate) struct LogRecord {
    /// The number of the segment it is in.
    pub(crate) segment: u64,
    /// The segment's format version.
    pub(crate) version: u8,
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
    if first == 0
        && let Some(&start) = kept.first()
        && start > 1
    {
        // Segments are removed only by a checkpoint, which leaves its file first.
        return Err(Error::Corrupt {
            file: dir.join("checkpoint.json"),
            offset: 0,
            reason: format!(
                "missing: the log starts at segment {start}, so a checkpoint removed the older \
                 segments, but its file (which says where replay starts, and which snapshots \
                 to load) is gone"
            ),
        });
    }
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
        let frames = frame::read_frames(&path, KIND, OLDEST_VERSION..=VERSION)?;
        if let End::Torn(at) = frames.end {
            if i + 1 != kept.len() {
                return Err(Error::Corrupt { file: path, offset: at, reason: DAMAGED_BEFORE_THE_END.into() });
            }
            torn = Some((path.clone(), at));
        }
        records.extend(frames.iter().map(|(offset, payload)| LogRecord {
            segment: *n,
            version: frames.version,
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
    let mut f = DiscFile::open_write(path)?;
    f.truncate_to(at)?;
    f.sync_all()
}
