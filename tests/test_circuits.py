"""Circuit discovery: patching is exact, gradients match finite differences, scores count what they say, and on the
bundled toy GPT-2 the ablation baselines recover the exhaustively patched ground truth."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from aekit.analysis.circuits import (
    DiscreteCodeSettings,
    ablation_effects,
    acdc_heads,
    attribution_patching,
    discrete_code_circuit,
    ground_truth,
    head_importance,
    head_vectors,
    task_from_file,
    toy_task,
)
from aekit.analysis.circuits.discrete_codes import node_and_edge_scores
from aekit.analysis.circuits.patching import editing_heads, head_outputs_z, last_logits, path_patched_logits
from aekit.data.hooks import ActivationCapture, model_layout
from aekit.data.lm import load_lm
from aekit.errors import AekitError, DataError
from aekit.metrics.circuits import circuit_precision_recall, ranking_auc
from aekit.worlds.toy_lm import bundled_toy_lm_path


@pytest.fixture(scope="module")
def toy():
    torch.manual_seed(0)
    return load_lm(bundled_toy_lm_path(), device="cpu", progress=False)


@pytest.fixture(scope="module")
def ioi(toy):
    return toy_task("ioi", toy[1], 12, seed=3)


@pytest.fixture(scope="module")
def ioi_truth(toy):
    return ground_truth(toy[0], toy_task("ioi", toy[1], 120, seed=1000), edges=False)


def test_ioi_metric_is_the_logit_difference_of_indirect_object_and_subject(toy, ioi):
    model, tokenizer = toy
    from aekit.worlds.language import task_set

    meta = task_set("ioi", 12, seed=3, split="test").metadata
    with torch.no_grad():
        logits = last_logits(model, ioi.pairs.positive_ids, ioi.pairs.mask)
    vocab = tokenizer.get_vocab()
    expected = torch.tensor([float(logits[i, vocab[m["io"]]] - logits[i, vocab[m["s"]]]) for i, m in enumerate(meta)])
    torch.testing.assert_close(ioi.metric(logits), expected)
    assert float(expected.mean()) > 5  # the toy model does IOI


def test_greater_than_metric_is_a_probability_difference(toy):
    model, tokenizer = toy
    task = toy_task("greater_than", tokenizer, 8, seed=0)
    with torch.no_grad():
        clean = task.metric(last_logits(model, task.pairs.positive_ids, task.pairs.mask))
        negative = task.metric(last_logits(model, task.pairs.negative_ids, task.pairs.mask))
    assert bool(((clean >= -1) & (clean <= 1)).all())
    assert float(clean.mean()) > 0.5 > float(negative.mean())


def test_head_vectors_are_the_position_mean_of_hook_result(toy, ioi):
    model, _ = toy
    vectors = head_vectors(model, ioi.pairs.positive_ids, ioi.pairs.mask)
    hooks = [f"blocks.{layer}.attn.hook_result" for layer in range(4)]
    acts = ActivationCapture(model, hooks).run(ioi.pairs.positive_ids, ioi.pairs.mask)
    mask = ioi.pairs.mask.float()[:, :, None, None]
    for layer, hook in enumerate(hooks):
        expected = (acts[hook] * mask).sum(1) / mask.sum(1)
        torch.testing.assert_close(vectors[:, layer], expected, atol=1e-5, rtol=1e-4)


def test_identity_edit_changes_nothing_and_a_zeroed_head_has_no_effect(toy, ioi):
    model, _ = toy
    with torch.no_grad():
        clean = last_logits(model, ioi.pairs.positive_ids, ioi.pairs.mask)
        with editing_heads(model, lambda layer, z: z):
            same = last_logits(model, ioi.pairs.positive_ids, ioi.pairs.mask)
    torch.testing.assert_close(same, clean, atol=0, rtol=0)
    # a head whose output projection is zero writes nothing, so ablating it can change nothing
    layout = model_layout(model)
    weight = layout.out_proj(2).weight
    saved = weight.detach().clone()
    with torch.no_grad():
        weight[64:96, :] = 0  # GPT-2's Conv1D weight is (d_in, d_out): head 2's z feeds rows [64, 96)
    try:
        _, _, effects = ablation_effects(model, ioi)
    finally:
        with torch.no_grad():
            weight.copy_(saved)
    assert effects["mean"][2, 2] == 0 and effects["resample"][2, 2] == 0


def test_path_patching_equals_patching_the_receivers_input_by_hand(toy):
    model, tokenizer = toy
    task = toy_task("induction", tokenizer, 16, seed=3)
    pairs, layout = task.pairs, model_layout(model)
    _, z_clean = head_outputs_z(model, pairs.positive_ids, pairs.mask)
    _, z_negative = head_outputs_z(model, pairs.negative_ids, pairs.mask)
    delta = (z_negative[0, ..., 1, :] - z_clean[0, ..., 1, :]) @ layout.w_o(0)[1].detach()
    patched = path_patched_logits(model, pairs.positive_ids, pairs.mask, (1, 2), delta)
    # by hand: every layer-1 head reads the changed residual; keep only head 2's output from that run
    norm = layout.blocks[1].ln_1
    handle = norm.register_forward_pre_hook(lambda module, args: (args[0] + delta,))
    _, z_changed = head_outputs_z(model, pairs.positive_ids, pairs.mask)
    handle.remove()

    def swap(layer, z):
        if layer != 1:
            return z
        z = z.clone()
        z[..., 2, :] = z_changed[1][..., 2, :]
        return z

    with torch.no_grad(), editing_heads(model, swap):
        expected = last_logits(model, pairs.positive_ids, pairs.mask)
    torch.testing.assert_close(patched, expected, atol=1e-5, rtol=1e-5)
    zero = path_patched_logits(model, pairs.positive_ids, pairs.mask, (1, 2), torch.zeros_like(delta))
    with torch.no_grad():
        torch.testing.assert_close(zero, last_logits(model, pairs.positive_ids, pairs.mask), atol=1e-5, rtol=1e-5)


def _metric_with_scaled_head(model, task, layer, head, scale):
    def edit(at, z):
        if at != layer:
            return z
        z = z.clone()
        z[..., head, :] = z[..., head, :] * scale
        return z

    with torch.no_grad(), editing_heads(model, edit):
        return task.metric(last_logits(model, task.pairs.positive_ids, task.pairs.mask)).double()


def test_hisp_gradient_matches_finite_differences(toy, ioi):
    model, _ = toy
    scores = head_importance(model, ioi)
    eps = 1e-2
    for layer, head in [(0, 1), (1, 2), (3, 0)]:
        plus = _metric_with_scaled_head(model, ioi, layer, head, 1 + eps)
        minus = _metric_with_scaled_head(model, ioi, layer, head, 1 - eps)
        finite = ((plus - minus) / (2 * eps)).abs().mean()
        assert float(scores[layer, head]) == pytest.approx(float(finite), rel=0.05, abs=2e-3)


def test_attribution_patching_is_the_first_order_change_of_resample_ablation(toy, ioi):
    model, _ = toy
    scores = attribution_patching(model, ioi)
    _, z_negative = head_outputs_z(model, ioi.pairs.negative_ids, ioi.pairs.mask)
    eps = 1e-2
    for layer, head in [(0, 1), (1, 2)]:
        def step(sign, layer=layer, head=head):
            def edit(at, z):
                if at != layer:
                    return z
                z = z.clone()
                z[..., head, :] += sign * eps * (z_negative[layer][..., head, :] - z[..., head, :])
                return z

            with torch.no_grad(), editing_heads(model, edit):
                return task_mean(model, ioi)

        finite = abs((step(1) - step(-1)) / (2 * eps))
        assert float(scores[layer, head]) == pytest.approx(finite, rel=0.05)


def task_mean(model, task) -> float:
    return float(task.metric(last_logits(model, task.pairs.positive_ids, task.pairs.mask)).double().mean())


def test_acdc_extremes_keep_everything_or_nothing(toy, ioi):
    model, _ = toy
    _, kept_all = acdc_heads(model, ioi, threshold=-math.inf)
    scores, kept_none = acdc_heads(model, ioi, threshold=math.inf)
    assert bool(kept_all.all()) and not bool(kept_none.any())
    assert float(scores.max()) > 1  # some head matters a lot: IOI's name mover


def test_ground_truth_and_baselines_on_toy_ioi(toy, ioi, ioi_truth):
    model, _ = toy
    truth = ioi_truth.heads
    assert bool(truth[0, 1]) and 1 <= int(truth.sum()) <= 6  # a small circuit with the strongest head in it
    assert abs(ioi_truth.effects["resample"][0, 1] - 0.88) < 0.05
    assert ioi_truth.clean_metric > 10 > 1 > ioi_truth.negative_metric
    acdc_scores, kept = acdc_heads(model, ioi)
    assert ranking_auc(acdc_scores, truth) >= 0.9
    assert ranking_auc(attribution_patching(model, ioi), truth) >= 0.85
    precision, recall = circuit_precision_recall(kept, truth)
    assert recall == 1 and precision >= 0.5  # every true head kept, at most twice as many heads as needed


def test_node_and_edge_scores_count_codes_unique_to_positives():
    # 3 prompts, 2 layers, 1 head: codes on positives vs negatives
    positive = torch.tensor([[[0], [5]], [[1], [5]], [[0], [6]]])
    negative = torch.tensor([[[0], [5]], [[2], [5]], [[2], [5]]])
    nodes, edges = node_and_edge_scores(positive, negative)
    assert nodes.tolist() == [[1.0], [1.0]]  # layer 0: code 1 is positive-only; layer 1: code 6
    # pairs on positives (0,5), (1,5), (0,6); on negatives (0,5), (2,5): two pairs are positive-only
    assert edges[0, 0, 1, 0] == 2
    assert torch.isnan(edges[1, 0, 0, 0]) and torch.isnan(edges[0, 0, 0, 0])


def test_discrete_code_method_is_deterministic_and_shaped(toy, ioi):
    model, _ = toy
    settings = DiscreteCodeSettings(n_latents=32, epochs=40, seed=7)
    first = discrete_code_circuit(model, ioi, settings)
    second = discrete_code_circuit(model, ioi, settings)
    assert first.node_scores.shape == (4, 4) and first.edge_scores.shape == (4, 4, 4, 4)
    torch.testing.assert_close(first.node_scores, second.node_scores, atol=0, rtol=0)
    assert torch.equal(first.positive_codes, second.positive_codes)
    assert int(first.positive_codes.min()) >= -1 and int(first.positive_codes.max()) < 32
    assert float(first.node_scores.max()) <= len(ioi)  # at most one new code per positive prompt
    assert set(first.seconds) == {"capture", "sae", "scores", "total"}


def test_ranking_auc_and_precision_recall():
    truth = np.array([[True, False], [False, True]])
    assert ranking_auc(np.array([[3, 1], [0, 2]]), truth) == 1.0
    assert ranking_auc(np.array([[1, 1], [1, 1]]), truth) == 0.5  # ties count one half
    assert math.isnan(ranking_auc(np.ones((2, 2)), np.ones((2, 2), dtype=bool)))
    edge_scores = np.array([np.nan, 2.0, 1.0])
    assert ranking_auc(edge_scores, np.array([True, True, False])) == 1.0  # NaN entries are not edges
    assert circuit_precision_recall(np.array([True, True, False]), np.array([True, False, True])) == (0.5, 0.5)
    with pytest.raises(AekitError):
        ranking_auc(np.ones(3), np.ones(4, dtype=bool))


def test_task_file_errors_and_metric(tmp_path, toy):
    model, tokenizer = toy
    good = tmp_path / "good.jsonl"
    good.write_text("\n".join(json.dumps(r) for r in [
        {"prompt": "When Mary and John went to the park , John gave a ball to", "answer": "Mary", "wrong": "John",
         "corrupted": "When Alice and Bob went to the park , Carol gave a ball to"},
        {"prompt": "When Tom and Anna went to the park , Tom gave a ball to", "answer": "Anna", "wrong": "Peter",
         "corrupted": "When Alice and Bob went to the park , Carol gave a ball to"},
    ]))
    task = task_from_file(good, tokenizer)
    assert len(task) == 2 and task.pairs.positive_ids.shape == task.pairs.negative_ids.shape
    with torch.no_grad():
        clean = task.metric(last_logits(model, task.pairs.positive_ids, task.pairs.mask))
    assert bool((clean > 3).all())  # logit(answer) - logit(wrong): the toy model names the indirect object
    no_wrong = tmp_path / "no_wrong.jsonl"
    no_wrong.write_text(good.read_text().replace(', "wrong": "John"', "").replace(', "wrong": "Peter"', ""))
    with torch.no_grad():
        log_p = task_from_file(no_wrong, tokenizer).metric(last_logits(model, task.pairs.positive_ids,
                                                                        task.pairs.mask))
    assert bool((log_p <= 0).all()) and float(log_p.mean()) > -1  # log p(answer), mostly right


def test_task_file_rejects_bad_input(tmp_path, toy):
    _, tokenizer = toy
    bad = tmp_path / "bad.jsonl"
    with pytest.raises(DataError, match="cannot read"):
        task_from_file(bad, tokenizer)
    bad.write_text('{"prompt": "a b", "answer": "x"}\n')
    with pytest.raises(DataError, match="missing text field"):
        task_from_file(bad, tokenizer)
    bad.write_text('not json\n')
    with pytest.raises(DataError, match="not a JSON object"):
        task_from_file(bad, tokenizer)
    ids = toy_task("ioi", tokenizer, 1, seed=0)
    words = ids.positives[0].split()
    bad.write_text(json.dumps({"prompt": ids.positives[0], "corrupted": " ".join(words[:-1]),
                               "answer": words[0]}) + "\n")
    with pytest.raises(DataError, match="equal token length"):
        task_from_file(bad, tokenizer)
