//! Record expiry: the clock, the deadline types a `#[ttl]` field may have, and the expiry
//! index a table keeps so that the reaper deletes exactly what expired without scanning.
//!
//! Clock policy: the database's clock is the wall clock read once, when the process first
//! needs it, advanced from then on by the monotonic clock. A wall clock stepped backwards or
//! forwards while the process runs changes nothing: an expired record never comes back and
//! no record dies early. Deadlines are wall-clock times (`SystemTime`), so they keep their
//! meaning across restarts; a process started after the wall clock was stepped reads it
//! again.

use std::collections::BTreeSet;
use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::table::Table;

/// The wall clock when first read, and the monotonic instant of that reading.
struct Anchor {
    wall: SystemTime,
    mono: Instant,
}

static ANCHOR: OnceLock<Anchor> = OnceLock::new();

/// The database's clock: never goes backwards, unaffected by wall-clock steps.
pub(crate) fn now() -> SystemTime {
    let a = ANCHOR.get_or_init(|| Anchor { wall: SystemTime::now(), mono: Instant::now() });
    a.wall + a.mono.elapsed()
}

/// A deadline as whole milliseconds since the epoch, rounded up (0 before the epoch).
pub(crate) fn millis_ceil(t: SystemTime) -> u64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => {
            let ms = d.as_millis() + u128::from(d.subsec_nanos() % 1_000_000 != 0);
            u64::try_from(ms).unwrap_or(u64::MAX)
        }
        Err(_) => 0,
    }
}

/// A time as whole milliseconds since the epoch, rounded down.
pub(crate) fn millis_floor(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Whether a record is still alive at `now`: it has no deadline, or its deadline is later.
pub(crate) fn alive<T: Table>(rec: &T, now: SystemTime) -> bool {
    rec.deadline().is_none_or(|d| d > now)
}

/// Which records a read returns: all of them, or, in a table with a `#[ttl]` field, those
/// whose deadline is after the moment the read began.
#[derive(Clone, Copy)]
pub(crate) struct Alive(Option<SystemTime>);

impl Alive {
    /// The filter for a read of table `T` starting now.
    pub(crate) fn now<T: Table>() -> Alive {
        Alive(T::TTL_FIELD.map(|_| now()))
    }

    /// Whether the read returns this record.
    #[inline]
    pub(crate) fn keeps<T: Table>(self, rec: &T) -> bool {
        if T::TTL_FIELD.is_none() {
            return true;
        }
        self.0.is_none_or(|now| alive(rec, now))
    }
}

/// The types a `#[ttl]` field can have: `SystemTime` (every record has a deadline) or
/// `Option<SystemTime>` (`None`: the record does not expire).
///
/// ```
/// use mnesia::Deadline;
/// use std::time::{Duration, SystemTime};
/// let at = SystemTime::UNIX_EPOCH + Duration::from_secs(60);
/// let mut d: Option<SystemTime> = None;
/// d.set_deadline(Some(at))?;
/// assert_eq!(d.deadline(), Some(at));
/// let mut fixed = at;
/// assert!(fixed.set_deadline(None).is_err());
/// # Ok::<(), mnesia::Error>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "a #[ttl] field holds the record's deadline: its type must be `SystemTime` or `Option<SystemTime>`, not `{Self}`",
    label = "not a deadline type"
)]
pub trait Deadline {
    /// The deadline, if there is one.
    fn deadline(&self) -> Option<SystemTime>;
    /// Sets or clears the deadline; clearing fails for a type that always has one.
    fn set_deadline(&mut self, deadline: Option<SystemTime>) -> Result<()>;
}

impl Deadline for SystemTime {
    fn deadline(&self) -> Option<SystemTime> {
        Some(*self)
    }

    fn set_deadline(&mut self, deadline: Option<SystemTime>) -> Result<()> {
        *self = deadline.ok_or_else(|| {
            Error::Invalid(
                "the #[ttl] field is a SystemTime, so every record has a deadline: make it an Option<SystemTime> to keep records without one".into(),
            )
        })?;
        Ok(())
    }
}

impl Deadline for Option<SystemTime> {
    fn deadline(&self) -> Option<SystemTime> {
        *self
    }

    fn set_deadline(&mut self, deadline: Option<SystemTime>) -> Result<()> {
        *self = deadline;
        Ok(())
    }
}

/// A table's records with a deadline, ordered by deadline (milliseconds, rounded up). Kept
/// exact by every commit: an entry exists exactly while a record of that key has that
/// deadline.
pub(crate) struct ExpiryIndex<K> {
    entries: Mutex<BTreeSet<(u64, K)>>,
}

impl<K: Ord + Clone> ExpiryIndex<K> {
    pub(crate) fn new() -> Self {
        ExpiryIndex { entries: Mutex::new(BTreeSet::new()) }
    }

    /// Keeps the index in step with one key's change from `old` to `new` records.
    pub(crate) fn change<T: Table<Key = K>>(&self, key: &K, old: &[T], new: &[T]) {
        let gone = old.iter().filter_map(|r| r.deadline()).map(millis_ceil);
        let came: Vec<u64> = new.iter().filter_map(|r| r.deadline()).map(millis_ceil).collect();
        let mut gone = gone.filter(|d| !came.contains(d)).peekable();
        if gone.peek().is_none() && came.is_empty() {
            return;
        }
        let mut entries = self.entries.lock();
        for d in gone {
            entries.remove(&(d, key.clone()));
        }
        for d in came {
            entries.insert((d, key.clone()));
        }
    }

    /// Up to `limit` keys whose deadline is before `before_ms`, earliest first.
    pub(crate) fn due(&self, before_ms: u64, limit: usize) -> Vec<K> {
        let entries = self.entries.lock();
        let mut keys: Vec<K> =
            entries.iter().take_while(|(d, _)| *d < before_ms).take(limit).map(|(_, k)| k.clone()).collect();
        keys.dedup();
        keys
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.lock().len()
    }

    pub(crate) fn clear(&self) {
        self.entries.lock().clear();
    }

    /// Bytes held, roughly (a B-tree entry and its share of node overhead).
    pub(crate) fn memory(&self) -> usize {
        self.len() * (size_of::<(u64, K)>() + 8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_clock_never_goes_backwards() {
        let mut last = now();
        for _ in 0..10_000 {
            let t = now();
            assert!(t >= last);
            last = t;
        }
    }

    #[test]
    fn millis_round_so_that_nothing_expires_early() {
        let t = UNIX_EPOCH + Duration::from_micros(1_500);
        assert_eq!((millis_ceil(t), millis_floor(t)), (2, 1));
        let exact = UNIX_EPOCH + Duration::from_millis(7);
        assert_eq!((millis_ceil(exact), millis_floor(exact)), (7, 7));
        assert_eq!(millis_ceil(UNIX_EPOCH - Duration::from_secs(1)), 0);
    }
}
