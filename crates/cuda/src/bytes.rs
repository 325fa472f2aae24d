//! Host arrays as the bytes a device buffer holds (little-endian elements,
//! booleans as one byte each), and back.

use crate::error::CudaError;
use arrayjit_ir::{AVal, DType, Data, HostArray};

/// The bytes of `h`'s elements.
pub fn to_bytes(h: &HostArray) -> Vec<u8> {
    match h.data() {
        Data::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Data::F64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Data::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Data::Bool(v) => v.iter().map(|&b| b as u8).collect(),
    }
}

/// The array of type `a` whose elements are `b`.
pub fn from_bytes(a: &AVal, b: &[u8]) -> Result<HostArray, CudaError> {
    let n = a.numel();
    let short = || CudaError::Lowering(format!("{} bytes do not hold a {a}", b.len()));
    if b.len() < n * a.dtype.size_bytes() {
        return Err(short());
    }
    let data = match a.dtype {
        DType::F32 => {
            Data::F32(b.chunks_exact(4).take(n).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
        }
        DType::F64 => Data::F64(
            b.chunks_exact(8)
                .take(n)
                .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
        ),
        DType::I32 => {
            Data::I32(b.chunks_exact(4).take(n).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
        }
        DType::Bool => Data::Bool(b.iter().take(n).map(|&x| x != 0).collect()),
    };
    HostArray::new(a.shape.clone(), data).map_err(|_| short())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_every_dtype() {
        for h in [
            HostArray::new([2], Data::F32(vec![1.5, -0.0])).unwrap(),
            HostArray::new([2], Data::F64(vec![f64::INFINITY, 3.25])).unwrap(),
            HostArray::new([3], Data::I32(vec![i32::MIN, 0, 7])).unwrap(),
            HostArray::new([2], Data::Bool(vec![true, false])).unwrap(),
        ] {
            let back = from_bytes(&h.aval(), &to_bytes(&h)).unwrap();
            assert_eq!(to_bytes(&back), to_bytes(&h));
        }
        assert!(from_bytes(&HostArray::new([2], Data::F32(vec![0.0; 2])).unwrap().aval(), &[0; 7]).is_err());
    }
}
