"""Axial attention equals full attention restricted to the positions that share every other coordinate."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from aekit.errors import ConfigError, ShapeError
from aekit.nn.axial import AxialAttention, AxialBlock, attention_matrix_bytes


def _reference(module: AxialAttention, x: torch.Tensor) -> torch.Tensor:
    """Plain multi-head attention over all positions, by hand, with a mask allowing only same-line pairs."""
    batch, *spatial, dim = x.shape
    heads, head_dim = module.heads, dim // module.heads
    flat = x.reshape(batch, -1, dim)
    coords = torch.tensor(list(itertools.product(*(range(s) for s in spatial))))  # (N, n_axes), row-major
    others = [a for a in range(len(spatial)) if a != module.axis]
    allowed = (coords[:, None, others] == coords[None, :, others]).all(-1)
    if module.causal:
        allowed &= coords[None, :, module.axis] <= coords[:, None, module.axis]

    def project(linear: torch.nn.Linear) -> torch.Tensor:
        out = flat @ linear.weight.T + linear.bias
        return out.reshape(batch, -1, heads, head_dim).transpose(1, 2)

    q, k, v = project(module.q_proj), project(module.k_proj), project(module.v_proj)
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(head_dim)
    weights = scores.masked_fill(~allowed, float("-inf")).softmax(-1)
    merged = (weights @ v).transpose(1, 2).reshape(batch, -1, dim)
    out = merged @ module.out_proj.weight.T + module.out_proj.bias
    return out.reshape(x.shape)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("spatial", [(5, 7), (3, 4, 5)])
def test_equals_masked_full_attention(spatial, causal, dtype):
    torch.manual_seed(0)
    x = torch.randn(2, *spatial, 8, dtype=dtype)
    for axis in range(len(spatial)):
        module = AxialAttention(8, 2, axis, causal=causal).to(dtype)
        with torch.no_grad():
            torch.testing.assert_close(module(x), _reference(module, x), rtol=0, atol=1e-5)


def test_gradcheck():
    torch.manual_seed(0)
    module = AxialAttention(4, 2, 1, causal=True).double()
    x = torch.randn(1, 2, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(module, (x,))
    module(x).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())


def test_block_receptive_field_is_whole_image():
    torch.manual_seed(0)
    block = AxialBlock(8, 2, 2)
    x = torch.randn(1, 5, 6, 8, requires_grad=True)
    block(x)[0, 1, 2].sum().backward()
    assert (x.grad[0].abs().sum(-1) > 0).all()
    # one attention axis alone only reaches the column
    single = AxialAttention(8, 2, 0)
    y = torch.randn(1, 5, 6, 8, requires_grad=True)
    single(y)[0, 1, 2].sum().backward()
    reached = y.grad[0].abs().sum(-1) > 0
    assert reached[:, 2].all() and not reached[:, [0, 1, 3, 4, 5]].any()


def test_block_causal_volume_shape():
    block = AxialBlock(8, 4, 3, causal=True)
    x = torch.randn(2, 3, 4, 5, 8)
    assert block(x).shape == x.shape


@pytest.mark.parametrize("shape", [(2, 8), (2, 5, 7)])
def test_shape_errors_one_line(shape):
    module = AxialAttention(8, 2, 1)
    with pytest.raises(ShapeError) as err:
        module(torch.randn(*shape))
    assert "\n" not in str(err.value)
    with pytest.raises(ShapeError, match="expected") as err:
        AxialBlock(8, 2, 2)(torch.randn(2, 3, 4, 5, 8))
    assert "\n" not in str(err.value)


def test_config_errors():
    with pytest.raises(ConfigError):
        AxialAttention(10, 3, 0)
    with pytest.raises(ConfigError):
        AxialAttention(8, 2, -1)
    with pytest.raises(ConfigError):
        AxialBlock(8, 2, 0)


def test_attention_matrix_bytes():
    assert attention_matrix_bytes((2, 64, 64, 64), 4, axial=False) == 2 * 4 * 4096**2 * 4
    assert attention_matrix_bytes((2, 64, 64, 64), 4, axial=True) == 2 * 4 * 4096 * 128 * 4
