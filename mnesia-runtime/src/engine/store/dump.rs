//! A table's records to and from disc: filled from the records recovery read (or from a
//! `disc_only_copies` file), and encoded for a checkpoint.

use std::sync::atomic::Ordering;

use crate::base::lock::{HeldLocks, LockReq, lock_order};
use crate::disk::record::{Logged, SnapshotEntry, encode};
use crate::error::{Error, Result};
use crate::schema::stored::{StoredRecord, Versioned};

use super::{ShardMap, TableStore, Write};

/// Rows of a recovered table loaded at a time (see `TableStore::load`).
const LOAD_CHUNK: usize = 1 << 16;

impl<T: StoredRecord> TableStore<T> {
    /// Fills a new table with records recovered from disc, building its indexes: a chunk of
    /// rows at a time, each shard of the table and of its indexes locked once per chunk.
    pub(crate) fn load(&self, rows: &crate::disk::Rows) -> Result<()> {
        let bad = |e: postcard::Error| {
            Error::codec(
                format!(
                    "table {}: a stored record does not decode as {}",
                    self.meta.name,
                    (self.meta.type_name)()
                ),
                e,
            )
        };
        let indexes = self.indexes.load();
        // Sized once: no rehashing while a million records go in.
        self.reserve(rows.len());
        let mut max_id = 0;
        let mut rows = rows.iter();
        loop {
            let mut items = Vec::new();
            let mut read = 0;
            for (kb, (version, value)) in rows.by_ref().take(LOAD_CHUNK) {
                read += 1;
                let key: T::Key = postcard::from_bytes(kb).map_err(bad)?;
                let write = match value {
                    Logged::Put(b) => Write::Put(self.meta.decode(b).map_err(bad)?),
                    Logged::Group(bs) => Write::Group(
                        bs.iter().map(|b| self.meta.decode(b)).collect::<Result<_, _>>().map_err(bad)?,
                    ),
                    Logged::Delete => continue,
                };
                for r in write.records() {
                    max_id = max_id.max(r.auto_id().unwrap_or(0));
                }
                items.push((key, write, *version));
            }
            if read == 0 {
                break;
            }
            let recs: Vec<&T> = items.iter().flat_map(|(_, w, _)| w.records()).collect();
            let version = items.iter().map(|(_, _, v)| *v).max().unwrap_or(0);
            for idx in &indexes.list {
                // A unique index declared since the records were stored may not hold for them.
                if let Err((i, other)) = idx.load_many(&recs, version) {
                    return Err(Error::SchemaMismatch {
                        table: self.meta.name.to_owned(),
                        differences: vec![format!(
                            "the struct declares a unique index on `{}`, but the stored records with keys {other:?} and {:?} share the value {}",
                            idx.field(),
                            recs[i].key(),
                            idx.value_debug(recs[i])
                        )],
                    });
                }
            }
            self.insert_new(items).map_err(|(_, key)| {
                Error::codec_msg(format!("table {}: the key {key:?} is stored twice", self.meta.name))
            })?;
        }
        self.counter.fetch_max(max_id, Ordering::AcqRel);
        Ok(())
    }

    /// Builds a disc-only table's indexes and counter from its file.
    pub(crate) fn load_disc_only(&self) -> Result<()> {
        let Some(disc) = self.disc_only() else { return Ok(()) };
        let indexes = self.indexes.load();
        let mut max_id = 0;
        let mut dup = None;
        self.disc_scan(&disc, &mut |key, version, recs| {
            if let Some(expiry) = &self.expiry {
                expiry.change(key, &[], recs);
            }
            for r in recs {
                max_id = max_id.max(r.auto_id().unwrap_or(0));
                for idx in &indexes.list {
                    if idx.unique() && dup.is_none() {
                        let mut owners = Vec::new();
                        idx.lookup_by_record(r, &mut owners);
                        if let Some(other) = owners.iter().find(|k| *k != key) {
                            dup = Some(format!(
                                "the struct declares a unique index on `{}`, but the stored records with keys {other:?} and {key:?} share the value {}",
                                idx.field(),
                                idx.value_debug(r)
                            ));
                        }
                    }
                    idx.insert(r, version);
                }
            }
        })?;
        if let Some(d) = dup {
            return Err(Error::SchemaMismatch { table: self.meta.name.to_owned(), differences: vec![d] });
        }
        self.counter.fetch_max(max_id, Ordering::AcqRel);
        Ok(())
    }

    /// Every record encoded for a snapshot, with the version that wrote it. Taken shard by
    /// shard while writers go on: each shard is read under its commit lock, so a commit is
    /// either wholly in a shard's copy or (being later) replayed from the log.
    pub(crate) fn snapshot_entries(&self) -> Result<Vec<SnapshotEntry>> {
        self.entries(true)
    }

    /// Every record encoded, wherever it lives, for a caller that holds every commit lock
    /// (moving the table to another storage type).
    pub(crate) fn entries_locked(&self) -> Result<Vec<SnapshotEntry>> {
        let (Some(disc), Some(id)) = (self.disc_only(), self.disk_id()) else { return self.entries(false) };
        let mut out = Vec::new();
        disc.scan(id, |key, version, value| {
            out.push(SnapshotEntry { key: key.to_vec(), version, value });
            Ok(())
        })?;
        Ok(out)
    }

    fn entries(&self, lock: bool) -> Result<Vec<SnapshotEntry>> {
        let mut out = Vec::new();
        for (i, shard) in self.shards.iter().enumerate() {
            let req =
                LockReq { order: lock_order(self.id, 0, i as u16), exclusive: false, lock: &shard.commit };
            let _held = lock.then(|| HeldLocks::acquire(vec![req]));
            let data = shard.data.read();
            match &data.map {
                // Its records are in its file: made durable here, nothing to copy.
                ShardMap::Disc(d) => d.sync()?,
                map => self.map_entries(map, u64::MAX, &mut out)?,
            }
        }
        Ok(out)
    }

    /// Every record of a shard in memory written by a commit up to `max_version`, encoded.
    pub(super) fn map_entries(
        &self,
        map: &ShardMap<T>,
        max_version: u64,
        out: &mut Vec<SnapshotEntry>,
    ) -> Result<()> {
        let put = |key: &T::Key, version: u64, value: Logged, out: &mut Vec<SnapshotEntry>| -> Result<()> {
            if version <= max_version {
                out.push(SnapshotEntry { key: encode(key)?, version, value });
            }
            Ok(())
        };
        match map {
            ShardMap::Set(t) => {
                for s in t.iter().filter(|s| s.version() <= max_version) {
                    put(s.rec().key(), s.version(), Logged::Put((self.meta.encode)(s.rec())?), out)?;
                }
            }
            ShardMap::Ordered(m) => {
                for (k, s) in m.iter().filter(|(_, s)| s.version() <= max_version) {
                    put(k, s.version(), Logged::Put((self.meta.encode)(s.rec())?), out)?;
                }
            }
            ShardMap::Bag(t) => {
                for s in t.iter().filter(|s| s.version() <= max_version) {
                    let Some(first) = s.rec().first() else { continue };
                    let group = s.rec().iter().map(self.meta.encode).collect::<Result<_>>()?;
                    put(first.key(), s.version(), Logged::Group(group), out)?;
                }
            }
            ShardMap::Disc(_) => {}
        }
        Ok(())
    }
}
