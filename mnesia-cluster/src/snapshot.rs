//! Raft snapshots: the node's database at one log entry, so that the log before it can go
//! and a node far behind is filled at once.
//!
//! A snapshot holds the database's [ordered snapshot](mnesia_runtime::Database::write_ordered_snapshot)
//! (every table, and what decides the records after it) and the verdicts of the proposals
//! of the last entries (so that a proposal made again is still recognised). A node with a
//! directory keeps its latest snapshot in `raft.snapshot` (written whole beside it, synced,
//! renamed into place) before the log before it is purged, and starts from it again.
//!
//! The file: `u32` CRC-32 of the payload, then the payload (postcard of [`Saved`]).

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use openraft::{BasicNode, SnapshotMeta};
use serde::{Deserialize, Serialize};

use crate::faults::Disc;
use crate::raft::{ProposalId, Verdict};

/// What a snapshot's bytes hold.
#[derive(Serialize, Deserialize)]
pub(crate) struct Body {
    /// The proposals of the last entries, with their entry and verdict, oldest first.
    pub(crate) seen: Vec<(u64, ProposalId, Verdict)>,
    /// The database (`Database::write_ordered_snapshot`).
    pub(crate) db: Vec<u8>,
}

/// A snapshot as a node keeps it: which entry it ends at, and its bytes (a [`Body`]).
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct Saved {
    pub(crate) meta: SnapshotMeta<u64, BasicNode>,
    pub(crate) data: Vec<u8>,
}

fn path(dir: &Path) -> PathBuf {
    dir.join("raft.snapshot")
}

/// Writes `saved` as the directory's snapshot on `disc`, in place of the one before,
/// durably. A failure leaves the one before, and no partly written file (which would hold
/// the room a full disc lacks).
pub(crate) fn save(dir: &Path, saved: &Saved, disc: &Disc) -> io::Result<()> {
    let payload = postcard::to_allocvec(saved).map_err(io::Error::other)?;
    let tmp = dir.join("raft.snapshot.tmp");
    if let Err(e) = write_synced(&tmp, &payload, disc).and_then(|()| std::fs::rename(&tmp, path(dir))) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::File::open(dir)?.sync_all()
}

/// Writes the checksum of `payload`, then `payload`, to a new file `tmp`, synced.
fn write_synced(tmp: &Path, payload: &[u8], disc: &Disc) -> io::Result<()> {
    let mut file = std::fs::File::create(tmp)?;
    file.write_all(&crc32fast::hash(payload).to_le_bytes())?;
    if let Some(full) = disc.fault() {
        return Err(full.error);
    }
    file.write_all(payload)?;
    file.sync_all()
}

/// The directory's snapshot, if it has one; an error for a damaged one (the log before it
/// is gone: the node cannot start without it).
pub(crate) fn load(dir: &Path) -> io::Result<Option<Saved>> {
    let bytes = match std::fs::read(path(dir)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    decode(&bytes)
        .map(Some)
        .map_err(|why| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {why}", path(dir).display())))
}

/// A snapshot file's contents, checked.
pub(crate) fn decode(bytes: &[u8]) -> Result<Saved, String> {
    let (crc, payload) = bytes.split_at_checked(4).ok_or("too short")?;
    if crc32fast::hash(payload).to_le_bytes() != crc {
        return Err("fails its checksum".into());
    }
    postcard::from_bytes(payload).map_err(|e| format!("does not decode: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_comes_back_and_damage_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        assert!(load(dir.path()).expect("none").is_none());
        let saved = Saved { meta: SnapshotMeta::default(), data: vec![1, 2, 3] };
        save(dir.path(), &saved, &Disc::sound()).expect("save");
        let back = load(dir.path()).expect("load").expect("some");
        assert_eq!(back.data, saved.data);
        let mut bytes = std::fs::read(path(dir.path())).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(path(dir.path()), &bytes).expect("write");
        assert!(load(dir.path()).is_err());
        assert!(decode(&[1, 2]).is_err());
    }

    #[test]
    fn a_snapshot_that_cannot_be_written_leaves_the_one_before_and_nothing_else() {
        let dir = tempfile::tempdir().expect("dir");
        let faults = crate::Faults::new();
        let first = Saved { meta: SnapshotMeta::default(), data: vec![1, 2, 3] };
        save(dir.path(), &first, &faults.disc_of(1)).expect("save");
        faults.fill_disc(1);
        let second = Saved { meta: SnapshotMeta::default(), data: vec![4; 1000] };
        let full = save(dir.path(), &second, &faults.disc_of(1)).expect_err("the disc is full");
        assert_eq!(full.kind(), io::ErrorKind::StorageFull);
        assert!(!dir.path().join("raft.snapshot.tmp").exists(), "no partly written file left");
        assert_eq!(load(dir.path()).expect("load").expect("some").data, first.data);
    }
}
