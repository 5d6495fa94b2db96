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
    /// address of a live value of the type `record_type` returns, borrowed as long as
    /// `self` is. The two impls (a record itself; a row, `schema/row.rs`) keep it; the
    /// trait cannot be named outside this crate.
    fn base(&self) -> *const u8;
    /// The Rust type of the value at [`StoredRecord::base`].
    fn record_type(&self) -> std::any::TypeId;
}
