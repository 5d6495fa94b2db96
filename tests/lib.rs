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

/// Threads that run `step(i)` again and again in `db`'s scope, each with its own run of
/// `i` (thread `w` of `n` takes `w`, `w + n`, `w + 2n`, ...), until [`Workers::stop`].
pub struct Workers {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Workers {
    /// Starts `n` threads.
    pub fn start(db: &mnesia::Database, n: u32, step: impl Fn(u32) + Clone + Send + 'static) -> Workers {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let threads = (0..n)
            .map(|w| {
                let (db, stop, step) = (db.clone(), std::sync::Arc::clone(&stop), step.clone());
                std::thread::spawn(move || {
                    db.scope(|| {
                        let mut i = w;
                        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                            step(i);
                            i += n;
                        }
                    })
                })
            })
            .collect();
        Workers { stop, threads }
    }

    /// Stops the threads and waits for them (a panic in one fails the caller).
    pub fn stop(self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in self.threads {
            t.join().expect("worker");
        }
    }
}
