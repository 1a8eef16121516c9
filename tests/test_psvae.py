"""PS-VAE: the feature loss and its gradient, the linear probe, the model's loss terms and format, a small world
with a tiny random ViT teacher, and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from aekit.analysis.psvae import PIXEL_ONLY, PS_VAE, TEACHER, psvae_study
from aekit.cli import main
from aekit.errors import DataError, ShapeError
from aekit.metrics.representation import probe_accuracy
from aekit.models import load_model
from aekit.models.psvae import PSVAE, PSVAEConfig, feature_loss
from aekit.worlds.factors import FactorSample
from aekit.worlds.scenes import sample_scenes

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = {"image_size": 16, "n_latents": 8, "channels": "16,32", "hidden": 64, "feature_dim": 5}


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory):
    """A randomly initialised two-block ViT classifier saved as a Hugging Face directory."""
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(0)
    config = ViTConfig(image_size=16, patch_size=4, hidden_size=24, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=48, num_labels=3)
    path = tmp_path_factory.mktemp("vit")
    ViTForImageClassification(config).eval().save_pretrained(path)
    return path


def _small_scenes(n: int, seed: int) -> FactorSample:
    """16×16 scenes (the 32×32 world pooled once more) with their factors."""
    s = sample_scenes(n, seed)
    return FactorSample(torch.nn.functional.avg_pool2d(s.images, 2), s.factors, s.values)


def test_feature_loss_value_and_finite_difference_gradient():
    predicted, target = torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    # row 1: MSE (1 + 1)/2 = 1, cosine 0 → 2; row 2: MSE 1/2, cosine 1 → 0.5; mean 1.25
    assert feature_loss(predicted, target).item() == pytest.approx(1.25)
    a = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, 6, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda p: feature_loss(p, b), (a,))
    with pytest.raises(ShapeError):
        feature_loss(torch.zeros(3, 2), torch.zeros(3, 4))


def test_probe_reads_linear_labels_and_not_noise():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, size=(800, 2))
    features = np.concatenate([np.eye(4)[labels[:, 0]], rng.normal(size=(800, 3))], axis=1)  # column 0 linear
    result = probe_accuracy(features[:600], labels[:600], features[600:], labels[600:], ["read", "hidden"])
    assert result["per_factor"]["read"] == 1.0
    assert result["per_factor"]["hidden"] < 0.4  # column 1 is independent of the features: chance is 0.25
    assert result["mean"] == pytest.approx(np.mean(list(result["per_factor"].values())))
    with pytest.raises(DataError):
        probe_accuracy(features[:10], np.zeros((10, 1)), features[10:20], np.zeros((10, 1)))
    with pytest.raises(ShapeError):
        probe_accuracy(features[:10], labels[:9], features[10:20], labels[10:20])


def test_loss_terms_and_the_pixel_only_limit():
    images, features = _small_scenes(6, 0).images, torch.randn(6, 5)
    model = PSVAE(PSVAEConfig(**SMALL, semantic_weight=2.5), seed=0).eval()  # eval: z is the posterior mean
    out = model({"x": images, "features": features})
    assert set(out.losses) == {"recon", "kl", "semantic"}
    expected = 2.5 * feature_loss(model.predict_features(images), features)
    assert torch.allclose(out.losses["semantic"], expected, atol=1e-6)
    pixel_only = PSVAE(PSVAEConfig(**SMALL, semantic_weight=0.0), seed=0).eval()
    plain = pixel_only(images)  # no features needed without the semantic term
    assert set(plain.losses) == {"recon", "kl"} and torch.equal(plain.x_hat, out.x_hat)  # same seed, same weights
    with pytest.raises(DataError):
        model(images)


@pytest.mark.parametrize("hidden", [0, 16])
def test_save_load_round_trip_is_exact(tmp_path, hidden):
    model = PSVAE(PSVAEConfig(**SMALL, semantic_hidden=hidden), seed=3)
    loaded = load_model(model.save(tmp_path / "m"))
    images = _small_scenes(4, 1).images
    assert isinstance(loaded, PSVAE) and loaded.config == model.config
    assert torch.equal(loaded.predict_features(images), model.eval().predict_features(images))
    assert torch.equal(loaded.decode(loaded.encode(images)), model.decode(model.encode(images)))


def _factor_teacher(scenes: FactorSample) -> torch.Tensor:
    """An ideal semantic teacher of what pixels hide from a small VAE: one-hot shape (4) and scale (8) codes."""
    f = torch.as_tensor(scenes.factors)
    return torch.cat([torch.eye(4)[f[:, 4]], torch.eye(8)[f[:, 3]]], dim=1)


def test_semantic_term_puts_the_teacher_into_the_latent_on_a_small_world():
    train, test = _small_scenes(768, 0), _small_scenes(256, 5)
    record, _ = psvae_study(train, test, _factor_teacher(train), _factor_teacher(test), steps=250, seed=0,
                            n_latents=8, semantic_weight=1.0, channels="16,32")
    ps, pixel, teacher = (record[name] for name in (PS_VAE, PIXEL_ONLY, TEACHER))
    assert teacher["probe"]["per_factor"]["shape"] == teacher["probe"]["per_factor"]["scale"] == 1.0
    # measured: shape probe PS-VAE 0.50 vs pixel-only 0.28 (chance 0.25), feature cosine 0.26 vs 0.01 (the
    # untrained head); at this size the semantic term costs pixels: PSNR 12.4 vs 19.5 dB (the mean image: ~11 dB)
    assert ps["probe"]["per_factor"]["shape"] > pixel["probe"]["per_factor"]["shape"] + 0.12
    assert ps["feature_cosine"] > pixel["feature_cosine"] + 0.15
    assert pixel["psnr"] > 17
    assert record["targets"]["psnr_gap_db"] == pytest.approx(ps["psnr"] - pixel["psnr"])
    assert record["targets"]["probe_gap_points"] == pytest.approx(100 * (teacher["probe"]["mean"]
                                                                         - ps["probe"]["mean"]))
    with pytest.raises(ShapeError):
        psvae_study(train, test, _factor_teacher(test), _factor_teacher(test), steps=1, seed=0)


def test_cli_writes_outputs_and_refuses_bad_input(tmp_path, tiny_vit, capsys):
    out = tmp_path / "out"
    assert main(["psvae", "--teacher", str(tiny_vit), "--out", str(out), "--steps", "3", "--n-train", "64",
                 "--n-eval", "16", "--n-latents", "4", "--quiet"]) == 0
    record = json.loads((out / "psvae.json").read_text())
    assert {TEACHER, PS_VAE, PIXEL_ONLY, "targets"} <= set(record) and record["teacher_dir"] == str(tiny_vit)
    assert set(record[PS_VAE]["probe"]["per_factor"]) == {"floor_hue", "wall_hue", "object_hue", "scale", "shape",
                                                          "orientation"}
    assert (out / "psvae.png").stat().st_size > 0
    capsys.readouterr()
    bad = [["--teacher", str(tmp_path / "missing")], ["--beta", "-1"], ["--semantic-weight", "nan"],
           ["--n-train", "8"], ["--device", "tpu"]]
    for flags in bad:
        args = ["psvae", "--teacher", str(tiny_vit), "--steps", "1", "--quiet", "--out", str(tmp_path / "never"),
                *flags]
        assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == len(bad) and all(line.startswith("aekit: error:") for line in err)
    assert not (tmp_path / "never").exists()
