//! The `Array` handle: one type for concrete (eager) arrays and for tracers, so
//! the same user function runs eagerly or under a transformation.

use crate::device::{same_device, Device, DeviceBuffer};
use crate::element::Element;
use crate::error::{raise, Error, OrRaise, Result};
use crate::frame;
use crate::view::Transposed;
use arrayjit_ir::{AVal, DType, Data, HostArray, Loc, Scalar, Shape, Var};
use std::fmt;
use std::panic::Location;
use std::sync::Arc;

/// An n-dimensional array: a concrete value in host memory, or, while a
/// function is being traced, an abstract value standing for one.
///
/// Operators (`+ - * / %`, unary `-`) and methods follow NumPy: broadcasting,
/// dtype promotion, weakly-typed Rust scalars. A shape or dtype error panics
/// in eager code with a message naming the op, the operands and your source
/// line; under a transformation the transformation returns it as an `Err`.
/// The `try_*` methods return the error instead.
#[derive(Clone)]
pub struct Array {
    pub(crate) repr: Repr,
}

#[derive(Clone)]
pub(crate) enum Repr {
    Value(Arc<HostArray>),
    Tracer(Arc<Tracer>),
    /// In a device's memory.
    Device(Arc<dyn DeviceBuffer>),
    /// An eager transpose not copied yet (see [`crate::view`]).
    Transposed(Arc<Transposed>),
}

/// A variable of the program being traced in frame `frame`.
pub(crate) struct Tracer {
    pub frame: u64,
    pub var: Var,
    pub aval: AVal,
    pub origin: Origin,
}

/// Where a tracer came from, for error messages.
pub(crate) enum Origin {
    /// An input of the traced function, with its path in the argument tree.
    Input(String),
    /// The output of an operation.
    Eqn { prim: &'static str, loc: Loc },
}

impl Origin {
    pub fn describe(&self) -> String {
        match self {
            Origin::Input(path) => format!("the traced function's argument {path}"),
            Origin::Eqn { prim, loc } => format!("the result of `{prim}` at {loc}"),
        }
    }
}

#[track_caller]
pub(crate) fn caller() -> Loc {
    Loc(Some(Location::caller()))
}

impl Array {
    pub(crate) fn from_tracer(t: Tracer) -> Array {
        Array { repr: Repr::Tracer(Arc::new(t)) }
    }

    pub fn from_shared(h: Arc<HostArray>) -> Array {
        Array { repr: Repr::Value(h) }
    }

    /// The host value of a concrete array, shared rather than copied; an error
    /// (naming your source line) for a tracer.
    #[track_caller]
    pub fn try_host(&self) -> Result<&Arc<HostArray>> {
        frame::concrete(self, caller(), "the array")
    }

    /// The host array itself, without a copy, when this handle is its only
    /// owner (an eager array that was moved in and never cloned); the handle
    /// back otherwise (shared, or a tracer). Compiled functions use it to let
    /// an argument's memory hold a result.
    pub fn try_into_host(self) -> std::result::Result<HostArray, Array> {
        match self.repr {
            Repr::Value(h) => Arc::try_unwrap(h).map_err(Array::from_shared),
            repr @ (Repr::Tracer(_) | Repr::Device(_) | Repr::Transposed(_)) => Err(Array { repr }),
        }
    }

    /// Wraps an array in a device's memory.
    pub fn from_device(b: Arc<dyn DeviceBuffer>) -> Array {
        Array { repr: Repr::Device(b) }
    }

    /// This array in `device`'s memory: copied there from the host (or from
    /// another device, through the host); itself when it is there already.
    /// An error for a tracer.
    #[track_caller]
    pub fn try_to_device(&self, device: &Arc<dyn Device>) -> Result<Array> {
        let loc = caller();
        if let Repr::Device(b) = &self.repr {
            if same_device(&b.device(), device) {
                return Ok(self.clone());
            }
        }
        let h = self.host_copy(loc, "the array")?;
        let b = device
            .put(&h)
            .map_err(|m| Error::Invalid { message: format!("copying to {}: {m}", device.name()), loc })?;
        Ok(Array::from_device(b))
    }

    /// [`Array::try_to_device`], panicking on error.
    #[track_caller]
    pub fn to_device(&self, device: &Arc<dyn Device>) -> Array {
        self.try_to_device(device).or_raise()
    }

    /// The device holding this array (`None` in host memory or for a tracer).
    pub fn device(&self) -> Option<Arc<dyn Device>> {
        match &self.repr {
            Repr::Device(b) => Some(b.device()),
            Repr::Value(_) | Repr::Tracer(_) | Repr::Transposed(_) => None,
        }
    }

    /// The device buffer of an array in a device's memory.
    pub fn device_buffer(&self) -> Option<&Arc<dyn DeviceBuffer>> {
        match &self.repr {
            Repr::Device(b) => Some(b),
            Repr::Value(_) | Repr::Tracer(_) | Repr::Transposed(_) => None,
        }
    }

    /// The host value: shared for a host array, copied back for a device
    /// array, an error for a tracer.
    pub(crate) fn host_copy(&self, loc: Loc, what: &str) -> Result<Arc<HostArray>> {
        match &self.repr {
            Repr::Device(b) => b.to_host().map(Arc::new).map_err(|m| Error::Invalid {
                message: format!("copying {what} back from {}: {m}", b.device().name()),
                loc,
            }),
            _ => frame::concrete(self, loc, what).cloned(),
        }
    }

    /// Wraps a host array.
    pub fn from_host(h: HostArray) -> Array {
        Array { repr: Repr::Value(Arc::new(h)) }
    }

    /// An array of the given shape from row-major data; panics if the length
    /// does not match (see [`Array::try_from_vec`]).
    #[track_caller]
    pub fn from_vec<T: Element>(data: Vec<T>, shape: impl Into<Shape>) -> Array {
        Array::try_from_vec(data, shape).or_raise()
    }

    #[track_caller]
    pub fn try_from_vec<T: Element>(data: Vec<T>, shape: impl Into<Shape>) -> Result<Array> {
        let loc = caller();
        HostArray::new(shape, T::into_data(data))
            .map(Array::from_host)
            .map_err(|e| Error::Invalid { message: e.to_string(), loc })
    }

    /// An array from a slice and a shape.
    #[track_caller]
    pub fn from_slice<T: Element>(data: &[T], shape: impl Into<Shape>) -> Array {
        Array::from_vec(data.to_vec(), shape)
    }

    /// A rank-0 array.
    pub fn scalar<T: Element>(x: T) -> Array {
        Array::from_host(HostArray::scalar(x.scalar()))
    }

    /// A rank-0 array holding `s`.
    pub fn from_scalar(s: Scalar) -> Array {
        Array::from_host(HostArray::scalar(s))
    }

    /// A rank-1 array.
    pub fn vector<T: Element>(data: &[T]) -> Array {
        Array::from_vec(data.to_vec(), [data.len()])
    }

    /// The abstract value: dtype and shape.
    pub fn aval(&self) -> AVal {
        match &self.repr {
            Repr::Value(h) => h.aval(),
            Repr::Transposed(t) => t.aval().clone(),
            Repr::Tracer(t) => t.aval.clone(),
            Repr::Device(b) => b.aval().clone(),
        }
    }

    pub fn shape(&self) -> &[usize] {
        match &self.repr {
            Repr::Value(h) => h.shape(),
            Repr::Transposed(t) => &t.aval().shape,
            Repr::Tracer(t) => &t.aval.shape,
            Repr::Device(b) => &b.aval().shape,
        }
    }

    pub fn dtype(&self) -> DType {
        match &self.repr {
            Repr::Value(h) => h.dtype(),
            Repr::Transposed(t) => t.aval().dtype,
            Repr::Tracer(t) => t.aval.dtype,
            Repr::Device(b) => b.aval().dtype,
        }
    }

    /// Number of dimensions.
    pub fn ndim(&self) -> usize {
        self.shape().len()
    }

    /// Number of elements.
    pub fn size(&self) -> usize {
        self.shape().iter().product()
    }

    /// True for a tracer (inside a transformation), false for a concrete array.
    pub fn is_tracer(&self) -> bool {
        matches!(self.repr, Repr::Tracer(_))
    }

    /// The host value (copied back from a device); an error for a tracer.
    #[track_caller]
    pub fn try_to_host(&self) -> Result<HostArray> {
        self.host_copy(caller(), "array").map(|h| Arc::try_unwrap(h).unwrap_or_else(|h| (*h).clone()))
    }

    /// The host value; panics (or aborts the trace) for a tracer.
    #[track_caller]
    pub fn to_host(&self) -> HostArray {
        self.try_to_host().or_raise()
    }

    /// The elements in row-major order. The element type must match the dtype.
    #[track_caller]
    pub fn try_to_vec<T: Element>(&self) -> Result<Vec<T>> {
        let loc = caller();
        let h = self.host_copy(loc, "array")?;
        T::slice(h.data()).map(|s| s.to_vec()).ok_or_else(|| Error::Invalid {
            message: format!("cannot read {} as {}: convert it with astype first", h.aval(), T::DTYPE),
            loc,
        })
    }

    /// The elements in row-major order; see [`Array::try_to_vec`].
    #[track_caller]
    pub fn to_vec<T: Element>(&self) -> Vec<T> {
        self.try_to_vec().or_raise()
    }

    /// The single element of a size-1 array.
    #[track_caller]
    pub fn try_item<T: Element>(&self) -> Result<T> {
        let loc = caller();
        let v = self.try_to_vec::<T>()?;
        match v.as_slice() {
            [x] => Ok(*x),
            _ => Err(Error::Invalid { message: format!("item() needs a size-1 array, got {}", self.aval()), loc }),
        }
    }

    /// The single element of a size-1 array; see [`Array::try_item`].
    #[track_caller]
    pub fn item<T: Element>(&self) -> T {
        self.try_item().or_raise()
    }

    /// The single element as f64, whatever the dtype.
    #[track_caller]
    pub fn to_f64(&self) -> f64 {
        let h = self.host_copy(caller(), "array").or_raise();
        match h.as_scalar() {
            Some(s) => s.as_f64(),
            None => raise(Error::Invalid {
                message: format!("to_f64() needs a size-1 array, got {}", h.aval()),
                loc: caller(),
            }),
        }
    }

    /// The elements converted to f64, whatever the dtype.
    #[track_caller]
    pub fn to_f64_vec(&self) -> Vec<f64> {
        let h = self.host_copy(caller(), "array").or_raise();
        (0..h.numel()).map(|i| h.data().get(i).as_f64()).collect()
    }
}

impl fmt::Display for Array {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Value(h) => write!(f, "{h}"),
            Repr::Transposed(t) => match t.value(Loc::default()) {
                Ok(h) => write!(f, "{h}"),
                Err(e) => write!(f, "<{}: {e}>", t.aval()),
            },
            Repr::Tracer(t) => write!(f, "Traced<{}>", t.aval),
            Repr::Device(b) => match b.to_host() {
                Ok(h) => write!(f, "{h} (on {})", b.device().name()),
                Err(e) => write!(f, "<{} on {}: {e}>", b.aval(), b.device().name()),
            },
        }
    }
}

impl fmt::Debug for Array {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl From<HostArray> for Array {
    fn from(h: HostArray) -> Array {
        Array::from_host(h)
    }
}

/// The data of a host array as f64s (tests and printing).
pub fn data_f64(d: &Data) -> Vec<f64> {
    (0..d.len()).map(|i| d.get(i).as_f64()).collect()
}
