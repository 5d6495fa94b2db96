//! Faults for tests: links between nodes cut or slowed on purpose, and healed; a node's
//! disc made full, and freed.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// Links between nodes that are cut: what one node sends another over a cut link is lost
/// (its connection fails), in both directions. Give the same `Faults` to the nodes of a
/// test ([`Options::faults`](crate::Options::faults)) to cut them apart and join them again.
///
/// ```
/// let faults = mnesia_cluster::Faults::new();
/// faults.isolate(3, [1, 2]);
/// assert!(faults.is_cut(1, 3) && faults.is_cut(3, 2) && !faults.is_cut(1, 2));
/// faults.heal();
/// assert!(!faults.is_cut(1, 3));
/// ```
#[derive(Clone, Debug, Default)]
pub struct Faults {
    cut: Arc<parking_lot::RwLock<HashSet<(u64, u64)>>>,
    /// Links whose requests wait before they leave, one way.
    slow: Arc<parking_lot::RwLock<HashMap<(u64, u64), Duration>>>,
    /// Nodes whose disc is full.
    full: Arc<parking_lot::RwLock<BTreeSet<u64>>>,
    /// Writes failed on a full disc so far (they fail at the write and at the sync in turn).
    failed: Arc<std::sync::atomic::AtomicU64>,
}

impl Faults {
    /// No link cut.
    ///
    /// ```
    /// assert!(!mnesia_cluster::Faults::new().is_cut(1, 2));
    /// ```
    pub fn new() -> Faults {
        Faults::default()
    }

    /// Cuts the link between `a` and `b`, both ways.
    ///
    /// ```
    /// let faults = mnesia_cluster::Faults::new();
    /// faults.cut(1, 2);
    /// assert!(faults.is_cut(2, 1));
    /// ```
    pub fn cut(&self, a: u64, b: u64) {
        let mut cut = self.cut.write();
        cut.insert((a, b));
        cut.insert((b, a));
    }

    /// Cuts `node` off from each of `others`.
    ///
    /// ```
    /// let faults = mnesia_cluster::Faults::new();
    /// faults.isolate(1, [2, 3]);
    /// assert!(faults.is_cut(3, 1));
    /// ```
    pub fn isolate(&self, node: u64, others: impl IntoIterator<Item = u64>) {
        for other in others {
            self.cut(node, other);
        }
    }

    /// Makes every request `from` sends `to` wait `delay` before it leaves (one way).
    ///
    /// ```
    /// use std::time::Duration;
    /// let faults = mnesia_cluster::Faults::new();
    /// faults.delay(1, 3, Duration::from_millis(300));
    /// assert_eq!(faults.delay_of(1, 3), Duration::from_millis(300));
    /// assert_eq!(faults.delay_of(3, 1), Duration::ZERO);
    /// ```
    pub fn delay(&self, from: u64, to: u64, delay: Duration) {
        self.slow.write().insert((from, to), delay);
    }

    /// How long a request `from` sends `to` waits before it leaves.
    ///
    /// ```
    /// assert!(mnesia_cluster::Faults::new().delay_of(1, 2).is_zero());
    /// ```
    pub fn delay_of(&self, from: u64, to: u64) -> Duration {
        let slow = self.slow.read();
        if slow.is_empty() {
            return Duration::ZERO;
        }
        slow.get(&(from, to)).copied().unwrap_or_default()
    }

    /// Joins every link again, and takes every delay away.
    ///
    /// ```
    /// let faults = mnesia_cluster::Faults::new();
    /// faults.cut(1, 2);
    /// faults.heal();
    /// assert!(!faults.is_cut(1, 2));
    /// ```
    pub fn heal(&self) {
        self.cut.write().clear();
        self.slow.write().clear();
    }

    /// Whether what `from` sends `to` is lost.
    ///
    /// ```
    /// assert!(!mnesia_cluster::Faults::new().is_cut(1, 2));
    /// ```
    pub fn is_cut(&self, from: u64, to: u64) -> bool {
        let cut = self.cut.read();
        !cut.is_empty() && cut.contains(&(from, to))
    }

    /// Makes `node`'s disc full: what it writes to its Raft directory (its log, its
    /// snapshot) fails as on a full disc (`StorageFull`), until [`Faults::free_disc`]: a
    /// write of the log fails after half of it went to the file, or (every other time, as
    /// file systems that allocate late tell) once it went whole, at its sync.
    ///
    /// ```
    /// let faults = mnesia_cluster::Faults::new();
    /// faults.fill_disc(2);
    /// assert!(faults.is_disc_full(2) && !faults.is_disc_full(1));
    /// faults.free_disc(2);
    /// assert!(!faults.is_disc_full(2));
    /// ```
    pub fn fill_disc(&self, node: u64) {
        self.full.write().insert(node);
    }

    /// Frees `node`'s disc again (see [`Faults::fill_disc`]).
    ///
    /// ```
    /// let faults = mnesia_cluster::Faults::new();
    /// faults.fill_disc(1);
    /// faults.free_disc(1);
    /// assert!(!faults.is_disc_full(1));
    /// ```
    pub fn free_disc(&self, node: u64) {
        self.full.write().remove(&node);
    }

    /// Whether `node`'s disc is full (see [`Faults::fill_disc`]).
    ///
    /// ```
    /// assert!(!mnesia_cluster::Faults::new().is_disc_full(1));
    /// ```
    pub fn is_disc_full(&self, node: u64) -> bool {
        let full = self.full.read();
        !full.is_empty() && full.contains(&node)
    }

    /// `node`'s disc, as its Raft directory's files see it.
    pub(crate) fn disc_of(&self, node: u64) -> Disc {
        Disc { faults: self.clone(), node }
    }
}

/// One node's disc under [`Faults`]: the files of its Raft directory ask it before they
/// write.
#[derive(Clone, Debug)]
pub(crate) struct Disc {
    faults: Faults,
    node: u64,
}

impl Disc {
    /// A disc without faults.
    #[cfg(test)]
    pub(crate) fn sound() -> Disc {
        Disc { faults: Faults::default(), node: 0 }
    }

    /// How a write to this disc fails, if the disc is full.
    pub(crate) fn fault(&self) -> Option<DiscFault> {
        if !self.faults.is_disc_full(self.node) {
            return None;
        }
        let n = self.faults.failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let error = std::io::Error::new(
            std::io::ErrorKind::StorageFull,
            "no space left on device (a fault made for tests)",
        );
        Some(DiscFault { error, at_sync: n % 2 == 1 })
    }
}

/// How a write to a full disc fails (see [`Faults::fill_disc`]).
pub(crate) struct DiscFault {
    pub(crate) error: std::io::Error,
    /// Whether the write goes whole and its sync fails (or the write fails half way).
    pub(crate) at_sync: bool,
}
