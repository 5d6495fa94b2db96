//! Writes that come encoded to a transaction's part: a commit record's changes (a copy
//! applying another's commit) and a backup's entries (a restore), decoded and checked.

use std::sync::atomic::Ordering;

use crate::disk::record::SnapshotEntry;
use crate::engine::backup_types::RestoreMode;
use crate::engine::commit_record::KeyChange;
use crate::error::{Error, Result};
use crate::schema::record::TableType;
use crate::schema::stored::StoredRecord;

use super::part::TxTable;

impl<T: StoredRecord> TxTable<T> {
    /// Writes a commit record's changes (`TxPart::apply_change`).
    pub(crate) fn apply_writes(&mut self, writes: &[KeyChange]) -> Result<()> {
        use crate::engine::commit_record::Content;
        use crate::engine::commit_record::{decode_whole, misfit};
        use crate::engine::store::Write;
        let bag = self.store.kind == TableType::Bag;
        // Every write decoded and checked before any is made.
        let mut decoded = Vec::with_capacity(writes.len());
        let mut claims = Vec::new();
        for w in writes {
            let key: T::Key = decode_whole::<T::Key>(self.store.meta.name, &w.key)?;
            if let Content::Whole(op) = &w.value {
                return Err(misfit(self.store.meta.name, format!("{op:?} among other writes")));
            }
            if let Content::Claim(id) = w.value {
                if (self.store.meta.key_for_id)(id).as_ref() != Some(&key) {
                    return Err(misfit(
                        self.store.meta.name,
                        format!("id {id} claimed under the key {key:?}"),
                    ));
                }
                claims.push(id);
                continue;
            }
            let records: Vec<T> = match &w.value {
                Content::Put(_) if bag => {
                    return Err(misfit(self.store.meta.name, "one record for a key of a bag"));
                }
                Content::Group(_) if !bag => {
                    return Err(misfit(self.store.meta.name, "a group of records for a key of a set"));
                }
                Content::Put(b) => vec![self.store.meta.decode_whole(b)?],
                Content::Group(bs) => {
                    bs.iter().map(|b| self.store.meta.decode_whole(b)).collect::<Result<_>>()?
                }
                Content::Delete | Content::Claim(_) | Content::Whole(_) => Vec::new(),
            };
            if records.iter().any(|r| r.key() != &key) {
                return Err(misfit(
                    self.store.meta.name,
                    format!("a record filed under another key than {key:?}"),
                ));
            }
            let write = match (&w.value, w.expired) {
                (_, true) => Write::Expire(records),
                (Content::Delete, false) => Write::Delete,
                (Content::Put(_), false) => match records.into_iter().next() {
                    Some(r) => Write::Put(r),
                    None => Write::Delete,
                },
                (Content::Group(_), false) => Write::Group(records),
                (Content::Claim(_) | Content::Whole(_), false) => continue,
            };
            decoded.push((key, write));
        }
        for id in claims {
            self.store.counter.fetch_max(id, Ordering::AcqRel);
        }
        for (key, write) in decoded {
            // Ids written move the counter past them, as any write does.
            for id in write.records().iter().filter_map(StoredRecord::auto_id) {
                self.store.counter.fetch_max(id, Ordering::AcqRel);
            }
            self.set(key, write);
        }
        Ok(())
    }

    /// Writes a backup's entries (`TxPart::restore`).
    pub(crate) fn restore_entries(
        &mut self,
        entries: &[SnapshotEntry],
        mode: RestoreMode,
        counter: u64,
    ) -> Result<u64> {
        // On the store this part writes (the caller raised the counter of the one it looked
        // up before the transaction: another may have taken its place since).
        self.store.counter.fetch_max(counter, Ordering::AcqRel);
        use crate::disk::record::Logged;
        use crate::engine::store::Write;
        let meta = self.store.meta;
        let bad = |e: postcard::Error| {
            Error::codec(format!("table {}: a record of the backup does not decode", meta.name), e)
        };
        let existing = if mode == crate::engine::backup_types::RestoreMode::ClearAndLoad {
            self.select_with(&crate::schema::filter::Filter::all(), |r| r.key().clone())
        } else {
            Vec::new()
        };
        let mut restored = std::collections::HashSet::with_capacity(entries.len());
        let mut n = 0;
        for e in entries {
            let key: T::Key = postcard::from_bytes(&e.key).map_err(bad)?;
            let mut recs: Vec<T> = match &e.value {
                Logged::Put(b) => vec![meta.decode(b).map_err(bad)?],
                Logged::Group(bs) => {
                    bs.iter().map(|b| meta.decode(b)).collect::<Result<_, _>>().map_err(bad)?
                }
                Logged::Delete => continue,
            };
            if recs.iter().any(|r| r.key() != &key) || (self.store.kind != TableType::Bag && recs.len() != 1)
            {
                return Err(Error::Invalid(format!(
                    "table {}: the backup's records under the key {key:?} do not fit the table",
                    self.store.meta.name
                )));
            }
            for r in &recs {
                // Ids written move the counter past them, as any write does.
                if let Some(id) = r.auto_id() {
                    self.store.counter.fetch_max(id, Ordering::AcqRel);
                }
            }
            n += recs.len() as u64;
            restored.insert(key.clone());
            let write = if self.store.kind != TableType::Bag {
                Write::Put(recs.remove(0))
            } else if mode == crate::engine::backup_types::RestoreMode::KeepAndAdd {
                // A bag keeps its records and adds the backup's.
                let mut group = self.read_group(&key);
                let have: Vec<Vec<u8>> = group.iter().map(meta.encode).collect::<Result<_>>()?;
                for r in recs {
                    if !have.contains(&(meta.encode)(&r)?) {
                        group.push(r);
                    }
                }
                Write::Group(group)
            } else {
                Write::Group(recs)
            };
            self.set(key, write);
        }
        for k in existing {
            if !restored.contains(&k) {
                self.set(k, Write::Delete);
            }
        }
        Ok(n)
    }
}
