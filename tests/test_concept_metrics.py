"""Concept-recovery metrics on constructed codes with known answers."""

import numpy as np
import pytest
import scipy.sparse as sp

from aekit.errors import ShapeError
from aekit.metrics.concept_scores import concept_best_f1, matched_correlation, probe_correlation, probe_f1


def test_best_f1_finds_the_exact_detector_and_ignores_unlabelled_tokens():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 400)
    labels[:50] = -1
    codes = rng.random((400, 6)) * (rng.random((400, 6)) < 0.1)  # noise latents
    codes[:, 3] = (labels == 1) * 2.0  # latent 3 fires exactly on value 1
    codes[:50, 3] = 5.0  # ... and on unlabelled tokens, which must not count against it
    # latent 5 fires on every value-2 token and on 40 value-0 tokens: recall 1, F1 = 2·n2 / (2·n2 + 40)
    codes[:, 5] = 0
    twos, zeros = np.flatnonzero(labels == 2), np.flatnonzero(labels == 0)
    codes[twos, 5] = 1.0
    codes[zeros[:40], 5] = 1.0
    result = concept_best_f1(sp.csr_matrix(codes), labels)
    assert result[1] == (3, 1.0)
    assert result[2][0] == 5 and result[2][1] == pytest.approx(2 * len(twos) / (2 * len(twos) + 40))
    assert set(result) == {0, 1, 2}
    assert concept_best_f1(codes, labels) == result  # dense input gives the same
    with pytest.raises(ShapeError):
        concept_best_f1(codes, labels[:10])


def test_matched_correlation_recovers_a_permutation():
    rng = np.random.default_rng(1)
    targets = rng.normal(size=(500, 4))
    codes = np.zeros((500, 10))
    perm = [7, 2, 9, 0]
    for j, latent in enumerate(perm):
        codes[:, latent] = targets[:, j] + 0.05 * rng.normal(size=500)
    codes[:, 5] = rng.normal(size=500)  # a distractor
    mean, matched, values = matched_correlation(codes, targets)
    assert matched.tolist() == perm
    assert mean > 0.99 and values.min() > 0.99
    shuffled = rng.permuted(targets, axis=0)
    assert matched_correlation(codes, shuffled)[0] < 0.2


def test_probes_upper_bound_linear_concepts_and_fail_on_noise():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(1500, 8))
    labels = (x @ rng.normal(size=8) > 0).astype(int)  # linearly separable
    scores = probe_f1(x, labels, seed=0)
    assert min(scores.values()) > 0.95
    noise = rng.integers(0, 2, 1500)
    assert max(probe_f1(x, noise, seed=0).values()) < 0.6
    targets = np.stack([x @ rng.normal(size=8), x[:, 0] - 2 * x[:, 1]], axis=1)
    assert probe_correlation(x, targets).min() > 0.99
    assert np.abs(probe_correlation(x, rng.normal(size=(1500, 2)))).max() < 0.15
