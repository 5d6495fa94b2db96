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

/// A child process running one test of the calling test binary, with some environment
/// variables set (the test acts only when they are there). Its output lines starting with
/// `ACK ` are collected; it is killed when dropped, so a failing parent leaves no child.
pub struct Child {
    process: std::process::Child,
    acks: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl Child {
    /// Starts test `test` of this binary with `env` set.
    pub fn spawn(test: &str, env: &[(&str, &std::ffi::OsStr)]) -> Child {
        use std::io::BufRead;
        let exe = std::env::current_exe().expect("test binary");
        let mut command = std::process::Command::new(exe);
        command
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut process = command.spawn().expect("spawn child");
        let stdout = process.stdout.take().expect("stdout");
        let acks = std::thread::spawn(move || {
            std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| l.strip_prefix("ACK ").map(str::to_owned))
                .collect()
        });
        Child { process, acks: Some(acks) }
    }

    /// Lets the child run for `lifetime` (or until it ends), then kills it with SIGKILL.
    /// Returns what followed `ACK ` on each line it printed, and the wall-clock time of the
    /// kill.
    pub fn kill_after(mut self, lifetime: std::time::Duration) -> (Vec<String>, std::time::SystemTime) {
        let started = std::time::Instant::now();
        while started.elapsed() < lifetime {
            if self.process.try_wait().expect("wait").is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let killed_at = std::time::SystemTime::now();
        self.kill();
        (self.acks.take().map(|r| r.join().expect("reader")).unwrap_or_default(), killed_at)
    }

    fn kill(&mut self) {
        // std sends SIGKILL on Unix; an error means it has already ended.
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.kill();
    }
}
