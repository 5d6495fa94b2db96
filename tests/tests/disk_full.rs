//! A really full disc: a small tmpfs that the test mounts (as root, where the machine allows
//! it; otherwise the test says so and passes without checking anything). Fill it until a
//! commit fails, free space, go on without a reopen, close, reopen, compare.

use std::path::{Path, PathBuf};
use std::process::Command;

use mnesia::prelude::*;
use mnesia::{Durability, Error};

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Blob {
    #[key]
    id: u32,
    body: String,
}

fn blob(id: u32) -> Blob {
    Blob { id, body: format!("{id:0>8192}") }
}

/// A mounted tmpfs, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=`) at `at`, or says why it cannot.
    fn mount(at: &Path, size: &str) -> Result<Tmpfs, String> {
        let uid = Command::new("id").arg("-u").output().map_err(|e| e.to_string())?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            return Err("not running as root".into());
        }
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(Tmpfs(at.to_path_buf()))
    }
}

impl Tmpfs {
    /// [`Tmpfs::mount`], or `None` after saying why the test is skipped.
    fn mount_or_skip(at: &Path, size: &str) -> Option<Tmpfs> {
        Tmpfs::mount(at, size)
            .map_err(|why| eprintln!("skipped: cannot mount a small tmpfs here ({why})"))
            .ok()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_filesystem_fails_commits_until_space_is_freed_then_service_goes_on() {
    let base = tempfile::tempdir().expect("tempdir");
    let Some(fs) = Tmpfs::mount_or_skip(&base.path().join("fs"), "8m") else { return };
    let dir = fs.0.join("db");
    // Space to give back later.
    let filler = fs.0.join("filler");
    std::fs::write(&filler, vec![1u8; 5 << 20]).expect("filler");
    Schema::create(&dir).expect("schema");
    let db = Database::open(Config::default().dir(&dir).durability(Durability::Immediate)).expect("open");
    db.create_table::<Blob>(TableOptions::new().disc_copies([db.node()])).expect("create");
    let mut acked = Vec::new();
    db.scope(|| -> mnesia::Result<()> {
        let mut full = None;
        for id in 0..2000 {
            match Blob::write(blob(id)) {
                Ok(_) => acked.push(id),
                Err(e) => {
                    full = Some(e);
                    break;
                }
            }
        }
        let err = full.expect("8 MiB filled by 16 MiB of records");
        assert_eq!(err.io_kind(), Some(std::io::ErrorKind::StorageFull), "{err}");
        assert!(matches!(err, Error::Io { .. }));
        // Still full: commits and checkpoints fail, reads go on, nothing is left behind.
        assert!(Blob::write(blob(9000)).is_err());
        assert!(db.checkpoint().is_err());
        assert_eq!(Blob::read(&0)?, Some(blob(0)));
        let temporary: Vec<_> = std::fs::read_dir(&dir)
            .expect("ls")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .map(|e| e.file_name())
            .collect();
        assert!(temporary.is_empty(), "{temporary:?}");
        // Space freed: service goes on without a reopen.
        std::fs::remove_file(&filler).expect("free");
        Blob::write(blob(5000))?;
        acked.push(5000);
        db.checkpoint()?;
        Blob::write(blob(5001))?;
        acked.push(5001);
        Ok(())
    })
    .expect("service after space is freed");
    db.close().expect("close");
    let db = Database::open(Config::default().dir(&dir)).expect("reopen");
    let mut ids: Vec<u32> = db.scope(Blob::list).expect("list").iter().map(|b| b.id).collect();
    ids.sort_unstable();
    assert_eq!(ids, acked);
    assert!(db.scope(|| Blob::read(&acked[0])).expect("read") == Some(blob(acked[0])));
    db.close().expect("close");
}

#[test]
fn reopening_on_a_full_filesystem_says_space_is_needed_and_opens_once_it_is_freed() {
    let base = tempfile::tempdir().expect("tempdir");
    let Some(fs) = Tmpfs::mount_or_skip(&base.path().join("fs"), "16m") else { return };
    // A disc-only table whose commits are only in the log: the process died before the
    // redb file had any of them.
    let origin = tests::schema_dir();
    let db = Database::open(Config::default().dir(origin.path())).expect("open");
    db.create_table::<Blob>(TableOptions::new().disc_only_copies([db.node()])).expect("create");
    db.close().expect("close");
    let empty = std::fs::read(origin.path().join("disc_only.redb")).expect("read");
    let db = Database::open(Config::default().dir(origin.path())).expect("open");
    db.scope(|| (0..300).try_for_each(|id| Blob::write(blob(id)).map(drop))).expect("write");
    let image = tests::crash_image(origin.path());
    drop(db);
    std::fs::write(image.path().join("disc_only.redb"), empty).expect("as before the commits");
    let dir = fs.0.join("db");
    std::fs::create_dir(&dir).expect("mkdir");
    for e in std::fs::read_dir(image.path()).expect("ls").flatten() {
        std::fs::copy(e.path(), dir.join(e.file_name())).expect("copy");
    }
    // Fill what is left, a page short of full.
    let filler = fs.0.join("filler");
    let mut left = u64::MAX;
    for _ in 0..64 {
        let out = Command::new("df").args(["-B1", "--output=avail"]).arg(&fs.0).output().expect("df");
        left = String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0);
        if left <= 8192 {
            break;
        }
        let mut bytes = std::fs::read(&filler).unwrap_or_default();
        bytes.resize(bytes.len() + (left as usize - 4096), 0);
        if std::fs::write(&filler, &bytes).is_err() {
            break;
        }
    }
    assert!(left <= 8192, "could not fill the filesystem: {left} bytes left");
    let err = Database::open(Config::default().dir(&dir)).expect_err("no space to replay the log");
    assert_eq!(err.io_kind(), Some(std::io::ErrorKind::StorageFull), "{err}");
    assert!(err.to_string().contains("free some"), "{err}");
    std::fs::remove_file(&filler).expect("free");
    let db = Database::open(Config::default().dir(&dir)).expect("open once there is space");
    assert_eq!(db.scope(Blob::count).expect("count"), 300);
    db.close().expect("close");
}
