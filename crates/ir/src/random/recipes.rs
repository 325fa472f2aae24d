//! One recipe per kind of primitive: how to choose operands and parameters
//! that the primitive accepts. Each recipe adds its equation (and any it needs
//! to make operands) or gives up with `None`, and the grower tries again.

use super::grow::{generate, Grower};
use crate::prim::elementwise::SIMPLE as SIMPLE_ELEMENTWISE;
use crate::prim::{Control, DotDims, Elementwise, Linalg, Reduction, ShapeOp};
use crate::{AVal, Atom, DType, Scalar, Shape};
use std::sync::Arc;

/// The kinds of step, with their weights: how often each is tried.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Unary,
    Binary,
    IntegerPow,
    Convert,
    Select,
    Broadcast,
    Reshape,
    Transpose,
    Squeeze,
    ExpandDims,
    Slice,
    DynamicSlice,
    DynamicUpdateSlice,
    Concatenate,
    Pad,
    Iota,
    Reduce,
    ArgReduce,
    Dot,
    Cholesky,
    CholeskyInverse,
    TriangularSolve,
    Lu,
    Call,
}

const KINDS: [(Kind, usize); 24] = [
    (Kind::Unary, 6),
    (Kind::Binary, 8),
    (Kind::IntegerPow, 1),
    (Kind::Convert, 2),
    (Kind::Select, 2),
    (Kind::Broadcast, 2),
    (Kind::Reshape, 2),
    (Kind::Transpose, 2),
    (Kind::Squeeze, 1),
    (Kind::ExpandDims, 1),
    (Kind::Slice, 2),
    (Kind::DynamicSlice, 1),
    (Kind::DynamicUpdateSlice, 1),
    (Kind::Concatenate, 1),
    (Kind::Pad, 1),
    (Kind::Iota, 1),
    (Kind::Reduce, 3),
    (Kind::ArgReduce, 1),
    (Kind::Dot, 3),
    (Kind::Cholesky, 1),
    (Kind::CholeskyInverse, 1),
    (Kind::TriangularSolve, 1),
    (Kind::Lu, 1),
    (Kind::Call, 2),
];

fn unary_ops() -> impl Iterator<Item = Elementwise> {
    SIMPLE_ELEMENTWISE.into_iter().filter(|e| e.arity() == 1)
}

fn binary_ops() -> impl Iterator<Item = Elementwise> {
    SIMPLE_ELEMENTWISE.into_iter().filter(|e| e.arity() == 2)
}

impl Grower<'_, '_, '_> {
    /// Whether a kind can produce anything under the configuration.
    fn feasible(&self, kind: Kind) -> bool {
        let has_float = self.dtypes().iter().any(|d| d.is_float());
        let has_numeric = self.dtypes().iter().any(|d| d.is_numeric());
        let i32_ok = self.allowed(DType::I32);
        let matrices = self.cfg.max_rank >= 2 && has_float;
        match kind {
            Kind::Unary => unary_ops().any(|op| !self.elementwise_dtypes(op).is_empty()),
            Kind::Binary => binary_ops().any(|op| !self.elementwise_dtypes(op).is_empty()),
            Kind::IntegerPow => has_numeric && self.allows("integer_pow"),
            Kind::Convert => self.allows("convert"),
            Kind::Select => self.allowed(DType::Bool) && self.allows("select"),
            Kind::Broadcast => self.allows("broadcast_in_dim"),
            Kind::Reshape => self.allows("reshape"),
            Kind::Transpose => self.allows("transpose"),
            Kind::Squeeze => self.allows("squeeze"),
            Kind::ExpandDims => self.allows("expand_dims") && self.cfg.max_rank >= 1,
            Kind::Slice => self.allows("slice"),
            Kind::DynamicSlice => i32_ok && self.allows("dynamic_slice"),
            Kind::DynamicUpdateSlice => i32_ok && self.allows("dynamic_update_slice"),
            Kind::Concatenate => self.allows("concatenate") && self.cfg.max_rank >= 1,
            Kind::Pad => self.allows("pad"),
            Kind::Iota => has_numeric && self.allows("iota") && self.cfg.max_rank >= 1,
            Kind::Reduce => {
                has_numeric && ["reduce_sum", "reduce_max", "reduce_min", "reduce_prod"].iter().any(|n| self.allows(n))
            }
            Kind::ArgReduce => i32_ok && has_numeric && (self.allows("argmax") || self.allows("argmin")),
            Kind::Dot => has_numeric && self.allows("dot_general"),
            Kind::Cholesky => matrices && self.allows("cholesky"),
            Kind::CholeskyInverse => matrices && self.allows("cholesky_inverse"),
            Kind::TriangularSolve => matrices && self.allows("triangular_solve"),
            Kind::Lu => matrices && i32_ok && self.allows("lu"),
            Kind::Call => self.depth < self.cfg.max_call_depth && self.allows("call"),
        }
    }

    /// Adds one random equation (with any helpers it needs).
    pub(super) fn step(&mut self) -> Option<()> {
        let kinds: Vec<(Kind, usize)> = KINDS.iter().copied().filter(|(k, _)| self.feasible(*k)).collect();
        let total: usize = kinds.iter().map(|(_, w)| w).sum();
        let mut r = self.tape.below(total);
        let kind = kinds.iter().find(|(_, w)| {
            let hit = r < *w;
            r = r.saturating_sub(*w);
            hit
        })?;
        match kind.0 {
            Kind::Unary => self.unary(),
            Kind::Binary => self.binary(),
            Kind::IntegerPow => self.integer_pow(),
            Kind::Convert => self.convert(),
            Kind::Select => self.select(),
            Kind::Broadcast => self.broadcast(),
            Kind::Reshape => self.reshape(),
            Kind::Transpose => self.transpose(),
            Kind::Squeeze => self.squeeze(),
            Kind::ExpandDims => self.expand_dims(),
            Kind::Slice => self.slice(),
            Kind::DynamicSlice => self.dynamic_slice(),
            Kind::DynamicUpdateSlice => self.dynamic_update_slice(),
            Kind::Concatenate => self.concatenate(),
            Kind::Pad => self.pad(),
            Kind::Iota => self.iota(),
            Kind::Reduce => self.reduce(),
            Kind::ArgReduce => self.arg_reduce(),
            Kind::Dot => self.dot(),
            Kind::Cholesky => self.cholesky(),
            Kind::CholeskyInverse => self.cholesky_inverse(),
            Kind::TriangularSolve => self.triangular_solve(),
            Kind::Lu => self.lu(),
            Kind::Call => self.call(),
        }
    }

    /// The allowed dtypes an elementwise primitive accepts and maps to an allowed dtype.
    fn elementwise_dtypes(&self, op: Elementwise) -> Vec<DType> {
        if !self.allows(op.name()) {
            return Vec::new();
        }
        self.dtypes_where(|d| match op.abstract_eval(&vec![AVal::scalar(d); op.arity()]) {
            Ok(outs) => outs.iter().all(|o| self.allowed(o.dtype)),
            Err(_) => false,
        })
    }

    /// Picks an elementwise primitive from `ops` that some allowed dtype suits.
    fn pick_elementwise(&mut self, ops: Vec<Elementwise>) -> Option<(Elementwise, Vec<DType>)> {
        let usable: Vec<(Elementwise, Vec<DType>)> =
            ops.into_iter().map(|op| (op, self.elementwise_dtypes(op))).filter(|(_, ds)| !ds.is_empty()).collect();
        let i = self.tape.below(usable.len());
        usable.into_iter().nth(i)
    }

    fn any_operand(&mut self) -> Option<(Atom, AVal)> {
        let ds = self.dtypes();
        self.operand(&ds, |_| true)
    }

    fn numeric_operand(&mut self, pred: impl Fn(&AVal) -> bool) -> Option<(Atom, AVal)> {
        let ds = self.dtypes_where(|d| d.is_numeric());
        self.operand(&ds, pred)
    }

    // ---- elementwise ----

    fn unary(&mut self) -> Option<()> {
        let (op, ds) = self.pick_elementwise(unary_ops().collect())?;
        let (x, _) = self.operand(&ds, |_| true)?;
        self.emit(op.into(), vec![x]).map(drop)
    }

    /// A second operand for `x`: same type, rank 0 (variable or literal).
    fn partner(&mut self, xa: &AVal) -> Option<Atom> {
        match self.tape.below(4) {
            1 => Some(self.literal(xa.dtype)),
            2 => self.fit(&AVal::scalar(xa.dtype)),
            _ => self.fit(xa),
        }
    }

    fn binary(&mut self) -> Option<()> {
        let (op, ds) = self.pick_elementwise(binary_ops().collect())?;
        let (x, xa) = self.operand(&ds, |_| true)?;
        let y = self.partner(&xa)?;
        let inputs = if self.tape.chance(30) { vec![y, x] } else { vec![x, y] };
        self.emit(op.into(), inputs).map(drop)
    }

    fn integer_pow(&mut self) -> Option<()> {
        let (x, xa) = self.numeric_operand(|_| true)?;
        // Negative powers of integers are defined (as truncated 1 / x^n) but
        // mostly 0; the recipe keeps to the interesting ones.
        let lowest = if xa.dtype.is_float() { -2 } else { 0 };
        let exponent = self.tape.range(lowest, 3) as i32;
        self.emit(Elementwise::IntegerPow { exponent }.into(), vec![x]).map(drop)
    }

    fn convert(&mut self) -> Option<()> {
        let (x, _) = self.any_operand()?;
        let to = self.dtype();
        self.emit(Elementwise::Convert { to }.into(), vec![x]).map(drop)
    }

    fn select(&mut self) -> Option<()> {
        let d = self.dtype();
        let (x, xa) = self.operand(&[d], |_| true)?;
        let pred = match self.tape.below(3) {
            0 => self.fit(&AVal::new(DType::Bool, xa.shape.clone()))?,
            1 => self.fit(&AVal::scalar(DType::Bool))?,
            _ => Atom::Lit(Scalar::Bool(self.tape.chance(50))),
        };
        let y = self.partner(&xa)?;
        let (on_true, on_false) = if self.tape.chance(50) { (y, x) } else { (x, y) };
        self.emit(Elementwise::Select.into(), vec![pred, on_true, on_false]).map(drop)
    }

    // ---- shape ----

    fn broadcast(&mut self) -> Option<()> {
        let (x, xa) = self.any_operand()?;
        let rank = xa.rank();
        let extra = self.tape.below(2.min(self.cfg.max_rank.saturating_sub(rank)) + 1);
        let out_rank = rank + extra;
        let mut dims = self.tape.permutation(out_rank);
        dims.truncate(rank);
        dims.sort_unstable();
        let mut shape: Vec<usize> = (0..out_rank).map(|_| self.dim()).collect();
        for (i, &d) in dims.iter().enumerate() {
            if xa.shape[i] != 1 || self.tape.chance(50) {
                shape[d] = xa.shape[i];
            }
        }
        self.emit(ShapeOp::BroadcastInDim { shape: Shape(shape), dims }.into(), vec![x]).map(drop)
    }

    fn reshape(&mut self) -> Option<()> {
        let (x, xa) = self.any_operand()?;
        let shape = self.reshaped(&xa.shape);
        self.emit(ShapeOp::Reshape { shape: Shape(shape) }.into(), vec![x]).map(drop)
    }

    fn transpose(&mut self) -> Option<()> {
        let (x, xa) = self.any_operand()?;
        let perm = self.tape.permutation(xa.rank());
        self.emit(ShapeOp::Transpose { perm }.into(), vec![x]).map(drop)
    }

    fn squeeze(&mut self) -> Option<()> {
        let ds = self.dtypes();
        let (x, xa) = self.operand(&ds, |a| a.shape.contains(&1))?;
        let ones: Vec<usize> = (0..xa.rank()).filter(|&i| xa.shape[i] == 1).collect();
        let axes = self.tape.subset(ones.len(), ones.len()).into_iter().map(|i| ones[i]).collect();
        self.emit(ShapeOp::Squeeze { axes }.into(), vec![x]).map(drop)
    }

    fn expand_dims(&mut self) -> Option<()> {
        let max_rank = self.cfg.max_rank;
        let ds = self.dtypes();
        let (x, xa) = self.operand(&ds, |a| a.rank() < max_rank)?;
        let k = 1 + self.tape.below(2.min(max_rank - xa.rank()));
        let mut axes = self.tape.permutation(xa.rank() + k);
        axes.truncate(k);
        axes.sort_unstable();
        self.emit(ShapeOp::ExpandDims { axes }.into(), vec![x]).map(drop)
    }

    fn slice(&mut self) -> Option<()> {
        let (x, xa) = self.any_operand()?;
        let (mut start, mut limit, mut strides) = (Vec::new(), Vec::new(), Vec::new());
        for &d in xa.shape.iter() {
            let s = self.tape.below(d + 1);
            start.push(s);
            limit.push(s + self.tape.below(d - s + 1));
            strides.push(1 + self.tape.below(3));
        }
        self.emit(ShapeOp::Slice { start, limit, strides }.into(), vec![x]).map(drop)
    }

    /// One i32 start index per dimension of `shape`: literals (some out of
    /// range, which the primitives clamp) or rank-0 i32 variables.
    fn start_indices(&mut self, shape: &Shape) -> Option<Vec<Atom>> {
        let mut idx = Vec::new();
        for &d in shape.iter() {
            let a = if self.tape.chance(30) {
                self.fit(&AVal::scalar(DType::I32))?
            } else {
                Atom::Lit(Scalar::I32(self.tape.range(-1, d as i64 + 1) as i32))
            };
            idx.push(a);
        }
        Some(idx)
    }

    fn dynamic_slice(&mut self) -> Option<()> {
        let (x, xa) = self.any_operand()?;
        let sizes: Vec<usize> = xa.shape.iter().map(|&d| self.tape.below(d + 1)).collect();
        let mut inputs = vec![x];
        inputs.extend(self.start_indices(&xa.shape)?);
        self.emit(ShapeOp::DynamicSlice { sizes }.into(), inputs).map(drop)
    }

    fn dynamic_update_slice(&mut self) -> Option<()> {
        let (x, xa) = self.any_operand()?;
        let sizes: Vec<usize> = xa.shape.iter().map(|&d| self.tape.below(d + 1)).collect();
        let update = self.fit(&AVal::new(xa.dtype, sizes))?;
        let mut inputs = vec![x, update];
        inputs.extend(self.start_indices(&xa.shape)?);
        self.emit(ShapeOp::DynamicUpdateSlice.into(), inputs).map(drop)
    }

    fn concatenate(&mut self) -> Option<()> {
        let ds = self.dtypes();
        let (x, xa) = self.operand(&ds, |a| a.rank() >= 1)?;
        let axis = self.tape.below(xa.rank());
        let mut inputs = vec![x];
        for _ in 0..self.tape.below(3) {
            let mut shape = xa.shape.clone();
            shape.0[axis] = self.dim();
            let other = self.fit(&AVal { dtype: xa.dtype, shape })?;
            let at = self.tape.below(inputs.len() + 1);
            inputs.insert(at, other);
        }
        self.emit(ShapeOp::Concatenate { axis }.into(), inputs).map(drop)
    }

    fn pad(&mut self) -> Option<()> {
        let (x, xa) = self.any_operand()?;
        let value = self.partner(&AVal::scalar(xa.dtype))?;
        let (mut low, mut high, mut interior) = (Vec::new(), Vec::new(), Vec::new());
        for &d in xa.shape.iter() {
            let inner = self.tape.below(3);
            let d = d as i64;
            let grown = d + (d - 1).max(0) * inner as i64;
            // Negative padding crops, but never more than the dimension holds.
            let lo = self.tape.range(-grown.min(2), 2);
            let hi = self.tape.range((-grown).max(-grown - lo).max(-2), 2);
            low.push(lo);
            high.push(hi);
            interior.push(inner);
        }
        self.emit(ShapeOp::Pad { low, high, interior }.into(), vec![x, value]).map(drop)
    }

    fn iota(&mut self) -> Option<()> {
        let ds = self.dtypes_where(|d| d.is_numeric());
        let dtype = *self.tape.pick(&ds)?;
        let rank = 1 + self.tape.below(self.cfg.max_rank.max(1));
        let shape: Vec<usize> = (0..rank).map(|_| self.dim()).collect();
        let axis = self.tape.below(rank);
        self.emit(ShapeOp::Iota { dtype, shape: Shape(shape), axis }.into(), vec![]).map(drop)
    }

    // ---- reductions ----

    fn reduce(&mut self) -> Option<()> {
        let (x, xa) = self.numeric_operand(|_| true)?;
        let axes = self.tape.subset(xa.rank(), xa.rank());
        let op = match self.tape.below(4) {
            0 => Reduction::Sum { axes },
            1 => Reduction::Max { axes },
            2 => Reduction::Min { axes },
            _ => Reduction::Prod { axes },
        };
        self.emit(op.into(), vec![x]).map(drop)
    }

    fn arg_reduce(&mut self) -> Option<()> {
        let (x, xa) = self.numeric_operand(|a| a.shape.iter().any(|&d| d > 0))?;
        let nonempty: Vec<usize> = (0..xa.rank()).filter(|&i| xa.shape[i] > 0).collect();
        let axis = *self.tape.pick(&nonempty)?;
        let op = if self.tape.chance(50) { Reduction::ArgMin { axis } } else { Reduction::ArgMax { axis } };
        self.emit(op.into(), vec![x]).map(drop)
    }

    // ---- linear algebra ----

    fn dot(&mut self) -> Option<()> {
        let (x, xa) = self.numeric_operand(|_| true)?;
        let r = xa.rank();
        let order = self.tape.permutation(r);
        let nb = self.tape.below(2.min(r) + 1);
        let nc = self.tape.below(2.min(r - nb) + 1);
        let lhs_batch = order[..nb].to_vec();
        let lhs_contract = order[nb..nb + nc].to_vec();
        let lhs_free = r - nb - nc;
        let room = self.cfg.max_rank.saturating_sub((nb + lhs_free).max(nb + nc));
        let k = self.tape.below(2.min(room) + 1);
        let rhs_rank = nb + nc + k;
        let place = self.tape.permutation(rhs_rank);
        let mut rhs = vec![0; rhs_rank];
        for (i, &l) in lhs_batch.iter().chain(&lhs_contract).enumerate() {
            rhs[place[i]] = xa.shape[l];
        }
        for &p in &place[nb + nc..] {
            rhs[p] = self.dim();
        }
        let dims = DotDims {
            lhs_contract,
            rhs_contract: place[nb..nb + nc].to_vec(),
            lhs_batch,
            rhs_batch: place[..nb].to_vec(),
        };
        let y = self.fit(&AVal::new(xa.dtype, rhs))?;
        self.emit(Linalg::DotGeneral(dims).into(), vec![x, y]).map(drop)
    }

    /// Leading batch dimensions for a matrix primitive (none or one).
    fn batch(&mut self) -> Vec<usize> {
        let room = self.cfg.max_rank.saturating_sub(2).min(1);
        (0..self.tape.below(room + 1)).map(|_| self.dim()).collect()
    }

    fn float_dtype(&mut self) -> Option<DType> {
        let ds = self.dtypes_where(|d| d.is_float());
        self.tape.pick(&ds).copied()
    }

    fn matrix(&mut self, dtype: DType, batch: &[usize], m: usize, n: usize) -> Option<Atom> {
        let mut shape = batch.to_vec();
        shape.extend([m, n]);
        self.fit(&AVal::new(dtype, shape))
    }

    fn cholesky(&mut self) -> Option<()> {
        let dtype = self.float_dtype()?;
        let batch = self.batch();
        let m = self.dim();
        let a = if self.allows("dot_general") && self.tape.chance(50) {
            // y yᵀ with y of shape [m, m+1] is almost surely positive definite,
            // so the factor is not all NaN.
            let y = self.matrix(dtype, &batch, m, m + 1)?;
            let nb = batch.len();
            let dims = DotDims {
                lhs_contract: vec![nb + 1],
                rhs_contract: vec![nb + 1],
                lhs_batch: (0..nb).collect(),
                rhs_batch: (0..nb).collect(),
            };
            let yyt = self.emit1(Linalg::DotGeneral(dims).into(), vec![y, y])?.0;
            // Plus the identity: y yᵀ alone is singular when y is (a broadcast
            // constant, say), and rounding then decides between a factor and NaNs.
            self.plus_identity(yyt, dtype, &batch, m).unwrap_or(yyt)
        } else {
            self.matrix(dtype, &batch, m, m)?
        };
        self.emit(Linalg::Cholesky.into(), vec![a]).map(drop)
    }

    fn cholesky_inverse(&mut self) -> Option<()> {
        let dtype = self.float_dtype()?;
        let batch = self.batch();
        let m = self.dim();
        let a = self.matrix(dtype, &batch, m, m)?;
        // Plus the identity, when it can be made: a factor with a pivot near
        // zero has an inverse of huge elements that rounding decides.
        let a = self.plus_identity(a, dtype, &batch, m).unwrap_or(a);
        self.emit(Linalg::CholeskyInverse.into(), vec![a]).map(drop)
    }

    /// `a + I` for `a` of `batch` `m x m` matrices (`None` if the
    /// configuration does not allow the operations that make `I`).
    fn plus_identity(&mut self, a: Atom, dtype: DType, batch: &[usize], m: usize) -> Option<Atom> {
        let nb = batch.len();
        let shape = Shape(batch.iter().copied().chain([m, m]).collect());
        let iota = |axis| ShapeOp::Iota { dtype: DType::I32, shape: shape.clone(), axis }.into();
        let rows = self.emit1(iota(nb), vec![])?.0;
        let cols = self.emit1(iota(nb + 1), vec![])?.0;
        let eye = self.emit1(Elementwise::Eq.into(), vec![rows, cols])?.0;
        let eye = self.emit1(Elementwise::Convert { to: dtype }.into(), vec![eye])?.0;
        Some(self.emit1(Elementwise::Add.into(), vec![a, eye])?.0)
    }

    fn triangular_solve(&mut self) -> Option<()> {
        let dtype = self.float_dtype()?;
        let batch = self.batch();
        let (m, n) = (self.dim(), self.dim());
        let left_side = self.tape.chance(50);
        let a = self.matrix(dtype, &batch, m, m)?;
        let b = if left_side { self.matrix(dtype, &batch, m, n)? } else { self.matrix(dtype, &batch, n, m)? };
        let op = Linalg::TriangularSolve {
            left_side,
            lower: self.tape.chance(50),
            transpose_a: self.tape.chance(50),
            unit_diagonal: self.tape.chance(50),
        };
        self.emit(op.into(), vec![a, b]).map(drop)
    }

    fn lu(&mut self) -> Option<()> {
        let dtype = self.float_dtype()?;
        let batch = self.batch();
        let (m, n) = (self.dim(), self.dim());
        let a = self.matrix(dtype, &batch, m, n)?;
        self.emit(Linalg::Lu.into(), vec![a]).map(drop)
    }

    // ---- control ----

    fn call(&mut self) -> Option<()> {
        let mut args = Vec::new();
        let mut avals = Vec::new();
        for _ in 0..self.tape.below(4) {
            if let Some((x, xa)) = self.pick_var(|_| true) {
                args.push(x);
                avals.push(xa);
            }
        }
        let max_eqns = (self.max_eqns / 2).max(1);
        let body = generate(self.cfg, self.tape, self.depth + 1, Some(avals), max_eqns);
        self.emit(Control::Call { body: Arc::new(body) }.into(), args).map(drop)
    }
}
