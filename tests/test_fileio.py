"""Atomic writes: all or nothing, and files that other users may read as the umask allows."""

from __future__ import annotations

import os
import stat

import pytest

from aekit.fileio import atomic_directory, atomic_write_bytes, atomic_write_json


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_written_files_and_directories_follow_the_umask(tmp_path, umask_022):
    atomic_write_bytes(tmp_path / "a.bin", b"xyz")
    atomic_write_json(tmp_path / "b.json", {"k": 1})
    with atomic_directory(tmp_path / "model") as d:
        atomic_write_bytes(d / "weights", b"w")
    assert _mode(tmp_path / "a.bin") == 0o644 and _mode(tmp_path / "b.json") == 0o644
    assert _mode(tmp_path / "model") == 0o755 and _mode(tmp_path / "model" / "weights") == 0o644
    assert (tmp_path / "a.bin").read_bytes() == b"xyz"


def test_a_stricter_umask_is_respected(tmp_path):
    old = os.umask(0o077)
    try:
        atomic_write_bytes(tmp_path / "private", b"p")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "private") == 0o600


def test_a_failed_write_keeps_the_old_content_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "keep.json"
    atomic_write_json(target, {"v": 1})
    with pytest.raises(TypeError):
        atomic_write_json(target, {"v": object()})  # not JSON-serialisable: fails before anything is written
    with pytest.raises(RuntimeError), atomic_directory(tmp_path / "dir") as d:
        atomic_write_bytes(d / "part", b"half")
        raise RuntimeError("interrupted")
    assert target.read_text().strip() == '{\n  "v": 1\n}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.json"]
