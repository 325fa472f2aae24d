//! Running programs: the environment that maps variables to values, the
//! equation loop, and the higher-order primitives (`call`, `scan`, `while`,
//! `cond`, `custom_jvp`, `custom_vjp`) that run sub-programs on their operands: loops run naively, one
//! iteration at a time, slicing and stacking by copying.

use crate::{eval_prim_refs, EvalError};
use arrayjit_ir::error::list_avals;
use arrayjit_ir::prim::control::{custom_body_operands, CUSTOM_VJP_FORWARD};
use arrayjit_ir::prim::Control;
use arrayjit_ir::{Atom, Data, HostArray, Program, Scalar, Var};
use std::borrow::Cow;

/// Evaluates a higher-order primitive (its operands were checked by its rule).
pub(crate) fn eval(op: &Control, args: &[&HostArray]) -> Result<Vec<HostArray>, EvalError> {
    match op {
        Control::Call { body } => run_program(body, args),
        Control::CustomJvp { body, body_consts, jvp_consts: rule_consts, .. }
        | Control::CustomVjp { body, body_consts, fwd_consts: rule_consts, .. } => {
            run_program(body, &custom_body_operands(args, *body_consts, *rule_consts))
        }
        Control::CustomVjpTangent { .. } => {
            Err(EvalError::NotEvaluable { op: "custom_vjp_tangent", message: CUSTOM_VJP_FORWARD })
        }
        Control::Scan { body, num_consts, num_carry, length, reverse, .. } => {
            let (consts, rest) = args.split_at(*num_consts);
            let (init, xs) = rest.split_at(*num_carry);
            let mut carry: Vec<HostArray> = init.iter().map(|a| (*a).clone()).collect();
            let mut ys: Vec<Vec<HostArray>> = Vec::new();
            for step in 0..*length {
                let i = if *reverse { length - 1 - step } else { step };
                let slices: Vec<HostArray> = xs.iter().map(|x| slice(x, i)).collect();
                let mut ins: Vec<&HostArray> = consts.to_vec();
                ins.extend(carry.iter());
                ins.extend(slices.iter());
                let mut outs = run_program(body, &ins)?;
                let y = outs.split_off(*num_carry);
                carry = outs;
                ys.push(y);
            }
            if *reverse {
                ys.reverse();
            }
            let mut out = carry;
            let y_avals = &body.out_avals()[*num_carry..];
            for (k, aval) in y_avals.iter().enumerate() {
                let parts: Vec<&HostArray> = ys.iter().map(|y| &y[k]).collect();
                out.push(stack(aval, *length, &parts)?);
            }
            Ok(out)
        }
        Control::While { cond, body, cond_consts, body_consts } => {
            let (cc, rest) = args.split_at(*cond_consts);
            let (bc, init) = rest.split_at(*body_consts);
            let mut carry: Vec<HostArray> = init.iter().map(|a| (*a).clone()).collect();
            loop {
                let mut ins: Vec<&HostArray> = cc.to_vec();
                ins.extend(carry.iter());
                let go = run_program(cond, &ins)?;
                if go.first().and_then(HostArray::as_scalar) != Some(Scalar::Bool(true)) {
                    return Ok(carry);
                }
                let mut ins: Vec<&HostArray> = bc.to_vec();
                ins.extend(carry.iter());
                carry = run_program(body, &ins)?;
            }
        }
        Control::Cond { branches } => {
            let (index, ops) = args.split_first().ok_or_else(|| internal("cond without an index"))?;
            let i = match index.as_scalar() {
                Some(Scalar::I32(i)) => i.clamp(0, branches.len() as i32 - 1) as usize,
                _ => return Err(internal("the index is not an i32 scalar")),
            };
            run_program(&branches[i], ops)
        }
    }
}

fn internal(message: &str) -> EvalError {
    EvalError::Internal { op: "control", message: message.into() }
}

/// Slice `i` of `x` along its leading axis.
fn slice(x: &HostArray, i: usize) -> HostArray {
    let dims = &x.shape().dims()[1..];
    let n: usize = dims.iter().product();
    let data = Data::from_scalars(x.dtype(), (i * n..(i + 1) * n).map(|k| x.data().get(k)));
    HostArray::new(dims.to_vec(), data).unwrap_or_else(|_| HostArray::zeros(&x.aval()))
}

/// `parts` (each of type `aval`) stacked along a new leading axis of `length`.
fn stack(aval: &arrayjit_ir::AVal, length: usize, parts: &[&HostArray]) -> Result<HostArray, EvalError> {
    let stacked = arrayjit_ir::prim::control::stacked(aval, length);
    let data = Data::from_scalars(aval.dtype, parts.iter().flat_map(|p| (0..p.numel()).map(|k| p.data().get(k))));
    HostArray::new(stacked.shape.clone(), data).map_err(|e| internal(&e.to_string()))
}

/// The values bound so far: constants and arguments are borrowed, equation
/// results and literals owned.
struct Env<'a> {
    values: Vec<Option<Cow<'a, HostArray>>>,
}

impl<'a> Env<'a> {
    fn bind(&mut self, v: Var, value: Cow<'a, HostArray>) {
        // A variable outside the program's numbering cannot be read back by any
        // equation either, so growing the table is as good as an error here.
        if v.index() >= self.values.len() {
            self.values.resize(v.index() + 1, None);
        }
        self.values[v.index()] = Some(value);
    }

    /// The value of an operand; a literal becomes a rank-0 array.
    fn read(&self, a: &Atom, user: impl FnOnce() -> String) -> Result<Cow<'_, HostArray>, EvalError> {
        match a {
            Atom::Lit(s) => Ok(Cow::Owned(HostArray::scalar(*s))),
            Atom::Var(v) => match self.values.get(v.index()) {
                Some(Some(value)) => Ok(Cow::Borrowed(value.as_ref())),
                _ => Err(EvalError::Undefined { var: *v, user: user() }),
            },
        }
    }
}

/// Runs a program whose arguments have already been checked against its inputs.
pub(crate) fn run_program(p: &Program, args: &[&HostArray]) -> Result<Vec<HostArray>, EvalError> {
    let mut env = Env { values: vec![None; p.num_vars()] };
    for (v, value) in &p.consts {
        env.bind(*v, Cow::Borrowed(value.as_ref()));
    }
    for (v, value) in p.inputs.iter().zip(args) {
        env.bind(*v, Cow::Borrowed(*value));
    }
    for (index, e) in p.eqns.iter().enumerate() {
        let name = e.prim.name();
        let ins: Vec<Cow<'_, HostArray>> =
            e.inputs.iter().map(|a| env.read(a, || format!("equation {index} ({name})"))).collect::<Result<_, _>>()?;
        let refs: Vec<&HostArray> = ins.iter().map(|c| c.as_ref()).collect();
        let outs = eval_prim_refs(&e.prim, &refs).map_err(|source| EvalError::InEquation {
            index,
            prim: name,
            loc: e.loc.to_string(),
            source: Box::new(source),
        })?;
        // The declared types must be the ones evaluation produced, or later
        // equations would be checked against types the values do not have.
        let declared: Vec<_> = e.outputs.iter().map(|v| declared_aval(p, *v)).collect();
        let got: Vec<_> = outs.iter().map(|o| Some(o.aval())).collect();
        if declared != got {
            return Err(EvalError::Declared { index, prim: name, declared: describe(&declared), got: describe(&got) });
        }
        let nudging = crate::nudge::active();
        for (v, value) in e.outputs.iter().zip(outs) {
            let value = if nudging { crate::nudge::apply(value) } else { value };
            env.bind(*v, Cow::Owned(value));
        }
    }
    p.outputs.iter().map(|a| env.read(a, || "the program's output".to_string()).map(Cow::into_owned)).collect()
}

/// The declared type of a variable, `None` if the program has no type for it.
fn declared_aval(p: &Program, v: Var) -> Option<arrayjit_ir::AVal> {
    (v.index() < p.num_vars()).then(|| p.aval(v).clone())
}

fn describe(avals: &[Option<arrayjit_ir::AVal>]) -> String {
    if avals.iter().all(Option::is_some) {
        list_avals(&avals.iter().flatten().cloned().collect::<Vec<_>>())
    } else {
        format!("{} output(s), some without a type", avals.len())
    }
}

#[cfg(test)]
mod tests {
    use crate::test_util::*;
    use crate::{eval_prim, eval_program, EvalError};
    use arrayjit_ir::prim::{Control, Elementwise as E, Reduction, ShapeOp};
    use arrayjit_ir::{AVal, Atom, DType, HostArray, Loc, Prim, Program, ProgramBuilder, Scalar, Shape, Var};
    use std::sync::Arc;

    /// Appends `prim(ins)` with the output types its rule gives.
    fn eqn(b: &mut ProgramBuilder, prim: impl Into<Prim>, ins: Vec<Atom>) -> Vec<Var> {
        let prim = prim.into();
        let avals: Vec<AVal> = ins
            .iter()
            .map(|a| match a {
                Atom::Var(v) => b.aval(*v).clone(),
                Atom::Lit(s) => AVal::scalar(s.dtype()),
            })
            .collect();
        let outs = prim.abstract_eval(&avals).unwrap();
        b.add_eqn(prim, ins, outs, Loc::default())
    }

    /// `g(a, b) = a * b + 1`, on f32[n].
    fn mul_add_one(n: usize) -> Program {
        let mut b = ProgramBuilder::new();
        let x = b.add_input(AVal::new(DType::F32, [n]));
        let y = b.add_input(AVal::new(DType::F32, [n]));
        let p = eqn(&mut b, E::Mul, vec![x.into(), y.into()]);
        let s = eqn(&mut b, E::Add, vec![p[0].into(), Atom::Lit(Scalar::F32(1.0))]);
        b.finish(vec![s[0].into()])
    }

    #[test]
    fn runs_equations_with_constants_and_literals() {
        let mut b = ProgramBuilder::new();
        let c = b.add_const(Arc::new(f32s(&[3], &[1.0, 2.0, 3.0])));
        let x = b.add_input(AVal::new(DType::F32, [3]));
        let s = eqn(&mut b, E::Sub, vec![x.into(), c.into()]);
        let m = eqn(&mut b, E::Mul, vec![Atom::Lit(Scalar::F32(2.0)), s[0].into()]);
        let cmp = eqn(&mut b, E::Gt, vec![m[0].into(), Atom::Lit(Scalar::F32(0.0))]);
        let p = b.finish(vec![m[0].into(), cmp[0].into(), Atom::Lit(Scalar::I32(7)), x.into()]);
        let x = f32s(&[3], &[0.0, 4.0, 3.0]);
        let out = eval_program(&p, std::slice::from_ref(&x)).unwrap();
        assert_eq!(out, vec![f32s(&[3], &[-2.0, 4.0, 0.0]), bools(&[3], &[false, true, false]), i32s(&[], &[7]), x]);
    }

    #[test]
    fn softmax_across_families() {
        let mut b = ProgramBuilder::new();
        let x = b.add_input(AVal::new(DType::F64, [2, 3]));
        let mx = eqn(&mut b, Reduction::Max { axes: vec![1] }, vec![x.into()]);
        let bc = ShapeOp::BroadcastInDim { shape: Shape::from([2, 3]), dims: vec![0] };
        let mxb = eqn(&mut b, bc.clone(), vec![mx[0].into()]);
        let d = eqn(&mut b, E::Sub, vec![x.into(), mxb[0].into()]);
        let e = eqn(&mut b, E::Exp, vec![d[0].into()]);
        let s = eqn(&mut b, Reduction::Sum { axes: vec![1] }, vec![e[0].into()]);
        let sb = eqn(&mut b, bc, vec![s[0].into()]);
        let y = eqn(&mut b, E::Div, vec![e[0].into(), sb[0].into()]);
        let p = b.finish(vec![y[0].into()]);
        let out = eval_program(&p, &[f64s(&[2, 3], &[1.0, 2.0, 3.0, 1000.0, 1000.0, 1000.0])]).unwrap();
        let z = 1.0 + 1f64.exp() + 2f64.exp();
        let want = [1.0 / z, 1f64.exp() / z, 2f64.exp() / z, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0];
        assert_close(&vals(&out[0]), &want, 1e-15);
    }

    #[test]
    fn call_runs_nested_programs() {
        let inner = Arc::new(mul_add_one(2));
        // middle(x) = inner(x, x) - x, itself called by outer(x) = middle(x) * 2.
        let mut b = ProgramBuilder::new();
        let x = b.add_input(AVal::new(DType::F32, [2]));
        let r = eqn(&mut b, Control::Call { body: inner }, vec![x.into(), x.into()]);
        let d = eqn(&mut b, E::Sub, vec![r[0].into(), x.into()]);
        let middle = Arc::new(b.finish(vec![d[0].into()]));
        let mut b = ProgramBuilder::new();
        let x = b.add_input(AVal::new(DType::F32, [2]));
        let r = eqn(&mut b, Control::Call { body: middle.clone() }, vec![x.into()]);
        let m = eqn(&mut b, E::Mul, vec![r[0].into(), Atom::Lit(Scalar::F32(2.0))]);
        let outer = b.finish(vec![m[0].into()]);
        let x = f32s(&[2], &[3.0, -1.0]);
        // (x² + 1 - x) * 2
        assert_eq!(eval_program(&outer, std::slice::from_ref(&x)).unwrap(), vec![f32s(&[2], &[14.0, 6.0])]);
        let direct = eval_prim(&Control::Call { body: middle.clone() }.into(), std::slice::from_ref(&x)).unwrap();
        assert_eq!(direct, vec![f32s(&[2], &[7.0, 3.0])]);
        let e = eval_prim(&Control::Call { body: middle }.into(), &[f32s(&[3], &[0.0; 3])]).unwrap_err();
        assert_eq!(e.to_string(), "call: the body takes f32[2] but was given f32[3]");
    }

    #[test]
    fn argument_mismatches_are_reported() {
        let p = mul_add_one(3);
        let x = f32s(&[3], &[1.0, 2.0, 3.0]);
        let e = eval_program(&p, std::slice::from_ref(&x)).unwrap_err();
        assert_eq!(e, EvalError::ArgCount { expected: 2, given: 1 });
        assert_eq!(e.to_string(), "the program takes 2 argument(s) but was given 1");
        let e = eval_program(&p, &[x.clone(), f64s(&[3], &[0.0; 3])]).unwrap_err();
        assert_eq!(e.to_string(), "program argument 1 should be f32[3] but is f64[3]");
        let e = eval_program(&p, &[f32s(&[1, 3], &[0.0; 3]), x.clone()]).unwrap_err();
        assert_eq!(e.to_string(), "program argument 0 should be f32[3] but is f32[1,3]");
        assert!(eval_program(&p, &[x.clone(), x.clone(), x]).is_err());
    }

    #[test]
    fn ill_typed_programs_fail_with_the_equation() {
        // Declared types that the rule rejects: the error names the equation.
        let mut b = ProgramBuilder::new();
        let x = b.add_input(AVal::new(DType::F32, [2]));
        let y = b.add_input(AVal::new(DType::F32, [3]));
        let s = b.add_eqn(E::Add.into(), vec![x.into(), y.into()], vec![AVal::new(DType::F32, [2])], Loc::default());
        let p = b.finish(vec![s[0].into()]);
        let e = eval_program(&p, &[f32s(&[2], &[0.0; 2]), f32s(&[3], &[0.0; 3])]).unwrap_err();
        assert!(matches!(&e, EvalError::InEquation { index: 0, source, .. } if matches!(**source, EvalError::Type(_))));
        assert!(
            e.to_string().starts_with("equation 0 (add) at <unknown location>: add: operands f32[2] and f32[3]"),
            "{e}"
        );
        // Declared types that differ from the values.
        let mut b = ProgramBuilder::new();
        let x = b.add_input(AVal::new(DType::F32, [3]));
        let y = b.add_eqn(E::Exp.into(), vec![x.into()], vec![AVal::new(DType::F32, [4])], Loc::default());
        let p = b.finish(vec![y[0].into()]);
        let e = eval_program(&p, &[f32s(&[3], &[0.0; 3])]).unwrap_err();
        assert_eq!(e.to_string(), "equation 0 (exp) declares outputs f32[4] but evaluating it gives f32[3]");
        // An output nothing defines.
        let mut b = ProgramBuilder::new();
        let x = b.add_input(AVal::new(DType::I32, []));
        let p = b.finish(vec![x.into(), Atom::Var(Var(9))]);
        let e = eval_program(&p, &[i32s(&[], &[1])]).unwrap_err();
        assert_eq!(e.to_string(), "the program's output reads Var(9) before it is defined");
    }

    #[test]
    fn programs_without_inputs_or_equations() {
        let mut b = ProgramBuilder::new();
        let c = b.add_const(Arc::new(i32s(&[2], &[4, 5])));
        let p = b.finish(vec![c.into()]);
        assert_eq!(eval_program(&p, &[]).unwrap(), vec![i32s(&[2], &[4, 5])]);
        let p = ProgramBuilder::new().finish(vec![]);
        assert_eq!(eval_program(&p, &[]).unwrap(), Vec::<HostArray>::new());
    }
}
