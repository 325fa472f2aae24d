#!/usr/bin/env bash
# Side-by-side PLN timings, arrayjit and JAX alternating on the same machine:
# each round runs every level of both once; the medians over the rounds are
# printed. Usage:
#   JAX_PYTHON=/path/to/venv/bin/python benches/compare_pln.sh [ROUNDS] [REPEAT]
# (the virtualenv needs jax, jaxlib, optax and numpy).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
REP=${2:-100}
PY=${JAX_PYTHON:?set JAX_PYTHON to a python with jax, jaxlib, optax and numpy}
export OPENBLAS_NUM_THREADS=1 XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=
cargo build --release --example pln >/dev/null 2>&1
OUT=$(mktemp)
# Iterations per level: enough for a stable per-iteration time at this size.
iters() { case "$1" in 0) echo 100 ;; 1) echo 300 ;; *) echo 500 ;; esac; }
# Each program's output is read only after it exits: a parser starting
# while it runs would take a core from it (see BENCHMARKS.md).
for round in $(seq "$ROUNDS"); do
  for level in 0 1 2 4; do
    n=$(iters "$level")
    a=$(./target/release/examples/pln --json --level "$level" --repeat "$REP" --iters "$n" 2>/dev/null)
    echo "$a" | python3 -c "import json,sys; d=json.loads(sys.stdin.read()); print('arrayjit', $level, d['ms_per_iter'], d['compile_ms'])" >>"$OUT"
    j=$(cd benches && "$PY" jax_pln.py --level "$level" --rep "$REP" --iters "$n" --runs 1 --logdet slogdet --aot-only 2>/dev/null)
    echo "$j" | tail -1 | python3 -c "import json,sys; d=json.loads(sys.stdin.read()); c=d.get('compile_s'); l=d.get('lower_s'); print('jax', $level, d['per_iter_ms'], 1e3*(c+l) if c is not None else 'nan')" >>"$OUT"
  done
done
python3 - "$OUT" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
print(f"{'level':>5} {'arrayjit ms/it':>15} {'JAX ms/it':>10} {'ratio':>6} {'arrayjit compile ms':>20} {'JAX compile ms':>15}")
for level in ["0", "1", "2", "4"]:
    a = [float(r[2]) for r in rows if r[0] == "arrayjit" and r[1] == level]
    j = [float(r[2]) for r in rows if r[0] == "jax" and r[1] == level]
    ac = [float(r[3]) for r in rows if r[0] == "arrayjit" and r[1] == level]
    jc = [float(r[3]) for r in rows if r[0] == "jax" and r[1] == level and r[3] != "nan"]
    am, jm = statistics.median(a), statistics.median(j)
    jcs = f"{statistics.median(jc):.0f}" if jc else "-"
    print(f"{level:>5} {am:>15.3f} {jm:>10.3f} {jm/am:>5.2f}x {statistics.median(ac):>20.1f} {jcs:>15}")
PY
rm -f "$OUT"
