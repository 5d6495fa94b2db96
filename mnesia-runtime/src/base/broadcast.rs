//! The queue under every subscription: a source of events (a table, the system) appends
//! each commit's events once, as one shared batch, to a ring that all its readers read, each
//! from its own position. A commit costs the same whatever the number of subscribers; each
//! reader copies an event out as it reads it.
//!
//! The ring holds what some reader has not read yet, up to a capacity in events. Past it,
//! the oldest batches go (a commit's events go together; `essential` ones never do): a
//! reader that had not read them is told how many it missed where the gap is, then reads on.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Waker;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

/// What a ring carries: events, and a notice of how many were missed.
pub(crate) trait Notice: Clone + Send + Sync + 'static {
    /// The notice that `missed` events were dropped.
    fn lagged(missed: u64) -> Self;

    /// An event never dropped for a full ring (a table cleared or dropped).
    fn essential(&self) -> bool {
        false
    }
}

/// One commit's events.
pub(crate) type Batch<E> = Arc<[E]>;

/// A reader with nothing to read first yields its thread a few times, then naps: short
/// timed waits that writers do not cut short unless `NAP_WAKE` events wait for it, then
/// sleeps until a writer wakes it. On a busy source a reader thus wakes once per batch of
/// commits and a writer does not pay a wake-up per commit; an event waits at most `NAP` for
/// a napping reader, and not at all for a sleeping one.
const IDLE_YIELDS: u32 = 4;
const NAPS: u32 = 5;
const NAP: Duration = Duration::from_micros(200);
const NAP_WAKE: u64 = 256;

/// What a reader is doing, as writers see it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Busy,
    Napping,
    Sleeping,
}

struct ReaderState {
    id: u64,
    /// The index of the next event it reads.
    next: u64,
    mode: Mode,
    /// An async reader waiting for the next event.
    waker: Option<Waker>,
}

struct Inner<E> {
    /// Batches some reader has not read, oldest first, with the index of their first event.
    batches: VecDeque<(u64, Batch<E>)>,
    /// Events in `batches`.
    held: usize,
    /// The index the next event appended gets.
    end: u64,
    capacity: usize,
    readers: Vec<ReaderState>,
    next_id: u64,
}

impl<E: Notice> Inner<E> {
    /// Drops the batches every reader has read, then the oldest past the capacity (but the
    /// newest batch, and essential ones).
    fn trim(&mut self) {
        let min_next = self.readers.iter().map(|r| r.next).min().unwrap_or(self.end);
        while let Some((start, b)) = self.batches.front() {
            if start + b.len() as u64 > min_next {
                break;
            }
            self.held -= b.len();
            self.batches.pop_front();
        }
        let mut i = 0;
        while self.held > self.capacity && i + 1 < self.batches.len() {
            if self.batches[i].1.iter().any(E::essential) {
                i += 1;
            } else if let Some((_, b)) = self.batches.remove(i) {
                self.held -= b.len();
            }
        }
    }

    fn reader(&mut self, id: u64) -> Option<&mut ReaderState> {
        self.readers.iter_mut().find(|r| r.id == id)
    }
}

/// The events of one source, and its readers' positions.
pub(crate) struct Ring<E> {
    inner: Mutex<Inner<E>>,
    ready: Condvar,
    /// `inner.readers.len()`, readable without the lock (checked on every commit).
    readers: AtomicUsize,
}

impl<E: Notice> Default for Ring<E> {
    fn default() -> Self {
        Ring {
            inner: Mutex::new(Inner {
                batches: VecDeque::new(),
                held: 0,
                end: 0,
                capacity: 1,
                readers: Vec::new(),
                next_id: 0,
            }),
            ready: Condvar::new(),
            readers: AtomicUsize::new(0),
        }
    }
}

impl<E: Notice> Ring<E> {
    /// Whether anyone reads.
    pub(crate) fn has_readers(&self) -> bool {
        self.readers.load(Ordering::Acquire) > 0
    }

    /// A new reader, reading from the next event appended; the ring holds up to `capacity`
    /// events for its readers.
    pub(crate) fn subscribe(self: &Arc<Self>, capacity: usize) -> Reader<E> {
        let mut g = self.inner.lock();
        let id = g.next_id;
        g.next_id += 1;
        g.capacity = capacity.max(1);
        let next = g.end;
        g.readers.push(ReaderState { id, next, mode: Mode::Busy, waker: None });
        self.readers.store(g.readers.len(), Ordering::Release);
        drop(g);
        Reader { ring: Arc::clone(self), id, local: Mutex::new(Local { items: VecDeque::new(), read: 0 }) }
    }

    /// Appends one commit's events (nothing when no one reads).
    pub(crate) fn append(&self, batch: Batch<E>) {
        if batch.is_empty() {
            return;
        }
        let mut g = self.inner.lock();
        if g.readers.is_empty() {
            return;
        }
        let start = g.end;
        g.end += batch.len() as u64;
        g.held += batch.len();
        g.batches.push_back((start, batch));
        g.trim();
        let (end, capacity) = (g.end, g.capacity as u64);
        let mut wake = false;
        let mut wakers = Vec::new();
        for r in &mut g.readers {
            let due = match r.mode {
                Mode::Busy => false,
                Mode::Napping => end - r.next >= NAP_WAKE.min(capacity / 2 + 1),
                Mode::Sleeping => true,
            };
            if due {
                // Woken once: later commits do not pay for another wake-up.
                r.mode = Mode::Busy;
                wake = true;
            }
            wakers.extend(r.waker.take());
        }
        drop(g);
        if wake {
            self.ready.notify_all();
        }
        for w in wakers {
            w.wake();
        }
    }
}

/// A reader's own copy of what it took from the ring: batches (shared) and gap notices.
enum Item<E> {
    Lag(u64),
    Batch(Batch<E>),
}

struct Local<E> {
    items: VecDeque<Item<E>>,
    /// How far the first batch has been read.
    read: usize,
}

impl<E: Notice> Local<E> {
    fn pop(&mut self) -> Option<E> {
        loop {
            match self.items.front()? {
                Item::Lag(n) => {
                    let n = *n;
                    self.items.pop_front();
                    return Some(E::lagged(n));
                }
                Item::Batch(b) => {
                    if let Some(e) = b.get(self.read) {
                        self.read += 1;
                        return Some(e.clone());
                    }
                    self.items.pop_front();
                    self.read = 0;
                }
            }
        }
    }

    /// Takes what the ring has past this reader's position; whether there was anything.
    fn refill(&mut self, g: &mut Inner<E>, id: u64) -> bool {
        let end = g.end;
        let Some(next) = g.reader(id).map(|r| r.next) else { return false };
        if next == end {
            return false;
        }
        let mut at = next;
        for (start, b) in &g.batches {
            let stop = start + b.len() as u64;
            if stop <= at {
                continue;
            }
            if *start > at {
                self.items.push_back(Item::Lag(start - at));
            }
            self.items.push_back(Item::Batch(Arc::clone(b)));
            at = stop;
        }
        if at < end {
            self.items.push_back(Item::Lag(end - at));
        }
        if let Some(r) = g.reader(id) {
            r.next = end;
        }
        g.trim();
        true
    }
}

/// One reader of a ring. It has one reader thread at a time (its own batch is behind a lock
/// only so that it can be shared by reference). Dropping it leaves the ring.
pub(crate) struct Reader<E: Notice> {
    ring: Arc<Ring<E>>,
    id: u64,
    local: Mutex<Local<E>>,
}

impl<E: Notice> Reader<E> {
    /// The next event or gap notice: waiting at most `timeout` (forever when `None`) if
    /// `wait`, else only what is there.
    pub(crate) fn take(&self, timeout: Option<Duration>, wait: bool) -> Option<E> {
        let mut local = self.local.lock();
        if let Some(e) = local.pop() {
            return Some(e);
        }
        let mut g = self.ring.inner.lock();
        let mut rounds = 0;
        // Read from the clock only once the reader is about to wait.
        let mut deadline: Option<Option<Instant>> = None;
        loop {
            if local.refill(&mut g, self.id) {
                drop(g);
                return local.pop();
            }
            if !wait {
                return None;
            }
            rounds += 1;
            if rounds <= IDLE_YIELDS {
                parking_lot::MutexGuard::unlocked(&mut g, std::thread::yield_now);
                continue;
            }
            let now = Instant::now();
            // A timeout too long to represent waits forever.
            let end = *deadline.get_or_insert_with(|| timeout.and_then(|t| now.checked_add(t)));
            if end.is_some_and(|d| now >= d) {
                return None;
            }
            let napping = rounds <= IDLE_YIELDS + NAPS;
            if let Some(r) = g.reader(self.id) {
                r.mode = if napping { Mode::Napping } else { Mode::Sleeping };
            }
            let until = if napping { Some(end.map_or(now + NAP, |d| d.min(now + NAP))) } else { end };
            match until {
                Some(u) => {
                    self.ring.ready.wait_until(&mut g, u);
                }
                None => self.ring.ready.wait(&mut g),
            }
            if let Some(r) = g.reader(self.id) {
                r.mode = Mode::Busy;
            }
        }
    }

    /// The next event, waiting as long as it takes.
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
        let mut local = self.local.lock();
        if let Some(e) = local.pop() {
            return std::task::Poll::Ready(Some(e));
        }
        let mut g = self.ring.inner.lock();
        if local.refill(&mut g, self.id) {
            drop(g);
            return std::task::Poll::Ready(local.pop());
        }
        // Registered under the ring's lock: the next append sees it.
        if let Some(r) = g.reader(self.id) {
            r.waker = Some(cx.waker().clone());
        }
        std::task::Poll::Pending
    }
}

impl<E: Notice> Drop for Reader<E> {
    fn drop(&mut self) {
        let mut g = self.ring.inner.lock();
        g.readers.retain(|r| r.id != self.id);
        self.ring.readers.store(g.readers.len(), Ordering::Release);
        g.trim();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq)]
    enum N {
        Ev(u32),
        Gap(u64),
        Keep,
    }

    impl Notice for N {
        fn lagged(missed: u64) -> Self {
            N::Gap(missed)
        }

        fn essential(&self) -> bool {
            *self == N::Keep
        }
    }

    fn drain(r: &Reader<N>) -> Vec<N> {
        std::iter::from_fn(|| r.take(None, false)).collect()
    }

    fn batch(v: &[u32]) -> Batch<N> {
        v.iter().map(|i| N::Ev(*i)).collect()
    }

    #[test]
    fn every_reader_reads_every_batch_from_its_own_position() {
        let ring = Arc::new(Ring::<N>::default());
        ring.append(batch(&[0])); // before anyone reads: not kept
        let a = ring.subscribe(100);
        ring.append(batch(&[1, 2]));
        let b = ring.subscribe(100);
        ring.append(batch(&[3]));
        assert_eq!(drain(&a), [N::Ev(1), N::Ev(2), N::Ev(3)]);
        assert_eq!(drain(&b), [N::Ev(3)]);
        // Both have read everything: the ring holds nothing.
        assert_eq!(ring.inner.lock().held, 0);
        drop(a);
        ring.append(batch(&[4]));
        assert_eq!(drain(&b), [N::Ev(4)]);
    }

    #[test]
    fn past_its_capacity_the_ring_drops_whole_old_batches_and_tells_where() {
        let ring = Arc::new(Ring::<N>::default());
        let slow = ring.subscribe(3);
        let fast = ring.subscribe(3);
        for i in 0..4 {
            ring.append(batch(&[i * 2, i * 2 + 1]));
            assert_eq!(drain(&fast).len(), 2);
        }
        // 8 events for a ring of 3: the newest batch of 2 stays.
        assert_eq!(drain(&slow), [N::Gap(6), N::Ev(6), N::Ev(7)]);
        // A batch larger than the ring still goes in whole.
        ring.append(batch(&[10, 11, 12, 13, 14]));
        assert_eq!(drain(&slow).len(), 5);
    }

    #[test]
    fn essential_events_are_never_dropped() {
        let ring = Arc::new(Ring::<N>::default());
        let r = ring.subscribe(1);
        ring.append(batch(&[1]));
        ring.append(Arc::from([N::Keep]));
        ring.append(batch(&[2]));
        ring.append(batch(&[3]));
        assert_eq!(drain(&r), [N::Gap(1), N::Keep, N::Gap(1), N::Ev(3)]);
    }

    #[test]
    fn a_sleeping_reader_is_woken_by_the_next_batch() {
        let ring = Arc::new(Ring::<N>::default());
        let r = ring.subscribe(10);
        let writer = {
            let ring = Arc::clone(&ring);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(30));
                ring.append(batch(&[7]));
            })
        };
        assert_eq!(r.take(None, true), Some(N::Ev(7)));
        writer.join().expect("writer");
        assert_eq!(r.take(Some(Duration::from_millis(5)), true), None);
    }
}
