//! A record type as the engine knows it at run time ([`RecordMeta`]): the facts its derive
//! declares, and its codec, format and index builders as functions. A table's description
//! travels with its store, so that the engine reads no record type's constants.

use std::any::TypeId;

use crate::error::{Error, Result};
use crate::schema::index_spec::IndexSpec;
use crate::schema::record::Record;
use crate::schema::stored::{RecordFacts, StoredRecord};

/// Decodes a value from the start of some bytes, returning it and the bytes after it.
pub(crate) type Take<T> = fn(&[u8]) -> postcard::Result<(T, &[u8])>;

/// A record type as the engine knows it at run time: what [`Record`] declares as
/// constants, and its codec and index builders as functions.
pub(crate) struct RecordMeta<T: StoredRecord> {
    /// What `Record`'s constants declare.
    pub(crate) facts: RecordFacts,
    /// The Rust type's name.
    pub(crate) type_name: fn() -> &'static str,
    /// The Rust type's id (what finds a transaction's part for the table).
    pub(crate) type_id: fn() -> TypeId,
    /// The records' serde format, traced (`None` if it cannot be).
    pub(crate) format: fn() -> Option<crate::disk::format::RecordFormat>,
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
    /// A record as JSON.
    pub(crate) to_json: fn(&T) -> serde_json::Result<serde_json::Value>,
    /// A record decoded from the start of [`RecordMeta::encode`]'s bytes, and the bytes
    /// after it.
    pub(crate) take: Take<T>,
}

impl<T: Record> RecordMeta<T> {
    /// `T`'s description, made once at compile time.
    pub(crate) fn of() -> &'static RecordMeta<T> {
        const {
            &RecordMeta {
                facts: RecordFacts::of::<T>(),
                type_name: std::any::type_name::<T>,
                type_id: TypeId::of::<T>,
                format: crate::disk::format::RecordFormat::of::<T>,
                indexes: T::indexes,
                index_spec_for: T::index_spec_for,
                key_for_id: T::key_for_id,
                encode: crate::disk::record::encode::<T>,
                extend: postcard::to_extend::<T, Vec<u8>>,
                warm: crate::base::prefetch::warm::<T>,
                take: take_record::<T>,
                to_json: record_json::<T>,
            }
        }
    }
}

impl<T: StoredRecord> std::ops::Deref for RecordMeta<T> {
    type Target = RecordFacts;

    fn deref(&self) -> &RecordFacts {
        &self.facts
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
        crate::engine::commit_record::decode_whole_by(self.name, bytes, self.take)
    }
}

/// A record decoded from the start of its postcard bytes, and the bytes after it.
fn take_record<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> postcard::Result<(T, &[u8])> {
    postcard::take_from_bytes(bytes)
}

/// A record as JSON.
fn record_json<T: serde::Serialize>(r: &T) -> serde_json::Result<serde_json::Value> {
    serde_json::to_value(r)
}
