"""Stochastic CCA, ridge CCA/PLS and deep CCA with the Eckhart–Young loss (Chapman, Aguila & Wells, ICLR 2024).

For the generalised eigenproblem A u = λ B u (B positive definite) the Eckhart–Young objective is

    L(U) = −2 tr(UᵀAU) + tr(UᵀBU · UᵀBU),

unconstrained; its minimum is −Σ_{i≤k} λ_i² over the k largest (positive) eigenvalues, reached at U = V_k Λ_k^{1/2}
up to a k×k rotation, so the top-k subspace comes out without any whitening or orthogonality constraint.

For two views with representations Z_x = f(X), Z_y = g(Y) and U = [W_x; W_y] (linear f, g), CCA is the problem with
A = [[0, Σxy], [Σyx, 0]] and B = blockdiag(Σxx, Σyy), so UᵀAU = Γ = Cov(Z_x, Z_y) + Cov(Z_y, Z_x) and UᵀBU = Δ =
Var(Z_x) + Var(Z_y). Ridge CCA blends B = (1 − c)·Σ + c·I per view (c = 1 is PLS), which adds c·(W_xᵀW_x + W_yᵀW_y)
to Δ. Deep CCA uses the same loss on the representations of two MLPs.

Unbiased minibatch gradients: the loss is linear in Γ and quadratic in Δ. A batch of m rows is split into its first
and second halves; Γ is estimated on the whole batch and Δ once on each half (Δ₁, Δ₂), every covariance centred on
its own rows' mean with the Bessel factor 1/(rows − 1), so each is an unbiased estimate of the population matrix.
The quadratic term is tr(Δ₁Δ₂): because the halves are independent, E[tr(Δ₁Δ₂)] = tr(E[Δ₁] E[Δ₂]) = tr(ΔΔ), so the
loss and (linearity of differentiation) its gradient are unbiased. The halves are exactly independent when rows are
drawn with replacement (how the tests check it); the Trainer's shuffled epochs draw without replacement, which
leaves an O(1/N) bias from a dataset of N rows.

`StochasticCCA` is an `Autoencoder` so the one `Trainer` trains it: a batch is {"x": view 1, "y": view 2}, the codes
are Z_x and the only loss term is the minibatch EY loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..config_base import ConfigBase, setting
from ..errors import ShapeError
from ..nn.codes import Codes
from ..seeding import derive_seed
from .base import Autoencoder, Output

__all__ = ["ENCODERS", "StochasticCCA", "StochasticCCAConfig", "covariance", "ey_objective", "ey_terms"]

ENCODERS = ("linear", "mlp")


def ey_objective(u: Tensor, a: Tensor, b: Tensor, b2: Tensor | None = None) -> Tensor:
    """−2 tr(UᵀAU) + tr(UᵀBU · UᵀB₂U) with B₂ = B by default; pass two independent estimates of B for an unbiased
    stochastic objective."""
    b2 = b if b2 is None else b2
    return -2 * torch.trace(u.T @ a @ u) + torch.trace((u.T @ b @ u) @ (u.T @ b2 @ u))


def covariance(p: Tensor, q: Tensor) -> Tensor:
    """Unbiased cross-covariance (pᵀq over rows, each centred on its own mean, divided by rows − 1)."""
    return (p - p.mean(0)).T @ (q - q.mean(0)) / (len(p) - 1)


def ey_terms(zx: Tensor, zy: Tensor, ridge_penalty: Tensor | None = None, ridge: float = 0.0) -> dict[str, Tensor]:
    """The minibatch EY loss of two (m, k) representations, split into its two terms: "correlation" = −2 tr(Γ̂)
    on the whole batch, "whitening" = tr(Δ̂₁Δ̂₂) from the two halves. `ridge_penalty` = W_xᵀW_x + W_yᵀW_y (k×k) is
    what B's c·I blend adds to Δ (linear models only); `ridge` is c."""
    m = len(zx)
    if m < 4:
        raise ShapeError(f"stochastic CCA: a batch needs at least 4 rows (two per half), got {m}")
    gamma = covariance(zx, zy)
    half = m // 2

    def delta(rows: slice) -> Tensor:
        d = covariance(zx[rows], zx[rows]) + covariance(zy[rows], zy[rows])
        return (1 - ridge) * d + ridge * ridge_penalty if ridge_penalty is not None else d

    d1, d2 = delta(slice(0, half)), delta(slice(half, m))
    # tr(Γ) = tr(Cov(Z_x, Z_y) + Cov(Z_y, Z_x)) = 2 tr(Cov(Z_x, Z_y))
    return {"correlation": -4 * torch.trace(gamma), "whitening": torch.trace(d1 @ d2)}


@dataclass
class StochasticCCAConfig(ConfigBase):
    section = "model"

    dx: int = setting(32, "dimension of the first view")
    dy: int = setting(32, "dimension of the second view")
    k: int = setting(4, "canonical directions learned")
    encoder: str = setting("linear", f"the view encoders: {' or '.join(ENCODERS)} (deep CCA)")
    hidden: int = setting(64, "hidden units of each mlp encoder")
    ridge: float = setting(0.0, "c in B = (1 − c)·Σ + c·I: 0 is CCA, 1 is PLS (linear encoders only)")
    seed: int = setting(0, "seeds the initial weights")

    @property
    def n_latents(self) -> int:
        return self.k

    def validate(self) -> None:
        self._require(self.dx >= 1, "dx", "must be ≥ 1")
        self._require(self.dy >= 1, "dy", "must be ≥ 1")
        self._require(1 <= self.k <= self.dx + self.dy, "k", "must be between 1 and dx + dy")
        self._require(self.encoder in ENCODERS, "encoder", f"choose one of {list(ENCODERS)}")
        self._require(self.hidden >= 1, "hidden", "must be ≥ 1")
        self._require(math.isfinite(self.ridge) and 0 <= self.ridge <= 1, "ridge", "must be in [0, 1]")
        self._require(self.ridge == 0 or self.encoder == "linear", "ridge",
                      "the c·I blend is defined on linear weights only; use encoder linear")


def _encoder(d: int, cfg: StochasticCCAConfig) -> nn.Module:
    if cfg.encoder == "linear":
        # no bias: the loss only sees centred covariances, so a bias would get no gradient
        return nn.Linear(d, cfg.k, bias=False)
    return nn.Sequential(nn.Linear(d, cfg.hidden), nn.LeakyReLU(), nn.Linear(cfg.hidden, cfg.hidden),
                         nn.LeakyReLU(), nn.Linear(cfg.hidden, cfg.k))


class StochasticCCA(Autoencoder):
    """Two encoders f, g trained with the minibatch EY loss; `transform(x, y)` gives (Z_x, Z_y)."""

    kind = "stochastic_cca"
    config_class = StochasticCCAConfig

    def __init__(self, config: StochasticCCAConfig):
        super().__init__(config)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed("stochastic_cca.init", config.seed))
            self.f = _encoder(config.dx, config)
            self.g = _encoder(config.dy, config)
            if config.encoder == "linear":
                # small weights: the EY loss grows like ‖W‖⁴, and Adam's first steps are lr-sized whatever the scale
                for layer in (self.f, self.g):
                    nn.init.normal_(layer.weight, std=0.1 / math.sqrt(layer.in_features))

    def transform(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        return self.f(x), self.g(y)

    def encode(self, x: Tensor) -> Codes:
        return Codes(self.config.k, dense=self.f(x))

    def decode(self, codes: Codes) -> Tensor:
        raise NotImplementedError("CCA learns projections of two views, not a reconstruction; use transform(x, y)")

    def ridge_penalty(self) -> Tensor | None:
        if self.config.ridge == 0:
            return None
        return self.f.weight @ self.f.weight.T + self.g.weight @ self.g.weight.T

    def forward(self, batch: dict[str, Tensor], dead_mask: Tensor | None = None) -> Output:
        """The minibatch EY loss of {"x", "y"}; `dead_mask` is the Trainer's and unused."""
        if not isinstance(batch, dict) or set(batch) < {"x", "y"}:
            raise ShapeError("stochastic CCA: a batch must be a dict with the two views under 'x' and 'y'")
        zx, zy = self.transform(batch["x"], batch["y"])
        losses = ey_terms(zx, zy, self.ridge_penalty(), self.config.ridge)
        return Output(x_hat=zx, codes=Codes(self.config.k, dense=zx), losses=losses)
