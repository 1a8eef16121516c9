"""DDMI: the SDF world by hand, PE-grid decoding at any resolution, the losses, save/load, tiny runs, the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from aekit.analysis.ddmi import class_statistics, sdf_study, train_latent_diffusion
from aekit.cli import main
from aekit.metrics.generative import frechet_distance
from aekit.models import D2CVAE, D2CVAEConfig, LatentDiffusion, LatentDiffusionConfig, load_model
from aekit.models.ddmi import pixel_centres, sample_fields
from aekit.nn.codes import Codes
from aekit.worlds.sdf import Primitive, SDFScene, grid_coordinates, render_sdf, sample_sdf_scenes

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = {"image_size": 16, "channels": 8, "pe_channels": 4, "hidden": 16, "latent_channels": 2}


def test_sdf_world_values_by_hand():
    circle = Primitive("circle", 0.0, 0.0, 0.5)
    box = Primitive("box", 0.0, 0.0, 0.5, 0.25)
    turned = Primitive("box", 0.0, 0.0, 0.5, 0.25, angle=math.pi / 2)
    points = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0], [0.0, 1.0]])
    assert circle.distance(points) == pytest.approx([0.5, math.sqrt(2) - 0.5, -0.5, 0.5])
    assert box.distance(points) == pytest.approx([0.5, math.sqrt(0.25 + 0.5625), -0.25, 0.75])
    assert turned.distance(points) == pytest.approx([0.75, math.sqrt(0.5625 + 0.25), -0.25, 0.5])
    union = SDFScene((Primitive("circle", -0.5, 0.0, 0.25), Primitive("box", 0.5, 0.0, 0.25, 0.25)))
    assert union.field(np.array([[0.0, 0.0], [-0.5, 0.0], [0.5, 0.5]])) == pytest.approx([0.25, -0.25, 0.25])
    grid = grid_coordinates(4)
    assert grid[0, 0].tolist() == [-0.75, -0.75] and grid[0, 3].tolist() == [0.75, -0.75]  # x along columns
    assert np.allclose(pixel_centres(4).numpy(), grid.reshape(-1, 2))
    a, b = sample_sdf_scenes(5, seed=1), sample_sdf_scenes(5, seed=1)
    assert a == b and a != sample_sdf_scenes(5, seed=2) and all(1 <= len(s.primitives) <= 3 for s in a)
    images = render_sdf(a, 8)
    assert images.shape == (5, 1, 8, 8) and images.dtype == torch.float32
    assert torch.allclose(images[0, 0], torch.from_numpy(a[0].field(grid_coordinates(8))).float())


def test_pe_grid_decoding_at_arbitrary_resolution_has_the_right_shapes():
    model = D2CVAE(D2CVAEConfig(image_channels=3, **SMALL)).eval()
    x = torch.rand(2, 3, 16, 16)
    z = model.encode(x).dense
    assert z.shape == (2, 2 * 4 * 4) and model.config.n_latents == 32
    assert [tuple(f.shape) for f in model.basis_fields(z)] == [(2, 4, 4, 4), (2, 4, 8, 8), (2, 4, 16, 16)]
    with torch.no_grad():
        for size in (16, 32, 7):
            assert model.render(z, size).shape == (2, 3, size, size)
        values = model.query(z, torch.rand(2, 11, 2) * 2 - 1)
    assert values.shape == (2, 11, 3) and (values >= 0).all() and (values <= 1).all()  # sigmoid output
    with pytest.raises(Exception, match="coordinates must be"):
        model.query(z, torch.zeros(3, 5, 2))


def test_querying_the_training_pixel_centres_reproduces_the_1x_decode():
    model = D2CVAE(D2CVAEConfig(image_channels=1, output="linear", **SMALL)).eval()
    z = torch.randn(3, model.config.n_latents)
    with torch.no_grad():
        decoded = model.decode(Codes(model.config.n_latents, dense=z))  # the regular-grid (resize) path
        queried = model.query(z, pixel_centres(16))  # grid_sample at the same coordinates
        assert torch.allclose(queried.transpose(1, 2).reshape(3, 1, 16, 16), decoded, atol=1e-6)
        perm = torch.randperm(256, generator=torch.Generator().manual_seed(0))
        shuffled = model.query(z, pixel_centres(16)[perm])  # each coordinate is decoded independently
        assert torch.allclose(shuffled, queried[:, perm], atol=1e-6)
        fine = model.basis_fields(z)[2]  # as fine as the image: read without interpolation at the pixel centres
        assert torch.allclose(sample_fields(fine, pixel_centres(16).expand(3, -1, -1)),
                              fine.flatten(2).transpose(1, 2), atol=1e-6)


def test_kl_term_matches_the_closed_form_and_off_grid_values_are_supervised():
    model = D2CVAE(D2CVAEConfig(image_channels=1, output="linear", kl_weight=1.0, **SMALL))
    x = torch.randn(4, 1, 16, 16)
    mu, logvar = model.posterior(x)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    expected = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum() / (4 * 256)
    out = model(x)
    assert out.losses["kl"].item() == pytest.approx(expected.item(), rel=1e-5)
    coords, values = torch.rand(4, 9, 2) * 2 - 1, torch.randn(4, 9, 1)
    out = model({"x": x, "coords": coords, "values": values})
    # the off-grid loss is the MSE at those coordinates under the same reparametrised sample as the grid loss
    assert "off_grid" in out.losses and out.losses["off_grid"].item() > 0
    with pytest.raises(Exception, match="needs their 'values'"):
        model({"x": x, "coords": coords})


def test_save_load_round_trip_is_exact(tmp_path):
    vae = D2CVAE(D2CVAEConfig(image_channels=3, seed=3, **SMALL))
    vae.save(tmp_path / "vae")
    loaded = load_model(tmp_path / "vae")
    assert isinstance(loaded, D2CVAE) and loaded.config == vae.config
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded.render(loaded.encode(x).dense, 24), vae.eval().render(vae.encode(x).dense, 24))
    ldm = LatentDiffusion(LatentDiffusionConfig(latent_channels=2, latent_size=4, channels="8,8", groups=4,
                                                sample_steps=4, seed=1))
    ldm.latent_scale.fill_(2.5)
    ldm.save(tmp_path / "ldm")
    again = load_model(tmp_path / "ldm")
    assert isinstance(again, LatentDiffusion) and again.latent_scale.item() == 2.5
    assert torch.equal(again.sample(3, seed=7), ldm.eval().sample(3, seed=7))
    assert not torch.equal(again.sample(3, seed=7), again.sample(3, seed=8))


def test_latent_diffusion_learns_a_shifted_gaussian():
    # latents (2 × 2 × 2 = 8 numbers) drawn around a fixed pattern μ with std 0.3: samples must find μ
    g = torch.Generator().manual_seed(0)
    mu = torch.tensor([2.0, -2.0, 1.0, -1.0, 0.5, -0.5, 1.5, -1.5])
    latents = mu + 0.3 * torch.randn(512, 8, generator=g)

    class Latents:  # what train_latent_diffusion reads of the D2C-VAE
        config = D2CVAEConfig(image_size=8, latent_channels=2)

    ldm = train_latent_diffusion(latents, Latents(), steps=300, seed=0, channels="16,16")
    samples = ldm.sample(256, seed=0, steps=20)
    assert ldm.latent_scale.item() == pytest.approx(latents.std().item(), rel=1e-5)
    # measured: mean error 0.04 and std 0.44 (true 0.3) after 300 steps; N(0, I) noise alone is 1.25 and 1.0 off
    assert (samples.mean(0) - mu).abs().mean() < 0.15
    assert 0.15 < samples.std(0).mean() < 0.6


def test_tiny_sdf_run_reconstructs_better_than_the_mean_image():
    record, artifacts = sdf_study(n_train=128, n_eval=32, steps=150, seed=0, size=16, off_grid=32, channels=16,
                                  hidden=32, pe_channels=8)
    r = record["reconstruction"]
    # measured: 1× PSNR 23.8 dB against 11.3 dB for the mean image; 2× 23.7 dB, sign accuracy 0.945
    assert r["psnr_1x"] > r["mean_image_psnr_1x"] + 8
    assert r["psnr_2x"] > r["psnr_1x"] - 2 and r["sign_accuracy_2x"] > 0.9
    assert artifacts["rows"]["reconstruction 2×"].shape == (8, 1, 32, 32)


def test_frechet_distance_by_hand():
    a = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])  # mean 0, covariance (2/3)·I
    b = 2 * a + np.array([3.0, 0.0])  # mean (3, 0), covariance (8/3)·I
    # ‖μa − μb‖² + tr(Σa + Σb − 2(ΣaΣb)^½) = 9 + 2·(2/3 + 8/3 − 2·4/3)
    assert frechet_distance(a, b) == pytest.approx(9 + 4 / 3)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)


def test_class_statistics_by_hand():
    sizes = (10, 10, 10, 8, 4, 15)

    def logits(shape: int, hue: int) -> torch.Tensor:
        row = torch.zeros(sum(sizes))
        row[20 + hue] = 10.0  # object hue block starts after the floor and wall hues
        row[38 + shape] = 10.0  # shape block starts after object hue (10) and scale (8)
        return row

    held_out = np.zeros((4, 10), dtype=bool)
    held_out[0, 0] = True
    stats = class_statistics(torch.stack([logits(0, 0), logits(0, 0), logits(1, 3), logits(2, 5)]), sizes, held_out)
    assert stats["coverage"] == pytest.approx(3 / 40)
    assert stats["entropy"] == pytest.approx(-(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25)))
    assert stats["held_out_share"] == pytest.approx(0.5)
    # four of six heads are uniform (confidence 1/size), two put e¹⁰ against size − 1 ones
    sure = [math.exp(10) / (math.exp(10) + size - 1) for size in (10, 4)]
    flat = [1 / size for size in (10, 10, 8, 15)]
    assert stats["confidence"] == pytest.approx(np.mean(sure + flat), rel=1e-5)


def _tiny_vit(path):
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(0)
    config = ViTConfig(image_size=32, patch_size=8, num_channels=3, hidden_size=16, num_hidden_layers=1,
                       num_attention_heads=2, intermediate_size=32, num_labels=57)
    ViTForImageClassification(config).save_pretrained(path)
    return path


def test_cli_scenes_run_writes_json_png_and_models(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["ddmi", "--out", str(out), "--steps", "2", "--diffusion-steps", "2", "--n-train", "64",
                 "--n-eval", "6", "--vit", str(_tiny_vit(tmp_path / "vit")), "--quiet"]) == 0
    record = json.loads((out / "ddmi.json").read_text())
    assert set(record["samples"]) == {"DDMI (latent diffusion)", "VAE prior N(0, I)", "Gaussian fit to latents",
                                      "D2C-VAE reconstructions", "real (second draw)"}
    assert {"psnr_1x", "psnr_2x", "bilinear_psnr_2x"} <= set(record["reconstruction"])
    assert (out / "ddmi.png").stat().st_size > 0
    assert isinstance(load_model(out / "d2c_vae"), D2CVAE)
    assert isinstance(load_model(out / "latent_diffusion"), LatentDiffusion)


def test_cli_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys):
    assert main(["ddmi", "--out", str(tmp_path / "a"), "--n-train", "10"]) == 2
    assert main(["ddmi", "--out", str(tmp_path / "b"), "--world", "mnist"]) == 2
    assert main(["ddmi", "--out", str(tmp_path / "c"), "--vit", str(tmp_path / "missing"), "--steps", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("aekit: error:") for line in err)
    assert not any((tmp_path / name).exists() for name in "abc")
