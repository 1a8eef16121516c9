"""Circuit discovery from discrete SAE codes (O'Neill & Bui 2024, "Sparse autoencoders enable scalable and
reliable circuit identification in language models").

1. Each head's write into the residual stream (`attn.hook_result`, z_h W_O^h) is averaged over the real tokens of
   a prompt, for every positive and negative prompt: one vector per (prompt, head).
2. One SAE is shared by all heads (every vector is one input): aekit's ReLU-L1 SAE — tied pre-bias (b_dec is
   subtracted before encoding), unit-norm dictionary — with 200 latents, L1 weight 0.02, Adam at 1e-3, 500
   full-batch steps. Inputs are scaled to unit mean squared norm, so the L1 weight means the same for any model.
3. The code of a (prompt, head) is the index of its largest latent (−1 when no latent is active).
4. A head's node score is the number of distinct codes it shows on positives and never on negatives; a head
   pair's edge score is the number of code pairs that co-occur on positives and never on negatives.

Only one forward pass per prompt and one small SAE fit are needed, whatever the number of heads — no ablations.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from ...data.hooks import model_layout
from ...errors import ConfigError
from .patching import head_outputs_z
from .tasks import CircuitTask

__all__ = ["CodeCircuit", "DiscreteCodeSettings", "discrete_code_circuit", "head_vectors", "node_and_edge_scores"]


@dataclass
class DiscreteCodeSettings:
    """The published hyper-parameters of the discrete-code SAE."""

    n_latents: int = 200
    l1_coefficient: float = 0.02
    lr: float = 1e-3
    epochs: int = 500
    seed: int = 0

    def validate(self) -> None:
        if self.n_latents < 1 or self.epochs < 1:
            raise ConfigError("circuits: n_latents and epochs must be ≥ 1")
        if not (self.lr > 0 and self.l1_coefficient >= 0):
            raise ConfigError("circuits: lr must be > 0 and l1_coefficient ≥ 0")


@dataclass
class CodeCircuit:
    """Node scores (layers, heads), edge scores (layers, heads, layers, heads; NaN unless the first head's layer
    is earlier) and the discrete codes (prompts, layers, heads) they were counted from."""

    node_scores: Tensor
    edge_scores: Tensor
    positive_codes: Tensor
    negative_codes: Tensor
    seconds: dict[str, float] = field(default_factory=dict)


@torch.no_grad()
def head_vectors(model: nn.Module, input_ids: Tensor, mask: Tensor) -> Tensor:
    """Each head's residual-stream write averaged over each prompt's real tokens, (prompts, layers, heads, d_model)."""
    layout = model_layout(model)
    _, z = head_outputs_z(model, input_ids, mask)  # (layers, n, seq, heads, d_head)
    weight = mask.to(z.device, z.dtype)[None, :, :, None, None]
    z_mean = (z * weight).sum(2) / weight.sum(2)  # the write is linear in z, so average z first
    w_o = torch.stack([layout.w_o(layer).detach() for layer in range(layout.n_layers)]).to(z.dtype)
    return torch.einsum("lnhd,lhdm->nlhm", z_mean, w_o).float().cpu()


def _discrete_codes(x: np.ndarray, settings: DiscreteCodeSettings, progress: bool) -> np.ndarray:
    """Fit the shared ReLU SAE on the rows of x and return each row's argmax latent (−1 for an all-zero code)."""
    from ...estimator import SparseCoder

    coder = SparseCoder(n_latents=settings.n_latents, architecture="relu", l1_coefficient=settings.l1_coefficient,
                        steps=settings.epochs, batch_size=len(x), lr=settings.lr, warmup_steps=0, decay="none",
                        device="cpu", random_state=settings.seed, verbose=progress)
    codes = coder.fit_transform(x)
    return np.where(codes.max(1) > 0, codes.argmax(1), -1)


def _unique_on_positives(positive: np.ndarray, negative: np.ndarray) -> int:
    return len(np.setdiff1d(np.unique(positive), np.unique(negative)))


def node_and_edge_scores(positive_codes: Tensor, negative_codes: Tensor) -> tuple[Tensor, Tensor]:
    """Node scores (layers, heads) and edge scores (layers, heads, layers, heads) from codes (prompts, L, H)."""
    pos, neg = positive_codes.numpy(), negative_codes.numpy()
    _, n_layers, n_heads = pos.shape
    nodes = torch.tensor([[_unique_on_positives(pos[:, i, h], neg[:, i, h]) for h in range(n_heads)]
                          for i in range(n_layers)], dtype=torch.float32)
    edges = torch.full((n_layers, n_heads, n_layers, n_heads), float("nan"))
    base = int(max(pos.max(), neg.max())) + 2  # code pairs as one integer; codes start at −1
    for i in range(n_layers - 1):
        for s in range(n_heads):
            for j in range(i + 1, n_layers):
                pos_pairs = (pos[:, i, s, None] + 1) * base + pos[:, j, :] + 1  # (prompts, heads)
                neg_pairs = (neg[:, i, s, None] + 1) * base + neg[:, j, :] + 1
                for r in range(n_heads):
                    edges[i, s, j, r] = _unique_on_positives(pos_pairs[:, r], neg_pairs[:, r])
    return nodes, edges


def discrete_code_circuit(model: nn.Module, task: CircuitTask, settings: DiscreteCodeSettings | None = None,
                          progress: bool = False) -> CodeCircuit:
    """Run the discrete-code method on a task's prompt pairs; `seconds` holds the time of each stage."""
    settings = settings or DiscreteCodeSettings()
    settings.validate()
    pairs = task.pairs
    start = time.perf_counter()
    vectors = torch.cat([head_vectors(model, pairs.positive_ids, pairs.mask),
                         head_vectors(model, pairs.negative_ids, pairs.mask)])
    n, n_layers, n_heads, d_model = vectors.shape
    captured = time.perf_counter()
    codes = _discrete_codes(vectors.reshape(-1, d_model).numpy(), settings, progress)
    codes = torch.from_numpy(codes).reshape(n, n_layers, n_heads)
    trained = time.perf_counter()
    positive, negative = codes[: n // 2], codes[n // 2:]
    nodes, edges = node_and_edge_scores(positive, negative)
    done = time.perf_counter()
    seconds = {"capture": captured - start, "sae": trained - captured, "scores": done - trained, "total": done - start}
    return CodeCircuit(nodes, edges, positive, negative, seconds)
