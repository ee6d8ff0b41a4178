//! Derive macros for [beeorm](https://docs.rs/beeorm).
//!
//! * `#[derive(Entity)]` turns a struct with an unsigned primary key (the field marked
//!   `#[orm(primary_key)]`, else the field `id`) into an entity: static metadata
//!   (table, pool, columns, indexes) that the registry validates.
//! * `#[derive(Embedded)]` marks a struct whose fields become prefixed columns of the
//!   entity that holds it (`#[orm(embedded)]` on the field).
//! * `#[derive(OrmEnum)]` turns a fieldless enum into a database `ENUM`/`SET` type.
//!
//! Nothing is switched on by a field's *name*: the primary key is `id` unless a field
//! says `#[orm(primary_key)]`, a column is named after its field unless the field says
//! `#[orm(column = "...")]` (so an existing database maps as it is), and the
//! fake-delete flag is the `bool` field marked `#[orm(fake_delete)]`. A field named
//! `fake_delete` without the attribute is a compile error rather than a silent plain
//! column, because that name alone used to switch fake delete on.
//!
//! Syntax errors in `#[orm(...)]` (unknown keys, malformed values) are compile errors
//! pointing at the attribute; a field type that cannot be stored is a compile error
//! pointing at the type. Errors that need the whole registry (an unknown enum name, a
//! gap in an index's positions, an attribute that does not fit the type) are reported
//! by `Registry::validate()`, naming the entity and the field.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{parse_macro_input, Data, DeriveInput, Fields, LitBool, LitInt, LitStr};

/// Derives `beeorm::Entity`. See the `beeorm` crate docs for the attributes.
#[proc_macro_derive(Entity, attributes(orm))]
pub fn derive_entity(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand_entity(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Derives `beeorm::Embedded`: the struct's fields become columns of the entity holding it.
#[proc_macro_derive(Embedded, attributes(orm))]
pub fn derive_embedded(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand_embedded(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Derives `beeorm::OrmEnum` for a fieldless enum.
#[proc_macro_derive(OrmEnum, attributes(orm))]
pub fn derive_orm_enum(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand_enum(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

fn named_fields(input: &DeriveInput, what: &str) -> syn::Result<Vec<syn::Field>> {
    match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(named) => Ok(named.named.iter().cloned().collect()),
            _ => Err(syn::Error::new(
                input.ident.span(),
                format!("#[derive({what})] needs a struct with named fields"),
            )),
        },
        _ => Err(syn::Error::new(
            input.ident.span(),
            format!("#[derive({what})] can only be used on a struct"),
        )),
    }
}

/// Parsed `#[orm(...)]` of one field.
#[derive(Default)]
struct FieldAttrs {
    length: Option<TokenStream2>,
    required: bool,
    indexes: Vec<(String, u8)>,
    uniques: Vec<(String, u8)>,
    mediumint: bool,
    decimal: Option<(u8, u8)>,
    unsigned: Option<bool>,
    enum_name: Option<String>,
    set_name: Option<String>,
    year: bool,
    time: bool,
    ignore: bool,
    mediumblob: bool,
    longblob: bool,
    json: bool,
    embedded: bool,
    cascade: bool,
    skip_fk: bool,
    /// `column = "..."`: the column's name when it is not the field's.
    column: Option<LitStr>,
    /// `fake_delete`: this `bool` field is the fake-delete flag.
    fake_delete: Option<proc_macro2::Span>,
    /// `primary_key`: this field is the primary key (instead of `id`).
    primary_key: Option<proc_macro2::Span>,
    /// `skip_log`: the field stays out of change-log rows.
    skip_log: Option<proc_macro2::Span>,
    /// `dirty = "stream[,stream…]"`: dirty streams told when this field changes.
    dirty: Vec<String>,
    /// `searchable[ = "kind"]`: the field is indexed (`""`: kind inferred), with the
    /// attribute's span.
    searchable: Option<(String, proc_macro2::Span)>,
    /// `sortable`: search results can be sorted by the field (implies `searchable`).
    sortable: Option<proc_macro2::Span>,
}

/// The kinds `searchable = "..."` takes.
const SEARCH_KINDS: [&str; 3] = ["text", "numeric", "tag"];

fn flag(meta: &syn::meta::ParseNestedMeta) -> syn::Result<bool> {
    if meta.input.peek(syn::Token![=]) {
        let lit: LitBool = meta.value()?.parse()?;
        Ok(lit.value)
    } else {
        Ok(true)
    }
}

/// `"A,B:2"` → `[("A", 1), ("B", 2)]`.
fn parse_index_list(lit: &LitStr) -> syn::Result<Vec<(String, u8)>> {
    let mut out = Vec::new();
    for part in lit.value().split(',') {
        let part = part.trim();
        let (name, pos) = match part.split_once(':') {
            Some((n, p)) => {
                let pos: u8 = p.trim().parse().map_err(|_| {
                    syn::Error::new(
                        lit.span(),
                        format!("index position `{p}` is not a number from 1 to 255"),
                    )
                })?;
                if pos == 0 {
                    return Err(syn::Error::new(lit.span(), "index positions start at 1"));
                }
                (n.trim(), pos)
            }
            None => (part, 1),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(syn::Error::new(
                lit.span(),
                format!("index name `{name}` must be non-empty ASCII letters, digits or `_`"),
            ));
        }
        out.push((name.to_string(), pos));
    }
    Ok(out)
}

/// `"a, b"` → `["a", "b"]`: the dirty streams of a `dirty = "..."` attribute, each a
/// non-empty name of ASCII letters, digits, `_`, `-`, `.` or `:`, none twice.
fn parse_stream_list(lit: &LitStr, into: &mut Vec<String>) -> syn::Result<()> {
    for part in lit.value().split(',') {
        let name = part.trim();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
        {
            return Err(syn::Error::new(
                lit.span(),
                format!(
                    "dirty stream name `{name}` must be non-empty ASCII letters, digits, `_`, `-`, `.` or `:` \
                     (several streams: `dirty = \"a,b\"`)"
                ),
            ));
        }
        if into.iter().any(|n| n == name) {
            return Err(syn::Error::new(
                lit.span(),
                format!("dirty stream `{name}` is named twice"),
            ));
        }
        into.push(name.to_string());
    }
    Ok(())
}

fn parse_field_attrs(field: &syn::Field) -> syn::Result<FieldAttrs> {
    let mut a = FieldAttrs::default();
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("orm")) {
        attr.parse_nested_meta(|meta| {
            let key = meta
                .path
                .get_ident()
                .map(|i| i.to_string())
                .unwrap_or_default();
            match key.as_str() {
                "length" => {
                    let v = meta.value()?;
                    if v.peek(LitInt) {
                        let lit: LitInt = v.parse()?;
                        let n: u32 = lit.base10_parse()?;
                        if n == 0 || n > 65_535 {
                            return Err(syn::Error::new(lit.span(), "length must be 1..=65535 or `\"max\"`"));
                        }
                        a.length = Some(quote!(::core::option::Option::Some(::beeorm::schema::Length::Chars(#n))));
                    } else {
                        let lit: LitStr = v.parse()?;
                        if lit.value() != "max" {
                            return Err(syn::Error::new(lit.span(), "length must be a number or `\"max\"`"));
                        }
                        a.length = Some(quote!(::core::option::Option::Some(::beeorm::schema::Length::Max)));
                    }
                }
                "required" => a.required = flag(&meta)?,
                "index" => {
                    let lit: LitStr = meta.value()?.parse()?;
                    a.indexes.extend(parse_index_list(&lit)?);
                }
                "unique" => {
                    let lit: LitStr = meta.value()?.parse()?;
                    a.uniques.extend(parse_index_list(&lit)?);
                }
                "mediumint" => a.mediumint = flag(&meta)?,
                "decimal" => {
                    let lit: LitStr = meta.value()?.parse()?;
                    let value = lit.value();
                    let parsed = value.split_once(',').and_then(|(p, s)| {
                        Some((p.trim().parse::<u8>().ok()?, s.trim().parse::<u8>().ok()?))
                    });
                    match parsed {
                        Some((p, s)) if (1..=65).contains(&p) && s <= 30 && s <= p => a.decimal = Some((p, s)),
                        _ => {
                            return Err(syn::Error::new(
                                lit.span(),
                                "decimal must be \"precision,scale\" with 1 <= precision <= 65 and scale <= min(precision, 30)",
                            ))
                        }
                    }
                }
                "unsigned" => a.unsigned = Some(flag(&meta)?),
                "enum" | "enum_name" => {
                    let lit: LitStr = meta.value()?.parse()?;
                    a.enum_name = Some(lit.value());
                }
                "set" => {
                    let lit: LitStr = meta.value()?.parse()?;
                    a.set_name = Some(lit.value());
                }
                "year" => a.year = flag(&meta)?,
                "time" => a.time = flag(&meta)?,
                "ignore" => a.ignore = flag(&meta)?,
                "mediumblob" => a.mediumblob = flag(&meta)?,
                "longblob" => a.longblob = flag(&meta)?,
                "json" => a.json = flag(&meta)?,
                "embedded" => a.embedded = flag(&meta)?,
                "cascade" => a.cascade = flag(&meta)?,
                "skip_fk" => a.skip_fk = flag(&meta)?,
                "column" => {
                    let lit: LitStr = meta.value()?.parse()?;
                    let v = lit.value();
                    if v.is_empty() || v.chars().any(char::is_control) {
                        return Err(syn::Error::new(
                            lit.span(),
                            "a column name must be non-empty, without control characters",
                        ));
                    }
                    a.column = Some(lit);
                }
                "fake_delete" => {
                    a.fake_delete = flag(&meta)?.then(|| meta.path.span());
                }
                "primary_key" => {
                    a.primary_key = flag(&meta)?.then(|| meta.path.span());
                }
                "skip_log" => {
                    a.skip_log = flag(&meta)?.then(|| meta.path.span());
                }
                "dirty" => {
                    let lit: LitStr = meta.value()?.parse()?;
                    parse_stream_list(&lit, &mut a.dirty)?;
                }
                "searchable" => {
                    if meta.input.peek(syn::Token![=]) {
                        let lit: LitStr = meta.value()?.parse()?;
                        let kind = lit.value();
                        if !SEARCH_KINDS.contains(&kind.as_str()) {
                            return Err(syn::Error::new(
                                lit.span(),
                                format!(
                                    "unknown search field kind `{kind}`; expected `\"text\"`, `\"numeric\"` or \
                                     `\"tag\"` (or a bare `searchable` to infer it from the column type)"
                                ),
                            ));
                        }
                        a.searchable = Some((kind, lit.span()));
                    } else {
                        a.searchable = Some((String::new(), meta.path.span()));
                    }
                }
                "sortable" => {
                    a.sortable = flag(&meta)?.then(|| meta.path.span());
                }
                _ => {
                    return Err(meta.error(format!(
                        "unknown field attribute `{key}`; expected one of: length, required, index, unique, \
                         mediumint, decimal, unsigned, enum, set, year, time, ignore, mediumblob, longblob, json, embedded, cascade, skip_fk, \
                         column, fake_delete, primary_key, skip_log, dirty, searchable, sortable"
                    )))
                }
            }
            Ok(())
        })?;
    }
    if a.ignore && !a.dirty.is_empty() {
        return Err(syn::Error::new(
            field.span(),
            "an `ignore`d field is not stored, so it cannot have `dirty` streams",
        ));
    }
    if let Some(span) = a.searchable.as_ref().map(|(_, s)| *s).or(a.sortable) {
        if a.ignore || a.json {
            return Err(syn::Error::new(
                span,
                "`searchable` / `sortable` need a stored column of its own: not an `ignore`d or `json` field",
            ));
        }
        if a.embedded {
            return Err(syn::Error::new(
                span,
                "`searchable` / `sortable` go on the fields of the embedded struct, not on the field holding it",
            ));
        }
    }
    if a.json && a.embedded {
        return Err(syn::Error::new(
            field.span(),
            "a field cannot be both `json` and `embedded`",
        ));
    }
    if let Some(span) = a.fake_delete {
        if !is_bool(&field.ty) {
            let ty = &field.ty;
            return Err(syn::Error::new(
                span,
                format!(
                    "`#[orm(fake_delete)]` needs a field of type `bool` (its column holds 0, or the \
                     deleted row's ID), not `{}`",
                    quote!(#ty).to_string().replace(' ', "")
                ),
            ));
        }
        if a.ignore || a.json || a.embedded {
            return Err(syn::Error::new(
                span,
                "`fake_delete` cannot be combined with `ignore`, `json` or `embedded`",
            ));
        }
        if a.skip_log.is_some() {
            return Err(syn::Error::new(
                span,
                "the fake-delete flag cannot be `skip_log`: a fake delete is logged as a change of it",
            ));
        }
    }
    Ok(a)
}

/// The field's name without a raw-identifier `r#`.
fn field_name(field: &syn::Field) -> syn::Result<String> {
    let ident = field
        .ident
        .as_ref()
        .ok_or_else(|| syn::Error::new(field.span(), "unnamed field"))?;
    let name = ident.to_string();
    Ok(name.strip_prefix("r#").unwrap_or(&name).to_string())
}

/// Checks what only an entity's own fields may carry (`entity`), or an embedded
/// struct's: the fake-delete flag is an entity field; the primary key is handled by
/// `expand_entity` and is never among `fields` here.
fn check_roles(fields: &[syn::Field], entity: bool) -> syn::Result<()> {
    let mut fake_delete: Option<String> = None;
    for field in fields {
        let attrs = parse_field_attrs(field)?;
        let name = field_name(field)?;
        if let Some(span) = attrs.primary_key {
            return Err(syn::Error::new(
                span,
                if entity {
                    "an entity has one primary key: only one field can be `#[orm(primary_key)]`"
                } else {
                    "`primary_key` goes on a field of the entity, not of an embedded struct"
                },
            ));
        }
        match attrs.fake_delete {
            Some(span) if !entity => {
                return Err(syn::Error::new(
                    span,
                    "`fake_delete` goes on a `bool` field of the entity, not of an embedded struct",
                ))
            }
            Some(span) => {
                if let Some(first) = &fake_delete {
                    return Err(syn::Error::new(
                        span,
                        format!("an entity has at most one `fake_delete` field; `{first}` is one already"),
                    ));
                }
                fake_delete = Some(name);
            }
            None if entity && name == "fake_delete" && !attrs.ignore => {
                return Err(syn::Error::new(
                    field.ident.span(),
                    "a field named `fake_delete` must say what it is: mark it `#[orm(fake_delete)]` \
                     (a `bool` flag; deletes then only flag the row), or rename it and add \
                     `#[orm(column = \"fake_delete\")]` for a plain column of that name",
                ));
            }
            None => {}
        }
    }
    Ok(())
}

/// Whether `ty` is written `String` (or `std::string::String`).
fn is_string(ty: &syn::Type) -> bool {
    matches!(ty, syn::Type::Path(p) if p.qself.is_none() && p.path.segments.last().is_some_and(|s| s.ident == "String" && s.arguments.is_empty()))
}

fn is_bool(ty: &syn::Type) -> bool {
    matches!(ty, syn::Type::Path(p) if p.qself.is_none() && p.path.segments.last().is_some_and(|s| s.ident == "bool" && s.arguments.is_empty()))
}

/// Whether `ty` is written `Ref<T>`, `Option<Ref<T>>` or `Vec<Ref<T>>`.
fn is_ref_field(ty: &syn::Type) -> bool {
    let syn::Type::Path(p) = ty else { return false };
    let Some(last) = p.path.segments.last() else {
        return false;
    };
    if last.ident == "Ref" {
        return true;
    }
    if last.ident != "Option" && last.ident != "Vec" {
        return false;
    }
    match &last.arguments {
        syn::PathArguments::AngleBracketed(args) if args.args.len() == 1 => {
            matches!(args.args.first(), Some(syn::GenericArgument::Type(syn::Type::Path(inner)))
                if inner.path.segments.last().is_some_and(|s| s.ident == "Ref"))
        }
        _ => false,
    }
}

/// `T` when `ty` is written `Option<T>` (or `std::option::Option<T>`).
fn option_inner(ty: &syn::Type) -> Option<&syn::Type> {
    let syn::Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if last.ident != "Option" {
        return None;
    }
    match &last.arguments {
        syn::PathArguments::AngleBracketed(args) if args.args.len() == 1 => {
            match args.args.first()? {
                syn::GenericArgument::Type(t) => Some(t),
                _ => None,
            }
        }
        _ => None,
    }
}

fn index_tokens(list: &[(String, u8)]) -> TokenStream2 {
    let items = list
        .iter()
        .map(|(name, pos)| quote!(::beeorm::schema::IndexPosition { name: #name, position: #pos }));
    quote!(::std::vec![#(#items),*])
}

/// The `FieldDefinition` expressions for a list of fields, skipping `ignore`d ones.
fn field_definitions(fields: &[syn::Field]) -> syn::Result<Vec<TokenStream2>> {
    let mut out = Vec::new();
    for field in fields {
        let attrs = parse_field_attrs(field)?;
        if attrs.ignore {
            continue;
        }
        let name = field_name(field)?;
        let column = attrs
            .column
            .as_ref()
            .map_or_else(|| name.clone(), LitStr::value);
        let fake_delete = attrs.fake_delete.is_some();
        let ty = &field.ty;
        let ty_str = quote!(#ty).to_string().replace(' ', "");
        let ty_span = ty.span();
        let shape = if attrs.embedded {
            quote_spanned!(ty_span=> ::beeorm::schema::FieldShape::Embedded(<#ty as ::beeorm::Embedded>::fields))
        } else if attrs.json {
            match option_inner(ty) {
                Some(inner) => {
                    quote_spanned!(ty_span=> ::beeorm::schema::FieldShape::Column(::beeorm::schema::nullable_json_column::<#inner>))
                }
                None => {
                    quote_spanned!(ty_span=> ::beeorm::schema::FieldShape::Column(::beeorm::schema::json_column::<#ty>))
                }
            }
        } else {
            quote_spanned!(ty_span=> ::beeorm::schema::FieldShape::Column(<#ty as ::beeorm::schema::FieldType>::column_spec))
        };
        let length = attrs
            .length
            .clone()
            .unwrap_or_else(|| quote!(::core::option::Option::None));
        let required = attrs.required;
        let indexes = index_tokens(&attrs.indexes);
        let uniques = index_tokens(&attrs.uniques);
        let mediumint = attrs.mediumint;
        let decimal = match attrs.decimal {
            Some((p, s)) => quote!(::core::option::Option::Some((#p, #s))),
            None => quote!(::core::option::Option::None),
        };
        let unsigned = match attrs.unsigned {
            Some(b) => quote!(::core::option::Option::Some(#b)),
            None => quote!(::core::option::Option::None),
        };
        let opt_str = |v: &Option<String>| match v {
            Some(s) => quote!(::core::option::Option::Some(#s)),
            None => quote!(::core::option::Option::None),
        };
        let enum_name = opt_str(&attrs.enum_name);
        let set_name = opt_str(&attrs.set_name);
        let year = attrs.year;
        let time = attrs.time;
        let mediumblob = attrs.mediumblob;
        let longblob = attrs.longblob;
        let cascade = attrs.cascade;
        let skip_fk = attrs.skip_fk;
        let skip_log = attrs.skip_log.is_some();
        let dirty = &attrs.dirty;
        // `sortable` alone: searchable, kind inferred.
        let searchable = match (&attrs.searchable, attrs.sortable) {
            (Some((kind, _)), _) => quote!(::core::option::Option::Some(#kind)),
            (None, Some(_)) => quote!(::core::option::Option::Some("")),
            (None, None) => quote!(::core::option::Option::None),
        };
        let sortable = attrs.sortable.is_some();
        out.push(quote! {
            ::beeorm::schema::FieldDefinition {
                name: #name,
                column: #column,
                rust_type: #ty_str,
                attributes: ::beeorm::schema::FieldAttributes {
                    length: #length,
                    required: #required,
                    indexes: #indexes,
                    uniques: #uniques,
                    mediumint: #mediumint,
                    decimal: #decimal,
                    unsigned: #unsigned,
                    enum_name: #enum_name,
                    set_name: #set_name,
                    year: #year,
                    time: #time,
                    mediumblob: #mediumblob,
                    longblob: #longblob,
                    cascade: #cascade,
                    skip_fk: #skip_fk,
                    fake_delete: #fake_delete,
                    skip_log: #skip_log,
                    dirty: &[#(#dirty),*],
                    searchable: #searchable,
                    sortable: #sortable,
                },
                shape: #shape,
            }
        });
    }
    Ok(out)
}

/// Per stored field: code that pushes its value, code that reads it, and (for
/// non-embedded fields) a `set_field` arm.
struct RowCode {
    /// Terms of the column count (`1` per plain field, the embedded type's count).
    count: Vec<TokenStream2>,
    strings: Vec<TokenStream2>,
    encode: Vec<TokenStream2>,
    decode: Vec<TokenStream2>,
    set_arms: Vec<TokenStream2>,
    refs: Vec<TokenStream2>,
}

fn row_code(fields: &[syn::Field]) -> syn::Result<RowCode> {
    let mut code = RowCode {
        count: Vec::new(),
        strings: Vec::new(),
        encode: Vec::new(),
        decode: Vec::new(),
        set_arms: Vec::new(),
        refs: Vec::new(),
    };
    for field in fields {
        let attrs = parse_field_attrs(field)?;
        let ident = field
            .ident
            .as_ref()
            .ok_or_else(|| syn::Error::new(field.span(), "unnamed field"))?;
        let ty = &field.ty;
        let span = ty.span();
        if attrs.ignore {
            code.decode
                .push(quote_spanned!(span=> #ident: ::core::default::Default::default()));
            continue;
        }
        let name = ident.to_string();
        let name = name.strip_prefix("r#").unwrap_or(&name).to_string();
        if attrs.embedded {
            code.encode
                .push(quote!(::beeorm::Embedded::push_values(&self.#ident, out);));
            code.strings
                .push(quote!(::beeorm::Embedded::visit_strings(&mut self.#ident, visit);));
            code.count
                .push(quote!(<#ty as ::beeorm::Embedded>::COLUMN_COUNT));
            code.decode.push(quote_spanned!(span=> #ident: <#ty as ::beeorm::Embedded>::from_values(values).map_err(|e| e.within(#name))?));
            continue;
        }
        if !attrs.json && is_ref_field(ty) {
            code.refs.push(
                quote!(::beeorm::__private::RefField::visit_refs(&mut self.#ident, #name, visit);),
            );
        }
        code.count.push(quote!(1usize));
        // Free text only: not enum values, sets or JSON (hooks such as the Persian
        // normaliser rewrite these).
        if !attrs.json && attrs.set_name.is_none() && attrs.enum_name.is_none() {
            if is_string(ty) {
                code.strings.push(quote!(visit(&mut self.#ident);));
            } else if option_inner(ty).is_some_and(is_string) {
                code.strings.push(
                    quote!(if let ::core::option::Option::Some(s) = &mut self.#ident { visit(s); }),
                );
            }
        }
        // Spanned at the type, so an unstorable type is reported there only.
        let codec = if attrs.json {
            if option_inner(ty).is_some() {
                quote_spanned!(span=> ::beeorm::schema::NullableJsonCodec)
            } else {
                quote_spanned!(span=> ::beeorm::schema::JsonCodec)
            }
        } else if attrs.set_name.is_some() {
            quote_spanned!(span=> ::beeorm::schema::SetCodec)
        } else if attrs.fake_delete.is_some() {
            // Its column holds the deleted row's ID: any non-zero value is `true`.
            quote_spanned!(span=> ::beeorm::schema::FakeDeleteCodec)
        } else {
            quote_spanned!(span=> ::beeorm::schema::NativeCodec)
        };
        code.encode.push(quote_spanned!(span=> out.push(<#codec as ::beeorm::schema::Codec<#ty>>::encode(&self.#ident));));
        code.decode.push(
            quote_spanned!(span=> #ident: <#codec as ::beeorm::schema::Codec<#ty>>::decode(
            values.next().unwrap_or_else(|| ::beeorm::Value::Null)
        ).map_err(|reason| ::beeorm::schema::DecodeError::new(#name, reason))?),
        );
        let ty_str = quote!(#ty).to_string().replace(' ', "");
        code.set_arms.push(quote_spanned!(span=> #name => {
            let given = ::beeorm::schema::value_kind(&value);
            self.#ident = <#codec as ::beeorm::schema::Codec<#ty>>::decode(value).map_err(|reason| {
                ::beeorm::schema::SetFieldError::WrongType { expected: #ty_str, given, reason }
            })?;
            ::core::result::Result::Ok(())
        }));
    }
    Ok(code)
}

fn expand_entity(input: &DeriveInput) -> syn::Result<TokenStream2> {
    let fields = named_fields(input, "Entity")?;
    let ident = &input.ident;
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new(
            input.generics.span(),
            "an entity cannot be generic",
        ));
    }
    let mut table: Option<String> = None;
    let mut pool: Option<String> = None;
    let mut own_hooks = false;
    // `local_cache` / `redis_cache`, bare (the `default` pool) or `= "pool"`, with the
    // span to point at when the entity is not `Clone`.
    let mut local_cache: Option<(String, proc_macro2::Span)> = None;
    let mut redis_cache: Option<String> = None;
    // `log` (the entity's pool) or `log = "pool"`.
    let mut log: Option<Option<String>> = None;
    // `cached_query(name = "...", query = "...")` / `cached_query_one(...)`: (name,
    // query, one), in declaration order.
    let mut queries: Vec<(String, String, bool)> = Vec::new();
    // `dirty = "stream[,stream…]"`: streams told about any change of the entity.
    let mut dirty: Vec<String> = Vec::new();
    // `search` (the `default` search pool) or `search = "pool"`.
    let mut search: Option<String> = None;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("orm")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("table") {
                let lit: LitStr = meta.value()?.parse()?;
                let v = lit.value();
                if v.is_empty()
                    || v.len() > 64
                    || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    return Err(syn::Error::new(
                        lit.span(),
                        "table name must be 1 to 64 ASCII letters, digits or `_`",
                    ));
                }
                table = Some(v);
            } else if meta.path.is_ident("hooks") {
                own_hooks = true;
            } else if meta.path.is_ident("pool") || meta.path.is_ident("mysql") {
                let lit: LitStr = meta.value()?.parse()?;
                pool = Some(lit.value());
            } else if meta.path.is_ident("local_cache") || meta.path.is_ident("redis_cache") {
                let name = if meta.input.peek(syn::Token![=]) {
                    let lit: LitStr = meta.value()?.parse()?;
                    if lit.value().is_empty() {
                        return Err(syn::Error::new(lit.span(), "the cache pool name is empty"));
                    }
                    lit.value()
                } else {
                    "default".to_string()
                };
                if meta.path.is_ident("local_cache") {
                    local_cache = Some((name, meta.path.span()));
                } else {
                    redis_cache = Some(name);
                }
            } else if meta.path.is_ident("log") {
                if log.is_some() {
                    return Err(meta.error("`log` is given twice"));
                }
                log = Some(if meta.input.peek(syn::Token![=]) {
                    let lit: LitStr = meta.value()?.parse()?;
                    let v = lit.value();
                    if v.is_empty()
                        || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                    {
                        return Err(syn::Error::new(
                            lit.span(),
                            "the change-log pool name must be non-empty ASCII letters, digits, `_` or `-`",
                        ));
                    }
                    Some(v)
                } else {
                    None
                });
            } else if meta.path.is_ident("dirty") {
                let lit: LitStr = meta.value()?.parse()?;
                parse_stream_list(&lit, &mut dirty)?;
            } else if meta.path.is_ident("search") {
                if search.is_some() {
                    return Err(meta.error("`search` is given twice"));
                }
                search = Some(if meta.input.peek(syn::Token![=]) {
                    let lit: LitStr = meta.value()?.parse()?;
                    let v = lit.value();
                    if v.is_empty()
                        || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                    {
                        return Err(syn::Error::new(
                            lit.span(),
                            "the search pool name must be non-empty ASCII letters, digits, `_` or `-`",
                        ));
                    }
                    v
                } else {
                    "default".to_string()
                });
            } else if meta.path.is_ident("cached_query") || meta.path.is_ident("cached_query_one") {
                let one = meta.path.is_ident("cached_query_one");
                let span = meta.path.span();
                let mut name: Option<LitStr> = None;
                let mut query: Option<LitStr> = None;
                meta.parse_nested_meta(|inner| {
                    if inner.path.is_ident("name") {
                        name = Some(inner.value()?.parse()?);
                    } else if inner.path.is_ident("query") {
                        query = Some(inner.value()?.parse()?);
                    } else {
                        return Err(inner.error(
                            "unknown cached query setting; expected `name = \"...\"` and `query = \"...\"`",
                        ));
                    }
                    Ok(())
                })?;
                let name = name.ok_or_else(|| {
                    syn::Error::new(span, "a cached query needs `name = \"...\"`")
                })?;
                let query = query.ok_or_else(|| {
                    syn::Error::new(
                        span,
                        "a cached query needs `query = \"...\"` (`\"\"` for every row)",
                    )
                })?;
                let n = name.value();
                if n.is_empty() || !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(syn::Error::new(
                        name.span(),
                        "a cached query name is 1 or more ASCII letters, digits or `_`",
                    ));
                }
                if queries.iter().any(|(other, _, _)| *other == n) {
                    return Err(syn::Error::new(
                        name.span(),
                        format!("cached query `{n}` is declared twice"),
                    ));
                }
                queries.push((n, query.value(), one));
            } else {
                return Err(meta.error(
                    "unknown entity attribute; expected `table = \"...\"`, `pool = \"...\"`, `hooks`, \
                     `local_cache[ = \"pool\"]`, `redis_cache[ = \"pool\"]`, `log[ = \"pool\"]`, \
                     `cached_query(name = \"...\", query = \"...\")`, `cached_query_one(...)`, \
                     `dirty = \"stream[,stream]\"` or `search[ = \"pool\"]`",
                ));
            }
            Ok(())
        })?;
    }
    // The primary key: the field marked `primary_key`, else the one named `id`.
    let mut marked = Vec::new();
    for (i, f) in fields.iter().enumerate() {
        if parse_field_attrs(f)?.primary_key.is_some() {
            marked.push(i);
        }
    }
    let id_index = match marked.as_slice() {
        [] => fields
            .iter()
            .position(|f| f.ident.as_ref().is_some_and(|i| i == "id"))
            .ok_or_else(|| {
                syn::Error::new(
                    ident.span(),
                    "an entity needs a primary key of an unsigned integer type (u8, u16, u32 or u64), \
                     auto-incremented: a field `id`, or the field marked `#[orm(primary_key)]`",
                )
            })?,
        [one] => *one,
        [_, second, ..] => {
            return Err(syn::Error::new(
                fields[*second].span(),
                "an entity has one primary key: only one field can be `#[orm(primary_key)]`",
            ))
        }
    };
    let id = &fields[id_index];
    let id_attrs = parse_field_attrs(id)?;
    let id_name = field_name(id)?;
    let id_column = id_attrs
        .column
        .as_ref()
        .map_or_else(|| id_name.clone(), LitStr::value);
    if !id_attrs.is_plain() || id_attrs.fake_delete.is_some() {
        return Err(syn::Error::new(
            id.span(),
            "the primary key field takes no #[orm(...)] attributes besides `primary_key` and `column`",
        ));
    }
    let id_ident = id
        .ident
        .as_ref()
        .ok_or_else(|| syn::Error::new(id.span(), "unnamed field"))?;
    let id_ty = &id.ty;
    let id_check = quote_spanned!(id_ty.span()=> <#id_ty as ::beeorm::schema::PrimaryKey>::COLUMN);
    let id_to_u64 = quote_spanned!(id_ty.span()=> <#id_ty as ::beeorm::schema::PrimaryKey>::to_u64(self.#id_ident));
    let others: Vec<syn::Field> = fields
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != id_index)
        .map(|(_, f)| f.clone())
        .collect();
    check_roles(&others, true)?;
    if log.is_none() {
        for f in &others {
            if let Some(span) = parse_field_attrs(f)?.skip_log {
                return Err(syn::Error::new(
                    span,
                    "`skip_log` has no effect: the entity is not logged (add `#[orm(log)]` to it)",
                ));
            }
        }
    }
    if search.is_none() {
        for f in &others {
            let attrs = parse_field_attrs(f)?;
            if let Some(span) = attrs
                .searchable
                .as_ref()
                .map(|(_, s)| *s)
                .or(attrs.sortable)
            {
                return Err(syn::Error::new(
                    span,
                    "the entity has no search index: add `#[orm(search)]` (or `#[orm(search = \"pool\")]`) to it",
                ));
            }
        }
    }
    let defs = field_definitions(&others)?;
    let RowCode {
        count,
        strings,
        encode,
        decode,
        set_arms,
        refs,
    } = row_code(&others)?;
    let own_hooks = if own_hooks {
        quote! {
            const HAS_OWN_HOOKS: bool = true;
            fn run_own_hook(&mut self, event: ::beeorm::hooks::HookEvent) -> ::beeorm::hooks::BoxFuture<'_, ::beeorm::Result<()>> {
                ::std::boxed::Box::pin(::beeorm::hooks::dispatch_entity_hook(self, event))
            }
        }
    } else {
        quote!()
    };
    let type_name = ident.to_string();
    let table = match table {
        Some(t) => quote!(::core::option::Option::Some(#t)),
        None => quote!(::core::option::Option::None),
    };
    let pool = match pool {
        Some(p) => quote!(::core::option::Option::Some(#p)),
        None => quote!(::core::option::Option::None),
    };
    // A local cache hands out copies of the entity it holds: the entity must be
    // `Clone` (the error points at `local_cache`).
    let cache_clone = match &local_cache {
        Some((_, span)) => quote_spanned! {*span=>
            fn cache_clone(&self) -> ::core::option::Option<Self> {
                ::core::option::Option::Some(<Self as ::core::clone::Clone>::clone(self))
            }
        },
        None => quote!(),
    };
    let local = match &local_cache {
        Some((p, _)) => quote!(::core::option::Option::Some(#p)),
        None => quote!(::core::option::Option::None),
    };
    let redis = match &redis_cache {
        Some(p) => quote!(::core::option::Option::Some(#p)),
        None => quote!(::core::option::Option::None),
    };
    let logged = log.is_some();
    let log_pool = match log.flatten() {
        Some(p) => quote!(::core::option::Option::Some(#p)),
        None => quote!(::core::option::Option::None),
    };
    let search = match &search {
        Some(p) => quote!(::core::option::Option::Some(#p)),
        None => quote!(::core::option::Option::None),
    };
    let queries = queries.iter().map(|(name, query, one)| {
        quote!(::beeorm::schema::CachedQueryDefinition { name: #name, query: #query, one: #one })
    });
    Ok(quote! {
        impl ::beeorm::Entity for #ident {
            fn definition() -> ::beeorm::schema::EntityDefinition {
                ::beeorm::schema::EntityDefinition {
                    type_name: #type_name,
                    table: #table,
                    pool: #pool,
                    id: #id_check,
                    id_field: #id_name,
                    id_column: #id_column,
                    fields: ::std::vec![#(#defs),*],
                    cache: ::beeorm::schema::CacheDefinition {
                        local: #local,
                        redis: #redis,
                        queries: &[#(#queries),*],
                    },
                    log: #logged,
                    log_pool: #log_pool,
                    dirty: &[#(#dirty),*],
                    search: #search,
                }
            }
            #cache_clone
            fn id(&self) -> u64 {
                #id_to_u64
            }
            fn set_id(&mut self, id: u64) -> ::core::result::Result<(), ::std::string::String> {
                self.#id_ident = <#id_ty as ::beeorm::schema::PrimaryKey>::from_u64(id)?;
                ::core::result::Result::Ok(())
            }
            fn push_values(&self, out: &mut ::std::vec::Vec<::beeorm::Value>) {
                #(#encode)*
            }
            fn from_values(values: &mut ::beeorm::Cells<'_>) -> ::core::result::Result<Self, ::beeorm::schema::DecodeError> {
                let id = <#id_ty as ::beeorm::schema::PrimaryKey>::from_value(values.next().unwrap_or_else(|| ::beeorm::Value::Null))
                    .map_err(|reason| ::beeorm::schema::DecodeError::new(#id_name, reason))?;
                ::core::result::Result::Ok(#ident {
                    #id_ident: id,
                    #(#decode),*
                })
            }
            const COLUMN_COUNT: usize = 0 #(+ #count)*;
            const TYPE_NAME: &'static str = #type_name;
            fn visit_strings(&mut self, visit: &mut dyn FnMut(&mut ::std::string::String)) {
                let _ = &visit;
                #(#strings)*
            }
            fn visit_refs<'s>(&'s mut self, visit: &mut dyn FnMut(&'static str, &'s mut dyn ::beeorm::__private::AnyRef)) {
                let _ = &visit;
                #(#refs)*
            }
            #own_hooks
            fn set_field(&mut self, name: &str, value: ::beeorm::Value) -> ::core::result::Result<(), ::beeorm::schema::SetFieldError> {
                match name {
                    #(#set_arms)*
                    _ => ::core::result::Result::Err(::beeorm::schema::SetFieldError::UnknownField),
                }
            }
        }
    })
}

impl FieldAttrs {
    fn is_plain(&self) -> bool {
        self.length.is_none()
            && !self.required
            && self.indexes.is_empty()
            && self.uniques.is_empty()
            && !self.mediumint
            && self.decimal.is_none()
            && self.unsigned.is_none()
            && self.enum_name.is_none()
            && self.set_name.is_none()
            && !self.year
            && !self.time
            && !self.ignore
            && !self.mediumblob
            && !self.longblob
            && !self.json
            && !self.embedded
            && !self.cascade
            && !self.skip_fk
            && self.skip_log.is_none()
            && self.dirty.is_empty()
            && self.searchable.is_none()
            && self.sortable.is_none()
    }
}

fn expand_embedded(input: &DeriveInput) -> syn::Result<TokenStream2> {
    let fields = named_fields(input, "Embedded")?;
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new(
            input.generics.span(),
            "an embedded struct cannot be generic",
        ));
    }
    let ident = &input.ident;
    check_roles(&fields, false)?;
    let defs = field_definitions(&fields)?;
    let RowCode {
        count,
        strings,
        encode,
        decode,
        ..
    } = row_code(&fields)?;
    Ok(quote! {
        impl ::beeorm::Embedded for #ident {
            fn fields() -> ::std::vec::Vec<::beeorm::schema::FieldDefinition> {
                ::std::vec![#(#defs),*]
            }
            fn push_values(&self, out: &mut ::std::vec::Vec<::beeorm::Value>) {
                #(#encode)*
            }
            fn from_values(values: &mut ::beeorm::Cells<'_>) -> ::core::result::Result<Self, ::beeorm::schema::DecodeError> {
                ::core::result::Result::Ok(#ident {
                    #(#decode),*
                })
            }
            const COLUMN_COUNT: usize = 0 #(+ #count)*;
            fn visit_strings(&mut self, visit: &mut dyn FnMut(&mut ::std::string::String)) {
                let _ = &visit;
                #(#strings)*
            }
        }
    })
}

fn expand_enum(input: &DeriveInput) -> syn::Result<TokenStream2> {
    let data = match &input.data {
        Data::Enum(e) => e,
        _ => {
            return Err(syn::Error::new(
                input.ident.span(),
                "#[derive(OrmEnum)] can only be used on an enum",
            ))
        }
    };
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new(
            input.generics.span(),
            "an OrmEnum cannot be generic",
        ));
    }
    if data.variants.is_empty() {
        return Err(syn::Error::new(
            input.ident.span(),
            "an OrmEnum needs at least one variant",
        ));
    }
    let ident = &input.ident;
    let mut names = Vec::new();
    let mut variants = Vec::new();
    let mut default_index: Option<usize> = None;
    for (i, v) in data.variants.iter().enumerate() {
        if !matches!(v.fields, Fields::Unit) {
            return Err(syn::Error::new(
                v.span(),
                "OrmEnum variants cannot carry data",
            ));
        }
        let mut name = v.ident.to_string();
        for attr in v.attrs.iter().filter(|a| a.path().is_ident("orm")) {
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("rename") {
                    let lit: LitStr = meta.value()?.parse()?;
                    name = lit.value();
                } else if meta.path.is_ident("default") {
                    if default_index.is_some() {
                        return Err(meta.error("only one variant can be `#[orm(default)]`"));
                    }
                    default_index = Some(i);
                } else {
                    return Err(meta.error(
                        "unknown variant attribute; expected `rename = \"...\"` or `default`",
                    ));
                }
                Ok(())
            })?;
        }
        if name.is_empty() || name.contains(',') || name.contains('\'') {
            return Err(syn::Error::new(
                v.span(),
                "an enum value must be non-empty and contain no `,` or `'`",
            ));
        }
        if names.contains(&name) {
            return Err(syn::Error::new(
                v.span(),
                format!("duplicate enum value `{name}`"),
            ));
        }
        names.push(name);
        variants.push(v.ident.clone());
    }
    let default_variant = &variants[default_index.unwrap_or(0)];
    let type_name = ident.to_string();
    let as_str_arms = variants
        .iter()
        .zip(&names)
        .map(|(v, n)| quote!(#ident::#v => #n));
    let from_str_arms = variants
        .iter()
        .zip(&names)
        .map(|(v, n)| quote!(#n => ::core::option::Option::Some(#ident::#v)));
    Ok(quote! {
        impl ::beeorm::OrmEnum for #ident {
            const NAME: &'static str = #type_name;
            fn fields() -> &'static [&'static str] {
                &[#(#names),*]
            }
            fn default_value() -> Self {
                #ident::#default_variant
            }
            fn as_str(&self) -> &'static str {
                match self { #(#as_str_arms),* }
            }
            fn from_str(value: &str) -> ::core::option::Option<Self> {
                match value { #(#from_str_arms,)* _ => ::core::option::Option::None }
            }
        }
        impl ::beeorm::schema::FieldType for #ident {
            fn column_spec(attributes: &::beeorm::schema::FieldAttributes) -> ::core::result::Result<::beeorm::schema::ColumnSpec, ::std::string::String> {
                ::beeorm::schema::enum_column::<#ident>(attributes)
            }
            fn to_value(&self) -> ::beeorm::Value {
                ::beeorm::schema::enum_to_value(self)
            }
            fn from_value(value: ::beeorm::Value) -> ::core::result::Result<Self, ::std::string::String> {
                ::beeorm::schema::enum_from_value(value)
            }
        }
    })
}
