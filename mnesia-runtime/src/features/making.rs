//! What a table is made with, whatever its record type ([`Making`]): what
//! `TableOptions` says, and what a cluster copy making a table another copy created is told.

use crate::engine::meta::RecordMeta;
use crate::error::{Error, Result};
use crate::schema::index_spec::IndexSpec;
use crate::schema::options::TableOptions;
use crate::schema::record::{Record, StorageType};
use crate::schema::row::RowOf;
use crate::schema::stored::StoredRecord;

/// What a table is made with, whatever its record type (from `TableOptions`).
pub(crate) struct Making<'a, R: StoredRecord> {
    pub(crate) storage: StorageType,
    pub(crate) nodes: &'a [String],
    /// The storage type of each node's copy, in the order of `nodes` (empty: `storage`).
    pub(crate) kinds: &'a [StorageType],
    /// Indexes the struct declares that the table is made without.
    pub(crate) without: &'a [&'static str],
    /// Indexes besides the struct's.
    pub(crate) extra: Vec<IndexSpec<R>>,
    pub(crate) version: u32,
    /// The table is this node's own (`TableOptions::local_content`).
    pub(crate) local_content: bool,
}

impl<'a, T: Record> From<&'a TableOptions<T>> for Making<'a, RowOf<T>> {
    fn from(options: &'a TableOptions<T>) -> Self {
        // (A table of one node: the kind of the list naming it, if one does.)
        let storage = match options.kinds() {
            [kind] => *kind,
            _ => options.storage_type(),
        };
        Making {
            storage,
            nodes: options.nodes(),
            kinds: options.kinds(),
            without: &[],
            extra: options.indexes().iter().map(IndexSpec::for_rows).collect(),
            version: 0,
            local_content: options.is_local_content(),
        }
    }
}

impl<R: StoredRecord> Making<'_, R> {
    /// An error for a node named by two lists of copies (a copy has one storage type).
    pub(crate) fn check_named_once(&self, table: &str) -> Result<()> {
        for (i, node) in self.nodes.iter().enumerate() {
            if self.nodes[..i].contains(node) {
                return Err(Error::Invalid(format!(
                    "table {table}: node {node} is named twice in the lists of copies (a node holds one copy, of one storage type)"
                )));
            }
        }
        Ok(())
    }

    /// The nodes whose copy is `disc_copies`.
    pub(crate) fn disc_nodes(&self) -> Vec<String> {
        self.nodes
            .iter()
            .zip(self.kinds)
            .filter(|(_, kind)| **kind == StorageType::DiscCopies)
            .map(|(node, _)| node.clone())
            .collect()
    }

    /// Every index of the table: the struct's (but those left out) and the others; an error
    /// for one on the key, or two on one field.
    pub(crate) fn specs(&self, meta: &RecordMeta<R>) -> Result<Vec<IndexSpec<R>>> {
        let mut specs = (meta.indexes)();
        specs.retain(|s| !self.without.contains(&s.field()));
        for s in &self.extra {
            if specs.iter().any(|x| x.field() == s.field()) {
                return Err(Error::IndexExists { table: meta.name.to_owned(), field: s.field() });
            }
            specs.push(s.clone());
        }
        if let Some(s) = specs.iter().find(|s| s.position() == meta.key_position) {
            return Err(Error::Invalid(format!(
                "table {}: the key field {} cannot have a secondary index",
                meta.name,
                s.field()
            )));
        }
        Ok(specs)
    }
}
