"""How well the bfloat16 screen (aekit.nn.screening) works on a trained SAE and its real activations.

For rows of an activation store it prints how many latents per row survive the screen (the exact float32 work
the screen leaves; k is the minimum), how many rows the float32 path had to take, whether the selection equals
the float64 top-k, and checks the error bound entry by entry. Defaults read what `make demo` (or
benchmarks/demo.py --out demo-out) writes. Writes benchmarks/results/screen_survivors.json (--name, --out).

    python benchmarks/screen_survivors.py                                   # demo-out/run/model, demo-out/store
    python benchmarks/screen_survivors.py --model RUN/model --store STORE --rows 8192
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from aekit.data.store import ActivationStore
from aekit.models.base import load_model
from aekit.nn import screening

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the benchmarks' shared modules
from results_io import write_results  # noqa: E402


def _kernel_cut(lower: torch.Tensor, k: int) -> torch.Tensor:
    """The cut screen.c takes per row: the k-th largest of the maxima of G strided groups (entry i in group i mod G,
    G = max(256, 4k) rounded up to 16) of the lower bounds."""
    G = -(-max(256, 4 * k) // 16) * 16
    rows, n = lower.shape
    padded = torch.full((rows, -(-n // G) * G), float("-inf"), dtype=lower.dtype)
    padded[:, :n] = lower
    group_max = padded.view(rows, -1, G).amax(dim=1)
    return group_max.topk(k, dim=1).values[:, -1:]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="demo-out/run/model", help="a saved aekit SAE directory")
    p.add_argument("--store", default="demo-out/store", help="an activation store with that SAE's inputs")
    p.add_argument("--rows", type=int, default=4096, help="rows read from the store's first shard")
    p.add_argument("--name", default="screen_survivors", help="write benchmarks/results/<name>.json")
    p.add_argument("--out", type=Path, default=None, help="write the results to this path instead")
    args = p.parse_args(argv)

    model = load_model(args.model).eval()
    k = getattr(model.config, "k", None)
    if k is None or model.config.is_transcoder:
        print("error: the screen serves TopK-style autoencoders (config.k), not transcoders", file=sys.stderr)
        return 2
    x = ActivationStore(args.store).read_shard(0)[: args.rows].float()
    with torch.no_grad():
        x_c = (x * model.input_scale - model.b_dec).contiguous()
        W, b = model.W_enc.detach().contiguous(), model.b_enc.detach().contiguous()
        screen = screening._screen(x_c, W, b, None)
        if screen is None:
            print("error: non-finite activations or weights: the screen does not apply", file=sys.stderr)
            return 2
        a, c, p_, q, rel = (t.double() if torch.is_tensor(t) else t for t in screen.bound)
        approx = screen.approx.double() + b.double()
        error = a[:, None] * p_[None] + c[:, None] * q[None] + rel * screen.approx.double().abs()
        exact = x_c.double() @ W.double().t() + b.double()
        survivors = ((approx + error) >= _kernel_cut(approx - error, k)).sum(1).double()
        stats: dict[str, float] = {}
        mode, screening.MODE = screening.MODE, "always"
        try:
            idx, _ = screening.screened_topk(x_c, W, b, k, stats=stats)
        finally:
            screening.MODE = mode
        gap = (exact.gather(1, idx).sort(1, descending=True).values - exact.topk(k, dim=1).values).abs().max()
    result = {
        "benchmark": "screen_survivors", "model": str(args.model), "store": str(args.store), "rows": len(x),
        "d_in": model.config.d_in, "n_latents": model.config.n_latents, "k": k,
        "model_provenance": dict(model.provenance),
        "survivors": {"mean": float(survivors.mean()), "median": float(survivors.median()),
                      "p99": float(survivors.quantile(0.99)), "max": float(survivors.max())},
        "float32_path_fraction": float(stats["redo_fraction"]),
        "bound_holds": bool(((approx - exact).abs() <= error).all()),
        "median_bound": float(error.median()),
        "preactivation_std": float(exact.std()),
        "max_selected_value_gap": float(gap),
    }
    sv = result["survivors"]
    print(f"SAE d_in {model.config.d_in}, {model.config.n_latents} latents, k {k}; {len(x)} rows of {args.store}")
    print(f"survivors per row: mean {sv['mean']:.1f}, median {sv['median']:.0f}, p99 {sv['p99']:.0f}, "
          f"max {sv['max']:.0f} (k = {k})")
    print(f"rows the float32 path took: {result['float32_path_fraction']:.1%}")
    print(f"error bound holds on every entry: {result['bound_holds']}; median bound {result['median_bound']:.3g} "
          f"against a pre-activation spread (std) of {result['preactivation_std']:.3g}")
    print(f"selection against the float64 top-k: largest difference in the chosen values {float(gap):.3g}")
    print(f"wrote {write_results(args.name, result, argv, out=args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
