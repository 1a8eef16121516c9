"""Metrics against hand-computed values, the feature world's statistics, and recovery on a small world."""

import pytest
import torch

from aekit import SAEConfig, SparseAutoencoder
from aekit.data import ArraySource
from aekit.metrics import (
    best_f1_per_feature,
    dead_fraction,
    dense_fraction,
    density_histogram,
    feature_density,
    fraction_of_variance_unexplained,
    l0,
    matched_cosine,
    mse,
)
from aekit.models.evaluate import evaluate_reconstruction
from aekit.train import TrainConfig, Trainer
from aekit.worlds import FeatureWorld, FeatureWorldConfig, recovery_scores

from .helpers import small_world


def test_reconstruction_metrics_by_hand():
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    x_hat = torch.tensor([[1.0, 2.5], [3.0, 3.5]])
    assert mse(x, x_hat) == pytest.approx(0.125)
    assert fraction_of_variance_unexplained(x, x_hat) == pytest.approx(0.5 / 4.0)
    assert fraction_of_variance_unexplained(x, x.mean(0).expand_as(x)) == pytest.approx(1.0)
    assert l0(torch.tensor([[True, False, True], [False, False, True]])) == 1.5


def test_density_dead_dense_and_histogram():
    density = feature_density(torch.tensor([0, 1, 50, 100]), 100)
    assert density.tolist() == [0.0, 0.01, 0.5, 1.0]
    assert dead_fraction(density) == 0.25
    assert dense_fraction(density, threshold=0.1) == 0.5
    hist = density_histogram(density, bins=7, low=-7.0)
    assert hist["dead"] == 1 and sum(hist["counts"]) == 3


def test_matched_cosine_recovers_a_permutation_and_penalises_noise():
    g = torch.Generator().manual_seed(0)
    true = torch.randn(20, 8, generator=g)
    perm = torch.randperm(20, generator=g)
    learned = torch.cat([true[perm] * 2.5, torch.randn(5, 8, generator=g)])  # scale does not matter
    score, match = matched_cosine(true, learned)
    assert score == pytest.approx(1.0, abs=1e-9)
    assert (perm[torch.as_tensor(match)] == torch.arange(20)).all()
    noisy, _ = matched_cosine(true, true + 0.5 * torch.randn(20, 8, generator=g))
    assert 0.5 < noisy < 0.99


def test_best_f1_by_hand():
    truth = torch.tensor([[1, 0], [1, 0], [0, 1], [0, 0]], dtype=torch.bool)
    latents = torch.tensor([[1, 0, 1], [0, 0, 1], [0, 1, 1], [0, 0, 0]], dtype=torch.bool)
    f1 = best_f1_per_feature(truth, latents)
    # feature 0: latent 2 has tp=2, 3 firings -> 2·2/(2+3)=0.8; latent 0: tp=1 -> 2/3. feature 1: latent 1 exact.
    assert f1.tolist() == pytest.approx([0.8, 1.0])


def test_feature_world_is_seeded_and_has_the_stated_statistics():
    world = FeatureWorld(FeatureWorldConfig(d=32, n_features=128, mean_active=4.0, probability_spread=10.0))
    a, b = world.sample(20000, seed=7), world.sample(20000, seed=7)
    assert torch.equal(a.x, b.x) and torch.equal(a.magnitudes, b.magnitudes)
    assert not torch.equal(a.x, world.sample(20000, seed=8).x)
    assert torch.allclose(world.directions.norm(dim=1), torch.ones(128), atol=1e-6)
    assert world.probabilities.max() / world.probabilities.min() <= 10.0 + 1e-4
    assert a.active.sum(-1).float().mean().item() == pytest.approx(4.0, rel=0.05)
    assert (a.magnitudes >= 0).all()
    clean = a.magnitudes @ world.directions
    assert (a.x - clean).std().item() == pytest.approx(world.config.noise_std, rel=0.05)


def test_world_and_model_seeds_are_independent():
    world = FeatureWorld(FeatureWorldConfig(d=16, n_features=32, seed=0))
    model = SparseAutoencoder(SAEConfig(d_in=16, n_latents=64, k=3), seed=0)
    score, _ = matched_cosine(world.directions, model.W_dec.detach())
    assert score < 0.8  # a shared random stream would give 1.0 before any training


def test_topk_sae_recovers_small_world_features():
    """A fast pin of ground-truth recovery: 32 features in 16 dims (2× superposition), 3 active on average."""
    world = small_world()
    data = world.sample(40000, seed=1, with_magnitudes=False).x
    cfg = TrainConfig(steps=700, batch_size=256, lr=1e-2, warmup_steps=20, progress=False, checkpoint_every=0,
                      dead_after_samples=20000, seed=0)
    model = SparseAutoencoder(SAEConfig(d_in=16, n_latents=64, k=3), seed=0)
    Trainer(model, ArraySource(data, cfg.batch_size, seed=0), cfg).fit()
    held_out = world.sample(5000, seed=2)
    scores = recovery_scores(model, world, held_out)
    assert scores["mcc"] >= 0.95
    assert scores["mean_best_f1"] >= 0.65
    metrics = evaluate_reconstruction(model, held_out.x)
    assert metrics["fvu"] < 0.2
    assert metrics["l0"] <= 3.0
