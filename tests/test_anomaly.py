"""StackVAE-G time-series anomaly detection: metrics on a hand-checked case, the world, the model, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from aekit.analysis.anomaly import scoring_windows, train_stackvae, windows
from aekit.cli import main
from aekit.metrics.anomaly import best_f1, best_pa_f1, f1_at, graph_auroc, point_adjust, roc_auc, segments
from aekit.models import StackVAE, StackVAEConfig
from aekit.worlds.timeseries import ANOMALY_KINDS, make_timeseries_world

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# one true segment [1, 4) and one point anomaly at 6
LABELS = [0, 1, 1, 1, 0, 0, 1, 0]
SCORES = [0.1, 0.9, 0.2, 0.2, 0.3, 0.1, 0.6, 0.05]


def test_f1_and_point_adjusted_f1_on_a_hand_checked_case():
    assert segments(LABELS) == [(1, 4), (6, 7)]
    flagged = (np.array(SCORES) >= 0.9).astype(int)  # only step 1: tp 1, precision 1, recall 1/4
    assert f1_at(LABELS, flagged) == pytest.approx(2 * 0.25 / 1.25)
    # PA marks the whole segment [1, 4): tp 3, precision 1, recall 3/4
    assert point_adjust(LABELS, flagged).tolist() == [0, 1, 1, 1, 0, 0, 0, 0]
    assert f1_at(LABELS, point_adjust(LABELS, flagged)) == pytest.approx(6 / 7)
    # raw: threshold 0.2 flags {1, 2, 3, 4, 6}: tp 4, precision 4/5, recall 1, F1 8/9 (the best of all thresholds)
    assert best_f1(LABELS, SCORES) == {"f1": pytest.approx(8 / 9), "threshold": pytest.approx(0.2)}
    # adjusted: threshold 0.6 flags the segment (its max is 0.9) and step 6, nothing else: F1 1
    assert best_pa_f1(LABELS, SCORES) == {"f1": pytest.approx(1.0), "threshold": pytest.approx(0.6)}
    assert roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    true = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 0]])
    assert graph_auroc(np.array([[0.5, 0.4, 0.1], [0.3, 0.5, 0.2], [0.2, 0.1, 0.7]]), true) == 1.0


def test_world_is_seeded_and_anomalies_are_where_labelled():
    a, b = make_timeseries_world(6, 1200, seed=3), make_timeseries_world(6, 1200, seed=3)
    assert np.array_equal(a.test, b.test) and np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.test, make_timeseries_world(6, 1200, seed=4).test)
    assert (a.adjacency == a.adjacency.T).all() and not a.adjacency.diagonal().any() and a.adjacency.sum(1).min() >= 2
    expected = np.zeros_like(a.labels)
    for kind, start, stop, chans in a.segments:
        expected[start:stop] = 1
        assert (a.kinds[start:stop] == 1 + ANOMALY_KINDS.index(kind)).all()
        if kind == "point":
            assert np.abs(a.test[start, chans]).min() > 3  # a spike of 4–6 σ on a standardised channel
    assert np.array_equal(a.labels, expected)
    assert {s[0] for s in a.segments} == set(ANOMALY_KINDS)
    assert np.abs(a.train).max() < 6  # the train split is anomaly-free and standardised


def test_encoder_is_shared_across_channels():
    model = StackVAE(StackVAEConfig(channels=5, window=16, z=3))
    x = torch.randn(7, 5, 16)
    perm = torch.tensor([3, 0, 4, 1, 2])
    mu, logvar = model.posterior(x)
    mu_p, logvar_p = model.posterior(x[:, perm])
    assert torch.allclose(mu_p, mu[:, perm], atol=1e-6) and torch.allclose(logvar_p, logvar[:, perm], atol=1e-6)
    assert torch.allclose(model.adjacency().sum(-1), torch.ones(5))


def test_trained_model_scores_point_anomalies_above_normal_steps():
    world = make_timeseries_world(6, 1500, seed=0)
    model = train_stackvae(world, window=16, steps=300, seed=0)
    scores = model.score(scoring_windows(world, 16)).numpy()
    assert len(scores) == len(world.test) and windows(world.train, 16).shape == (1500 - 15, 6 * 16)
    points = [start for kind, start, _, _ in world.segments if kind == "point"]
    normal = np.quantile(scores[world.labels == 0], 0.95)
    # measured: the weakest point anomaly scores 6.9× the normal steps' 95th percentile
    assert scores[points].min() > 3 * normal


def test_cli_train_and_score(tmp_path, capsys):
    model_dir, out = tmp_path / "model", tmp_path / "scored"
    assert main(["anomaly", "train", "--out", str(model_dir), "--channels", "4", "--length", "600", "--steps", "20",
                 "--quiet"]) == 0
    assert main(["anomaly", "score", str(model_dir), "--out", str(out)]) == 0
    record = json.loads((out / "anomaly.json").read_text())
    assert {"f1", "pa_f1", "auroc", "graph_auroc"} <= set(record) and record["world"]["channels"] == 4
    assert (out / "anomaly.png").stat().st_size > 0


def test_cli_bad_input_exits_2_and_writes_nothing(tmp_path, capsys):
    assert main(["anomaly", "train", "--out", str(tmp_path / "m"), "--channels", "2", "--steps", "5"]) == 2
    assert main(["anomaly", "score", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("aekit: error:") for line in err)
    assert not (tmp_path / "m").exists() and not (tmp_path / "o").exists()
