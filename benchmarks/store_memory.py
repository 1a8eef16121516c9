"""Peak memory while training from an activation store must not grow with the store's size.

Writes stores of 1x, 4x and 16x the shuffle buffer, then in a fresh subprocess per store opens it with
`aekit.data.open_source`, trains a small SAE for the same number of steps (enough to read the largest store
once, so every run crosses many chunks) and reports the peak RSS and the most rows the source ever held.
As a control showing the measurement can see growth, the largest store is also trained from memory
(`read_dataset` + `ArraySource`), which must cost about the store's size.

    python benchmarks/store_memory.py            # d=256, buffer 32768 rows, stores up to 512 MiB
    python benchmarks/store_memory.py --quick    # d=64, buffer 4096 rows

Writes benchmarks/results/store_memory.json (store_memory_quick.json with --quick; --name NAME for others).
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the benchmarks' shared modules (results_io)
MULTIPLES = (1, 4, 16)


def rss_mib() -> float:
    """Current resident set size (Linux), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mib() -> float:
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def write_synthetic_store(path: Path, rows: int, d: int, rows_per_shard: int, seed: int) -> None:
    """Write shard by shard so the parent never holds the whole store either."""
    from aekit.data import ActivationStoreWriter

    g = torch.Generator().manual_seed(seed)
    with ActivationStoreWriter(path, d, rows_per_shard=rows_per_shard) as writer:
        for start in range(0, rows, rows_per_shard):
            writer.append(torch.randn(min(rows_per_shard, rows - start), d, generator=g))


def child(args: argparse.Namespace) -> None:
    """Train from one store in this (fresh) process and print one JSON line of measurements."""
    from aekit import SAEConfig, SparseAutoencoder
    from aekit.data import ArraySource, open_source, read_dataset
    from aekit.train import TrainConfig, Trainer

    torch.manual_seed(0)
    config = TrainConfig(steps=args.steps, batch_size=args.batch_size, buffer_rows=args.buffer_rows,
                         progress=False, checkpoint_every=0, device="cpu", seed=0)
    if args.in_memory:
        source = ArraySource(read_dataset(args.store), args.batch_size, seed=0)
    else:
        source = open_source(args.store, args.batch_size, seed=0, buffer_rows=args.buffer_rows)
    model = SparseAutoencoder(SAEConfig(d_in=source.d, n_latents=args.n_latents, k=args.k), seed=0)
    rss_before = rss_mib()
    start = time.perf_counter()
    Trainer(model, source, config).fit()
    seconds = time.perf_counter() - start
    stream = source.stream
    print(json.dumps({
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "rss_before_train_mib": round(rss_before, 1),
        "max_resident_rows": stream.max_resident_rows,
        "epochs_started": stream.epoch + 1,
        "train_s": round(seconds, 2),
    }))


def run_child(store: Path, args: argparse.Namespace, steps: int, in_memory: bool = False) -> dict:
    cmd = [sys.executable, __file__, "--child", "--store", str(store), "--steps", str(steps),
           "--batch-size", str(args.batch_size), "--buffer-rows", str(args.buffer_rows),
           "--n-latents", str(args.n_latents), "--k", str(args.k)]
    if in_memory:
        cmd.append("--in-memory")
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        sys.exit(f"child failed for {store}:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small dimensions, for a smoke run")
    parser.add_argument("--name", default=None,
                        help="write benchmarks/results/<name>.json (default store_memory; _quick with --quick)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--in-memory", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--buffer-rows", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--n-latents", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--k", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return

    if args.quick:
        d, args.buffer_rows, rows_per_shard, args.batch_size, args.n_latents, args.k = 64, 4096, 1024, 256, 256, 16
    else:
        d, args.buffer_rows, rows_per_shard, args.batch_size, args.n_latents, args.k = 256, 32768, 8192, 1024, 512, 16
    largest = MULTIPLES[-1] * args.buffer_rows
    steps = math.ceil(largest / args.batch_size) + 8  # one full pass over the largest store, for every store
    store_mib = {m: m * args.buffer_rows * d * 4 / 2**20 for m in MULTIPLES}
    print(f"d={d} buffer_rows={args.buffer_rows} rows_per_shard={rows_per_shard} batch={args.batch_size} "
          f"steps={steps} SAE {d}->{args.n_latents} topk k={args.k}")

    rows = []
    with tempfile.TemporaryDirectory(prefix="aekit-store-memory-") as tmp:
        for m in MULTIPLES:
            path = Path(tmp) / f"store_{m}x"
            t0 = time.perf_counter()
            write_synthetic_store(path, m * args.buffer_rows, d, rows_per_shard, seed=m)
            write_s = time.perf_counter() - t0
            result = run_child(path, args, steps)
            rows.append({"source": "store", "multiple": m, "rows": m * args.buffer_rows,
                         "store_mib": round(store_mib[m], 1), "write_s": round(write_s, 2), **result})
            print(f"  {m:>2}x store done: peak {result['peak_rss_mib']:.0f} MiB in {result['train_s']:.1f} s")
        control = run_child(Path(tmp) / f"store_{MULTIPLES[-1]}x", args, steps, in_memory=True)
        rows.append({"source": "in-memory control", "multiple": MULTIPLES[-1], "rows": largest,
                     "store_mib": round(store_mib[MULTIPLES[-1]], 1), **control})

    base = rows[0]["peak_rss_mib"]
    print(f"\n{'source':<18} {'store':>6} {'rows':>8} {'store MiB':>10} {'peak RSS MiB':>13} {'vs 1x':>6} "
          f"{'max resident rows':>18} {'epochs':>7} {'train s':>8}")
    for r in rows:
        print(f"{r['source']:<18} {str(r['multiple']) + 'x':>6} {r['rows']:>8} {r['store_mib']:>10.0f} "
              f"{r['peak_rss_mib']:>13.0f} {r['peak_rss_mib'] / base:>6.2f} {r['max_resident_rows']:>18} "
              f"{r['epochs_started']:>7} {r['train_s']:>8.1f}")
    store_rows = [r for r in rows if r["source"] == "store"]
    ratio = store_rows[-1]["peak_rss_mib"] / base
    bounded = all(r["max_resident_rows"] <= args.buffer_rows for r in store_rows)
    print(f"\npeak_rss({MULTIPLES[-1]}x) / peak_rss(1x) = {ratio:.3f}   "
          f"(store grew {MULTIPLES[-1]}x; max_resident_rows <= buffer_rows: {bounded})")

    from results_io import write_results  # the parent only: children report through stdout

    path = write_results(args.name or ("store_memory_quick" if args.quick else "store_memory"), {
        "benchmark": "store_memory",
        "quick": args.quick,
        "settings": {"d": d, "buffer_rows": args.buffer_rows, "rows_per_shard": rows_per_shard,
                     "batch_size": args.batch_size, "steps": steps, "n_latents": args.n_latents, "k": args.k},
        "runs": rows,
        "peak_rss_ratio_largest_vs_1x": round(ratio, 4),
        "max_resident_rows_within_buffer": bounded,
    }, argv)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
