"""Feature absorption: the scoring functions on hand-built cases, and Matryoshka vs BatchTopK on the papers' toy world.

The world follows the toy setting of Chanin et al. (2024) and Nabeshima (2024): orthonormal feature directions,
parents whose children fire only with them and at most one at a time (each with probability 0.2), unit
magnitudes, as many latents as features. A standard (BatchTopK) SAE then absorbs parents into child latents;
Matryoshka's nested prefix losses keep the parent latent firing (Bussmann et al. 2025).
"""

import pytest
import torch

from aekit import SAEConfig, SparseAutoencoder
from aekit.data import ArraySource
from aekit.errors import ConfigError
from aekit.train import TrainConfig, Trainer
from aekit.worlds import FeatureWorld, FeatureWorldConfig
from aekit.worlds.scoring import absorption_from_activity, absorption_scores, best_latents

# --- the scoring functions on hand-built cases -------------------------------------------------------------------

# Features: 0 = parent, 1 and 2 = its children (directions e0, e1, e2 in 3 dims).
DIRECTIONS = torch.eye(3)
PARENTS, CHILDREN, CHILD_PARENT = torch.tensor([0]), torch.tensor([1, 2]), torch.tensor([0, 0])
# Six samples: parent alone (rows 0, 1), parent + child 1 (rows 2, 3), parent + child 2 (row 4), nothing (row 5).
TRUE = torch.tensor([[1, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 0], [1, 0, 1], [0, 0, 0]], dtype=torch.bool)


def _score(latent_active, decoder, min_cosine=0.3):
    return absorption_from_activity(TRUE, latent_active, decoder, DIRECTIONS, PARENTS, CHILDREN, CHILD_PARENT,
                                    min_cosine)


def test_a_clean_dictionary_has_no_absorption():
    latents = TRUE.clone()  # latent i fires exactly when feature i does, decoder rows = true directions
    scores = _score(latents, DIRECTIONS)
    assert scores == {"parent_f1": 1.0, "parent_recall_with_child": 1.0, "parent_recall_without_child": 1.0,
                      "absorption_rate": 0.0, "parent_decoder_cosine": 1.0}


def test_an_absorbed_parent_is_counted_when_a_child_latent_carries_its_direction():
    # latent 0: "parent without child"; latent 1: parent + child 1 absorbed (decoder (e0 + e1)/√2) fires on rows
    # 2, 3; latent 2: clean child 2 (e2); on row 4 latent 0 fires as it should.
    latents = torch.tensor([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0], [1, 0, 1], [0, 0, 0]], dtype=torch.bool)
    decoder = torch.tensor([[1.0, 0, 0], [1.0, 1.0, 0], [0, 0, 1.0]])
    scores = _score(latents, decoder)
    # parent latent 0 fires on 3 of the 5 parent rows: F1 = 2·3 / (5 + 3)
    assert scores["parent_f1"] == pytest.approx(0.75)
    assert scores["parent_recall_without_child"] == 1.0
    assert scores["parent_recall_with_child"] == pytest.approx(1 / 3)  # rows 2, 3, 4: fires on row 4 only
    assert scores["absorption_rate"] == pytest.approx(2 / 3)  # rows 2, 3: silent, latent 1 (cos 0.707) fires
    assert scores["parent_decoder_cosine"] == pytest.approx(1.0)
    # the carrier must point along the parent: above its cosine, the same holes are misses, not absorption
    assert _score(latents, decoder, min_cosine=0.8)["absorption_rate"] == 0.0


def test_parents_without_child_samples_are_left_out_of_the_child_rates():
    true = torch.tensor([[1, 0, 0, 0], [0, 0, 1, 1], [0, 0, 1, 0]], dtype=torch.bool)  # parents 0 and 2; child 3 of 2
    latents = torch.tensor([[1, 0], [0, 1], [0, 1]], dtype=torch.bool)
    scores = absorption_from_activity(true, latents, torch.eye(2, 4), torch.eye(4), torch.tensor([0, 2]),
                                      torch.tensor([1, 3]), torch.tensor([0, 2]))
    assert scores["parent_recall_with_child"] == 1.0  # parent 0 never has a child firing: only parent 2 counts
    assert scores["absorption_rate"] == 0.0
    assert scores["parent_decoder_cosine"] == pytest.approx(0.5)  # parent 0: row e0 (1); parent 2: row e1 (0)


def test_best_latents_returns_the_f1_and_index_of_the_best_detector():
    true = torch.tensor([[1], [1], [0], [0]], dtype=torch.bool)
    latents = torch.tensor([[1, 1], [0, 1], [0, 1], [0, 0]], dtype=torch.bool)
    f1, index = best_latents(true, latents)
    assert index.tolist() == [1] and f1.item() == pytest.approx(0.8)  # latent 1: tp 2, fp 1 -> 4/5; latent 0: 2/3


def test_absorption_scores_need_a_hierarchy():
    world = FeatureWorld(FeatureWorldConfig(d=8, n_features=16, mean_active=2.0))
    model = SparseAutoencoder(SAEConfig(d_in=8, n_latents=16, k=2), seed=0)
    with pytest.raises(ConfigError, match=r"^world\.n_parents: "):
        absorption_scores(model, world, world.sample(10, seed=0))


# --- Matryoshka vs BatchTopK on the toy absorption world -----------------------------------------------------

def _toy_world() -> FeatureWorld:
    """32 orthonormal features: 4 parents × 3 exclusive children (0.2 each given the parent), 16 independent."""
    return FeatureWorld(FeatureWorldConfig(d=32, n_features=32, orthogonal=True, n_parents=4, children_per_parent=3,
                                           child_probability=0.2, exclusive_children=True, child_parent_cosine=0.0,
                                           probability_spread=1.0, mean_active=2.0, magnitude_std=0.0,
                                           noise_std=0.0, seed=0))


def _absorption(world, data, held_out, arch, seed):
    model = SparseAutoencoder(SAEConfig(d_in=32, n_latents=32, architecture=arch, k=2), seed=seed)
    cfg = TrainConfig(steps=1500, batch_size=512, lr=2e-3, seed=seed, progress=False, checkpoint_every=0,
                      log_every=1500)
    Trainer(model, ArraySource(data, cfg.batch_size, seed=seed), cfg).fit()
    return absorption_scores(model, world, held_out)


def test_matryoshka_keeps_the_parents_that_batchtopk_absorbs():
    torch.set_num_threads(1)  # seeded numbers; the benchmark's 3-seed d=64 version is in benchmarks/recovery.py
    world = _toy_world()
    data, held_out = world.sample(50_000, seed=1, with_magnitudes=False).x, world.sample(10_000, seed=2)
    mean = {}
    for arch in ("batchtopk", "matryoshka"):
        runs = [_absorption(world, data, held_out, arch, seed) for seed in (0, 1)]
        mean[arch] = {key: sum(r[key] for r in runs) / len(runs) for key in runs[0]}
    batch, matry = mean["batchtopk"], mean["matryoshka"]
    # measured (seeds 0, 1): absorption 0.25 vs 0.00, recall with a child 0.75 vs 1.00, parent cosine 0.90 vs 0.94
    assert batch["absorption_rate"] > 0.15  # the world does make a standard SAE absorb its parents
    assert matry["absorption_rate"] <= batch["absorption_rate"] - 0.15
    assert matry["parent_recall_with_child"] >= batch["parent_recall_with_child"] + 0.15
    assert matry["parent_recall_without_child"] == batch["parent_recall_without_child"] == 1.0  # holes: with a child
    assert matry["parent_decoder_cosine"] > batch["parent_decoder_cosine"]


def test_matryoshka_loss_weights_every_prefix_equally():
    # every prefix's reconstruction error counts once in a mean (Bussmann et al.'s reference code); a full
    # reconstruction weighted P times a prefix left BatchTopK-like absorption on the toy world
    torch.manual_seed(0)
    model = SparseAutoencoder(SAEConfig(d_in=6, n_latents=40, architecture="matryoshka", k=3,
                                        matryoshka_prefixes="5,20"), seed=0).double()
    batch = torch.randn(32, 6, dtype=torch.float64)
    out = model(batch)
    dense = out.codes.to_dense()
    errors = [((dense[:, :m] @ model.W_dec[:m] + model.b_dec) - batch).pow(2).sum(-1).mean() for m in (5, 20, 40)]
    assert out.losses["mse"].item() == pytest.approx(errors[-1].item(), rel=1e-10)
    total = out.losses["mse"] + out.losses["matryoshka"]
    assert total.item() == pytest.approx(sum(errors).item() / 3, rel=1e-10)
