"""A 2-D signed-distance world: seeded unions of circles and rotated boxes whose field is known at every point.

A scene is one to three primitives in the square [-1, 1]²; its field is f(p) = min_i d_i(p), with d_i the exact
signed distance to primitive i (negative inside). The min is the exact distance outside the union and on its
boundary and, inside, the standard union rule (a lower bound on the depth); either way f is an analytic function
that `SDFScene.field` evaluates at any coordinate in float64, so a continuous decoder queried off the training grid
(at 2× resolution, or anywhere) is scored against the truth rather than against an interpolation.

Coordinates are (x, y): x runs along image columns and y along rows, both in [-1, 1] (the convention of
`torch.nn.functional.grid_sample`). An image of side s samples f at the s² pixel centres −1 + (2i + 1)/s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError, ShapeError
from ..seeding import derive_seed

__all__ = ["KINDS", "Primitive", "SDFScene", "grid_coordinates", "render_sdf", "sample_sdf_scenes"]

KINDS = ("circle", "box")
MAX_PRIMITIVES = 3
CENTRE_RANGE, SIZE_RANGE = 0.55, (0.15, 0.4)  # centres in ±0.55 and sizes ≤ 0.4 keep every shape inside the square


@dataclass(frozen=True)
class Primitive:
    """A circle of radius `a`, or a box of half-sides (a, b) turned by `angle` radians, centred at (cx, cy)."""

    kind: str
    cx: float
    cy: float
    a: float
    b: float = 0.0
    angle: float = 0.0

    def distance(self, p: np.ndarray) -> np.ndarray:
        """Exact signed distance of points p (..., 2) to this primitive (negative inside)."""
        q = p - np.array([self.cx, self.cy])
        if self.kind == "circle":
            return np.linalg.norm(q, axis=-1) - self.a
        c, s = np.cos(self.angle), np.sin(self.angle)
        local = np.stack([c * q[..., 0] + s * q[..., 1], -s * q[..., 0] + c * q[..., 1]], axis=-1)  # rotate by −angle
        d = np.abs(local) - np.array([self.a, self.b])
        outside = np.linalg.norm(np.maximum(d, 0.0), axis=-1)
        inside = np.minimum(np.maximum(d[..., 0], d[..., 1]), 0.0)
        return outside + inside


@dataclass(frozen=True)
class SDFScene:
    """A union of primitives; `field(p)` is the min of their signed distances."""

    primitives: tuple[Primitive, ...]

    def field(self, points: np.ndarray) -> np.ndarray:
        """f at points (..., 2), float64."""
        p = np.asarray(points, dtype=np.float64)
        if p.shape[-1:] != (2,):
            raise ShapeError(f"sdf field: points must have shape (..., 2), got {p.shape}")
        return np.min([prim.distance(p) for prim in self.primitives], axis=0)


def sample_sdf_scenes(n: int, seed: int) -> list[SDFScene]:
    """n seeded scenes of 1–3 primitives, each a circle or a box with uniform centre, size and angle."""
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise ConfigError(f"n: number of SDF scenes must be an integer ≥ 0 (got {n!r})")
    rng = np.random.default_rng(derive_seed("sdf.scenes", seed))
    scenes = []
    for _ in range(n):
        prims = []
        for _ in range(int(rng.integers(1, MAX_PRIMITIVES + 1))):
            kind = KINDS[int(rng.integers(len(KINDS)))]
            cx, cy = rng.uniform(-CENTRE_RANGE, CENTRE_RANGE, 2)
            a, b = rng.uniform(*SIZE_RANGE, 2)
            angle = rng.uniform(0, np.pi / 2)
            prims.append(Primitive(kind, float(cx), float(cy), float(a), float(b) if kind == "box" else 0.0,
                                   float(angle) if kind == "box" else 0.0))
        scenes.append(SDFScene(tuple(prims)))
    return scenes


def grid_coordinates(size: int) -> np.ndarray:
    """(size, size, 2) pixel-centre coordinates (x, y) of a size×size image of [-1, 1]², row-major."""
    if size < 1:
        raise ConfigError(f"size: image side must be ≥ 1 (got {size})")
    centres = -1.0 + (2.0 * np.arange(size) + 1.0) / size
    y, x = np.meshgrid(centres, centres, indexing="ij")
    return np.stack([x, y], axis=-1)


def render_sdf(scenes: list[SDFScene], size: int) -> Tensor:
    """(n, 1, size, size) float32 images of the scenes' fields sampled at the pixel centres."""
    grid = grid_coordinates(size)
    fields = np.stack([scene.field(grid) for scene in scenes]) if scenes else np.zeros((0, size, size))
    return torch.from_numpy(fields.astype(np.float32)).unsqueeze(1)
