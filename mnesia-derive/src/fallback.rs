//! What the derive emits when the struct has errors: the errors, plus stub items (the field
//! constants and a `Record` impl) so that code using the table reports no follow-up errors.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Data, DeriveInput, Fields};

use crate::ast::Errors;
use crate::expand::field_consts;

pub(crate) fn expand(input: &DeriveInput, errors: &Errors) -> TokenStream {
    let compile_errors = errors.to_compile_errors();
    let krate = &crate::ast::crate_of(&input.attrs);
    let ident = &input.ident;
    let named = match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(n) => Some(n),
            _ => None,
        },
        _ => None,
    };
    let (Some(named), true) = (named, input.generics.params.is_empty()) else {
        return compile_errors;
    };
    let fields: Vec<_> =
        named.named.iter().filter_map(|f| f.ident.as_ref().map(|i| (i, &f.ty, &f.vis))).collect();
    let consts = field_consts(krate, ident, &fields);
    // A struct with a #[ttl] field gets the expiry functions too: no follow-up errors.
    let has_ttl = named.named.iter().any(|f| f.attrs.iter().any(|a| a.path().is_ident("ttl")));
    let expiring = has_ttl.then(|| {
        quote! {
            #[automatically_derived]
            impl #krate::Expiring for #ident {}
        }
    });
    quote! {
        #compile_errors

        #[automatically_derived]
        impl #krate::Record for #ident {
            type Key = ();
            const NAME: &'static str = "";
            const TYPE: #krate::TableType = #krate::TableType::Set;
            const FIELDS: &'static [#krate::FieldInfo] = &[];
            const KEY_POSITION: usize = 0;
            const AUTO_INCREMENT: bool = false;

            fn key(&self) -> &() {
                &()
            }

            fn indexes() -> ::std::vec::Vec<#krate::IndexSpec<Self>> {
                ::std::vec::Vec::new()
            }
        }

        #expiring
        #consts
    }
}
