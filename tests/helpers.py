"""Small shared builders for tests."""

from __future__ import annotations

import torch

from aekit.worlds import FeatureWorld, FeatureWorldConfig


def small_world(seed: int = 0, d: int = 16, n_features: int = 32, mean_active: float = 3.0) -> FeatureWorld:
    return FeatureWorld(FeatureWorldConfig(d=d, n_features=n_features, mean_active=mean_active, seed=seed))


def small_data(n: int = 4096, seed: int = 0) -> torch.Tensor:
    return small_world(seed).sample(n, seed=1, with_magnitudes=False).x
