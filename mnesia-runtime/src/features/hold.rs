//! Tables held for a transaction with priority on another copy (see `base/priority.rs`).
//!
//! On a copy whose commits are ordered, a transaction that keeps losing to the other
//! copies' writers would lose on: its own copy's gates stop only its own copy's writers.
//! When it escalates, its sequencer asks the other copies to hold the tables it touched
//! ([`Sequencer::hold_elsewhere`](crate::Sequencer::hold_elsewhere)), and each closes them
//! to its writers with [`Database::hold_tables`] until told to open them or its patience
//! runs out. Best effort: a copy that does not answer holds nothing, and whatever is held,
//! the order alone decides every commit (a hold only delays writers before they propose).

use std::time::{Duration, Instant};

use crate::Database;
use crate::base::priority::Escalated;

/// Tables of a database closed to its writers on behalf of a transaction with priority on
/// another copy ([`Database::hold_tables`]); open again when dropped.
///
/// ```
/// # use mnesia::prelude::*;
/// # #[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
/// # struct User { #[key] id: u64 }
/// let db = Database::in_memory()?;
/// db.scope(|| User::create_table(TableOptions::new()))?;
/// let wait = std::time::Duration::from_millis(100);
/// let hold = db.hold_tables(&["user"], wait, wait);
/// assert!(hold.is_some());
/// drop(hold); // the table is open again
/// # Ok::<(), mnesia::Error>(())
/// ```
pub struct TableHold {
    _escalated: Escalated,
}

impl std::fmt::Debug for TableHold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableHold").finish_non_exhaustive()
    }
}

impl Database {
    /// Closes the tables named `tables` to this database's writers, for a transaction with
    /// priority on another copy of it: a commit writing to one of them waits (holding no
    /// lock) until the hold is dropped, but at most `patience` each time; the commits
    /// already past are drained first. Tables this database does not have are passed over.
    /// Waits at most `wait` for a transaction holding this database's priority; `None` if
    /// it still holds it then, or if the database has none of the tables. For sequencers
    /// (see [`Sequencer::hold_elsewhere`](crate::Sequencer::hold_elsewhere)).
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64 }
    /// let db = Database::in_memory()?;
    /// db.scope(|| User::create_table(TableOptions::new()))?;
    /// let ms = std::time::Duration::from_millis;
    /// let hold = db.hold_tables(&["user", "not_here"], ms(50), ms(100)).expect("held");
    /// assert!(db.hold_tables(&["not_here"], ms(50), ms(100)).is_none(), "nothing to hold");
    /// // Another thread's write waits up to 50 ms at the gate, then goes ahead.
    /// std::thread::scope(|s| s.spawn(|| db.scope(|| User::write(User { id: 1 }))).join())
    ///     .expect("thread")?;
    /// drop(hold);
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn hold_tables(&self, tables: &[&str], patience: Duration, wait: Duration) -> Option<TableHold> {
        let mut gates = Vec::new();
        for name in tables {
            if let Ok(table) = self.any_table(name) {
                crate::base::priority::merge(&mut gates, vec![table.gate()]);
            }
        }
        if gates.is_empty() {
            return None;
        }
        let deadline = Instant::now() + wait;
        let taken = self.priority().take_until(&gates, patience, Some(deadline));
        taken.map(|escalated| TableHold { _escalated: escalated })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::record::Record;
    use crate::testing::Rec;

    #[test]
    fn a_hold_waits_for_the_priority_at_most_as_told() {
        let db = Database::in_memory().expect("db");
        db.create_table::<Rec>(crate::TableOptions::new()).expect("table");
        let ms = Duration::from_millis;
        let first = db.hold_tables(&[Rec::NAME], ms(50), ms(10));
        assert!(first.is_some());
        let second =
            std::thread::scope(|s| s.spawn(|| db.hold_tables(&[Rec::NAME], ms(50), ms(10)).is_some()).join());
        assert!(!second.expect("thread"), "the priority is held by the first");
        drop(first);
        let third =
            std::thread::scope(|s| s.spawn(|| db.hold_tables(&[Rec::NAME], ms(50), ms(10)).is_some()).join());
        assert!(third.expect("thread"), "given back");
    }
}
