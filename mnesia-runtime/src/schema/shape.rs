//! What makes two record types one table on two copies of a database: [`RecordShape`].

use serde::{Deserialize, Serialize};

use crate::schema::record::Record;

/// What makes two record types one table on two copies of a database: the table's name
/// and type, its fields, its key and whether the key is an auto-increment id. Copies that
/// apply one order of commits (a cluster's nodes) must see every table in one shape:
/// a commit record made for one shape does not decode as another.
///
/// ```
/// use mnesia::prelude::*;
/// #[derive(Table, Clone, Debug, Serialize, Deserialize)]
/// struct Item { #[key] id: u32, name: String }
///
/// let db = Database::in_memory()?;
/// db.create_table::<Item>(TableOptions::new())?;
/// let shape = db.table_info::<Item>()?.shape();
/// assert_eq!(shape.name(), "item");
/// assert_eq!(shape, mnesia::RecordShape::of::<Item>());
/// # Ok::<(), mnesia::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordShape {
    pub(crate) name: String,
    pub(crate) table_type: String,
    pub(crate) attributes: Vec<String>,
    pub(crate) key: String,
    pub(crate) auto_increment: bool,
}

impl RecordShape {
    /// The shape of `T`'s table.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct Item { #[key] id: u32 }
    /// assert_eq!(mnesia::RecordShape::of::<Item>().name(), "item");
    /// ```
    pub fn of<T: Record>() -> RecordShape {
        RecordShape::of_facts(&crate::schema::record::RecordFacts::of::<T>())
    }

    /// The shape of the table of the record type `facts` describes.
    pub(crate) fn of_facts(facts: &crate::schema::record::RecordFacts) -> RecordShape {
        RecordShape::of_parts(facts.name, facts.kind, facts.fields, facts.key_position, facts.auto_increment)
    }

    fn of_parts(
        name: &str,
        table_type: crate::TableType,
        fields: &[crate::FieldInfo],
        key: usize,
        auto_increment: bool,
    ) -> RecordShape {
        let attributes: Vec<String> = fields.iter().map(|f| f.name.to_owned()).collect();
        RecordShape {
            name: name.to_owned(),
            table_type: format!("{table_type:?}"),
            key: attributes.get(key).cloned().unwrap_or_default(),
            attributes,
            auto_increment,
        }
    }

    /// The shape of a table as [`crate::TableInfo`] describes it.
    pub(crate) fn of_info(info: &crate::TableInfo) -> RecordShape {
        RecordShape {
            name: info.name.clone(),
            table_type: format!("{:?}", info.table_type),
            attributes: info.attributes.clone(),
            key: info.key.clone(),
            auto_increment: info.auto_increment,
        }
    }

    /// The table's name.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct Item { #[key] id: u32 }
    /// assert_eq!(mnesia::RecordShape::of::<Item>().name(), "item");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl crate::schema::record::TableInfo {
    /// The table's shape, which every copy of a database ordered alike must share (see
    /// [`crate::RecordShape`]).
    ///
    /// ```
    /// use mnesia::prelude::*;
    /// #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// struct Item { #[key] id: u32 }
    ///
    /// let db = Database::in_memory()?;
    /// db.create_table::<Item>(TableOptions::new())?;
    /// assert_eq!(db.table_info::<Item>()?.shape(), mnesia::RecordShape::of::<Item>());
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn shape(&self) -> RecordShape {
        RecordShape::of_info(self)
    }
}
