//! Applying a primitive or a whole program to arrays: the single dispatch point
//! between eager execution and tracing.

use crate::array::Array;
use crate::device::{same_device, Device, DeviceBuffer};
use crate::error::{Error, Result};
use crate::{eager, frame, view};
use arrayjit_ir::{AVal, Atom, HostArray, Loc, Prim, Program};
use std::sync::Arc;

/// Applies `prim` to `inputs`: recorded in the innermost trace if one is
/// active, executed at once otherwise. Shape and dtype errors are reported in
/// both cases before anything runs.
pub fn bind(prim: Prim, inputs: &[&Array], loc: Loc) -> Result<Vec<Array>> {
    if frame::is_tracing() {
        return frame::record(prim, inputs, loc);
    }
    let device = device_of(inputs.iter().copied(), loc)?;
    let avals: Vec<AVal> = inputs.iter().map(|a| a.aval()).collect();
    prim.abstract_eval(&avals).map_err(|source| Error::Type { source, loc })?;
    if let Some(device) = device {
        return run_on(&device, inputs.iter().copied(), loc, prim.name(), |refs| device.execute(&prim, refs));
    }
    if let Some(outs) = view::execute(&prim, inputs, loc)? {
        return Ok(outs);
    }
    let values = inputs
        .iter()
        .map(|a| frame::concrete(a, loc, "operand").map(|h| h.as_ref()))
        .collect::<Result<Vec<&HostArray>>>()?;
    let outs = eager::execute(&prim, &values, loc)?;
    Ok(outs.into_iter().map(Array::from_host).collect())
}

/// Applies `prim` and returns its single output.
pub fn bind1(prim: Prim, inputs: &[&Array], loc: Loc) -> Result<Array> {
    let mut outs = bind(prim, inputs, loc)?;
    match outs.len() {
        1 => Ok(outs.remove(0)),
        n => Err(Error::Invalid { message: format!("expected one output, the primitive gave {n}"), loc }),
    }
}

/// Evaluates a closed program on arguments in the current context: inlined
/// equation by equation into the innermost trace, or executed eagerly.
pub fn apply_program(p: &Program, args: &[Array], loc: Loc) -> Result<Vec<Array>> {
    let want = p.in_avals();
    let got: Vec<AVal> = args.iter().map(Array::aval).collect();
    if want != got {
        return Err(Error::Invalid {
            message: format!(
                "the program takes {} but was given {}",
                arrayjit_ir::error::list_avals(&want),
                arrayjit_ir::error::list_avals(&got)
            ),
            loc,
        });
    }
    if !frame::is_tracing() {
        if let Some(device) = device_of(args.iter(), loc)? {
            return run_on(&device, args.iter(), loc, "a program", |refs| device.execute_program(p, refs));
        }
        let values = args
            .iter()
            .map(|a| frame::concrete(a, loc, "argument").map(|h| h.as_ref()))
            .collect::<Result<Vec<&HostArray>>>()?;
        let outs = eager::execute_program(p, &values, loc)?;
        return Ok(outs.into_iter().map(Array::from_host).collect());
    }
    let mut env: Vec<Option<Array>> = vec![None; p.num_vars()];
    for (v, value) in &p.consts {
        env[v.index()] = Some(Array::from_shared(value.clone()));
    }
    for (v, a) in p.inputs.iter().zip(args) {
        env[v.index()] = Some(a.clone());
    }
    let read = |env: &[Option<Array>], a: &Atom| -> Result<Array> {
        match a {
            Atom::Lit(s) => Ok(Array::from_host(HostArray::scalar(*s))),
            Atom::Var(v) => env[v.index()]
                .clone()
                .ok_or_else(|| Error::Invalid { message: format!("variable {v:?} is used before it is defined"), loc }),
        }
    };
    for e in &p.eqns {
        let ins = e.inputs.iter().map(|a| read(&env, a)).collect::<Result<Vec<_>>>()?;
        let refs: Vec<&Array> = ins.iter().collect();
        let eqn_loc = if e.loc.0.is_some() { e.loc } else { loc };
        let outs = bind(e.prim.clone(), &refs, eqn_loc)?;
        for (v, o) in e.outputs.iter().zip(outs) {
            env[v.index()] = Some(o);
        }
    }
    p.outputs.iter().map(|a| read(&env, a)).collect()
}

/// The device the operands are on (`None` when all are in host memory); an
/// error when two are on different devices.
fn device_of<'a>(arrays: impl Iterator<Item = &'a Array>, loc: Loc) -> Result<Option<Arc<dyn Device>>> {
    let mut found: Option<Arc<dyn Device>> = None;
    for a in arrays {
        if let Some(d) = a.device() {
            match &found {
                Some(f) if !same_device(f, &d) => {
                    return Err(Error::Invalid {
                        message: format!(
                            "operands on two devices, {} and {}: copy one with to_device() first",
                            f.name(),
                            d.name()
                        ),
                        loc,
                    })
                }
                Some(_) => {}
                None => found = Some(d),
            }
        }
    }
    Ok(found)
}

/// Runs `what` on `device` over the arrays' buffers there (host operands
/// copied over); the results stay on the device.
fn run_on<'a>(
    device: &Arc<dyn Device>,
    arrays: impl Iterator<Item = &'a Array>,
    loc: Loc,
    what: &str,
    run: impl FnOnce(&[&dyn DeviceBuffer]) -> std::result::Result<Vec<Arc<dyn DeviceBuffer>>, String>,
) -> Result<Vec<Array>> {
    let bufs = arrays
        .map(|a| match a.device_buffer() {
            Some(b) => Ok(b.clone()),
            None => {
                let h = frame::concrete(a, loc, "operand")?;
                device.put(h).map_err(|m| Error::Invalid { message: format!("copying to {}: {m}", device.name()), loc })
            }
        })
        .collect::<Result<Vec<_>>>()?;
    let refs: Vec<&dyn DeviceBuffer> = bufs.iter().map(|b| b.as_ref()).collect();
    let outs = run(&refs).map_err(|m| Error::Invalid { message: format!("{what} on {}: {m}", device.name()), loc })?;
    Ok(outs.into_iter().map(Array::from_device).collect())
}
