"""Task-specific data selection: generalised Jaccard and BM25 equal their by-hand values, selection precision is
counted right, SAE-Jaccard finds the planted target family of a toy candidate pool (random finds its fraction), and
fine-tuning a toy LM on a selection is deterministic and writes a loadable model."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from aekit.analysis.embeddings import (
    DocumentEmbeddings,
    bm25_scores,
    cosine_scores,
    dense_embeddings,
    generalized_jaccard,
    jaccard_scores,
    prototype,
    random_scores,
    sae_embeddings,
    select,
)
from aekit.errors import ConfigError, DataError, ShapeError
from aekit.metrics.selection import selection_precision, selection_recall
from aekit.worlds.language import LanguageWorld, task_document
from aekit.worlds.language.corpora import selection_pool

from .doc_sae import toy_doc_sae

# ---- generalised Jaccard ---------------------------------------------------------------------------------------


def test_generalized_jaccard_equals_the_dense_formula_exactly():
    rng = np.random.default_rng(0)
    # small integers keep every sum exact in float64, so the sparse route must give the very same numbers
    dense = rng.integers(0, 5, size=(40, 30)) * (rng.random((40, 30)) < 0.3)
    dense[3] = 0  # an empty row
    reference = rng.integers(0, 4, size=30).astype(np.float64)
    expected = np.minimum(dense, reference).sum(1) / np.maximum(dense, reference).sum(1)
    got = generalized_jaccard(sp.csr_matrix(dense.astype(np.float32)), reference)
    assert np.array_equal(got, expected)
    assert got[3] == 0.0
    # by hand: min sums to 0.5 + 0 + 1 = 1.5, max to 1 + 1 + 2 = 4
    assert generalized_jaccard(np.array([[1.0, 0.0, 2.0]]), np.array([0.5, 1.0, 1.0]))[0] == 0.375
    assert generalized_jaccard(np.zeros((1, 3)), np.zeros(3))[0] == 0.0  # undefined 0/0 ranks last


def test_jaccard_scores_use_the_mean_of_the_examples_as_prototype():
    examples = DocumentEmbeddings(sp.csr_matrix(np.array([[2.0, 0.0, 1.0], [0.0, 0.0, 3.0]])), ["a", "b"])
    assert np.array_equal(prototype(examples), [1.0, 0.0, 2.0])
    candidates = DocumentEmbeddings(sp.csr_matrix(np.array([[1.0, 0.0, 2.0], [0.0, 5.0, 0.0]])), ["x", "y"])
    assert np.array_equal(jaccard_scores(candidates, examples), [1.0, 0.0])


def test_jaccard_refuses_negative_values_and_mismatched_widths():
    with pytest.raises(DataError, match="non-negative"):
        generalized_jaccard(np.array([[-1.0, 1.0]]), np.array([1.0, 1.0]))
    with pytest.raises(ShapeError, match="latents"):
        generalized_jaccard(np.ones((2, 3)), np.ones(4))
    with pytest.raises(DataError, match="examples"):
        prototype(np.zeros((0, 3)))


# ---- baselines ---------------------------------------------------------------------------------------------------


def test_bm25_equals_a_by_hand_computation():
    docs = ["a b a", "b c", "c c d e"]  # lengths 3, 2, 4: avgdl 3
    k1, b = 1.5, 0.75
    idf_a = math.log((3 - 1 + 0.5) / (1 + 0.5) + 1)  # "a" is in one document
    idf_c = math.log((3 - 2 + 0.5) / (2 + 0.5) + 1)  # "c" in two
    expected = [
        idf_a * 2 * (k1 + 1) / (2 + k1 * (1 - b + b * 3 / 3)),
        idf_c * 1 * (k1 + 1) / (1 + k1 * (1 - b + b * 2 / 3)),
        idf_c * 2 * (k1 + 1) / (2 + k1 * (1 - b + b * 4 / 3)),
    ]
    np.testing.assert_allclose(bm25_scores(docs, "a c"), expected, rtol=1e-14, atol=0)
    # the query is a set of tokens (a repeat adds nothing), pooled over several texts; unseen tokens add 0
    np.testing.assert_allclose(bm25_scores(docs, ["a c c", "c zzz"]), expected, rtol=1e-14, atol=0)
    assert np.array_equal(bm25_scores(docs, "zzz"), np.zeros(3))
    with pytest.raises(DataError):
        bm25_scores([], "a")


def test_cosine_and_random_baselines():
    candidates = np.array([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]])
    examples = np.array([[2.0, 0.0], [0.0, 0.0]])  # mean (1, 0)
    assert np.array_equal(cosine_scores(candidates, examples), [1.0, 0.0, 0.0])
    with pytest.raises(ShapeError):
        cosine_scores(candidates, np.ones((1, 3)))
    assert np.array_equal(random_scores(50, seed=3), random_scores(50, seed=3))
    assert not np.array_equal(random_scores(50, seed=3), random_scores(50, seed=4))


# ---- selecting and scoring a selection ---------------------------------------------------------------------------


def test_select_takes_the_best_first_breaks_ties_by_position_and_skips_excluded_rows():
    scores = np.array([0.1, 0.9, 0.5, 0.9, 0.7])
    assert select(scores, 3).tolist() == [1, 3, 4]
    assert select(scores, 3, exclude=[1]).tolist() == [3, 4, 2]
    with pytest.raises(ConfigError, match="budget"):
        select(scores, 5, exclude=[0])
    with pytest.raises(ConfigError, match="budget"):
        select(scores, 0)
    with pytest.raises(DataError, match="NaN"):
        select(np.array([np.nan, 1.0]), 1)


def test_selection_precision_and_recall():
    is_target = np.array([True, False, True, True, False])
    assert selection_precision([0, 1], is_target) == 0.5
    assert selection_recall([0, 1], is_target) == pytest.approx(1 / 3)
    assert selection_precision([2, 3], is_target) == 1.0
    assert math.isnan(selection_precision([], is_target))
    with pytest.raises(DataError):
        selection_precision([7], is_target)
    with pytest.raises(DataError):
        selection_precision([0, 0], is_target)


# ---- end to end on the toy world ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def doc_sae():
    torch.set_num_threads(1)
    return toy_doc_sae()


def _pool_precisions(doc_sae, target: str, n_examples: int, seed: int = 0) -> dict[str, float]:
    pool, is_target = selection_pool(doc_sae.world, 600, seed=seed, target=target, fraction=0.05)
    rng = random.Random(1000 + seed)  # examples drawn outside the pool
    examples = [task_document(target, rng).text for _ in range(n_examples)]
    texts = [doc.text for doc in pool]
    budget = int(is_target.sum())
    codes = sae_embeddings(doc_sae.sae, doc_sae.model, doc_sae.tokenizer, doc_sae.hook, texts + examples,
                           progress=False)
    candidates, example_codes = codes.subset(np.arange(600)), codes.subset(np.arange(600, 600 + n_examples))
    dense = dense_embeddings(doc_sae.model, doc_sae.tokenizer, doc_sae.hook, texts + examples, progress=False)
    scores = {"jaccard": jaccard_scores(candidates, example_codes), "cosine": cosine_scores(dense[:600], dense[600:]),
              "bm25": bm25_scores(texts, examples)}
    return {name: selection_precision(select(s, budget), is_target) for name, s in scores.items()}


def test_sae_jaccard_selects_the_planted_task_family(doc_sae):
    # measured (seeds 0-2, budget = the 30 targets among 600): SAE-Jaccard 1.0 for every family with 1 or 5
    # examples; cosine on mean-pooled states 1.0 too; BM25 1.0 on greater-than, 0.27-0.5 on induction from one
    # example (its reserved words differ from document to document, the SAE codes' "induction word" latents do not)
    greater = _pool_precisions(doc_sae, "greater_than", n_examples=5)
    assert greater["jaccard"] >= 0.95 and greater["cosine"] >= 0.9
    induction = _pool_precisions(doc_sae, "induction", n_examples=1)
    assert induction["jaccard"] >= 0.95
    assert induction["bm25"] <= 0.7 < induction["jaccard"]


def test_random_selection_finds_the_target_fraction():
    _, is_target = selection_pool(LanguageWorld(), 600, seed=0, fraction=0.05)
    budget = int(is_target.sum())
    precisions = [selection_precision(select(random_scores(600, seed), budget), is_target) for seed in range(40)]
    assert 0.03 <= float(np.mean(precisions)) <= 0.07  # the fraction, 0.05, up to sampling noise


# ---- fine-tuning on a selection ----------------------------------------------------------------------------------

TINY = dict(steps=20, n_layer=1, n_head=2, d_model=32, n_ctx=32, batch_tokens=256, warmup_steps=5, log_every=10,
            eval_n=0, eval_every=0)


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    from aekit.worlds.toy_lm import ToyLMConfig, train_toy_lm

    path = tmp_path_factory.mktemp("selection") / "base"
    train_toy_lm(path, ToyLMConfig(**TINY, greater_than=0.0), progress=False)
    return path


def test_finetuning_is_deterministic_changes_the_weights_and_writes_a_loadable_model(tiny_base, tmp_path):
    from aekit.data.lm import load_lm
    from aekit.fileio import load_safetensors
    from aekit.worlds.toy_finetune import finetune_toy_lm
    from aekit.worlds.toy_lm import evaluate_toy_lm

    rng = random.Random(0)
    documents = [task_document("greater_than", rng).text for _ in range(7)]  # fewer than one batch holds
    summary = finetune_toy_lm(tiny_base, documents, tmp_path / "a", steps=6, lr=1e-3, seed=1, warmup_steps=2)
    finetune_toy_lm(tiny_base, documents, tmp_path / "b", steps=6, lr=1e-3, seed=1, warmup_steps=2)
    finetune_toy_lm(tiny_base, documents, tmp_path / "c", steps=6, lr=1e-3, seed=2, warmup_steps=2)
    base, a, b, c = (load_safetensors(d / "model.safetensors") for d in (tiny_base, tmp_path / "a",
                                                                          tmp_path / "b", tmp_path / "c"))
    assert all(torch.equal(a[key], b[key]) for key in a)  # bit-identical with the same seed
    assert not all(torch.equal(a[key], base[key]) for key in a)  # it trained
    assert not all(torch.equal(a[key], c[key]) for key in a)  # another seed, another batch order
    record = json.loads((tmp_path / "a" / "training.json").read_text())
    assert record["finetuned_from"] == str(tiny_base.resolve()) and record["documents"] == 7
    assert record["config"]["steps"] == 6 and record["config"]["d_model"] == 32 == summary["config"]["d_model"]
    model, tokenizer = load_lm(tmp_path / "a", progress=False)
    assert model.config.n_layer == 1 and tokenizer(documents[0]).input_ids[0] == tokenizer.bos_token_id
    assert {"greater_than", "prose_loss"} <= set(evaluate_toy_lm(tmp_path / "a", n=10))


def test_finetuning_refuses_foreign_words_no_documents_and_an_existing_output(tiny_base, tmp_path):
    from aekit.worlds.toy_finetune import finetune_toy_lm

    with pytest.raises(DataError, match="documents\\[1\\]: 'quux'"):
        finetune_toy_lm(tiny_base, ["the", "quux"], tmp_path / "x", steps=2, warmup_steps=0)
    with pytest.raises(DataError, match="none given"):
        finetune_toy_lm(tiny_base, [], tmp_path / "x", steps=2, warmup_steps=0)
    with pytest.raises(ConfigError, match="warmup_steps"):
        finetune_toy_lm(tiny_base, ["the"], tmp_path / "x", steps=2, warmup_steps=5)
    assert not (tmp_path / "x").exists()
    (tmp_path / "y").mkdir()
    (tmp_path / "y" / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        finetune_toy_lm(tiny_base, ["the"], tmp_path / "y", steps=2, warmup_steps=0)
