//! Turns a checked model into the `Record` impl and the typed field constants. Every path in
//! the output is absolute (`::mnesia::..`, `::core::..`), so user items of the same names
//! cannot capture it.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use crate::ast::{Input, Kind};
use crate::case;

/// The type as written, without the spaces the token printer puts in.
fn type_string(ty: &syn::Type) -> String {
    let s = quote!(#ty).to_string();
    s.replace(" < ", "<")
        .replace("< ", "<")
        .replace(" <", "<")
        .replace(" >", ">")
        .replace(" ,", ",")
        .replace(" :: ", "::")
        .replace(":: ", "::")
        .replace(" & ", "&")
        .replace("& ", "&")
}

/// The field constants: `pub const AGE: ::mnesia::Field<User, u32> = ..;`. Each has its
/// field's own visibility: a private field's constant is private too.
pub(crate) fn field_consts(
    krate: &TokenStream,
    ident: &syn::Ident,
    fields: &[(&syn::Ident, &syn::Type, &syn::Visibility)],
) -> TokenStream {
    let consts = fields.iter().enumerate().map(|(i, (f, ty, vis))| {
        let name = f.to_string().trim_start_matches("r#").to_owned();
        let konst = format_ident!("{}", case::screaming(&name), span = f.span());
        let doc = format!("The typed field `{name}` of [`{ident}`], for conditions and indexes.");
        quote! {
            #[doc = #doc]
            #[allow(dead_code)]
            #vis const #konst: #krate::Field<#ident, #ty> = #krate::Field::new(#name, #i, |record: &#ident| &record.#f);
        }
    });
    quote! {
        #[automatically_derived]
        impl #ident {
            #(#consts)*
        }
    }
}

pub(crate) fn expand(input: &Input<'_>) -> TokenStream {
    let krate = &input.krate;
    let ident = input.ident;
    let name = &input.name;
    let key = &input.fields[input.key];
    let key_ident = key.ident;
    let key_ty = key.ty;
    let key_pos = input.key;
    let kind = match input.kind {
        Kind::Set => quote!(#krate::TableType::Set),
        Kind::OrderedSet => quote!(#krate::TableType::OrderedSet),
        Kind::Bag => quote!(#krate::TableType::Bag),
    };
    let infos = input.fields.iter().map(|f| {
        let n = f.ident.to_string().trim_start_matches("r#").to_owned();
        let t = type_string(f.ty);
        quote!(#krate::FieldInfo { name: #n, ty: #t })
    });
    let indexes = input.fields.iter().filter_map(|f| {
        let decl = f.index?;
        let konst = format_ident!(
            "{}",
            case::screaming(f.ident.to_string().trim_start_matches("r#")),
            span = f.ty.span()
        );
        let unique = decl.unique;
        // Spanned at the field's type: a type that cannot be indexed is reported there.
        Some(quote_spanned! {f.ty.span()=> <#ident>::#konst.index_spec(#unique) })
    });
    let auto = input.auto_increment;
    let auto_fns = auto.then(|| {
        let msg = format!("id {{}} does not fit the key type {} of table {name}", type_string(key_ty));
        quote! {
            fn key_for_id(id: u64) -> ::core::option::Option<<Self as #krate::Record>::Key> {
                ::core::convert::TryFrom::try_from(id).ok()
            }

            fn auto_id(&self) -> ::core::option::Option<u64> {
                ::core::convert::TryFrom::try_from(self.#key_ident).ok()
            }

            fn set_auto_id(&mut self, id: u64) -> #krate::Result<()> {
                self.#key_ident = ::core::convert::TryFrom::try_from(id)
                    .map_err(|_| #krate::Error::Invalid(::std::format!(#msg, id)))?;
                ::core::result::Result::Ok(())
            }
        }
    });
    let probes = input.fields.iter().map(|f| {
        let n = f.ident.to_string().trim_start_matches("r#").to_owned();
        let konst = format_ident!("{}", case::screaming(&n));
        quote! {
            #n => {
                #[allow(unused_imports)]
                use #krate::__private::{ProbeIndexable as _, ProbeNotIndexable as _};
                (&&#krate::__private::IndexProbe(<#ident>::#konst)).spec(unique)
            }
        }
    });
    let ttl = input.ttl.map(|i| {
        let f = &input.fields[i];
        let (field, ty) = (f.ident, f.ty);
        let n = field.to_string().trim_start_matches("r#").to_owned();
        let default = match input.default_ttl_ms {
            Some(ms) => quote!(::core::option::Option::Some(::core::time::Duration::from_millis(#ms))),
            None => quote!(::core::option::Option::None),
        };
        // Spanned at the field's type: a type that is not a deadline is reported there.
        let get = quote_spanned! {ty.span()=> <#ty as #krate::Deadline>::deadline(&self.#field) };
        let set =
            quote_spanned! {ty.span()=> <#ty as #krate::Deadline>::set_deadline(&mut self.#field, deadline) };
        quote! {
            const TTL_FIELD: ::core::option::Option<&'static str> = ::core::option::Option::Some(#n);
            const DEFAULT_TTL: ::core::option::Option<::core::time::Duration> = #default;

            fn deadline(&self) -> ::core::option::Option<::std::time::SystemTime> {
                #get
            }

            fn set_deadline(
                &mut self,
                deadline: ::core::option::Option<::std::time::SystemTime>,
            ) -> #krate::Result<()> {
                #set
            }
        }
    });
    let expiring = input.ttl.map(|_| {
        quote! {
            #[automatically_derived]
            impl #krate::Expiring for #ident {}
        }
    });
    let key_assoc = quote_spanned! {key_ty.span()=> type Key = #key_ty; };
    let fields: Vec<_> = input.fields.iter().map(|f| (f.ident, f.ty, f.vis)).collect();
    let consts = field_consts(krate, ident, &fields);
    quote! {
        #[automatically_derived]
        impl #krate::Record for #ident {
            #key_assoc
            const NAME: &'static str = #name;
            const TYPE: #krate::TableType = #kind;
            const FIELDS: &'static [#krate::FieldInfo] = &[#(#infos),*];
            const KEY_POSITION: usize = #key_pos;
            const AUTO_INCREMENT: bool = #auto;

            fn key(&self) -> &<Self as #krate::Record>::Key {
                &self.#key_ident
            }

            fn indexes() -> ::std::vec::Vec<#krate::IndexSpec<Self>> {
                ::std::vec![#(#indexes),*]
            }

            fn index_spec_for(field: &str, unique: bool) -> ::core::option::Option<#krate::IndexSpec<Self>> {
                match field {
                    #(#probes)*
                    _ => ::core::option::Option::None,
                }
            }

            #auto_fns
            #ttl
        }

        #expiring
        #consts

        // Found by name on a copy that applies a `create_table` another copy ordered.
        #krate::__private::inventory::submit! { #krate::__private::TableKind::of::<#ident>() }
    }
}
