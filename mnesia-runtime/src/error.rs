//! The one error type of the crate.

use std::fmt;

/// The result type of every fallible operation in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong, as variants a caller can match on.
///
/// ```
/// use mnesia::prelude::*;
///
/// #[derive(Table, Clone, Debug, Serialize, Deserialize)]
/// struct Item { #[key] id: u32, name: String }
///
/// let db = Database::in_memory()?;
/// db.scope(|| {
///     // The table was never created.
///     match Item::read(&1) {
///         Err(mnesia::Error::NoSuchTable { table }) => assert_eq!(table, "item"),
///         other => panic!("unexpected: {other:?}"),
///     }
/// });
/// # Ok::<(), mnesia::Error>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The table does not exist (never created, or dropped).
    #[error("no such table: {table}")]
    NoSuchTable {
        /// The table's name.
        table: String,
    },
    /// `create_table` on a name that is already taken.
    #[error("table already exists: {table}")]
    TableExists {
        /// The table's name.
        table: String,
    },
    /// The table exists but was created by another Rust type.
    #[error("table {table} holds records of type {stored}, not {requested}")]
    TypeMismatch {
        /// The table's name.
        table: String,
        /// The Rust type the table was created with.
        stored: &'static str,
        /// The Rust type the caller used.
        requested: &'static str,
    },
    /// `update` (or another operation that needs a record) found none.
    #[error("no record with key {key} in table {table}")]
    NotFound {
        /// The table's name.
        table: String,
        /// The key, formatted with `Debug`.
        key: String,
    },
    /// `insert` with a key that is already taken.
    #[error("a record with key {key} already exists in table {table}")]
    AlreadyExists {
        /// The table's name.
        table: String,
        /// The key, formatted with `Debug`.
        key: String,
    },
    /// A write would give two records the same value of a unique index.
    #[error("unique index {table}.{field} already holds the value {value} (for key {existing_key})")]
    UniqueViolation {
        /// The table's name.
        table: String,
        /// The indexed field.
        field: &'static str,
        /// The duplicated value, formatted with `Debug`.
        value: String,
        /// The key of the record that already holds the value, formatted with `Debug`.
        existing_key: String,
    },
    /// The field has no index (`remove_index`), or the table has no such field.
    #[error("table {table} has no index on field {field}")]
    NoSuchIndex {
        /// The table's name.
        table: String,
        /// The field.
        field: &'static str,
    },
    /// `add_index` on a field that is already indexed.
    #[error("table {table} already has an index on field {field}")]
    IndexExists {
        /// The table's name.
        table: String,
        /// The field.
        field: &'static str,
    },
    /// A transaction kept conflicting with others and gave up after this many attempts.
    #[error(
        "transaction gave up after running {attempts} time(s), each losing to a concurrent commit (Config::max_retries)"
    )]
    TooManyRetries {
        /// How many times the transaction ran.
        attempts: u32,
    },
    /// The transaction was aborted on purpose (see [`Error::abort`]).
    #[error("transaction aborted: {0}")]
    Aborted(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    /// No database is running: call `mnesia::start`, or run inside `db.scope(..)`.
    #[error("no database: call mnesia::start(Config) or run inside db.scope(..)")]
    NoDatabase,
    /// An operation that this table, key or state does not allow.
    #[error("invalid operation: {0}")]
    Invalid(String),
    /// Encoding or decoding failed: what was being done, and the codec's own error when
    /// there is one (postcard's, serde_json's, csv's), as the `source`.
    #[error("codec error: {context}")]
    Codec {
        /// What failed, in words (with the codec's message).
        context: String,
        /// The codec's error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    },
    /// The database, or a file of it, was closed: open the database again. On a cluster
    /// node, its node stopped: a commit that was on its way then has an unknown fate (the
    /// other nodes may still order it), as after [`Error::NoMajority`]; `what` says which.
    #[error("{what} is closed")]
    Closed {
        /// What is closed (the database in its directory, a file, a cluster node), and why.
        what: String,
    },
    /// The database directory is already open (its lock is held, by another process or by
    /// another handle in this one).
    #[error("the database in {} is already open in another process or handle: close it there first (or read by the mnesia tool for more than 30 s)", dir.display())]
    Locked {
        /// The directory.
        dir: std::path::PathBuf,
    },
    /// `mnesia::start` while a default database is running.
    #[error("a database is already running: call mnesia::stop() first")]
    AlreadyRunning,
    /// An operation that needs the current transaction, called outside one.
    #[error("no transaction on this thread")]
    NoTransaction,
    /// A number the database hands out has reached its type's end (auto-increment ids,
    /// named counters, table ids, log segment numbers).
    #[error("exhausted: {what}")]
    Exhausted {
        /// What ran out, in words.
        what: String,
    },
    /// A commit or a record larger than the log holds.
    #[error("too large: {what}")]
    TooLarge {
        /// What, and the limit, in words.
        what: String,
    },
    /// A `disc_only_copies` table stopped after its file failed in a way that is not an
    /// I/O error (those are [`Error::Io`]); the next operation tries to reopen the file.
    #[error(
        "table {table} stopped after a failure of its file ({reason}); the next operation tries to reopen it"
    )]
    TableStopped {
        /// The table.
        table: String,
        /// The failure.
        reason: String,
    },
    /// A table on disc that no record type of this program has claimed yet (recovered
    /// from the directory, but not yet named by `create_table` or a typed operation): the
    /// operation needs its type. A copy applying a commit record that names such a table
    /// stops applying rather than take the record's place without it.
    #[error("table {table} is on disc but no record type has claimed it in this program yet")]
    Unclaimed {
        /// The table.
        table: String,
    },
    /// A state the database should never be in: a bug. Nothing was changed by the
    /// operation that met it; please report it with the message.
    #[error("internal error (a bug, please report it): {0}")]
    Internal(String),
    /// A file could not be read or written.
    #[error("i/o error on {path}: {source}")]
    Io {
        /// The file or directory.
        path: std::path::PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A commit was refused because the commit log cannot be written: an earlier write or
    /// sync of the log failed (in the background, under `Relaxed` or `None` durability),
    /// and writing it again failed too; `source` says why, with the operating system's
    /// kind (`StorageFull` for a full disc). Nothing of the refused commit was applied. The
    /// commits acknowledged before the failure are held in memory and written as soon as
    /// the log works again (a crash before then loses them). Every commit tries again:
    /// once the cause is gone, commits succeed without a reopen.
    #[error("the commit log in {dir} is unavailable: {source}")]
    LogUnavailable {
        /// The database directory.
        dir: std::path::PathBuf,
        /// The failure of the last attempt to write the log.
        #[source]
        source: std::io::Error,
    },
    /// A file holds damaged data (not a torn last record, which recovery cuts off). The data
    /// before `offset` is intact; see the README's recovery section for what to do.
    #[error("corrupt data in {file} at byte {offset}: {reason}")]
    Corrupt {
        /// The damaged file.
        file: std::path::PathBuf,
        /// Where the damage starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A file written by another version of this crate, in a format this one cannot read.
    #[error("{file} has format version {found}; this build reads version {supported}")]
    UnsupportedFormat {
        /// The file.
        file: std::path::PathBuf,
        /// The file's format version.
        found: String,
        /// The version this build reads.
        supported: String,
    },
    /// The struct no longer matches the table stored on disc, or a commit record made by
    /// another copy (a program with another struct for the table). Nothing was changed.
    #[error("table {table} does not match the struct: {}", differences.join("; "))]
    SchemaMismatch {
        /// The table's name.
        table: String,
        /// Each difference, in words.
        differences: Vec<String>,
    },
    /// `Schema::create` where a schema already exists (it is never overwritten).
    #[error("a schema already exists in {dir}")]
    SchemaExists {
        /// The directory.
        dir: std::path::PathBuf,
    },
    /// No schema in the directory.
    #[error("no schema in {dir}: create one with mnesia::Schema::create")]
    NoSchema {
        /// The directory.
        dir: std::path::PathBuf,
    },
    /// Input to import is malformed or breaks a constraint; nothing was imported (unless
    /// the import was asked to write in batches).
    #[error("import failed at line {line}{}: {reason}", column.as_ref().map(|c| format!(", column `{c}`")).unwrap_or_default())]
    Import {
        /// The line of the input (1-based; for a JSON array, the line the record ends on).
        line: u64,
        /// The column (CSV) or field (JSON) concerned, when known.
        column: Option<String>,
        /// What is wrong.
        reason: String,
    },
    /// A commit of a replicated database was not known to reach a majority of its copies
    /// within the time allowed (this node is cut off from the others, or too many are
    /// down). Its fate is unknown: if the cluster heals before another node leads, it may
    /// still commit. Reads go on answering from this copy (possibly stale).
    #[error("no majority of the cluster confirmed the commit within {waited:?}")]
    NoMajority {
        /// How long the commit waited.
        waited: std::time::Duration,
    },
    /// The table's records are not on this node: its copies are on other nodes of the
    /// cluster (`TableOptions::ram_copies([..])` naming them when it was created), or this
    /// node's copy is being filled from one of them. A read outside a transaction
    /// (`T::read`, `T::dirty_read`) is answered by a node holding a copy; run transactions
    /// on the table on one of `nodes`.
    #[error(
        "table {table} has no copy on this node (its copies are on {nodes:?}): run transactions on it there"
    )]
    NotHere {
        /// The table's name.
        table: String,
        /// The nodes holding a copy.
        nodes: Vec<String>,
    },
    /// An internal conflict signal: the transaction is retried. Callers only see it from
    /// code running outside a transaction's retry loop.
    #[error("transaction conflict")]
    Conflict,
}

/// A plain abort reason, used by [`Error::abort`].
#[derive(Debug)]
struct AbortReason(String);

impl fmt::Display for AbortReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AbortReason {}

impl Error {
    /// The operating system's kind of an I/O failure ([`Error::Io`],
    /// [`Error::LogUnavailable`]), e.g. `StorageFull` when the disc is full.
    ///
    /// ```
    /// use std::io::ErrorKind;
    /// let full = mnesia::Error::Io {
    ///     path: "data/00000002.wal".into(),
    ///     source: std::io::Error::new(ErrorKind::StorageFull, "no space left on device"),
    /// };
    /// assert_eq!(full.io_kind(), Some(ErrorKind::StorageFull));
    /// assert_eq!(mnesia::Error::abort("no").io_kind(), None);
    /// ```
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        match self {
            Error::Io { source, .. } | Error::LogUnavailable { source, .. } => Some(source.kind()),
            _ => None,
        }
    }

    /// Whether this is the trouble of this database alone — its disc, a closed database, a
    /// bug, a table the other copies have and this one lacks — rather than an answer about
    /// the request that every copy of a replicated database would give alike (a conflict, a
    /// unique value taken, a record not found, an index already there). (Tables created
    /// while commits are ordered are created on every copy: a record naming a table this
    /// copy lacks means that this copy's program has other tables than the one that made
    /// the record; a table the order itself dropped is refused alike on every copy, and
    /// that refusal takes the record's place.)
    /// [`Database::apply_ordered`](crate::Database::apply_ordered) leaves a record's place
    /// free on such an error.
    ///
    /// ```
    /// use mnesia::Error;
    /// assert!(Error::Closed { what: "the database".into() }.is_local_failure());
    /// assert!(!Error::Conflict.is_local_failure());
    /// assert!(Error::NoSuchTable { table: "users".into() }.is_local_failure());
    /// ```
    pub fn is_local_failure(&self) -> bool {
        // The answers a commit record gets alike on every copy in the same state; anything
        // else (a disc, a closed database, a commit that kept losing, a bug) is this one's.
        !matches!(
            self,
            Error::Conflict
                | Error::UniqueViolation { .. }
                | Error::AlreadyExists { .. }
                | Error::TableExists { .. }
                | Error::IndexExists { .. }
                | Error::NoSuchIndex { .. }
                | Error::NotFound { .. }
                | Error::TypeMismatch { .. }
                | Error::Codec { .. }
                | Error::Invalid(_)
        )
    }

    /// An [`Error::Aborted`] carrying a plain reason, like Mnesia's `abort(Reason)`.
    ///
    /// ```
    /// let err = mnesia::Error::abort("insufficient funds");
    /// assert_eq!(err.to_string(), "transaction aborted: insufficient funds");
    /// ```
    pub fn abort(reason: impl fmt::Display) -> Error {
        Error::Aborted(Box::new(AbortReason(reason.to_string())))
    }

    /// An [`Error::Aborted`] carrying a user error, recoverable with `downcast_ref`.
    ///
    /// ```
    /// let err = mnesia::Error::abort_with(std::io::Error::other("disk"));
    /// assert!(matches!(err, mnesia::Error::Aborted(_)));
    /// ```
    pub fn abort_with(err: impl std::error::Error + Send + Sync + 'static) -> Error {
        Error::Aborted(Box::new(err))
    }

    /// An [`Error::Codec`] with the codec's error as its source.
    pub(crate) fn codec(
        context: impl fmt::Display,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        Error::Codec { context: format!("{context}: {source}"), source: Some(Box::new(source)) }
    }

    /// An [`Error::Codec`] that no codec error caused (a decoded value that does not fit).
    pub(crate) fn codec_msg(context: impl Into<String>) -> Error {
        Error::Codec { context: context.into(), source: None }
    }

    pub(crate) fn no_such_table(table: &str) -> Error {
        Error::NoSuchTable { table: table.to_owned() }
    }
}
