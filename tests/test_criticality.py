"""Criticality at initialisation: the fixed-point conditions hold at the returned constants, `critical_` draws the
right variances, a deep ReLU MLP keeps E[z²] flat at criticality and not off it, and `aekit criticality` writes its
files (a mistake is one line, exit 2, nothing written)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy.special import ndtr
from torch import nn

from aekit.analysis.criticality import criticality_study, digits, kernel_recursion, layer_statistics
from aekit.cli import main
from aekit.errors import ConfigError
from aekit.nn.init import critical_, critical_constants, critical_point, mlp

# the quadrature below is independent of aekit.nn.init: more nodes, analytic derivatives, χ_∥ from σ' and σ''
NODES, WEIGHTS = np.polynomial.hermite_e.hermegauss(240)
WEIGHTS = WEIGHTS / math.sqrt(2 * math.pi)
PHI = lambda z: np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)  # noqa: E731
SMOOTH = {  # σ, σ', σ''
    "tanh": (np.tanh, lambda z: 1 - np.tanh(z) ** 2, lambda z: -2 * np.tanh(z) * (1 - np.tanh(z) ** 2)),
    "gelu": (lambda z: z * ndtr(z), lambda z: ndtr(z) + z * PHI(z), lambda z: PHI(z) * (2 - z * z)),
}


def _mean(fn, k):
    return float(np.dot(WEIGHTS, fn(math.sqrt(k) * NODES)))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize(("name", "c_b", "c_w"), [("relu", 0.0, 2.0), ("linear", 0.0, 1.0), ("tanh", 0.0, 1.0)])
def test_closed_form_constants_make_both_susceptibilities_one(name, c_b, c_w):
    point = critical_constants(name)
    assert (point.c_b, point.c_w) == (c_b, c_w)
    if name == "tanh":  # K* = 0: χ_∥(0) = χ_⊥(0) = C_W σ'(0)², and K = 0 maps to C_b
        assert point.k_star == 0.0 and abs(point.c_w * SMOOTH["tanh"][1](np.array(0.0)) ** 2 - 1) < 1e-12
    else:  # σ = a₊z (z > 0), a₋z (z < 0): χ_∥ = χ_⊥ = C_W (a₊² + a₋²)/2 at every K
        a_plus, a_minus = (1.0, 0.0) if name == "relu" else (1.0, 1.0)
        assert abs(point.c_w * (a_plus**2 + a_minus**2) / 2 - 1) < 1e-12


def test_gelu_constants_are_a_critical_fixed_point_and_match_the_book():
    point = critical_constants("gelu")
    sigma, d1, d2 = SMOOTH["gelu"]
    k = point.k_star
    assert abs(point.c_b + point.c_w * _mean(lambda z: sigma(z) ** 2, k) - k) < 1e-6  # fixed point
    assert abs(point.c_w * _mean(lambda z: d1(z) ** 2 + sigma(z) * d2(z), k) - 1) < 1e-6  # χ_∥ (Stein form)
    assert abs(point.c_w * _mean(lambda z: d1(z) ** 2, k) - 1) < 1e-6  # χ_⊥
    # Roberts, Yaida and Hanin give C_b ≈ 0.17, C_W ≈ 1.98 for GELU
    assert abs(point.c_b - 0.17292) < 1e-4 and abs(point.c_w - 1.98306) < 1e-4 and abs(k - 3.56155) < 1e-4


def test_the_general_solver_finds_the_same_points_from_plain_callables():
    assert critical_point(torch.relu).c_w == 2.0
    assert critical_point(lambda z: z).c_w == 1.0
    assert critical_point(lambda z: np.where(z > 0, z, 0.5 * z)).c_w == pytest.approx(2 / 1.25)  # leaky ReLU
    tanh = critical_point(np.tanh)
    assert tanh.universality == "zero" and abs(tanh.c_w - 1) < 1e-6
    gelu, exact = critical_point(nn.GELU()), critical_constants("gelu")  # torch module, numeric σ'
    assert abs(gelu.c_w - exact.c_w) < 1e-6 and abs(gelu.c_b - exact.c_b) < 1e-6
    swish = critical_point(lambda z: z / (1 + np.exp(-np.clip(z, -50, 50))))  # the book: K* ≈ 14.3
    assert swish.c_w == pytest.approx(1.988, abs=1e-3) and swish.k_star == pytest.approx(14.32, abs=0.01)
    with pytest.raises(ConfigError, match="no critical initialisation"):
        critical_point(torch.sigmoid)  # σ(0) ≠ 0 and no nonzero fixed point


def test_critical_init_draws_the_critical_variances():
    torch.manual_seed(0)
    model = critical_(nn.Sequential(nn.Linear(512, 1024), nn.GELU(), nn.Linear(1024, 512), nn.ReLU(),
                                    nn.Linear(512, 8)))
    gelu = critical_constants("gelu")
    first, second, third = (m for m in model if isinstance(m, nn.Linear))
    # the first layer takes the constants of the activation after it; later ones those of the one before them
    assert float(first.weight.detach().var() * 512) == pytest.approx(gelu.c_w, rel=0.02)
    assert float(first.bias.detach().var()) == pytest.approx(gelu.c_b, rel=0.15)  # 1024 draws
    assert float(second.weight.detach().var() * 1024) == pytest.approx(gelu.c_w, rel=0.02)
    assert float(third.weight.detach().var() * 512) == pytest.approx(2.0, rel=0.03)
    assert float(third.bias.detach().abs().max()) == 0.0
    with pytest.raises(ConfigError, match="Sigmoid"):
        critical_(nn.Sequential(nn.Linear(4, 4), nn.Sigmoid(), nn.Linear(4, 4)))


def test_deep_relu_mlp_is_flat_at_criticality_and_not_off_it():
    x = digits(16)
    depth, width = 24, 256
    # one network's E[z²] wanders (the std of last/first is ≈ 0.65 at depth/width = 24/256), so the critical
    # average needs many seeds: 200 give a standard error of ≈ 0.046
    flat = criticality_study(["relu"], depth=depth, width=width, seeds=200, scales=(1.0,), x=x)
    run = flat["activations"]["relu"]["runs"]["1"]
    assert abs(run["ratio_last_first"] - 1) < 0.05
    assert 0.5 < run["grad_sq_ratio_first_last"] < 2
    off = criticality_study(["relu"], depth=depth, width=width, seeds=3, scales=(0.8, 1.25), x=x)
    assert off["activations"]["relu"]["runs"]["0.8"]["ratio_last_first"] < 0.5
    assert off["activations"]["relu"]["runs"]["1.25"]["ratio_last_first"] > 2
    # the infinite-width recursion agrees: flat at C_W = 2, 0.8²³ and 1.25²³ off it
    assert kernel_recursion("relu", 1.0, depth)[-1] == pytest.approx(1.0, rel=1e-9)
    assert kernel_recursion("relu", 1.0, depth, 1.25)[-1] == pytest.approx(1.25**23, rel=1e-9)


def test_layer_statistics_measures_every_linear_layer():
    torch.manual_seed(0)
    model = critical_(mlp(64, 32, 3, "linear"))
    stats = layer_statistics(model, digits(50))
    assert [len(v) for v in stats.values()] == [3, 3, 3]
    assert stats["grad_sq_preactivation"][-1] == pytest.approx(1.0)  # ∂(sum of outputs)/∂z = 1 at the output
    with pytest.raises(ConfigError):
        layer_statistics(nn.Sequential(nn.ReLU()), digits(4))


def test_cli_writes_json_png_and_a_table(tmp_path, capsys):
    out = tmp_path / "crit"
    assert main(["criticality", "--activations", "relu,gelu", "--depth", "3", "--width", "8", "--seeds", "2",
                 "--out", str(out)]) == 0
    record = json.loads((out / "criticality.json").read_text())
    assert set(record["activations"]) == {"relu", "gelu"} and record["depth"] == 3
    assert len(record["activations"]["gelu"]["runs"]["1"]["mean_sq_preactivation"]) == 3
    assert (out / "criticality.png").read_bytes()[:4] == b"\x89PNG"
    printed = capsys.readouterr().out
    assert "gelu" in printed and "0.17292" in printed and "criticality.png" in printed


@pytest.mark.parametrize("argv", [["--activations", "relu,swish"], ["--depth", "1"]])
def test_cli_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, argv):
    out = tmp_path / "crit"
    assert main(["criticality", *argv, "--width", "4", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("aekit: error:") and "\n" not in err
    assert not out.exists()
