//! A running database's tables seen by tools that do not know their Rust types (the
//! observer, an admin endpoint): a page of records as JSON ([`Database::browse`]) and a
//! table's events as JSON ([`Database::subscribe_json`]).

use std::sync::Arc;

use serde_json::Value;

use crate::disk::format;
use crate::disk::record::Logged;
use crate::engine::browse_types::{Browse, JsonSubscription, Page};
use crate::schema::filter::{By, Cond, Filter, Op, Order, Test};
use crate::schema::record::TableType;

use crate::engine::meta::RecordMeta;
use crate::schema::stored::StoredRecord;
use crate::{Database, Error, Result};

/// The records of the table `meta` describes that `browse` asks for, read in one
/// transaction.
pub(crate) fn page<T: StoredRecord>(meta: &'static RecordMeta<T>, browse: &Browse) -> Result<Page> {
    let by_key = Order::new(
        meta.fields.get(meta.key_position).map_or("key", |f| f.name),
        meta.key_position,
        true,
        By::Key,
    );
    let contains = browse
        .contains
        .as_deref()
        .map(|text| contains_filter(meta, browse.field.as_deref(), text))
        .transpose()?;
    // (The table is claimed: it has a store.)
    let mut query = crate::tx::row_query::RowQuery::of(meta, crate::tx::claimed).order_by(by_key);
    if let Some(filter) = &contains {
        query = query.filter(filter.clone());
    }
    if let Some(after) = &browse.after {
        let key: T::Key = serde_json::from_value(after.clone())
            .map_err(|e| Error::Invalid(format!("{after} is not a key of table {}: {e}", meta.name)))?;
        query = query.after(&key);
    }
    let (found, more) = crate::tx::context::transaction(|| -> Result<(Vec<T>, bool)> {
        // One more than the page: whether another page follows.
        let mut found = query.clone().limit(browse.limit.saturating_add(1)).all()?;
        let mut more = found.len() > browse.limit;
        found.truncate(browse.limit);
        if more && meta.kind == TableType::Bag {
            // A key's records are never split between pages (the next page starts after
            // the key): the page ends with all of its last key's records.
            if let Some(last) = found.last().map(|r| r.key().clone()) {
                found.retain(|r| r.key() != &last);
                let rest = crate::tx::context::with_tx(|tx| {
                    Ok(tx.part_for(meta, crate::tx::claimed)?.read_group(&last))
                })?;
                found.extend(rest.into_iter().filter(|r| contains.as_ref().is_none_or(|f| f.matches(r))));
                more = query.clone().after(&last).first()?.is_some();
            }
        }
        Ok((found, more))
    })?;
    let json = |e| Error::codec(format!("table {}", meta.name), e);
    let next = match found.last() {
        Some(last) if more => Some(serde_json::to_value(last.key()).map_err(json)?),
        _ => None,
    };
    let records = found.iter().map(meta.to_json).collect::<std::result::Result<_, _>>().map_err(json)?;
    Ok(Page { records, next })
}

/// The page of a disc table no type has claimed: its recovered rows decoded through the
/// stored record format (as `mnesia dump` reads them), keys ordered by their JSON values.
fn unclaimed_page(p: &crate::disk::Pending, browse: &Browse) -> Result<Page> {
    let name = &p.def.name;
    if p.def.storage == crate::schema::record::StorageType::DiscOnlyCopies {
        return Err(Error::Invalid(format!(
            "table {name} is disc_only_copies and no record type has claimed it in this program yet"
        )));
    }
    let shape = p.def.record_format("to browse it before a record type claims it")?;
    let key_shape = shape.field(p.def.key_name())?;
    let mut keyed = Vec::with_capacity(p.rows.len());
    for (key, (_, value)) in &p.rows {
        let key = format::decode_as(key, key_shape, &shape)?;
        if browse.after.as_ref().is_none_or(|after| format::json_order(&key, after).is_gt()) {
            keyed.push((key, value));
        }
    }
    keyed.sort_by(|a, b| format::json_order(&a.0, &b.0));
    let mut records = Vec::new();
    let (mut next, mut last_key) = (None, None);
    for (key, value) in keyed {
        let stored: Vec<&[u8]> = match value {
            Logged::Put(r) => vec![r],
            Logged::Group(g) => g.iter().map(Vec::as_slice).collect(),
            Logged::Delete => Vec::new(),
        };
        let mut matching = Vec::new();
        for r in stored {
            let record = format::decode(r, &shape)?;
            if browse
                .contains
                .as_deref()
                .is_none_or(|text| json_contains(&record, browse.field.as_deref(), text))
            {
                matching.push(record);
            }
        }
        if matching.is_empty() {
            continue;
        }
        if records.len() >= browse.limit {
            // Another key follows: the page ends at the last one taken.
            next = last_key;
            break;
        }
        records.extend(matching);
        last_key = Some(key);
    }
    Ok(Page { records, next })
}

/// A filter passing the records whose JSON contains `text` (in `field`, if given).
fn contains_filter<T: StoredRecord>(
    meta: &RecordMeta<T>,
    field: Option<&str>,
    text: &str,
) -> Result<Filter<T>> {
    let (name, position) = match field {
        Some(f) => meta
            .fields
            .iter()
            .enumerate()
            .find(|(_, d)| d.name == f)
            .map(|(i, d)| (d.name, i))
            .ok_or_else(|| Error::Invalid(format!("table {} has no field {f}", meta.name)))?,
        None => ("record", usize::MAX),
    };
    let field = field.map(str::to_owned);
    let text = text.to_owned();
    let to_json = meta.to_json;
    Ok(Filter::from_cond(Cond {
        field: name,
        position,
        op: Op::Contains,
        values: Vec::new(),
        test: Test::Record(Arc::new(move |r: &dyn std::any::Any| {
            r.downcast_ref::<T>()
                .is_some_and(|r| to_json(r).is_ok_and(|v| json_contains(&v, field.as_deref(), &text)))
        })),
    }))
}

/// Whether `record` (or its `field`) contains `text` as [`Browse::contains`] says.
fn json_contains(record: &Value, field: Option<&str>, text: &str) -> bool {
    let value = match field {
        Some(f) => match record.get(f) {
            Some(v) => v,
            None => return false,
        },
        None => record,
    };
    match value {
        Value::String(s) => s.contains(text),
        other => other.to_string().contains(text),
    }
}

impl Database {
    /// A page of a table's records as JSON, in key order, for tools that do not know its
    /// Rust type: those after [`Browse::after`]'s key (a `Page::next`), at most its limit,
    /// filtered by [`Browse::contains`]. Read in a transaction of its own. A disc table no
    /// record type has claimed yet in this program is read through its stored record
    /// format, as `mnesia dump` reads it (keys other than numbers and strings ordered by
    /// their JSON text). An `ordered_set`
    /// is read from the key on, until the page is full; a `set` or `bag` is read whole for
    /// each page, keeping only twice the page's records.
    ///
    /// ```
    /// use mnesia::prelude::*;
    ///
    /// #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// struct User { #[key] id: u32, name: String }
    ///
    /// let db = Database::in_memory()?;
    /// db.create_table::<User>(TableOptions::new())?;
    /// db.scope(|| User::batch_write((0..5).map(|id| User { id, name: format!("user {id}") })))?;
    /// let first = db.browse("user", &mnesia::Browse::new().limit(3))?;
    /// assert_eq!(first.records.len(), 3);
    /// let rest = db.browse("user", &mnesia::Browse::new().limit(3).after(first.next.unwrap()))?;
    /// assert_eq!((rest.records.len(), rest.next), (2, None));
    /// let fours = db.browse("user", &mnesia::Browse::new().field("name").contains("4"))?;
    /// assert_eq!(fours.records[0]["id"], 4);
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn browse(&self, table: &str, browse: &Browse) -> Result<Page> {
        // A disc table no record type has claimed yet: its recovered rows, decoded through
        // the stored record format.
        if let Some(disk) = self.disk()
            && !self.inner.tables.load().contains_key(table)
            && let Some(p) = disk.pending.lock().get(table)
        {
            return unclaimed_page(p, browse);
        }
        let store = self.any_table(table)?;
        self.scope(|| store.browse(browse))
    }

    /// Subscribes to a table's events as JSON (see [`JsonSubscription`]).
    ///
    /// ```
    /// let db = mnesia::Database::in_memory()?;
    /// assert!(matches!(db.subscribe_json("nothing"), Err(mnesia::Error::NoSuchTable { .. })));
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn subscribe_json(&self, table: &str) -> Result<JsonSubscription> {
        Ok(self.any_table(table)?.subscribe_json(self.config().events_buffered()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn contains_looks_in_strings_and_in_the_json_of_other_values() {
        let r = json!({ "name": "Ann \"A\"", "age": 42, "tags": ["x", "y"] });
        assert!(json_contains(&r, Some("name"), "Ann \"A"));
        assert!(json_contains(&r, Some("age"), "42"));
        assert!(json_contains(&r, Some("tags"), "\"y\""));
        assert!(!json_contains(&r, Some("name"), "42"));
        assert!(!json_contains(&r, Some("missing"), ""));
        assert!(json_contains(&r, None, "42"));
    }
}
