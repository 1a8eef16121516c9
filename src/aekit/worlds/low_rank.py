"""A mixture of low-rank Gaussians (MoLRG) and its closed-form optimal denoiser.

Wang et al. 2024, "Diffusion models learn low-dimensional distributions via subspace clustering": each sample is
x = U_k a with a component k ~ π, a ~ N(0, I_r) and U_k an orthonormal d×r basis of a random subspace. For the
noisy x_t = x + σ ε the MMSE denoiser is known exactly,

    E[x | x_t] = Σ_k w_k(x_t) · U_k (U_kᵀU_k + σ² I_r)⁻¹ U_kᵀ x_t,   w_k ∝ π_k N(x_t; 0, U_kU_kᵀ + σ² I),

which for orthonormal bases is Σ_k w_k U_kU_kᵀ x_t / (1 + σ²): a softmax-gated mixture of projections, the form
a trained low-rank denoiser (`aekit.models.low_rank`) shares with learned bases.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..config_base import ConfigBase
from ..errors import ConfigError
from ..seeding import derive_seed

__all__ = ["LowRankMixture", "LowRankMixtureConfig", "LowRankSample", "gaussian_log_densities",
           "optimal_denoiser", "posterior_weights"]


@dataclass
class LowRankMixtureConfig(ConfigBase):
    section = "world"

    d: int = 64  # ambient dimension
    n_components: int = 2  # K subspaces
    rank: int = 4  # r, the dimension of every subspace
    seed: int = 0

    def validate(self) -> None:
        self._require(self.d >= 1, "d", "must be ≥ 1")
        self._require(self.n_components >= 1, "n_components", "must be ≥ 1")
        self._require(1 <= self.rank <= self.d, "rank", f"must be between 1 and d = {self.d}")


@dataclass
class LowRankSample:
    x: Tensor  # (n, d) clean samples
    labels: Tensor  # (n,) int64 component of each sample


class LowRankMixture:
    """K random r-dimensional subspaces of R^d with equal weights; `bases` is (K, d, r) with orthonormal columns."""

    def __init__(self, config: LowRankMixtureConfig | None = None, **overrides):
        config = config if config is not None else LowRankMixtureConfig()
        if overrides:
            config = LowRankMixtureConfig.from_dict({**config.to_dict(), **overrides}, where="world")
        config.validate()
        self.config = config
        g = torch.Generator().manual_seed(derive_seed("low_rank.bases", config.seed))
        gaussian = torch.randn(config.n_components, config.d, config.rank, generator=g, dtype=torch.float64)
        # QR of a Gaussian matrix spans a uniformly random subspace (Haar measure on the Grassmannian)
        self.bases = torch.linalg.qr(gaussian).Q
        self.weights = torch.full((config.n_components,), 1.0 / config.n_components, dtype=torch.float64)

    @property
    def d(self) -> int:
        return self.config.d

    def sample(self, n: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> LowRankSample:
        """n samples with their component labels; the same (world, seed) gives the same rows."""
        if n < 1:
            raise ConfigError(f"world.sample: n must be ≥ 1 (got {n})")
        g = torch.Generator().manual_seed(derive_seed("low_rank.sample", self.config.seed, seed))
        labels = torch.multinomial(self.weights, n, replacement=True, generator=g)
        a = torch.randn(n, self.config.rank, generator=g, dtype=torch.float64)
        x = torch.einsum("ndr,nr->nd", self.bases[labels], a)
        return LowRankSample(x=x.to(dtype), labels=labels)

    def noise(self, shape: tuple[int, ...], seed: int = 0, dtype: torch.dtype = torch.float32) -> Tensor:
        """Standard Gaussian noise ε from its own stream, so test noise never repeats the samples' randomness."""
        g = torch.Generator().manual_seed(derive_seed("low_rank.noise", self.config.seed, seed))
        return torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype)

    def denoise(self, x_t: Tensor, sigma: float) -> Tensor:
        """The optimal denoiser of this world at noise level sigma."""
        return optimal_denoiser(x_t, sigma, self.bases, self.weights)


def _check(x_t: Tensor, sigma: float, bases: Tensor, weights: Tensor) -> None:
    if not (math.isfinite(sigma) and sigma > 0):
        raise ConfigError(f"sigma must be a positive number (got {sigma})")
    if bases.ndim != 3 or x_t.ndim != 2 or bases.shape[1] != x_t.shape[1]:
        raise ConfigError(f"bases must be (K, d, r) and x_t (n, d) with the same d (got {tuple(bases.shape)} and "
                          f"{tuple(x_t.shape)})")
    if weights.shape != (bases.shape[0],) or bool((weights <= 0).any()):
        raise ConfigError(f"weights must be {bases.shape[0]} positive numbers, one per basis")


def gaussian_log_densities(x_t: Tensor, sigma: float, bases: Tensor) -> Tensor:
    """(n, K) log N(x_t; 0, U_kU_kᵀ + σ²I) by Woodbury: only r×r systems, never a d×d covariance.

    (σ²I + UUᵀ)⁻¹ = σ⁻²(I − U M⁻¹ Uᵀ) with M = σ²I_r + UᵀU, and log det(σ²I + UUᵀ) = (d − r) log σ² + log det M.
    Works for any (not only orthonormal) bases."""
    _, d, r = bases.shape
    s2 = sigma**2
    gram = bases.transpose(1, 2) @ bases  # (K, r, r)
    m = gram + s2 * torch.eye(r, dtype=bases.dtype, device=bases.device)
    chol = torch.linalg.cholesky(m)
    proj = torch.einsum("kdr,nd->knr", bases, x_t)  # Uᵀx_t per component, (K, n, r)
    solved = torch.cholesky_solve(proj.transpose(1, 2), chol).transpose(1, 2)  # M⁻¹Uᵀx_t
    quad = ((x_t * x_t).sum(-1) - (proj * solved).sum(-1)) / s2  # (K, n)
    logdet = (d - r) * math.log(s2) + 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)  # (K,)
    return (-0.5 * (d * math.log(2 * math.pi) + logdet[:, None] + quad)).T


def posterior_weights(x_t: Tensor, sigma: float, bases: Tensor, weights: Tensor) -> Tensor:
    """(n, K) P(component k | x_t), normalised with log-sum-exp (the log-densities are far below exp's range)."""
    _check(x_t, sigma, bases, weights)
    logits = gaussian_log_densities(x_t, sigma, bases) + torch.log(weights)
    return torch.softmax(logits, dim=-1)


def optimal_denoiser(x_t: Tensor, sigma: float, bases: Tensor, weights: Tensor) -> Tensor:
    """E[x | x_t] for x_t = x + σε under the mixture: Σ_k w_k U_k(U_kᵀU_k + σ²I)⁻¹U_kᵀ x_t, which is
    Σ_k w_k U_kU_kᵀ x_t / (1 + σ²) for orthonormal bases."""
    bases = bases.to(x_t.dtype)
    weights = weights.to(x_t.dtype)
    w = posterior_weights(x_t, sigma, bases, weights)  # (n, K)
    r = bases.shape[2]
    m = bases.transpose(1, 2) @ bases + sigma**2 * torch.eye(r, dtype=x_t.dtype, device=x_t.device)
    coef = torch.linalg.solve(m.unsqueeze(1), torch.einsum("kdr,nd->knr", bases, x_t).unsqueeze(-1)).squeeze(-1)
    means = torch.einsum("kdr,knr->knd", bases, coef)  # E[x | x_t, k], (K, n, d)
    return torch.einsum("nk,knd->nd", w, means)
