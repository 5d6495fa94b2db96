//! Commit records: a committed transaction's writes, encoded, handed to a sink as the
//! database commits them ([`Database::replicate_to`]) and applied to another database
//! ([`Database::apply_commit`]). The seam replication is built on; ordered commits
//! (`ordered.rs`) carry the same records, with what the transaction read.
//!
//! What goes through it today: every transaction, dirty operation and batch, named
//! counters, the reaper's removals of expired records, ids `next_id` hands out, and
//! `create_table`, `drop_table`, `clear_table`, index changes, `transform` and
//! `reset_counter`, and restores (a table recreated as a record of its own), on tables of
//! any storage and type. Not yet: restores into tables no type has claimed (refused while
//! a sink is attached). A replica makes the
//! tables the primary creates (or keeps those it was given, of the same shape), and runs
//! with `Config::auto_cleanup(false)`: its expiries come from the primary's reaper.
//! Ordered commits carry the same records.

use crate::engine::commit_record::{CommitRecord, WholeTable};

use crate::{Database, Error, Result};

impl Database {
    /// Applies a commit record made by another database as one transaction, at the
    /// commit's time there (not this database's clock): the same records end up here, with
    /// the same events for this database's subscribers (an expired record's removal
    /// included). A record of a table's creation makes it here with this program's type of
    /// its shape, as `ram_copies` (a table already here of that shape is kept as it is); a
    /// transform's record makes the table anew, where it is kept here. A record naming a
    /// table this database does not have, or holding bytes that do not decode as its
    /// records, is refused and changes nothing.
    ///
    /// ```
    /// use mnesia::prelude::*;
    /// #[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
    /// struct Item { #[key] id: u32, n: i64 }
    ///
    /// let (primary, replica) = (Database::in_memory()?, Database::in_memory()?);
    /// primary.create_table::<Item>(TableOptions::new())?;
    /// replica.create_table::<Item>(TableOptions::new())?;
    /// let to_replica = replica.clone();
    /// primary.replicate_to(move |r: &mnesia::CommitRecord| to_replica.apply_commit(r).expect("applied"));
    /// primary.scope(|| Item::write(Item { id: 1, n: 5 }))?;
    /// assert_eq!(replica.scope(|| Item::read(&1))?, Some(Item { id: 1, n: 5 }));
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn apply_commit(&self, record: &CommitRecord) -> Result<()> {
        if crate::tx::context::is_transaction() {
            return Err(Error::Invalid(
                "apply_commit runs a transaction of its own: call it outside one".into(),
            ));
        }
        if record.changes.iter().any(|c| c.table == crate::tx::counters::COUNTERS_TABLE) {
            crate::tx::counters::ensure(self)?;
        }
        match record.whole_table() {
            Some((_, WholeTable::Create { shape, type_name, indexes })) => {
                return self.create_ordered_here(shape, type_name, indexes, &[], &[]);
            }
            Some((_, WholeTable::CreateOn { shape, type_name, indexes, nodes })) => {
                return self.create_ordered_here(shape, type_name, indexes, nodes, &[]);
            }
            Some((_, WholeTable::CreateCopies { shape, type_name, indexes, nodes, disc })) => {
                return self.create_ordered_here(shape, type_name, indexes, nodes, disc);
            }
            Some((name, change)) if change.changes_copies() => {
                return self.change_copies_here(name, change);
            }
            _ => {}
        }
        if let Some((name, op)) = record.whole_table() {
            let unheld;
            let op = match (op, self.any_table(name)?.placement()) {
                // (Alike on every node: each knows where the table's copies are.)
                (WholeTable::AddIndex { unique: true, .. }, place) if place.holders().is_some() => {
                    return Err(crate::engine::placement::no_unique(name));
                }
                (WholeTable::Replace { indexes, .. }, place)
                    if place.holders().is_some() && indexes.iter().any(|(_, unique)| *unique) =>
                {
                    return Err(crate::engine::placement::no_unique(name));
                }
                // A node without the table's records makes the new table empty.
                (WholeTable::Replace { shape, type_name, indexes, version, counter, .. }, place)
                    if !place.is_held() =>
                {
                    unheld = WholeTable::Replace {
                        shape: shape.clone(),
                        type_name: type_name.clone(),
                        indexes: indexes.clone(),
                        version: *version,
                        counter: *counter,
                        rows: Vec::new(),
                    };
                    &unheld
                }
                _ => op,
            };
            // Made again on the store in place if one took the table's place meanwhile (a
            // copy moving its own table between storage types).
            for _ in 0..WHOLE_ATTEMPTS {
                match self.any_table(name)?.change_whole(self, op) {
                    Err(Error::Conflict) => continue,
                    done => return done,
                }
            }
            return Err(Error::TooManyRetries { attempts: WHOLE_ATTEMPTS });
        }
        let tables = record.changes.iter().map(|c| self.any_table(&c.table)).collect::<Result<Vec<_>>>()?;
        crate::tx::context::transact(self.clone(), || {
            crate::tx::context::with_tx(|tx| {
                tx.commit_at(record.time);
                for (table, change) in tables.iter().zip(&record.changes) {
                    // A table whose records are on other nodes (or wait to be filled here):
                    // nothing to decide (it has no unique index), nothing kept.
                    if !table.placement().is_held() {
                        continue;
                    }
                    tx.part_of(table)?.apply_change(&change.writes)?;
                }
                Ok(())
            })
        })?;
        self.log_claims(record)
    }

    /// Logs, for each disc table whose change in `record` claims ids (`next_id` on the
    /// primary or another copy), the counter past them: a claim writes no record, so its
    /// commit logged nothing, and this copy must not hand the ids out after a restart.
    fn log_claims(&self, record: &CommitRecord) -> Result<()> {
        for change in &record.changes {
            let claimed = change.writes.iter().filter_map(|w| match w.value {
                crate::engine::commit_record::Content::Claim(id) => Some(id),
                _ => None,
            });
            if let Some(id) = claimed.max()
                && self.any_table(&change.table)?.placement().is_held()
            {
                // (The table in place now: one moved to disc meanwhile logs it too.)
                self.any_table(&change.table)?.claim(self, id)?;
            }
        }
        Ok(())
    }
}

/// How many times a change to a table as a whole is made again when a new store keeps
/// taking the table's place.
const WHOLE_ATTEMPTS: u32 = 100;

impl Database {
    /// Makes, here, the table an ordered `create_table` created, with this program's type
    /// of `shape` ([`Error::TableExists`] when it is here already, alike on every copy).
    fn create_ordered_here(
        &self,
        shape: &crate::schema::shape::RecordShape,
        type_name: &str,
        indexes: &[(String, bool)],
        nodes: &[String],
        disc: &[String],
    ) -> Result<()> {
        // Whether the table is here at this place of the order is the same on every copy
        // (tables come and go through the order): a second creation is refused alike. A
        // replica fed by a sink may have been given the table beforehand: of the same
        // shape, it is kept as it is.
        if let Ok(here) = self.any_table(shape.name()) {
            if !crate::engine::sequencer::applying(self.id()) && here.info().shape() == *shape {
                if self.replicating() {
                    let create = WholeTable::Create {
                        shape: shape.clone(),
                        type_name: type_name.to_owned(),
                        indexes: indexes.to_vec(),
                    };
                    self.hand_whole(shape.name(), create, self.next_seq());
                }
                return Ok(());
            }
            return Err(Error::TableExists { table: shape.name().to_owned() });
        }
        if !nodes.is_empty() && indexes.iter().any(|(_, unique)| *unique) {
            return Err(crate::engine::placement::no_unique(shape.name()));
        }
        crate::features::kinds::create_declared(self, shape, type_name, indexes, 0, nodes)?;
        if !disc.is_empty() {
            self.any_table(shape.name())?.placement().set_disc(disc.to_vec(), self.inner.config.node());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::disk::record::encode;
    use crate::engine::commit_record::{Content, KeyChange};
    use crate::testing::{Rec, rec};
    use crate::tx::context::{transact, with_tx};
    use crate::{Config, Database, Schema, StorageType, Table as _, TableOptions};

    /// A transaction's part asked for with a registry entry looked up before the table's
    /// store was replaced (`apply_commit` and a restore look their tables up before their
    /// transaction starts) writes the store that replaced it, not the one put aside (its
    /// writes would conflict on every attempt).
    #[test]
    fn a_part_asked_for_with_an_old_entry_writes_the_new_store() {
        let dir = tempfile::tempdir().expect("dir");
        Schema::create(dir.path()).expect("schema");
        let db = Database::open(Config::default().dir(dir.path()).max_retries(3)).expect("open");
        db.create_table::<Rec>(TableOptions::new()).expect("table");
        let before = db.any_table("rec").expect("entry");
        // To `disc_only_copies`: a new store takes the old one's place.
        db.change_table_copy_type::<Rec>(StorageType::DiscOnlyCopies).expect("moved to disc only");
        let r = rec(1, "x", 1);
        let change = KeyChange {
            key: encode(&r.id).expect("key"),
            value: Content::Put(encode(&r).expect("record")),
            expired: false,
        };
        transact(db.clone(), || {
            with_tx(|tx| tx.part_of(&before)?.apply_change(std::slice::from_ref(&change)))
        })
        .expect("applied");
        assert_eq!(db.scope(|| Rec::read(&1)).expect("read"), Some(r));
        assert_eq!(db.table_info::<Rec>().expect("info").storage_type, StorageType::DiscOnlyCopies);
        // A restore's part moves the counter of the store it writes, not the one put aside.
        transact(db.clone(), || {
            with_tx(|tx| tx.part_of(&before)?.restore(&[], crate::RestoreMode::KeepAndAdd, 42))
        })
        .expect("restored");
        assert_eq!(db.table_info::<Rec>().expect("info").counter, 42);
    }
}
