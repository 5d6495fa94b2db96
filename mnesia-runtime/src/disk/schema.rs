//! The schema file: which tables a directory holds and how they are defined.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::files;
use super::format::RecordFormat;
use crate::error::{Error, Result};
use crate::schema::record::RecordFacts;
use crate::schema::record::{IndexInfo, Record, StorageType, TableType};

pub(crate) const FILE: &str = "schema.json";
/// The schema format this build writes and reads.
pub(crate) const FORMAT: u32 = 1;

/// A table as stored in the schema.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TableDef {
    pub(crate) name: String,
    pub(crate) id: u64,
    pub(crate) table_type: TableType,
    pub(crate) storage: StorageType,
    /// Field names and Rust types, in order.
    pub(crate) attributes: Vec<(String, String)>,
    pub(crate) key: usize,
    pub(crate) auto_increment: bool,
    pub(crate) indexes: Vec<IndexInfo>,
    /// How many times the table was transformed to a new record type.
    #[serde(default)]
    pub(crate) version: u32,
    /// The table is this node's own (`TableOptions::local_content`). Kept in the schema
    /// file only (see `stored_tables`): a backup's tables are restored as the program
    /// makes them.
    #[serde(skip)]
    pub(crate) local_content: bool,
    /// The record type's serde format, for tools that read records without the type
    /// (absent in directories written before it was kept, and for types it cannot be
    /// traced from). Kept in the schema file only (see `stored_tables`), not in backups.
    #[serde(skip)]
    pub(crate) format: Option<serde_json::Value>,
}

impl TableDef {
    /// The shape of the table this definition describes (a backup's, a schema file's).
    pub(crate) fn shape(&self) -> crate::schema::shape::RecordShape {
        crate::schema::shape::RecordShape {
            name: self.name.clone(),
            table_type: format!("{:?}", self.table_type),
            attributes: self.attributes.iter().map(|(name, _)| name.clone()).collect(),
            key: self.key_name().to_owned(),
            auto_increment: self.auto_increment,
        }
    }

    /// The key field's name.
    pub(crate) fn key_name(&self) -> &str {
        self.attributes.get(self.key).map_or("", |(n, _)| n.as_str())
    }

    /// The record format the schema keeps for the table, to read its records without its
    /// type; an error saying why there is none, and what it prevents (`needed_for`).
    pub(crate) fn record_format(&self, needed_for: &str) -> Result<RecordFormat> {
        let stored = self.format.as_ref().ok_or_else(|| {
            Error::Invalid(format!(
                "table {} has no stored record format, needed {needed_for}: its type's serde format could not be \
                 traced (a hand-written Deserialize, #[serde(flatten)], an untagged enum), or the directory \
                 predates stored formats and the program has not opened the table since",
                self.name
            ))
        })?;
        RecordFormat::from_stored(stored)
    }

    /// This definition, of a table this node keeps for itself or not (`local`).
    pub(crate) fn local(self, local_content: bool) -> TableDef {
        TableDef { local_content, ..self }
    }

    /// `T`'s definition as the schema file keeps it, its record format traced.
    pub(crate) fn of<T: Record>(id: u64, storage: StorageType, indexes: Vec<IndexInfo>) -> TableDef {
        TableDef::traced(&RecordFacts::of::<T>(), RecordFormat::of::<T>(), id, storage, indexes)
    }

    /// The definition of the record type `facts` describes, with its traced `format`.
    pub(crate) fn traced(
        facts: &RecordFacts,
        format: Option<RecordFormat>,
        id: u64,
        storage: StorageType,
        indexes: Vec<IndexInfo>,
    ) -> TableDef {
        let format = format.and_then(RecordFormat::into_stored);
        TableDef { format, ..TableDef::untraced(facts, id, storage, indexes) }
    }

    /// The definition of the record type `facts` describes, without its record format (a
    /// backup's header does not keep it, and tracing is not done under the commit locks a
    /// backup holds).
    pub(crate) fn untraced(
        facts: &RecordFacts,
        id: u64,
        storage: StorageType,
        indexes: Vec<IndexInfo>,
    ) -> TableDef {
        TableDef {
            name: facts.name.to_owned(),
            id,
            table_type: facts.kind,
            storage,
            attributes: facts.fields.iter().map(|f| (f.name.to_owned(), f.ty.to_owned())).collect(),
            key: facts.key_position,
            auto_increment: facts.auto_increment,
            indexes,
            version: 0,
            local_content: false,
            format: None,
        }
    }

    /// Whether records of the traced `format` have the same serde format as the stored ones.
    fn same_format(&self, format: impl FnOnce() -> Option<RecordFormat>) -> bool {
        let stored = self.format.as_ref().and_then(|f| RecordFormat::from_stored(f).ok());
        match (stored, format()) {
            (Some(stored), Some(now)) => stored.same_shape(&now),
            _ => false,
        }
    }

    /// How the record type `facts` describes (its records' serde format traced by
    /// `format`) differs from this definition, kept `place` ("on disc", "in the backup"), in
    /// words (empty: it matches).
    pub(crate) fn differences_from(
        &self,
        facts: &RecordFacts,
        format: fn() -> Option<RecordFormat>,
        place: &str,
    ) -> Vec<String> {
        let mut out = Vec::new();
        if self.table_type != facts.kind {
            out.push(format!("type is {} {place}, {} in the struct", self.table_type, facts.kind));
        }
        let fields: Vec<(&str, &str)> = facts.fields.iter().map(|f| (f.name, f.ty)).collect();
        // Types spelled differently (`String`, `std::string::String`) are the same when the
        // records' serde format is: the bytes on disc decode the same.
        let mut same_format = None;
        for (name, ty) in &self.attributes {
            match fields.iter().find(|(n, _)| n == name) {
                None => out.push(format!("field `{name}: {ty}` is {place} but not in the struct")),
                Some((_, t)) if t != ty => {
                    let same = *same_format.get_or_insert_with(|| self.same_format(format));
                    if !same {
                        out.push(format!("field `{name}` is `{ty}` {place} but `{t}` in the struct"));
                    }
                }
                Some(_) => {}
            }
        }
        for (name, ty) in &fields {
            if !self.attributes.iter().any(|(n, _)| n == name) {
                out.push(format!("field `{name}: {ty}` is in the struct but not {place}"));
            }
        }
        if out.is_empty() {
            let stored: Vec<&str> = self.attributes.iter().map(|(n, _)| n.as_str()).collect();
            let now: Vec<&str> = fields.iter().map(|(n, _)| *n).collect();
            if stored != now {
                out.push(format!("fields are in the order {stored:?} {place} but {now:?} in the struct"));
            }
        }
        if out.is_empty() && self.key != facts.key_position {
            let name = |i: usize| self.attributes.get(i).map(|(n, _)| n.clone()).unwrap_or_default();
            out.push(format!(
                "the key is `{}` {place} but `{}` in the struct",
                name(self.key),
                name(facts.key_position)
            ));
        }
        out
    }
}

/// The schema of a database directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SchemaFile {
    pub(crate) format: u32,
    pub(crate) node: String,
    pub(crate) next_table_id: u64,
    #[serde(with = "stored_tables")]
    pub(crate) tables: Vec<TableDef>,
}

/// The tables as the schema file keeps them: each definition with its record format.
mod stored_tables {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::TableDef;

    #[derive(Serialize)]
    struct Out<'a> {
        #[serde(flatten)]
        def: &'a TableDef,
        #[serde(skip_serializing_if = "Option::is_none")]
        format: &'a Option<serde_json::Value>,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        local_content: bool,
    }

    #[derive(Deserialize)]
    struct In {
        #[serde(flatten)]
        def: TableDef,
        #[serde(default)]
        format: Option<serde_json::Value>,
        #[serde(default)]
        local_content: bool,
    }

    pub(super) fn serialize<S: Serializer>(tables: &[TableDef], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(tables.iter().map(|def| Out {
            def,
            format: &def.format,
            local_content: def.local_content,
        }))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<TableDef>, D::Error> {
        let tables: Vec<In> = Vec::deserialize(d)?;
        Ok(tables
            .into_iter()
            .map(|t| TableDef { format: t.format, local_content: t.local_content, ..t.def })
            .collect())
    }
}

impl SchemaFile {
    /// A new table id, never used before in this directory.
    pub(crate) fn allocate_id(&mut self) -> Result<u64> {
        let id = self.next_table_id;
        self.next_table_id =
            id.checked_add(1).ok_or_else(|| Error::Exhausted { what: "table ids".into() })?;
        Ok(id)
    }
}

/// A schema change as a log record keeps it: the tables it removed and the definitions it
/// added or replaced, not the whole schema (which would make creating `n` tables write
/// `n²` definitions to the log). Applied to the schema before it, it gives the schema after.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SchemaDelta {
    next_table_id: u64,
    /// The ids of the tables the change removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    removed: Vec<u64>,
    /// The definitions the change added (at the end) or replaced (in place), by id.
    #[serde(with = "stored_tables", default)]
    put: Vec<TableDef>,
}

impl SchemaDelta {
    /// The change from `old` to `new`, if a delta says it exactly (else the log keeps the
    /// whole schema: the node or the format changed, or the tables were reordered).
    pub(crate) fn between(old: &SchemaFile, new: &SchemaFile) -> Option<SchemaDelta> {
        if (old.format, &old.node) != (new.format, &new.node) {
            return None;
        }
        let removed =
            old.tables.iter().map(|t| t.id).filter(|id| !new.tables.iter().any(|t| t.id == *id)).collect();
        let put = new
            .tables
            .iter()
            .filter(|t| old.tables.iter().find(|o| o.id == t.id) != Some(*t))
            .cloned()
            .collect();
        let delta = SchemaDelta { next_table_id: new.next_table_id, removed, put };
        let mut check = old.clone();
        delta.apply(&mut check);
        (check == *new).then_some(delta)
    }

    /// Makes the change to `schema`.
    pub(crate) fn apply(&self, schema: &mut SchemaFile) {
        schema.next_table_id = self.next_table_id;
        schema.tables.retain(|t| !self.removed.contains(&t.id));
        for def in &self.put {
            match schema.tables.iter_mut().find(|t| t.id == def.id) {
                Some(t) => *t = def.clone(),
                None => schema.tables.push(def.clone()),
            }
        }
    }

    /// The change as a log record's body (JSON, as the schema file).
    pub(crate) fn encode(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(|e| Error::codec("encoding a schema change", e))
    }

    /// A change as [`SchemaDelta::encode`] wrote it, read from `file` at `offset`.
    pub(crate) fn decode(bytes: &[u8], file: &Path, offset: u64) -> Result<SchemaDelta> {
        serde_json::from_slice(bytes).map_err(|e| Error::Corrupt {
            file: file.to_path_buf(),
            offset,
            reason: format!("not a schema change: {e}"),
        })
    }
}

pub(crate) fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// Reads the schema of `dir`.
pub(crate) fn load(dir: &Path) -> Result<SchemaFile> {
    let p = path(dir);
    let Some(bytes) = files::read_if_exists(&p)? else {
        return Err(Error::NoSchema { dir: dir.to_path_buf() });
    };
    decode(&bytes, &p, 0)
}

/// A schema as `encode` wrote it, read from `file` at `offset` (the schema file, or a
/// schema record of the log).
pub(crate) fn decode(bytes: &[u8], file: &Path, offset: u64) -> Result<SchemaFile> {
    let schema: SchemaFile = serde_json::from_slice(bytes).map_err(|e| Error::Corrupt {
        file: file.to_path_buf(),
        offset,
        reason: format!("not a schema: {e}"),
    })?;
    if schema.format != FORMAT {
        return Err(Error::UnsupportedFormat {
            file: file.to_path_buf(),
            found: schema.format.to_string(),
            supported: FORMAT.to_string(),
        });
    }
    Ok(schema)
}

/// The schema as JSON (the file pretty-printed, a log record compact).
pub(crate) fn encode(schema: &SchemaFile, pretty: bool) -> Result<Vec<u8>> {
    let bytes = if pretty { serde_json::to_vec_pretty(schema) } else { serde_json::to_vec(schema) };
    bytes.map_err(|e| Error::codec("encoding the schema", e))
}

/// Writes the schema of `dir` atomically.
pub(crate) fn store(dir: &Path, schema: &SchemaFile) -> Result<()> {
    let bytes = encode(schema, true)?;
    files::write_atomically(&path(dir), |f| f.write_all(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Rec;

    fn schema(ids: &[u64]) -> SchemaFile {
        SchemaFile {
            format: FORMAT,
            node: "n".into(),
            next_table_id: ids.iter().max().map_or(1, |m| m + 1),
            tables: ids
                .iter()
                .map(|id| TableDef::of::<Rec>(*id, StorageType::DiscCopies, Vec::new()))
                .collect(),
        }
    }

    #[test]
    fn a_delta_holds_only_what_changed_and_gives_the_schema_after() {
        let old = schema(&[1, 2, 3]);
        let mut new = old.clone();
        new.tables.retain(|t| t.id != 2);
        new.tables[0].version = 4;
        new.tables.push(TableDef::of::<Rec>(7, StorageType::DiscOnlyCopies, Vec::new()));
        new.next_table_id = 8;
        let delta = SchemaDelta::between(&old, &new).expect("a delta");
        assert_eq!(delta.removed, [2]);
        assert_eq!(delta.put.iter().map(|t| t.id).collect::<Vec<_>>(), [1, 7]);
        let read =
            SchemaDelta::decode(&delta.encode().expect("encode"), Path::new("log"), 0).expect("decode");
        assert_eq!(read, delta, "the record formats travel with the definitions");
        let mut applied = old.clone();
        read.apply(&mut applied);
        assert_eq!(applied, new);
        // Applied again (a log replayed over a schema file that already holds it): the same.
        read.apply(&mut applied);
        assert_eq!(applied, new);
    }

    #[test]
    fn a_change_a_delta_cannot_say_is_none() {
        let old = schema(&[1, 2]);
        let mut renamed = old.clone();
        renamed.node = "other".into();
        assert!(SchemaDelta::between(&old, &renamed).is_none());
        let mut reordered = old.clone();
        reordered.tables.reverse();
        assert!(SchemaDelta::between(&old, &reordered).is_none());
    }
}
