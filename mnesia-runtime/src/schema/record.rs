//! The record type as the derive describes it ([`Record`]), and the types describing
//! tables: their types, storage, fields, indexes and facts.

use std::fmt;
use std::hash::Hash;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::schema::index_spec::IndexSpec;
use crate::schema::stored::StoredRecord;

pub use crate::schema::stored::Key;

/// How a table keeps records per key (Mnesia's table types).
///
/// ```
/// use mnesia::TableType;
/// assert_eq!(TableType::default(), TableType::Set);
/// assert_eq!(TableType::OrderedSet.to_string(), "ordered_set");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableType {
    /// One record per key, no order (a hash table).
    #[default]
    Set,
    /// One record per key, iterated in key order (a B-tree).
    OrderedSet,
    /// Several distinct records per key.
    Bag,
}

impl fmt::Display for TableType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TableType::Set => "set",
            TableType::OrderedSet => "ordered_set",
            TableType::Bag => "bag",
        })
    }
}

/// Where a table's copy lives on a node (Mnesia's storage types).
///
/// ```
/// use mnesia::StorageType;
/// assert_eq!(StorageType::default(), StorageType::RamCopies);
/// assert_eq!(StorageType::DiscCopies.to_string(), "disc_copies");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StorageType {
    /// In memory only: lost when the process ends.
    #[default]
    RamCopies,
    /// In memory, and logged to disc.
    DiscCopies,
    /// On disc only.
    DiscOnlyCopies,
}

impl fmt::Display for StorageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StorageType::RamCopies => "ram_copies",
            StorageType::DiscCopies => "disc_copies",
            StorageType::DiscOnlyCopies => "disc_only_copies",
        })
    }
}

/// One field of a record type, as the derive describes it.
///
/// ```
/// # use mnesia::prelude::*;
/// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
/// # struct User { #[key] id: u64, age: u32 }
/// let f: &mnesia::FieldInfo = &User::FIELDS[1];
/// assert_eq!((f.name, f.ty), ("age", "u32"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldInfo {
    /// The field's name.
    pub name: &'static str,
    /// The field's Rust type, as written.
    pub ty: &'static str,
}

/// One index of a table, as `table_info` reports it.
///
/// ```
/// let i = mnesia::IndexInfo { field: "email".into(), unique: true };
/// assert!(i.unique);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IndexInfo {
    /// The indexed field.
    pub field: String,
    /// Whether the index refuses duplicate values.
    pub unique: bool,
}

/// Facts about a table (Mnesia's `table_info`).
///
/// `memory` counts the bytes of the table's own structures (hash tables, tree nodes,
/// indexes, and the records: each in a slot of 72 bytes, a record over 64 bytes in a box of
/// its own besides); heap data owned by record fields (a `String`'s text) is not counted.
///
/// ```
/// # use mnesia::prelude::*;
/// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
/// # struct User { #[key] id: u64, #[index] age: u32 }
/// let db = Database::in_memory()?;
/// db.scope(|| -> mnesia::Result<()> {
///     User::create_table(TableOptions::new())?;
///     User::write(User { id: 1, age: 3 })?;
///     let info = User::table_info()?;
///     assert_eq!((info.size, info.table_type, info.storage_type), (1, TableType::Set, StorageType::RamCopies));
///     assert_eq!(info.attributes, ["id", "age"]);
///     assert_eq!(info.indexes[0].field, "age");
///     assert!(info.memory > 0);
///     Ok(())
/// })?;
/// # Ok::<(), mnesia::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct TableInfo {
    /// The table's name.
    pub name: String,
    /// Number of records.
    pub size: usize,
    /// Bytes held by the table's structures.
    pub memory: usize,
    /// `set`, `ordered_set` or `bag`.
    pub table_type: TableType,
    /// Where the table lives on this node (for a table on chosen nodes of a cluster, this
    /// node's copy's type, as `disc_copies` lists it).
    pub storage_type: StorageType,
    /// The record's fields, in order.
    pub attributes: Vec<String>,
    /// The key field.
    pub key: String,
    /// The secondary indexes.
    pub indexes: Vec<IndexInfo>,
    /// Whether the key is assigned by `insert`.
    pub auto_increment: bool,
    /// The `#[ttl]` field holding each record's expiry deadline.
    pub ttl_field: Option<String>,
    /// The lifetime a record written without a deadline gets (`#[table(ttl = "..")]`).
    pub default_ttl: Option<Duration>,
    /// How many records have a deadline (expired ones the reaper has not removed included).
    pub expiring: usize,
    /// The highest `#[auto_increment]` id handed out or written (0 for other keys).
    pub counter: u64,
    /// How many times the table was transformed to a new record type (`T::transform`).
    pub version: u32,
    /// Bytes of the table's last checkpoint on disc (`disc_copies`; the commit log since,
    /// shared by every table, is not counted). `None` in memory, and for
    /// `disc_only_copies`, whose records share one file.
    pub disk_bytes: Option<u64>,
    /// Whether the table is this node's own, never ordered with the other nodes of a
    /// cluster ([`TableOptions::local_content`](crate::TableOptions::local_content)).
    #[serde(default)]
    pub local_content: bool,
    /// The nodes holding a copy, by name, when a cluster node created the table with a
    /// list of them (`TableOptions::ram_copies([..])`, `disc_copies([..])`); empty when every node of the
    /// cluster holds one (or the database is alone).
    #[serde(default)]
    pub nodes: Vec<String>,
    /// Whether this node holds the table's records: `false` on a cluster node that
    /// `nodes` leaves out (its reads are answered by a node holding a copy), and on one
    /// whose copy waits to be filled from another node.
    #[serde(default = "held_by_default")]
    pub held: bool,
    /// Of `nodes`, those given a copy (`add_table_copy`) that have not said yet that it
    /// is filled (a copy is not removed while the others are all such).
    #[serde(default)]
    pub filling: Vec<String>,
    /// Of `nodes`, those whose copy is `disc_copies` (`TableOptions::disc_copies([..])`,
    /// `add_table_copy(node, StorageType::DiscCopies)`); the others' are `ram_copies`.
    #[serde(default)]
    pub disc_copies: Vec<String>,
}

fn held_by_default() -> bool {
    true
}

/// What `upsert` did.
///
/// ```
/// use mnesia::Upserted;
/// let u: Upserted<u32> = Upserted::Replaced { new: 2, old: 1 };
/// assert_eq!(u.record(), &2);
/// assert!(!u.inserted());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Upserted<T> {
    /// No record had the key: this one was inserted.
    Inserted(T),
    /// A record had the key: it was replaced.
    Replaced {
        /// The record now stored.
        new: T,
        /// The record it replaced.
        old: T,
    },
}

impl<T> Upserted<T> {
    /// The record now stored.
    ///
    /// ```
    /// assert_eq!(mnesia::Upserted::Inserted(5).record(), &5);
    /// ```
    pub fn record(&self) -> &T {
        match self {
            Upserted::Inserted(r) | Upserted::Replaced { new: r, .. } => r,
        }
    }

    /// Whether the record was inserted rather than replacing another.
    ///
    /// ```
    /// assert!(mnesia::Upserted::Inserted(5).inserted());
    /// ```
    pub fn inserted(&self) -> bool {
        matches!(self, Upserted::Inserted(_))
    }

    /// The stored record, by value.
    ///
    /// ```
    /// assert_eq!(mnesia::Upserted::Inserted(5).into_record(), 5);
    /// ```
    pub fn into_record(self) -> T {
        match self {
            Upserted::Inserted(r) | Upserted::Replaced { new: r, .. } => r,
        }
    }
}

/// A record type: what `#[derive(Table)]` describes of a struct (its table's name and
/// type, its fields, its key, its indexes, its `#[ttl]` field). The engine's layers below
/// the table API know a record type through this trait alone; the table API itself is
/// [`Table`](crate::Table), which every record type has.
///
/// ```
/// use mnesia::prelude::*;
///
/// #[derive(Table, Clone, Debug, Serialize, Deserialize)]
/// #[table(type = "ordered_set")]
/// struct Reading { #[key] at: u64, #[index] sensor: String }
///
/// assert_eq!(Reading::NAME, "reading");
/// assert_eq!(Reading::TYPE, TableType::OrderedSet);
/// assert_eq!(Reading::KEY_POSITION, 0);
/// assert_eq!(Reading { at: 7, sensor: "a".into() }.key(), &7);
/// assert_eq!(Reading::indexes()[0].field(), "sensor");
/// ```
pub trait Record: Clone + Send + Sync + Serialize + DeserializeOwned + 'static {
    /// The key's type: the type of the `#[key]` field.
    type Key: Key;
    /// The table's name (`#[table(name = ..)]`, else the struct's name in snake_case).
    const NAME: &'static str;
    /// The table's type (`#[table(type = ..)]`, else `set`).
    const TYPE: TableType;
    /// The record's fields, in order.
    const FIELDS: &'static [FieldInfo];
    /// The position of the `#[key]` field in `FIELDS`.
    const KEY_POSITION: usize;
    /// Whether the key is `#[auto_increment]`.
    const AUTO_INCREMENT: bool;
    /// The `#[ttl]` field, which holds each record's expiry deadline, if the struct has one.
    const TTL_FIELD: Option<&'static str> = None;
    /// The lifetime `#[table(ttl = "..")]` gives every record written without a deadline.
    const DEFAULT_TTL: Option<Duration> = None;

    /// The record's key.
    fn key(&self) -> &Self::Key;

    /// The indexes the struct declares with `#[index]`.
    fn indexes() -> Vec<IndexSpec<Self>>;

    /// An `#[auto_increment]` key as an id (`None` for other keys, or a negative one).
    fn auto_id(&self) -> Option<u64> {
        None
    }

    /// An `#[auto_increment]` key made from an id (`None` for other keys, or an id that does
    /// not fit).
    #[doc(hidden)]
    fn key_for_id(id: u64) -> Option<Self::Key> {
        let _ = id;
        None
    }

    /// Sets an `#[auto_increment]` key from an id.
    fn set_auto_id(&mut self, id: u64) -> Result<()> {
        let _ = id;
        Err(Error::Invalid(format!("table {} has no #[auto_increment] key", Self::NAME)))
    }

    /// The record's expiry deadline: its `#[ttl]` field. Generated by the derive.
    #[doc(hidden)]
    fn deadline(&self) -> Option<SystemTime> {
        None
    }

    /// Sets or clears the record's `#[ttl]` field. Generated by the derive.
    #[doc(hidden)]
    fn set_deadline(&mut self, deadline: Option<SystemTime>) -> Result<()> {
        let _ = deadline;
        Err(Error::Invalid(format!("table {} has no #[ttl] field", Self::NAME)))
    }

    /// An index on the named field, if the field's type can be indexed (used to rebuild
    /// indexes added online to a disc table). Generated by the derive.
    #[doc(hidden)]
    fn index_spec_for(field: &str, unique: bool) -> Option<IndexSpec<Self>> {
        let _ = (field, unique);
        None
    }
}

impl<T: Record> StoredRecord for T {
    type Key = T::Key;
    type Slot = crate::schema::stored::Slot<T>;

    #[inline]
    fn key(&self) -> &T::Key {
        Record::key(self)
    }

    #[inline]
    fn auto_id(&self) -> Option<u64> {
        Record::auto_id(self)
    }

    fn set_auto_id(&mut self, id: u64) -> Result<()> {
        Record::set_auto_id(self, id)
    }

    #[inline]
    fn deadline(&self) -> Option<SystemTime> {
        Record::deadline(self)
    }

    fn set_deadline(&mut self, deadline: Option<SystemTime>) -> Result<()> {
        Record::set_deadline(self, deadline)
    }

    #[inline]
    fn base(&self) -> *const u8 {
        (self as *const T).cast()
    }

    #[inline]
    fn is_of(&self, kind: &crate::schema::row::StoredType) -> bool {
        kind.is(std::any::TypeId::of::<T>())
    }
}

/// The facts [`Record`]'s constants declare about a record type, as values.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RecordFacts {
    /// The table's name.
    pub(crate) name: &'static str,
    /// The table's type.
    pub(crate) kind: TableType,
    /// The record's fields, in order.
    pub(crate) fields: &'static [FieldInfo],
    /// The position of the key in `fields`.
    pub(crate) key_position: usize,
    /// Whether the key is `#[auto_increment]`.
    pub(crate) auto_increment: bool,
    /// The `#[ttl]` field.
    pub(crate) ttl_field: Option<&'static str>,
    /// The lifetime of a record written without a deadline.
    pub(crate) default_ttl: Option<Duration>,
}

impl RecordFacts {
    /// `T`'s facts.
    pub(crate) const fn of<T: Record>() -> RecordFacts {
        RecordFacts {
            name: T::NAME,
            kind: T::TYPE,
            fields: T::FIELDS,
            key_position: T::KEY_POSITION,
            auto_increment: T::AUTO_INCREMENT,
            ttl_field: T::TTL_FIELD,
            default_ttl: T::DEFAULT_TTL,
        }
    }
}
