"""A seeded two-view world with known canonical correlations: X = A z + σ_x ε_x, Y = B z + σ_y ε_y.

z has k independent N(0, 1) components; A (dx×k) and B (dy×k) have orthonormal columns scaled by per-component
signal strengths that fall with the component index, so the canonical correlations are distinct. The population
covariances are Σxx = AAᵀ + σ_x²I, Σyy = BBᵀ + σ_y²I, Σxy = ABᵀ, and the canonical correlations are the singular
values of Σxx^{-1/2} Σxy Σyy^{-1/2} (`analytic_correlations`), the numbers a CCA of enough samples must recover.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..config_base import ConfigBase, setting
from ..seeding import derive_seed

__all__ = ["MultiViewConfig", "MultiViewWorld"]


@dataclass
class MultiViewConfig(ConfigBase):
    section = "world"

    dx: int = setting(20, "dimension of view X")
    dy: int = setting(20, "dimension of view Y")
    k: int = setting(4, "shared latent components")
    noise: float = setting(1.0, "noise standard deviation σ of both views")
    strongest: float = setting(3.0, "signal strength of the first component; component i has strongest / (i + 1)")
    seed: int = setting(0, "seeds the loadings and the samples")

    def validate(self) -> None:
        self._require(1 <= self.k <= min(self.dx, self.dy), "k", "must be between 1 and min(dx, dy)")
        self._require(math.isfinite(self.noise) and self.noise > 0, "noise", "must be a positive number")
        self._require(math.isfinite(self.strongest) and self.strongest > 0, "strongest", "must be positive")


def _inv_sqrt(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(m)
    return (v / np.sqrt(w)) @ v.T


class MultiViewWorld:
    """Loadings A, B fixed by the seed; `sample(n)` draws (X, Y) and `analytic_correlations()` the truth."""

    def __init__(self, config: MultiViewConfig | None = None):
        self.config = config or MultiViewConfig()
        self.config.validate()
        cfg = self.config
        rng = np.random.default_rng(derive_seed("multiview.loadings", cfg.seed))
        strength = cfg.strongest / np.arange(1, cfg.k + 1)
        self.a = np.linalg.qr(rng.standard_normal((cfg.dx, cfg.k)))[0] * strength
        self.b = np.linalg.qr(rng.standard_normal((cfg.dy, cfg.k)))[0] * strength
        self._draws = 0

    def covariances(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(Σxx, Σyy, Σxy) of the population."""
        s2 = self.config.noise**2
        return (self.a @ self.a.T + s2 * np.eye(self.config.dx), self.b @ self.b.T + s2 * np.eye(self.config.dy),
                self.a @ self.b.T)

    def analytic_correlations(self) -> np.ndarray:
        """The k non-zero population canonical correlations, largest first."""
        sxx, syy, sxy = self.covariances()
        return np.linalg.svd(_inv_sqrt(sxx) @ sxy @ _inv_sqrt(syy), compute_uv=False)[: self.config.k]

    def sample(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """n fresh (X, Y) rows as float32; every call draws new samples from a stream fixed by the seed."""
        rng = np.random.default_rng(derive_seed("multiview.samples", self.config.seed, self._draws))
        self._draws += 1
        cfg = self.config
        z = rng.standard_normal((n, cfg.k))
        x = z @ self.a.T + cfg.noise * rng.standard_normal((n, cfg.dx))
        y = z @ self.b.T + cfg.noise * rng.standard_normal((n, cfg.dy))
        return x.astype(np.float32), y.astype(np.float32)
