//! The vector widths beyond Cranelift's 128 bits that this CPU runs, for the
//! native code compiled with target features (row functions, the Gram
//! product, a product's last columns). Each width counts only with FMA,
//! without which `mul_add` would be a library call.

/// A vector width native code is compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Width {
    /// 512 bits (AVX-512F).
    Avx512,
    /// 256 bits (AVX2).
    Avx2,
}

/// Every width this CPU runs, widest first.
pub(crate) fn widths() -> Vec<Width> {
    let mut w = Vec::new();
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("fma") {
        if std::arch::is_x86_feature_detected!("avx512f") {
            w.push(Width::Avx512);
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            w.push(Width::Avx2);
        }
    }
    w
}

/// The widest width this CPU runs, found once.
pub(crate) fn widest() -> Option<Width> {
    static WIDEST: std::sync::OnceLock<Option<Width>> = std::sync::OnceLock::new();
    *WIDEST.get_or_init(|| widths().first().copied())
}
