"""VL-SAE: the distance-based encoder, its gradient, the model format, the alignment metrics on hand-checked cases,
a synthetic paired world with known shared concepts, and the command end to end on a tiny random CLIP."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from aekit.analysis.vl_alignment import (
    caption_labels,
    dense_codes,
    factor_purity,
    recall_at_1,
    shared_concepts,
    train_separate_saes,
    train_vlsae,
)
from aekit.cli import main
from aekit.errors import ConfigError, DataError, ShapeError
from aekit.models import VLSAE, VLSAEConfig, load_model
from aekit.models.vlsae import distance_activations
from aekit.worlds.scenes import attribute_labels, captions, sample_scenes

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def paired_world(n: int, seed: int, mention: float, d: int = 32, groups: int = 4, values: int = 4):
    """Paired embeddings of shared sparse concepts: every pair has one value per group; the image embedding sums
    the image map's rows of all its values, the caption's sums the text map's rows of the values it names (each
    with probability `mention`). The text map is the image map turned by 0.3 rad towards random directions (two
    different maps that a contrastive objective has roughly aligned), and each modality adds its own offset (the
    modality gap) and noise. The maps are fixed; `seed` draws the rows."""
    g = torch.Generator().manual_seed(1234)
    unit = torch.nn.functional.normalize
    image_map = unit(torch.randn(groups * values, d, generator=g), dim=1)
    text_map = unit(math.cos(0.3) * image_map + math.sin(0.3) * unit(torch.randn(groups * values, d, generator=g),
                                                                      dim=1), dim=1)
    offsets = 0.5 * unit(torch.randn(2, d, generator=g), dim=1)
    r = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, values, (n, groups), generator=r)
    named = torch.rand(n, groups, generator=r) < mention
    index = labels + values * torch.arange(groups)
    s_image = torch.zeros(n, groups * values).scatter_(1, index, 1.0)
    s_text = torch.zeros(n, groups * values).scatter_(1, index, named.float())
    image = s_image @ image_map + offsets[0] + 0.05 * torch.randn(n, d, generator=r)
    text = s_text @ text_map + offsets[1] + 0.05 * torch.randn(n, d, generator=r)
    image_labels = {f"group{j}": labels[:, j].numpy() for j in range(groups)}
    text_labels = {f"group{j}": np.where(named[:, j].numpy(), labels[:, j].numpy(), -1) for j in range(groups)}
    return {"image": image, "text": text}, image_labels, text_labels


def test_encoder_is_two_minus_the_distance_of_unit_vectors_and_keeps_the_k_closest():
    model = VLSAE(VLSAEConfig(d_in=6, n_latents=10, k=3))
    x = torch.randn(5, 6)
    dense = 2 - torch.cdist(torch.nn.functional.normalize(x, dim=1),
                            torch.nn.functional.normalize(model.W_enc.detach(), dim=1))
    codes = model.encode(x)
    expected = dense.topk(3, dim=1)
    order = codes.indices.argsort(1)
    assert torch.equal(codes.indices.gather(1, order), expected.indices.sort(1).values)
    assert torch.allclose(codes.to_dense().detach(), torch.zeros(5, 10).scatter(1, expected.indices, expected.values),
                          atol=1e-6)
    # the norm of an embedding does not matter, and without centring neither does its modality
    assert torch.equal(model.encode(7.5 * x).indices, codes.indices)
    assert torch.equal(model.encode(x, "text").indices, codes.indices)


def test_activation_gradient_matches_finite_differences():
    x = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    w = torch.randn(7, 5, dtype=torch.float64, requires_grad=True)
    indices = torch.tensor([[0, 3, 6], [1, 2, 3], [6, 5, 4], [0, 1, 2]])
    assert torch.autograd.gradcheck(lambda x, w: distance_activations(x, w, indices), (x, w), eps=1e-6, atol=1e-6)
    # the model's activations are the function's on the centred embedding
    model = VLSAE(VLSAEConfig(d_in=5, n_latents=7, k=3, center=True)).double()
    model.mean_text.copy_(torch.randn(5, dtype=torch.float64))
    assert torch.equal(model.activations_at(x, "text", indices),
                       distance_activations(x - model.mean_text, model.W_enc, indices))


def test_save_load_round_trip_is_exact(tmp_path):
    data, _, _ = paired_world(600, seed=0, mention=0.5)
    model = train_vlsae(data["image"], data["text"], n_latents=16, k=2, steps=5, seed=3, center=True)
    assert not torch.equal(model.mean_image, torch.zeros(32))  # centring learned from the data
    model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert isinstance(loaded, VLSAE) and loaded.config == model.config
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name
    for m in ("image", "text"):
        a, b = model.encode(data[m][:50], m), loaded.encode(data[m][:50], m)
        assert torch.equal(a.indices, b.indices) and torch.equal(a.values, b.values)
        assert torch.equal(model.decode(a, m), loaded.decode(b, m))


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ConfigError, match="model.k"):
        VLSAE(VLSAEConfig(d_in=4, n_latents=3, k=5))
    model = VLSAE(VLSAEConfig(d_in=4, n_latents=8, k=2))
    with pytest.raises(ShapeError, match="'image' and 'text'"):
        model({"image": torch.randn(3, 4)})
    with pytest.raises(ShapeError, match="rows must be pairs"):
        model({"image": torch.randn(3, 4), "text": torch.randn(2, 4)})
    with pytest.raises(ShapeError, match=r"expects \(batch, 4\)"):
        model.encode(torch.randn(3, 5))
    with pytest.raises(ShapeError, match="modality"):
        model.encode(torch.randn(3, 4), "audio")
    with pytest.raises(DataError, match="paired"):
        shared_concepts(np.ones((3, 4)), np.ones((2, 4)))


def test_alignment_metrics_on_a_hand_checked_case():
    image = np.array([[1, 1, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0]], dtype=float)
    text = np.array([[1, 0, 0, 0], [1, 0, 1, 0], [0, 1, 0, 0]], dtype=float)
    r = shared_concepts(image, text)
    # latent 0: both on pairs 0, 1 → 2/2; latent 1: either on 0, 2, both on 2 → 1/2; latent 2: text only → 0
    assert r["agreement"].tolist() == [1.0, 0.5, 0.0, 0.0]
    assert (r["active_latents"], r["shared_latents"]) == (3, 2)
    assert r["shared_fraction"] == pytest.approx(2 / 3) and r["one_modality_fraction"] == pytest.approx(1 / 3)
    assert r["pair_jaccard"] == pytest.approx((1 / 2 + 1 / 2 + 1) / 3)
    labels = {"colour": np.array([0, 0, 1]), "shape": np.array([-1, 1, 1])}
    p = factor_purity(image, labels, min_fires=2, seed=None)
    # latent 0 fires on rows 0, 1: colour 0 on both → 1; latent 1 on rows 0, 2: best is 1/2 (colour 0, 1 or shape 1)
    assert p["live_latents"] == 2 and p["purity"] == pytest.approx(0.75)
    assert p["best"][0] == {"latent": 0, "attribute": "colour", "value": 0, "precision": 1.0, "fires": 2}
    assert recall_at_1(np.eye(3), np.eye(3)[[0, 2, 1]]) == pytest.approx(1 / 3)
    assert recall_at_1(np.eye(3), np.eye(3)[[0, 2, 1]], keys=["a", "b", "b"]) == 1.0


def test_caption_labels_read_what_each_caption_names():
    factors = sample_scenes(40, seed=2, split="train").factors
    full, partial = captions(factors, seed=2, keep_probability=1.0), captions(factors, seed=2)
    truth = attribute_labels(factors)
    read = caption_labels(full)
    assert all(np.array_equal(read[name], truth[name]) for name in truth)
    named = caption_labels(partial)
    for name in truth:
        said = named[name] >= 0
        assert np.array_equal(named[name][said], truth[name][said]) and 0 < said.mean() < 1


def test_vlsae_finds_shared_concepts_that_separate_saes_cannot():
    train, _, _ = paired_world(3000, seed=0, mention=0.5)
    held_out, image_labels, text_labels = paired_world(800, seed=1, mention=1.0)
    kw = {"n_latents": 48, "k": 4, "steps": 400, "seed": 0}
    vlsae = train_vlsae(train["image"], train["text"], **kw)
    separate = train_separate_saes(train["image"], train["text"], **kw)
    ours = shared_concepts(dense_codes(vlsae, held_out["image"], "image"), dense_codes(vlsae, held_out["text"], "text"))
    theirs = shared_concepts(dense_codes(separate["image"], held_out["image"]),
                             dense_codes(separate["text"], held_out["text"]))
    # measured: VL-SAE 15 of 48 active latents shared (0.31), pair Jaccard 0.54; separate SAEs 0 and 0.05
    assert ours["shared_fraction"] > 0.2 and ours["pair_jaccard"] > 0.4
    assert theirs["shared_fraction"] < 0.1 and theirs["pair_jaccard"] < 0.1
    purity = factor_purity(dense_codes(vlsae, held_out["image"], "image"), image_labels)
    assert purity["purity"] > 0.75 and purity["purity_shuffled"] < 0.45  # measured 0.85 against chance 0.36


def _tiny_clip(directory):
    from aekit.worlds.toy_vision import ToyCLIPConfig, build_caption_tokenizer, build_clip

    torch.manual_seed(0)
    config = ToyCLIPConfig(hidden=16, layers=1, heads=2, mlp=32, text_hidden=16, text_layers=1, text_heads=2,
                           text_mlp=32, projection=8)
    build_clip(config).save_pretrained(directory)
    build_caption_tokenizer().save_pretrained(directory)
    return directory


def test_cli_runs_end_to_end_on_a_tiny_random_clip(tmp_path, capsys):
    clip, out = _tiny_clip(tmp_path / "clip"), tmp_path / "out"
    args = ["vlsae", "--clip", str(clip), "--pairs", "256", "--eval-pairs", "40", "--latents", "16", "--k", "2",
            "--steps", "4", "--quiet", "--out", str(out)]
    assert main(args) == 0
    record = json.loads((out / "vlsae.json").read_text())
    assert record["settings"]["d"] == 8 and (out / "vlsae.png").stat().st_size > 1000
    assert set(record["methods"]) == {"VL-SAE", "VL-SAE, centred", "separate TopK SAEs", "one TopK SAE on both",
                                      "CLIP embeddings"}
    for m in record["methods"].values():
        assert 0 <= m["recall_at_1"] <= 1
    assert isinstance(load_model(out / "model"), VLSAE)
    assert "VL-SAE" in capsys.readouterr().out


@pytest.mark.parametrize("extra, message", [
    (["--k", "20"], "--k must be between 1 and --latents=16"),
    (["--pairs", "100"], "--pairs ≥ 256"),
    (["--clip", "/nonexistent/clip"], "not a Hugging Face model directory"),
])
def test_cli_mistakes_are_one_line_errors(tmp_path, capsys, extra, message):
    base = ["vlsae", "--clip", str(tmp_path), "--latents", "16", "--out", str(tmp_path / "out")]
    assert main(base + extra) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_cli_refuses_an_out_path_that_is_a_file(tmp_path, capsys):
    (tmp_path / "taken").write_text("mine")
    assert main(["vlsae", "--clip", str(tmp_path), "--out", str(tmp_path / "taken")]) == 2
    assert "is an existing file" in capsys.readouterr().err and (tmp_path / "taken").read_text() == "mine"
