//! The database's clock: what decides whether a `#[ttl]` record has expired, what
//! `write_with_ttl` counts a lifetime from, and when the reaper removes a record.
//!
//! Policy: a database goes by the wall clock (`SystemTime::now()`) to the millisecond, held so
//! that it never goes backwards: when the wall clock is stepped back, the database's clock
//! stays at the latest time it told until the wall clock passes it. So a record that has
//! expired never comes back, and no record expires early because of the step. Deadlines are
//! wall-clock times, so they keep their meaning across restarts and agree with deadlines a
//! program computes from `SystemTime::now()`. (A wall clock stepped forwards makes records
//! expire sooner, as it would any wall-clock deadline; a process started after the wall
//! clock was stepped back starts from the wall clock again.)
//!
//! A [`ManualClock`] replaces the wall clock where time must be exact and instant, as in
//! tests: it moves only when told to.
//!
//! A commit reads the clock once, before it validates, and decides everything that depends
//! on time (which records are expired, which unique values they still hold) at that one
//! instant.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The latest time the wall clock told any database, in whole milliseconds since the epoch.
static LATEST: AtomicU64 = AtomicU64::new(0);

/// The time a database goes by: the wall clock (the default) or a [`ManualClock`].
///
/// ```
/// use mnesia::{Clock, Config, ManualClock};
/// use std::time::{Duration, SystemTime};
/// let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000));
/// let db = mnesia::Database::open(Config::default().clock(clock.clone()))?;
/// assert_eq!(db.clock().now(), clock.now());
/// assert!(Clock::system().now() > SystemTime::UNIX_EPOCH);
/// # Ok::<(), mnesia::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct Clock {
    manual: Option<ManualClock>,
}

impl Clock {
    /// The wall clock, to the millisecond, never going backwards.
    ///
    /// ```
    /// let a = mnesia::Clock::system().now();
    /// let b = mnesia::Clock::system().now();
    /// assert!(b >= a);
    /// ```
    pub fn system() -> Clock {
        Clock { manual: None }
    }

    /// The time now, to the millisecond.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_500);
    /// let clock = mnesia::Clock::from(mnesia::ManualClock::new(at));
    /// assert_eq!(clock.now(), at);
    /// ```
    #[inline]
    pub fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.now_ms())
    }

    /// The time now, in whole milliseconds since the epoch.
    #[inline]
    pub(crate) fn now_ms(&self) -> u64 {
        match &self.manual {
            Some(m) => m.ms.load(Ordering::SeqCst),
            None => held(&LATEST, millis_floor(SystemTime::now())),
        }
    }
}

impl From<ManualClock> for Clock {
    fn from(manual: ManualClock) -> Clock {
        Clock { manual: Some(manual) }
    }
}

/// A clock that moves only when told to: give it to [`Config::clock`](crate::Config::clock)
/// and records expire exactly when it passes their deadlines, with no waiting. Clones share
/// one time.
///
/// ```
/// use mnesia::prelude::*;
/// use mnesia::ManualClock;
/// use std::time::{Duration, SystemTime};
///
/// #[derive(Table, Clone, Debug, Serialize, Deserialize)]
/// struct Session { #[key] token: String, #[ttl] expires_at: Option<SystemTime> }
///
/// let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(86_400));
/// let db = mnesia::Database::open(mnesia::Config::default().clock(clock.clone()).auto_cleanup(false))?;
/// db.scope(|| {
///     Session::create_table(TableOptions::new())?;
///     Session::write_with_ttl(Session { token: "t".into(), expires_at: None }, Duration::from_secs(60))?;
///     clock.advance(Duration::from_secs(59));
///     assert!(Session::read(&"t".into())?.is_some());
///     clock.advance(Duration::from_secs(1));
///     assert!(Session::read(&"t".into())?.is_none());
///     Ok::<(), mnesia::Error>(())
/// })?;
/// # Ok::<(), mnesia::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ManualClock {
    ms: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock standing at `at` (to the millisecond, rounded down; the epoch if earlier).
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// let clock = mnesia::ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(5));
    /// assert_eq!(clock.now(), SystemTime::UNIX_EPOCH + Duration::from_secs(5));
    /// ```
    pub fn new(at: SystemTime) -> ManualClock {
        ManualClock { ms: Arc::new(AtomicU64::new(millis_floor(at))) }
    }

    /// A clock standing at the wall clock's time now.
    ///
    /// ```
    /// let clock = mnesia::ManualClock::starting_now();
    /// assert!(clock.now() <= std::time::SystemTime::now());
    /// ```
    pub fn starting_now() -> ManualClock {
        ManualClock::new(SystemTime::now())
    }

    /// Moves the clock forwards by `by` (to the millisecond, rounded down).
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// let clock = mnesia::ManualClock::new(SystemTime::UNIX_EPOCH);
    /// clock.advance(Duration::from_millis(2_500));
    /// assert_eq!(clock.now(), SystemTime::UNIX_EPOCH + Duration::from_millis(2_500));
    /// ```
    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        // Saturating: a clock at the end of time stays there.
        let _ = self.ms.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| Some(t.saturating_add(ms)));
    }

    /// The clock's time.
    ///
    /// ```
    /// let clock = mnesia::ManualClock::new(std::time::SystemTime::UNIX_EPOCH);
    /// assert_eq!(clock.now(), std::time::SystemTime::UNIX_EPOCH);
    /// ```
    pub fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.ms.load(Ordering::SeqCst))
    }
}

/// The clock's time for a wall-clock reading in milliseconds: the reading, or the latest
/// time told when the wall clock is behind it.
fn held(latest: &AtomicU64, wall_ms: u64) -> u64 {
    let last = latest.load(Ordering::Relaxed);
    if wall_ms <= last {
        return last;
    }
    // Stored once per millisecond (by the first reader to see it), so readers on many
    // threads rarely write the shared line.
    latest.fetch_max(wall_ms, Ordering::Relaxed).max(wall_ms)
}

/// A time as whole milliseconds since the epoch, rounded down.
pub(crate) fn millis_floor(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_never_goes_backwards() {
        let clock = Clock::system();
        let mut last = clock.now();
        for _ in 0..10_000 {
            let t = clock.now();
            assert!(t >= last);
            last = t;
        }
    }

    #[test]
    fn a_wall_clock_stepped_back_holds_the_clock_where_it_was() {
        let latest = AtomicU64::new(0);
        assert_eq!(held(&latest, 100), 100);
        assert_eq!(held(&latest, 200), 200);
        // Stepped back by 150 ms: the clock stays at 200 ms until the wall clock passes it.
        assert_eq!(held(&latest, 50), 200);
        assert_eq!(held(&latest, 199), 200);
        assert_eq!(held(&latest, 200), 200);
        assert_eq!(held(&latest, 201), 201);
        assert_eq!(held(&latest, 201), 201);
    }

    #[test]
    fn a_manual_clock_moves_only_when_told_and_clones_share_it() {
        let clock = ManualClock::new(UNIX_EPOCH + Duration::from_millis(10));
        let shared = Clock::from(clock.clone());
        assert_eq!(shared.now_ms(), 10);
        clock.advance(Duration::from_micros(2_900));
        assert_eq!(shared.now_ms(), 12, "rounded down to the millisecond");
        clock.advance(Duration::MAX);
        assert_eq!(shared.now_ms(), u64::MAX);
        clock.advance(Duration::from_secs(1));
        assert_eq!(shared.now_ms(), u64::MAX, "saturates");
        assert_eq!(ManualClock::new(UNIX_EPOCH - Duration::from_secs(1)).now(), UNIX_EPOCH);
    }
}
