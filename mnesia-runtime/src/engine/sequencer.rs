//! The sequencer interface ([`Sequencer`]) and what a copy whose commits are ordered
//! keeps: the order's versions of each table ([`Versions`]) and the place last applied.
//! How records are decided and applied is `ordered.rs`.

use std::collections::HashMap;

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::engine::commit_record::{CommitRecord, WholeTable};
use crate::{Error, Result};

/// Places commit records in the one order that every copy of a replicated database applies
/// (the cluster's replicated log, or any other). See [`Database::order_commits_with`](crate::Database::order_commits_with).
///
/// ```
/// use mnesia::{CommitRecord, Database, Result, Sequencer};
/// use std::sync::{Arc, Mutex};
///
/// /// One copy, ordered by a counter: every commit is applied as soon as it is ordered.
/// struct Alone { db: Database, last: Mutex<u64> }
/// impl Sequencer for Alone {
///     fn order(&self, record: CommitRecord) -> Result<()> {
///         let mut last = self.last.lock().expect("lock");
///         *last += 1;
///         self.db.apply_ordered(*last, &record)
///     }
/// }
///
/// let db = Database::in_memory()?;
/// db.order_commits_with(Alone { db: db.clone(), last: Mutex::new(0) });
/// # db.stop_ordering();
/// # Ok::<(), mnesia::Error>(())
/// ```
pub trait Sequencer: Send + Sync + 'static {
    /// Places `record` in the shared order and returns the verdict once this database has
    /// applied it ([`Database::apply_ordered`](crate::Database::apply_ordered)'s result at the record's place):
    /// `Err(Error::Conflict)` makes the transaction run again, another error fails it.
    /// Called on the committing thread, holding no lock of the database.
    fn order(&self, record: CommitRecord) -> Result<()>;

    /// Returns once every other live copy has applied the records this copy has applied
    /// ([`sync_transaction`](crate::sync_transaction) calls it after its commit). A copy
    /// that does not within the sequencer's own time limit is taken for one that is not
    /// live. Without other copies there is nothing to wait for: the default returns at once.
    fn sync(&self) -> Result<()> {
        Ok(())
    }

    /// Returns once this copy holds every record placed in the shared order before the
    /// call ([`Database::wait_for_tables`](crate::Database::wait_for_tables) calls it), or fails within `timeout` (a copy
    /// cut off from the others cannot know that it is current). Without other copies this
    /// one is current: the default returns at once.
    fn catch_up(&self, timeout: std::time::Duration) -> Result<()> {
        let _ = timeout;
        Ok(())
    }

    /// Asks the other copies to close the tables named `tables` to their writers, for a
    /// transaction of this copy that escalated (it kept losing: see
    /// [`transaction`](crate::transaction)) and holds this copy's gates on them: each copy
    /// holds them with [`Database::hold_tables`](crate::Database::hold_tables), its writers
    /// waiting at most `patience` at a time. Returns once they did, or within the
    /// sequencer's own short time limit, a guard that opens them again when dropped (when
    /// the attempt ends). Best effort, deciding nothing: a copy that does not answer holds
    /// nothing, and every commit is decided by the order alone. The default holds nothing.
    fn hold_elsewhere(&self, tables: &[&str], patience: std::time::Duration) -> Box<dyn Send> {
        let _ = (tables, patience);
        Box::new(())
    }

    /// The records of the key `key` (encoded) of table `table`, read on another copy that
    /// holds the table's records (this one holds none: the table's copies are on other
    /// nodes, or this one waits to be filled), each encoded as a commit record carries
    /// it; `T::read` and `T::dirty_read` outside a transaction call it. The default finds
    /// no such copy ([`Error::NotHere`]).
    fn read_elsewhere(&self, table: &str, key: &[u8]) -> Result<Vec<Vec<u8>>> {
        let _ = key;
        Err(crate::Error::NotHere { table: table.to_owned(), nodes: Vec::new() })
    }

    /// [`Sequencer::order`] as a future, for callers that must not block their thread
    /// ([`transaction_async`](crate::transaction_async)): it resolves to the verdict once
    /// this database has applied the record. The default orders at once, on the calling
    /// thread.
    fn order_async(&self, record: CommitRecord) -> OrderFuture {
        let verdict = self.order(record);
        Box::pin(std::future::ready(verdict))
    }
}

/// What [`Sequencer::order_async`] returns: the record's verdict, once applied here.
pub type OrderFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + 'static>>;

/// Key buckets per table: a power of two.
pub(crate) const BUCKETS: usize = 4096;

/// The bucket of an encoded key: FNV-1a, the same on every copy and every build.
pub(crate) fn bucket(key: &[u8]) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // (The low bits of FNV mix the last bytes least: fold the high half in.)
    ((h ^ (h >> 32)) as usize & (BUCKETS - 1)) as u32
}

/// The last record writing each bucket of one table, and the table; whether the order
/// dropped it, and the place of the last drop or transform (0: none).
struct TableVersions {
    last: u64,
    buckets: Box<[u64]>,
    dropped: bool,
    dropped_at: u64,
}

impl TableVersions {
    pub(crate) fn new() -> TableVersions {
        TableVersions { last: 0, buckets: vec![0; BUCKETS].into_boxed_slice(), dropped: false, dropped_at: 0 }
    }

    /// Every key written at `index`: whatever a transaction read of the table conflicts.
    pub(crate) fn fill(&mut self, index: u64) {
        self.last = index;
        self.buckets.fill(index);
    }
}

/// The version summary of every table, kept from the order alone.
#[derive(Default)]
pub(crate) struct Versions {
    tables: HashMap<String, TableVersions>,
}

impl Versions {
    /// Whether `record`'s reads were overwritten by a record placed after its start.
    pub(crate) fn conflicts(&self, record: &CommitRecord) -> bool {
        let since = record.based_on;
        record.reads.iter().any(|r| {
            let Some(t) = self.tables.get(&r.table) else { return false };
            // (A bucket out of range, from a malformed record, conflicts: alike everywhere,
            // and no panic.)
            (r.whole && t.last > since)
                || r.buckets.iter().any(|b| t.buckets.get(*b as usize).is_none_or(|v| *v > since))
        })
    }

    /// What the order alone refuses `record` with, the same on every copy: a conflict, or a
    /// table an earlier record dropped.
    pub(crate) fn refusal(&self, record: &CommitRecord) -> Option<Error> {
        if self.conflicts(record) {
            return Some(Error::Conflict);
        }
        self.dropped(record)
    }

    /// A table `record` writes that an earlier record dropped: the record is refused alike
    /// on every copy (whether or not this copy has a table of that name again), unless it
    /// creates the table again. A table dropped and created again, or transformed, after
    /// the place the record's transaction started from is another table: the record
    /// conflicts (its transaction runs again, on the table as it is now).
    fn dropped(&self, record: &CommitRecord) -> Option<Error> {
        if record.whole_table().is_some_and(|(_, op)| op.creates()) {
            return None;
        }
        record.changes.iter().find_map(|c| {
            let t = self.tables.get(&c.table)?;
            if t.dropped {
                Some(Error::no_such_table(&c.table))
            } else {
                (record.based_on < t.dropped_at).then_some(Error::Conflict)
            }
        })
    }

    /// The tables the order dropped.
    pub(crate) fn dropped_tables(&self) -> Vec<String> {
        self.tables.iter().filter(|(_, t)| t.dropped).map(|(name, _)| name.clone()).collect()
    }

    /// Notes the writes of `record`, committed at `index`.
    pub(crate) fn note(&mut self, index: u64, record: &CommitRecord) {
        if let Some((table, op)) = record.whole_table() {
            let t = self.tables.entry(table.to_owned()).or_insert_with(TableVersions::new);
            match op {
                WholeTable::Create { .. } | WholeTable::CreateOn { .. } | WholeTable::CreateCopies { .. } => {
                    t.dropped = false
                }
                WholeTable::Clear => t.fill(index),
                // Another table from here on (another record type): what was made for the
                // one before conflicts, blind writes included.
                WholeTable::Replace { .. } => {
                    t.fill(index);
                    t.dropped_at = index;
                }
                WholeTable::Drop => {
                    t.fill(index);
                    t.dropped = true;
                    t.dropped_at = index;
                }
                // A counter reset writes no key (an id handed out twice is a key written
                // twice, which the writes' own buckets catch), but what read the whole table
                // (a transform, which carries the counter) conflicts.
                WholeTable::ResetCounter { .. } => t.last = index,
                // The records stay as they were (a unique index added decides the commits
                // after it, alike on every copy, where the check is made); what read the
                // whole table conflicts (a transform, which carries the table's indexes:
                // ordered after the change, it would undo it).
                WholeTable::AddIndex { .. } | WholeTable::RemoveIndex { .. } => t.last = index,
                // The records stay as they were (where they are kept changes); what read the
                // whole table conflicts (a transform, made by a node holding it).
                // What a node whose copy went read of it (emptied there) conflicts.
                WholeTable::DelCopy { .. } => t.fill(index),
                WholeTable::AddCopy { .. }
                | WholeTable::AddDiscCopy { .. }
                | WholeTable::CopyFilled { .. } => t.last = index,
                // (What a copy is, or that it waits: nothing of the records, nor where
                // they are kept, changes.)
                WholeTable::CopyWaits { .. } | WholeTable::CopyType { .. } => {}
            }
            return;
        }
        for change in &record.changes {
            let t = self.tables.entry(change.table.clone()).or_insert_with(TableVersions::new);
            t.last = index;
            for w in &change.writes {
                t.buckets[bucket(&w.key) as usize] = index;
            }
        }
    }
}

/// [`Versions`] as a snapshot keeps them: per table (by name, in order), the last record
/// writing it, the buckets some record wrote, with the record, and whether it was dropped.
#[derive(Serialize, Deserialize)]
pub(crate) struct VersionsImage(Vec<TableImage>);

/// One table in a [`VersionsImage`]: its name, its last record, its buckets written,
/// whether the order dropped it, the place of its last drop.
type TableImage = (String, u64, Vec<(u32, u64)>, bool, u64);

impl Versions {
    /// What a snapshot keeps of them.
    pub(crate) fn image(&self) -> VersionsImage {
        let mut tables: Vec<_> = self
            .tables
            .iter()
            .map(|(name, t)| {
                let written = (0u32..).zip(t.buckets.iter()).filter(|(_, at)| **at != 0);
                (name.clone(), t.last, written.map(|(b, at)| (b, *at)).collect(), t.dropped, t.dropped_at)
            })
            .collect();
        tables.sort_by(|a, b| a.0.cmp(&b.0));
        VersionsImage(tables)
    }
}

impl VersionsImage {
    /// The versions again; an error for a bucket out of range.
    pub(crate) fn into_versions(self) -> std::result::Result<Versions, String> {
        let mut versions = Versions::default();
        for (name, last, written, dropped, dropped_at) in self.0 {
            let mut t = TableVersions::new();
            t.last = last;
            t.dropped = dropped;
            t.dropped_at = dropped_at;
            for (b, at) in written {
                let slot =
                    t.buckets.get_mut(b as usize).ok_or_else(|| format!("bucket {b} of table {name}"))?;
                *slot = at;
            }
            versions.tables.insert(name, t);
        }
        Ok(versions)
    }
}

/// A database's side of ordered commits.
#[derive(Default)]
pub(crate) struct Ordered {
    /// Whether `sequencer` holds one (checked first: a commit without one pays one load).
    pub(crate) on: std::sync::atomic::AtomicBool,
    pub(crate) sequencer: arc_swap::ArcSwapOption<Box<dyn Sequencer>>,
    /// The place of the last record applied here.
    pub(crate) applied: AtomicU64,
    /// Held while a record is applied and while a snapshot is written or loaded: one at a
    /// time, whoever calls (taken before the schema lock).
    pub(crate) applying: parking_lot::Mutex<()>,
    /// The versions, locked to decide a record and to note it, and across a snapshot's cut.
    pub(crate) versions: parking_lot::Mutex<Versions>,
    /// Tables held here whose copies wait to be filled from another node.
    pub(crate) fills: crate::engine::placement::Fills,
}

thread_local! {
    /// The database this thread is applying an ordered record to: its commits there are
    /// the record's own, installed here and not ordered again.
    static APPLYING: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
}

/// This thread applies an ordered record to a database until dropped (also on unwind).
pub(crate) struct Applying(Option<u64>);

impl Applying {
    pub(crate) fn enter(db: u64) -> Applying {
        Applying(APPLYING.with(|a| a.replace(Some(db))))
    }
}

/// Whether this thread is applying an ordered record to database `db` (see [`Applying`]).
pub(crate) fn applying(db: u64) -> bool {
    APPLYING.with(|a| a.get()) == Some(db)
}

impl Drop for Applying {
    fn drop(&mut self) {
        APPLYING.with(|a| a.set(self.0));
    }
}

impl Ordered {
    /// The place of the last record applied: what a transaction starting now reads from.
    pub(crate) fn applied(&self) -> u64 {
        self.applied.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_spread_and_stay_put() {
        assert_eq!(bucket(b""), bucket(b""));
        let used: std::collections::HashSet<u32> = (0u32..10_000).map(|i| bucket(&i.to_le_bytes())).collect();
        assert!(used.len() > BUCKETS / 2, "{} buckets used", used.len());
        assert!(used.iter().all(|b| (*b as usize) < BUCKETS));
        // Fixed forever: copies of other builds must agree.
        assert_eq!(bucket(b"alice"), bucket(b"alice"));
        assert_eq!(bucket(&[1, 2, 3]), 1971);
    }

    /// A transform's record reads the whole table and carries its indexes: an index added
    /// or removed after the place it read at must make it run again (else every copy would
    /// make the table anew without the change).
    #[test]
    fn an_index_change_conflicts_with_what_read_the_whole_table_before_it() {
        use crate::engine::commit_record::TableReads;
        let whole_read = |based_on: u64| {
            let mut r = CommitRecord::whole("t", WholeTable::Clear, based_on);
            r.reads = vec![TableReads { table: "t".into(), buckets: Vec::new(), whole: true }];
            r
        };
        for change in [
            WholeTable::AddIndex { field: "f".into(), unique: true },
            WholeTable::RemoveIndex { field: "f".into() },
        ] {
            let mut versions = Versions::default();
            versions.note(1, &CommitRecord::whole("t", WholeTable::Clear, 0));
            assert!(!versions.conflicts(&whole_read(1)));
            versions.note(2, &CommitRecord::whole("t", change, 1));
            assert!(versions.conflicts(&whole_read(1)), "read at 1, the index changed at 2");
            assert!(!versions.conflicts(&whole_read(2)));
        }
    }

    /// A record from another copy reading a bucket out of range (another build, or damage)
    /// conflicts, alike on every copy, rather than panicking the one applying it.
    #[test]
    fn a_bucket_out_of_range_conflicts() {
        use crate::engine::commit_record::TableReads;
        let mut versions = Versions::default();
        versions.note(1, &CommitRecord::whole("t", WholeTable::Clear, 0));
        let mut r = CommitRecord::whole("t", WholeTable::Clear, 1);
        r.reads = vec![TableReads { table: "t".into(), buckets: vec![0], whole: false }];
        assert!(!versions.conflicts(&r));
        r.reads[0].buckets = vec![BUCKETS as u32, u32::MAX];
        assert!(versions.conflicts(&r));
    }
}
