//! Change events: `User::subscribe()` hands out a [`Subscription`] that receives every
//! committed write and delete of the table, after the commit, in commit order.
//!
//! Each subscriber has a bounded buffer: a subscriber that does not keep up never slows the
//! writers; the events it could not hold are dropped, and once it has read what its buffer
//! held it is told how many with an [`Event::Lagged`], before any later event.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::table::Table;

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
pub enum Event<T: Table> {
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
    /// The subscriber's buffer was full: this many events were dropped before the next one.
    Lagged {
        /// How many events were dropped.
        missed: u64,
    },
}

/// What a subscriber's queue holds: events, and a notice of how many were dropped.
pub(crate) trait Notice: Clone + Send + 'static {
    /// The notice that `missed` events were dropped.
    fn lagged(missed: u64) -> Self;

    /// An event never dropped for a full buffer (the table was cleared or dropped).
    fn essential(&self) -> bool {
        false
    }
}

impl<T: Table> Notice for Event<T> {
    fn lagged(missed: u64) -> Self {
        Event::Lagged { missed }
    }

    fn essential(&self) -> bool {
        matches!(self, Event::Cleared | Event::Dropped)
    }
}

/// One commit's events, shared by every subscriber that receives them: a commit costs a
/// pointer per subscriber, and each reader copies an event out as it reads it.
pub(crate) type Batch<E> = Arc<[E]>;

/// Batches of events in delivery order, and how far the first one has been read.
struct Batches<E> {
    list: VecDeque<Batch<E>>,
    read: usize,
    /// Events in `list` not yet read.
    len: usize,
}

impl<E: Clone> Batches<E> {
    fn new() -> Self {
        Batches { list: VecDeque::new(), read: 0, len: 0 }
    }

    fn pop(&mut self) -> Option<E> {
        while let Some(first) = self.list.front() {
            if let Some(e) = first.get(self.read) {
                let e = e.clone();
                self.read += 1;
                self.len -= 1;
                return Some(e);
            }
            self.list.pop_front();
            self.read = 0;
        }
        None
    }
}

struct Queue<E> {
    events: Batches<E>,
    missed: u64,
    reader: Reader,
    /// An async reader waiting for the next event.
    waker: Option<std::task::Waker>,
}

/// A reader with nothing to read first yields its thread a few times, then naps: short
/// timed waits that writers do not cut short unless `NAP_WAKE` events are waiting, then
/// sleeps until a writer wakes it. On a busy table a reader thus wakes once per batch of
/// commits, and a writer does not pay a wake-up per commit; an event waits at most `NAP`
/// for a napping reader, and not at all for a sleeping one.
const IDLE_YIELDS: u32 = 4;
const NAPS: u32 = 5;
const NAP: Duration = Duration::from_micros(200);
const NAP_WAKE: usize = 256;

/// What the reader of a queue is doing, as writers see it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reader {
    Busy,
    Napping,
    Sleeping,
}

/// The shared end of a subscription: a bounded queue of events, and the batches its reader
/// has taken from it (so that the reader takes the writers' lock once per batch of
/// commits, not once per event).
pub(crate) struct Sub<E> {
    detailed: bool,
    capacity: usize,
    queue: Mutex<Queue<E>>,
    ready: Condvar,
    taken: Mutex<Batches<E>>,
}

impl<E: Notice> Sub<E> {
    fn new(detailed: bool, capacity: usize) -> Self {
        Sub {
            detailed,
            capacity: capacity.max(1),
            queue: Mutex::new(Queue { events: Batches::new(), missed: 0, reader: Reader::Busy, waker: None }),
            ready: Condvar::new(),
            taken: Mutex::new(Batches::new()),
        }
    }

    /// The next event of the queue, taking every waiting batch into the reader's; else the
    /// lag notice. The caller holds the queue's lock and the reader's (empty) batches.
    fn next_from(q: &mut Queue<E>, taken: &mut Batches<E>) -> Option<E> {
        if q.events.len > 0 {
            std::mem::swap(&mut q.events, taken);
            return taken.pop();
        }
        if q.missed > 0 {
            let missed = std::mem::take(&mut q.missed);
            return Some(E::lagged(missed));
        }
        None
    }

    /// Delivers one commit's events together, or counts them as missed.
    pub(crate) fn deliver(&self, events: &Batch<E>) {
        let mut q = self.queue.lock();
        // A commit's events go in whole or not at all (one larger than the buffer goes into
        // an empty buffer). Once events are missed, later ones are too until the subscriber
        // has drained its buffer and been told: the notice stands where the gap is.
        let fits = q.events.len == 0 || q.events.len + events.len() <= self.capacity;
        if events.iter().any(E::essential) {
            // Queued whatever the buffer holds, after the notice of what was missed.
            if q.missed > 0 {
                let missed = std::mem::take(&mut q.missed);
                q.events.len += 1;
                q.events.list.push_back(Arc::from([E::lagged(missed)]));
            }
            q.events.len += events.len();
            q.events.list.push_back(Arc::clone(events));
        } else if q.missed > 0 || !fits {
            q.missed += events.len() as u64;
        } else {
            q.events.len += events.len();
            q.events.list.push_back(Arc::clone(events));
        }
        let wake = match q.reader {
            Reader::Busy => false,
            Reader::Napping => q.events.len >= NAP_WAKE.min(self.capacity / 2 + 1) || q.missed > 0,
            Reader::Sleeping => true,
        };
        if wake {
            // Woken once: later commits do not pay for another wake-up.
            q.reader = Reader::Busy;
        }
        let waker = q.waker.take();
        drop(q);
        if wake {
            self.ready.notify_all();
        }
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// The next event or lag notice: waiting at most `timeout` (forever when `None`) if
    /// `wait`, else only what is there.
    pub(crate) fn take(&self, timeout: Option<Duration>, wait: bool) -> Option<E> {
        let mut taken = self.taken.lock();
        if let Some(e) = taken.pop() {
            return Some(e);
        }
        let mut q = self.queue.lock();
        let mut rounds = 0;
        // Read from the clock only once the reader is about to wait.
        let mut deadline: Option<Option<Instant>> = None;
        loop {
            if let Some(e) = Self::next_from(&mut q, &mut taken) {
                return Some(e);
            }
            if !wait {
                return None;
            }
            rounds += 1;
            if rounds <= IDLE_YIELDS {
                parking_lot::MutexGuard::unlocked(&mut q, std::thread::yield_now);
                continue;
            }
            let now = Instant::now();
            // A timeout too long to represent waits forever.
            let end = *deadline.get_or_insert_with(|| timeout.and_then(|t| now.checked_add(t)));
            if end.is_some_and(|d| now >= d) {
                return None;
            }
            if rounds <= IDLE_YIELDS + NAPS {
                let until = end.map_or(now + NAP, |d| d.min(now + NAP));
                q.reader = Reader::Napping;
                self.ready.wait_until(&mut q, until);
            } else {
                q.reader = Reader::Sleeping;
                match end {
                    Some(d) => {
                        self.ready.wait_until(&mut q, d);
                    }
                    None => self.ready.wait(&mut q),
                }
            }
            q.reader = Reader::Busy;
        }
    }

    pub(crate) fn recv(&self) -> E {
        loop {
            if let Some(e) = self.take(None, true) {
                return e;
            }
        }
    }

    /// The next event for an async reader, or `Pending` with its waker registered.
    #[cfg(feature = "tokio")]
    pub(crate) fn poll(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<E>> {
        let mut taken = self.taken.lock();
        if let Some(e) = taken.pop() {
            return std::task::Poll::Ready(Some(e));
        }
        let mut q = self.queue.lock();
        if let Some(e) = Self::next_from(&mut q, &mut taken) {
            return std::task::Poll::Ready(Some(e));
        }
        // Registered under the queue's lock: the next delivery sees it.
        q.waker = Some(cx.waker().clone());
        std::task::Poll::Pending
    }
}

/// The subscribers of one source of events.
pub(crate) struct Hub<E> {
    list: arc_swap::ArcSwap<Vec<Arc<Sub<E>>>>,
}

impl<E: Notice> Default for Hub<E> {
    fn default() -> Self {
        Hub { list: arc_swap::ArcSwap::from_pointee(Vec::new()) }
    }
}

impl<E: Notice> Hub<E> {
    pub(crate) fn add(&self, detailed: bool, capacity: usize) -> Arc<Sub<E>> {
        let sub = Arc::new(Sub::new(detailed, capacity));
        self.list.rcu(|l| {
            let mut next = (**l).clone();
            next.push(Arc::clone(&sub));
            next
        });
        sub
    }

    pub(crate) fn remove(&self, sub: &Arc<Sub<E>>) {
        self.list.rcu(|l| l.iter().filter(|s| !Arc::ptr_eq(s, sub)).cloned().collect::<Vec<_>>());
    }

    pub(crate) fn any(&self) -> bool {
        !self.list.load().is_empty()
    }

    /// Delivers one batch of events to every subscriber.
    pub(crate) fn deliver(&self, events: &Batch<E>) {
        for s in self.list.load().iter() {
            s.deliver(events);
        }
    }
}

/// The subscribers of one table.
pub(crate) struct Subscribers<T: Table> {
    hub: Hub<Event<T>>,
    /// Held from a commit's sequence number to the delivery of its events, so that a table's
    /// events are delivered in commit order.
    pub(crate) publishing: Mutex<()>,
}

impl<T: Table> Default for Subscribers<T> {
    fn default() -> Self {
        Subscribers { hub: Hub::default(), publishing: Mutex::new(()) }
    }
}

impl<T: Table> Subscribers<T> {
    pub(crate) fn any(&self) -> bool {
        self.hub.any()
    }

    /// Whether some subscriber wants the old records.
    pub(crate) fn any_detailed(&self) -> bool {
        self.hub.list.load().iter().any(|s| s.detailed)
    }

    /// Delivers one commit's events; `built_detailed`: they carry the old records (made
    /// when a detailed subscriber was there: see `any_detailed`).
    pub(crate) fn deliver(&self, events: Vec<Event<T>>, built_detailed: bool) {
        if events.is_empty() {
            return;
        }
        let list = self.hub.list.load();
        let simple: Option<Batch<Event<T>>>;
        let detailed: Option<Batch<Event<T>>>;
        if built_detailed {
            simple = list.iter().any(|s| !s.detailed).then(|| events.iter().map(simplify).collect());
            detailed = Some(events.into());
        } else {
            // A detailed subscriber that came meanwhile gets these without old records.
            simple = Some(events.into());
            detailed = simple.clone();
        }
        for s in list.iter() {
            if let Some(batch) = if s.detailed { &detailed } else { &simple } {
                s.deliver(batch);
            }
        }
    }

    pub(crate) fn add(self: &Arc<Self>, detailed: bool, capacity: usize) -> Subscription<T> {
        Subscription { sub: self.hub.add(detailed, capacity), table: Arc::downgrade(self) }
    }
}

fn simplify<T: Table>(e: &Event<T>) -> Event<T> {
    match e {
        Event::Write { new, .. } => Event::Write { new: new.clone(), old: None },
        Event::Delete { key, old, cause } => Event::Delete {
            key: key.clone(),
            old: if T::TYPE == crate::table::TableType::Bag { old.clone() } else { None },
            cause: *cause,
        },
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
pub struct Subscription<T: Table> {
    sub: Arc<Sub<Event<T>>>,
    table: Weak<Subscribers<T>>,
}

impl<T: Table> fmt::Debug for Subscription<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription").field("table", &T::NAME).field("detailed", &self.sub.detailed).finish()
    }
}

impl<T: Table> Subscription<T> {
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
        self.sub.recv()
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
        self.sub.take(Some(timeout), true)
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
        self.sub.take(None, false)
    }
}

impl<T: Table> Iterator for Subscription<T> {
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
impl<T: Table> futures_core::Stream for Subscription<T> {
    type Item = Event<T>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Event<T>>> {
        self.sub.poll(cx)
    }
}

impl<T: Table> Drop for Subscription<T> {
    fn drop(&mut self) {
        if let Some(table) = self.table.upgrade() {
            table.hub.remove(&self.sub);
        }
    }
}
