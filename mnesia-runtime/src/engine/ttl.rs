//! Record expiry: the deadline types a `#[ttl]` field may have, and the expiry
//! index a table keeps so that the reaper deletes exactly what expired without scanning.
//!
//! The clock itself, and its policy, are in `clock.rs`.

use std::collections::BTreeMap;
use std::hash::Hash;

use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use crate::base::clock::Clock;
use crate::error::{Error, Result};
use crate::schema::record::RecordFacts;
use crate::schema::stored::StoredRecord;

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

/// Whether a record is still alive at `now`: it has no deadline, or its deadline is later.
pub(crate) fn alive<T: StoredRecord>(rec: &T, now: SystemTime) -> bool {
    rec.deadline().is_none_or(|d| d > now)
}

/// Which records a read returns: all of them, or, in a table with a `#[ttl]` field, those
/// whose deadline is after the moment the read began.
#[derive(Clone, Copy)]
pub(crate) struct Alive(Option<SystemTime>);

impl Alive {
    /// The filter for a read starting at `now` of a table that has a `#[ttl]` field
    /// (`expires`; the clock is read only then).
    #[inline]
    pub(crate) fn at(expires: bool, now: impl FnOnce() -> SystemTime) -> Alive {
        Alive(expires.then(now))
    }

    /// Whether the read returns this record.
    #[inline]
    pub(crate) fn keeps<T: StoredRecord>(self, rec: &T) -> bool {
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

/// Deadlines are grouped in buckets of 64 ms (`ms >> BUCKET_SHIFT`).
const BUCKET_SHIFT: u32 = 6;

/// A table's records with a deadline, grouped by deadline: a few ordered buckets (one per
/// 64 ms in which some deadline falls), each a hash table counting the records of each
/// (key, deadline in ms). Kept exact by every commit, so the reaper reads only keys that
/// expired; a commit pays a hash update rather than a walk down one large tree.
pub(crate) struct ExpiryIndex<K> {
    inner: Mutex<Buckets<K>>,
}

type Entries<K> = hashbrown::HashMap<(K, u64), u32, crate::base::hasher::Hasher>;

struct Buckets<K> {
    by_bucket: BTreeMap<u64, Entries<K>>,
    records: usize,
}

impl<K: Hash + Ord + Clone> ExpiryIndex<K> {
    pub(crate) fn new() -> Self {
        ExpiryIndex { inner: Mutex::new(Buckets { by_bucket: BTreeMap::new(), records: 0 }) }
    }

    /// Keeps the index in step with one key's change from `old` to `new` records.
    pub(crate) fn change<T: StoredRecord<Key = K>>(&self, key: &K, old: &[T], new: &[T]) {
        let ms = |r: &T| r.deadline().map(millis_ceil);
        if !old.iter().chain(new).any(|r| r.deadline().is_some()) {
            return;
        }
        let mut b = self.inner.lock();
        for at in old.iter().filter_map(ms) {
            let bucket = at >> BUCKET_SHIFT;
            let Some(entries) = b.by_bucket.get_mut(&bucket) else { continue };
            let entry = (key.clone(), at);
            let Some(n) = entries.get_mut(&entry) else { continue };
            *n -= 1;
            if *n == 0 {
                entries.remove(&entry);
                if entries.is_empty() {
                    b.by_bucket.remove(&bucket);
                }
            }
            b.records -= 1;
        }
        for at in new.iter().filter_map(ms) {
            *b.by_bucket.entry(at >> BUCKET_SHIFT).or_default().entry((key.clone(), at)).or_insert(0) += 1;
            b.records += 1;
        }
    }

    /// Up to `limit` distinct keys with a record whose deadline (rounded up to the
    /// millisecond) is at or before `now_ms`, from the earliest buckets: expired, as a read
    /// at `now_ms` sees it (a record is alive only before its deadline).
    pub(crate) fn due(&self, now_ms: u64, limit: usize) -> Vec<K> {
        let b = self.inner.lock();
        let mut keys = Vec::new();
        for (bucket, entries) in &b.by_bucket {
            if bucket << BUCKET_SHIFT > now_ms || keys.len() >= limit {
                break;
            }
            let room = limit - keys.len();
            keys.extend(entries.keys().filter(|(_, at)| *at <= now_ms).map(|(k, _)| k.clone()).take(room));
        }
        // A bag key may have several deadlines.
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// How many records have a deadline.
    pub(crate) fn len(&self) -> usize {
        self.inner.lock().records
    }

    pub(crate) fn clear(&self) {
        let mut b = self.inner.lock();
        b.by_bucket.clear();
        b.records = 0;
    }

    /// Bytes held, roughly (a hash-table entry per record with a deadline).
    pub(crate) fn memory(&self) -> usize {
        self.len() * (size_of::<((K, u64), u32)>() + 8)
    }
}

/// The deadline `ttl` from now, by `clock`.
pub(crate) fn deadline_after(table: &str, clock: &Clock, ttl: std::time::Duration) -> Result<SystemTime> {
    clock
        .now()
        .checked_add(ttl)
        .ok_or_else(|| Error::Invalid(format!("table {table}: a lifetime of {ttl:?} is too long")))
}

/// Gives a record written without a deadline the table's default lifetime, from now by
/// `clock`.
pub(crate) fn apply_default<T: StoredRecord>(facts: &RecordFacts, clock: &Clock, rec: &mut T) -> Result<()> {
    if let Some(lifetime) = facts.default_ttl
        && rec.deadline().is_none()
    {
        rec.set_deadline(Some(deadline_after(facts.name, clock, lifetime)?))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::record::Record;
    use std::time::Duration;

    #[test]
    fn millis_round_so_that_nothing_expires_early() {
        let t = UNIX_EPOCH + Duration::from_micros(1_500);
        assert_eq!((millis_ceil(t), crate::base::clock::millis_floor(t)), (2, 1));
        let exact = UNIX_EPOCH + Duration::from_millis(7);
        assert_eq!((millis_ceil(exact), crate::base::clock::millis_floor(exact)), (7, 7));
        assert_eq!(millis_ceil(UNIX_EPOCH - Duration::from_secs(1)), 0);
    }

    #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
    struct Rec {
        key: u32,
        at: Option<SystemTime>,
    }

    impl Record for Rec {
        type Key = u32;
        const NAME: &'static str = "rec";
        const TYPE: crate::TableType = crate::TableType::Bag;
        const FIELDS: &'static [crate::FieldInfo] = &[];
        const KEY_POSITION: usize = 0;
        const AUTO_INCREMENT: bool = false;
        const TTL_FIELD: Option<&'static str> = Some("at");

        fn key(&self) -> &u32 {
            &self.key
        }

        fn indexes() -> Vec<crate::IndexSpec<Self>> {
            Vec::new()
        }

        fn deadline(&self) -> Option<SystemTime> {
            self.at
        }
    }

    fn rec(key: u32, ms: u64) -> Rec {
        Rec { key, at: Some(UNIX_EPOCH + Duration::from_millis(ms)) }
    }

    #[test]
    fn the_expiry_index_lists_exactly_the_keys_due() {
        let x = ExpiryIndex::new();
        x.change(&1, &[], &[rec(1, 100)]);
        x.change(&2, &[], &[rec(2, 101), rec(2, 5_000)]);
        x.change(&3, &[], &[rec(3, 5_000)]);
        x.change(&4, &[], &[Rec { key: 4, at: None }]);
        assert_eq!(x.len(), 4);
        assert_eq!(x.due(99, 10), Vec::<u32>::new(), "a deadline at 100 ms is not due at 99 ms");
        assert_eq!(x.due(100, 10), vec![1], "a record expires at its deadline");
        assert_eq!(x.due(101, 10), vec![1, 2]);
        assert_eq!(x.due(10_000, 10), vec![1, 2, 3], "a key with two deadlines is listed once");
        assert_eq!(x.due(10_000, 1).len(), 1);
        // Key 2's early record goes; its later one stays.
        x.change(&2, &[rec(2, 101), rec(2, 5_000)], &[rec(2, 5_000)]);
        assert_eq!(x.due(1_000, 10), vec![1]);
        // Two records of key 1 with one deadline: the key stays due until both go.
        x.change(&1, &[rec(1, 100)], &[rec(1, 100), rec(1, 100)]);
        x.change(&1, &[rec(1, 100), rec(1, 100)], &[rec(1, 100)]);
        assert_eq!(x.due(1_000, 10), vec![1]);
        x.change(&1, &[rec(1, 100)], &[]);
        assert_eq!(x.due(1_000, 10), Vec::<u32>::new());
        assert_eq!(x.len(), 2);
        x.clear();
        assert_eq!((x.len(), x.due(u64::MAX, 10)), (0, Vec::new()));
    }
}
