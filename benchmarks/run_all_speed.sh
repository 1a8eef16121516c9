#!/usr/bin/env bash
# The speed benchmarks in sequence, with their documented settings. Their numbers depend on the machine and on
# what else runs on it, so run this on a quiet machine (nothing else busy) and commit what it writes:
#
#   benchmarks/run_all_speed.sh            # ~10-15 min on a quiet 2-core machine
#   benchmarks/run_all_speed.sh --smoke    # tiny settings and scratch names (removed afterwards): checks the script
#
# Writes benchmarks/results/{sae_step,sae_step_dead,cache_throughput,store_memory,demo,screen_survivors}.json,
# each with its provenance (command, machine, date, commit). The demo's outputs, which screen_survivors reads,
# stay in runs/speed/demo-out (git-ignored). sae_step times SAELens and sparsify when the
# separate benchmark environment exists (it pins their torch):
#   python3.11 -m venv .venv-bench && .venv-bench/bin/pip install torch==2.13.0 && .venv-bench/bin/pip install -e '.[bench]'
# and aekit alone otherwise. PYTHON and BENCH_PYTHON override the interpreters.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-.venv/bin/python}
BENCH_PY=${BENCH_PYTHON:-.venv-bench/bin/python}
[ -x "$BENCH_PY" ] || BENCH_PY=$PY
WORK=$(mktemp -d -t aekit-speed-XXXXXX)
SMOKE=0
[ "${1:-}" = "--smoke" ] && SMOKE=1
DEMO=runs/speed/demo-out
[ "$SMOKE" = 1 ] && DEMO=runs/speed/smoke-demo-out
mkdir -p runs/speed

cleanup() {
    rm -rf "$WORK"
    if [ "$SMOKE" = 1 ]; then rm -rf benchmarks/results/smoke_*.json "$DEMO"; fi
}
trap cleanup EXIT

run() {  # print the command, then run it with its wall time
    echo
    echo "== $*"
    local start=$SECONDS
    "$@"
    echo "== $((SECONDS - start)) s"
}

echo "load average before the runs: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)"
if [ "$SMOKE" = 1 ]; then
    run "$BENCH_PY" benchmarks/sae_step.py --quick --repeats 1 --warmup 0 --name smoke_sae_step
    run "$PY" benchmarks/sae_step.py --quick --arch topk --no-anchors --dead-fraction 0.1 --repeats 1 --warmup 0 \
        --name smoke_sae_step_dead
    run "$PY" benchmarks/cache_throughput.py --quick --repeats 1 --name smoke_cache_throughput
    run "$PY" benchmarks/store_memory.py --quick --name smoke_store_memory
    run "$PY" benchmarks/demo.py --steps 30 --documents 200 --out "$DEMO" --name smoke_demo
    run "$PY" benchmarks/screen_survivors.py --model "$DEMO/run/model" --store "$DEMO/store" --name smoke_screen_survivors
    "$PY" - "$WORK" <<'PY'
import shutil, sys
from pathlib import Path
sys.path.insert(0, "benchmarks")
import render_results
tables = Path(sys.argv[1]) / "results"
tables.mkdir()
for path in Path("benchmarks/results").glob("smoke_*.json"):
    shutil.copy(path, tables / path.name.removeprefix("smoke_"))
for name in ("sae_step", "sae_step_dead_latents", "cache_throughput", "store_memory", "demo", "demo_concepts",
             "screen_survivors"):
    print(render_results.render(name, tables), end="\n\n")
PY
    echo "smoke run passed (scratch results removed)"
    exit 0
fi

run "$BENCH_PY" benchmarks/sae_step.py
run "$PY" benchmarks/sae_step.py --arch topk --arch batchtopk --arch matryoshka --no-anchors --dead-fraction 0.1 \
    --repeats 5 --name sae_step_dead
run "$PY" benchmarks/cache_throughput.py
run "$PY" benchmarks/store_memory.py
run "$PY" benchmarks/demo.py --out "$DEMO"
run "$PY" benchmarks/screen_survivors.py --model "$DEMO/run/model" --store "$DEMO/store"

echo
echo "load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)"
echo "commit the results with:"
echo "  git add benchmarks/results/{sae_step,sae_step_dead,cache_throughput,store_memory,demo,screen_survivors}.json"
echo "  git commit -m 'Speed benchmark results' -- benchmarks/results/{sae_step,sae_step_dead,cache_throughput,store_memory,demo,screen_survivors}.json"
