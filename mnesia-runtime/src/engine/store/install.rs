//! Installing writes into a table's store: a commit's writes (`install`), a new key
//! written for the first time (`insert_new`), and a table emptied (`clear_all`).

use std::sync::atomic::Ordering;

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;

use super::{ShardMap, TableStore, Write, group_hash, group_key, key_of, slot_hash};
use crate::disk::record::{SnapshotEntry, encode};
use crate::error::{Error, Result};
use crate::schema::stored::{Slot, StoredRecord, Versioned};

impl<T: StoredRecord> TableStore<T> {
    /// Applies one write to its shard, calling `on_change(old, new)` with the key's records
    /// before and after, while the shard is locked (to keep indexes in step). The caller
    /// holds the shard's commit lock exclusively. `floor` is the snapshot registry's, read
    /// after `seq` was taken: with a snapshot open, the replaced records are kept for it.
    pub(crate) fn install(
        &self,
        key: &T::Key,
        hash: u64,
        write: Write<T>,
        seq: u64,
        floor: u64,
        on_change: impl FnOnce(&[T], &[T]),
    ) {
        let on_change = |old: &[T], new: &[T]| {
            if let Some(expiry) = &self.expiry {
                expiry.change(key, old, new);
            }
            on_change(old, new);
        };
        let shard = self.shard_of(hash);
        let mut guard = self.shards[shard].data.write();
        if let Some(cut) = self.cut.load().as_ref()
            && !cut.scanned[shard].load(Ordering::Acquire)
        {
            self.save_for_cut(cut, shard, &guard.map, key, hash);
        }
        let data = &mut *guard;
        data.version = seq;
        let hasher = &self.hasher;
        // With a snapshot open: the key's records as they were and the commit that wrote
        // them, if it held any.
        let keeping = floor != crate::base::snapshots::NONE_OPEN;
        let mut replaced: Option<(u64, Vec<T>)> = None;
        let one = |version: u64, old: T| keeping.then(|| (version, vec![old]));
        match (&mut data.map, write) {
            (ShardMap::Set(t), Write::Put(rec)) => {
                match t.entry(hash, |s| key_of::<T>(s) == key, slot_hash::<T>(hasher)) {
                    Entry::Occupied(mut e) => {
                        let slot = e.get_mut();
                        on_change(std::slice::from_ref(slot.rec()), std::slice::from_ref(&rec));
                        let (version, old) = slot.replace(seq, rec);
                        replaced = one(version, old);
                    }
                    Entry::Vacant(e) => {
                        on_change(&[], std::slice::from_ref(&rec));
                        e.insert(T::Slot::with_version(seq, rec));
                    }
                }
            }
            (ShardMap::Set(t), _) => {
                if let Ok(e) = t.find_entry(hash, |s| key_of::<T>(s) == key) {
                    on_change(std::slice::from_ref(e.get().rec()), &[]);
                    let (version, old) = e.remove().0.into_parts();
                    replaced = one(version, old);
                }
            }
            (ShardMap::Ordered(m), Write::Put(rec)) => match m.get_mut(key) {
                Some(slot) => {
                    on_change(std::slice::from_ref(slot.rec()), std::slice::from_ref(&rec));
                    let (version, old) = slot.replace(seq, rec);
                    replaced = one(version, old);
                }
                None => {
                    on_change(&[], std::slice::from_ref(&rec));
                    m.insert(key.clone(), T::Slot::with_version(seq, rec));
                }
            },
            (ShardMap::Ordered(m), _) => {
                if let Some(old) = m.remove(key) {
                    on_change(std::slice::from_ref(old.rec()), &[]);
                    let (version, old) = old.into_parts();
                    replaced = one(version, old);
                }
            }
            (ShardMap::Disc(d), write) => {
                let result = (|| -> Result<()> {
                    let (version, old) = self.disc_get(d, key)?;
                    on_change(&old, write.records());
                    let value = write.logged(self.meta.encode)?;
                    let id = self
                        .disk_id()
                        .ok_or_else(|| Error::Internal("a disc-only table without an id".into()))?;
                    d.apply(id, false, &[(encode(key)?, seq, value)], false)?;
                    replaced = Some((version, old));
                    Ok(())
                })();
                if let Err(e) = result {
                    self.poison(e);
                }
            }
            (ShardMap::Bag(t), write) => {
                let recs = write.into_records();
                let entry = t.entry(hash, |s| group_key(s) == Some(key), group_hash(hasher));
                match entry {
                    Entry::Occupied(mut e) => {
                        on_change(e.get().rec(), &recs);
                        if recs.is_empty() {
                            replaced = Some(e.remove().0.into_parts());
                        } else {
                            replaced = Some(e.get_mut().replace(seq, recs));
                        }
                    }
                    Entry::Vacant(e) => {
                        on_change(&[], &recs);
                        if !recs.is_empty() {
                            e.insert(Slot::with_version(seq, recs));
                        }
                    }
                }
            }
        }
        if !keeping {
            if data.history.is_some() {
                data.history = None;
            }
        } else if let Some((version, old)) = replaced {
            data.keep(key, version, seq, old, floor);
            self.has_history.store(true, Ordering::Release);
        }
    }

    /// Adds keys that must be new to a store being filled (a bulk load: nobody else reads
    /// or commits to it), grouped by shard so that each shard is locked once. Returns the
    /// position in `items` of a key found already there, and the key.
    /// Each item carries the sequence number of the commit that wrote it.
    pub(crate) fn insert_new(
        &self,
        items: Vec<(T::Key, Write<T>, u64)>,
    ) -> std::result::Result<(), (usize, T::Key)> {
        // Each item with its position and hash, by shard.
        type ByShard<T> = Vec<Vec<(usize, u64, <T as StoredRecord>::Key, Write<T>, u64)>>;
        let mut by_shard: ByShard<T> = (0..self.shards.len()).map(|_| Vec::new()).collect();
        for (at, (key, write, seq)) in items.into_iter().enumerate() {
            let hash = self.hash(&key);
            by_shard[self.shard_of(hash)].push((at, hash, key, write, seq));
        }
        let hasher = &self.hasher;
        for (shard, items) in by_shard.into_iter().enumerate().filter(|(_, v)| !v.is_empty()) {
            let mut data = self.shards[shard].data.write();
            for (at, hash, key, write, seq) in items {
                data.version = data.version.max(seq);
                if let Some(expiry) = &self.expiry {
                    expiry.change(&key, &[], write.records());
                }
                let taken = match (&mut data.map, write) {
                    (ShardMap::Set(t), Write::Put(rec)) => {
                        match t.entry(hash, |s| key_of::<T>(s) == &key, slot_hash::<T>(hasher)) {
                            Entry::Vacant(e) => {
                                e.insert(T::Slot::with_version(seq, rec));
                                false
                            }
                            Entry::Occupied(_) => true,
                        }
                    }
                    (ShardMap::Ordered(m), Write::Put(rec)) => {
                        if m.contains_key(&key) {
                            true
                        } else {
                            m.insert(key.clone(), T::Slot::with_version(seq, rec));
                            false
                        }
                    }
                    (ShardMap::Bag(t), write) => {
                        let recs = write.into_records();
                        match t.entry(hash, |s| group_key(s) == Some(&key), group_hash(hasher)) {
                            Entry::Vacant(e) => {
                                if !recs.is_empty() {
                                    e.insert(Slot::with_version(seq, recs));
                                }
                                false
                            }
                            Entry::Occupied(_) => true,
                        }
                    }
                    // A set or ordered_set is given `Put`s only; disc-only stores are not
                    // bulk loaded.
                    _ => true,
                };
                if taken {
                    return Err((at, key));
                }
            }
        }
        Ok(())
    }

    /// Removes every record. The caller holds every shard's commit lock exclusively;
    /// `floor` is the snapshot registry's, read after `seq` was taken (with a snapshot
    /// open, the records are kept for it).
    pub(crate) fn clear_all(&self, seq: u64, floor: u64) {
        let cut = self.cut.load_full();
        for (i, s) in self.shards.iter().enumerate() {
            let mut d = s.data.write();
            if let Some(cut) = &cut
                && !cut.scanned[i].load(Ordering::Acquire)
            {
                // A backup has not copied this shard yet: it keeps the records of the cut.
                let mut kept = Vec::new();
                let copied = match &d.map {
                    ShardMap::Disc(disc) => self.disk_id().map_or(Ok(()), |id| {
                        disc.scan(id, |key, version, value| {
                            if version <= cut.seq {
                                kept.push(SnapshotEntry { key: key.to_vec(), version, value });
                            }
                            Ok(())
                        })
                    }),
                    map => self.map_entries(map, cut.seq, &mut kept),
                };
                match copied {
                    Ok(()) => cut.saved.lock().extend(kept.into_iter().map(|e| (i, e))),
                    Err(_) => cut.failed.store(true, Ordering::Release),
                }
            }
            d.version = seq;
            if floor != crate::base::snapshots::NONE_OPEN {
                self.keep_all(&mut d, seq, floor);
            } else {
                d.history = None;
            }
            match &mut d.map {
                ShardMap::Set(t) => *t = HashTable::new(),
                ShardMap::Ordered(m) => m.clear(),
                ShardMap::Bag(t) => *t = HashTable::new(),
                ShardMap::Disc(d) => {
                    if let Some(id) = self.disk_id()
                        && let Err(e) = d.apply(id, true, &[], false)
                    {
                        self.poison(e);
                    }
                }
            }
        }
        for i in self.indexes.load().list.iter() {
            i.clear(seq);
        }
        if let Some(expiry) = &self.expiry {
            expiry.clear();
        }
    }
}
