//! Export and import of a table as JSON (an array of objects), JSON Lines (one object per
//! line) or CSV (a header row of field names, RFC 4180 quoting).
//!
//! CSV cells: a string is written as it is; a number or a boolean as its text; `None` as an
//! empty cell; anything nested (a struct, a list, a map, an enum with data) as its JSON
//! text; a plain enum variant as its name. On import each field reads its cell as its type
//! asks (see `cells`).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

use crate::context::{run, with_tx};
use crate::error::{Error, Result};
use crate::ops;
use crate::progress::{Progress, Ticker};
use crate::record::Record;
use crate::store::TableStore;

/// A file format for [`Table::export`](crate::Table::export) and [`Table::import`](crate::Table::import).
///
/// ```
/// use mnesia::Format;
/// assert_eq!(Format::from_path("users.csv")?, Format::Csv);
/// assert_eq!(Format::from_path("users.jsonl")?, Format::JsonLines);
/// assert!(Format::from_path("users.xml").is_err());
/// # Ok::<(), mnesia::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// One JSON array of objects (`.json`).
    Json,
    /// One JSON object per line (`.jsonl`, `.ndjson`).
    JsonLines,
    /// A header row of field names, then one row per record (`.csv`).
    Csv,
}

impl Format {
    /// The format a file's extension names: `json`, `jsonl` or `ndjson`, `csv`.
    ///
    /// ```
    /// assert_eq!(mnesia::Format::from_path("a/b.JSON")?, mnesia::Format::Json);
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn from_path(path: impl AsRef<Path>) -> Result<Format> {
        let path = path.as_ref();
        let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("json") => Ok(Format::Json),
            Some("jsonl" | "ndjson") => Ok(Format::JsonLines),
            Some("csv") => Ok(Format::Csv),
            _ => Err(Error::Invalid(format!(
                "{}: the extension does not name a format (.json, .jsonl, .ndjson or .csv): give one with export_to/import_from",
                path.display()
            ))),
        }
    }
}

/// How [`Table::import_with`](crate::Table::import_with) writes what it reads.
///
/// ```
/// let opts = mnesia::ImportOptions::new().replace_existing(true).in_batches(10_000);
/// # let _ = opts;
/// ```
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    replace: bool,
    batch: Option<usize>,
    progress: Option<Progress>,
}

impl ImportOptions {
    /// The defaults: a record whose key exists is an error, and everything is written in
    /// one transaction (all or nothing).
    ///
    /// ```
    /// let opts = mnesia::ImportOptions::new();
    /// # let _ = opts;
    /// ```
    pub fn new() -> Self {
        ImportOptions::default()
    }

    /// Replaces records whose key exists, rather than refusing them; a key given twice in
    /// the input then keeps its last record (and both count in the number imported).
    ///
    /// ```
    /// let opts = mnesia::ImportOptions::new().replace_existing(true);
    /// # let _ = opts;
    /// ```
    pub fn replace_existing(mut self, replace: bool) -> Self {
        self.replace = replace;
        self
    }

    /// Writes in transactions of `records` each, rather than one, each batch as soon as it
    /// is read (JSON Lines and CSV; a JSON array is read whole first): memory stays bounded
    /// by the batch. A failure, in the input or in a write, leaves the batches before it
    /// written. Inside a transaction of the caller, an import joins it and this has no
    /// effect.
    ///
    /// ```
    /// let opts = mnesia::ImportOptions::new().in_batches(1000);
    /// # let _ = opts;
    /// ```
    pub fn in_batches(mut self, records: usize) -> Self {
        self.batch = Some(records.max(1));
        self
    }

    /// Calls `f` with the number of records read so far, every 10 000 records, and with
    /// the number imported once the import succeeded. `f` runs on the importing thread,
    /// which may hold the table's locks: it must not use the table nor create, drop or move
    /// tables.
    ///
    /// ```
    /// let opts = mnesia::ImportOptions::new().progress(|n| eprintln!("{n} records read"));
    /// # let _ = opts;
    /// ```
    pub fn progress(mut self, f: impl Fn(u64) + Send + Sync + 'static) -> Self {
        self.progress = Some(Progress::new(f));
        self
    }
}

/// How [`Table::export_with`](crate::Table::export_with) writes.
///
/// ```
/// let opts = mnesia::ExportOptions::new().format(mnesia::Format::JsonLines);
/// # let _ = opts;
/// ```
#[derive(Clone, Debug, Default)]
pub struct ExportOptions {
    format: Option<Format>,
    progress: Option<Progress>,
}

impl ExportOptions {
    /// The defaults: the format the file's extension names, no progress callback.
    ///
    /// ```
    /// let opts = mnesia::ExportOptions::new();
    /// # let _ = opts;
    /// ```
    pub fn new() -> Self {
        ExportOptions::default()
    }

    /// Writes in `format`, whatever the file's extension.
    ///
    /// ```
    /// let opts = mnesia::ExportOptions::new().format(mnesia::Format::Csv);
    /// # let _ = opts;
    /// ```
    pub fn format(mut self, format: Format) -> Self {
        self.format = Some(format);
        self
    }

    /// Calls `f` with the number of records written so far, about every 10 000 records,
    /// and with the number exported at the end.
    ///
    /// ```
    /// let opts = mnesia::ExportOptions::new().progress(|n| eprintln!("{n} records written"));
    /// # let _ = opts;
    /// ```
    pub fn progress(mut self, f: impl Fn(u64) + Send + Sync + 'static) -> Self {
        self.progress = Some(Progress::new(f));
        self
    }
}

fn io_err(e: std::io::Error) -> Error {
    Error::Io { path: "<stream>".into(), source: e }
}

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

/// Tells a `tracing` subscriber that a table was exported or imported.
fn finished(done: &'static str, table: &str, format: Format, records: usize, started: std::time::Instant) {
    tracing::info!(
        target: "mnesia::transfer",
        table,
        records,
        format = ?format,
        took_ms = started.elapsed().as_secs_f64() * 1e3,
        "{done}"
    );
}

/// [`export_to`]'s work.
fn export_records<T: Record>(out: impl Write, format: Format, progress: Option<&Progress>) -> Result<usize> {
    let store = crate::context::current_db()?.table::<T>()?;
    let mut ticker = Ticker::new(progress);
    let json = |e: serde_json::Error| Error::codec(format!("table {}", T::NAME), e);
    let csv_err = |e: csv::Error| Error::codec(format!("table {}", T::NAME), e);
    let mut out = std::io::BufWriter::new(out);
    let mut write_out = |chunk: &[u8]| out.write_all(chunk).map_err(io_err);
    let n = match format {
        Format::Json => {
            let n = each(
                &store,
                |rec, n, chunk| {
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
            |rec, _, chunk| {
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
                |rec, _, chunk| {
                    crate::cells::write_cells(rec, &names, &mut cells)
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
fn each<T: Record>(
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
    if store.kind == crate::record::TableType::OrderedSet {
        let mut after: Option<T::Key> = None;
        loop {
            let (mut seen, mut last) = (0, None);
            let lo = after.as_ref().map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
            store.scan_range(lo, std::ops::Bound::Unbounded, |rec| {
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

/// A JSON error's message with its column (its line is the import error's).
fn json_reason(e: &serde_json::Error) -> String {
    match e.column() {
        0 => message(e),
        column => format!("{} (column {column})", message(e)),
    }
}

/// A JSON error's message without its position (which is in the row's JSON, not the input).
fn message(e: &serde_json::Error) -> String {
    let message = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    message.strip_suffix(&suffix).unwrap_or(&message).to_owned()
}

/// The field a deserialization error concerns, if it is known.
fn field_of(path: &serde_path_to_error::Path) -> Option<String> {
    let p = path.to_string();
    (p != "." && p != "?").then_some(p)
}

/// A located import error.
fn bad(line: u64, column: Option<&str>, reason: impl std::fmt::Display) -> Error {
    Error::Import { line, column: column.map(str::to_owned), reason: reason.to_string() }
}

/// Hands each record of `input` in `format` to `emit`, with its line (1-based; JSON: where
/// it ends), as it is read (a JSON array: once it is read whole).
fn parse_each<T: Record>(
    input: impl Read,
    format: Format,
    emit: &mut dyn FnMut(u64, T) -> Result<()>,
) -> Result<()> {
    match format {
        Format::Json => {
            LINE.with(|l| l.set(1));
            let mut de = serde_json::Deserializer::from_reader(CountLines(BufReader::new(input)));
            let recs: Records<T> = serde_path_to_error::deserialize(&mut de).map_err(|e| {
                bad(e.inner().line() as u64, field_of(e.path()).as_deref(), json_reason(e.inner()))
            })?;
            de.end().map_err(|e| bad(e.line() as u64, None, json_reason(&e)))?;
            recs.0.into_iter().try_for_each(|(line, rec)| emit(line, rec))
        }
        Format::JsonLines => {
            for (i, line) in BufReader::new(input).lines().enumerate() {
                let line_no = i as u64 + 1;
                let line = line.map_err(|e| bad(line_no, None, e))?;
                if line.trim().is_empty() {
                    continue;
                }
                let mut de = serde_json::Deserializer::from_str(&line);
                let rec = match T::deserialize(&mut de) {
                    Ok(rec) => rec,
                    // Read again, tracking the path, to name the field.
                    Err(first) => {
                        let mut again = serde_json::Deserializer::from_str(&line);
                        let e = match serde_path_to_error::deserialize::<_, T>(&mut again) {
                            Ok(_) => return Err(bad(line_no, None, json_reason(&first))),
                            Err(e) => e,
                        };
                        return Err(bad(line_no, field_of(e.path()).as_deref(), json_reason(e.inner())));
                    }
                };
                de.end().map_err(|e| bad(line_no, None, json_reason(&e)))?;
                emit(line_no, rec)?;
            }
            Ok(())
        }
        Format::Csv => parse_csv(input, emit),
    }
}

thread_local! {
    /// The line a JSON array is being read at (see `CountLines`).
    static LINE: std::cell::Cell<u64> = const { std::cell::Cell::new(1) };
}

/// Counts the lines read, for the line of each element of a JSON array. `serde_json` reads
/// a byte at a time from it, so the count is where the parser is.
struct CountLines<R>(R);

impl<R: Read> Read for CountLines<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.read(buf)?;
        let lines = buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
        if lines > 0 {
            LINE.with(|l| l.set(l.get() + lines));
        }
        Ok(n)
    }
}

/// A JSON array's records, each with the line it ends on.
struct Records<T>(Vec<(u64, T)>);

impl<'de, T: Record> serde::Deserialize<'de> for Records<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visit<T>(std::marker::PhantomData<T>);
        impl<'de, T: Record> serde::de::Visitor<'de> for Visit<T> {
            type Value = Records<T>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an array of records")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Records<T>, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(rec) = seq.next_element::<T>()? {
                    out.push((LINE.with(std::cell::Cell::get), rec));
                }
                Ok(Records(out))
            }
        }
        d.deserialize_seq(Visit(std::marker::PhantomData))
    }
}

fn parse_csv<T: Record>(input: impl Read, emit: &mut dyn FnMut(u64, T) -> Result<()>) -> Result<()> {
    let mut r = csv::ReaderBuilder::new().has_headers(true).from_reader(input);
    let located = |e: csv::Error| {
        let line = e.position().map_or(0, csv::Position::line);
        bad(line, None, e)
    };
    let headers = r.headers().map_err(located)?.clone();
    for h in headers.iter() {
        if !T::FIELDS.iter().any(|f| f.name == h) {
            let known: Vec<&str> = T::FIELDS.iter().map(|f| f.name).collect();
            return Err(bad(
                1,
                Some(h),
                format!("unknown column `{h}`: the fields of {} are {known:?}", T::NAME),
            ));
        }
    }
    if let Some(missing) = T::FIELDS.iter().find(|f| !headers.iter().any(|h| h == f.name)) {
        return Err(bad(1, Some(missing.name), format!("no column for the field `{}`", missing.name)));
    }
    let mut row = csv::StringRecord::new();
    loop {
        match r.read_record(&mut row) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(located(e)),
        }
        let line = row.position().map_or(0, csv::Position::line);
        let rec = match T::deserialize(crate::cells::Row { headers: &headers, cells: &row }) {
            Ok(rec) => rec,
            // Read again, tracking the path, to name the field.
            Err(first) => {
                let again = crate::cells::Row { headers: &headers, cells: &row };
                let e = match serde_path_to_error::deserialize::<_, T>(again) {
                    Ok(_) => return Err(bad(line, None, message(&first))),
                    Err(e) => e,
                };
                return Err(bad(line, field_of(e.path()).as_deref(), message(e.inner())));
            }
        };
        emit(line, rec)?;
    }
    Ok(())
}

/// Reads every record of `input` and writes them (see [`ImportOptions`]); returns how many.
/// Without batches, the input is read whole before anything is written; with them, each
/// batch is written as soon as it is read (a JSON array is still read whole first).
/// `input_len`, when known (a file's), sizes the new store of a bulk load: once a first
/// batch is read, the records to come are estimated from the bytes it took.
pub(crate) fn import_from<T: Record>(
    input: impl Read,
    input_len: Option<u64>,
    format: Format,
    opts: &ImportOptions,
) -> Result<usize> {
    let started = std::time::Instant::now();
    let imported = import_records::<T>(input, input_len, format, opts);
    if let Ok(records) = &imported {
        finished("imported", T::NAME, format, *records, started);
    }
    imported
}

/// [`import_from`]'s work.
fn import_records<T: Record>(
    input: impl Read,
    input_len: Option<u64>,
    format: Format,
    opts: &ImportOptions,
) -> Result<usize> {
    let Some(db) = bulk_target::<T>(opts)? else { return import_in_tx::<T>(input, format, opts) };
    // No table is created, dropped, moved or checkpointed meanwhile (see `bulk.rs`); the
    // table is looked at again now that it cannot change.
    let schema = db.inner.schema.lock();
    let store = db.registered::<T>()?;
    let indexes = store.indexes.load_full();
    let held = crate::db::lock_all(&store, &indexes);
    if store.len() != 0 || store.storage() == crate::record::StorageType::DiscOnlyCopies {
        drop((held, schema));
        return import_in_tx::<T>(input, format, opts);
    }
    let seq = db.next_seq();
    let mut loader = crate::bulk::TableLoader::new(&db, std::sync::Arc::clone(&store), seq, 0, 0)?;
    let mut ticker = Ticker::new(opts.progress.as_ref());
    let (n, mut logs) = crate::bulk::fan_out(
        crate::any_table::LogBatch::default,
        |log, batch: Vec<(u64, T)>| {
            let lines: Vec<u64> = batch.iter().map(|(line, _)| *line).collect();
            let items = batch
                .into_iter()
                .map(|(_, rec)| (rec.key().clone(), crate::store::Write::Put(rec), None))
                .collect();
            loader.load_batch(items, log).map_err(|(at, c)| located::<T>(c, lines[at]))?;
            loader.log_if_full(log)
        },
        |hand| {
            let mut batch = Vec::with_capacity(BULK_BATCH);
            let mut n = 0;
            let read = std::cell::Cell::new(0u64);
            let input = CountBytes { inner: input, read: &read };
            parse_each::<T>(input, format, &mut |line, mut rec| {
                // Ids are given in the input's order, here, from the live table's counter
                // (which `next_id` also takes from meanwhile), and an id read moves it past.
                crate::ops::prepare_new(&db, &store, &mut rec)?;
                if let Some(id) = rec.auto_id() {
                    store.counter.fetch_max(id, std::sync::atomic::Ordering::AcqRel);
                }
                batch.push((line, rec));
                n += 1;
                ticker.at(n as u64);
                if n == BULK_BATCH
                    && let Some(len) = input_len
                {
                    // Sized once for the whole input: no rehashing as it grows. (A hint
                    // only, kept to a record per 16 bytes of input.)
                    let per_record = (read.get() / n as u64).max(16);
                    let expected = len / per_record + len / per_record / 8;
                    loader.store().reserve(usize::try_from(expected).unwrap_or(0));
                }
                if batch.len() == BULK_BATCH {
                    hand(std::mem::replace(&mut batch, Vec::with_capacity(BULK_BATCH)))?;
                }
                Ok(())
            })?;
            if !batch.is_empty() {
                hand(batch)?;
            }
            Ok(n)
        },
    )?;
    for log in &mut logs {
        loader.log(log)?;
    }
    let switch = vec![loader.switch()?];
    crate::bulk::put_in_place(&db, switch, |tables| vec![loader.install(tables, false)])?;
    drop((held, schema));
    ticker.end(n as u64);
    Ok(n)
}

/// Records handed to a loading thread at a time.
const BULK_BATCH: usize = 4096;

/// Counts the bytes read through it.
struct CountBytes<'a, R> {
    inner: R,
    read: &'a std::cell::Cell<u64>,
}

impl<R: Read> Read for CountBytes<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.set(self.read.get() + n as u64);
        Ok(n)
    }
}

/// The database of an import that loads a new store (see `bulk.rs`): one in a single
/// piece, outside a transaction, that replaces nothing, of a `set` or `ordered_set` kept in
/// memory. (Whether the table is empty is checked once it is locked.)
fn bulk_target<T: Record>(opts: &ImportOptions) -> Result<Option<crate::db::Database>> {
    if opts.batch.is_some()
        || opts.replace
        || T::TYPE == crate::record::TableType::Bag
        || crate::is_transaction()
    {
        return Ok(None);
    }
    let db = crate::context::current_db()?;
    let storage = db.table::<T>()?.storage();
    // A bulk load does not reach a commit-record sink or a sequencer: with one, the import
    // commits in transactions instead.
    Ok((storage != crate::record::StorageType::DiscOnlyCopies && !db.commits_elsewhere()).then_some(db))
}

/// The located error of a record a bulk import could not load.
fn located<T: Record>(c: crate::bulk::Conflict<T::Key>, line: u64) -> Error {
    match c {
        crate::bulk::Conflict::Twice(key) => {
            bad(line, None, Error::AlreadyExists { table: T::NAME.to_owned(), key: format!("{key:?}") })
        }
        crate::bulk::Conflict::Unique { field, value, other, .. } => bad(
            line,
            Some(field),
            Error::UniqueViolation {
                table: T::NAME.to_owned(),
                field,
                value,
                existing_key: format!("{other:?}"),
            },
        ),
        crate::bulk::Conflict::Failed(e) => e,
    }
}

/// [`import_from`] in transactions: one, or one per batch.
fn import_in_tx<T: Record>(input: impl Read, format: Format, opts: &ImportOptions) -> Result<usize> {
    let write = |chunk: &[(u64, T)]| -> Result<()> {
        run(|| {
            with_tx(|tx| {
                for (line, rec) in chunk {
                    ops::import_record(tx, rec.clone(), opts.replace).map_err(|e| match e {
                        Error::AlreadyExists { .. } => bad(*line, None, e),
                        other => other,
                    })?;
                }
                Ok(())
            })
        })
        .map_err(|e| locate_unique(e, chunk))
    };
    let mut pending: Vec<(u64, T)> = Vec::new();
    let mut n = 0;
    let mut ticker = Ticker::new(opts.progress.as_ref());
    let mut read = 0u64;
    parse_each::<T>(input, format, &mut |line, rec| {
        pending.push((line, rec));
        read += 1;
        ticker.at(read);
        if opts.batch.is_some_and(|b| pending.len() >= b) {
            write(&pending)?;
            n += pending.len();
            pending.clear();
        }
        Ok(())
    })?;
    if !pending.is_empty() {
        write(&pending)?;
        n += pending.len();
    }
    ticker.end(n as u64);
    Ok(n)
}

/// A unique violation found at commit, with the line of the record that broke it: one
/// holding the value (as the index shows it) under another key than its holder's.
fn locate_unique<T: Record>(e: Error, recs: &[(u64, T)]) -> Error {
    let Error::UniqueViolation { field, ref value, ref existing_key, .. } = e else { return e };
    let Ok(store) = crate::context::current_db().and_then(|db| db.table::<T>()) else { return e };
    let indexes = store.indexes.load();
    let Some(idx) = indexes.list.iter().find(|i| i.field() == field) else { return e };
    let line = recs
        .iter()
        .find(|(_, rec)| format!("{:?}", rec.key()) != *existing_key && idx.value_debug(rec) == *value)
        .map(|(line, _)| *line);
    match line {
        Some(line) => bad(line, Some(field), e),
        None => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Any input in any format: no panic, and a failed import changes nothing.
        #[test]
        fn any_input_is_imported_or_refused_whole(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            fuzzing::import(&bytes);
        }

        /// Inputs shaped like the formats get further than the first byte.
        #[test]
        fn near_valid_input_is_imported_or_refused_whole(
            format in 0u8..3,
            rows in proptest::collection::vec(("[0-9]{1,3}", "[a-z,\"\n ]{0,6}", proptest::option::of("[a-z]{0,3}")), 0..5),
        ) {
            let mut text = String::new();
            match format {
                2 => {
                    text.push_str("id,name,note,n,tags\n");
                    for (id, name, note) in &rows {
                        text.push_str(&format!("{id},\"{}\",{},7,[]\n", name.replace('"', "\"\""), note.clone().unwrap_or_default()));
                    }
                }
                _ => {
                    let objs: Vec<String> = rows.iter().map(|(id, name, note)| {
                        serde_json::json!({"id": id.parse::<u32>().unwrap_or(0), "name": name, "note": note, "n": null, "tags": []}).to_string()
                    }).collect();
                    text = if format == 0 { format!("[{}]", objs.join(",\n")) } else { objs.join("\n") };
                }
            }
            let mut bytes = vec![format | if rows.len() % 2 == 0 { 0 } else { 0x80 }];
            bytes.extend(text.as_bytes());
            fuzzing::import(&bytes);
        }
    }
}

/// Entry points for fuzzing the import decoders (see `fuzz/`).
#[doc(hidden)]
pub mod fuzzing {
    use serde::{Deserialize, Serialize};

    use crate::record::{FieldInfo, Record, TableType};
    use crate::{Database, Format, ImportOptions, IndexSpec, Table as _, TableOptions};

    /// A record with strings, options, a list and a unique index, as imports see them.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct FuzzRecord {
        id: u32,
        name: String,
        note: Option<String>,
        n: Option<i64>,
        tags: Vec<String>,
    }

    impl Record for FuzzRecord {
        type Key = u32;
        const NAME: &'static str = "fuzz";
        const TYPE: TableType = TableType::Set;
        const FIELDS: &'static [FieldInfo] = &[
            FieldInfo { name: "id", ty: "u32" },
            FieldInfo { name: "name", ty: "String" },
            FieldInfo { name: "note", ty: "Option<String>" },
            FieldInfo { name: "n", ty: "Option<i64>" },
            FieldInfo { name: "tags", ty: "Vec<String>" },
        ];
        const KEY_POSITION: usize = 0;
        const AUTO_INCREMENT: bool = false;

        fn key(&self) -> &u32 {
            &self.id
        }

        fn indexes() -> Vec<IndexSpec<Self>> {
            vec![crate::Field::new("name", 1, |r: &FuzzRecord| &r.name).index_spec(true)]
        }
    }

    /// Imports `bytes` (the first byte picks the format, and whether the table holds a
    /// record, so that the import runs in a transaction, or is empty, so that it loads a new
    /// store): whatever the input, no panic, and a failed import leaves the table alone.
    pub fn import(bytes: &[u8]) {
        let Some((first, rest)) = bytes.split_first() else { return };
        let format = match (first & 0x7f) % 3 {
            0 => Format::Json,
            1 => Format::JsonLines,
            _ => Format::Csv,
        };
        let Ok(db) = Database::in_memory() else { return };
        db.scope(|| {
            let kept = if first & 0x80 == 0 {
                vec![FuzzRecord { id: 1, name: "kept".into(), note: None, n: Some(1), tags: vec![] }]
            } else {
                Vec::new()
            };
            if FuzzRecord::create_table(TableOptions::new()).is_err()
                || FuzzRecord::batch_write(kept.iter().cloned()).is_err()
            {
                return;
            }
            if FuzzRecord::import_from(rest, format, &ImportOptions::new()).is_err() {
                assert_eq!(FuzzRecord::list().ok(), Some(kept), "a failed import changed the table");
            }
        });
    }
}
