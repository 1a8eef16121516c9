"""Low-rank denoisers (Wang et al. 2024): the MoLRG optimal denoiser against dense references, the trained network
recovering the true subspaces with enough samples and not with too few, the Trainer's exact resume, and
`aekit denoiser` (a tiny run, and a mistake is one line, exit 2, nothing written)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from aekit.analysis.low_rank import matched_subspace_angles, train_low_rank_denoiser
from aekit.cli import main
from aekit.data.sources import ArraySource
from aekit.models import LowRankDenoiser, LowRankDenoiserConfig, load_model
from aekit.train import TrainConfig, Trainer
from aekit.worlds.low_rank import LowRankMixture, optimal_denoiser, posterior_weights

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _noisy(world: LowRankMixture, n: int, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    sample = world.sample(n, seed=5, dtype=torch.float64)
    return sample.x, sample.x + sigma * world.noise((n, world.d), seed=5, dtype=torch.float64)


def test_world_bases_are_orthonormal_and_samples_lie_in_their_subspace():
    world = LowRankMixture(d=12, n_components=3, rank=2, seed=1)
    eye = torch.eye(2, dtype=torch.float64)
    assert torch.allclose(world.bases.transpose(1, 2) @ world.bases, eye.expand(3, 2, 2), atol=1e-12)
    sample = world.sample(50, seed=0, dtype=torch.float64)
    u = world.bases[sample.labels]
    residual = sample.x - torch.einsum("ndr,nr->nd", u, torch.einsum("ndr,nd->nr", u, sample.x))
    assert residual.abs().max() < 1e-12 and set(sample.labels.tolist()) == {0, 1, 2}


def test_optimal_denoiser_is_the_scaled_projection_for_one_component():
    world = LowRankMixture(d=10, n_components=1, rank=3, seed=2)
    sigma = 0.7
    _, x_t = _noisy(world, 40, sigma)
    u = world.bases[0]
    expected = x_t @ u @ u.T / (1 + sigma**2)
    one = torch.ones(40, 1, dtype=torch.float64)
    assert torch.equal(posterior_weights(x_t, sigma, world.bases, world.weights), one)
    torch.testing.assert_close(optimal_denoiser(x_t, sigma, world.bases, world.weights), expected, rtol=0, atol=1e-13)


@pytest.mark.parametrize("orthonormal", [True, False])
def test_posterior_weights_match_dense_gaussian_log_densities(orthonormal):
    world = LowRankMixture(d=9, n_components=3, rank=2, seed=3)
    g = torch.Generator().manual_seed(0)
    bases = world.bases if orthonormal else torch.randn(3, 9, 2, generator=g, dtype=torch.float64)
    weights = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    sigma = 0.4
    _, x_t = _noisy(world, 30, sigma)
    logits = torch.stack([
        torch.distributions.MultivariateNormal(torch.zeros(9, dtype=torch.float64),
                                               covariance_matrix=u @ u.T + sigma**2 * torch.eye(9, dtype=torch.float64)
                                               ).log_prob(x_t) + math.log(w)
        for u, w in zip(bases, weights, strict=True)], dim=1)
    dense = torch.softmax(logits, dim=1)
    torch.testing.assert_close(posterior_weights(x_t, sigma, bases, weights), dense, rtol=0, atol=1e-8)
    # the mean is the posterior-weighted sum of each component's Gaussian conditional mean
    means = torch.stack([x_t @ torch.linalg.solve(u @ u.T + sigma**2 * torch.eye(9, dtype=torch.float64), u @ u.T)
                         for u in bases], dim=1)
    torch.testing.assert_close(optimal_denoiser(x_t, sigma, bases, weights), (dense[:, :, None] * means).sum(1),
                               rtol=0, atol=1e-10)


def test_network_at_the_true_bases_is_the_optimal_denoiser():
    world = LowRankMixture(d=16, n_components=2, rank=4, seed=0)
    model = LowRankDenoiser(LowRankDenoiserConfig(d=16, n_components=2, rank=4, sigma=0.3)).double()
    with torch.no_grad():
        model.bases.copy_(world.bases)
    _, x_t = _noisy(world, 64, 0.3)
    torch.testing.assert_close(model.denoise(x_t), world.denoise(x_t, 0.3), rtol=0, atol=1e-10)


# measured (d 16, K 2, r 4, σ 0.1, 300 steps, seeds 0-2): N = 8d gives largest angles 0.2-0.4°; N = d/4 = 4
# (2 samples per 4-dimensional subspace) leaves 69-90°.
@pytest.mark.parametrize("seed", [0, 1])
def test_trained_network_recovers_the_subspaces_with_enough_samples_only(seed):
    world = LowRankMixture(d=16, n_components=2, rank=4, seed=0)
    enough = train_low_rank_denoiser(world.sample(128, seed=seed).x, 2, 4, 0.1, seed=seed, steps=300)
    assert max(matched_subspace_angles(enough.bases, world.bases)) < 2.0
    few = train_low_rank_denoiser(world.sample(4, seed=seed).x, 2, 4, 0.1, seed=seed, steps=300)
    assert max(matched_subspace_angles(few.bases, world.bases)) > 45.0


def test_training_resumes_to_the_same_bits_and_saves(tmp_path):
    world = LowRankMixture(d=8, n_components=2, rank=2, seed=0)
    x = world.sample(64, seed=0).x
    config = LowRankDenoiserConfig(d=8, n_components=2, rank=2, sigma=0.2, seed=3)

    def train(out, steps):
        cfg = TrainConfig(steps=steps, batch_size=16, lr=0.01, warmup_steps=2, decay="none", checkpoint_every=10,
                          progress=False, device="cpu", init_samples=64)
        trainer = Trainer(LowRankDenoiser(config), ArraySource(x, 16, seed=0), cfg, out)
        trainer.resume()
        trainer.fit()
        return trainer.model

    straight = train(tmp_path / "a", 30)
    train(tmp_path / "b", 20)
    resumed = train(tmp_path / "b", 30)
    assert torch.equal(straight.bases, resumed.bases)
    loaded = load_model(straight.save(tmp_path / "model"))
    assert isinstance(loaded, LowRankDenoiser) and torch.equal(loaded.bases, straight.bases)


def test_cli_tiny_study_writes_json_and_png(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["denoiser", "--d", "8", "--rank", "2", "--ratios", "1", "4", "--seeds", "1", "--steps", "40",
                 "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "optimal denoiser error" in captured.out and "N/d 4 (N 32)" in captured.out
    record = json.loads((out / "denoiser.json").read_text())
    assert [s["n_train"] for s in record["summary"]] == [8, 32] and len(record["runs"]) == 2
    assert record["world"] == {"d": 8, "n_components": 2, "rank": 2, "seed": 0}
    assert (out / "denoiser.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("argv, message", [
    (["--d", "4", "--rank", "5"], "--rank must be between 1 and --d 4"),
    (["--sigma", "0"], "--sigma must be a positive number"),
    (["--ratios", "1", "-2"], "--ratios must be positive numbers"),
    (["--seeds", "0"], "expected a positive integer"),
])
def test_cli_mistakes_are_one_line_exit_2_and_write_nothing(tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    code = main(["denoiser", *argv, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("aekit: error: ") and message in err and err.count("\n") == 1
    assert not out.exists()
