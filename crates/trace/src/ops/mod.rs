//! The NumPy-like array API, by family. Every method resolves broadcasting and
//! promotion here and then binds IR primitives; nothing else computes.

pub mod create;
pub mod elementwise;
pub mod linalg;
pub mod operand;
pub mod operators;
pub mod reduce;
pub mod shape;
