//! Rust element types that arrays can be built from and read back into.

use arrayjit_ir::{DType, Data, Scalar};

/// A Rust type that is the element type of some dtype: `bool`, `i32`, `f32`, `f64`.
pub trait Element: Copy + Send + Sync + 'static {
    const DTYPE: DType;
    fn into_data(v: Vec<Self>) -> Data;
    fn slice(d: &Data) -> Option<&[Self]>;
    fn scalar(self) -> Scalar;
}

macro_rules! element {
    ($t:ty, $d:ident) => {
        impl Element for $t {
            const DTYPE: DType = DType::$d;
            fn into_data(v: Vec<Self>) -> Data {
                Data::$d(v)
            }
            fn slice(d: &Data) -> Option<&[Self]> {
                match d {
                    Data::$d(v) => Some(v),
                    _ => None,
                }
            }
            fn scalar(self) -> Scalar {
                Scalar::$d(self)
            }
        }
    };
}

element!(bool, Bool);
element!(i32, I32);
element!(f32, F32);
element!(f64, F64);
