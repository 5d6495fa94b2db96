//! The hash builder of the store's shards, its indexes and the expiry index: one choice,
//! so that a key hashes alike in each of them.

/// hashbrown's default (foldhash): fast, and seeded per process.
pub(crate) type Hasher = hashbrown::DefaultHashBuilder;
