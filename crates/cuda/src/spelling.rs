//! How each elementwise primitive is spelled in CUDA C: the one table the
//! renderer consults, and the device helpers the spellings call, written to
//! give the reference interpreter's results (NaN-propagating `max`/`min`
//! that order −0 below +0, integer division by zero as XLA defines it,
//! saturating float-to-integer conversion).

use arrayjit_ir::prim::Elementwise as E;
use arrayjit_ir::{DType, Scalar};

/// The CUDA C type of a value of `d` in registers.
pub fn reg_type(d: DType) -> &'static str {
    match d {
        DType::F32 => "float",
        DType::F64 => "double",
        DType::I32 => "int",
        DType::Bool => "bool",
    }
}

/// The CUDA C type of an element of `d` in memory (booleans are bytes).
pub fn mem_type(d: DType) -> &'static str {
    match d {
        DType::Bool => "unsigned char",
        d => reg_type(d),
    }
}

/// A literal of `s`, exact: floats by their bits, so that infinities, NaN
/// and every last bit survive the trip through text.
pub fn literal(s: Scalar) -> String {
    match s {
        Scalar::F32(x) => format!("__int_as_float(0x{:08x})", x.to_bits()),
        Scalar::F64(x) => format!("__longlong_as_double(0x{:016x}LL)", x.to_bits()),
        Scalar::I32(x) if x == i32::MIN => "(-2147483647 - 1)".into(),
        Scalar::I32(x) => format!("{x}"),
        Scalar::Bool(b) => format!("{b}"),
    }
}

/// The expression computing `op` on `args` (already rendered), whose
/// operands have dtype `arg` (for `select`, that of the values chosen);
/// `None` when an operand is missing.
pub fn spell(op: E, args: &[String], arg: DType) -> Option<String> {
    let x = args.first()?;
    let y = args.get(1).unwrap_or(x);
    let f32 = arg == DType::F32;
    let float = arg.is_float();
    // Single-precision functions carry an `f` suffix.
    let f = |name: &str| if f32 { format!("{name}f({x})") } else { format!("{name}({x})") };
    let f2 = |name: &str| if f32 { format!("{name}f({x}, {y})") } else { format!("{name}({x}, {y})") };
    Some(match op {
        E::Neg if arg == DType::I32 => format!("(int)(0u - (unsigned)({x}))"),
        E::Neg => format!("(-{x})"),
        E::Abs if arg == DType::I32 => format!("aj_iabs({x})"),
        E::Abs => f("fabs"),
        E::Sign => format!("aj_sign({x})"),
        E::Not if arg == DType::Bool => format!("(!{x})"),
        E::Not => format!("(~{x})"),
        E::Exp => f("exp"),
        E::Log => f("log"),
        E::Log1p => f("log1p"),
        E::Expm1 => f("expm1"),
        E::Sqrt => f("sqrt"),
        // rsqrt() is an approximation; the interpreter divides by the root.
        E::Rsqrt if f32 => format!("(1.0f / sqrtf({x}))"),
        E::Rsqrt => format!("(1.0 / sqrt({x}))"),
        E::Tanh => f("tanh"),
        E::Logistic => format!("aj_logistic({x})"),
        E::Sin => f("sin"),
        E::Cos => f("cos"),
        E::Floor => f("floor"),
        E::Ceil => f("ceil"),
        E::IsFinite => format!("isfinite({x})"),
        E::StopGradient => x.clone(),
        E::Add if arg == DType::I32 => format!("(int)((unsigned)({x}) + (unsigned)({y}))"),
        E::Sub if arg == DType::I32 => format!("(int)((unsigned)({x}) - (unsigned)({y}))"),
        E::Mul if arg == DType::I32 => format!("(int)((unsigned)({x}) * (unsigned)({y}))"),
        E::Add => format!("({x} + {y})"),
        E::Sub => format!("({x} - {y})"),
        E::Mul => format!("({x} * {y})"),
        E::Div if float => format!("({x} / {y})"),
        E::Div => format!("aj_idiv({x}, {y})"),
        E::Rem if float => f2("fmod"),
        E::Rem => format!("aj_irem({x}, {y})"),
        E::Pow if float => f2("pow"),
        E::Pow => format!("aj_ipow({x}, {y})"),
        E::Max => format!("aj_max({x}, {y})"),
        E::Min => format!("aj_min({x}, {y})"),
        E::And if arg == DType::Bool => format!("({x} && {y})"),
        E::Or if arg == DType::Bool => format!("({x} || {y})"),
        E::And => format!("({x} & {y})"),
        E::Or => format!("({x} | {y})"),
        E::Eq => format!("({x} == {y})"),
        E::Ne => format!("({x} != {y})"),
        E::Lt => format!("({x} < {y})"),
        E::Le => format!("({x} <= {y})"),
        E::Gt => format!("({x} > {y})"),
        E::Ge => format!("({x} >= {y})"),
        E::IntegerPow { exponent } => format!("aj_ipow({x}, {exponent})"),
        E::Select => format!("({x} ? {y} : {})", args.get(2)?),
        E::Convert { to } => convert(x, arg, to),
    })
}

/// A conversion with the interpreter's rules: floats to `i32` truncate and
/// saturate (NaN becomes 0), anything to `bool` is `!= 0`, `bool` to a
/// number is 0 or 1.
fn convert(x: &str, from: DType, to: DType) -> String {
    match (from, to) {
        (a, b) if a == b => x.to_string(),
        (_, DType::Bool) => format!("({x} != 0)"),
        (DType::F32, DType::I32) => format!("__float2int_rz({x})"),
        (DType::F64, DType::I32) => format!("__double2int_rz({x})"),
        (_, to) => format!("(({}) ({x}))", reg_type(to)),
    }
}

/// Definitions every module starts with: the helpers the spellings call.
pub const PRELUDE: &str = r#"// Helpers with the reference interpreter's semantics.
template <typename T> __device__ __forceinline__ T aj_max(T a, T b) {
  if (a != a || b != b) return a + b;
  return (a > b || (a == b && signbit(b))) ? a : b;
}
template <typename T> __device__ __forceinline__ T aj_min(T a, T b) {
  if (a != a || b != b) return a + b;
  return (a < b || (a == b && signbit(a))) ? a : b;
}
template <> __device__ __forceinline__ int aj_max<int>(int a, int b) { return max(a, b); }
template <> __device__ __forceinline__ int aj_min<int>(int a, int b) { return min(a, b); }
template <> __device__ __forceinline__ bool aj_max<bool>(bool a, bool b) { return a || b; }
template <> __device__ __forceinline__ bool aj_min<bool>(bool a, bool b) { return a && b; }
__device__ __forceinline__ float aj_sign(float x) { return (x == 0.0f || x != x) ? x : copysignf(1.0f, x); }
__device__ __forceinline__ double aj_sign(double x) { return (x == 0.0 || x != x) ? x : copysign(1.0, x); }
__device__ __forceinline__ int aj_sign(int x) { return (x > 0) - (x < 0); }
__device__ __forceinline__ int aj_iabs(int x) { return x < 0 ? (int)(0u - (unsigned)x) : x; }
__device__ __forceinline__ int aj_idiv(int a, int b) {
  if (b == 0) return -1;
  if (a == (-2147483647 - 1) && b == -1) return a;
  return a / b;
}
__device__ __forceinline__ int aj_irem(int a, int b) {
  if (b == 0) return a;
  if (b == -1) return 0;
  return a % b;
}
__device__ __forceinline__ float aj_logistic(float x) {
  float e = expf(-fabsf(x));
  return x < 0.0f ? e / (1.0f + e) : 1.0f / (1.0f + e);
}
__device__ __forceinline__ double aj_logistic(double x) {
  double e = exp(-fabs(x));
  return x < 0.0 ? e / (1.0 + e) : 1.0 / (1.0 + e);
}
template <typename T> __device__ __forceinline__ T aj_ipow(T x, int n) {
  T acc = (T)1, base = x;
  unsigned k = n < 0 ? 0u - (unsigned)n : (unsigned)n;
  while (k > 0) {
    if (k & 1u) acc = acc * base;
    k >>= 1;
    if (k > 0) base = base * base;
  }
  return n < 0 ? (T)1 / acc : acc;
}
template <> __device__ __forceinline__ int aj_ipow<int>(int x, int n) {
  if (n < 0) return x == 1 ? 1 : x == -1 ? ((n & 1) ? -1 : 1) : x == 0 ? -1 : 0;
  unsigned acc = 1u, base = (unsigned)x, k = (unsigned)n;
  while (k > 0) {
    if (k & 1u) acc *= base;
    k >>= 1;
    if (k > 0) base *= base;
  }
  return (int)acc;
}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_exact() {
        assert_eq!(literal(Scalar::F32(1.0)), "__int_as_float(0x3f800000)");
        assert_eq!(literal(Scalar::F64(f64::NEG_INFINITY)), "__longlong_as_double(0xfff0000000000000LL)");
        assert_eq!(literal(Scalar::I32(i32::MIN)), "(-2147483647 - 1)");
        assert_eq!(literal(Scalar::Bool(true)), "true");
    }

    #[test]
    fn single_precision_functions_take_the_f_suffix() {
        let a = ["a".to_string(), "b".to_string()];
        assert_eq!(spell(E::Exp, &a, DType::F32).as_deref(), Some("expf(a)"));
        assert_eq!(spell(E::Exp, &a, DType::F64).as_deref(), Some("exp(a)"));
        assert_eq!(spell(E::Rem, &a, DType::F32).as_deref(), Some("fmodf(a, b)"));
        assert_eq!(spell(E::Div, &a, DType::I32).as_deref(), Some("aj_idiv(a, b)"));
        assert_eq!(spell(E::Convert { to: DType::I32 }, &a, DType::F32).as_deref(), Some("__float2int_rz(a)"));
    }
}
