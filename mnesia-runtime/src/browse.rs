//! A running database's tables seen by tools that do not know their Rust types (the
//! observer, an admin endpoint): a page of records as JSON ([`Database::browse`]) and a
//! table's events as JSON ([`Database::subscribe_json`]).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::disk::format;
use crate::disk::record::Logged;
use crate::events::{DeleteCause, Event, Subscription};
use crate::filter::{Cond, Filter, Op, Order};
use crate::record::TableType;
use crate::table::Table as _;
use crate::{Database, Error, Record, Result};

/// Which records of a table [`Database::browse`] returns: those after a key, in key order,
/// at most `limit` (100 by default), optionally only those whose JSON contains a text
/// (in one field, or anywhere).
///
/// ```
/// let page = mnesia::Browse::new().limit(20).field("name").contains("Ann");
/// assert_eq!(page.page_size(), 20);
/// ```
#[derive(Clone, Debug)]
pub struct Browse {
    after: Option<Value>,
    limit: usize,
    field: Option<String>,
    contains: Option<String>,
}

impl Default for Browse {
    fn default() -> Self {
        Browse { after: None, limit: 100, field: None, contains: None }
    }
}

impl Browse {
    /// The first page of 100 records, unfiltered.
    ///
    /// ```
    /// assert_eq!(mnesia::Browse::new().page_size(), 100);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts after this key, given as JSON as the page's `next` gives it.
    ///
    /// ```
    /// let next = mnesia::Browse::new().after(serde_json::json!(42));
    /// # let _ = next;
    /// ```
    pub fn after(mut self, key: Value) -> Self {
        self.after = Some(key);
        self
    }

    /// At most `n` records (at least 1).
    ///
    /// ```
    /// assert_eq!(mnesia::Browse::new().limit(0).page_size(), 1);
    /// ```
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = n.max(1);
        self
    }

    /// The records asked for per page.
    ///
    /// ```
    /// assert_eq!(mnesia::Browse::new().limit(5).page_size(), 5);
    /// ```
    pub fn page_size(&self) -> usize {
        self.limit
    }

    /// Looks for [`Browse::contains`]'s text in this field only (alone, it filters nothing).
    ///
    /// ```
    /// let only_names = mnesia::Browse::new().field("name").contains("a");
    /// # let _ = only_names;
    /// ```
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// Only records whose JSON contains `text`: a string field's text, any other value's
    /// JSON (`42`, `true`, `{"a":1}`); the whole record's JSON without [`Browse::field`].
    ///
    /// ```
    /// let with_x = mnesia::Browse::new().contains("x");
    /// # let _ = with_x;
    /// ```
    pub fn contains(mut self, text: impl Into<String>) -> Self {
        self.contains = Some(text.into());
        self
    }
}

/// A page of records from [`Database::browse`], as JSON in key order.
///
/// ```
/// let page = mnesia::Page::default();
/// assert!(page.records.is_empty() && page.next.is_none());
/// ```
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct Page {
    /// The records, as the table's export writes them.
    pub records: Vec<Value>,
    /// The key to pass to [`Browse::after`] for the next page; `None` on the last. (A
    /// `bag`'s page ends with all of its last key's records, so it may hold more than the
    /// limit.)
    pub next: Option<Value>,
}

/// The records of `T` that `browse` asks for, read in one transaction.
pub(crate) fn page<T: Record>(browse: &Browse) -> Result<Page> {
    let by_key = Order::new(
        T::FIELDS.get(T::KEY_POSITION).map_or("key", |f| f.name),
        T::KEY_POSITION,
        true,
        Arc::new(|a: &T, b: &T| a.key().cmp(b.key())),
    );
    let contains = browse
        .contains
        .as_deref()
        .map(|text| contains_filter::<T>(browse.field.as_deref(), text))
        .transpose()?;
    let mut query = T::query().order_by(by_key);
    if let Some(filter) = &contains {
        query = query.filter(filter.clone());
    }
    if let Some(after) = &browse.after {
        let key: T::Key = serde_json::from_value(after.clone())
            .map_err(|e| Error::Invalid(format!("{after} is not a key of table {}: {e}", T::NAME)))?;
        query = query.after(&key);
    }
    let (found, more) = crate::context::transaction(|| -> Result<(Vec<T>, bool)> {
        // One more than the page: whether another page follows.
        let mut found = query.clone().limit(browse.limit.saturating_add(1)).all()?;
        let mut more = found.len() > browse.limit;
        found.truncate(browse.limit);
        if more && T::TYPE == TableType::Bag {
            // A key's records are never split between pages (the next page starts after
            // the key): the page ends with all of its last key's records.
            if let Some(last) = found.last().map(|r| r.key().clone()) {
                found.retain(|r| r.key() != &last);
                let rest = T::read_all(&last)?;
                found.extend(rest.into_iter().filter(|r| contains.as_ref().is_none_or(|f| f.matches(r))));
                more = query.clone().after(&last).first()?.is_some();
            }
        }
        Ok((found, more))
    })?;
    let json = |e| Error::codec(format!("table {}", T::NAME), e);
    let next = match found.last() {
        Some(last) if more => Some(serde_json::to_value(last.key()).map_err(json)?),
        _ => None,
    };
    let records =
        found.iter().map(serde_json::to_value).collect::<std::result::Result<_, _>>().map_err(json)?;
    Ok(Page { records, next })
}

/// The page of a disc table no type has claimed: its recovered rows decoded through the
/// stored record format (as `mnesia dump` reads them), keys ordered by their JSON values.
fn unclaimed_page(p: &crate::disk::Pending, browse: &Browse) -> Result<Page> {
    let name = &p.def.name;
    if p.def.storage == crate::record::StorageType::DiscOnlyCopies {
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
fn contains_filter<T: Record>(field: Option<&str>, text: &str) -> Result<Filter<T>> {
    let (name, position) = match field {
        Some(f) => T::FIELDS
            .iter()
            .enumerate()
            .find(|(_, d)| d.name == f)
            .map(|(i, d)| (d.name, i))
            .ok_or_else(|| Error::Invalid(format!("table {} has no field {f}", T::NAME)))?,
        None => ("record", usize::MAX),
    };
    let field = field.map(str::to_owned);
    let text = text.to_owned();
    Ok(Filter::from_cond(Cond {
        field: name,
        position,
        op: Op::Contains,
        values: Vec::new(),
        test: Arc::new(move |r: &T| {
            serde_json::to_value(r).is_ok_and(|v| json_contains(&v, field.as_deref(), &text))
        }),
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

/// A table's events as JSON objects, from [`Database::subscribe_json`]: `{"event":
/// "write", "record": ..}`, `{"event": "delete", "key": .., "cause": "explicit" |
/// "expired"}`, `{"event": "cleared"}`, `{"event": "dropped"}` and `{"event": "lagged",
/// "missed": n}`. As with a typed subscription, the table commits one transaction at a
/// time while it is subscribed to; dropping it unsubscribes.
///
/// ```
/// use mnesia::prelude::*;
///
/// #[derive(Table, Clone, Debug, Serialize, Deserialize)]
/// struct Item { #[key] id: u32 }
///
/// let db = Database::in_memory()?;
/// db.create_table::<Item>(TableOptions::new())?;
/// let events = db.subscribe_json("item")?;
/// db.scope(|| Item::write(Item { id: 7 }))?;
/// let event = events.try_recv().expect("an event");
/// assert_eq!(event["event"], "write");
/// assert_eq!(event["record"]["id"], 7);
/// # Ok::<(), mnesia::Error>(())
/// ```
pub struct JsonSubscription {
    table: String,
    source: Box<dyn JsonSource>,
}

impl fmt::Debug for JsonSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonSubscription").field("table", &self.table).finish_non_exhaustive()
    }
}

impl JsonSubscription {
    pub(crate) fn new<T: Record>(events: Subscription<T>) -> Self {
        JsonSubscription { table: T::NAME.to_owned(), source: Box::new(events) }
    }

    /// The next event, waiting at most `timeout`.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct Item { #[key] id: u32 }
    /// # let db = Database::in_memory()?;
    /// # db.create_table::<Item>(TableOptions::new())?;
    /// let events = db.subscribe_json("item")?;
    /// assert!(events.recv_timeout(std::time::Duration::from_millis(1)).is_none());
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Value> {
        self.source.next(Some(timeout))
    }

    /// The next event if one is waiting.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct Item { #[key] id: u32 }
    /// # let db = Database::in_memory()?;
    /// # db.create_table::<Item>(TableOptions::new())?;
    /// let events = db.subscribe_json("item")?;
    /// assert!(events.try_recv().is_none());
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn try_recv(&self) -> Option<Value> {
        self.source.next(None)
    }

    /// The table subscribed to.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct Item { #[key] id: u32 }
    /// # let db = Database::in_memory()?;
    /// # db.create_table::<Item>(TableOptions::new())?;
    /// assert_eq!(db.subscribe_json("item")?.table(), "item");
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn table(&self) -> &str {
        &self.table
    }
}

/// With the `tokio` feature, a JSON subscription is also a stream of events (for any
/// executor).
///
/// ```ignore
/// use futures_util::StreamExt;
/// let mut events = db.subscribe_json("user")?;
/// while let Some(event) = events.next().await { .. }
/// ```
#[cfg(feature = "tokio")]
impl futures_core::Stream for JsonSubscription {
    type Item = Value;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Value>> {
        self.source.poll(cx)
    }
}

/// A typed subscription read as JSON.
trait JsonSource: Send + Sync {
    fn next(&self, timeout: Option<Duration>) -> Option<Value>;

    #[cfg(feature = "tokio")]
    fn poll(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Value>>;
}

impl<T: Record> JsonSource for Subscription<T> {
    fn next(&self, timeout: Option<Duration>) -> Option<Value> {
        let event = match timeout {
            Some(t) => self.recv_timeout(t),
            None => self.try_recv(),
        };
        event.map(event_json)
    }

    #[cfg(feature = "tokio")]
    fn poll(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Value>> {
        self.poll_event(cx).map(|e| e.map(event_json))
    }
}

/// An event as JSON (a record that JSON cannot hold becomes the error, in words).
fn event_json<T: Record>(event: Event<T>) -> Value {
    fn value(v: impl serde::Serialize) -> Value {
        serde_json::to_value(v).unwrap_or_else(|e| Value::String(format!("not representable in JSON: {e}")))
    }
    match event {
        Event::Write { new, old } => {
            let mut e = json!({ "event": "write", "record": value(&new) });
            if let Some(old) = old {
                e["old"] = value(&old);
            }
            e
        }
        Event::Delete { key, old, cause } => {
            let cause = match cause {
                DeleteCause::Expired => "expired",
                _ => "explicit",
            };
            let mut e = json!({ "event": "delete", "key": value(&key), "cause": cause });
            if let Some(old) = old {
                e["old"] = value(&old);
            }
            e
        }
        Event::Cleared => json!({ "event": "cleared" }),
        Event::Dropped => json!({ "event": "dropped" }),
        Event::Lagged { missed } => json!({ "event": "lagged", "missed": missed }),
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
