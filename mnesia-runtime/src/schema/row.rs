//! A record of any type with a given key type ([`Row`]): what every table's store holds, so
//! that the engine is compiled once per key type rather than once per record type
//! (issue 16). A row keeps its record inline when it is small (most are), boxed otherwise,
//! with its type's number (`row_types.rs`), which leads to the type's functions
//! ([`RowType`]): clone, drop, and the record's key, `#[auto_increment]` id and `#[ttl]`
//! deadline. The number and whether the record is inline (the row's *tag*) share a word
//! with the version of the commit that wrote the row, so that a `set` or `ordered_set`
//! table's slot is the row: 72 bytes for a record of 64.
//!
//! Invariant: the tag in a row's `head` is `Row::tag_of::<U>()` for the `U` its storage
//! holds: the number of `RowType::of::<U>()` (or of a copy of it: the table of a `const`
//! may be duplicated between codegen units), with `INLINE_TAG` when `fits::<U>()`. Only
//! [`Row::new`] and the type's own `clone` make a row, and nothing else writes a row's tag
//! (the version's setter keeps it); every `unsafe` block below rests on this.
#![allow(unsafe_code)]

use std::any::TypeId;
use std::marker::PhantomData;
use std::mem::{ManuallyDrop, MaybeUninit};
use std::time::SystemTime;

use crate::error::Result;
use crate::schema::row_types;
use crate::schema::stored::{Key, StoredRecord, Versioned};

/// Records up to this size (and alignment up to 8) are held inline.
const INLINE: usize = 64;

/// A row's storage: the record itself, or a pointer to it in a box. Aligned to 8 on every
/// target (a `u64` is 4-aligned on some 32-bit ones), as `fits` assumes.
#[repr(C, align(8))]
union Data {
    inline: ManuallyDrop<MaybeUninit<[u64; INLINE / 8]>>,
    boxed: *mut u8,
}

/// What a row needs of its record's type, as functions over the row.
pub(crate) struct RowType<K: 'static> {
    type_id: fn() -> TypeId,
    type_name: fn() -> &'static str,
    key: fn(&Row<K>) -> &K,
    clone: fn(&Row<K>) -> Row<K>,
    drop: fn(&mut Row<K>),
    auto_id: fn(&Row<K>) -> Option<u64>,
    set_auto_id: fn(&mut Row<K>, u64) -> Result<()>,
    deadline: fn(&Row<K>) -> Option<SystemTime>,
    set_deadline: fn(&mut Row<K>, Option<SystemTime>) -> Result<()>,
}

/// Whether records of `U` are held inline.
pub(crate) const fn fits<U>() -> bool {
    size_of::<U>() <= INLINE && align_of::<U>() <= align_of::<Data>()
}

const _: () = assert!(align_of::<Data>() >= 8 && size_of::<Data>() == INLINE);

impl<K: 'static> RowType<K> {
    /// The functions of rows holding a `U`.
    fn of<U: StoredRecord<Key = K>>() -> &'static RowType<K> {
        const {
            &RowType {
                type_id: TypeId::of::<U>,
                type_name: std::any::type_name::<U>,
                key: |r| StoredRecord::key(r.record::<U>()),
                clone: |r| Row::make(r.tag(), r.record::<U>().clone()),
                drop: drop_row::<U>,
                auto_id: |r| StoredRecord::auto_id(r.record::<U>()),
                set_auto_id: |r, id| StoredRecord::set_auto_id(r.record_mut::<U>(), id),
                deadline: |r| StoredRecord::deadline(r.record::<U>()),
                set_deadline: |r, d| StoredRecord::set_deadline(r.record_mut::<U>(), d),
            }
        }
    }
}

/// Drops a row's `U` (and frees its box).
fn drop_row<U>(r: &mut Row<U::Key>)
where
    U: StoredRecord,
{
    // SAFETY: the row holds a `U` (the module's invariant); it is dropped once, by
    // `Row::drop`, which then never touches the storage again.
    unsafe {
        if fits::<U>() {
            std::ptr::drop_in_place(std::ptr::addr_of_mut!(r.data.inline).cast::<U>());
        } else {
            drop(Box::from_raw(r.data.boxed.cast::<U>()));
        }
    }
}

/// The rows of table `T`'s store.
pub(crate) type RowOf<T> = Row<<T as StoredRecord>::Key>;

/// The bits of a row's `head` that hold its tag: its type's number, and above it whether
/// the record is inline (`INLINE_TAG`); the version is above them.
const TAG_BITS: u32 = 16;

/// The tag's bit saying the record is inline.
const INLINE_TAG: u16 = 1 << 15;

// Numbers stay below the inline bit: a boxed type's number must never read as inline.
const _: () = assert!(row_types::CAPACITY <= INLINE_TAG as usize);

/// A record type as a stored value is checked against ([`StoredRecord::is_of`]): its Rust
/// type, and the tag rows holding it carry (the type's number, one per type and one type
/// per number, `row_types.rs`, with the inline bit). Made only by [`StoredType::of`], so
/// that the two agree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredType {
    type_id: TypeId,
    row_tag: u16,
}

impl StoredType {
    /// The record type `U` (a record, not a row: the rows it describes hold a `U`).
    pub(crate) fn of<U: StoredRecord>() -> StoredType {
        StoredType { type_id: TypeId::of::<U>(), row_tag: Row::<U::Key>::tag_of::<U>() }
    }

    /// Whether a record of Rust type `type_id` is of this type.
    #[inline]
    pub(crate) fn is(&self, type_id: TypeId) -> bool {
        self.type_id == type_id
    }
}

/// The largest version a row can keep: 2^48 - 1 commits (nine years at a million commits a
/// second). The database refuses to number commits beyond (`Database::sequence`).
pub(crate) const MAX_VERSION: u64 = u64::MAX >> TAG_BITS;

/// A record of any type whose key is a `K`: what a table's store holds.
pub(crate) struct Row<K: 'static> {
    /// The version of the commit that wrote the row, when a table's slot (above
    /// `TAG_BITS`, 0 elsewhere), and its tag (below).
    head: u64,
    data: Data,
    _type: PhantomData<&'static RowType<K>>,
}

// SAFETY: a row owns a record of a `StoredRecord` type, which is `Send + Sync`; the type's table is
// immutable and shared.
unsafe impl<K: Send + Sync> Send for Row<K> {}
// SAFETY: as above: `&Row` gives only `&U` (and `&K`).
unsafe impl<K: Send + Sync> Sync for Row<K> {}

impl<K: 'static> Row<K> {
    /// A row holding `rec`.
    #[inline]
    pub(crate) fn new<U: StoredRecord<Key = K>>(rec: U) -> Row<K> {
        Row::make(Row::<K>::tag_of::<U>(), rec)
    }

    /// A row holding `rec`, whose type's tag is `tag`.
    #[inline]
    fn make<U: StoredRecord<Key = K>>(tag: u16, rec: U) -> Row<K> {
        let data = if fits::<U>() {
            let mut inline = MaybeUninit::<[u64; INLINE / 8]>::uninit();
            // SAFETY: `U` fits the storage, in size and alignment (`fits`).
            unsafe { inline.as_mut_ptr().cast::<U>().write(rec) };
            Data { inline: ManuallyDrop::new(inline) }
        } else {
            Data { boxed: Box::into_raw(Box::new(rec)).cast::<u8>() }
        };
        Row { head: u64::from(tag), data, _type: PhantomData }
    }

    /// The row's tag: its type's number and whether the record is inline.
    #[inline]
    fn tag(&self) -> u16 {
        self.head as u16
    }

    /// The tag of rows holding a `U`.
    #[inline]
    fn tag_of<U: StoredRecord<Key = K>>() -> u16 {
        let ty = RowType::<K>::of::<U>();
        let number = row_types::number((ty as *const RowType<K>).cast(), ty.type_id);
        if fits::<U>() { number | INLINE_TAG } else { number }
    }

    /// The row's type's functions.
    #[inline]
    fn ty(&self) -> &'static RowType<K> {
        // SAFETY: the number was handed out for a `RowType<K>` (the module's invariant),
        // before this row was made.
        unsafe { &*row_types::get(self.tag() & !INLINE_TAG).cast::<RowType<K>>() }
    }

    /// The address of the record, `inline` saying whether the row's type is held inline.
    #[inline]
    fn ptr_at(&self, inline: bool) -> *const u8 {
        if inline {
            // (An inline type's rows use `inline`, see `make`; taking its address reads
            // nothing.)
            std::ptr::addr_of!(self.data.inline).cast::<u8>()
        } else {
            // SAFETY: a boxed type's rows use `boxed` (see `make`).
            unsafe { self.data.boxed }
        }
    }

    /// The record as its own type, which the caller knows it is (the row's type's own
    /// functions, made for that type).
    #[inline]
    fn record<U>(&self) -> &U {
        // SAFETY: called only by `RowType::of::<U>()`'s functions, on rows of that type.
        unsafe { &*self.ptr_at(fits::<U>()).cast::<U>() }
    }

    /// As [`Row::record`], mutably.
    fn record_mut<U>(&mut self) -> &mut U {
        let at = if fits::<U>() {
            std::ptr::addr_of_mut!(self.data.inline).cast::<U>()
        } else {
            // SAFETY: a boxed type's rows use `boxed` (see `make`).
            unsafe { self.data.boxed.cast::<U>() }
        };
        // SAFETY: as `record`; `&mut self` makes the access unique, and the pointer comes
        // from it.
        unsafe { &mut *at }
    }

    /// Whether the row holds a `U`.
    #[inline]
    fn holds<U: StoredRecord<Key = K>>(&self) -> bool {
        let ty = self.ty();
        std::ptr::eq(ty, RowType::<K>::of::<U>()) || (ty.type_id)() == TypeId::of::<U>()
    }

    /// The record, if it is a `U`.
    #[inline]
    pub(crate) fn typed<U: StoredRecord<Key = K>>(&self) -> Option<&U> {
        self.holds::<U>().then(|| self.record::<U>())
    }

    /// The record by value, if it is a `U`; else the row back.
    pub(crate) fn into_typed<U: StoredRecord<Key = K>>(self) -> std::result::Result<U, Row<K>> {
        if !self.holds::<U>() {
            return Err(self);
        }
        let row = ManuallyDrop::new(self);
        // SAFETY: the row holds a `U`; it is moved out once and the row is not dropped
        // (`ManuallyDrop`), so the record is neither dropped twice nor freed while read.
        unsafe {
            if fits::<U>() {
                Ok(std::ptr::addr_of!(row.data.inline).cast::<U>().read())
            } else {
                Ok(*Box::from_raw(row.data.boxed.cast::<U>()))
            }
        }
    }

    /// The record's Rust type's name.
    pub(crate) fn type_name(&self) -> &'static str {
        (self.ty().type_name)()
    }
}

impl<K: 'static> Drop for Row<K> {
    fn drop(&mut self) {
        (self.ty().drop)(self);
    }
}

impl<K: 'static> Clone for Row<K> {
    #[inline]
    fn clone(&self) -> Self {
        (self.ty().clone)(self)
    }
}

impl<K: Key> StoredRecord for Row<K> {
    type Key = K;
    type Slot = Row<K>;

    #[inline]
    fn key(&self) -> &K {
        (self.ty().key)(self)
    }

    fn auto_id(&self) -> Option<u64> {
        (self.ty().auto_id)(self)
    }

    fn set_auto_id(&mut self, id: u64) -> Result<()> {
        (self.ty().set_auto_id)(self, id)
    }

    fn deadline(&self) -> Option<SystemTime> {
        (self.ty().deadline)(self)
    }

    fn set_deadline(&mut self, deadline: Option<SystemTime>) -> Result<()> {
        (self.ty().set_deadline)(self, deadline)
    }

    #[inline]
    fn base(&self) -> *const u8 {
        self.ptr_at(self.tag() & INLINE_TAG != 0)
    }

    #[inline]
    fn is_of(&self, kind: &StoredType) -> bool {
        self.tag() == kind.row_tag
    }
}

/// A row is its own slot in a table's shard: the version is in its head.
impl<K: Key> Versioned<Row<K>> for Row<K> {
    #[inline]
    fn with_version(version: u64, mut rec: Row<K>) -> Row<K> {
        rec.set_version(version);
        rec
    }

    #[inline]
    fn version(&self) -> u64 {
        self.head >> TAG_BITS
    }

    #[inline]
    fn rec(&self) -> &Row<K> {
        self
    }

    #[inline]
    fn replace(&mut self, version: u64, rec: Row<K>) -> (u64, Row<K>) {
        let mut old = std::mem::replace(self, rec);
        self.set_version(version);
        let was = old.version();
        old.set_version(0);
        (was, old)
    }

    #[inline]
    fn into_parts(mut self) -> (u64, Row<K>) {
        let version = self.version();
        self.set_version(0);
        (version, self)
    }
}

impl<K: 'static> Row<K> {
    /// Keeps `version` in the row's head (for [`Versioned`]).
    #[inline]
    fn set_version(&mut self, version: u64) {
        // Never reached (commits are refused well before, a log beyond is corrupt), and
        // cheap: one compare where a commit installs a row. A version cut short could make
        // a new row look older than an open snapshot.
        assert!(version <= MAX_VERSION, "version {version} beyond {MAX_VERSION}");
        self.head = (version << TAG_BITS) | u64::from(self.tag());
    }
}

impl<K: 'static> std::fmt::Debug for Row<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Row").field("type", &self.type_name()).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::schema::record::Record;
    use crate::testing::{Rec, rec};

    #[test]
    fn small_records_are_inline_and_keep_their_key() {
        assert!(fits::<Rec>() && Row::<u32>::tag_of::<Rec>() & INLINE_TAG != 0);
        let row = Row::new(rec(7, "x", 3));
        assert_eq!(*row.key(), 7);
        assert_eq!(row.typed::<Rec>().map(|r| r.tag.as_str()), Some("x"));
        let copy = row.clone();
        drop(row);
        assert_eq!(copy.into_typed::<Rec>().ok().map(|r| (r.id, r.n)), Some((7, 3)));
    }

    #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
    struct Big {
        id: String,
        pad: [u64; 12],
        #[serde(skip)]
        drops: Option<Arc<AtomicUsize>>,
    }

    impl Drop for Big {
        fn drop(&mut self) {
            if let Some(d) = &self.drops {
                d.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    impl Record for Big {
        type Key = String;
        const NAME: &'static str = "big";
        const TYPE: crate::schema::record::TableType = crate::schema::record::TableType::Set;
        const FIELDS: &'static [crate::schema::record::FieldInfo] = &[];
        const KEY_POSITION: usize = 0;
        const AUTO_INCREMENT: bool = false;

        fn key(&self) -> &String {
            &self.id
        }

        fn indexes() -> Vec<crate::schema::index_spec::IndexSpec<Self>> {
            Vec::new()
        }
    }

    #[test]
    fn large_records_are_boxed_cloned_and_dropped_once() {
        assert!(!fits::<Big>() && Row::<String>::tag_of::<Big>() & INLINE_TAG == 0);
        let drops = Arc::new(AtomicUsize::new(0));
        let big = Big { id: "k".into(), pad: [9; 12], drops: Some(Arc::clone(&drops)) };
        let row = Row::new(big);
        assert_eq!(row.key(), "k");
        let copy = row.clone();
        drop(row);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        let back = copy.into_typed::<Big>().ok().map(|b| b.pad[11]);
        assert_eq!(back, Some(9));
        assert_eq!(drops.load(Ordering::SeqCst), 2, "moved out, then dropped once");
    }

    #[test]
    fn a_row_is_not_another_type() {
        use crate::testing::Other;
        let row = Row::new(rec(1, "a", 0));
        assert!(row.typed::<Other>().is_none());
        let row = row.into_typed::<Other>().err().map(|r| *r.key());
        assert_eq!(row, Some(1), "the row comes back whole");
    }

    #[test]
    fn a_row_is_its_own_slot_one_word_over_its_record() {
        assert_eq!(size_of::<Row<u32>>(), 8 + INLINE);
        let mut slot = Row::with_version(MAX_VERSION, Row::new(rec(1, "a", 0)));
        assert_eq!((slot.version(), *slot.rec().key()), (MAX_VERSION, 1));
        assert_eq!(slot.clone().version(), 0, "a copy is not in a slot");
        let (was, old) = slot.replace(5, Row::new(rec(2, "b", 0)));
        assert_eq!((was, old.version(), *old.key()), (MAX_VERSION, 0, 1));
        assert_eq!(slot.typed::<Rec>().map(|r| (r.id, slot.version())), Some((2, 5)));
        let (version, row) = slot.into_parts();
        assert_eq!((version, row.version()), (5, 0));
        assert_eq!(row.into_typed::<Rec>().ok().map(|r| r.tag), Some("b".to_string()));
    }

    #[test]
    fn ids_and_deadlines_go_through_the_type() {
        let mut row = Row::new(rec(1, "a", 0));
        assert_eq!(row.auto_id(), None);
        assert!(row.set_auto_id(3).is_err());
        assert_eq!(row.deadline(), None);
    }
}
