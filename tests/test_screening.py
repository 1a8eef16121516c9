"""The bfloat16-screened top-k (aekit/nn/screening.py): exact against float64, on the AVX-512 and portable builds.

Screening is forced on (`MODE = "always"`): the answers must be right on any CPU, fast bfloat16 hardware or not.
"""

import shutil

import pytest
import torch

from aekit import SAEConfig, SparseAutoencoder
from aekit.nn import native, screening
from aekit.nn.preactivations import EncoderPreactivations

HAVE_COMPILER = shutil.which("cc") is not None or shutil.which("gcc") is not None
pytestmark = pytest.mark.skipif(not HAVE_COMPILER, reason="screening runs on the native kernels only")


@pytest.fixture(autouse=True)
def screen_always(monkeypatch):
    monkeypatch.setattr(screening, "MODE", "always")


def _check_exact_topk(x, W, bias, k, idx, val):
    """idx holds k distinct columns per row whose exact values are the row's k largest; val are those values."""
    exact = x.double() @ W.double().t() + bias.double()
    assert all(len(set(row.tolist())) == k for row in idx)
    chosen = exact.gather(1, idx)
    torch.testing.assert_close(val.double(), chosen, rtol=1e-5, atol=1e-5)
    best = exact.topk(k, dim=1).values
    # the chosen values are the k largest up to float32 rounding of near-ties
    torch.testing.assert_close(chosen.sort(1, descending=True).values, best, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("rows", "d", "n", "k"), [(96, 256, 2048, 16), (50, 100, 1000, 7), (33, 37, 530, 64),
                                                   (64, 512, 4096, 128)])
def test_screened_topk_is_the_exact_topk(build, rows, d, n, k):
    g = torch.Generator().manual_seed(rows + n)
    x = torch.randn(rows, d, generator=g) * 3
    W = torch.randn(n, d, generator=g) * (torch.rand(n, 1, generator=g) + 0.1)  # rows of varied norm
    bias = torch.randn(n, generator=g) * 0.5
    idx, val = screening.screened_topk(x, W, bias, k)
    _check_exact_topk(x, W, bias, k, idx, val)


@pytest.mark.parametrize("d", [512, 2304])  # 2304: a long reduction the product may split into blocks
def test_the_error_bound_holds_for_this_machines_bfloat16_product(build, d):
    """The bound assumes a float32-accumulated product rounded once to bfloat16: check it entry by entry."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(128, d, generator=g) * torch.logspace(-2, 2, d)  # very uneven coordinates
    W = torch.randn(1024, d, generator=g)
    xb, x_norm, x_err, _ = native.bf16_rows(x)
    Wb, w_norm, w_err, w_exact = native.bf16_rows(W)
    assert torch.equal(xb, x.to(torch.bfloat16)) and torch.equal(Wb, W.to(torch.bfloat16))  # round to nearest even
    torch.testing.assert_close(x_norm.double(), xb.double().norm(dim=1), rtol=(d + 2) * 2.0**-23, atol=0)  # rounded up
    assert (x_norm.double() >= xb.double().norm(dim=1)).all() and (w_exact.double() >= W.double().norm(dim=1)).all()
    assert (x_err.double() >= (xb.double() - x.double()).norm(dim=1)).all()
    approx = (xb @ Wb.t()).double()
    exact = x.double() @ W.double().t()
    u = screening.UNIT_ROUNDOFF
    bound = (x_norm[:, None].double() * (w_err + (d + 2) * 2.0**-24 * w_norm)[None].double()
             + x_err[:, None].double() * w_exact[None].double() + u / (1 - u) * approx.abs())
    assert ((approx - exact).abs() <= bound).all()
    assert float(((approx - exact).abs() / bound).max()) > 0.01  # the bound is not vacuous either


def test_near_ties_and_crowded_rows(build):
    """Latents whose pre-activations differ by less than the bfloat16 error all survive to the exact check, and a
    row where too many survive goes to the float32 path: the answer is exact either way."""
    g = torch.Generator().manual_seed(2)
    d, n, k = 128, 1024, 8
    base = torch.randn(n // 64, d, generator=g)
    W = base.repeat_interleave(64, 0) + 1e-4 * torch.randn(n, d, generator=g)  # 64 near-copies of each row
    x = torch.randn(40, d, generator=g)
    bias = torch.zeros(n)
    xb, a, c, _ = native.bf16_rows(x)
    Wb, w_norm, w_err, w_exact = native.bf16_rows(W)
    approx = xb @ Wb.t()
    p = w_err + (d + 2) * 2.0**-24 * w_norm
    rel = screening.UNIT_ROUNDOFF / (1 - screening.UNIT_ROUNDOFF)
    _, _, redo = native.screened_topk(approx, bias, x, W, (a, c, p, w_exact, rel), k, 40)
    assert redo.all()  # 64 near-ties at the top of every row: more than the cap of 40 survive
    _, _, redo = native.screened_topk(approx, bias, x, W, (a, c, p, w_exact, rel), k, 256)
    assert not redo.any()
    idx, val = screening.screened_topk(x, W, bias, k)
    _check_exact_topk(x, W, bias, k, idx, val)


def test_non_finite_inputs_take_the_float32_path(build):
    g = torch.Generator().manual_seed(3)
    x, W, bias = torch.randn(20, 64, generator=g), torch.randn(300, 64, generator=g), torch.zeros(300)
    x[4, 7] = float("nan")
    x[9, 1] = float("inf")
    idx, val = screening.screened_topk(x, W, bias, 5)
    want_idx, want_val = native.bias_topk_(x @ W.t(), bias, 5)
    assert torch.equal(idx.sort(1).values, want_idx.sort(1).values)
    torch.testing.assert_close(val.sort(1).values, want_val.sort(1).values, equal_nan=True)


def test_encoder_preactivations_routes_agree(build, monkeypatch):
    g = torch.Generator().manual_seed(4)
    x, W, bias = torch.randn(64, 96, generator=g), torch.randn(700, 96, generator=g), torch.randn(700, generator=g)
    dense = x @ W.t() + bias
    for mode in ("always", "never"):
        monkeypatch.setattr(screening, "MODE", mode)
        pre = EncoderPreactivations(x, W, bias, workspace={})
        idx, val = pre.row_topk(12)
        _check_exact_topk(x, W, bias, 12, idx, val)
        cols = torch.tensor([3, 699, 0, 41])
        torch.testing.assert_close(pre.columns(cols), dense[:, cols], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(pre.dense(), dense, rtol=1e-5, atol=1e-5)  # bias added exactly once
        torch.testing.assert_close(pre.columns(cols), dense[:, cols], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("architecture", ["topk", "batchtopk", "matryoshka"])
def test_sae_training_step_is_the_same_with_and_without_screening(build, monkeypatch, architecture):
    """Codes, losses (AuxK included) and gradients of a training step do not depend on the screen."""
    g = torch.Generator().manual_seed(5)
    x = torch.randn(256, 128, generator=g)
    results = []
    for mode in ("always", "never"):
        monkeypatch.setattr(screening, "MODE", mode)
        model = SparseAutoencoder(SAEConfig(d_in=128, n_latents=1024, architecture=architecture, k=8), seed=0)
        model.initialize_from_data(x)
        model.train()
        out = model(x, dead_mask=torch.arange(1024) % 7 == 0)
        sum(out.losses.values()).backward()
        codes = out.codes.to_dense().detach()
        results.append((out.losses, codes, [p.grad.clone() for p in model.parameters()]))
    (losses_a, codes_a, grads_a), (losses_b, codes_b, grads_b) = results
    assert set(losses_a) == set(losses_b) and "aux_k" in losses_a
    assert torch.equal(codes_a > 0, codes_b > 0)  # the same latents fire
    torch.testing.assert_close(codes_a, codes_b, rtol=1e-5, atol=1e-6)
    for name in losses_a:
        torch.testing.assert_close(losses_a[name], losses_b[name], rtol=1e-5, atol=1e-7)
    for a, b in zip(grads_a, grads_b, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_auto_mode_uses_the_screen_only_where_it_pays(monkeypatch):
    monkeypatch.setattr(screening, "MODE", "auto")
    monkeypatch.setattr(screening, "bfloat16_hardware", lambda: True)
    big_x, big_W = torch.randn(8, 512), torch.randn(8192, 512)
    assert screening.applies(big_x, big_W, 32) == (native.build.library() is not None)
    assert not screening.applies(torch.randn(8, 32), torch.randn(8192, 32), 32)  # d too small to pay
    assert not screening.applies(big_x, big_W, 2048)  # k too wide a fraction of the latents
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not screening.applies(big_x, big_W, 32)  # autocast: the product is bfloat16 anyway
    monkeypatch.setattr(screening, "bfloat16_hardware", lambda: False)
    assert not screening.applies(big_x, big_W, 32)
    monkeypatch.setattr(screening, "MODE", "never")
    monkeypatch.setattr(screening, "bfloat16_hardware", lambda: True)
    assert not screening.applies(big_x, big_W, 32)


def test_training_pauses_the_screen_after_a_batch_where_it_did_not_pay(build, monkeypatch):
    """Rows whose bounds admit too many survivors go to the float32 path; when that is most of a batch, the next
    SCREEN_PAUSE batches of the same model skip the screen (and still get the exact answer)."""
    from aekit.nn import preactivations

    g = torch.Generator().manual_seed(6)
    d, n, k = 128, 1024, 8
    W = torch.randn(n // 512, d, generator=g).repeat_interleave(512, 0) + 1e-4 * torch.randn(n, d, generator=g)
    x, bias = torch.randn(32, d, generator=g), torch.zeros(n)
    calls = []
    original = screening.screened_topk
    monkeypatch.setattr(screening, "screened_topk", lambda *a, **kw: calls.append(1) or original(*a, **kw))
    monkeypatch.setattr(preactivations, "SCREEN_PAUSE", 3)
    workspace = {}
    for _ in range(5):
        idx, val = EncoderPreactivations(x, W, bias, workspace).row_topk(k)
        _check_exact_topk(x, W, bias, k, idx, val)
    assert len(calls) == 2  # screened, paused three batches, screened again
    EncoderPreactivations(x, W, bias).row_topk(k)  # evaluation (no workspace) never pauses
    assert len(calls) == 3


@pytest.mark.parametrize("case", ["plain", "one_row_dominates", "crowded"])
def test_screened_batch_topk_is_the_exact_batch_topk(build, case):
    """BatchTopK's batch-wide selection: the `total` largest entries of the whole matrix, also when one row holds
    most of them, and when near-duplicate latents overflow the screen and send rows to the float32 path."""
    g = torch.Generator().manual_seed(7)
    d, n, rows, total = 96, 1536, 48, 48 * 6
    W = torch.randn(n, d, generator=g)
    x, bias = torch.randn(rows, d, generator=g), torch.randn(n, generator=g) * 0.1
    if case == "crowded":
        W[:600] = 3 * W[0] + 1e-4 * torch.randn(600, d, generator=g)  # 600 large near-copies of one latent
    if case == "one_row_dominates":
        x[5] *= 4.0
    stats = {}
    r, c, v = screening.screened_batch_topk(x, W, bias, total, stats=stats)
    if case == "crowded":
        assert stats["redo_fraction"] > 0
    if case == "plain":
        assert stats["redo_fraction"] == 0
    exact = x.double() @ W.double().t() + bias.double()
    assert len(set(zip(r.tolist(), c.tolist(), strict=True))) == total
    torch.testing.assert_close(v.double(), exact[r, c], rtol=1e-5, atol=1e-5)
    best = exact.flatten().topk(total).values
    torch.testing.assert_close(exact[r, c].sort(descending=True).values, best, rtol=1e-5, atol=1e-5)


def test_screened_results_do_not_depend_on_the_thread_count(build):
    g = torch.Generator().manual_seed(9)
    x, W, bias = torch.randn(200, 128, generator=g), torch.randn(2048, 128, generator=g), torch.randn(2048, generator=g)
    threads = torch.get_num_threads()
    outputs = []
    try:
        for n_threads in (1, 2):
            torch.set_num_threads(n_threads)
            outputs.append([*screening.screened_topk(x, W, bias, 16), *screening.screened_batch_topk(x, W, bias, 3200)])
    finally:
        torch.set_num_threads(threads)
    (idx_a, val_a, *batch_a), (idx_b, val_b, *batch_b) = outputs
    assert torch.equal(idx_a, idx_b) and torch.equal(val_a, val_b)
    # the batch-wide selection comes back in topk's order, which may differ: compare the sets of (row, col, value)
    assert sorted(zip(*(t.tolist() for t in batch_a), strict=True)) == sorted(zip(*(t.tolist() for t in batch_b),
                                                                                 strict=True))


def test_screen_survivors_benchmark_on_a_saved_sae(tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    from aekit.data.store import write_store

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "screen_survivors.py"
    spec = importlib.util.spec_from_file_location("screen_survivors_bench", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    x = torch.randn(300, 64, generator=torch.Generator().manual_seed(10))
    model = SparseAutoencoder(SAEConfig(d_in=64, n_latents=512, architecture="topk", k=6), seed=0)
    model.initialize_from_data(x)
    model.save(tmp_path / "model")
    write_store(tmp_path / "store", x)
    assert bench.main(["--model", str(tmp_path / "model"), "--store", str(tmp_path / "store"), "--rows", "200",
                       "--out", str(tmp_path / "screen_survivors.json")]) == 0
    out = capsys.readouterr().out
    assert "error bound holds on every entry: True" in out
    gap = float(out.split("largest difference in the chosen values ")[1].split()[0])
    assert gap < 1e-5  # the float64 top-k, up to float32 rounding of near-ties
    spec = importlib.util.spec_from_file_location("render_results", path.parent / "render_results.py")
    tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tables)
    text = tables.render("screen_survivors", tmp_path)  # the documentation's table renders from what it wrote
    assert "| error bound held on every entry | yes |" in text
