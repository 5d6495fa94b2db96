//! The table-scoped expiry API (`Session::write_with_ttl(..)`) and the reaper that deletes
//! expired records.
//!
//! A record's deadline is its `#[ttl]` field. Reads never return a record whose deadline
//! has passed (see `ttl::Alive`); the reaper removes such records later, in batches taken
//! from the table's expiry index, as ordinary commits: logged for disc tables and published
//! as `Event::Delete` with the cause `DeleteCause::Expired`.

use std::time::{Duration, SystemTime};

use crate::db::Database;
use crate::engine::meta::RecordMeta;
use crate::engine::store::Write;
use crate::engine::ttl;
use crate::error::{Error, Result};
use crate::schema::record::{Record, TableType};
use crate::schema::stored::StoredRecord;
use crate::tx::context::run_tx;
use crate::tx::ops;

/// How many expired records one reaper commit removes at most.
pub(crate) const REAP_BATCH: usize = 1000;

/// The expiry functions of a table whose struct has a `#[ttl]` field; `#[derive(Table)]`
/// implements it for such a struct only, so calling them on another table does not
/// compile. Each joins the calling thread's transaction like the rest of the table API.
///
/// ```
/// use mnesia::prelude::*;
/// use std::time::{Duration, SystemTime};
///
/// #[derive(Table, Clone, Debug, Serialize, Deserialize)]
/// struct Session { #[key] token: String, user: u64, #[ttl] expires_at: Option<SystemTime> }
///
/// let db = Database::in_memory()?;
/// db.scope(|| -> mnesia::Result<()> {
///     Session::create_table(TableOptions::new())?;
///     let s = Session { token: "t1".into(), user: 7, expires_at: None };
///     Session::write_with_ttl(s, Duration::from_secs(3600))?;
///     let left = Session::ttl(&"t1".into())?.expect("a deadline");
///     assert!(left > Duration::from_secs(3590) && left <= Duration::from_secs(3600));
///     Session::persist(&"t1".into())?;
///     assert_eq!(Session::ttl(&"t1".into())?, None);
///     Ok(())
/// })?;
/// # Ok::<(), mnesia::Error>(())
/// ```
pub trait Expiring: Record {
    /// Writes the record with a deadline `ttl` from now (its `#[ttl]` field is set to it).
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # use std::time::{Duration, SystemTime};
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct Session { #[key] token: String, #[ttl] expires_at: Option<SystemTime> }
    /// # let db = Database::in_memory()?;
    /// # db.scope(|| -> mnesia::Result<()> {
    /// # Session::create_table(TableOptions::new())?;
    /// let s = Session::write_with_ttl(Session { token: "t".into(), expires_at: None }, Duration::from_millis(20))?;
    /// assert!(s.expires_at.is_some());
    /// std::thread::sleep(Duration::from_millis(30));
    /// assert!(Session::read(&"t".into())?.is_none()); // expired: never returned
    /// # Ok(()) })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn write_with_ttl(mut rec: Self, ttl: Duration) -> Result<Self> {
        rec.set_deadline(Some(deadline_in::<Self>(ttl)?))?;
        ops::write(rec)
    }

    /// The time the key's record has left (a bag: its earliest deadline); `None` when it has
    /// no deadline. [`Error::NotFound`] when there is no record (or it expired).
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # use std::time::SystemTime;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct Session { #[key] token: String, #[ttl] expires_at: Option<SystemTime> }
    /// # let db = Database::in_memory()?;
    /// # db.scope(|| -> mnesia::Result<()> {
    /// # Session::create_table(TableOptions::new())?;
    /// Session::write(Session { token: "t".into(), expires_at: None })?;
    /// assert_eq!(Session::ttl(&"t".into())?, None);
    /// assert!(matches!(Session::ttl(&"u".into()), Err(mnesia::Error::NotFound { .. })));
    /// # Ok(()) })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn ttl(key: &Self::Key) -> Result<Option<Duration>> {
        let recs = ops::read_all::<Self>(key)?;
        if recs.is_empty() {
            return Err(ops::not_found::<Self>(key));
        }
        let now = crate::tx::context::current_db()?.clock().now();
        Ok(recs
            .iter()
            .filter_map(Record::deadline)
            .min()
            .map(|d| d.duration_since(now).unwrap_or(Duration::ZERO)))
    }

    /// Gives the key's record (a bag: each of its records) a new deadline `ttl` from now.
    /// [`Error::NotFound`] when there is no record (an expired record counts as none).
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # use std::time::{Duration, SystemTime};
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct Session { #[key] token: String, #[ttl] expires_at: Option<SystemTime> }
    /// # let db = Database::in_memory()?;
    /// # db.scope(|| -> mnesia::Result<()> {
    /// # Session::create_table(TableOptions::new())?;
    /// Session::write(Session { token: "t".into(), expires_at: None })?;
    /// Session::expire(&"t".into(), Duration::from_secs(60))?;
    /// assert!(Session::ttl(&"t".into())?.is_some());
    /// # Ok(()) })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn expire(key: &Self::Key, ttl: Duration) -> Result<()> {
        let deadline = deadline_in::<Self>(ttl)?;
        set_deadlines::<Self>(key, Some(deadline))
    }

    /// Clears the key's deadline (a bag: of each of its records): it no longer expires.
    /// Refused when the `#[ttl]` field is a plain `SystemTime`, or the table gives every
    /// record a lifetime (`#[table(ttl = "..")]`). [`Error::NotFound`] when there is no record.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # use std::time::{Duration, SystemTime};
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct Session { #[key] token: String, #[ttl] expires_at: Option<SystemTime> }
    /// # let db = Database::in_memory()?;
    /// # db.scope(|| -> mnesia::Result<()> {
    /// # Session::create_table(TableOptions::new())?;
    /// Session::write_with_ttl(Session { token: "t".into(), expires_at: None }, Duration::from_secs(60))?;
    /// Session::persist(&"t".into())?;
    /// assert_eq!(Session::ttl(&"t".into())?, None);
    /// # Ok(()) })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn persist(key: &Self::Key) -> Result<()> {
        if let Some(lifetime) = Self::DEFAULT_TTL {
            return Err(Error::Invalid(format!(
                "table {} gives every record a lifetime of {lifetime:?}: a record cannot be kept forever; use expire to move its deadline",
                Self::NAME
            )));
        }
        set_deadlines::<Self>(key, None)
    }

    /// Removes this table's expired records now, rather than at the reaper's next run;
    /// returns how many. (`Database::cleanup_expired` does every table.)
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # use std::time::{Duration, SystemTime};
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct Session { #[key] token: String, #[ttl] expires_at: Option<SystemTime> }
    /// # let db = Database::open(Config::default().auto_cleanup(false))?;
    /// # db.scope(|| -> mnesia::Result<()> {
    /// # Session::create_table(TableOptions::new())?;
    /// Session::write_with_ttl(Session { token: "t".into(), expires_at: None }, Duration::from_millis(1))?;
    /// std::thread::sleep(Duration::from_millis(5));
    /// assert_eq!(Session::table_info()?.size, 1); // invisible, but still stored
    /// assert_eq!(Session::cleanup_expired()?, 1);
    /// assert_eq!(Session::table_info()?.size, 0);
    /// # Ok(()) })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn cleanup_expired() -> Result<usize> {
        let db = crate::tx::context::current_db()?;
        // (Claims a disc table recovered from the directory, as any operation does.)
        db.table::<Self>()?;
        reap(&db, crate::engine::meta::meta_of::<Self>())
    }
}

/// The deadline `ttl` from now, by the clock of the current database.
fn deadline_in<T: Record>(ttl: Duration) -> Result<SystemTime> {
    crate::engine::ttl::deadline_after(T::NAME, crate::tx::context::current_db()?.clock(), ttl)
}

/// Sets (or clears) the deadline of every record of a key.
fn set_deadlines<T: Record>(key: &T::Key, deadline: Option<SystemTime>) -> Result<()> {
    run_tx(|tx| {
        let part = tx.table::<T>()?;
        let mut recs = part.read_group(key);
        if recs.is_empty() {
            return Err(ops::not_found::<T>(key));
        }
        for r in &mut recs {
            r.set_deadline(deadline)?;
        }
        let write = if T::TYPE == TableType::Bag {
            // Records that differed only by their deadline are now one record.
            let mut seen = Vec::with_capacity(recs.len());
            let mut group = Vec::with_capacity(recs.len());
            for r in recs {
                let bytes = (part.store.meta.encode)(&r)?;
                if !seen.contains(&bytes) {
                    seen.push(bytes);
                    group.push(r);
                }
            }
            Write::Group(group)
        } else {
            Write::Put(recs.swap_remove(0))
        };
        part.set(key.clone(), write);
        Ok(())
    })
}

/// Removes the expired records of the table `meta` describes (claimed already), in commits
/// of at most [`REAP_BATCH`]; returns how many. Only keys the expiry index lists as due are
/// read.
pub(crate) fn reap<T: StoredRecord>(db: &Database, meta: &'static RecordMeta<T>) -> Result<usize> {
    let removed = reap_due(db, meta)?;
    if removed > 0 {
        tracing::debug!(target: "mnesia::reaper", table = meta.name, removed, "expired records removed");
    }
    Ok(removed)
}

/// [`reap`]'s work.
fn reap_due<T: StoredRecord>(db: &Database, meta: &'static RecordMeta<T>) -> Result<usize> {
    let store = db.current_store(meta)?;
    let Some(expiry) = &store.expiry else { return Ok(0) };
    let mut removed = 0;
    loop {
        // Deadlines are rounded up and `now` down: every key listed has expired, unless
        // rewritten since (`reap_keys` checks again).
        let keys = expiry.due(store.clock.now_ms(), REAP_BATCH);
        if keys.is_empty() {
            return Ok(removed);
        }
        let n = reap_keys(db, meta, &keys, None)?;
        removed += n;
        // A closing database does not wait for a long backlog.
        if n == 0 || db.reaper().stopping() {
            // Every key listed was rewritten meanwhile (and left the index).
            return Ok(removed);
        }
    }
}

/// Removes the expired records of these keys in one commit; returns how many. A key whose
/// records are all alive is not read into the commit, so rewriting it concurrently does
/// not make the commit run again.
pub(crate) fn reap_keys<T: StoredRecord>(
    db: &Database,
    meta: &'static RecordMeta<T>,
    keys: &[T::Key],
    at: Option<SystemTime>,
) -> Result<usize> {
    ops::dirty_in(db.clone(), |tx| {
        let now = at.unwrap_or_else(|| db.clock().now());
        let part = tx.part_for(meta, crate::tx::claimed)?;
        let mut n = 0;
        for key in keys {
            let hash = part.store.hash(key);
            let (version, gone, rest) = part.store.get_with(key, hash, |v, recs| {
                let gone = recs.iter().filter(|r| !ttl::alive(*r, now)).count();
                let rest: Vec<T> = match gone {
                    0 => Vec::new(),
                    _ => recs.iter().filter(|r| ttl::alive(*r, now)).cloned().collect(),
                };
                (v, gone, rest)
            });
            if gone == 0 {
                continue;
            }
            part.note_read(key, hash, version);
            n += gone;
            part.set(key.clone(), Write::Expire(rest));
        }
        Ok(n)
    })
}
