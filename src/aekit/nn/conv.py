"""Convolutional image encoder and decoder, sized to train on a laptop CPU.

The encoder halves the resolution with each stride-2 convolution (64 → 4 with four layers), then an MLP maps
the feature map to `out_dim` numbers; the decoder mirrors it with transposed convolutions and returns logits
(or raw intensities) of the image. The widths are the ones disentanglement studies have used since
disentanglement_lib, scaled down so a step on a 64-image batch costs tens of milliseconds on 2 cores.
"""

from __future__ import annotations

from torch import Tensor, nn

from ..errors import ConfigError, ShapeError


def parse_channels(spec: str, field: str = "channels") -> list[int]:
    """'32,32,64,64' → [32, 32, 64, 64]; every width must be a positive integer."""
    try:
        widths = [int(part) for part in spec.split(",") if part.strip()]
    except ValueError:
        widths = []
    if not widths or any(w < 1 for w in widths):
        raise ConfigError(f"model.{field}: expected comma-separated positive integers like '32,32,64,64' "
                          f"(got {spec!r})")
    return widths


def feature_map_size(image_size: int, n_layers: int) -> int:
    """Side of the last feature map; each stride-2 layer halves it, so image_size must divide by 2**n_layers."""
    if image_size % (2**n_layers) or image_size < 2**n_layers:
        raise ConfigError(
            f"model.image_size: {image_size} is not divisible by 2**{n_layers} (one halving per conv layer); "
            "use fewer channels entries or another image size"
        )
    return image_size // 2**n_layers


class ConvEncoder(nn.Module):
    """(batch, C, H, H) images → (batch, out_dim): stride-2 convs with ReLU, then a one-hidden-layer MLP."""

    def __init__(self, in_channels: int, image_size: int, channels: list[int], hidden: int, out_dim: int):
        super().__init__()
        side = feature_map_size(image_size, len(channels))
        layers: list[nn.Module] = []
        previous = in_channels
        for width in channels:
            layers += [nn.Conv2d(previous, width, kernel_size=4, stride=2, padding=1), nn.ReLU()]
            previous = width
        self.in_shape = (in_channels, image_size, image_size)
        self.convs = nn.Sequential(*layers)
        self.mlp = nn.Sequential(
            nn.Flatten(), nn.Linear(previous * side * side, hidden), nn.ReLU(), nn.Linear(hidden, out_dim)
        )

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or tuple(x.shape[1:]) != self.in_shape:
            raise ShapeError(f"images have shape {tuple(x.shape)} but this encoder expects (batch, {self.in_shape})")
        return self.mlp(self.convs(x))


class ConvDecoder(nn.Module):
    """(batch, in_dim) codes → (batch, C, H, H) logits: the encoder's mirror image."""

    def __init__(self, in_dim: int, out_channels: int, image_size: int, channels: list[int], hidden: int):
        super().__init__()
        side = feature_map_size(image_size, len(channels))
        widths = list(reversed(channels))
        self.mlp = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, widths[0] * side * side), nn.ReLU(),
            nn.Unflatten(1, (widths[0], side, side)),
        )
        layers: list[nn.Module] = []
        for width, following in zip(widths, widths[1:] + [out_channels], strict=True):
            layers += [nn.ConvTranspose2d(width, following, kernel_size=4, stride=2, padding=1), nn.ReLU()]
        self.deconvs = nn.Sequential(*layers[:-1])  # the last layer outputs logits: no ReLU after it

    def forward(self, z: Tensor) -> Tensor:
        return self.deconvs(self.mlp(z))
