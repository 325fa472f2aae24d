//! Reads the text form of a program (what `Display` for [`Program`] writes)
//! back into a program, checking it as it goes.
//!
//! Whitespace only separates tokens, so line breaks and indentation are free.
//! The parser rejects what [`typecheck()`] would and reports where: unknown
//! primitives and parameters, undefined or redefined variables, an equation
//! whose declared types disagree with its primitive's shape rule, and constant
//! data whose length disagrees with its shape.
//!
//! ```
//! use arrayjit_ir::parse;
//! let text = "{ lambda ; a:f32[3] . let
//!     b:f32[3] = exp a
//!     c:f32[] = reduce_sum[axes=(0)] b
//!   in (c) }";
//! let p = parse(text).unwrap();
//! assert_eq!(p.to_string(), text);
//!
//! let e = parse("{ lambda ; a:f32[3] . let b:f32[4] = exp a in (b) }").unwrap_err();
//! assert_eq!(e.to_string(), "line 1, column 27: the equation declares f32[4] but `exp` gives f32[3]");
//! ```

mod lex;

use crate::error::list_avals;
use crate::prim::{Param, Params, Prim};
use crate::print::RESERVED;
use crate::{typecheck, AVal, Atom, DType, Data, HostArray, Loc, Program, ProgramBuilder, Scalar, Var};
use lex::{Tok, Token};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Why a text is not a program, and where (1-based line and column, counted in
/// characters). Displays as `line 3, column 9: expected `=`, found `add``.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl ParseError {
    pub(crate) fn new(line: usize, column: usize, message: impl Into<String>) -> ParseError {
        ParseError { line, column, message: message.into() }
    }
}

/// Reads a program written by `Display` for [`Program`]. Variables are
/// numbered canonically (constants, inputs, then equation outputs), so
/// `parse(&format!("{p:#}")) == Ok(p)` for every well-typed program `p`.
pub fn parse(text: &str) -> Result<Program, ParseError> {
    let mut parser = Parser { tokens: lex::lex(text)?, pos: 0 };
    let program = parser.program(0)?;
    if parser.peek().tok != Tok::End {
        return Err(parser.expected("the end of the text after the program"));
    }
    // Every equation was checked while reading it; this also covers what the
    // per-equation checks cannot see, and keeps parse and typecheck in step.
    typecheck(&program).map_err(|e| ParseError::new(1, 1, format!("the program does not typecheck: {e}")))?;
    Ok(program)
}

/// Sub-programs nest at most this deep, so that hostile input cannot overflow
/// the stack of the recursive parser.
const MAX_DEPTH: usize = 64;

/// Where a token starts.
#[derive(Clone, Copy, Debug)]
struct Pos {
    line: usize,
    column: usize,
}

impl Pos {
    fn error(self, message: impl Into<String>) -> ParseError {
        ParseError::new(self.line, self.column, message)
    }
}

/// A number or special value as written, before its dtype is known.
enum Value {
    /// Decimal or hexadecimal digits, with the sign.
    Number {
        negative: bool,
        text: String,
    },
    Inf {
        negative: bool,
    },
    /// `NaN`, `-NaN` or `NaN(0x...)` with the raw bits.
    NaN {
        negative: bool,
        bits: Option<String>,
    },
    Bool(bool),
}

/// The variables of one program (each sub-program has its own).
#[derive(Default)]
struct Scope {
    vars: HashMap<String, Var>,
}

impl Scope {
    fn check_new(&self, name: &str, at: Pos) -> Result<(), ParseError> {
        if self.vars.contains_key(name) {
            return Err(at.error(format!("variable `{name}` is already defined")));
        }
        Ok(())
    }

    fn define(&mut self, name: String, at: Pos, v: Var) -> Result<(), ParseError> {
        self.check_new(&name, at)?;
        self.vars.insert(name, v);
        Ok(())
    }
}

const PARAM_VALUE: &str = "a parameter value (an integer, a tuple of integers, true, false, a dtype or a program)";

fn is_literal_word(w: &str) -> bool {
    matches!(w, "true" | "false" | "inf" | "NaN")
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> &Token {
        self.peek_at(0)
    }

    fn peek_at(&self, k: usize) -> &Token {
        // The last token is always `End`, and reading never moves past it.
        let i = (self.pos + k).min(self.tokens.len() - 1);
        &self.tokens[i]
    }

    fn here(&self) -> Pos {
        let t = self.peek();
        Pos { line: t.line, column: t.column }
    }

    fn advance(&mut self) -> Tok {
        let tok = self.peek().tok.clone();
        if tok != Tok::End {
            self.pos += 1;
        }
        tok
    }

    fn expected(&self, what: &str) -> ParseError {
        self.here().error(format!("expected {what}, found {}", self.peek().tok))
    }

    fn at_punct(&self, c: char) -> bool {
        self.peek().tok == Tok::Punct(c)
    }

    fn at_word(&self, w: &str) -> bool {
        matches!(&self.peek().tok, Tok::Word(x) if x == w)
    }

    fn eat_punct(&mut self, c: char) -> bool {
        let found = self.at_punct(c);
        if found {
            self.advance();
        }
        found
    }

    fn expect_punct(&mut self, c: char) -> Result<(), ParseError> {
        if !self.eat_punct(c) {
            return Err(self.expected(&format!("`{c}`")));
        }
        Ok(())
    }

    fn expect_word(&mut self, w: &str) -> Result<(), ParseError> {
        if !self.at_word(w) {
            return Err(self.expected(&format!("`{w}`")));
        }
        self.advance();
        Ok(())
    }

    /// A word; `what` says what was expected if the next token is not one.
    fn word(&mut self, what: &str) -> Result<String, ParseError> {
        match self.peek().tok.clone() {
            Tok::Word(w) => {
                self.advance();
                Ok(w)
            }
            _ => Err(self.expected(what)),
        }
    }

    /// The name in a binder, which must not be a reserved word.
    fn binder_name(&mut self, what: &str) -> Result<(String, Pos), ParseError> {
        let at = self.here();
        let name = self.word(what)?;
        if RESERVED.contains(&name.as_str()) {
            return Err(at.error(format!("`{name}` is a reserved word, not a variable name")));
        }
        Ok((name, at))
    }

    /// `f32[2,3]`.
    fn aval(&mut self) -> Result<AVal, ParseError> {
        let at = self.here();
        let name = self.word("a dtype")?;
        let dtype = DType::from_name(&name)
            .ok_or_else(|| at.error(format!("unknown dtype `{name}` (expected bool, i32, f32 or f64)")))?;
        self.expect_punct('[')?;
        let mut dims = Vec::new();
        if !self.eat_punct(']') {
            loop {
                dims.push(self.size()?);
                if self.eat_punct(']') {
                    break;
                }
                if !self.eat_punct(',') {
                    return Err(self.expected("`,` or `]`"));
                }
            }
        }
        let aval = AVal::new(dtype, dims);
        if aval.bytes().is_none() {
            return Err(at.error(format!("the type {aval} holds more bytes than fit in memory")));
        }
        Ok(aval)
    }

    /// A dimension size: a non-negative integer.
    fn size(&mut self) -> Result<usize, ParseError> {
        let at = self.here();
        match self.peek().tok.clone() {
            Tok::Number(text) => {
                self.advance();
                text.parse().map_err(|_| at.error(format!("`{text}` is not a dimension size")))
            }
            _ => Err(self.expected("a dimension size")),
        }
    }

    /// A possibly negative integer (a parameter).
    fn int(&mut self) -> Result<i64, ParseError> {
        let at = self.here();
        let negative = self.eat_punct('-');
        match self.peek().tok.clone() {
            Tok::Number(text) => {
                self.advance();
                let signed = if negative { format!("-{text}") } else { text };
                signed.parse().map_err(|_| at.error(format!("`{signed}` is not an integer that fits in 64 bits")))
            }
            _ => Err(self.expected("an integer")),
        }
    }

    /// A value as written in a literal or a constant: `-2.5`, `inf`, `NaN(0x7fc00001)`, `true`.
    fn value(&mut self) -> Result<Value, ParseError> {
        let negative = self.eat_punct('-');
        let value = match self.peek().tok.clone() {
            Tok::Number(text) => Value::Number { negative, text },
            Tok::Word(w) if w == "inf" => Value::Inf { negative },
            Tok::Word(w) if w == "NaN" => {
                self.advance();
                let mut bits = None;
                if self.eat_punct('(') {
                    match self.peek().tok.clone() {
                        Tok::Number(text) if text.starts_with("0x") => bits = Some(text),
                        _ => return Err(self.expected("the bits of a NaN in hexadecimal (`0x7fc00001`)")),
                    }
                    self.advance();
                    self.expect_punct(')')?;
                }
                return Ok(Value::NaN { negative, bits });
            }
            Tok::Word(w) if !negative && (w == "true" || w == "false") => Value::Bool(w == "true"),
            _ => return Err(self.expected("a number, inf, NaN, true or false")),
        };
        self.advance();
        Ok(value)
    }

    /// A literal operand: a value, `:` and its dtype.
    fn literal(&mut self) -> Result<Scalar, ParseError> {
        let at = self.here();
        let value = self.value()?;
        self.expect_punct(':')?;
        let dtype_at = self.here();
        let name = self.word("a dtype")?;
        let dtype = DType::from_name(&name)
            .ok_or_else(|| dtype_at.error(format!("unknown dtype `{name}` (expected bool, i32, f32 or f64)")))?;
        scalar(value, dtype, at)
    }

    /// A constant's elements, `{1.0, 2.0}`.
    fn elements(&mut self, dtype: DType) -> Result<Data, ParseError> {
        self.expect_punct('{')?;
        let mut xs = Vec::new();
        if !self.eat_punct('}') {
            loop {
                let at = self.here();
                let value = self.value()?;
                xs.push(scalar(value, dtype, at)?);
                if self.eat_punct('}') {
                    break;
                }
                if !self.eat_punct(',') {
                    return Err(self.expected("`,` or `}`"));
                }
            }
        }
        // Every element already has `dtype`; taking the payloads directly keeps
        // NaN bits exactly as written.
        Ok(match dtype {
            DType::Bool => Data::Bool(xs.iter().map(|s| matches!(s, Scalar::Bool(true))).collect()),
            DType::I32 => Data::I32(xs.iter().map(|s| if let Scalar::I32(v) = s { *v } else { 0 }).collect()),
            DType::F32 => Data::F32(xs.iter().map(|s| if let Scalar::F32(v) = s { *v } else { 0.0 }).collect()),
            DType::F64 => Data::F64(xs.iter().map(|s| if let Scalar::F64(v) = s { *v } else { 0.0 }).collect()),
        })
    }

    /// `{ lambda consts ; inputs . let eqns in (outputs) }`.
    fn program(&mut self, depth: usize) -> Result<Program, ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.here().error(format!("programs are nested more than {MAX_DEPTH} deep")));
        }
        self.expect_punct('{')?;
        self.expect_word("lambda")?;
        let mut b = ProgramBuilder::new();
        let mut scope = Scope::default();
        while !self.at_punct(';') {
            let (name, at) = self.binder_name("a constant (`a:f32[2]{1.0, 2.0}`) or `;`")?;
            scope.check_new(&name, at)?;
            self.expect_punct(':')?;
            let aval = self.aval()?;
            let data_at = self.here();
            let data = self.elements(aval.dtype)?;
            let value =
                HostArray::new(aval.shape, data).map_err(|e| data_at.error(format!("constant `{name}`: {e}")))?;
            let v = b.add_const(Arc::new(value));
            scope.define(name, at, v)?;
        }
        self.expect_punct(';')?;
        while !self.at_punct('.') {
            let (name, at) = self.binder_name("an input (`a:f32[2]`) or `.`")?;
            scope.check_new(&name, at)?;
            self.expect_punct(':')?;
            let v = b.add_input(self.aval()?);
            scope.define(name, at, v)?;
        }
        self.expect_punct('.')?;
        self.expect_word("let")?;
        while !self.at_word("in") {
            self.equation(&mut b, &mut scope, depth)?;
        }
        self.expect_word("in")?;
        self.expect_punct('(')?;
        let mut outputs = Vec::new();
        while !self.eat_punct(')') {
            outputs.push(self.atom(&b, &scope)?.0);
            if !self.eat_punct(',') && !self.at_punct(')') {
                return Err(self.expected("`,` or `)`"));
            }
        }
        self.expect_punct('}')?;
        Ok(b.finish(outputs))
    }

    /// `d:f32[3] e:i32[3] = prim[key=value ...] x 2.0:f32`, checked against the primitive's shape rule.
    fn equation(&mut self, b: &mut ProgramBuilder, scope: &mut Scope, depth: usize) -> Result<(), ParseError> {
        let start = self.here();
        let mut binders: Vec<(String, Pos)> = Vec::new();
        let mut declared = Vec::new();
        while !self.at_punct('=') {
            if self.peek_at(1).tok != Tok::Punct(':') {
                let what = if binders.is_empty() { "an equation (`b:f32[2] = neg a`) or `in`" } else { "`=`" };
                return Err(self.expected(what));
            }
            let (name, at) = self.binder_name("an equation (`b:f32[2] = neg a`) or `in`")?;
            scope.check_new(&name, at)?;
            if binders.iter().any(|(n, _)| *n == name) {
                return Err(at.error(format!("variable `{name}` is defined twice in one equation")));
            }
            self.expect_punct(':')?;
            declared.push(self.aval()?);
            binders.push((name, at));
        }
        self.expect_punct('=')?;
        let prim_at = self.here();
        let name = self.word("a primitive name")?;
        let mut params = BTreeMap::new();
        if self.eat_punct('[') {
            while !self.eat_punct(']') {
                let key_at = self.here();
                let key = self.word("a parameter name or `]`")?;
                self.expect_punct('=')?;
                let value = self.param(depth)?;
                if params.insert(key.clone(), value).is_some() {
                    return Err(key_at.error(format!("parameter `{key}` is given twice")));
                }
            }
        }
        let prim = Prim::from_parts(&name, Params::new(params)).map_err(|m| prim_at.error(m))?;
        let mut inputs = Vec::new();
        let mut in_avals = Vec::new();
        loop {
            // Operands run up to the next equation (`name:`, or `=` when it has
            // no outputs) or to `in`.
            let starts_binder = self.peek_at(1).tok == Tok::Punct(':');
            match &self.peek().tok {
                Tok::Word(w) if w == "in" => break,
                Tok::Word(w) if starts_binder && !is_literal_word(w) => break,
                Tok::Word(_) | Tok::Number(_) | Tok::Punct('-') => {
                    let (atom, aval) = self.atom(b, scope)?;
                    inputs.push(atom);
                    in_avals.push(aval);
                }
                _ => break,
            }
        }
        let outs = prim.abstract_eval(&in_avals).map_err(|e| prim_at.error(e.to_string()))?;
        if outs != declared {
            return Err(start.error(format!(
                "the equation declares {} but `{name}` gives {}",
                describe(&declared),
                describe(&outs)
            )));
        }
        let vars = b.add_eqn(prim, inputs, declared, Loc::default());
        for ((name, at), v) in binders.into_iter().zip(vars) {
            scope.define(name, at, v)?;
        }
        Ok(())
    }

    /// An operand: a defined variable or a literal.
    fn atom(&mut self, b: &ProgramBuilder, scope: &Scope) -> Result<(Atom, AVal), ParseError> {
        let at = self.here();
        match self.peek().tok.clone() {
            Tok::Word(w) if !is_literal_word(&w) => {
                self.advance();
                let v = scope.vars.get(&w).ok_or_else(|| at.error(format!("undefined variable `{w}`")))?;
                Ok((Atom::Var(*v), b.aval(*v).clone()))
            }
            Tok::Word(_) | Tok::Number(_) | Tok::Punct('-') => {
                let s = self.literal()?;
                Ok((Atom::Lit(s), AVal::scalar(s.dtype())))
            }
            _ => Err(self.expected("a variable or a literal")),
        }
    }

    /// A parameter value: `3`, `(1,2)`, `true`, `f32`, a program or a `[ ]` list of programs.
    fn param(&mut self, depth: usize) -> Result<Param, ParseError> {
        match self.peek().tok.clone() {
            Tok::Punct('{') => Ok(Param::Program(Arc::new(self.program(depth + 1)?))),
            Tok::Punct('[') => {
                self.advance();
                let mut ps = Vec::new();
                while !self.eat_punct(']') {
                    ps.push(Arc::new(self.program(depth + 1)?));
                }
                Ok(Param::Programs(ps))
            }
            Tok::Punct('(') => {
                self.advance();
                let mut xs = Vec::new();
                while !self.eat_punct(')') {
                    xs.push(self.int()?);
                    if !self.eat_punct(',') && !self.at_punct(')') {
                        return Err(self.expected("`,` or `)`"));
                    }
                }
                Ok(Param::Ints(xs))
            }
            Tok::Punct('-') | Tok::Number(_) => Ok(Param::Int(self.int()?)),
            Tok::Word(w) => {
                let value = match (w.as_str(), DType::from_name(&w)) {
                    ("true", _) => Param::Bool(true),
                    ("false", _) => Param::Bool(false),
                    (_, Some(d)) => Param::DType(d),
                    _ => return Err(self.expected(PARAM_VALUE)),
                };
                self.advance();
                Ok(value)
            }
            _ => Err(self.expected(PARAM_VALUE)),
        }
    }
}

/// Output types for messages: `f32[3]`, `f32[2] and i32[2]`, `no outputs`.
fn describe(avals: &[AVal]) -> String {
    if avals.is_empty() {
        "no outputs".to_string()
    } else {
        list_avals(avals)
    }
}

/// A value read as a scalar of the given dtype; `at` is where it was written.
fn scalar(value: Value, dtype: DType, at: Pos) -> Result<Scalar, ParseError> {
    let mismatch = |what: &str| at.error(format!("{what} is not a valid {dtype} value"));
    match (value, dtype) {
        (Value::Bool(v), DType::Bool) => Ok(Scalar::Bool(v)),
        (Value::Number { negative, text }, DType::I32) => {
            let signed = if negative { format!("-{text}") } else { text };
            signed.parse().map(Scalar::I32).map_err(|_| mismatch(&format!("`{signed}`")))
        }
        (Value::Number { negative, text }, DType::F32 | DType::F64) if !text.starts_with("0x") => {
            let signed = if negative { format!("-{text}") } else { text };
            let parsed = match dtype {
                DType::F32 => signed.parse().map(Scalar::F32).ok(),
                _ => signed.parse().map(Scalar::F64).ok(),
            };
            parsed.ok_or_else(|| mismatch(&format!("`{signed}`")))
        }
        (Value::Inf { negative }, DType::F32) => {
            Ok(Scalar::F32(if negative { f32::NEG_INFINITY } else { f32::INFINITY }))
        }
        (Value::Inf { negative }, DType::F64) => {
            Ok(Scalar::F64(if negative { f64::NEG_INFINITY } else { f64::INFINITY }))
        }
        (Value::NaN { negative, bits }, DType::F32 | DType::F64) => {
            let sign = if negative { "-" } else { "" };
            let raw = match &bits {
                None => None,
                Some(hex) => {
                    Some(u64::from_str_radix(&hex[2..], 16).map_err(|_| mismatch(&format!("the NaN bits `{hex}`")))?)
                }
            };
            let s = match (dtype, raw) {
                (DType::F32, None) => Scalar::F32(if negative { -f32::NAN } else { f32::NAN }),
                (_, None) => Scalar::F64(if negative { -f64::NAN } else { f64::NAN }),
                (DType::F32, Some(r)) => {
                    let v =
                        u32::try_from(r).map(f32::from_bits).map_err(|_| mismatch("a NaN with more than 32 bits"))?;
                    Scalar::F32(if negative { -v } else { v })
                }
                (_, Some(r)) => Scalar::F64(if negative { -f64::from_bits(r) } else { f64::from_bits(r) }),
            };
            if s.as_f64().is_nan() {
                Ok(s)
            } else {
                Err(mismatch(&format!("`{sign}NaN({})`, whose bits are not a NaN,", bits.unwrap_or_default())))
            }
        }
        (Value::Bool(v), _) => Err(mismatch(&format!("`{v}`"))),
        (Value::Number { negative, text }, _) => Err(mismatch(&format!("`{}{text}`", if negative { "-" } else { "" }))),
        (Value::Inf { negative }, _) => Err(mismatch(if negative { "`-inf`" } else { "`inf`" })),
        (Value::NaN { .. }, _) => Err(mismatch("`NaN`")),
    }
}
