"""Generalisation of a trained low-rank denoiser against training-set size, scored on a MoLRG world.

For each N/d ratio and seed a `LowRankDenoiser` is trained by the one `Trainer` on N samples of the world and
scored on fresh samples: the normalised test error ‖D(x_t) − x‖² / ‖x‖² (summed over the test set) and the largest
principal angle between each learned subspace and its true one, components matched by the Hungarian algorithm
on the angles. The world's optimal denoiser gives the error floor.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from scipy.linalg import subspace_angles
from scipy.optimize import linear_sum_assignment

from ..data.sources import ArraySource
from ..errors import ConfigError
from ..models.low_rank import LowRankDenoiser, LowRankDenoiserConfig
from ..train import TrainConfig, Trainer
from ..worlds.low_rank import LowRankMixture

__all__ = ["DEFAULT_RATIOS", "denoising_error", "matched_subspace_angles", "train_low_rank_denoiser",
           "denoiser_study"]

DEFAULT_RATIOS = (0.0625, 0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
TEST_SAMPLES = 4000


def denoising_error(denoised: torch.Tensor, x: torch.Tensor) -> float:
    """Σ‖D(x_t) − x‖² / Σ‖x‖²: 0 is perfect, 1 is as bad as answering 0."""
    x = x.double()
    return float(((denoised.double() - x) ** 2).sum() / (x**2).sum())


def matched_subspace_angles(learned: torch.Tensor, true: torch.Tensor) -> list[float]:
    """Per true component, the largest principal angle (degrees) to the learned subspace the Hungarian algorithm
    pairs it with (minimising the sum of largest angles); (K, d, r) bases in, K angles out."""
    a = learned.detach().double().cpu().numpy()
    b = true.detach().double().cpu().numpy()
    cost = np.array([[np.degrees(subspace_angles(a[i], b[j]).max()) for j in range(len(b))] for i in range(len(a))])
    rows, cols = linear_sum_assignment(cost)
    return [float(cost[i, j]) for i, j in sorted(zip(rows, cols, strict=True), key=lambda p: p[1])]


def train_low_rank_denoiser(x: torch.Tensor, n_components: int, rank: int, sigma: float, *, seed: int = 0,
                            steps: int = 1000, lr: float = 0.01, batch_size: int = 128,
                            init: str = "data") -> LowRankDenoiser:
    """A `LowRankDenoiser` trained on the clean rows `x` by the Trainer (fresh noise every step)."""
    config = LowRankDenoiserConfig(d=x.shape[1], n_components=n_components, rank=rank, sigma=sigma, seed=seed,
                                   init=init)
    model = LowRankDenoiser(config)
    train = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, warmup_steps=min(20, steps - 1),
                        checkpoint_every=0, progress=False, log_every=steps, device="cpu", seed=seed,
                        init_samples=min(2048, 16 * len(x)))
    Trainer(model, ArraySource(x, batch_size=batch_size, seed=seed, where="training samples"), train).fit()
    return model


def denoiser_study(d: int = 64, n_components: int = 2, rank: int = 4, sigma: float = 0.1,
                   ratios: Sequence[float] = DEFAULT_RATIOS, seeds: int = 3, *, steps: int = 1000,
                   lr: float = 0.01, init: str = "data", world_seed: int = 0,
                   progress=None) -> dict[str, Any]:
    """Test error and matched principal angles of the trained denoiser for every N/d in `ratios` and seed, with
    the optimal denoiser's error on the same test set as the floor. `progress(line)` is called after each run."""
    if not ratios or any(not (r > 0) for r in ratios):
        raise ConfigError(f"ratios must be positive numbers (got {list(ratios)})")
    if seeds < 1:
        raise ConfigError(f"seeds must be ≥ 1 (got {seeds})")
    world = LowRankMixture(d=d, n_components=n_components, rank=rank, seed=world_seed)
    test = world.sample(TEST_SAMPLES, seed=10**6)
    x_t = test.x.double() + sigma * world.noise(tuple(test.x.shape), seed=10**6).double()
    floor = denoising_error(world.denoise(x_t, sigma), test.x)
    runs = []
    for ratio in ratios:
        n = max(1, int(round(ratio * d)))
        for seed in range(seeds):
            start = time.perf_counter()
            train = world.sample(n, seed=seed)
            model = train_low_rank_denoiser(train.x, n_components, rank, sigma, seed=seed, steps=steps, lr=lr,
                                            init=init)
            with torch.no_grad():
                error = denoising_error(model.denoise(x_t.float()), test.x)
            angles = matched_subspace_angles(model.bases, world.bases)
            runs.append({"ratio": ratio, "n_train": n, "seed": seed, "test_error": error,
                         "max_angle_deg": max(angles), "angles_deg": angles,
                         "seconds": time.perf_counter() - start})
            if progress is not None:
                progress(f"N/d {ratio:g} (N {n}) seed {seed}: error {error:.4f}, max angle {max(angles):.1f}°")
    summary = []
    for ratio in ratios:
        mine = [r for r in runs if r["ratio"] == ratio]
        errors = np.array([r["test_error"] for r in mine])
        angles = np.array([r["max_angle_deg"] for r in mine])
        summary.append({"ratio": ratio, "n_train": mine[0]["n_train"], "error_mean": float(errors.mean()),
                        "error_std": float(errors.std()), "error_max": float(errors.max()),
                        "max_angle_mean": float(angles.mean()), "max_angle_max": float(angles.max())})
    return {"world": world.config.to_dict(), "sigma": sigma, "seeds": seeds, "steps": steps, "lr": lr,
            "init": init, "test_samples": TEST_SAMPLES, "optimal_error": floor,
            "optimal_error_theory": sigma**2 / (1 + sigma**2), "runs": runs, "summary": summary}
