//! The error a shape/dtype rule or the typechecker reports.

/// A primitive was applied to operands (or with parameters) it does not accept.
///
/// `message` is a sentence that names the operands' types; `Display` prefixes
/// the primitive's name: `add: operands f32[2,3] and f32[4] have different shapes ...`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{op}: {message}")]
pub struct TypeError {
    pub op: String,
    pub message: String,
}

impl TypeError {
    pub fn new(op: impl Into<String>, message: impl Into<String>) -> TypeError {
        TypeError { op: op.into(), message: message.into() }
    }
}

/// Joins avals as `f32[2,3] and f32[4]` / `a, b and c` for messages.
pub fn list_avals(avals: &[crate::AVal]) -> String {
    let parts: Vec<String> = avals.iter().map(|a| a.to_string()).collect();
    match parts.len() {
        0 => "no operands".to_string(),
        1 => parts[0].clone(),
        n => format!("{} and {}", parts[..n - 1].join(", "), parts[n - 1]),
    }
}
