//! Which layout a type-erased store can keep its records in without slowing reads: the
//! question issue 16 (compile time) turns on. Today each table's shards are a typed
//! `hashbrown::HashTable<Slot<T>>`, so the engine is compiled again for every record type.
//! A store compiled once must hold records it does not know, reaching their keys through a
//! per-type table of functions. Three layouts, measured in the same run:
//!
//! - `typed` (the floor): `HashTable<Slot<Rec>>`, the record inline in the hash table.
//! - `slab`: a hash table of `u32` slot numbers into a slab whose stride is the record
//!   type's size, known at run time (one layout for every type; a further dependent load).
//! - `class`: the record inline in a `HashTable<Slot<Block>>` of a size class (here 64
//!   bytes): hashbrown compiled once per class, not per type; keys hashed and compared
//!   through function pointers.
//!
//! A key found (hash, probe, compare, a field read: the layout's own cost), a key read (the
//! record cloned too, as a transaction's read does) and a scan with a condition on a field,
//! at 1k, 100k and 1M records of 64 bytes (the one size class measured: a record smaller
//! than its class, or one that spills into the next, costs memory not measured here). Prints JSON: each layout's nanoseconds beside the typed floor's.
//!
//! Run: `cargo run --release -p bench --bin store_layout`.

use std::alloc::{Layout, alloc, dealloc, realloc};
use std::hash::{BuildHasher, Hash};
use std::hint::black_box;
use std::mem::{ManuallyDrop, MaybeUninit};
use std::time::Instant;

use hashbrown::DefaultHashBuilder as Hasher;
use hashbrown::HashTable;
use serde_json::{Map, Value, json};

/// The record of the bench's `User` table.
#[derive(Clone)]
struct Rec {
    id: u64,
    email: String,
    age: u32,
    name: String,
}

fn rec(i: u64) -> Rec {
    Rec { id: i, email: format!("user{i}@example.com"), age: (i % 90) as u32, name: format!("name {i}") }
}

struct Slot<R> {
    /// Part of the layout measured (a store's slot carries it), not read here.
    #[allow(dead_code)]
    version: u64,
    rec: R,
}

/// What an erased store knows of a record type: its size and functions over raw pointers.
struct Vt {
    size: usize,
    align: usize,
    hash_key: unsafe fn(*const u8, &Hasher) -> u64,
    key_of: unsafe fn(*const u8) -> *const u8,
    key_eq: unsafe fn(*const u8, *const u8) -> bool,
    drop: unsafe fn(*mut u8),
    age: unsafe fn(*const u8) -> *const u8,
}

/// # Safety
/// `k` points to a live `K`.
unsafe fn hash_key<K: Hash>(k: *const u8, s: &Hasher) -> u64 {
    s.hash_one(unsafe { &*k.cast::<K>() })
}

/// # Safety
/// `a` and `b` point to live `K`s.
unsafe fn key_eq<K: Eq>(a: *const u8, b: *const u8) -> bool {
    unsafe { *a.cast::<K>() == *b.cast::<K>() }
}

/// # Safety
/// `p` points to a live `T`, not used again.
unsafe fn drop_in<T>(p: *mut u8) {
    unsafe { std::ptr::drop_in_place(p.cast::<T>()) }
}

/// # Safety
/// `p` points to a live `Rec`.
unsafe fn key_of_rec(p: *const u8) -> *const u8 {
    unsafe { std::ptr::addr_of!((*p.cast::<Rec>()).id).cast() }
}

/// # Safety
/// `p` points to a live `Rec`.
unsafe fn age_of_rec(p: *const u8) -> *const u8 {
    unsafe { std::ptr::addr_of!((*p.cast::<Rec>()).age).cast() }
}

static REC: Vt = Vt {
    size: size_of::<Rec>(),
    align: align_of::<Rec>(),
    hash_key: hash_key::<u64>,
    key_of: key_of_rec,
    key_eq: key_eq::<u64>,
    drop: drop_in::<Rec>,
    age: age_of_rec,
};

/// Records in one allocation, `stride` bytes apart: the version, then the record.
struct Slab {
    vt: &'static Vt,
    buf: *mut u8,
    stride: usize,
    offset: usize,
    align: usize,
    cap: usize,
    len: usize,
    table: HashTable<u32>,
    hasher: Hasher,
}

impl Slab {
    fn new(vt: &'static Vt) -> Slab {
        let align = vt.align.max(8);
        let offset = 8usize.next_multiple_of(vt.align);
        let stride = (offset + vt.size).next_multiple_of(align);
        Slab {
            vt,
            buf: std::ptr::null_mut(),
            stride,
            offset,
            align,
            cap: 0,
            len: 0,
            table: HashTable::new(),
            hasher: Hasher::default(),
        }
    }

    fn layout(&self, cap: usize) -> Layout {
        Layout::from_size_align(cap * self.stride, self.align).expect("a slab's layout")
    }

    /// # Safety
    /// `i` < `len`: a live slot.
    unsafe fn rec(&self, i: u32) -> *const u8 {
        // SAFETY: `i` < `len` <= `cap`: inside the allocation.
        unsafe { self.buf.add(i as usize * self.stride + self.offset) }
    }

    /// Moves the record `r` points to into the slab (its key new to it).
    ///
    /// # Safety
    /// `r` points to a live record of the slab's type, which the caller forgets.
    unsafe fn insert(&mut self, r: *const u8) {
        if self.len == self.cap {
            let cap = (self.cap * 2).max(16);
            // SAFETY: the layouts are the slab's, nonzero in size.
            self.buf = unsafe {
                if self.cap == 0 {
                    alloc(self.layout(cap))
                } else {
                    realloc(self.buf, self.layout(self.cap), cap * self.stride)
                }
            };
            assert!(!self.buf.is_null(), "out of memory");
            self.cap = cap;
        }
        let i = u32::try_from(self.len).expect("fewer than 2^32 records");
        self.len += 1;
        let (vt, hasher) = (self.vt, &self.hasher);
        // SAFETY: slot `i` is inside the allocation and unused; `r` is a live record.
        let h = unsafe {
            let slot = self.buf.add(i as usize * self.stride);
            slot.cast::<u64>().write(1);
            std::ptr::copy_nonoverlapping(r, slot.add(self.offset), vt.size);
            (vt.hash_key)((vt.key_of)(r), hasher)
        };
        let (buf, stride, offset) = (self.buf, self.stride, self.offset);
        self.table.insert_unique(h, i, |&j| {
            // SAFETY: every number in the table is a live slot.
            unsafe { (vt.hash_key)((vt.key_of)(buf.add(j as usize * stride + offset)), hasher) }
        });
    }

    #[inline(never)]
    fn find(&self, key: u64) -> Option<&Rec> {
        let vt = self.vt;
        let k = std::ptr::addr_of!(key).cast::<u8>();
        // SAFETY: `k` is a `u64`, the key type of `REC`; every number is a live slot.
        unsafe {
            let h = (vt.hash_key)(k, &self.hasher);
            let i = *self.table.find(h, |&j| (vt.key_eq)((vt.key_of)(self.rec(j)), k))?;
            Some(&*self.rec(i).cast::<Rec>())
        }
    }

    #[inline(never)]
    fn scan(&self) -> usize {
        let age = self.vt.age;
        (0..self.len as u32)
            // SAFETY: every slot below `len` is live.
            .filter(|&i| unsafe { *age(self.rec(i)).cast::<u32>() } > 50)
            .count()
    }
}

impl Drop for Slab {
    fn drop(&mut self) {
        for i in 0..self.len as u32 {
            // SAFETY: every slot below `len` is live, and dropped once.
            unsafe { (self.vt.drop)(self.rec(i).cast_mut()) }
        }
        if self.cap > 0 {
            // SAFETY: allocated with this layout.
            unsafe { dealloc(self.buf, self.layout(self.cap)) }
        }
    }
}

/// A size class of 64 bytes: any record up to that size, inline.
type Block = [MaybeUninit<u64>; 8];

struct Classed {
    vt: &'static Vt,
    table: HashTable<Slot<Block>>,
    hasher: Hasher,
}

impl Classed {
    /// # Safety
    /// As [`Slab::insert`]; the record fits the class.
    unsafe fn insert(&mut self, r: *const u8) {
        let (vt, hasher) = (self.vt, &self.hasher);
        assert!(vt.size <= size_of::<Block>() && vt.align <= align_of::<Block>());
        let mut block: Block = [MaybeUninit::uninit(); 8];
        // SAFETY: the record fits the block; `r` is live.
        let h = unsafe {
            std::ptr::copy_nonoverlapping(r, block.as_mut_ptr().cast::<u8>(), vt.size);
            (vt.hash_key)((vt.key_of)(r), hasher)
        };
        self.table.insert_unique(h, Slot { version: 1, rec: block }, |s| {
            // SAFETY: every block in the table holds a live record.
            unsafe { (vt.hash_key)((vt.key_of)(s.rec.as_ptr().cast()), hasher) }
        });
    }

    #[inline(never)]
    fn find(&self, key: u64) -> Option<&Rec> {
        let vt = self.vt;
        let k = std::ptr::addr_of!(key).cast::<u8>();
        // SAFETY: `k` is a `u64`, the key type of `REC`; every block holds a live `Rec`.
        unsafe {
            let h = (vt.hash_key)(k, &self.hasher);
            let s = self.table.find(h, |s| (vt.key_eq)((vt.key_of)(s.rec.as_ptr().cast()), k))?;
            Some(&*s.rec.as_ptr().cast::<Rec>())
        }
    }

    #[inline(never)]
    fn scan(&self) -> usize {
        let age = self.vt.age;
        // SAFETY: every block holds a live record.
        self.table.iter().filter(|s| unsafe { *age(s.rec.as_ptr().cast()).cast::<u32>() } > 50).count()
    }
}

impl Drop for Classed {
    fn drop(&mut self) {
        for s in self.table.iter_mut() {
            // SAFETY: every block holds a live record, dropped once.
            unsafe { (self.vt.drop)(s.rec.as_mut_ptr().cast()) }
        }
    }
}

struct Typed {
    table: HashTable<Slot<Rec>>,
    hasher: Hasher,
}

impl Typed {
    #[inline(never)]
    fn find(&self, key: u64) -> Option<&Rec> {
        let h = self.hasher.hash_one(key);
        self.table.find(h, |s| s.rec.id == key).map(|s| &s.rec)
    }

    #[inline(never)]
    fn scan(&self) -> usize {
        self.table.iter().filter(|s| s.rec.age > 50).count()
    }
}

/// Nanoseconds per call of `f(i)` for `ops` calls, the best of three rounds.
fn per_op(ops: u64, mut f: impl FnMut(u64)) -> f64 {
    (0..3)
        .map(|_| {
            let t = Instant::now();
            for i in 0..ops {
                f(i);
            }
            t.elapsed().as_nanos() as f64 / ops as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn main() {
    let mut figures = Map::new();
    for n in [1_000u64, 100_000, 1_000_000] {
        let hasher = Hasher::default();
        let mut typed = Typed { table: HashTable::new(), hasher };
        let mut slab = Slab::new(&REC);
        let mut class = Classed { vt: &REC, table: HashTable::new(), hasher: Hasher::default() };
        for i in 0..n {
            let r = rec(i);
            let h = typed.hasher.hash_one(r.id);
            let hasher = &typed.hasher;
            typed.table.insert_unique(h, Slot { version: 1, rec: r }, |s| hasher.hash_one(s.rec.id));
            let (a, b) = (ManuallyDrop::new(rec(i)), ManuallyDrop::new(rec(i)));
            // SAFETY: each record is moved into one store and forgotten here.
            unsafe {
                slab.insert(std::ptr::addr_of!(*a).cast());
                class.insert(std::ptr::addr_of!(*b).cast());
            }
        }
        // Each layout gives back the record stored under a key, whole.
        for k in [0, n / 2, n - 1] {
            let same = |r: Option<&Rec>| r.map(|r| (r.id, r.email.clone(), r.age, r.name.clone()));
            let want = same(Some(&rec(k)));
            assert!(same(typed.find(k)) == want && same(slab.find(k)) == want && same(class.find(k)) == want);
        }
        assert!(typed.find(n).is_none() && slab.find(n).is_none() && class.find(n).is_none());
        let ops = 2_000_000u64;
        let pick = |i: u64| i.wrapping_mul(7919) % n;
        let scans = (10_000_000 / n).max(1);
        let per_record = |ns: f64| ns / n as f64;
        // A key found (its record's age read: no copy, so the layout's cost shows), and a
        // key read (the record cloned, as a transaction's read does).
        let found = |r: Option<&Rec>| {
            black_box(r.map(|r| r.age));
        };
        let floor_find = per_op(ops, |i| found(typed.find(pick(i))));
        let floor_read = per_op(ops, |i| drop(black_box(typed.find(pick(i)).cloned())));
        let floor_scan = per_record(per_op(scans, |_| {
            black_box(typed.scan());
        }));
        let layouts = [
            (
                "slab",
                per_op(ops, |i| found(slab.find(pick(i)))),
                per_op(ops, |i| drop(black_box(slab.find(pick(i)).cloned()))),
                per_record(per_op(scans, |_| {
                    black_box(slab.scan());
                })),
            ),
            (
                "class",
                per_op(ops, |i| found(class.find(pick(i)))),
                per_op(ops, |i| drop(black_box(class.find(pick(i)).cloned()))),
                per_record(per_op(scans, |_| {
                    black_box(class.scan());
                })),
            ),
        ];
        for (layout, find, read, scanned) in layouts {
            for (what, ours, floor, unit) in [
                ("find", find, floor_find, "ns_per_op"),
                ("read", read, floor_read, "ns_per_op"),
                ("scan", scanned, floor_scan, "ns_per_record"),
            ] {
                figures.insert(
                    format!("{what}_{layout}_{n}"),
                    json!({ unit: round(ours), "floor": round(floor), "ratio": round(ours / floor) }),
                );
            }
        }
    }
    let report = json!({ "figures": Value::Object(figures), "floor": "typed HashTable<Slot<Rec>>" });
    println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
}
