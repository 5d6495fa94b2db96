//! Commit locks: reader-writer locks taken only by committing transactions, always in one
//! global order, so two commits can never wait for each other in a cycle (no deadlock).

use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// A reader-writer lock guarding one shard of a table or of an index at commit time.
pub(crate) struct CommitLock(RwLock<()>);

impl CommitLock {
    pub(crate) const fn new() -> Self {
        CommitLock(RwLock::new(()))
    }

    /// Waits for the commit holding this lock exclusively, if any, to let go: takes the
    /// lock shared, as readers do, and releases it. Called holding no commit lock.
    pub(crate) fn wait_for_holder(&self) {
        drop(self.0.read());
    }
}

/// One lock held, in its mode; released when dropped.
enum Held<'a> {
    // The guards are held for their drop only.
    Shared(#[allow(dead_code)] RwLockReadGuard<'a, ()>),
    Exclusive(#[allow(dead_code)] RwLockWriteGuard<'a, ()>),
}

/// One lock a commit needs: where it sits in the global order and in which mode.
pub(crate) struct LockReq<'a> {
    /// `table id << 32 | structure << 16 | shard`: structure 0 is the records, 1.. the indexes.
    pub(crate) order: u64,
    pub(crate) exclusive: bool,
    pub(crate) lock: &'a CommitLock,
}

/// The global position of a lock.
pub(crate) fn lock_order(table: u32, structure: u16, shard: u16) -> u64 {
    (u64::from(table) << 32) | (u64::from(structure) << 16) | u64::from(shard)
}

/// Locks held by one commit; released when dropped (last taken, first released), also on
/// unwind.
pub(crate) struct HeldLocks<'a> {
    held: Vec<Held<'a>>,
}

impl<'a> HeldLocks<'a> {
    /// Sorts the requests into the global order, merges duplicates (exclusive wins) and
    /// acquires them one by one.
    pub(crate) fn acquire(mut reqs: Vec<LockReq<'a>>) -> HeldLocks<'a> {
        reqs.sort_unstable_by(|a, b| a.order.cmp(&b.order).then(b.exclusive.cmp(&a.exclusive)));
        let mut held: Vec<Held<'a>> = Vec::with_capacity(reqs.len());
        let mut last = None;
        for r in reqs {
            if last == Some(r.order) {
                // Sorted exclusive-first, so the first request of an order decided the mode.
                continue;
            }
            last = Some(r.order);
            held.push(if r.exclusive {
                Held::Exclusive(r.lock.0.write())
            } else {
                Held::Shared(r.lock.0.read())
            });
        }
        HeldLocks { held }
    }
}

impl Drop for HeldLocks<'_> {
    fn drop(&mut self) {
        while let Some(held) = self.held.pop() {
            drop(held);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_merge_and_exclusive_wins() {
        let a = CommitLock::new();
        let b = CommitLock::new();
        let reqs = vec![
            LockReq { order: 2, exclusive: false, lock: &b },
            LockReq { order: 1, exclusive: false, lock: &a },
            LockReq { order: 1, exclusive: true, lock: &a },
        ];
        let held = HeldLocks::acquire(reqs);
        assert_eq!(held.held.len(), 2);
        assert!(matches!(held.held[0], Held::Exclusive(_)), "exclusive request must win");
        assert!(a.0.try_read().is_none());
        assert!(b.0.try_read().is_some());
        assert!(b.0.try_write().is_none(), "held shared");
        drop(held);
        assert!(a.0.try_write().is_some());
        assert!(b.0.try_write().is_some());
    }
}
