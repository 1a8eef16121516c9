"""The toy GPT-2: a tiny training run writes a loadable Hugging Face directory; the bundled checkpoint loads through
load_lm, is hookable, small, and solves the held-out tasks at pinned accuracies."""

import json

import pytest
import torch

transformers = pytest.importorskip("transformers")

from aekit.data.hooks import ActivationCapture  # noqa: E402
from aekit.data.lm import load_lm  # noqa: E402
from aekit.errors import ConfigError  # noqa: E402
from aekit.fileio import load_safetensors  # noqa: E402
from aekit.worlds.language import BOS, VOCAB, LanguageWorld, encode_words, task_set  # noqa: E402
from aekit.worlds.toy_lm import (  # noqa: E402
    ToyLMConfig,
    build_model,
    bundled_toy_lm_path,
    check_packed_attention,
    evaluate_toy_lm,
    train_toy_lm,
    training_batches,
)

TINY = dict(steps=30, n_layer=1, n_head=2, d_model=32, n_ctx=32, batch_tokens=256, warmup_steps=5, log_every=10)
# Pinned a little below the bundled checkpoint's measured scores: 1.0 for every family on these 100 held-out prompts
# (and on the 500 of eval.json); IOI logit difference 14.5, greater-than mass on later years 0.92 (0.13 corrupted).
PINNED_ACCURACY = {"ioi": 0.95, "greater_than": 0.95, "docstring": 0.95, "induction": 0.95}
MAX_CHECKPOINT_BYTES = 20 * 2**20


def test_tiny_training_run_writes_a_loadable_deterministic_directory(tmp_path):
    summary = train_toy_lm(tmp_path / "a", ToyLMConfig(**TINY, eval_n=20), progress=False)
    out = tmp_path / "a"
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "training_log.jsonl",
            "eval.json", "training.json"} <= names
    assert not list(tmp_path.glob(".a.*"))  # the temporary build directory is gone
    log = [json.loads(line) for line in (out / "training_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [10, 20, 30] and all({"loss", "lr", "elapsed"} <= set(r) for r in log)
    assert log[-1]["loss"] < log[0]["loss"]  # it learns something even in 30 steps
    evaluation = json.loads((out / "eval.json").read_text())
    assert evaluation == summary["eval"] and {"ioi", "greater_than", "docstring", "induction"} <= set(evaluation)
    assert evaluation["prose_loss"] < evaluation["prose_loss_uniform"]
    model, tokenizer = load_lm(str(out), progress=False)
    assert model.config.model_type == "gpt2" and model.config.n_layer == 1 and len(tokenizer) == len(VOCAB)
    doc = LanguageWorld().documents(1, seed=0)[0]
    assert tokenizer(doc.text).input_ids == encode_words(doc.tokens)
    # same seed, same weights (eval skipped); another seed, other weights
    train_toy_lm(tmp_path / "b", ToyLMConfig(**TINY, eval_n=0), progress=False)
    train_toy_lm(tmp_path / "c", ToyLMConfig(**TINY, eval_n=0, seed=1), progress=False)
    a, b, c = (load_safetensors(tmp_path / d / "model.safetensors") for d in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a) and not all(torch.equal(a[k], c[k]) for k in a)
    assert not (tmp_path / "b" / "eval.json").exists()


def test_packed_batches_hold_whole_isolated_documents():
    config = ToyLMConfig(**TINY)
    batches = training_batches(config)
    bos = VOCAB.index(BOS)
    for _ in range(3):
        batch = next(batches)
        assert batch.input_ids.shape == (256 // 32, 32)
        targets, mask = batch.targets(), batch.attention_mask()[:, 0]
        for r in range(batch.input_ids.shape[0]):
            seg, pos, ids = batch.segment[r], batch.position[r], batch.input_ids[r]
            starts = torch.nonzero(pos == 0).flatten()
            assert (ids[starts[seg[starts] >= 0]] == bos).all()  # every document starts at position 0 with BOS
            for i in range(32):
                keys = torch.nonzero(mask[r, i]).flatten()
                if seg[i] >= 0:  # causal attention to exactly the earlier tokens of its own document
                    assert (seg[keys] == seg[i]).all() and keys.max() == i and len(keys) == pos[i] + 1
                if i < 31 and targets[r, i] != -100:
                    assert seg[i + 1] == seg[i] and targets[r, i] == ids[i + 1]
            last = [i for i in range(31) if seg[i] >= 0 and seg[i + 1] != seg[i]]
            assert all(targets[r, i] == -100 for i in last)  # no target crosses into the next document
    full = next(training_batches(ToyLMConfig()))
    assert full.input_ids.shape == (21, 96) and (full.segment >= 0).float().mean() > 0.9  # little padding
    check_packed_attention(build_model(config))  # the model computes a packed row as its documents alone


def test_training_refuses_a_non_empty_output_and_bad_settings(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        train_toy_lm(tmp_path, ToyLMConfig(**TINY), progress=False)
    assert (tmp_path / "keep.txt").read_text() == "mine"
    with pytest.raises(ConfigError, match="toy_lm.d_model"):
        ToyLMConfig.from_dict({"d_model": 30, "n_head": 4})
    with pytest.raises(ConfigError, match="toy_lm.n_ctx"):
        ToyLMConfig.from_dict({"n_ctx": 16})
    with pytest.raises(ConfigError, match="mixture weight"):
        ToyLMConfig.from_dict({"ioi": -1})
    with pytest.raises(ConfigError, match="did you mean 'steps'"):
        ToyLMConfig.from_dict({"step": 10})


@pytest.fixture(scope="module")
def bundled():
    path = bundled_toy_lm_path()
    model, tokenizer = load_lm(str(path), progress=False)
    return path, model, tokenizer


def test_bundled_checkpoint_loads_small_and_matches_the_language(bundled):
    path, model, tokenizer = bundled
    assert (path / "model.safetensors").stat().st_size <= MAX_CHECKPOINT_BYTES
    assert model.config.model_type == "gpt2" and model.config.vocab_size == len(VOCAB)
    # the shipped tokenizer is the language's current tokenizer (a vocabulary change would orphan the model)
    assert tokenizer.convert_ids_to_tokens(list(range(len(VOCAB)))) == list(VOCAB)
    for name in ("training_log.jsonl", "eval.json", "training.json"):
        assert (path / name).is_file()
    evaluation = json.loads((path / "eval.json").read_text())
    assert all(evaluation[family]["accuracy"] >= PINNED_ACCURACY[family] for family in PINNED_ACCURACY)


def test_bundled_checkpoint_is_hookable(bundled):
    _, model, tokenizer = bundled
    prompt = task_set("ioi", 1, seed=0).prompts[0]
    enc = tokenizer(prompt, return_tensors="pt")
    with ActivationCapture(model, ["blocks.1.hook_resid_post", "blocks.0.attn.hook_z"]) as cap:
        acts = cap.run(enc.input_ids, enc.attention_mask)
    n_tokens, d = enc.input_ids.shape[1], model.config.n_embd
    assert acts["blocks.1.hook_resid_post"].shape == (1, n_tokens, d)
    assert acts["blocks.0.attn.hook_z"].shape == (1, n_tokens, model.config.n_head, d // model.config.n_head)
    with torch.no_grad():
        hidden = model(**enc, output_hidden_states=True).hidden_states
    assert torch.allclose(acts["blocks.1.hook_resid_post"], hidden[2], atol=1e-5)


def test_bundled_checkpoint_solves_held_out_tasks(bundled):
    path, _, _ = bundled
    scores = evaluate_toy_lm(path, n=100, seed=0)
    for family, pinned in PINNED_ACCURACY.items():
        assert scores[family]["accuracy"] >= pinned, (family, scores[family])
        if family != "greater_than":  # the corruption removes the answer: accuracy falls to near chance
            assert scores[family]["corrupted_accuracy"] < 0.1, (family, scores[family])
    gt = scores["greater_than"]
    assert gt["prob_greater"] > 0.85 and gt["corrupted_prob_greater"] < 0.3, gt
    assert scores["ioi"]["logit_diff"] > 10.0
    assert scores["prose_loss"] < 2.1  # measured 1.98 nats; knowing nothing costs ln(674) = 6.51
