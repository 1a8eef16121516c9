"""Initialisation at criticality (Roberts, Yaida and Hanin, "The Principles of Deep Learning Theory", 2022).

With weights W ~ N(0, C_W / fan_in) and biases b ~ N(0, C_b), the mean squared preactivation of an MLP follows,
at infinite width, the single-input kernel recursion

    K^{(l+1)} = C_b + C_W <σ(z)²>_{K^{(l)}},        <f(z)>_K = E_{z ~ N(0, K)}[f(z)].

Two susceptibilities say how a perturbation of the kernel travels one layer:

    χ_∥(K) = dK^{(l+1)}/dK^{(l)} = C_W <σ(z)² (z² - K)>_K / (2K²)      (the size of the signal),
    χ_⊥(K) = C_W <σ'(z)²>_K                                            (the angle between two signals).

Criticality is a fixed point K* = C_b + C_W <σ²>_{K*} with χ_∥(K*) = χ_⊥(K*) = 1: neither the signal nor its
gradient grows or shrinks exponentially with depth. The activations fall into three classes:

- scale-invariant (σ(z) = a₊z for z > 0, a₋z for z < 0; ReLU, linear): every K is a fixed point and
  χ_∥ = χ_⊥ = C_W (a₊² + a₋²) / 2, so C_b = 0 and C_W = 2 / (a₊² + a₋²): (0, 2) for ReLU, (0, 1) for linear;
- a nonzero fixed point (GELU, SWISH): <σ σ''>_{K*} = 0 makes χ_∥ = χ_⊥ (Stein's lemma gives
  χ_∥ = C_W <σ'² + σσ''>), then C_W = 1 / <σ'²>_{K*} and C_b = K* - C_W <σ²>_{K*};
- K* = 0 (tanh): σ(0) = 0, C_b = 0, C_W = 1 / σ'(0)², valid when the fixed point attracts from above
  (a₁ = σ'''(0)/σ'(0) + ¾ (σ''(0)/σ'(0))² < 0). The kernel then decays as a power law, K^{(l)} ≈ 1/(-a₁ l),
  instead of exponentially: the best a K* = 0 activation can do.

Gaussian expectations use Gauss–Hermite quadrature (exact enough for smooth activations; kinked ones are only
handled exactly when they are scale-invariant).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError

__all__ = [
    "ACTIVATIONS",
    "Criticality",
    "chi_parallel",
    "chi_perpendicular",
    "critical_",
    "critical_constants",
    "critical_point",
    "gaussian_mean",
    "kernel_map",
    "mlp",
]

ACTIVATIONS = ("relu", "tanh", "gelu", "linear")
_QUADRATURE_NODES = 160
_GRID = np.linspace(-6.0, 6.0, 241)  # where scale invariance and σ(0) are checked
_STEP = 1e-3  # finite-difference step for the derivatives of a plain callable


@dataclass(frozen=True)
class Criticality:
    """Critical initialisation constants: bias variance `c_b`, weight variance `c_w` (times 1/fan_in), the fixed
    point `k_star` of the kernel recursion (nan for scale-invariant activations, where every K is one) and the
    universality class: "scale-invariant", "nonzero" or "zero"."""

    c_b: float
    c_w: float
    k_star: float
    universality: str


@cache
def _nodes() -> tuple[np.ndarray, np.ndarray]:
    """Probabilists' Gauss–Hermite nodes and weights normalised to a standard normal expectation."""
    x, w = np.polynomial.hermite_e.hermegauss(_QUADRATURE_NODES)
    return x, w / math.sqrt(2.0 * math.pi)


def _numpy_fn(fn: Callable) -> Callable[[np.ndarray], np.ndarray]:
    """Wrap `fn` so it maps float64 arrays to float64 arrays, whether it is written for numpy or for torch."""

    def call(z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=np.float64)
        try:
            out = fn(z)
        except (TypeError, AttributeError):
            out = None
        if not isinstance(out, np.ndarray | float | np.floating):
            with torch.no_grad():
                out = fn(torch.as_tensor(z, dtype=torch.float64)).numpy()
        return np.broadcast_to(np.asarray(out, dtype=np.float64), z.shape)

    return call


def _derivative(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """σ' by the five-point stencil: truncation error O(h⁴) ≈ 1e-12, well under the 1e-6 asked of χ."""
    h = _STEP
    return lambda z: (8.0 * (fn(z + h) - fn(z - h)) - (fn(z + 2 * h) - fn(z - 2 * h))) / (12.0 * h)


def gaussian_mean(fn: Callable[[np.ndarray], np.ndarray], k: float) -> float:
    """<fn(z)>_K = E[fn(z)] for z ~ N(0, K), by Gauss–Hermite quadrature."""
    x, w = _nodes()
    return float(np.dot(w, fn(math.sqrt(k) * x)))


def kernel_map(activation: Callable, k: float, c_b: float, c_w: float) -> float:
    """One step of the kernel recursion: C_b + C_W <σ(z)²>_K."""
    sigma = _numpy_fn(activation)
    return c_b + c_w * gaussian_mean(lambda z: sigma(z) ** 2, k)


def chi_parallel(activation: Callable, k: float, c_w: float) -> float:
    """χ_∥(K) = C_W <σ(z)² (z² - K)>_K / (2K²), the derivative of the kernel map (needs no σ')."""
    sigma = _numpy_fn(activation)
    return c_w * gaussian_mean(lambda z: sigma(z) ** 2 * (z * z - k), k) / (2.0 * k * k)


def chi_perpendicular(activation: Callable, k: float, c_w: float,
                      derivative: Callable | None = None) -> float:
    """χ_⊥(K) = C_W <σ'(z)²>_K; σ' by central differences unless `derivative` is given."""
    d1 = _numpy_fn(derivative) if derivative is not None else _derivative(_numpy_fn(activation))
    return c_w * gaussian_mean(lambda z: d1(z) ** 2, k)


def _scale_invariant_slopes(sigma: Callable[[np.ndarray], np.ndarray]) -> tuple[float, float] | None:
    """(a₊, a₋) when σ(z) = a₊z for z > 0 and a₋z for z < 0 on the test grid, else None."""
    values = sigma(_GRID)
    a_plus, a_minus = float(sigma(np.array([1.0]))[0]), -float(sigma(np.array([-1.0]))[0])
    expected = np.where(_GRID > 0, a_plus * _GRID, a_minus * _GRID)
    return (a_plus, a_minus) if np.allclose(values, expected, rtol=1e-9, atol=1e-12) else None


def critical_point(activation: Callable, derivative: Callable | None = None) -> Criticality:
    """The critical (C_b, C_W) of any activation `activation` (numpy or torch elementwise callable).

    Tries, in order: scale invariance; the smallest nonzero fixed point with <σσ''> = 0 and C_b ≥ 0 (found as
    χ_∥ = χ_⊥ on a log grid of K from 1e-3 to 1e3, refined by bisection-secant); the K* = 0 class. `derivative`
    (σ') replaces central differences in χ_⊥. Raises ConfigError when the activation has no critical point."""
    from scipy.optimize import brentq

    sigma = _numpy_fn(activation)
    slopes = _scale_invariant_slopes(sigma)
    if slopes is not None:
        a_plus, a_minus = slopes
        if a_plus**2 + a_minus**2 == 0:
            raise ConfigError("activation is zero everywhere; it has no critical initialisation")
        return Criticality(0.0, 2.0 / (a_plus**2 + a_minus**2), math.nan, "scale-invariant")

    def gap(k: float) -> float:  # χ_∥ - χ_⊥ per unit C_W; zero where <σσ''>_K = 0
        return chi_parallel(sigma, k, 1.0) - chi_perpendicular(sigma, k, 1.0, derivative)

    grid = np.geomspace(1e-3, 1e3, 121)
    gaps = [gap(float(k)) for k in grid]
    for lo, hi, g_lo, g_hi in zip(grid[:-1], grid[1:], gaps[:-1], gaps[1:], strict=True):
        if g_lo == 0.0 or g_lo * g_hi < 0:
            k_star = float(lo) if g_lo == 0.0 else brentq(gap, float(lo), float(hi), xtol=1e-14, rtol=1e-15)
            c_w = 1.0 / chi_perpendicular(sigma, k_star, 1.0, derivative)
            c_b = k_star - c_w * gaussian_mean(lambda z: sigma(z) ** 2, k_star)
            if c_b >= -1e-12:  # a negative bias variance is no initialisation; look further out
                return Criticality(max(c_b, 0.0), c_w, k_star, "nonzero")

    # K* = 0 class: σ(0) = 0 and σ'(0) ≠ 0, with K approaching 0 from above (a₁ < 0)
    h = 1e-2  # large enough for the third difference to stay clear of rounding; d2, d3 only need their sign
    s0, sp, sm, s2p, s2m = (float(sigma(np.array([z]))[0]) for z in (0.0, h, -h, 2 * h, -2 * h))
    d1 = float(_derivative(sigma)(np.array([0.0]))[0])
    d2 = (sp - 2 * s0 + sm) / (h * h)
    d3 = (s2p - 2 * sp + 2 * sm - s2m) / (2 * h**3)
    if abs(s0) < 1e-9 and abs(d1) > 1e-9 and d3 / d1 + 0.75 * (d2 / d1) ** 2 < 0:
        return Criticality(0.0, 1.0 / d1**2, 0.0, "zero")
    raise ConfigError("activation has no critical initialisation: no fixed point with χ_∥ = χ_⊥ = 1 and C_b ≥ 0 "
                      "for K in [1e-3, 1e3], and K* = 0 is not an attracting fixed point")


def _gelu(z: np.ndarray) -> np.ndarray:
    from scipy.special import ndtr

    return z * ndtr(z)


def _gelu_derivative(z: np.ndarray) -> np.ndarray:
    from scipy.special import ndtr

    return ndtr(z) + z * np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)


def _gelu_tanh(z: np.ndarray) -> np.ndarray:
    return 0.5 * z * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (z + 0.044715 * z**3)))


@cache
def critical_constants(activation: str) -> Criticality:
    """Critical constants of a named activation: "relu" (0, 2), "linear" (0, 1), "tanh" (0, 1) in closed form,
    "gelu" (C_b ≈ 0.17292, C_W ≈ 1.98306, K* ≈ 3.56155) and "gelu_tanh" (the tanh approximation) solved
    numerically."""
    if activation == "relu":
        return Criticality(0.0, 2.0, math.nan, "scale-invariant")
    if activation == "linear":
        return Criticality(0.0, 1.0, math.nan, "scale-invariant")
    if activation == "tanh":
        return Criticality(0.0, 1.0, 0.0, "zero")
    if activation == "gelu":
        return critical_point(_gelu, _gelu_derivative)
    if activation == "gelu_tanh":
        return critical_point(_gelu_tanh)
    raise ConfigError(f"activation {activation!r}: unknown; use one of {', '.join(ACTIVATIONS)} or gelu_tanh")


_TRANSPARENT = (nn.Identity, nn.Dropout, nn.Flatten)  # modules that leave the kernel recursion alone


def _activation_name(module: nn.Module) -> str | None:
    """The name of a supported activation module, None for a transparent one; ConfigError for anything else."""
    if isinstance(module, nn.ReLU):
        return "relu"
    if isinstance(module, nn.Tanh):
        return "tanh"
    if isinstance(module, nn.GELU):
        return "gelu_tanh" if module.approximate == "tanh" else "gelu"
    if isinstance(module, _TRANSPARENT):
        return None
    raise ConfigError(f"{type(module).__name__}: not supported by critical_; an MLP of nn.Linear with nn.ReLU, "
                      "nn.Tanh, nn.GELU or no activation between them is")


def _linear_activations(model: nn.Module) -> list[tuple[nn.Linear, str]]:
    """(Linear, the activation applied to its input) for every nn.Linear, in forward (registration) order."""
    leaves = [m for m in model.modules() if not list(m.children())]
    linears: list[nn.Linear] = []
    after: list[str] = []  # after[i]: the activation following linears[i] ("linear" when there is none)
    for module in leaves:
        if isinstance(module, nn.Linear):
            linears.append(module)
            after.append("linear")
            continue
        name = _activation_name(module)
        if name is not None:
            if not linears:
                raise ConfigError(f"{type(module).__name__} comes before the first nn.Linear; critical_ expects "
                                  "an MLP that starts with nn.Linear")
            if after[-1] != "linear":
                raise ConfigError(f"two activations follow one nn.Linear ({after[-1]}, {name}); critical_ "
                                  "expects one activation between consecutive nn.Linear layers")
            after[-1] = name
    if not linears:
        raise ConfigError(f"{type(model).__name__} holds no nn.Linear; critical_ initialises MLPs")
    # Layer l+1's weights multiply σ(z^{(l)}), so they take the constants of the activation after layer l. The
    # first layer sees the data itself and, as in the book, takes the same constants as the layers after it.
    return [(linear, after[max(i - 1, 0)]) for i, linear in enumerate(linears)]


def critical_(model: nn.Module, *, c_w_scale: float = 1.0, c_b_shift: float = 0.0,
              generator: torch.Generator | None = None) -> nn.Module:
    """Initialise every nn.Linear of an MLP in place at criticality and return the model.

    W ~ N(0, C_W / fan_in) and b ~ N(0, C_b), with (C_b, C_W) those of the activation applied to the layer's
    input (the first layer takes those of the activation after it). Draws from torch's global RNG unless
    `generator` is given. `c_w_scale` and `c_b_shift` move off criticality on purpose (C_W × scale, C_b + shift),
    for comparisons."""
    if not (math.isfinite(c_w_scale) and c_w_scale > 0):
        raise ConfigError(f"c_w_scale {c_w_scale}: must be a positive number (1 is critical)")
    layers = _linear_activations(model)
    with torch.no_grad():
        for linear, activation in layers:
            point = critical_constants(activation)
            c_w, c_b = point.c_w * c_w_scale, point.c_b + c_b_shift
            if c_b < 0:
                raise ConfigError(f"c_b_shift {c_b_shift}: makes the bias variance of a {activation} layer "
                                  f"negative ({c_b:.3g}); use a shift ≥ {-point.c_b:.3g}")
            linear.weight.normal_(0.0, math.sqrt(c_w / linear.in_features), generator=generator)
            if linear.bias is not None:
                if c_b > 0:
                    linear.bias.normal_(0.0, math.sqrt(c_b), generator=generator)
                else:
                    linear.bias.zero_()
    return model


def mlp(d_in: int, width: int, depth: int, activation: str) -> nn.Sequential:
    """`depth` nn.Linear layers (d_in → width, then width → width) with `activation` between them (none after the
    last), left at torch's default initialisation; activation one of relu, tanh, gelu, linear."""
    if activation not in ACTIVATIONS:
        raise ConfigError(f"activation {activation!r}: unknown; use one of {', '.join(ACTIVATIONS)}")
    if min(d_in, width, depth) < 1:
        raise ConfigError(f"d_in {d_in}, width {width}, depth {depth}: each must be at least 1")
    make = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "linear": nn.Identity}[activation]
    layers: list[nn.Module] = []
    for i in range(depth):
        layers.append(nn.Linear(d_in if i == 0 else width, width))
        if i < depth - 1:
            layers.append(make())
    return nn.Sequential(*layers)
