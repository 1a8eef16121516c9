"""A procedural dSprites world: one white sprite (square, ellipse or heart) on a black 64×64 canvas.

Factors (dSprites order): shape (3), scale (6, 0.5–1.0), orientation (40 angles over [0, 2π)), pos_x (32),
pos_y (32) — 737,280 binary images. A pixel is on when its centre lies inside the rotated, scaled, translated
sprite; the sprite is tested analytically (no bitmaps), so any batch renders in a few vectorised passes.
Positions run left → right (pos_x) and top → bottom (pos_y); angles turn the sprite counter-clockwise.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .factors import FactorWorld

SIZE = 64
SPRITE_HALF_SIZE = 0.15  # half extent of a scale-1 sprite, as a fraction of the canvas side
MARGIN = 0.22  # sprite centres stay this far from the border, so a scale-1 square at 45° is never cut
ELLIPSE_MINOR = 0.5  # semi-minor axis of the ellipse (semi-major is 1)
# The heart (x² + y² − 1)³ ≤ x²y³ spans x ∈ ±1.139, y ∈ [−1, 1.236]: scale by 1.139 and centre it vertically.
HEART_SCALE, HEART_SHIFT = 1.139, 0.118
SHAPES = ("square", "ellipse", "heart")


def _inside(shape: str, x: Tensor, y: Tensor) -> Tensor:
    """Whether sprite-frame points (x right, y up, sprite within [−1, 1]²) lie inside `shape`."""
    if shape == "square":
        return torch.maximum(x.abs(), y.abs()) <= 1.0
    if shape == "ellipse":
        return x * x + (y * y) * (1.0 / ELLIPSE_MINOR**2) <= 1.0
    hx, hy = x * HEART_SCALE, y * HEART_SCALE + HEART_SHIFT
    hx2 = hx * hx
    r = hx2 + hy * hy - 1.0
    return r * r * r <= hx2 * (hy * hy * hy)


class DSpritesWorld(FactorWorld):
    """64×64 binary sprites with the five factors of DeepMind's dSprites, rendered procedurally."""

    SCALES = np.linspace(0.5, 1.0, 6)
    ORIENTATIONS = np.arange(40) * (2 * np.pi / 40)  # radians
    POSITIONS = np.linspace(0.0, 1.0, 32)
    factor_names = ("shape", "scale", "orientation", "pos_x", "pos_y")
    image_shape = (1, SIZE, SIZE)
    shape_names = SHAPES
    _factor_grids = (np.arange(len(SHAPES), dtype=np.float64), SCALES, ORIENTATIONS, POSITIONS, POSITIONS)
    # Per-factor tables in float32, computed once: trigonometry never runs per image, so any batch agrees.
    _cos = torch.from_numpy(np.cos(ORIENTATIONS).astype(np.float32))
    _sin = torch.from_numpy(np.sin(ORIENTATIONS).astype(np.float32))
    _inverse_size = torch.from_numpy((1.0 / (SPRITE_HALF_SIZE * SIZE * SCALES)).astype(np.float32))  # 1 / pixels
    _centre = torch.from_numpy(((MARGIN + (1 - 2 * MARGIN) * POSITIONS) * SIZE).astype(np.float32))  # pixels
    _pixel = torch.arange(SIZE, dtype=torch.float32) + 0.5  # pixel centres

    def _render(self, factors: np.ndarray) -> Tensor:
        f = torch.from_numpy(factors)
        image = torch.zeros((len(factors), 1, SIZE, SIZE), dtype=torch.float32)
        for s, name in enumerate(SHAPES):
            rows = torch.from_numpy(np.flatnonzero(factors[:, 0] == s))
            if not len(rows):
                continue
            g = f[rows]
            cos, sin = self._cos[g[:, 2]][:, None, None], self._sin[g[:, 2]][:, None, None]
            inverse = self._inverse_size[g[:, 1]][:, None, None]
            dx = (self._pixel[None, None, :] - self._centre[g[:, 3]][:, None, None]) * inverse  # (m, 1, 64)
            dy = (self._centre[g[:, 4]][:, None, None] - self._pixel[None, :, None]) * inverse  # (m, 64, 1), y up
            # Rotate the canvas by −angle into the sprite frame (the sprite turns by +angle).
            x = dx * cos + dy * sin
            y = dy * cos - dx * sin
            image[rows, 0] = _inside(name, x, y).float()
        return image
