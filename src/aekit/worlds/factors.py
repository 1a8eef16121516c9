"""Procedural image worlds with known generative factors (the ground truth of disentanglement metrics).

A factor world is a finite grid of images: every image is fixed by one index per factor, and the flat index of
an image is the mixed-radix number of its factor indices (last factor fastest), exactly like the dataset files
of dSprites and 3D Shapes. Worlds render on demand, deterministically, so nothing is downloaded or stored:
the same factor indices give the same pixels, bit for bit, in any batch and on any run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError, DataError, ShapeError
from ..seeding import derive_seed

RENDER_CHUNK = 2048  # images composed per step: bounds the temporaries of a large render to ~100 MB


@dataclass
class FactorSample:
    """Images with the factors that generated them: `factors` are grid indices, `values` their physical values."""

    images: Tensor  # (n, C, 64, 64) float32 in [0, 1]
    factors: np.ndarray  # (n, F) int64 indices into each factor's grid
    values: np.ndarray  # (n, F) float32 physical values (hue, scale, angle, position, ...)


class FactorWorld:
    """Base class: the factor grid, index bijection and sampling; subclasses implement `_render`.

    Subclasses set `factor_names`, `image_shape` and `_factor_grids` (one 1-D float64 array of physical values
    per factor; its length is the factor's size).
    """

    factor_names: tuple[str, ...] = ()
    image_shape: tuple[int, int, int] = (1, 64, 64)
    _factor_grids: tuple[np.ndarray, ...] = ()

    @property
    def factor_sizes(self) -> tuple[int, ...]:
        return tuple(len(grid) for grid in self._factor_grids)

    @property
    def n_factors(self) -> int:
        return len(self.factor_names)

    def __len__(self) -> int:
        return int(np.prod(self.factor_sizes, dtype=np.int64))

    def __repr__(self) -> str:
        sizes = ", ".join(f"{name}={size}" for name, size in zip(self.factor_names, self.factor_sizes, strict=True))
        return f"{type(self).__name__}({sizes}; {len(self)} images of shape {self.image_shape})"

    # ----------------------------------------------------------------- factor indices, values and flat indices
    def check_factors(self, factors: np.ndarray | Tensor) -> np.ndarray:
        """Factor indices as an (n, F) int64 array, or a DataError naming the factor that is out of range."""
        array = factors.detach().cpu().numpy() if isinstance(factors, Tensor) else np.asarray(factors)
        if array.ndim != 2 or array.shape[1] != self.n_factors:
            raise ShapeError(f"factors: expected an (n, {self.n_factors}) array of indices for "
                             f"{', '.join(self.factor_names)}; got shape {array.shape}")
        if array.size and not np.issubdtype(array.dtype, np.integer):
            if not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
                raise DataError("factors: factor indices must be whole numbers (pass grid indices, not values)")
        array = array.astype(np.int64, copy=False)
        for k, (name, size) in enumerate(zip(self.factor_names, self.factor_sizes, strict=True)):
            column = array[:, k]
            if column.size and (column.min() < 0 or column.max() >= size):
                raise DataError(f"factors[:, {k}] ({name}): indices must lie in [0, {size - 1}]; "
                                f"got values in [{column.min()}, {column.max()}]")
        return array

    def factor_values(self, indices: np.ndarray | Tensor) -> np.ndarray:
        """The physical value of every factor index: (n, F) float (hue in [0, 1), scale, angle, position)."""
        factors = self.check_factors(indices)
        columns = [grid[factors[:, k]] for k, grid in enumerate(self._factor_grids)]
        return np.stack(columns, axis=1) if columns else np.zeros((len(factors), 0))

    def index_to_factors(self, index: np.ndarray | int) -> np.ndarray:
        """Flat image indices (n,) → factor indices (n, F); mixed radix with the last factor fastest."""
        flat = np.asarray(index, dtype=np.int64).reshape(-1)
        if flat.size and (flat.min() < 0 or flat.max() >= len(self)):
            raise DataError(f"index: flat image indices must lie in [0, {len(self) - 1}]; "
                            f"got values in [{flat.min()}, {flat.max()}]")
        factors = np.empty((flat.size, self.n_factors), dtype=np.int64)
        rest = flat.copy()
        for k in range(self.n_factors - 1, -1, -1):
            rest, factors[:, k] = np.divmod(rest, self.factor_sizes[k])
        return factors

    def factors_to_index(self, factors: np.ndarray | Tensor) -> np.ndarray:
        """Factor indices (n, F) → flat image indices (n,); the inverse of `index_to_factors`."""
        checked = self.check_factors(factors)
        flat = np.zeros(len(checked), dtype=np.int64)
        for k, size in enumerate(self.factor_sizes):
            flat = flat * size + checked[:, k]
        return flat

    # ----------------------------------------------------------------------------------- images and samples
    def render(self, factors: np.ndarray | Tensor) -> Tensor:
        """Images (n, C, 64, 64) float32 in [0, 1] for factor indices (n, F); deterministic bit for bit."""
        checked = self.check_factors(factors)
        out = torch.empty((len(checked), *self.image_shape), dtype=torch.float32)
        for start in range(0, len(checked), RENDER_CHUNK):
            stop = min(start + RENDER_CHUNK, len(checked))
            out[start:stop] = self._render(checked[start:stop])
        return out

    def images(self, index: np.ndarray | int) -> Tensor:
        """Images at flat indices (the order of the dataset files dSprites / 3D Shapes are shipped in)."""
        return self.render(self.index_to_factors(index))

    def sample_factors(self, n: int, seed: int) -> np.ndarray:
        """n factor-index rows, every factor uniform and independent of the others and of other seeds' rows."""
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
            raise ConfigError(f"n: number of samples must be an integer ≥ 0 (got {n!r})")
        rng = np.random.default_rng(derive_seed(f"factor-world:{type(self).__name__}", seed))
        return np.stack([rng.integers(0, size, size=int(n)) for size in self.factor_sizes], axis=1).astype(np.int64)

    def sample(self, n: int, seed: int) -> FactorSample:
        """n images with uniformly and independently drawn factors; the same (n, seed) gives the same sample."""
        factors = self.sample_factors(n, seed)
        return FactorSample(self.render(factors), factors, self.factor_values(factors).astype(np.float32))

    def _render(self, factors: np.ndarray) -> Tensor:
        raise NotImplementedError


def hue_to_rgb(hue: np.ndarray, saturation: float = 1.0, value: float = 1.0) -> np.ndarray:
    """HSV → RGB for hues in [0, 1): (n,) → (n, 3) float64, the colour wheel 3D Shapes draws its hues from."""
    hue = np.asarray(hue, dtype=np.float64)
    # Each channel is a clipped triangle wave of the hue: k = (n + 6h) mod 6 for n = 5 (R), 3 (G), 1 (B).
    k = (np.array([5.0, 3.0, 1.0]) + 6.0 * hue[:, None]) % 6.0
    return value - value * saturation * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)
