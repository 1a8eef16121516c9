"""CRATE-MAE and its MAE baseline: the layer equations, masking, sizes, the format, training on scenes, the CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch

from aekit.analysis.crate_mae import coding_rate, layer_statistics, masked_psnr, visible_mean_psnr
from aekit.analysis.image_models import fit_image_model
from aekit.cli import main
from aekit.data.sources import DictArraySource
from aekit.models import MAE, CrateMAE, CrateMAEConfig, MAEConfig, load_model
from aekit.models.crate_mae import CrateDecoderLayer, SparseCodingStep, SubspaceAttention
from aekit.models.masked_patches import eval_mask, patchify, random_mask, sincos_positions, unpatchify
from aekit.train.config import TrainConfig
from aekit.train.trainer import Trainer
from aekit.worlds.scenes import sample_scenes

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = {"width": 32, "depth": 2, "heads": 2}


def _models(**shape):
    shape = {**SMALL, **shape}
    return CrateMAE(CrateMAEConfig(**shape)), MAE(MAEConfig(**shape))


def test_patches_round_trip_and_positions_are_distinct():
    x = torch.rand(3, 3, 32, 32)
    patches = patchify(x, 4)
    assert patches.shape == (3, 64, 48) and torch.equal(unpatchify(patches, 4, 3), x)
    # patch 9 is row 1, column 1 of the 8×8 grid, flattened as (row, column, channel)
    assert torch.equal(patches[:, 9], x[:, :, 4:8, 4:8].permute(0, 2, 3, 1).reshape(3, 48))
    pos = sincos_positions(8, 32)
    assert pos.shape == (64, 32) and torch.cdist(pos, pos).add(torch.eye(64)).min() > 0.1


def test_masks_hide_exactly_the_ratio_and_are_seeded():
    g = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    m = random_mask(20, 64, 48, g())
    assert torch.equal(m, random_mask(20, 64, 48, g())) and (m.sum(1) == 48).all()
    assert not torch.equal(m[0], m[1])
    crate, mae = _models()
    assert crate.config.n_masked == 48 and torch.equal(eval_mask(7, crate.config, 3), eval_mask(7, mae.config, 3))
    first, second = crate.draw_mask(4), crate.draw_mask(4)
    assert not torch.equal(first, second) and crate.training_state() == {"mask_draws": 2}
    crate.load_training_state({"mask_draws": 1})
    assert torch.equal(crate.draw_mask(4), second)  # a resumed run masks as the uninterrupted one


def test_mssa_is_the_sum_over_subspaces_of_attention_within_each():
    torch.manual_seed(1)
    layer = SubspaceAttention(12, 3).double()
    z = torch.randn(2, 5, 12, dtype=torch.float64)
    expected = torch.zeros_like(z)
    for k in range(3):
        u = layer.subspaces.weight[4 * k : 4 * k + 4].T  # U_k: (d, p)
        w = z @ u  # rows are tokens: (U_kᵀ z)ᵀ
        attention = torch.softmax(w @ w.transpose(1, 2) / 2.0, dim=-1)  # √p = 2
        expected += attention @ w @ u.T
    assert torch.allclose(layer(z), expected, atol=1e-12)


def test_ista_is_a_proximal_gradient_step_of_the_lasso_checked_by_finite_differences():
    torch.manual_seed(2)
    step = SparseCodingStep(6, step=0.1, threshold=0.5).double()
    d = step.dictionary.detach()
    z = torch.randn(6, dtype=torch.float64)

    def smooth(a):  # ½‖z − D a‖², the data term whose gradient ISTA follows
        return 0.5 * (z - d @ a).square().sum()

    h = 1e-6
    grad = torch.stack([(smooth(z + h * e) - smooth(z - h * e)) / (2 * h) for e in torch.eye(6, dtype=z.dtype)])
    expected = torch.relu(z - 0.1 * grad - 0.1 * 0.5)  # non-negative soft threshold of a gradient step from A = Z
    assert torch.allclose(step(z[None, None]).squeeze(), expected, atol=1e-8)
    assert (expected == 0).any() and (expected > 0).any()  # this case exercises both sides of the threshold


def test_decoder_layer_is_a_linear_map_then_minus_mssa():
    torch.manual_seed(3)
    layer = CrateDecoderLayer(8, 2).double()
    y = torch.randn(2, 4, 8, dtype=torch.float64)
    half = layer.norm_linear(y) @ layer.linear.weight.T
    assert torch.allclose(layer(y), half - layer.attention(layer.norm_attention(half)), atol=1e-12)


def test_parameter_counts_match_the_layer_sizes_and_crate_is_under_a_third():
    crate, mae = _models(width=96, depth=4, heads=4)
    d, L, pd = 96, 4, 48
    shared = (pd * d + d) + d + (2 * d) + (d * pd + pd)  # embedding, mask token, head LayerNorm, head
    assert crate.parameter_count() == shared + 2 * L * (2 * d * d + 4 * d)  # U and D (or E) + two LayerNorms
    vit_block = 12 * d * d + 13 * d  # qkv + out (4d² + 4d), MLP (8d² + 5d), two LayerNorms (4d)
    assert mae.parameter_count() == shared + 2 * L * vit_block + 2 * d + (d * d + d)  # + encoder norm, decoder embed
    assert crate.parameter_count() / mae.parameter_count() < 0.18


@pytest.mark.parametrize("cls", [CrateMAE, MAE])
def test_save_load_round_trip_is_exact(cls, tmp_path):
    model = cls(cls.config_class(**SMALL, seed=4))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))  # not the seeded initial weights
    x = torch.rand(3, 3, 32, 32)
    loaded = load_model(model.save(tmp_path / "m"))
    assert type(loaded) is cls and loaded.config == model.config
    state = model.state_dict()
    assert all(torch.equal(t, state[name]) for name, t in loaded.state_dict().items())
    model.eval()
    masked = eval_mask(3, model.config, 0)
    assert torch.equal(loaded.encode(x).dense, model.encode(x).dense)
    assert torch.equal(loaded.complete(x, masked), model.complete(x, masked))


@pytest.mark.parametrize("cls", [CrateMAE, MAE])
def test_loss_scores_masked_patches_only_and_hidden_pixels_never_reach_the_model(cls):
    model = cls(cls.config_class(**SMALL))
    x = torch.rand(4, 3, 32, 32)
    out = model(x)
    model.load_training_state({"mask_draws": 0})
    masked = model.draw_mask(4)
    per_patch = (patchify(out.x_hat, 4) - patchify(x, 4)).square().mean(-1)
    assert torch.allclose(out.losses["masked_mse"], per_patch[masked].mean())
    assert not torch.allclose(out.losses["masked_mse"], per_patch.mean())
    other = unpatchify(torch.where(masked[..., None], torch.rand(4, 64, 48), patchify(x, 4)), 4, 3)
    assert not torch.equal(other, x)  # the hidden pixels differ, the visible ones do not
    model.eval()
    assert torch.equal(model.complete(other, masked), model.complete(x, masked))


def test_coding_rate_of_known_token_sets():
    d, n, eps = 16, 8, 0.5
    same = torch.randn(1, 1, d).expand(1, n, d)
    assert coding_rate(same, eps).item() == pytest.approx(0.5 * math.log(1 + d / eps**2))
    orthogonal = 3.0 * torch.eye(d)[:n].unsqueeze(0)  # scale does not matter: tokens are normalised
    assert coding_rate(orthogonal, eps).item() == pytest.approx(0.5 * n * math.log(1 + d / (n * eps**2)))
    wide = torch.randn(2, 20, d)  # N > d uses the d × d Gram: same determinant
    gram = torch.nn.functional.normalize(wide.double(), dim=-1)
    direct = 0.5 * torch.logdet(torch.eye(20, dtype=torch.float64) + d / (20 * eps**2) * gram @ gram.transpose(1, 2))
    assert torch.allclose(coding_rate(wide, eps), direct)


def test_both_models_learn_masked_completion_on_scenes_and_crate_tokens_are_sparse():
    train, test = sample_scenes(512, 0, "train").images, sample_scenes(128, 1, "train").images
    masked = eval_mask(len(test), CrateMAEConfig(), 0)
    floor = visible_mean_psnr(test, masked, 4)
    psnr = {}
    # CRATE-MAE sits on a plateau near the floor for its first ~200 steps at this size; the MAE leaves it sooner
    for model, steps in zip(_models(), (300, 150), strict=True):
        fit_image_model(model, train, steps=steps, seed=0, batch_size=16, lr=3e-3)
        psnr[model.kind] = masked_psnr(model, test, masked)
        layers = layer_statistics(model, test[:32])
        zeros = [entry["zero_fraction"] for entry in layers["encoder"]]
        assert len(layers["decoder"]) == 2 and all(entry["coding_rate"] > 0 for entry in layers["decoder"])
        if model.kind == "crate_mae":
            assert min(zeros) > 0.3  # ISTA's ReLU threshold zeroes a large part of every encoder layer's tokens
        else:
            assert max(zeros) == 0.0
    # measured: floor 11.9 dB, CRATE-MAE 17.0 dB after 300 steps, MAE 17.9 dB after 150
    assert psnr["crate_mae"] > floor + 3 and psnr["mae"] > floor + 4


def test_training_resumes_exactly_with_the_mask_stream(tmp_path):
    images = sample_scenes(64, 0, "train").images

    def trainer(out):
        model = CrateMAE(CrateMAEConfig(width=16, depth=1, heads=2))
        config = TrainConfig(steps=4, batch_size=8, warmup_steps=0, checkpoint_every=2, progress=False)
        return Trainer(model, DictArraySource({"x": images}, 8, seed=0), config, out_dir=out)

    straight = trainer(tmp_path / "a")
    straight.fit()
    interrupted = trainer(tmp_path / "b")
    interrupted.config.steps = 2
    interrupted.fit()
    resumed = trainer(tmp_path / "b")
    assert resumed.resume() and resumed.model.mask_draws == 2
    resumed.fit()
    expected = straight.model.state_dict()
    assert all(torch.equal(t, expected[name]) for name, t in resumed.model.state_dict().items())


def test_cli_writes_the_comparison(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["crate-mae", "--steps", "3", "--width", "16", "--depth", "1", "--heads", "2", "--n-train", "64",
                 "--n-eval", "8", "--device", "cpu", "--quiet", "--out", str(out)]) == 0
    record = json.loads((out / "crate_mae.json").read_text())
    assert set(record["models"]) == {"CRATE-MAE", "MAE"} and record["settings"]["steps"] == 3
    assert record["parameter_ratio"] == record["models"]["CRATE-MAE"]["parameters"] / \
        record["models"]["MAE"]["parameters"]
    assert (out / "crate_mae.png").stat().st_size > 0
    assert "parameter ratio" in capsys.readouterr().out


def test_cli_mistakes_exit_2_with_one_line_and_write_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    afile = tmp_path / "file"
    afile.write_text("x")
    assert main(["crate-mae", "--width", "10", "--out", str(out)]) == 2
    assert main(["crate-mae", "--device", "tpu", "--out", str(out)]) == 2
    assert main(["crate-mae", "--n-train", "8", "--out", str(out)]) == 2
    assert main(["crate-mae", "--out", str(afile)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith("aekit: error:") for line in err)
    assert "--width" in err[0] and "--device" in err[1] and "--n-train" in err[2] and "not a directory" in err[3]
    assert not out.exists()
