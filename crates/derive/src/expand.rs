//! The code `#[derive(Tree)]` generates: a `Tree` impl whose `flatten` builds a
//! `TreeDef::Struct` and whose `unflatten` checks it and rebuilds the struct.

use crate::attrs;
use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use std::collections::BTreeSet;
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, Generics, Ident, Member, Path, Type, WherePredicate};

/// One field of the struct, as the generated code needs it.
struct Field {
    /// `self.<member>` and `Name { <member>: .. }`: an identifier or an index.
    member: Member,
    /// The name recorded in the `TreeDef` (and shown by `leaf_paths`).
    name: String,
    ty: Type,
    is_static: bool,
    /// The local the rebuilt value is bound to in `unflatten`.
    local: Ident,
}

/// Expands `#[derive(Tree)]` on `input`, or says why it cannot.
pub fn expand(input: DeriveInput) -> syn::Result<TokenStream> {
    let fields = match &input.data {
        Data::Struct(s) => collect_fields(&s.fields)?,
        Data::Enum(e) => return Err(syn::Error::new(e.enum_token.span, "derive(Tree) supports structs only")),
        Data::Union(u) => return Err(syn::Error::new(u.union_token.span, "derive(Tree) supports structs only")),
    };
    let krate = attrs::container(&input.attrs)?.krate;
    let ident = &input.ident;
    let name = ident.unraw().to_string();
    let generics = add_bounds(&input.generics, &fields, &krate);
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    let flatten = flatten_body(&name, &fields, &krate);
    let unflatten = unflatten_body(&input, &name, &fields, &krate);
    Ok(quote! {
        #[automatically_derived]
        impl #impl_generics #krate::Tree for #ident #ty_generics #where_clause {
            fn flatten(&self, leaves: &mut ::std::vec::Vec<#krate::Array>) -> #krate::TreeDef {
                #flatten
            }
            fn unflatten(
                def: &#krate::TreeDef,
                leaves: &mut dyn ::core::iter::Iterator<Item = #krate::Array>,
            ) -> ::core::result::Result<Self, #krate::TreeError> {
                #unflatten
            }
        }
    })
}

fn collect_fields(fields: &Fields) -> syn::Result<Vec<Field>> {
    fields
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let opts = attrs::field(&f.attrs)?;
            let (member, name) = match &f.ident {
                Some(id) => (Member::Named(id.clone()), id.unraw().to_string()),
                None => (Member::Unnamed(i.into()), i.to_string()),
            };
            let local = format_ident!("__tree_field_{}", i, span = Span::mixed_site());
            Ok(Field { member, name, ty: f.ty.clone(), is_static: opts.is_static, local })
        })
        .collect()
}

/// Adds a bound for every field type that mentions a type parameter: `Tree`
/// for array fields, the `StaticValue` requirements for static ones. Types
/// without parameters get no bound: the impl body checks them directly, and a
/// bound naming a private field type would leak it into a public impl.
fn add_bounds(generics: &Generics, fields: &[Field], krate: &Path) -> Generics {
    let params: BTreeSet<String> = generics.type_params().map(|p| p.ident.to_string()).collect();
    let mut out = generics.clone();
    if params.is_empty() {
        return out;
    }
    let wc = out.make_where_clause();
    for f in fields.iter().filter(|f| mentions_any(f.ty.to_token_stream(), &params)) {
        let ty = &f.ty;
        let pred: WherePredicate = if f.is_static {
            syn::parse_quote_spanned! {ty.span()=>
                #ty: ::core::clone::Clone
                    + ::core::cmp::PartialEq
                    + ::core::fmt::Debug
                    + ::core::marker::Send
                    + ::core::marker::Sync
                    + 'static
            }
        } else {
            syn::parse_quote_spanned! {ty.span()=> #ty: #krate::Tree }
        };
        wc.predicates.push(pred);
    }
    out
}

/// Whether any identifier in `tokens` (at any depth) is one of `names`. A
/// path segment that merely shares a parameter's name also counts; the extra
/// bound that adds is harmless.
fn mentions_any(tokens: TokenStream, names: &BTreeSet<String>) -> bool {
    tokens.into_iter().any(|t| match t {
        TokenTree::Ident(id) => names.contains(&id.to_string()),
        TokenTree::Group(g) => mentions_any(g.stream(), names),
        _ => false,
    })
}

fn flatten_body(name: &str, fields: &[Field], krate: &Path) -> TokenStream {
    let arrays = fields.iter().filter(|f| !f.is_static).map(|f| {
        let (member, fname) = (&f.member, &f.name);
        quote_spanned! {f.ty.span()=> (#fname, #krate::Tree::flatten(&self.#member, leaves)) }
    });
    let statics = fields.iter().filter(|f| f.is_static).map(|f| {
        let (member, fname) = (&f.member, &f.name);
        quote_spanned! {f.ty.span()=>
            (#fname, #krate::StaticValue::new(::core::clone::Clone::clone(&self.#member)))
        }
    });
    // A struct with no array fields never touches `leaves`.
    let touch = fields.iter().all(|f| f.is_static).then(|| quote!(let _ = leaves;));
    quote! {
        #touch
        #krate::TreeDef::Struct {
            name: #name,
            fields: ::std::vec![#(#arrays),*],
            statics: ::std::vec![#(#statics),*],
        }
    }
}

fn unflatten_body(input: &DeriveInput, name: &str, fields: &[Field], krate: &Path) -> TokenStream {
    let field_names = fields.iter().filter(|f| !f.is_static).map(|f| &f.name);
    let static_names = fields.iter().filter(|f| f.is_static).map(|f| &f.name);
    let (mut ai, mut si) = (0usize, 0usize);
    let binds: Vec<TokenStream> = fields
        .iter()
        .map(|f| {
            let (ty, local, fname) = (&f.ty, &f.local, &f.name);
            // The error says which field failed, so a nested mismatch reads
            // as a path: "field `params` of Model: field `w` of Mlp: ...".
            let context = quote! {
                .map_err(|e| #krate::TreeError(::std::format!("field `{}` of {}: {}", #fname, #name, e)))?
            };
            if f.is_static {
                let i = si;
                si += 1;
                quote_spanned! {ty.span()=> let #local: #ty = statics[#i].1.get::<#ty>() #context; }
            } else {
                let i = ai;
                ai += 1;
                quote_spanned! {ty.span()=>
                    let #local: #ty = <#ty as #krate::Tree>::unflatten(&fields[#i].1, leaves) #context;
                }
            }
        })
        .collect();
    let fields_pat = if ai == 0 { quote!(_) } else { quote!(fields) };
    let statics_pat = if si == 0 { quote!(_) } else { quote!(statics) };
    let touch = (ai == 0).then(|| quote!(let _ = leaves;));
    let ident = &input.ident;
    let build = match fields.first().map(|f| &f.member) {
        None => match &input.data {
            Data::Struct(s) if matches!(s.fields, Fields::Unit) => quote!(#ident),
            Data::Struct(s) if matches!(s.fields, Fields::Unnamed(_)) => quote!(#ident()),
            _ => quote!(#ident {}),
        },
        Some(Member::Unnamed(_)) => {
            let locals = fields.iter().map(|f| &f.local);
            quote!(#ident(#(#locals),*))
        }
        Some(Member::Named(_)) => {
            let inits = fields.iter().map(|f| {
                let (member, local) = (&f.member, &f.local);
                quote!(#member: #local)
            });
            quote!(#ident { #(#inits),* })
        }
    };
    quote! {
        #touch
        let (#fields_pat, #statics_pat) = def.expect_struct(#name, &[#(#field_names),*], &[#(#static_names),*])?;
        #(#binds)*
        ::core::result::Result::Ok(#build)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    fn expanded(input: DeriveInput) -> String {
        match expand(input) {
            Ok(ts) => ts.to_string(),
            Err(e) => panic!("expansion failed: {e}"),
        }
    }

    fn error(input: DeriveInput) -> String {
        match expand(input) {
            Ok(ts) => panic!("expected an error, got {ts}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn enums_and_unions_are_rejected() {
        assert_eq!(
            error(parse_quote!(
                enum E {
                    A,
                    B,
                }
            )),
            "derive(Tree) supports structs only"
        );
        assert_eq!(error(parse_quote!(union U { a: u32, b: f32 })), "derive(Tree) supports structs only");
    }

    #[test]
    fn unknown_field_option_is_rejected() {
        let e = error(parse_quote!(
            struct S {
                #[tree(skip)]
                a: Array,
            }
        ));
        assert!(e.contains("unknown tree option `skip`"), "{e}");
    }

    #[test]
    fn default_paths_go_through_the_facade() {
        let s = expanded(parse_quote!(
            struct S {
                a: Array,
            }
        ));
        assert!(s.contains(":: arrayjit :: Tree for S"), "{s}");
        assert!(s.contains(":: arrayjit :: TreeDef :: Struct"), "{s}");
    }

    #[test]
    fn crate_option_changes_every_path() {
        let s = expanded(parse_quote!(
            #[tree(crate = "arrayjit_trace")]
            struct S {
                a: Array,
            }
        ));
        assert!(s.contains("arrayjit_trace :: Tree for S"), "{s}");
        assert!(!s.contains(":: arrayjit ::"), "{s}");
    }

    #[test]
    fn generic_field_types_are_bounded() {
        let s = expanded(parse_quote!(
            struct Pair<T> {
                a: T,
                b: Vec<T>,
                c: Array,
            }
        ));
        assert!(s.contains("where T : :: arrayjit :: Tree , Vec < T > : :: arrayjit :: Tree"), "{s}");
        // `Array` mentions no parameter, so it gets no bound.
        assert!(!s.contains("Array : :: arrayjit :: Tree"), "{s}");
    }

    #[test]
    fn generic_static_fields_get_the_static_bounds() {
        let s = expanded(parse_quote!(
            struct S<K> {
                a: Array,
                #[tree(static)]
                k: K,
            }
        ));
        assert!(s.contains("K : :: core :: clone :: Clone"), "{s}");
        assert!(!s.contains("K : :: arrayjit :: Tree"), "{s}");
    }

    #[test]
    fn existing_where_clause_is_kept() {
        let s = expanded(parse_quote!(
            struct S<T>
            where
                T: Clone,
            {
                a: T,
            }
        ));
        assert!(s.contains("where T : Clone , T : :: arrayjit :: Tree"), "{s}");
    }

    #[test]
    fn const_parameters_need_no_bound() {
        let s = expanded(parse_quote!(
            struct S<const N: usize> {
                a: [Array; N],
            }
        ));
        assert!(!s.contains("where"), "{s}");
    }

    #[test]
    fn names_follow_declaration_and_split_statics() {
        let s = expanded(parse_quote!(
            struct M {
                w: Array,
                #[tree(static)]
                act: String,
                b: Array,
            }
        ));
        assert!(s.contains("expect_struct (\"M\" , & [\"w\" , \"b\"] , & [\"act\"])"), "{s}");
    }

    #[test]
    fn raw_identifiers_are_recorded_without_r_hash() {
        let s = expanded(parse_quote!(
            struct r#S {
                r#type: Array,
            }
        ));
        assert!(s.contains("expect_struct (\"S\" , & [\"type\"]"), "{s}");
    }

    #[test]
    fn tuple_and_unit_structs_expand() {
        let t = expanded(parse_quote!(
            struct T(Array, #[tree(static)] u8);
        ));
        assert!(t.contains("& [\"0\"] , & [\"1\"]"), "{t}");
        let u = expanded(parse_quote!(
            struct U;
        ));
        assert!(u.contains("Ok (U)"), "{u}");
    }
}
