"""A synthetic feature world: activations are sparse non-negative mixtures of known unit directions.

This is the ground truth the SAE tests are scored against: which directions exist (`directions`), how often
each fires (`probabilities`), and for every sample which features fired with what magnitude.

Beyond the default world (independent features, log-uniform firing probabilities) the config can ask for the
harder settings SAE papers compare architectures on:

- `probability_law="zipf"`: p_i ∝ 1 / rank^zipf_exponent (feature i has rank i + 1), a heavy-tailed spectrum;
- `correlation=ρ`: firings correlated through a Gaussian copula, one shared latent factor per block of
  `correlation_block` consecutive features; every marginal firing probability is kept exactly;
- `n_parents > 0`: a feature hierarchy (feature absorption, Matryoshka SAEs): each parent has
  `children_per_parent` children whose directions lie at cosine `child_parent_cosine` to the parent's and which
  fire, with probability `child_probability`, only when their parent fires; the parent stays active too.
  `exclusive_children=True` lets at most one child fire with its parent (each with `child_probability`), the
  toy setting of the absorption and Matryoshka papers (Chanin et al. 2024; Nabeshima 2024; Bussmann et al. 2025);
- `orthogonal=True`: orthonormal directions (needs n_features ≤ d), the papers' toy worlds without superposition.

With these options at their defaults the world is bit-for-bit the original one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..config_base import ConfigBase
from ..errors import ConfigError
from ..seeding import derive_seed

PROBABILITY_LAWS = ("loguniform", "zipf")
CHUNK_ELEMENTS = 2**25  # feature slots per sampling chunk (128 MiB per float tensor): bounds memory for any n


@dataclass
class FeatureWorldConfig(ConfigBase):
    section = "world"

    d: int = 64
    n_features: int = 512  # every feature, hierarchy children included; superposition ratio = n_features / d
    mean_active: float = 5.0  # expected number of features firing per sample (see FeatureWorld on clamping)
    probability_spread: float = 10.0  # loguniform law: max / min firing probability
    magnitude_mean: float = 1.0
    magnitude_std: float = 0.25
    noise_std: float = 0.01
    seed: int = 0
    probability_law: str = "loguniform"  # or "zipf"
    zipf_exponent: float = 1.0  # zipf law: p_i ∝ 1 / (i + 1)^zipf_exponent
    correlation: float = 0.0  # ρ of the Gaussian copula within a block of features; 0 = independent firing
    correlation_block: int = 8  # consecutive features sharing one latent factor
    n_parents: int = 0  # hierarchy: features 0..n_parents-1 are parents; 0 = no hierarchy
    children_per_parent: int = 4
    child_probability: float = 0.5  # P(child fires | parent fires)
    child_parent_cosine: float = 0.5  # cosine between a child's direction and its parent's
    exclusive_children: bool = False  # at most one child fires with its parent (needs per · child_probability ≤ 1)
    orthogonal: bool = False  # orthonormal directions instead of random unit ones (needs n_features ≤ d)
    unit_norm: bool = False  # rescale every sample to norm 1, like normalised LM activations (firings unchanged)

    @property
    def n_children(self) -> int:
        return self.n_parents * self.children_per_parent

    @property
    def n_roots(self) -> int:
        """Features that fire on their own (parents and independent features); children are the rest."""
        return self.n_features - self.n_children

    def validate(self) -> None:
        self._require(self.d >= 1, "d", "must be ≥ 1")
        self._require(self.n_features >= 1, "n_features", "must be ≥ 1")
        self._require(0 < self.mean_active <= self.n_features, "mean_active", "must be in (0, n_features]")
        self._require(self.probability_spread >= 1, "probability_spread", "must be ≥ 1")
        self._require(self.magnitude_std >= 0 and self.noise_std >= 0, "noise_std", "std must be ≥ 0")
        self._require(self.probability_law in PROBABILITY_LAWS, "probability_law",
                      f"must be one of {', '.join(map(repr, PROBABILITY_LAWS))}")
        self._require(0 <= self.zipf_exponent < math.inf, "zipf_exponent", "must be a finite number ≥ 0")
        self._require(0 <= self.correlation <= 1, "correlation", "must be in [0, 1]")
        self._require(self.correlation_block >= 1, "correlation_block", "must be ≥ 1")
        self._require(self.n_parents >= 0, "n_parents", "must be ≥ 0 (0 turns the hierarchy off)")
        if self.n_parents > 0:
            self._require(self.children_per_parent >= 1, "children_per_parent", "must be ≥ 1")
            self._require(self.n_parents * (1 + self.children_per_parent) <= self.n_features, "n_parents",
                          f"n_parents · (1 + children_per_parent) must be ≤ n_features = {self.n_features}")
            self._require(0 < self.child_probability <= 1, "child_probability", "must be in (0, 1]")
            self._require(0 <= self.child_parent_cosine <= 1, "child_parent_cosine", "must be in [0, 1]")
            self._require(self.d >= 2, "d", "must be ≥ 2 for a hierarchy (a child needs a direction of its own)")
            self._require(not self.exclusive_children or self.children_per_parent * self.child_probability <= 1,
                          "child_probability", "times children_per_parent must be ≤ 1 with exclusive_children "
                          "(the children of one parent share one draw)")
        self._require(not self.orthogonal or self.n_features <= self.d, "orthogonal",
                      f"needs n_features ≤ d = {self.d} (got {self.n_features}); turn it off for superposition")


@dataclass
class FeatureSample:
    x: Tensor  # (n, d) activations
    magnitudes: Tensor  # (n, n_features) true feature magnitudes, 0 where a feature is off

    @property
    def active(self) -> Tensor:
        return self.magnitudes > 0


class FeatureWorld:
    """Seeded generator of activations with known features.

    Attributes: `directions` (n_features, d) unit rows; `probabilities` (n_features,) marginal firing
    probability of each feature (a child's is its parent's times `child_probability`); `parent_ids`,
    `child_ids` and `child_parent` (the parent of each child) index the hierarchy (empty without one);
    `block_ids` (n_features,) the copula block that drives each feature's firing (a child: its parent's).

    Firing probabilities follow the configured law and are rescaled so that the expected number of active
    features (children included) is `mean_active`, then clamped at 1: a feature the rescaling would push above 1
    always fires, and the expected count `expected_l0` is then below `mean_active` (a steep Zipf law or a
    `mean_active` close to the number of features does this).
    """

    def __init__(self, config: FeatureWorldConfig | None = None, **overrides):
        config = config or FeatureWorldConfig(**overrides)
        config.validate()
        self.config = config
        n_roots, per = config.n_roots, config.children_per_parent
        g = torch.Generator().manual_seed(derive_seed("feature-world", config.seed))
        directions = torch.randn(config.n_features, config.d, generator=g)
        if config.orthogonal:  # orthonormal rows: Q of the QR factorisation of the random columns
            directions = torch.linalg.qr(directions.T.double()).Q.T.float().contiguous()
        directions = directions / directions.norm(dim=1, keepdim=True)
        self.parent_ids = torch.arange(config.n_parents)
        self.child_ids = torch.arange(n_roots, config.n_features)
        self.child_parent = self.parent_ids.repeat_interleave(per)
        if config.n_children:
            directions[self.child_ids] = _tilt_towards(
                directions[self.child_ids], directions[self.child_parent], config.child_parent_cosine)
        self.directions = directions

        raw = self._raw_probabilities(g)
        if config.n_children:  # a parent's firing also brings per · child_probability children on average
            weight = torch.ones(n_roots)
            weight[self.parent_ids] += per * config.child_probability
            root_p = (raw * config.mean_active / (raw * weight).sum()).clamp(max=1.0)
        else:
            root_p = (raw * config.mean_active / raw.sum()).clamp(max=1.0)
        self.probabilities = torch.cat([root_p, root_p[self.child_parent] * config.child_probability])
        # copula: feature i fires when z_i < Φ⁻¹(p_i), z ~ N(0, (1-ρ)I + ρ·blocks); P(fire) = p_i for every ρ
        self._thresholds = torch.special.ndtri(root_p.double()).float()
        root_blocks = torch.arange(n_roots) // config.correlation_block
        self._n_blocks = -(-n_roots // config.correlation_block)
        self.block_ids = torch.cat([root_blocks, root_blocks[self.child_parent]])

    @classmethod
    def with_superposition(cls, ratio: float, d: int = 64, l0: float = 5.0, **overrides) -> FeatureWorld:
        """A world of round(ratio · d) features in d dimensions, `l0` of them active per sample on average.

        Other config settings (seed, probability_law, correlation, n_parents, ...) pass through `overrides`.
        """
        if not (isinstance(ratio, int | float) and 0 < ratio < math.inf):
            raise ConfigError(f"world.ratio: superposition ratio n_features / d must be a number > 0 (got {ratio!r})")
        clash = sorted({"d", "n_features", "mean_active"} & overrides.keys())
        if clash:
            raise ConfigError(f"world.{clash[0]}: set by with_superposition (use ratio, d and l0 instead)")
        n_features = max(1, round(ratio * d))
        return cls(FeatureWorldConfig.from_dict({"d": d, "n_features": n_features, "mean_active": l0, **overrides}))

    @property
    def superposition(self) -> float:
        return self.config.n_features / self.config.d

    @property
    def expected_l0(self) -> float:
        """Expected number of active features per sample (mean_active unless probabilities were clamped)."""
        return float(self.probabilities.sum())

    @property
    def _legacy(self) -> bool:
        """Independent firing of every feature: the original world's random stream."""
        return self.config.correlation == 0 and self.config.n_children == 0

    def sample(self, n: int, seed: int, with_magnitudes: bool = True, chunk: int | None = None) -> FeatureSample:
        """n samples; the same (world, seed, n, chunk) gives the same numbers.

        Pass `with_magnitudes=False` for large training sets: the (n, n_features) truth is then not kept.
        Samples are drawn `chunk` rows at a time (default: 65536, fewer when n_features > 512 so a chunk holds
        at most 2^25 feature slots); the chunk size changes the random stream, not the distribution.
        """
        cfg = self.config
        chunk = chunk or min(65536, max(1, CHUNK_ELEMENTS // cfg.n_features))
        g = torch.Generator().manual_seed(derive_seed("feature-sample", cfg.seed, seed))
        x = torch.empty(n, cfg.d)
        magnitudes = torch.zeros(n if with_magnitudes else 0, cfg.n_features)
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            fire = self._fire(m, g)
            size = torch.randn(m, cfg.n_features, generator=g).mul_(cfg.magnitude_std).add_(cfg.magnitude_mean)
            mags = size.abs_().masked_fill_(~fire, 0.0)
            del fire
            x[start : start + m] = mags @ self.directions + cfg.noise_std * torch.randn(m, cfg.d, generator=g)
            if cfg.unit_norm:
                # a sample's norm otherwise grows with its number of active features, which decides how
                # batch-level sparsity (BatchTopK) spends its budget; real normalised activations lack that
                x[start : start + m] /= x[start : start + m].norm(dim=1, keepdim=True).clamp_min(1e-12)
            if with_magnitudes:
                magnitudes[start : start + m] = mags
        return FeatureSample(x=x, magnitudes=magnitudes)

    def _raw_probabilities(self, g: torch.Generator) -> Tensor:
        """Unnormalised firing probabilities of the root features under the configured law."""
        cfg = self.config
        if cfg.probability_law == "zipf":
            ranks = torch.arange(1, cfg.n_roots + 1, dtype=torch.float64)
            return ranks.pow(-cfg.zipf_exponent).float()
        u = torch.rand(cfg.n_roots, generator=g)  # log-uniform spread
        return torch.exp(u * math.log(cfg.probability_spread))

    def _fire(self, m: int, g: torch.Generator) -> Tensor:
        """(m, n_features) boolean firing of every feature for m samples."""
        cfg = self.config
        if self._legacy:
            return torch.rand(m, cfg.n_features, generator=g) < self.probabilities
        n_roots = cfg.n_roots
        if cfg.correlation == 0:
            roots = torch.rand(m, n_roots, generator=g) < self.probabilities[:n_roots]
        else:
            rho = cfg.correlation
            z = torch.randn(m, n_roots, generator=g).mul_(math.sqrt(1.0 - rho))
            factor = torch.randn(m, self._n_blocks, generator=g).mul_(math.sqrt(rho))
            z += factor[:, self.block_ids[:n_roots]]
            roots = z < self._thresholds
            del z, factor
        if not cfg.n_children:
            return roots
        if cfg.exclusive_children:  # one uniform draw per parent picks child j when it falls in [j·p, (j+1)·p)
            u = torch.rand(m, cfg.n_parents, generator=g)
            slot = (u / cfg.child_probability).floor_().long()
            children = slot[:, self.child_parent] == torch.arange(cfg.children_per_parent).repeat(cfg.n_parents)
        else:
            children = torch.rand(m, cfg.n_children, generator=g) < cfg.child_probability
        children &= roots[:, self.child_parent]
        return torch.cat([roots, children], dim=1)


def _tilt_towards(own: Tensor, parent: Tensor, cosine: float) -> Tensor:
    """Unit rows at exactly `cosine` to `parent` rows: cosine·parent + sin·(own's part orthogonal to parent)."""
    orthogonal = own - (own * parent).sum(dim=1, keepdim=True) * parent
    orthogonal = orthogonal / orthogonal.norm(dim=1, keepdim=True)
    tilted = cosine * parent + math.sqrt(max(0.0, 1.0 - cosine**2)) * orthogonal
    return tilted / tilted.norm(dim=1, keepdim=True)
