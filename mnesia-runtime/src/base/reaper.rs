//! The reaper's thread: it runs the database's removal of expired records every
//! interval, until the database closes (what a run does is the database's: `db/mod.rs`).

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};

/// The database's reaper thread: started with the first table that has a `#[ttl]` field
/// (unless `Config::auto_cleanup(false)`), stopped when the database closes or is dropped.
#[derive(Default)]
pub(crate) struct Reaper {
    thread: parking_lot::Mutex<Option<std::thread::JoinHandle<()>>>,
    stop: parking_lot::Mutex<bool>,
    /// `stop`, readable without the lock.
    stopping: std::sync::atomic::AtomicBool,
    /// Runs leave the records of the copies' shared tables alone (another copy's reaper
    /// removes them); those of tables this node keeps for itself are still removed.
    paused: std::sync::atomic::AtomicBool,
    wake: parking_lot::Condvar,
}

impl Reaper {
    /// Starts the thread unless it runs (or ran: a stopped reaper stays stopped). Every
    /// `interval` it calls `run` (paused or not: see `paused`), which holds the database weakly and
    /// returns `false` once the database is gone (the thread then ends).
    pub(crate) fn start(
        self: &Arc<Self>,
        interval: Duration,
        run: impl Fn() -> bool + Send + 'static,
    ) -> Result<()> {
        let mut thread = self.thread.lock();
        if thread.is_some() || *self.stop.lock() {
            return Ok(());
        }
        let reaper = Arc::clone(self);
        let handle = std::thread::Builder::new()
            .name("mnesia-reaper".into())
            .spawn(move || {
                loop {
                    let mut stop = reaper.stop.lock();
                    if !*stop {
                        reaper.wake.wait_for(&mut stop, interval);
                    }
                    if *stop {
                        return;
                    }
                    drop(stop);
                    // (Paused, it still runs: `run` reaps the tables no other copy does.)
                    if !run() {
                        return;
                    }
                }
            })
            .map_err(|e| Error::Io { path: "the reaper thread".into(), source: e })?;
        *thread = Some(handle);
        Ok(())
    }

    /// Asks the thread to end (it may finish a run first).
    pub(crate) fn stop(&self) {
        self.stopping.store(true, std::sync::atomic::Ordering::Release);
        *self.stop.lock() = true;
        self.wake.notify_all();
    }

    /// Pauses the runs (or resumes them).
    pub(crate) fn pause(&self, paused: bool) {
        self.paused.store(paused, std::sync::atomic::Ordering::Release);
    }

    /// Whether the runs are paused (see `paused`).
    pub(crate) fn paused(&self) -> bool {
        self.paused.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Whether the database is closing.
    pub(crate) fn stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Stops the thread and waits until it has ended, unless called on that thread.
    /// Returns whether a thread was running.
    pub(crate) fn stop_and_wait(&self) -> bool {
        self.stop();
        let handle = self.thread.lock().take();
        let ran = handle.is_some();
        if let Some(h) = handle
            && h.thread().id() != std::thread::current().id()
        {
            let _ = h.join();
        }
        ran
    }

    /// Lets the thread be started again after `stop_and_wait` (a close that failed).
    pub(crate) fn rearm(&self) {
        self.stopping.store(false, std::sync::atomic::Ordering::Release);
        *self.stop.lock() = false;
    }
}
