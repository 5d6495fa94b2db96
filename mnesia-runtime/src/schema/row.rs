//! A record of any type with a given key type ([`Row`]): what every table's store holds, so
//! that the engine is compiled once per key type rather than once per record type
//! (issue 16). A row keeps its record inline when it is small (most are), boxed otherwise,
//! with a pointer to its type's functions ([`RowType`]): clone, drop, and the record's key,
//! `#[auto_increment]` id and `#[ttl]` deadline.
//!
//! Invariant: a row's `ty` is `RowType::of::<U>()` (or a copy of it: the table of a
//! `const` may be duplicated between codegen units) for the `U` its storage holds. Only
//! [`Row::new`] makes a row; every `unsafe` block below rests on this.
#![allow(unsafe_code)]

use std::any::TypeId;
use std::mem::{ManuallyDrop, MaybeUninit};
use std::time::SystemTime;

use crate::error::Result;
use crate::schema::stored::{Key, StoredRecord};

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
    inline: bool,
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
                inline: fits::<U>(),
                key: |r| StoredRecord::key(r.record::<U>()),
                clone: |r| Row::new(r.record::<U>().clone()),
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
        if r.ty.inline {
            std::ptr::drop_in_place(std::ptr::addr_of_mut!(r.data.inline).cast::<U>());
        } else {
            drop(Box::from_raw(r.data.boxed.cast::<U>()));
        }
    }
}

/// The rows of table `T`'s store.
pub(crate) type RowOf<T> = Row<<T as StoredRecord>::Key>;

/// A record of any type whose key is a `K`: what a table's store holds.
pub(crate) struct Row<K: 'static> {
    ty: &'static RowType<K>,
    data: Data,
}

// SAFETY: a row owns a record of a `StoredRecord` type, which is `Send + Sync`; the type's table is
// immutable and shared.
unsafe impl<K: Send + Sync> Send for Row<K> {}
// SAFETY: as above: `&Row` gives only `&U` (and `&K`).
unsafe impl<K: Send + Sync> Sync for Row<K> {}

impl<K: 'static> Row<K> {
    /// A row holding `rec`.
    pub(crate) fn new<U: StoredRecord<Key = K>>(rec: U) -> Row<K> {
        let ty = RowType::of::<U>();
        let data = if fits::<U>() {
            let mut inline = MaybeUninit::<[u64; INLINE / 8]>::uninit();
            // SAFETY: `U` fits the storage, in size and alignment (`fits`).
            unsafe { inline.as_mut_ptr().cast::<U>().write(rec) };
            Data { inline: ManuallyDrop::new(inline) }
        } else {
            Data { boxed: Box::into_raw(Box::new(rec)).cast::<u8>() }
        };
        Row { ty, data }
    }

    /// The address of the record.
    #[inline]
    fn ptr(&self) -> *const u8 {
        if self.ty.inline {
            // (An inline type's rows use `inline`, see `new`; taking its address reads
            // nothing.)
            std::ptr::addr_of!(self.data.inline).cast::<u8>()
        } else {
            // SAFETY: a boxed type's rows use `boxed` (see `new`).
            unsafe { self.data.boxed }
        }
    }

    /// The record as its own type, which the caller knows it is (the row's type's own
    /// functions, made for that type).
    #[inline]
    fn record<U>(&self) -> &U {
        // SAFETY: called only by `RowType::of::<U>()`'s functions, on rows of that type.
        unsafe { &*self.ptr().cast::<U>() }
    }

    /// The address of the record, for writing.
    fn ptr_mut(&mut self) -> *mut u8 {
        if self.ty.inline {
            std::ptr::addr_of_mut!(self.data.inline).cast::<u8>()
        } else {
            // SAFETY: a boxed type's rows use `boxed` (see `new`).
            unsafe { self.data.boxed }
        }
    }

    /// As [`Row::record`], mutably.
    fn record_mut<U>(&mut self) -> &mut U {
        // SAFETY: as `record`; `&mut self` makes the access unique, and the pointer comes
        // from it (`ptr_mut`).
        unsafe { &mut *self.ptr_mut().cast::<U>() }
    }

    /// Whether the row holds a `U`.
    #[inline]
    fn holds<U: StoredRecord<Key = K>>(&self) -> bool {
        std::ptr::eq(self.ty, RowType::<K>::of::<U>()) || (self.ty.type_id)() == TypeId::of::<U>()
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
            if row.ty.inline {
                Ok(std::ptr::addr_of!(row.data.inline).cast::<U>().read())
            } else {
                Ok(*Box::from_raw(row.data.boxed.cast::<U>()))
            }
        }
    }

    /// The record's Rust type's name.
    pub(crate) fn type_name(&self) -> &'static str {
        (self.ty.type_name)()
    }
}

impl<K: 'static> Drop for Row<K> {
    fn drop(&mut self) {
        (self.ty.drop)(self);
    }
}

impl<K: 'static> Clone for Row<K> {
    #[inline]
    fn clone(&self) -> Self {
        (self.ty.clone)(self)
    }
}

impl<K: Key> StoredRecord for Row<K> {
    type Key = K;

    #[inline]
    fn key(&self) -> &K {
        (self.ty.key)(self)
    }

    fn auto_id(&self) -> Option<u64> {
        (self.ty.auto_id)(self)
    }

    fn set_auto_id(&mut self, id: u64) -> Result<()> {
        (self.ty.set_auto_id)(self, id)
    }

    fn deadline(&self) -> Option<SystemTime> {
        (self.ty.deadline)(self)
    }

    fn set_deadline(&mut self, deadline: Option<SystemTime>) -> Result<()> {
        (self.ty.set_deadline)(self, deadline)
    }

    #[inline]
    fn base(&self) -> *const u8 {
        self.ptr()
    }

    fn record_type(&self) -> TypeId {
        (self.ty.type_id)()
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
        assert!(RowType::<u32>::of::<Rec>().inline);
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
        assert!(!RowType::<String>::of::<Big>().inline);
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
    fn ids_and_deadlines_go_through_the_type() {
        let mut row = Row::new(rec(1, "a", 0));
        assert_eq!(row.auto_id(), None);
        assert!(row.set_auto_id(3).is_err());
        assert_eq!(row.deadline(), None);
    }
}
