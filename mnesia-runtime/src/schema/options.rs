//! Options for `create_table`: [`TableOptions`].

use std::fmt;

use crate::schema::field::{Field, FieldValue, Indexable};
use crate::schema::index_spec::IndexSpec;
use crate::schema::record::{Record, StorageType};

/// Options for `create_table`.
///
/// ```
/// # use mnesia::prelude::*;
/// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
/// # struct User { #[key] id: u64, age: u32 }
/// let opts = TableOptions::<User>::new().ram_copies(["local@localhost"]).index(User::AGE);
/// assert_eq!(opts.storage_type(), StorageType::RamCopies);
/// ```
pub struct TableOptions<T: Record> {
    storage: StorageType,
    /// The nodes named by the lists of copies, in order given ...
    nodes: Vec<String>,
    /// ... and the storage type of each one's copy.
    kinds: Vec<StorageType>,
    indexes: Vec<IndexSpec<T>>,
    local_content: bool,
}

impl<T: Record> Clone for TableOptions<T> {
    fn clone(&self) -> Self {
        TableOptions {
            storage: self.storage,
            nodes: self.nodes.clone(),
            kinds: self.kinds.clone(),
            indexes: self.indexes.clone(),
            local_content: self.local_content,
        }
    }
}

impl<T: Record> fmt::Debug for TableOptions<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TableOptions")
            .field("storage", &self.storage)
            .field("nodes", &self.nodes)
            .field("kinds", &self.kinds)
            .field("indexes", &self.indexes)
            .field("local_content", &self.local_content)
            .finish()
    }
}

impl<T: Record> Default for TableOptions<T> {
    fn default() -> Self {
        TableOptions {
            storage: StorageType::RamCopies,
            nodes: Vec::new(),
            kinds: Vec::new(),
            indexes: Vec::new(),
            local_content: false,
        }
    }
}

impl<T: Record> TableOptions<T> {
    /// Default options: `ram_copies` on this node, only the indexes the struct declares.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64 }
    /// let opts = TableOptions::<User>::new();
    /// assert_eq!(opts.storage_type(), StorageType::RamCopies);
    /// ```
    pub fn new() -> Self {
        TableOptions::default()
    }

    /// Adds the copies of `storage` on `nodes` to those of the lists given before.
    fn copies(mut self, storage: StorageType, nodes: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.storage = storage;
        for node in nodes {
            self.nodes.push(node.into());
            self.kinds.push(storage);
        }
        self
    }

    /// Keeps the table in memory on these nodes. The lists of copies add up, each node
    /// in one of them (Mnesia's `ram_copies`, `disc_copies` and `disc_only_copies`):
    /// `ram_copies([a]).disc_copies([b])` puts a copy in memory on `a` and one on disc
    /// on `b` (on a running cluster node, see the README's "Cluster" section).
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64 }
    /// let opts = TableOptions::<User>::new().ram_copies(["a@host"]).disc_copies(["b@host"]);
    /// assert_eq!(opts.nodes(), ["a@host", "b@host"]);
    /// assert_eq!(opts.storage_on("a@host"), Some(StorageType::RamCopies));
    /// assert_eq!(opts.storage_on("b@host"), Some(StorageType::DiscCopies));
    /// ```
    pub fn ram_copies(self, nodes: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.copies(StorageType::RamCopies, nodes)
    }

    /// Keeps the table in memory and logged to disc on these nodes (needs a database
    /// directory).
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64 }
    /// let opts = TableOptions::<User>::new().disc_copies(["local@localhost"]);
    /// assert_eq!(opts.storage_type(), StorageType::DiscCopies);
    /// ```
    pub fn disc_copies(self, nodes: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.copies(StorageType::DiscCopies, nodes)
    }

    /// Keeps the table on disc only on these nodes (needs a database directory).
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64 }
    /// let opts = TableOptions::<User>::new().disc_only_copies(["local@localhost"]);
    /// assert_eq!(opts.storage_type(), StorageType::DiscOnlyCopies);
    /// ```
    pub fn disc_only_copies(self, nodes: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.copies(StorageType::DiscOnlyCopies, nodes)
    }

    /// Adds a secondary index on a field, besides those the struct declares.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, age: u32 }
    /// let opts = TableOptions::<User>::new().index(User::AGE);
    /// # let _ = opts;
    /// ```
    pub fn index<V: FieldValue + Indexable>(mut self, field: Field<T, V>) -> Self {
        self.indexes.push(field.index_spec(false));
        self
    }

    /// Adds a unique secondary index on a field.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, email: String }
    /// let opts = TableOptions::<User>::new().unique_index(User::EMAIL);
    /// # let _ = opts;
    /// ```
    pub fn unique_index<V: FieldValue + Indexable>(mut self, field: Field<T, V>) -> Self {
        self.indexes.push(field.index_spec(true));
        self
    }

    /// Makes the table this node's own (Mnesia's `local_content`): on a cluster node its
    /// commits are neither ordered nor sent to the other nodes, they commit here as on a
    /// database alone, with no round trip; each node keeps its own records under the name,
    /// or no such table at all. On a database alone it changes nothing. A transaction that
    /// writes such tables may read the cluster's; one that writes the cluster's tables and
    /// touches such a table is refused (see the README's "Cluster" section). A replica fed by
    /// [`Database::replicate_to`](crate::Database::replicate_to) mirrors its database
    /// whole, these tables included.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct Session { #[key] id: u64 }
    /// let db = Database::in_memory()?;
    /// db.create_table::<Session>(TableOptions::new().local_content())?;
    /// assert!(db.table_info::<Session>()?.local_content);
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn local_content(mut self) -> Self {
        self.local_content = true;
        self
    }

    /// Whether the table is this node's own ([`TableOptions::local_content`]).
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64 }
    /// assert!(!TableOptions::<User>::new().is_local_content());
    /// assert!(TableOptions::<User>::new().local_content().is_local_content());
    /// ```
    pub fn is_local_content(&self) -> bool {
        self.local_content
    }

    /// The storage type of the last list of copies given (`ram_copies` when none was).
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64 }
    /// assert_eq!(TableOptions::<User>::new().storage_type(), StorageType::RamCopies);
    /// ```
    pub fn storage_type(&self) -> StorageType {
        self.storage
    }

    /// The nodes holding a copy, of every list given, in order (empty: this node).
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64 }
    /// assert!(TableOptions::<User>::new().nodes().is_empty());
    /// ```
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// The storage type of the copy on `node` (`None` when no list names it; the first
    /// list naming it when several do, which `create_table` refuses).
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64 }
    /// let opts = TableOptions::<User>::new().disc_copies(["a@host"]);
    /// assert_eq!(opts.storage_on("a@host"), Some(StorageType::DiscCopies));
    /// assert_eq!(opts.storage_on("c@host"), None);
    /// ```
    pub fn storage_on(&self, node: &str) -> Option<StorageType> {
        self.nodes.iter().position(|n| n == node).and_then(|i| self.kinds.get(i).copied())
    }

    /// The storage type of each node's copy, in the order of [`TableOptions::nodes`].
    pub(crate) fn kinds(&self) -> &[StorageType] {
        &self.kinds
    }

    pub(crate) fn indexes(&self) -> &[IndexSpec<T>] {
        &self.indexes
    }
}
