"""PNG montages of image batches (world samples, reconstructions, latent traversals)."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from ..errors import ShapeError  # noqa: E402
from ..fileio import atomic_write_bytes  # noqa: E402


def image_grid(images: torch.Tensor | np.ndarray, nrow: int = 8, padding: int = 2) -> np.ndarray:
    """Tile (n, C, H, W) images with C ∈ {1, 3} and values in [0, 1] into one (rows·H, nrow·W, 3) array."""
    array = images.detach().cpu().float().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if array.ndim != 4 or array.shape[1] not in (1, 3) or len(array) == 0:
        raise ShapeError(f"images: expected a non-empty (n, C, H, W) batch with C = 1 or 3; got shape {array.shape}")
    if nrow < 1:
        raise ShapeError(f"nrow: images per row must be ≥ 1 (got {nrow})")
    n, c, h, w = array.shape
    rows, cols = -(-n // nrow), min(nrow, n)
    grid = np.ones((rows * (h + padding) + padding, cols * (w + padding) + padding, 3), dtype=np.float32)
    tiles = np.clip(np.repeat(array, 3 // c, axis=1), 0.0, 1.0).transpose(0, 2, 3, 1)
    for i, tile in enumerate(tiles):
        top, left = padding + (i // nrow) * (h + padding), padding + (i % nrow) * (w + padding)
        grid[top : top + h, left : left + w] = tile
    return grid


def save_image_grid(images: torch.Tensor | np.ndarray, path: str | Path, nrow: int = 8, padding: int = 2) -> Path:
    """Write the montage of `images` (see `image_grid`) as a PNG at `path`, atomically."""
    buffer = io.BytesIO()
    plt.imsave(buffer, image_grid(images, nrow, padding), format="png")
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)
