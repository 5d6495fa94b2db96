//! How a database runs: its configuration.

use std::path::PathBuf;
use std::time::Duration;

use crate::base::clock::Clock;
use crate::disk::wal::Durability;

/// How a database runs.
///
/// ```
/// use mnesia::Config;
/// let config = Config::default().max_retries(50);
/// assert_eq!(config.retries(), 50);
/// ```
#[derive(Clone, Debug)]
pub struct Config {
    pub(crate) max_retries: u32,
    pub(crate) escalate_after: u32,
    pub(crate) node: String,
    pub(crate) dir: Option<PathBuf>,
    pub(crate) durability: Durability,
    pub(crate) checkpoint_bytes: u64,
    pub(crate) event_buffer: usize,
    pub(crate) cleanup_interval: Duration,
    pub(crate) auto_cleanup: bool,
    pub(crate) clock: Clock,
    pub(crate) slow_transaction: Duration,
    pub(crate) conflicts_to_report: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_retries: 1000,
            escalate_after: 8,
            node: "local@localhost".to_owned(),
            dir: None,
            durability: Durability::Immediate,
            checkpoint_bytes: 64 << 20,
            event_buffer: 10_000,
            cleanup_interval: Duration::from_secs(1),
            auto_cleanup: true,
            clock: Clock::system(),
            slow_transaction: Duration::from_millis(100),
            conflicts_to_report: 10,
        }
    }
}

impl Config {
    /// How many times a transaction runs before giving up with [`Error::TooManyRetries`](crate::Error::TooManyRetries)
    /// when it keeps conflicting with others (default 1000; at least 1).
    ///
    /// ```
    /// let c = mnesia::Config::default().max_retries(3);
    /// assert_eq!(c.retries(), 3);
    /// ```
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n.max(1);
        self
    }

    /// The configured retry bound.
    ///
    /// ```
    /// assert_eq!(mnesia::Config::default().retries(), 1000);
    /// ```
    pub fn retries(&self) -> u32 {
        self.max_retries
    }

    /// After how many conflicts in a row a transaction *escalates* (default 8; at least 1):
    /// its next attempts run with priority, and commits of other threads that write to
    /// the tables its last attempt touched wait until it is done, so it cannot lose again
    /// to them. A long transaction (one whose losing attempt scanned a table or read 64
    /// records or more) escalates after its first conflict. One transaction of a database
    /// holds the priority at a time; readers never wait for it.
    ///
    /// ```
    /// let c = mnesia::Config::default().escalate_after(1);
    /// assert_eq!(c.escalation_threshold(), 1);
    /// ```
    pub fn escalate_after(mut self, conflicts: u32) -> Self {
        self.escalate_after = conflicts.max(1);
        self
    }

    /// The configured escalation threshold.
    ///
    /// ```
    /// assert_eq!(mnesia::Config::default().escalation_threshold(), 8);
    /// ```
    pub fn escalation_threshold(&self) -> u32 {
        self.escalate_after
    }

    /// This node's name (`local@localhost` by default), as used in table copy options.
    ///
    /// ```
    /// let c = mnesia::Config::default().node_name("a@host");
    /// assert_eq!(c.node(), "a@host");
    /// ```
    pub fn node_name(mut self, name: impl Into<String>) -> Self {
        self.node = name.into();
        self
    }

    /// The node name.
    ///
    /// ```
    /// assert_eq!(mnesia::Config::default().node(), "local@localhost");
    /// ```
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The database directory, made with [`crate::Schema::create`]: `disc_copies` tables
    /// live there. Without one the database is in memory only.
    ///
    /// ```
    /// let c = mnesia::Config::default().dir("data");
    /// assert_eq!(c.directory(), Some(std::path::Path::new("data")));
    /// ```
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// The database directory, if any.
    ///
    /// ```
    /// assert!(mnesia::Config::default().directory().is_none());
    /// ```
    pub fn directory(&self) -> Option<&std::path::Path> {
        self.dir.as_deref()
    }

    /// When commits to disc tables become durable (default [`Durability::Immediate`]).
    ///
    /// ```
    /// use mnesia::{Config, Durability};
    /// let c = Config::default().durability(Durability::None);
    /// assert_eq!(c.durability_mode(), Durability::None);
    /// ```
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// The configured durability.
    ///
    /// ```
    /// assert_eq!(mnesia::Config::default().durability_mode(), mnesia::Durability::Immediate);
    /// ```
    pub fn durability_mode(&self) -> Durability {
        self.durability
    }

    /// How many unread events a table (or the system events) keeps for its subscribers
    /// before the oldest are dropped and counted (`Event::Lagged`); default 10 000. Events a
    /// reader has taken and not read yet are not counted; `Cleared` and `Dropped` are never
    /// dropped.
    ///
    /// ```
    /// let c = mnesia::Config::default().event_buffer(100);
    /// assert_eq!(c.events_buffered(), 100);
    /// ```
    pub fn event_buffer(mut self, events: usize) -> Self {
        self.event_buffer = events.max(1);
        self
    }

    /// The configured subscriber buffer.
    ///
    /// ```
    /// assert_eq!(mnesia::Config::default().events_buffered(), 10_000);
    /// ```
    pub fn events_buffered(&self) -> usize {
        self.event_buffer
    }

    /// Log size past which a checkpoint folds the log into table snapshots (default 64 MiB;
    /// like Mnesia's `dump_log_write_threshold`).
    ///
    /// ```
    /// let c = mnesia::Config::default().checkpoint_after_bytes(1 << 20);
    /// assert_eq!(c.checkpoint_threshold(), 1 << 20);
    /// ```
    pub fn checkpoint_after_bytes(mut self, bytes: u64) -> Self {
        self.checkpoint_bytes = bytes.max(1);
        self
    }

    /// The configured checkpoint threshold, in bytes of log.
    ///
    /// ```
    /// assert_eq!(mnesia::Config::default().checkpoint_threshold(), 64 << 20);
    /// ```
    pub fn checkpoint_threshold(&self) -> u64 {
        self.checkpoint_bytes
    }

    /// How often the reaper removes expired records (default 1 s). Reads never return an
    /// expired record in between: the interval only bounds how long one takes up memory.
    ///
    /// ```
    /// use std::time::Duration;
    /// let c = mnesia::Config::default().cleanup_interval(Duration::from_millis(100));
    /// assert_eq!(c.cleanup_every(), Duration::from_millis(100));
    /// ```
    pub fn cleanup_interval(mut self, every: Duration) -> Self {
        self.cleanup_interval = every.max(Duration::from_millis(1));
        self
    }

    /// The reaper's interval.
    ///
    /// ```
    /// assert_eq!(mnesia::Config::default().cleanup_every(), std::time::Duration::from_secs(1));
    /// ```
    pub fn cleanup_every(&self) -> Duration {
        self.cleanup_interval
    }

    /// Whether a reaper thread removes expired records on its own (default `true`). When
    /// off, [`Database::cleanup_expired`](crate::Database::cleanup_expired) does it on demand; reads never return an expired
    /// record either way.
    ///
    /// ```
    /// let c = mnesia::Config::default().auto_cleanup(false);
    /// assert!(!c.cleans_up());
    /// ```
    pub fn auto_cleanup(mut self, on: bool) -> Self {
        self.auto_cleanup = on;
        self
    }

    /// Whether the reaper thread runs.
    ///
    /// ```
    /// assert!(mnesia::Config::default().cleans_up());
    /// ```
    pub fn cleans_up(&self) -> bool {
        self.auto_cleanup
    }

    /// The clock that decides when `#[ttl]` records expire (default: the wall clock, see
    /// [`Clock::system`]). A [`ManualClock`](crate::ManualClock) makes expiry exact and
    /// instant in tests.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// let at = SystemTime::UNIX_EPOCH + Duration::from_secs(60);
    /// let db = mnesia::Database::open(mnesia::Config::default().clock(mnesia::ManualClock::new(at)))?;
    /// assert_eq!(db.clock().now(), at);
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn clock(mut self, clock: impl Into<Clock>) -> Self {
        self.clock = clock.into();
        self
    }

    /// A transaction that takes this long or longer, from its first attempt to its end
    /// (committed, failed or given up), is reported as a `tracing` warning (target `mnesia::transaction`; default 100 ms).
    /// Nothing is measured when no subscriber listens.
    ///
    /// ```
    /// use std::time::Duration;
    /// let c = mnesia::Config::default().slow_transaction(Duration::from_millis(20));
    /// assert_eq!(c.slow_transaction_threshold(), Duration::from_millis(20));
    /// ```
    pub fn slow_transaction(mut self, after: Duration) -> Self {
        self.slow_transaction = after;
        self
    }

    /// The duration past which a transaction is reported as slow.
    ///
    /// ```
    /// assert_eq!(mnesia::Config::default().slow_transaction_threshold(), std::time::Duration::from_millis(100));
    /// ```
    pub fn slow_transaction_threshold(&self) -> Duration {
        self.slow_transaction
    }

    /// A transaction that has lost this many conflicts in a row is reported as a `tracing`
    /// warning (target `mnesia::transaction`, once per transaction; default 10; at least 1).
    ///
    /// ```
    /// let c = mnesia::Config::default().report_conflicts_after(3);
    /// assert_eq!(c.conflicts_reported_after(), 3);
    /// ```
    pub fn report_conflicts_after(mut self, conflicts: u32) -> Self {
        self.conflicts_to_report = conflicts.max(1);
        self
    }

    /// How many conflicts in a row make a transaction reported.
    ///
    /// ```
    /// assert_eq!(mnesia::Config::default().conflicts_reported_after(), 10);
    /// ```
    pub fn conflicts_reported_after(&self) -> u32 {
        self.conflicts_to_report
    }
}
