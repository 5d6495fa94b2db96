//! A table's records read from a database directory without the program's types: decoded
//! through the record format the schema keeps, and written as JSON, JSON Lines or CSV the
//! way `T::export` writes them (`mnesia dump`).

use std::io::Write;
use std::path::Path;

use serde_json::Value;
use serde_reflection::Format as Shape;

use crate::disk::format::{self, RecordFormat};
use crate::disk::record::Logged;
use crate::disk::{self, schema};
use crate::error::{Error, Result};
use crate::features::inspect::Recovered;
use crate::features::schema::Schema;
use crate::features::transfer::Format;
use crate::schema::record::StorageType;

impl Schema {
    /// The records of table `table` of the database directory `dir`, each as the JSON
    /// value serde_json gives for it (what `T::export` writes), decoded through the record
    /// format the schema keeps: no Rust type is needed. In key order (by the key's JSON
    /// value); at most `limit` (every key is decoded to sort them, only the records within
    /// the limit are; the files are read whole, as recovery reads them). Refused while a process has the database open; changes
    /// nothing on disc. A table whose type's format could not be traced (see the README)
    /// cannot be read this way.
    ///
    /// ```
    /// use mnesia::prelude::*;
    /// #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// struct Item { #[key] id: u32, name: Option<String> }
    ///
    /// let dir = std::env::temp_dir().join(format!("mnesia-doc-records-{}", std::process::id()));
    /// # let _ = mnesia::Schema::delete(&dir);
    /// mnesia::Schema::create(&dir)?;
    /// let db = mnesia::Database::open(mnesia::Config::default().dir(&dir))?;
    /// db.scope(|| {
    ///     Item::create_table(TableOptions::new().disc_copies(["local@localhost"]))?;
    ///     Item::write(Item { id: 2, name: None })?;
    ///     Item::write(Item { id: 1, name: Some("one".into()) })
    /// })?;
    /// db.close()?;
    /// drop(db);
    /// let records = mnesia::Schema::records(&dir, "item", None)?;
    /// assert_eq!(serde_json::to_string(&records).expect("json"), r#"[{"id":1,"name":"one"},{"id":2,"name":null}]"#);
    /// # mnesia::Schema::delete(&dir)?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn records(dir: impl AsRef<Path>, table: &str, limit: Option<usize>) -> Result<Vec<Value>> {
        read(dir.as_ref(), table, limit).map(|(records, _)| records)
    }

    /// Writes table `table` of the database directory `dir` to `out` as `T::export_to`
    /// would write it in `format` (JSON, JSON Lines or CSV), without the program's types
    /// (see [`Schema::records`]): in key order, at most `limit` records. Returns how many
    /// were written.
    ///
    /// ```
    /// use mnesia::prelude::*;
    /// #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// struct Item { #[key] id: u32, note: Option<String> }
    ///
    /// let dir = std::env::temp_dir().join(format!("mnesia-doc-dump-{}", std::process::id()));
    /// # let _ = mnesia::Schema::delete(&dir);
    /// mnesia::Schema::create(&dir)?;
    /// let db = mnesia::Database::open(mnesia::Config::default().dir(&dir))?;
    /// db.scope(|| {
    ///     Item::create_table(TableOptions::new().disc_copies(["local@localhost"]))?;
    ///     Item::write(Item { id: 1, note: Some(String::new()) })?;
    ///     Item::write(Item { id: 2, note: None })
    /// })?;
    /// db.close()?;
    /// drop(db);
    /// let mut csv = Vec::new();
    /// assert_eq!(mnesia::Schema::dump(&dir, "item", mnesia::Format::Csv, None, &mut csv)?, 2);
    /// let csv = String::from_utf8(csv).expect("utf-8");
    /// // Some(""): its JSON text `""`, in a quoted cell; None: an empty cell.
    /// assert_eq!(csv.lines().collect::<Vec<_>>(), ["id,note", r#"1,"""""""#, "2,"]);
    /// # mnesia::Schema::delete(&dir)?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn dump(
        dir: impl AsRef<Path>,
        table: &str,
        format: Format,
        limit: Option<usize>,
        out: &mut dyn Write,
    ) -> Result<usize> {
        let dir = dir.as_ref();
        let (records, shape) = read(dir, table, limit)?;
        // A failure to write is the output's (a closed pipe, a full disc), not the codec's.
        let io = |e: std::io::Error| Error::Io { path: "the output".into(), source: e };
        let json =
            |e: serde_json::Error| if e.is_io() { io(e.into()) } else { Error::codec("writing JSON", e) };
        match format {
            Format::Json => {
                for (i, r) in records.iter().enumerate() {
                    out.write_all(if i == 0 { b"[\n" } else { b",\n" }).map_err(io)?;
                    serde_json::to_writer(&mut *out, r).map_err(json)?;
                }
                out.write_all(if records.is_empty() { b"[\n]\n" } else { b"\n]\n" }).map_err(io)?;
            }
            Format::JsonLines => {
                for r in &records {
                    serde_json::to_writer(&mut *out, r).map_err(json)?;
                    out.write_all(b"\n").map_err(io)?;
                }
            }
            Format::Csv => {
                let fields = top_fields(&shape)?;
                let mut w = csv::Writer::from_writer(&mut *out);
                let csv_err = |e: csv::Error| {
                    if e.is_io_error() {
                        match e.into_kind() {
                            csv::ErrorKind::Io(e) => io(e),
                            _ => Error::Internal("a csv i/o error without its i/o error".into()),
                        }
                    } else {
                        Error::codec(format!("table {table}"), e)
                    }
                };
                w.write_record(fields.iter().map(|(n, _)| n.as_str())).map_err(csv_err)?;
                for r in &records {
                    w.write_record(fields.iter().map(|(name, optional)| cell(&r[name.as_str()], *optional)))
                        .map_err(csv_err)?;
                }
                w.flush().map_err(io)?;
            }
        }
        Ok(records.len())
    }
}

/// The records of a table, decoded, in key order, and the record format.
fn read(dir: &Path, table: &str, limit: Option<usize>) -> Result<(Vec<Value>, RecordFormat)> {
    schema::load(dir)?;
    let _lock = disk::lock_dir_shared(dir)?;
    let mut read = Recovered::read(dir)?;
    let at =
        read.tables.iter().position(|p| p.def.name == table).ok_or_else(|| Error::no_such_table(table))?;
    let p = read.tables.swap_remove(at);
    let shape = p.def.record_format("to read it without its type")?;
    let rows: Vec<(Vec<u8>, Logged)> = match p.def.storage {
        StorageType::DiscOnlyCopies => {
            read.disc_only_rows(dir, p.def.id)?.into_iter().map(|(k, (_, v))| (k, v)).collect()
        }
        _ => p.rows.into_iter().map(|(k, (_, v))| (k, v)).collect(),
    };
    // Keys decoded alone and sorted; only the records within the limit are decoded.
    let key_shape = shape.field(p.def.key_name())?;
    let mut keyed = rows
        .into_iter()
        .map(|(k, v)| Ok((format::decode_as(&k, key_shape, &shape)?, v)))
        .collect::<Result<Vec<(Value, Logged)>>>()?;
    keyed.sort_by(|a, b| format::json_order(&a.0, &b.0));
    let limit = limit.unwrap_or(usize::MAX);
    let mut out = Vec::new();
    for (_, value) in keyed {
        let records = match value {
            Logged::Put(b) => vec![b],
            Logged::Group(g) => g,
            Logged::Delete => Vec::new(),
        };
        for r in records.iter().take(limit - out.len()) {
            out.push(format::decode(r, &shape)?);
        }
        if out.len() == limit {
            break;
        }
    }
    Ok((out, shape))
}

/// The record's fields, in order, each with whether it is an `Option`.
fn top_fields(shape: &RecordFormat) -> Result<Vec<(String, bool)>> {
    Ok(shape.fields()?.iter().map(|f| (f.name.clone(), matches!(f.value, Shape::Option(_)))).collect())
}

/// A CSV cell as the typed export writes it: scalars as text, `None` empty, a plain enum
/// variant as its name, anything nested as its JSON text, and a `Some` whose cell would be
/// empty or begin with a quote as its JSON text (so that it reads back apart from `None`).
fn cell(value: &Value, optional: bool) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) if optional && (s.is_empty() || s.starts_with('"')) => value.to_string(),
        Value::String(s) => s.clone(),
        // A float as the export writes it: the shortest text that reads back the same, as
        // Rust spells it (`1e300`, where serde_json writes `1e+300`).
        Value::Number(n) if n.is_f64() => n.as_f64().map_or_else(|| value.to_string(), |f| format!("{f:?}")),
        Value::Bool(_) | Value::Number(_) => value.to_string(),
        Value::Array(_) | Value::Object(_) => value.to_string(),
    }
}
