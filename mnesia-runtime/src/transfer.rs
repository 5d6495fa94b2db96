//! Export and import of a table as JSON (an array of objects), JSON Lines (one object per
//! line) or CSV (a header row of field names, RFC 4180 quoting).
//!
//! CSV cells: a string is written as it is; a number or a boolean as its JSON text; `None`
//! (JSON `null`) as an empty cell; anything nested (a struct, a list, an enum with data) as
//! its JSON text. On import, a cell of a `String` field is that string (an empty cell: the
//! empty string); of an `Option<String>` field, `None` when empty; of any other field,
//! `None`/null when empty, else the cell read as JSON, or as a JSON string when it is not
//! JSON (a plain enum variant such as `Active`).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

use serde_json::Value;

use crate::context::{run, with_tx};
use crate::error::{Error, Result};
use crate::ops;
use crate::store::TableStore;
use crate::table::Table;
use crate::ttl::Alive;

/// A file format for [`Table::export`] and [`Table::import`].
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

/// How [`Table::import_with`] writes what it reads.
///
/// ```
/// let opts = mnesia::ImportOptions::new().replace_existing(true).in_batches(10_000);
/// # let _ = opts;
/// ```
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    replace: bool,
    batch: Option<usize>,
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

    /// Replaces records whose key exists, rather than refusing them.
    ///
    /// ```
    /// let opts = mnesia::ImportOptions::new().replace_existing(true);
    /// # let _ = opts;
    /// ```
    pub fn replace_existing(mut self, replace: bool) -> Self {
        self.replace = replace;
        self
    }

    /// Writes in transactions of `records` each, rather than one: memory stays bounded for a
    /// very large import, but a failure leaves the batches before it written.
    ///
    /// ```
    /// let opts = mnesia::ImportOptions::new().in_batches(1000);
    /// # let _ = opts;
    /// ```
    pub fn in_batches(mut self, records: usize) -> Self {
        self.batch = Some(records.max(1));
        self
    }
}

fn io_err(e: std::io::Error) -> Error {
    Error::Io { path: "<stream>".into(), source: e }
}

/// Writes every record of `T` in `format`; returns how many. Each shard is written under
/// its read lock, straight from the stored records (no copy of the table).
pub(crate) fn export_to<T: Table>(out: impl Write, format: Format) -> Result<usize> {
    let store = crate::context::current_db()?.table::<T>()?;
    let json = |e: serde_json::Error| Error::Codec(format!("table {}: {e}", T::NAME));
    let mut out = std::io::BufWriter::new(out);
    let n = match format {
        Format::Json => {
            let n = each(&store, |rec, n| {
                out.write_all(if n == 0 { b"[\n" } else { b",\n" }).map_err(io_err)?;
                serde_json::to_writer(&mut out, rec).map_err(json)
            })?;
            out.write_all(if n == 0 { b"[\n]\n" } else { b"\n]\n" }).map_err(io_err)?;
            n
        }
        Format::JsonLines => each(&store, |rec, _| {
            serde_json::to_writer(&mut out, rec).map_err(json)?;
            out.write_all(b"\n").map_err(io_err)
        })?,
        Format::Csv => {
            let csv_err = |e: csv::Error| Error::Codec(format!("table {}: {e}", T::NAME));
            // Each row is made in `w`, into `row`, then copied out.
            let row = RowBuf::default();
            let row_writer = || csv::WriterBuilder::new().has_headers(false).from_writer(row.clone());
            let mut w = row_writer();
            w.write_record(T::FIELDS.iter().map(|f| f.name)).map_err(csv_err)?;
            let mut buf = Vec::new();
            let copy_out = |w: &mut csv::Writer<RowBuf>, out: &mut std::io::BufWriter<_>| -> Result<()> {
                w.flush().map_err(io_err)?;
                let mut bytes = row.0.borrow_mut();
                out.write_all(&bytes).map_err(io_err)?;
                bytes.clear();
                Ok(())
            };
            copy_out(&mut w, &mut out)?;
            each(&store, |rec, _| {
                // Flat records: the csv serializer writes the same cells, faster.
                if w.serialize(rec).is_ok() {
                    return copy_out(&mut w, &mut out);
                }
                // Something nested: cells from the record's JSON (a new writer: the failed
                // one may hold half a row).
                w = row_writer();
                // Dropping the failed writer flushed its half row.
                row.0.borrow_mut().clear();
                buf.clear();
                serde_json::to_writer(&mut buf, rec).map_err(json)?;
                let fields: TopLevel<'_> = serde_json::from_slice(&buf).map_err(json)?;
                for f in T::FIELDS {
                    match fields.0.iter().find(|(k, _)| *k == f.name).map(|(_, v)| v.get()) {
                        None | Some("null") => w.write_field("").map_err(csv_err)?,
                        Some(t) if t.starts_with('"') && !t.contains('\\') => {
                            w.write_field(&t[1..t.len() - 1]).map_err(csv_err)?;
                        }
                        Some(t) if t.starts_with('"') => {
                            let s: String = serde_json::from_str(t).map_err(json)?;
                            w.write_field(s).map_err(csv_err)?;
                        }
                        Some(t) => w.write_field(t).map_err(csv_err)?,
                    }
                }
                w.write_record(std::iter::empty::<&[u8]>()).map_err(csv_err)?;
                copy_out(&mut w, &mut out)
            })?
        }
    };
    store.healthy()?;
    out.flush().map_err(io_err)?;
    Ok(n)
}

/// A buffer the CSV writer writes a row into, shared with the code that copies it out.
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

/// Calls `f` with every live record of the table and how many came before; returns how
/// many. Each shard is visited under its read lock.
fn each<T: Table>(store: &TableStore<T>, mut f: impl FnMut(&T, usize) -> Result<()>) -> Result<usize> {
    let alive = Alive::now::<T>();
    let mut n = 0;
    let mut failed = None;
    for shard in 0..store.shard_count() {
        store.scan_shard(shard, |rec| {
            if failed.is_some() || !alive.keeps(rec) {
                return;
            }
            match f(rec, n) {
                Ok(()) => n += 1,
                Err(e) => failed = Some(e),
            }
        });
        if let Some(e) = failed {
            return Err(e);
        }
    }
    Ok(n)
}

/// A JSON object's top-level fields, as raw JSON text borrowed from the input.
struct TopLevel<'a>(Vec<(&'a str, &'a serde_json::value::RawValue)>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for TopLevel<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = TopLevel<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a record as a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<TopLevel<'de>, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(entry) = map.next_entry()? {
                    out.push(entry);
                }
                Ok(TopLevel(out))
            }
        }
        d.deserialize_map(Visit)
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

/// The records of `input` in `format`, each with its line (1-based; JSON: where it ends).
pub(crate) fn parse<T: Table>(input: impl Read, format: Format) -> Result<Vec<(u64, T)>> {
    match format {
        Format::Json => {
            LINE.with(|l| l.set(1));
            let mut de = serde_json::Deserializer::from_reader(CountLines(BufReader::new(input)));
            let recs: Records<T> = serde_path_to_error::deserialize(&mut de).map_err(|e| {
                bad(e.inner().line() as u64, field_of(e.path()).as_deref(), json_reason(e.inner()))
            })?;
            de.end().map_err(|e| bad(e.line() as u64, None, json_reason(&e)))?;
            Ok(recs.0)
        }
        Format::JsonLines => {
            let mut out = Vec::new();
            for (i, line) in BufReader::new(input).lines().enumerate() {
                let line_no = i as u64 + 1;
                let line = line.map_err(|e| bad(line_no, None, e))?;
                if line.trim().is_empty() {
                    continue;
                }
                let mut de = serde_json::Deserializer::from_str(&line);
                let rec = serde_path_to_error::deserialize::<_, T>(&mut de)
                    .map_err(|e| bad(line_no, field_of(e.path()).as_deref(), json_reason(e.inner())))?;
                de.end().map_err(|e| bad(line_no, None, json_reason(&e)))?;
                out.push((line_no, rec));
            }
            Ok(out)
        }
        Format::Csv => parse_csv(input),
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

impl<'de, T: Table> serde::Deserialize<'de> for Records<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visit<T>(std::marker::PhantomData<T>);
        impl<'de, T: Table> serde::de::Visitor<'de> for Visit<T> {
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

/// Whether a field of this Rust type holds a string, so that a CSV cell is taken as it is.
fn string_like(ty: &str) -> bool {
    matches!(ty, "String" | "char" | "Box<str>" | "Arc<str>" | "Rc<str>" | "PathBuf")
        || ty.ends_with("::String")
        || ty.ends_with("::PathBuf")
}

/// How a CSV cell of a field becomes JSON (see the module's rules).
#[derive(Clone, Copy)]
enum Cell {
    /// A string field: the cell as it is.
    Str,
    /// An optional string: `null` when empty, else the cell as it is.
    OptStr,
    /// Anything else: `null` when empty, else the cell as JSON, or as a string when it is
    /// not JSON.
    Json,
}

fn cell_kind(ty: &str) -> Cell {
    let inner = ty.strip_prefix("Option<").and_then(|t| t.strip_suffix('>'));
    match inner {
        _ if string_like(ty) => Cell::Str,
        Some(t) if string_like(t) => Cell::OptStr,
        _ => Cell::Json,
    }
}

/// Appends a CSV cell to a JSON object being built, as the value of its field.
fn push_cell(out: &mut Vec<u8>, cell: &str, kind: Cell) -> Result<()> {
    let string =
        |out: &mut Vec<u8>| serde_json::to_writer(out, cell).map_err(|e| Error::Codec(e.to_string()));
    match kind {
        Cell::Str => string(out),
        Cell::OptStr | Cell::Json if cell.is_empty() => {
            out.extend_from_slice(b"null");
            Ok(())
        }
        Cell::OptStr => string(out),
        Cell::Json => {
            if serde_json::from_str::<serde::de::IgnoredAny>(cell).is_ok() {
                out.extend_from_slice(cell.as_bytes());
                Ok(())
            } else {
                string(out)
            }
        }
    }
}

fn parse_csv<T: Table>(input: impl Read) -> Result<Vec<(u64, T)>> {
    let mut r = csv::ReaderBuilder::new().has_headers(true).from_reader(input);
    let located = |e: csv::Error| {
        let line = e.position().map_or(0, csv::Position::line);
        bad(line, None, e)
    };
    let headers = r.headers().map_err(located)?.clone();
    let mut kinds = Vec::with_capacity(headers.len());
    for h in headers.iter() {
        match T::FIELDS.iter().find(|f| f.name == h) {
            Some(f) => kinds.push(cell_kind(f.ty)),
            None => {
                let known: Vec<&str> = T::FIELDS.iter().map(|f| f.name).collect();
                return Err(bad(
                    1,
                    Some(h),
                    format!("unknown column `{h}`: the fields of {} are {known:?}", T::NAME),
                ));
            }
        }
    }
    if let Some(missing) = T::FIELDS.iter().find(|f| !headers.iter().any(|h| h == f.name)) {
        return Err(bad(1, Some(missing.name), format!("no column for the field `{}`", missing.name)));
    }
    // Each row becomes the text of a JSON object, read as the record.
    let mut text: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    let mut row = csv::StringRecord::new();
    loop {
        match r.read_record(&mut row) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(located(e)),
        }
        let line = row.position().map_or(0, csv::Position::line);
        text.clear();
        text.push(b'{');
        for (i, ((h, cell), kind)) in headers.iter().zip(row.iter()).zip(&kinds).enumerate() {
            if i > 0 {
                text.push(b',');
            }
            serde_json::to_writer(&mut text, h).map_err(|e| Error::Codec(e.to_string()))?;
            text.push(b':');
            push_cell(&mut text, cell, *kind)?;
        }
        text.push(b'}');
        let rec = match serde_json::from_slice::<T>(&text) {
            Ok(rec) => rec,
            // Read again to name the field.
            Err(_) => {
                let mut de = serde_json::Deserializer::from_slice(&text);
                let e = match serde_path_to_error::deserialize::<_, T>(&mut de) {
                    Ok(_) => return Err(bad(line, None, "the row does not make a record")),
                    Err(e) => e,
                };
                return Err(bad(line, field_of(e.path()).as_deref(), message(e.inner())));
            }
        };
        out.push((line, rec));
    }
    Ok(out)
}

/// Reads every record of `input` and writes them (see [`ImportOptions`]); returns how many.
pub(crate) fn import_from<T: Table>(input: impl Read, format: Format, opts: &ImportOptions) -> Result<usize> {
    let recs = parse::<T>(input, format)?;
    let n = recs.len();
    let batch = opts.batch.unwrap_or(n.max(1));
    for chunk in recs.chunks(batch) {
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
        .map_err(|e| locate_unique(e, chunk))?;
    }
    Ok(n)
}

/// A unique violation found at commit, with the line of the record that broke it: one
/// holding the value under another key than the one already holding it.
fn locate_unique<T: Table>(e: Error, recs: &[(u64, T)]) -> Error {
    let Error::UniqueViolation { field, ref value, ref existing_key, .. } = e else { return e };
    let line = recs.iter().find_map(|(line, rec)| {
        if format!("{:?}", rec.key()) == *existing_key {
            return None;
        }
        let v = serde_json::to_value(rec).ok()?;
        let shown = match v.get(field)? {
            Value::String(s) => format!("{s:?}"),
            other => other.to_string(),
        };
        (shown == *value).then_some(*line)
    });
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
            let mut bytes = vec![format];
            bytes.extend(text.as_bytes());
            fuzzing::import(&bytes);
        }
    }

    #[test]
    fn cells_follow_the_field_type() {
        let value = |cell: &str, ty: &str| {
            let mut out = Vec::new();
            push_cell(&mut out, cell, cell_kind(ty)).expect("cell");
            serde_json::from_slice::<Value>(&out).expect("json")
        };
        assert_eq!(value("12", "String"), Value::String("12".into()));
        assert_eq!(value("", "String"), Value::String(String::new()));
        assert_eq!(value("", "Option<String>"), Value::Null);
        assert_eq!(value("x", "Option<String>"), Value::String("x".into()));
        assert_eq!(value("12", "u32"), Value::from(12));
        assert_eq!(value("", "Option<u32>"), Value::Null);
        assert_eq!(value("Active", "Status"), Value::String("Active".into()));
        assert_eq!(value("[1,2]", "Vec<u8>"), serde_json::json!([1, 2]));
        assert_eq!(value("a \"q\"\n", "String"), Value::String("a \"q\"\n".into()));
    }
}

/// Entry points for fuzzing the import decoders (see `fuzz/`).
#[doc(hidden)]
pub mod fuzzing {
    use serde::{Deserialize, Serialize};

    use crate::table::{FieldInfo, Table, TableType};
    use crate::{Database, Format, ImportOptions, IndexSpec, TableOptions};

    /// A record with strings, options, a list and a unique index, as imports see them.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct FuzzRecord {
        id: u32,
        name: String,
        note: Option<String>,
        n: Option<i64>,
        tags: Vec<String>,
    }

    impl Table for FuzzRecord {
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

    /// Imports `bytes` (the first byte picks the format) into a table holding one record:
    /// whatever the input, no panic, and a failed import leaves that record alone.
    pub fn import(bytes: &[u8]) {
        let Some((first, rest)) = bytes.split_first() else { return };
        let format = match first % 3 {
            0 => Format::Json,
            1 => Format::JsonLines,
            _ => Format::Csv,
        };
        let Ok(db) = Database::in_memory() else { return };
        db.scope(|| {
            let kept = FuzzRecord { id: 1, name: "kept".into(), note: None, n: Some(1), tags: vec![] };
            if FuzzRecord::create_table(TableOptions::new()).is_err()
                || FuzzRecord::write(kept.clone()).is_err()
            {
                return;
            }
            if FuzzRecord::import_from(rest, format, &ImportOptions::new()).is_err() {
                assert_eq!(FuzzRecord::list().ok(), Some(vec![kept]), "a failed import changed the table");
            }
        });
    }
}
