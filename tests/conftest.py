import pytest
import torch


@pytest.fixture(autouse=True)
def _seed_everything():
    torch.manual_seed(0)
    yield


@pytest.fixture(params=["native", "portable"])
def build(request, monkeypatch):
    """A test taking `build` runs on the native kernels aekit uses (-march=native) and on the build without
    AVX-512 (its portable loops)."""
    from aekit.nn import native

    if request.param == "portable":
        lib = native.load(("-mno-avx512f",))
        monkeypatch.setattr(native.build, "library", lambda: lib)
    assert native.build.library() is not None
    return request.param


@pytest.fixture
def one_torch_thread():
    """Small models run faster on one torch thread than with two OpenMP threads fighting other work for two cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
