//! Parsing of the `#[tree(...)]` options on a struct and on its fields.

use syn::{Attribute, LitStr, Path};

/// Options given on the struct itself.
pub struct ContainerOpts {
    /// Where `Tree`, `TreeDef`, `StaticValue`, `TreeError` and `Array` live:
    /// `::arrayjit` unless `#[tree(crate = "...")]` says otherwise.
    pub krate: Path,
}

/// Options given on one field.
pub struct FieldOpts {
    /// `#[tree(static)]`: the field is kept in the `TreeDef`, not as leaves.
    pub is_static: bool,
}

/// Reads `#[tree(crate = "path")]` from the struct's attributes.
pub fn container(attrs: &[Attribute]) -> syn::Result<ContainerOpts> {
    let mut krate: Option<Path> = None;
    for attr in attrs.iter().filter(|a| a.path().is_ident("tree")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("crate") {
                if krate.is_some() {
                    return Err(meta.error("`crate` is given twice"));
                }
                let lit: LitStr = meta.value()?.parse()?;
                krate = Some(lit.parse()?);
                Ok(())
            } else if meta.path.is_ident("static") {
                Err(meta.error("`static` is a field option: put #[tree(static)] on a field, not on the struct"))
            } else {
                Err(meta.error(format!(
                    "unknown tree option `{}` on a struct; the only struct option is `crate = \"path\"`",
                    path_text(&meta.path)
                )))
            }
        })?;
    }
    Ok(ContainerOpts { krate: krate.unwrap_or_else(|| syn::parse_quote!(::arrayjit)) })
}

/// Reads `#[tree(static)]` from a field's attributes.
pub fn field(attrs: &[Attribute]) -> syn::Result<FieldOpts> {
    let mut is_static = false;
    for attr in attrs.iter().filter(|a| a.path().is_ident("tree")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("static") {
                if is_static {
                    return Err(meta.error("`static` is given twice"));
                }
                is_static = true;
                Ok(())
            } else if meta.path.is_ident("crate") {
                Err(meta
                    .error("`crate` is a struct option: put #[tree(crate = \"...\")] on the struct, not on a field"))
            } else {
                Err(meta.error(format!(
                    "unknown tree option `{}` on a field; the only field option is `static`",
                    path_text(&meta.path)
                )))
            }
        })?;
    }
    Ok(FieldOpts { is_static })
}

/// A path as the user wrote it, for error messages.
fn path_text(p: &Path) -> String {
    let segs: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
    let lead = if p.leading_colon.is_some() { "::" } else { "" };
    format!("{lead}{}", segs.join("::"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    fn attrs(a: Attribute) -> Vec<Attribute> {
        vec![a]
    }

    /// The crate path the options give, as tokens.
    fn krate(a: &[Attribute]) -> Option<String> {
        container(a).ok().map(|o| quote::ToTokens::to_token_stream(&o.krate).to_string())
    }

    #[test]
    fn default_crate_path_is_the_facade() {
        assert_eq!(krate(&[]).as_deref(), Some(":: arrayjit"));
    }

    #[test]
    fn crate_option_overrides_the_path() {
        let a = attrs(parse_quote!(#[tree(crate = "arrayjit_trace")]));
        assert_eq!(krate(&a).as_deref(), Some("arrayjit_trace"));
    }

    #[test]
    fn other_attributes_are_ignored() {
        let a: Vec<Attribute> = vec![parse_quote!(#[derive(Clone)]), parse_quote!(#[doc = "x"])];
        assert!(container(&a).is_ok());
        assert!(field(&a).is_ok_and(|o| !o.is_static));
    }

    #[test]
    fn static_marks_a_field() {
        assert!(field(&attrs(parse_quote!(#[tree(static)]))).is_ok_and(|o| o.is_static));
    }

    #[test]
    fn unknown_field_option_is_named() {
        let err = field(&attrs(parse_quote!(#[tree(skip)]))).err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("unknown tree option `skip` on a field; the only field option is `static`"));
    }

    #[test]
    fn unknown_struct_option_is_named() {
        let err = container(&attrs(parse_quote!(#[tree(rename = "x")]))).err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("unknown tree option `rename` on a struct; the only struct option is `crate = \"path\"`")
        );
    }

    #[test]
    fn options_in_the_wrong_place_say_where_they_belong() {
        let e1 = container(&attrs(parse_quote!(#[tree(static)]))).err().map(|e| e.to_string());
        assert!(e1.is_some_and(|m| m.contains("`static` is a field option")));
        let e2 = field(&attrs(parse_quote!(#[tree(crate = "x")]))).err().map(|e| e.to_string());
        assert!(e2.is_some_and(|m| m.contains("`crate` is a struct option")));
    }

    #[test]
    fn repeated_options_are_rejected() {
        let e = field(&attrs(parse_quote!(#[tree(static, static)]))).err().map(|e| e.to_string());
        assert_eq!(e.as_deref(), Some("`static` is given twice"));
    }

    #[test]
    fn malformed_crate_path_is_an_error() {
        assert!(container(&attrs(parse_quote!(#[tree(crate = "not a path")]))).is_err());
        assert!(container(&attrs(parse_quote!(#[tree(crate)]))).is_err());
    }
}
