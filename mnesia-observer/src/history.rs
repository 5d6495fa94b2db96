//! The samples the plots draw: every `sample_every`, the rates and latency percentiles of
//! the database's transactions since the sample before, the last `keep` of them.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mnesia_runtime::Activity;
use serde::Serialize;

/// One sample: what transactions did between two readings.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct Sample {
    /// When it was taken, in milliseconds since the Unix epoch.
    pub(crate) at_ms: u64,
    /// Commits per second.
    pub(crate) commits: f64,
    /// Aborts per second.
    pub(crate) aborts: f64,
    /// Retries per second.
    pub(crate) retries: f64,
    /// Transactions running at the reading.
    pub(crate) running: u64,
    /// The median, 90th and 99th percentile of how long transactions took, in
    /// microseconds (`None` when none ended).
    pub(crate) p50_us: Option<f64>,
    pub(crate) p90_us: Option<f64>,
    pub(crate) p99_us: Option<f64>,
}

/// The last samples, and the reading the next one is counted from.
pub(crate) struct History {
    samples: VecDeque<Sample>,
    keep: usize,
    last: Option<(Activity, std::time::Instant)>,
}

impl History {
    pub(crate) fn new(keep: usize) -> Self {
        History { samples: VecDeque::with_capacity(keep), keep, last: None }
    }

    /// Counts `now` (a reading taken at `at`) against the reading before, if any.
    pub(crate) fn add(&mut self, now: Activity, at: std::time::Instant) {
        if let Some((before, then)) = self.last.take() {
            let secs = at.duration_since(then).as_secs_f64().max(1e-3);
            let d = now.since(&before);
            let us = |q| d.latency.quantile(q).map(|t: Duration| t.as_secs_f64() * 1e6);
            if self.samples.len() == self.keep {
                self.samples.pop_front();
            }
            self.samples.push_back(Sample {
                at_ms: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
                commits: d.commits as f64 / secs,
                aborts: d.aborts as f64 / secs,
                retries: d.retries as f64 / secs,
                running: d.running,
                p50_us: us(0.5),
                p90_us: us(0.9),
                p99_us: us(0.99),
            });
        }
        self.last = Some((now, at));
    }

    pub(crate) fn samples(&self) -> Vec<Sample> {
        self.samples.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_samples_with_rates_per_second() {
        let db = mnesia_runtime::Database::in_memory().expect("db");
        db.record_latencies(true);
        let mut h = History::new(2);
        let t0 = std::time::Instant::now();
        h.add(db.activity(), t0);
        assert!(h.samples().is_empty(), "one reading makes no sample");
        for _ in 0..10 {
            db.transaction(|_| Ok::<_, mnesia_runtime::Error>(())).expect("commit");
        }
        h.add(db.activity(), t0 + Duration::from_secs(2));
        let s = h.samples();
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].commits, s[0].aborts), (5.0, 0.0));
        assert!(s[0].p50_us.is_some());
        h.add(db.activity(), t0 + Duration::from_secs(3));
        h.add(db.activity(), t0 + Duration::from_secs(4));
        let s = h.samples();
        assert_eq!(s.len(), 2, "only the last two are kept");
        assert_eq!((s[1].commits, s[1].p50_us), (0.0, None));
    }
}
