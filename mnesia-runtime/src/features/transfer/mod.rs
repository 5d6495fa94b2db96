//! Export and import of a table as JSON (an array of objects), JSON Lines (one object per
//! line) or CSV (a header row of field names, RFC 4180 quoting).
//!
//! CSV cells: a string is written as it is; a number or a boolean as its text; `None` as an
//! empty cell; anything nested (a struct, a list, a map, an enum with data) as its JSON
//! text; a plain enum variant as its name. On import each field reads its cell as its type
//! asks (see `cells`).

use std::path::Path;

use crate::base::progress::Progress;
use crate::error::{Error, Result};

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

mod csv_check;
mod export;
mod import;

pub(crate) use export::{export_file, export_to};
pub(crate) use import::import_from;

fn io_err(e: std::io::Error) -> Error {
    Error::Io { path: "<stream>".into(), source: e }
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

    use crate::schema::record::{FieldInfo, Record, TableType};
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
