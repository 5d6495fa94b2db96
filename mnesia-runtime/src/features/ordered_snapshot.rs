//! Snapshots of an ordered copy: what a replicated log's snapshot holds, so that the log
//! before it can go and a copy far behind can be filled at once.
//!
//! A snapshot is the copy at one place of the shared order: every table's records (a
//! [backup](crate::Database::backup) taken at that place) and what decides the records
//! after it (the last record to write each key bucket and each table, see `ordered.rs`).
//! A copy loaded from it decides every later record exactly as the copies that applied the
//! whole order do.
//!
//! The bytes: a magic (`MNSSNP` and a version), one checksummed frame holding the place,
//! the versions and where tables with copies on some nodes only are (version 4, which
//! says which copies are on disc; version 3 does not; version 2 has none), then the
//! backup as its file holds it (frames of its own, each checked).

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};

use crate::disk::frame::{self, FrameReader};
use crate::disk::record::encode;
use crate::engine::backup_types::RestoreMode;
use crate::engine::sequencer::VersionsImage;
use crate::features::backup::{BackupOptions, BackupReader, BackupWriter, RestoreOptions};
use crate::{Database, Error, Result};

pub(crate) const KIND: &[u8; 6] = b"MNSSNP";
const VERSION: u8 = 4;

/// The frame before the backup.
#[derive(Serialize, Deserialize)]
pub(crate) struct Head {
    /// The place of the last record the snapshot holds.
    pub(crate) applied: u64,
    versions: VersionsImage,
    /// Where the tables are (from version 3 on).
    pub(crate) places: Places,
}

/// The frame before the backup, in version 3.
#[derive(Deserialize)]
struct HeadV3 {
    applied: u64,
    versions: VersionsImage,
    placed: Vec<(String, Vec<String>)>,
    unheld: Vec<String>,
    filling: Vec<(String, Vec<(String, u64)>)>,
}

/// Where a snapshot's tables are: those with copies on some nodes only, and those whose
/// records its maker did not hold (their copy there was elsewhere, or waited to be filled).
#[derive(Default, Serialize, Deserialize)]
pub(crate) struct Places {
    /// (table, the nodes holding a copy); the others are on every node.
    pub(crate) placed: Vec<(String, Vec<String>)>,
    /// Tables of the snapshot without their records.
    pub(crate) unheld: Vec<String>,
    /// (table, the nodes given a copy not filled yet, each with the place that gave it).
    pub(crate) filling: Vec<(String, Vec<(String, u64)>)>,
    /// (table, the nodes whose copy is `disc_copies`) (from version 4 on).
    pub(crate) disc: Vec<(String, Vec<String>)>,
}

/// The frame before the backup, in version 2.
#[derive(Deserialize)]
struct HeadV2 {
    applied: u64,
    versions: VersionsImage,
}

/// Reads the head of a snapshot (of version 2, 3 or 4) from `input`, which is left at the backup.
pub(crate) fn read_head(input: &mut dyn Read) -> Result<Head> {
    let name = Path::new("ordered snapshot");
    let corrupt = |offset, reason: String| Error::Corrupt { file: name.to_path_buf(), offset, reason };
    let (mut frames, version) = FrameReader::of_versions(name, input, KIND, 2..=VERSION)?;
    let (at, bytes) = frames.next_frame()?.ok_or_else(|| corrupt(8, "no head".into()))?;
    let bad = |e: postcard::Error| corrupt(at, format!("bad head: {e}"));
    match version {
        2 => {
            let HeadV2 { applied, versions } = postcard::from_bytes(bytes).map_err(bad)?;
            Ok(Head { applied, versions, places: Places::default() })
        }
        3 => {
            let HeadV3 { applied, versions, placed, unheld, filling } =
                postcard::from_bytes(bytes).map_err(bad)?;
            Ok(Head { applied, versions, places: Places { placed, unheld, filling, disc: Vec::new() } })
        }
        _ => postcard::from_bytes(bytes).map_err(bad),
    }
}

/// What [`Database::write_ordered_snapshot`] wrote.
///
/// ```
/// let db = mnesia::Database::in_memory()?;
/// let mut bytes = Vec::new();
/// let info = db.write_ordered_snapshot(&mut bytes)?;
/// assert_eq!((info.applied, info.records), (0, 0));
/// # Ok::<(), mnesia::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct OrderedSnapshot {
    /// The place, in the shared order, of the last record the snapshot holds.
    pub applied: u64,
    /// Records (a bag: keys) it holds.
    pub records: u64,
}

impl Database {
    /// Writes a snapshot of this copy into `out`: every table at one place of the shared
    /// order (the place returned), and what decides the records placed after it. The
    /// records are copied while commits go on (as [`Database::backup`] does); only the
    /// moment of the cut waits for the record being applied. A copy given the snapshot by
    /// [`Database::load_ordered_snapshot`] then applies the records after that place and
    /// reaches the same state and verdicts as this one.
    ///
    /// ```
    /// use mnesia::prelude::*;
    /// # use mnesia::{CommitRecord, Sequencer};
    /// # struct Alone { db: Database, last: std::sync::Mutex<u64> }
    /// # impl Sequencer for Alone {
    /// #     fn order(&self, record: CommitRecord) -> mnesia::Result<()> {
    /// #         let mut last = self.last.lock().expect("lock");
    /// #         *last += 1;
    /// #         self.db.apply_ordered(*last, &record)
    /// #     }
    /// # }
    /// #[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
    /// struct Item { #[key] id: u32 }
    ///
    /// let (primary, copy) = (Database::in_memory()?, Database::in_memory()?);
    /// primary.create_table::<Item>(TableOptions::new())?;
    /// copy.create_table::<Item>(TableOptions::new())?;
    /// primary.order_commits_with(Alone { db: primary.clone(), last: std::sync::Mutex::new(0) });
    /// primary.scope(|| Item::write(Item { id: 7 }))?;
    ///
    /// let mut snapshot = Vec::new();
    /// assert_eq!(primary.write_ordered_snapshot(&mut snapshot)?.applied, 1);
    /// assert_eq!(copy.load_ordered_snapshot(&snapshot[..])?, 1);
    /// assert_eq!(copy.applied_index(), 1);
    /// assert_eq!(copy.scope(|| Item::read(&7))?, Some(Item { id: 7 }));
    /// # primary.stop_ordering();
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn write_ordered_snapshot(&self, out: &mut dyn Write) -> Result<OrderedSnapshot> {
        self.write_snapshot_of(out, BackupOptions::new())
    }

    /// [`Database::write_ordered_snapshot`] of the tables `options` names (the caller holds
    /// no lock of the order).
    pub(crate) fn write_snapshot_of(
        &self,
        out: &mut dyn Write,
        mut options: BackupOptions,
    ) -> Result<OrderedSnapshot> {
        let name = Path::new("ordered snapshot");
        let ordered = &self.inner.ordered;
        // No record half applied (a schema change is made outside the versions' lock).
        let _no_apply = ordered.applying.lock();
        let mut head = None;
        // The backup, into memory first: the head, taken at the cut, comes before it.
        let mut w = BackupWriter::new(name, Vec::new())?;
        // Every table but those this node keeps for itself (no other copy has them), left
        // out under the schema lock the backup takes.
        options.shared_only = true;
        // (Tables are placed, and filled, under `applying`.)
        let places = self.places();
        let info = self.backup_into(&mut w, &options, || {
            // Held across the cut: no record is being applied, every one applied is in.
            let versions = ordered.versions.lock();
            head = Some(Head { applied: ordered.applied(), versions: versions.image(), places });
            versions
        })?;
        let head = head.ok_or_else(|| Error::Internal("the snapshot's cut was not made".into()))?;
        let mut frame_bytes = frame::magic(KIND, VERSION).to_vec();
        frame::encode_frame(&encode(&head)?, &mut frame_bytes);
        let io = |e| crate::disk::files::io_error(name, e);
        out.write_all(&frame_bytes).map_err(io)?;
        out.write_all(&w.into_inner()).map_err(io)?;
        Ok(OrderedSnapshot { applied: head.applied, records: info.records })
    }

    /// Replaces this copy's tables by the snapshot `input` holds
    /// ([`Database::write_ordered_snapshot`]) and takes its place in the shared order:
    /// every table of the snapshot is cleared and loaded (one this copy lacks, created
    /// through the order, is made with this program's type for it; one the order dropped
    /// is dropped here; each table takes the snapshot's indexes), then records after that
    /// place are applied as usual. Returns the place. A damaged snapshot is an error and
    /// changes nothing; one whose records do not fit this database's tables is an error
    /// and changes none of their records (tables it made before finding that out stay).
    /// Refused when this copy has applied records after the snapshot's place. Subscribers
    /// see no event per record loaded (as with [`Database::restore`]).
    ///
    /// ```
    /// let db = mnesia::Database::in_memory()?;
    /// assert!(db.load_ordered_snapshot(&b"not a snapshot"[..]).is_err());
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn load_ordered_snapshot(&self, mut input: impl Read) -> Result<u64> {
        let _no_apply = self.inner.ordered.applying.lock();
        let name = Path::new("ordered snapshot");
        let corrupt = |offset, reason: String| Error::Corrupt { file: name.to_path_buf(), offset, reason };
        let head = read_head(&mut input)?;
        let versions = head.versions.into_versions().map_err(|reason| corrupt(8, reason))?;
        let reader = BackupReader::new(name, input, u64::MAX)?;
        let ordered = &self.inner.ordered;
        // (No record is applied meanwhile: the caller holds `applying`.)
        let applied = ordered.applied();
        if applied > head.applied {
            return Err(Error::Invalid(format!(
                "a snapshot at place {} loaded into a copy at place {applied}: a copy never goes back",
                head.applied
            )));
        }
        // Each table's indexes as the order left them (added or removed while the copies ran).
        self.refuse_own_tables(reader.tables().iter().map(|t| t.def.name.as_str()))?;
        let mut indexes: Vec<(String, Vec<(String, bool)>)> = Vec::new();
        // The named counters' table, which a copy creates when a record first needs it, and
        // tables created through the order that this copy's program has not created (the
        // snapshot holds their creation): made with this program's types for them.
        for t in reader.tables() {
            let wanted: Vec<(String, bool)> =
                t.def.indexes.iter().map(|i| (i.field.clone(), i.unique)).collect();
            if t.def.name == crate::tx::counters::COUNTERS_TABLE {
                crate::tx::counters::ensure(self)?;
                continue;
            }
            if self.any_table(&t.def.name).is_err() {
                let shape = t.def.shape();
                crate::features::kinds::create_declared(self, &shape, "", &wanted, t.def.version, &[])?;
            }
            indexes.push((t.def.name.clone(), wanted));
        }
        // Placed before they are loaded (the stores a load makes take the placement).
        self.place_loaded(indexes.iter().map(|(name, _)| name.as_str()), &head.places, head.applied)?;
        // Held throughout, in the order every path takes them (schema, then the versions,
        // then commit locks): no table changes meanwhile.
        let schema = self.inner.schema.lock();
        let mut current = ordered.versions.lock();
        // (Tables whose records are on other nodes: not loaded, emptied below.)
        let mut modes = RestoreOptions::new().all(RestoreMode::ClearAndLoad);
        for (table, _) in head
            .places
            .placed
            .iter()
            .filter(|(_, nodes)| !nodes.iter().any(|n| n == self.inner.config.node()))
        {
            modes = modes.table(table.clone(), RestoreMode::Skip);
        }
        self.load_backup_here(reader, &modes, schema)?;
        let dropped = versions.dropped_tables();
        *current = versions;
        ordered.applied.store(head.applied, Ordering::Release);
        drop(current);
        // Tables the order dropped before the snapshot, that this copy has (its program
        // created them again when it started): gone here too.
        for name in dropped {
            if let Ok(table) = self.any_table(&name)
                && !table.is_local()
            {
                table.change_whole(self, &crate::engine::commit_record::WholeTable::Drop)?;
            }
        }
        for (name, wanted) in &indexes {
            self.match_indexes(name, wanted)?;
        }
        self.empty_unheld(indexes.iter().map(|(name, _)| name.as_str()))?;
        Ok(head.applied)
    }

    /// Gives table `name` exactly the indexes `wanted` (field, unique): those of a snapshot,
    /// which the order may have changed since the program that created the table here
    /// declared its own.
    fn match_indexes(&self, name: &str, wanted: &[(String, bool)]) -> Result<()> {
        use crate::engine::commit_record::WholeTable;
        let table = self.any_table(name)?;
        let here: Vec<(String, bool)> =
            table.info().indexes.into_iter().map(|i| (i.field, i.unique)).collect();
        for (field, _) in here.iter().filter(|i| !wanted.contains(i)) {
            Arc::clone(&table).change_whole(self, &WholeTable::RemoveIndex { field: field.clone() })?;
        }
        for (field, unique) in wanted.iter().filter(|i| !here.contains(i)) {
            let add = WholeTable::AddIndex { field: field.clone(), unique: *unique };
            Arc::clone(&table).change_whole(self, &add)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::commit_record::CommitRecord;
    use crate::testing::{Rec, rec};
    use crate::{Sequencer, Table as _, TableOptions};

    /// Applies every commit at once, at the next place.
    struct Alone {
        db: Database,
        last: parking_lot::Mutex<u64>,
    }

    impl Sequencer for Alone {
        fn order(&self, record: CommitRecord) -> Result<()> {
            let mut last = self.last.lock();
            *last += 1;
            self.db.apply_ordered(*last, &record)
        }
    }

    fn database() -> Database {
        let db = Database::in_memory().expect("db");
        db.create_table::<Rec>(TableOptions::new()).expect("table");
        db
    }

    /// The records of `db`, by key.
    fn records(db: &Database) -> Vec<Rec> {
        let mut all = db.scope(Rec::list).expect("list");
        all.sort_by_key(|r| r.id);
        all
    }

    /// A record that reads key `read` from place `based_on` and writes `write`.
    fn record(db: &Database, read: u32, write: Rec) -> CommitRecord {
        let (tx, rx) = std::sync::mpsc::channel();
        db.replicate_to(move |r: &CommitRecord| {
            let _ = tx.send(r.clone());
        });
        db.scope(|| {
            crate::tx::context::transact(db.clone(), || {
                Rec::read(&read)?;
                Rec::write(write.clone())
            })
        })
        .expect("write");
        db.stop_replicating();
        let mut r = rx.try_recv().expect("a record");
        r.reads = vec![crate::engine::commit_record::TableReads {
            table: "rec".into(),
            buckets: vec![crate::engine::sequencer::bucket(&encode(&read).expect("key"))],
            whole: false,
        }];
        r
    }

    #[test]
    fn a_write_from_before_a_drop_conflicts_after_the_table_is_created_again_and_a_second_create_is_refused()
    {
        let primary = database();
        primary.order_commits_with(Alone { db: primary.clone(), last: parking_lot::Mutex::new(0) });
        primary.scope(|| Rec::write(rec(1, "x", 1))).expect("write");
        // A blind write whose transaction started at place 1, before the drop.
        let mut stale = record(&database(), 1, rec(5, "stale", 5));
        stale.reads.clear();
        stale.based_on = 1;
        primary.drop_table::<Rec>().expect("drop");
        primary.create_table::<Rec>(TableOptions::new()).expect("created again");
        assert_eq!(primary.applied_index(), 3);
        primary.stop_ordering();
        // Made for the table dropped since: it conflicts (its transaction runs again, on
        // the table as it is now), on every copy alike.
        let refused = primary.apply_ordered(4, &stale);
        assert!(matches!(refused, Err(Error::Conflict)), "{refused:?}");
        assert!(records(&primary).is_empty(), "the write from before the drop reached the new table");
        // A second creation, ordered before the first was applied on its copy: refused alike,
        // its place taken.
        let again = crate::engine::commit_record::WholeTable::Create {
            shape: crate::schema::shape::RecordShape::of::<Rec>(),
            type_name: std::any::type_name::<Rec>().to_owned(),
            indexes: Vec::new(),
        };
        let refused = primary.apply_ordered(5, &CommitRecord::whole("rec", again, 3));
        assert!(matches!(refused, Err(Error::TableExists { .. })), "{refused:?}");
        assert_eq!(primary.applied_index(), 5, "a refusal every copy makes takes the place");
    }

    #[test]
    fn a_copy_loading_a_snapshot_takes_the_indexes_the_order_changed() {
        let primary = database();
        primary.order_commits_with(Alone { db: primary.clone(), last: parking_lot::Mutex::new(0) });
        primary.scope(|| Rec::write(rec(1, "x", 1))).expect("write");
        primary.remove_index::<Rec>("tag").expect("remove the declared index");
        primary.add_index(Rec::N.index_spec(true)).expect("add a unique one");
        let mut bytes = Vec::new();
        primary.write_ordered_snapshot(&mut bytes).expect("snapshot");
        primary.stop_ordering();
        // A copy whose program created the table with its declared index only.
        let copy = database();
        copy.load_ordered_snapshot(&bytes[..]).expect("load");
        let indexes = |db: &Database| -> Vec<(String, bool)> {
            let info = db.table_info::<Rec>().expect("info");
            info.indexes.into_iter().map(|i| (i.field, i.unique)).collect()
        };
        assert_eq!(indexes(&copy), indexes(&primary));
        assert_eq!(indexes(&copy), [("n".to_owned(), true)]);
    }

    #[test]
    fn a_table_created_through_the_order_is_made_on_a_copy_that_loads_the_snapshot() {
        let primary = Database::in_memory().expect("db");
        primary.order_commits_with(Alone { db: primary.clone(), last: parking_lot::Mutex::new(0) });
        primary.create_table::<Rec>(TableOptions::new()).expect("ordered create");
        primary.scope(|| Rec::write(rec(1, "x", 1))).expect("write");
        // The declared index removed, another one added, through the order.
        primary.remove_index::<Rec>("tag").expect("remove_index");
        primary.add_index(Rec::N.index_spec(false)).expect("add_index");
        let mut bytes = Vec::new();
        primary.write_ordered_snapshot(&mut bytes).expect("snapshot");
        primary.stop_ordering();
        // A copy whose program has not created the table.
        let copy = Database::in_memory().expect("db");
        assert_eq!(copy.load_ordered_snapshot(&bytes[..]).expect("load"), 4);
        assert_eq!(records(&copy), vec![rec(1, "x", 1)]);
        let indexes = copy.table_info::<Rec>().expect("info").indexes;
        assert_eq!(indexes.iter().map(|i| (i.field.as_str(), i.unique)).collect::<Vec<_>>(), [("n", false)]);
    }

    #[test]
    fn a_table_dropped_before_the_snapshot_is_dropped_on_the_copy_and_refused_after() {
        let primary = database();
        primary.order_commits_with(Alone { db: primary.clone(), last: parking_lot::Mutex::new(0) });
        primary.scope(|| Rec::write(rec(1, "x", 1))).expect("write");
        // A blind write, made after the drop's place (else it conflicts with the drop).
        let mut later = record(&database(), 1, rec(2, "late", 2));
        later.reads.clear();
        later.based_on = 2;
        primary.drop_table::<Rec>().expect("drop");
        assert_eq!(primary.applied_index(), 2);
        let mut bytes = Vec::new();
        primary.write_ordered_snapshot(&mut bytes).expect("snapshot");
        primary.stop_ordering();
        // A copy whose program created the table again when it started.
        let copy = database();
        assert_eq!(copy.load_ordered_snapshot(&bytes[..]).expect("load"), 2);
        assert!(!copy.exists::<Rec>(), "the dropped table is gone on the copy");
        for db in [&primary, &copy] {
            let refused = db.apply_ordered(3, &later);
            assert!(matches!(refused, Err(Error::NoSuchTable { .. })), "{refused:?}");
            assert_eq!(db.applied_index(), 3, "a refusal decided by the order takes the place");
        }
    }

    #[test]
    fn a_copy_loaded_from_a_snapshot_decides_later_records_as_the_original() {
        let primary = database();
        primary.order_commits_with(Alone { db: primary.clone(), last: parking_lot::Mutex::new(0) });
        for i in 0..50 {
            primary.scope(|| Rec::write(rec(i, "x", i64::from(i)))).expect("write");
        }
        let mut bytes = Vec::new();
        let taken = primary.write_ordered_snapshot(&mut bytes).expect("snapshot");
        assert_eq!((taken.applied, taken.records), (50, 50));
        primary.stop_ordering();

        let copy = database();
        copy.scope(|| Rec::write(rec(99, "gone", 0))).expect("write");
        assert_eq!(copy.load_ordered_snapshot(&bytes[..]).expect("load"), 50);
        assert_eq!(copy.applied_index(), 50);
        assert_eq!(records(&copy), records(&primary));

        // Read key 3 from place 10 (key 3 was written at place 4): committed on both. Read
        // key 20 from place 10 (written at place 21, after): a conflict on both.
        let scratch = database();
        let mut fine = record(&scratch, 3, rec(200, "a", 1));
        fine.based_on = 10;
        let mut late = record(&scratch, 20, rec(201, "b", 2));
        late.based_on = 10;
        for db in [&primary, &copy] {
            assert_eq!(db.apply_ordered(51, &fine).map_err(|e| e.to_string()), Ok(()));
            assert!(matches!(db.apply_ordered(52, &late), Err(Error::Conflict)));
        }
        assert_eq!(records(&copy), records(&primary));

        // A copy that has not used named counters yet loads their table too.
        let counted = database();
        counted.order_commits_with(Alone { db: counted.clone(), last: parking_lot::Mutex::new(0) });
        counted.scope(|| crate::tx::counters::dirty_update_counter("hits", 3)).expect("counter");
        let mut with_counters = Vec::new();
        counted.write_ordered_snapshot(&mut with_counters).expect("snapshot");
        counted.stop_ordering();
        let fresh = database();
        fresh.load_ordered_snapshot(&with_counters[..]).expect("load");
        assert_eq!(fresh.scope(|| crate::tx::counters::current_value("hits")).expect("value"), 3);

        // A copy past the snapshot refuses it; damage is refused and changes nothing.
        assert!(matches!(copy.load_ordered_snapshot(&bytes[..]), Err(Error::Invalid(_))));
        let fresh = database();
        fresh.scope(|| Rec::write(rec(5, "kept", 5))).expect("write");
        let mut damaged = bytes.clone();
        let at = damaged.len() - 20;
        damaged[at] ^= 0xff;
        assert!(fresh.load_ordered_snapshot(&damaged[..]).is_err());
        assert!(fresh.load_ordered_snapshot(&bytes[..bytes.len() / 2]).is_err());
        assert_eq!(records(&fresh), vec![rec(5, "kept", 5)]);
        assert_eq!(fresh.applied_index(), 0);
    }
}
