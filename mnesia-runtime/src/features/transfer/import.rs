//! Import: records parsed from JSON, JSON Lines or CSV, with the line of every error, and
//! written in one transaction or loaded in bulk into a new store.

use std::io::{BufRead, BufReader, Read};

use crate::base::progress::Ticker;
use crate::error::{Error, Result};
use crate::schema::record::Record;
use crate::tx::context::run_tx;
use crate::tx::ops;

use super::{Format, ImportOptions, finished};

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

/// The field a JSON error concerns: its path, and for a field missing, the field itself
/// (serde names it only in the message).
fn json_field(path: &serde_path_to_error::Path, e: &serde_json::Error) -> Option<String> {
    let at = field_of(path);
    let message = message(e);
    let missing = message.strip_prefix("missing field `").and_then(|m| m.split_once('`')).map(|(f, _)| f);
    match (at, missing) {
        (Some(at), Some(field)) => Some(format!("{at}.{field}")),
        (at, field) => field.map(str::to_owned).or(at),
    }
}

/// A field of the input that the record type does not have (serde would drop it).
fn unknown_field<T: Record>(line: u64, field: &str) -> Error {
    let reason = if field.contains(['.', '[']) {
        format!("`{field}` is not a field of the record's type: importing would drop it")
    } else {
        let known: Vec<&str> = T::FIELDS.iter().map(|f| f.name).collect();
        format!("`{field}` is not a field of {} (its fields are {known:?}): importing would drop it", T::NAME)
    };
    bad(line, Some(field), reason)
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
            // Read whole first (the records are, anyway): a second reading is possible.
            let mut bytes = Vec::new();
            BufReader::new(input).read_to_end(&mut bytes).map_err(|e| bad(0, None, e))?;
            let (recs, unknown) = match json_array::<T>(&bytes, true) {
                Ok(read) => read,
                // Read again without watching for unknown fields: the watch cannot follow
                // some types (a map with float keys); the error, if any, is this one's.
                Err(_) => json_array::<T>(&bytes, false)?,
            };
            if let Some((line, field)) = unknown {
                return Err(unknown_field::<T>(line, &field));
            }
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
                let mut unknown: Option<String> = None;
                let note = |path: serde_ignored::Path<'_>| {
                    let path = spelled(&path);
                    if unknown.is_none() && !declared::<T>(&path) {
                        unknown = Some(path);
                    }
                };
                let rec = match serde_ignored::deserialize::<_, _, T>(&mut de, note) {
                    Ok(_) if unknown.is_some() => {
                        return Err(unknown_field::<T>(line_no, unknown.as_deref().unwrap_or_default()));
                    }
                    Ok(rec) => {
                        de.end().map_err(|e| bad(line_no, None, json_reason(&e)))?;
                        rec
                    }
                    // Read again without watching for unknown fields (the watch cannot follow
                    // some types: a map with float keys), tracking the path to name the field
                    // of an error.
                    Err(_) => {
                        let mut again = serde_json::Deserializer::from_str(&line);
                        let rec = serde_path_to_error::deserialize::<_, T>(&mut again).map_err(|e| {
                            bad(line_no, json_field(e.path(), e.inner()).as_deref(), json_reason(e.inner()))
                        })?;
                        again.end().map_err(|e| bad(line_no, None, json_reason(&e)))?;
                        rec
                    }
                };
                emit(line_no, rec)?;
            }
            Ok(())
        }
        Format::Csv => parse_csv(input, emit),
    }
}

/// A JSON array's records, with the first field of the input the record type does not
/// have (its line and path within the record), if `watch`.
#[allow(clippy::type_complexity)]
fn json_array<T: Record>(bytes: &[u8], watch: bool) -> Result<(Records<T>, Option<(u64, String)>)> {
    LINE.with(|l| l.set(1));
    let mut de = serde_json::Deserializer::from_reader(CountLines(bytes));
    let located = |e: serde_path_to_error::Error<serde_json::Error>| {
        bad(e.inner().line() as u64, json_field(e.path(), e.inner()).as_deref(), json_reason(e.inner()))
    };
    let mut unknown: Option<(u64, String)> = None;
    let recs: Records<T> = if watch {
        let mut note = |path: serde_ignored::Path<'_>| {
            let path = spelled(&path);
            // (The path starts with the record's place in the array.)
            let field = path.split_once('.').map_or(path.as_str(), |(_, field)| field);
            if unknown.is_none() && !declared::<T>(field) {
                unknown = Some((LINE.with(std::cell::Cell::get), path.clone()));
            }
        };
        serde_path_to_error::deserialize(serde_ignored::Deserializer::new(&mut de, &mut note))
            .map_err(located)?
    } else {
        serde_path_to_error::deserialize(&mut de).map_err(located)?
    };
    de.end().map_err(|e| bad(e.line() as u64, None, json_reason(&e)))?;
    Ok((recs, unknown))
}

/// A path as serde_path_to_error spells it in the other errors (`tags[0].x`, an `Option` or
/// a newtype adding nothing), not as serde_ignored does (`tags.0.x`, `address.?.city`).
fn spelled(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", spelled(parent)),
        Path::Map { parent, key } => match spelled(parent) {
            p if p.is_empty() => key.clone(),
            p => format!("{p}.{key}"),
        },
        Path::Some { parent } | Path::NewtypeStruct { parent } | Path::NewtypeVariant { parent } => {
            spelled(parent)
        }
    }
}

/// Whether an input field that deserializing passed over is one the struct declares (a
/// field it does not read, `#[serde(skip_deserializing)]`, which its export writes).
fn declared<T: Record>(field: &str) -> bool {
    T::FIELDS.iter().any(|f| f.name == field)
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
    let mut r =
        csv::ReaderBuilder::new().has_headers(true).from_reader(super::csv_check::Checked::new(input));
    let parsed = parse_csv_rows(&mut r, emit);
    // A quoting fault comes first: the records read after it (or the error they gave) are
    // the `csv` crate's lenient reading of a malformed file.
    match (r.get_ref().fault(), parsed) {
        (Some((line, what)), Ok(())) => Err(bad(line, None, what)),
        (Some((line, what)), Err(Error::Import { line: at, .. })) if line <= at => Err(bad(line, None, what)),
        (_, parsed) => parsed,
    }
}

fn parse_csv_rows<T: Record, R: Read>(
    r: &mut csv::Reader<super::csv_check::Checked<R>>,
    emit: &mut dyn FnMut(u64, T) -> Result<()>,
) -> Result<()> {
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
        // A quoting fault found in what the reader took ahead, at or before this row: this
        // row and those after are its lenient reading, never handed on (a batch would
        // commit them).
        if let Some((at, what)) = r.get_ref().fault().filter(|(at, _)| *at <= line) {
            return Err(bad(at, None, what));
        }
        let rec = match T::deserialize(crate::base::cells::Row { headers: &headers, cells: &row }) {
            Ok(rec) => rec,
            // Read again, tracking the path, to name the field.
            Err(first) => {
                let again = crate::base::cells::Row { headers: &headers, cells: &row };
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
    if store.len() != 0 || store.storage() == crate::schema::record::StorageType::DiscOnlyCopies {
        drop((held, schema));
        return import_in_tx::<T>(input, format, opts);
    }
    let seq = db.next_seq();
    let mut loader = crate::features::bulk::TableLoader::new(&db, std::sync::Arc::clone(&store), seq, 0, 0)?;
    let mut ticker = Ticker::new(opts.progress.as_ref());
    let (n, mut logs) = crate::features::bulk::fan_out(
        crate::db::any_table::LogBatch::default,
        |log, batch: Vec<(u64, T)>| {
            let lines: Vec<u64> = batch.iter().map(|(line, _)| *line).collect();
            let items = batch
                .into_iter()
                .map(|(_, rec)| {
                    (
                        rec.key().clone(),
                        crate::engine::store::Write::Put(crate::schema::row::Row::new(rec)),
                        None,
                    )
                })
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
                crate::tx::ops::prepare_new(&db, &store, &mut rec)?;
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
    crate::features::bulk::put_in_place(&db, switch, |tables| vec![loader.install(tables, false)])?;
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
        || T::TYPE == crate::schema::record::TableType::Bag
        || crate::is_transaction()
    {
        return Ok(None);
    }
    let db = crate::tx::context::current_db()?;
    let storage = db.table::<T>()?.storage();
    // A bulk load does not reach a commit-record sink or a sequencer: with one, the import
    // commits in transactions instead.
    Ok((storage != crate::schema::record::StorageType::DiscOnlyCopies && !db.commits_elsewhere())
        .then_some(db))
}

/// The located error of a record a bulk import could not load.
fn located<T: Record>(c: crate::features::bulk::Conflict<T::Key>, line: u64) -> Error {
    match c {
        // (A bulk load fills an empty table: the other record is the input's.)
        crate::features::bulk::Conflict::Twice(key) => bad(line, None, twice_in_input::<T>(&key, None)),
        crate::features::bulk::Conflict::Unique { field, value, other, .. } => bad(
            line,
            Some(field),
            Error::UniqueViolation {
                table: T::NAME.to_owned(),
                field,
                value,
                existing_key: format!("{other:?}"),
            },
        ),
        crate::features::bulk::Conflict::Failed(e) => e,
    }
}

/// Why a record whose key an earlier record of the input has is refused (`earlier`: that
/// record's line, when known).
fn twice_in_input<T: Record>(key: &T::Key, earlier: Option<u64>) -> String {
    let at = earlier.map_or(String::new(), |line| format!(" (line {line})"));
    format!("the key {key:?} is given twice in the input: an earlier record{at} of table {} has it", T::NAME)
}

/// [`import_from`] in transactions: one, or one per batch.
fn import_in_tx<T: Record>(input: impl Read, format: Format, opts: &ImportOptions) -> Result<usize> {
    let write = |chunk: &[(u64, T)]| -> Result<()> {
        run_tx(|tx| {
            for (i, (line, rec)) in chunk.iter().enumerate() {
                ops::import_record(tx, rec.clone(), opts.replace).map_err(|e| match e {
                    Error::AlreadyExists { .. } => {
                        // The key earlier in this piece of the input, or in the table.
                        match chunk[..i].iter().rev().find(|(_, earlier)| earlier.key() == rec.key()) {
                            Some((earlier, _)) => {
                                bad(*line, None, twice_in_input::<T>(rec.key(), Some(*earlier)))
                            }
                            None => bad(*line, None, e),
                        }
                    }
                    other => other,
                })?;
            }
            Ok(())
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
    let Ok(store) = crate::tx::context::current_db().and_then(|db| db.table::<T>()) else { return e };
    let indexes = store.indexes.load();
    let Some(idx) = indexes.list.iter().find(|i| i.field() == field) else { return e };
    let line = recs
        .iter()
        .find(|(_, rec)| {
            format!("{:?}", rec.key()) != *existing_key
                && idx.value_debug(&crate::schema::row::Row::new(rec.clone())) == *value
        })
        .map(|(line, _)| *line);
    match line {
        Some(line) => bad(line, Some(field), e),
        None => e,
    }
}
