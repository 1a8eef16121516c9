"""Criticality at initialisation, measured: per-layer signal and gradient sizes of an MLP on real data.

`layer_statistics` runs one batch through an MLP and records, for every nn.Linear l, the mean squared
preactivation E[z²] (over examples and units), the mean squared backward signal E[(∂L/∂z)²] and the Frobenius norm
of ∂L/∂W divided by the batch size, for the loss L = sum over examples and output units of the output. That loss
does not depend on the outputs' size, so the gradient measures how the backward pass itself grows or shrinks; at
criticality (χ_⊥ = 1) E[(∂L/∂z)²] is flat across layers.

`criticality_study` initialises depth-`depth`, width-`width` MLPs with `aekit.nn.init.critical_` at C_W × each
scale (1 is critical), over several seeds, on the standardised scikit-learn digits (1797 × 64), and compares
E[z²] with the infinite-width kernel recursion started from the measured first layer. The same seed draws the
same standard normals at every scale, so the curves differ only by the constants.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, DataError
from ..nn.init import ACTIVATIONS, critical_, critical_constants, kernel_map, mlp

__all__ = ["criticality_study", "digits", "kernel_recursion", "layer_statistics"]

TORCH_ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh, "gelu": torch.nn.functional.gelu,
                     "linear": lambda z: z}


def digits(n: int | None = None) -> torch.Tensor:
    """scikit-learn's bundled 8 × 8 digits (1797 × 64, float32), each pixel standardised to mean 0 and variance 1
    (the always-blank pixels stay 0); the first `n` rows when given."""
    from sklearn.datasets import load_digits

    x = load_digits().data.astype(np.float64)
    std = x.std(axis=0)
    x = (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)
    return torch.from_numpy(x[:n] if n else x).float()


def layer_statistics(model: nn.Module, x: torch.Tensor) -> dict[str, list[float]]:
    """Per nn.Linear of `model` (in forward order): "mean_sq_preactivation", E[z²] of its output over the batch and
    units; "grad_sq_preactivation", E[(∂L/∂z)²] over the batch and units; and "weight_grad_norm", ||∂L/∂W||_F / batch;
    for L = the sum of the model's outputs over examples and units."""
    if x.ndim != 2 or x.shape[0] == 0:
        raise DataError(f"input of shape {tuple(x.shape)}: give a non-empty (batch, features) matrix")
    if not torch.isfinite(x).all():
        raise DataError("input holds NaN or Inf; give finite values")
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ConfigError(f"{type(model).__name__} holds no nn.Linear; layer_statistics measures MLPs")
    outputs: dict[nn.Module, torch.Tensor] = {}

    def hook(module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        output.retain_grad()
        outputs[module] = output

    handles = [linear.register_forward_hook(hook) for linear in linears]
    try:
        model.zero_grad(set_to_none=True)
        out = model(x)
        out.sum().backward()
    finally:
        for handle in handles:
            handle.remove()

    def mean_sq(t: torch.Tensor | None) -> float:
        return float(t.detach().double().pow(2).mean()) if t is not None else math.nan

    stats = {
        "mean_sq_preactivation": [mean_sq(outputs.get(lin)) for lin in linears],
        "grad_sq_preactivation": [mean_sq(outputs[lin].grad if lin in outputs else None) for lin in linears],
        "weight_grad_norm": [float(lin.weight.grad.double().norm()) / x.shape[0] if lin.weight.grad is not None
                             else math.nan for lin in linears],
    }
    model.zero_grad(set_to_none=True)
    return stats


def kernel_recursion(activation: str, k1: float, depth: int, c_w_scale: float = 1.0) -> list[float]:
    """The infinite-width K^{(1)}, …, K^{(depth)} from K^{(1)} = `k1` at the critical constants of `activation`
    (C_W × `c_w_scale`); values past 1e30 become inf (the recursion has exploded)."""
    point = critical_constants(activation)
    fn = TORCH_ACTIVATIONS[activation]
    ks = [float(k1)]
    for _ in range(depth - 1):
        k = ks[-1]
        ks.append(math.inf if not k < 1e30 else kernel_map(fn, k, point.c_b, point.c_w * c_w_scale))
    return ks


def _finite(values: Sequence[float]) -> list[float | None]:
    """Non-finite values (an exploded recursion, an undefined K*) as None, so the record is strict JSON."""
    return [float(v) if math.isfinite(v) else None for v in values]


def _relative_deviation(curve: Sequence[float]) -> float:
    """max over layers of |E[z²]_l / E[z²]_1 - 1|."""
    first = curve[0]
    return float(max(abs(v / first - 1.0) for v in curve))


def criticality_study(activations: Sequence[str] = ACTIVATIONS, *, depth: int = 24, width: int = 256,
                      seeds: int = 3, scales: Sequence[float] = (0.8, 1.0, 1.25), x: torch.Tensor | None = None,
                      seed: int = 0) -> dict[str, Any]:
    """For each activation and C_W scale, E[z²] and weight-gradient norms per layer averaged over `seeds` networks
    (seeds seed, seed+1, …) on `x` (default: the standardised digits), with the kernel recursion's prediction.

    Per (activation, scale): "mean_sq_preactivation", "grad_sq_preactivation" and "weight_grad_norm" (seed means
    per layer, see `layer_statistics`), "grad_sq_ratio_first_last" (backward signal, layer 1 over the last),
    "ratio_last_first"
    (of the seed-mean E[z²]), "max_relative_deviation" (max_l |E[z²]_l / E[z²]_1 - 1|), "per_seed_ratio",
    "per_seed_std_ratio", "theory" (kernel recursion from the measured E[z²] of layer 1) and
    "max_deviation_from_theory". Finite width makes a single network's E[z²] wander (its log has a variance that
    grows like depth/width), so flatness needs the average over many seeds."""
    unknown = [a for a in activations if a not in ACTIVATIONS]
    if unknown or not activations:
        raise ConfigError(f"activations {', '.join(unknown) or '(none)'}: use some of {', '.join(ACTIVATIONS)}")
    if depth < 2 or width < 1 or seeds < 1:
        raise ConfigError(f"depth {depth}, width {width}, seeds {seeds}: need depth ≥ 2, width ≥ 1 and seeds ≥ 1")
    if any(not (math.isfinite(s) and s > 0) for s in scales):
        raise ConfigError(f"scales {list(scales)}: each must be a positive number (1 is critical)")
    x = digits() if x is None else x
    results: dict[str, Any] = {}
    for activation in activations:
        point = critical_constants(activation)
        runs: dict[str, Any] = {}
        model = mlp(x.shape[1], width, depth, activation)  # built once: critical_ redraws every parameter
        for scale in scales:
            z2, grads, wgrads = [], [], []
            for s in range(seeds):
                critical_(model, c_w_scale=scale, generator=torch.Generator().manual_seed(seed + s))
                stats = layer_statistics(model, x)
                z2.append(stats["mean_sq_preactivation"])
                grads.append(stats["grad_sq_preactivation"])
                wgrads.append(stats["weight_grad_norm"])
            with np.errstate(over="ignore", invalid="ignore"):
                z2_mean = np.mean(np.asarray(z2), axis=0)
                grad_mean = np.mean(np.asarray(grads), axis=0)
                wgrad_mean = np.mean(np.asarray(wgrads), axis=0)
            theory = kernel_recursion(activation, float(z2_mean[0]), depth, scale)
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                off_theory = float(np.nanmax(np.abs(np.asarray(z2_mean) / np.asarray(theory) - 1.0)))
            runs[f"{scale:g}"] = {
                "c_w_scale": scale,
                "c_w": point.c_w * scale,
                "c_b": point.c_b,
                "mean_sq_preactivation": _finite(z2_mean.tolist()),
                "grad_sq_preactivation": _finite(grad_mean.tolist()),
                "weight_grad_norm": _finite(wgrad_mean.tolist()),
                "ratio_last_first": _finite([z2_mean[-1] / z2_mean[0]])[0],
                "max_relative_deviation": _finite([_relative_deviation(z2_mean.tolist())])[0],
                "per_seed_ratio": _finite([r[-1] / r[0] for r in z2]),
                "per_seed_std_ratio": _finite([float(np.std([r[-1] / r[0] for r in z2]))])[0],
                "grad_sq_ratio_first_last": _finite([grad_mean[0] / grad_mean[-1]])[0],
                "theory": _finite(theory),
                "max_deviation_from_theory": _finite([off_theory])[0],
            }
        results[activation] = {"c_b": point.c_b, "c_w": point.c_w, "k_star": _finite([point.k_star])[0],
                               "universality": point.universality, "runs": runs}
    return {"depth": depth, "width": width, "seeds": seeds, "seed": seed, "scales": list(scales),
            "n_examples": int(x.shape[0]), "n_features": int(x.shape[1]),
            "loss": "sum of the outputs over examples and units", "activations": results}
