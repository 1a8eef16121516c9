"""A synthetic feature world: activations are sparse non-negative mixtures of known unit directions.

This is the ground truth the SAE tests are scored against: which directions exist (`directions`), how often
each fires (`probabilities`), and for every sample which features fired with what magnitude.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..config import ConfigBase
from ..seeding import derive_seed


@dataclass
class FeatureWorldConfig(ConfigBase):
    section = "world"

    d: int = 64
    n_features: int = 512
    mean_active: float = 5.0  # expected number of features firing per sample
    probability_spread: float = 10.0  # max / min firing probability, spread log-uniformly
    magnitude_mean: float = 1.0
    magnitude_std: float = 0.25
    noise_std: float = 0.01
    seed: int = 0

    def validate(self) -> None:
        self._require(self.d >= 1, "d", "must be ≥ 1")
        self._require(self.n_features >= 1, "n_features", "must be ≥ 1")
        self._require(0 < self.mean_active <= self.n_features, "mean_active", "must be in (0, n_features]")
        self._require(self.probability_spread >= 1, "probability_spread", "must be ≥ 1")
        self._require(self.magnitude_std >= 0 and self.noise_std >= 0, "noise_std", "std must be ≥ 0")


@dataclass
class FeatureSample:
    x: Tensor  # (n, d) activations
    magnitudes: Tensor  # (n, n_features) true feature magnitudes, 0 where a feature is off

    @property
    def active(self) -> Tensor:
        return self.magnitudes > 0


class FeatureWorld:
    """Seeded generator of activations with known features."""

    def __init__(self, config: FeatureWorldConfig | None = None, **overrides):
        config = config or FeatureWorldConfig(**overrides)
        config.validate()
        self.config = config
        g = torch.Generator().manual_seed(derive_seed("feature-world", config.seed))
        directions = torch.randn(config.n_features, config.d, generator=g)
        self.directions = directions / directions.norm(dim=1, keepdim=True)
        # log-uniform spread, then rescaled so the expected number of active features is mean_active
        u = torch.rand(config.n_features, generator=g)
        raw = torch.exp(u * math.log(config.probability_spread))
        self.probabilities = (raw * config.mean_active / raw.sum()).clamp(max=1.0)

    def sample(self, n: int, seed: int, with_magnitudes: bool = True, chunk: int = 65536) -> FeatureSample:
        """n samples; the same (world, seed, n) gives the same numbers.

        Pass `with_magnitudes=False` for large training sets: the (n, n_features) truth is then not kept.
        """
        cfg = self.config
        g = torch.Generator().manual_seed(derive_seed("feature-sample", cfg.seed, seed))
        x = torch.empty(n, cfg.d)
        magnitudes = torch.zeros(n if with_magnitudes else 0, cfg.n_features)
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            fire = torch.rand(m, cfg.n_features, generator=g) < self.probabilities
            size = (cfg.magnitude_mean + cfg.magnitude_std * torch.randn(m, cfg.n_features, generator=g)).abs()
            mags = torch.where(fire, size, torch.zeros(()))
            x[start : start + m] = mags @ self.directions + cfg.noise_std * torch.randn(m, cfg.d, generator=g)
            if with_magnitudes:
                magnitudes[start : start + m] = mags
        return FeatureSample(x=x, magnitudes=magnitudes)
