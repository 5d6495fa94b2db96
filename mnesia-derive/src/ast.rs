//! The derive's model of a table struct, parsed and checked.

use quote::ToTokens;
use syn::{Attribute, Data, DeriveInput, Fields, Ident, LitStr, Type, Visibility};

use crate::case;
use crate::duration;

/// A table type, as named in `#[table(type = "..")]`.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    Set,
    OrderedSet,
    Bag,
}

/// A secondary index declared on a field.
#[derive(Clone, Copy)]
pub(crate) struct IndexDecl<'a> {
    pub(crate) unique: bool,
    pub(crate) attr: &'a Attribute,
}

pub(crate) struct Field<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) vis: &'a Visibility,
    pub(crate) ty: &'a Type,
    pub(crate) index: Option<IndexDecl<'a>>,
}

pub(crate) struct Input<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) name: String,
    pub(crate) kind: Kind,
    pub(crate) fields: Vec<Field<'a>>,
    pub(crate) key: usize,
    pub(crate) auto_increment: bool,
    /// The `#[ttl]` field's position.
    pub(crate) ttl: Option<usize>,
    /// `#[table(ttl = "..")]`, in milliseconds.
    pub(crate) default_ttl_ms: Option<u64>,
    /// The path of the `mnesia` crate: `::mnesia`, or `#[table(crate = "..")]`'s.
    pub(crate) krate: proc_macro2::TokenStream,
}

/// The path every item of the output is reached through.
fn crate_path(krate: Option<&syn::Path>) -> proc_macro2::TokenStream {
    match krate {
        Some(path) => quote::quote!(#path),
        None => quote::quote!(::mnesia),
    }
}

/// `#[table(crate = "..")]`'s path among `attrs`, whatever else is wrong with them (for the
/// stub items emitted with errors).
pub(crate) fn crate_of(attrs: &[Attribute]) -> proc_macro2::TokenStream {
    let mut krate = None;
    for attr in attrs.iter().filter(|a| is(a, "table")) {
        let _ = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("crate") {
                let lit: LitStr = meta.value()?.parse()?;
                krate = lit.parse::<syn::Path>().ok();
            } else if meta.input.peek(syn::Token![=]) {
                let _: syn::Expr = meta.value()?.parse()?;
            }
            Ok(())
        });
    }
    crate_path(krate.as_ref())
}

/// Collects errors so that all of them are reported at once.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, e: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }

    /// An error covering all of `tokens` (an attribute's whole `#[..]`, not just its `#`).
    fn at(&mut self, tokens: impl ToTokens, msg: &str) {
        self.push(syn::Error::new_spanned(tokens, msg));
    }

    pub(crate) fn to_compile_errors(&self) -> proc_macro2::TokenStream {
        self.0.as_ref().map(syn::Error::to_compile_error).unwrap_or_default()
    }
}

const INTEGERS: &[&str] =
    &["u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128", "isize"];

fn is_integer(ty: &Type) -> bool {
    match ty {
        Type::Path(p) if p.qself.is_none() => p
            .path
            .segments
            .last()
            .is_some_and(|s| s.arguments.is_none() && INTEGERS.contains(&s.ident.to_string().as_str())),
        Type::Group(g) => is_integer(&g.elem),
        Type::Paren(p) => is_integer(&p.elem),
        _ => false,
    }
}

/// Whether the type is written as an `Option<..>`.
fn is_option(ty: &Type) -> bool {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last().is_some_and(|s| s.ident == "Option"),
        Type::Group(g) => is_option(&g.elem),
        Type::Paren(p) => is_option(&p.elem),
        _ => false,
    }
}

fn is(attr: &Attribute, name: &str) -> bool {
    attr.path().is_ident(name)
}

/// What `#[table(..)]` says.
struct TableOptions {
    name: String,
    kind: Kind,
    /// `ttl = ".."`: the lifetime in milliseconds, and the literal (for errors).
    ttl: Option<(u64, LitStr)>,
    /// A `#[key]` was put on the struct (reported already).
    misplaced_key: bool,
    /// `crate = ".."`: the path of the `mnesia` crate.
    krate: Option<syn::Path>,
}

/// Parses `#[table(name = "..", type = "..", ttl = "..")]` attributes of the struct.
/// Also reports field attributes put on the struct.
fn table_options(attrs: &[Attribute], errors: &mut Errors, default_name: String) -> TableOptions {
    let mut misplaced_key = false;
    let mut name: Option<String> = None;
    let mut kind: Option<Kind> = None;
    let mut ttl: Option<(u64, LitStr)> = None;
    let mut krate: Option<syn::Path> = None;
    for attr in attrs {
        if is(attr, "key") || is(attr, "index") || is(attr, "auto_increment") || is(attr, "ttl") {
            let n = attr.path().get_ident().map(ToString::to_string).unwrap_or_default();
            errors.at(attr, &format!("#[{n}] belongs on a field of the struct, not on the struct"));
            misplaced_key |= n == "key";
            continue;
        }
        if !is(attr, "table") {
            continue;
        }
        let parsed = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("name") {
                let lit: LitStr = meta.value()?.parse()?;
                if name.is_some() {
                    return Err(meta.error("duplicate `name` option in #[table(..)]"));
                }
                let value = lit.value();
                if value.is_empty() {
                    return Err(syn::Error::new(lit.span(), "the table name must not be empty"));
                }
                name = Some(value);
                Ok(())
            } else if meta.path.is_ident("type") {
                let lit: LitStr = meta.value()?.parse()?;
                if kind.is_some() {
                    return Err(meta.error("duplicate `type` option in #[table(..)]"));
                }
                kind = Some(match lit.value().as_str() {
                    "set" => Kind::Set,
                    "ordered_set" => Kind::OrderedSet,
                    "bag" => Kind::Bag,
                    other => {
                        return Err(syn::Error::new(
                            lit.span(),
                            format!(
                                "unknown table type `{other}`: expected \"set\", \"ordered_set\" or \"bag\""
                            ),
                        ));
                    }
                });
                Ok(())
            } else if meta.path.is_ident("ttl") {
                let lit: LitStr = meta.value()?.parse()?;
                if ttl.is_some() {
                    return Err(meta.error("duplicate `ttl` option in #[table(..)]"));
                }
                let ms = duration::parse_millis(&lit.value()).map_err(|e| syn::Error::new(lit.span(), e))?;
                ttl = Some((ms, lit));
                Ok(())
            } else if meta.path.is_ident("crate") {
                let lit: LitStr = meta.value()?.parse()?;
                if krate.is_some() {
                    return Err(meta.error("duplicate `crate` option in #[table(..)]"));
                }
                krate = Some(lit.parse().map_err(|_| {
                    syn::Error::new(
                        lit.span(),
                        format!("`{}` is not a path: `crate = \"..\"` names the mnesia crate, as in `crate = \"my_facade::mnesia\"`", lit.value()),
                    )
                })?);
                Ok(())
            } else {
                let option = meta.path.get_ident().map(ToString::to_string).unwrap_or_else(|| "?".into());
                Err(meta.error(format!(
                    "unknown option `{option}` in #[table(..)]: expected `name = \"..\"`, `type = \"..\"`, `ttl = \"..\"` or `crate = \"..\"`"
                )))
            }
        });
        if let Err(e) = parsed {
            errors.push(e);
        }
    }
    TableOptions {
        name: name.unwrap_or(default_name),
        kind: kind.unwrap_or(Kind::Set),
        ttl,
        misplaced_key,
        krate,
    }
}

/// What the attributes of one field say.
#[derive(Default)]
struct FieldAttrs<'a> {
    key: Option<&'a Attribute>,
    auto_increment: Option<&'a Attribute>,
    ttl: Option<&'a Attribute>,
    index: Option<IndexDecl<'a>>,
}

fn field_attrs<'a>(attrs: &'a [Attribute], errors: &mut Errors) -> FieldAttrs<'a> {
    let mut out = FieldAttrs::default();
    for attr in attrs {
        if is(attr, "key") || is(attr, "auto_increment") || is(attr, "ttl") {
            let n = attr.path().get_ident().map(ToString::to_string).unwrap_or_default();
            if !matches!(attr.meta, syn::Meta::Path(_)) {
                // Reported, but the field still counts as marked: no follow-up errors.
                let hint = if n == "ttl" {
                    " (a table's default lifetime goes on the struct: #[table(ttl = \"30m\")])"
                } else {
                    ""
                };
                errors.at(attr, &format!("#[{n}] takes no arguments: write #[{n}]{hint}"));
            }
            let slot = match n.as_str() {
                "key" => &mut out.key,
                "auto_increment" => &mut out.auto_increment,
                _ => &mut out.ttl,
            };
            if slot.is_some() {
                errors.at(attr, &format!("duplicate #[{n}] on this field"));
            }
            *slot = Some(attr);
        } else if is(attr, "index") {
            if out.index.is_some() {
                errors.at(attr, "duplicate #[index] on this field");
                continue;
            }
            let mut unique = false;
            if let syn::Meta::List(_) = &attr.meta {
                let parsed = attr.parse_nested_meta(|meta| {
                    if meta.path.is_ident("unique") {
                        unique = true;
                        Ok(())
                    } else {
                        let option =
                            meta.path.get_ident().map(ToString::to_string).unwrap_or_else(|| "?".into());
                        Err(meta.error(format!(
                            "unknown option `{option}` in #[index(..)]: write #[index] or #[index(unique)]"
                        )))
                    }
                });
                if let Err(e) = parsed {
                    errors.push(e);
                    continue;
                }
            } else if let syn::Meta::NameValue(nv) = &attr.meta {
                errors.at(nv, "write #[index] or #[index(unique)]");
                continue;
            }
            out.index = Some(IndexDecl { unique, attr });
        } else if is(attr, "table") {
            errors.at(attr, "#[table(..)] belongs on the struct, not on a field");
        }
    }
    out
}

impl<'a> Input<'a> {
    /// Parses and checks the struct; returns every error found.
    pub(crate) fn from_syn(input: &'a DeriveInput) -> Result<Input<'a>, Errors> {
        let mut errors = Errors::default();
        let named = match &input.data {
            Data::Struct(s) => match &s.fields {
                Fields::Named(n) => Some(n),
                Fields::Unnamed(_) => {
                    errors.at(&input.ident, "#[derive(Table)] needs a struct with named fields, not a tuple struct: name each field");
                    None
                }
                Fields::Unit => {
                    errors.at(
                        &input.ident,
                        "#[derive(Table)] needs a struct with named fields: a unit struct has no key",
                    );
                    None
                }
            },
            Data::Enum(e) => {
                errors.at(e.enum_token, "#[derive(Table)] needs a struct with named fields, not an enum: wrap the enum in a struct field");
                None
            }
            Data::Union(u) => {
                errors.at(u.union_token, "#[derive(Table)] needs a struct with named fields, not a union");
                None
            }
        };
        if !input.generics.params.is_empty() {
            errors.at(
                &input.generics,
                "#[derive(Table)] does not support generic structs: a table stores one concrete type",
            );
        }
        let TableOptions { name, kind, ttl: default_ttl, misplaced_key, krate } =
            table_options(&input.attrs, &mut errors, case::snake(&input.ident.to_string()));
        let mut fields = Vec::new();
        let mut key: Option<usize> = None;
        let mut auto_increment = false;
        let mut ttl: Option<usize> = None;
        if let Some(named) = named {
            for (i, f) in named.named.iter().enumerate() {
                let Some(ident) = f.ident.as_ref() else {
                    continue;
                };
                let attrs = field_attrs(&f.attrs, &mut errors);
                if let Some(attr) = attrs.key {
                    if key.is_some() {
                        errors.at(
                            attr,
                            "only one field can be the #[key]: for a key made of several values use one field of a tuple type",
                        );
                    } else {
                        key = Some(i);
                    }
                    if let Some(idx) = attrs.index {
                        errors.at(
                            idx.attr,
                            "the #[key] field needs no #[index]: lookups by key are already direct",
                        );
                    }
                }
                if let Some(attr) = attrs.auto_increment {
                    if attrs.key.is_none() {
                        errors
                            .at(attr, "#[auto_increment] goes on the #[key] field: add #[key] to this field");
                    } else if !is_integer(&f.ty) {
                        errors.at(
                            &f.ty,
                            "#[auto_increment] needs an integer key (u8..u128, i8..i128, usize or isize)",
                        );
                    } else {
                        auto_increment = true;
                    }
                }
                if let Some(attr) = attrs.ttl {
                    if attrs.key.is_some() {
                        errors.at(attr, "the #[key] cannot be the #[ttl] field: add a field for the deadline, such as `#[ttl] expires_at: Option<SystemTime>`");
                    } else if ttl.is_some() {
                        errors.at(attr, "only one field can be the #[ttl]: a record has one deadline");
                    } else {
                        ttl = Some(i);
                    }
                }
                fields.push(Field {
                    ident,
                    vis: &f.vis,
                    ty: &f.ty,
                    index: if attrs.key.is_some() { None } else { attrs.index },
                });
            }
            if key.is_none() && !misplaced_key {
                errors.at(&input.ident, "a table needs a key: mark one field with #[key]");
            }
            match (&default_ttl, ttl) {
                (Some((_, lit)), None) => errors.at(lit, "a default lifetime needs a field to hold each record's deadline: add `#[ttl] expires_at: Option<SystemTime>` to the struct"),
                (Some(_), Some(i)) if !is_option(fields[i].ty) => errors.at(
                    fields[i].ty,
                    "with #[table(ttl = \"..\")] the #[ttl] field is an `Option<SystemTime>`: the default lifetime is for records written without a deadline (None)",
                ),
                _ => {}
            }
        }
        let default_ttl_ms = default_ttl.map(|(ms, _)| ms);
        match (errors.0.is_some(), key) {
            (false, Some(key)) => Ok(Input {
                ident: &input.ident,
                name,
                kind,
                fields,
                key,
                auto_increment,
                ttl,
                default_ttl_ms,
                krate: crate_path(krate.as_ref()),
            }),
            _ => Err(errors),
        }
    }
}
