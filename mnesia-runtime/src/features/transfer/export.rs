//! Export: a table's records written as JSON, JSON Lines or CSV, a chunk at a time.

use std::io::Write;
use std::path::Path;

use crate::base::progress::{Progress, Ticker};
use crate::engine::meta::as_record;
use crate::engine::store::TableStore;
use crate::error::{Error, Result};
use crate::schema::record::Record;
use crate::schema::stored::StoredRecord;

use super::{ExportOptions, Format, finished, io_err};

/// Exports to a file, through a temporary file renamed when complete.
pub(crate) fn export_file<T: Record>(path: &Path, opts: &ExportOptions) -> Result<usize> {
    let format = match opts.format {
        Some(f) => f,
        None => Format::from_path(path)?,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = std::path::PathBuf::from(tmp);
    let result = crate::disk::files::DiscFile::create(&tmp)
        .and_then(|mut file| {
            let n = export_to::<T>(&mut file, format, opts.progress.as_ref())?;
            file.sync_all()?;
            Ok(n)
        })
        .and_then(|n| crate::disk::files::rename(&tmp, path).map(|()| n));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes every record of `T` in `format`; returns how many. The records are serialized
/// straight from the table, a chunk at a time (a shard; 1000 records of an
/// `ordered_set`) under that chunk's read lock, and each chunk is written to `out` after the
/// lock is released: no copy of the table is made, and a slow `out` never holds up writers.
pub(crate) fn export_to<T: Record>(
    out: impl Write,
    format: Format,
    progress: Option<&Progress>,
) -> Result<usize> {
    let started = std::time::Instant::now();
    let exported = export_records::<T>(out, format, progress);
    if let Ok(records) = &exported {
        finished("exported", T::NAME, format, *records, started);
    }
    exported
}

/// [`export_to`]'s work.
fn export_records<T: Record>(out: impl Write, format: Format, progress: Option<&Progress>) -> Result<usize> {
    let store = crate::tx::context::current_db()?.table::<T>()?;
    store.place.check(T::NAME)?;
    let mut ticker = Ticker::new(progress);
    let json = |e: serde_json::Error| Error::codec(format!("table {}", T::NAME), e);
    // serde_json writes a NaN or an infinity as `null`, which no import reads back as a
    // float: such a record is refused rather than written wrong.
    let finite = |rec: &T| match crate::base::finite::first_non_finite(rec) {
        None => Ok(()),
        Some(path) => Err(Error::Invalid(format!(
            "table {}: the record with key {:?} holds a NaN or infinite float at `{path}`, which JSON cannot \
             hold: export it as CSV (or back it up)",
            T::NAME,
            rec.key()
        ))),
    };
    let csv_err = |e: csv::Error| Error::codec(format!("table {}", T::NAME), e);
    let mut out = std::io::BufWriter::new(out);
    let mut write_out = |chunk: &[u8]| out.write_all(chunk).map_err(io_err);
    let n = match format {
        Format::Json => {
            let n = each(
                &store,
                |row, n, chunk| {
                    let rec = as_record::<T>(row)?;
                    finite(rec)?;
                    chunk.extend_from_slice(if n == 0 { b"[\n" } else { b",\n" });
                    serde_json::to_writer(chunk, rec).map_err(json)
                },
                &mut write_out,
                &mut ticker,
            )?;
            write_out(if n == 0 { b"[\n]\n" } else { b"\n]\n" })?;
            n
        }
        Format::JsonLines => each(
            &store,
            |row, _, chunk| {
                let rec = as_record::<T>(row)?;
                finite(rec)?;
                serde_json::to_writer(&mut *chunk, rec).map_err(json)?;
                chunk.push(b'\n');
                Ok(())
            },
            &mut write_out,
            &mut ticker,
        )?,
        Format::Csv => {
            // Each row is made by `w` in `row`, then moved to the chunk.
            let row = RowBuf::default();
            let mut w = csv::Writer::from_writer(row.clone());
            w.write_record(T::FIELDS.iter().map(|f| f.name)).map_err(csv_err)?;
            w.flush().map_err(io_err)?;
            write_out(&row.0.borrow_mut().split_off(0))?;
            let names: Vec<&str> = T::FIELDS.iter().map(|f| f.name).collect();
            let mut cells = vec![String::new(); names.len()];
            each(
                &store,
                |stored, _, chunk| {
                    crate::base::cells::write_cells(as_record::<T>(stored)?, &names, &mut cells)
                        .map_err(|e| Error::Invalid(format!("table {}: {e}", T::NAME)))?;
                    w.write_record(&cells).map_err(csv_err)?;
                    w.flush().map_err(io_err)?;
                    chunk.append(&mut row.0.borrow_mut());
                    Ok(())
                },
                &mut write_out,
                &mut ticker,
            )?
        }
    };
    store.healthy()?;
    out.flush().map_err(io_err)?;
    ticker.end(n as u64);
    Ok(n)
}

/// A buffer the CSV writer writes a row into, shared with the code that moves it on.
#[derive(Clone, Default)]
struct RowBuf(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);

impl Write for RowBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Records of an `ordered_set` serialized per chunk.
const CHUNK: usize = 1000;

/// Serializes every live record of the table with `f` (given how many came before) into a
/// chunk, hands each full chunk to `flush` once its lock is released; returns how many.
fn each<T: StoredRecord>(
    store: &TableStore<T>,
    mut f: impl FnMut(&T, usize, &mut Vec<u8>) -> Result<()>,
    flush: &mut dyn FnMut(&[u8]) -> Result<()>,
    ticker: &mut Ticker<'_>,
) -> Result<usize> {
    let alive = store.alive();
    let mut n = 0;
    let mut failed = None;
    let mut chunk = Vec::new();
    let mut visit = |rec: &T, chunk: &mut Vec<u8>, n: &mut usize| {
        if failed.is_none() && alive.keeps(rec) {
            match f(rec, *n, chunk) {
                Ok(()) => *n += 1,
                Err(e) => failed = Some(e),
            }
        }
    };
    if store.kind == crate::schema::record::TableType::OrderedSet {
        let mut after: Option<T::Key> = None;
        loop {
            let (mut seen, mut last) = (0, None);
            let lo = after.as_ref().map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
            store.scan_range(lo, std::ops::Bound::Unbounded, &mut |rec| {
                visit(rec, &mut chunk, &mut n);
                last = Some(rec.key().clone());
                seen += 1;
                seen < CHUNK
            });
            flush(&chunk)?;
            chunk.clear();
            ticker.at(n as u64);
            if seen < CHUNK {
                break;
            }
            after = last;
        }
    } else {
        for shard in 0..store.shard_count() {
            store.scan_shard_warmed(shard, |rec| visit(rec, &mut chunk, &mut n));
            flush(&chunk)?;
            chunk.clear();
            ticker.at(n as u64);
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(n),
    }
}
