//! Progress callbacks of long runs (export, import, backup, restore).

use std::sync::Arc;

/// Records between two calls of a progress callback.
pub(crate) const EVERY: u64 = 10_000;

/// A callback told how many records a long run has handled so far.
#[derive(Clone)]
pub(crate) struct Progress(Arc<dyn Fn(u64) + Send + Sync>);

impl Progress {
    pub(crate) fn new(f: impl Fn(u64) + Send + Sync + 'static) -> Self {
        Progress(Arc::new(f))
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress(..)")
    }
}

/// Calls a progress callback, if there is one, each time the count passes a multiple of
/// [`EVERY`], and at the end.
pub(crate) struct Ticker<'a> {
    progress: Option<&'a Progress>,
    next: u64,
    /// The count last told.
    told: Option<u64>,
}

impl<'a> Ticker<'a> {
    pub(crate) fn new(progress: Option<&'a Progress>) -> Self {
        Ticker { progress, next: EVERY, told: None }
    }

    /// `done` records are handled.
    pub(crate) fn at(&mut self, done: u64) {
        if done >= self.next
            && let Some(p) = self.progress
        {
            (p.0)(done);
            self.told = Some(done);
            self.next = (done / EVERY + 1) * EVERY;
        }
    }

    /// The run ended, having handled `done` records (told unless that was the last count
    /// told).
    pub(crate) fn end(&mut self, done: u64) {
        if let Some(p) = self.progress
            && self.told != Some(done)
        {
            (p.0)(done);
            self.told = Some(done);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_callback_hears_each_multiple_passed_once_and_the_end() {
        let heard = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let sink = Arc::clone(&heard);
        let p = Progress::new(move |n| sink.lock().push(n));
        let mut t = Ticker::new(Some(&p));
        for done in [1, 9_999, 10_000, 10_001, 25_000, 25_001, 31_000] {
            t.at(done);
        }
        t.end(31_234);
        assert_eq!(*heard.lock(), [10_000, 25_000, 31_000, 31_234]);
        let mut exact = Ticker::new(Some(&p));
        exact.at(40_000);
        exact.end(40_000);
        assert_eq!(heard.lock().len(), 5, "the end is not told twice");
        let mut silent = Ticker::new(None);
        silent.at(50_000);
        silent.end(50_000);
    }
}
