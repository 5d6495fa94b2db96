//! Priority for transactions that keep losing, so that every transaction finishes.
//!
//! Optimistic validation lets a long transaction (a report scanning a table) lose to every
//! short commit that lands while it runs: without help it runs again and again and may never
//! finish. A transaction that has lost often enough *escalates*: it takes its database's
//! priority (one transaction at a time holds it) and raises a *gate* on every table its
//! last attempt touched. A commit that writes to a gated table — from any other thread —
//! waits at the gate, holding no lock, until the priority is given back. Commits already
//! past the gate are drained first (the gate holder takes and releases every record-shard
//! commit lock of the table), so from then on nothing it reads from those tables changes
//! under it, and it commits on that attempt unless it strays into a table it did not touch
//! before (the next attempt then gates that one too).
//!
//! No deadlock: the priority is taken only between attempts, when a transaction holds no
//! lock; a commit waits at a gate only after releasing its locks; the priority holder never
//! waits at a gate (its own gates let it through, and no one else holds one); commit locks
//! are still taken in the one global order. On a copy whose commits are ordered (a cluster
//! node), the priority may also be held for a transaction of another copy (`hold.rs`): by a
//! thread that only waits for that transaction's end; the applier of the order never waits
//! at a gate, nor escalates. Writers to a gated table wait for as long as the
//! priority holder runs, but at most its *patience* (four times its longest losing attempt,
//! at least 20 ms; see `context.rs`): a closure that waits for another thread's write to one of its tables
//! would otherwise wait forever; past the patience the write goes ahead, and the transaction
//! with priority may lose again. Readers never wait.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

/// How many records an attempt must have read to count as long (a scan counts too): a long
/// transaction that lost once escalates at once, as running it again unprotected would
/// most likely lose again and cost as much.
pub(crate) const LONG_ATTEMPT_READS: usize = 64;

/// The least time a commit waits at a gate (see [`Priority::take`]).
pub(crate) const LEAST_PATIENCE: Duration = Duration::from_millis(20);

/// A table that a transaction with priority can close to other writers.
pub(crate) trait Gate: Send + Sync {
    /// The table's id in its database: gates are kept once per table.
    fn gate_id(&self) -> u32;
    /// The table's name (what other copies know it by).
    fn gate_name(&self) -> &'static str;
    /// Whether other copies hold the table too (not a table this node keeps for itself):
    /// a transaction with priority closes it on them as well.
    fn shared(&self) -> bool {
        true
    }
    /// Closes the table to commits of threads other than `owner`.
    fn raise(&self, owner: u64);
    /// Opens the table again.
    fn lower(&self);
    /// Waits for the commits already past the gate to finish installing.
    fn drain(&self);
}

/// A table's gate: the thread token of the transaction with priority that closed it, or 0.
#[derive(Default)]
pub(crate) struct GateState(AtomicU64);

impl GateState {
    /// Whether a commit of the calling thread must wait: the gate is closed by another
    /// thread. Returns the owner to wait for.
    pub(crate) fn closed_to_me(&self) -> Option<u64> {
        let owner = self.0.load(Ordering::Acquire);
        (owner != 0 && owner != thread_token()).then_some(owner)
    }

    pub(crate) fn close(&self, owner: u64) {
        self.0.store(owner, Ordering::SeqCst);
    }

    pub(crate) fn open(&self) {
        self.0.store(0, Ordering::SeqCst);
    }
}

static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static TOKEN: u64 = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed);
}

/// A number unique to the calling thread (never 0).
pub(crate) fn thread_token() -> u64 {
    TOKEN.try_with(|t| *t).unwrap_or(u64::MAX)
}

/// A database's priority: which thread holds it (0: none), and how long a commit waits at
/// its gates.
#[derive(Default)]
pub(crate) struct Priority {
    holder: Mutex<Holder>,
    released: Condvar,
}

#[derive(Default)]
struct Holder {
    token: u64,
    patience: Duration,
}

impl Priority {
    /// Takes the priority (waiting for the transaction holding it, if any) and closes the
    /// gates of `tables`, draining the commits already past them.
    /// A commit waits at the gates for at most `patience`, then goes ahead: a transaction
    /// with priority that waits inside its closure for another thread's write to one of its
    /// tables never deadlocks (it may lose again instead).
    pub(crate) fn take(self: &Arc<Self>, tables: &[Arc<dyn Gate>], patience: Duration) -> Escalated {
        let taken = self.take_until(tables, patience, None);
        taken.unwrap_or_else(|| Escalated { priority: Arc::clone(self), gated: Vec::new(), owns: false })
    }

    /// [`Priority::take`], waiting for the transaction holding it until `deadline` at most
    /// (`None`: as long as it holds it). `None`: the deadline passed first.
    pub(crate) fn take_until(
        self: &Arc<Self>,
        tables: &[Arc<dyn Gate>],
        patience: Duration,
        deadline: Option<Instant>,
    ) -> Option<Escalated> {
        let me = thread_token();
        {
            let mut holder = self.holder.lock();
            if holder.token == me {
                // Already this thread's (a transaction started by the holder's own commit):
                // its gates stay as they are.
                return Some(Escalated { priority: Arc::clone(self), gated: Vec::new(), owns: false });
            }
            while holder.token != 0 {
                match deadline {
                    Some(deadline) => {
                        if self.released.wait_until(&mut holder, deadline).timed_out() && holder.token != 0 {
                            return None;
                        }
                    }
                    None => self.released.wait(&mut holder),
                }
            }
            *holder = Holder { token: me, patience };
        }
        for t in tables {
            t.raise(me);
        }
        for t in tables {
            t.drain();
        }
        Some(Escalated { priority: Arc::clone(self), gated: tables.to_vec(), owns: true })
    }

    /// Waits while `owner` holds the priority (a commit stopped at one of its gates), for
    /// at most the holder's patience. Returns `false` if the patience ran out: the commit
    /// then goes past the gates.
    pub(crate) fn wait_for(&self, owner: u64) -> bool {
        let mut holder = self.holder.lock();
        let deadline = Instant::now() + holder.patience;
        while holder.token == owner {
            if self.released.wait_until(&mut holder, deadline).timed_out() {
                return holder.token != owner;
            }
        }
        true
    }
}

/// The priority, held by one transaction's attempt; given back (gates opened first) when
/// dropped, also on unwind.
pub(crate) struct Escalated {
    priority: Arc<Priority>,
    gated: Vec<Arc<dyn Gate>>,
    /// Whether this attempt took the priority (and gives it back).
    owns: bool,
}

impl Escalated {
    /// Whether this attempt took the priority (not: its thread held it already).
    pub(crate) fn owns(&self) -> bool {
        self.owns
    }
}

impl Drop for Escalated {
    fn drop(&mut self) {
        if !self.owns {
            return;
        }
        for t in &self.gated {
            t.lower();
        }
        self.priority.holder.lock().token = 0;
        self.priority.released.notify_all();
    }
}

/// Adds `more` to `tables`, keeping one gate per table.
pub(crate) fn merge(tables: &mut Vec<Arc<dyn Gate>>, more: Vec<Arc<dyn Gate>>) {
    for t in more {
        if !tables.iter().any(|x| x.gate_id() == t.gate_id()) {
            tables.push(t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    struct Probe {
        state: GateState,
        drained: AtomicBool,
    }

    impl Gate for Probe {
        fn gate_id(&self) -> u32 {
            7
        }
        fn gate_name(&self) -> &'static str {
            "probe"
        }
        fn raise(&self, owner: u64) {
            self.state.close(owner);
        }
        fn lower(&self) {
            self.state.open();
        }
        fn drain(&self) {
            self.drained.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_gate_stops_other_threads_only_while_the_priority_is_held() {
        let probe = Arc::new(Probe { state: GateState::default(), drained: AtomicBool::new(false) });
        let priority = Arc::new(Priority::default());
        let held = priority.take(&[Arc::clone(&probe) as Arc<dyn Gate>], Duration::from_secs(60));
        assert!(probe.drained.load(Ordering::SeqCst));
        assert_eq!(probe.state.closed_to_me(), None, "the holder passes its own gate");
        let owner = std::thread::scope(|s| s.spawn(|| probe.state.closed_to_me()).join().expect("thread"));
        assert_eq!(owner, Some(thread_token()));
        let waited = std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                let released = priority.wait_for(owner.expect("the gate is closed"));
                (released, probe.state.closed_to_me())
            });
            std::thread::sleep(std::time::Duration::from_millis(20));
            drop(held);
            waiter.join().expect("waiter")
        });
        assert_eq!(waited, (true, None), "the gate is open once the priority is given back");
    }

    #[test]
    fn a_commit_waits_at_most_the_patience() {
        let probe = Arc::new(Probe { state: GateState::default(), drained: AtomicBool::new(false) });
        let priority = Arc::new(Priority::default());
        let held = priority.take(&[Arc::clone(&probe) as Arc<dyn Gate>], Duration::from_millis(5));
        let me = thread_token();
        let released = std::thread::scope(|s| s.spawn(|| priority.wait_for(me)).join().expect("thread"));
        assert!(!released, "the patience ran out while the priority was held");
        drop(held);
        assert!(priority.wait_for(me), "nothing to wait for once given back");
    }

    #[test]
    fn a_bounded_take_gives_up_while_another_holds_the_priority() {
        let probe = Arc::new(Probe { state: GateState::default(), drained: AtomicBool::new(false) });
        let gates = [Arc::clone(&probe) as Arc<dyn Gate>];
        let priority = Arc::new(Priority::default());
        let held = priority.take(&gates, Duration::from_secs(60));
        let soon = Some(Instant::now() + Duration::from_millis(10));
        let other = std::thread::scope(|s| {
            s.spawn(|| priority.take_until(&gates, Duration::from_secs(1), soon).is_some())
                .join()
                .expect("thread")
        });
        assert!(!other, "the priority is held");
        drop(held);
        let other = std::thread::scope(|s| {
            s.spawn(|| {
                let taken = priority.take_until(&gates, Duration::from_secs(1), soon);
                (taken.is_some(), probe.state.closed_to_me().is_none())
            })
            .join()
            .expect("thread")
        });
        assert_eq!(other, (true, true), "taken once given back, its gates open to its holder");
        assert_eq!(probe.state.closed_to_me(), None, "and opened again once dropped");
    }

    #[test]
    fn merge_keeps_one_gate_per_table() {
        let a: Arc<dyn Gate> =
            Arc::new(Probe { state: GateState::default(), drained: AtomicBool::new(false) });
        let mut tables = vec![Arc::clone(&a)];
        merge(&mut tables, vec![Arc::clone(&a), a]);
        assert_eq!(tables.len(), 1);
    }
}
