//! The text form of a program, written in the style of JAX's jaxprs: what users
//! see from `make_jaxpr`, what `ARRAYJIT_DUMP` writes, and what [`crate::parse()`]
//! reads back.
//!
//! ```text
//! { lambda a:f32[3]{1.0, 2.0, 3.0} ; b:f32[3] c:i32[] . let
//!     d:f32[3] = add b a
//!     e:f32[2,3] = broadcast_in_dim[shape=(2,3) broadcast_dimensions=(1)] d
//!     f:f32[] = reduce_sum[axes=(0,1)] e
//!     g:f32[] = mul f 2.0:f32
//!   in (g, 1:i32) }
//! ```
//!
//! Constants come before the `;`, inputs after it. The alternate form
//! (`{:#}`) writes every element of every constant, so that the text is a
//! complete description of the program that [`crate::parse()`] reads back;
//! the plain form (`{}`, what `make_jaxpr` shows) writes constants of more
//! than 64 elements as `{…}` (data a function closes over can be megabytes). Variables are named
//! `a`..`z`, `ba`, `bb`, ... in definition order, each nested program starting
//! afresh at `a`. Words the parser treats specially (`in`, `inf`, ...) are never
//! used as names. Equations holding a sub-program put each parameter on its own
//! line, with the sub-program indented below.

use crate::prim::Param;
use crate::{Atom, Data, HostArray, Program, Scalar, Var};
use std::fmt::{self, Write};

/// Words with a meaning of their own in the text form; never variable names.
pub(crate) const RESERVED: [&str; 7] = ["lambda", "let", "in", "true", "false", "inf", "NaN"];

/// The `n`-th name in JAX's sequence `a`..`z`, `ba`..`bz`, `ca`, ... (base 26
/// with `a` as the zero digit), before reserved words are skipped.
fn raw_name(mut n: usize) -> String {
    let mut letters = Vec::new();
    loop {
        letters.push(b'a' + (n % 26) as u8);
        n /= 26;
        if n == 0 {
            break;
        }
    }
    letters.iter().rev().map(|&c| c as char).collect()
}

/// Hands out variable names in order, skipping reserved words.
#[derive(Default)]
struct Namer {
    next: usize,
}

impl Namer {
    fn fresh(&mut self) -> String {
        loop {
            let name = raw_name(self.next);
            self.next += 1;
            if !RESERVED.contains(&name.as_str()) {
                return name;
            }
        }
    }
}

/// Writes a NaN so that parsing it gives back the same bits (Rust's `{:?}`
/// already does so for every other float): `NaN` (the canonical quiet NaN),
/// `-NaN` (the same with the sign set, what x86 produces for 0/0), or
/// `NaN(0x7fc00001)` with the raw bits for any other payload.
fn write_nan<W: Write>(w: &mut W, bits: u64, canonical: u64, sign: u64, hex_digits: usize) -> fmt::Result {
    if bits == canonical {
        w.write_str("NaN")
    } else if bits == canonical | sign {
        w.write_str("-NaN")
    } else {
        write!(w, "NaN(0x{bits:0hex_digits$x})")
    }
}

/// Writes a scalar's value without its dtype: `2.0`, `-3`, `true`, `-inf`, `NaN`.
pub(crate) fn write_value<W: Write>(w: &mut W, s: Scalar) -> fmt::Result {
    match s {
        Scalar::Bool(v) => write!(w, "{v}"),
        Scalar::I32(v) => write!(w, "{v}"),
        Scalar::F32(v) if v.is_nan() => write_nan(w, v.to_bits() as u64, f32::NAN.to_bits() as u64, 1 << 31, 8),
        Scalar::F64(v) if v.is_nan() => write_nan(w, v.to_bits(), f64::NAN.to_bits(), 1 << 63, 16),
        Scalar::F32(v) => write!(w, "{v:?}"),
        Scalar::F64(v) => write!(w, "{v:?}"),
    }
}

/// Writes a literal operand: its value, a colon and its dtype (`2.0:f32`).
fn write_literal<W: Write>(w: &mut W, s: Scalar) -> fmt::Result {
    write_value(w, s)?;
    write!(w, ":{}", s.dtype())
}

/// Writes a constant's elements, `{1.0, 2.0}`.
/// Constants with more elements than this are elided in the plain form.
const ELIDE_ABOVE: usize = 64;

fn write_elements<W: Write>(w: &mut W, value: &HostArray, full: bool) -> fmt::Result {
    if !full && value.numel() > ELIDE_ABOVE {
        return w.write_str("{…}");
    }
    w.write_str("{")?;
    let data: &Data = value.data();
    for i in 0..data.len() {
        if i > 0 {
            w.write_str(", ")?;
        }
        write_value(w, data.get(i))?;
    }
    w.write_str("}")
}

/// The names of one program's variables (each program has its own namespace).
struct Names {
    names: Vec<Option<String>>,
    namer: Namer,
}

impl Names {
    fn new(p: &Program) -> Names {
        let mut n = Names { names: vec![None; p.num_vars()], namer: Namer::default() };
        for (v, _) in &p.consts {
            n.define(*v);
        }
        for v in &p.inputs {
            n.define(*v);
        }
        for e in &p.eqns {
            for v in &e.outputs {
                n.define(*v);
            }
        }
        n
    }

    fn define(&mut self, v: Var) {
        let name = self.namer.fresh();
        if let Some(slot) = self.names.get_mut(v.index()) {
            *slot = Some(name);
        }
    }

    /// A variable's name; a variable the program never defines (which
    /// `typecheck` rejects) shows as `?` and its number, which does not parse.
    fn write_var<W: Write>(&self, w: &mut W, v: Var) -> fmt::Result {
        match self.names.get(v.index()) {
            Some(Some(name)) => w.write_str(name),
            _ => write!(w, "?{}", v.0),
        }
    }

    fn write_atom<W: Write>(&self, w: &mut W, a: &Atom) -> fmt::Result {
        match a {
            Atom::Var(v) => self.write_var(w, *v),
            Atom::Lit(s) => write_literal(w, *s),
        }
    }

    /// `name:dtype[shape]`.
    fn write_binder<W: Write>(&self, w: &mut W, p: &Program, v: Var) -> fmt::Result {
        self.write_var(w, v)?;
        w.write_str(":")?;
        if v.index() < p.num_vars() {
            write!(w, "{}", p.aval(v))
        } else {
            w.write_str("?")
        }
    }
}

/// Writes a parameter value; a sub-program starts on the current line and is
/// indented by `indent`.
fn write_param<W: Write>(w: &mut W, value: &Param, indent: usize, full: bool) -> fmt::Result {
    match value {
        Param::Int(v) => write!(w, "{v}"),
        Param::Ints(vs) => {
            w.write_str("(")?;
            for (i, v) in vs.iter().enumerate() {
                if i > 0 {
                    w.write_str(",")?;
                }
                write!(w, "{v}")?;
            }
            w.write_str(")")
        }
        Param::Bool(v) => write!(w, "{v}"),
        Param::DType(d) => write!(w, "{d}"),
        Param::Program(p) => write_program(w, p, indent, full),
        Param::Programs(ps) => {
            w.write_str("[")?;
            for p in ps {
                write!(w, "\n{:1$}", "", indent + 2)?;
                write_program(w, p, indent + 2, full)?;
            }
            write!(w, "\n{:1$}]", "", indent)
        }
    }
}

/// Writes a program whose first line continues the current one and whose
/// equations are indented by `indent + 4` (the closing `in` by `indent + 2`).
pub(crate) fn write_program<W: Write>(w: &mut W, p: &Program, indent: usize, full: bool) -> fmt::Result {
    let names = Names::new(p);
    w.write_str("{ lambda ")?;
    for (v, value) in &p.consts {
        names.write_binder(w, p, *v)?;
        write_elements(w, value, full)?;
        w.write_str(" ")?;
    }
    w.write_str("; ")?;
    for v in &p.inputs {
        names.write_binder(w, p, *v)?;
        w.write_str(" ")?;
    }
    w.write_str(". let\n")?;
    let eqn_indent = indent + 4;
    for e in &p.eqns {
        write!(w, "{:eqn_indent$}", "")?;
        for v in &e.outputs {
            names.write_binder(w, p, *v)?;
            w.write_str(" ")?;
        }
        w.write_str("= ")?;
        w.write_str(e.prim.name())?;
        let params = e.prim.params();
        if params.iter().any(|(_, v)| matches!(v, Param::Program(_) | Param::Programs(_))) {
            // As JAX does for sub-jaxprs: one parameter per line, then `]`
            // back at the equation's indentation.
            let param_indent = eqn_indent + 2;
            w.write_str("[\n")?;
            for (key, value) in &params {
                write!(w, "{:param_indent$}{key}=", "")?;
                write_param(w, value, param_indent, full)?;
                w.write_str("\n")?;
            }
            write!(w, "{:eqn_indent$}]", "")?;
        } else if !params.is_empty() {
            w.write_str("[")?;
            for (i, (key, value)) in params.iter().enumerate() {
                if i > 0 {
                    w.write_str(" ")?;
                }
                write!(w, "{key}=")?;
                write_param(w, value, eqn_indent, full)?;
            }
            w.write_str("]")?;
        }
        for a in &e.inputs {
            w.write_str(" ")?;
            names.write_atom(w, a)?;
        }
        w.write_str("\n")?;
    }
    write!(w, "{:1$}in (", "", indent + 2)?;
    for (i, a) in p.outputs.iter().enumerate() {
        if i > 0 {
            w.write_str(", ")?;
        }
        names.write_atom(w, a)?;
    }
    w.write_str(") }")
}

impl fmt::Display for Program {
    /// The jaxpr-like text form; see the [module documentation](crate::print).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_program(f, self, 0, f.alternate())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: usize) -> String {
        let mut namer = Namer::default();
        (0..n).for_each(|_| {
            namer.fresh();
        });
        namer.fresh()
    }

    #[test]
    fn names_follow_jax() {
        assert_eq!(name(0), "a");
        assert_eq!(name(25), "z");
        assert_eq!(name(26), "ba");
        assert_eq!(name(27), "bb");
        assert_eq!(raw_name(26 * 26), "baa");
    }

    #[test]
    fn reserved_words_are_skipped() {
        let in_index = 8 * 26 + 13;
        assert_eq!(raw_name(in_index), "in");
        assert_eq!(name(in_index - 1), "im");
        assert_eq!(name(in_index), "io");
        let mut namer = Namer::default();
        let all: Vec<String> = (0..30_000).map(|_| namer.fresh()).collect();
        assert!(all.iter().all(|n| !RESERVED.contains(&n.as_str())));
        let mut sorted = all.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), all.len());
    }

    #[test]
    fn nan_payloads_are_written_out() {
        let text = |s: Scalar| {
            let mut out = String::new();
            write_literal(&mut out, s).map(|_| out).unwrap_or_default()
        };
        assert_eq!(text(Scalar::F32(f32::NAN)), "NaN:f32");
        assert_eq!(text(Scalar::F32(-f32::NAN)), "-NaN:f32");
        assert_eq!(text(Scalar::F32(f32::from_bits(0x7fc0_0001))), "NaN(0x7fc00001):f32");
        assert_eq!(text(Scalar::F64(-f64::NAN)), "-NaN:f64");
        assert_eq!(text(Scalar::F64(f64::from_bits(0x7ff0_0000_0000_0001))), "NaN(0x7ff0000000000001):f64");
        assert_eq!(text(Scalar::F64(-0.0)), "-0.0:f64");
        assert_eq!(text(Scalar::F32(f32::NEG_INFINITY)), "-inf:f32");
    }
}
