//! Row kernels in AVX-512 machine code of our own: an encoder for the
//! instructions they need, and the kernels' plans and code.

mod asm;
mod kernel;

pub use kernel::{available, compile};

#[cfg(test)]
mod tests;
