//! A read-only web page and JSON API that watch a running database, as Mnesia's observer
//! does: its node, its tables (size, memory, storage, indexes, TTL, counters), the commit,
//! abort and retry rates and latency percentiles of the last minutes, the commit log and
//! checkpoint, a live tail of a table's events and a table browser.
//!
//! It runs on a thread of its own (a small tokio runtime), so a program without async
//! code serves it too. Bound to loopback, it needs nothing more; bound anywhere else, it
//! requires a token ([`Options::token`]), and a request without it gets 401.
//!
//! ```
//! let db = mnesia::Database::in_memory()?;
//! let observer = mnesia_observer::serve(&db, "127.0.0.1:0")?;
//! println!("open http://{}/", observer.local_addr());
//! observer.stop();
//! # Ok::<(), mnesia::Error>(())
//! ```
//!
//! The JSON API, all `GET`:
//! - `/api/overview`: the node(s), transactions so far, the log and checkpoint state;
//! - `/api/tables`: every table's facts;
//! - `/api/metrics`: one sample a second for the last ten minutes (rates per second,
//!   latency percentiles in microseconds);
//! - `/api/tables/{table}/records?after=KEY&limit=N&field=F&contains=TEXT`: a page of
//!   records as JSON, in key order (`after` is the JSON of a key, as `next` gives it);
//! - `/api/tables/{table}/events`: a live tail of the table's events, as server-sent
//!   events (each `data:` one JSON event).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod api;
mod auth;
mod history;
mod page;

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use mnesia_runtime::{Database, Error, Result};

/// How the observer serves: its token, how often it samples and how much it keeps.
///
/// ```
/// let db = mnesia::Database::in_memory()?;
/// let observer = mnesia_observer::Options::new().token("s3cret").serve(&db, "127.0.0.1:0")?;
/// # drop(observer);
/// # Ok::<(), mnesia::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Options {
    token: Option<String>,
    sample_every: Duration,
    keep: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options { token: None, sample_every: Duration::from_secs(1), keep: 600 }
    }
}

impl Options {
    /// No token, a sample a second, ten minutes kept.
    ///
    /// ```
    /// let options = mnesia_observer::Options::new();
    /// # let _ = options;
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Every request must carry this token: `Authorization: Bearer TOKEN`, or `?token=TOKEN`
    /// in the address (the page passes on the one it was opened with). Required to bind
    /// an address other than loopback.
    ///
    /// ```
    /// let options = mnesia_observer::Options::new().token("s3cret");
    /// # let _ = options;
    /// ```
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// How often the rates and latencies are sampled (1 s by default; at least 10 ms).
    ///
    /// ```
    /// let options = mnesia_observer::Options::new().sample_every(std::time::Duration::from_millis(250));
    /// # let _ = options;
    /// ```
    pub fn sample_every(mut self, every: Duration) -> Self {
        self.sample_every = every.max(Duration::from_millis(10));
        self
    }

    /// How many samples are kept (600 by default: ten minutes of one a second).
    ///
    /// ```
    /// let options = mnesia_observer::Options::new().keep_samples(3600);
    /// # let _ = options;
    /// ```
    pub fn keep_samples(mut self, n: usize) -> Self {
        self.keep = n.max(2);
        self
    }

    /// Serves the observer of `db` on `addr` (port 0 picks a free one), until the returned
    /// [`Observer`] is stopped or dropped. Switches on the database's latency recording
    /// ([`Database::record_latencies`]) while it serves.
    ///
    /// Errors: an address that is not loopback without a token (`Error::Invalid`); an
    /// address that cannot be bound (`Error::Io`).
    ///
    /// ```
    /// let db = mnesia::Database::in_memory()?;
    /// let refused = mnesia_observer::Options::new().serve(&db, "0.0.0.0:0");
    /// assert!(matches!(refused, Err(mnesia::Error::Invalid(_))));
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn serve(self, db: &Database, addr: impl ToSocketAddrs) -> Result<Observer> {
        let addrs: Vec<SocketAddr> =
            addr.to_socket_addrs().map_err(|e| io("resolve the observer's address", e))?.collect();
        if addrs.is_empty() {
            return Err(Error::Invalid("the observer's address names no socket address".into()));
        }
        if self.token.is_none() && addrs.iter().any(|a| !a.ip().is_loopback()) {
            return Err(Error::Invalid(format!(
                "the observer serves {} only with a token (Options::token): it is not a loopback address",
                addrs[0]
            )));
        }
        let listener = TcpListener::bind(&addrs[..]).map_err(|e| io("bind the observer's address", e))?;
        let local = listener.local_addr().map_err(|e| io("read the observer's address", e))?;
        listener.set_nonblocking(true).map_err(|e| io("set up the observer's socket", e))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| io("start the observer's runtime", e))?;
        db.record_latencies(true);
        let state = Arc::new(api::State::new(db.clone(), self.token, self.keep));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let every = self.sample_every;
        let served = db.clone();
        let thread = std::thread::Builder::new()
            .name("mnesia-observer".into())
            .spawn(move || {
                runtime.block_on(api::run(state, listener, every, stop_rx));
                // A table read still running is not waited for long.
                runtime.shutdown_timeout(Duration::from_millis(200));
            })
            .map_err(|e| {
                db.record_latencies(false);
                io("start the observer's thread", e)
            })?;
        tracing::info!(target: "mnesia::observer", addr = %local, "observer serving");
        Ok(Observer { addr: local, db: served, stop: Some(stop_tx), thread: Some(thread) })
    }
}

/// An I/O error of the observer's socket or thread, saying what it was doing.
fn io(what: &str, e: std::io::Error) -> Error {
    Error::Io { path: format!("the observer (could not {what})").into(), source: e }
}

/// Serves the observer of `db` on `addr`, bound to loopback, with the default
/// [`Options`]. The page is at `http://ADDR/`.
///
/// ```
/// let db = mnesia::Database::in_memory()?;
/// let observer = mnesia_observer::serve(&db, "127.0.0.1:0")?;
/// assert!(observer.local_addr().ip().is_loopback());
/// # Ok::<(), mnesia::Error>(())
/// ```
pub fn serve(db: &Database, addr: impl ToSocketAddrs) -> Result<Observer> {
    Options::new().serve(db, addr)
}

/// A running observer: serving until [`Observer::stop`] or drop (which waits for its
/// thread to end, a few milliseconds).
///
/// ```
/// let db = mnesia::Database::in_memory()?;
/// let observer = mnesia_observer::serve(&db, "127.0.0.1:0")?;
/// let url = format!("http://{}/", observer.local_addr());
/// observer.stop();
/// # let _ = url;
/// # Ok::<(), mnesia::Error>(())
/// ```
#[derive(Debug)]
pub struct Observer {
    addr: SocketAddr,
    db: Database,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Observer {
    /// The address it serves on.
    ///
    /// ```
    /// # let db = mnesia::Database::in_memory()?;
    /// let observer = mnesia_observer::serve(&db, "127.0.0.1:0")?;
    /// assert_ne!(observer.local_addr().port(), 0);
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving: open connections are closed, the thread ends.
    ///
    /// ```
    /// # let db = mnesia::Database::in_memory()?;
    /// let observer = mnesia_observer::serve(&db, "127.0.0.1:0")?;
    /// let addr = observer.local_addr();
    /// observer.stop();
    /// assert!(std::net::TcpStream::connect(addr).is_err());
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
            self.db.record_latencies(false);
        }
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.shut_down();
    }
}
