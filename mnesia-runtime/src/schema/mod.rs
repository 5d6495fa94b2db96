//! Record types and what describes them: the `Record` trait, fields, conditions, index specs, table options, shapes.

pub(crate) mod conditions;
pub(crate) mod field;
pub(crate) mod field_test;
pub(crate) mod filter;
pub(crate) mod index_spec;
pub(crate) mod options;
pub(crate) mod projection;
pub(crate) mod record;
pub(crate) mod row;
mod row_types;
pub(crate) mod shape;
pub(crate) mod stored;
