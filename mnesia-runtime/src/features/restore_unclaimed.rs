//! Restoring a backup into `disc_copies` tables that no record type has claimed in this
//! process (a database opened without its types, as `mnesia restore` opens it).
//!
//! No record is decoded into a Rust value: the backup's entries are the bytes the log and
//! the snapshots hold. Checked first, before anything changes: the file whole, each
//! table's definition against the schema's, each record against the stored record format,
//! keys once each (but in a bag), and unique indexes (on the records' decoded values).
//! Then, as a typed clear-and-load does: the records are logged under a new table id, the
//! schema switches to it in one write once the log is on disc, and the recovered rows are
//! replaced. A crash before the switch leaves the old table; after it, the new one.

use std::collections::HashMap;
use std::io::Read;

use crate::base::progress::Ticker;
use crate::db::Database;
use crate::disk::format::{self, RecordFormat};
use crate::disk::record::{Logged, LoggedRef, TableOps};
use crate::disk::{Pending, Rows, schema::TableDef};
use crate::engine::backup_types::{BackupTable, RestoreMode};
use crate::error::{Error, Result};
use crate::features::backup::{BackupReader, RestoreOptions};
use crate::schema::record::{StorageType, TableType};

use crate::features::bulk::LOG_BATCH;

/// One table being restored: where its records go and what they must satisfy.
struct Target {
    /// The table as the schema has it now.
    def: TableDef,
    counter: u64,
    format: RecordFormat,
    /// The key field's name.
    key: String,
    /// The fields with a unique index.
    unique: Vec<String>,
    rows: Rows,
    /// For each unique index, the values seen (as JSON text) and the key holding each.
    seen: Vec<HashMap<String, Vec<u8>>>,
    /// The version the restored rows get.
    version: u64,
}

impl Database {
    /// The tables of a backup, not skipped, that this database has on disc but unclaimed.
    pub(crate) fn unclaimed_in(&self, tables: &[BackupTable], options: &RestoreOptions) -> Vec<String> {
        let Some(disk) = self.disk() else { return Vec::new() };
        let pending = disk.pending.lock();
        tables
            .iter()
            .filter(|t| {
                options.mode_of(&t.def.name) != RestoreMode::Skip && pending.contains_key(&t.def.name)
            })
            .map(|t| t.def.name.clone())
            .collect()
    }

    /// Restores the backup into unclaimed tables (every table it restores is one: see
    /// [`Database::unclaimed_in`]). The caller holds the schema lock (`_schema`).
    pub(crate) fn restore_unclaimed<R: Read>(
        &self,
        reader: BackupReader<R>,
        options: &RestoreOptions,
        _schema: parking_lot::MutexGuard<'_, ()>,
    ) -> Result<u64> {
        let disk =
            self.disk().ok_or_else(|| Error::Internal("unclaimed tables without a directory".into()))?;
        let seq = self.next_seq();
        let mut targets = self.unclaimed_targets(reader.tables(), options, seq)?;
        let mut ticker = Ticker::new(options.progress.as_ref());
        let mut restored = 0;
        reader.for_each(|table, entry| {
            let Some(t) = targets.get_mut(table).and_then(Option::as_mut) else { return Ok(()) };
            restored += t.add(entry.key, &entry.value)?;
            ticker.at(restored);
            Ok(())
        })?;
        // Logged under new ids, then switched to in one schema write.
        let mut switched = Vec::new();
        for t in targets.iter_mut().flatten() {
            let id = disk.update_schema(|schema| schema.allocate_id())??;
            let mut batch = Vec::new();
            let mut bytes = 0;
            for (key, (_, value)) in t.rows.iter() {
                bytes += key.len() + crate::disk::record::logged_len(value);
                batch.push((key.clone(), value.clone()));
                if bytes >= LOG_BATCH {
                    self.sequence(&[ops(id, t.counter, std::mem::take(&mut batch))])?;
                    bytes = 0;
                }
            }
            // Also when empty: the new id's counter is logged.
            self.sequence(&[ops(id, t.counter, batch)])?;
            switched.push((t.def.id, TableDef { id, ..t.def.clone() }));
        }
        disk.wal.sync()?;
        disk.update_schema(|schema| {
            schema.tables.retain(|d| !switched.iter().any(|(old, _)| *old == d.id));
            schema.tables.extend(switched.iter().map(|(_, def)| def.clone()));
        })?;
        let mut pending = disk.pending.lock();
        for (t, (_, def)) in targets.into_iter().flatten().zip(switched) {
            pending.insert(def.name.clone(), Pending { def, rows: t.rows, counter: t.counter });
        }
        drop(pending);
        ticker.end(restored);
        Ok(restored)
    }

    /// What each table of the backup restores into (`None`: skipped), checked against the
    /// schema's tables.
    fn unclaimed_targets(
        &self,
        tables: &[BackupTable],
        options: &RestoreOptions,
        version: u64,
    ) -> Result<Vec<Option<Target>>> {
        let disk =
            self.disk().ok_or_else(|| Error::Internal("unclaimed tables without a directory".into()))?;
        let pending = disk.pending.lock();
        let mut targets = Vec::with_capacity(tables.len());
        for backup in tables {
            let name = &backup.def.name;
            let mode = options.mode_of(name);
            if mode == RestoreMode::Skip {
                targets.push(None);
                continue;
            }
            let Some(here) = pending.get(name) else {
                let why = if self.inner.tables.load().contains_key(name) {
                    "is claimed by its type here while others are not: restore them apart"
                } else {
                    "is not in this database: create it first, or skip it"
                };
                return Err(Error::Invalid(format!("table {name} of the backup {why}")));
            };
            if mode != RestoreMode::ClearAndLoad {
                return Err(Error::Invalid(format!(
                    "table {name}: without its record type a table can only be cleared and loaded ({mode:?} needs the program's types)"
                )));
            }
            if here.def.storage != StorageType::DiscCopies {
                return Err(Error::Invalid(format!(
                    "table {name} is {:?}: without its record type only disc_copies tables can be restored (restore it in the program that claims it)",
                    here.def.storage
                )));
            }
            let differences = same_shape(&backup.def, &here.def);
            if !differences.is_empty() {
                return Err(Error::SchemaMismatch { table: name.clone(), differences });
            }
            let format = here.def.record_format("to check the backup's records without the table's type")?;
            let key = here.def.key_name().to_owned();
            format.field(&key)?;
            let unique: Vec<String> =
                here.def.indexes.iter().filter(|i| i.unique).map(|i| i.field.clone()).collect();
            targets.push(Some(Target {
                counter: here.counter.max(backup.counter),
                def: here.def.clone(),
                format,
                key,
                seen: vec![HashMap::new(); unique.len()],
                unique,
                version,
                rows: Rows::with_capacity(usize::try_from(backup.size_hint).unwrap_or(0).min(1 << 20)),
            }));
        }
        Ok(targets)
    }
}

/// Where a backup's table definition and the schema's differ in what the records' bytes
/// mean (indexes and storage may differ: the schema's stay).
fn same_shape(backup: &TableDef, here: &TableDef) -> Vec<String> {
    let mut out = Vec::new();
    if backup.table_type != here.table_type {
        out.push(format!("type is {} in the backup, {} here", backup.table_type, here.table_type));
    }
    if backup.attributes != here.attributes {
        out.push(format!("fields are {:?} in the backup, {:?} here", backup.attributes, here.attributes));
    }
    if backup.key != here.key {
        out.push(format!("the key is field {} in the backup, {} here", backup.key, here.key));
    }
    if backup.version != here.version {
        out.push(format!(
            "the table was transformed {} times when backed up, {} times here",
            backup.version, here.version
        ));
    }
    out
}

/// A commit record of writes to a new table id.
fn ops(table: u64, counter: u64, writes: Vec<(Vec<u8>, Logged)>) -> TableOps {
    TableOps { table, clear: false, counter, reset: false, writes }
}

impl Target {
    /// Takes one entry of the backup; returns how many records it holds.
    fn add(&mut self, key: &[u8], value: &LoggedRef<'_>) -> Result<u64> {
        let name = self.def.name.clone();
        let records: Vec<&[u8]> = match value {
            LoggedRef::Put(r) => vec![r],
            LoggedRef::Group(rs) if self.def.table_type == TableType::Bag => rs.clone(),
            LoggedRef::Group(_) => {
                return Err(Error::Invalid(format!(
                    "table {name}: a group of records under one key, in a set"
                )));
            }
            LoggedRef::Delete => {
                return Err(Error::Invalid(format!("table {name}: a deleted key in a backup")));
            }
        };
        if records.is_empty() {
            return Err(Error::Invalid(format!("table {name}: a key without records in the backup")));
        }
        for r in &records {
            self.check(key, r)?;
        }
        if self.rows.contains_key(key) {
            return Err(Error::Invalid(format!("table {name}: the backup holds a key twice")));
        }
        let count = records.len() as u64;
        let value = match self.def.table_type {
            TableType::Bag => Logged::Group(records.iter().map(|r| r.to_vec()).collect()),
            _ => Logged::Put(records[0].to_vec()),
        };
        self.rows.insert(key.to_vec(), (self.version, value));
        Ok(count)
    }

    /// Checks a record against the stored format, its entry's key (`key`, which must be the
    /// record's key field encoded alone, nothing after it) and the unique indexes.
    fn check(&mut self, key: &[u8], record: &[u8]) -> Result<()> {
        let name = &self.def.name;
        let bad = |what: String| Error::Invalid(format!("table {name}: {what} in the backup"));
        let decoded = format::decode(record, &self.format)
            .map_err(|e| bad(format!("a record that does not decode ({e})")))?;
        let key_format = self.format.field(&self.key)?;
        let decoded_key = format::decode_as(key, key_format, &self.format)
            .map_err(|e| bad(format!("a key that does not decode ({e})")))?;
        if decoded.get(&self.key) != Some(&decoded_key) {
            return Err(bad(format!("a record filed under the key {decoded_key}, which is not its own")));
        }
        for (seen, field) in self.seen.iter_mut().zip(&self.unique) {
            let value = decoded.get(field).map(ToString::to_string).unwrap_or_default();
            // A bag's records of one key may share a value; other keys may not.
            match seen.get(&value) {
                Some(holder) if holder.as_slice() != key => {
                    return Err(bad(format!("the value {value} twice in the unique index on `{field}`")));
                }
                Some(_) => {}
                None => {
                    seen.insert(value, key.to_vec());
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_differ_in_type_fields_key_and_version() {
        let def = |ty: TableType, f: &str, key: usize, version: u32| TableDef {
            name: "t".into(),
            id: 1,
            table_type: ty,
            storage: StorageType::DiscCopies,
            attributes: vec![("id".into(), "u32".into()), (f.into(), "String".into())],
            key,
            auto_increment: false,
            indexes: Vec::new(),
            version,
            local_content: false,
            format: None,
        };
        let here = def(TableType::Set, "name", 0, 0);
        assert!(same_shape(&def(TableType::Set, "name", 0, 0), &here).is_empty());
        assert_eq!(same_shape(&def(TableType::Bag, "name", 0, 0), &here).len(), 1);
        assert_eq!(same_shape(&def(TableType::Set, "nick", 0, 0), &here).len(), 1);
        assert_eq!(same_shape(&def(TableType::Set, "name", 1, 0), &here).len(), 1);
        assert_eq!(same_shape(&def(TableType::Set, "name", 0, 2), &here).len(), 1);
    }
}
