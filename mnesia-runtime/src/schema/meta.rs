//! What the engine knows of a record type: the values it holds ([`StoredRecord`]: a key,
//! the `#[auto_increment]` and `#[ttl]` fields) and, at run time, the rest of what the
//! derive describes ([`RecordMeta`]: the table's name and type, its fields, its indexes,
//! and how its records encode).
//!
//! The engine below the typed API reads a record type through these two alone, never
//! through [`Record`]'s constants or serde bounds: so that it can be compiled once for
//! records it does not know (issue 16), a table's description travels with its store.

use std::any::TypeId;
use std::time::{Duration, SystemTime};

use crate::error::{Error, Result};
use crate::schema::index_spec::IndexSpec;
use crate::schema::record::{FieldInfo, Key, Record, TableType};

/// Decodes a value from the start of some bytes, returning it and the bytes after it.
pub(crate) type Take<T> = fn(&[u8]) -> postcard::Result<(T, &[u8])>;

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
}

/// A record type as the engine knows it at run time: what [`Record`] declares as
/// constants, and its codec and index builders as functions.
pub(crate) struct RecordMeta<T: StoredRecord> {
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
    /// The Rust type's name.
    pub(crate) type_name: fn() -> &'static str,
    /// The Rust type's id (what finds a transaction's part for the table).
    pub(crate) type_id: fn() -> TypeId,
    /// The indexes the struct declares.
    pub(crate) indexes: fn() -> Vec<IndexSpec<T>>,
    /// An index on a named field, if its type can be indexed.
    pub(crate) index_spec_for: fn(&str, bool) -> Option<IndexSpec<T>>,
    /// An `#[auto_increment]` key made from an id.
    pub(crate) key_for_id: fn(u64) -> Option<T::Key>,
    /// A record encoded as the log, the files and the commit records keep it.
    pub(crate) encode: fn(&T) -> Result<Vec<u8>>,
    /// A record's encoding appended to a buffer (what [`RecordMeta::encode`] makes).
    pub(crate) extend: crate::disk::record::Extend<T>,
    /// Asks the CPU to start loading a record's heap data (see `base/prefetch.rs`).
    pub(crate) warm: fn(&T),
    /// A record decoded from the start of [`RecordMeta::encode`]'s bytes, and the bytes
    /// after it.
    pub(crate) take: Take<T>,
}

impl<T: Record> RecordMeta<T> {
    /// `T`'s description, made once at compile time.
    pub(crate) fn of() -> &'static RecordMeta<T> {
        const {
            &RecordMeta {
                name: T::NAME,
                kind: T::TYPE,
                fields: T::FIELDS,
                key_position: T::KEY_POSITION,
                auto_increment: T::AUTO_INCREMENT,
                ttl_field: T::TTL_FIELD,
                default_ttl: T::DEFAULT_TTL,
                type_name: std::any::type_name::<T>,
                type_id: TypeId::of::<T>,
                indexes: T::indexes,
                index_spec_for: T::index_spec_for,
                key_for_id: T::key_for_id,
                encode: crate::disk::record::encode::<T>,
                extend: postcard::to_extend::<T, Vec<u8>>,
                warm: crate::base::prefetch::warm::<T>,
                take: take_record::<T>,
            }
        }
    }
}

impl<T: StoredRecord> RecordMeta<T> {
    /// The specs of the table's indexes: the struct's declared ones, and those of `infos`
    /// (a stored table's, added at run time) the struct can index.
    pub(crate) fn specs_with(&self, infos: &[crate::schema::record::IndexInfo]) -> Vec<IndexSpec<T>> {
        let mut specs = (self.indexes)();
        for info in infos {
            if !specs.iter().any(|s| s.field() == info.field) {
                specs.extend((self.index_spec_for)(&info.field, info.unique));
            }
        }
        specs
    }

    /// The records of a key's logged content.
    pub(crate) fn decode_logged(&self, value: &crate::disk::record::Logged) -> Result<Vec<T>> {
        use crate::disk::record::Logged;
        match value {
            Logged::Put(b) => Ok(vec![self.decode_in(b)?]),
            Logged::Group(bs) => bs.iter().map(|b| self.decode_in(b)).collect(),
            Logged::Delete => Ok(Vec::new()),
        }
    }

    /// A record decoded from the start of `bytes` (what `postcard::from_bytes` does).
    pub(crate) fn decode(&self, bytes: &[u8]) -> postcard::Result<T> {
        (self.take)(bytes).map(|(r, _)| r)
    }

    /// A stored record of this table decoded, the error naming the table.
    pub(crate) fn decode_in(&self, bytes: &[u8]) -> Result<T> {
        self.decode(bytes)
            .map_err(|e| Error::codec(format!("table {}: a stored record does not decode", self.name), e))
    }

    /// A record of a commit record decoded whole (see `commit_record::decode_whole`).
    pub(crate) fn decode_whole(&self, bytes: &[u8]) -> Result<T> {
        use crate::engine::commit_record::misfit;
        match (self.take)(bytes) {
            Ok((r, [])) => Ok(r),
            Ok(_) => Err(misfit(self.name, "bytes left over after a value: another record type")),
            Err(e) => Err(misfit(self.name, e)),
        }
    }
}

/// A record decoded from the start of its postcard bytes, and the bytes after it.
fn take_record<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> postcard::Result<(T, &[u8])> {
    postcard::take_from_bytes(bytes)
}
