//! The thread-local trace stack. While a function is being traced, every array
//! operation is recorded in the innermost frame (JAX's omnistaging): concrete
//! arrays it touches become program constants (rank-0 ones literals), and
//! tracers of enclosing frames are lifted into the frame as extra inputs.

use crate::array::{Array, Origin, Repr, Tracer};
use crate::error::{Error, Result};
use arrayjit_ir::{AVal, Atom, HostArray, Loc, Prim, Program, ProgramBuilder, Var};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

static NEXT_FRAME: AtomicU64 = AtomicU64::new(1);

/// One function being traced.
struct Frame {
    id: u64,
    builder: ProgramBuilder,
    /// Constants already added, by the address of their shared buffer.
    consts: HashMap<usize, Var>,
    /// Tracers of enclosing frames used here, in the order they became inputs.
    captured: Vec<Array>,
    captured_vars: HashMap<(u64, Var), Var>,
    /// Device arrays whose address keys a constant, held until the trace
    /// ends so that no other buffer can take the address meanwhile.
    kept: Vec<Array>,
}

thread_local! {
    static STACK: RefCell<Vec<Frame>> = const { RefCell::new(Vec::new()) };
}

/// True while some function is being traced on this thread.
pub fn is_tracing() -> bool {
    STACK.with(|s| !s.borrow().is_empty())
}

/// Pops its frame when dropped, so an aborted trace leaves the stack as it was.
pub(crate) struct FrameGuard {
    id: u64,
    done: bool,
}

impl Drop for FrameGuard {
    fn drop(&mut self) {
        if !self.done {
            STACK.with(|s| {
                let mut s = s.borrow_mut();
                if s.last().is_some_and(|f| f.id == self.id) {
                    s.pop();
                }
            });
        }
    }
}

/// Starts a frame whose inputs have the given avals; returns the input tracers.
pub(crate) fn push_frame(in_avals: &[AVal], in_paths: &[String]) -> (FrameGuard, Vec<Array>) {
    let id = NEXT_FRAME.fetch_add(1, Ordering::Relaxed);
    let mut builder = ProgramBuilder::new();
    let inputs = in_avals
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let v = builder.add_input(a.clone());
            let path = in_paths.get(i).cloned().unwrap_or_else(|| format!("#{i}"));
            Array::from_tracer(Tracer { frame: id, var: v, aval: a.clone(), origin: Origin::Input(path) })
        })
        .collect();
    STACK.with(|s| {
        s.borrow_mut().push(Frame {
            id,
            builder,
            consts: HashMap::new(),
            captured: Vec::new(),
            captured_vars: HashMap::new(),
            kept: Vec::new(),
        })
    });
    (FrameGuard { id, done: false }, inputs)
}

impl FrameGuard {
    /// Ends the frame with these outputs; returns the program and the tracers of
    /// enclosing frames it captured (the program's inputs after the declared ones).
    pub(crate) fn finish(mut self, outputs: &[Array], loc: Loc) -> Result<(Program, Vec<Array>)> {
        let atoms = STACK.with(|s| {
            let mut s = s.borrow_mut();
            let level = s.len() - 1;
            outputs.iter().map(|a| to_atom(&mut s, level, a, loc)).collect::<Result<Vec<_>>>()
        })?;
        let frame = STACK.with(|s| s.borrow_mut().pop());
        self.done = true;
        match frame {
            Some(f) if f.id == self.id => Ok((f.builder.finish(atoms), f.captured)),
            _ => Err(Error::Invalid { message: "trace frames were closed out of order".into(), loc }),
        }
    }
}

/// The operand an array is in the frame at `level`, adding constants and
/// lifting outer tracers as needed.
fn to_atom(stack: &mut [Frame], level: usize, a: &Array, loc: Loc) -> Result<Atom> {
    let (outer, rest) = stack.split_at_mut(level);
    let frame = &mut rest[0];
    match &a.repr {
        Repr::Value(h) => constant(frame, Arc::as_ptr(h) as usize, || Ok(h.clone())),
        // The copy, keyed by its address like any host array (the program holds it).
        Repr::Transposed(t) => {
            let h = t.value(loc)?;
            constant(frame, Arc::as_ptr(h) as usize, || Ok(h.clone()))
        }
        // Copied back once per trace (per buffer), as a constant.
        Repr::Device(b) => {
            let key = Arc::as_ptr(b) as *const () as usize;
            if !frame.consts.contains_key(&key) {
                frame.kept.push(a.clone());
            }
            constant(frame, key, || {
                b.to_host().map(Arc::new).map_err(|m| Error::Invalid {
                    message: format!(
                        "copying a {} closed over by a traced function back from {}: {m}",
                        b.aval(),
                        b.device().name()
                    ),
                    loc,
                })
            })
        }
        Repr::Tracer(t) => {
            if t.frame == frame.id {
                return Ok(Atom::Var(t.var));
            }
            if !outer.iter().any(|f| f.id == t.frame) {
                return Err(Error::LeakedTracer { aval: t.aval.clone(), origin: t.origin.describe(), loc });
            }
            if let Some(v) = frame.captured_vars.get(&(t.frame, t.var)) {
                return Ok(Atom::Var(*v));
            }
            let v = frame.builder.add_input(t.aval.clone());
            frame.captured_vars.insert((t.frame, t.var), v);
            frame.captured.push(a.clone());
            Ok(Atom::Var(v))
        }
    }
}

/// A concrete value in `frame`: a literal when rank 0, otherwise a constant
/// added once per `key` (the address of the shared buffer).
fn constant(frame: &mut Frame, key: usize, value: impl FnOnce() -> Result<Arc<HostArray>>) -> Result<Atom> {
    if let Some(v) = frame.consts.get(&key) {
        return Ok(Atom::Var(*v));
    }
    let h = value()?;
    if h.shape().rank() == 0 {
        return Ok(Atom::Lit(h.data().get(0)));
    }
    let v = frame.builder.add_const(h);
    frame.consts.insert(key, v);
    Ok(Atom::Var(v))
}

/// Records `prim` applied to `inputs` in the innermost frame.
pub(crate) fn record(prim: Prim, inputs: &[&Array], loc: Loc) -> Result<Vec<Array>> {
    STACK.with(|s| {
        let mut s = s.borrow_mut();
        let level = s.len().checked_sub(1).ok_or_else(|| Error::Invalid { message: "no active trace".into(), loc })?;
        let atoms = inputs.iter().map(|a| to_atom(&mut s, level, a, loc)).collect::<Result<Vec<_>>>()?;
        let frame = &mut s[level];
        let avals: Vec<AVal> = atoms
            .iter()
            .map(|a| match a {
                Atom::Var(v) => frame.builder.aval(*v).clone(),
                Atom::Lit(l) => AVal::scalar(l.dtype()),
            })
            .collect();
        let outs = prim.abstract_eval(&avals).map_err(|source| Error::Type { source, loc })?;
        let name = prim.name();
        let vars = frame.builder.add_eqn(prim, atoms, outs.clone(), loc);
        let id = frame.id;
        Ok(vars
            .into_iter()
            .zip(outs)
            .map(|(var, aval)| {
                Array::from_tracer(Tracer { frame: id, var, aval, origin: Origin::Eqn { prim: name, loc } })
            })
            .collect())
    })
}

/// The host value of a concrete array, or the error for a tracer (leaked or live).
pub(crate) fn concrete<'a>(a: &'a Array, loc: Loc, what: &str) -> Result<&'a Arc<HostArray>> {
    match &a.repr {
        Repr::Value(h) => Ok(h),
        Repr::Transposed(t) => t.value(loc),
        Repr::Device(b) => Err(Error::Invalid {
            message: format!(
                "{what} ({}) is in the memory of {}: copy it back with to_host() first",
                b.aval(),
                b.device().name()
            ),
            loc,
        }),
        Repr::Tracer(t) => {
            let live = STACK.with(|s| s.borrow().iter().any(|f| f.id == t.frame));
            if live {
                Err(Error::Concretization {
                    what: format!("{what} {} ({})", t.aval, t.origin.describe()),
                    aval: t.aval.clone(),
                    loc,
                })
            } else {
                Err(Error::LeakedTracer { aval: t.aval.clone(), origin: t.origin.describe(), loc })
            }
        }
    }
}
