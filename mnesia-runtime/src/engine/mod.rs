//! The in-memory engine: the sharded store, indexes, expiry, events, commit records and the order's versions.

pub(crate) mod backup_types;
pub(crate) mod browse_types;
pub(crate) mod commit_record;
pub(crate) mod events;
pub(crate) mod index;
pub(crate) mod meta;
pub(crate) mod placement;
pub(crate) mod sequencer;
pub(crate) mod store;
pub(crate) mod system;
pub(crate) mod ttl;
