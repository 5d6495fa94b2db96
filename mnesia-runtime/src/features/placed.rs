//! Tables with copies on some nodes of a cluster only (`create_table` with a list of
//! nodes, on a node whose commits are ordered): what a snapshot says of them, and the
//! filling of a copy from a node holding one.
//!
//! Every node registers such a table and applies the order's records alike (they decide
//! nothing from its records: it has no unique index); the nodes its placement names keep
//! its records, the others keep none. A node that loads a snapshot made by a node without
//! the records of a table it holds, or is given a copy (`copies.rs`), waits for them: a
//! node holding a copy writes an image of it ([`Database::write_table_image`], the table
//! at one place of the order) and this node loads it ([`Database::fill_table`]), then
//! makes again the table's writes it skipped after that place (or, for an image of a
//! later place, loads it when it gets there).

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::engine::backup_types::RestoreMode;
use crate::engine::commit_record::WholeTable;
use crate::engine::placement::{Image, SKIPPED_AT_MOST, Skipped, Wait};
use crate::features::backup::{BackupOptions, BackupReader, RestoreOptions};
use crate::features::ordered_snapshot::{Places, read_head};
use crate::{Database, Error, Result};

impl Database {
    /// Where this node's tables of the order are, for a snapshot (the caller holds the
    /// order's `applying`, under which tables are placed and filled).
    pub(crate) fn places(&self) -> Places {
        let mut places = Places::default();
        for (name, table) in self.inner.tables.load().iter() {
            let place = table.placement();
            if let Some(nodes) = place.holders() {
                places.placed.push((name.clone(), nodes.to_vec()));
            }
            let filling = place.filling();
            if !filling.is_empty() {
                places.filling.push((name.clone(), filling));
            }
            let disc = place.disc();
            if !disc.is_empty() {
                places.disc.push((name.clone(), disc));
            }
            if !place.is_held() {
                places.unheld.push(name.clone());
            }
        }
        places
    }

    /// Places the tables `names` of a snapshot about to be loaded as its `places` say (the
    /// caller holds the order's `applying`): one this node holds but the snapshot's maker
    /// did not waits to be filled from place `at`, the snapshot's (a snapshot loaded ends
    /// the waits of those before).
    pub(crate) fn place_loaded<'a>(
        &self,
        names: impl Iterator<Item = &'a str>,
        places: &Places,
        at: u64,
    ) -> Result<()> {
        let me = self.inner.config.node();
        let fills = &self.inner.ordered.fills;
        let mut waiting = fills.waiting.lock();
        waiting.clear();
        for name in names {
            let table = self.any_table(name)?;
            let nodes = places.placed.iter().find(|(n, _)| n == name).map(|(_, nodes)| nodes.clone());
            let named = nodes.as_ref().is_none_or(|nodes| nodes.iter().any(|n| n == me));
            match nodes {
                Some(nodes) if named && places.unheld.iter().any(|n| n == name) => {
                    table.placement().place_waiting(nodes);
                    waiting.insert(name.to_owned(), Wait::from(at));
                }
                nodes => table.placement().place(nodes, me),
            }
            let filling = places.filling.iter().find(|(n, _)| n == name).map(|(_, f)| f.clone());
            table.placement().set_filling(filling.unwrap_or_default());
            let disc = places.disc.iter().find(|(n, _)| n == name).map(|(_, d)| d.clone());
            table.placement().set_disc(disc.unwrap_or_default(), me);
        }
        fills.any.store(!waiting.is_empty(), Ordering::Release);
        Ok(())
    }

    /// Empties the tables among `names` whose records are on other nodes only (a snapshot
    /// loaded skipped them: what they held before goes).
    pub(crate) fn empty_unheld<'a>(&self, names: impl Iterator<Item = &'a str>) -> Result<()> {
        for name in names {
            let table = self.any_table(name)?;
            let elsewhere =
                table.placement().holders().is_some_and(|h| !h.iter().any(|n| n == self.inner.config.node()));
            if elsewhere && table.info().size > 0 {
                Arc::clone(&table).change_whole(self, &WholeTable::Clear)?;
            }
        }
        Ok(())
    }

    /// Whether a copy here waits to be filled: the applying of a record may then wait for
    /// an image being loaded, a longer step than most (a cluster node applies records off
    /// its runtime's worker meanwhile).
    ///
    /// ```
    /// assert!(!mnesia::Database::in_memory()?.filling());
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn filling(&self) -> bool {
        self.inner.ordered.fills.any.load(Ordering::Acquire)
    }

    /// The records of the key `key` of table `table`, both encoded as commit records
    /// carry them (postcard): the answer to [`Sequencer::read_elsewhere`](crate::Sequencer::read_elsewhere) of a node without the table's
    /// records. [`Error::NotHere`] when this node holds none either.
    ///
    /// ```
    /// use mnesia::prelude::*;
    /// #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// struct Item { #[key] id: u32, n: u8 }
    /// let db = Database::in_memory()?;
    /// db.create_table::<Item>(TableOptions::new())?;
    /// db.scope(|| Item::write(Item { id: 1, n: 2 }))?;
    /// let found = db.read_encoded("item", &postcard::to_allocvec(&1u32).expect("key"))?;
    /// assert_eq!(found.len(), 1);
    /// assert!(db.read_encoded("item", &postcard::to_allocvec(&9u32).expect("key"))?.is_empty());
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn read_encoded(&self, table: &str, key: &[u8]) -> Result<Vec<Vec<u8>>> {
        self.any_table(table)?.read_encoded(key)
    }

    /// The tables this node holds whose copy waits for an image from a node holding one
    /// (it loaded a snapshot made by a node without their records, or was given a copy by
    /// [`Database::add_table_copy`]), each with the place of the shared order the image
    /// must be of, at least (where the wait began): a cluster node asks
    /// another for an image of each ([`Database::write_table_image`]) and gives it to
    /// [`Database::fill_table`]. (A table whose image came, of a later place, is not
    /// listed: it is loaded when this node reaches that place.) Meanwhile their reads
    /// outside a transaction are answered by a node holding them
    /// ([`Sequencer::read_elsewhere`](crate::Sequencer::read_elsewhere)), anything else on
    /// their records fails with [`Error::NotHere`], and `wait_for_tables` waits for them.
    ///
    /// ```
    /// assert!(mnesia::Database::in_memory()?.unfilled_tables().is_empty());
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn unfilled_tables(&self) -> Vec<(String, u64)> {
        let waiting = self.inner.ordered.fills.waiting.lock();
        waiting
            .iter()
            .filter(|(_, wait)| wait.image.is_none())
            .map(|(name, wait)| (name.clone(), wait.since))
            .collect()
    }

    /// Writes into `out` an image of table `table` at this node's place in the shared
    /// order (returned): its records, for a node whose copy waits to be filled
    /// ([`Database::fill_table`]). [`Error::NotHere`] when this node does not hold them.
    ///
    /// ```
    /// use mnesia::prelude::*;
    /// #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// struct Item { #[key] id: u32 }
    /// let db = Database::in_memory()?;
    /// db.create_table::<Item>(TableOptions::new())?;
    /// let mut image = Vec::new();
    /// assert_eq!(db.write_table_image("item", &mut image)?, 0);
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn write_table_image(&self, table: &str, out: &mut dyn Write) -> Result<u64> {
        self.any_table(table)?.placement().check(table)?;
        Ok(self.write_snapshot_of(out, BackupOptions::new().tables([table]))?.applied)
    }

    /// Fills this node's copy of a table waiting for it ([`Database::unfilled_tables`])
    /// from `image`, written by a node holding one ([`Database::write_table_image`]) at
    /// a place of the shared order. An image of this node's place or an earlier one (but
    /// not before the wait began) is loaded at once, and the table's changes this node
    /// skipped since the image's place are made again over it; one of a later place is
    /// kept and loaded when this node reaches it (an image kept already stays). Returns
    /// `false`, changing nothing, for an image of a place before the wait began (ask
    /// again: the other node is behind), or of a table that waits for none. An image
    /// written by a node without the table's records is refused.
    ///
    /// ```
    /// let db = mnesia::Database::in_memory()?;
    /// assert!(db.fill_table(b"not an image".to_vec()).is_err());
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn fill_table(&self, image: Vec<u8>) -> Result<bool> {
        if crate::tx::context::is_transaction() {
            return Err(Error::Invalid(
                "fill_table makes the writes after the image again in transactions of its own: call it outside one".into(),
            ));
        }
        let _no_apply = self.inner.ordered.applying.lock();
        let mut input = &image[..];
        let head = read_head(&mut input)?;
        let reader = BackupReader::new(std::path::Path::new("table image"), input, u64::MAX)?;
        let [table] = reader.tables() else {
            return Err(Error::Invalid("a table image holds one table".into()));
        };
        let name = table.def.name.clone();
        if head.places.unheld.contains(&name) {
            return Err(Error::Invalid(format!(
                "an image of table {name} written by a node without its records"
            )));
        }
        let at = head.applied;
        let mut waiting = self.inner.ordered.fills.waiting.lock();
        let Some(wait) = waiting.get_mut(&name) else { return Ok(false) };
        if at < wait.since {
            return Ok(false);
        }
        if wait.image.is_none() {
            wait.image = Some(Image { at, bytes: image });
        }
        drop(waiting);
        self.fill_due()?;
        Ok(true)
    }

    /// Notes, for the tables waiting to be filled, what `record`, committed at place
    /// `index`, did to them (the caller holds `applying`): their writes, made again over
    /// an image of an earlier place; a change as a whole makes the wait begin again
    /// (an image must be of a later place), but a change of where its copies are.
    pub(crate) fn note_skipped(&self, index: u64, record: &crate::engine::commit_record::CommitRecord) {
        let mut waiting = self.inner.ordered.fills.waiting.lock();
        if let Some((name, op)) = record.whole_table() {
            if matches!(op, WholeTable::Drop) || op.creates() {
                // (Another table from here on, if any.)
                waiting.remove(name);
            } else if op.changes_copies() {
                // (The records stay as they are; a change of this node's own copy begins
                // or ends its wait as it is applied.)
            } else if let Some(wait) = waiting.get_mut(name) {
                *wait = Wait::from(index);
            }
            return;
        }
        for change in &record.changes {
            let Some(wait) = waiting.get_mut(&change.table) else { continue };
            // (An image kept is of a later place: its records hold these writes.)
            if wait.image.is_some() {
                continue;
            }
            if wait.skipped.len() >= SKIPPED_AT_MOST {
                *wait = Wait::from(index);
                continue;
            }
            wait.skipped.push(Skipped { at: index, time: record.time, writes: change.writes.clone() });
        }
    }

    /// Loads each image kept for a table waiting to be filled that is of this node's
    /// place or an earlier one, and makes the table's skipped changes after it again (the
    /// caller holds the order's `applying`; called after each record applied while any
    /// table waits).
    pub(crate) fn fill_due(&self) -> Result<()> {
        let fills = &self.inner.ordered.fills;
        let applied = self.applied_index();
        // Taken out under the lock, loaded without it.
        let mut due = Vec::new();
        {
            let mut waiting = fills.waiting.lock();
            // (Dropped since: no wait.)
            waiting.retain(|name, _| self.any_table(name).is_ok());
            let ready: Vec<String> = waiting
                .iter()
                .filter(|(_, w)| w.image.as_ref().is_some_and(|i| i.at <= applied))
                .map(|(name, _)| name.clone())
                .collect();
            for name in ready {
                if let Some(wait) = waiting.remove(&name) {
                    due.push((name, wait));
                }
            }
            fills.any.store(!waiting.is_empty() || !due.is_empty(), Ordering::Release);
        }
        let mut outcome = Ok(());
        for (name, wait) in due {
            if let Err(e) = self.load_image(&name, wait) {
                tracing::warn!(table = %name, error = %e, "a table's image could not be loaded");
                outcome = Err(e);
            }
        }
        fills.any.store(!fills.waiting.lock().is_empty(), Ordering::Release);
        outcome
    }

    /// Clears table `name`, loads the records of `wait`'s image into it and makes the
    /// changes skipped after the image's place again; the copy holds them from then on. On
    /// failure the table waits again, from this node's place.
    fn load_image(&self, name: &str, wait: Wait) -> Result<()> {
        let Some(image) = wait.image else { return Ok(()) };
        let loaded = (|| {
            let mut bytes = &image.bytes[..];
            read_head(&mut bytes)?;
            let reader = BackupReader::new(std::path::Path::new("table image"), bytes, u64::MAX)?;
            let modes = RestoreOptions::new().all(RestoreMode::Skip).table(name, RestoreMode::ClearAndLoad);
            self.load_backup_here(reader, &modes, self.inner.schema.lock())?;
            // (The store in the table's place now: the load made a new one. Held once the
            // writes after the image are made again: until then only this thread, the
            // applier's, reads and writes it.)
            let table = self.any_table(name)?;
            let _applying = crate::engine::sequencer::Applying::enter(self.id());
            for skipped in wait.skipped.iter().filter(|s| s.at > image.at) {
                crate::tx::context::transact(self.clone(), || {
                    crate::tx::context::with_tx(|tx| {
                        tx.commit_at(skipped.time);
                        tx.part_of(&table)?.apply_change(&skipped.writes)
                    })
                })?;
            }
            table.placement().set_held(true);
            Ok(())
        })();
        if loaded.is_err() {
            if let Ok(table) = self.any_table(name) {
                table.placement().set_held(false);
            }
            self.inner.ordered.fills.waiting.lock().insert(name.to_owned(), Wait::from(self.applied_index()));
            self.inner.ordered.fills.any.store(true, Ordering::Release);
        }
        loaded
    }
}
