"""Sample-quality measures of generative models: the Fréchet distance between two sets of features (FID-style)."""

from __future__ import annotations

import numpy as np
import scipy.linalg
from torch import Tensor

from ..errors import ShapeError

__all__ = ["frechet_distance"]


def frechet_distance(a: np.ndarray | Tensor, b: np.ndarray | Tensor) -> float:
    """‖μ_a − μ_b‖² + Tr(Σ_a + Σ_b − 2(Σ_a Σ_b)^½) of Gaussians fitted to feature rows a (n, d) and b (m, d).

    The FID formula (Heusel et al. 2017) in any feature space; float64 throughout, and the imaginary part that
    `sqrtm` leaves from rounding is dropped.
    """
    x = np.asarray(a.detach().cpu().numpy() if isinstance(a, Tensor) else a, dtype=np.float64)
    y = np.asarray(b.detach().cpu().numpy() if isinstance(b, Tensor) else b, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or min(len(x), len(y)) < 2:
        raise ShapeError(f"frechet_distance: expected two (n ≥ 2, d) feature arrays of one width; got {x.shape} "
                         f"and {y.shape}")
    mu_x, mu_y = x.mean(0), y.mean(0)
    cov_x, cov_y = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    root = scipy.linalg.sqrtm(cov_x @ cov_y)
    root = root.real if np.iscomplexobj(root) else root
    return float(((mu_x - mu_y) ** 2).sum() + np.trace(cov_x + cov_y - 2.0 * root))
