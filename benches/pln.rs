//! The PLN fit: every level at the raw oaks size (n = 116, p = 114, 20
//! iterations per sample, f32), and ten compiled steps at the tutorial's size
//! (n = 11600). The full table (1000 iterations, side by side with JAX) comes
//! from `examples/pln.rs`; BENCHMARKS.md records both.
//!
//! `cargo bench --bench pln`

use arrayjit::DType;
use arrayjit_pln::{fit, Dataset};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::hint::black_box;
use std::time::Duration;

fn levels(c: &mut Criterion) {
    let data = Dataset::oaks(1, DType::F32).expect("the oaks data ships with the repository");
    let mut g = c.benchmark_group("pln_n116_20_iterations");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(5));
    for level in 0..=4u8 {
        g.bench_with_input(BenchmarkId::new("level", level), &level, |b, &level| {
            b.iter(|| black_box(fit(level, &data, 20, &mut |_| {}).unwrap().losses))
        });
    }
    g.finish();
}

fn seed_size(c: &mut Criterion) {
    let data = Dataset::oaks(100, DType::F32).expect("the oaks data ships with the repository");
    let mut g = c.benchmark_group("pln_n11600_10_iterations");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(8));
    g.bench_function("level_2", |b| b.iter(|| black_box(fit(2, &data, 10, &mut |_| {}).unwrap().losses)));
    g.finish();
}

criterion_group!(benches, levels, seed_size);
criterion_main!(benches);
