//! The bottom layer: clocks, locks, rings, counters and helpers that know no table.

pub(crate) mod activity;
pub(crate) mod broadcast;
pub(crate) mod cells;
pub(crate) mod clock;
pub(crate) mod finite;
pub(crate) mod hasher;
pub(crate) mod lock;
pub(crate) mod prefetch;
pub(crate) mod priority;
pub(crate) mod progress;
pub(crate) mod reaper;
pub(crate) mod snapshots;
pub(crate) mod sort;
pub(crate) mod stats;
