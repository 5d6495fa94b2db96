//! `#[derive(Table)]` for the `mnesia` crate. Use it through `mnesia::prelude::*`.
//!
//! The macro works in three steps, like `serde_derive` and `thiserror-impl`:
//! `ast` parses the struct and its attributes into a model and checks it, collecting every
//! error with the span it belongs to; `expand` turns a valid model into the `Record` impl
//! and the field constants; on errors, `fallback` emits the errors together with stub
//! items, so that one mistake gives one error rather than a cascade.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod ast;
mod case;
mod duration;
mod expand;
mod fallback;

use proc_macro::TokenStream;
use syn::{DeriveInput, parse_macro_input};

/// Implements `mnesia::Record` for a struct with named fields (which gives it the
/// `mnesia::Table` API). See the `mnesia` crate.
#[proc_macro_derive(Table, attributes(key, index, auto_increment, ttl, table))]
pub fn derive_table(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match ast::Input::from_syn(&input) {
        Ok(model) => expand::expand(&model).into(),
        Err(errors) => fallback::expand(&input, &errors).into(),
    }
}
