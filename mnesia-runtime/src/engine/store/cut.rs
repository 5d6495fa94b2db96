//! A backup's cut of a table: the records as they were at one commit, copied shard by
//! shard while commits go on (a commit changing a shard not copied yet saves the records
//! it replaces first).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::base::prefetch::each_warmed;
use crate::disk::record::{EntryEncoder, Logged, SnapshotEntry, encode};
use crate::error::{Error, Result};
use crate::schema::record::TableType;
use crate::schema::stored::{StoredRecord, Versioned};

use super::{ShardMap, TableStore, group_key, key_of};

/// A backup in progress on a table: the commit it was cut at, the shards it has copied,
/// and the records — as they were at the cut — that later commits changed in shards it had
/// not copied yet (copy on write).
pub(crate) struct Cut {
    pub(crate) seq: u64,
    pub(super) scanned: Box<[AtomicBool]>,
    pub(super) saved: parking_lot::Mutex<Vec<(usize, SnapshotEntry)>>,
    /// A record could not be saved: the backup fails.
    pub(super) failed: AtomicBool,
}

impl<T: StoredRecord> TableStore<T> {
    /// Starts a backup cut at commit `seq`. The caller holds every commit lock of the table
    /// (shared), so every commit up to `seq` is installed and none after has started.
    pub(crate) fn begin_cut(&self, seq: u64) -> Arc<Cut> {
        let cut = Arc::new(Cut {
            seq,
            scanned: (0..self.shards.len()).map(|_| AtomicBool::new(false)).collect(),
            saved: parking_lot::Mutex::new(Vec::new()),
            failed: AtomicBool::new(false),
        });
        self.cut.store(Some(Arc::clone(&cut)));
        cut
    }

    /// Ends the backup in progress.
    pub(crate) fn end_cut(&self) {
        self.cut.store(None);
    }

    /// Saves a key's records as they were at the cut, before a commit changes them.
    pub(super) fn save_for_cut(&self, cut: &Cut, shard: usize, map: &ShardMap<T>, key: &T::Key, hash: u64) {
        let found: Result<Option<(u64, Logged)>> = (|| {
            Ok(match map {
                ShardMap::Set(t) => match t.find(hash, |s| key_of::<T>(s) == key) {
                    Some(s) => Some((s.version(), Logged::Put((self.meta.encode)(s.rec())?))),
                    None => None,
                },
                ShardMap::Ordered(m) => match m.get(key) {
                    Some(s) => Some((s.version(), Logged::Put((self.meta.encode)(s.rec())?))),
                    None => None,
                },
                ShardMap::Bag(t) => match t.find(hash, |s| group_key(s) == Some(key)) {
                    Some(s) => Some((
                        s.version(),
                        Logged::Group(s.rec().iter().map(self.meta.encode).collect::<Result<_>>()?),
                    )),
                    None => None,
                },
                ShardMap::Disc(d) => {
                    let (version, recs) = self.disc_get(d, key)?;
                    match recs.as_slice() {
                        [] => None,
                        [r] if self.kind != TableType::Bag => {
                            Some((version, Logged::Put((self.meta.encode)(r)?)))
                        }
                        rs => Some((
                            version,
                            Logged::Group(rs.iter().map(self.meta.encode).collect::<Result<_>>()?),
                        )),
                    }
                }
            })
        })();
        match found.and_then(|f| f.map(|(v, value)| encode(key).map(|k| (v, k, value))).transpose()) {
            // Changed since the cut already (its state at the cut was saved then), or absent.
            Ok(Some((version, key, value))) if version <= cut.seq => {
                cut.saved.lock().push((shard, SnapshotEntry { key, version, value }));
            }
            Ok(_) => {}
            Err(_) => cut.failed.store(true, Ordering::Release),
        }
    }

    /// A shard's records as they were at the cut: those not changed since, copied under the
    /// shard's read lock (after which commits no longer save for it), and those saved.
    pub(crate) fn cut_shard(&self, cut: &Cut, shard: usize, out: &mut EntryEncoder) -> Result<()> {
        {
            let data = self.shards[shard].data.read();
            match &data.map {
                ShardMap::Disc(d) => {
                    if let Some(id) = self.disk_id() {
                        d.scan(id, |key, version, value| {
                            if version <= cut.seq {
                                out.entry(key, version, &value);
                            }
                            Ok(())
                        })?;
                    }
                }
                ShardMap::Set(t) => each_warmed(
                    t.iter().filter(|s| s.version() <= cut.seq),
                    |s| (self.meta.warm)(s.rec()),
                    |s| out.record(s.rec().key(), s.version(), s.rec(), self.meta.extend),
                )?,
                ShardMap::Ordered(m) => each_warmed(
                    m.values().filter(|s| s.version() <= cut.seq),
                    |s| (self.meta.warm)(s.rec()),
                    |s| out.record(s.rec().key(), s.version(), s.rec(), self.meta.extend),
                )?,
                ShardMap::Bag(t) => each_warmed(
                    t.iter().filter(|s| s.version() <= cut.seq),
                    |s| s.rec().iter().for_each(self.meta.warm),
                    |s| match s.rec().first() {
                        Some(first) => out.group(first.key(), s.version(), s.rec(), self.meta.extend),
                        None => Ok(()),
                    },
                )?,
            }
            cut.scanned[shard].store(true, Ordering::Release);
        }
        let mut saved = cut.saved.lock();
        let (mine, rest): (Vec<_>, Vec<_>) =
            std::mem::take(&mut *saved).into_iter().partition(|(s, _)| *s == shard);
        *saved = rest;
        drop(saved);
        for (_, e) in mine {
            out.entry(&e.key, e.version, &e.value);
        }
        if cut.failed.load(Ordering::Acquire) {
            return Err(Error::Invalid(format!(
                "table {}: a record changed during the backup could not be saved",
                self.meta.name
            )));
        }
        Ok(())
    }
}
