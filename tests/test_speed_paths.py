"""The fast paths against dense float64 formulas: CSR sparse kernels, grouped top-k, fused Adam, the benchmark."""

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch

from aekit.nn import native, screening, sparse_ops
from aekit.nn.sparse_ops import gather_dot, scatter_outer, sparse_decode, sparse_encode, weighted_row_sum
from aekit.nn.topk import group_size, topk_indices
from aekit.train.optim import make_optimizer


def _problem(batch=64, n=300, d=24, k=7, dtype=torch.float64, seed=0, repeats=False):
    g = torch.Generator().manual_seed(seed)
    y = torch.randn(batch, d, dtype=dtype, generator=g)
    W = torch.randn(n, d, dtype=dtype, generator=g)
    if repeats and k > 1:  # the same latent more than once in a row: contributions must add up
        idx = torch.randint(0, n, (batch, k), generator=g)
        idx[:, 1] = idx[:, 0]
    else:
        idx = torch.stack([torch.randperm(n, generator=g)[:k] for _ in range(batch)])
    w = torch.randn(batch, k, dtype=dtype, generator=g)
    return y, W, idx, w


def _dense_codes(idx, w, n):
    return torch.zeros(len(idx), n, dtype=w.dtype).scatter_add_(1, idx, w)


def _assert_primitives_match_dense(y, W, idx, w, atol):
    dense = _dense_codes(idx, w, W.shape[0])
    torch.testing.assert_close(gather_dot(idx, W, y), torch.einsum("bkd,bd->bk", W[idx], y), atol=atol, rtol=0)
    torch.testing.assert_close(weighted_row_sum(idx, w, W), dense @ W, atol=atol, rtol=0)
    torch.testing.assert_close(scatter_outer(idx, w, y, W.shape[0]), dense.T @ y, atol=atol, rtol=0)


def _force_path(monkeypatch, path):
    """Route the three primitives through one implementation: "csr", "dense" (wide codes) or "portable"."""
    if path == "dense":
        monkeypatch.setattr(sparse_ops, "_wide", lambda idx, n, ratio: True)
    else:
        monkeypatch.setattr(sparse_ops, "_wide", lambda idx, n, ratio: False)
    if path == "portable":
        monkeypatch.setattr(sparse_ops, "_use_csr", lambda *tensors: False)


@pytest.mark.parametrize("path", ["csr", "dense", "portable"])
@pytest.mark.parametrize("repeats", [False, True])
@pytest.mark.parametrize("shape", [(64, 300, 24, 7), (1, 5, 3, 1), (3, 4, 2, 4), (200, 64, 16, 64)])
def test_kernels_match_dense_formulas_float64(monkeypatch, shape, repeats, path):
    batch, n, d, k = shape
    y, W, idx, w = _problem(batch, n, d, k, repeats=repeats)
    _force_path(monkeypatch, path)
    _assert_primitives_match_dense(y, W, idx, w, atol=1e-12)
    # strided operands (a transcoder's input is a column slice of its batch)
    y_strided = torch.cat([y, torch.ones_like(y)], 1)[:, :d]
    _assert_primitives_match_dense(y_strided, W.T.contiguous().T, idx, w, atol=1e-12)


@pytest.mark.parametrize("path", ["csr", "dense", "portable"])
def test_sparse_encode_decode_gradcheck_on_every_path(monkeypatch, path):
    x, W, idx, w = _problem(batch=5, n=40, d=4, k=6, repeats=True)
    b, center = torch.randn(40, dtype=torch.float64), torch.randn(4, dtype=torch.float64)
    _force_path(monkeypatch, path)
    inputs = (x.requires_grad_(), W.requires_grad_(), b.requires_grad_())
    assert torch.autograd.gradcheck(lambda x, W, b: sparse_encode(x, W, b, idx), inputs)
    inputs = (W, b, center.requires_grad_())
    assert torch.autograd.gradcheck(lambda W, b, c: sparse_encode(x.detach(), W, b, idx, center=c), inputs)
    values = w.abs().requires_grad_()
    assert torch.autograd.gradcheck(lambda v, W: sparse_decode(v, idx, W), (values, W))


def test_path_choice_follows_code_width():
    _, W, idx, w = _problem(n=300, k=7)
    assert sparse_ops._use_csr(w, W) and not sparse_ops._wide(idx, 300, sparse_ops._DENSE_BELOW["weighted_row_sum"])
    assert sparse_ops._wide(torch.zeros(2, 40, dtype=torch.long), 300, sparse_ops._DENSE_BELOW["scatter_outer"])


def test_wide_codes_under_autocast_keep_float32_and_backpropagate():
    x, W, idx, w = _problem(batch=8, n=20, d=4, k=10, dtype=torch.float32)
    assert sparse_ops._wide(idx, 20, sparse_ops._DENSE_BELOW["weighted_row_sum"])
    values, W = w.abs().requires_grad_(), W.requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = sparse_decode(values, idx, W)
        pre = sparse_encode(x, W, torch.zeros(20), idx)
    assert out.dtype == torch.float32 and pre.dtype == torch.float32
    (out.sum() + pre.sum()).backward()
    assert values.grad.dtype == torch.float32 and W.grad.dtype == torch.float32


def test_csr_kernels_match_dense_formulas_float32():
    y, W, idx, w = _problem(batch=512, n=2048, d=64, k=32, dtype=torch.float32, seed=1)
    y64, W64, w64 = y.double(), W.double(), w.double()
    dense = _dense_codes(idx, w64, W.shape[0])
    torch.testing.assert_close(gather_dot(idx, W, y).double(), torch.einsum("bkd,bd->bk", W64[idx], y64),
                               atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(weighted_row_sum(idx, w, W).double(), dense @ W64, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(scatter_outer(idx, w, y, W.shape[0]).double(), dense.T @ y64, atol=1e-4, rtol=1e-5)


def test_mixed_dtypes_use_the_portable_path():
    _, W, _, w = _problem()
    assert not sparse_ops._use_csr(w.float(), W)
    assert not sparse_ops._use_csr(w.to(torch.bfloat16), W.to(torch.bfloat16))


def test_grouping_cache_follows_in_place_changes_of_the_indices():
    y, W, idx, w = _problem()
    scatter_outer(idx, w, y, W.shape[0])  # fills the cache for idx
    idx[:, 0] = (idx[:, 0] + 1) % W.shape[0]  # same tensor, new contents (version counter moves)
    idx[:, 0] = torch.where(idx[:, 0] == idx[:, 1], (idx[:, 0] + 1) % W.shape[0], idx[:, 0])
    _assert_primitives_match_dense(y, W, idx, w, atol=1e-12)
    # a different tensor with equal contents and the same n_rows also gives the right answer
    _assert_primitives_match_dense(y, W, idx.clone(), w, atol=1e-12)


def test_kernels_are_deterministic_and_thread_count_independent():
    y, W, idx, w = _problem(batch=256, n=1024, d=64, k=16, dtype=torch.float32, seed=3)
    threads = torch.get_num_threads()
    try:
        results = []
        for t in (1, max(2, threads)):
            torch.set_num_threads(t)
            for _ in range(2):
                sparse_ops._last_grouping = None
                results.append((gather_dot(idx, W, y), weighted_row_sum(idx, w, W), scatter_outer(idx, w, y, 1024)))
    finally:
        torch.set_num_threads(threads)
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            assert torch.equal(a, b)


def test_sparse_encode_with_center_matches_centering_outside():
    x, W, idx, _ = _problem(batch=9, n=30, d=6, k=4, seed=5)
    b = torch.randn(30, dtype=torch.float64)
    center = torch.randn(6, dtype=torch.float64)
    grads = []
    for inside in (True, False):
        W_, b_, c_ = (t.clone().requires_grad_() for t in (W, b, center))
        pre = sparse_encode(x, W_, b_, idx, center=c_) if inside else sparse_encode(x - c_, W_, b_, idx)
        (pre.tanh() * torch.arange(4.0, dtype=torch.float64)).sum().backward()
        grads.append((pre.detach(), W_.grad, b_.grad, c_.grad))
    for a, b_ in zip(*grads, strict=True):
        torch.testing.assert_close(a, b_, atol=1e-12, rtol=1e-12)


# --- grouped top-k ------------------------------------------------------------------------------------------
def _same_values(x, got, k):
    """got holds k distinct column indices per row whose values are the row's k largest (ties may differ)."""
    assert got.shape == (x.shape[0], k) and got.dtype == torch.long
    assert (got.sort(-1).values.diff(dim=-1) > 0).all()
    expected = x.topk(k, dim=-1).values.sort(-1).values
    assert torch.equal(x.gather(1, got).sort(-1).values, expected)


@pytest.mark.parametrize(("n", "k"), [(8192, 32), (4096, 16), (2048, 8), (1000, 10), (96, 3), (64, 64), (24576, 32)])
def test_topk_indices_selects_the_k_largest(n, k):
    x = torch.randn(37, n, generator=torch.Generator().manual_seed(n + k))
    _same_values(x, topk_indices(x, k), k)


def test_topk_indices_with_ties_infinities_and_nan():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 5, (50, 4096), generator=g).float()  # massive ties
    _same_values(x, topk_indices(x, 32), 32)
    x = torch.randn(50, 4096, generator=g)
    x[:, ::3] = float("-inf")
    x[::7, 5] = float("inf")
    _same_values(x, topk_indices(x, 32), 32)
    x[3, 100] = float("nan")  # NaN ranks largest, as in torch.topk
    assert 100 in topk_indices(x, 32)[3].tolist()


def test_topk_indices_float64_noncontiguous_and_empty():
    x = torch.randn(4096, 20, dtype=torch.float64).T  # non-contiguous rows: plain torch.topk
    _same_values(x, topk_indices(x, 16), 16)
    assert topk_indices(torch.zeros(0, 4096), 32).shape == (0, 32)


def test_group_size_balances_the_two_selections():
    assert group_size(8192, 32) == 16
    assert group_size(100, 10) is None  # too small to pay off
    assert group_size(1001, 10) is None  # no power-of-two divisor
    g = group_size(1 << 20, 64)
    assert g is not None and abs(math.log2(g) - math.log2(math.sqrt((1 << 20) / 64))) <= 0.5


@pytest.mark.parametrize("fraction", [0.02, 0.3, 1.0])
@pytest.mark.parametrize("dense_first", [True, False])
def test_dead_latent_search_matches_masked_fill_reference(fraction, dense_first):
    """AuxK's search among dead latents reads (or computes) only their columns, from the dense matrix when a
    selection already built it, else from a product with the dead rows of W_enc alone."""
    from aekit.nn.preactivations import EncoderPreactivations

    g = torch.Generator().manual_seed(1)
    x, W, bias = torch.randn(40, 32, generator=g), torch.randn(4096, 32, generator=g), torch.randn(4096, generator=g)
    mask = torch.rand(4096, generator=g) < fraction
    k = min(256, int(mask.sum()))
    pre = EncoderPreactivations(x, W, bias)
    if dense_first:
        pre.dense()
    dead = mask.nonzero().squeeze(1)
    got = dead[topk_indices(pre.columns(dead), k)]
    assert mask[got].all()
    _same_values((x @ W.t() + bias).masked_fill(~mask, float("-inf")), got, k)


# --- optimizer ----------------------------------------------------------------------------------------------
def test_make_optimizer_uses_fused_adam_that_matches_reference_adam():
    g = torch.Generator().manual_seed(0)
    start = [torch.randn(64, 8, dtype=torch.float64, generator=g), torch.randn(8, dtype=torch.float64, generator=g)]
    grads = [[torch.randn_like(p) for p in start] for _ in range(5)]
    runs = []
    for build in (lambda ps: make_optimizer(ps, lr=1e-2, betas=(0.9, 0.99)),
                  lambda ps: torch.optim.Adam(ps, lr=1e-2, betas=(0.9, 0.99), foreach=False)):
        params = [torch.nn.Parameter(p.clone()) for p in start]
        opt = build(params)
        for step_grads in grads:
            for p, gr in zip(params, step_grads, strict=True):
                p.grad = gr.clone()
            opt.step()
        runs.append((opt, params))
    assert runs[0][0].defaults["fused"] is True
    for a, b in zip(runs[0][1], runs[1][1], strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)


# --- the benchmark script -----------------------------------------------------------------------------------
def test_sae_step_benchmark_quick_smoke_run(tmp_path, monkeypatch):
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "sae_step.py"
    spec = importlib.util.spec_from_file_location("sae_step_bench", path)
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "sae_step_bench", bench)  # dataclasses look their module up
    spec.loader.exec_module(bench)
    out = tmp_path / "sae_step.json"
    for mode in ("always", "never"):  # with the bfloat16 screen the TopK step is also timed without it
        monkeypatch.setattr(screening, "MODE", mode)
        assert bench.main(["--quick", "--repeats", "1", "--warmup", "0", "--no-anchors", "--arch", "topk",
                           "--arch", "relu", "--out", str(out)]) == 0
        result = json.loads(out.read_text())
        names = [row["name"] for row in result["rows"]]
        screened = mode == "always" and native.build.library()
        topk = ["aekit topk", "aekit topk, no screen"] if screened else ["aekit topk"]
        assert names == ["dense matmul", "dense matmul, new output", *topk, "aekit relu"]
    assert all(row["ms_per_step"] > 0 for row in result["rows"]) and not result["errors"]
    assert result["provenance"]["command"].endswith(f"--out {out}") and result["provenance"]["machine"]["cpu"]
    spec = importlib.util.spec_from_file_location("render_results", path.parent / "render_results.py")
    tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tables)
    text = tables.render("sae_step", tmp_path)  # the documentation's table renders from what the benchmark wrote
    assert "| aekit relu | " in text and text.splitlines()[-1].startswith("Measured with `")


def test_batch_topk_pairs_matches_flat_topk_including_the_fallback():
    from aekit.nn.topk import batch_topk_pairs

    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 512, generator=g).relu()
    x[3] += 10.0  # one row holds far more than per_row of the top entries: the exact fallback must run
    for per_row in (8, 32):
        rows, cols, values = batch_topk_pairs(x, 64 * 4, per_row)
        assert torch.equal(values, x[rows, cols])
        got = torch.zeros_like(x, dtype=torch.bool)
        got[rows, cols] = True
        want = torch.zeros_like(x, dtype=torch.bool).flatten()
        want[x.flatten().topk(64 * 4).indices] = True
        assert torch.equal(got, want.view_as(x))
        assert len(rows) == 64 * 4


def test_dense_encode_matches_linear_and_passes_gradcheck():
    """The dense encoder's cheaper backward (the pre-encoder bias's gradient as one mat-vec) is the same function
    as F.linear(x − center, W, b), checked against finite differences in float64 and against autograd in float32."""
    from aekit.nn.dense_ops import dense_encode

    g = torch.Generator().manual_seed(11)
    x, W = torch.randn(7, 5, generator=g, dtype=torch.float64), torch.randn(9, 5, generator=g, dtype=torch.float64)
    b, c = torch.randn(9, generator=g, dtype=torch.float64), torch.randn(5, generator=g, dtype=torch.float64)
    args = [t.requires_grad_() for t in (x, W, b, c)]
    assert torch.autograd.gradcheck(dense_encode, args)
    assert torch.autograd.gradcheck(lambda x, W, b: dense_encode(x, W, b), args[:3])
    x32, W32, b32, c32 = (t.detach().float().requires_grad_() for t in (x, W, b, c))
    out = dense_encode(x32, W32, b32, c32)
    weights = torch.randn(out.shape, generator=g)
    grads = torch.autograd.grad((out * weights).sum(), (W32, b32, c32))
    x_ref, W_ref, b_ref, c_ref = (t.detach().float().requires_grad_() for t in (x, W, b, c))
    ref = torch.nn.functional.linear(x_ref - c_ref, W_ref, b_ref)
    torch.testing.assert_close(out, ref)
    for got, want in zip(grads, torch.autograd.grad((ref * weights).sum(), (W_ref, b_ref, c_ref)), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
