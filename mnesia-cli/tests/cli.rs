//! The `mnesia` binary run on directories made here: what each command prints (as JSON,
//! checked against what was written), damage found by `verify` with its file and offset, a
//! directory open in another process refused, and errors as one line with a non-zero exit.

use std::path::Path;
use std::process::{Command, Output};

use mnesia::prelude::*;
use serde_json::Value;

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(name = "users")]
struct User {
    #[key]
    #[auto_increment]
    id: u64,
    #[index(unique)]
    email: String,
    #[index]
    age: u32,
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(type = "bag")]
struct Tag {
    #[key]
    item: u32,
    label: String,
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Archive {
    #[key]
    id: u32,
    body: String,
}

const NODE: &str = "local@localhost";

fn mnesia(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mnesia")).args(args).output().expect("run mnesia")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> Value {
    assert!(o.status.success(), "status {:?}, stderr: {}", o.status, stderr(o));
    serde_json::from_slice(&o.stdout).expect("JSON output")
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// A directory with three disc tables (a set with indexes and a counter, a bag, a disc-only
/// table): a checkpoint, then more commits left in the log (the database dropped, not closed).
fn populated() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    mnesia::Schema::create(dir.path()).expect("schema");
    let db = Database::open(Config::default().dir(dir.path())).expect("open");
    db.scope(|| -> mnesia::Result<()> {
        User::create_table(TableOptions::new().disc_copies([NODE]))?;
        Tag::create_table(TableOptions::new().disc_copies([NODE]))?;
        Archive::create_table(TableOptions::new().disc_only_copies([NODE]))?;
        for (i, email) in ["a@x", "b@x", "c@x"].into_iter().enumerate() {
            User::insert(User { id: 0, email: email.into(), age: 30 + i as u32 })?;
        }
        Tag::write(Tag { item: 1, label: "red".into() })?;
        Tag::write(Tag { item: 1, label: "blue".into() })?;
        for id in 0..5 {
            Archive::write(Archive { id, body: format!("body {id}") })?;
        }
        db.checkpoint()?;
        // After the checkpoint: in the log (and, for the disc-only table, its file).
        Tag::write(Tag { item: 2, label: "green".into() })?;
        User::delete(&1)?;
        User::insert(User { id: 0, email: "d@x".into(), age: 50 })?;
        Archive::delete(&0)?;
        Archive::write(Archive { id: 5, body: "body 5".into() })?;
        Ok(())
    })
    .expect("populate");
    drop(db);
    dir
}

fn table<'a>(info: &'a Value, name: &str) -> &'a Value {
    info["tables"].as_array().expect("tables").iter().find(|t| t["name"] == name).expect("table listed")
}

#[test]
fn info_tells_each_table_and_the_log_without_the_programs_types() {
    let dir = populated();
    let info = json(&mnesia(&["info", path(dir.path()), "--json"]));
    let users = table(&info, "users");
    assert_eq!((users["keys"].as_u64(), users["records"].as_u64()), (Some(3), Some(3)));
    assert_eq!(users["counter"].as_u64(), Some(4));
    assert_eq!(users["storage"], "disc_copies");
    assert_eq!(users["key"], "id");
    assert_eq!(users["indexes"].as_array().map(Vec::len), Some(2));
    assert_eq!(users["log_commits"].as_u64(), Some(2), "the delete and the insert after the checkpoint");
    let tags = table(&info, "tag");
    assert_eq!(
        (tags["table_type"].as_str(), tags["keys"].as_u64(), tags["records"].as_u64()),
        (Some("bag"), Some(2), Some(3))
    );
    let archive = table(&info, "archive");
    assert_eq!((archive["storage"].as_str(), archive["keys"].as_u64()), (Some("disc_only_copies"), Some(5)));
    assert!(info["checkpoint"].is_object());
    assert_eq!(info["log"]["commits"].as_u64(), Some(5));
    assert!(info["log"]["torn_tail"].is_null());
    let names: Vec<&str> =
        info["tables"].as_array().expect("tables").iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(names, ["archive", "tag", "users"], "by name, as the text lists them");

    let text = mnesia(&["info", path(dir.path())]);
    assert!(text.status.success(), "{}", stderr(&text));
    let text = stdout(&text);
    assert!(
        text.contains("users") && text.contains("email (unique)") && text.contains("disc_only_copies"),
        "{text}"
    );
    assert!(text.contains("#[key] #[auto_increment] id: u64"), "{text}");
    let at = |name: &str| text.find(&format!("\n{name} ")).unwrap_or(usize::MAX);
    assert!(
        at("archive") < at("tag") && at("tag") < at("users") && at("users") < usize::MAX,
        "tables by name: {text}"
    );

    // Nothing was changed: the program opens it and finds everything.
    let db = Database::open(Config::default().dir(dir.path())).expect("reopen");
    db.scope(|| -> mnesia::Result<()> {
        assert_eq!(User::count()?, 3);
        assert_eq!(User::read(&4)?.map(|u| u.email), Some("d@x".into()));
        Ok(())
    })
    .expect("reopen");
}

#[test]
fn log_lists_segments_and_commits_per_table() {
    let dir = populated();
    let log = json(&mnesia(&["log", path(dir.path()), "--json"]));
    let segments = log["segments"].as_array().expect("segments");
    assert_eq!(segments.iter().map(|s| s["commits"].as_u64().unwrap_or(0)).sum::<u64>(), 5);
    assert!(log["last_seq"].as_u64().is_some_and(|s| s >= 3));
    let text = stdout(&mnesia(&["log", path(dir.path())]));
    assert!(text.contains("5 commits since the checkpoint"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("users") && l.contains("disc_copies")), "{text}");
}

#[test]
fn verify_passes_a_sound_directory_and_names_the_offset_of_damage() {
    let dir = populated();
    let ok = mnesia(&["verify", path(dir.path())]);
    assert!(ok.status.success(), "{}{}", stdout(&ok), stderr(&ok));
    assert!(stdout(&ok).contains("sound"), "{}", stdout(&ok));

    // One byte of the first log record flipped, valid records after it: damage, at the
    // record's offset (a damaged last record would be a torn tail, what a crash leaves).
    let segment = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .max()
        .expect("a log segment");
    let mut bytes = std::fs::read(&segment).expect("read");
    bytes[20] ^= 0xff;
    std::fs::write(&segment, &bytes).expect("write");
    let bad = mnesia(&["verify", path(dir.path()), "--json"]);
    assert_eq!(bad.status.code(), Some(1), "{}", stdout(&bad));
    let report: Value = serde_json::from_slice(&bad.stdout).expect("JSON");
    let damage = report["damage"].as_array().expect("damage");
    assert_eq!(damage.len(), 1, "{report}");
    assert_eq!(damage[0]["file"].as_str(), segment.to_str());
    assert_eq!(damage[0]["offset"].as_u64(), Some(8), "the first record starts after the file's magic");
    // `info` refuses a damaged log rather than tell half of it.
    let o = mnesia(&["info", path(dir.path())]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("corrupt"), "{}", stderr(&o));

    // A damaged snapshot is damage, with its offset.
    let snap = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "snap"))
        .expect("a snapshot");
    let mut bytes = std::fs::read(&snap).expect("read");
    let at = bytes.len() / 2;
    bytes[at] ^= 0xff;
    std::fs::write(&snap, &bytes).expect("write");
    let bad = mnesia(&["verify", path(dir.path())]);
    assert_eq!(bad.status.code(), Some(1));
    let text = stdout(&bad);
    let line = text
        .lines()
        .find(|l| l.starts_with("DAMAGED") && l.contains(".snap"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains(" at byte "), "{line}");

    // A missing file the checkpoint names is damage too.
    std::fs::remove_file(&segment).expect("remove");
    let text = stdout(&mnesia(&["verify", path(dir.path())]));
    assert!(text.contains("the log segment the last checkpoint starts from is missing"), "{text}");
}

#[test]
fn verify_reports_a_torn_tail_as_a_note_not_damage() {
    let dir = populated();
    let segment = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .max()
        .expect("a log segment");
    let len = std::fs::metadata(&segment).expect("meta").len();
    let f = std::fs::OpenOptions::new().write(true).open(&segment).expect("open");
    f.set_len(len - 2).expect("cut");
    drop(f);
    let report = json(&mnesia(&["verify", path(dir.path()), "--json"]));
    assert_eq!(report["damage"].as_array().map(Vec::len), Some(0), "{report}");
    assert_eq!(report["notes"].as_array().map(Vec::len), Some(1), "{report}");
    let info = json(&mnesia(&["info", path(dir.path()), "--json"]));
    assert!(info["log"]["torn_tail"].as_u64().is_some(), "{info}");
    assert_eq!(info["log"]["commits"].as_u64(), Some(4), "the torn commit is not counted");
    // Nothing was cut: the file is as it was.
    assert_eq!(std::fs::metadata(&segment).expect("meta").len(), len - 2);
}

#[test]
fn checkpoint_and_backup_work_on_a_directory_without_its_types() {
    let dir = populated();
    let done = mnesia(&["checkpoint", path(dir.path())]);
    assert!(done.status.success(), "{}", stderr(&done));
    let info = json(&mnesia(&["info", path(dir.path()), "--json"]));
    assert_eq!(info["log"]["commits"].as_u64(), Some(0), "{info}");
    assert_eq!(table(&info, "users")["records"].as_u64(), Some(3));
    assert_eq!(table(&info, "tag")["records"].as_u64(), Some(3));

    let file = dir.path().join("all.backup");
    let made = mnesia(&["backup", path(dir.path()), path(&file)]);
    assert!(made.status.success(), "{}", stderr(&made));
    assert!(stdout(&made).contains("3 tables"), "{}", stdout(&made));
    assert_eq!(stderr(&made), "", "no progress shown in a pipe");
    // The backup restores into a program that names the types.
    let other = tempfile::tempdir().expect("tempdir");
    mnesia::Schema::create(other.path()).expect("schema");
    let db = Database::open(Config::default().dir(other.path())).expect("open");
    db.scope(|| -> mnesia::Result<()> {
        User::create_table(TableOptions::new().disc_copies([NODE]))?;
        Tag::create_table(TableOptions::new().disc_copies([NODE]))?;
        Archive::create_table(TableOptions::new().disc_only_copies([NODE]))?;
        db.restore(&file, &mnesia::RestoreOptions::default())?;
        assert_eq!(User::count()?, 3);
        assert_eq!(Tag::read_all(&1)?.len(), 2);
        assert_eq!(Archive::read(&4)?.map(|a| a.body), Some("body 4".into()));
        Ok(())
    })
    .expect("restore");
}

#[test]
fn a_directory_open_in_another_process_is_refused() {
    let dir = populated();
    let db = Database::open(Config::default().dir(dir.path())).expect("open");
    for args in [vec!["info"], vec!["verify"], vec!["log"], vec!["checkpoint"]] {
        let mut args = args;
        args.push(path(dir.path()));
        let o = mnesia(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let err = stderr(&o);
        assert!(err.contains("open in another process") && err.lines().count() == 1, "{args:?}: {err}");
    }
    drop(db);
    assert!(mnesia(&["info", path(dir.path())]).status.success());
}

#[test]
fn errors_are_one_line_and_usage_errors_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = mnesia(&["info", path(dir.path())]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("mnesia: ") && stderr(&o).contains("is not a database directory"),
        "{}",
        stderr(&o)
    );
    assert_eq!(stderr(&o).lines().count(), 1);
    let o = mnesia(&["checkpoint", path(&dir.path().join("missing"))]);
    assert_eq!(o.status.code(), Some(1));
    // A file given for the directory.
    let file = dir.path().join("export.csv");
    std::fs::write(&file, "id\n1\n").expect("file");
    let o = mnesia(&["info", path(&file)]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o).trim_end(), format!("mnesia: {} is not a directory", file.display()));
    assert_eq!(mnesia(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(mnesia(&[]).status.code(), Some(2));
    let help = mnesia(&["--help"]);
    assert!(help.status.success());
    for command in ["info", "log", "verify", "checkpoint", "backup"] {
        assert!(stdout(&help).contains(command), "{command}");
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Inner {
    x: i16,
    tags: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Status {
    Active,
    Suspended(String),
    Moved(u32, u32),
    Renamed { from: String, to: Option<String> },
}

/// A field of every kind serde has.
#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Everything {
    #[key]
    id: u32,
    flag: bool,
    tiny: i8,
    small: i16,
    neg: i32,
    long: i64,
    wide: i128,
    byte: u8,
    short: u16,
    count: u32,
    big: u64,
    huge: u128,
    ratio: f32,
    precise: f64,
    letter: char,
    text: String,
    maybe: Option<String>,
    bytes: Vec<u8>,
    map: std::collections::BTreeMap<String, u32>,
    pair: (u8, String),
    inner: Inner,
    status: Status,
    history: Vec<Status>,
    at: std::time::SystemTime,
    until: Option<std::time::SystemTime>,
}

fn everything(id: u32) -> Everything {
    let status = match id % 4 {
        0 => Status::Active,
        1 => Status::Suspended(format!("reason {id}")),
        2 => Status::Moved(id, id + 1),
        _ => Status::Renamed { from: "a,b".into(), to: (id % 8 == 3).then(|| "\"quoted\"".into()) },
    };
    Everything {
        id,
        flag: id.is_multiple_of(2),
        tiny: -(id as i8),
        small: -300,
        neg: -70_000 * id as i32,
        long: i64::MIN + i64::from(id),
        wide: -(1i128 << 62),
        byte: 255,
        short: 65_535,
        count: id * 1000,
        big: u64::MAX - u64::from(id),
        huge: u128::from(u64::MAX),
        ratio: 1.1 * id as f32,
        // Exponents from -100 to 199: written with one (`3.14e199`) by Rust and serde_json alike.
        precise: std::f64::consts::PI * 10f64.powi(id as i32 * 13 - 100),
        letter: 'ß',
        text: format!("line {id}\nwith \"quotes\", commas"),
        maybe: match id % 3 {
            0 => None,
            1 => Some(String::new()),
            _ => Some("\"starts with a quote".into()),
        },
        bytes: vec![0, 1, 254],
        map: [("k".to_owned(), id)].into_iter().collect(),
        pair: (9, "p".into()),
        inner: Inner { x: -5, tags: vec!["t1".into(), String::new()] },
        status,
        history: vec![Status::Active, Status::Moved(1, 2)],
        at: std::time::UNIX_EPOCH + std::time::Duration::new(1_700_000_000, id * 7),
        until: (id % 2 == 1).then(|| std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::from(id))),
    }
}

/// Sorted lines, without the commas between the records of a JSON array: the typed export
/// goes in storage order, the dump in key order.
fn sorted_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(|l| l.strip_suffix(',').unwrap_or(l).to_owned()).collect();
    lines.sort();
    lines
}

#[test]
fn dump_writes_every_field_type_as_the_tables_own_export_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    mnesia::Schema::create(dir.path()).expect("schema");
    let db = Database::open(Config::default().dir(dir.path())).expect("open");
    let exports = db
        .scope(|| -> mnesia::Result<Vec<(mnesia::Format, String)>> {
            Everything::create_table(TableOptions::new().disc_copies([NODE]))?;
            Everything::batch_write((0..24).map(everything))?;
            let mut out = Vec::new();
            for format in [mnesia::Format::Json, mnesia::Format::JsonLines, mnesia::Format::Csv] {
                let mut bytes = Vec::new();
                Everything::export_to(&mut bytes, format)?;
                out.push((format, String::from_utf8(bytes).expect("utf-8")));
            }
            Ok(out)
        })
        .expect("write");
    drop(db);
    for (format, exported) in exports {
        let name = match format {
            mnesia::Format::Json => "json",
            mnesia::Format::JsonLines => "jsonl",
            _ => "csv",
        };
        let dumped = mnesia(&["dump", path(dir.path()), "everything", "--format", name]);
        assert!(dumped.status.success(), "{name}: {}", stderr(&dumped));
        let dumped = stdout(&dumped);
        match format {
            mnesia::Format::Csv => {
                // The header first in both; the rows (some span lines: a quoted newline) as a set.
                assert_eq!(dumped.lines().next(), exported.lines().next(), "csv header");
                let rows = |t: &str| {
                    let mut r = csv::Reader::from_reader(t.as_bytes());
                    let mut rows: Vec<Vec<String>> =
                        r.records().map(|x| x.expect("csv").iter().map(str::to_owned).collect()).collect();
                    rows.sort();
                    rows
                };
                assert_eq!(rows(&dumped), rows(&exported), "csv rows");
            }
            _ => assert_eq!(sorted_lines(&dumped), sorted_lines(&exported), "{name}"),
        }
    }
    // And the dump reads back into the typed table.
    let dumped = mnesia(&["dump", path(dir.path()), "everything", "--format", "csv", "--limit", "5"]);
    let back = tempfile::tempdir().expect("tempdir");
    let db = Database::in_memory().expect("db");
    let file = back.path().join("e.csv");
    std::fs::write(&file, &dumped.stdout).expect("write");
    db.scope(|| -> mnesia::Result<()> {
        Everything::create_table(TableOptions::new())?;
        assert_eq!(Everything::import(&file)?, 5);
        for id in 0..5 {
            assert_eq!(Everything::read(&id)?, Some(everything(id)), "record {id}");
        }
        Ok(())
    })
    .expect("import");
}

#[test]
fn dump_reads_bags_and_disc_only_tables_and_refuses_what_it_cannot() {
    let dir = populated();
    let tags = json(&mnesia(&["dump", path(dir.path()), "tag"]));
    let mut labels: Vec<&str> =
        tags.as_array().expect("array").iter().filter_map(|t| t["label"].as_str()).collect();
    labels.sort_unstable();
    assert_eq!(labels, ["blue", "green", "red"]);
    let first_two = json(&mnesia(&["dump", path(dir.path()), "tag", "--limit", "2"]));
    let items: Vec<u64> =
        first_two.as_array().expect("array").iter().filter_map(|t| t["item"].as_u64()).collect();
    assert_eq!(items, [1, 1], "a bag's key holds two records: the limit counts records");
    let archive = json(&mnesia(&["dump", path(dir.path()), "archive", "--limit", "2"]));
    assert_eq!(archive, serde_json::json!([{"id": 1, "body": "body 1"}, {"id": 2, "body": "body 2"}]));
    let users = stdout(&mnesia(&["dump", path(dir.path()), "users", "--format", "jsonl"]));
    let ids: Vec<u64> = users
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("line")["id"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(ids, [2, 3, 4], "in key order");
    let missing = mnesia(&["dump", path(dir.path()), "nope"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("no table nope in this directory")
            && stderr(&missing).contains("ram_copies"),
        "{}",
        stderr(&missing)
    );
    let bad = mnesia(&["dump", path(dir.path()), "tag", "--format", "xml"]);
    assert_eq!(bad.status.code(), Some(2));
}

/// The files as a crash leaves them (copied while the database is open, with commits since
/// the checkpoint): what the tools tell includes every commit the log holds, or they say
/// the directory must be opened once first; after that, they do.
#[test]
fn a_directory_left_by_a_crash_is_told_with_every_logged_commit() {
    let dir = populated();
    let db = Database::open(Config::default().dir(dir.path())).expect("open");
    db.scope(|| Archive::write(Archive { id: 9, body: "body 9".into() })).expect("write");
    let image = tempfile::tempdir().expect("tempdir");
    for e in std::fs::read_dir(dir.path()).expect("dir").flatten() {
        if e.file_name() != "LOCK" {
            std::fs::copy(e.path(), image.path().join(e.file_name())).expect("copy");
        }
    }
    drop(db);
    let archive_ids = |image: &Path| -> Option<Vec<u64>> {
        let o = mnesia(&["dump", path(image), "archive", "--format", "jsonl"]);
        if !o.status.success() {
            assert!(stderr(&o).contains("not closed cleanly"), "{}", stderr(&o));
            return None;
        }
        Some(
            stdout(&o)
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok()?["id"].as_u64())
                .collect(),
        )
    };
    let verify = mnesia(&["verify", path(image.path())]);
    assert!(verify.status.success(), "{}", stdout(&verify));
    // `info` and `log` read such a directory too: a disc-only table's counts are told as
    // unknown while its file waits for an open to recover it.
    let before = mnesia(&["info", path(image.path()), "--json"]);
    assert!(before.status.success(), "{}", stderr(&before));
    let before = json(&before);
    if table(&before, "archive")["counted"] == Value::Bool(false) {
        assert!(before["notes"][0].as_str().is_some_and(|n| n.contains("not closed cleanly")), "{before}");
        let text = stdout(&mnesia(&["info", path(image.path())]));
        assert!(text.contains("note: ") && text.contains(" ? "), "{text}");
    }
    let log = mnesia(&["log", path(image.path())]);
    assert!(log.status.success(), "{}", stderr(&log));
    let ids = match archive_ids(image.path()) {
        Some(ids) => ids,
        None => {
            assert!(mnesia(&["checkpoint", path(image.path())]).status.success());
            archive_ids(image.path()).expect("readable once opened")
        }
    };
    assert_eq!(ids, [1, 2, 3, 4, 5, 9]);
    let info = json(&mnesia(&["info", path(image.path()), "--json"]));
    assert_eq!(table(&info, "archive")["keys"].as_u64(), Some(6), "{info}");
}

/// Without a checkpoint the log must start at segment 1: a lost first segment is damage.
#[test]
fn verify_finds_a_lost_first_segment() {
    let dir = tempfile::tempdir().expect("tempdir");
    mnesia::Schema::create(dir.path()).expect("schema");
    let db = Database::open(Config::default().dir(dir.path())).expect("open");
    db.scope(|| {
        Tag::create_table(TableOptions::new().disc_copies([NODE]))?;
        Tag::write(Tag { item: 1, label: "a".into() })
    })
    .expect("write");
    drop(db);
    assert!(mnesia(&["verify", path(dir.path())]).status.success());
    std::fs::rename(dir.path().join("00000001.wal"), dir.path().join("00000002.wal")).expect("rename");
    let o = mnesia(&["verify", path(dir.path())]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("the log starts at segment 2"), "{}", stdout(&o));
}

#[test]
fn restore_replaces_a_directorys_tables_without_its_types_and_survives_a_reopen() {
    let dir = populated();
    let file = dir.path().join("then.backup");
    let made = mnesia(&["backup", path(dir.path()), path(&file)]);
    assert!(made.status.success(), "{}", stderr(&made));
    let before_users = json(&mnesia(&["dump", path(dir.path()), "users"]));
    let before_tags = json(&mnesia(&["dump", path(dir.path()), "tag"]));
    // Changes after the backup, which the restore undoes.
    let db = Database::open(Config::default().dir(dir.path())).expect("open");
    db.scope(|| -> mnesia::Result<()> {
        User::insert(User { id: 0, email: "late@x".into(), age: 1 })?;
        User::delete(&2)?;
        Tag::write(Tag { item: 9, label: "late".into() })?;
        Tag::delete(&1)?;
        Ok(())
    })
    .expect("changes");
    db.close().expect("close");
    drop(db);

    // A disc-only table cannot be restored without its type: refused, nothing changed.
    let refused = mnesia(&["restore", path(dir.path()), path(&file)]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("archive"), "{}", stderr(&refused));
    let unchanged = json(&mnesia(&["dump", path(dir.path()), "users"])).to_string();
    assert!(unchanged.contains("late@x") && !unchanged.contains("b@x"), "{unchanged}");

    let done = mnesia(&["restore", path(dir.path()), path(&file), "--skip", "archive"]);
    assert!(done.status.success(), "{}", stderr(&done));
    assert!(stdout(&done).contains("restored 6 records"), "{}", stdout(&done));
    assert_eq!(json(&mnesia(&["dump", path(dir.path()), "users"])), before_users);
    assert_eq!(json(&mnesia(&["dump", path(dir.path()), "tag"])), before_tags);
    let verified = mnesia(&["verify", path(dir.path())]);
    assert!(verified.status.success(), "{}", stdout(&verified));

    // The program reopens it with its types: the restored records, indexes and counter.
    let db = Database::open(Config::default().dir(dir.path())).expect("reopen");
    db.scope(|| -> mnesia::Result<()> {
        assert_eq!(User::count()?, 3);
        assert_eq!(User::get_by(User::EMAIL, "d@x".to_string())?.map(|u| u.age), Some(50));
        assert_eq!(User::get_by(User::EMAIL, "late@x".to_string())?, None);
        assert!(User::insert(User { id: 0, email: "d@x".into(), age: 2 }).is_err(), "the unique index holds");
        let next = User::insert(User { id: 0, email: "new@x".into(), age: 2 })?;
        assert!(next.id > 5, "no id handed out twice: {}", next.id);
        assert_eq!(Tag::read_all(&1)?.len(), 2);
        assert!(Tag::read_all(&9)?.is_empty());
        Ok(())
    })
    .expect("typed");
}

#[test]
fn restore_checks_the_backup_against_the_directory_first() {
    let dir = populated();
    let file = dir.path().join("then.backup");
    assert!(mnesia(&["backup", path(dir.path()), path(&file)]).status.success());
    let other = tempfile::tempdir().expect("tempdir");
    mnesia::Schema::create(other.path()).expect("schema");
    // A directory whose `tag` table has other fields, and no `users` table.
    #[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[table(name = "tag", type = "bag")]
    struct OtherTag {
        #[key]
        item: u32,
        colour: String,
    }
    let db = Database::open(Config::default().dir(other.path())).expect("open");
    db.scope(|| OtherTag::create_table(TableOptions::new().disc_copies([NODE]))).expect("create");
    db.close().expect("close");
    drop(db);
    let mismatch =
        mnesia(&["restore", path(other.path()), path(&file), "--skip", "archive", "--skip", "users"]);
    assert_eq!(mismatch.status.code(), Some(1));
    assert!(stderr(&mismatch).contains("colour"), "{}", stderr(&mismatch));
    let missing = mnesia(&["restore", path(other.path()), path(&file), "--skip", "archive", "--skip", "tag"]);
    assert!(stderr(&missing).contains("--skip users"), "{}", stderr(&missing));
    // A damaged backup: refused before anything changes.
    let mut bytes = std::fs::read(&file).expect("read");
    let at = bytes.len() / 2;
    bytes[at] ^= 0x55;
    std::fs::write(&file, bytes).expect("write");
    let damaged = mnesia(&["restore", path(dir.path()), path(&file), "--skip", "archive"]);
    assert_eq!(damaged.status.code(), Some(1));
    assert!(stderr(&damaged).contains("then.backup"), "{}", stderr(&damaged));
    assert_eq!(json(&mnesia(&["dump", path(dir.path()), "users"])).as_array().map(Vec::len), Some(3));
}

/// Looking into a directory changes nothing in it (a lock file missing is made, empty);
/// a missing directory is said so.
#[test]
fn looking_into_a_directory_writes_nothing_there() {
    let dir = populated();
    let files = |dir: &Path| -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .expect("dir")
            .flatten()
            .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).expect("read")))
            .collect();
        v.sort();
        v
    };
    let before = files(dir.path());
    for args in [vec!["info"], vec!["verify"], vec!["log"], vec!["dump", "users"]] {
        let mut args = args;
        args.insert(1, path(dir.path()));
        let o = mnesia(&args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    }
    assert!(files(dir.path()) == before, "the directory changed");
    std::fs::remove_file(dir.path().join("LOCK")).expect("no lock file");
    assert!(mnesia(&["verify", path(dir.path())]).status.success());
    assert!(files(dir.path()) == before, "only the lock file is made again, empty");
    let gone = dir.path().join("nothing here");
    let o = mnesia(&["info", path(&gone)]);
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
}
