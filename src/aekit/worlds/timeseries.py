"""A seeded multivariate time series with a known channel graph and planted, labelled anomalies.

C channels share a few latent factors (sinusoids and smooth AR(1) processes) mixed in with per-channel loadings;
every channel also has a private smooth AR(1) driver, and channel j adds its graph neighbours' drivers (a sparse
symmetric adjacency, each channel linked to two or three others), so neighbours co-move beyond what the shared
factors explain. Each channel has a seasonal part (its own period from a short list), a slow trend and white
noise. Channels are standardised on the train split.

The train split is anomaly-free. The test split carries three kinds of anomaly, each labelled at every time step
it covers (labels are per time step, not per channel):

* point: a spike of 4–6 standard deviations on one or two channels at one time step;
* contextual: a segment whose seasonal part has its phase flipped, so values stay in the normal range but are
  wrong for the phase;
* collective: a segment where a channel's dynamics change (a fast oscillation of its usual amplitude replaces it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ..seeding import derive_seed

__all__ = ["ANOMALY_KINDS", "TimeSeriesWorld", "make_timeseries_world"]

ANOMALY_KINDS = ("point", "contextual", "collective")
PERIODS = (24, 40, 60, 100)  # seasonal periods the channels draw from


@dataclass
class TimeSeriesWorld:
    train: np.ndarray  # (T, C) float32, anomaly-free
    test: np.ndarray  # (T, C) float32, with anomalies
    labels: np.ndarray  # (T,) int64, 1 where the test step is anomalous
    kinds: np.ndarray  # (T,) int64: 0 normal, 1 + index into ANOMALY_KINDS
    adjacency: np.ndarray  # (C, C) 0/1 symmetric, zero diagonal: the true channel graph
    segments: list[tuple[str, int, int, list[int]]]  # (kind, start, stop, channels) of every planted anomaly
    seed: int

    @property
    def channels(self) -> int:
        return self.train.shape[1]


def _adjacency(c: int, rng: np.random.Generator) -> np.ndarray:
    """A ring over a random channel order (two neighbours each) plus c // 4 random chords."""
    order = rng.permutation(c)
    a = np.zeros((c, c), dtype=np.int64)
    for i in range(c):
        u, v = order[i], order[(i + 1) % c]
        a[u, v] = a[v, u] = 1
    for _ in range(c // 4):
        u, v = rng.choice(c, 2, replace=False)
        a[u, v] = a[v, u] = 1
    np.fill_diagonal(a, 0)
    return a


def _ar1(rng: np.random.Generator, n: int, t: int, phi: float = 0.98) -> np.ndarray:
    """(t, n) smooth AR(1) processes of unit stationary variance."""
    eps = rng.standard_normal((t, n)) * np.sqrt(1 - phi**2)
    out = np.empty((t, n))
    out[0] = rng.standard_normal(n)
    for i in range(1, t):
        out[i] = phi * out[i - 1] + eps[i]
    return out


def _series(rng: np.random.Generator, params: dict, t0: int, t: int, flip: np.ndarray | None = None) -> np.ndarray:
    """(t, C) raw values for time steps t0 … t0 + t − 1; `flip` (t, C) bool flips the seasonal phase there."""
    c = params["adjacency"].shape[0]
    time = np.arange(t0, t0 + t)[:, None]
    factors = np.concatenate([np.sin(2 * np.pi * time / params["factor_periods"] + params["factor_phases"]),
                              _ar1(rng, 2, t)], axis=1)
    private = _ar1(rng, c, t)
    phase = 2 * np.pi * time / params["periods"] + params["phases"]
    seasonal = params["amplitudes"] * np.sin(phase + (0.0 if flip is None else np.pi * flip))
    graph = private @ (0.7 * params["adjacency"])  # channel j adds its neighbours' private drivers
    trend = params["trends"] * time / 10000.0
    return factors @ params["loadings"] + private + graph + seasonal + trend + 0.15 * rng.standard_normal((t, c))


def make_timeseries_world(channels: int = 12, length: int = 6000, seed: int = 0) -> TimeSeriesWorld:
    """Train and test splits of `length` steps each over `channels` channels (seeded: equal arguments give equal
    worlds). The test split holds 12 point, 6 contextual and 6 collective anomalies per 6000 steps (at least one of
    each), about 8% of its steps."""
    if channels < 3:
        raise ConfigError(f"time-series world: channels must be ≥ 3 (got {channels})")
    if length < 500:
        raise ConfigError(f"time-series world: length must be ≥ 500 steps (got {length})")
    rng = np.random.default_rng(derive_seed("timeseries.world", seed))
    c = channels
    adjacency = _adjacency(c, rng)
    params = {
        "adjacency": adjacency.astype(float),
        "factor_periods": np.array([[75.0, 160.0]]), "factor_phases": rng.uniform(0, 2 * np.pi, (1, 2)),
        "loadings": rng.normal(0, 0.6, (4, c)) * (rng.random((4, c)) < 0.6),
        "periods": rng.choice(PERIODS, c)[None, :].astype(float), "phases": rng.uniform(0, 2 * np.pi, (1, c)),
        "amplitudes": rng.uniform(1.0, 2.0, (1, c)), "trends": rng.normal(0, 0.5, (1, c)),
    }
    train = _series(rng, params, 0, length)
    mean, std = train.mean(0), train.std(0)

    # plan the anomalies first (non-overlapping, away from the edges), then draw the test series with them
    kinds = np.zeros(length, dtype=np.int64)
    segments: list[tuple[str, int, int, list[int]]] = []
    per = length / 6000
    plan = [("collective", max(1, round(6 * per)), (40, 80)), ("contextual", max(1, round(6 * per)), (20, 40)),
            ("point", max(1, round(12 * per)), (1, 1))]
    for kind, count, (lo, hi) in plan:
        placed = 0
        while placed < count:
            width = int(rng.integers(lo, hi + 1))
            start = int(rng.integers(50, length - width - 50))
            if kinds[max(0, start - 20): start + width + 20].any():
                continue  # keep a gap so segments stay separate events
            chans = sorted(rng.choice(c, 1 if kind != "point" else int(rng.integers(1, 3)), replace=False).tolist())
            kinds[start: start + width] = 1 + ANOMALY_KINDS.index(kind)
            segments.append((kind, start, start + width, chans))
            placed += 1
    segments.sort(key=lambda s: s[1])
    flip = np.zeros((length, c), dtype=bool)
    for kind, start, stop, chans in segments:
        if kind == "contextual":
            flip[start:stop, chans] = True
    test = (_series(rng, params, length, length, flip) - mean) / std
    for kind, start, stop, chans in segments:
        if kind == "point":
            test[start, chans] += rng.choice([-1, 1], len(chans)) * rng.uniform(4, 6, len(chans))
        elif kind == "collective":
            steps = np.arange(stop - start)[:, None]
            test[start:stop, chans] = 1.2 * np.sin(2 * np.pi * steps / 6.0) + 0.1 * rng.standard_normal(
                (stop - start, len(chans)))
    return TimeSeriesWorld(train=((train - mean) / std).astype(np.float32), test=test.astype(np.float32),
                           labels=(kinds > 0).astype(np.int64), kinds=kinds, adjacency=adjacency,
                           segments=segments, seed=seed)
