//! Copies of a table added and removed on a running cluster node (Mnesia's
//! `add_table_copy` and `del_table_copy`), for a table with copies on some nodes only: each
//! a record of the order, applied on every node at its place. A node given a copy waits
//! for the table's records from a node holding them (see `placed.rs`); a node whose copy
//! goes empties it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::engine::commit_record::{CommitRecord, WholeTable};
use crate::schema::record::StorageType;
use crate::{Database, Error, Record, Result};

impl Database {
    /// Adds a copy of table `T` on node `node` (a `Config::node_name`), kept as `storage`
    /// says (`RamCopies` or `DiscCopies`: see the README's "Cluster" section), on a running
    /// cluster node (Mnesia's `add_table_copy`): every node notes it at the change's place
    /// in the order, and `node` takes the table's records from a node holding them (an
    /// image of the table at a later place; meanwhile its reads outside a transaction are
    /// answered by another holder, see [`Database::unfilled_tables`]). Only for a table
    /// with copies on some nodes (`TableOptions::ram_copies([..])` or `disc_copies([..])`
    /// on a running node); one already on `node` is refused (`Error::Invalid`, alike on
    /// every node), and so is `DiscOnlyCopies`. Any node may ask.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct Item { #[key] id: u32 }
    /// let db = Database::in_memory()?;
    /// db.create_table::<Item>(TableOptions::new())?;
    /// // A database alone has no other node to put a copy on.
    /// assert!(db.add_table_copy::<Item>("other@host", StorageType::DiscCopies).is_err());
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn add_table_copy<T: Record>(&self, node: &str, storage: StorageType) -> Result<()> {
        let node = node.to_owned();
        let change = match on_disc(T::NAME, storage)? {
            false => WholeTable::AddCopy { node },
            true => WholeTable::AddDiscCopy { node },
        };
        self.order_copies::<T>(change)
    }

    /// Makes the copy of table `T` on node `node` `ram_copies` or `disc_copies` (what
    /// `change_table_copy_type` does for a table with copies on some nodes, on a running
    /// cluster node): a record of the order, so every node knows it.
    pub(crate) fn order_copy_type<T: Record>(&self, node: &str, to: StorageType) -> Result<()> {
        let disc = on_disc(T::NAME, to)?;
        self.order_copies::<T>(WholeTable::CopyType { node: node.to_owned(), disc })
    }

    /// Whether table `T`'s copies are chosen by the order (on a running cluster node, a
    /// table created there with a list of nodes): its changes of copies are ordered.
    pub(crate) fn copies_ordered<T: Record>(&self) -> Result<bool> {
        let table = self.table::<T>()?;
        Ok(self.sequencer().is_some() && !table.is_local() && table.place.holders().is_some())
    }

    /// Removes the copy of table `T` on node `node` (Mnesia's `del_table_copy`), on a
    /// running cluster node: `node` empties its copy at the change's place in the order,
    /// and its reads of the table outside a transaction are answered by a node holding it
    /// from then on. Refused (`Error::Invalid`, alike on every node) for the last copy, a
    /// node without one, or while every other copy was given by `add_table_copy` and is not
    /// filled yet (each node given one says so through the order once it is: see
    /// [`Database::confirm_filled_copies`]); only for a table with copies on some nodes.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct Item { #[key] id: u32 }
    /// let db = Database::in_memory()?;
    /// db.create_table::<Item>(TableOptions::new())?;
    /// assert!(db.del_table_copy::<Item>(&db.node()).is_err());
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn del_table_copy<T: Record>(&self, node: &str) -> Result<()> {
        self.order_copies::<T>(WholeTable::DelCopy { node: node.to_owned() })
    }

    /// Moves the copy of table `T` on node `from` to node `to` (Mnesia's
    /// `move_table_copy`): adds a copy on `to` of the storage type of `from`'s
    /// ([`Database::add_table_copy`]), waits until
    /// `to` has said that it is filled (`table_info().filling`), then removes the one on
    /// `from` ([`Database::del_table_copy`]). When `to` has not said so within `timeout`,
    /// both copies stay and the error says so (remove the one on `from` later).
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct Item { #[key] id: u32 }
    /// let db = Database::in_memory()?;
    /// db.create_table::<Item>(TableOptions::new())?;
    /// let moved = db.move_table_copy::<Item>(&db.node(), "other@host", std::time::Duration::from_secs(1));
    /// assert!(moved.is_err());
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn move_table_copy<T: Record>(
        &self,
        from: &str,
        to: &str,
        timeout: std::time::Duration,
    ) -> Result<()> {
        let storage = match self.table::<T>()?.place.disc().iter().any(|n| n == from) {
            true => StorageType::DiscCopies,
            false => StorageType::RamCopies,
        };
        self.add_table_copy::<T>(to, storage)?;
        let deadline = std::time::Instant::now() + timeout;
        while self.table_info::<T>()?.filling.iter().any(|n| n == to) {
            if std::time::Instant::now() >= deadline {
                return Err(Error::Invalid(format!(
                    "table {}: the copy added on node {to} was not filled within {timeout:?}; it stays, and so does the one on node {from}",
                    T::NAME
                )));
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        self.del_table_copy::<T>(from)
    }

    /// Tells the other nodes, through the order, that this node's copies given by
    /// `add_table_copy` are filled (a cluster node calls it every so often), so
    /// that the other copies may be removed; returns the tables told filled. It tells
    /// them too of this node's copies that wait to be filled without their knowing (this
    /// node loaded a snapshot without their records), so that the other copies are not
    /// all removed meanwhile. Each is a record of the order: call it outside a
    /// transaction. Each is ordered even when another fails; the first error is returned.
    ///
    /// ```
    /// assert!(mnesia::Database::in_memory()?.confirm_filled_copies()?.is_empty());
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn confirm_filled_copies(&self) -> Result<Vec<String>> {
        let me = self.inner.config.node();
        let Some(sequencer) = self.sequencer() else { return Ok(Vec::new()) };
        let (mut filled, mut waits) = (Vec::new(), Vec::new());
        for (name, table) in self.inner.tables.load().iter() {
            let place = table.placement();
            let given = place.filling().into_iter().find(|(n, _)| n == me).map(|(_, at)| at);
            match given {
                Some(given) if place.is_held() => filled.push((name.clone(), given)),
                None if place.waits_here(me) => waits.push(name.clone()),
                _ => {}
            }
        }
        // (Each told, whatever the others' fate: the first error is returned.)
        let mut outcome = Ok(());
        for name in &waits {
            let told = WholeTable::CopyWaits { node: me.to_owned() };
            let ordered = sequencer.order(CommitRecord::whole(name, told, self.applied_index()));
            outcome = outcome.and(ordered);
        }
        for (name, given) in &filled {
            let told = WholeTable::CopyFilled { node: me.to_owned(), given: *given };
            let ordered = sequencer.order(CommitRecord::whole(name, told, self.applied_index()));
            outcome = outcome.and(ordered);
        }
        outcome.map(|()| filled.into_iter().map(|(name, _)| name).collect())
    }

    /// Orders `change` (a change of table `T`'s copies: `AddCopy`, `AddDiscCopy`,
    /// `DelCopy`, `CopyType`) of table `T`.
    fn order_copies<T: Record>(&self, change: WholeTable) -> Result<()> {
        let table = self.table::<T>()?;
        let sequencer = self.sequencer().filter(|_| !table.is_local()).ok_or_else(|| {
            Error::Invalid(format!(
                "table {}: copies are added and removed on a node running in a cluster, for a table created there with a list of nodes",
                T::NAME
            ))
        })?;
        if table.place.holders().is_none() {
            return Err(on_every_node(T::NAME));
        }
        sequencer.order(CommitRecord::whole(T::NAME, change, self.applied_index()))
    }

    /// Makes, here, the change of table `name`'s copies that `change` orders (see
    /// `WholeTable::changes_copies`), at its place in the order (the caller holds
    /// `applying`): the same lists of nodes on every node, or the same refusal.
    pub(crate) fn change_copies_here(&self, name: &str, change: &WholeTable) -> Result<()> {
        let table = self.any_table(name)?;
        let place = table.placement();
        let Some(holders) = place.holders() else { return Err(on_every_node(name)) };
        let mut nodes = holders.to_vec();
        let mut filling = place.filling();
        let mut disc = place.disc();
        let (node, adding) = match change {
            WholeTable::AddCopy { node } => (node, true),
            WholeTable::AddDiscCopy { node } => {
                if !nodes.contains(node) {
                    disc.push(node.clone());
                }
                (node, true)
            }
            WholeTable::DelCopy { node } => {
                disc.retain(|n| n != node);
                (node, false)
            }
            WholeTable::CopyWaits { node } => {
                if nodes.contains(node) && !filling.iter().any(|(n, _)| n == node) {
                    filling.push((node.clone(), self.applied_index() + 1));
                }
                place.set_filling(filling);
                return Ok(());
            }
            WholeTable::CopyType { node, disc: to_disc } => {
                if !nodes.contains(node) {
                    return Err(Error::Invalid(format!("table {name} has no copy on node {node}")));
                }
                disc.retain(|n| n != node);
                if *to_disc {
                    disc.push(node.clone());
                }
                place.set_disc(disc, self.inner.config.node());
                return Ok(());
            }
            WholeTable::CopyFilled { node, given } => {
                // (Said again, or of a copy removed since: nothing more to note.)
                filling.retain(|(n, at)| !(n == node && at == given));
                place.set_filling(filling);
                return Ok(());
            }
            _ => return Err(Error::Internal("a change of copies was expected".into())),
        };
        let named = nodes.iter().any(|n| n == node);
        match (adding, named) {
            (true, true) => {
                return Err(Error::Invalid(format!("table {name} has a copy on node {node} already")));
            }
            (false, false) => return Err(Error::Invalid(format!("table {name} has no copy on node {node}"))),
            (false, true) if nodes.len() == 1 => {
                return Err(Error::Invalid(format!(
                    "table {name}: node {node} holds its last copy (drop the table instead)"
                )));
            }
            (false, true) if nodes.iter().all(|n| n == node || filling.iter().any(|(f, _)| f == n)) => {
                let names: Vec<&str> = filling.iter().map(|(f, _)| f.as_str()).collect();
                return Err(Error::Invalid(format!(
                    "table {name}: the copies other than node {node}'s are not filled yet ({}): remove it once they are",
                    names.join(", ")
                )));
            }
            (true, false) => {
                nodes.push(node.clone());
                filling.push((node.clone(), self.applied_index() + 1));
            }
            (false, true) => {
                nodes.retain(|n| n != node);
                filling.retain(|(n, _)| n != node);
            }
        }
        place.set_filling(filling);
        let me = self.inner.config.node();
        place.set_disc(disc, me);
        let fills = &self.inner.ordered.fills;
        if adding && node == me {
            // Its records come from a node holding them (this node skips the table's
            // changes until then).
            place.place_waiting(nodes);
            fills
                .waiting
                .lock()
                .insert(name.to_owned(), crate::engine::placement::Wait::from(self.applied_index() + 1));
            fills.any.store(true, Ordering::Release);
            return Ok(());
        }
        if node != me {
            // (This node's copy stays as it is: held, waiting, or none.)
            place.set_holders(nodes);
            return Ok(());
        }
        place.place(Some(nodes), me);
        let mut waiting = fills.waiting.lock();
        waiting.remove(name);
        fills.any.store(!waiting.is_empty(), Ordering::Release);
        drop(waiting);
        Arc::clone(&table).change_whole(self, &WholeTable::Clear)
    }
}

/// Whether a copy of `storage` of the cluster's table `table` is a disc copy; an error for
/// `disc_only_copies`, not there yet.
fn on_disc(table: &str, storage: StorageType) -> Result<bool> {
    match storage {
        StorageType::RamCopies => Ok(false),
        StorageType::DiscCopies => Ok(true),
        StorageType::DiscOnlyCopies => Err(Error::Invalid(format!(
            "table {table}: a cluster's table is ram_copies or disc_copies on each node (disc_only_copies is not there yet)"
        ))),
    }
}

/// The refusal of a change of copies of a table that every node holds.
fn on_every_node(table: &str) -> Error {
    Error::Invalid(format!(
        "table {table} is on every node: copies are added and removed for a table created on a running cluster node with a list of nodes"
    ))
}
