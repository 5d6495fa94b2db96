//! Raft snapshots: the node's database at one log entry, so that the log before it can go
//! and a node far behind is filled at once.
//!
//! A snapshot holds the database's [ordered snapshot](mnesia_runtime::Database::write_ordered_snapshot)
//! (every table, and what decides the records after it) and the verdicts of the proposals
//! of the last entries (so that a proposal made again is still recognised). A node with a
//! directory keeps its latest snapshot in `raft.snapshot` (written whole beside it, synced,
//! renamed into place) before the log before it is purged, and starts from it again.
//!
//! The file: `u32` CRC-32 of the payload, then the payload: postcard of the snapshot's
//! meta, then of its bytes (their length, then the bytes).

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use openraft::{BasicNode, SnapshotMeta};
use serde::Deserialize;
use tokio::io::ReadBuf;

use crate::faults::Disc;
use crate::raft::{ProposalId, Types, Verdict};

/// What a snapshot's bytes hold, as they are read: the database is borrowed, not copied.
/// (Written by [`body`] as postcard writes a `Vec<u8>` there: its length, then its bytes.)
#[derive(Deserialize)]
pub(crate) struct Body<'a> {
    /// The proposals of the last entries, with their entry and verdict, oldest first.
    pub(crate) seen: Vec<(u64, ProposalId, Verdict)>,
    /// The database (`Database::write_ordered_snapshot`).
    #[serde(borrow)]
    pub(crate) db: &'a [u8],
}

/// A snapshot's bytes: the proposals `seen`, then the database, which `write_db` writes
/// (in place: the database is not copied once written).
pub(crate) fn body(
    seen: &[(u64, ProposalId, Verdict)],
    write_db: impl FnOnce(&mut Vec<u8>) -> Result<(), String>,
) -> Result<Vec<u8>, String> {
    let mut data = postcard::to_allocvec(seen).map_err(|e| e.to_string())?;
    let start = data.len();
    write_db(&mut data)?;
    let len = postcard::to_allocvec(&((data.len() - start) as u64)).map_err(|e| e.to_string())?;
    data.splice(start..start, len);
    Ok(data)
}

/// A snapshot as a node keeps it: which entry it ends at, and its bytes (a [`Body`]),
/// shared by every reader (each send to a node far behind) rather than copied.
#[derive(Clone)]
pub(crate) struct Saved {
    pub(crate) meta: SnapshotMeta<u64, BasicNode>,
    pub(crate) data: Arc<Vec<u8>>,
}

/// A snapshot's bytes as openraft reads them (to send them in chunks) and writes them (a
/// snapshot received): a cursor over bytes shared with the [`Saved`] snapshot they are,
/// copied only if written while shared.
pub(crate) struct SnapshotBytes {
    data: Arc<Vec<u8>>,
    pos: u64,
}

impl SnapshotBytes {
    /// A cursor at the start of `data`.
    pub(crate) fn new(data: Arc<Vec<u8>>) -> SnapshotBytes {
        SnapshotBytes { data, pos: 0 }
    }

    /// The bytes.
    pub(crate) fn into_inner(self) -> Arc<Vec<u8>> {
        self.data
    }

    /// Where the cursor is, as an index into the bytes (past them: their length).
    fn at(&self) -> usize {
        usize::try_from(self.pos).unwrap_or(usize::MAX).min(self.data.len())
    }
}

impl tokio::io::AsyncRead for SnapshotBytes {
    fn poll_read(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let start = this.at();
        let n = buf.remaining().min(this.data.len() - start);
        buf.put_slice(&this.data[start..start + n]);
        this.pos += n as u64;
        Poll::Ready(Ok(()))
    }
}

impl tokio::io::AsyncWrite for SnapshotBytes {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let Some(end) = usize::try_from(this.pos).ok().and_then(|start| start.checked_add(buf.len())) else {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a snapshot offset past memory",
            )));
        };
        let start = end - buf.len();
        let data = Arc::make_mut(&mut this.data);
        if data.len() < end {
            data.resize(end, 0);
        }
        data[start..end].copy_from_slice(buf);
        this.pos = end as u64;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl tokio::io::AsyncSeek for SnapshotBytes {
    fn start_seek(self: Pin<&mut Self>, to: io::SeekFrom) -> io::Result<()> {
        let this = self.get_mut();
        let (base, offset) = match to {
            io::SeekFrom::Start(at) => (at, 0),
            io::SeekFrom::End(off) => (this.data.len() as u64, off),
            io::SeekFrom::Current(off) => (this.pos, off),
        };
        this.pos = base
            .checked_add_signed(offset)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "a seek before the start"))?;
        Ok(())
    }

    fn poll_complete(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<u64>> {
        Poll::Ready(Ok(self.pos))
    }
}

fn path(dir: &Path) -> PathBuf {
    dir.join("raft.snapshot")
}

/// Writes `saved` as the directory's snapshot on `disc`, in place of the one before,
/// durably. A failure leaves the one before, and no partly written file (which would hold
/// the room a full disc lacks).
pub(crate) fn save(dir: &Path, saved: &Saved, disc: &Disc) -> io::Result<()> {
    // The payload is the meta, the bytes' length, then the bytes (postcard's encoding of
    // the two), written in those pieces: the bytes are not copied.
    let meta = postcard::to_allocvec(&saved.meta).map_err(io::Error::other)?;
    let len = postcard::to_allocvec(&(saved.data.len() as u64)).map_err(io::Error::other)?;
    let payload = [&meta[..], &len[..], &saved.data[..]];
    let tmp = dir.join("raft.snapshot.tmp");
    if let Err(e) = write_synced(&tmp, &payload, disc).and_then(|()| std::fs::rename(&tmp, path(dir))) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::File::open(dir)?.sync_all()
}

/// Writes the checksum of the payload (its `pieces` one after the other), then the payload,
/// to a new file `tmp`, synced.
fn write_synced(tmp: &Path, pieces: &[&[u8]], disc: &Disc) -> io::Result<()> {
    let mut crc = crc32fast::Hasher::new();
    for piece in pieces {
        crc.update(piece);
    }
    let mut file = io::BufWriter::new(std::fs::File::create(tmp)?);
    file.write_all(&crc.finalize().to_le_bytes())?;
    if let Some(full) = disc.fault() {
        return Err(full.error);
    }
    for piece in pieces {
        file.write_all(piece)?;
    }
    file.into_inner().map_err(io::IntoInnerError::into_error)?.sync_all()
}

/// The directory's snapshot, if it has one; an error for a damaged one (the log before it
/// is gone: the node cannot start without it).
pub(crate) fn load(dir: &Path) -> io::Result<Option<Saved>> {
    let bytes = match std::fs::read(path(dir)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    decode(bytes)
        .map(Some)
        .map_err(|why| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {why}", path(dir).display())))
}

/// A snapshot file's contents, checked (the snapshot's bytes are those of the file, moved
/// to its front: not copied).
pub(crate) fn decode(mut bytes: Vec<u8>) -> Result<Saved, String> {
    let (crc, payload) = bytes.split_at_checked(4).ok_or("too short")?;
    if crc32fast::hash(payload).to_le_bytes() != crc {
        return Err("fails its checksum".into());
    }
    let undecoded = |e: postcard::Error| format!("does not decode: {e}");
    let (meta, rest) =
        postcard::take_from_bytes::<SnapshotMeta<u64, BasicNode>>(payload).map_err(undecoded)?;
    let (len, data) = postcard::take_from_bytes::<u64>(rest).map_err(undecoded)?;
    if data.len() as u64 != len {
        return Err(format!("holds {} bytes of snapshot, not the {len} it says", data.len()));
    }
    let start = bytes.len() - data.len();
    bytes.drain(..start);
    Ok(Saved { meta, data: Arc::new(bytes) })
}

/// Takes a snapshot and purges the log up to each entry that ended a table's record type
/// once it is applied here (`type_ends`: a transform, a drop): the records of the entries
/// before it may not decode in the program a node runs after the change, so that neither a
/// node started again on its directory nor one joining should replay them. Asked again
/// (after [`COMPACT_RETRY`], doubling) until a snapshot holding the entry is taken (and, with a
/// directory, `on_disc`: written there; openraft ignores the ask while it builds another,
/// and a full disc keeps the one there older). A transform is rare; each node does it
/// for itself, with its own log.
pub(crate) async fn compact_after_type_ends(
    raft: openraft::Raft<Types>,
    mut type_ends: tokio::sync::watch::Receiver<u64>,
    on_disc: Option<Arc<std::sync::atomic::AtomicU64>>,
) {
    let (mut done, mut retry) = (0, COMPACT_RETRY);
    loop {
        let at = *type_ends.borrow_and_update();
        if at <= done {
            retry = COMPACT_RETRY;
            if type_ends.changed().await.is_err() {
                return;
            }
            continue;
        }
        let held = raft.metrics().borrow().snapshot.is_some_and(|s| s.index >= at)
            && on_disc.as_ref().is_none_or(|h| h.load(std::sync::atomic::Ordering::Acquire) > at);
        // (An error: Raft stopped.)
        let asked = if held {
            done = at;
            raft.trigger().purge_log(at).await
        } else {
            raft.trigger().snapshot().await
        };
        if asked.is_err() {
            return;
        }
        if !held {
            // (Doubling: each ask builds a snapshot of the whole database.)
            tokio::time::sleep(retry).await;
            retry = (retry * 2).min(COMPACT_RETRY_MAX);
        }
    }
}

/// How long [`compact_after_type_ends`] waits before it asks again for its snapshot, at
/// first; each wait doubles, up to [`COMPACT_RETRY_MAX`].
const COMPACT_RETRY: std::time::Duration = std::time::Duration::from_secs(1);
const COMPACT_RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(60);

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;

    #[test]
    fn a_snapshot_comes_back_and_damage_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        assert!(load(dir.path()).expect("none").is_none());
        let saved = Saved { meta: SnapshotMeta::default(), data: Arc::new(vec![1, 2, 3]) };
        save(dir.path(), &saved, &Disc::sound()).expect("save");
        let back = load(dir.path()).expect("load").expect("some");
        assert_eq!(back.data, saved.data);
        let mut bytes = std::fs::read(path(dir.path())).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(path(dir.path()), &bytes).expect("write");
        assert!(load(dir.path()).is_err());
        assert!(decode(vec![1, 2]).is_err());
    }

    /// The layouts the node wrote before its snapshots' bytes were shared: a file and a
    /// body written then still read, and one written now reads as one written then.
    #[derive(Serialize, Deserialize)]
    struct OldSaved {
        meta: SnapshotMeta<u64, BasicNode>,
        data: Vec<u8>,
    }

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct OldBody {
        seen: Vec<(u64, ProposalId, Verdict)>,
        db: Vec<u8>,
    }

    #[test]
    fn files_and_bodies_keep_their_layout() {
        let seen = vec![(7, ProposalId { node: 2, life: 9, n: 300 }, Verdict::Committed)];
        let db: Vec<u8> = (0..=255).cycle().take(1000).collect();
        let data = body(&seen, |out| {
            out.extend_from_slice(&db);
            Ok(())
        })
        .expect("body");
        let old: OldBody = postcard::from_bytes(&data).expect("an old body");
        assert_eq!(old, OldBody { seen: seen.clone(), db: db.clone() });
        let read: Body<'_> = postcard::from_bytes(&data).expect("a body");
        assert_eq!((read.seen, read.db), (seen, &db[..]));

        let meta = SnapshotMeta { snapshot_id: "3-40-1".into(), ..SnapshotMeta::default() };
        let old = OldSaved { meta: meta.clone(), data: data.clone() };
        let payload = postcard::to_allocvec(&old).expect("encode");
        let mut file = crc32fast::hash(&payload).to_le_bytes().to_vec();
        file.extend_from_slice(&payload);
        let back = decode(file.clone()).expect("an old file");
        assert_eq!((back.meta.snapshot_id.as_str(), &back.data[..]), ("3-40-1", &data[..]));

        let dir = tempfile::tempdir().expect("dir");
        save(dir.path(), &Saved { meta, data: Arc::new(data) }, &Disc::sound()).expect("save");
        assert_eq!(std::fs::read(path(dir.path())).expect("read"), file, "the same bytes as before");
        let mut short = file;
        short.truncate(short.len() - 1);
        assert!(decode(short).is_err(), "a file cut short is refused");
    }

    #[test]
    fn snapshot_bytes_are_read_and_written_in_chunks_anywhere() {
        use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        rt.block_on(async {
            let data = Arc::new((0..100u8).collect::<Vec<u8>>());
            let mut reader = SnapshotBytes::new(Arc::clone(&data));
            reader.seek(io::SeekFrom::Start(90)).await.expect("seek");
            let mut chunk = vec![0; 32];
            assert_eq!(reader.read(&mut chunk).await.expect("read"), 10);
            assert_eq!(&chunk[..10], &data[90..]);
            assert_eq!(reader.read(&mut chunk).await.expect("read at the end"), 0);
            assert!(reader.seek(io::SeekFrom::Current(-200)).await.is_err());
            // Shared with the reader: written into, the writer's copy changes alone.
            let mut writer = SnapshotBytes::new(Arc::clone(&data));
            writer.seek(io::SeekFrom::Start(98)).await.expect("seek");
            writer.write_all(&[7, 7, 7, 7]).await.expect("write");
            let written = writer.into_inner();
            assert_eq!(written.len(), 102);
            assert_eq!(&written[96..], &[96, 97, 7, 7, 7, 7]);
            assert_eq!(data.len(), 100, "the shared bytes are not changed");
            // Chunks received out of order land at their offsets.
            let mut received = SnapshotBytes::new(Arc::default());
            for (at, chunk) in [(50u64, &data[50..]), (0, &data[..50])] {
                received.seek(io::SeekFrom::Start(at)).await.expect("seek");
                received.write_all(chunk).await.expect("write");
            }
            assert_eq!(received.into_inner(), data);
            let mut far = SnapshotBytes::new(Arc::default());
            far.seek(io::SeekFrom::Start(u64::MAX - 1)).await.expect("seek");
            assert!(far.write_all(&[1, 2, 3]).await.is_err(), "refused, not a panic");
        });
    }

    #[test]
    fn a_snapshot_that_cannot_be_written_leaves_the_one_before_and_nothing_else() {
        let dir = tempfile::tempdir().expect("dir");
        let faults = crate::Faults::new();
        let first = Saved { meta: SnapshotMeta::default(), data: Arc::new(vec![1, 2, 3]) };
        save(dir.path(), &first, &faults.disc_of(1)).expect("save");
        faults.fill_disc(1);
        let second = Saved { meta: SnapshotMeta::default(), data: Arc::new(vec![4; 1000]) };
        let full = save(dir.path(), &second, &faults.disc_of(1)).expect_err("the disc is full");
        assert_eq!(full.kind(), io::ErrorKind::StorageFull);
        assert!(!dir.path().join("raft.snapshot.tmp").exists(), "no partly written file left");
        assert_eq!(load(dir.path()).expect("load").expect("some").data, first.data);
    }
}
