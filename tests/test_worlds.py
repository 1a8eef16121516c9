"""The feature world's harder settings: Zipf law, copula-correlated firing, parent/child hierarchy.

Statistics are checked on seeded samples with stated tolerances; the default world is checked bit-for-bit against
a frozen copy of the original generator and against a few recorded numbers.
"""

import math

import pytest
import torch

from aekit.errors import ConfigError
from aekit.seeding import derive_seed
from aekit.worlds import FeatureWorld, FeatureWorldConfig


def _reference_world(cfg: FeatureWorldConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The original FeatureWorld.__init__ (before the Zipf/copula/hierarchy options), frozen."""
    g = torch.Generator().manual_seed(derive_seed("feature-world", cfg.seed))
    directions = torch.randn(cfg.n_features, cfg.d, generator=g)
    directions = directions / directions.norm(dim=1, keepdim=True)
    u = torch.rand(cfg.n_features, generator=g)
    raw = torch.exp(u * math.log(cfg.probability_spread))
    return directions, (raw * cfg.mean_active / raw.sum()).clamp(max=1.0)


def _reference_sample(cfg, directions, probabilities, n, seed, with_magnitudes=True, chunk=65536):
    """The original FeatureWorld.sample, frozen."""
    g = torch.Generator().manual_seed(derive_seed("feature-sample", cfg.seed, seed))
    x = torch.empty(n, cfg.d)
    magnitudes = torch.zeros(n if with_magnitudes else 0, cfg.n_features)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        fire = torch.rand(m, cfg.n_features, generator=g) < probabilities
        size = (cfg.magnitude_mean + cfg.magnitude_std * torch.randn(m, cfg.n_features, generator=g)).abs()
        mags = torch.where(fire, size, torch.zeros(()))
        x[start : start + m] = mags @ directions + cfg.noise_std * torch.randn(m, cfg.d, generator=g)
        if with_magnitudes:
            magnitudes[start : start + m] = mags
    return x, magnitudes


@pytest.mark.parametrize("overrides", [
    {},  # the default world (the demo's)
    {"d": 16, "n_features": 32, "mean_active": 3.0, "seed": 5},
    {"d": 8, "n_features": 24, "mean_active": 20.0, "probability_spread": 100.0},  # clamped probabilities
])
def test_default_options_reproduce_the_original_world_bit_for_bit(overrides):
    cfg = FeatureWorldConfig(**overrides)
    world = FeatureWorld(cfg)
    directions, probabilities = _reference_world(cfg)
    assert torch.equal(world.directions, directions) and torch.equal(world.probabilities, probabilities)
    for with_magnitudes in (True, False):
        n = 66000 if not overrides and with_magnitudes else 3000  # > one 65536-row chunk for the default world
        got = world.sample(n, seed=3, with_magnitudes=with_magnitudes)
        x, magnitudes = _reference_sample(cfg, directions, probabilities, n, 3, with_magnitudes)
        assert torch.equal(got.x, x) and torch.equal(got.magnitudes, magnitudes)
    assert world.parent_ids.numel() == 0 and world.child_ids.numel() == 0


def test_default_world_matches_numbers_recorded_from_the_original_code():
    world = FeatureWorld(FeatureWorldConfig())
    s = world.sample(1000, seed=3)
    assert world.probabilities[:4].tolist() == pytest.approx(
        [0.01554358284920454, 0.01400419045239687, 0.008036724291741848, 0.007252268027514219], abs=1e-7)
    assert world.directions[0, :3].tolist() == pytest.approx([-0.0826682597, -0.0721855014, -0.0349670052], abs=1e-7)
    assert s.x[0, :4].tolist() == pytest.approx([-0.1171425730, 0.5847335458, 0.0486491472, 0.2185493112], abs=1e-6)
    assert s.x.sum().item() == pytest.approx(-213.2035980, abs=1e-3)
    assert s.magnitudes.sum().item() == pytest.approx(5014.72705, abs=1e-2)
    assert int(s.active.sum()) == 5040


@pytest.mark.parametrize("exponent", [0.5, 1.0, 1.5])
def test_zipf_probabilities_fall_as_a_power_of_rank(exponent):
    world = FeatureWorld(FeatureWorldConfig(d=32, n_features=256, mean_active=1.5, probability_law="zipf",
                                            zipf_exponent=exponent))  # p_0 < 1 for every exponent: no clamping
    p = world.probabilities
    assert (p[:-1] > p[1:]).all()  # feature i has rank i + 1
    assert (p[0] / p[1]).item() == pytest.approx(2.0**exponent, rel=1e-5)
    assert (p[9] / p[99]).item() == pytest.approx(10.0**exponent, rel=1e-5)
    assert world.expected_l0 == pytest.approx(1.5, rel=1e-5)


def test_probabilities_are_clamped_at_one_and_expected_l0_reports_it():
    world = FeatureWorld(FeatureWorldConfig(d=16, n_features=64, mean_active=4.0, probability_law="zipf",
                                            zipf_exponent=2.0))
    p = world.probabilities
    assert p.max().item() == 1.0 and p[0] == 1.0 and p[1] < 1.0
    assert world.expected_l0 == pytest.approx(4.0 - (4.0 / sum(r**-2.0 for r in range(1, 65)) - 1.0), rel=1e-5)
    sample = world.sample(2000, seed=0)
    assert sample.active[:, 0].all()


@pytest.mark.parametrize("overrides", [
    {"probability_law": "loguniform"},
    {"probability_law": "zipf", "zipf_exponent": 1.0},
    {"probability_law": "zipf", "zipf_exponent": 0.7, "correlation": 0.5},
    {"probability_law": "zipf", "n_parents": 8, "children_per_parent": 4, "child_probability": 0.5},
    {"n_parents": 6, "children_per_parent": 3, "correlation": 0.3},
])
def test_expected_l0_is_mean_active_for_every_law_and_option(overrides):
    world = FeatureWorld(FeatureWorldConfig(d=32, n_features=256, mean_active=6.0, **overrides))
    assert world.expected_l0 == pytest.approx(6.0, rel=1e-5)
    l0 = world.sample(40000, seed=1).active.sum(-1).float().mean().item()
    assert l0 == pytest.approx(6.0, rel=0.05)


def _firing_correlation(active: torch.Tensor) -> torch.Tensor:
    return torch.corrcoef(active.T.float())


def test_copula_keeps_marginals_and_correlates_firing_within_blocks_only():
    """16 features in two blocks of 8, p from 0.35 down (Zipf), 40k samples for each ρ."""
    within, rates = [], {}
    for rho in (0.0, 0.3, 0.7):
        world = FeatureWorld(FeatureWorldConfig(d=8, n_features=16, mean_active=3.0, probability_law="zipf",
                                                zipf_exponent=0.5, correlation=rho, correlation_block=8))
        active = world.sample(40000, seed=2, with_magnitudes=True).active
        rate = active.float().mean(0)
        rates[rho] = rate
        # every marginal kept: within 4 % (≈ 4 standard errors at p ≈ 0.1) for all 16 features
        assert torch.allclose(rate, world.probabilities, rtol=0.04), (rho, rate, world.probabilities)
        corr = _firing_correlation(active)
        same_block = world.block_ids[:, None] == world.block_ids[None, :]
        off_diagonal = ~torch.eye(16, dtype=torch.bool)
        within.append(corr[same_block & off_diagonal].mean().item())
        across = corr[~same_block]
        assert across.abs().max().item() < 0.025  # ≈ 0 across blocks (standard error ≈ 0.005)
    assert abs(within[0]) < 0.01
    assert 0.05 < within[1] < within[2]  # positive, growing with ρ
    assert within[2] > 0.2


def test_copula_thresholds_match_the_normal_quantile():
    world = FeatureWorld(FeatureWorldConfig(d=8, n_features=16, mean_active=3.0, correlation=0.5))
    normal = torch.distributions.Normal(0.0, 1.0)
    assert torch.allclose(normal.cdf(world._thresholds), world.probabilities, atol=1e-6)


def test_hierarchy_invariants():
    cfg = FeatureWorldConfig(d=32, n_features=128, mean_active=8.0, n_parents=6, children_per_parent=3,
                             child_probability=0.4, child_parent_cosine=0.5, probability_law="zipf")
    world = FeatureWorld(cfg)
    parents, children = world.parent_ids, world.child_ids
    assert parents.tolist() == list(range(6)) and children.tolist() == list(range(110, 128))
    assert world.child_parent.tolist() == [p for p in range(6) for _ in range(3)]
    assert torch.allclose(world.directions.norm(dim=1), torch.ones(128), atol=1e-6)
    cosine = (world.directions[children] * world.directions[world.child_parent]).sum(1)
    assert torch.allclose(cosine, torch.full((18,), 0.5), atol=1e-5)
    assert torch.allclose(world.probabilities[children], 0.4 * world.probabilities[world.child_parent])

    sample = world.sample(40000, seed=4)
    active = sample.active
    child_on, parent_on = active[:, children], active[:, world.child_parent]
    assert not (child_on & ~parent_on).any()  # a child never fires without its parent
    conditional = (child_on & parent_on).sum(0).float() / parent_on.sum(0).float()
    assert conditional.mean().item() == pytest.approx(0.4, abs=0.01)
    assert ((conditional - 0.4).abs() < 0.05).all()  # each child; the rarest parent fires ≈ 1.3k times
    # a firing child adds its own magnitude along its direction; the parent's stays active
    assert torch.allclose(sample.x, sample.magnitudes @ world.directions, atol=6 * cfg.noise_std)
    assert (sample.magnitudes[:, world.child_parent][child_on] > 0).all()


def test_hierarchy_with_independent_firing_children_keeps_parent_rates():
    world = FeatureWorld(FeatureWorldConfig(d=16, n_features=64, mean_active=4.0, n_parents=4,
                                            children_per_parent=2, child_probability=1.0, child_parent_cosine=0.9))
    active = world.sample(20000, seed=0).active
    assert torch.equal(active[:, world.child_ids], active[:, world.child_parent])  # p = 1: always with parent
    cosine = (world.directions[world.child_ids] * world.directions[world.child_parent]).sum(1)
    assert torch.allclose(cosine, torch.full((8,), 0.9), atol=1e-5)


@pytest.mark.parametrize("overrides", [
    {"probability_law": "zipf"},
    {"correlation": 0.4},
    {"n_parents": 4, "children_per_parent": 2},
    {"probability_law": "zipf", "correlation": 0.2, "n_parents": 3},
])
def test_new_options_are_deterministic_under_seeds(overrides):
    cfg = FeatureWorldConfig(d=16, n_features=48, mean_active=4.0, **overrides)
    a, b = FeatureWorld(cfg), FeatureWorld(FeatureWorldConfig.from_dict(cfg.to_dict()))
    assert torch.equal(a.directions, b.directions) and torch.equal(a.probabilities, b.probabilities)
    sa, sb = a.sample(3000, seed=7), b.sample(3000, seed=7)
    assert torch.equal(sa.x, sb.x) and torch.equal(sa.magnitudes, sb.magnitudes)
    assert torch.equal(a.sample(3000, seed=7, with_magnitudes=False).x, sa.x)
    assert not torch.equal(sa.x, a.sample(3000, seed=8).x)
    other = FeatureWorld(FeatureWorldConfig(d=16, n_features=48, mean_active=4.0, seed=1, **overrides))
    assert not torch.equal(other.directions, a.directions)


def test_sampling_is_chunked_and_the_default_chunk_bounds_memory():
    world = FeatureWorld(FeatureWorldConfig(d=16, n_features=64, mean_active=4.0, correlation=0.3, n_parents=4))
    whole, chunked = world.sample(5000, seed=0, chunk=5000), world.sample(5000, seed=0, chunk=777)
    assert torch.equal(world.sample(5000, seed=0, chunk=777).x, chunked.x)
    l0_whole, l0_chunked = (s.active.sum(-1).float().mean().item() for s in (whole, chunked))
    assert l0_chunked == pytest.approx(l0_whole, rel=0.05)  # same distribution, different stream
    big = FeatureWorld.with_superposition(32, d=64, l0=8.0)  # 2048 features: 16384-row chunks by default
    sample = big.sample(16500, seed=0, with_magnitudes=False)
    assert sample.x.shape == (16500, 64) and sample.magnitudes.shape == (0, 2048)
    assert sample.x.norm(dim=1).pow(2).mean().item() == pytest.approx(8.0 * (1 + 0.25**2), rel=0.1)


def test_with_superposition():
    world = FeatureWorld.with_superposition(8, d=32, l0=3.0, seed=2, probability_law="zipf", n_parents=4)
    cfg = world.config
    assert (cfg.d, cfg.n_features, cfg.mean_active, cfg.seed, cfg.n_parents) == (32, 256, 3.0, 2, 4)
    assert world.superposition == 8.0 and world.expected_l0 == pytest.approx(3.0, rel=1e-5)
    assert FeatureWorld.with_superposition(2.5, d=10).config.n_features == 25
    with pytest.raises(ConfigError, match="world.ratio"):
        FeatureWorld.with_superposition(0, d=32)
    with pytest.raises(ConfigError, match="world.n_features: set by with_superposition"):
        FeatureWorld.with_superposition(4, n_features=10)
    with pytest.raises(ConfigError, match="did you mean 'correlation'"):
        FeatureWorld.with_superposition(4, corelation=0.3)


@pytest.mark.parametrize(("overrides", "field"), [
    ({"probability_law": "powerlaw"}, "probability_law"),
    ({"zipf_exponent": -1.0}, "zipf_exponent"),
    ({"correlation": 1.5}, "correlation"),
    ({"correlation": float("nan")}, "correlation"),
    ({"correlation_block": 0}, "correlation_block"),
    ({"n_parents": -1}, "n_parents"),
    ({"n_parents": 20, "children_per_parent": 4, "n_features": 64}, "n_parents"),
    ({"n_parents": 2, "children_per_parent": 0}, "children_per_parent"),
    ({"n_parents": 2, "child_probability": 0.0}, "child_probability"),
    ({"n_parents": 2, "child_parent_cosine": 1.2}, "child_parent_cosine"),
    ({"n_parents": 2, "d": 1}, "d"),
])
def test_invalid_settings_name_the_field(overrides, field):
    with pytest.raises(ConfigError, match=rf"^world\.{field}: "):
        FeatureWorld(FeatureWorldConfig(**{"n_features": 64, **overrides}))


def test_unit_norm_world_rescales_samples_and_keeps_firings():
    plain = FeatureWorld(FeatureWorldConfig(d=16, n_features=32, mean_active=3.0, seed=4))
    unit = FeatureWorld(FeatureWorldConfig(d=16, n_features=32, mean_active=3.0, seed=4, unit_norm=True))
    a, b = plain.sample(2000, seed=1), unit.sample(2000, seed=1)
    assert torch.equal(a.magnitudes, b.magnitudes)
    assert torch.allclose(b.x.norm(dim=1), torch.ones(2000), atol=1e-5)
    assert torch.allclose(b.x, a.x / a.x.norm(dim=1, keepdim=True), atol=1e-6)


def test_exclusive_children_fire_one_at_a_time_at_their_rate():
    cfg = FeatureWorldConfig(d=32, n_features=40, mean_active=3.0, n_parents=4, children_per_parent=3,
                             child_probability=0.2, exclusive_children=True, seed=1)
    world = FeatureWorld(cfg)
    active = world.sample(40000, seed=2).active
    children = active[:, world.child_ids].view(-1, 4, 3)  # (n, parents, children of that parent)
    assert int(children.sum(-1).max()) == 1  # never two children of one parent together
    parent_on = active[:, world.parent_ids]
    assert not children[~parent_on].any()  # a child only fires with its parent
    given_parent = children[parent_on].float().mean(0)  # P(child j | parent), every j
    assert torch.allclose(given_parent, torch.full((3,), 0.2), atol=0.015)
    assert abs(float(active.float().sum(1).mean()) - world.expected_l0) < 0.05


def test_orthogonal_world_has_orthonormal_directions_and_orthogonal_children():
    world = FeatureWorld(FeatureWorldConfig(d=24, n_features=20, mean_active=2.0, orthogonal=True, n_parents=4,
                                            children_per_parent=2, child_parent_cosine=0.0))
    assert torch.allclose(world.directions @ world.directions.T, torch.eye(20), atol=1e-5)
    tilted = FeatureWorld(FeatureWorldConfig(d=24, n_features=20, mean_active=2.0, orthogonal=True, n_parents=4,
                                             children_per_parent=2, child_parent_cosine=0.5))
    cos = (tilted.directions[tilted.child_ids] * tilted.directions[tilted.child_parent]).sum(1)
    assert torch.allclose(cos, torch.full_like(cos, 0.5), atol=1e-5)


@pytest.mark.parametrize(("overrides", "field"), [
    ({"n_parents": 2, "children_per_parent": 3, "child_probability": 0.5, "exclusive_children": True},
     "child_probability"),
    ({"orthogonal": True, "d": 16}, "orthogonal"),
])
def test_invalid_absorption_settings_name_the_field(overrides, field):
    with pytest.raises(ConfigError, match=rf"^world\.{field}: "):
        FeatureWorld(FeatureWorldConfig(**{"n_features": 64, **overrides}))
