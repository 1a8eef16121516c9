"""Causal video VAE: the moving-shapes world, exact causality, shapes and compression, learning, format, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from aekit.analysis.video_vae import (
    causality_check,
    compression,
    frame_psnr,
    keyframe_baseline,
    mean_frame_baseline,
    video_vae_study,
)
from aekit.cli import main
from aekit.errors import ConfigError, ShapeError
from aekit.metrics.representation import psnr
from aekit.models import VideoVAE, VideoVAEConfig, load_model
from aekit.models.video_vae import CausalConv3d
from aekit.worlds.video import PALETTE, moving_shapes

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {"frames": 9, "channels": "8,16", "latent_channels": 2}  # 9 frames → 3 latent frames of 8×8


def test_world_is_seeded_and_its_sprites_bounce_inside_the_frame():
    a, b = moving_shapes(6, seed=3), moving_shapes(6, seed=3)
    assert torch.equal(a.frames, b.frames) and np.array_equal(a.positions, b.positions)
    assert not torch.equal(a.frames, moving_shapes(6, seed=4).frames)
    assert a.frames.shape == (6, 17, 3, 32, 32) and a.frames.dtype == torch.uint8
    r = a.radii[:, None, :, None]
    assert (a.positions >= r - 1e-9).all() and (a.positions <= 32 - r + 1e-9).all()
    step = a.positions[:, 1:] - a.positions[:, :-1]
    free = np.isclose(step, a.velocities[:, :-1]).all(-1)  # a step without a bounce moves by the velocity
    assert free.mean() > 0.8 and (~free).any()  # ... and some steps do bounce
    speed = np.linalg.norm(a.velocities, axis=-1)
    assert np.allclose(speed, speed[:, :1])  # bounces flip components, never change the speed
    # the last-painted sprite shows its own colour at its centre
    n, t = 2, 5
    x, y = (a.positions[n, t, -1]).astype(int)
    assert np.allclose(a.videos[n, t, :, y, x].numpy(), a.colours[n, -1], atol=1 / 255)
    assert all(any(np.allclose(c, p) for p in PALETTE) for c in a.colours.reshape(-1, 3))
    with pytest.raises(ConfigError):
        moving_shapes(2, sprites=7)
    with pytest.raises(ConfigError):
        moving_shapes(2, size=16)


def test_causal_conv_matches_diffusers_ltx_causal_conv():
    ltx = pytest.importorskip("diffusers.models.autoencoders.autoencoder_kl_ltx")
    ours = CausalConv3d(3, 5, stride=(2, 2))
    theirs = ltx.LTXVideoCausalConv3d(3, 5, kernel_size=3, stride=(2, 2, 2))
    theirs.conv.load_state_dict(ours.conv.state_dict())
    x = torch.randn(2, 3, 9, 8, 8)
    assert ours(x).shape == (2, 5, 5, 4, 4)  # 1 + 2·4 frames → 1 + 4
    torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=0)


@pytest.mark.parametrize("training", [False, True])
def test_changing_future_frames_leaves_past_latents_bit_identical(training):
    model = VideoVAE(VideoVAEConfig(**TINY)).train(training)
    x = torch.rand(3, 9, 3, 32, 32)
    mean, logvar = model.posterior(x)
    for j in range(mean.shape[2] - 1):
        y = x.clone()
        y[:, 4 * j + 1:] = torch.rand_like(y[:, 4 * j + 1:])  # every frame after 4j
        mean2, logvar2 = model.posterior(y)
        assert torch.equal(mean2[:, :, : j + 1], mean[:, :, : j + 1])
        assert torch.equal(logvar2[:, :, : j + 1], logvar[:, :, : j + 1])
        assert not torch.equal(mean2[:, :, j + 1], mean[:, :, j + 1])  # latent j + 1 reads frames 4j + 1 … 4j + 4
    # the decoder too: frames ≤ 4j come from latents ≤ j
    z = torch.randn_like(mean)
    frames = model.decode_grid(z)
    z2 = z.clone()
    z2[:, :, 1:] += 1.0
    assert torch.equal(model.decode_grid(z2)[:, :1], frames[:, :1]) and not torch.equal(model.decode_grid(z2), frames)


def test_causality_check_passes_the_causal_model_and_catches_a_leak(monkeypatch):
    model = VideoVAE(VideoVAEConfig(**TINY))
    clips = moving_shapes(2, seed=0, frames=9).videos
    record = causality_check(model, clips)
    assert record["causal"] and record["eval"]["max_past_difference"] == 0.0 and record["train"]["future_changed"]

    def centred(self, x):  # pad one frame on each side: output t reads frame t + 1
        return self.conv(torch.cat([x[:, :, :1], x, x[:, :, -1:]], dim=2))

    monkeypatch.setattr(CausalConv3d, "forward", centred)
    leaky = causality_check(model, clips)
    assert not leaky["causal"] and leaky["eval"]["max_past_difference"] > 0


def test_shapes_compression_and_the_first_frame_kept_alone():
    model = VideoVAE(VideoVAEConfig())
    assert model.latent_shape() == (4, 5, 8, 8) and model.config.n_latents == 1280
    c = compression(model.config)
    assert c["temporal"] == pytest.approx(17 / 5) and c["temporal_per_group"] == 4 and c["spatial"] == 16
    assert c["ratio"] == pytest.approx(17 * 3 * 32 * 32 / 1280)
    assert VideoVAE(VideoVAEConfig(channels="8,8,8")).latent_shape() == (4, 5, 4, 4)  # ×8 in space
    x = torch.rand(2, 17, 3, 32, 32)
    mean, _ = model.posterior(x)
    assert model.encode(x).dense.shape == (2, 1280) and model.decode(model.encode(x)).shape == x.shape
    still, _ = model.posterior(x[:, :1])  # an image is a clip of one frame: one latent frame, the clip's first
    torch.testing.assert_close(still, mean[:, :, :1], rtol=0, atol=1e-6)
    assert model.decode_grid(still).shape == (2, 1, 3, 32, 32)
    # uint8 frames read as intensities
    u8 = (x * 255).round().to(torch.uint8)
    torch.testing.assert_close(model.posterior(u8)[0], model.posterior(u8.float() / 255)[0])
    with pytest.raises(ShapeError, match="1 \\+ 4·k frames"):
        model.posterior(torch.rand(2, 6, 3, 32, 32))
    with pytest.raises(ShapeError):
        model(torch.rand(2, 5, 3, 32, 32))  # training clips must have the configured length
    for bad in ({"frames": 6}, {"temporal": 3}, {"temporal": 8}, {"image_size": 30}, {"beta": -1.0}):
        with pytest.raises(ConfigError):
            VideoVAEConfig(**bad).validate()


def test_baselines_on_clips_they_reproduce():
    t = torch.arange(9, dtype=torch.float32)
    ramp = (0.1 + 0.05 * t)[None, :, None, None, None].expand(2, 9, 3, 32, 32)  # flat frames brightening linearly
    assert psnr(ramp, keyframe_baseline(ramp, 4, 8)) >= 119  # exact: linear in time, constant in space
    still = torch.rand(1, 1, 3, 32, 32).expand(2, 9, 3, 32, 32)
    assert torch.allclose(mean_frame_baseline(still), still)
    assert frame_psnr(ramp, ramp)[0] >= 119 and len(frame_psnr(ramp, ramp)) == 9


def test_a_tiny_model_beats_the_mean_frame_after_a_few_dozen_steps():
    train, held_out = moving_shapes(128, seed=0, frames=5, sprites=1), moving_shapes(32, seed=1, frames=5, sprites=1)
    config = VideoVAEConfig(frames=5, channels="8,16")
    record, model, recon = video_vae_study(train.frames, held_out.videos, config, steps=60, seed=0)
    vae = record["methods"]["causal video VAE"]
    mean_frame = train.videos.mean((0, 1), keepdim=True).expand_as(held_out.videos)  # ignores its input
    # measured: 18.1 dB against 16.7 dB for the training set's mean frame
    assert vae["psnr"] > psnr(held_out.videos, mean_frame) + 1.0
    assert vae["psnr"] == pytest.approx(psnr(held_out.videos, recon))
    assert len(vae["frame_psnr"]) == 5 and record["causality"]["causal"]
    assert model.noise_draws == 60  # one reparametrisation draw per step
    again, _, _ = video_vae_study(train.frames, held_out.videos, config, steps=60, seed=0)
    assert again["methods"]["causal video VAE"]["psnr"] == vae["psnr"]  # seeded end to end


def test_save_load_round_trip_is_exact(tmp_path):
    model = VideoVAE(VideoVAEConfig(**TINY, beta=0.01, seed=5))
    model.provenance = {"world": {"name": "moving_shapes", "frames": 9}}
    loaded = load_model(model.save(tmp_path / "m"))
    assert isinstance(loaded, VideoVAE) and loaded.config == model.config and loaded.provenance == model.provenance
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name])
    x = torch.rand(2, 9, 3, 32, 32)
    assert torch.equal(loaded.posterior(x)[0], model.eval().posterior(x)[0])
    assert not torch.equal(VideoVAE(VideoVAEConfig(**TINY, seed=6)).posterior(x)[0], model.posterior(x)[0])


def test_cli_writes_outputs_and_the_model(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["video-vae", "--out", str(out), "--steps", "2", "--n-train", "8", "--n-eval", "2", "--frames", "5",
                 "--quiet"]) == 0
    record = json.loads((out / "video_vae.json").read_text())
    assert record["compression"]["latent_frames"] == 2 and record["causality"]["causal"] is True
    assert len(record["methods"]["causal video VAE"]["frame_psnr"]) == 5
    assert (out / "video_vae.png").stat().st_size > 0
    assert load_model(out / "model").provenance["world"]["frames"] == 5
    assert "causal: True" in capsys.readouterr().out


def test_cli_bad_input_exits_2_and_writes_nothing(tmp_path, capsys):
    file = tmp_path / "file"
    file.write_text("x")
    runs = [["--frames", "6"], ["--beta", "-1"], ["--n-train", "4"], ["--spatial", "2"], ["--device", "tpu"],
            ["--sprites", "7", "--steps", "1", "--n-train", "8", "--n-eval", "2", "--frames", "5"]]
    for extra in runs:
        assert main(["video-vae", "--out", str(tmp_path / "o"), "--quiet", *extra]) == 2
    assert main(["video-vae", "--out", str(file), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == len(runs) + 1 and all(line.startswith("aekit: error:") for line in err)
    assert not (tmp_path / "o").exists()
