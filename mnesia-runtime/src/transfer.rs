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
use crate::table::Table;

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

/// Writes every record of `T` in `format`; returns how many.
pub(crate) fn export_to<T: Table>(out: impl Write, format: Format) -> Result<usize> {
    let mut out = std::io::BufWriter::new(out);
    let mut n = 0;
    let json = |e: serde_json::Error| Error::Codec(format!("table {}: {e}", T::NAME));
    match format {
        Format::Json => {
            out.write_all(b"[").map_err(io_err)?;
            for rec in T::query().iter() {
                out.write_all(if n == 0 { b"\n" } else { b",\n" }).map_err(io_err)?;
                serde_json::to_writer(&mut out, &rec?).map_err(json)?;
                n += 1;
            }
            out.write_all(b"\n]\n").map_err(io_err)?;
        }
        Format::JsonLines => {
            for rec in T::query().iter() {
                serde_json::to_writer(&mut out, &rec?).map_err(json)?;
                out.write_all(b"\n").map_err(io_err)?;
                n += 1;
            }
        }
        Format::Csv => {
            let csv_err = |e: csv::Error| Error::Codec(format!("table {}: {e}", T::NAME));
            let mut w = csv::Writer::from_writer(&mut out);
            w.write_record(T::FIELDS.iter().map(|f| f.name)).map_err(csv_err)?;
            let mut row: Vec<String> = Vec::with_capacity(T::FIELDS.len());
            for rec in T::query().iter() {
                let Value::Object(mut obj) = serde_json::to_value(rec?).map_err(json)? else {
                    return Err(Error::Codec(format!("table {}: a record is not a JSON object", T::NAME)));
                };
                row.clear();
                for f in T::FIELDS {
                    row.push(match obj.swap_remove(f.name) {
                        None | Some(Value::Null) => String::new(),
                        Some(Value::String(s)) => s,
                        Some(other) => other.to_string(),
                    });
                }
                w.write_record(&row).map_err(csv_err)?;
                n += 1;
            }
            w.flush().map_err(io_err)?;
        }
    }
    out.flush().map_err(io_err)?;
    Ok(n)
}

/// A JSON error's message with its column (its line is the import error's).
fn json_reason(e: &serde_json::Error) -> String {
    let message = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let message = message.strip_suffix(&suffix).unwrap_or(&message);
    if e.column() == 0 { message.to_owned() } else { format!("{message} (column {})", e.column()) }
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

/// A CSV cell as the JSON value of a field of type `ty` (see the module's rules).
fn cell_value(cell: &str, ty: Option<&str>) -> Value {
    let inner = ty.and_then(|t| t.strip_prefix("Option<")).and_then(|t| t.strip_suffix('>'));
    match (ty, inner) {
        (Some(t), _) if string_like(t) => Value::String(cell.to_owned()),
        (_, Some(t)) if string_like(t) => {
            if cell.is_empty() {
                Value::Null
            } else {
                Value::String(cell.to_owned())
            }
        }
        _ if cell.is_empty() => Value::Null,
        _ => serde_json::from_str(cell).unwrap_or_else(|_| Value::String(cell.to_owned())),
    }
}

fn parse_csv<T: Table>(input: impl Read) -> Result<Vec<(u64, T)>> {
    let mut r = csv::ReaderBuilder::new().has_headers(true).from_reader(input);
    let located = |e: csv::Error| {
        let line = e.position().map_or(0, csv::Position::line);
        bad(line, None, e)
    };
    let headers = r.headers().map_err(located)?.clone();
    let mut types = Vec::with_capacity(headers.len());
    for h in headers.iter() {
        match T::FIELDS.iter().find(|f| f.name == h) {
            Some(f) => types.push(f.ty),
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
    let mut out = Vec::new();
    let mut row = csv::StringRecord::new();
    loop {
        match r.read_record(&mut row) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(located(e)),
        }
        let line = row.position().map_or(0, csv::Position::line);
        let obj: serde_json::Map<String, Value> = headers
            .iter()
            .zip(row.iter())
            .zip(&types)
            .map(|((h, cell), ty)| (h.to_owned(), cell_value(cell, Some(ty))))
            .collect();
        let rec = serde_path_to_error::deserialize::<_, T>(Value::Object(obj))
            .map_err(|e| bad(line, field_of(e.path()).as_deref(), json_reason(e.inner())))?;
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

    #[test]
    fn cells_follow_the_field_type() {
        assert_eq!(cell_value("12", Some("String")), Value::String("12".into()));
        assert_eq!(cell_value("", Some("String")), Value::String(String::new()));
        assert_eq!(cell_value("", Some("Option<String>")), Value::Null);
        assert_eq!(cell_value("x", Some("Option<String>")), Value::String("x".into()));
        assert_eq!(cell_value("12", Some("u32")), Value::from(12));
        assert_eq!(cell_value("", Some("Option<u32>")), Value::Null);
        assert_eq!(cell_value("Active", Some("Status")), Value::String("Active".into()));
        assert_eq!(cell_value("[1,2]", Some("Vec<u8>")), serde_json::json!([1, 2]));
    }
}
