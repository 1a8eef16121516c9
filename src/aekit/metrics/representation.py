"""What a representation keeps: pixels (reconstruction PSNR) and factors (linear-probe accuracy).

The vision autoencoders (PS-VAE, LV-RAE) are judged on both: a latent that reconstructs well but hides the
factors behind a non-linear code, or one that names the factors but loses the picture, fails one of the two.
Arrays in, numbers out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from torch import Tensor

from ..errors import DataError, ShapeError

__all__ = ["probe_accuracy", "psnr"]


def psnr(images: Tensor, reconstructions: Tensor, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB, 10·log10(peak² / MSE), with the MSE pooled over every pixel of the set.

    Pooling (rather than averaging per-image PSNRs) makes the number the error of the whole set, so a few perfect
    images cannot hide the rest; a perfect reconstruction is capped at 120 dB instead of infinity."""
    if images.shape != reconstructions.shape:
        raise ShapeError(f"psnr: images {tuple(images.shape)} and reconstructions {tuple(reconstructions.shape)} "
                         "must have the same shape")
    if images.numel() == 0:
        raise ShapeError("psnr: no pixels to compare")
    mse = float((images.double() - reconstructions.double()).pow(2).mean())
    if not math.isfinite(mse):
        raise DataError("psnr: reconstructions contain NaN or infinite values")
    return 10 * math.log10(peak**2 / max(mse, peak**2 * 1e-12))


def _standardize(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, std = train.mean(0), train.std(0)
    std = np.where(std > 0, std, 1.0)  # a constant feature stays constant instead of dividing by zero
    return (train - mean) / std, (test - mean) / std


def probe_accuracy(train_features: np.ndarray | Tensor, train_labels: np.ndarray, test_features: np.ndarray | Tensor,
                   test_labels: np.ndarray, names: Sequence[str] | None = None, *, max_iter: int = 1000) -> dict:
    """Held-out accuracy of a multinomial logistic-regression probe per label column, and their mean.

    Features (n, d) are standardised with the training rows' statistics; labels (n, k) hold one integer class per
    column (e.g. the six Shapes3D factor indices). Returns {"per_factor": {name: accuracy}, "mean": float}. A
    column with a single class in the training rows cannot be probed and raises DataError."""
    x_train = np.asarray(train_features, dtype=np.float64)
    x_test = np.asarray(test_features, dtype=np.float64)
    y_train, y_test = np.asarray(train_labels), np.asarray(test_labels)
    if y_train.ndim == 1:
        y_train, y_test = y_train[:, None], y_test[:, None]
    if x_train.ndim != 2 or x_test.ndim != 2 or x_train.shape[1] != x_test.shape[1]:
        raise ShapeError(f"probe: features must be (n, d) with the same d; got {x_train.shape} and {x_test.shape}")
    if len(x_train) != len(y_train) or len(x_test) != len(y_test) or y_train.shape[1] != y_test.shape[1]:
        raise ShapeError(f"probe: {len(x_train)}/{len(x_test)} feature rows but labels of shape {y_train.shape}/"
                         f"{y_test.shape}")
    if not (np.isfinite(x_train).all() and np.isfinite(x_test).all()):
        raise DataError("probe: features contain NaN or infinite values")
    names = list(names) if names is not None else [f"label_{j}" for j in range(y_train.shape[1])]
    if len(names) != y_train.shape[1]:
        raise ShapeError(f"probe: {len(names)} names for {y_train.shape[1]} label columns")
    from sklearn.linear_model import LogisticRegression

    x_train, x_test = _standardize(x_train, x_test)
    per_factor = {}
    for j, name in enumerate(names):
        if len(np.unique(y_train[:, j])) < 2:
            raise DataError(f"probe: label {name!r} has a single class in the training rows; nothing to probe")
        probe = LogisticRegression(max_iter=max_iter).fit(x_train, y_train[:, j])
        per_factor[name] = float((probe.predict(x_test) == y_test[:, j]).mean())
    return {"per_factor": per_factor, "mean": float(np.mean(list(per_factor.values())))}
