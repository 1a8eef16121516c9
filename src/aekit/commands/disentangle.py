"""The disentanglement study: train image autoencoders on a factor world and score them against its factors.

Every model gets the same data, steps, batch size and learning rate (one CPU budget), several seeds each, and
is scored on held-out images (none of them in the training set) with InfoM/InfoC/InfoE, MIG, DCI (D, C, I), SAP
and reconstruction PSNR. Writes, under out_dir: runs/<model>_seed<s>/ (the saved model and result.json, so an
interrupted study resumes where it stopped), traversals/<model>.png (rows = latents, one swept per row),
results.json and table.md (mean ± 95% t-interval over seeds).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats
from threadpoolctl import threadpool_limits
from torch import Tensor
from tqdm.auto import tqdm

from ..analysis.passive import passive_variables
from ..data.sources import DictArraySource
from ..errors import AekitError, ConfigError
from ..fileio import atomic_write_bytes, atomic_write_json, read_json, refuse_existing_file
from ..metrics.disentanglement import dci, infomec, mig, sap
from ..models.image_ae import (
    VQVAE,
    BetaTCVAE,
    BetaTCVAEConfig,
    BetaVAE,
    BetaVAEConfig,
    ImageAEConfig,
    ImageAutoencoder,
    VQVAEConfig,
)
from ..models.qlae import QLAE, QLAEConfig
from ..models.xfactors import XFactors, XFactorsConfig
from ..nn.codes import Codes
from ..report.images import save_image_grid
from ..seeding import derive_seed
from ..train import TrainConfig, Trainer
from ..worlds import DSpritesWorld, FactorWorld, Shapes3DWorld

WORLDS: dict[str, Callable[[], FactorWorld]] = {"shapes3d": Shapes3DWorld, "dsprites": DSpritesWorld}
METRICS = ("infom", "infoc", "infoe", "mig", "dci_d", "dci_c", "dci_i", "sap", "psnr")
HEADERS = {"infom": "InfoM", "infoc": "InfoC", "infoe": "InfoE", "mig": "MIG", "dci_d": "D", "dci_c": "C",
           "dci_i": "I", "sap": "SAP", "psnr": "PSNR (dB)"}
DCI_SAMPLES = 5000  # gradient-boosted trees dominate evaluation time: DCI reads the first 5000 held-out rows
DCI_ESTIMATORS = 50
TRAVERSAL_STEPS = 10
RESIDUAL_DIM = 2  # XFactors: size of the unsupervised subspace S


def _shape(world: FactorWorld, extra_latents: int = 0) -> dict[str, int]:
    """Image shape and latent width for `world`: 2 latents per factor (QLAE's recipe) for every model."""
    channels, size, _ = world.image_shape
    return {"image_channels": channels, "image_size": size, "n_latents": 2 * world.n_factors + extra_latents}


MODEL_BUILDERS: dict[str, Callable[[FactorWorld, int], ImageAutoencoder]] = {
    "ae": lambda w, seed: ImageAutoencoder(ImageAEConfig(**_shape(w)), seed=seed),
    "betavae": lambda w, seed: BetaVAE(BetaVAEConfig(**_shape(w)), seed=seed),
    "betatcvae": lambda w, seed: BetaTCVAE(BetaTCVAEConfig(**_shape(w), dataset_size=len(w)), seed=seed),
    "vqvae": lambda w, seed: VQVAE(VQVAEConfig(**_shape(w)), seed=seed),
    "qlae": lambda w, seed: QLAE(QLAEConfig(**_shape(w)), seed=seed),
    "xfactors": lambda w, seed: XFactors(XFactorsConfig(**_shape(w, RESIDUAL_DIM), n_factors=w.n_factors), seed=seed),
}
MODEL_NAMES = tuple(MODEL_BUILDERS)


def model_for(name: str, world: FactorWorld, seed: int) -> ImageAutoencoder:
    """The study's configuration of model `name` for `world`, initialised from `seed`."""
    if name not in MODEL_BUILDERS:
        raise ConfigError(f"models: unknown model {name!r}; choose from {', '.join(MODEL_NAMES)}")
    return MODEL_BUILDERS[name](world, seed)


# ------------------------------------------------------------------------------------------------------ data
def to_uint8(images: Tensor) -> Tensor:
    """[0, 1] float images → uint8, as image datasets are stored (a quarter of the memory of float32)."""
    return (images.clamp(0, 1) * 255).round().to(torch.uint8)


def split_world(world: FactorWorld, n_train: int, n_eval: int) -> tuple[np.ndarray, np.ndarray]:
    """Factor indices of a training set and of a held-out set that shares no image with it."""
    train = world.sample_factors(n_train, seed=0)
    seen = set(world.factors_to_index(train).tolist())
    if len(world) - len(seen) < n_eval:
        raise ConfigError(f"n_eval: the world has only {len(world) - len(seen)} images outside the training set; "
                          f"ask for fewer than {n_eval}")
    held, batch_seed = [], 1
    while sum(len(h) for h in held) < n_eval:
        candidates = world.sample_factors(2 * n_eval, seed=batch_seed)
        keep = ~np.isin(world.factors_to_index(candidates), list(seen))
        held.append(candidates[keep])
        batch_seed += 1
    return train, np.concatenate(held)[:n_eval]


# ------------------------------------------------------------------------------------------------ evaluation
@torch.no_grad()
def encode_all(model: ImageAutoencoder, images: Tensor, batch_size: int = 500) -> tuple[Tensor, Tensor, float]:
    """(metric latents, codes, PSNR in dB of the reconstructions over all pixels) for held-out images."""
    model.eval()
    latents, codes, squared_error = [], [], 0.0
    for start in range(0, len(images), batch_size):
        x = model.images(images[start : start + batch_size])
        code = model.encode(x)
        squared_error += float((model.decode(code) - x).pow(2).sum())
        codes.append(code.dense)
        latents.append(model.metric_latents(x))
    mse = squared_error / (len(images) * images[0].numel())
    return torch.cat(latents), torch.cat(codes), 10 * math.log10(1.0 / max(mse, 1e-12))


def score(model: ImageAutoencoder, images: Tensor, factors: np.ndarray, seed: int) -> dict[str, Any]:
    """Every metric of the study on held-out images; a metric that cannot be computed is NaN with its reason."""
    latents, _, psnr = encode_all(model, images)
    z = latents.double().numpy()
    discrete = model.discrete_latents
    out: dict[str, Any] = {"psnr": psnr, "errors": {}}

    def attempt(names: tuple[str, ...], compute: Callable[[], tuple]) -> None:
        try:
            out.update(zip(names, compute(), strict=True))
        except AekitError as e:
            out.update(dict.fromkeys(names, float("nan")))
            out["errors"][",".join(names)] = str(e)

    def info() -> tuple:
        r = infomec(factors, z, discrete_latents=discrete, seed=seed)
        return r["infom"], r["infoc"], r["infoe"], int(np.sum(r["active"]))

    def dci_scores() -> tuple:
        r = dci(factors[:DCI_SAMPLES], z[:DCI_SAMPLES], seed=seed, n_estimators=DCI_ESTIMATORS)
        return r["disentanglement"], r["completeness"], r["informativeness"]

    # InfoMEC's k-NN estimator makes thousands of small OpenMP-parallel queries; with the cores shared (or busy
    # training) the threads' start-up and spinning cost 2-10x the work itself, so the metrics run on one thread
    with threadpool_limits(limits=1):
        attempt(("infom", "infoc", "infoe", "active_latents"), info)
        attempt(("mig",), lambda: (mig(factors, z),))
        attempt(("dci_d", "dci_c", "dci_i"), dci_scores)
        attempt(("sap",), lambda: (sap(factors, z, seed=seed),))
    return out


@torch.no_grad()
def save_traversal(model: ImageAutoencoder, images: Tensor, path: Path, n_steps: int = TRAVERSAL_STEPS) -> Path:
    """PNG grid: row i decodes the first image's code with latent i swept over its range (or its codebook)."""
    _, codes, _ = encode_all(model, images)
    values = model.traversal_values(codes, n_steps)
    n_latents, n_cols = values.shape
    grid = codes[0].repeat(n_latents, n_cols, 1)
    rows = torch.arange(n_latents)
    grid[rows, :, rows] = values
    decoded = model.decode(Codes(n_latents, dense=grid.reshape(-1, n_latents)))
    return save_image_grid(decoded, path, nrow=n_cols)


# ---------------------------------------------------------------------------------------------------- summary
def t_interval(values: Sequence[float]) -> tuple[float, float]:
    """(mean, half-width of the 95% Student-t confidence interval); NaN half-width for fewer than 2 values."""
    x = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=np.float64)
    if len(x) == 0:
        return float("nan"), float("nan")
    if len(x) < 2:
        return float(x[0]), float("nan")
    return float(x.mean()), float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))


def summarize(runs: list[dict[str, Any]], models: Sequence[str]) -> dict[str, dict[str, dict[str, float]]]:
    summary = {}
    for name in models:
        mine = [r for r in runs if r["model"] == name]
        summary[name] = {}
        for metric in (*METRICS, "train_seconds"):
            mean, ci = t_interval([r[metric] for r in mine])
            summary[name][metric] = {"mean": mean, "ci95": ci, "n": len(mine)}
    return summary


def markdown_table(summary: dict[str, dict[str, dict[str, float]]], caption: str) -> str:
    def cell(entry: dict[str, float], metric: str) -> str:
        digits = 1 if metric == "psnr" else 3
        if not math.isfinite(entry["mean"]):
            return "n/a"
        ci = f" ± {entry['ci95']:.{digits}f}" if math.isfinite(entry["ci95"]) else ""
        return f"{entry['mean']:.{digits}f}{ci}"

    lines = [caption, "", "| model | " + " | ".join(HEADERS[m] for m in METRICS) + " |",
             "|---|" + "---|" * len(METRICS)]
    for name, entry in summary.items():
        lines.append(f"| {name} | " + " | ".join(cell(entry[m], m) for m in METRICS) + " |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------------ study
def run_disentangle(
    world_name: str = "shapes3d",
    models: Sequence[str] = ("ae", "betavae", "qlae", "xfactors"),
    seeds: int | Sequence[int] = 3,
    steps: int = 2000,
    out_dir: str | Path = "disentangle",
    batch_size: int = 64,
    n_eval: int = 10_000,
    progress: bool = True,
    n_train: int = 30_000,
    lr: float = 1e-3,
) -> dict[str, Any]:
    """Train each model for `steps` on `n_train` world images per seed and score it on `n_eval` held-out ones.

    `seeds` is a count (seeds 0..n−1) or explicit seeds. Runs already finished in out_dir with the same
    settings are read back, not retrained. Returns what results.json holds (NaN written as null).
    """
    if world_name not in WORLDS:
        raise ConfigError(f"world: unknown world {world_name!r}; choose from {', '.join(WORLDS)}")
    models = list(models)
    for name in models:
        if name not in MODEL_BUILDERS:
            raise ConfigError(f"models: unknown model {name!r}; choose from {', '.join(MODEL_NAMES)}")
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list or not models:
        raise ConfigError("seeds/models: need at least one seed and one model")
    for field, value, low in (("steps", steps, 1), ("batch_size", batch_size, 2), ("n_eval", n_eval, 100),
                              ("n_train", n_train, batch_size)):
        if value < low:
            raise ConfigError(f"{field}: must be ≥ {low} (got {value})")
    out = Path(out_dir)
    refuse_existing_file(out)  # before minutes of training, not after
    world = WORLDS[world_name]()
    settings = {"world": world_name, "steps": steps, "batch_size": batch_size, "lr": lr, "n_train": n_train,
                "n_eval": n_eval, "dci_samples": min(DCI_SAMPLES, n_eval), "dci_estimators": DCI_ESTIMATORS}

    train_factors, eval_factors = split_world(world, n_train, n_eval)
    train_images = to_uint8(world.render(train_factors))
    eval_images = to_uint8(world.render(eval_factors))

    runs: list[dict[str, Any]] = []
    jobs = [(name, seed) for name in models for seed in seed_list]
    bar = tqdm(jobs, desc="disentangle", unit="run", disable=not progress, dynamic_ncols=True)
    for name, seed in bar:
        bar.set_postfix(model=name, seed=seed)
        run_dir = out / "runs" / f"{name}_seed{seed}"
        result = _finished(run_dir, settings)
        if result is None:
            result = _train_and_score(name, seed, world, settings, train_images, train_factors, eval_images,
                                      eval_factors, run_dir, progress)
        runs.append(result)
        if seed == seed_list[0]:
            model = ImageAutoencoder.load(run_dir / "model")
            save_traversal(model, eval_images[:1000], out / "traversals" / f"{name}.png")
    bar.close()

    summary = summarize(runs, models)
    caption = (f"Disentanglement on {world_name}: {len(seed_list)} seeds, {steps} steps × batch {batch_size}, "
               f"{n_train} training images, {n_eval} held-out; mean ± 95% t-interval over seeds.")
    results = _jsonable({"settings": {**settings, "models": models, "seeds": seed_list}, "runs": runs,
                         "summary": summary})
    atomic_write_json(out / "results.json", results)
    atomic_write_bytes(out / "table.md", markdown_table(summary, caption).encode())
    return results


def _finished(run_dir: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    path = run_dir / "result.json"
    if not path.is_file() or not (run_dir / "model").is_dir():
        return None
    result = read_json(path, "run result")
    return result if result.get("settings") == settings else None


def _train_and_score(name: str, seed: int, world: FactorWorld, settings: dict[str, Any], train_images: Tensor,
                     train_factors: np.ndarray, eval_images: Tensor, eval_factors: np.ndarray, run_dir: Path,
                     progress: bool) -> dict[str, Any]:
    torch.manual_seed(derive_seed("disentangle-noise", seed))  # reparametrisation noise of the VAEs
    model = model_for(name, world, derive_seed("disentangle-init", seed))
    source = DictArraySource({"x": train_images, "labels": torch.as_tensor(train_factors)},
                             settings["batch_size"], seed=derive_seed("disentangle-batches", seed))
    steps = settings["steps"]
    config = TrainConfig(steps=steps, batch_size=settings["batch_size"], lr=settings["lr"],
                         warmup_steps=min(100, steps // 10), checkpoint_every=0, log_every=max(1, steps // 50),
                         progress=progress, seed=seed)
    start = time.perf_counter()
    history = Trainer(model, source, config).fit().history
    train_seconds = time.perf_counter() - start
    model.cpu().save(run_dir / "model")
    result = {"model": name, "seed": seed, "settings": settings, "train_seconds": train_seconds,
              "final_losses": {k: v for k, v in history[-1].items() if k not in ("step", "lr", "samples", "l0",
                                                                                  "dead_fraction", "elapsed_s")},
              **score(model, eval_images, eval_factors, seed)}
    if isinstance(model, BetaVAE):  # Gaussian encoders: which latents are active, passive or mixed
        report = passive_variables(model, eval_images, seed=seed)
        result["passive"] = {group: report[group] for group in ("active", "passive", "mixed")}
    atomic_write_json(run_dir / "result.json", _jsonable(result))
    return result


def _jsonable(obj: Any) -> Any:
    """NaN/inf → None and numpy scalars → Python numbers, so the JSON is standard."""
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
