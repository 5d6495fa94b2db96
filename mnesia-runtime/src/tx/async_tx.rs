//! Transactions for async callers: the closure runs on the calling thread as always; on a
//! database whose commits are ordered (a cluster node), the wait for the order's verdict
//! is a future, so the executor's thread goes on with other tasks meanwhile.
//!
//! The transaction it starts takes a thread-local flag (set and cleared within one poll):
//! its commit, handed to the sequencer, leaves its record here instead of waiting (a dirty
//! operation inside it orders its own commit at once); the future then awaits
//! [`Sequencer::order_async`](crate::Sequencer::order_async) and runs the transaction
//! again on a conflict.

use std::future::Future;
use std::sync::Arc;

use crate::base::stats::Stat;
use crate::error::Error;
use crate::tx::context::{current_db, transact};
use crate::tx::deferral::{Budget, Deferral};

/// [`transaction`](crate::transaction) for async code: runs `f` as one serializable
/// transaction on the current database (taken when this is called) and resolves to its
/// result. `f` runs on the thread that polls the future, as a transaction does; on a
/// cluster node the wait for the cluster's verdict does not block that thread (the other
/// tasks of the executor go on), and a conflict runs `f` again. On a single node the
/// commit is made at once, within the poll (on disc, with its log sync, as `transaction`).
/// A dirty operation inside `f` commits on its own, at once (as inside `transaction`).
/// Dropping the future once its commit went to the cluster does not take the commit back:
/// its fate is then unknown, as that of a commit that failed with `NoMajority`.
///
/// ```
/// use mnesia::prelude::*;
/// #[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
/// struct Item { #[key] id: u32, n: i64 }
///
/// let db = Database::in_memory()?;
/// db.create_table::<Item>(TableOptions::new())?;
/// let done = db.scope(|| mnesia::transaction_async(|| {
///     Item::write(Item { id: 1, n: 5 })?;
///     Ok::<_, mnesia::Error>(7)
/// }));
/// // In an async fn: `done.await`. Here, outside any executor:
/// assert_eq!(mnesia::__private::block_on(done)?, 7);
/// assert_eq!(db.scope(|| Item::read(&1))?, Some(Item { id: 1, n: 5 }));
/// # Ok::<(), mnesia::Error>(())
/// ```
pub fn transaction_async<R, E, F>(mut f: F) -> impl Future<Output = std::result::Result<R, E>> + Send
where
    F: FnMut() -> std::result::Result<R, E> + Send,
    R: Send,
    E: From<Error> + Send,
{
    let db = current_db();
    async move {
        let db = db?;
        // One budget of attempts for every round: those that lost here, and those that
        // lost in the order.
        let attempts = db.config().retries();
        // Once the first round left its commit here, the transaction's end is this future's
        // to count (the later rounds count none): as ended without committing unless told
        // otherwise (also when the future is dropped while its commit is on its way).
        let stats = db.stats();
        let began = crate::tx::context::timed(&stats).then(std::time::Instant::now);
        let mut end = Ends { db: db.clone(), began, runs: 0, counting: false, stat: Stat::Abort };
        let mut left = attempts;
        let mut first = true;
        while left > 0 {
            let (result, deferred) = {
                let deferral = Deferral::on(Budget { attempts: left, first });
                let result = db.scope(|| transact(db.clone(), &mut f));
                (result, deferral.take())
            };
            first = false;
            // Not ordered (one node), or not committed: the transaction's outcome (counted
            // by the round itself if it was the first).
            let Some(((sequencer, record), used)) = deferred else {
                end.stat = if result.is_ok() { Stat::Commit } else { Stat::Abort };
                end.runs = attempts - left + 1;
                return result;
            };
            end.counting = true;
            left = left.saturating_sub(used.max(1));
            end.runs = attempts - left;
            match sequencer.order_async(record).await {
                Ok(()) => {
                    end.stat = Stat::Commit;
                    return result;
                }
                Err(Error::Conflict) if left > 0 => stats.add(Stat::Retry),
                Err(Error::Conflict) => break,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::TooManyRetries { attempts }.into())
    }
}

/// Counts how an async transaction whose first round left its commit to the future ended
/// (and how long it took), when dropped.
struct Ends {
    db: crate::db::Database,
    began: Option<std::time::Instant>,
    /// The runs of the closure so far.
    runs: u32,
    /// Whether the first round left its commit for this future (if not, that round counted
    /// the transaction's end).
    counting: bool,
    stat: Stat,
}

impl Drop for Ends {
    fn drop(&mut self) {
        if self.counting {
            let stats = self.db.stats();
            stats.add(self.stat);
            let ended = if matches!(self.stat, Stat::Commit) { "committed" } else { "failed" };
            crate::tx::context::timed_end(&self.db, &stats, self.began, self.runs, ended);
        }
    }
}

/// Runs `future` on this thread until it is done (parking while it waits): for examples and
/// tests that have no executor.
#[doc(hidden)]
pub fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}
