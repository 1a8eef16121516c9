"""A stacked autoencoder: layers pretrained greedily, one autoencoder each, then the whole stack fine-tuned.

Sizes d → h₁ → … → c are given as `sizes` ("32,16,4" after the input d). Layer i is a `LayerAutoencoder`
h_{i−1} → h_i → h_{i−1}: tanh codes except for the last layer, whose codes are linear (the features a clusterer
reads, unbounded), and a tanh reconstruction except for the first layer, whose target is the (standardised) input
itself. The `StackedAutoencoder` composes the same encoders in order and the decoders in reverse, so pretrained
layers load into it unchanged (`load_layers`) and the Trainer fine-tunes the whole stack on the input's
reconstruction. With `n_classes` > 0 a linear head on the codes adds a cross-entropy term on the rows whose label
is ≥ 0 (a batch dict {"x", "labels"}, −1 marking unlabelled rows): a few labelled pixels pull the codes apart.

Both models expect standardised inputs; the caller standardises (the greedy procedure must use one scaling for
every stage, so it lives with the procedure in `aekit.analysis.raster_mapping`, not in a data-dependent init).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config_base import ConfigBase, setting
from ..nn.codes import Codes
from ..seeding import derive_seed
from .base import Autoencoder, Output

__all__ = ["LayerAutoencoder", "LayerAutoencoderConfig", "StackedAutoencoder", "StackedAutoencoderConfig",
           "parse_sizes"]


def parse_sizes(text: str) -> list[int]:
    """'32,16,4' → [32, 16, 4]; ValueError when a size is not a positive integer."""
    sizes = [int(part) for part in text.split(",")]
    if not sizes or any(s < 1 for s in sizes):
        raise ValueError(text)
    return sizes


def _linear(d_in: int, d_out: int, g: torch.Generator) -> nn.Linear:
    """nn.Linear with PyTorch's default uniform(±1/√d_in) ranges drawn from `g`, so a seed fixes the weights."""
    layer = nn.Linear(d_in, d_out)
    bound = 1 / math.sqrt(d_in)
    with torch.no_grad():
        layer.weight.copy_(torch.rand(d_out, d_in, generator=g) * 2 * bound - bound)
        layer.bias.copy_(torch.rand(d_out, generator=g) * 2 * bound - bound)
    return layer


def _rows(batch: Tensor | dict[str, Tensor]) -> Tensor:
    return batch["x"] if isinstance(batch, dict) else batch


@dataclass
class LayerAutoencoderConfig(ConfigBase):
    section = "model"

    d_in: int = setting(12, "input dimension (the previous layer's code size)")
    d_out: int = setting(32, "code size of this layer")
    tanh_codes: bool = setting(True, "tanh codes (hidden layers) or linear codes (the last layer)")
    tanh_output: bool = setting(False, "tanh reconstruction (the input is a previous layer's tanh codes)")
    seed: int = setting(0, "seeds the initial weights")

    @property
    def n_latents(self) -> int:
        return self.d_out

    def validate(self) -> None:
        self._require(self.d_in >= 1, "d_in", "must be ≥ 1")
        self._require(self.d_out >= 1, "d_out", "must be ≥ 1")


class LayerAutoencoder(Autoencoder):
    """One layer of the stack trained on its own: encoder, (tanh) codes, decoder, MSE to its input."""

    kind = "stacked_layer"
    config_class = LayerAutoencoderConfig

    def __init__(self, config: LayerAutoencoderConfig):
        super().__init__(config)
        g = torch.Generator().manual_seed(derive_seed("stacked.layer", config.seed, config.d_in, config.d_out))
        self.encoder = _linear(config.d_in, config.d_out, g)
        self.decoder = _linear(config.d_out, config.d_in, g)

    def encode(self, x: Tensor) -> Codes:
        z = self.encoder(x)
        return Codes(self.config.d_out, dense=torch.tanh(z) if self.config.tanh_codes else z)

    def decode(self, codes: Codes) -> Tensor:
        out = self.decoder(codes.dense)
        return torch.tanh(out) if self.config.tanh_output else out

    def forward(self, batch: Tensor | dict[str, Tensor], dead_mask: Tensor | None = None) -> Output:
        x = _rows(batch)
        codes = self.encode(x)
        x_hat = self.decode(codes)
        return Output(x_hat=x_hat, codes=codes, losses={"mse": F.mse_loss(x_hat, x)})


@dataclass
class StackedAutoencoderConfig(ConfigBase):
    section = "model"

    d: int = setting(12, "input dimension")
    sizes: str = setting("32,16,4", "code sizes of the layers after the input, comma-separated; the last is the code")
    n_classes: int = setting(0, "classes of the linear head on the codes", "0 = no head (unsupervised)")
    class_weight: float = setting(1.0, "weight of the head's cross-entropy beside the reconstruction MSE")
    seed: int = setting(0, "seeds the initial weights")

    @property
    def layer_sizes(self) -> list[int]:
        return [self.d, *parse_sizes(self.sizes)]

    @property
    def n_latents(self) -> int:
        return self.layer_sizes[-1]

    def layer_configs(self) -> list[LayerAutoencoderConfig]:
        """The configs of the layers greedy pretraining trains, first to last."""
        s = self.layer_sizes
        return [LayerAutoencoderConfig(d_in=s[i], d_out=s[i + 1], tanh_codes=i < len(s) - 2, tanh_output=i > 0,
                                       seed=self.seed) for i in range(len(s) - 1)]

    def validate(self) -> None:
        self._require(self.d >= 1, "d", "must be ≥ 1")
        try:
            parse_sizes(self.sizes)
        except ValueError:
            self._require(False, "sizes", "must be positive integers separated by commas, e.g. 32,16,4")
        self._require(self.n_classes >= 0, "n_classes", "must be ≥ 0")
        self._require(math.isfinite(self.class_weight) and self.class_weight >= 0, "class_weight", "must be ≥ 0")


class StackedAutoencoder(Autoencoder):
    """Encoders in order, decoders in reverse; the codes are the last encoder's linear outputs."""

    kind = "stacked"
    config_class = StackedAutoencoderConfig

    def __init__(self, config: StackedAutoencoderConfig):
        super().__init__(config)
        layers = [LayerAutoencoder(c) for c in config.layer_configs()]
        self.tanh_codes = [c.tanh_codes for c in config.layer_configs()]
        self.tanh_outputs = [c.tanh_output for c in config.layer_configs()]
        self.encoders = nn.ModuleList([layer.encoder for layer in layers])
        self.decoders = nn.ModuleList([layer.decoder for layer in layers])  # decoders[i] undoes encoders[i]
        g = torch.Generator().manual_seed(derive_seed("stacked.head", config.seed))
        self.head = _linear(config.n_latents, config.n_classes, g) if config.n_classes else None

    def load_layers(self, layers: list[LayerAutoencoder]) -> None:
        """Copy greedily pretrained layers (first to last) into the stack."""
        if len(layers) != len(self.encoders):
            raise ValueError(f"the stack has {len(self.encoders)} layers, got {len(layers)}")
        with torch.no_grad():
            for i, layer in enumerate(layers):
                self.encoders[i].load_state_dict(layer.encoder.state_dict())
                self.decoders[i].load_state_dict(layer.decoder.state_dict())

    def encode(self, x: Tensor) -> Codes:
        h = x
        for encoder, tanh in zip(self.encoders, self.tanh_codes, strict=True):
            h = torch.tanh(encoder(h)) if tanh else encoder(h)
        return Codes(self.config.n_latents, dense=h)

    def decode(self, codes: Codes) -> Tensor:
        h = codes.dense
        for i in reversed(range(len(self.decoders))):
            h = self.decoders[i](h)
            h = torch.tanh(h) if self.tanh_outputs[i] else h
        return h

    def forward(self, batch: Tensor | dict[str, Tensor], dead_mask: Tensor | None = None) -> Output:
        x = _rows(batch)
        codes = self.encode(x)
        x_hat = self.decode(codes)
        losses = {"mse": F.mse_loss(x_hat, x)}
        if self.head is not None:
            labels = batch.get("labels") if isinstance(batch, dict) else None
            known = labels >= 0 if labels is not None else torch.zeros(len(x), dtype=torch.bool, device=x.device)
            logits = self.head(codes.dense[known])
            # a batch without labelled rows still returns the term (zero), so the logged keys never change
            ce = F.cross_entropy(logits, labels[known]) if bool(known.any()) else logits.sum() * 0
            losses["classify"] = self.config.class_weight * ce
        return Output(x_hat=x_hat, codes=codes, losses=losses)
