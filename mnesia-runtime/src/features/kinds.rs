//! The table types of this program, found by name: every `#[derive(Table)]` registers its
//! type (through `inventory`, before `main` runs), so that a copy applying a
//! `create_table` that another copy ordered makes the table with this program's type for
//! it, before the program names the type here.

use std::sync::Arc;

use crate::db::AnyTable;
use crate::engine::commit_record::WholeTable;
use crate::engine::meta::RecordMeta;
use crate::features::making::Making;
use crate::schema::index_spec::IndexSpec;
use crate::schema::record::StorageType;
use crate::schema::shape::RecordShape;
use crate::schema::stored::StoredRecord;
use crate::{Database, Error, Record, Result};

/// A table's indexes: (field, unique).
type Indexes = [(String, bool)];

/// A table type this program declares (registered by the derive; not for use by hand).
#[doc(hidden)]
pub struct TableKind {
    name: &'static str,
    type_name: fn() -> &'static str,
    shape: fn() -> RecordShape,
    create: fn(&Database, &Indexes, u32, &[String]) -> Result<()>,
    replace: fn(&Database, &Arc<dyn AnyTable>, &WholeTable) -> Result<()>,
    check_replace: fn(&Database, &WholeTable) -> Result<()>,
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
            replace: crate::features::migrate::replace_as::<T>,
            check_replace: crate::features::migrate::check_replace::<T>,
        }
    }
}

/// Creates table `T` here (ram copies) at `version`, with exactly the indexes `indexes`
/// (its struct may declare others: the table was created, or changed since, elsewhere),
/// its copies on `nodes` (none: every node).
fn create_as<T: Record>(db: &Database, indexes: &Indexes, version: u32, nodes: &[String]) -> Result<()> {
    create_in(db, crate::engine::meta::meta_of::<T>(), indexes, version, nodes)
}

/// [`create_as`] for the table `meta` describes.
fn create_in<R: StoredRecord>(
    db: &Database,
    meta: &'static RecordMeta<R>,
    indexes: &Indexes,
    version: u32,
    nodes: &[String],
) -> Result<()> {
    let declared = (meta.indexes)();
    let alike = |s: &IndexSpec<R>, field: &str, unique: bool| s.field() == field && s.is_unique() == unique;
    let extra = crate::features::migrate::exact_specs(meta, indexes)?
        .into_iter()
        .filter(|spec| !declared.iter().any(|s| alike(s, spec.field(), spec.is_unique())))
        .collect();
    // A declared index the table has not (or has with the other uniqueness): made without it.
    let without: Vec<&'static str> = declared
        .iter()
        .filter(|s| !indexes.iter().any(|(f, u)| alike(s, f, *u)))
        .map(|s| s.field())
        .collect();
    let making = Making {
        storage: StorageType::RamCopies,
        nodes,
        kinds: &[],
        without: &without,
        extra,
        version,
        local_content: false,
    };
    db.create_here(meta, making)
}

/// Applies `replace` (a [`WholeTable::Replace`] record) to `old`, the table here, with the
/// type this program declares for the record's shape (see [`create_declared`]).
pub(crate) fn replace_declared(db: &Database, old: &Arc<dyn AnyTable>, replace: &WholeTable) -> Result<()> {
    let WholeTable::Replace { shape, type_name, .. } = replace else {
        return Err(Error::Internal("replace_declared applies a Replace record".into()));
    };
    (kind_of(shape, type_name)?.replace)(db, old, replace)
}

/// Checks, changing nothing, that `replace` (a [`WholeTable::Replace`] record) makes a
/// table of the type this program declares for its shape (see `migrate::check_replace`).
pub(crate) fn check_replace(db: &Database, replace: &WholeTable) -> Result<()> {
    let WholeTable::Replace { shape, type_name, .. } = replace else {
        return Err(Error::Internal("check_replace checks a Replace record".into()));
    };
    (kind_of(shape, type_name)?.check_replace)(db, replace)
}

/// Creates, here, the table of shape `shape` (ram copies) at `version`, with exactly
/// `indexes`, its copies on `nodes` (none: every node), with the type this program declares
/// for it (see [`kind_of`]).
pub(crate) fn create_declared(
    db: &Database,
    shape: &RecordShape,
    type_name: &str,
    indexes: &Indexes,
    version: u32,
    nodes: &[String],
) -> Result<()> {
    (kind_of(shape, type_name)?.create)(db, indexes, version, nodes)
}

/// The type this program declares of shape `shape`: of those of that shape, the one named
/// `type_name` if there is one (a program may declare two alike); an error of this copy's
/// own ([`Error::SchemaMismatch`]) when it declares none.
fn kind_of(shape: &RecordShape, type_name: &str) -> Result<&'static TableKind> {
    let mut alike = of_shape(shape);
    let first = alike.next().ok_or_else(|| Error::SchemaMismatch {
        table: shape.name.clone(),
        differences: vec!["this program has no record type of the table's shape for it".into()],
    })?;
    Ok(std::iter::once(first).chain(alike).find(|k| (k.type_name)() == type_name).unwrap_or(first))
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
