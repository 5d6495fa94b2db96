//! Snapshot files: one per disc table, written at checkpoints, each a header frame then one
//! frame per key.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::frame::{self, End};
use super::record::SnapshotEntry;
use crate::error::{Error, Result};

pub(crate) const KIND: &[u8; 6] = b"MNSSNP";
pub(crate) const VERSION: u8 = 1;

#[derive(Serialize, Deserialize)]
struct Header {
    table: u64,
    counter: u64,
    entries: u64,
}

pub(crate) fn path(dir: &Path, table: u64) -> PathBuf {
    dir.join(format!("table-{table}.snap"))
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    postcard::to_allocvec(v).map_err(|e| Error::codec("encoding a snapshot", e))
}

/// Writes a table's snapshot atomically.
pub(crate) fn write(dir: &Path, table: u64, counter: u64, entries: &[SnapshotEntry]) -> Result<()> {
    let mut frames = Vec::with_capacity(entries.len() + 1);
    frames.push(encode(&Header { table, counter, entries: entries.len() as u64 })?);
    for e in entries {
        frames.push(encode(e)?);
    }
    frame::write_file_atomically(&path(dir, table), KIND, VERSION, &frames)
}

/// Reads a table's snapshot: its auto-increment counter and its entries. Snapshots are
/// written whole and renamed into place, so any damage — a torn end included — is
/// corruption.
pub(crate) fn read(dir: &Path, table: u64) -> Result<(u64, Vec<SnapshotEntry>)> {
    let p = path(dir, table);
    let frames = frame::read_frames(&p, KIND, VERSION..=VERSION)?;
    parse(&p, table, frames)
}

pub(crate) fn parse(p: &Path, table: u64, frames: frame::Frames) -> Result<(u64, Vec<SnapshotEntry>)> {
    let corrupt = |offset: u64, reason: String| Error::Corrupt { file: p.to_path_buf(), offset, reason };
    if let End::Torn(at) = frames.end {
        return Err(corrupt(at, "the snapshot ends in the middle of a record".into()));
    }
    let mut it = frames.iter();
    let Some((at, head)) = it.next() else {
        return Err(corrupt(8, "the snapshot has no header".into()));
    };
    let header: Header = postcard::from_bytes(head).map_err(|e| corrupt(at, format!("bad header: {e}")))?;
    if header.table != table {
        return Err(corrupt(at, format!("the snapshot is of table {}, not {table}", header.table)));
    }
    // Sized by the frames really there, never by a count read from the file.
    let mut out = Vec::with_capacity(frames.iter().count().saturating_sub(1));
    for (at, payload) in it {
        out.push(postcard::from_bytes(payload).map_err(|e| corrupt(at, format!("bad record: {e}")))?);
    }
    if out.len() as u64 != header.entries {
        return Err(corrupt(
            8,
            format!("the snapshot holds {} records, its header says {}", out.len(), header.entries),
        ));
    }
    Ok((header.counter, out))
}
