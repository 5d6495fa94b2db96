//! The hash builder of the store's shards, its indexes and the expiry index: one choice,
//! so that a key hashes alike in each of them.

/// hashbrown's default (foldhash): fast, and seeded per process.
pub(crate) type Hasher = hashbrown::DefaultHashBuilder;

/// The shard, of `shards` (a power of two, 64 at most), of a key hashed to `hash`: the
/// top bits of the hash times the golden ratio (Fibonacci hashing), which mixes every bit
/// of the hash in. (The hash's own bits 40 to 45 did not: with about one process seed in
/// 300, consecutive integer keys fell into a few shards, once nearly all into one.)
#[inline]
pub(crate) fn shard_of(hash: u64, shards: usize) -> usize {
    (hash.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as usize & (shards - 1)
}
