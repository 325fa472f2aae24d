//! The step profile (`ARRAYJIT_PROFILE=1`): every step an executable runs is
//! timed under its label, a loop's steps inside it as well. Its own test
//! binary, since the variable is read once per process.

use arrayjit_cpu::{profile, CompileOptions, Executable};
use arrayjit_ir::{parse, Data, HostArray};

#[test]
fn every_step_is_timed_under_its_label() {
    std::env::set_var("ARRAYJIT_PROFILE", "1");
    assert!(profile::enabled());
    let p = parse(
        "{ lambda ; x:f32[8,4] w:f32[4,4] . let
            y:f32[8,4] = dot_general[lhs_contract=(1) rhs_contract=(0) lhs_batch=() rhs_batch=()] x w
            e:f32[8,4] = exp y
            s:f32[] = reduce_sum[axes=(0,1)] e
          in (s) }",
    )
    .unwrap();
    let (q, _) = arrayjit_lower::optimize(&p).unwrap();
    let exe = Executable::compile(&arrayjit_lower::fuse(&q), &CompileOptions::default()).unwrap();
    let x = HostArray::new([8, 4], Data::F32((0..32).map(|i| i as f32 * 0.01).collect())).unwrap();
    let w = HostArray::new([4, 4], Data::F32((0..16).map(|i| i as f32 * 0.02).collect())).unwrap();
    for _ in 0..3 {
        exe.run(&[&x, &w]).unwrap();
    }
    let report = profile::report();
    let rows: Vec<&str> = report.lines().skip(1).collect();
    assert!(!rows.is_empty(), "{report}");
    // Each step ran three times.
    for row in &rows {
        let calls: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(calls[1], "3", "{report}");
    }
    assert!(rows.iter().any(|r| r.contains("kernel over [8, 4] (1 output)") && r.ends_with("-> f32[]")), "{report}");
    assert!(rows.iter().any(|r| r.contains("dot_general") && r.ends_with("-> f32[8,4]")), "{report}");
    profile::reset();
    assert_eq!(profile::report(), "");
}
