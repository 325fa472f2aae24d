//! Fits the Poisson log-normal model to the oaks data at every JIT level and
//! prints a table (or JSON lines) of compile time, run time and final loss.
//!
//! ```sh
//! cargo run --release --example pln                       # levels 0-4, repeat 100, 1000 iterations, f32
//! cargo run --release --example pln -- --level 2 --repeat 1 --iters 200 --dtype f64 --json
//! ```

mod plot;

use arrayjit::cuda::CudaRuntime;
use arrayjit::DType;
use arrayjit_pln::{fit_on, simulate, Cpu, Dataset, Fit};
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

const USAGE: &str = "usage: pln [--level N]... [--repeat K] [--iters N] [--dtype f32|f64] [--device cpu|cuda]
           [--elbo-csv PATH] [--plot PATH] [--seed S] [--simulate n,p] [--data DIR] [--json]

  --level N       run level N (0 eager, 1 jit per function, 2 scan, 3 scan with a derived
                  state struct, 4 scan with a model struct); repeat the flag for several;
                  default: all five
  --repeat K      stack the oaks rows K times (default 100: n = 11600)
  --iters N       iterations (default 1000)
  --dtype D       f32 (default) or f64
  --device D      cpu (default) or cuda (GPU 0: level 0 runs each operation there,
                  the other levels compile for it)
  --elbo-csv P    write `level,iteration,loss` lines to P
  --plot P        draw the loss curves of the levels run into the PNG file P
  --seed S        seed of --simulate (default 0)
  --simulate n,p  fit data drawn from the model (B = 1, Σ = 0.5^|i-j|) instead of oaks
  --data DIR      read counts.csv and offsets.csv from DIR (default: the shipped oaks data)
  --json          one JSON object per level on stdout instead of the table";

struct Opts {
    levels: Vec<u8>,
    cuda: bool,
    repeat: usize,
    iters: usize,
    dtype: DType,
    elbo_csv: Option<String>,
    plot: Option<String>,
    seed: u64,
    simulate: Option<(usize, usize)>,
    data: Option<String>,
    json: bool,
}

fn parse() -> Result<Opts, String> {
    let mut o = Opts {
        levels: Vec::new(),
        cuda: false,
        repeat: 100,
        iters: 1000,
        dtype: DType::F32,
        elbo_csv: None,
        plot: None,
        seed: 0,
        simulate: None,
        data: None,
        json: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        let num = |name: &str, v: String| v.parse::<usize>().map_err(|_| format!("{name}: `{v}` is not a count"));
        match a.as_str() {
            "--level" => {
                let v = value("--level")?;
                match v.parse::<u8>() {
                    Ok(l) if l <= 4 => o.levels.push(l),
                    _ => return Err(format!("--level: `{v}` is not a level (0 to 4)")),
                }
            }
            "--repeat" => o.repeat = num("--repeat", value("--repeat")?)?,
            "--iters" => o.iters = num("--iters", value("--iters")?)?,
            "--dtype" => {
                o.dtype = match value("--dtype")?.as_str() {
                    "f32" => DType::F32,
                    "f64" => DType::F64,
                    other => return Err(format!("--dtype: `{other}` is not f32 or f64")),
                }
            }
            "--device" => match value("--device")?.as_str() {
                "cpu" => o.cuda = false,
                "cuda" => o.cuda = true,
                other => return Err(format!("--device: `{other}` is not cpu or cuda")),
            },
            "--elbo-csv" => o.elbo_csv = Some(value("--elbo-csv")?),
            "--plot" => o.plot = Some(value("--plot")?),
            "--seed" => o.seed = value("--seed")?.parse().map_err(|_| "--seed: not a number".to_string())?,
            "--simulate" => {
                let v = value("--simulate")?;
                let parts: Vec<&str> = v.split(',').collect();
                match parts[..] {
                    [n, p] => o.simulate = Some((num("--simulate", n.into())?, num("--simulate", p.into())?)),
                    _ => return Err(format!("--simulate: `{v}` is not n,p")),
                }
            }
            "--data" => o.data = Some(value("--data")?),
            "--json" => o.json = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if o.levels.is_empty() {
        o.levels = vec![0, 1, 2, 3, 4];
    }
    Ok(o)
}

/// A one-line progress bar on stderr, for loops run from Rust.
struct Progress {
    start: Instant,
    total: usize,
    shown: bool,
}

impl Progress {
    fn tick(&mut self, done: usize) {
        let elapsed = self.start.elapsed().as_secs_f64();
        if elapsed < 1.0 || (!done.is_multiple_of(10) && done != self.total) {
            return;
        }
        self.shown = true;
        let width = 30;
        let filled = done * width / self.total.max(1);
        eprint!("\r  [{}{}] {done}/{} {:.1}s", "#".repeat(filled), " ".repeat(width - filled), self.total, elapsed);
        let _ = std::io::stderr().flush();
    }
    fn finish(&self) {
        if self.shown {
            eprintln!();
        }
    }
}

fn main() -> ExitCode {
    let o = match parse() {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("pln: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let data = match (o.simulate, &o.data) {
        (Some((n, p)), _) => {
            let sigma: Vec<f64> = (0..p * p).map(|k| 0.5f64.powi((k / p).abs_diff(k % p) as i32)).collect();
            simulate(n, &vec![1.0; p], &sigma, o.seed, o.dtype)
        }
        (None, Some(dir)) => Dataset::load(std::path::Path::new(dir), o.repeat, o.dtype),
        (None, None) => Dataset::oaks(o.repeat, o.dtype),
    };
    let data = match data {
        Ok(d) => d,
        Err(e) => {
            eprintln!("pln: {e}");
            return ExitCode::FAILURE;
        }
    };
    let dtype = if o.dtype == DType::F32 { "f32" } else { "f64" };
    let gpu = if o.cuda {
        match CudaRuntime::new(0) {
            Ok(rt) => Some(Arc::new(rt)),
            Err(e) => {
                eprintln!("pln: --device cuda: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    let device = if gpu.is_some() { "cuda" } else { "cpu" };
    if !o.json {
        let on = match &gpu {
            Some(rt) => format!("cuda ({}, {})", rt.device().name, rt.device().arch()),
            None => format!("cpu ({} threads)", arrayjit::cpu::parallel::threads()),
        };
        println!("PLN fit: n = {}, p = {}, {} iterations, {dtype}, {on}", data.n, data.p, o.iters);
        println!(
            "{:>5} {:>12} {:>10} {:>10} {:>16} {:>9}",
            "level", "compile ms", "run ms", "ms/iter", "final loss", "speed-up"
        );
    }
    let mut fits: Vec<Fit> = Vec::new();
    for &level in &o.levels {
        let mut bar = Progress { start: Instant::now(), total: o.iters, shown: false };
        let result = match &gpu {
            Some(rt) => fit_on(rt, level, &data, o.iters, &mut |d| bar.tick(d)),
            None => fit_on(&Cpu, level, &data, o.iters, &mut |d| bar.tick(d)),
        };
        let f = match result {
            Ok(f) => f,
            Err(e) => {
                bar.finish();
                eprintln!("pln: level {level} failed: {e}");
                return ExitCode::FAILURE;
            }
        };
        bar.finish();
        if arrayjit::cuda::profile::enabled() {
            eprintln!(
                "level {level}, time by device step (ARRAYJIT_CUDA_PROFILE=1):\n{}",
                arrayjit::cuda::profile::report()
            );
            arrayjit::cuda::profile::reset();
        }
        if arrayjit::cpu::profile::enabled() {
            eprintln!("level {level}, time by CPU step (ARRAYJIT_PROFILE=1):\n{}", arrayjit::cpu::profile::report());
            arrayjit::cpu::profile::reset();
        }
        let last = f.losses.last().copied().unwrap_or(f64::NAN);
        let base = fits.iter().find(|g| g.level == 0).map(|g| g.ms_per_iter());
        if o.json {
            println!(
                "{{\"level\": {level}, \"n\": {}, \"p\": {}, \"iters\": {}, \"dtype\": \"{dtype}\", \"device\": \"{device}\", \
                 \"compile_ms\": {:.3}, \"run_ms\": {:.3}, \"ms_per_iter\": {:.4}, \"final_loss\": {last}}}",
                data.n,
                data.p,
                o.iters,
                f.compile.as_secs_f64() * 1e3,
                f.run.as_secs_f64() * 1e3,
                f.ms_per_iter()
            );
        } else {
            let speedup = base.map(|b| format!("{:.1}×", b / f.ms_per_iter())).unwrap_or_else(|| "-".into());
            println!(
                "{level:>5} {:>12.1} {:>10.1} {:>10.3} {:>16.4} {:>9}",
                f.compile.as_secs_f64() * 1e3,
                f.run.as_secs_f64() * 1e3,
                f.ms_per_iter(),
                last,
                speedup
            );
        }
        fits.push(f);
    }
    if let Some(path) = &o.elbo_csv {
        let mut text = String::from("level,iteration,loss\n");
        for f in &fits {
            for (i, l) in f.losses.iter().enumerate() {
                text.push_str(&format!("{},{i},{l}\n", f.level));
            }
        }
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("pln: cannot write {path}: {e}");
            return ExitCode::FAILURE;
        }
    }
    if let Some(path) = &o.plot {
        let curves: Vec<(u8, Vec<f64>)> = fits.iter().map(|f| (f.level, f.losses.clone())).collect();
        if let Err(e) = plot::write_png(path, &curves) {
            eprintln!("pln: cannot write {path}: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
