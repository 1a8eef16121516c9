"""StackVAE-G: a VAE over sliding windows of a multivariate series, with channel-shared encoders and a learned graph.

After Li et al., "Learning Robust Representations of Multivariate Time Series with Stacked VAE and Graph". Every
channel's window (length w) goes through the same stacked encoder layers, so the parameter count does not grow with
the number of channels and a channel's latent depends only on its own window (permuting channels permutes the
latents). A learned channel graph A = softmax(QKᵀ/√e) over learned channel embeddings (Q = EW_q, K = EW_k) mixes
the per-channel latents: the decoder of channel j sees its own z_j and Σ_i A_ji z_i, and the mean row entropy of A is
added to the loss (weight `graph_penalty`) so each channel attends to a few others. The decoder is Gaussian (mean and
log-variance per time step, also shared across channels, told the channel by its embedding).

It is an `Autoencoder` so the one `Trainer` trains it: a batch is (n, C·w) flattened windows (channel-major), the
codes are the per-channel posterior means (n, C·z) and the loss is the negative ELBO per window (reconstruction NLL
+ KL) plus the graph penalty. `score(windows)` is the anomaly score of each window's last time step: the Gaussian
negative log-likelihood summed over channels, averaged over a few posterior samples of z.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..config_base import ConfigBase, setting
from ..errors import ShapeError
from ..nn.codes import Codes
from ..seeding import derive_seed
from .base import Autoencoder, Output, SeededNoise

__all__ = ["StackVAE", "StackVAEConfig"]

LOG_2PI = math.log(2 * math.pi)


@dataclass
class StackVAEConfig(ConfigBase):
    section = "model"

    channels: int = setting(12, "channels C of the series")
    window: int = setting(32, "window length w (time steps per channel per sample)")
    hidden: int = setting(64, "units of each stacked encoder and decoder layer")
    layers: int = setting(2, "stacked hidden layers of the shared encoder (and of the decoder)")
    z: int = setting(4, "latent dimension per channel")
    embed: int = setting(8, "channel embedding dimension e of the graph attention")
    graph_penalty: float = setting(0.05, "weight of the mean row entropy of the learned adjacency (sparsity)")
    samples: int = setting(8, "posterior samples of z averaged in the anomaly score")
    seed: int = setting(0, "seeds the initial weights and the posterior samples")

    @property
    def n_latents(self) -> int:
        return self.channels * self.z

    def validate(self) -> None:
        self._require(self.channels >= 1, "channels", "must be ≥ 1")
        self._require(self.window >= 2, "window", "must be ≥ 2")
        for name in ("hidden", "layers", "z", "embed", "samples"):
            self._require(getattr(self, name) >= 1, name, "must be ≥ 1")
        self._require(math.isfinite(self.graph_penalty) and self.graph_penalty >= 0, "graph_penalty",
                      "must be a number ≥ 0")


def _mlp(d_in: int, hidden: int, layers: int) -> nn.Sequential:
    mods: list[nn.Module] = []
    for i in range(layers):
        mods += [nn.Linear(d_in if i == 0 else hidden, hidden), nn.GELU()]
    return nn.Sequential(*mods)


class StackVAE(SeededNoise, Autoencoder):
    """Channel-shared window encoder, attention graph over channels, Gaussian decoder; `score` rates windows."""

    kind = "stackvae"
    config_class = StackVAEConfig

    def __init__(self, config: StackVAEConfig):
        super().__init__(config)
        c = config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed("stackvae.init", c.seed))
            self.encoder = _mlp(c.window, c.hidden, c.layers)  # one set of weights for every channel
            self.to_mu = nn.Linear(c.hidden, c.z)
            self.to_logvar = nn.Linear(c.hidden, c.z)
            self.embedding = nn.Parameter(torch.randn(c.channels, c.embed) / math.sqrt(c.embed))
            self.query = nn.Linear(c.embed, c.embed, bias=False)
            self.key = nn.Linear(c.embed, c.embed, bias=False)
            self.decoder = _mlp(2 * c.z + c.embed, c.hidden, c.layers)
            self.to_mean = nn.Linear(c.hidden, c.window)
            self.to_logscale = nn.Linear(c.hidden, c.window)
        self.score_draws = 0

    # --- pieces ----------------------------------------------------------------------------------------
    def _windows(self, x: Tensor) -> Tensor:
        """(n, C·w) flattened or (n, C, w) windows → (n, C, w)."""
        c = self.config
        if x.dim() == 2 and x.shape[1] == c.channels * c.window:
            return x.reshape(len(x), c.channels, c.window)
        if x.dim() == 3 and tuple(x.shape[1:]) == (c.channels, c.window):
            return x
        raise ShapeError(f"stackvae: windows must be (n, {c.channels}·{c.window}) or (n, {c.channels}, {c.window}), "
                         f"got {tuple(x.shape)}")

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Per-channel (n, C, z) posterior mean and log-variance; the same encoder weights for every channel."""
        h = self.encoder(self._windows(x))
        return self.to_mu(h), self.to_logvar(h).clamp(-8, 8)

    def adjacency(self) -> Tensor:
        """(C, C) learned graph: row j is how channel j's decoder weighs every channel's latent (rows sum to 1)."""
        q, k = self.query(self.embedding), self.key(self.embedding)
        return torch.softmax(q @ k.T / math.sqrt(self.config.embed), dim=-1)

    def _decode(self, z: Tensor, a: Tensor) -> tuple[Tensor, Tensor]:
        mixed = torch.einsum("ji,niz->njz", a, z)
        emb = self.embedding.expand(len(z), -1, -1)
        h = self.decoder(torch.cat([z, mixed, emb], dim=-1))
        return self.to_mean(h), self.to_logscale(h).clamp(-5, 3)

    @staticmethod
    def _nll(x: Tensor, mean: Tensor, logscale: Tensor) -> Tensor:
        """Elementwise Gaussian negative log-likelihood."""
        return 0.5 * (((x - mean) * torch.exp(-logscale)) ** 2 + LOG_2PI) + logscale

    # --- Autoencoder ----------------------------------------------------------------------------------
    def encode(self, x: Tensor) -> Codes:
        mu, _ = self.posterior(x)
        return Codes(self.config.n_latents, dense=mu.flatten(1))

    def decode(self, codes: Codes) -> Tensor:
        z = codes.to_dense().reshape(-1, self.config.channels, self.config.z)
        return self._decode(z, self.adjacency())[0].flatten(1)

    def forward(self, batch: Tensor, dead_mask: Tensor | None = None) -> Output:
        """Negative ELBO per window (one reparametrised sample) plus the graph's entropy; `dead_mask` is unused."""
        x = self._windows(batch["x"] if isinstance(batch, dict) else batch)
        mu, logvar = self.posterior(x)
        # the reparametrisation noise comes from a stream seeded by the config and the draws so far, not the global RNG
        g = self.noise_generator()
        z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=g).to(mu)
        a = self.adjacency()
        mean, logscale = self._decode(z, a)
        n = len(x)
        recon = self._nll(x, mean, logscale).sum() / n
        kl = 0.5 * (mu.square() + logvar.exp() - 1 - logvar).sum() / n
        entropy = -(a * torch.log(a + 1e-12)).sum(-1).mean()
        return Output(x_hat=mean.flatten(1), codes=Codes(self.config.n_latents, dense=mu.flatten(1)),
                      losses={"reconstruction": recon, "kl": kl, "graph_entropy": self.config.graph_penalty * entropy})


    @torch.no_grad()
    def score(self, windows: Tensor, batch_size: int = 2048) -> Tensor:
        """(n,) anomaly score of each window's last time step: −log p(x_last | z) summed over channels, averaged
        over `samples` posterior draws (seeded by the config and the number of calls so far)."""
        g = torch.Generator().manual_seed(derive_seed("stackvae.score", self.config.seed, self.score_draws))
        self.score_draws += 1
        a = self.adjacency()
        out = []
        for chunk in torch.split(self._windows(windows), batch_size):
            mu, logvar = self.posterior(chunk)
            total = torch.zeros(len(chunk), device=chunk.device)
            for _ in range(self.config.samples):
                eps = torch.randn(mu.shape, generator=g).to(mu)
                mean, logscale = self._decode(mu + torch.exp(0.5 * logvar) * eps, a)
                total += self._nll(chunk[..., -1], mean[..., -1], logscale[..., -1]).sum(-1)
            out.append(total / self.config.samples)
        return torch.cat(out)
