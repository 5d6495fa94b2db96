//! The sink a database hands its commit records to ([`Database::replicate_to`]).

use std::sync::Arc;

use crate::db::Database;
use crate::engine::commit_record::{CommitRecord, Sink, WholeTable};
use crate::error::{Error, Result};

thread_local! {
    /// The database whose sink this thread is running, if any: a commit to it from inside
    /// its own sink is refused (it would wait for locks the commit calling the sink holds).
    static IN_SINK: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
}

/// Hands `record` to `sink`, for database `db`: a panic of the sink is caught (the commit
/// has happened: it must not look failed), reported, and ends the replication.
pub(crate) fn deliver(db: &Database, sink: &Sink, record: &CommitRecord) {
    let before = IN_SINK.with(|s| s.replace(Some(db.id())));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sink(record)));
    IN_SINK.with(|s| s.set(before));
    if result.is_err() {
        db.stop_replicating();
        tracing::error!(
            target: "mnesia::replication",
            seq = record.seq,
            "the commit-record sink panicked: replication stopped (the commit itself stands)"
        );
    }
}

/// `Err` when this thread is running the sink of `db`: a commit to `db` from there would
/// wait for the locks of the commit that called the sink.
pub(crate) fn refuse_in_own_sink(db: &Database) -> Result<()> {
    if IN_SINK.with(|s| s.get()) == Some(db.id()) {
        return Err(Error::Invalid(
            "a commit-record sink must not write to the database it serves (hand the record to another thread or database)"
                .into(),
        ));
    }
    Ok(())
}

impl Database {
    /// Hands every commit from now on to `sink`, as a [`CommitRecord`], once it is
    /// installed here. Commits that write a table in common reach it in their commit order;
    /// others may come in any order (their writes commute, but a reader outside a
    /// transaction may have seen one before the other). Replaces an earlier sink.
    ///
    /// The sink runs on the committing thread while the commit holds the locks of the
    /// tables it wrote: it must be quick (send the record to a channel or apply it to
    /// another database) and must not use this database; a write to it from the sink is
    /// refused with [`Error::Invalid`]. While a sink is attached, writers of one table
    /// commit one at a time, including the wait for the log's sync on disc. A sink that
    /// panics is dropped (replication stops, with an error on the `mnesia::replication`
    /// tracing target); the commit stands.
    ///
    /// What goes through it: transactions, dirty operations, batches, named counters, the
    /// reaper's removals, ids `next_id` hands out, and `create_table`, `drop_table`,
    /// `clear_table`, `add_index`, `remove_index`, `transform` and `reset_counter`, each a
    /// record of its own in its place among the table's commits (a table's creation before any of its writes; a transform's record
    /// carries the converted records). `change_table_copy_type` changes no record: where a
    /// copy keeps a table is its own, and the sink is not told. A restore hands each table
    /// it recreates as a record of its own (with the backup's records), and writes the
    /// others in one transaction; imports commit in transactions. While a sink is
    /// attached, what does not go through it yet is refused rather than missed: a restore
    /// into tables no type has claimed.
    ///
    /// ```
    /// let db = mnesia::Database::in_memory()?;
    /// db.replicate_to(|record: &mnesia::CommitRecord| println!("{record:?}"));
    /// db.stop_replicating();
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn replicate_to(&self, sink: impl Fn(&CommitRecord) + Send + Sync + 'static) {
        self.inner.sink.store(Some(Arc::new(Arc::new(sink) as Sink)));
        self.inner.has_sink.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Stops handing commits to the sink given to [`Database::replicate_to`].
    ///
    /// ```
    /// let db = mnesia::Database::in_memory()?;
    /// db.stop_replicating();
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn stop_replicating(&self) {
        self.inner.has_sink.store(false, std::sync::atomic::Ordering::Release);
        self.inner.sink.store(None);
    }

    /// Whether this database's commits are handed elsewhere (a sink, a sequencer): what
    /// would change a store without a commit record (bulk loads, new stores) is not done.
    pub(crate) fn commits_elsewhere(&self) -> bool {
        self.replicating() || self.ordering()
    }

    /// Whether a sink is attached.
    pub(crate) fn replicating(&self) -> bool {
        self.inner.has_sink.load(std::sync::atomic::Ordering::Acquire)
    }

    /// `Err` for an operation that does not go through the sink yet, while one is attached.
    pub(crate) fn refuse_while_replicating(&self, what: &str) -> Result<()> {
        if self.replicating() {
            return Err(Error::Invalid(format!(
                "{what} does not reach the commit-record sink yet: refused while commits are replicated (stop_replicating first)"
            )));
        }
        self.refuse_while_ordering(what)
    }

    /// `Err` for an operation that is not ordered yet, while commits are ordered.
    pub(crate) fn refuse_while_ordering(&self, what: &str) -> Result<()> {
        if self.ordering() {
            return Err(Error::Invalid(format!(
                "{what} is not ordered yet: refused while commits are ordered (stop_ordering first)"
            )));
        }
        Ok(())
    }

    /// Hands the sink, if there is one, the change `op` to table `table` as a record of its
    /// own, numbered `seq`. The caller holds every commit lock of the table, so that the
    /// record reaches the sink in its place among the table's commits.
    pub(crate) fn hand_whole(&self, table: &str, op: WholeTable, seq: u64) {
        if self.replicating() {
            self.hand(CommitRecord::whole(table, op, 0), seq);
        }
    }

    /// Hands the sink, if there is one, `record`, numbered `seq`.
    pub(crate) fn hand(&self, mut record: CommitRecord, seq: u64) {
        if let Some(sink) = self.sink() {
            record.seq = seq;
            deliver(self, &sink, &record);
        }
    }

    /// The sink, if commits are handed to one (without one, a commit pays one load).
    pub(crate) fn sink(&self) -> Option<Sink> {
        if !self.inner.has_sink.load(std::sync::atomic::Ordering::Acquire) {
            return None;
        }
        self.inner.sink.load().as_deref().map(Arc::clone)
    }
}
