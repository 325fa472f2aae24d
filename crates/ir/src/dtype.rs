//! Element types and the one place where their promotion rule is written down.
//!
//! The lattice is `bool < i32 < f32 < f64`: combining two arrays promotes both to
//! the larger type. Rust scalars mixed with arrays are *weak* (as in JAX): a float
//! scalar takes the array's float type, so `x_f32 * 2.0` stays `f32`; an integer
//! scalar takes the array's type; a float scalar with an integer or bool array
//! gives `f32`.

use std::fmt;

/// The element type of an array.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    Bool,
    I32,
    F32,
    F64,
}

/// The kind of a Rust scalar mixed into an array expression.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WeakKind {
    Bool,
    Int,
    Float,
}

impl DType {
    /// All dtypes, smallest first.
    pub const ALL: [DType; 4] = [DType::Bool, DType::I32, DType::F32, DType::F64];

    /// The name used in printed programs: `bool`, `i32`, `f32`, `f64`.
    pub fn name(self) -> &'static str {
        match self {
            DType::Bool => "bool",
            DType::I32 => "i32",
            DType::F32 => "f32",
            DType::F64 => "f64",
        }
    }

    /// Reads a name written by [`DType::name`].
    pub fn from_name(s: &str) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.name() == s)
    }

    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }

    pub fn is_int(self) -> bool {
        self == DType::I32
    }

    pub fn is_bool(self) -> bool {
        self == DType::Bool
    }

    /// Integer or float: the types arithmetic is defined on.
    pub fn is_numeric(self) -> bool {
        !self.is_bool()
    }

    /// Bytes per element.
    pub fn size_bytes(self) -> usize {
        match self {
            DType::Bool => 1,
            DType::I32 | DType::F32 => 4,
            DType::F64 => 8,
        }
    }

    /// The promoted type of two arrays: the larger in `bool < i32 < f32 < f64`.
    pub fn promote(a: DType, b: DType) -> DType {
        a.max(b)
    }

    /// The type of an array combined with a weak Rust scalar.
    pub fn promote_weak(array: DType, scalar: WeakKind) -> DType {
        match (array, scalar) {
            (d, WeakKind::Bool) => d,
            (DType::Bool, WeakKind::Int) => DType::I32,
            (d, WeakKind::Int) => d,
            (d, WeakKind::Float) if d.is_float() => d,
            (_, WeakKind::Float) => DType::F32,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promotion_is_a_join() {
        for a in DType::ALL {
            assert_eq!(DType::promote(a, a), a);
            for b in DType::ALL {
                assert_eq!(DType::promote(a, b), DType::promote(b, a));
                let p = DType::promote(a, b);
                assert!(p >= a && p >= b);
            }
        }
        assert_eq!(DType::promote(DType::I32, DType::F32), DType::F32);
        assert_eq!(DType::promote(DType::Bool, DType::I32), DType::I32);
        assert_eq!(DType::promote(DType::F32, DType::F64), DType::F64);
    }

    #[test]
    fn weak_scalars_keep_the_array_type() {
        assert_eq!(DType::promote_weak(DType::F32, WeakKind::Float), DType::F32);
        assert_eq!(DType::promote_weak(DType::F64, WeakKind::Int), DType::F64);
        assert_eq!(DType::promote_weak(DType::I32, WeakKind::Int), DType::I32);
        assert_eq!(DType::promote_weak(DType::I32, WeakKind::Float), DType::F32);
        assert_eq!(DType::promote_weak(DType::Bool, WeakKind::Int), DType::I32);
        assert_eq!(DType::promote_weak(DType::Bool, WeakKind::Bool), DType::Bool);
    }

    #[test]
    fn names_round_trip() {
        for d in DType::ALL {
            assert_eq!(DType::from_name(d.name()), Some(d));
        }
        assert_eq!(DType::from_name("f16"), None);
    }
}
