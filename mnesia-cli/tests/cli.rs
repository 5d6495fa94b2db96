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
        // After the checkpoint: in the log only.
        Tag::write(Tag { item: 2, label: "green".into() })?;
        User::delete(&1)?;
        User::insert(User { id: 0, email: "d@x".into(), age: 50 })?;
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
    assert_eq!(info["log"]["commits"].as_u64(), Some(3));
    assert!(info["log"]["torn_tail"].is_null());

    let text = mnesia(&["info", path(dir.path())]);
    assert!(text.status.success(), "{}", stderr(&text));
    let text = stdout(&text);
    assert!(
        text.contains("users") && text.contains("email (unique)") && text.contains("disc_only_copies"),
        "{text}"
    );
    assert!(text.contains("#[key] id: u64"), "{text}");

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
    assert_eq!(segments.iter().map(|s| s["commits"].as_u64().unwrap_or(0)).sum::<u64>(), 3);
    assert!(log["last_seq"].as_u64().is_some_and(|s| s >= 3));
    let text = stdout(&mnesia(&["log", path(dir.path())]));
    assert!(text.contains("3 commits since the checkpoint"), "{text}");
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
    assert_eq!(info["log"]["commits"].as_u64(), Some(2), "the torn commit is not counted");
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
    assert!(stderr(&o).starts_with("mnesia: no schema in"), "{}", stderr(&o));
    assert_eq!(stderr(&o).lines().count(), 1);
    let o = mnesia(&["checkpoint", path(&dir.path().join("missing"))]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(mnesia(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(mnesia(&[]).status.code(), Some(2));
    let help = mnesia(&["--help"]);
    assert!(help.status.success());
    for command in ["info", "log", "verify", "checkpoint", "backup"] {
        assert!(stdout(&help).contains(command), "{command}");
    }
}
