"""CktGen: a VAE over circuit token sequences whose latent space is shared with a specification encoder.

After Hou et al., "CktGen: Automated Analog Circuit Design with Generative Artificial Intelligence" (arXiv
2410.00995). A circuit (a fixed-length token sequence: token 1 begins it, token 0 pads it) is encoded by a small
transformer into a Gaussian posterior q(z | c); a specification (a few real features, e.g. log gain and log
bandwidth) is encoded by an MLP into its own Gaussian q(z | s) in the same space. A GRU decoder reads z and emits
the sequence token by token. The paper's loss, per circuit–specification pair (z_c, z_s reparametrised samples):

    L = CE(dec(z_c), c) + CE(dec(z_s), c)                          reconstruction from both latents
      + λ_align · SmoothL1(z_s, z_c)                                latent alignment
      + λ_nce · InfoNCE(z_s, z_c)                                   contrastive alignment, false negatives filtered
      + λ_guide · ‖head(z_c) − s‖²                                  guidance: z_c must predict its specification
      + β · [KL(s‖c) + KL(c‖s) + KL(c‖N(0, I)) + KL(s‖N(0, I))]

InfoNCE is the symmetric cross-entropy of the cosine-similarity matrix S_ij = cos(z_s,i, z_c,j) / τ with the
matching pair on the diagonal; pairs i ≠ j whose specifications agree within `filter_log10` in every feature are
removed from the softmax (the paper's filter mask: a circuit with the same specification is no negative). The
paper classifies discretised specifications from z_c; here specifications are continuous, so the guidance head
regresses them. Conditional generation decodes z ~ q(z | s_target) (scaled by `sample_scale`) greedily.
It is an `Autoencoder`, trained by the one `Trainer` on dict batches {"tokens": (n, T) int64, "spec": (n, S)}.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config_base import ConfigBase, setting
from ..errors import ShapeError
from ..nn.codes import Codes
from ..seeding import derive_seed
from .base import Autoencoder, Output, SeededNoise

__all__ = ["BOS_TOKEN", "PAD_TOKEN", "CktGen", "CktGenConfig", "gaussian_kl", "info_nce"]

PAD_TOKEN, BOS_TOKEN = 0, 1


@dataclass
class CktGenConfig(ConfigBase):
    section = "model"

    vocab: int = setting(12, "tokens in the circuit vocabulary (0 pads, 1 begins a sequence)")
    length: int = setting(8, "tokens per circuit sequence, BOS included")
    spec_dim: int = setting(2, "specification features per circuit")
    width: int = setting(64, "width of the token embeddings, the transformer encoder and the specification MLP")
    heads: int = setting(4, "attention heads of the circuit encoder")
    layers: int = setting(2, "transformer layers of the circuit encoder")
    hidden: int = setting(128, "hidden units of the GRU decoder")
    z: int = setting(16, "latent dimension shared by circuits and specifications")
    temperature: float = setting(0.2, "InfoNCE temperature τ on cosine similarities")
    filter_log10: float = setting(0.04, "pairs whose specification features all differ by at most this are no "
                                        "InfoNCE negatives (the filter mask)")
    align_weight: float = setting(1.0, "λ_align of the SmoothL1 distance between z_s and z_c")
    nce_weight: float = setting(1.0, "λ_nce of the InfoNCE loss")
    guide_weight: float = setting(1.0, "λ_guide of the specification regression from z_c")
    beta: float = setting(0.01, "β of the four KL terms")
    sample_scale: float = setting(1.0, "noise scale of the reparametrised samples (the paper's eps_factor)")
    seed: int = setting(0, "seeds the initial weights and the training noise")

    @property
    def n_latents(self) -> int:
        return self.z

    def validate(self) -> None:
        self._require(self.vocab >= 3, "vocab", "must be ≥ 3 (pad, begin and at least one more token)")
        self._require(self.length >= 2, "length", "must be ≥ 2")
        for name in ("spec_dim", "width", "heads", "layers", "hidden", "z"):
            self._require(getattr(self, name) >= 1, name, "must be ≥ 1")
        self._require(self.width % self.heads == 0, "width", f"must be a multiple of heads ({self.heads})")
        self._require(math.isfinite(self.temperature) and self.temperature > 0, "temperature", "must be > 0")
        for name in ("filter_log10", "align_weight", "nce_weight", "guide_weight", "beta", "sample_scale"):
            value = getattr(self, name)
            self._require(math.isfinite(value) and value >= 0, name, "must be a number ≥ 0")


def info_nce(a: Tensor, b: Tensor, temperature: float, same: Tensor | None = None) -> Tensor:
    """Symmetric InfoNCE of paired rows a_i ↔ b_i: ½[CE(S, diag) + CE(Sᵀ, diag)] with S_ij = cos(a_i, b_j) / τ,
    averaged over rows. `same` (n, n) bool marks off-diagonal pairs dropped from both softmaxes (false negatives)."""
    sim = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / temperature
    if same is not None:
        eye = torch.eye(len(a), dtype=torch.bool, device=a.device)
        sim = sim.masked_fill(same & ~eye, float("-inf"))
    target = torch.arange(len(a), device=a.device)
    return 0.5 * (F.cross_entropy(sim, target) + F.cross_entropy(sim.T, target))


def gaussian_kl(mu_q: Tensor, logvar_q: Tensor, mu_p: Tensor, logvar_p: Tensor) -> Tensor:
    """(n,) KL(N(μ_q, σ_q²) ‖ N(μ_p, σ_p²)) of diagonal Gaussians, summed over dimensions:
    ½ Σ [σ_q²/σ_p² + (μ_q − μ_p)²/σ_p² − 1 − log(σ_q²/σ_p²)]."""
    ratio = logvar_q - logvar_p
    return 0.5 * (ratio.exp() + (mu_q - mu_p).square() / logvar_p.exp() - 1 - ratio).sum(-1)


class CktGen(SeededNoise, Autoencoder):
    """Transformer circuit encoder, MLP specification encoder, GRU decoder; `generate` designs from specifications."""

    kind = "cktgen"
    config_class = CktGenConfig

    def __init__(self, config: CktGenConfig):
        super().__init__(config)
        c = config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed("cktgen.init", c.seed))
            self.token_embedding = nn.Embedding(c.vocab, c.width)
            self.position_embedding = nn.Parameter(torch.randn(c.length, c.width) * 0.02)
            layer = nn.TransformerEncoderLayer(c.width, c.heads, dim_feedforward=2 * c.width, dropout=0.0,
                                               activation="gelu", batch_first=True, norm_first=True)
            self.encoder = nn.TransformerEncoder(layer, c.layers, enable_nested_tensor=False)
            self.circuit_head = nn.Linear(c.width, 2 * c.z)
            self.spec_encoder = nn.Sequential(nn.Linear(c.spec_dim, c.width), nn.GELU(), nn.Linear(c.width, c.width),
                                              nn.GELU(), nn.Linear(c.width, 2 * c.z))
            self.decoder_init = nn.Linear(c.z, c.hidden)
            self.decoder_embedding = nn.Embedding(c.vocab, c.width)
            self.decoder = nn.GRU(c.width + c.z, c.hidden, batch_first=True)
            self.to_logits = nn.Linear(c.hidden, c.vocab)
            self.guide = nn.Sequential(nn.Linear(c.z, 32), nn.ReLU(), nn.Linear(32, c.spec_dim))

    # --- inputs -----------------------------------------------------------------------------------------
    def _tokens(self, x: Tensor | dict[str, Tensor]) -> Tensor:
        t = x["tokens"] if isinstance(x, dict) else x
        c = self.config
        if t.dim() != 2 or t.shape[1] != c.length or t.is_floating_point():
            raise ShapeError(f"cktgen: tokens must be an (n, {c.length}) integer tensor, got {tuple(t.shape)} "
                             f"{t.dtype}")
        if len(t) and (int(t.min()) < 0 or int(t.max()) >= c.vocab):
            raise ShapeError(f"cktgen: tokens must lie in [0, {c.vocab}); got [{int(t.min())}, {int(t.max())}]")
        return t.long()

    def _specs(self, s: Tensor) -> Tensor:
        if s.dim() != 2 or s.shape[1] != self.config.spec_dim:
            raise ShapeError(f"cktgen: specifications must be (n, {self.config.spec_dim}), got {tuple(s.shape)}")
        return s.float()

    # --- encoders and decoder ---------------------------------------------------------------------------
    def circuit_posterior(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        """(n, z) mean and log-variance of q(z | circuit): transformer over the tokens, mean over non-pad ones."""
        t = self._tokens(tokens)
        pad = t == PAD_TOKEN
        h = self.encoder(self.token_embedding(t) + self.position_embedding, src_key_padding_mask=pad)
        keep = (~pad).unsqueeze(-1).to(h.dtype)
        pooled = (h * keep).sum(1) / keep.sum(1).clamp_min(1)
        mu, logvar = self.circuit_head(pooled).chunk(2, -1)
        return mu, logvar.clamp(-8, 8)

    def spec_posterior(self, specs: Tensor) -> tuple[Tensor, Tensor]:
        """(n, z) mean and log-variance of q(z | specification)."""
        mu, logvar = self.spec_encoder(self._specs(specs)).chunk(2, -1)
        return mu, logvar.clamp(-8, 8)

    def _step(self, prev: Tensor, z: Tensor, h: Tensor | None) -> tuple[Tensor, Tensor]:
        """GRU over previous tokens (n, t) with z beside every input; returns (logits (n, t, V), last state)."""
        inputs = torch.cat([self.decoder_embedding(prev), z.unsqueeze(1).expand(-1, prev.shape[1], -1)], -1)
        out, h = self.decoder(inputs, h)
        return self.to_logits(out), h

    def _initial_state(self, z: Tensor) -> Tensor:
        return torch.tanh(self.decoder_init(z)).unsqueeze(0).contiguous()

    def teacher_forced_logits(self, z: Tensor, tokens: Tensor) -> Tensor:
        """(n, T − 1, V) logits of tokens 1..T−1 given z and the true previous tokens."""
        return self._step(tokens[:, :-1], z, self._initial_state(z))[0]

    @torch.no_grad()
    def greedy(self, z: Tensor) -> Tensor:
        """(n, T) int64 sequences decoded from latents by taking the most likely token at every step."""
        t = torch.full((len(z), 1), BOS_TOKEN, dtype=torch.long, device=z.device)
        h, out = self._initial_state(z), [t]
        for _ in range(self.config.length - 1):
            logits, h = self._step(out[-1], z, h)
            out.append(logits[:, -1].argmax(-1, keepdim=True))
        return torch.cat(out, 1)

    # --- Autoencoder ------------------------------------------------------------------------------------
    def encode(self, x: Tensor | dict[str, Tensor]) -> Codes:
        return Codes(self.config.z, dense=self.circuit_posterior(self._tokens(x))[0])

    def decode(self, codes: Codes) -> Tensor:
        """Greedy token sequences (n, T) of the latents."""
        return self.greedy(codes.to_dense())

    def _noise(self, shape: tuple[int, ...], like: Tensor) -> Tensor:
        # the reparametrisation noise comes from a stream seeded by the config and the draws so far, not the global RNG
        g = self.noise_generator()
        return torch.randn(shape, generator=g).to(like)

    def forward(self, batch: dict[str, Tensor], dead_mask: Tensor | None = None) -> Output:
        """The CktGen loss of a batch {"tokens", "spec"} (see the module docstring); `dead_mask` is unused."""
        if not isinstance(batch, dict) or "tokens" not in batch or "spec" not in batch:
            raise ShapeError("cktgen: a training batch is a dict with 'tokens' (n, T) and 'spec' (n, S)")
        c = self.config
        tokens, specs = self._tokens(batch), self._specs(batch["spec"])
        mu_c, lv_c = self.circuit_posterior(tokens)
        mu_s, lv_s = self.spec_posterior(specs)
        noise = self._noise((2, *mu_c.shape), mu_c) * c.sample_scale
        z_c = mu_c + torch.exp(0.5 * lv_c) * noise[0]
        z_s = mu_s + torch.exp(0.5 * lv_s) * noise[1]
        target = tokens[:, 1:]
        logits_c = self.teacher_forced_logits(z_c, tokens)
        logits_s = self.teacher_forced_logits(z_s, tokens)

        def ce(logits: Tensor) -> Tensor:  # summed over positions, averaged over circuits
            return F.cross_entropy(logits.transpose(1, 2), target, reduction="none").sum(1).mean()

        same = (specs[:, None, :] - specs[None, :, :]).abs().le(c.filter_log10).all(-1)
        zeros = torch.zeros_like(mu_c)
        kl = (gaussian_kl(mu_s, lv_s, mu_c, lv_c) + gaussian_kl(mu_c, lv_c, mu_s, lv_s)
              + gaussian_kl(mu_c, lv_c, zeros, zeros) + gaussian_kl(mu_s, lv_s, zeros, zeros)).mean()
        losses = {
            "reconstruction": ce(logits_c),
            "spec_reconstruction": ce(logits_s),
            "align": c.align_weight * F.smooth_l1_loss(z_s, z_c, reduction="none").sum(1).mean(),
            "nce": c.nce_weight * info_nce(z_s, z_c, c.temperature, same),
            "guide": c.guide_weight * (self.guide(z_c) - specs).square().sum(1).mean(),
            "kl": c.beta * kl,
        }
        return Output(x_hat=logits_c, codes=Codes(c.z, dense=mu_c), losses=losses)


    @torch.no_grad()
    def generate(self, specs: Tensor, samples: int = 1, seed: int = 0, scale: float | None = None) -> Tensor:
        """(n · samples, T) circuits for n target specifications, `samples` consecutive rows per target: greedy
        decodes of z = μ_s + scale · σ_s · ε (scale: `sample_scale` unless given; 0 decodes the mean)."""
        mu, logvar = self.spec_posterior(specs)
        mu, logvar = mu.repeat_interleave(samples, 0), logvar.repeat_interleave(samples, 0)
        g = torch.Generator().manual_seed(derive_seed("cktgen.generate", self.config.seed, seed))
        eps = torch.randn(mu.shape, generator=g).to(mu)
        scale = self.config.sample_scale if scale is None else scale
        return self.greedy(mu + scale * torch.exp(0.5 * logvar) * eps)
