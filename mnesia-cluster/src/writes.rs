//! Writes to a node's Raft directory that fail (a full disc, a failing device): tried again
//! until they succeed or the node stops, the failure told once to the database's system
//! event subscribers and to the log, and the recovery too.
//!
//! Raft cannot go on past a write it did not make (a vote, an entry, a snapshot its leader
//! sent), and openraft stops a node for good at the first storage error: so the write waits
//! for the disc instead, and Raft with it. Meanwhile the node orders nothing (its commits
//! fail once their write timeout passes), a leader stops leading (its followers hear no more
//! of it and elect another), and the other nodes go on; once the disc has room, the node
//! goes on from where it stopped and catches up.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mnesia_runtime::{ClusterEvent, Database};

/// The first pause before a failed write is tried again ...
const FIRST_PAUSE: Duration = Duration::from_millis(10);

/// ... doubling up to this one.
const LONGEST_PAUSE: Duration = Duration::from_millis(500);

/// How a node's writes to its directory fare.
#[derive(Default)]
pub(crate) struct Writes {
    /// The database told of failures and recoveries (none for a log in memory, which never
    /// fails).
    db: Option<Database>,
    /// Whether the last write failed.
    failing: AtomicBool,
    /// Whether the node stops: a failing write gives up.
    stopping: AtomicBool,
    stopped: tokio::sync::Notify,
}

impl Writes {
    /// Writes told to `db`.
    pub(crate) fn told_to(db: Database) -> Writes {
        Writes { db: Some(db), ..Writes::default() }
    }

    /// Runs `write` until it succeeds, pausing between tries (10 ms, doubling up to
    /// 500 ms); gives up with its error only when the node stops. `what` names what is
    /// written, for the log.
    pub(crate) async fn until_done<T>(
        &self,
        what: &str,
        mut write: impl FnMut() -> io::Result<T>,
    ) -> io::Result<T> {
        let mut pause = FIRST_PAUSE;
        loop {
            match write() {
                Ok(done) => {
                    self.succeeded();
                    return Ok(done);
                }
                Err(e) => {
                    self.failed(what, &e);
                    if self.stopping.load(Ordering::Acquire) {
                        return Err(e);
                    }
                    self.pause(pause).await;
                    pause = (pause * 2).min(LONGEST_PAUSE);
                }
            }
        }
    }

    /// Tells of a failed write, once per failure.
    pub(crate) fn failed(&self, what: &str, e: &io::Error) {
        if self.failing.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::warn!(
            target: "mnesia::cluster",
            error = %e,
            "{what} cannot be written: tried again until it is (this node's Raft waits meanwhile)"
        );
        if let Some(db) = &self.db {
            db.report_cluster_event(ClusterEvent::LogFailed {
                kind: e.kind(),
                reason: format!("{what}: {e}"),
            });
        }
    }

    /// Tells of a write that succeeded after failures.
    pub(crate) fn succeeded(&self) {
        // (Read first: a write that succeeds is the common case, and writes nothing here.)
        if !self.failing.load(Ordering::Acquire) || !self.failing.swap(false, Ordering::AcqRel) {
            return;
        }
        tracing::info!(target: "mnesia::cluster", "the Raft directory is written again");
        if let Some(db) = &self.db {
            db.report_cluster_event(ClusterEvent::LogRecovered);
        }
    }

    /// Whether the last write failed (and is being tried again).
    pub(crate) fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Acquire)
    }

    /// The node stops: a write waiting to be tried again gives up at once.
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        self.stopped.notify_waiters();
    }

    async fn pause(&self, pause: Duration) {
        let stopped = self.stopped.notified();
        tokio::pin!(stopped);
        // Registered before the flag is read: a `stop` in between wakes it.
        stopped.as_mut().enable();
        if self.stopping.load(Ordering::Acquire) {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stopped => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_write_is_tried_until_it_succeeds_and_told_once_each_way() {
        let db = Database::in_memory().expect("db");
        let events = db.subscribe_system();
        let writes = Writes::told_to(db);
        let mut tries = 0;
        let done = writes
            .until_done("a test file", || {
                tries += 1;
                if tries < 4 { Err(io::Error::new(io::ErrorKind::StorageFull, "full")) } else { Ok(tries) }
            })
            .await
            .expect("written at last");
        assert_eq!(done, 4);
        assert_eq!(
            events.try_recv(),
            Some(mnesia_runtime::SystemEvent::Cluster(ClusterEvent::LogFailed {
                kind: io::ErrorKind::StorageFull,
                reason: "a test file: full".into()
            }))
        );
        assert_eq!(events.try_recv(), Some(mnesia_runtime::SystemEvent::Cluster(ClusterEvent::LogRecovered)));
        assert_eq!(events.try_recv(), None, "told once each way");
    }

    #[tokio::test]
    async fn a_failing_write_gives_up_when_the_node_stops() {
        let writes = std::sync::Arc::new(Writes::default());
        let stopper = std::sync::Arc::clone(&writes);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            stopper.stop();
        });
        let outcome = tokio::time::timeout(
            Duration::from_secs(10),
            writes.until_done("a test file", || Err::<(), _>(io::Error::other("broken"))),
        )
        .await
        .expect("gave up, did not wait forever");
        assert!(outcome.is_err());
    }
}
