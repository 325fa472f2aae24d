//! Reuse of array buffers. A host array of at least 16 KiB gives its buffer
//! back here when dropped, and a new zero-filled array of the same dtype and
//! length takes it instead of asking the allocator: fresh large allocations
//! come as unmapped pages, and first-touching them costs more than the
//! operation that fills them (an eager step or a compiled call that
//! allocates its outputs each time); smaller ones come from the heap and are
//! zeroed with a `memset` that a call which overwrites its outputs does not
//! need (the PLN fit's 116×114 arrays, 52 KiB, spent 2% of a step so). At
//! most 8 buffers per size and 1 GiB in all are kept; beyond that, buffers
//! go back to the allocator.

use crate::{DType, Data};
use std::collections::HashMap;
use std::sync::Mutex;

const MIN_BYTES: usize = 1 << 14;
const MAX_BYTES: usize = 1 << 30;
const PER_SIZE: usize = 8;

#[derive(Default)]
struct Pool {
    free: HashMap<(DType, usize), Vec<Data>>,
    bytes: usize,
}

static POOL: Mutex<Option<Pool>> = Mutex::new(None);

fn bytes(dtype: DType, len: usize) -> usize {
    dtype.size_bytes().saturating_mul(len)
}

fn with<R>(f: impl FnOnce(&mut Pool) -> R) -> R {
    let mut g = match POOL.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    f(g.get_or_insert_with(Pool::default))
}

/// Takes a pooled buffer of `len` elements of `dtype`, if one is free (its
/// contents are whatever its last array held).
pub(crate) fn take(dtype: DType, len: usize) -> Option<Data> {
    if bytes(dtype, len) < MIN_BYTES {
        return None;
    }
    with(|p| {
        let d = p.free.get_mut(&(dtype, len))?.pop()?;
        p.bytes -= bytes(dtype, len);
        Some(d)
    })
}

/// Keeps a buffer for reuse, when it is large and the pool has room.
pub(crate) fn give(data: Data) {
    let (dtype, len) = (data.dtype(), data.len());
    let b = bytes(dtype, len);
    if b < MIN_BYTES {
        return;
    }
    with(|p| {
        let list = p.free.entry((dtype, len)).or_default();
        if list.len() < PER_SIZE && p.bytes + b <= MAX_BYTES {
            list.push(data);
            p.bytes += b;
        }
    })
}

#[cfg(test)]
mod tests {
    use crate::{AVal, DType, HostArray};

    #[test]
    fn a_dropped_large_buffer_is_reused_zeroed() {
        // A size no other test uses, so that the pool's entry is this test's.
        let aval = AVal::new(DType::F32, [3, 65537]);
        let mut a = HostArray::zeros(&aval);
        // SAFETY: writes one element inside the buffer, a valid f32.
        unsafe { *(a.as_mut_ptr() as *mut f32) = 7.0 };
        let addr = a.as_ptr();
        drop(a);
        let b = HostArray::zeros(&aval);
        assert_eq!(b.as_ptr(), addr);
        assert!(b.data().get(0).as_f64() == 0.0);
        // Small arrays are not pooled.
        let small = AVal::new(DType::F32, [4]);
        assert_eq!(HostArray::zeros(&small).numel(), 4);
    }
}
