//! Commits left for `transaction_async` to order: the transaction it starts takes a
//! thread-local flag, and its commit, handed to the sequencer, is left here instead of
//! waited for (see `async_tx.rs`).

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use crate::engine::commit_record::CommitRecord;
use crate::engine::sequencer::Sequencer;

/// A commit left for the caller to order, with the sequencer to order it.
pub(crate) type Deferred = (Arc<Box<dyn Sequencer>>, CommitRecord);

/// What `transaction_async` gives the transaction it starts: the attempts it may still
/// make (its rounds share one budget, `Config::max_retries`), and whether it is the first
/// round (the one counted as a start in the statistics).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Budget {
    pub(crate) attempts: u32,
    pub(crate) first: bool,
}

thread_local! {
    /// Set by `transaction_async` just before it starts its transaction: the next
    /// transaction to start on this thread takes it (see [`take_armed`]).
    static ARMED: Cell<Option<Budget>> = const { Cell::new(None) };
    /// The commit that transaction left to order, with the sequencer to order it, and the
    /// attempts it took to make it.
    static LEFT: RefCell<Option<(Deferred, u32)>> = const { RefCell::new(None) };
}

/// Whether the transaction starting now is `transaction_async`'s own, and its budget: its
/// commit is then left to the future ([`leave`]) instead of waited for. Taken once: a
/// transaction started inside it (a dirty operation's) orders its own commit at once.
pub(crate) fn take_armed() -> Option<Budget> {
    ARMED.with(|a| a.replace(None))
}

/// Leaves `record` for the running `transaction_async` to order.
pub(crate) fn leave(sequencer: &Arc<Box<dyn Sequencer>>, record: CommitRecord) {
    LEFT.with(|l| *l.borrow_mut() = Some(((Arc::clone(sequencer), record), 0)));
}

/// Whether a commit was left ([`leave`]); if so, notes that it took `attempts`.
pub(crate) fn left_after(attempts: u32) -> bool {
    LEFT.with(|l| l.borrow_mut().as_mut().map(|(_, used)| *used = attempts).is_some())
}

/// Arms this thread for `transaction_async`'s transaction until dropped (also on unwind).
pub(crate) struct Deferral {
    armed: Option<Budget>,
    left: Option<(Deferred, u32)>,
}

impl Deferral {
    pub(crate) fn on(budget: Budget) -> Deferral {
        Deferral {
            armed: ARMED.with(|a| a.replace(Some(budget))),
            left: LEFT.with(|l| l.borrow_mut().take()),
        }
    }

    /// The commit left to order, if any, and the attempts it took.
    pub(crate) fn take(&self) -> Option<(Deferred, u32)> {
        LEFT.with(|l| l.borrow_mut().take())
    }
}

impl Drop for Deferral {
    fn drop(&mut self) {
        ARMED.with(|a| a.set(self.armed));
        let left = self.left.take();
        LEFT.with(|l| *l.borrow_mut() = left);
    }
}
