//! A transaction's buffered writes to one table, and the events of a key's change.

use crate::disk::record::encode;
use crate::engine::events::{DeleteCause, Event};
use crate::engine::store::Write;
use crate::engine::ttl::Alive;
use crate::schema::record::{Record, TableType};

/// One key a transaction writes.
#[derive(Clone)]
pub(crate) struct WriteEntry<T: Record> {
    pub(crate) key: T::Key,
    pub(crate) hash: u64,
    pub(crate) write: Write<T>,
}

/// The events of one key's change: a delete when the key is left empty; otherwise a write
/// per record now there that was not before and, in a bag, a delete per record removed
/// (carrying the record, whatever the subscription). A removed record whose deadline had
/// passed is a delete with the cause `Expired` (before the write that took its key, which
/// does not report it as its `old`).
pub(super) fn change_events<T: Record>(
    key: T::Key,
    change: (&[T], &[T]),
    detailed: bool,
    cause: DeleteCause,
    alive: Alive,
    out: &mut Vec<Event<T>>,
) {
    let (old, new) = change;
    let cause_of = |r: &T| if alive.keeps(r) { cause } else { DeleteCause::Expired };
    if T::TYPE != TableType::Bag {
        if new.is_empty() {
            if let Some(gone) = old.first() {
                out.push(Event::Delete { key, old: detailed.then(|| gone.clone()), cause: cause_of(gone) });
            }
            return;
        }
        let replaced = old.first().filter(|r| alive.keeps(*r));
        if let Some(gone) = old.first().filter(|r| !alive.keeps(*r)) {
            // The expired record a write took the key of goes first.
            out.push(Event::Delete {
                key: key.clone(),
                old: detailed.then(|| gone.clone()),
                cause: DeleteCause::Expired,
            });
        }
        for n in new {
            out.push(Event::Write { new: n.clone(), old: detailed.then(|| replaced.cloned()).flatten() });
        }
        return;
    }
    if new.is_empty() {
        for r in old {
            out.push(Event::Delete { key: key.clone(), old: Some(r.clone()), cause: cause_of(r) });
        }
        return;
    }
    // Bag records are told apart by their encoding.
    let encoded = |r: &T| encode(r).unwrap_or_default();
    let before: Vec<Vec<u8>> = old.iter().map(encoded).collect();
    let after: Vec<Vec<u8>> = new.iter().map(encoded).collect();
    for (r, b) in old.iter().zip(&before) {
        if !after.contains(b) {
            out.push(Event::Delete { key: key.clone(), old: Some(r.clone()), cause: cause_of(r) });
        }
    }
    for (n, a) in new.iter().zip(&after) {
        if !before.contains(a) {
            out.push(Event::Write { new: n.clone(), old: None });
        }
    }
}

/// The buffered writes of one table, at most one entry per key.
#[derive(Clone)]
pub(crate) struct WriteSet<T: Record> {
    entries: Vec<WriteEntry<T>>,
    by_key: Option<hashbrown::HashMap<T::Key, usize>>,
}

const WRITE_SET_LINEAR: usize = 12;

impl<T: Record> WriteSet<T> {
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
