//! What is built on transactions: backup and restore, bulk loads, export and import, transforms, browsing, inspection of a directory, schema changes, ordered commits and the holds of their transactions with priority, and the registry entry of every table (`erased.rs`).

pub(crate) mod apply_commit;
pub(crate) mod backup;
pub(crate) mod browse;
pub(crate) mod bulk;
pub(crate) mod copies;
pub(crate) mod dump;
pub(crate) mod erased;
pub(crate) mod hold;
pub(crate) mod inspect;
pub(crate) mod kinds;
pub(crate) mod making;
pub(crate) mod migrate;
pub(crate) mod ordered;
pub(crate) mod ordered_snapshot;
pub(crate) mod placed;
pub(crate) mod restore;
pub(crate) mod restore_unclaimed;
pub(crate) mod schema;
pub(crate) mod schema_change;
pub(crate) mod transfer;
