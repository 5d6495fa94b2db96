//! Keys and records as the untyped store sees them: trait objects whose few methods (compare,
//! hash, encode, take the key) are the only code compiled per record type. The store's maps,
//! scans, history, backup cut and disc-only reads are compiled once for every table; the
//! typed edge (`typed.rs`) turns what they find back into `&[T]`.

use std::any::{Any, TypeId};
use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::BuildHasher;
use std::marker::PhantomData;

use super::Hasher;
use crate::disk::record::{EntryEncoder, Logged, encode};
use crate::error::{Error, Result};
use crate::table::{Key, Table, TableType};

/// A key of some table.
pub(crate) trait AnyKey: Any + Send + Sync {
    /// The key as `Any`, to be downcast to its type.
    fn as_any(&self) -> &dyn Any;
    /// Compares with a key of the same table (keys of another type order by type).
    fn dyn_cmp(&self, other: &dyn AnyKey) -> Ordering;
    /// The key's hash, as `hasher.hash_one(key)` computes it for the typed key.
    fn dyn_hash(&self, hasher: &Hasher) -> u64;
    /// An owned copy.
    fn to_box(&self) -> Box<dyn AnyKey>;
    /// The key encoded as the log and the files keep it.
    fn encode(&self) -> Result<Vec<u8>>;
    /// The key as `{:?}` shows it.
    fn debug(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result;
}

impl<K: Key> AnyKey for K {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn dyn_cmp(&self, other: &dyn AnyKey) -> Ordering {
        match other.as_any().downcast_ref::<K>() {
            Some(o) => self.cmp(o),
            None => TypeId::of::<K>().cmp(&other.as_any().type_id()),
        }
    }

    fn dyn_hash(&self, hasher: &Hasher) -> u64 {
        hasher.hash_one(self)
    }

    fn to_box(&self) -> Box<dyn AnyKey> {
        Box::new(self.clone())
    }

    fn encode(&self) -> Result<Vec<u8>> {
        encode(self)
    }

    fn debug(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl PartialEq for dyn AnyKey {
    fn eq(&self, other: &Self) -> bool {
        self.dyn_cmp(other) == Ordering::Equal
    }
}

impl Eq for dyn AnyKey {}

impl PartialOrd for dyn AnyKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for dyn AnyKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.dyn_cmp(other)
    }
}

impl fmt::Debug for dyn AnyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.debug(f)
    }
}

/// A key owned by an ordered map, looked up by `&dyn AnyKey`.
pub(crate) struct OwnedKey(pub(crate) Box<dyn AnyKey>);

impl PartialEq for OwnedKey {
    fn eq(&self, other: &Self) -> bool {
        *self.0 == *other.0
    }
}

impl Eq for OwnedKey {}

impl PartialOrd for OwnedKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for OwnedKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.dyn_cmp(&*other.0)
    }
}

impl Borrow<dyn AnyKey> for OwnedKey {
    fn borrow(&self) -> &dyn AnyKey {
        &*self.0
    }
}

/// What a key holds: one record (`set`, `ordered_set`) or its group of records (`bag`, a
/// [`Group`]).
pub(crate) trait AnyRows: Any + Send + Sync {
    /// The records as `Any`, to be downcast to `T` or `Group<T>`.
    fn as_any(&self) -> &dyn Any;
    /// The key the records are stored under (`None` for an empty group).
    fn key(&self) -> Option<&dyn AnyKey>;
    /// Whether the records are stored under `key` (given as [`AnyKey::as_any`]).
    fn key_is(&self, key: &dyn Any) -> bool;
    /// How many records.
    fn count(&self) -> usize;
    /// Bytes the records take inline (not their fields' heap data).
    fn bytes(&self) -> usize;
    /// The records as the log and the disc-only file keep them.
    fn logged(&self) -> Result<Logged>;
    /// Asks the CPU to start loading the records' heap data (see `prefetch`).
    fn warm(&self);
    /// An owned copy.
    fn to_box(&self) -> Rows;
    /// Appends the key's entry, written by commit `version`, to a backup or snapshot.
    fn encode_into(&self, version: u64, out: &mut EntryEncoder) -> Result<()>;
}

/// What a key holds, owned.
pub(crate) type Rows = Box<dyn AnyRows>;

/// The records of a `bag` key.
pub(crate) struct Group<T>(pub(crate) Vec<T>);

impl<T: Table> AnyRows for T {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn key(&self) -> Option<&dyn AnyKey> {
        Some(Table::key(self))
    }

    #[inline]
    fn key_is(&self, key: &dyn Any) -> bool {
        key.downcast_ref::<T::Key>().is_some_and(|k| Table::key(self) == k)
    }

    fn count(&self) -> usize {
        1
    }

    fn bytes(&self) -> usize {
        size_of::<T>()
    }

    fn logged(&self) -> Result<Logged> {
        Ok(Logged::Put(encode(self)?))
    }

    fn warm(&self) {
        crate::prefetch::warm(self);
    }

    fn to_box(&self) -> Rows {
        Box::new(self.clone())
    }

    fn encode_into(&self, version: u64, out: &mut EntryEncoder) -> Result<()> {
        out.record(Table::key(self), version, self)
    }
}

impl<T: Table> AnyRows for Group<T> {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn key(&self) -> Option<&dyn AnyKey> {
        self.0.first().map(|r| Table::key(r) as &dyn AnyKey)
    }

    fn key_is(&self, key: &dyn Any) -> bool {
        match (self.0.first(), key.downcast_ref::<T::Key>()) {
            (Some(r), Some(k)) => Table::key(r) == k,
            _ => false,
        }
    }

    fn count(&self) -> usize {
        self.0.len()
    }

    fn bytes(&self) -> usize {
        size_of::<Self>() + self.0.capacity() * size_of::<T>()
    }

    fn logged(&self) -> Result<Logged> {
        Ok(Logged::Group(self.0.iter().map(encode).collect::<Result<_>>()?))
    }

    fn warm(&self) {
        crate::prefetch::warm(&self.0);
    }

    fn to_box(&self) -> Rows {
        Box::new(Group(self.0.clone()))
    }

    fn encode_into(&self, version: u64, out: &mut EntryEncoder) -> Result<()> {
        match self.0.first() {
            Some(first) => out.group(Table::key(first), version, &self.0),
            None => Ok(()),
        }
    }
}

/// The records of `T` that `rows` holds (none for `None`, or rows of another type).
#[inline]
pub(crate) fn records<T: Table>(rows: Option<&dyn AnyRows>) -> &[T] {
    let Some(rows) = rows else { return &[] };
    let any = rows.as_any();
    if let Some(r) = any.downcast_ref::<T>() {
        std::slice::from_ref(r)
    } else if let Some(g) = any.downcast_ref::<Group<T>>() {
        &g.0
    } else {
        &[]
    }
}

/// What the store of a table of `kind` holds for `recs`, a key's records after a write.
pub(crate) fn rows_of<T: Table>(kind: TableType, mut recs: Vec<T>) -> Option<Rows> {
    match kind {
        TableType::Bag => (!recs.is_empty()).then(|| Box::new(Group(recs)) as Rows),
        _ => recs.pop().map(|r| Box::new(r) as Rows),
    }
}

/// What the store decodes with: a table's record type, behind a `'static` reference.
pub(crate) trait RowType: Send + Sync + 'static {
    /// The table's name, for errors.
    fn name(&self) -> &'static str;
    /// Decodes a stored key.
    fn decode_key(&self, bytes: &[u8]) -> Result<Box<dyn AnyKey>>;
    /// Decodes a key's stored content (`None` for a deletion) for a table of `kind`.
    fn decode(&self, kind: TableType, value: &Logged) -> Result<Option<Rows>>;
    /// Bytes of one record inline and of one key inline.
    fn sizes(&self) -> (usize, usize);
}

/// The [`RowType`] of `T`.
pub(crate) struct RowTypeOf<T>(PhantomData<fn() -> T>);

impl<T: Table> RowTypeOf<T> {
    /// The row type of `T`, for the store.
    pub(crate) const REF: &'static dyn RowType = &RowTypeOf::<T>(PhantomData);
}

impl<T: Table> RowType for RowTypeOf<T> {
    fn name(&self) -> &'static str {
        T::NAME
    }

    fn decode_key(&self, bytes: &[u8]) -> Result<Box<dyn AnyKey>> {
        let key: T::Key =
            postcard::from_bytes(bytes).map_err(|e| Error::codec("decoding a stored key", e))?;
        Ok(Box::new(key))
    }

    fn decode(&self, kind: TableType, value: &Logged) -> Result<Option<Rows>> {
        let bad = |e: postcard::Error| {
            Error::codec(format!("table {}: a stored record does not decode", T::NAME), e)
        };
        let recs: Vec<T> = match value {
            Logged::Put(b) => vec![postcard::from_bytes(b).map_err(bad)?],
            Logged::Group(bs) => {
                bs.iter().map(|b| postcard::from_bytes(b).map_err(bad)).collect::<Result<_>>()?
            }
            Logged::Delete => Vec::new(),
        };
        Ok(rows_of(kind, recs))
    }

    fn sizes(&self) -> (usize, usize) {
        (size_of::<T>(), size_of::<T::Key>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Rec, rec};

    #[test]
    fn keys_compare_hash_and_show_as_their_type_does() {
        let hasher = Hasher::default();
        let (a, b): (&dyn AnyKey, &dyn AnyKey) = (&3u32, &10u32);
        assert!(a < b);
        assert_eq!(a.dyn_hash(&hasher), hasher.hash_one(3u32));
        assert_eq!(format!("{a:?}"), "3");
        // A key of another type is never equal, and orders consistently.
        let other: &dyn AnyKey = &3u64;
        assert_ne!(a, other);
        assert_eq!(a.cmp(other), other.cmp(a).reverse());
    }

    #[test]
    fn rows_give_back_their_records() {
        let one: Rows = Box::new(rec(1, "a", 0));
        assert_eq!(records::<Rec>(Some(&*one)).len(), 1);
        assert!(one.key_is(&1u32));
        assert!(!one.key_is(&2u32));
        let group = rows_of(TableType::Bag, vec![rec(1, "a", 0), rec(1, "b", 0)]).expect("group");
        assert_eq!(records::<Rec>(Some(&*group)).len(), 2);
        assert_eq!(group.count(), 2);
        assert!(rows_of::<Rec>(TableType::Bag, Vec::new()).is_none());
        let decoded =
            RowTypeOf::<Rec>::REF.decode(TableType::Bag, &group.logged().expect("logged")).expect("decode");
        assert_eq!(records::<Rec>(decoded.as_deref()), records::<Rec>(Some(&*group)));
    }
}
