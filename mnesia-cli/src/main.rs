//! `mnesia`: the command line for a database directory. It looks into one without the
//! program's Rust types (`info`, `log`, `dump`), checks every file of it (`verify`), and runs the
//! operator's chores (`checkpoint`, `backup`).
//!
//! A directory that a process has open is refused (its lock): the read-only commands would
//! read a moving target, the others would fight the process for it.
//!
//! Exit status: 0 on success; 1 when the command failed (one line on stderr says why) or
//! `verify` found damage; 2 for a command line that does not parse.

mod progress;
mod report;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Look into, check, checkpoint, back up and restore a mnesia database directory.
#[derive(Parser, Debug)]
#[command(name = "mnesia", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The tables by name (type, storage, keys, records, counter, indexes, version, and
    /// their fields), the last checkpoint and the log, read without the program's types.
    Info {
        /// The database directory.
        dir: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The commit log since the last checkpoint: segments, commits per table, the last
    /// sequence number, a torn tail left by a crash.
    Log {
        /// The database directory.
        dir: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Checks every file: the schema, the checkpoint, every log segment (each commit
    /// decoded), every snapshot and the disc-only file. Exits with 1 when any is damaged,
    /// naming the file and the byte offset.
    Verify {
        /// The database directory.
        dir: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Prints a table's records as the program's own export would (JSON, JSON Lines or CSV),
    /// decoded through the record format the directory keeps: no Rust types needed.
    Dump {
        /// The database directory.
        dir: PathBuf,
        /// The table's name.
        table: String,
        /// The output format.
        #[arg(long, value_enum, default_value_t = DumpFormat::Json)]
        format: DumpFormat,
        /// At most this many records (the first in key order).
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Writes a snapshot of every disc table and drops the log before it, so that the next
    /// open replays nothing.
    Checkpoint {
        /// The database directory.
        dir: PathBuf,
    },
    /// Writes a backup file of every table of the directory (restored with `mnesia restore`
    /// or with `Database::restore` in a program that names the tables' types).
    Backup {
        /// The database directory.
        dir: PathBuf,
        /// The backup file to write (replaced only once it is complete).
        file: PathBuf,
    },
    /// Replaces the records of the directory's tables with a backup's (clear and load),
    /// without the program's types: the whole file and every record are checked first
    /// (definitions, record formats, keys, unique indexes), and a failure changes nothing.
    /// Each table must exist in the directory and be `disc_copies` (skip the others).
    Restore {
        /// The database directory.
        dir: PathBuf,
        /// The backup file.
        file: PathBuf,
        /// A table of the backup to leave as it is (may be given several times).
        #[arg(long, value_name = "TABLE")]
        skip: Vec<String>,
    },
}

/// The formats of `mnesia dump`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum DumpFormat {
    /// One JSON array of objects.
    Json,
    /// One JSON object per line.
    Jsonl,
    /// A header row of field names, then one row per record.
    Csv,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mnesia: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one command; `Err` is the one line printed on failure.
fn run(command: Command) -> Result<ExitCode, String> {
    let out = &mut std::io::stdout().lock();
    match command {
        Command::Info { dir, json } => {
            let info = mnesia::Schema::inspect(&dir).map_err(said)?;
            report::print(out, json, &info, report::info)?;
        }
        Command::Log { dir, json } => {
            let info = mnesia::Schema::inspect(&dir).map_err(said)?;
            report::print(out, json, &info.log, |out, log| report::log(out, log, &info.tables))?;
        }
        Command::Verify { dir, json } => {
            let found = mnesia::Schema::verify(&dir).map_err(said)?;
            report::print(out, json, &found, report::verify)?;
            if !found.is_sound() {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Dump { dir, table, format, limit } => {
            let format = match format {
                DumpFormat::Json => mnesia::Format::Json,
                DumpFormat::Jsonl => mnesia::Format::JsonLines,
                DumpFormat::Csv => mnesia::Format::Csv,
            };
            match mnesia::Schema::dump(&dir, &table, format, limit, out) {
                // The reader went away (`mnesia dump .. | head`): not a failure.
                Err(e) if e.io_kind() == Some(std::io::ErrorKind::BrokenPipe) => {}
                other => drop(other.map_err(said)?),
            }
        }
        Command::Checkpoint { dir } => {
            let db = open(&dir)?;
            let working = progress::spinner("writing the checkpoint");
            db.checkpoint().map_err(said)?;
            progress::finish(working);
            db.close().map_err(said)?;
            let info = mnesia::Schema::inspect(&dir).map_err(said)?;
            report::print(out, false, &info, |out, info| report::checkpointed(out, info))?;
        }
        Command::Backup { dir, file } => {
            let db = open(&dir)?;
            let counter = progress::counter("records backed up");
            let options = match &counter {
                Some(bar) => {
                    let bar = bar.clone();
                    mnesia::BackupOptions::new().progress(move |done| bar.set_position(done))
                }
                None => mnesia::BackupOptions::new(),
            };
            let made = db.backup_with(&file, &options).map_err(said)?;
            progress::finish(counter);
            db.close().map_err(said)?;
            report::print(out, false, &made, |out, made| report::backed_up(out, made, &file))?;
        }
        Command::Restore { dir, file, skip } => {
            let db = open(&dir)?;
            let counter = progress::counter("records restored");
            let mut options = mnesia::RestoreOptions::new();
            for table in &skip {
                options = options.table(table, mnesia::RestoreMode::Skip);
            }
            if let Some(bar) = &counter {
                let bar = bar.clone();
                options = options.progress(move |done| bar.set_position(done));
            }
            let restored = db.restore(&file, &options).map_err(said)?;
            progress::finish(counter);
            db.close().map_err(said)?;
            report::print(out, false, &restored, |out, n| report::restored(out, *n, &file))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// An error as this command line says it: the library's words, but where they speak to a
/// program (what to call), what a person at the command line should know instead.
fn said(e: mnesia::Error) -> String {
    match e {
        mnesia::Error::NoSchema { dir } if !dir.exists() => format!("{} does not exist", dir.display()),
        mnesia::Error::NoSchema { dir } => format!(
            "{} is not a database directory (no schema: a program makes one with mnesia::Schema::create and opens it with Config::dir)",
            dir.display()
        ),
        // (The directory given is a file: the OS names the file inside it it looked for.)
        mnesia::Error::Io { path, source } if source.kind() == std::io::ErrorKind::NotADirectory => {
            format!("{} is not a directory", path.parent().unwrap_or(&path).display())
        }
        // (Restoring a backup's table that the directory lacks.)
        mnesia::Error::Invalid(why)
            if why.contains("of the backup is not open here")
                || why.contains("of the backup is not in this database") =>
        {
            let table = why.trim_start_matches("table ").split(' ').next().unwrap_or_default();
            format!(
                "table {table} of the backup is not in this directory: give --skip {table} to restore the others (the program that owns the directory creates its tables)"
            )
        }
        mnesia::Error::NoSuchTable { table } => format!(
            "no table {table} in this directory (it holds the disc tables alone: ram_copies tables live in their program)"
        ),
        e => e.to_string(),
    }
}

/// Opens the database of `dir` (its tables stay unclaimed: no types are needed to
/// checkpoint or back them up). No reaper: nothing changes but what the command does.
fn open(dir: &std::path::Path) -> Result<mnesia::Database, String> {
    if !mnesia::Schema::exists(dir).map_err(said)? {
        return Err(said(mnesia::Error::NoSchema { dir: dir.to_path_buf() }));
    }
    mnesia::Database::open(mnesia::Config::default().dir(dir).auto_cleanup(false)).map_err(said)
}
