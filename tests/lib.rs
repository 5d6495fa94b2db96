//! Shared helpers for the integration tests.

use std::path::Path;

/// What a crash would leave of the database in `dir`: a copy of every file but the lock
/// (which the process holding the database keeps), taken while the database is open.
pub fn crash_image(dir: &Path) -> tempfile::TempDir {
    let copy = tempfile::tempdir().expect("tempdir");
    for e in std::fs::read_dir(dir).expect("ls").flatten() {
        if e.file_name() != "LOCK" {
            std::fs::copy(e.path(), copy.path().join(e.file_name())).expect("copy");
        }
    }
    copy
}

/// A fresh directory holding an empty database schema (`Schema::create`), removed when the
/// returned value drops.
pub fn schema_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    mnesia::Schema::create(dir.path()).expect("schema");
    dir
}
