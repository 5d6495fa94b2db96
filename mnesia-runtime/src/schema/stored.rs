//! What the engine needs of a record value ([`StoredRecord`]: a key, the
//! `#[auto_increment]` and `#[ttl]` fields, its address) and of a key ([`Key`]). The engine
//! reads a record type through these and `engine/meta.rs`, never through `Record`'s
//! constants or serde bounds: so that it is compiled once for records it does not know
//! (issue 16).

use std::fmt;
use std::hash::Hash;
use std::time::SystemTime;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Result;
use crate::schema::row::StoredType;

/// What a key type needs: `Clone + Ord + Hash + Debug + Serialize + DeserializeOwned`,
/// shareable between threads. Blanket-implemented; tuples of such types are keys too.
///
/// ```
/// fn key<K: mnesia::Key>() {}
/// key::<u64>();
/// key::<String>();
/// key::<(String, u32)>();
/// ```
pub trait Key:
    Clone + Ord + Hash + fmt::Debug + Serialize + DeserializeOwned + Send + Sync + 'static
{
}
impl<K: Clone + Ord + Hash + fmt::Debug + Serialize + DeserializeOwned + Send + Sync + 'static> Key for K {}

/// What the engine needs of a record value. Every [`Record`](crate::Record) is one.
#[doc(hidden)]
pub trait StoredRecord: Clone + Send + Sync + 'static {
    /// The key's type.
    type Key: Key;
    /// How a `set` or `ordered_set` shard holds the record with its version: a [`Slot`],
    /// or the record itself when it has room for the version (a row, `schema/row.rs`).
    type Slot: Versioned<Self>;
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
    ///
    /// Contract (what `FieldAt`, `FieldTest` and `FieldCmp` rely on for memory safety): the
    /// address of a live value of the record type `kind` describes whenever
    /// [`StoredRecord::is_of`]`(kind)`, borrowed as long as `self` is. The two impls (a
    /// record itself; a row, `schema/row.rs`) keep it; the trait cannot be named outside
    /// this crate.
    fn base(&self) -> *const u8;
    /// Whether the value at [`StoredRecord::base`] is of the record type `kind` describes
    /// (a row compares its tag: one load, no call).
    fn is_of(&self, kind: &StoredType) -> bool;
}

/// A record (or a `bag`'s record group) with the sequence number of the commit that wrote
/// it, as a table's shard holds it.
pub trait Versioned<R>: Send + Sync + Sized {
    /// `rec` as written by commit `version`.
    fn with_version(version: u64, rec: R) -> Self;
    /// The commit that wrote the record.
    fn version(&self) -> u64;
    /// The record.
    fn rec(&self) -> &R;
    /// Puts `rec`, written by commit `version`, in place of the record; returns the old
    /// record and its version.
    fn replace(&mut self, version: u64, rec: R) -> (u64, R);
    /// The version and the record.
    fn into_parts(self) -> (u64, R);
}

/// A record and its version side by side: [`Versioned`] for any record.
pub struct Slot<R> {
    version: u64,
    rec: R,
}

impl<R: Send + Sync> Versioned<R> for Slot<R> {
    #[inline]
    fn with_version(version: u64, rec: R) -> Self {
        Slot { version, rec }
    }

    #[inline]
    fn version(&self) -> u64 {
        self.version
    }

    #[inline]
    fn rec(&self) -> &R {
        &self.rec
    }

    #[inline]
    fn replace(&mut self, version: u64, rec: R) -> (u64, R) {
        (std::mem::replace(&mut self.version, version), std::mem::replace(&mut self.rec, rec))
    }

    #[inline]
    fn into_parts(self) -> (u64, R) {
        (self.version, self.rec)
    }
}
