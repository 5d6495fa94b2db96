//! What browsing a table takes and gives ([`Browse`], [`Page`]) and its events as JSON
//! ([`JsonSubscription`]): the types the table registry's browse hooks use.

use std::fmt;
use std::time::Duration;

use serde_json::{Value, json};

use crate::base::broadcast::Reader;
use crate::engine::events::{DeleteCause, Event};
use crate::schema::stored::StoredRecord;

/// Which records of a table [`Database::browse`](crate::Database::browse) returns: those after a key, in key order,
/// at most `limit` (100 by default), optionally only those whose JSON contains a text
/// (in one field, or anywhere).
///
/// ```
/// let page = mnesia::Browse::new().limit(20).field("name").contains("Ann");
/// assert_eq!(page.page_size(), 20);
/// ```
#[derive(Clone, Debug)]
pub struct Browse {
    pub(crate) after: Option<Value>,
    pub(crate) limit: usize,
    pub(crate) field: Option<String>,
    pub(crate) contains: Option<String>,
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

/// A page of records from [`Database::browse`](crate::Database::browse), as JSON in key order.
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

/// A table's events as JSON objects, from [`Database::subscribe_json`](crate::Database::subscribe_json): `{"event":
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
    pub(crate) table: String,
    source: Box<dyn JsonSource>,
}

impl fmt::Debug for JsonSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonSubscription").field("table", &self.table).finish_non_exhaustive()
    }
}

impl JsonSubscription {
    /// The events `reader` reads from table `table`, records made JSON by `json`.
    pub(crate) fn new<T: StoredRecord>(table: &str, reader: Reader<Event<T>>, json: RecordJson<T>) -> Self {
        JsonSubscription { table: table.to_owned(), source: Box::new(JsonEvents { reader, json }) }
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

/// A record as JSON (`RecordMeta::to_json`).
pub(crate) type RecordJson<T> = fn(&T) -> serde_json::Result<Value>;

/// A table's events, read as JSON.
struct JsonEvents<T: StoredRecord> {
    reader: Reader<Event<T>>,
    json: RecordJson<T>,
}

impl<T: StoredRecord> JsonSource for JsonEvents<T> {
    fn next(&self, timeout: Option<Duration>) -> Option<Value> {
        let event = match timeout {
            Some(t) => self.reader.take(Some(t), true),
            None => self.reader.take(None, false),
        };
        event.map(|e| event_json(e, self.json))
    }

    #[cfg(feature = "tokio")]
    fn poll(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Value>> {
        self.reader.poll(cx).map(|e| e.map(|e| event_json(e, self.json)))
    }
}

/// A value that JSON cannot hold, as JSON: the error, in words.
fn unrepresentable(e: serde_json::Error) -> Value {
    Value::String(format!("not representable in JSON: {e}"))
}

/// An event as JSON (a record that JSON cannot hold becomes the error, in words).
fn event_json<T: StoredRecord>(event: Event<T>, json: RecordJson<T>) -> Value {
    let record = |r: &T| json(r).unwrap_or_else(unrepresentable);
    match event {
        Event::Write { new, old } => {
            let mut e = json!({ "event": "write", "record": record(&new) });
            if let Some(old) = old {
                e["old"] = record(&old);
            }
            e
        }
        Event::Delete { key, old, cause } => {
            let cause = match cause {
                DeleteCause::Expired => "expired",
                _ => "explicit",
            };
            let key = serde_json::to_value(&key).unwrap_or_else(unrepresentable);
            let mut e = json!({ "event": "delete", "key": key, "cause": cause });
            if let Some(old) = old {
                e["old"] = record(&old);
            }
            e
        }
        Event::Cleared => json!({ "event": "cleared" }),
        Event::Dropped => json!({ "event": "dropped" }),
        Event::Lagged { missed } => json!({ "event": "lagged", "missed": missed }),
    }
}
