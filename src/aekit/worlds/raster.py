"""A multispectral raster of lithological units with a known map: the ground truth of unsupervised mapping.

An H×W scene of K units over B bands. The layout is a Voronoi partition of 3K random seed points (each seed
belongs to one unit, every unit to at least one seed) computed on coordinates warped by a smooth random field, so
the unit boundaries are curved and a unit may occur in several patches. Every unit has a smooth reflectance
spectrum (a sloped continuum with a few Gaussian absorption features). A pixel is the linear mixture of the unit
spectra with abundances softmax(−distance / τ) over the units' warped distances, so pixels within a few pixels of a
boundary mix their neighbours' signatures; the pixel is then scaled by a smooth illumination field (topographic
shading) and Gaussian noise is added. The true map is the unit of largest abundance.

A few labelled pixels per unit (taken from pure interiors, abundance ≥ 0.95) are returned for methods that may
fine-tune on them; the rest of the map is unlabelled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config_base import ConfigBase, setting
from ..seeding import derive_seed

__all__ = ["RasterScene", "RasterWorldConfig", "make_raster"]


@dataclass
class RasterWorldConfig(ConfigBase):
    section = "world"

    size: int = setting(96, "the scene is size × size pixels")
    n_units: int = setting(5, "number K of lithological units")
    n_bands: int = setting(12, "number B of spectral bands")
    seed: int = setting(0, "seeds the layout, the spectra, the illumination, the noise and the labelled pixels")
    border: float = setting(1.5, "softmax temperature τ (pixels) of the border mixing; mixing spans a few pixels")
    warp: float = setting(6.0, "amplitude (pixels) of the smooth warp of the Voronoi coordinates")
    illumination: float = setting(0.2, "amplitude of the multiplicative illumination field (1 ± this)")
    noise: float = setting(0.02, "standard deviation of the additive Gaussian noise (reflectance units)")
    labelled_per_unit: int = setting(5, "labelled pure pixels returned per unit")

    def validate(self) -> None:
        self._require(self.size >= 8, "size", "must be ≥ 8")
        self._require(self.seed >= 0, "seed", "must be ≥ 0")
        self._require(self.n_units >= 2, "n_units", "must be ≥ 2")
        self._require(self.n_bands >= 2, "n_bands", "must be ≥ 2")
        self._require(self.border > 0, "border", "must be positive")
        self._require(self.warp >= 0, "warp", "must be ≥ 0")
        self._require(0 <= self.illumination < 1, "illumination", "must be in [0, 1)")
        self._require(self.noise >= 0, "noise", "must be ≥ 0")
        self._require(self.labelled_per_unit >= 0, "labelled_per_unit", "must be ≥ 0")
        self._require(self.n_units * 3 <= self.size * self.size, "n_units", "needs 3 seed points per unit")


@dataclass
class RasterScene:
    image: np.ndarray  # (H, W, B) float32 observed reflectance
    units: np.ndarray  # (H, W) int64 true unit of every pixel (largest abundance)
    abundances: np.ndarray  # (H, W, K) float32 mixing weights, summing to 1 per pixel
    signatures: np.ndarray  # (K, B) float32 pure unit spectra
    labelled_index: np.ndarray  # (n,) int64 flat pixel indices (row-major) of the labelled pixels
    labelled_units: np.ndarray  # (n,) int64 their units

    @property
    def pixels(self) -> np.ndarray:
        """(H·W, B) the image as rows, row-major."""
        return self.image.reshape(-1, self.image.shape[-1])


def _smooth_field(rng: np.random.Generator, size: int, cells: int = 4) -> np.ndarray:
    """A smooth (size, size) field in about [−1, 1]: bilinear upsampling of a (cells+1)² grid of uniform values."""
    grid = rng.uniform(-1, 1, (cells + 1, cells + 1))
    t = np.linspace(0, cells, size)
    i = np.minimum(t.astype(int), cells - 1)
    f = t - i
    rows = grid[i] * (1 - f)[:, None] + grid[i + 1] * f[:, None]  # (size, cells+1)
    return rows[:, i] * (1 - f)[None, :] + rows[:, i + 1] * f[None, :]


def _signatures(rng: np.random.Generator, n_units: int, n_bands: int) -> np.ndarray:
    """K smooth spectra: continuum a + b·λ plus 2 Gaussian absorption features at random band positions."""
    lam = np.linspace(0, 1, n_bands)
    spectra = []
    for _ in range(n_units):
        s = rng.uniform(0.25, 0.55) + rng.uniform(-0.2, 0.2) * lam
        for _ in range(2):
            centre, width, depth = rng.uniform(0, 1), rng.uniform(0.05, 0.15), rng.uniform(0.05, 0.2)
            s = s - depth * np.exp(-0.5 * ((lam - centre) / width) ** 2)
        spectra.append(np.clip(s, 0.02, None))
    return np.array(spectra, dtype=np.float32)


def make_raster(config: RasterWorldConfig | None = None, **overrides) -> RasterScene:
    """The scene of `config` (or the defaults with `overrides`); the same config gives the same arrays."""
    config = config if config is not None else RasterWorldConfig()
    if overrides:
        config = RasterWorldConfig.from_dict({**config.to_dict(), **overrides}, where="world")
    config.validate()
    n, k = config.size, config.n_units
    layout = np.random.default_rng(derive_seed("raster.layout", config.seed))
    n_seeds = 3 * k
    points = layout.uniform(0, n, (n_seeds, 2))
    owner = np.concatenate([np.arange(k), layout.integers(0, k, n_seeds - k)])  # every unit owns a seed
    yy, xx = np.meshgrid(np.arange(n, dtype=float), np.arange(n, dtype=float), indexing="ij")
    wy = yy + config.warp * _smooth_field(layout, n)
    wx = xx + config.warp * _smooth_field(layout, n)
    dist = np.sqrt((wy[..., None] - points[:, 0]) ** 2 + (wx[..., None] - points[:, 1]) ** 2)  # (n, n, seeds)
    unit_dist = np.stack([dist[..., owner == u].min(-1) for u in range(k)], axis=-1)  # (n, n, K)
    # softmax over −distance/τ: across a boundary the distance gap grows ~2 per pixel, so the other unit's share
    # falls as exp(−2t/τ) with the distance t to the boundary: mixed over a few pixels, pure inside
    logits = -(unit_dist - unit_dist.min(-1, keepdims=True)) / config.border
    abundances = np.exp(logits)
    abundances /= abundances.sum(-1, keepdims=True)
    units = abundances.argmax(-1).astype(np.int64)

    signatures = _signatures(np.random.default_rng(derive_seed("raster.spectra", config.seed)), k, config.n_bands)
    light = 1 + config.illumination * _smooth_field(np.random.default_rng(derive_seed("raster.light", config.seed)), n)
    noise = np.random.default_rng(derive_seed("raster.noise", config.seed)).normal(0, config.noise,
                                                                                  (n, n, config.n_bands))
    image = (abundances @ signatures) * light[..., None] + noise

    pick = np.random.default_rng(derive_seed("raster.labelled", config.seed))
    flat_units, pure = units.reshape(-1), abundances.max(-1).reshape(-1) >= 0.95
    index = []
    for u in range(k):
        candidates = np.flatnonzero((flat_units == u) & pure)
        candidates = candidates if len(candidates) else np.flatnonzero(flat_units == u)
        index.extend(pick.choice(candidates, min(config.labelled_per_unit, len(candidates)), replace=False))
    index = np.array(sorted(index), dtype=np.int64)
    return RasterScene(image=image.astype(np.float32), units=units, abundances=abundances.astype(np.float32),
                       signatures=signatures, labelled_index=index, labelled_units=flat_units[index].copy())
