//! Concrete values: scalars (IR literals) and host arrays (program constants, eager values).

use crate::{AVal, DType, Shape};
use std::fmt;

/// A rank-0 value of a given dtype; appears in programs as a literal.
///
/// Equality compares bits, so a NaN literal equals itself (needed for
/// print/parse round trips).
#[derive(Clone, Copy, Debug)]
pub enum Scalar {
    Bool(bool),
    I32(i32),
    F32(f32),
    F64(f64),
}

impl PartialEq for Scalar {
    fn eq(&self, other: &Scalar) -> bool {
        match (self, other) {
            (Scalar::Bool(a), Scalar::Bool(b)) => a == b,
            (Scalar::I32(a), Scalar::I32(b)) => a == b,
            (Scalar::F32(a), Scalar::F32(b)) => a.to_bits() == b.to_bits(),
            (Scalar::F64(a), Scalar::F64(b)) => a.to_bits() == b.to_bits(),
            _ => false,
        }
    }
}

impl Eq for Scalar {}

impl std::hash::Hash for Scalar {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        match *self {
            Scalar::Bool(v) => (0u8, v as u64).hash(h),
            Scalar::I32(v) => (1u8, v as u64).hash(h),
            Scalar::F32(v) => (2u8, v.to_bits() as u64).hash(h),
            Scalar::F64(v) => (3u8, v.to_bits()).hash(h),
        }
    }
}

impl Scalar {
    pub fn dtype(self) -> DType {
        match self {
            Scalar::Bool(_) => DType::Bool,
            Scalar::I32(_) => DType::I32,
            Scalar::F32(_) => DType::F32,
            Scalar::F64(_) => DType::F64,
        }
    }

    /// The value as f64 (bools are 0 or 1).
    pub fn as_f64(self) -> f64 {
        match self {
            Scalar::Bool(v) => v as u8 as f64,
            Scalar::I32(v) => v as f64,
            Scalar::F32(v) => v as f64,
            Scalar::F64(v) => v,
        }
    }

    /// Converts a number to the given dtype with Rust's `as` semantics
    /// (floats to integers saturate, NaN to 0; nonzero to `true`).
    pub fn from_f64(v: f64, dtype: DType) -> Scalar {
        match dtype {
            DType::Bool => Scalar::Bool(v != 0.0),
            DType::I32 => Scalar::I32(v as i32),
            DType::F32 => Scalar::F32(v as f32),
            DType::F64 => Scalar::F64(v),
        }
    }

    /// Converts to another dtype (the semantics of the `convert` primitive).
    pub fn cast(self, dtype: DType) -> Scalar {
        match (self, dtype) {
            (Scalar::I32(v), DType::F64) => Scalar::F64(v as f64),
            (Scalar::I32(v), DType::F32) => Scalar::F32(v as f32),
            (Scalar::F32(v), DType::F64) => Scalar::F64(v as f64),
            (s, d) => Scalar::from_f64(s.as_f64(), d),
        }
    }
}

impl fmt::Display for Scalar {
    /// Shortest text that reads back to the same bits, followed by the dtype:
    /// `2.0:f32`, `-3:i32`, `true:bool`, `NaN:f64`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Bool(v) => write!(f, "{v}:bool"),
            Scalar::I32(v) => write!(f, "{v}:i32"),
            Scalar::F32(v) => write!(f, "{v:?}:f32"),
            Scalar::F64(v) => write!(f, "{v:?}:f64"),
        }
    }
}

/// The elements of a host array, one variant per dtype.
#[derive(Clone, Debug)]
pub enum Data {
    Bool(Vec<bool>),
    I32(Vec<i32>),
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl Data {
    pub fn dtype(&self) -> DType {
        match self {
            Data::Bool(_) => DType::Bool,
            Data::I32(_) => DType::I32,
            Data::F32(_) => DType::F32,
            Data::F64(_) => DType::F64,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Data::Bool(v) => v.len(),
            Data::I32(v) => v.len(),
            Data::F32(v) => v.len(),
            Data::F64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` as a scalar.
    pub fn get(&self, i: usize) -> Scalar {
        match self {
            Data::Bool(v) => Scalar::Bool(v[i]),
            Data::I32(v) => Scalar::I32(v[i]),
            Data::F32(v) => Scalar::F32(v[i]),
            Data::F64(v) => Scalar::F64(v[i]),
        }
    }

    /// `n` copies of a scalar.
    pub fn filled(s: Scalar, n: usize) -> Data {
        match s {
            Scalar::Bool(v) => Data::Bool(vec![v; n]),
            Scalar::I32(v) => Data::I32(vec![v; n]),
            Scalar::F32(v) => Data::F32(vec![v; n]),
            Scalar::F64(v) => Data::F64(vec![v; n]),
        }
    }

    /// Builds data of a dtype from scalars (each cast to the dtype).
    pub fn from_scalars(dtype: DType, xs: impl IntoIterator<Item = Scalar>) -> Data {
        let it = xs.into_iter().map(|s| s.cast(dtype));
        match dtype {
            DType::Bool => Data::Bool(it.map(|s| matches!(s, Scalar::Bool(true))).collect()),
            DType::I32 => Data::I32(it.map(|s| s.as_f64() as i32).collect()),
            DType::F32 => Data::F32(
                it.map(|s| match s {
                    Scalar::F32(v) => v,
                    o => o.as_f64() as f32,
                })
                .collect(),
            ),
            DType::F64 => Data::F64(it.map(|s| s.as_f64()).collect()),
        }
    }
}

impl PartialEq for Data {
    /// Bitwise equality for floats (NaN equals NaN with the same bits).
    fn eq(&self, other: &Data) -> bool {
        match (self, other) {
            (Data::Bool(a), Data::Bool(b)) => a == b,
            (Data::I32(a), Data::I32(b)) => a == b,
            (Data::F32(a), Data::F32(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
            }
            (Data::F64(a), Data::F64(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
            }
            _ => false,
        }
    }
}

/// A dense row-major array in host memory. Its data length always equals its
/// shape's element count (checked on construction).
#[derive(Clone, Debug, PartialEq)]
pub struct HostArray {
    shape: Shape,
    data: Data,
}

/// A host array could not be built because the data length does not match the shape.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("cannot build an array of shape {shape} from {len} elements: it needs {need}")]
pub struct ShapeDataMismatch {
    pub shape: Shape,
    pub len: usize,
    pub need: usize,
}

impl HostArray {
    pub fn new(shape: impl Into<Shape>, data: Data) -> Result<HostArray, ShapeDataMismatch> {
        let shape = shape.into();
        if shape.numel() != data.len() {
            return Err(ShapeDataMismatch { need: shape.numel(), len: data.len(), shape });
        }
        Ok(HostArray { shape, data })
    }

    pub fn scalar(s: Scalar) -> HostArray {
        HostArray { shape: Shape::scalar(), data: Data::filled(s, 1) }
    }

    /// An array of the given shape with every element equal to `s`.
    pub fn full(shape: impl Into<Shape>, s: Scalar) -> HostArray {
        let shape = shape.into();
        let n = shape.numel();
        HostArray { shape, data: Data::filled(s, n) }
    }

    pub fn zeros(aval: &AVal) -> HostArray {
        let n = aval.numel();
        match crate::pool::take(aval.dtype, n) {
            Some(mut data) => {
                match &mut data {
                    Data::Bool(v) => v.fill(false),
                    Data::I32(v) => v.fill(0),
                    Data::F32(v) => v.fill(0.0),
                    Data::F64(v) => v.fill(0.0),
                }
                HostArray { shape: aval.shape.clone(), data }
            }
            None => HostArray::full(aval.shape.clone(), Scalar::from_f64(0.0, aval.dtype)),
        }
    }

    /// An array whose every element the caller is about to overwrite: a
    /// pooled buffer of the right size keeps whatever values it held (all
    /// valid values of the dtype), saving the zeroing pass; otherwise a fresh
    /// zeroed one.
    pub fn for_overwrite(aval: &AVal) -> HostArray {
        match crate::pool::take(aval.dtype, aval.numel()) {
            Some(data) => HostArray { shape: aval.shape.clone(), data },
            None => HostArray::zeros(aval),
        }
    }

    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    pub fn aval(&self) -> AVal {
        AVal { dtype: self.dtype(), shape: self.shape.clone() }
    }

    pub fn data(&self) -> &Data {
        &self.data
    }

    pub fn into_data(mut self) -> Data {
        std::mem::replace(&mut self.data, Data::Bool(Vec::new()))
    }

    /// The address of the first element, for compiled code that reads the
    /// elements in place (booleans are one byte each, 0 or 1).
    pub fn as_ptr(&self) -> *const u8 {
        match &self.data {
            Data::Bool(v) => v.as_ptr() as *const u8,
            Data::I32(v) => v.as_ptr() as *const u8,
            Data::F32(v) => v.as_ptr() as *const u8,
            Data::F64(v) => v.as_ptr() as *const u8,
        }
    }

    /// The address of the first element, for compiled code that writes the
    /// elements in place. Writers must keep every element a valid value of the
    /// dtype (a boolean byte is 0 or 1); the length cannot change.
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        match &mut self.data {
            Data::Bool(v) => v.as_mut_ptr() as *mut u8,
            Data::I32(v) => v.as_mut_ptr() as *mut u8,
            Data::F32(v) => v.as_mut_ptr() as *mut u8,
            Data::F64(v) => v.as_mut_ptr() as *mut u8,
        }
    }

    pub fn numel(&self) -> usize {
        self.data.len()
    }

    /// The value every element holds, bit for bit (`None` for an empty
    /// array or one holding different values).
    pub fn uniform_value(&self) -> Option<Scalar> {
        let first = (self.numel() > 0).then(|| self.data.get(0))?;
        let bits = |s: Scalar| s.as_f64().to_bits();
        (1..self.numel()).all(|i| bits(self.data.get(i)) == bits(first)).then_some(first)
    }

    /// The only element of a size-1 array.
    pub fn as_scalar(&self) -> Option<Scalar> {
        (self.numel() == 1).then(|| self.data.get(0))
    }

    /// The same data under another shape with the same element count.
    pub fn reshaped(self, shape: impl Into<Shape>) -> Result<HostArray, ShapeDataMismatch> {
        HostArray::new(shape, self.into_data())
    }
}

impl Drop for HostArray {
    /// Large buffers go back to the pool for the next array of their size.
    fn drop(&mut self) {
        crate::pool::give(std::mem::replace(&mut self.data, Data::Bool(Vec::new())));
    }
}

impl fmt::Display for HostArray {
    /// `f32[2,2]{1.0, 2.0, 3.0, 4.0}`: the aval then every element, row-major.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{{", self.aval())?;
        for i in 0..self.numel() {
            if i > 0 {
                f.write_str(", ")?;
            }
            match self.data.get(i) {
                Scalar::Bool(v) => write!(f, "{v}")?,
                Scalar::I32(v) => write!(f, "{v}")?,
                Scalar::F32(v) => write!(f, "{v:?}")?,
                Scalar::F64(v) => write!(f, "{v:?}")?,
            }
        }
        f.write_str("}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn construction_checks_length() {
        assert!(HostArray::new([2, 3], Data::F32(vec![0.0; 6])).is_ok());
        let e = HostArray::new([2, 3], Data::F32(vec![0.0; 5])).unwrap_err();
        assert_eq!(e.to_string(), "cannot build an array of shape [2,3] from 5 elements: it needs 6");
        assert!(HostArray::new([0, 3], Data::I32(vec![])).is_ok());
    }

    #[test]
    fn uniform_values_are_equal_to_the_bit() {
        let f = |v: Vec<f32>| HostArray::new([v.len()], Data::F32(v)).unwrap().uniform_value();
        assert_eq!(f(vec![1.0; 5]), Some(Scalar::F32(1.0)));
        assert_eq!(f(vec![0.0, -0.0]), None);
        assert_eq!(f(vec![f32::NAN, f32::NAN]), Some(Scalar::F32(f32::NAN)));
        assert_eq!(f(vec![]), None);
    }

    #[test]
    fn scalar_casts_and_nan_equality() {
        assert_eq!(Scalar::F64(2.7).cast(DType::I32), Scalar::I32(2));
        assert_eq!(Scalar::F32(-0.0).cast(DType::Bool), Scalar::Bool(false));
        assert_eq!(Scalar::I32(3).cast(DType::F32), Scalar::F32(3.0));
        assert_eq!(Scalar::F32(f32::NAN), Scalar::F32(f32::NAN));
        assert_ne!(Scalar::F32(0.0), Scalar::F32(-0.0));
        assert_eq!(Scalar::F32(2.0).to_string(), "2.0:f32");
        assert_eq!(Scalar::F64(f64::NEG_INFINITY).to_string(), "-inf:f64");
    }
}
