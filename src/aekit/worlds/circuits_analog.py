"""A seeded world of small analogue signal chains with exactly computed specifications (gain and bandwidth).

A circuit is a cascade of at most `MAX_STAGES` stages between an input and an output node, drawn from a small
component vocabulary. Active stages are a unity-gain buffer and voltage amplifiers of gain 2, 5 and 10 built on an
op-amp of gain-bandwidth product `GBW` (a non-inverting stage of gain g has one pole at GBW / g; the buffer's pole
sits at `BUFFER_POLE_HZ`); passive stages are a resistive divider of gain ½ and first-order RC low-pass sections
with poles at 10 kHz, 30 kHz, 100 kHz and 300 kHz. The encoding is a token sequence of fixed length
`SEQUENCE_LENGTH` — BOS, the stages from input to output, EOS, then PAD — whose graph is the path
in → stage 1 → … → stage n → out.

Validity (the truth `is_valid` checks):

* well formed: BOS first, then 1 to `MAX_STAGES` stage tokens, one EOS, only PAD after it (a PAD, BOS or EOS
  among the stages would cut the path from input to output);
* the first and the last stage are active: a passive section must neither load the source nor drive the load;
* no two passive stages are adjacent: each passive section is driven by and feeds an active stage, the condition
  under which the stages do not load one another and the cascade's transfer function is the product of the
  stages' (the model below).

Specifications of a valid circuit follow from that product of first-order stages H(f) = Π_i g_i / (1 + j f/p_i):
the low-frequency gain is Π_i g_i and the −3 dB bandwidth is the f solving Σ_i log(1 + (f/p_i)²) = log 2, found
by bisection to float64 precision (it lies between p_min·√(2^(1/n) − 1) and p_min). Many circuits share a
specification (the stages commute), so the map from specification to circuit is one-to-many, as in CktGen's
benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ..seeding import derive_seed

__all__ = ["BOS", "EOS", "GBW", "MAX_STAGES", "PAD", "SEQUENCE_LENGTH", "STAGES", "VOCAB", "CircuitWorld", "Stage",
           "circuit_text", "encode_circuit", "is_valid", "make_circuit_world", "sample_circuits",
           "spec_features", "specifications", "stage_names"]

GBW = 20e6  # op-amp gain-bandwidth product (Hz) of the amplifier stages
BUFFER_POLE_HZ = 50e6
MAX_STAGES = 6
SEQUENCE_LENGTH = MAX_STAGES + 2  # BOS + stages + EOS


@dataclass(frozen=True)
class Stage:
    name: str
    gain: float
    pole_hz: float  # inf: no pole
    active: bool


STAGES = (
    Stage("BUF", 1.0, BUFFER_POLE_HZ, True),
    Stage("AMP2", 2.0, GBW / 2, True),
    Stage("AMP5", 5.0, GBW / 5, True),
    Stage("AMP10", 10.0, GBW / 10, True),
    Stage("DIV2", 0.5, float("inf"), False),
    Stage("RC10k", 1.0, 10e3, False),
    Stage("RC30k", 1.0, 30e3, False),
    Stage("RC100k", 1.0, 100e3, False),
    Stage("RC300k", 1.0, 300e3, False),
)
PAD, BOS, EOS = 0, 1, 2
VOCAB = ("PAD", "BOS", "EOS", *(s.name for s in STAGES))
FIRST_STAGE = 3  # token of STAGES[0]
_GAIN = np.array([np.nan] * FIRST_STAGE + [s.gain for s in STAGES])
_POLE = np.array([np.nan] * FIRST_STAGE + [s.pole_hz for s in STAGES])
_ACTIVE = np.array([False] * FIRST_STAGE + [s.active for s in STAGES])
_PASSIVE = np.array([False] * FIRST_STAGE + [not s.active for s in STAGES])


def encode_circuit(names: list[str] | tuple[str, ...]) -> np.ndarray:
    """The (SEQUENCE_LENGTH,) token sequence of a cascade given by stage names, e.g. ["AMP10", "RC30k", "BUF"]."""
    if not 1 <= len(names) <= MAX_STAGES:
        raise ConfigError(f"circuits: a cascade has 1 to {MAX_STAGES} stages (got {len(names)})")
    unknown = [n for n in names if n not in VOCAB[FIRST_STAGE:]]
    if unknown:
        raise ConfigError(f"circuits: unknown stage {unknown[0]!r}; choose from {', '.join(VOCAB[FIRST_STAGE:])}")
    tokens = np.full(SEQUENCE_LENGTH, PAD, dtype=np.int64)
    tokens[0] = BOS
    tokens[1 : 1 + len(names)] = [VOCAB.index(n) for n in names]
    tokens[1 + len(names)] = EOS
    return tokens


def _as_batch(tokens: np.ndarray) -> np.ndarray:
    t = np.asarray(tokens)
    t = t[None] if t.ndim == 1 else t
    if t.ndim != 2 or t.shape[1] != SEQUENCE_LENGTH:
        raise ConfigError(f"circuits: token sequences must have shape (n, {SEQUENCE_LENGTH}); got {t.shape}")
    return t.astype(np.int64)


def is_valid(tokens: np.ndarray) -> np.ndarray:
    """(n,) bool: which (n, SEQUENCE_LENGTH) token sequences are valid circuits under the rules of this module."""
    t = _as_batch(tokens)
    in_vocab = (t >= 0) & (t < len(VOCAB))
    t = np.where(in_vocab, t, PAD)
    is_stage = t >= FIRST_STAGE
    n = is_stage[:, 1:].cumprod(1).sum(1)  # stages in an unbroken run right after BOS
    rows = np.arange(len(t))
    eos_at = np.minimum(n + 1, SEQUENCE_LENGTH - 1)
    after = np.arange(SEQUENCE_LENGTH)[None] > (n + 1)[:, None]
    ok = in_vocab.all(1) & (t[:, 0] == BOS) & (n >= 1) & (n <= MAX_STAGES)
    ok &= (t[rows, eos_at] == EOS) & ((t == PAD) | ~after).all(1)
    ok &= _ACTIVE[t[:, 1]] & _ACTIVE[t[rows, np.maximum(n, 1)]]
    stage_pos = np.arange(SEQUENCE_LENGTH)[None] <= n[:, None]
    passive = _PASSIVE[t] & stage_pos
    ok &= ~(passive[:, 1:] & passive[:, :-1]).any(1)
    return ok


def specifications(tokens: np.ndarray) -> np.ndarray:
    """(n, 2) float64 [low-frequency gain (V/V), −3 dB bandwidth (Hz)] of valid circuits; NaN rows for invalid ones."""
    t = _as_batch(tokens)
    valid = is_valid(t)
    out = np.full((len(t), 2), np.nan)
    if not valid.any():
        return out
    v = t[valid]
    stage = v >= FIRST_STAGE  # of a valid sequence: exactly positions 1..n
    gains = np.where(stage, _GAIN[v], 1.0)
    poles = np.where(stage, _POLE[v], np.inf)
    n_poles = np.isfinite(poles).sum(1)  # ≥ 1: the first stage is active, and every active stage has a pole
    p_min = poles.min(1)
    lo = np.log(p_min * np.sqrt(2.0 ** (1.0 / n_poles) - 1.0))
    hi = np.log(p_min)
    for _ in range(100):  # bisection in log f; the attenuation Σ log(1 + (f/p)²) grows with f
        mid = 0.5 * (lo + hi)
        loss = np.log1p((np.exp(mid)[:, None] / poles) ** 2).sum(1)
        above = loss > np.log(2.0)
        hi, lo = np.where(above, mid, hi), np.where(above, lo, mid)
    out[valid, 0] = gains.prod(1)
    out[valid, 1] = np.exp(0.5 * (lo + hi))
    return out


def spec_features(specs: np.ndarray) -> np.ndarray:
    """(n, 2) float32 model inputs of (n, 2) [gain, bandwidth] specifications: log10 gain, log10(bandwidth / 100 kHz);
    fixed, data-independent scalings, so a target specification means the same to every model."""
    s = np.asarray(specs, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] != 2 or not np.isfinite(s).all() or (s <= 0).any():
        raise ConfigError(f"circuits: specifications must be (n, 2) positive finite [gain, bandwidth]; got shape "
                          f"{s.shape}")
    return np.stack([np.log10(s[:, 0]), np.log10(s[:, 1] / 1e5)], 1).astype(np.float32)


def stage_names(tokens: np.ndarray) -> list[str]:
    """The token names of one sequence up to its first EOS (or all of it), BOS and PAD left out."""
    names = []
    for tok in np.asarray(tokens).tolist():
        if tok == EOS:
            break
        if tok not in (BOS, PAD):
            names.append(VOCAB[tok] if 0 <= tok < len(VOCAB) else f"?{tok}")
    return names


def circuit_text(tokens: np.ndarray) -> str:
    """One line: "in → AMP10 → RC30k → BUF → out" (the path graph of the cascade)."""
    return " → ".join(["in", *stage_names(tokens), "out"])


def sample_circuits(n: int, seed: int) -> np.ndarray:
    """(n, SEQUENCE_LENGTH) valid circuits, possibly repeated: a stage count uniform in 1..MAX_STAGES, then a
    sequence uniform among the valid ones of that length (rejection sampling from uniform stage tokens)."""
    rng = np.random.default_rng(derive_seed("circuits-sample", seed))
    lengths = rng.integers(1, MAX_STAGES + 1, n)
    out = np.empty((n, SEQUENCE_LENGTH), dtype=np.int64)
    for length in range(1, MAX_STAGES + 1):
        rows = np.flatnonzero(lengths == length)
        if not len(rows):
            continue
        kept: list[np.ndarray] = []
        have = 0
        while have < len(rows):
            cand = np.full((4 * len(rows) + 64, SEQUENCE_LENGTH), PAD, dtype=np.int64)
            cand[:, 0] = BOS
            cand[:, 1 : 1 + length] = rng.integers(FIRST_STAGE, len(VOCAB), (len(cand), length))
            cand[:, 1 + length] = EOS
            good = cand[is_valid(cand)]
            kept.append(good)
            have += len(good)
        out[rows] = np.concatenate(kept)[: len(rows)]
    return out


def _distinct(pool: np.ndarray, n: int, exclude: set[bytes], where: str) -> np.ndarray:
    seen, rows = set(exclude), []
    for row in pool:
        key = row.tobytes()
        if key not in seen:
            seen.add(key)
            rows.append(row)
            if len(rows) == n:
                return np.stack(rows)
    raise ConfigError(f"circuits: could not draw {n} distinct {where} circuits; ask for fewer")


@dataclass
class CircuitWorld:
    train: np.ndarray  # (n_train, SEQUENCE_LENGTH) int64 distinct valid circuits
    test: np.ndarray  # (n_test, SEQUENCE_LENGTH) int64 distinct valid circuits, none in train
    train_specs: np.ndarray  # (n_train, 2) float64 [gain, bandwidth Hz]
    test_specs: np.ndarray
    seed: int

    def train_keys(self) -> set[bytes]:
        """The training circuits as hashable keys (novelty is membership in this set)."""
        return {row.tobytes() for row in self.train}


def make_circuit_world(n_train: int = 4000, n_test: int = 200, seed: int = 0) -> CircuitWorld:
    """Distinct training circuits and distinct held-out circuits (whose specifications are the generation targets)."""
    if n_train < 1 or n_test < 1:
        raise ConfigError(f"circuits: n_train and n_test must be ≥ 1 (got {n_train}, {n_test})")
    pool = sample_circuits(4 * (n_train + n_test), seed)
    train = _distinct(pool, n_train, set(), "training")
    test_pool = sample_circuits(20 * n_test, derive_seed("circuits-test", seed))
    test = _distinct(test_pool, n_test, {row.tobytes() for row in train}, "held-out")
    return CircuitWorld(train, test, specifications(train), specifications(test), seed)
