//! Change events: `User::subscribe()` hands out a [`Subscription`] that receives every
//! committed write and delete of the table, after the commit, in commit order.
//!
//! The events of a commit go once into a bounded ring that every subscriber reads from its
//! own position (see `broadcast`): a subscriber that does not keep up never slows the
//! writers; when it falls too far behind, the oldest events go and it is told how many with
//! an [`Event::Lagged`] where they were.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::base::broadcast::{Batch, Notice, Reader, Ring};

use crate::engine::meta::RecordMeta;
use crate::engine::ttl::Alive;
use crate::schema::record::{Key, Record, TableType};
use crate::schema::row::Row;
use crate::schema::stored::StoredRecord;

/// Why a record was deleted.
///
/// ```
/// assert_eq!(mnesia::DeleteCause::Explicit, mnesia::DeleteCause::Explicit);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeleteCause {
    /// `delete`, `delete_object`, `batch_delete`, `dirty_delete`, or a bag record replaced
    /// by its group's rewrite.
    Explicit,
    /// The record's deadline (`#[ttl]`) had passed when it was removed: by the reaper, or
    /// by a write that took its key or its unique value.
    Expired,
}

/// One change of a table, as a subscriber receives it.
///
/// ```
/// use mnesia::prelude::*;
/// use mnesia::Event;
///
/// #[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
/// struct User { #[key] id: u32, name: String }
///
/// let db = Database::in_memory()?;
/// db.scope(|| -> mnesia::Result<()> {
///     User::create_table(TableOptions::new())?;
///     let events = User::subscribe_detailed()?;
///     User::write(User { id: 1, name: "a".into() })?;
///     User::write(User { id: 1, name: "b".into() })?;
///     User::delete(&1)?;
///     match events.try_recv() {
///         Some(Event::Write { new, old: None }) => assert_eq!(new.name, "a"),
///         other => panic!("{other:?}"),
///     }
///     match events.try_recv() {
///         Some(Event::Write { new, old: Some(old) }) => assert_eq!((new.name, old.name), ("b".into(), "a".into())),
///         other => panic!("{other:?}"),
///     }
///     assert!(matches!(events.try_recv(), Some(Event::Delete { key: 1, .. })));
///     Ok(())
/// })?;
/// # Ok::<(), mnesia::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event<T: StoredRecord> {
    /// A record was written. `old` is the record it replaced (detailed subscriptions only).
    Write {
        /// The record now stored.
        new: T,
        /// The record replaced, in a detailed subscription.
        old: Option<T>,
    },
    /// A key's record was deleted. `old` is the record deleted: in a detailed subscription,
    /// and in every subscription to a bag, where each record removed has an event of its
    /// own.
    Delete {
        /// The key.
        key: T::Key,
        /// The record deleted, in a detailed subscription.
        old: Option<T>,
        /// Why.
        cause: DeleteCause,
    },
    /// Every record was removed (`clear`).
    Cleared,
    /// The table was dropped: no event follows.
    Dropped,
    /// The subscriber fell too far behind: this many events were dropped here.
    Lagged {
        /// How many events were dropped.
        missed: u64,
    },
}

/// What a subscriber's queue holds: events, and a notice of how many were dropped.
impl<T: StoredRecord> Notice for Event<T> {
    fn lagged(missed: u64) -> Self {
        Event::Lagged { missed }
    }

    fn essential(&self) -> bool {
        matches!(self, Event::Cleared | Event::Dropped)
    }
}

/// What applying a change did to a table, as its subscribers hear it: what
/// [`Subscribers::publish`], the one place a table's events leave from, makes into events.
pub(crate) enum Applied<T: StoredRecord> {
    /// A commit's changes, each key's made into events by [`key_events`] from the records it
    /// held before and holds after; `detailed`: they carry the old records.
    Keys {
        /// The events, in the commit's key order.
        events: Vec<Event<T>>,
        /// Made while a detailed subscriber was there (see `Subscribers::any_detailed`).
        detailed: bool,
    },
    /// Records put in the table, none replacing another (a restore's load, after `Cleared`).
    Loaded(Vec<T>),
    /// Every record was removed.
    Cleared,
    /// The table was dropped, or a new store took its place (a transform).
    Dropped,
}

/// The events of one key's change: a delete when the key is left empty; otherwise a write
/// per record now there that was not before and, in a bag, a delete per record removed
/// (carrying the record, whatever the subscription). A removed record whose deadline had
/// passed is a delete with the cause `Expired` (before the write that took its key, which
/// does not report it as its `old`).
pub(crate) fn key_events<T: StoredRecord>(
    meta: &RecordMeta<T>,
    key: T::Key,
    change: (&[T], &[T]),
    detailed: bool,
    cause: DeleteCause,
    alive: Alive,
    out: &mut Vec<Event<T>>,
) {
    let (old, new) = change;
    let cause_of = |r: &T| if alive.keeps(r) { cause } else { DeleteCause::Expired };
    if meta.kind != TableType::Bag {
        if new.is_empty() {
            if let Some(gone) = old.first() {
                out.push(Event::Delete { key, old: detailed.then(|| gone.clone()), cause: cause_of(gone) });
            }
            return;
        }
        let replaced = old.first().filter(|r| alive.keeps(*r));
        if let Some(gone) = old.first().filter(|r| !alive.keeps(*r)) {
            // The expired record a write took the key of goes first.
            out.push(Event::Delete {
                key: key.clone(),
                old: detailed.then(|| gone.clone()),
                cause: DeleteCause::Expired,
            });
        }
        for n in new {
            out.push(Event::Write { new: n.clone(), old: detailed.then(|| replaced.cloned()).flatten() });
        }
        return;
    }
    if new.is_empty() {
        for r in old {
            out.push(Event::Delete { key: key.clone(), old: Some(r.clone()), cause: cause_of(r) });
        }
        return;
    }
    // Bag records are told apart by their encoding.
    let encoded = |r: &T| (meta.encode)(r).unwrap_or_default();
    let before: Vec<Vec<u8>> = old.iter().map(encoded).collect();
    let after: Vec<Vec<u8>> = new.iter().map(encoded).collect();
    for (r, b) in old.iter().zip(&before) {
        if !after.contains(b) {
            out.push(Event::Delete { key: key.clone(), old: Some(r.clone()), cause: cause_of(r) });
        }
    }
    for (n, a) in new.iter().zip(&after) {
        if !before.contains(a) {
            out.push(Event::Write { new: n.clone(), old: None });
        }
    }
}

/// The subscribers of one table: simple ones read one ring, detailed ones another.
pub(crate) struct Subscribers<T: StoredRecord> {
    /// The table is a bag (whose simple events keep the records deleted).
    bag: bool,
    simple: Arc<Ring<Event<T>>>,
    detailed: Arc<Ring<Event<T>>>,
    /// Held from a commit's sequence number to the delivery of its events, so that a table's
    /// events are delivered in commit order.
    pub(crate) publishing: Mutex<()>,
}

impl<T: StoredRecord> Subscribers<T> {
    pub(crate) fn new(kind: TableType) -> Self {
        Subscribers {
            bag: kind == TableType::Bag,
            simple: Arc::default(),
            detailed: Arc::default(),
            publishing: Mutex::new(()),
        }
    }

    pub(crate) fn any(&self) -> bool {
        self.simple.has_readers() || self.detailed.has_readers()
    }

    /// Whether some subscriber wants the old records.
    pub(crate) fn any_detailed(&self) -> bool {
        self.detailed.has_readers()
    }

    /// Publishes what a change did: every event of the table leaves from here.
    pub(crate) fn publish(&self, applied: Applied<T>) {
        match applied {
            Applied::Keys { events, detailed } => self.deliver(events, detailed),
            Applied::Loaded(records) => {
                self.deliver(records.into_iter().map(|new| Event::Write { new, old: None }).collect(), true);
            }
            Applied::Cleared => self.deliver(vec![Event::Cleared], false),
            Applied::Dropped => self.deliver(vec![Event::Dropped], false),
        }
    }

    /// Delivers one change's events; `built_detailed`: they carry the old records (made
    /// when a detailed subscriber was there: see `any_detailed`).
    fn deliver(&self, events: Vec<Event<T>>, built_detailed: bool) {
        if events.is_empty() {
            return;
        }
        if built_detailed {
            if self.simple.has_readers() {
                self.simple.append(events.iter().map(|e| simplify(e, self.bag)).collect());
            }
            self.detailed.append(events.into());
        } else {
            // A detailed subscriber that came meanwhile gets these without old records.
            let batch: Batch<Event<T>> = events.into();
            if self.detailed.has_readers() {
                self.detailed.append(Arc::clone(&batch));
            }
            self.simple.append(batch);
        }
    }

    /// A reader of the table's events, with old records if `detailed`.
    pub(crate) fn reader(&self, detailed: bool, capacity: usize) -> Reader<Event<T>> {
        let ring = if detailed { &self.detailed } else { &self.simple };
        ring.subscribe(capacity)
    }
}

impl<K: Key> Subscribers<Row<K>> {
    /// A subscription of table `T` (whose store's subscribers these are).
    pub(crate) fn add<T: Record<Key = K>>(&self, detailed: bool, capacity: usize) -> Subscription<T> {
        Subscription { reader: self.reader(detailed, capacity), detailed, _t: std::marker::PhantomData }
    }
}

impl<K: Key> Event<Row<K>> {
    /// The event of a store of rows as one of its table's type `T` (`None` for a row of
    /// another type, which a table's store does not hold).
    fn typed<T: Record<Key = K>>(self) -> Option<Event<T>> {
        let rec = |r: Row<K>| r.into_typed::<T>().ok();
        let old = |o: Option<Row<K>>| match o {
            Some(r) => rec(r).map(Some),
            None => Some(None),
        };
        Some(match self {
            Event::Write { new, old: o } => Event::Write { new: rec(new)?, old: old(o)? },
            Event::Delete { key, old: o, cause } => Event::Delete { key, old: old(o)?, cause },
            Event::Cleared => Event::Cleared,
            Event::Dropped => Event::Dropped,
            Event::Lagged { missed } => Event::Lagged { missed },
        })
    }
}

fn simplify<T: StoredRecord>(e: &Event<T>, bag: bool) -> Event<T> {
    match e {
        Event::Write { new, .. } => Event::Write { new: new.clone(), old: None },
        Event::Delete { key, old, cause } => {
            Event::Delete { key: key.clone(), old: if bag { old.clone() } else { None }, cause: *cause }
        }
        other => other.clone(),
    }
}

/// A subscription to a table's changes: a blocking iterator, with `recv_timeout` and
/// `try_recv`. Dropping it unsubscribes. It has one reader at a time (share the events, not
/// the subscription; subscribe again for a second reader). A commit that starts publishing
/// before `subscribe` returns may be missing from it.
///
/// ```
/// use std::time::Duration;
/// use mnesia::prelude::*;
/// use mnesia::Event;
///
/// #[derive(Table, Clone, Debug, Serialize, Deserialize)]
/// struct Item { #[key] id: u32 }
///
/// let db = Database::in_memory()?;
/// db.scope(|| -> mnesia::Result<()> {
///     Item::create_table(TableOptions::new())?;
///     let events = Item::subscribe()?;
///     assert!(events.try_recv().is_none());
///     Item::write(Item { id: 7 })?;
///     assert!(matches!(events.recv_timeout(Duration::from_secs(1)), Some(Event::Write { .. })));
///     Ok(())
/// })?;
/// # Ok::<(), mnesia::Error>(())
/// ```
pub struct Subscription<T: Record> {
    reader: Reader<Event<Row<T::Key>>>,
    detailed: bool,
    _t: std::marker::PhantomData<fn() -> T>,
}

impl<T: Record> fmt::Debug for Subscription<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription").field("table", &T::NAME).field("detailed", &self.detailed).finish()
    }
}

impl<T: Record> Subscription<T> {
    /// The next event, waiting for one.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct Item { #[key] id: u32 }
    /// # let db = Database::in_memory()?;
    /// # db.scope(|| -> mnesia::Result<()> {
    /// # Item::create_table(TableOptions::new())?;
    /// let events = Item::subscribe()?;
    /// Item::write(Item { id: 1 })?;
    /// let _event = events.recv();
    /// # Ok(()) })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn recv(&self) -> Event<T> {
        loop {
            if let Some(e) = self.reader.recv().typed() {
                return e;
            }
        }
    }

    /// The next event `take` gives that is of the table's type (a store holds rows of its
    /// table's type only: none is skipped).
    fn next_typed(&self, take: impl Fn() -> Option<Event<Row<T::Key>>>) -> Option<Event<T>> {
        loop {
            if let Some(e) = take()?.typed() {
                return Some(e);
            }
        }
    }

    /// The next event, waiting at most `timeout`.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct Item { #[key] id: u32 }
    /// # let db = Database::in_memory()?;
    /// # db.scope(|| -> mnesia::Result<()> {
    /// # Item::create_table(TableOptions::new())?;
    /// let events = Item::subscribe()?;
    /// assert!(events.recv_timeout(std::time::Duration::from_millis(1)).is_none());
    /// # Ok(()) })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Event<T>> {
        self.next_typed(|| self.reader.take(Some(timeout), true))
    }

    /// The next event if one is waiting.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct Item { #[key] id: u32 }
    /// # let db = Database::in_memory()?;
    /// # db.scope(|| -> mnesia::Result<()> {
    /// # Item::create_table(TableOptions::new())?;
    /// let events = Item::subscribe()?;
    /// assert!(events.try_recv().is_none());
    /// # Ok(()) })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn try_recv(&self) -> Option<Event<T>> {
        self.next_typed(|| self.reader.take(None, false))
    }
}

impl<T: Record> Iterator for Subscription<T> {
    type Item = Event<T>;

    /// Waits for the next event (the iteration does not end by itself).
    fn next(&mut self) -> Option<Event<T>> {
        Some(self.recv())
    }
}

/// With the `tokio` feature, a subscription is also a stream of events (for any executor).
///
/// ```ignore
/// use futures_util::StreamExt;
/// let mut events = User::subscribe()?;
/// while let Some(event) = events.next().await { .. }
/// ```
#[cfg(feature = "tokio")]
impl<T: Record> futures_core::Stream for Subscription<T> {
    type Item = Event<T>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Event<T>>> {
        loop {
            match self.reader.poll(cx) {
                std::task::Poll::Ready(Some(e)) => match e.typed() {
                    Some(e) => return std::task::Poll::Ready(Some(e)),
                    None => continue,
                },
                other => return other.map(|_| None),
            }
        }
    }
}
