"""Milliseconds per SAE training step, as ratios to one dense encoder matrix product, in one process.

For every architecture in `aekit.nn.bottlenecks.BOTTLENECKS` it times `Trainer.train_step`, the body of
`Trainer.fit` for one batch (forward, backward, decoder-gradient projection, gradient clipping, Adam, decoder
renormalisation, dead-latent bookkeeping) and divides by the time of `torch.mm` of (batch × d_in) by (d_in × n_latents)
into a reused output buffer: the floor that any SAE step must pay to score every latent. When they are
importable (the `bench` extra), SAELens's `TopKTrainingSAE` and EleutherAI sparsify's `SparseCoder` are
timed on the same data with the same sizes, each with the Adam and per-step work of its own trainer, and
aekit's TopK speed-up over each is printed. Cases are timed round-robin, one step each per round, so a
change in machine load hits every case alike; the medians over the rounds are reported.

    python benchmarks/sae_step.py                 # d_in 512, 8192 latents, k 32, batch 2048, float32, CPU
    python benchmarks/sae_step.py --quick         # small sizes: a smoke run of a few seconds
    python benchmarks/sae_step.py --arch topk --arch batchtopk --arch matryoshka --no-anchors \
        --dead-fraction 0.1 --repeats 5 --name sae_step_dead    # AuxK at work: 10% of the latents dead
    python benchmarks/sae_step.py --device cuda --bf16 --name sae_step_cuda

Writes benchmarks/results/<name>.json (default sae_step, sae_step_quick with --quick) with its provenance.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from aekit import SAEConfig, SparseAutoencoder
from aekit.data import ArraySource
from aekit.nn import screening
from aekit.nn.bottlenecks import BOTTLENECKS, Bottleneck
from aekit.train import TrainConfig, Trainer

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the benchmarks' shared modules
from results_io import write_results  # noqa: E402

SIZES = {
    "full": {"d_in": 512, "n_latents": 8192, "k": 32, "batch": 2048},
    "quick": {"d_in": 128, "n_latents": 2048, "k": 16, "batch": 256},
}
LR = 2e-4
N_BATCHES = 4  # distinct batches cycled through, the same for every case


@dataclass
class Case:
    name: str
    kind: str  # "floor", "reference", "aekit" or "anchor"
    step: Callable[[torch.Tensor], object]
    note: str = ""
    times: list[float] = field(default_factory=list)
    screened: bool = False  # an aekit step whose selection the bfloat16 screen serves

    @property
    def ms(self) -> float:
        return 1e3 * statistics.median(self.times)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast around the forward pass (GPU runs)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--repeats", type=int, default=None, help="timed rounds (default 9, quick 5)")
    p.add_argument("--warmup", type=int, default=2, help="untimed rounds first")
    p.add_argument("--dead-fraction", type=float, default=0.0,
                   help="mark this fraction of latents dead in every step so AuxK runs (default 0: a healthy run)")
    p.add_argument("--arch", action="append", default=None,
                   help="time only this aekit architecture (repeatable; default: every one in BOTTLENECKS)")
    p.add_argument("--no-anchors", action="store_true", help="skip SAELens and sparsify even when installed")
    p.add_argument("--name", default=None,
                   help="write benchmarks/results/<name>.json (default sae_step; sae_step_quick with --quick)")
    p.add_argument("--out", type=Path, default=None, help="write the results to this path instead")
    return p.parse_args(argv)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(device: torch.device, enabled: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16) if enabled else contextlib.nullcontext()


def _fixed_dead_mask(n: int, fraction: float, device: torch.device) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return (torch.rand(n, generator=g) < fraction).to(device)


# --- aekit ------------------------------------------------------------------------------------------------
def aekit_case(arch: str, s: dict, data: torch.Tensor, args, device: torch.device, screen: bool = True) -> Case:
    """One `Trainer.train_step` (src/aekit/train/trainer.py): the body of `Trainer.fit` for one batch, with the
    Trainer's own optimizer, clipping and defaults. `screen=False` turns the bfloat16 screen of the encoder
    product off (aekit.nn.screening): the float32 product then decides the selection, as on CPUs without
    bfloat16 matrix units."""
    model = SparseAutoencoder(SAEConfig(d_in=s["d_in"], n_latents=s["n_latents"], architecture=arch, k=s["k"]),
                              seed=0)
    cfg = TrainConfig(batch_size=s["batch"], lr=LR, seed=0, device=str(device), progress=False,
                      precision="bfloat16" if args.bf16 else "float32")
    trainer = Trainer(model, ArraySource(data.reshape(-1, s["d_in"]).cpu(), s["batch"], seed=0), cfg)
    model.initialize_from_data(data[0])
    if args.dead_fraction > 0:  # mark a fixed set of latents dead in every step so AuxK runs
        dead = _fixed_dead_mask(s["n_latents"], args.dead_fraction, device)
        trainer.tracker.samples_since_fired.masked_fill_(dead, cfg.dead_after_samples * 1000)
        trainer.tracker.update = lambda fired, samples: None
    model.train()

    def step(x: torch.Tensor) -> None:
        mode = screening.MODE
        if not screen:
            screening.MODE = "never"
        try:
            trainer.train_step(x, LR)
        finally:
            screening.MODE = mode

    fused = trainer.optimizer.defaults.get("fused")
    note = f"Trainer.train_step, Adam fused={bool(fused)}, grad clip {cfg.grad_clip}"
    screened = screen and _screens(model, s, device)
    if screened:
        note += ", bfloat16 screen of the encoder product"
    return Case(f"aekit {arch}" + ("" if screen else ", no screen"), "aekit", step, note, screened=screened)


def _screens(model: SparseAutoencoder, s: dict, device: torch.device) -> bool:
    """Whether this model's selection asks for row top-k that the bfloat16 screen serves at these sizes."""
    asks_row_topk = type(model.bottleneck).select_from is not Bottleneck.select_from
    probe = torch.zeros(1, s["d_in"], device=device)
    return asks_row_topk and screening.applies(probe, model.W_enc.detach().to(device), s["k"])


# --- anchors ----------------------------------------------------------------------------------------------
def saelens_case(s: dict, args, device: torch.device, sparse_acts: bool) -> Case:
    """SAELens SAETrainer._train_step (sae_lens/training/sae_trainer.py) with TopKTrainingSAE."""
    from sae_lens import TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.saes.sae import TrainStepInput

    # use_sparse_activations (COO codes, sparse decoder matmul) fails in backward when combined with the default
    # rescale_acts_by_decoder_norm=True (sae-lens 6.54, torch 2.13), so that variant runs with it off.
    cfg = TopKTrainingSAEConfig(d_in=s["d_in"], d_sae=s["n_latents"], k=s["k"], dtype="float32",
                                device=str(device), use_sparse_activations=sparse_acts,
                                rescale_acts_by_decoder_norm=not sparse_acts)
    torch.manual_seed(0)
    sae = TopKTrainingSAE(cfg).to(device)
    optimizer = torch.optim.Adam(sae.parameters(), lr=LR, betas=(0.9, 0.999))  # as SAETrainer builds it
    since_fired = torch.zeros(s["n_latents"], device=device)
    act_freq = torch.zeros(s["n_latents"], device=device)
    fixed_dead = _fixed_dead_mask(s["n_latents"], args.dead_fraction, device)
    n_steps = [0]

    def step(x: torch.Tensor) -> None:
        sae.train()
        with _autocast(device, args.bf16):
            out = sae.training_forward_pass(TrainStepInput(
                sae_in=x, coefficients={}, dead_neuron_mask=fixed_dead, n_training_steps=n_steps[0],
                is_logging_step=False,
            ))
            with torch.no_grad():
                firing = out.feature_acts.bool().float()
                did_fire = firing.sum(-2).bool()
                if did_fire.is_sparse:
                    did_fire = did_fire.to_dense()
                since_fired.add_(1)
                since_fired[did_fire] = 0
                act_freq.add_(firing.sum(0) if not firing.is_sparse else firing.sum(0).to_dense())
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(sae.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        n_steps[0] += 1

    name = "SAELens TopK" + (" sparse-acts" if sparse_acts else "")
    note = "torch.optim.Adam default, grad clip 1.0"
    if sparse_acts:
        note += ", use_sparse_activations=True, rescale_acts_by_decoder_norm=False"
    return Case(name, "anchor", step, note)


def sparsify_case(s: dict, args, device: torch.device) -> Case:
    """sparsify Trainer.fit with optimizer='adam', loss_fn='fvu' (sparsify/trainer.py), on the eager decoder."""
    os.environ.setdefault("SPARSIFY_DISABLE_TRITON", "1")  # CPU: the Triton decoder does not apply
    with contextlib.redirect_stdout(sys.stderr):  # it prints which decoder it picked
        from sparsify import SparseCoder, SparseCoderConfig
        from sparsify.utils import decoder_impl
    torch.manual_seed(0)
    sae = SparseCoder(s["d_in"], SparseCoderConfig(num_latents=s["n_latents"], k=s["k"]), device=device)
    optimizer = torch.optim.Adam(sae.parameters(), lr=LR)  # as sparsify's Trainer builds it without bitsandbytes
    since_fired = torch.zeros(s["n_latents"], dtype=torch.long, device=device)
    dead_mask = _fixed_dead_mask(s["n_latents"], args.dead_fraction, device) if args.dead_fraction > 0 else None
    auxk_alpha = 1 / 32 if dead_mask is not None else 0.0

    def step(x: torch.Tensor) -> None:
        sae.set_decoder_norm_to_unit_norm()
        with _autocast(device, args.bf16):
            out = sae(x=x, y=x, dead_mask=dead_mask)
        did_fire = torch.zeros(s["n_latents"], dtype=torch.bool, device=device)
        did_fire[out.latent_indices.flatten()] = True
        loss = out.fvu + auxk_alpha * out.auxk_loss + out.multi_topk_fvu / 8
        loss.backward()
        sae.remove_gradient_parallel_to_decoder_directions()
        optimizer.step()
        optimizer.zero_grad()
        with torch.no_grad():
            since_fired.add_(len(x))
            since_fired[did_fire] = 0

    return Case("sparsify SparseCoder", "anchor", step, f"torch.optim.Adam default, decoder {decoder_impl.__name__}")


def anchor_cases(s: dict, args, device: torch.device) -> tuple[list[Case], list[str]]:
    cases, skipped = [], []
    builders = [
        ("sae-lens", lambda: saelens_case(s, args, device, sparse_acts=False)),
        ("sae-lens", lambda: saelens_case(s, args, device, sparse_acts=True)),
        ("eai-sparsify", lambda: sparsify_case(s, args, device)),
    ]
    for package, build in builders:
        try:
            cases.append(build())
        except ImportError as e:
            skipped.append(f"{package} not importable ({e.name or e}); install with pip install -e '.[bench]'")
    return cases, sorted(set(skipped))


# --- timing -----------------------------------------------------------------------------------------------
def run(args) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    s = SIZES["quick" if args.quick else "full"]
    repeats = args.repeats or (5 if args.quick else 9)
    g = torch.Generator().manual_seed(0)
    data = torch.randn(N_BATCHES, s["batch"], s["d_in"], generator=g).to(device)

    floor_dtype = torch.bfloat16 if args.bf16 else torch.float32
    a = torch.randn(s["batch"], s["d_in"], generator=g).to(device, floor_dtype)
    b = torch.randn(s["d_in"], s["n_latents"], generator=g).to(device, floor_dtype)
    out = torch.empty(s["batch"], s["n_latents"], dtype=floor_dtype, device=device)
    shape = f"({s['batch']}×{s['d_in']}) @ ({s['d_in']}×{s['n_latents']}), {floor_dtype}"
    # The floor is the GEMM itself, written into a reused buffer. A fresh output costs page faults on top
    # (about +25% on CPU), and whether a freed block is reused depends on the allocator's state, so that
    # variant is timed too but is not the denominator.
    cases = [Case("dense matmul", "floor", lambda x: torch.mm(a, b, out=out), f"torch.mm(out=) {shape}"),
             Case("dense matmul, new output", "reference", lambda x: torch.mm(a, b), f"torch.mm {shape}")]
    errors = {}
    for arch in args.arch or sorted(BOTTLENECKS):
        try:
            cases.append(aekit_case(arch, s, data, args, device))
            if cases[-1].screened:  # the same step with the float32 product deciding
                cases.append(aekit_case(arch, s, data, args, device, screen=False))
        except Exception as e:  # a registry entry that cannot be built with these settings is reported, not fatal
            errors[f"aekit {arch}"] = f"{type(e).__name__}: {e}"
    skipped = []
    if not args.no_anchors:
        anchors, skipped = anchor_cases(s, args, device)
        cases += anchors

    for r in range(args.warmup + repeats):
        for case in cases:
            x = data[r % N_BATCHES]
            try:
                _sync(device)
                t0 = time.perf_counter()
                case.step(x)
                _sync(device)
                if r >= args.warmup:
                    case.times.append(time.perf_counter() - t0)
            except Exception as e:  # an anchor's own bug is reported in the table, not fatal
                errors[case.name] = f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"
        cases = [c for c in cases if c.name not in errors]

    floor = cases[0].ms
    topk = next((c for c in cases if c.name == "aekit topk"), None)
    rows = []
    for c in cases:
        row = {"name": c.name, "kind": c.kind, "ms_per_step": round(c.ms, 2), "ratio_to_matmul": round(c.ms / floor, 3),
               "ms_all": [round(1e3 * t, 2) for t in c.times], "note": c.note}
        if c.kind == "anchor" and topk is not None:
            row["aekit_topk_speedup"] = round(c.ms / topk.ms, 2)
        rows.append(row)
    return {
        "benchmark": "sae_step",
        "sizes": s,
        "dtype": "bfloat16 autocast" if args.bf16 else "float32",
        "device": str(device),
        "repeats": repeats,
        "warmup": args.warmup,
        "dead_fraction": args.dead_fraction,
        "threads": torch.get_num_threads(),
        "bfloat16_hardware": screening.bfloat16_hardware(),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "anchor_versions": _anchor_versions(),
        "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "THP_MEM_ALLOC_ENABLE", "SPARSIFY_DISABLE_TRITON")
                if k in os.environ},
        "rows": rows,
        "errors": errors,
        "skipped": skipped,
    }


def _anchor_versions() -> dict[str, str]:
    versions = {}
    for package in ("sae-lens", "eai-sparsify"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[package] = importlib.metadata.version(package)
    return versions


def print_table(result: dict) -> None:
    s = result["sizes"]
    print(f"SAE training step: d_in {s['d_in']}, {s['n_latents']} latents, k {s['k']}, batch {s['batch']}, "
          f"{result['dtype']}, {result['device']}, {result['threads']} threads, median of {result['repeats']}")
    print(f"{'case':<30}{'ms/step':>10}{'× matmul':>10}{'aekit topk speed-up':>22}")
    for row in result["rows"]:
        speedup = f"{row['aekit_topk_speedup']:.2f}×" if "aekit_topk_speedup" in row else ""
        print(f"{row['name']:<30}{row['ms_per_step']:>10.1f}{row['ratio_to_matmul']:>10.2f}{speedup:>22}")
    if any("bfloat16 screen" in row["note"] for row in result["rows"]):
        print("(screen: the exact top-k screened through a bfloat16 product, aekit.nn.screening; 'no screen': the"
              " float32 product decides, as on CPUs without bfloat16 matrix units)")
    for name, err in result["errors"].items():
        print(f"{name}: failed: {err}")
    for line in result["skipped"]:
        print(f"skipped: {line}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    print_table(result)
    name = args.name or ("sae_step_quick" if args.quick else "sae_step")
    print(f"wrote {write_results(name, result, argv, out=args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
