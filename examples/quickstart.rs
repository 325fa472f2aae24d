//! Trace a function into a program, print it, evaluate it, differentiate it, and
//! compile the gradient with `jit`.
//!
//! Run with `cargo run --release --example quickstart`.

use arrayjit::{grad, jit, make_jaxpr, value_and_grad, Array, DType};

/// A small regression loss: mean squared error of a tanh layer.
fn loss((w, x, y): (Array, Array, Array)) -> Array {
    let pred = x.matmul(&w).tanh();
    (pred - y).square().mean(..)
}

fn main() -> Result<(), arrayjit::Error> {
    let x = Array::from_vec((0..12).map(|i| i as f32 / 6.0 - 1.0).collect(), [4, 3]);
    let w = Array::from_vec(vec![0.5f32, -0.25, 0.1, 0.3, -0.2, 0.05], [3, 2]);
    let y = Array::from_vec(vec![0.1f32, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8], [4, 2]);
    let args = (w.clone(), x.clone(), y.clone());

    // Eager: each operation runs as it is called.
    println!("eager loss: {}", loss(args.clone()));

    // Traced: the same function as a typed program (the jaxpr analogue).
    let program = make_jaxpr(loss, &args)?;
    println!("\nthe traced program:\n{program}");
    let out = arrayjit::interp::eval_program(&program, &[w.to_host(), x.to_host(), y.to_host()])
        .map_err(|e| arrayjit::Error::Eval { message: e.to_string(), loc: Default::default() })?;
    println!("the program evaluated: {}", out[0]);

    // Differentiated: the gradient is a program too.
    let (value, (dw, _, _)) = value_and_grad(loss)(args.clone())?;
    println!("\nloss {value}, d loss / d w = {dw}");
    println!("\nthe gradient program:\n{}", make_jaxpr(grad(loss), &args)?);

    // Compiled: traced once per signature, optimised, fused into loop kernels and
    // compiled to native code; the stages can be inspected and are timed.
    let step = jit(value_and_grad(loss));
    let lowered = step.lower(&args)?;
    println!("\nthe optimised gradient program, fused:\n{}", lowered.as_text());
    let compiled = lowered.compile()?;
    println!("compiled in {}", compiled.timings());
    let (value, (dw, _, _)) = compiled.call(args.clone())?;
    println!("compiled: loss {value}, d loss / d w = {dw}");
    let (again, _) = step.call(args)?;
    println!("through the cache: loss {again} ({} signature compiled)", step.cache_size());

    // Errors name the operation, the operands and your source line.
    let bad = make_jaxpr(|x: Array| x.matmul(&Array::ones([4], DType::F32)), &x).unwrap_err();
    println!("\nan error, as reported: {bad}");
    Ok(())
}
