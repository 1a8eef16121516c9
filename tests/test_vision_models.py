"""The scene world, the toy ViT / CLIP training path, vision hooks, image caching and the vision-SAE study."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from aekit.cli import main
from aekit.data.hooks import ActivationCapture
from aekit.data.store import ActivationStore
from aekit.data.vision import image_activations, load_vision_model, model_inputs, read_image_folder, select_tokens
from aekit.errors import ConfigError, DataError
from aekit.worlds import scenes
from aekit.worlds.toy_vision import (
    ToyCLIPConfig,
    ToyViTConfig,
    build_caption_tokenizer,
    train_toy_clip,
    train_toy_vit,
)

TINY = dict(hidden=16, layers=2, heads=2, mlp=32, patch=16, steps=3, batch_size=8, chunk=16, eval_n=8,
            log_every=1, warmup_steps=1)


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory):
    path = tmp_path_factory.mktemp("vit") / "model"
    train_toy_vit(path, ToyViTConfig(**TINY), progress=False)
    return path


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "model"
    train_toy_clip(path, ToyCLIPConfig(**TINY, text_hidden=16, text_layers=1, text_heads=2, text_mlp=32,
                                       projection=8), progress=False)
    return path


# ---- the scene world ----------------------------------------------------------------------------------------


def test_splits_are_disjoint_and_reproducible():
    train, test, ood = (scenes.sample_scenes(400, 3, split) for split in ("train", "test", "ood"))
    assert not scenes.is_ood(train.factors).any() and not scenes.is_test(train.factors).any()
    assert scenes.is_test(test.factors).all() and not scenes.is_ood(test.factors).any()
    assert scenes.is_ood(ood.factors).all()
    pairs = {(int(s), int(h)) for s, h in ood.factors[:, [4, 2]]}
    assert pairs == set(scenes.OOD_PAIRS)  # 400 draws reach all 8 held-out pairs
    again = scenes.sample_scenes(400, 3, "train")
    assert np.array_equal(again.factors, train.factors) and torch.equal(again.images, train.images)
    assert train.images.shape == (400, 3, 32, 32) and 0 <= float(train.images.min()) <= float(train.images.max()) <= 1
    # about a tenth of the whole grid is test, a fifth of the (shape, hue) pairs are held out
    everything = scenes.sample_scenes(4000, 0, "all")
    assert abs(scenes.is_test(everything.factors).mean() - 0.1) < 0.02
    assert abs(scenes.is_ood(everything.factors).mean() - 0.2) < 0.03


def test_bad_split_and_size_are_refused():
    with pytest.raises(ConfigError, match="split"):
        scenes.sample_scenes(3, 0, "validation")
    with pytest.raises(ConfigError, match="n:"):
        scenes.sample_scenes(-1, 0)


def test_captions_name_the_true_attributes():
    sample = scenes.sample_scenes(50, 1)
    full = scenes.captions(sample.factors, seed=0, keep_probability=1.0)
    words = scenes.caption_words(sample.factors)
    for text, truth in zip(full, words, strict=True):
        assert text.startswith(f"a {truth['size']} {truth['object_colour']} {truth['shape']}")
        assert f"on a {truth['floor_colour']} floor" in text and f"by a {truth['wall_colour']} wall" in text
    bare = scenes.captions(sample.factors, seed=0, keep_probability=0.0)
    assert set(bare) == {"a object"}
    vocabulary = set(scenes.caption_vocabulary())
    assert all(set(t.split()) <= vocabulary for t in full)
    with pytest.raises(ConfigError):
        scenes.captions(sample.factors, seed=0, keep_probability=1.5)


def test_caption_tokenizer_round_trips_and_ends_with_eos():
    tokenizer = build_caption_tokenizer()
    text = "a small red cube turned left on a blue floor by a green wall"
    ids = tokenizer(text)["input_ids"]
    assert ids[0] == 1 and ids[-1] == 3 and len(ids) == 16  # <bos> 14 words <eos>: the longest caption fits
    assert tokenizer.decode(ids, skip_special_tokens=True) == text
    assert tokenizer.unk_token_id not in ids


# ---- the toy models -----------------------------------------------------------------------------------------


def test_toy_vit_training_is_bit_reproducible(tiny_vit, tmp_path):
    again = tmp_path / "again"
    train_toy_vit(again, ToyViTConfig(**TINY), progress=False)
    first, second = load_file(tiny_vit / "model.safetensors"), load_file(again / "model.safetensors")
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
    evaluation = json.loads((tiny_vit / "eval.json").read_text())
    assert set(evaluation["test"]) == {*scenes.scene_world().factor_names, "mean"}
    log = [json.loads(line) for line in (tiny_vit / "training_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3]


def test_toy_vit_refuses_a_used_directory_and_bad_settings(tiny_vit):
    with pytest.raises(ConfigError, match="not empty"):
        train_toy_vit(tiny_vit, ToyViTConfig(**TINY), progress=False)
    with pytest.raises(ConfigError, match="patch"):
        ToyViTConfig(patch=5).validate()
    with pytest.raises(ConfigError, match="hidden"):
        ToyViTConfig(hidden=30, heads=4).validate()


def test_toy_clip_loads_as_a_hugging_face_model_and_pools_at_eos(tiny_clip):
    from aekit.data.vision import text_embeddings

    vm = load_vision_model(tiny_clip, device="cpu")
    assert vm.family == "clip" and vm.tokenizer is not None and vm.image_size == 32
    short, long = "a red cube", "a small red cube turned left on a blue floor by a green wall"
    alone = text_embeddings(vm, [short])
    padded = text_embeddings(vm, [short, long])[:1]  # padded on the right to the long caption's length
    assert torch.allclose(alone, padded, atol=1e-5)
    evaluation = json.loads((tiny_clip / "eval.json").read_text())
    assert set(evaluation["test"]) == {*(a.name for a in scenes.ATTRIBUTES), "mean"}


# ---- hooks, activations and caching -------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["tiny_vit", "tiny_clip"])
def test_vision_hooks_match_the_models_hidden_states(fixture, request):
    vm = load_vision_model(request.getfixturevalue(fixture), device="cpu")
    images = scenes.sample_scenes(3, 0).images
    pixels = model_inputs(vm, images)
    tower = vm.model.vision_model if vm.family == "clip" else vm.model.vit
    hidden = tower(pixel_values=pixels, output_hidden_states=True).hidden_states
    got = ActivationCapture(vm.model, ["blocks.1.hook_resid_post", "blocks.0.hook_resid_pre"],
                            stop_early=False).run_images(pixels)
    assert torch.equal(got["blocks.1.hook_resid_post"], hidden[2])
    assert torch.equal(got["blocks.0.hook_resid_pre"], hidden[0])
    with pytest.raises(ConfigError, match="run_images"):
        ActivationCapture(vm.model, ["blocks.0.hook_resid_post"]).run(torch.zeros(1, 3, dtype=torch.long))
    cls = image_activations(vm, images, "blocks.1.hook_resid_post", "cls")
    patches = image_activations(vm, images, "blocks.1.hook_resid_post", "patches")
    assert torch.equal(cls, hidden[2][:, 0]) and patches.shape == (3 * 4, 16)
    assert torch.equal(patches[4:8], hidden[2][1, 1:])  # image-major rows


def test_select_tokens_refuses_unknown_selection():
    with pytest.raises(ConfigError, match="tokens"):
        select_tokens(torch.zeros(2, 5, 4), "middle")


def test_image_folder_reads_pixels_exactly(tmp_path):
    from PIL import Image

    pixels = (np.arange(4 * 4 * 3).reshape(4, 4, 3) * 5).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "b.png")
    Image.fromarray(pixels[::-1].copy()).save(tmp_path / "a.png")
    (tmp_path / "notes.txt").write_text("not an image")
    images, names = read_image_folder(tmp_path, size=4)
    assert names == ["a.png", "b.png"]
    assert torch.equal(images[1], torch.from_numpy(pixels).permute(2, 0, 1).float() / 255)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="broken.png"):
        read_image_folder(tmp_path, size=4)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        read_image_folder(tmp_path / "empty", size=4)
    with pytest.raises(DataError, match="not a directory"):
        read_image_folder(tmp_path / "notes.txt", size=4)


def test_cache_writes_one_row_per_selected_token(tiny_vit, tmp_path, capsys):
    out = tmp_path / "store"
    assert main(["cache", "--model", str(tiny_vit), "--hook", "blocks.1.hook_resid_post", "--world", "scenes",
                 "--n", "10", "--split", "ood", "--tokens", "patches", "--out", str(out), "--quiet"]) == 0
    store = ActivationStore(out)
    assert store.rows == 10 * 4 and store.d == 16
    assert store.provenance["split"] == "ood" and store.provenance["tokens"] == "patches"
    vm = load_vision_model(tiny_vit, device="cpu")
    expected = image_activations(vm, scenes.sample_scenes(10, 0, "ood").images, "blocks.1.hook_resid_post", "patches")
    assert torch.equal(store.read_all(), expected)
    capsys.readouterr()
    assert main(["cache", "--model", str(tiny_vit), "--hook", "blocks.1.hook_resid_post", "--world", "scenes",
                 "--images", str(tmp_path), "--out", str(tmp_path / "other")]) == 2
    assert "exactly one of" in capsys.readouterr().err
    assert main(["cache", "--model", str(tiny_vit), "--hook", "blocks.9.hook_resid_post", "--world", "scenes",
                 "--out", str(tmp_path / "other")]) == 2
    assert not (tmp_path / "other").exists()


# ---- the vision-SAE study -----------------------------------------------------------------------------------


class _Identity(torch.nn.Module):
    """A stand-in SAE that reconstructs perfectly: splicing it in must change nothing."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))

    def encode(self, x):
        return x

    def decode(self, codes):
        return codes


def test_a_perfect_reconstruction_recovers_all_accuracy(tiny_vit):
    from aekit.analysis.vision_sae import spliced_accuracy

    vm = load_vision_model(tiny_vit, device="cpu")
    test = scenes.sample_scenes(64, 0, "test")
    rows = image_activations(vm, test.images, "blocks.0.hook_resid_post", "all")
    result = spliced_accuracy(vm, _Identity(), "blocks.0.hook_resid_post", "all", test, rows.mean(0))
    assert result["sae"] == result["clean"]
    if result["clean"] > result["mean_ablated"]:
        assert result["recovered"] == pytest.approx(1.0)


def test_token_replacer_leaves_unselected_tokens_alone():
    from aekit.analysis.vision_sae import _token_replacer

    x = torch.randn(2, 5, 3)
    only_cls = _token_replacer("cls", torch.zeros_like)(x)
    assert torch.equal(only_cls[:, 1:], x[:, 1:]) and not only_cls[:, 0].any()
    patches = _token_replacer("patches", lambda r: r + 1)(x)
    assert torch.equal(patches[:, 0], x[:, 0]) and torch.equal(patches[:, 1:], x[:, 1:] + 1)


def test_mahalanobis_separates_shifted_points():
    from sklearn.metrics import roc_auc_score

    from aekit.analysis.vision_sae import _Mahalanobis

    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (600,), generator=g)
    means = torch.randn(3, 8, generator=g) * 4
    train = means[labels] + torch.randn(600, 8, generator=g)
    detector = _Mahalanobis(train, labels.numpy()[:, None])
    inside = means[torch.randint(0, 3, (200,), generator=g)] + torch.randn(200, 8, generator=g)
    outside = inside + 3.0 * torch.randn(200, 8, generator=g)
    scores = torch.cat([detector.score(inside), detector.score(outside)]).numpy()
    assert roc_auc_score(np.r_[np.zeros(200), np.ones(200)], scores) > 0.95
    # the in-distribution score is a χ² with 8 degrees of freedom: mean ≈ 8 (minimum over 3 well-separated classes)
    assert 6.0 < float(detector.score(inside).mean()) < 10.0


def test_vision_sae_command_writes_its_outputs(tiny_vit, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["vision-sae", "--model", str(tiny_vit), "--hook", "blocks.1.hook_resid_post", "--latents", "32",
                 "--k", "4", "--steps", "20", "--n-train", "40", "--n-eval", "30", "--device", "cpu", "--out",
                 str(out), "--quiet"]) == 0
    record = json.loads((out / "vision_sae.json").read_text())
    assert {p.name for p in out.iterdir()} == {"vision_sae.json", "vision_sae.png", "features.png", "sae"}
    assert set(record["ood"]["auroc"]) == {"sae_error", "sae_rarity", "max_softmax", "mahalanobis"}
    assert all(0.0 <= v <= 1.0 for v in record["ood"]["auroc"].values())
    assert 0.0 < record["fvu"] < 1.5 and record["tokens_per_image"] == 5
    assert record["spliced"]["clean"] >= 0 and len(record["ood"]["scores"]["ood"]["sae_error"]) == 30
    assert "OOD AUROC" in capsys.readouterr().out
    assert main(["vision-sae", "--model", str(tiny_vit), "--k", "64", "--latents", "32", "--out", str(out)]) == 2
    assert "exceeds" in capsys.readouterr().err
