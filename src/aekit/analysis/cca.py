"""Stochastic CCA against the exact solution: data, the exact GEP, the total-correlation metric and one study run.

Two datasets: scikit-learn's bundled digits split into the left and right 8×4 halves of each image (two 32-dim
views), and the seeded `MultiViewWorld` with analytic canonical correlations. Both views are standardised per
column (constant columns stay 0), which leaves CCA unchanged and puts PLS and the learning rate on a common scale.

The metric is PCC, the total canonical correlation captured: the sum of the canonical correlations between the k
learned projections Z_x and Z_y (a CCA of the two k-column blocks, so it ignores any rotation within the learned
subspace), measured on the training data, the rows whose full-batch GEP the stochastic method approximates. The
exact solution is `scipy.linalg.eigh` of that GEP; its PCC is the reference, and a learned model's PCC over it is
the ratio reported. Training is the one `Trainer`, `epochs` passes over the rows in batches of `batch_size`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.linalg
import torch

from ..data.sources import DictArraySource
from ..errors import ConfigError
from ..models.cca import StochasticCCA, StochasticCCAConfig
from ..train import TrainConfig, Trainer
from ..worlds.multiview import MultiViewConfig, MultiViewWorld

__all__ = ["DATASETS", "DEFAULT_LR", "DEFAULT_RIDGE", "MODELS", "canonical_correlations", "cca_study", "exact_gep",
           "load_views", "sklearn_cca", "train_cca"]

DATASETS = ("digits", "multiview")
MODELS = ("linear", "ridge", "deep")
DEFAULT_RIDGE = 0.5  # c of the "ridge" model unless given: halfway between CCA (c = 0) and PLS (c = 1)
MULTIVIEW_ROWS = 2000
# Adam learning rates picked once on the multiview world (seeds 0 and 1, one epoch of batch 32; linear from 0.02,
# 0.05, 0.1 and deep from 0.003, 0.01), never on digits, so the digits numbers are not tuned to digits
DEFAULT_LR = {"linear": 2e-2, "ridge": 2e-2, "deep": 3e-3}
EIG_FLOOR = 1e-9  # relative: eigenvalues of a view's covariance below this are directions the data never varies in


def _standardise(v: np.ndarray) -> np.ndarray:
    v = v - v.mean(0)
    std = v.std(0)
    return (v / np.where(std > 0, std, 1.0)).astype(np.float32)


def load_views(data: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(X, Y, info): the standardised views of `data` and what they are (multiview adds the analytic correlations)."""
    if data == "digits":
        from sklearn.datasets import load_digits

        images = load_digits().images.astype(np.float64)  # (1797, 8, 8)
        x, y = images[:, :, :4].reshape(len(images), -1), images[:, :, 4:].reshape(len(images), -1)
        info: dict[str, Any] = {"data": "digits", "rows": len(images), "views": "left and right 8×4 image halves"}
    elif data == "multiview":
        world = MultiViewWorld(MultiViewConfig(seed=seed))
        x, y = world.sample(MULTIVIEW_ROWS)
        info = {"data": "multiview", "rows": MULTIVIEW_ROWS, "world": world.config.to_dict(),
                "analytic_correlations": world.analytic_correlations().tolist()}
    else:
        raise ConfigError(f"cca: unknown data {data!r}; choose one of {list(DATASETS)}")
    info.update(dx=x.shape[1], dy=y.shape[1])
    return _standardise(x), _standardise(y), info


def _inv_sqrt(m: np.ndarray) -> np.ndarray:
    """Pseudo-inverse square root: directions with (relatively) zero variance are dropped, not blown up."""
    w, v = np.linalg.eigh((m + m.T) / 2)
    keep = w > EIG_FLOOR * max(float(w.max()), 1e-300)
    return (v[:, keep] / np.sqrt(w[keep])) @ v[:, keep].T


def canonical_correlations(zx: np.ndarray, zy: np.ndarray) -> np.ndarray:
    """Canonical correlations between the columns of zx and zy (largest first): a CCA of the two blocks."""
    zx, zy = np.asarray(zx, np.float64), np.asarray(zy, np.float64)
    zx, zy = zx - zx.mean(0), zy - zy.mean(0)
    n = len(zx) - 1
    m = _inv_sqrt(zx.T @ zx / n) @ (zx.T @ zy / n) @ _inv_sqrt(zy.T @ zy / n)
    return np.clip(np.linalg.svd(m, compute_uv=False)[: min(zx.shape[1], zy.shape[1])], 0.0, 1.0)


def _gep(x: np.ndarray, y: np.ndarray, ridge: float) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    n, dx = x.shape
    s = np.concatenate([x - x.mean(0), y - y.mean(0)], 1)
    cov = s.T @ s / (n - 1)
    a = np.zeros_like(cov)
    a[:dx, dx:], a[dx:, :dx] = cov[:dx, dx:], cov[dx:, :dx]
    b = np.zeros_like(cov)
    b[:dx, :dx], b[dx:, dx:] = cov[:dx, :dx], cov[dx:, dx:]
    return a, (1 - ridge) * b + ridge * np.eye(len(b))


def exact_gep(x: np.ndarray, y: np.ndarray, k: int, ridge: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(W_x, W_y, λ): the top-k generalised eigenvectors of the full-batch GEP and their eigenvalues (the canonical
    correlations when ridge = 0). B gets a 1e-9·tr(B)/d floor: a constant pixel makes Σxx singular, and eigh needs
    B positive definite; A is zero along those directions, so the floor changes no eigenvalue that matters."""
    a, b = _gep(x, y, ridge)
    b = b + EIG_FLOOR * np.trace(b) / len(b) * np.eye(len(b))
    d = len(a)
    lam, v = scipy.linalg.eigh(a, b, subset_by_index=[d - k, d - 1])
    lam, v = lam[::-1], v[:, ::-1]
    dx = x.shape[1]
    return v[:dx], v[dx:], lam


def sklearn_cca(x: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """Canonical correlations of scikit-learn's (NIPALS) CCA projections."""
    from sklearn.cross_decomposition import CCA

    zx, zy = CCA(n_components=k, max_iter=1000).fit(x, y).transform(x, y)
    return canonical_correlations(zx, zy)


def train_cca(x: np.ndarray, y: np.ndarray, model: str = "linear", k: int = 4, *, epochs: int = 1,
              batch_size: int = 32, lr: float | None = None, seed: int = 0, ridge: float = DEFAULT_RIDGE,
              hidden: int = 64) -> StochasticCCA:
    """A `StochasticCCA` trained by the Trainer for `epochs` passes over (x, y); lr defaults to a per-model value
    picked on the multiview world (seed 0), never on digits."""
    if model not in MODELS:
        raise ConfigError(f"cca: unknown model {model!r}; choose one of {list(MODELS)}")
    n = len(x)
    if batch_size < 4 or batch_size > n:
        raise ConfigError(f"cca: --batch-size must be between 4 (two rows per half) and the {n} rows (got "
                          f"{batch_size})")
    cfg = StochasticCCAConfig(dx=x.shape[1], dy=y.shape[1], k=k, encoder="mlp" if model == "deep" else "linear",
                              hidden=hidden, ridge=ridge if model == "ridge" else 0.0, seed=seed)
    net = StochasticCCA(cfg)
    steps = epochs * math.ceil(n / batch_size)
    lr = lr if lr is not None else DEFAULT_LR[model]
    train = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, warmup_steps=0, decay="none", grad_clip=0.0,
                        checkpoint_every=0, log_every=max(1, steps), progress=False, seed=seed, device="cpu")
    source = DictArraySource({"x": x, "y": y}, batch_size=batch_size, seed=seed, where="cca views")
    Trainer(net, source, train).fit()
    return net


def cca_study(data: str = "digits", model: str = "linear", k: int = 4, *, epochs: int = 1, batch_size: int = 32,
              seed: int = 0, lr: float | None = None, ridge: float = DEFAULT_RIDGE) -> dict[str, Any]:
    """One run: the learned model's canonical correlations and PCC against the exact GEP solution's and
    scikit-learn's CCA, all on the training rows."""
    x, y, info = load_views(data, seed)
    if not 1 <= k <= min(x.shape[1], y.shape[1]):
        raise ConfigError(f"cca: --k must be between 1 and {min(x.shape[1], y.shape[1])} (got {k})")
    net = train_cca(x, y, model, k, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, ridge=ridge)
    with torch.no_grad():
        zx, zy = (t.numpy() for t in net.transform(torch.from_numpy(x), torch.from_numpy(y)))
    learned = canonical_correlations(zx, zy)
    c = net.config.ridge
    wx, wy, lam = exact_gep(x, y, k, ridge=c)
    exact = canonical_correlations(x @ wx, y @ wy)
    # the plain-CCA optimum: the ceiling on any projection's canonical correlations (ridge and PLS trade some away)
    cx, cy, _ = exact_gep(x, y, k) if c else (wx, wy, lam)
    reference = canonical_correlations(x @ cx, y @ cy)
    sk = sklearn_cca(x, y, k)
    pcc, exact_pcc = float(learned.sum()), float(exact.sum())
    return {
        **info, "model": model, "encoder": net.config.encoder, "ridge": c, "k": k, "epochs": epochs,
        "batch_size": batch_size, "steps": epochs * math.ceil(len(x) / batch_size), "seed": seed,
        "lr": lr if lr is not None else DEFAULT_LR[model],
        "learned_correlations": learned.tolist(), "exact_correlations": exact.tolist(),
        "exact_eigenvalues": lam.tolist(), "cca_correlations": reference.tolist(),
        "sklearn_correlations": sk.tolist(), "pcc": pcc, "exact_pcc": exact_pcc,
        "pcc_ratio": pcc / exact_pcc if exact_pcc > 0 else float("nan"), "sklearn_pcc": float(sk.sum()),
    }
