"""EPG: the InfoNCE loss, the views, both training stages, sampling, the model format and `aekit epg`."""

from __future__ import annotations

import json
import math

import pytest
import torch

from aekit.analysis.epg import steps_to_threshold, train_epg
from aekit.cli import main
from aekit.errors import ConfigError
from aekit.models import load_model
from aekit.models.epg import (
    EPGDenoiser,
    EPGDenoiserConfig,
    EPGPretrainConfig,
    EPGPretrainer,
    info_nce,
    random_resized_crops,
)
from aekit.worlds.scenes import sample_scenes

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {"image_size": 16, "channels": "8,16", "groups": 4, "train_timesteps": 100, "sample_steps": 5}


@pytest.fixture(scope="module")
def scenes() -> torch.Tensor:
    """64 training scenes, 2×2 averaged to 16×16 so the tiny models train in a second."""
    return torch.nn.functional.avg_pool2d(sample_scenes(64, 0, "train").images, 2)


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory):
    """A randomly initialised two-block ViT classifier saved as a Hugging Face directory: the FD judge."""
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(0)
    config = ViTConfig(image_size=32, patch_size=8, hidden_size=24, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=48, num_labels=3)
    path = tmp_path_factory.mktemp("vit")
    ViTForImageClassification(config).eval().save_pretrained(path)
    return path


def test_info_nce_matches_the_formula_by_hand():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    b = torch.tensor([[2.0, 0.0], [1.0, 1.0], [0.0, 3.0]])
    tau = 0.5
    unit = lambda v: [x / math.hypot(*v) for x in v]  # noqa: E731
    ua, ub = [unit(r) for r in a.tolist()], [unit(r) for r in b.tolist()]
    expected = 0.0
    for i in range(3):
        sims = [sum(p * q for p, q in zip(ua[i], ub[j], strict=True)) / tau for j in range(3)]
        expected += -(sims[i] - math.log(sum(math.exp(s) for s in sims)))
    assert info_nce(a, b, tau).item() == pytest.approx(expected / 3, rel=1e-6)


def test_info_nce_gradient_matches_finite_differences():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda p, q: info_nce(p, q, 0.2), (a, b))


def test_full_area_crops_are_the_image_or_its_mirror(scenes):
    views = random_resized_crops(scenes[:16], torch.Generator().manual_seed(0), min_area=1.0)
    mirrored = [torch.allclose(v, x.flip(-1), atol=1e-5) for v, x in zip(views, scenes[:16], strict=True)]
    same = [torch.allclose(v, x, atol=1e-5) for v, x in zip(views, scenes[:16], strict=True)]
    assert all(m or s for m, s in zip(mirrored, same, strict=True))
    assert 0 < sum(mirrored) < 16  # both outcomes occur
    smaller = random_resized_crops(scenes[:16], torch.Generator().manual_seed(0), min_area=0.3)
    assert not torch.allclose(smaller, views)


@pytest.mark.parametrize("prediction, ratio", [("epsilon", 0.85), ("sample", 0.5)])
def test_denoising_loss_decreases_on_a_tiny_run(scenes, prediction, ratio):
    model = EPGDenoiser(EPGDenoiserConfig(**TINY, prediction=prediction))

    def fixed_noise_loss() -> float:
        model.noise_draws = 0  # the same time steps and noise before and after training
        with torch.no_grad():
            return sum(model(scenes).losses["denoise"].item() for _ in range(4)) / 4

    before = fixed_noise_loss()
    train_epg(model, scenes, steps=60, seed=0)
    assert fixed_noise_loss() < ratio * before


def test_pretraining_lowers_both_losses_and_the_target_follows_by_ema(scenes):
    model = EPGPretrainer(EPGPretrainConfig(**TINY, target_ema=0.9))
    before = {k: v.item() for k, v in model(scenes).losses.items()}
    train_epg(model, scenes, steps=30, seed=0)
    model.noise_draws = 0
    after = {k: v.item() for k, v in model(scenes).losses.items()}
    assert after["contrastive"] < before["contrastive"] and after["consistency"] < before["consistency"]
    # one EMA step moves the target exactly (1 − m) of the way to the online weights
    online, target = model.encoder.conv_in.weight, model.target_encoder.conv_in.weight
    expected = 0.9 * target.detach().clone() + 0.1 * online.detach()
    model.after_optimizer_step()
    assert torch.allclose(target, expected, atol=1e-7)
    assert not any(p.requires_grad for p in model.target_encoder.parameters())


def test_sampling_is_deterministic_given_the_seed():
    model = EPGDenoiser(EPGDenoiserConfig(**TINY)).eval()
    a, b, c = model.sample(6, seed=3), model.sample(6, seed=3), model.sample(6, seed=4)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (6, 3, 16, 16) and 0 <= a.min() and a.max() <= 1


def test_save_load_round_trip_is_exact(tmp_path, scenes):
    pre = EPGPretrainer(EPGPretrainConfig(**TINY))
    train_epg(pre, scenes, steps=3, seed=0)
    den = EPGDenoiser(EPGDenoiserConfig(**TINY, prediction="sample"))
    den.load_encoder(pre)
    for model, name in ((pre, "pre"), (den, "den")):
        loaded = load_model(model.save(tmp_path / name))
        assert type(loaded) is type(model) and loaded.config == model.config
        state = model.state_dict()
        assert all(torch.equal(t, state[k]) for k, t in loaded.state_dict().items())
    assert torch.equal(load_model(tmp_path / "den").sample(4, seed=1), den.sample(4, seed=1))
    assert torch.equal(den.encode(scenes[:4]).dense, load_model(tmp_path / "den").encode(scenes[:4]).dense)


def test_load_encoder_copies_the_online_encoder_and_checks_shapes():
    pre = EPGPretrainer(EPGPretrainConfig(**TINY, seed=5))
    den = EPGDenoiser(EPGDenoiserConfig(**TINY))
    den.load_encoder(pre)
    assert all(torch.equal(p, q) for p, q in zip(den.encoder.parameters(), pre.encoder.parameters(), strict=True))
    with pytest.raises(ConfigError, match="widths"):
        EPGDenoiser(EPGDenoiserConfig(**{**TINY, "channels": "8,8"})).load_encoder(pre)


@pytest.mark.parametrize("field, value", [("channels", "8,x"), ("groups", 3), ("image_size", 18),
                                          ("sample_steps", 1), ("prediction", "velocity")])
def test_config_errors_name_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        EPGDenoiserConfig(**{**TINY, field: value}).validate()


def test_steps_to_threshold_is_the_first_checkpoint_at_or_below():
    curve = [{"step": 10, "frechet": 90.0}, {"step": 20, "frechet": 50.0}, {"step": 30, "frechet": 40.0}]
    assert steps_to_threshold(curve, 50.0) == 20
    assert steps_to_threshold(curve, 10.0) is None


@pytest.mark.parametrize("flags, message", [(["--steps", "10", "--eval-every", "20"], "--eval-every"),
                                            (["--threshold", "-1"], "--threshold"),
                                            (["--n-train", "10"], "--n-train"),
                                            (["--device", "tpu"], "--device")])
def test_cli_refuses_bad_flags_in_one_line(tmp_path, capsys, flags, message):
    assert main(["epg", "--out", str(tmp_path / "out"), "--quiet", *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_cli_writes_json_png_and_model(tmp_path, tiny_vit, capsys):
    out = tmp_path / "out"
    code = main(["epg", "--out", str(out), "--judge", str(tiny_vit), "--steps", "2", "--pretrain-steps", "1",
                 "--eval-every", "1", "--n-train", "64", "--n-eval", "16", "--n-samples", "8", "--threshold", "1e9",
                 "--quiet"])
    assert code == 0
    record = json.loads((out / "epg.json").read_text())
    for run in record["runs"].values():
        assert [p["step"] for p in run["curve"]] == [1, 2]
        assert run["steps_to_threshold"] == 1  # every FD is below a threshold of 10⁹
    assert record["runs"]["EPG (pre-trained encoder)"]["total_steps_to_threshold"] == 2  # 1 stage-1 step + 1
    assert record["floor_frechet"] >= 0 and (out / "epg.png").stat().st_size > 0
    assert isinstance(load_model(out / "model"), EPGDenoiser)
    assert "outputs:" in capsys.readouterr().out
