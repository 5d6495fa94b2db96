//! The table types of this program, found by name: every `#[derive(Table)]` registers its
//! type (through `inventory`, before `main` runs), so that a copy applying a
//! `create_table` that another copy ordered makes the table with this program's type for
//! it, before the program names the type here.

use crate::schema::shape::RecordShape;
use crate::{Database, Error, Record, Result, TableOptions};

/// A table's indexes: (field, unique).
type Indexes = [(String, bool)];

/// A table type this program declares (registered by the derive; not for use by hand).
#[doc(hidden)]
pub struct TableKind {
    name: &'static str,
    type_name: fn() -> &'static str,
    shape: fn() -> RecordShape,
    create: fn(&Database, &Indexes, Made) -> Result<()>,
}

inventory::collect!(TableKind);

impl TableKind {
    /// The registration of `T`.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct Item { #[key] id: u32 }
    /// // What `#[derive(Table)]` submits for `Item`.
    /// let _kind = mnesia::__private::TableKind::of::<Item>();
    /// ```
    pub const fn of<T: Record>() -> TableKind {
        TableKind {
            name: T::NAME,
            type_name: std::any::type_name::<T>,
            shape: RecordShape::of::<T>,
            create: create_as::<T>,
        }
    }
}

/// Where and at which version a copy makes a table another copy made.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Made {
    /// Where this copy keeps it.
    pub(crate) storage: crate::StorageType,
    /// The table's version (see [`crate::TableInfo::version`]).
    pub(crate) version: u32,
}

impl Made {
    /// A new table, in memory.
    pub(crate) const NEW: Made = Made { storage: crate::StorageType::RamCopies, version: 0 };
}

/// Creates table `T` here as `made` says, with exactly the indexes `indexes` (its struct
/// may declare others: the table was created, or changed since, elsewhere).
fn create_as<T: Record>(db: &Database, indexes: &Indexes, made: Made) -> Result<()> {
    let mut options = TableOptions::<T>::new().made(made.storage, made.version);
    let declared = T::indexes();
    for (field, unique) in indexes {
        if declared.iter().any(|s| s.field() == field && s.is_unique() == *unique) {
            continue;
        }
        let spec = T::index_spec_for(field, *unique).ok_or_else(|| {
            crate::engine::commit_record::misfit(
                T::NAME,
                format!("an index on `{field}`, which it cannot index"),
            )
        })?;
        options = options.with_index(spec);
    }
    let unwanted =
        declared.iter().filter(|s| !indexes.iter().any(|(f, u)| f == s.field() && *u == s.is_unique()));
    let unwanted: Vec<&'static str> = unwanted.map(|s| s.field()).collect();
    // A declared index the table has not (or has with the other uniqueness): made without it.
    db.create_table_here(options.without_declared(unwanted))
}

/// Creates, here, the table of shape `shape` as `made` says, with exactly `indexes`, with the
/// type this program declares for it (of those of that shape, the one named `type_name`
/// if there is one: a program may declare two alike); an error of this copy's own
/// ([`Error::SchemaMismatch`]) when it declares none.
pub(crate) fn create_declared(
    db: &Database,
    shape: &RecordShape,
    type_name: &str,
    indexes: &Indexes,
    made: Made,
) -> Result<()> {
    let mut alike = of_shape(shape);
    let first = alike.next().ok_or_else(|| Error::SchemaMismatch {
        table: shape.name.clone(),
        differences: vec!["this program has no record type of the table's shape for it".into()],
    })?;
    let kind = std::iter::once(first).chain(alike).find(|k| (k.type_name)() == type_name).unwrap_or(first);
    (kind.create)(db, indexes, made)
}

/// Whether this program declares a type of shape `shape` (a type with a hand-written
/// `Record` impl is not registered).
pub(crate) fn declared(shape: &RecordShape) -> bool {
    of_shape(shape).next().is_some()
}

/// The types this program declares of shape `shape`.
fn of_shape(shape: &RecordShape) -> impl Iterator<Item = &'static TableKind> + '_ {
    inventory::iter::<TableKind>.into_iter().filter(move |k| k.name == shape.name && (k.shape)() == *shape)
}
