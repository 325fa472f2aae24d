//! Why a jitted function was compiled again: which argument changed, and how.

use arrayjit_ir::AVal;
use arrayjit_trace::TreeDef;

/// Describes a cache miss of `key` against the signatures already compiled
/// (most recent first), naming the differing leaves of the closest one (the
/// most recent among equals) by their path in the argument tree, or the
/// structure that changed.
pub(crate) fn miss<'a>(
    name: &str,
    key: &(TreeDef, Vec<AVal>),
    known: impl Iterator<Item = &'a (TreeDef, Vec<AVal>)>,
) -> String {
    let (def, avals) = key;
    let known: Vec<&(TreeDef, Vec<AVal>)> = known.collect();
    let same_structure =
        known.iter().filter(|k| k.0 == *def).min_by_key(|k| k.1.iter().zip(avals).filter(|(a, b)| a != b).count());
    match same_structure {
        Some(k) => {
            let paths = def.leaf_paths();
            let changes: Vec<String> =
                k.1.iter()
                    .zip(avals)
                    .enumerate()
                    .filter(|(_, (a, b))| a != b)
                    .map(|(i, (a, b))| {
                        format!("argument {} changed from {a} to {b}", paths.get(i).map(String::as_str).unwrap_or("?"))
                    })
                    .collect();
            format!("recompiling `{name}` ({} signatures cached): {}", known.len(), changes.join("; "))
        }
        None => {
            let closest = known.first().map(|k| k.0.to_string()).unwrap_or_default();
            format!(
                "recompiling `{name}` ({} signatures cached): the argument structure or a static value changed: \
                 {def} (was {closest})",
                known.len()
            )
        }
    }
}
