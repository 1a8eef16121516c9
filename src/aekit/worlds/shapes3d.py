"""A procedural 3D Shapes world: an object on a floor in front of a wall, ray cast and Lambert shaded.

Factors (3D Shapes order): floor_hue, wall_hue, object_hue (10 hues each), scale (8, 0.75–1.25),
shape (cube, cylinder, sphere, capsule), orientation (15, −30°…30° about the vertical axis).

Geometry depends only on (shape, scale, orientation) — 480 combinations — so each is ray cast once, with 2×2
supersampling, into three premultiplied shade layers (object, floor, wall; shadows included); an image is then
three layer × colour products. Colours never change geometry, which is why rendering 10k images costs little.
Deviations from the DeepMind dataset: the capsule lies on its side (so turning it is visible) and every object
carries a darker meridian stripe, so that orientation also changes the image of the sphere and the cylinder.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import Tensor

from .factors import FactorWorld, hue_to_rgb

SIZE = 64
SUPERSAMPLE = 2  # rays per pixel side: anti-aliased edges
SHAPES = ("cube", "cylinder", "sphere", "capsule")
N_SCALES, N_ORIENTATIONS = 8, 15

CAMERA = np.array([0.0, 3.4, 7.5])
LOOK_AT = np.array([0.0, 0.9, 0.0])
TAN_HALF_FOV = 0.42
WALL_Z = -2.5
LIGHT = np.array([-0.6, 1.0, 0.8]) / np.linalg.norm([-0.6, 1.0, 0.8])
AMBIENT, DIFFUSE = 0.3, 0.7  # shade = AMBIENT + DIFFUSE · max(0, n·light); in shadow only AMBIENT
OBJECT_SIZE = 0.9  # world units per object unit at scale 1
CAPSULE_RADIUS, CAPSULE_HALF_LENGTH = 0.55, 0.85
STRIPE_HALF_WIDTH, STRIPE_SHADE = 0.2, 0.55  # the meridian band |x_object| < w is darkened by this factor
HALF_HEIGHT = {"cube": 1.0, "cylinder": 1.0, "sphere": 1.0, "capsule": CAPSULE_RADIUS}  # rests on the floor


def _first_root(o: np.ndarray, d: np.ndarray, axes: list[int], radius: float) -> np.ndarray:
    """Nearest t ≥ 0 where the ray o + t·d meets the surface Σ_axes x² = radius² (inf if it misses)."""
    a = sum(d[:, i] ** 2 for i in axes)
    b = sum(o[:, i] * d[:, i] for i in axes)
    c = sum(o[:, i] ** 2 for i in axes) - radius**2
    disc = b * b - a * c
    with np.errstate(invalid="ignore", divide="ignore"):
        t = (-b - np.sqrt(disc)) / a
    return np.where((disc >= 0) & (a > 0) & (t > 0), t, np.inf)


def _hit_cube(o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(divide="ignore", invalid="ignore"):
        t1, t2 = (-1.0 - o) / d, (1.0 - o) / d
    t_in, t_out = np.fmin(t1, t2), np.fmax(t1, t2)
    near, far = t_in.max(axis=1), t_out.min(axis=1)
    t = np.where((near <= far) & (near > 0), near, np.inf)
    axis = t_in.argmax(axis=1)  # the slab entered last is the face that was hit
    normal = np.zeros_like(o)
    normal[np.arange(len(o)), axis] = -np.sign(d[np.arange(len(o)), axis])
    return t, normal


def _hit_sphere(o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = _first_root(o, d, [0, 1, 2], 1.0)
    return t, o + np.where(np.isfinite(t), t, 0.0)[:, None] * d


def _hit_cylinder(o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Upright cylinder: radius 1 about the y axis, |y| ≤ 1, closed by two caps."""
    t_side = _first_root(o, d, [0, 2], 1.0)
    y_side = o[:, 1] + np.where(np.isfinite(t_side), t_side, 0.0) * d[:, 1]
    t_side = np.where(np.abs(y_side) <= 1.0, t_side, np.inf)
    cap_y = np.where(d[:, 1] < 0, 1.0, -1.0)  # the cap facing the ray
    with np.errstate(divide="ignore", invalid="ignore"):
        t_cap = (cap_y - o[:, 1]) / d[:, 1]
    t_cap = np.where(np.isfinite(t_cap) & (t_cap > 0), t_cap, np.inf)
    x_cap = o[:, 0] + np.where(np.isfinite(t_cap), t_cap, 0.0) * d[:, 0]
    z_cap = o[:, 2] + np.where(np.isfinite(t_cap), t_cap, 0.0) * d[:, 2]
    t_cap = np.where(x_cap**2 + z_cap**2 <= 1.0, t_cap, np.inf)
    side = t_side <= t_cap
    t = np.minimum(t_side, t_cap)
    p = o + np.where(np.isfinite(t), t, 0.0)[:, None] * d
    normal = np.where(side[:, None], p * np.array([1.0, 0.0, 1.0]), np.stack([0 * cap_y, cap_y, 0 * cap_y], 1))
    return t, normal


def _hit_capsule(o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A capsule lying along the x axis: the points within CAPSULE_RADIUS of the segment |x| ≤ half length."""
    r, a = CAPSULE_RADIUS, CAPSULE_HALF_LENGTH
    t_side = _first_root(o, d, [1, 2], r)
    x_side = o[:, 0] + np.where(np.isfinite(t_side), t_side, 0.0) * d[:, 0]
    t = np.where(np.abs(x_side) <= a, t_side, np.inf)
    for end in (-a, a):
        t = np.minimum(t, _first_root(o - np.array([end, 0.0, 0.0]), d, [0, 1, 2], r))
    p = o + np.where(np.isfinite(t), t, 0.0)[:, None] * d
    axis_point = np.stack([np.clip(p[:, 0], -a, a), 0 * p[:, 0], 0 * p[:, 0]], axis=1)
    return t, p - axis_point


HITS = {"cube": _hit_cube, "cylinder": _hit_cylinder, "sphere": _hit_sphere, "capsule": _hit_capsule}


def _camera_rays() -> np.ndarray:
    """Unit ray directions (SIZE·SS, SIZE·SS, 3) through the sub-pixel centres, row 0 at the top."""
    forward = (LOOK_AT - CAMERA) / np.linalg.norm(LOOK_AT - CAMERA)
    right = np.cross(forward, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    steps = (np.arange(SIZE * SUPERSAMPLE) + 0.5) / (SIZE * SUPERSAMPLE) * 2.0 - 1.0
    u, v = steps[None, :], -steps[:, None]
    rays = forward + TAN_HALF_FOV * (u[..., None] * right + v[..., None] * up)
    return rays / np.linalg.norm(rays, axis=-1, keepdims=True)


class _Pose:
    """World ↔ object frame of one object: rotation about the vertical axis, uniform scale, lift to the floor."""

    def __init__(self, shape: str, scale: float, angle: float):
        self.size = OBJECT_SIZE * scale
        self.centre = np.array([0.0, HALF_HEIGHT[shape] * self.size, 0.0])
        c, s = np.cos(angle), np.sin(angle)
        self.rotation = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])  # object → world

    def to_object(self, origin: np.ndarray, direction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # Rows times R is Rᵀ applied to each row: world → object. t keeps its world meaning (d is not renormalised).
        return (origin - self.centre) @ self.rotation / self.size, direction @ self.rotation / self.size


def _lambert(normal: np.ndarray) -> np.ndarray:
    unit = normal / np.maximum(np.linalg.norm(normal, axis=-1, keepdims=True), 1e-12)
    return AMBIENT + DIFFUSE * np.maximum(unit @ LIGHT, 0.0)


def _downsample(x: np.ndarray) -> np.ndarray:
    return x.reshape(SIZE, SUPERSAMPLE, SIZE, SUPERSAMPLE).mean(axis=(1, 3))


@functools.cache
def _layers(shape: str) -> Tensor:
    """Premultiplied shade layers (scale, orientation, [object, floor, wall], 64, 64) float32 of one shape."""
    hit = HITS[shape]
    rays = _camera_rays().reshape(-1, 3)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_floor = np.where(rays[:, 1] < 0, -CAMERA[1] / rays[:, 1], np.inf)
        t_wall = np.where(rays[:, 2] < 0, (WALL_Z - CAMERA[2]) / rays[:, 2], np.inf)
    on_floor = t_floor < t_wall
    t_background = np.minimum(t_floor, t_wall)
    background_point = CAMERA + t_background[:, None] * rays
    lit = {"floor": AMBIENT + DIFFUSE * max(LIGHT[1], 0.0), "wall": AMBIENT + DIFFUSE * max(LIGHT[2], 0.0)}
    light_rays = np.broadcast_to(LIGHT, rays.shape)
    out = np.empty((N_SCALES, N_ORIENTATIONS, 3, SIZE, SIZE), dtype=np.float32)
    for i, scale in enumerate(Shapes3DWorld.SCALES):
        for j, angle in enumerate(np.deg2rad(Shapes3DWorld.ORIENTATIONS)):
            pose = _Pose(shape, float(scale), float(angle))
            t_object, normal = hit(*pose.to_object(np.broadcast_to(CAMERA, rays.shape), rays))
            on_object = t_object < t_background
            p_object = pose.to_object(CAMERA + np.where(on_object, t_object, 0.0)[:, None] * rays, rays)[0]
            stripe = np.where(np.abs(p_object[:, 0]) < STRIPE_HALF_WIDTH, STRIPE_SHADE, 1.0)
            object_shade = np.where(on_object, _lambert(normal @ pose.rotation.T) * stripe, 0.0)
            # A background point is in shadow when the ray from it towards the light meets the object.
            shadowed = np.isfinite(hit(*pose.to_object(background_point, light_rays))[0])
            floor = np.where(on_floor & ~on_object, np.where(shadowed, AMBIENT, lit["floor"]), 0.0)
            wall = np.where(~on_floor & ~on_object, np.where(shadowed, AMBIENT, lit["wall"]), 0.0)
            for k, layer in enumerate((object_shade, floor, wall)):
                out[i, j, k] = _downsample(layer.reshape(SIZE * SUPERSAMPLE, SIZE * SUPERSAMPLE))
    return torch.from_numpy(out.reshape(N_SCALES * N_ORIENTATIONS, 3, SIZE, SIZE))


class Shapes3DWorld(FactorWorld):
    """64×64 RGB scenes with the six factors of DeepMind's 3D Shapes, rendered procedurally (480,000 images)."""

    HUES = np.arange(10) / 10.0
    SCALES = np.linspace(0.75, 1.25, N_SCALES)
    ORIENTATIONS = np.linspace(-30.0, 30.0, N_ORIENTATIONS)  # degrees about the vertical axis
    factor_names = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
    image_shape = (3, SIZE, SIZE)
    shape_names = SHAPES
    _factor_grids = (HUES, HUES, HUES, SCALES, np.arange(len(SHAPES), dtype=np.float64), ORIENTATIONS)
    _colours = torch.from_numpy(hue_to_rgb(HUES).astype(np.float32))  # (10, 3)

    def _render(self, factors: np.ndarray) -> Tensor:
        index = torch.from_numpy(factors)
        geometry = torch.empty((len(factors), 3, SIZE, SIZE), dtype=torch.float32)
        for s, name in enumerate(SHAPES):
            rows = np.flatnonzero(factors[:, 4] == s)
            if rows.size:
                pose = torch.from_numpy(factors[rows, 3] * N_ORIENTATIONS + factors[rows, 5])
                geometry[torch.from_numpy(rows)] = _layers(name)[pose]
        # object · object colour + floor · floor colour + wall · wall colour, as separate multiplies and adds
        # (no fused ops), so that each pixel is computed the same way in any batch.
        terms = [geometry[:, layer : layer + 1] * self._colours[index[:, column]][:, :, None, None]
                 for layer, column in ((0, 2), (1, 0), (2, 1))]
        return (terms[0] + terms[1]).add_(terms[2]).clamp_(0.0, 1.0)
