//! Snapshots for transactions that only read: a transaction that turns out to read much
//! (it scans, or makes many reads) and has written nothing reads the database as it was
//! at one commit, its *snapshot*, and never conflicts with the commits that land
//! meanwhile. A transaction that loses once without having written runs again on a
//! snapshot from its start.
//!
//! How a snapshot stays consistent:
//! - While a snapshot is open, a commit that changes a record keeps the version it
//!   replaces beside the shard (the shard's *history*, `store/history.rs`), tagged with the
//!   commit's sequence number. A read at snapshot `S` takes a record's current version when
//!   it is `S` or older, else the kept version that was current at `S`.
//! - The registry's *floor* is the oldest open snapshot's number (`u64::MAX`: none). A
//!   commit reads it after taking its sequence number; a snapshot lowers it before reading
//!   the database's last sequence number as its own `S` (all four with `SeqCst`). So every
//!   commit numbered after `S` sees the snapshot and keeps what it replaces.
//! - Commits numbered `S` or before may still be installing when the snapshot opens: each
//!   holds the commit locks of the shards it writes until it has installed, so before its
//!   first read of a table the snapshot takes and releases every record-shard commit lock
//!   of the table (as an escalated transaction drains a table), and those are done.
//! - Kept versions that no open snapshot can need (replaced at or before the floor) are
//!   pruned as commits add more, and all of a table's once no snapshot is open.
//!
//! A transaction that writes after reading at its snapshot stays serializable: its reads
//! are validated at commit as usual (a record changed since the snapshot is a conflict).

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// No snapshot is open: commits keep nothing.
pub(crate) const NONE_OPEN: u64 = u64::MAX;

/// The open snapshots of one database.
pub(crate) struct Snapshots {
    /// The oldest open snapshot's sequence number, or a lower one while a snapshot opens;
    /// [`NONE_OPEN`] when none is open.
    floor: AtomicU64,
    /// The open snapshots' sequence numbers (one entry per open snapshot).
    open: Mutex<Vec<u64>>,
}

impl Default for Snapshots {
    fn default() -> Self {
        Snapshots { floor: AtomicU64::new(NONE_OPEN), open: Mutex::new(Vec::new()) }
    }
}

impl Snapshots {
    /// Opens a snapshot at the last commit numbered by `seq` (the database's sequence
    /// counter); returns its number. Pair with [`Snapshots::end`].
    pub(crate) fn begin(&self, seq: &AtomicU64) -> u64 {
        let mut open = self.open.lock();
        // Lowered first, to a number no greater than the snapshot's: a commit that reads the
        // floor after this keeps what it replaces, and none of it is pruned.
        let before = seq.load(Ordering::SeqCst);
        self.floor.fetch_min(before, Ordering::SeqCst);
        let at = seq.load(Ordering::SeqCst);
        open.push(at);
        at
    }

    /// Closes the snapshot `at`. Returns whether the floor rose (kept versions may be
    /// pruned).
    pub(crate) fn end(&self, at: u64) -> bool {
        let mut open = self.open.lock();
        if let Some(i) = open.iter().position(|s| *s == at) {
            open.swap_remove(i);
        }
        let floor = open.iter().copied().min().unwrap_or(NONE_OPEN);
        let before = self.floor.swap(floor, Ordering::SeqCst);
        floor > before
    }

    /// The floor as a commit reads it after taking its sequence number: [`NONE_OPEN`], or
    /// the number at or before which a replaced version is needed by no open snapshot.
    pub(crate) fn floor(&self) -> u64 {
        self.floor.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_is_the_oldest_open_snapshot() {
        let seq = AtomicU64::new(10);
        let s = Snapshots::default();
        assert_eq!(s.floor(), NONE_OPEN);
        let a = s.begin(&seq);
        seq.store(20, Ordering::SeqCst);
        let b = s.begin(&seq);
        assert_eq!((a, b, s.floor()), (10, 20, 10));
        assert!(s.end(a), "the floor rises to the next oldest");
        assert_eq!(s.floor(), 20);
        assert!(s.end(b));
        assert_eq!(s.floor(), NONE_OPEN);
    }

    #[test]
    fn two_snapshots_at_one_number_are_closed_one_at_a_time() {
        let seq = AtomicU64::new(5);
        let s = Snapshots::default();
        let a = s.begin(&seq);
        let b = s.begin(&seq);
        assert!(!s.end(a), "the other one still holds the floor");
        assert_eq!(s.floor(), 5);
        assert!(s.end(b));
        assert_eq!(s.floor(), NONE_OPEN);
    }
}
