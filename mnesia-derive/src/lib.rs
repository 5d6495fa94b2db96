//! placeholder
use proc_macro::TokenStream;
#[proc_macro_derive(Table, attributes(key, index, auto_increment, table))]
pub fn derive_table(_input: TokenStream) -> TokenStream { TokenStream::new() }
