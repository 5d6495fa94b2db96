//! A transaction's buffered writes to one table.

use crate::engine::store::Write;
use crate::schema::stored::StoredRecord;

/// One key a transaction writes.
#[derive(Clone)]
pub(crate) struct WriteEntry<T: StoredRecord> {
    pub(crate) key: T::Key,
    pub(crate) hash: u64,
    pub(crate) write: Write<T>,
}

/// The buffered writes of one table, at most one entry per key.
#[derive(Clone)]
pub(crate) struct WriteSet<T: StoredRecord> {
    entries: Vec<WriteEntry<T>>,
    by_key: Option<hashbrown::HashMap<T::Key, usize>>,
}

const WRITE_SET_LINEAR: usize = 12;

impl<T: StoredRecord> WriteSet<T> {
    pub(super) fn new() -> Self {
        WriteSet { entries: Vec::new(), by_key: None }
    }

    pub(crate) fn get(&self, key: &T::Key) -> Option<&Write<T>> {
        self.position(key).map(|i| &self.entries[i].write)
    }

    fn position(&self, key: &T::Key) -> Option<usize> {
        match &self.by_key {
            Some(m) => m.get(key).copied(),
            None => self.entries.iter().position(|e| e.key == *key),
        }
    }

    pub(super) fn set(&mut self, key: T::Key, hash: u64, write: Write<T>) {
        if let Some(i) = self.position(&key) {
            self.entries[i].write = write;
            return;
        }
        if let Some(m) = &mut self.by_key {
            m.insert(key.clone(), self.entries.len());
        } else if self.entries.len() >= WRITE_SET_LINEAR {
            let mut m: hashbrown::HashMap<T::Key, usize> =
                self.entries.iter().enumerate().map(|(i, e)| (e.key.clone(), i)).collect();
            m.insert(key.clone(), self.entries.len());
            self.by_key = Some(m);
        }
        self.entries.push(WriteEntry { key, hash, write });
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &WriteEntry<T>> {
        self.entries.iter()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(super) fn capacity(&self) -> usize {
        self.entries.capacity()
    }

    /// The entries, leaving the set empty (its buffer with them).
    pub(super) fn take_entries(&mut self) -> Vec<WriteEntry<T>> {
        self.by_key = None;
        std::mem::take(&mut self.entries)
    }

    /// Empties the set, keeping its buffer.
    pub(super) fn clear(&mut self) {
        self.by_key = None;
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::store::Write;
    use crate::testing::{Rec, rec};

    #[test]
    fn write_set_keeps_one_entry_per_key_past_the_linear_size() {
        let mut ws: WriteSet<Rec> = WriteSet::new();
        for round in 0..2 {
            for id in 0..40u32 {
                ws.set(id, u64::from(id), Write::Put(rec(id, "t", round)));
            }
        }
        assert_eq!(ws.iter().count(), 40);
        assert!(ws.by_key.is_some());
        for id in 0..40u32 {
            match ws.get(&id) {
                Some(Write::Put(r)) => assert_eq!(r.n, 1, "the last write wins"),
                _ => panic!("missing {id}"),
            }
        }
        ws.set(3, 3, Write::Delete);
        assert!(matches!(ws.get(&3), Some(Write::Delete)));
        assert!(ws.get(&99).is_none());
    }
}
