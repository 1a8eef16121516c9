"""Sparse (values, indices) encode/decode: gradients against finite differences and a dense reference."""

import torch

from aekit.nn.sparse_ops import gather_dot, scatter_outer, sparse_decode, sparse_encode, weighted_row_sum


def _problem(batch=6, n=20, d=5, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, d, dtype=torch.float64, generator=g)
    W = torch.randn(n, d, dtype=torch.float64, generator=g)
    b = torch.randn(n, dtype=torch.float64, generator=g)
    idx = torch.stack([torch.randperm(n, generator=g)[:k] for _ in range(batch)])
    values = torch.rand(batch, k, dtype=torch.float64, generator=g)
    return x, W, b, idx, values


def test_primitives_match_dense_formulas():
    x, W, b, idx, values = _problem()
    assert torch.allclose(gather_dot(idx, W, x), torch.einsum("bkd,bd->bk", W[idx], x))
    assert torch.allclose(weighted_row_sum(idx, values, W), torch.einsum("bk,bkd->bd", values, W[idx]))
    dense = torch.zeros(len(x), W.shape[0], dtype=x.dtype).scatter_add_(1, idx, values)
    assert torch.allclose(scatter_outer(idx, values, x, W.shape[0]), dense.T @ x)


def test_sparse_encode_gradcheck():
    x, W, b, idx, _ = _problem()
    inputs = (x.requires_grad_(), W.requires_grad_(), b.requires_grad_())
    assert torch.autograd.gradcheck(lambda x, W, b: sparse_encode(x, W, b, idx), inputs)


def test_sparse_decode_gradcheck():
    _, W, _, idx, values = _problem()
    inputs = (values.requires_grad_(), W.requires_grad_())
    assert torch.autograd.gradcheck(lambda v, W: sparse_decode(v, idx, W), inputs)


def test_sparse_decode_with_repeated_latents_accumulates():
    W = torch.eye(4, dtype=torch.float64)
    idx = torch.tensor([[1, 1]])
    values = torch.tensor([[0.5, 0.25]], dtype=torch.float64, requires_grad=True)
    out = sparse_decode(values, idx, W)
    assert torch.allclose(out, torch.tensor([[0.0, 0.75, 0.0, 0.0]], dtype=torch.float64))
