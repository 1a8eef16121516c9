"""The procedural 3D Shapes and dSprites worlds: factor grids, index bijection, determinism and that every factor
changes the image in the way its name says."""

import math

import matplotlib.image
import numpy as np
import pytest
import torch
from scipy import stats

from aekit.errors import DataError, ShapeError
from aekit.report.images import save_image_grid
from aekit.worlds import DSpritesWorld, Shapes3DWorld

SHAPES3D, DSPRITES = Shapes3DWorld(), DSpritesWorld()
WORLDS = pytest.mark.parametrize("world", [SHAPES3D, DSPRITES], ids=["shapes3d", "dsprites"])


def _middle(world) -> np.ndarray:
    return np.array([[size // 2 for size in world.factor_sizes]])


def _sweep(world, k: int) -> np.ndarray:
    """Factor rows equal to the middle of the grid except factor k, which takes every value in order."""
    rows = np.repeat(_middle(world), world.factor_sizes[k], axis=0)
    rows[:, k] = np.arange(world.factor_sizes[k])
    return rows


def test_factor_grids_match_the_reference_datasets():
    assert SHAPES3D.factor_names == ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
    assert SHAPES3D.factor_sizes == (10, 10, 10, 8, 4, 15)
    assert (len(SHAPES3D), SHAPES3D.n_factors, SHAPES3D.image_shape) == (480_000, 6, (3, 64, 64))
    assert DSPRITES.factor_names == ("shape", "scale", "orientation", "pos_x", "pos_y")
    assert DSPRITES.factor_sizes == (3, 6, 40, 32, 32)
    assert (len(DSPRITES), DSPRITES.n_factors, DSPRITES.image_shape) == (737_280, 5, (1, 64, 64))


def test_factor_values_are_the_physical_grids():
    first = SHAPES3D.factor_values(np.zeros((1, 6), dtype=int))[0]
    last = SHAPES3D.factor_values(np.array([s - 1 for s in SHAPES3D.factor_sizes])[None])[0]
    np.testing.assert_allclose(first, [0, 0, 0, 0.75, 0, -30])
    np.testing.assert_allclose(last, [0.9, 0.9, 0.9, 1.25, 3, 30])
    np.testing.assert_allclose(SHAPES3D.factor_values(_sweep(SHAPES3D, 5))[:, 5], np.linspace(-30, 30, 15))
    first = DSPRITES.factor_values(np.zeros((1, 5), dtype=int))[0]
    last = DSPRITES.factor_values(np.array([s - 1 for s in DSPRITES.factor_sizes])[None])[0]
    np.testing.assert_allclose(first, [0, 0.5, 0, 0, 0])
    np.testing.assert_allclose(last, [2, 1.0, 2 * math.pi * 39 / 40, 1, 1])


@WORLDS
def test_flat_index_bijection_has_the_last_factor_fastest(world):
    sizes = world.factor_sizes
    assert world.index_to_factors(1)[0, -1] == 1
    assert world.index_to_factors(sizes[-1])[0, -2:].tolist() == [1, 0]
    assert world.index_to_factors(len(world) - 1)[0].tolist() == [s - 1 for s in sizes]
    flat = np.random.default_rng(0).integers(0, len(world), size=5000)
    factors = world.index_to_factors(flat)
    np.testing.assert_array_equal(world.factors_to_index(factors), flat)
    np.testing.assert_array_equal(world.index_to_factors(world.factors_to_index(factors)), factors)
    torch.testing.assert_close(world.images(flat[:3]), world.render(factors[:3]), rtol=0, atol=0)


@WORLDS
def test_same_seed_same_images_bit_for_bit_in_any_batch(world):
    a, b = world.sample(96, seed=3), world.sample(96, seed=3)
    assert torch.equal(a.images, b.images) and np.array_equal(a.factors, b.factors)
    assert not np.array_equal(world.sample(96, seed=4).factors, a.factors)
    # Rendering a slice on its own gives the same pixels as rendering it inside the larger batch.
    assert torch.equal(world.render(a.factors[17:40]), a.images[17:40])
    assert torch.equal(world.render(a.factors[5:6]), a.images[5:6])
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert torch.equal(world.render(a.factors), a.images)
    finally:
        torch.set_num_threads(threads)


@WORLDS
def test_sample_shapes_dtypes_and_ranges(world):
    s = world.sample(200, seed=0)
    assert s.images.shape == (200, *world.image_shape) and s.images.dtype == torch.float32
    assert s.factors.shape == (200, world.n_factors) and s.factors.dtype == np.int64
    assert s.values.shape == (200, world.n_factors) and s.values.dtype == np.float32
    assert float(s.images.min()) >= 0.0 and float(s.images.max()) <= 1.0
    np.testing.assert_array_equal(s.values, world.factor_values(s.factors).astype(np.float32))
    np.testing.assert_array_equal(s.factors, world.sample_factors(200, seed=0))


def test_dsprites_images_are_binary_and_never_empty():
    images = DSPRITES.sample(500, seed=1).images
    assert set(torch.unique(images).tolist()) == {0.0, 1.0}
    assert int((images.flatten(1).sum(1) == 0).sum()) == 0


@WORLDS
def test_every_step_of_every_factor_changes_the_image(world):
    for k, name in enumerate(world.factor_names):
        images = world.render(_sweep(world, k)).flatten(1)
        changed = ((images[1:] - images[:-1]).abs() > 1e-3).sum(1)
        assert int(changed.min()) >= 3, f"{name}: some step of the factor changes fewer than 3 pixel values"


@WORLDS
def test_shapes_differ_pairwise(world):
    k = world.factor_names.index("shape")
    images = world.render(_sweep(world, k)).flatten(1)
    for i in range(len(images)):
        for j in range(i):
            differing = int(((images[i] - images[j]).abs() > 0.05).sum())
            assert differing >= 40, f"shapes {world.shape_names[i]} and {world.shape_names[j]}: {differing} pixels"


def test_dsprites_factors_mean_what_they_say():
    def centroid(images):  # (n, 1, H, W) → (n, 2) mean (column, row) of the lit pixels
        grid = torch.arange(64, dtype=torch.float32)
        mass = images[:, 0].sum((1, 2))
        columns, rows = (images[:, 0] * grid).sum((1, 2)), (images[:, 0] * grid[:, None]).sum((1, 2))
        return torch.stack([columns / mass, rows / mass], 1)

    for k, axis in ((3, 0), (4, 1)):  # pos_x moves the sprite right, pos_y moves it down
        c = centroid(DSPRITES.render(_sweep(DSPRITES, k)))
        assert bool((c[1:, axis] > c[:-1, axis]).all()) and float(c[-1, axis] - c[0, axis]) > 30
        assert float((c[:, 1 - axis] - c[0, 1 - axis]).abs().max()) < 0.5
    for shape in range(3):
        rows = _sweep(DSPRITES, 1)
        rows[:, 0] = shape
        area = DSPRITES.render(rows).sum((1, 2, 3))
        assert bool((area[1:] > area[:-1]).all()), "a larger scale must light more pixels"
        assert 3.0 < float(area[-1] / area[0]) < 5.0  # area ∝ scale², scale 0.5 → 1.0
    square = _sweep(DSPRITES, 2)[[0, 10, 5]]  # 0°, 90°, 45°
    square[:, 0] = 0
    a0, a90, a45 = DSPRITES.render(square)
    assert torch.equal(a0, a90) and not torch.equal(a0, a45)


def test_shapes3d_hues_colour_their_own_region():
    base = _middle(SHAPES3D).repeat(2, axis=0)
    floor_pixel, wall_pixel, object_pixel = (60, 2), (2, 2), (32, 32)  # bottom-left, top-left, centre
    cases = ((0, floor_pixel, wall_pixel), (1, wall_pixel, floor_pixel), (2, object_pixel, wall_pixel))
    for k, pixel, untouched in cases:
        rows = base.copy()
        rows[1, k] = (rows[1, k] + 3) % 10
        a, b = SHAPES3D.render(rows)
        assert float((a[:, pixel[0], pixel[1]] - b[:, pixel[0], pixel[1]]).abs().max()) > 0.3
        assert torch.equal(a[:, untouched[0], untouched[1]], b[:, untouched[0], untouched[1]])


def test_shapes3d_scale_grows_the_object():
    rows = _sweep(SHAPES3D, 3)
    rows[:, 0], rows[:, 1], rows[:, 2] = 0, 0, 5  # red floor and wall, cyan object: object pixels have blue
    blue = SHAPES3D.render(rows)[:, 2]
    area = (blue > 0.1).flatten(1).sum(1)
    assert bool((area[1:] > area[:-1]).all())
    assert 2.0 < float(area[-1] / area[0]) < 3.5  # silhouette ∝ scale² = (1.25 / 0.75)² ≈ 2.8


def test_sampling_is_uniform_and_independent():
    for world in (SHAPES3D, DSPRITES):
        factors = world.sample_factors(20_000, seed=0)
        for k, size in enumerate(world.factor_sizes):
            counts = np.bincount(factors[:, k], minlength=size)
            assert stats.chisquare(counts).pvalue > 1e-3, world.factor_names[k]
        for i, j in ((0, 1), (1, 2), (0, world.n_factors - 1)):
            table = np.zeros((world.factor_sizes[i], world.factor_sizes[j]))
            np.add.at(table, (factors[:, i], factors[:, j]), 1)
            assert stats.chi2_contingency(table).pvalue > 1e-3, (world.factor_names[i], world.factor_names[j])


def test_bad_factor_indices_are_refused_with_the_factor_named():
    with pytest.raises(DataError, match=r"factors\[:, 4\] \(shape\)"):
        SHAPES3D.render(np.array([[0, 0, 0, 0, 4, 0]]))
    with pytest.raises(ShapeError, match="factors"):
        DSPRITES.render(np.zeros((2, 6), dtype=int))
    with pytest.raises(DataError, match="whole numbers"):
        DSPRITES.render(np.full((1, 5), 0.5))
    with pytest.raises(DataError, match="index"):
        DSPRITES.index_to_factors(len(DSPRITES))


def test_save_image_grid_writes_a_readable_montage(tmp_path):
    images = DSPRITES.sample(10, seed=0).images
    path = save_image_grid(images, tmp_path / "grid.png", nrow=4)
    png = matplotlib.image.imread(path)
    assert png.shape[:2] == (3 * 66 + 2, 4 * 66 + 2)
    np.testing.assert_allclose(png[2:66, 2:66, 0], images[0, 0].numpy(), atol=1 / 255)
    with pytest.raises(ShapeError, match="images"):
        save_image_grid(torch.zeros(2, 2, 8, 8), tmp_path / "bad.png")
