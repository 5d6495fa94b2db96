//! What the engine needs of a record value ([`StoredRecord`]: a key, the
//! `#[auto_increment]` and `#[ttl]` fields) and the facts the derive declares about its
//! type, as values ([`RecordFacts`]). The engine reads a record type through these and
//! `engine/meta.rs`, never through [`Record`]'s constants or serde bounds: so that it can be
//! compiled once for records it does not know (issue 16).

use std::time::{Duration, SystemTime};

use crate::error::Result;
use crate::schema::record::{FieldInfo, Key, Record, TableType};

/// What the engine needs of a record value. Every [`Record`] is one.
#[doc(hidden)]
pub trait StoredRecord: Clone + Send + Sync + 'static {
    /// The key's type.
    type Key: Key;
    /// The record's key.
    fn key(&self) -> &Self::Key;
    /// An `#[auto_increment]` key as an id.
    fn auto_id(&self) -> Option<u64>;
    /// Sets an `#[auto_increment]` key from an id.
    fn set_auto_id(&mut self, id: u64) -> Result<()>;
    /// The record's expiry deadline (its `#[ttl]` field).
    fn deadline(&self) -> Option<SystemTime>;
    /// Sets or clears the record's `#[ttl]` field.
    fn set_deadline(&mut self, deadline: Option<SystemTime>) -> Result<()>;
    /// The address of the record's fields (what a field's accessor reads from).
    fn base(&self) -> *const u8;
    /// The record's Rust type.
    fn record_type(&self) -> std::any::TypeId;
}

impl<T: Record> StoredRecord for T {
    type Key = T::Key;

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

    fn record_type(&self) -> std::any::TypeId {
        std::any::TypeId::of::<T>()
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
