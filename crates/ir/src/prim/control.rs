//! Higher-order primitives: those that hold sub-programs. `call` applies a
//! closed program to operands (what a `jit`-ed function becomes when it is
//! called under another trace); `scan`, `while` and `cond` are the loops and
//! the conditional, each holding its body (or branches) as closed programs
//! whose first inputs are the values the body closed over (hoisted out of
//! the loop, as JAX's `num_consts`); `custom_jvp` and `custom_vjp` are
//! functions with derivative rules of their own.

use super::params::{Param, Params};
use crate::error::list_avals;
use crate::{AVal, DType, Program, TypeError};
use std::sync::Arc;

/// A primitive holding sub-programs.
#[derive(Clone, Debug, PartialEq)]
pub enum Control {
    /// Applies `body` to the operands; the outputs are the body's outputs.
    Call { body: Arc<Program> },
    /// A loop of `length` iterations. Operands: `num_consts` loop-invariant
    /// values, `num_carry` carries, then the stacked `xs` (leading axis
    /// `length`). The body takes `(consts, carries, x slices)` and returns
    /// `(new carries, y slices)`; the outputs are the final carries, then the
    /// `ys` stacked along a new leading axis. `reverse` walks the xs (and
    /// writes the ys) from the last index down; `unroll` is how many
    /// iterations one pass of the compiled loop runs (semantics unchanged).
    Scan { body: Arc<Program>, num_consts: usize, num_carry: usize, length: usize, reverse: bool, unroll: usize },
    /// Runs `body` while `cond` holds. Operands: `cond_consts`, then
    /// `body_consts`, then the carries. `cond` takes `(cond consts, carries)`
    /// and returns a boolean scalar; `body` takes `(body consts, carries)` and
    /// returns the new carries; the outputs are the final carries.
    While { cond: Arc<Program>, body: Arc<Program>, cond_consts: usize, body_consts: usize },
    /// Runs one of `branches` on the operands after the first, chosen by the
    /// first (an `i32` scalar index, clamped into range, as `lax.switch`).
    Cond { branches: Vec<Arc<Program>> },
    /// A function with its own derivative rule (JAX's `custom_jvp`).
    /// Operands: `body_consts` values `body` closed over, `jvp_consts` values
    /// `jvp` closed over, then the arguments `x`. `body` takes
    /// `(body consts, x)` and returns `y`, which are the outputs; `jvp` takes
    /// `(jvp consts, x, ẋ)`, a tangent of the arguments' types for each
    /// argument, and returns `(y, ẏ)`. Evaluation and compilation run `body`;
    /// forward-mode differentiation runs `jvp` instead, so the derivative is
    /// the rule's whatever `body` computes.
    CustomJvp { body: Arc<Program>, jvp: Arc<Program>, body_consts: usize, jvp_consts: usize },
    /// A function with its own reverse-mode rule (JAX's `custom_vjp`).
    /// Operands: `body_consts` values `body` closed over, `fwd_consts` values
    /// `fwd` closed over, then the arguments `x`. `body` takes
    /// `(body consts, x)` and returns `y`, which are the outputs; `fwd` takes
    /// `(fwd consts, x)` and returns `(y, r)`, the outputs and residuals for
    /// `bwd`; `bwd` takes `(r, ȳ)` and returns `x̄`, the cotangents of the
    /// arguments. Evaluation and compilation run `body`; differentiation runs
    /// `fwd`, and the outputs' tangents are a [`Control::CustomVjpTangent`].
    CustomVjp { body: Arc<Program>, fwd: Arc<Program>, bwd: Arc<Program>, body_consts: usize, fwd_consts: usize },
    /// The tangents of a `custom_vjp`'s outputs, `ẏ = L(r, ẋ)`, known only by
    /// the transpose of the linear map `L`: `bwd(r, ȳ) = Lᵀ ȳ`. Operands:
    /// the residuals `r`, then a tangent per argument. It exists between
    /// linearization and transposition; it cannot be evaluated (a
    /// `custom_vjp` has no forward-mode derivative, as in JAX).
    CustomVjpTangent { bwd: Arc<Program> },
}

impl Control {
    pub fn name(&self) -> &'static str {
        match self {
            Control::Call { .. } => "call",
            Control::Scan { .. } => "scan",
            Control::While { .. } => "while",
            Control::Cond { .. } => "cond",
            Control::CustomJvp { .. } => "custom_jvp",
            Control::CustomVjp { .. } => "custom_vjp",
            Control::CustomVjpTangent { .. } => "custom_vjp_tangent",
        }
    }

    pub fn params(&self) -> Vec<(&'static str, Param)> {
        match self {
            Control::Call { body } => vec![("body", Param::Program(body.clone()))],
            Control::Scan { body, num_consts, num_carry, length, reverse, unroll } => vec![
                ("length", Param::Int(*length as i64)),
                ("num_consts", Param::Int(*num_consts as i64)),
                ("num_carry", Param::Int(*num_carry as i64)),
                ("reverse", Param::Bool(*reverse)),
                ("unroll", Param::Int(*unroll as i64)),
                ("body", Param::Program(body.clone())),
            ],
            Control::While { cond, body, cond_consts, body_consts } => vec![
                ("cond_consts", Param::Int(*cond_consts as i64)),
                ("body_consts", Param::Int(*body_consts as i64)),
                ("cond", Param::Program(cond.clone())),
                ("body", Param::Program(body.clone())),
            ],
            Control::Cond { branches } => vec![("branches", Param::Programs(branches.clone()))],
            Control::CustomJvp { body, jvp, body_consts, jvp_consts } => vec![
                ("body_consts", Param::Int(*body_consts as i64)),
                ("jvp_consts", Param::Int(*jvp_consts as i64)),
                ("body", Param::Program(body.clone())),
                ("jvp", Param::Program(jvp.clone())),
            ],
            Control::CustomVjp { body, fwd, bwd, body_consts, fwd_consts } => vec![
                ("body_consts", Param::Int(*body_consts as i64)),
                ("fwd_consts", Param::Int(*fwd_consts as i64)),
                ("body", Param::Program(body.clone())),
                ("fwd", Param::Program(fwd.clone())),
                ("bwd", Param::Program(bwd.clone())),
            ],
            Control::CustomVjpTangent { bwd } => vec![("bwd", Param::Program(bwd.clone()))],
        }
    }

    pub fn from_parts(name: &str, p: &mut Params) -> Option<Result<Control, String>> {
        Some(match name {
            "call" => p.program("body").map(|body| Control::Call { body }),
            "scan" => (|| {
                Ok(Control::Scan {
                    length: p.usize("length")?,
                    num_consts: p.usize("num_consts")?,
                    num_carry: p.usize("num_carry")?,
                    reverse: p.bool("reverse")?,
                    unroll: p.usize("unroll")?,
                    body: p.program("body")?,
                })
            })(),
            "while" => (|| {
                Ok(Control::While {
                    cond_consts: p.usize("cond_consts")?,
                    body_consts: p.usize("body_consts")?,
                    cond: p.program("cond")?,
                    body: p.program("body")?,
                })
            })(),
            "cond" => p.programs("branches").map(|branches| Control::Cond { branches }),
            "custom_jvp" => (|| {
                Ok(Control::CustomJvp {
                    body_consts: p.usize("body_consts")?,
                    jvp_consts: p.usize("jvp_consts")?,
                    body: p.program("body")?,
                    jvp: p.program("jvp")?,
                })
            })(),
            "custom_vjp" => (|| {
                Ok(Control::CustomVjp {
                    body_consts: p.usize("body_consts")?,
                    fwd_consts: p.usize("fwd_consts")?,
                    body: p.program("body")?,
                    fwd: p.program("fwd")?,
                    bwd: p.program("bwd")?,
                })
            })(),
            "custom_vjp_tangent" => p.program("bwd").map(|bwd| Control::CustomVjpTangent { bwd }),
            _ => return None,
        })
    }

    /// The sub-programs held, for passes that recurse (typecheck, printing).
    pub fn sub_programs(&self) -> Vec<&Arc<Program>> {
        match self {
            Control::Call { body } | Control::Scan { body, .. } => vec![body],
            Control::While { cond, body, .. } => vec![cond, body],
            Control::Cond { branches } => branches.iter().collect(),
            Control::CustomJvp { body, jvp, .. } => vec![body, jvp],
            Control::CustomVjp { body, fwd, bwd, .. } => vec![body, fwd, bwd],
            Control::CustomVjpTangent { bwd } => vec![bwd],
        }
    }

    /// The same control primitive with each sub-program replaced by `f` of
    /// it (which must keep its signature), for passes that rewrite bodies.
    pub fn map_programs<E>(&self, mut f: impl FnMut(&Program) -> Result<Program, E>) -> Result<Control, E> {
        let mut g = |p: &Arc<Program>| f(p).map(Arc::new);
        Ok(match self {
            Control::Call { body } => Control::Call { body: g(body)? },
            Control::Scan { body, num_consts, num_carry, length, reverse, unroll } => Control::Scan {
                body: g(body)?,
                num_consts: *num_consts,
                num_carry: *num_carry,
                length: *length,
                reverse: *reverse,
                unroll: *unroll,
            },
            Control::While { cond, body, cond_consts, body_consts } => {
                Control::While { cond: g(cond)?, body: g(body)?, cond_consts: *cond_consts, body_consts: *body_consts }
            }
            Control::Cond { branches } => Control::Cond { branches: branches.iter().map(g).collect::<Result<_, _>>()? },
            Control::CustomJvp { body, jvp, body_consts, jvp_consts } => {
                Control::CustomJvp { body: g(body)?, jvp: g(jvp)?, body_consts: *body_consts, jvp_consts: *jvp_consts }
            }
            Control::CustomVjp { body, fwd, bwd, body_consts, fwd_consts } => Control::CustomVjp {
                body: g(body)?,
                fwd: g(fwd)?,
                bwd: g(bwd)?,
                body_consts: *body_consts,
                fwd_consts: *fwd_consts,
            },
            Control::CustomVjpTangent { bwd } => Control::CustomVjpTangent { bwd: g(bwd)? },
        })
    }

    /// The shape/dtype rule. (The bodies themselves are checked by the typechecker.)
    pub fn abstract_eval(&self, ins: &[AVal]) -> Result<Vec<AVal>, TypeError> {
        let err = |m: String| Err(TypeError::new(self.name(), m));
        match self {
            Control::Call { body } => {
                let want = body.in_avals();
                if want != ins {
                    return err(format!("the body takes {} but was given {}", list_avals(&want), list_avals(ins)));
                }
                Ok(body.out_avals())
            }
            Control::Scan { body, num_consts, num_carry, length, .. } => {
                let (nc, nk) = (*num_consts, *num_carry);
                let want = body.in_avals();
                if want.len() != ins.len() || nc + nk > ins.len() {
                    return err(format!(
                        "the body takes {} operands ({nc} constants, {nk} carries) but the scan was given {}",
                        want.len(),
                        ins.len()
                    ));
                }
                if want[..nc + nk] != ins[..nc + nk] {
                    return err(format!(
                        "the body takes constants and carries {} but was given {}",
                        list_avals(&want[..nc + nk]),
                        list_avals(&ins[..nc + nk])
                    ));
                }
                for (i, (w, x)) in want[nc + nk..].iter().zip(&ins[nc + nk..]).enumerate() {
                    if x.shape.dims().first() != Some(length) || unstacked(x) != *w {
                        return err(format!(
                            "xs operand {i} is {x} but the body takes slices {w} of a length-{length} axis"
                        ));
                    }
                }
                let outs = body.out_avals();
                if outs.len() < nk || outs[..nk] != ins[nc..nc + nk] {
                    return err(format!(
                        "the body returns {} but its carries are {}",
                        list_avals(&outs[..nk.min(outs.len())]),
                        list_avals(&ins[nc..nc + nk])
                    ));
                }
                let mut res = outs[..nk].to_vec();
                res.extend(outs[nk..].iter().map(|y| stacked(y, *length)));
                Ok(res)
            }
            Control::While { cond, body, cond_consts, body_consts } => {
                let (cc, bc) = (*cond_consts, *body_consts);
                if cc + bc > ins.len() {
                    return err(format!("takes {cc} + {bc} constants but was given {} operands", ins.len()));
                }
                let carries = &ins[cc + bc..];
                let mut cond_in = ins[..cc].to_vec();
                cond_in.extend_from_slice(carries);
                if cond.in_avals() != cond_in {
                    return err(format!(
                        "the condition takes {} but was given {}",
                        list_avals(&cond.in_avals()),
                        list_avals(&cond_in)
                    ));
                }
                if cond.out_avals() != [AVal::scalar(DType::Bool)] {
                    return err(format!(
                        "the condition must return one bool[] but returns {}",
                        list_avals(&cond.out_avals())
                    ));
                }
                let mut body_in = ins[cc..cc + bc].to_vec();
                body_in.extend_from_slice(carries);
                if body.in_avals() != body_in {
                    return err(format!(
                        "the body takes {} but was given {}",
                        list_avals(&body.in_avals()),
                        list_avals(&body_in)
                    ));
                }
                if body.out_avals() != carries {
                    return err(format!(
                        "the body returns {} but the carries are {}",
                        list_avals(&body.out_avals()),
                        list_avals(carries)
                    ));
                }
                Ok(carries.to_vec())
            }
            Control::Cond { branches } => {
                let Some((index, ops)) = ins.split_first() else {
                    return err("takes an index operand".into());
                };
                if *index != AVal::scalar(DType::I32) {
                    return err(format!("the index must be an i32[] scalar, got {index}"));
                }
                let Some(first) = branches.first() else {
                    return err("has no branches".into());
                };
                let outs = first.out_avals();
                for (i, b) in branches.iter().enumerate() {
                    if b.in_avals() != ops {
                        return err(format!(
                            "branch {i} takes {} but was given {}",
                            list_avals(&b.in_avals()),
                            list_avals(ops)
                        ));
                    }
                    if b.out_avals() != outs {
                        return err(format!(
                            "branch {i} returns {} but branch 0 returns {}",
                            list_avals(&b.out_avals()),
                            list_avals(&outs)
                        ));
                    }
                }
                Ok(outs)
            }
            Control::CustomJvp { body, jvp, body_consts, jvp_consts } => {
                let mut jvp_in = self.check_custom_body(ins, body, *body_consts, *jvp_consts)?;
                jvp_in.extend_from_slice(&ins[body_consts + jvp_consts..]);
                if jvp.in_avals() != jvp_in {
                    return err(format!(
                        "the derivative rule takes {} but should take its constants, the arguments and their \
                         tangents: {}",
                        list_avals(&jvp.in_avals()),
                        list_avals(&jvp_in)
                    ));
                }
                let outs = body.out_avals();
                let mut jvp_out = outs.clone();
                jvp_out.extend_from_slice(&outs);
                if jvp.out_avals() != jvp_out {
                    return err(format!(
                        "the derivative rule returns {} but should return the outputs and their tangents: {}",
                        list_avals(&jvp.out_avals()),
                        list_avals(&jvp_out)
                    ));
                }
                Ok(outs)
            }
            Control::CustomVjp { body, fwd, bwd, body_consts, fwd_consts } => {
                let fwd_in = self.check_custom_body(ins, body, *body_consts, *fwd_consts)?;
                let args = &ins[body_consts + fwd_consts..];
                if fwd.in_avals() != fwd_in {
                    return err(format!(
                        "the forward rule takes {} but was given {}",
                        list_avals(&fwd.in_avals()),
                        list_avals(&fwd_in)
                    ));
                }
                let outs = body.out_avals();
                let fwd_out = fwd.out_avals();
                if fwd_out.len() < outs.len() || fwd_out[..outs.len()] != outs[..] {
                    return err(format!(
                        "the forward rule returns {} but should return the outputs {} and then residuals",
                        list_avals(&fwd_out),
                        list_avals(&outs)
                    ));
                }
                let mut bwd_in = fwd_out[outs.len()..].to_vec();
                bwd_in.extend_from_slice(&outs);
                if bwd.in_avals() != bwd_in || bwd.out_avals() != args {
                    return err(format!(
                        "the backward rule maps {} to {} but should map the residuals and the outputs' \
                         cotangents, {}, to the arguments' cotangents, {}",
                        list_avals(&bwd.in_avals()),
                        list_avals(&bwd.out_avals()),
                        list_avals(&bwd_in),
                        list_avals(args)
                    ));
                }
                Ok(outs)
            }
            Control::CustomVjpTangent { bwd } => {
                let bwd_in = bwd.in_avals();
                let tangents = bwd.out_avals();
                let Some(nr) = ins.len().checked_sub(tangents.len()).filter(|nr| *nr <= bwd_in.len()) else {
                    return err(format!(
                        "takes residuals and the tangents {} but was given {}",
                        list_avals(&tangents),
                        list_avals(ins)
                    ));
                };
                if ins[..nr] != bwd_in[..nr] || ins[nr..] != tangents[..] {
                    return err(format!(
                        "takes the residuals {} and the tangents {} but was given {}",
                        list_avals(&bwd_in[..nr]),
                        list_avals(&tangents),
                        list_avals(ins)
                    ));
                }
                Ok(bwd_in[nr..].to_vec())
            }
        }
    }
}

impl Control {
    /// What `custom_jvp` and `custom_vjp` check alike: the constant counts
    /// fit the operands, and the body takes its constants and the
    /// arguments. Returns the rule's operands: its constants, then the
    /// arguments.
    fn check_custom_body(
        &self,
        ins: &[AVal],
        body: &Program,
        body_consts: usize,
        rule_consts: usize,
    ) -> Result<Vec<AVal>, TypeError> {
        let err = |m: String| Err(TypeError::new(self.name(), m));
        let (bc, rc) = (body_consts, rule_consts);
        if bc + rc > ins.len() {
            return err(format!("takes {bc} + {rc} constants but was given {} operands", ins.len()));
        }
        let args = &ins[bc + rc..];
        let mut body_in = ins[..bc].to_vec();
        body_in.extend_from_slice(args);
        if body.in_avals() != body_in {
            return err(format!(
                "the body takes {} but was given {}",
                list_avals(&body.in_avals()),
                list_avals(&body_in)
            ));
        }
        let mut rule_in = ins[bc..bc + rc].to_vec();
        rule_in.extend_from_slice(args);
        Ok(rule_in)
    }
}

/// The type of one slice along the leading axis.
pub fn unstacked(a: &AVal) -> AVal {
    AVal::new(a.dtype, a.shape.dims().get(1..).unwrap_or(&[]).to_vec())
}

/// The type of `length` values of type `a` stacked along a new leading axis.
pub fn stacked(a: &AVal, length: usize) -> AVal {
    let mut dims = vec![length];
    dims.extend_from_slice(a.shape.dims());
    AVal::new(a.dtype, dims)
}

/// The operands a `custom_jvp`'s (or `custom_vjp`'s) body takes among the
/// primitive's: its own constants and the arguments, the rule's constants
/// (`jvp_consts`, or `fwd_consts`) left out.
pub fn custom_body_operands<T: Clone>(ins: &[T], body_consts: usize, rule_consts: usize) -> Vec<T> {
    let mut v = ins[..body_consts.min(ins.len())].to_vec();
    v.extend_from_slice(ins.get(body_consts + rule_consts..).unwrap_or(&[]));
    v
}

/// A `custom_jvp`'s (or `custom_vjp`'s) body taking all the primitive's
/// operands (the rule's constants as unused inputs), to run it as a `call`.
/// `rule` is the `jvp` (or `fwd`) program, whose first `rule_consts` inputs
/// are its constants.
pub fn custom_body_as_call(body: &Program, rule: &Program, body_consts: usize, rule_consts: usize) -> Program {
    let mut avals = body.in_avals();
    let at = body_consts.min(avals.len());
    avals.splice(at..at, rule.in_avals().into_iter().take(rule_consts));
    let map: Vec<usize> = (0..body.inputs.len()).map(|k| if k < body_consts { k } else { k + rule_consts }).collect();
    body.rebind_inputs(&avals, &map)
}

/// Why a `custom_vjp_tangent` has no value: what evaluating one reports.
pub const CUSTOM_VJP_FORWARD: &str = "a custom_vjp function has no forward-mode derivative (jvp, jacfwd), as in \
                                      JAX; give it a custom_jvp rule to differentiate it in forward mode";
