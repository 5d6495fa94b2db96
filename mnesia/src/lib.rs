//! # mnesia — a typed, embedded, transactional database for Rust
//!
//! Tables live inside your process and are declared by deriving [`Table`] on plain structs,
//! in the spirit of Erlang/OTP's Mnesia and the Elixir wrapper MnesiaEx.
//!
//! ```
//! use mnesia::prelude::*;
//!
//! #[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
//! #[table(name = "users")]
//! struct User {
//!     #[key]
//!     #[auto_increment]
//!     id: u64,
//!     name: String,
//!     #[index(unique)]
//!     email: String,
//!     age: u32,
//! }
//!
//! let db = Database::in_memory()?;
//! db.scope(|| -> mnesia::Result<()> {
//!     User::create_table(TableOptions::new())?;
//!     let ann = User::insert(User { id: 0, name: "Ann".into(), email: "ann@x.io".into(), age: 30 })?;
//!     let bob = User::insert(User { id: 0, name: "Bob".into(), email: "bob@x.io".into(), age: 17 })?;
//!     assert_eq!((ann.id, bob.id), (1, 2));
//!
//!     // Typed, compile-time-checked conditions; the planner uses the unique index.
//!     assert_eq!(User::get_by(User::EMAIL, "bob@x.io")?, Some(bob));
//!     let adults = User::select(User::AGE.ge(18))?;
//!     assert_eq!(adults, vec![ann]);
//!
//!     // All or nothing; table-scoped calls inside join the transaction.
//!     mnesia::transaction(|| {
//!         User::update(&1, |u| u.age += 1)?;
//!         User::delete(&2)?;
//!         Ok::<_, mnesia::Error>(())
//!     })?;
//!     assert_eq!(User::count()?, 1);
//!     Ok(())
//! })?;
//! # Ok::<(), mnesia::Error>(())
//! ```
//!
//! See the README for the guide and the MnesiaEx-to-Rust map.
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub use mnesia_runtime::*;

/// `#[derive(Table)]`: makes a struct with named fields a table's record type.
///
/// Attributes:
/// - `#[key]` on exactly one field: the record's key (`Clone + Ord + Hash + Debug +
///   Serialize + DeserializeOwned`; tuples work);
/// - `#[auto_increment]` on an integer key: `insert` assigns the next id to a key left at 0;
/// - `#[index]` / `#[index(unique)]` on other fields: secondary indexes;
/// - `#[ttl]` on one field of type `SystemTime` or `Option<SystemTime>`: the record's expiry
///   deadline. Reads never return a record past its deadline, and the reaper removes it;
///   the table also gets the [`Expiring`] functions (`write_with_ttl`, `ttl`, `expire`,
///   `persist`);
/// - `#[table(name = "users", type = "set" | "ordered_set" | "bag", ttl = "30m")]` on the
///   struct (defaults: the struct's name in snake_case, `set`, no lifetime). `ttl` gives a
///   record written without a deadline that lifetime: whole numbers with the units `ms`,
///   `s`, `m`, `h`, `d`, `w`, as in `"500ms"`, `"1h30m"` or `"7d"`; it needs a `#[ttl]`
///   field of type `Option<SystemTime>`.
///
/// It implements [`Record`] (and so the type has the [`Table`] API) and adds a typed
/// [`Field`] constant per field, named after the
/// field in upper case (`age` gives `User::AGE: Field<User, u32>`).
///
/// ```
/// use mnesia::prelude::*;
///
/// #[derive(Table, Clone, Debug, Serialize, Deserialize)]
/// #[table(type = "ordered_set")]
/// struct Reading { #[key] at: (u32, u32), #[index] sensor: String, value: f64 }
///
/// assert_eq!(Reading::NAME, "reading");
/// assert_eq!(Reading::TYPE, TableType::OrderedSet);
/// assert_eq!(Reading::SENSOR.name(), "sensor");
/// ```
pub use mnesia_derive::Table;

/// The observer (cargo feature `observer`): a read-only web page and JSON API watching a
/// running database, served on a thread of its own. See [`observer::serve`].
///
/// ```ignore
/// let db = mnesia::Database::in_memory()?;
/// let observer = mnesia::observer::serve(&db, "127.0.0.1:8080")?;
/// // open http://127.0.0.1:8080/ while the program runs
/// ```
#[cfg(feature = "observer")]
pub use mnesia_observer as observer;

/// The cluster (cargo feature `cluster`): nodes that authenticate with a cookie and order
/// every commit through Raft, each applying it to its own copy. See [`cluster::Node`].
#[cfg(feature = "cluster")]
pub use mnesia_cluster as cluster;

/// What most programs need: `use mnesia::prelude::*;`.
///
/// ```
/// use mnesia::prelude::*;
/// let _db: Database = Database::in_memory()?;
/// # Ok::<(), mnesia::Error>(())
/// ```
pub mod prelude {
    pub use mnesia_derive::Table;
    pub use mnesia_runtime::{
        Config, Database, Durability, Expiring, Field, Filter, Order, Plan, Query, QueryIter, Record, Schema,
        StorageType, Table, TableInfo, TableOptions, TableType, Transaction, Upserted,
    };
    pub use serde::{Deserialize, Serialize};
}

/// The README's Rust snippets, compiled and run as doc tests by `cargo test`: what the
/// README shows must keep working.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

/// What the derive's output reaches and nothing else should: not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use mnesia_runtime::__private::*;
}
