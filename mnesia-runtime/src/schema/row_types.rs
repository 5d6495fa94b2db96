//! Row types by number. A row keeps its type as a 15-bit number in the same word as the
//! version of the commit that wrote it (`schema/row.rs`), so that a `set` table's slot is
//! the row itself, with no word of its own for either: this registry gives each record
//! type its number once, and turns a number back into the type's functions.
//!
//! Numbers are handed out in order and never reused; a type keeps its number for the
//! process's life. A thread keeps the numbers it looked up last in a small cache (by the
//! address of the type's table, hashed), so making a row costs one thread-local read; the
//! registry's lock is taken on a miss: the first row of a type on a thread, or a type
//! whose entry another took since (a thread going round more types than the cache holds).
#![allow(unsafe_code)]

use std::any::TypeId;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

use parking_lot::Mutex;

/// How many record types a process can number: a row's number is 15 bits.
pub(super) const CAPACITY: usize = 1 << 15;

/// The type (an erased `&'static RowType<K>`) of each number handed out; null beyond.
static TYPES: [AtomicPtr<()>; CAPACITY] = [const { AtomicPtr::new(ptr::null_mut()) }; CAPACITY];

/// The number of each record type numbered so far.
static NUMBERS: Mutex<BTreeMap<TypeId, u16>> = Mutex::new(BTreeMap::new());

/// How many numbers a thread keeps (a power of two).
const RECENT: usize = 16;

thread_local! {
    /// This thread's last lookups: (address of a type's table, its number), by address.
    static RECENT_NUMBERS: [Cell<(usize, u16)>; RECENT] =
        const { [const { Cell::new((0, 0)) }; RECENT] };
}

/// The number of the type whose functions are at `ty` (a `&'static RowType<K>`, erased),
/// whose Rust type is `type_id()`. The same Rust type has one number whichever copy of
/// its table `ty` is (a `const`'s table may be duplicated between codegen units); tables
/// of different types are at different addresses (each holds its own type's `TypeId`
/// function), which is what the thread's cache keys on.
///
/// # Panics
///
/// When a process makes rows of more than 32 768 record types (a program declares far
/// fewer: each is a `#[derive(Table)]`).
#[inline]
pub(super) fn number(ty: *const (), type_id: fn() -> TypeId) -> u16 {
    let addr = ty as usize;
    // The top bits of the address times a large odd constant (Fibonacci hashing): tables
    // lie a few words apart, which the low bits alone would crowd into a few entries.
    let at = addr.wrapping_mul(0x9E37_79B9_7F4A_7C15_u64 as usize) >> (usize::BITS - RECENT.ilog2());
    let recent = RECENT_NUMBERS.with(|r| r[at].get());
    if recent.0 == addr {
        return recent.1;
    }
    let n = number_slowly(ty, type_id());
    RECENT_NUMBERS.with(|r| r[at].set((addr, n)));
    n
}

/// [`number`] through the registry's lock.
#[cold]
fn number_slowly(ty: *const (), type_id: TypeId) -> u16 {
    let mut numbers = NUMBERS.lock();
    if let Some(&n) = numbers.get(&type_id) {
        return n;
    }
    let n = numbers.len();
    assert!(n < CAPACITY, "more than {CAPACITY} record types in one process");
    // Published before the number can be: every row of the type is made after this store,
    // and reaches other threads through what synchronises them.
    TYPES[n].store(ty.cast_mut(), Ordering::Release);
    let n = n as u16;
    numbers.insert(type_id, n);
    n
}

/// The type numbered `n`, as [`number`] was given it (erased): never null for a number
/// [`number`] returned.
#[inline]
pub(super) fn get(n: u16) -> *const () {
    TYPES[usize::from(n)].load(Ordering::Acquire).cast_const()
}

#[cfg(test)]
mod tests {
    use super::*;

    static A: u8 = 1;
    static B: u8 = 2;
    static C: u8 = 3;

    #[test]
    fn a_type_keeps_one_number_whichever_copy_of_its_table() {
        struct One;
        struct Two;
        let a = number(ptr::addr_of!(A).cast(), TypeId::of::<One>);
        assert_eq!(get(a), ptr::addr_of!(A).cast::<()>());
        assert_eq!(number(ptr::addr_of!(A).cast(), TypeId::of::<One>), a);
        // Another table of the same type: the same number, the first table kept.
        assert_eq!(number(ptr::addr_of!(B).cast(), TypeId::of::<One>), a);
        assert_eq!(get(a), ptr::addr_of!(A).cast::<()>());
        let b = number(ptr::addr_of!(C).cast(), TypeId::of::<Two>);
        assert_ne!(a, b);
        assert_eq!(get(b), ptr::addr_of!(C).cast::<()>());
        let elsewhere = std::thread::spawn(|| number(ptr::addr_of!(C).cast(), TypeId::of::<Two>));
        assert_eq!(elsewhere.join().ok(), Some(b));
    }
}
