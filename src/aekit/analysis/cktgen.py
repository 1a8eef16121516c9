"""CktGen on the analogue-circuit world: training by the one Trainer, conditional generation, and its scores.

Targets are the specifications of held-out circuits (none of them in the training set). Every method proposes
`samples` circuits per target and is scored on all of them:

* validity — the fraction that obey the world's rules (`aekit.worlds.circuits_analog.is_valid`);
* novelty — the fraction of the valid ones that are not training circuits (None without a valid one);
* uniqueness — distinct valid circuits over valid circuits (None likewise);
* Spec-Acc — the fraction whose computed gain and bandwidth both lie within a relative `tolerance` of the target
  (an invalid circuit has no specification and misses);
* novel Spec-Acc — the fraction that are valid, novel and within tolerance: new designs that meet the target.

Baselines: uniform random tokens after BOS (the floor of validity), random valid circuits from the world's
sampler (valid by construction, blind to the target), and retrieval of the `samples` training circuits whose
specifications are nearest to the target in the model's feature space (valid, never novel).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..data.sources import DictArraySource
from ..errors import ConfigError
from ..models.cktgen import BOS_TOKEN, PAD_TOKEN, CktGen, CktGenConfig
from ..seeding import derive_seed
from ..train.config import TrainConfig
from ..train.trainer import Trainer
from ..worlds.circuits_analog import (
    BOS,
    PAD,
    SEQUENCE_LENGTH,
    VOCAB,
    CircuitWorld,
    is_valid,
    sample_circuits,
    spec_features,
    specifications,
)

__all__ = ["BATCH_SIZE", "LR", "METHODS", "TOLERANCE", "baseline_circuits", "cktgen_study", "generation_metrics",
           "reconstruction", "train_cktgen"]

BATCH_SIZE, LR = 128, 2e-3  # fixed before measuring
TOLERANCE = 0.1  # a generated circuit meets the target when |achieved / target − 1| ≤ 0.1 for gain and bandwidth
METHODS = ("CktGen", "nearest training circuit", "random valid circuits", "random tokens")
assert (PAD_TOKEN, BOS_TOKEN) == (PAD, BOS)  # the model's special tokens are the world's


def train_cktgen(world: CircuitWorld, *, steps: int = 3000, seed: int = 0, device: str = "cpu",
                 progress: bool = False, **config: Any) -> CktGen:
    """A CktGen trained by the Trainer on the world's training circuits and their specifications; ends on the CPU."""
    model = CktGen(CktGenConfig(vocab=len(VOCAB), length=SEQUENCE_LENGTH, spec_dim=2, seed=seed, **config))
    arrays = {"tokens": torch.as_tensor(world.train), "spec": torch.as_tensor(spec_features(world.train_specs))}
    source = DictArraySource(arrays, BATCH_SIZE, seed=derive_seed("cktgen-batches", seed), where="training circuits")
    train = TrainConfig(steps=steps, batch_size=BATCH_SIZE, lr=LR, warmup_steps=min(100, steps // 10),
                        checkpoint_every=0, log_every=max(1, steps // 20), progress=progress, seed=seed,
                        device=device)
    Trainer(model, source, train).fit()
    return model.cpu().eval()


def _within(achieved: np.ndarray, target: np.ndarray, tolerance: float) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        ok = np.abs(achieved / target - 1.0) <= tolerance
    return ok.all(1)  # a NaN (invalid circuit) compares False


def generation_metrics(circuits: np.ndarray, targets: np.ndarray, train_keys: set[bytes],
                       tolerance: float = TOLERANCE) -> dict[str, Any]:
    """Validity, novelty, Spec-Acc and novel Spec-Acc of (n, T) circuits against their (n, 2) target [gain, bw]."""
    circuits = np.asarray(circuits, dtype=np.int64)
    if len(circuits) != len(targets) or len(circuits) == 0:
        raise ConfigError(f"cktgen: {len(circuits)} circuits for {len(targets)} targets; need one target per circuit")
    valid = is_valid(circuits)
    novel = np.array([row.tobytes() not in train_keys for row in circuits]) & valid
    meets = _within(specifications(circuits), np.asarray(targets, dtype=np.float64), tolerance)
    distinct = {row.tobytes() for row in circuits[valid]}
    n_valid = int(valid.sum())
    return {"n": len(circuits), "validity": float(valid.mean()),
            "novelty": float(novel.sum() / n_valid) if n_valid else None,  # None: no valid circuit to judge
            "uniqueness": len(distinct) / n_valid if n_valid else None,
            "spec_acc": float(meets.mean()), "novel_spec_acc": float((meets & novel).mean())}


def baseline_circuits(method: str, world: CircuitWorld, targets: np.ndarray, samples: int, seed: int) -> np.ndarray:
    """(len(targets) · samples, T) proposals of a baseline, `samples` consecutive rows per target."""
    n = len(targets) * samples
    if method == "random tokens":
        rng = np.random.default_rng(derive_seed("cktgen-random-tokens", seed))
        out = rng.integers(0, len(VOCAB), (n, SEQUENCE_LENGTH))
        out[:, 0] = BOS
        return out
    if method == "random valid circuits":
        return sample_circuits(n, derive_seed("cktgen-random-valid", seed))
    if method == "nearest training circuit":
        have, want = spec_features(world.train_specs), spec_features(targets)
        distance = ((want[:, None, :] - have[None, :, :]) ** 2).sum(-1)
        nearest = np.argsort(distance, axis=1, kind="stable")[:, :samples]
        return world.train[nearest.reshape(-1)]
    raise ConfigError(f"cktgen: unknown baseline {method!r}; choose one of {', '.join(METHODS[1:])}")


@torch.no_grad()
def reconstruction(model: CktGen, circuits: np.ndarray) -> float:
    """Fraction of circuits decoded back exactly (greedy) from their posterior means."""
    tokens = torch.as_tensor(circuits)
    return float((model.decode(model.encode(tokens)) == tokens).all(1).float().mean())


def cktgen_study(model: CktGen, world: CircuitWorld, *, samples: int = 5, seed: int = 0,
                 tolerance: float = TOLERANCE) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Score CktGen and the baselines on the world's held-out targets. Returns (record, proposals per method);
    the record holds each method's `generation_metrics` and CktGen's exact reconstruction of held-out circuits."""
    if samples < 1 or not (0 < tolerance < 1):
        raise ConfigError(f"cktgen: samples must be ≥ 1 and the tolerance in (0, 1) (got {samples}, {tolerance})")
    targets = np.repeat(world.test_specs, samples, 0)
    keys = world.train_keys()
    proposals = {"CktGen": model.generate(torch.as_tensor(spec_features(world.test_specs)), samples, seed).numpy()}
    for method in METHODS[1:]:
        proposals[method] = baseline_circuits(method, world, world.test_specs, samples, seed)
    record = {"methods": {name: generation_metrics(c, targets, keys, tolerance) for name, c in proposals.items()},
              "reconstruction_held_out": reconstruction(model, world.test)}
    return record, proposals
