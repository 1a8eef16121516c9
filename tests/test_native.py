"""The compiled SAE kernels (aekit/nn/native) against PyTorch references, on the AVX-512 and the portable build."""

import shutil

import pytest
import torch

from aekit import SAEConfig, SparseAutoencoder
from aekit.nn import native, sparse_ops
from aekit.nn.sparse_ops import sparse_decode_squared_error

HAVE_COMPILER = shutil.which("cc") is not None or shutil.which("gcc") is not None
pytestmark = pytest.mark.skipif(not HAVE_COMPILER, reason="no C compiler: the PyTorch paths are tested elsewhere")


def test_library_builds_when_a_compiler_exists():
    assert native.build.library() is not None
    assert native.usable(torch.zeros(2, dtype=torch.int64), torch.zeros(2, 3))
    assert not native.usable(None, torch.zeros(2, 3, dtype=torch.float64))
    assert not native.usable(None, torch.zeros(3, 2).t())  # not contiguous


def _check_topk(pre, bias, k):
    expected_rows = pre + (bias if bias is not None else 0)
    work = pre.clone()
    idx, val = native.bias_topk_(work, bias, k)
    assert torch.equal(work, expected_rows)  # the bias was added in place, exactly as PyTorch adds it
    assert torch.equal(work.gather(1, idx), val)
    assert all(len(set(row.tolist())) == k for row in idx)  # k distinct columns per row
    reference = expected_rows.topk(k, dim=1).values.sort(dim=1).values
    torch.testing.assert_close(val.sort(dim=1).values, reference, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("rows,n,k", [(64, 8192, 32), (37, 1000, 7), (5, 17, 1), (4, 16, 16), (3, 40, 40),
                                      (9, 333, 100)])
def test_bias_topk_selects_the_k_largest_of_pre_plus_bias(build, rows, n, k):
    g = torch.Generator().manual_seed(rows * n + k)
    pre = torch.randn(rows, n, generator=g)
    _check_topk(pre, torch.randn(n, generator=g), k)
    _check_topk(pre, None, k)


def test_bias_topk_with_ties_sorted_rows_infinities_and_nan(build):
    g = torch.Generator().manual_seed(0)
    ties = torch.randint(0, 4, (20, 500), generator=g).float()  # hundreds of equal values at the cut
    _check_topk(ties, None, 32)
    _check_topk(torch.zeros(3, 256), None, 10)
    increasing = torch.arange(2000.0).repeat(4, 1)  # every entry passes the running threshold
    _check_topk(increasing, None, 50)
    _check_topk(increasing.flip(1), None, 50)
    minus_inf = torch.full((3, 300), float("-inf"))
    minus_inf[:, 7] = 1.0
    _check_topk(minus_inf, None, 5)  # fewer than k finite entries: the fallback row path
    with_nan = torch.randn(4, 300, generator=g)
    with_nan[:, 11] = float("nan")
    with_nan[:, 12] = -float("nan")  # x86's default NaN has its sign bit set
    idx, _ = native.bias_topk_(with_nan.clone(), None, 3)
    assert ((idx == 11).any(dim=1) & (idx == 12).any(dim=1)).all()  # NaN ranks above every number, as in torch


def _problem(batch, n, d, k, seed=0):
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, n, (batch, k), generator=g)
    idx[:, -1] = 3  # one latent in every row: more entries per latent than one block of the kernels
    return (torch.randn(batch, d, generator=g), torch.randn(n, d, generator=g), idx,
            torch.randn(batch, k, generator=g))


@pytest.mark.parametrize("batch,n,d,k", [(300, 50, 130, 5), (40, 500, 512, 32), (7, 20, 3, 300), (2, 4, 16, 1)])
def test_sparse_products_match_float64_formulas(build, batch, n, d, k):
    y, W, idx, w = _problem(batch, n, d, k)
    y64, W64, w64 = y.double(), W.double(), w.double()
    dense = torch.zeros(batch, n, dtype=torch.float64).scatter_add_(1, idx, w64)
    tol = dict(rtol=0, atol=1e-4 * max(1, k) ** 0.5)
    torch.testing.assert_close(native.weighted_row_sum(idx, w, W).double(), dense @ W64, **tol)
    torch.testing.assert_close(native.gather_dot(idx, W, y).double(), torch.einsum("bkd,bd->bk", W64[idx], y64), **tol)
    crow, _, order = sparse_ops._grouped_by_row(idx, n)
    scattered = native.scatter_outer(crow.long(), order, w, y, k, alpha=0.5)
    torch.testing.assert_close(scattered.double(), 0.5 * dense.T @ y64, rtol=0, atol=1e-4 * batch ** 0.5)


def test_decode_residual_matches_its_definition(build):
    y, W, idx, w = _problem(64, 200, 130, 9, seed=1)
    bias = torch.randn(130)
    y_hat, r, sq, dots = native.decode_residual(idx, w, W, bias, y, with_dots=True)
    expected = torch.einsum("bk,bkd->bd", w.double(), W.double()[idx]) + bias.double()
    torch.testing.assert_close(y_hat.double(), expected, rtol=0, atol=1e-4)
    torch.testing.assert_close(r, y_hat - y, rtol=0, atol=1e-5)
    torch.testing.assert_close(sq.double(), (r.double() ** 2).sum(1), rtol=1e-5, atol=0)
    torch.testing.assert_close(dots.double(), torch.einsum("bkd,bd->bk", W.double()[idx], r.double()), rtol=0,
                               atol=1e-3)


def test_row_constraints(build):
    g = torch.Generator().manual_seed(2)
    grad, W = torch.randn(100, 70, generator=g), torch.randn(100, 70, generator=g)
    W /= W.norm(dim=1, keepdim=True)
    expected = grad - (grad * W).sum(1, keepdim=True) * W
    native.project_rows_(grad, W)
    torch.testing.assert_close(grad, expected, rtol=0, atol=1e-5)
    assert (grad * W).sum(1).abs().max() < 1e-5
    V = torch.randn(50, 33, generator=g) * 7
    V[4] = 0.0
    expected = V / V.norm(dim=1, keepdim=True).clamp_min(1e-12)
    native.normalize_rows_(V, 1e-12)
    torch.testing.assert_close(V, expected, rtol=0, atol=1e-6)
    assert torch.equal(V[4], torch.zeros(33))  # a zero row stays zero rather than NaN


def test_results_do_not_depend_on_the_thread_count(build):
    y, W, idx, w = _problem(257, 300, 100, 8, seed=3)
    crow, _, order = sparse_ops._grouped_by_row(idx, 300)
    threads = torch.get_num_threads()
    outputs = []
    try:
        for n_threads in (1, 2):
            torch.set_num_threads(n_threads)
            pre = torch.randn(257, 300, generator=torch.Generator().manual_seed(4))
            outputs.append([*native.bias_topk_(pre, None, 8), native.weighted_row_sum(idx, w, W),
                            native.gather_dot(idx, W, y), native.scatter_outer(crow.long(), order, w, y, 8)])
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(*outputs, strict=True):
        assert torch.equal(a, b)


def test_fused_decode_squared_error_gradients_match_autograd(build):
    g = torch.Generator().manual_seed(5)
    batch, n, d, k = 48, 120, 40, 6
    idx = torch.stack([torch.randperm(n, generator=g)[:k] for _ in range(batch)])
    values = torch.rand(batch, k, generator=g).requires_grad_()
    W = torch.randn(n, d, generator=g).requires_grad_()
    b = torch.randn(d, generator=g).requires_grad_()
    target = torch.randn(batch, d, generator=g)
    loss, y_hat = sparse_decode_squared_error(values, idx, W, b, target)
    (3.0 * loss).backward()
    assert not y_hat.requires_grad
    grads = [t.grad.clone() for t in (values, W, b)]
    for t in (values, W, b):
        t.grad = None
    dense = torch.zeros(batch, n).scatter(1, idx, values)
    reference_hat = dense @ W + b
    reference = (reference_hat - target).pow(2).sum(-1).mean()
    (3.0 * reference).backward()
    torch.testing.assert_close(loss, reference, rtol=1e-5, atol=0)
    torch.testing.assert_close(y_hat, reference_hat.detach(), rtol=0, atol=1e-5)
    for got, t in zip(grads, (values, W, b), strict=True):
        torch.testing.assert_close(got, t.grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("architecture", ["topk", "batchtopk", "matryoshka", "jumprelu", "relu", "gated"])
@pytest.mark.parametrize("n_latents", [512, 64])  # 64: codes wide enough for the dense formulas
def test_sae_training_step_agrees_with_the_pytorch_kernels(build, monkeypatch, architecture, n_latents):
    """An SAE's losses and gradients are the same (to float32 rounding) with the kernels on and off."""
    g = torch.Generator().manual_seed(6)
    x = torch.randn(256, 64, generator=g)
    results = []
    for use_native in (True, False):
        if not use_native:
            monkeypatch.setattr(native.build, "library", lambda: None)
        model = SparseAutoencoder(SAEConfig(d_in=64, n_latents=n_latents, architecture=architecture, k=8), seed=0)
        model.initialize_from_data(x)
        model.train()
        out = model(x, dead_mask=torch.arange(n_latents) % 5 == 0)  # AuxK on a fifth of the latents
        sum(out.losses.values()).backward()
        model.before_optimizer_step()
        indices = out.codes.indices.sort(1).values if out.codes.is_sparse else None
        results.append((out.losses, indices, [p.grad.clone() for p in model.parameters()]))
    (losses_a, idx_a, grads_a), (losses_b, idx_b, grads_b) = results
    if idx_a is not None:
        assert torch.equal(idx_a, idx_b)
    for name in losses_a:
        torch.testing.assert_close(losses_a[name], losses_b[name], rtol=1e-5, atol=1e-7)
    for a, b in zip(grads_a, grads_b, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_sum_squares_is_accurate_and_the_trainer_norm_matches_pytorch(build):
    from aekit.train.optim import gradient_norm

    g = torch.Generator().manual_seed(7)
    grads = [torch.randn(300, 129, generator=g), torch.randn(17, generator=g), torch.randn(40000, generator=g)]
    exact = sum(float((t.double() ** 2).sum()) for t in grads)
    assert native.sum_squares(grads[0]) == pytest.approx(float((grads[0].double() ** 2).sum()), rel=1e-6)
    assert native.sum_squares(torch.zeros(0)) == 0.0
    assert float(gradient_norm(grads)) == pytest.approx(exact ** 0.5, rel=1e-6)
    assert float(gradient_norm(grads)) == pytest.approx(float(torch.nn.utils.get_total_norm(grads)), rel=1e-5)


def test_kernels_build_in_a_temporary_directory_when_the_cache_is_not_writable(monkeypatch, tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    monkeypatch.setenv("AEKIT_NATIVE_CACHE", str(blocked / "sub"))
    lib = native.load()
    assert lib.aekit_sum_squares is not None


@pytest.mark.parametrize("use_native", [True, False])
def test_nested_squared_errors_match_the_prefix_reconstructions(build, monkeypatch, use_native):
    """Every Matryoshka prefix's error and the gradients of any weighting of them, against dense autograd."""
    from aekit.nn.sparse_ops import sparse_nested_squared_errors

    if not use_native:
        monkeypatch.setattr(native.build, "library", lambda: None)
    g = torch.Generator().manual_seed(8)
    batch, n, d, k, prefixes = 64, 96, 40, 6, [6, 24, 48, 96]
    idx = torch.stack([torch.randperm(n, generator=g)[:k] for _ in range(batch)])
    idx[:5, -1] = 0  # padded slots (BatchTopK rows with fewer latents) point at latent 0 with value 0
    values = torch.rand(batch, k, generator=g)
    values[:5, -1] = 0.0
    values.requires_grad_()
    W = torch.randn(n, d, generator=g).requires_grad_()
    b = torch.randn(d, generator=g).requires_grad_()
    target = torch.randn(batch, d, generator=g)
    weights = torch.tensor([0.3, 0.2, 0.1, 1.0])
    errors, y_hat = sparse_nested_squared_errors(values, idx, W, b, target, prefixes)
    (errors * weights).sum().backward()
    grads = [t.grad.clone() for t in (values, W, b)]
    for t in (values, W, b):
        t.grad = None
    dense = torch.zeros(batch, n).scatter(1, idx, values)
    reference = torch.stack([(dense[:, :m] @ W[:m] + b - target).pow(2).sum(-1).mean() for m in prefixes])
    (reference * weights).sum().backward()
    torch.testing.assert_close(errors, reference.detach(), rtol=1e-5, atol=0)
    torch.testing.assert_close(y_hat, (dense @ W + b).detach(), rtol=0, atol=1e-5)
    for got, t in zip(grads, (values, W, b), strict=True):
        torch.testing.assert_close(got, t.grad, rtol=1e-4, atol=1e-6)


def test_group_by_value_is_a_stable_counting_sort(build):
    g = torch.Generator().manual_seed(8)
    idx = torch.randint(0, 300, (64, 9), generator=g)
    start, entry = native.group_by_value(idx, 300)
    flat = idx.reshape(-1)
    assert torch.equal(entry, torch.sort(flat, stable=True).indices)
    counts = torch.bincount(flat, minlength=300)
    assert torch.equal(start, torch.cat([torch.zeros(1, dtype=torch.int64), counts.cumsum(0)]))
    with pytest.raises(IndexError, match="out of range"):
        native.group_by_value(torch.tensor([[0, 300]]), 300)


def test_kth_largest_and_batch_select(build):
    g = torch.Generator().manual_seed(9)
    v = torch.randn(5000, generator=g)
    assert native.kth_largest(v, 1) == float(v.max()) and native.kth_largest(v, 5000) == float(v.min())
    assert native.kth_largest(v, 137) == float(v.topk(137).values[-1])
    count = torch.tensor([3, 0, 5, 2])
    vals = torch.tensor([[5.0, 1.0, 2.0, 0, 0, 0], [0] * 6, [2.0, 7.0, 2.0, 2.0, 0.5, 0], [9.0, 2.0, 0, 0, 0, 0]])
    cols = torch.arange(24, dtype=torch.int32).view(4, 6)
    rows, picked, values = native.batch_select(cols, vals, count, 5)  # 9, 7, 5 and the two earliest 2.0s
    assert rows.tolist() == [0, 0, 2, 2, 3] and picked.tolist() == [0, 2, 12, 13, 18]
    assert values.tolist() == [5.0, 2.0, 2.0, 7.0, 9.0]
    assert native.batch_select(cols, vals, count, 11) is None  # only 10 entries are kept


def test_count_positive_and_dense_fire_counts(build):
    from aekit.nn.codes import Codes

    g = torch.Generator().manual_seed(12)
    x = torch.randn(301, 77, generator=g)
    x[5, 3], x[7, 9] = float("nan"), 0.0  # neither counts as firing
    assert torch.equal(native.count_positive(x), (x > 0).sum(0))
    assert torch.equal(Codes(77, dense=x.relu()).fire_counts(), (x > 0).sum(0))


def test_gated_magnitude_native_matches_the_pytorch_formula(build, monkeypatch):
    """Forward equal and gradients (pre, r_mag, b_mag) equal to float32 rounding; the formula itself is
    gradient-checked in float64 (tests/test_sae.py covers Gated end to end)."""
    from aekit.nn import dense_ops

    g = torch.Generator().manual_seed(13)
    pre0 = torch.randn(300, 40, generator=g)
    r0, b0 = torch.randn(40, generator=g) * 0.3, torch.randn(40, generator=g) * 0.5
    weights = torch.randn(300, 40, generator=g)
    results = []
    for use_native in (True, False):
        if not use_native:
            monkeypatch.setattr(native.build, "library", lambda: None)
        pre, r, b = (t.clone().requires_grad_() for t in (pre0, r0, b0))
        f = dense_ops.gated_magnitude(pre, r, b)
        results.append((f.detach(), *torch.autograd.grad((f * weights).sum(), (pre, r, b))))
    for got, want in zip(*results, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    inputs64 = tuple(t.double().requires_grad_() for t in (pre0[:6], r0, b0))
    assert torch.autograd.gradcheck(dense_ops.gated_magnitude, inputs64)


def test_selection_above_matches_the_mask_selection(build):
    from aekit.nn.bottlenecks import selection_above, selection_from_mask

    g = torch.Generator().manual_seed(14)
    pre = torch.randn(50, 300, generator=g)
    pre[3] = -5.0  # a row with nothing selected
    pre[4, 7] = float("nan")
    for threshold in (torch.rand(300, generator=g), torch.tensor(0.5)):
        got, want = selection_above(pre, threshold), selection_from_mask(pre > threshold)
        assert torch.equal(got.indices, want.indices) and torch.equal(got.valid, want.valid)
        torch.testing.assert_close(got.values, torch.where(want.valid, pre.gather(1, want.indices), 0.0))


def test_count_fired_matches_bincount(build):
    from aekit.nn.codes import Codes

    g = torch.Generator().manual_seed(15)
    idx = torch.randint(0, 97, (40, 11), generator=g)
    values = torch.randn(40, 11, generator=g)
    values[0, 0] = float("nan")
    want = torch.bincount(idx[values > 0], minlength=97)
    assert torch.equal(native.count_fired(idx, values, 97), want)
    assert torch.equal(Codes(97, values=values, indices=idx).fire_counts(), want)
    with pytest.raises(IndexError, match="out of range"):
        native.count_fired(torch.tensor([[5, 97]]), torch.ones(1, 2), 97)
