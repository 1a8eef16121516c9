"""The sharded activation store: exact round trips, visibility of incomplete writes, clear errors on
corruption, and the bounded-memory shuffled source with an exact resumable cursor."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save

from aekit.data import ActivationStore, ActivationStoreWriter, StoreSource, open_source, read_dataset, write_store
from aekit.errors import AekitError, DataError, ShapeError, StoreError


def make_rows(n: int, d: int, seed: int = 0) -> torch.Tensor:
    """Random rows whose first column is the row id, so a batch tells exactly which rows it holds."""
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed))
    x[:, 0] = torch.arange(n, dtype=torch.float32)
    return x


def take(source, n_batches: int) -> list[torch.Tensor]:
    it = iter(source)
    return [next(it) for _ in range(n_batches)]


def ids(batches: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat(batches)[:, 0].long()


def read_manifest(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_text())


def rewrite_shard(path: Path, index: int, rows: torch.Tensor) -> Path:
    """Replace a shard with valid safetensors holding `rows` and fix its checksum in the manifest."""
    manifest = read_manifest(path)
    entry = manifest["shards"][index]
    data = save({"activations": rows.contiguous()})
    (path / entry["file"]).write_bytes(data)
    entry["sha256"] = hashlib.sha256(data).hexdigest()
    (path / "manifest.json").write_text(json.dumps(manifest))
    return path / entry["file"]


# --- writing and reading back ------------------------------------------------------------------------


def test_float32_round_trip_is_exact_and_manifest_describes_the_shards(tmp_path):
    x = make_rows(1000, 16)
    store = write_store(tmp_path / "s", x, rows_per_shard=300, provenance={"model": "toy", "hook": "h"})
    assert len(store) == 1000 and store.d == 16
    assert torch.equal(store.read_all(), x)

    manifest = read_manifest(tmp_path / "s")
    assert manifest["format_version"] == 1 and manifest["complete"] is True
    assert (manifest["d"], manifest["dtype"], manifest["rows"]) == (16, "float32", 1000)
    assert manifest["provenance"] == {"model": "toy", "hook": "h"}
    assert [s["rows"] for s in manifest["shards"]] == [300, 300, 300, 100]  # the final partial shard is kept
    for shard in manifest["shards"]:
        assert shard["sha256"] == hashlib.sha256((tmp_path / "s" / shard["file"]).read_bytes()).hexdigest()
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == sorted(
        ["manifest.json"] + [s["file"] for s in manifest["shards"]]
    )  # no temporary files are left behind


def test_float16_storage_is_within_half_precision(tmp_path):
    x = make_rows(500, 8) * 3
    store = write_store(tmp_path / "s", x, rows_per_shard=128, dtype="float16")
    back = store.read_all()
    assert back.dtype == torch.float16 and read_manifest(tmp_path / "s")["dtype"] == "float16"
    assert torch.equal(back, x.half())  # exactly the float16 rounding of the input, nothing else
    torch.testing.assert_close(back.float(), x, rtol=2**-11, atol=1e-7)
    batch = next(iter(StoreSource(store, batch_size=50, seed=0)))
    assert batch.dtype == torch.float32  # sources always hand out float32


def test_writer_regroups_uneven_appends_into_full_shards(tmp_path):
    parts = [make_rows(n, 4, seed=i) for i, n in enumerate([10, 100, 1, 53, 7])]
    with ActivationStoreWriter(tmp_path / "s", d=4, rows_per_shard=64) as writer:
        for part in parts:
            writer.append(part)
    store = ActivationStore(tmp_path / "s")
    assert [s["rows"] for s in store.shards] == [64, 64, 43]
    assert torch.equal(store.read_all(), torch.cat(parts))
    assert torch.equal(read_dataset(tmp_path / "s"), torch.cat(parts))


def test_float16_overflow_is_refused_when_appending_not_when_reading(tmp_path):
    writer = ActivationStoreWriter(tmp_path / "s", d=4, dtype="float16")
    with pytest.raises(StoreError, match="float16") as err:
        writer.append(torch.full((2, 4), 1e5))
    assert str(tmp_path / "s") in str(err.value)


# --- a shard or store is visible only once complete ----------------------------------------------------


def test_store_is_invisible_until_the_writer_closes(tmp_path):
    path = tmp_path / "s"
    writer = ActivationStoreWriter(path, d=4, rows_per_shard=50)
    writer.append(make_rows(120, 4))
    manifest = read_manifest(path)
    assert manifest["complete"] is False and [s["rows"] for s in manifest["shards"]] == [50, 50]
    with pytest.raises(StoreError, match="never closed") as err:
        ActivationStore(path)
    assert "manifest.json" in str(err.value)
    with pytest.raises(StoreError):
        open_source(path, batch_size=10)
    writer.close()
    store = ActivationStore(path)
    assert len(store) == 120 and [s["rows"] for s in store.shards] == [50, 50, 20]


def test_writer_that_fails_midway_leaves_an_incomplete_store(tmp_path):
    path = tmp_path / "s"
    with pytest.raises(RuntimeError), ActivationStoreWriter(path, d=4, rows_per_shard=10) as writer:
        writer.append(make_rows(25, 4))
        raise RuntimeError("model crashed")
    with pytest.raises(StoreError, match="never closed"):
        ActivationStore(path)


def test_stray_temporary_and_unlisted_shards_are_ignored(tmp_path):
    path = tmp_path / "s"
    x = make_rows(200, 4)
    write_store(path, x, rows_per_shard=64)
    (path / ".shard_00004.safetensors.x1y2.tmp").write_bytes(b"half a shard")
    (path / "shard_00099.safetensors").write_bytes(save({"activations": torch.full((64, 4), 7.0)}))
    store = ActivationStore(path)
    assert len(store) == 200
    assert torch.equal(store.read_all(), x)
    one_epoch = take(StoreSource(store, batch_size=50, seed=1, buffer_rows=64), 4)
    assert torch.equal(ids(one_epoch).sort().values, torch.arange(200))


# --- corruption and misuse give a StoreError/DataError naming the file ---------------------------------


@pytest.fixture
def store_path(tmp_path) -> Path:
    write_store(tmp_path / "s", make_rows(300, 8), rows_per_shard=100)
    return tmp_path / "s"


def test_missing_shard_is_reported_when_opening(store_path):
    (store_path / "shard_00001.safetensors").unlink()
    with pytest.raises(StoreError, match="missing") as err:
        ActivationStore(store_path)
    assert str(store_path / "shard_00001.safetensors") in str(err.value)


def test_truncated_shard_is_reported_when_read(store_path):
    shard = store_path / "shard_00002.safetensors"
    shard.write_bytes(shard.read_bytes()[:-40])
    store = ActivationStore(store_path)
    with pytest.raises(StoreError, match="checksum mismatch") as err:
        store.read_all()
    assert str(shard) in str(err.value)
    with pytest.raises(StoreError) as err:  # even unverified, a cut shard does not parse into wrong numbers
        store.read_shard(2, verify=False)
    assert str(shard) in str(err.value)


def test_flipped_byte_fails_the_checksum(store_path):
    shard = store_path / "shard_00000.safetensors"
    data = bytearray(shard.read_bytes())
    data[-5] ^= 0xFF  # inside the tensor data: the file still parses, only the checksum can tell
    shard.write_bytes(bytes(data))
    store = ActivationStore(store_path)
    with pytest.raises(StoreError, match="checksum mismatch") as err:
        store.read_shard(0)
    assert str(shard) in str(err.value)
    with pytest.raises(StoreError):
        next(iter(StoreSource(store, batch_size=10, buffer_rows=300)))


def test_corrupt_manifest_json(store_path):
    (store_path / "manifest.json").write_text('{"format": "aekit-activation-store", "d": ')
    with pytest.raises(StoreError, match="not valid JSON") as err:
        ActivationStore(store_path)
    assert str(store_path / "manifest.json") in str(err.value)


def test_wrong_format_version(store_path):
    manifest = read_manifest(store_path)
    manifest["format_version"] = 99
    (store_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(StoreError, match="format version") as err:
        ActivationStore(store_path)
    assert str(store_path / "manifest.json") in str(err.value)


def test_malformed_manifest_field(store_path):
    manifest = read_manifest(store_path)
    del manifest["shards"][1]["sha256"]
    (store_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(StoreError, match="malformed field") as err:
        ActivationStore(store_path)
    assert str(store_path / "manifest.json") in str(err.value)


def test_empty_store_is_refused(tmp_path):
    with pytest.raises(StoreError, match="no rows") as err:
        write_store(tmp_path / "s", torch.zeros(0, 8))
    assert str(tmp_path / "s" / "manifest.json") in str(err.value)


def test_nan_in_a_shard_is_refused_with_its_position(store_path):
    rows = make_rows(100, 8)
    rows[17, 3] = float("nan")
    shard = rewrite_shard(store_path, 1, rows)  # valid file, valid checksum, bad numbers
    with pytest.raises(DataError, match=r"non-finite value \(nan\) at row 17, column 3") as err:
        ActivationStore(store_path).read_all()
    assert str(shard) in str(err.value)


def test_shard_shape_disagreeing_with_manifest(store_path):
    shard = rewrite_shard(store_path, 0, make_rows(100, 6))
    with pytest.raises(StoreError, match="manifest says") as err:
        ActivationStore(store_path).read_shard(0)
    assert str(shard) in str(err.value)


def test_writer_refuses_a_non_empty_directory_unless_overwrite(store_path):
    with pytest.raises(StoreError, match="not empty") as err:
        ActivationStoreWriter(store_path, d=8)
    assert str(store_path) in str(err.value)
    assert len(ActivationStore(store_path)) == 300  # the old store is untouched
    x = make_rows(40, 8, seed=5)
    store = write_store(store_path, x, rows_per_shard=100, overwrite=True)
    assert torch.equal(store.read_all(), x)
    assert sorted(p.name for p in store_path.glob("shard_*")) == ["shard_00000.safetensors"]


def test_writer_rejects_batches_of_the_wrong_width_or_with_nan(tmp_path):
    writer = ActivationStoreWriter(tmp_path / "s", d=8)
    with pytest.raises(ShapeError, match="8 are expected") as err:
        writer.append(torch.zeros(4, 6))
    assert str(tmp_path / "s") in str(err.value)
    bad = torch.zeros(4, 8)
    bad[2, 2] = float("inf")
    with pytest.raises(DataError, match="non-finite"):
        writer.append(bad)


def test_writer_rejects_unknown_dtype(tmp_path):
    with pytest.raises(StoreError, match="dtype"):
        ActivationStoreWriter(tmp_path / "s", d=8, dtype="int8")


def test_directory_without_manifest_is_not_a_store(tmp_path):
    (tmp_path / "empty").mkdir()
    for call in (lambda: open_source(tmp_path / "empty", 8), lambda: read_dataset(tmp_path / "empty")):
        with pytest.raises(DataError, match="manifest.json"):
            call()


# --- StoreSource: shuffling, bounded memory, exact resume ----------------------------------------------

N, D, SHARD, BUFFER = 960, 6, 64, 192  # 15 shards, 3 per chunk -> 5 chunks of 192 rows


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> ActivationStore:
    return write_store(tmp_path_factory.mktemp("store") / "s", make_rows(N, D, seed=3), rows_per_shard=SHARD)


def source(store: ActivationStore, batch_size: int = 32, seed: int = 0, buffer_rows: int = BUFFER) -> StoreSource:
    return StoreSource(store, batch_size=batch_size, seed=seed, buffer_rows=buffer_rows)


def test_every_row_exactly_once_per_epoch(store):
    x = store.read_all()
    batches = take(source(store), 2 * N // 32)
    for epoch in (batches[: N // 32], batches[N // 32 :]):
        seen = ids(epoch)
        assert torch.equal(seen.sort().values, torch.arange(N))
        assert torch.equal(torch.cat(epoch), x[seen])  # whole rows, not just ids, come back intact


def test_batches_crossing_chunk_and_epoch_boundaries_still_cover_each_row_once(store):
    stream = ids(take(source(store, batch_size=50), 39))  # 1950 rows: 2 epochs and a bit; 50 does not divide 192
    assert torch.equal(stream[:N].sort().values, torch.arange(N))
    assert torch.equal(stream[N : 2 * N].sort().values, torch.arange(N))


def test_epochs_are_reshuffled_and_seeds_are_deterministic(store):
    per_epoch = N // 32
    batches = take(source(store, seed=0), 2 * per_epoch)
    first, second = ids(batches[:per_epoch]), ids(batches[per_epoch:])
    assert not torch.equal(first, second)
    assert not torch.equal(first, torch.arange(N))  # shuffled, not file order
    again = take(source(store, seed=0), 2 * per_epoch)
    assert all(torch.equal(a, b) for a, b in zip(batches, again, strict=True))
    other = ids(take(source(store, seed=1), per_epoch))
    assert not torch.equal(first, other)


def test_memory_is_bounded_by_the_buffer(tmp_path):
    store = write_store(tmp_path / "s", make_rows(2048 + 37, 4), rows_per_shard=64)  # ~8x the buffer
    src = source(store, batch_size=100, buffer_rows=256)
    assert src.shards_per_chunk == 4
    stream = ids(take(src, 2 * (2048 + 37) // 100 + 1))
    assert torch.equal(stream[: 2048 + 37].sort().values, torch.arange(2048 + 37))
    assert src.stream.max_resident_rows <= 256
    assert src.stream.max_resident_rows == 256  # the buffer is used, not wasted


def test_a_shard_larger_than_the_buffer_is_read_alone(store):
    src = source(store, buffer_rows=10)
    take(src, N // 32)
    assert src.shards_per_chunk == 1 and src.stream.max_resident_rows == SHARD


@pytest.mark.parametrize(
    "batch_size, n_before, n_after",
    [
        (32, 7, 30),  # mid-chunk save, continue across two chunk boundaries and the epoch boundary
        (32, 6, 3),  # save exactly on a chunk boundary (6 * 32 = 192 rows)
        (50, 19, 5),  # save 10 rows before the end of the epoch; batch straddles the epoch boundary
        (50, 4, 40),  # the save point's batch crossed a chunk boundary; continue for two more epochs
    ],
)
def test_resume_gives_the_same_batches_bit_for_bit(store, batch_size, n_before, n_after):
    src = source(store, batch_size=batch_size, seed=11)
    take(src, n_before)
    state = json.loads(json.dumps(src.state_dict()))  # the trainer keeps the cursor in JSON
    expected = take(src, n_after)

    fresh = source(store, batch_size=batch_size, seed=11)
    fresh.load_state_dict(state)
    resumed = take(fresh, n_after)
    assert all(torch.equal(a, b) for a, b in zip(expected, resumed, strict=True))


def test_resume_with_another_chunk_layout_or_seed_is_refused(store):
    src = source(store, batch_size=50, seed=0)
    take(src, 3)
    state = src.state_dict()
    with pytest.raises(DataError, match="buffer_rows"):
        source(store, batch_size=50, seed=0, buffer_rows=4 * BUFFER).load_state_dict(state)
    with pytest.raises(DataError, match="seed"):
        source(store, batch_size=50, seed=1).load_state_dict(state)


def test_open_source_on_a_store_gives_a_store_source(store):
    src = open_source(store.path, batch_size=32, seed=2, buffer_rows=BUFFER)
    assert isinstance(src, StoreSource) and src.d == D and src.batch_size == 32
    assert torch.equal(ids(take(src, N // 32)).sort().values, torch.arange(N))


def test_invalid_batch_size_is_a_clear_error(store):
    with pytest.raises(AekitError, match="batch_size"):
        source(store, batch_size=0)
