"""Axial vs full attention on CPU: forward+backward time and peak memory on square images.

For each image side (16, 32, 64: 256 … 4096 positions) at dim 64, 4 heads, batch 2, float32, two layers are
compared: full multi-head self-attention over all H·W positions, and axial attention (`AxialAttention` along
the rows, then along the columns; same projections, two of them). Each is run with the kernel
`scaled_dot_product_attention` picks by default on CPU (a tiled flash-attention kernel that never holds a whole
attention matrix) and with the math kernel (which materialises the softmax weights, as a plain implementation
does).

Memory is reported two ways:
- analytically, the bytes of the attention weights one forward pass would materialise
  (`attention_matrix_bytes`: batch·heads·N² for full, batch·heads·N·(H+W) for axial, float32);
- measured, the peak RSS growth of one forward+backward pass in a fresh subprocess per configuration
  (ru_maxrss after the pass minus ru_maxrss before it, once the inputs, the layer and a pass on a 4×4 image have
  loaded everything; tracemalloc cannot see torch's CPU allocations). Allocator caching and page reuse make the
  measured number coarse (a few MiB).

Time is the fastest and the median of `repeats` forward+backward passes after the warm-up (fewer for the largest
full-attention runs).

    OMP_NUM_THREADS=1 python benchmarks/axial_attention.py [--sides 16 32 64] [--repeats 10]

One thread keeps the timings stable on a machine other jobs share (more threads than free cores spin and stall).

Writes benchmarks/results/axial_attention.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

from aekit.nn.axial import AxialAttention, attention_matrix_bytes

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the benchmarks' shared modules
from results_io import write_results  # noqa: E402

DIM, HEADS, BATCH = 64, 4, 2
METHODS = ("full", "axial")
BACKENDS = ("default", "math")


def peak_rss_mib() -> float:
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


class FullAttention(nn.Module):
    """Full self-attention over all positions: axial attention on the flattened (batch, N, dim) sequence is
    exactly that, with the same projections."""

    def __init__(self):
        super().__init__()
        self.attention = AxialAttention(DIM, HEADS, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attention(x.flatten(1, -2)).reshape(x.shape)


class TwoAxes(nn.Module):
    """Rows then columns: one axial layer per spatial axis, which together reach every position."""

    def __init__(self):
        super().__init__()
        self.attentions = nn.ModuleList(AxialAttention(DIM, HEADS, a) for a in range(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for attention in self.attentions:
            x = attention(x)
        return x


def child(side: int, method: str, backend: str, repeats: int) -> dict:
    """One configuration, measured in this (fresh) process."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    torch.manual_seed(0)
    layer = FullAttention() if method == "full" else TwoAxes()
    x = torch.randn(BATCH, side, side, DIM, requires_grad=True)
    kernels = [SDPBackend.MATH] if backend == "math" else [SDPBackend.FLASH_ATTENTION, SDPBackend.MATH]

    def step() -> None:
        with sdpa_kernel(kernels):
            layer(x).square().mean().backward()
        x.grad = None
        layer.zero_grad(set_to_none=True)

    # a pass on a tiny image first, so the libraries and kernels it loads are not counted as the pass's memory
    small = x
    x = torch.randn(BATCH, 4, 4, DIM, requires_grad=True)
    step()
    x = small
    before = peak_rss_mib()
    step()  # the warm-up pass is also the memory measurement: the peak of one pass in a fresh process
    growth = peak_rss_mib() - before
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return {"side": side, "positions": side * side, "method": method, "backend": backend, "repeats": repeats,
            "seconds_median": statistics.median(times), "seconds_min": min(times),
            "peak_rss_growth_mib": round(growth, 1),
            "attention_matrix_mib": attention_matrix_bytes((BATCH, side, side, DIM), HEADS,
                                                           axial=method == "axial") / 2**20}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sides", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--child", nargs=4, metavar=("SIDE", "METHOD", "BACKEND", "REPEATS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        side, method, backend, repeats = args.child
        print(json.dumps(child(int(side), method, backend, int(repeats))))
        return
    rows = []
    for side in args.sides:
        for backend in BACKENDS:
            for method in METHODS:
                # full attention at 4096 positions takes seconds per pass on a laptop-class CPU: cap its repeats
                repeats = min(args.repeats, 3) if method == "full" and side >= 64 else args.repeats
                done = subprocess.run([sys.executable, __file__, "--child", str(side), method, backend, str(repeats)],
                                      capture_output=True, text=True, check=True)
                row = json.loads(done.stdout.strip().splitlines()[-1])
                rows.append(row)
                print(f"side {side:3d} N={side * side:5d} {backend:7s} {method:5s} "
                      f"{row['seconds_min'] * 1e3:9.1f} ms (min)  peak RSS +{row['peak_rss_growth_mib']:7.1f} MiB  "
                      f"attention matrix {row['attention_matrix_mib']:8.1f} MiB", flush=True)
    payload = {"dim": DIM, "heads": HEADS, "batch": BATCH, "dtype": "float32", "device": "cpu",
               "threads": torch.get_num_threads(), "rows": rows}
    print(f"results: {write_results('axial_attention', payload, argv)}")


if __name__ == "__main__":
    main()
