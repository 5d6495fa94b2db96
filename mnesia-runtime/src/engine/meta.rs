//! A record type as the engine knows it at run time ([`RecordMeta`]): the facts its derive
//! declares, and its codec, format and index builders as functions. A table's description
//! travels with its store, so that the engine reads no record type's constants.

use std::any::TypeId;

use crate::error::{Error, Result};
use crate::schema::index_spec::IndexSpec;
use crate::schema::record::Record;
use crate::schema::record::RecordFacts;
use crate::schema::row::Row;
use crate::schema::stored::StoredRecord;

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
    /// The bytes a record holds apart from its slot (a row's box, for records over 64
    /// bytes): what `table_info`'s memory adds per record.
    pub(crate) boxed_bytes: usize,
}

#[cfg(test)]
impl<T: Record> RecordMeta<T> {
    /// `T`'s description, for a store of `T` itself (unit tests: every table's store holds
    /// rows, see [`meta_of`]).
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
                boxed_bytes: 0,
            }
        }
    }
}

/// Table `U`'s description, for its store of rows (what every table's store holds): the
/// functions read the row's record as a `U`. Made once at compile time.
pub(crate) fn meta_of<U: Record>() -> &'static RecordMeta<Row<U::Key>> {
    const {
        &RecordMeta {
            facts: RecordFacts::of::<U>(),
            type_name: std::any::type_name::<U>,
            type_id: TypeId::of::<U>,
            format: crate::disk::format::RecordFormat::of::<U>,
            indexes: row_indexes::<U>,
            index_spec_for: row_index_spec_for::<U>,
            key_for_id: U::key_for_id,
            encode: encode_row::<U>,
            extend: extend_row::<U>,
            warm: warm_row::<U>,
            take: take_row::<U>,
            to_json: row_json::<U>,
            boxed_bytes: if crate::schema::row::fits::<U>() { 0 } else { size_of::<U>() },
        }
    }
}

/// A store's row as the table's record type `U`.
pub(crate) fn as_record<U: Record>(row: &Row<U::Key>) -> Result<&U> {
    row.typed::<U>().ok_or_else(|| not_a::<U>(row))
}

/// A store's row, by value, as the table's record type `U`.
pub(crate) fn into_record<U: Record>(row: Row<U::Key>) -> Result<U> {
    row.into_typed::<U>().map_err(|r| not_a::<U>(&r))
}

/// A store's rows, by value, as the table's record type `U`.
pub(crate) fn into_records<U: Record>(rows: Vec<Row<U::Key>>) -> Result<Vec<U>> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push(into_record::<U>(row)?);
    }
    Ok(out)
}

/// The values, or the first error (a plain loop: the typed edge is compiled once per
/// table, and an iterator chain there costs more code than this).
pub(crate) fn all_ok<X>(xs: Vec<Result<X>>) -> Result<Vec<X>> {
    let mut out = Vec::with_capacity(xs.len());
    for x in xs {
        out.push(x?);
    }
    Ok(out)
}

/// The first value, if any (not `into_iter().next()`: one small function per type where
/// the iterator costs several).
pub(crate) fn first_of<X>(mut xs: Vec<X>) -> Option<X> {
    if xs.is_empty() { None } else { Some(xs.swap_remove(0)) }
}

/// A row that is not the table's record type (an error of the engine's, never of input).
pub(crate) fn not_a<U: Record>(row: &Row<U::Key>) -> Error {
    Error::Internal(format!(
        "table {}: a row holds a {}, not a {}",
        U::NAME,
        row.type_name(),
        std::any::type_name::<U>()
    ))
}

fn row_indexes<U: Record>() -> Vec<IndexSpec<Row<U::Key>>> {
    let declared = U::indexes();
    let mut specs = Vec::with_capacity(declared.len());
    for spec in &declared {
        specs.push(spec.for_rows());
    }
    specs
}

fn row_index_spec_for<U: Record>(field: &str, unique: bool) -> Option<IndexSpec<Row<U::Key>>> {
    U::index_spec_for(field, unique).map(|s| s.for_rows())
}

fn encode_row<U: Record>(row: &Row<U::Key>) -> Result<Vec<u8>> {
    crate::disk::record::encode(as_record::<U>(row)?)
}

fn extend_row<U: Record>(row: &Row<U::Key>, out: Vec<u8>) -> postcard::Result<Vec<u8>> {
    match row.typed::<U>() {
        Some(rec) => postcard::to_extend(rec, out),
        None => Err(postcard::Error::SerdeSerCustom),
    }
}

fn warm_row<U: Record>(row: &Row<U::Key>) {
    if let Some(rec) = row.typed::<U>() {
        crate::base::prefetch::warm(rec);
    }
}

fn take_row<U: Record>(bytes: &[u8]) -> postcard::Result<(Row<U::Key>, &[u8])> {
    postcard::take_from_bytes::<U>(bytes).map(|(rec, rest)| (Row::new(rec), rest))
}

fn row_json<U: Record>(row: &Row<U::Key>) -> serde_json::Result<serde_json::Value> {
    match row.typed::<U>() {
        Some(rec) => serde_json::to_value(rec),
        None => Err(serde::ser::Error::custom(not_a::<U>(row))),
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
#[cfg(test)]
fn take_record<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> postcard::Result<(T, &[u8])> {
    postcard::take_from_bytes(bytes)
}

/// A record as JSON.
#[cfg(test)]
fn record_json<T: serde::Serialize>(r: &T) -> serde_json::Result<serde_json::Value> {
    serde_json::to_value(r)
}
