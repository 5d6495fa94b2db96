//! Commits left for `transaction_async` to order: the transaction it starts takes a
//! thread-local flag, and its commit, handed to the sequencer, is left here instead of
//! waited for (see `async_tx.rs`).

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use crate::engine::commit_record::CommitRecord;
use crate::engine::sequencer::Sequencer;

/// A commit left for the caller to order, with the sequencer to order it.
pub(crate) type Deferred = (Arc<Box<dyn Sequencer>>, CommitRecord);

thread_local! {
    /// Set by `transaction_async` just before it starts its transaction: the next
    /// transaction to start on this thread takes it (see [`take_armed`]).
    static ARMED: Cell<bool> = const { Cell::new(false) };
    /// The commit that transaction left to order, with the sequencer to order it.
    static LEFT: RefCell<Option<Deferred>> = const { RefCell::new(None) };
}

/// Whether the transaction starting now is `transaction_async`'s own: its commit is then
/// left to the future ([`leave`]) instead of waited for. Taken once: a transaction started
/// inside it (a dirty operation's) orders its own commit at once.
pub(crate) fn take_armed() -> bool {
    ARMED.with(|a| a.replace(false))
}

/// Leaves `record` for the running `transaction_async` to order.
pub(crate) fn leave(sequencer: &Arc<Box<dyn Sequencer>>, record: CommitRecord) {
    LEFT.with(|l| *l.borrow_mut() = Some((Arc::clone(sequencer), record)));
}

/// Arms this thread for `transaction_async`'s transaction until dropped (also on unwind).
pub(crate) struct Deferral {
    armed: bool,
    left: Option<Deferred>,
}

impl Deferral {
    pub(crate) fn on() -> Deferral {
        Deferral { armed: ARMED.with(|a| a.replace(true)), left: LEFT.with(|l| l.borrow_mut().take()) }
    }

    /// The commit left to order, if any.
    pub(crate) fn take(&self) -> Option<Deferred> {
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
