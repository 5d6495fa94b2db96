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

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use openraft::{Entry, LogId, Vote};
use serde::{Deserialize, Serialize};

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

/// The file, open for appending.
pub(crate) struct LogFile {
    file: File,
    dir: std::path::PathBuf,
}

/// Entries per record when the file is rewritten.
const REWRITE_ENTRIES: usize = 100;

/// The largest record replayed: a bigger length is damage.
const MAX_RECORD: u32 = 256 << 20;

impl LogFile {
    /// Opens (or creates) `dir/raft.log`, and returns it with every intact record in order.
    pub(crate) fn open(dir: &Path) -> io::Result<(LogFile, Vec<LogOp>)> {
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
        Ok((LogFile { file, dir: dir.to_path_buf() }, ops))
    }

    /// Replaces the file by one holding only `state` (the vote, the committed point, the
    /// last entry purged) and `entries`, when entries before them went: written beside it,
    /// synced, renamed into place, the directory synced. A crash leaves the old file or the
    /// new one, both the same log.
    ///
    /// `Ok(false)`: the new file could not be written (a full disc): the old one stays, as
    /// good a log, only longer (the caller goes on with it). `Err`: the rename or the
    /// directory's sync failed, after which appends go to the new file: the log cannot be
    /// trusted to be on disc.
    pub(crate) fn rewrite<'a>(
        &mut self,
        state: &[LogOp],
        entries: impl Iterator<Item = &'a Entry<Types>>,
    ) -> io::Result<bool> {
        let tmp = self.dir.join("raft.log.tmp");
        let appender = match self.write_beside(&tmp, state, entries) {
            Ok(appender) => appender,
            Err(e) => {
                tracing::warn!(
                    target: "mnesia::cluster",
                    path = %tmp.display(),
                    error = %e,
                    "the Raft log could not be rewritten without the entries purged: it keeps them"
                );
                let _ = std::fs::remove_file(&tmp);
                return Ok(false);
            }
        };
        std::fs::rename(&tmp, self.dir.join("raft.log"))?;
        self.file = appender;
        File::open(&self.dir)?.sync_all()?;
        Ok(true)
    }

    /// Writes `state` and `entries` to `tmp`, synced; returns it open for appending.
    fn write_beside<'a>(
        &self,
        tmp: &Path,
        state: &[LogOp],
        entries: impl Iterator<Item = &'a Entry<Types>>,
    ) -> io::Result<File> {
        let mut fresh = LogFile {
            file: OpenOptions::new().write(true).create(true).truncate(true).open(tmp)?,
            dir: self.dir.clone(),
        };
        for op in state {
            fresh.append(op)?;
        }
        let mut chunk = Vec::with_capacity(REWRITE_ENTRIES);
        for e in entries {
            chunk.push(e.clone());
            if chunk.len() == REWRITE_ENTRIES {
                fresh.append(&LogOp::Append(std::mem::take(&mut chunk)))?;
            }
        }
        if !chunk.is_empty() {
            fresh.append(&LogOp::Append(chunk))?;
        }
        fresh.file.sync_all()?;
        // Appends go to the new file from the rename on (opened for appending before it).
        OpenOptions::new().append(true).open(tmp)
    }

    /// Appends `op` and syncs it, unless it is only the committed point: that one is a
    /// hint (the leader tells it again), not worth a sync of its own; it is synced with the
    /// next record that is.
    pub(crate) fn write(&mut self, op: &LogOp) -> io::Result<()> {
        self.append(op)?;
        if matches!(op, LogOp::Committed(_)) {
            return Ok(());
        }
        self.file.sync_data()
    }

    /// Appends `op`, not synced.
    fn append(&mut self, op: &LogOp) -> io::Result<()> {
        let payload = postcard::to_allocvec(op).map_err(io::Error::other)?;
        let len = u32::try_from(payload.len()).ok().filter(|len| *len <= MAX_RECORD).ok_or_else(|| {
            io::Error::other(format!("a Raft log record of {} bytes is over the limit", payload.len()))
        })?;
        let mut record = Vec::with_capacity(payload.len() + 8);
        record.extend_from_slice(&len.to_le_bytes());
        record.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        record.extend_from_slice(&payload);
        self.file.write_all(&record)
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
        let (mut log, _) = LogFile::open(dir.path()).expect("open");
        log.write(&LogOp::Append((1..=250).map(entry).collect())).expect("append");
        let before = std::fs::metadata(dir.path().join("raft.log")).expect("meta").len();
        let kept: Vec<Entry<Types>> = (201..=250).map(entry).collect();
        let purged = entry(200).log_id;
        assert!(log.rewrite(&[vote(3), LogOp::Purge(purged)], kept.iter()).expect("rewrite"), "rewritten");
        log.write(&LogOp::Append(vec![entry(251)])).expect("append after");
        assert!(std::fs::metadata(dir.path().join("raft.log")).expect("meta").len() < before);
        assert!(!dir.path().join("raft.log.tmp").exists());
        let (_, ops) = LogFile::open(dir.path()).expect("reopen");
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
            let (mut log, ops) = LogFile::open(dir.path()).expect("open");
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
        let (mut log, ops) = LogFile::open(dir.path()).expect("reopen");
        assert_eq!(ops.len(), 2);
        assert!(matches!(ops[1], LogOp::Truncate(7)));
        assert_eq!(std::fs::metadata(&path).expect("meta").len(), whole, "cut back");
        log.write(&vote(2)).expect("write after the cut");
        let (_, ops) = LogFile::open(dir.path()).expect("reopen");
        assert!(matches!(ops.last(), Some(LogOp::Vote(v)) if *v == Vote::new(2, 1)));
    }

    #[test]
    fn a_damaged_record_before_the_end_is_refused_not_cut() {
        let dir = tempfile::tempdir().expect("dir");
        {
            let (mut log, _) = LogFile::open(dir.path()).expect("open");
            log.write(&vote(1)).expect("write");
            log.write(&vote(2)).expect("write");
        }
        let path = dir.path().join("raft.log");
        let mut bytes = std::fs::read(&path).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).expect("write");
        let refused = LogFile::open(dir.path()).map(|_| ()).expect_err("damage is not a torn tail");
        assert_eq!(refused.kind(), io::ErrorKind::InvalidData);
        assert_eq!(std::fs::read(&path).expect("read"), bytes, "nothing cut");
        // Zeros after the last record are a torn tail.
        bytes[last] ^= 0xff;
        let whole = bytes.len();
        bytes.extend_from_slice(&[0; 100]);
        std::fs::write(&path, &bytes).expect("write");
        let (_, ops) = LogFile::open(dir.path()).expect("reopen");
        assert_eq!(ops.len(), 2);
        assert_eq!(std::fs::metadata(&path).expect("meta").len(), whole as u64);
    }

    #[test]
    fn a_rewrite_that_cannot_be_written_leaves_the_old_file_in_use() {
        let dir = tempfile::tempdir().expect("dir");
        let (mut log, _) = LogFile::open(dir.path()).expect("open");
        log.write(&vote(1)).expect("write");
        // Where the new file is written: a directory in the way, as a full disc would be.
        std::fs::create_dir(dir.path().join("raft.log.tmp")).expect("obstacle");
        assert!(!log.rewrite(&[vote(2)], std::iter::empty()).expect("not fatal"), "not rewritten");
        log.write(&LogOp::Truncate(3)).expect("appends go on");
        let (_, ops) = LogFile::open(dir.path()).expect("reopen");
        assert_eq!(ops.len(), 2, "the old file, appended to");
        assert!(matches!(ops[0], LogOp::Vote(v) if v == Vote::new(1, 1)));
        assert!(matches!(ops[1], LogOp::Truncate(3)));
    }
}
