//! What transactions have done, for monitors: the running totals and, when asked for, a
//! histogram of how long transactions took ([`crate::Database::activity`], in `info.rs`). A monitor takes two
//! readings and subtracts them ([`Activity::since`]) for the rates and percentiles of the
//! time between.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_utils::CachePadded;
use serde::Serialize;

/// Buckets of the latency histogram: 8 exact ones for 0..8 ns, then four per power of two
/// up to 2^64 ns (each bucket's width is a seventh to a quarter of its lower bound).
const BUCKETS: usize = 8 + 61 * 4;

static NEXT_STRIPE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

thread_local! {
    static STRIPE: usize = NEXT_STRIPE.fetch_add(1, Ordering::Relaxed);
}

/// This thread's stripe of striped counters (a number to take modulo the stripe count).
pub(crate) fn stripe() -> usize {
    STRIPE.try_with(|s| *s).unwrap_or(0)
}

/// Stripes of the histogram, so that threads rarely contend for a bucket's cache line.
const STRIPES: usize = 8;

/// The bucket of a duration of `ns` nanoseconds.
fn bucket(ns: u64) -> usize {
    if ns < 8 {
        return ns as usize;
    }
    let exp = 63 - ns.leading_zeros() as usize; // ≥ 3
    let sub = ((ns >> (exp - 2)) & 3) as usize;
    8 + (exp - 3) * 4 + sub
}

/// The smallest duration (ns) in bucket `b`, and the one past its end.
fn bounds(b: usize) -> (u64, u64) {
    if b < 8 {
        return (b as u64, b as u64 + 1);
    }
    let exp = (b - 8) / 4 + 3;
    let sub = ((b - 8) % 4) as u64;
    let low = (4 + sub) << (exp - 2);
    (low, low.saturating_add(1 << (exp - 2)))
}

/// How long transactions took, counted per bucket; made when first switched on.
#[derive(Default)]
pub(crate) struct Latencies {
    on: AtomicBool,
    stripes: OnceLock<Box<[Stripe]>>,
}

/// One stripe's counts, a bucket each, on cache lines of their own.
type Stripe = CachePadded<[AtomicU64; BUCKETS]>;

impl Latencies {
    /// Whether transactions are being timed.
    pub(crate) fn on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    pub(crate) fn switch(&self, on: bool) {
        if on {
            self.stripes.get_or_init(|| {
                (0..STRIPES).map(|_| CachePadded::new(std::array::from_fn(|_| AtomicU64::new(0)))).collect()
            });
        }
        self.on.store(on, Ordering::Relaxed);
    }

    /// Counts one transaction that took `took`.
    pub(crate) fn record(&self, took: Duration) {
        let Some(stripes) = self.stripes.get() else { return };
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let stripe = stripe() % STRIPES;
        stripes[stripe][bucket(ns)].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn histogram(&self) -> Histogram {
        let mut counts = vec![0u64; BUCKETS];
        if let Some(stripes) = self.stripes.get() {
            for stripe in stripes.iter() {
                for (total, c) in counts.iter_mut().zip(stripe.iter()) {
                    *total += c.load(Ordering::Relaxed);
                }
            }
        }
        Histogram { counts }
    }
}

/// How long transactions took, as counts in buckets a seventh to a quarter of their size
/// wide: a percentile, the middle of its bucket, is within 12.5% of the true one.
///
/// ```
/// let db = mnesia::Database::in_memory()?;
/// db.record_latencies(true);
/// db.transaction(|_| Ok::<_, mnesia::Error>(()))?;
/// let latency = db.activity().latency;
/// assert_eq!(latency.count(), 1);
/// assert!(latency.quantile(0.5).is_some());
/// # Ok::<(), mnesia::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Histogram {
    counts: Vec<u64>,
}

impl Histogram {
    /// How many transactions were timed.
    ///
    /// ```
    /// let db = mnesia::Database::in_memory()?;
    /// assert_eq!(db.activity().latency.count(), 0);
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The duration under which a fraction `q` (0.0 to 1.0) of the timed transactions
    /// finished (the middle of its bucket); `None` when none was timed.
    ///
    /// ```
    /// let db = mnesia::Database::in_memory()?;
    /// assert_eq!(db.activity().latency.quantile(0.99), None);
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        // The rank of the wanted one, 1-based: at least the first, at most the last.
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (b, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (low, end) = bounds(b);
                return Some(Duration::from_nanos(low + (end - low) / 2));
            }
        }
        None
    }

    /// The transactions timed since `earlier` (a reading of the same database).
    ///
    /// ```
    /// let db = mnesia::Database::in_memory()?;
    /// db.record_latencies(true);
    /// let before = db.activity().latency;
    /// db.transaction(|_| Ok::<_, mnesia::Error>(()))?;
    /// assert_eq!(db.activity().latency.since(&before).count(), 1);
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn since(&self, earlier: &Histogram) -> Histogram {
        let counts = self
            .counts
            .iter()
            .enumerate()
            .map(|(i, &c)| c.saturating_sub(earlier.counts.get(i).copied().unwrap_or(0)));
        Histogram { counts: counts.collect() }
    }
}

/// What transactions have done since the database opened: running totals, and the
/// latency histogram while [`crate::Database::record_latencies`] is on.
///
/// ```
/// let db = mnesia::Database::in_memory()?;
/// let before = db.activity();
/// db.transaction(|_| Ok::<_, mnesia::Error>(()))?;
/// let between = db.activity().since(&before);
/// assert_eq!((between.commits, between.aborts), (1, 0));
/// # Ok::<(), mnesia::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Activity {
    /// Transactions (and dirty operations) committed.
    pub commits: u64,
    /// Transactions that ended without committing.
    pub aborts: u64,
    /// Times a transaction ran again after a conflict.
    pub retries: u64,
    /// Transactions running at the time of the reading (not a total: `since` keeps it).
    pub running: u64,
    /// The sequence number of the last commit.
    pub last_commit: u64,
    /// How long transactions took, from their first attempt's start to their end, however
    /// they ended (dirty operations are not timed; empty while
    /// [`crate::Database::record_latencies`] is off).
    pub latency: Histogram,
}

impl Activity {
    /// What happened between `earlier` and this reading.
    ///
    /// ```
    /// let db = mnesia::Database::in_memory()?;
    /// let a = db.activity();
    /// assert_eq!(a.since(&a).commits, 0);
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn since(&self, earlier: &Activity) -> Activity {
        Activity {
            commits: self.commits.saturating_sub(earlier.commits),
            aborts: self.aborts.saturating_sub(earlier.aborts),
            retries: self.retries.saturating_sub(earlier.retries),
            running: self.running,
            last_commit: self.last_commit,
            latency: self.latency.since(&earlier.latency),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_duration_in_order() {
        let mut last = 0;
        for ns in (0..10_000u64).chain([u64::MAX / 3, u64::MAX - 1, u64::MAX]) {
            let b = bucket(ns);
            assert!(b < BUCKETS, "{ns} → {b}");
            assert!(b >= last || ns > 10_000, "{ns}");
            let (low, end) = bounds(b);
            assert!(low <= ns && (ns < end || end == u64::MAX), "{ns} not in {low}..{end}");
            last = b;
        }
    }

    #[test]
    fn quantiles_are_within_an_eighth() {
        let lat = Latencies::default();
        lat.switch(true);
        for us in 1..=1000u64 {
            lat.record(Duration::from_micros(us));
        }
        let h = lat.histogram();
        assert_eq!(h.count(), 1000);
        for (q, want) in [(0.5, 500.0), (0.9, 900.0), (0.99, 990.0), (1.0, 1000.0)] {
            let got = h.quantile(q).expect("timed").as_secs_f64() * 1e6;
            assert!((got - want).abs() <= want / 8.0, "q{q}: {got} µs, want {want}");
        }
        assert_eq!(h.since(&h).count(), 0);
    }

    #[test]
    fn nothing_is_recorded_before_switching_on() {
        let lat = Latencies::default();
        lat.record(Duration::from_micros(5));
        assert_eq!(lat.histogram().count(), 0);
        assert!(!lat.on());
    }
}
