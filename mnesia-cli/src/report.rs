//! What each command prints: text for a person, or the same facts as JSON.

use std::io::Write;
use std::path::Path;

use mnesia::{BackupInfo, DirectoryInfo, StoredLog, StoredTable, VerifyReport};

/// Prints `value` as pretty JSON, or as text by `text`.
pub(crate) fn print<T: serde::Serialize + ?Sized>(
    out: &mut dyn Write,
    json: bool,
    value: &T,
    text: impl FnOnce(&mut dyn Write, &T) -> std::io::Result<()>,
) -> Result<(), String> {
    let written = if json {
        serde_json::to_writer_pretty(&mut *out, value)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(out))
    } else {
        text(out, value)
    };
    match written {
        // The reader went away (`mnesia info DIR | head`): not a failure.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map_err(|e| format!("cannot write the output: {e}")),
    }
}

/// `mnesia info`.
pub(crate) fn info(out: &mut dyn Write, info: &DirectoryInfo) -> std::io::Result<()> {
    writeln!(out, "directory   {}", info.directory.display())?;
    match &info.checkpoint {
        Some(c) => writeln!(
            out,
            "checkpoint  at commit {}, {}, replay from log segment {}",
            c.seq,
            plural(c.tables as u64, "table snapshot"),
            c.segment
        )?,
        None => writeln!(out, "checkpoint  none yet (the whole log is replayed on open)")?,
    }
    writeln!(out, "log         {}", log_summary(&info.log))?;
    writeln!(out)?;
    if info.tables.is_empty() {
        return writeln!(out, "no tables");
    }
    let tables = &info.tables;
    let rows: Vec<Vec<String>> = tables.iter().map(table_row).collect();
    columns(
        out,
        &["table", "type", "storage", "keys", "records", "counter", "indexes", "version", "log commits"],
        &rows,
    )?;
    writeln!(out)?;
    for t in tables {
        let fields: Vec<String> = t.fields.iter().map(|(name, ty)| field_line(t, name, ty)).collect();
        writeln!(out, "{} {{ {} }}", t.name, fields.join(", "))?;
    }
    for n in &info.notes {
        writeln!(out, "\nnote: {n}")?;
    }
    Ok(())
}

/// A field as the struct line of `mnesia info` shows it, its key and indexes marked as
/// the derive's attributes say them (an index added at run time too).
fn field_line(t: &StoredTable, name: &str, ty: &str) -> String {
    let mark = if name == t.key {
        if t.auto_increment { "#[key] #[auto_increment] " } else { "#[key] " }
    } else {
        match t.indexes.iter().find(|i| i.field == name) {
            Some(i) if i.unique => "#[index(unique)] ",
            Some(_) => "#[index] ",
            None => "",
        }
    };
    format!("{mark}{name}: {ty}")
}

/// One line of the table list of `mnesia info`.
fn table_row(t: &StoredTable) -> Vec<String> {
    let indexes: Vec<String> = t
        .indexes
        .iter()
        .map(|i| if i.unique { format!("{} (unique)", i.field) } else { i.field.clone() })
        .collect();
    vec![
        t.name.clone(),
        t.table_type.to_string(),
        t.storage.to_string(),
        if t.counted { t.keys.to_string() } else { "?".into() },
        if t.counted { t.records.to_string() } else { "?".into() },
        if t.auto_increment { t.counter.to_string() } else { "-".into() },
        if indexes.is_empty() { "-".into() } else { indexes.join(", ") },
        t.version.to_string(),
        t.log_commits.to_string(),
    ]
}

/// The log in one line.
fn log_summary(log: &StoredLog) -> String {
    let changes = if log.schema_changes > 0 {
        format!(" and {}", plural(log.schema_changes, "schema change"))
    } else {
        String::new()
    };
    let mut s = format!(
        "{}, {} bytes, {}{changes} since the checkpoint",
        plural(log.segments.len() as u64, "segment"),
        log.bytes,
        plural(log.commits, "commit")
    );
    if let Some(seq) = log.last_seq {
        s.push_str(&format!(", last commit {seq}"));
    }
    if let Some(at) = log.torn_tail {
        s.push_str(&format!(", a torn tail at byte {at} (cut on the next open)"));
    }
    s
}

/// `mnesia log`.
pub(crate) fn log(out: &mut dyn Write, log: &StoredLog, tables: &[StoredTable]) -> std::io::Result<()> {
    writeln!(out, "{}", log_summary(log))?;
    writeln!(out)?;
    let seq = |s: Option<u64>| s.map_or_else(|| "-".to_owned(), |s| s.to_string());
    let rows: Vec<Vec<String>> = log
        .segments
        .iter()
        .map(|s| {
            vec![
                s.file
                    .file_name()
                    .map_or_else(|| s.file.display().to_string(), |n| n.to_string_lossy().into_owned()),
                s.bytes.to_string(),
                s.commits.to_string(),
                seq(s.first_seq),
                seq(s.last_seq),
            ]
        })
        .collect();
    columns(out, &["segment", "bytes", "commits", "first commit", "last commit"], &rows)?;
    writeln!(out)?;
    let rows: Vec<Vec<String>> = tables
        .iter()
        .map(|t| {
            vec![t.name.clone(), t.storage.to_string(), t.log_commits.to_string(), t.log_writes.to_string()]
        })
        .collect();
    columns(out, &["table", "storage", "commits", "writes"], &rows)
}

/// `mnesia verify`.
pub(crate) fn verify(out: &mut dyn Write, report: &VerifyReport) -> std::io::Result<()> {
    for f in &report.checked {
        writeln!(out, "ok       {}: {}", f.file.display(), f.holds)?;
    }
    for d in &report.damage {
        writeln!(out, "DAMAGED  {d}")?;
    }
    for n in &report.notes {
        writeln!(out, "note     {n}")?;
    }
    if report.is_sound() {
        writeln!(out, "sound: {} checked", plural(report.checked.len() as u64, "file"))
    } else {
        writeln!(out, "damaged: {} found", plural(report.damage.len() as u64, "problem"))
    }
}

/// `mnesia checkpoint`.
pub(crate) fn checkpointed(out: &mut dyn Write, info: &DirectoryInfo) -> std::io::Result<()> {
    let at = info.checkpoint.as_ref().map_or(0, |c| c.seq);
    writeln!(out, "checkpoint taken at commit {at}; log: {}", log_summary(&info.log))
}

/// `mnesia backup`.
pub(crate) fn backed_up(out: &mut dyn Write, made: &BackupInfo, file: &Path) -> std::io::Result<()> {
    writeln!(
        out,
        "backup written to {}: {} ({}), {}, up to commit {}",
        file.display(),
        plural(made.tables.len() as u64, "table"),
        made.tables.join(", "),
        plural(made.records, "record"),
        made.last_commit
    )
}

/// `mnesia restore`.
pub(crate) fn restored(out: &mut dyn Write, records: u64, file: &Path) -> std::io::Result<()> {
    writeln!(out, "restored {} from {}", plural(records, "record"), file.display())
}

/// Prints rows under a header, each column as wide as its widest cell.
fn columns(out: &mut dyn Write, header: &[&str], rows: &[Vec<String>]) -> std::io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |out: &mut dyn Write, cells: &mut dyn Iterator<Item = &str>| -> std::io::Result<()> {
        let text: Vec<String> = cells.zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        writeln!(out, "{}", text.join("  ").trim_end())
    };
    line(out, &mut header.iter().copied())?;
    for row in rows {
        line(out, &mut row.iter().map(String::as_str))?;
    }
    Ok(())
}

/// `n thing` or `n things`.
pub(crate) fn plural(n: u64, thing: &str) -> String {
    if n == 1 { format!("1 {thing}") } else { format!("{n} {thing}s") }
}
