"""Moving shapes: seeded videos of a few coloured sprites bouncing in a small frame, with their true trajectories.

Each video shows `sprites` flat-coloured discs or squares on a black background. A sprite starts at a uniform
position inside the frame with a uniform direction and a speed of 1–2.5 pixels per frame; it moves in a straight
line and bounces elastically off the walls (the part of a step that would leave the frame is mirrored back and that
velocity component changes sign), so its path is known exactly. Sprites are painted in index order, later ones over
earlier ones, with anti-aliased edges (a pixel's coverage falls linearly over one pixel across the boundary) so that
sub-pixel motion changes the pixels smoothly.

Frames are stored as 8-bit RGB, as video is; `MovingShapes.videos` gives them as floats in [0, 1], shaped
(n, frames, 3, size, size). The truth per video is every sprite's centre and velocity at every frame, its colour,
shape and radius. The default clip has 17 = 1 + 4·4 frames: the causal video VAEs' convention of a first frame plus
groups of four (`aekit.models.video_vae`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError
from ..seeding import derive_seed

__all__ = ["FRAMES", "FRAME_SIZE", "PALETTE", "SHAPES", "MovingShapes", "moving_shapes", "render_sprites"]

FRAMES, FRAME_SIZE = 17, 32
SHAPES = ("disc", "square")
# saturated, distinguishable colours (RGB in [0, 1]); a video's sprites never share one
PALETTE = np.array([[0.95, 0.25, 0.2], [0.2, 0.8, 0.3], [0.25, 0.45, 0.95], [0.95, 0.85, 0.2],
                    [0.85, 0.3, 0.9], [0.2, 0.85, 0.9]], dtype=np.float32)
RADIUS = (3.0, 5.0)  # half-size in pixels (a disc's radius, half a square's side)
SPEED = (1.0, 2.5)  # pixels per frame
RENDER_CHUNK = 128  # videos rendered at once


@dataclass(frozen=True)
class MovingShapes:
    """A batch of moving-shapes videos and the truth behind every pixel."""

    frames: Tensor  # (n, T, 3, H, W) uint8
    positions: np.ndarray  # (n, T, S, 2) sprite centres (x, y) in pixels, x along columns, y along rows
    velocities: np.ndarray  # (n, T, S, 2) the step that moves the sprite from frame t to t + 1, pixels per frame
    colours: np.ndarray  # (n, S, 3) RGB in [0, 1]
    shapes: np.ndarray  # (n, S) index into SHAPES
    radii: np.ndarray  # (n, S) half-size in pixels

    @property
    def videos(self) -> Tensor:
        """(n, T, 3, H, W) float32 in [0, 1]."""
        return self.frames.float() / 255

    def __len__(self) -> int:
        return len(self.frames)


def _trajectories(start: np.ndarray, velocity: np.ndarray, radius: np.ndarray, frames: int,
                  size: int) -> tuple[np.ndarray, np.ndarray]:
    """Centres and velocities (n, T, S, 2) of sprites bouncing in [r, size − r] on both axes."""
    lo, hi = radius[..., None], size - radius[..., None]
    positions = np.empty((*start.shape[:2], frames, 2), dtype=np.float64)
    velocities = np.empty_like(positions)
    p, v = start.copy(), velocity.copy()
    for t in range(frames):
        positions[:, :, t], velocities[:, :, t] = p, v
        p = p + v
        # a step shorter than the free width bounces at most once per axis: mirror the overshoot, flip the velocity
        below, above = p < lo, p > hi
        p = np.where(below, 2 * lo - p, np.where(above, 2 * hi - p, p))
        v = np.where(below | above, -v, v)
    return positions.transpose(0, 2, 1, 3), velocities.transpose(0, 2, 1, 3)


def render_sprites(positions: np.ndarray, colours: np.ndarray, shapes: np.ndarray, radii: np.ndarray,
                   size: int) -> np.ndarray:
    """(n, T, 3, size, size) float32 frames in [0, 1] of sprites at `positions` (n, T, S, 2), painted in order."""
    n, frames, sprites, _ = positions.shape
    centres = np.arange(size, dtype=np.float32) + 0.5  # pixel centres
    out = np.zeros((n, frames, 3, size, size), dtype=np.float32)
    for s in range(sprites):
        dx = np.abs(centres[None, None, None, :] - positions[:, :, s, 0, None, None].astype(np.float32))
        dy = np.abs(centres[None, None, :, None] - positions[:, :, s, 1, None, None].astype(np.float32))
        disc = np.sqrt(dx**2 + dy**2)
        square = np.maximum(dx, dy)  # Chebyshev distance: its level sets are axis-aligned squares
        distance = np.where((shapes[:, s] == SHAPES.index("disc"))[:, None, None, None], disc, square)
        alpha = np.clip(radii[:, s, None, None, None].astype(np.float32) + 0.5 - distance, 0.0, 1.0)[:, :, None]
        out = out * (1 - alpha) + alpha * colours[:, s, None, :, None, None]
    return out


def moving_shapes(n: int, seed: int = 0, *, frames: int = FRAMES, size: int = FRAME_SIZE,
                  sprites: int = 2) -> MovingShapes:
    """`n` seeded videos of `sprites` bouncing sprites, `frames` frames of size × size; the same seed gives the
    same videos and truth."""
    if n < 1 or frames < 1 or sprites < 1:
        raise ConfigError(f"moving shapes: n, frames and sprites must be ≥ 1 (got {n}, {frames}, {sprites})")
    if sprites > len(PALETTE):
        raise ConfigError(f"moving shapes: at most {len(PALETTE)} sprites (one palette colour each; got {sprites})")
    if size < 4 * RADIUS[1]:
        raise ConfigError(f"moving shapes: size must be ≥ {4 * RADIUS[1]:g} pixels so the largest sprite can move "
                          f"(got {size})")
    rng = np.random.default_rng(derive_seed("world.moving_shapes", seed))
    radii = rng.uniform(*RADIUS, size=(n, sprites))
    start = rng.uniform(radii[..., None], size - radii[..., None], size=(n, sprites, 2))
    angle = rng.uniform(0, 2 * np.pi, size=(n, sprites))
    speed = rng.uniform(*SPEED, size=(n, sprites))
    velocity = np.stack([np.cos(angle), np.sin(angle)], axis=-1) * speed[..., None]
    shapes = rng.integers(0, len(SHAPES), size=(n, sprites))
    colours = PALETTE[np.argsort(rng.random((n, len(PALETTE))), axis=1)[:, :sprites]]  # distinct per video
    positions, velocities = _trajectories(start, velocity, radii, frames, size)
    frames_u8 = np.empty((n, frames, 3, size, size), dtype=np.uint8)
    for i in range(0, n, RENDER_CHUNK):  # bounded memory: the float frames of one chunk at a time
        chunk = slice(i, i + RENDER_CHUNK)
        pixels = render_sprites(positions[chunk], colours[chunk], shapes[chunk], radii[chunk], size)
        frames_u8[chunk] = np.round(pixels * 255)
    return MovingShapes(torch.from_numpy(frames_u8), positions, velocities, colours, shapes, radii)
