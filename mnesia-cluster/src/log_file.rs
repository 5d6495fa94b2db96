//! The Raft log on disc: an append-only file of checksummed records (entries appended, the
//! vote, the committed point, truncations), replayed when the node starts again. Each write
//! is synced before Raft is told it is done, so a vote is never forgotten and an entry a
//! majority counted on is never lost.
//!
//! A record is `u32` length, `u32` CRC-32 of the payload, then the payload (postcard). A
//! torn tail (a crash in the middle of a write: a record that runs past the end of the
//! file, or zeros where the file system had not written yet) ends the replay and is cut
//! off. A damaged record with the whole of it in the file is not a torn write: the node
//! refuses to start rather than forget what follows it (a vote, entries it acknowledged).
//!
//! A write or a sync that fails (a full disc) leaves the file as it was at the last sync:
//! before the next write, what came after (a record cut short, or records whose sync
//! failed and that may not be on disc) is cut off, and written again by the caller.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use openraft::{Entry, LogId, Vote};
use serde::{Deserialize, Serialize};

use crate::faults::Disc;
use crate::raft::Types;

/// One change to the log's state.
#[derive(Serialize, Deserialize)]
pub(crate) enum LogOp {
    Append(Vec<Entry<Types>>),
    Vote(Vote<u64>),
    Committed(Option<LogId<u64>>),
    /// Entries from this index on are gone.
    Truncate(u64),
    /// Entries up to this one are gone.
    Purge(LogId<u64>),
}

/// Claims `dir` for node `id`: takes its lock (`raft.lock`, held as long as the returned
/// file is open: one node at a time keeps its log there), and checks that it is node `id`'s
/// (`raft.node`, written at the first start): another node's log and vote would be taken for
/// this one's; and refuses it if its node left the cluster (`raft.left`, see [`mark_left`]).
pub(crate) fn claim(dir: &Path, id: u64) -> mnesia_runtime::Result<File> {
    use mnesia_runtime::Error;
    let io = |path: std::path::PathBuf| move |source| Error::Io { path, source };
    std::fs::create_dir_all(dir).map_err(io(dir.to_path_buf()))?;
    let lock = mnesia_runtime::lock_file(dir, "raft.lock")?;
    let path = dir.join("raft.node");
    match std::fs::read_to_string(&path) {
        Ok(text) => match text.trim().parse::<u64>() {
            Ok(owner) if owner == id && dir.join(LEFT).exists() => Err(Error::Invalid(format!(
                "the Raft directory {} is that of node {id}, which left the cluster or was removed from it (its log still counts it a member): start the node on an empty directory and join to be a member again",
                dir.display()
            ))),
            Ok(owner) if owner == id => Ok(lock),
            Ok(owner) => Err(Error::Invalid(format!(
                "the Raft directory {} is node {owner}'s, not node {id}'s: give each node its own",
                dir.display()
            ))),
            Err(_) => Err(Error::Invalid(format!("{} does not hold a node id: {text:?}", path.display()))),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let mut file = File::create(&path).map_err(io(path.clone()))?;
            file.write_all(id.to_string().as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(io(path.clone()))?;
            File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir.to_path_buf()))?;
            Ok(lock)
        }
        Err(e) => Err(Error::Io { path, source: e }),
    }
}

/// The file whose presence says that the directory's node left the cluster.
const LEFT: &str = "raft.left";

/// Marks `dir` as a node's that left the cluster (durably: see [`claim`]).
pub(crate) fn mark_left(dir: &Path) -> mnesia_runtime::Result<()> {
    let path = dir.join(LEFT);
    File::create(&path)
        .and_then(|f| f.sync_all())
        .and_then(|()| File::open(dir)?.sync_all())
        .map_err(|source| mnesia_runtime::Error::Io { path, source })
}

/// The file that says at which log entry the directory's node recovered alone (see
/// `Options::recover_alone`).
const RECOVERED: &str = "raft.recovered";

/// Notes, durably, that the directory's node recovered alone at log entry `index`.
pub(crate) fn mark_recovered(dir: &Path, index: u64) -> mnesia_runtime::Result<()> {
    let path = dir.join(RECOVERED);
    File::create(&path)
        .and_then(|mut f| {
            f.write_all(index.to_string().as_bytes())?;
            f.sync_all()
        })
        .and_then(|()| File::open(dir)?.sync_all())
        .map_err(|source| mnesia_runtime::Error::Io { path, source })
}

/// The log entry at which the directory's node last recovered alone, if it did.
pub(crate) fn recovered_at(dir: &Path) -> Option<u64> {
    std::fs::read_to_string(dir.join(RECOVERED)).ok()?.trim().parse().ok()
}

/// The file, open for appending.
pub(crate) struct LogFile {
    file: File,
    dir: std::path::PathBuf,
    /// The file's length after the last record written whole ...
    len: u64,
    /// ... and after the last sync.
    synced: u64,
    /// Whether a write or a sync failed since the last sync: the file is cut back to
    /// `synced` before the next write.
    torn: bool,
    /// Whether the directory holds the file's name durably (a sync of it failed after the
    /// file was renamed into place: it is synced before the next write).
    named: bool,
    /// The disc, which may be made full for tests.
    disc: Disc,
}

/// Entries per record when the file is rewritten.
const REWRITE_ENTRIES: usize = 100;

/// The largest record replayed: a bigger length is damage.
const MAX_RECORD: u32 = 256 << 20;

impl LogFile {
    /// Opens (or creates) `dir/raft.log`, and returns it with every intact record in order.
    pub(crate) fn open(dir: &Path, disc: Disc) -> io::Result<(LogFile, Vec<LogOp>)> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("raft.log");
        let mut file = OpenOptions::new().read(true).append(true).create(true).open(&path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let (ops, good) = replay(&bytes)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", path.display())))?;
        if good < bytes.len() {
            tracing::warn!(
                target: "mnesia::cluster",
                path = %path.display(),
                cut = bytes.len() - good,
                "the Raft log ends in a torn record: cut off"
            );
            file.set_len(good as u64)?;
            file.seek(SeekFrom::End(0))?;
            file.sync_all()?;
        }
        // The directory entry of a new file, too.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        let len = good as u64;
        Ok((LogFile { file, dir: dir.to_path_buf(), len, synced: len, torn: false, named: true, disc }, ops))
    }

    /// Replaces the file by one holding only `state` (the vote, the committed point, the
    /// last entry purged) and `entries`, when entries before them went: written beside it,
    /// synced, renamed into place, the directory synced. A crash leaves the old file or the
    /// new one, both the same log.
    ///
    /// `false`: the new file could not be written or renamed (a full disc): the old one
    /// stays, as good a log, only longer (the caller goes on with it). A failed sync of the
    /// directory after the rename is tried again before the next write (until then, the
    /// old file could come back after a crash: the same log, nothing written since lost).
    pub(crate) fn rewrite<'a>(
        &mut self,
        state: &[LogOp],
        entries: impl Iterator<Item = &'a Entry<Types>>,
    ) -> bool {
        let tmp = self.dir.join("raft.log.tmp");
        let written = self
            .write_beside(&tmp, state, entries)
            .and_then(|fresh| std::fs::rename(&tmp, self.dir.join("raft.log")).map(|()| fresh));
        let (appender, len) = match written {
            Ok(fresh) => fresh,
            Err(e) => {
                tracing::warn!(
                    target: "mnesia::cluster",
                    path = %tmp.display(),
                    error = %e,
                    "the Raft log could not be rewritten without the entries purged: it keeps them"
                );
                let _ = std::fs::remove_file(&tmp);
                return false;
            }
        };
        self.file = appender;
        (self.len, self.synced, self.torn, self.named) = (len, len, false, false);
        let _ = self.name_durably();
        true
    }

    /// Syncs the directory, if the file's name may not be durable in it yet.
    fn name_durably(&mut self) -> io::Result<()> {
        if !self.named {
            File::open(&self.dir)?.sync_all()?;
            self.named = true;
        }
        Ok(())
    }

    /// Writes `state` and `entries` to `tmp`, synced; returns it open for appending, and its
    /// length.
    fn write_beside<'a>(
        &self,
        tmp: &Path,
        state: &[LogOp],
        entries: impl Iterator<Item = &'a Entry<Types>>,
    ) -> io::Result<(File, u64)> {
        let mut fresh = LogFile {
            file: OpenOptions::new().write(true).create(true).truncate(true).open(tmp)?,
            dir: self.dir.clone(),
            len: 0,
            synced: 0,
            torn: false,
            named: true,
            disc: self.disc.clone(),
        };
        for op in state {
            fresh.append(op, fresh.disc.fault().map(|f| f.error))?;
        }
        let mut chunk = Vec::with_capacity(REWRITE_ENTRIES);
        for e in entries {
            chunk.push(e.clone());
            if chunk.len() == REWRITE_ENTRIES {
                fresh.append(&LogOp::Append(std::mem::take(&mut chunk)), None)?;
            }
        }
        if !chunk.is_empty() {
            fresh.append(&LogOp::Append(chunk), None)?;
        }
        fresh.file.sync_all()?;
        // Appends go to the new file from the rename on (opened for appending before it).
        Ok((OpenOptions::new().append(true).open(tmp)?, fresh.len))
    }

    /// Appends `op` and syncs it, unless it is only the committed point: that one is a
    /// hint (the leader tells it again), not worth a sync of its own; it is synced with the
    /// next record that is.
    pub(crate) fn write(&mut self, op: &LogOp) -> io::Result<()> {
        self.name_durably()?;
        let (at_write, at_sync) = match self.disc.fault() {
            Some(fault) if fault.at_sync => (None, Some(fault.error)),
            fault => (fault.map(|f| f.error), None),
        };
        self.append(op, at_write)?;
        if matches!(op, LogOp::Committed(_)) {
            return Ok(());
        }
        // After a failed sync, what was written since the last one may be lost, or not:
        // it is cut off and written again.
        if let Some(full) = at_sync {
            self.torn = true;
            return Err(full);
        }
        self.file.sync_data().inspect_err(|_| self.torn = true)?;
        self.synced = self.len;
        Ok(())
    }

    /// Appends `op`, not synced (after cutting off what a failed write or sync left); with
    /// `fail` (a full disc made for tests), half of it, then the error.
    fn append(&mut self, op: &LogOp, fail: Option<io::Error>) -> io::Result<()> {
        if self.torn {
            self.file.set_len(self.synced)?;
            (self.len, self.torn) = (self.synced, false);
        }
        let payload = postcard::to_allocvec(op).map_err(io::Error::other)?;
        let len = u32::try_from(payload.len()).ok().filter(|len| *len <= MAX_RECORD).ok_or_else(|| {
            io::Error::other(format!("a Raft log record of {} bytes is over the limit", payload.len()))
        })?;
        let mut record = Vec::with_capacity(payload.len() + 8);
        record.extend_from_slice(&len.to_le_bytes());
        record.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        record.extend_from_slice(&payload);
        let written = match fail {
            // Half of it reaches the file, as a write cut short.
            Some(full) => self.file.write_all(&record[..record.len() / 2]).and(Err(full)),
            None => self.file.write_all(&record),
        };
        written.inspect_err(|_| self.torn = true)?;
        self.len += record.len() as u64;
        Ok(())
    }
}

/// The intact records of `bytes`, and where they end (before a torn tail); an error for
/// a damaged record that is not the tail.
pub(crate) fn replay(bytes: &[u8]) -> Result<(Vec<LogOp>, usize), String> {
    let mut ops = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let rest = &bytes[at..];
        // Zeros to the end: space the file system gave the file before a crash.
        if rest.iter().all(|b| *b == 0) {
            break;
        }
        let Some(head) = rest.get(..8) else { break };
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if len > MAX_RECORD {
            return Err(format!("a record at byte {at} claims {len} bytes"));
        }
        let end = 8 + len as usize;
        // Runs past the end: the write a crash interrupted.
        let Some(payload) = rest.get(8..end) else { break };
        if crc32fast::hash(payload) != crc {
            return Err(format!("the record at byte {at} fails its checksum"));
        }
        match postcard::from_bytes::<LogOp>(payload) {
            Ok(op) => ops.push(op),
            Err(e) => return Err(format!("the record at byte {at} does not decode: {e}")),
        }
        at += end;
    }
    Ok((ops, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vote(term: u64) -> LogOp {
        LogOp::Vote(Vote::new(term, 1))
    }

    fn entry(index: u64) -> Entry<Types> {
        Entry {
            log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
            payload: openraft::EntryPayload::Blank,
        }
    }

    #[test]
    fn a_rewritten_file_holds_the_state_and_entries_given_and_takes_appends() {
        let dir = tempfile::tempdir().expect("dir");
        let (mut log, _) = LogFile::open(dir.path(), Disc::sound()).expect("open");
        log.write(&LogOp::Append((1..=250).map(entry).collect())).expect("append");
        let before = std::fs::metadata(dir.path().join("raft.log")).expect("meta").len();
        let kept: Vec<Entry<Types>> = (201..=250).map(entry).collect();
        let purged = entry(200).log_id;
        assert!(log.rewrite(&[vote(3), LogOp::Purge(purged)], kept.iter()), "rewritten");
        log.write(&LogOp::Append(vec![entry(251)])).expect("append after");
        assert!(std::fs::metadata(dir.path().join("raft.log")).expect("meta").len() < before);
        assert!(!dir.path().join("raft.log.tmp").exists());
        let (_, ops) = LogFile::open(dir.path(), Disc::sound()).expect("reopen");
        assert!(matches!(ops[0], LogOp::Vote(v) if v == Vote::new(3, 1)));
        assert!(matches!(ops[1], LogOp::Purge(p) if p == purged));
        let indexes: Vec<u64> = ops[2..]
            .iter()
            .flat_map(|op| match op {
                LogOp::Append(es) => es.iter().map(|e| e.log_id.index).collect(),
                _ => Vec::new(),
            })
            .collect();
        assert_eq!(indexes, (201..=251).collect::<Vec<_>>());
    }

    #[test]
    fn records_come_back_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().expect("dir");
        {
            let (mut log, ops) = LogFile::open(dir.path(), Disc::sound()).expect("open");
            assert!(ops.is_empty());
            log.write(&vote(1)).expect("write");
            log.write(&LogOp::Truncate(7)).expect("write");
        }
        // A crash in the middle of a third record.
        let path = dir.path().join("raft.log");
        let whole = std::fs::metadata(&path).expect("meta").len();
        let mut f = OpenOptions::new().append(true).open(&path).expect("file");
        f.write_all(&[40, 0, 0, 0, 1, 2]).expect("torn");
        drop(f);
        let (mut log, ops) = LogFile::open(dir.path(), Disc::sound()).expect("reopen");
        assert_eq!(ops.len(), 2);
        assert!(matches!(ops[1], LogOp::Truncate(7)));
        assert_eq!(std::fs::metadata(&path).expect("meta").len(), whole, "cut back");
        log.write(&vote(2)).expect("write after the cut");
        let (_, ops) = LogFile::open(dir.path(), Disc::sound()).expect("reopen");
        assert!(matches!(ops.last(), Some(LogOp::Vote(v)) if *v == Vote::new(2, 1)));
    }

    #[test]
    fn a_damaged_record_before_the_end_is_refused_not_cut() {
        let dir = tempfile::tempdir().expect("dir");
        {
            let (mut log, _) = LogFile::open(dir.path(), Disc::sound()).expect("open");
            log.write(&vote(1)).expect("write");
            log.write(&vote(2)).expect("write");
        }
        let path = dir.path().join("raft.log");
        let mut bytes = std::fs::read(&path).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).expect("write");
        let refused =
            LogFile::open(dir.path(), Disc::sound()).map(|_| ()).expect_err("damage is not a torn tail");
        assert_eq!(refused.kind(), io::ErrorKind::InvalidData);
        assert_eq!(std::fs::read(&path).expect("read"), bytes, "nothing cut");
        // Zeros after the last record are a torn tail.
        bytes[last] ^= 0xff;
        let whole = bytes.len();
        bytes.extend_from_slice(&[0; 100]);
        std::fs::write(&path, &bytes).expect("write");
        let (_, ops) = LogFile::open(dir.path(), Disc::sound()).expect("reopen");
        assert_eq!(ops.len(), 2);
        assert_eq!(std::fs::metadata(&path).expect("meta").len(), whole as u64);
    }

    #[test]
    fn writes_cut_short_by_a_full_disc_are_cut_off_and_written_again() {
        let dir = tempfile::tempdir().expect("dir");
        let faults = crate::Faults::new();
        let (mut log, _) = LogFile::open(dir.path(), faults.disc_of(1)).expect("open");
        log.write(&vote(1)).expect("write");
        log.write(&LogOp::Committed(None)).expect("a hint, not synced");
        faults.fill_disc(1);
        // Cut short at the write, then whole but failed at the sync, then cut short again.
        for _ in 0..3 {
            let full = log.write(&LogOp::Append(vec![entry(1), entry(2)])).expect_err("the disc is full");
            assert_eq!(full.kind(), io::ErrorKind::StorageFull);
        }
        // Half a record is in the file: a torn tail if the node stopped now.
        let (_, ops) = LogFile::open(dir.path(), Disc::sound()).expect("reopen with half a record");
        // The vote: the unsynced hint went when the write was tried again (cut back to the
        // last sync), and the half record left is a torn tail.
        assert_eq!(ops.len(), 1);
        faults.free_disc(1);
        log.write(&LogOp::Append(vec![entry(1), entry(2)])).expect("written again");
        log.write(&vote(2)).expect("and after");
        let (_, ops) = LogFile::open(dir.path(), Disc::sound()).expect("reopen");
        assert_eq!(ops.len(), 3, "no damage, nothing twice");
        assert!(matches!(&ops[1], LogOp::Append(es) if es.len() == 2));
        assert!(matches!(ops[2], LogOp::Vote(v) if v == Vote::new(2, 1)));
    }

    #[test]
    fn a_rewrite_that_cannot_be_written_leaves_the_old_file_in_use() {
        let dir = tempfile::tempdir().expect("dir");
        let (mut log, _) = LogFile::open(dir.path(), Disc::sound()).expect("open");
        log.write(&vote(1)).expect("write");
        // Where the new file is written: a directory in the way, as a full disc would be.
        std::fs::create_dir(dir.path().join("raft.log.tmp")).expect("obstacle");
        assert!(!log.rewrite(&[vote(2)], std::iter::empty()), "not rewritten");
        log.write(&LogOp::Truncate(3)).expect("appends go on");
        let (_, ops) = LogFile::open(dir.path(), Disc::sound()).expect("reopen");
        assert_eq!(ops.len(), 2, "the old file, appended to");
        assert!(matches!(ops[0], LogOp::Vote(v) if v == Vote::new(1, 1)));
        assert!(matches!(ops[1], LogOp::Truncate(3)));
    }
}
