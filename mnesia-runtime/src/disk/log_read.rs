//! Reading the commit log's records: commits, and schema changes (each holding the whole
//! schema it left, or what changed in the one before it: recovery and the tools fold them
//! over the schema file).

use std::path::Path;

use super::record::TableOpsRef;
use super::schema::{self, SchemaDelta, SchemaFile};
use super::{is_running, read_checkpoint, wal};
use crate::error::{Error, Result};

/// A log record, read in place.
pub(crate) enum LogEntry<'a> {
    /// A commit: its sequence number and table parts.
    Commit(u64, Vec<TableOpsRef<'a>>),
    /// A schema change (see [`logged_schema`]).
    Schema,
}

/// A log record's sequence number, kind and body (a segment of format version 1 holds
/// commits only, without the kind byte).
fn split_record(rec: &wal::LogRecord) -> Result<(u64, u8, &[u8])> {
    let corrupt =
        |reason: &str| Error::Corrupt { file: rec.file.clone(), offset: rec.offset, reason: reason.into() };
    let (seq, rest) = rec.payload.split_at_checked(8).ok_or_else(|| corrupt("a log record too short"))?;
    let seq = u64::from_le_bytes(seq.try_into().map_err(|_| corrupt("bad sequence number"))?);
    let (kind, body) = match rec.version {
        1 => (wal::RecordKind::Commit as u8, rest),
        _ => rest
            .split_first()
            .map(|(k, b)| (*k, b))
            .ok_or_else(|| corrupt("a log record without its kind"))?,
    };
    Ok((seq, kind, body))
}

/// Decodes a log record.
pub(crate) fn decode_record(rec: &wal::LogRecord) -> Result<LogEntry<'_>> {
    let (seq, kind, body) = split_record(rec)?;
    match kind {
        k if k == wal::RecordKind::Commit as u8 => {
            let ops: Vec<TableOpsRef<'_>> = postcard::from_bytes(body).map_err(|e| Error::Corrupt {
                file: rec.file.clone(),
                offset: rec.offset,
                reason: format!("bad commit record: {e}"),
            })?;
            Ok(LogEntry::Commit(seq, ops))
        }
        k if k == wal::RecordKind::Schema as u8 => {
            schema::decode(body, &rec.file, rec.offset)?;
            Ok(LogEntry::Schema)
        }
        k if k == wal::RecordKind::SchemaChange as u8 => {
            SchemaDelta::decode(body, &rec.file, rec.offset)?;
            Ok(LogEntry::Schema)
        }
        k => Err(Error::Corrupt {
            file: rec.file.clone(),
            offset: rec.offset,
            reason: format!("a log record of unknown kind {k}"),
        }),
    }
}

/// A commit record's sequence number and table parts, read in place; `None` for a schema
/// record.
pub(crate) fn decode_commit(rec: &wal::LogRecord) -> Result<Option<(u64, Vec<TableOpsRef<'_>>)>> {
    // (A schema record's body is read by `logged_schema` only.)
    if is_schema(split_record(rec)?.1) {
        return Ok(None);
    }
    Ok(match decode_record(rec)? {
        LogEntry::Commit(seq, ops) => Some((seq, ops)),
        LogEntry::Schema => None,
    })
}

fn is_schema(kind: u8) -> bool {
    kind == wal::RecordKind::Schema as u8 || kind == wal::RecordKind::SchemaChange as u8
}

/// The schema the log's records leave: the last whole schema a record holds (else
/// `written()`, the schema file the log follows, as the last checkpoint wrote it), with the
/// changes logged after it applied in order. (Replayed over a schema file that a checkpoint
/// cut short by a crash wrote after some of them, they give the same schema: each names
/// what it removes and the whole definitions it puts, and ids are never reused.)
pub(crate) fn logged_schema(
    log: &wal::LogContents,
    written: impl FnOnce() -> Result<SchemaFile>,
) -> Result<SchemaFile> {
    let mut from = 0;
    let mut whole = None;
    for (at, rec) in log.records.iter().enumerate().rev() {
        let (_, kind, body) = split_record(rec)?;
        if kind == wal::RecordKind::Schema as u8 {
            whole = Some(schema::decode(body, &rec.file, rec.offset)?);
            from = at + 1;
            break;
        }
    }
    let mut schema = match whole {
        Some(s) => s,
        None => written()?,
    };
    for rec in &log.records[from..] {
        let (_, kind, body) = split_record(rec)?;
        if kind == wal::RecordKind::SchemaChange as u8 {
            SchemaDelta::decode(body, &rec.file, rec.offset)?.apply(&mut schema);
        }
    }
    Ok(schema)
}

/// The schema of `dir` as it stands: the schema file as the last checkpoint wrote it, with
/// the schema changes the log holds since (for tools reading a directory, open or not:
/// a checkpoint that removes segments meanwhile makes it read again).
pub(crate) fn current_schema(dir: &Path) -> Result<SchemaFile> {
    let mut attempts = 0;
    loop {
        // The checkpoint first: a schema file written after it holds no less than it says
        // (a checkpoint writes the schema file before its own), and the log it replays from
        // holds every change since.
        let checkpoint = read_checkpoint(dir)?;
        let written = schema::load(dir)?;
        match wal::read_from(dir, checkpoint.segment).and_then(|log| logged_schema(&log, || Ok(written))) {
            Ok(schema) => return Ok(schema),
            Err(_) if attempts < 3 && is_running(dir) => attempts += 1,
            Err(e) => return Err(e),
        }
    }
}
