//! The table API: the `Table` trait and the transaction handle.

pub(crate) mod handle;
pub(crate) mod table;
