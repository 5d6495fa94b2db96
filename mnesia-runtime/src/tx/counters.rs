//! Named counters (MnesiaEx's counters, Mnesia's `dirty_update_counter`), kept in a table of
//! their own: `mnesia_counters`, in memory or on disc like the database.

use serde::{Deserialize, Serialize};

use crate::db::Database;
use crate::error::{Error, Result};
use crate::schema::index_spec::IndexSpec;
use crate::schema::options::TableOptions;
use crate::schema::record::{FieldInfo, Record, TableType};
use crate::tx::context::{self, run_tx};
use crate::tx::ops;

/// One named counter: the last value it handed out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct NamedCounter {
    name: String,
    value: i64,
}

/// The table named counters live in.
pub(crate) const COUNTERS_TABLE: &str = "mnesia_counters";

impl Record for NamedCounter {
    type Key = String;
    const NAME: &'static str = COUNTERS_TABLE;
    const TYPE: TableType = TableType::Set;
    const FIELDS: &'static [FieldInfo] =
        &[FieldInfo { name: "name", ty: "String" }, FieldInfo { name: "value", ty: "i64" }];
    const KEY_POSITION: usize = 0;
    const AUTO_INCREMENT: bool = false;

    fn key(&self) -> &String {
        &self.name
    }

    fn indexes() -> Vec<IndexSpec<Self>> {
        Vec::new()
    }
}

/// Creates the counters table on first use: on disc when the database has a directory.
pub(crate) fn ensure(db: &Database) -> Result<()> {
    if db.exists::<NamedCounter>() {
        return Ok(());
    }
    // (On an ordered copy in memory: the order keeps it, as every table it orders.)
    let options = match db.disk() {
        Some(_) if !db.ordering() => TableOptions::new().disc_copies([db.node()]),
        _ => TableOptions::new(),
    };
    match db.create_table_here::<NamedCounter>(options) {
        Ok(()) | Err(Error::TableExists { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

fn add(name: &str, incr: i64) -> impl FnMut(&mut crate::tx::Tx) -> Result<i64> + '_ {
    add_if(name, incr, |_| true)
}

/// Adds `incr` to the counter if the new value passes `valid` (else an error, and nothing
/// written).
fn add_if<'a>(
    name: &'a str,
    incr: i64,
    valid: impl Fn(i64) -> bool + 'a,
) -> impl FnMut(&mut crate::tx::Tx) -> Result<i64> + 'a {
    move |tx| {
        let part = tx.table::<NamedCounter>()?;
        let key = name.to_owned();
        let current = match part.read_one_with(&key, |c| c.typed::<NamedCounter>().map(|c| c.value)) {
            Some(Some(value)) => value,
            None => 0,
            Some(None) => return Err(Error::Internal("the counters' table holds another type".into())),
        };
        let value =
            current.checked_add(incr).ok_or_else(|| Error::Exhausted { what: format!("counter {name}") })?;
        if !valid(value) {
            return Err(Error::Invalid(format!(
                "counter {name} is at {current}: next_id hands out ids from 1 (reset_counter sets the next one)"
            )));
        }
        part.put(crate::schema::row::Row::new(NamedCounter { name: key, value }))?;
        Ok(value)
    }
}

/// The next value of a named counter (1 for a new one). Inside a transaction it is part of
/// it: an abort takes the value back, and concurrent transactions on one counter are
/// serialized (retried) like any other write.
///
/// ```
/// let db = mnesia::Database::in_memory()?;
/// db.scope(|| -> mnesia::Result<()> {
///     assert_eq!(mnesia::next_id("orders")?, 1);
///     assert_eq!(mnesia::next_id("orders")?, 2);
///     assert_eq!(mnesia::next_id("invoices")?, 1);
///     Ok(())
/// })?;
/// # Ok::<(), mnesia::Error>(())
/// ```
pub fn next_id(name: &str) -> Result<u64> {
    ensure(&context::current_db()?)?;
    // Refused before anything is written: a counter set below zero (`dirty_update_counter`)
    // hands out no id (not even 0, which no id is), and stays as it is.
    let mut step = add_if(name, 1, |value| value >= 1);
    let value = run_tx(&mut step)?;
    u64::try_from(value).map_err(|_| Error::Invalid(format!("counter {name} is negative")))
}

/// The last value a named counter handed out (0 when it does not exist).
///
/// ```
/// let db = mnesia::Database::in_memory()?;
/// db.scope(|| -> mnesia::Result<()> {
///     assert_eq!(mnesia::current_value("orders")?, 0);
///     mnesia::next_id("orders")?;
///     assert_eq!(mnesia::current_value("orders")?, 1);
///     Ok(())
/// })?;
/// # Ok::<(), mnesia::Error>(())
/// ```
pub fn current_value(name: &str) -> Result<i64> {
    ensure(&context::current_db()?)?;
    Ok(ops::read::<NamedCounter>(&name.to_owned())?.map_or(0, |c| c.value))
}

/// Whether a named counter exists.
///
/// ```
/// let db = mnesia::Database::in_memory()?;
/// db.scope(|| -> mnesia::Result<()> {
///     assert!(!mnesia::has_counter("orders")?);
///     mnesia::next_id("orders")?;
///     assert!(mnesia::has_counter("orders")?);
///     Ok(())
/// })?;
/// # Ok::<(), mnesia::Error>(())
/// ```
pub fn has_counter(name: &str) -> Result<bool> {
    ensure(&context::current_db()?)?;
    Ok(ops::read::<NamedCounter>(&name.to_owned())?.is_some())
}

/// Makes `next` the next value `next_id` hands out (at least 1).
///
/// ```
/// let db = mnesia::Database::in_memory()?;
/// db.scope(|| -> mnesia::Result<()> {
///     mnesia::reset_counter("orders", 100)?;
///     assert_eq!(mnesia::next_id("orders")?, 100);
///     assert!(mnesia::reset_counter("orders", 0).is_err());
///     Ok(())
/// })?;
/// # Ok::<(), mnesia::Error>(())
/// ```
pub fn reset_counter(name: &str, next: u64) -> Result<()> {
    if next == 0 {
        return Err(Error::Invalid(format!("counter {name}: the next value must be at least 1")));
    }
    // The next value itself must be one the counter can hold.
    let value = i64::try_from(next)
        .map(|next| next - 1)
        .map_err(|_| Error::Invalid(format!("counter {name}: {next} is too large")))?;
    ensure(&context::current_db()?)?;
    ops::write(NamedCounter { name: name.to_owned(), value }).map(|_| ())
}

/// Adds `incr` (which may be negative) to a named counter and returns the new value, at
/// once and atomically, outside any transaction (Mnesia's `dirty_update_counter`): it is
/// kept even if a surrounding transaction aborts, and concurrent updates never lose one.
///
/// ```
/// let db = mnesia::Database::in_memory()?;
/// db.scope(|| -> mnesia::Result<()> {
///     assert_eq!(mnesia::dirty_update_counter("hits", 5)?, 5);
///     assert_eq!(mnesia::dirty_update_counter("hits", -2)?, 3);
///     Ok(())
/// })?;
/// # Ok::<(), mnesia::Error>(())
/// ```
pub fn dirty_update_counter(name: &str, incr: i64) -> Result<i64> {
    ensure(&context::current_db()?)?;
    ops::dirty(add(name, incr))
}
