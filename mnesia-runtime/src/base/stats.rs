//! What transactions did, counted per outcome (striped counters) with their latencies:
//! [`Stats`], which system info and monitors read.

use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::CachePadded;

use crate::base::activity::stripe;

/// What happened to transactions, counted in per-thread stripes so that counting costs a
/// transaction two adds that other threads rarely contend for.
pub(crate) struct Stats {
    stripes: Box<[CachePadded<[AtomicU64; 5]>]>,
    /// How long transactions took, while someone asks (`Database::record_latencies`).
    pub(crate) latencies: crate::base::activity::Latencies,
}

/// What [`Stats`] counts.
#[derive(Clone, Copy)]
pub(crate) enum Stat {
    /// A transaction (or dirty operation) committed.
    Commit = 0,
    /// A transaction ended without committing (an error, a panic, too many retries).
    Abort = 1,
    /// A transaction ran again after a conflict.
    Retry = 2,
    /// A transaction started (those running are started minus committed minus aborted).
    Start = 3,
    /// A transaction that kept losing ran an attempt with priority.
    Escalation = 4,
}

const STRIPES: usize = 16;

impl Default for Stats {
    fn default() -> Self {
        Stats {
            stripes: (0..STRIPES).map(|_| CachePadded::new(Default::default())).collect(),
            latencies: Default::default(),
        }
    }
}

impl Stats {
    pub(crate) fn add(&self, stat: Stat) {
        self.stripes[stripe() % STRIPES][stat as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn total(&self, stat: Stat) -> u64 {
        self.stripes.iter().map(|s| s[stat as usize].load(Ordering::Relaxed)).sum()
    }

    /// Transactions committed, aborted, and running now.
    pub(crate) fn outcomes(&self) -> (u64, u64, u64) {
        let commits = self.total(Stat::Commit);
        let aborts = self.total(Stat::Abort);
        let started = self.total(Stat::Start);
        (commits, aborts, started.saturating_sub(commits + aborts))
    }
}
