//! Where a table's copies are: on every node of a cluster, on this node alone
//! (`TableOptions::local_content`), or on the nodes its creation named.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::{Error, Result};

/// A table's placement, kept by its store and carried to every store that takes its place
/// (set before a store is published, or under the applying of the order).
#[derive(Debug)]
pub(crate) struct Placement {
    /// The table is this node's own (`TableOptions::local_content`): with ordered
    /// commits, its commits are not ordered.
    local: AtomicBool,
    /// The nodes holding a copy, by name (`None`: every node).
    holders: arc_swap::ArcSwapOption<Vec<String>>,
    /// This node holds the table's records. `false` on a node its placement leaves out
    /// (it keeps the table's registration, applies none of its changes and refuses its
    /// reads), and on a holder whose copy waits to be filled from another holder.
    held: AtomicBool,
    /// The nodes given a copy (`add_table_copy`) that have not said, through the order,
    /// that it is filled, each with the place of the order that gave it: the same list on
    /// every node, so that a copy given by `add_table_copy` is not counted on before it
    /// is filled.
    filling: parking_lot::Mutex<Vec<(String, u64)>>,
    /// Of the holders, those whose copy is `disc_copies` (the others' are `ram_copies`).
    disc: parking_lot::Mutex<Vec<String>>,
    /// This node is among `disc`.
    disc_here: AtomicBool,
}

impl Default for Placement {
    fn default() -> Self {
        Placement {
            local: AtomicBool::new(false),
            holders: arc_swap::ArcSwapOption::empty(),
            held: AtomicBool::new(true),
            filling: parking_lot::Mutex::new(Vec::new()),
            disc: parking_lot::Mutex::new(Vec::new()),
            disc_here: AtomicBool::new(false),
        }
    }
}

impl Placement {
    /// Whether the table is this node's own.
    pub(crate) fn is_local(&self) -> bool {
        self.local.load(Ordering::Relaxed)
    }

    /// Makes the table this node's own, or not.
    pub(crate) fn set_local(&self, local: bool) {
        self.local.store(local, Ordering::Relaxed);
    }

    /// The nodes holding a copy (`None`: every node).
    pub(crate) fn holders(&self) -> Option<Arc<Vec<String>>> {
        self.holders.load_full()
    }

    /// Places the table on `holders` (`None`: every node), held here when `me` is one.
    pub(crate) fn place(&self, holders: Option<Vec<String>>, me: &str) {
        let here = holders.as_ref().is_none_or(|h| h.iter().any(|n| n == me));
        self.holders.store(holders.map(Arc::new));
        self.held.store(here, Ordering::Release);
    }

    /// Changes the nodes holding a copy to `holders`, this node's copy staying as it is
    /// (held, waiting to be filled, or none).
    pub(crate) fn set_holders(&self, holders: Vec<String>) {
        self.holders.store(Some(Arc::new(holders)));
    }

    /// Places the table on `holders`, this node among them, its copy here waiting to be
    /// filled (not held meanwhile).
    pub(crate) fn place_waiting(&self, holders: Vec<String>) {
        self.held.store(false, Ordering::Release);
        self.holders.store(Some(Arc::new(holders)));
    }

    /// The nodes given a copy not filled yet, as far as the order knows, each with the
    /// place that gave it.
    pub(crate) fn filling(&self) -> Vec<(String, u64)> {
        self.filling.lock().clone()
    }

    /// Sets the nodes given a copy not filled yet.
    pub(crate) fn set_filling(&self, nodes: Vec<(String, u64)>) {
        *self.filling.lock() = nodes;
    }

    /// The holders whose copy is `disc_copies`.
    pub(crate) fn disc(&self) -> Vec<String> {
        self.disc.lock().clone()
    }

    /// Whether this node's copy is `disc_copies`.
    pub(crate) fn is_disc_here(&self) -> bool {
        self.disc_here.load(Ordering::Relaxed)
    }

    /// Sets the holders whose copy is `disc_copies` (`me`: this node's name).
    pub(crate) fn set_disc(&self, disc: Vec<String>, me: &str) {
        self.disc_here.store(disc.iter().any(|n| n == me), Ordering::Relaxed);
        *self.disc.lock() = disc;
    }

    /// Whether this node (`me`) is one the table's copies are on and its copy does not
    /// hold the records yet (it waits to be filled, or is being filled).
    pub(crate) fn waits_here(&self, me: &str) -> bool {
        !self.is_held() && self.holders().is_some_and(|h| h.iter().any(|n| n == me))
    }

    /// Whether this node's copy holds the table's records.
    #[inline]
    pub(crate) fn is_held(&self) -> bool {
        self.held.load(Ordering::Acquire)
    }

    /// Marks this node's copy as holding the records (filled), or not (waiting to be).
    pub(crate) fn set_held(&self, held: bool) {
        self.held.store(held, Ordering::Release);
    }

    /// Takes `other`'s placement (a store taking the place of `other`'s).
    pub(crate) fn copy_from(&self, other: &Placement) {
        self.set_local(other.is_local());
        self.holders.store(other.holders());
        self.set_filling(other.filling());
        *self.disc.lock() = other.disc();
        self.disc_here.store(other.is_disc_here(), Ordering::Relaxed);
        self.set_held(other.is_held());
    }

    /// `Ok` when table `table`'s records can be read and written here; else
    /// [`Error::NotHere`], naming the nodes that hold them.
    #[inline]
    pub(crate) fn check(&self, table: &str) -> Result<()> {
        if self.is_held() {
            return Ok(());
        }
        Err(self.not_here(table))
    }

    /// [`Error::NotHere`] for table `table`.
    #[cold]
    pub(crate) fn not_here(&self, table: &str) -> Error {
        Error::NotHere {
            table: table.to_owned(),
            nodes: self.holders().map(|h| h.to_vec()).unwrap_or_default(),
        }
    }
}

/// Tables this node holds whose copy waits to be filled from a node holding one (this
/// node loaded a snapshot made by a node without their records, or was given a copy).
#[derive(Debug, Default)]
pub(crate) struct Fills {
    /// By table name (changed while the order's applying is held).
    pub(crate) waiting: parking_lot::Mutex<std::collections::BTreeMap<String, Wait>>,
    /// `waiting` is not empty (checked after each record applied without the lock).
    pub(crate) any: AtomicBool,
}

/// A copy's wait to be filled.
#[derive(Debug)]
pub(crate) struct Wait {
    /// The earliest place of the order an image can be of (where the wait began, or the
    /// table's last change as a whole since).
    pub(crate) since: u64,
    /// An image of a later place than this node's, kept until it reaches it.
    pub(crate) image: Option<Image>,
    /// The table's changes of committed records since `since` (skipped here): made again
    /// over an image of an earlier place than this node's.
    pub(crate) skipped: Vec<Skipped>,
}

impl Wait {
    /// A wait beginning at place `since`.
    pub(crate) fn from(since: u64) -> Wait {
        Wait { since, image: None, skipped: Vec::new() }
    }
}

/// A table's writes in a committed record this node skipped while its copy waited.
#[derive(Debug)]
pub(crate) struct Skipped {
    /// The record's place.
    pub(crate) at: u64,
    /// The record's commit time.
    pub(crate) time: std::time::SystemTime,
    /// The writes.
    pub(crate) writes: Vec<crate::engine::commit_record::KeyChange>,
}

/// How many skipped changes a wait keeps at most: past it, it begins again (an image
/// must then be of a later place).
pub(crate) const SKIPPED_AT_MOST: usize = 100_000;

/// A table's records at a place of the order (an ordered snapshot of that table alone).
#[derive(Debug)]
pub(crate) struct Image {
    /// The place.
    pub(crate) at: u64,
    /// The snapshot's bytes.
    pub(crate) bytes: Vec<u8>,
}

/// The refusal of a unique index on a table with copies on some nodes only: the nodes
/// without a copy could not decide, as the others do, whether a value is taken.
pub(crate) fn no_unique(table: &str) -> Error {
    Error::Invalid(format!(
        "table {table}: a table with copies on some nodes only has no unique index (the nodes without a copy could not tell whether a value is taken)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_holds_a_table_placed_on_it_or_on_every_node() {
        let p = Placement::default();
        assert!(p.is_held() && p.check("t").is_ok() && p.holders().is_none());
        p.place(Some(vec!["a".to_owned(), "b".to_owned()]), "c");
        assert!(!p.is_held());
        match p.check("t") {
            Err(Error::NotHere { table, nodes }) => {
                assert_eq!((table.as_str(), nodes), ("t", vec!["a".into(), "b".into()]))
            }
            other => panic!("{other:?}"),
        }
        let q = Placement::default();
        q.copy_from(&p);
        assert!(!q.is_held() && q.holders().is_some_and(|h| h.len() == 2));
        p.place(None, "c");
        assert!(p.is_held());
    }
}
