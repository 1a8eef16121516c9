"""Array readers: every supported format round-trips, bad input gets a DataError naming the file, and no
reader ever executes a pickle. Also the in-memory ArraySource's shuffling and exact resume."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from aekit.data import ArraySource, open_source, read_array, read_dataset
from aekit.errors import AekitError, ConfigError, DataError, FormatError, ShapeError
from aekit.fileio import load_safetensors


def rows(n: int = 20, d: int = 5, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


# --- formats -------------------------------------------------------------------------------------------


def test_npy(tmp_path):
    x = rows()
    np.save(tmp_path / "a.npy", x)
    got = read_array(tmp_path / "a.npy")
    assert got.dtype == torch.float32 and np.array_equal(got.numpy(), x)


def test_npy_of_float64_and_ints_becomes_float32(tmp_path):
    np.save(tmp_path / "f.npy", rows().astype(np.float64))
    np.save(tmp_path / "i.npy", np.arange(12, dtype=np.int64).reshape(3, 4))
    assert read_array(tmp_path / "f.npy").dtype == torch.float32
    assert torch.equal(read_array(tmp_path / "i.npy"), torch.arange(12.0).reshape(3, 4))


def test_npz_with_a_single_array_under_any_name(tmp_path):
    x = rows()
    np.savez(tmp_path / "a.npz", whatever=x)
    assert np.array_equal(read_array(tmp_path / "a.npz").numpy(), x)


def test_npz_with_several_arrays_uses_activations(tmp_path):
    x = rows()
    np.savez_compressed(tmp_path / "a.npz", labels=np.arange(20), activations=x, other=rows(seed=1))
    assert np.array_equal(read_array(tmp_path / "a.npz").numpy(), x)


def test_npz_with_several_unnamed_arrays_is_ambiguous(tmp_path):
    np.savez(tmp_path / "a.npz", first=rows(), second=rows(seed=1))
    with pytest.raises(DataError, match=r"several arrays \['first', 'second'\]") as err:
        read_array(tmp_path / "a.npz")
    assert str(tmp_path / "a.npz") in str(err.value)


def test_npz_name_holding_a_plain_npy_array(tmp_path):
    x = rows()
    with open(tmp_path / "a.npz", "wb") as f:  # np.load goes by content; the reader must not crash on it
        np.save(f, x)
    assert np.array_equal(read_array(tmp_path / "a.npz").numpy(), x)


def test_safetensors(tmp_path):
    x = torch.from_numpy(rows())
    save_file({"activations": x, "mean": x.mean(0, keepdim=True)}, tmp_path / "a.safetensors")
    assert torch.equal(read_array(tmp_path / "a.safetensors"), x)
    save_file({"h": x.half()}, tmp_path / "b.safetensors")
    assert torch.equal(read_array(tmp_path / "b.safetensors"), x.half().float())


def test_pt_plain_tensor_and_dict_of_tensors(tmp_path):
    x = torch.from_numpy(rows())
    torch.save(x, tmp_path / "a.pt")
    torch.save({"activations": x, "tokens": torch.arange(20)}, tmp_path / "b.pth")
    assert torch.equal(read_array(tmp_path / "a.pt"), x)
    assert torch.equal(read_array(tmp_path / "b.pth"), x)


def test_read_dataset_and_open_source_on_an_array_file(tmp_path):
    x = rows(40, 3)
    np.save(tmp_path / "a.npy", x)
    assert np.array_equal(read_dataset(tmp_path / "a.npy").numpy(), x)
    src = open_source(tmp_path / "a.npy", batch_size=8, seed=0)
    assert isinstance(src, ArraySource) and src.d == 3
    batch = next(iter(src))
    assert batch.shape == (8, 3) and batch.dtype == torch.float32


# --- bad input -----------------------------------------------------------------------------------------


def test_one_dimensional_array(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(5, dtype=np.float32))
    with pytest.raises(ShapeError, match=r"2-D array .* shape \(5,\)") as err:
        read_array(tmp_path / "a.npy")
    assert str(tmp_path / "a.npy") in str(err.value)


def write_object_npy(path: Path) -> None:
    np.save(path, np.array([[1, "two"], [3, None]], dtype=object), allow_pickle=True)


def write_truncated_safetensors(path: Path) -> None:
    save_file({"a": torch.zeros(4, 4)}, path)
    path.write_bytes(path.read_bytes()[:-9])


@pytest.mark.parametrize(
    "name, write, message",
    [
        ("obj.npy", write_object_npy, "holds Python objects"),
        ("a.csv", lambda p: p.write_text("1,2\n3,4\n"), "unsupported data format '.csv'"),
        ("missing.npy", lambda p: None, "not found"),
        ("zero_rows.npy", lambda p: np.save(p, np.zeros((0, 4), np.float32)), "empty"),
        ("zero_bytes.npy", lambda p: p.write_bytes(b""), r"is not a \.npy file \(it is empty\)"),
        ("zero_bytes.pt", lambda p: p.write_bytes(b""), r"is not a \.pt file \(it is empty\)"),
        ("inf.npy", lambda p: np.save(p, np.array([[1.0, np.inf]], np.float32)), r"non-finite value \(inf\)"),
        ("nan.pt", lambda p: torch.save(torch.tensor([[0.0], [float("nan")]]), p), "at row 1, column 0"),
        ("bool.npy", lambda p: np.save(p, np.ones((2, 2), bool)), "real numbers"),
        ("list.pt", lambda p: torch.save([torch.zeros(2, 2)], p), "found list"),
        ("truncated.safetensors", write_truncated_safetensors, "truncated|corrupt"),
    ],
)
def test_bad_files_get_one_clear_error_naming_the_file(tmp_path, name, write, message):
    path = tmp_path / name
    write(path)
    with pytest.raises(AekitError, match=message) as err:
        read_array(path)
    assert str(path) in str(err.value)
    assert isinstance(err.value, (DataError, FormatError))


# --- security: nothing is executed ---------------------------------------------------------------------


class Payload:
    """Unpickling this creates (truncates) the marker file: proof that code from the file ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def malicious_files(tmp_path: Path, marker: Path) -> dict[str, Path]:
    files = {}
    files["torch.save"] = tmp_path / "evil.pt"
    torch.save(Payload(marker), files["torch.save"])
    files["torch.save in a dict"] = tmp_path / "evil_dict.pth"
    torch.save({"activations": torch.zeros(3, 3), "x": Payload(marker)}, files["torch.save in a dict"])
    for protocol in (0, 2, pickle.HIGHEST_PROTOCOL):
        files[f"raw pickle protocol {protocol}"] = path = tmp_path / f"evil_p{protocol}.pt"
        path.write_bytes(pickle.dumps(Payload(marker), protocol=protocol))
    files["npy object array"] = tmp_path / "evil.npy"
    np.save(files["npy object array"], np.array([Payload(marker)], dtype=object), allow_pickle=True)
    files["npz object array"] = tmp_path / "evil.npz"
    np.savez(files["npz object array"], activations=np.array([Payload(marker)], dtype=object))
    files["torch.save named safetensors"] = tmp_path / "model.safetensors"
    torch.save(Payload(marker), files["torch.save named safetensors"])
    files["raw pickle named safetensors"] = tmp_path / "raw" / "model.safetensors"
    files["raw pickle named safetensors"].parent.mkdir()
    files["raw pickle named safetensors"].write_bytes(pickle.dumps(Payload(marker), protocol=2))
    return files


def test_the_payload_is_live(tmp_path):
    """Control: an unsafe loader really would run the payload, so the refusals below mean something."""
    marker = tmp_path / "pwned"
    path = malicious_files(tmp_path, marker)["raw pickle protocol 2"]
    with open(path, "rb") as f:
        pickle.load(f).close()
    assert marker.exists()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_malicious_pickles_are_refused_and_never_run(tmp_path):
    marker = tmp_path / "pwned"
    files = malicious_files(tmp_path, marker)
    for how, path in files.items():
        with pytest.raises(AekitError) as err:
            read_array(path)
        assert str(path) in str(err.value), how
        assert not marker.exists(), f"{how}: the pickle was executed"
    for how in ("torch.save named safetensors", "raw pickle named safetensors"):
        with pytest.raises(FormatError, match="not safetensors|never loads pickles"):
            load_safetensors(files[how])
        assert not marker.exists(), how
    with pytest.raises(AekitError):
        open_source(files["torch.save"], batch_size=4)
    assert not marker.exists()


def test_pickle_refusal_says_why(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save(Payload(tmp_path / "pwned"), path)
    with pytest.raises(DataError, match="refused to load.*pickled objects"):
        read_array(path)


# --- ArraySource ---------------------------------------------------------------------------------------


def array_source(n: int = 100, batch_size: int = 30, seed: int = 0) -> ArraySource:
    x = torch.from_numpy(rows(n, 4, seed=42))
    x[:, 0] = torch.arange(n, dtype=torch.float32)
    return ArraySource(x, batch_size=batch_size, seed=seed)


def take(src, n: int) -> list[torch.Tensor]:
    it = iter(src)
    return [next(it) for _ in range(n)]


def test_array_source_reads_each_row_once_per_epoch_and_reshuffles():
    ids = torch.cat(take(array_source(batch_size=20), 10))[:, 0].long()
    first, second = ids[:100], ids[100:]
    assert torch.equal(first.sort().values, torch.arange(100))
    assert torch.equal(second.sort().values, torch.arange(100))
    assert not torch.equal(first, second) and not torch.equal(first, torch.arange(100))


def test_array_source_same_seed_same_batches():
    a, b, c = take(array_source(seed=3), 8), take(array_source(seed=3), 8), take(array_source(seed=4), 8)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))


@pytest.mark.parametrize("n_before, n_after", [(1, 9), (3, 4), (10, 10)])  # 30 rows a batch, 100 an epoch
def test_array_source_resume_is_exact(n_before, n_after):
    src = array_source(seed=7)
    take(src, n_before)
    state = json.loads(json.dumps(src.state_dict()))
    expected = take(src, n_after)
    fresh = array_source(seed=7)
    fresh.load_state_dict(state)
    assert all(torch.equal(x, y) for x, y in zip(expected, take(fresh, n_after), strict=True))


def test_array_source_resume_with_another_seed_is_refused():
    src = array_source(seed=7)
    take(src, 2)
    with pytest.raises(DataError, match="seed"):
        array_source(seed=8).load_state_dict(src.state_dict())


def test_array_source_rejects_bad_input():
    with pytest.raises(DataError, match="array of numbers"):
        ArraySource(np.array([[1, None]], dtype=object), batch_size=2)
    with pytest.raises(DataError, match="non-finite"):
        ArraySource(np.array([[1.0, np.nan]]), batch_size=2)
    with pytest.raises(ConfigError, match="batch_size"):
        ArraySource(rows(), batch_size=0)


def test_batch_larger_than_the_data_wraps_around_epochs():
    batch = next(iter(array_source(n=10, batch_size=25)))
    assert batch.shape == (25, 4)
    counts = torch.bincount(batch[:, 0].long(), minlength=10)
    assert counts.min() >= 2 and counts.max() <= 3  # two whole epochs and part of a third
