//! Backend-neutral lowering of arrayjit programs: optimisation passes, fusion
//! into loop kernels, and the schedule (steps over buffers) that a backend
//! renders and runs.

mod constant_part;
pub mod fuse;
mod idioms;
pub mod kernel;
pub mod passes;
pub mod schedule;
mod step_times;

pub use constant_part::ConstantPart;
pub use fuse::fuse;
pub use kernel::{reads_only_at_own_point, Affine, KNode, KOutput, Kernel, Node, NodeId, OutputKind, ReduceOp};
pub use passes::optimize;
pub use schedule::{Buffer, BufferId, BufferKind, OutputSource, Schedule, Step};
pub use step_times::StepTimes;
