"""Writing a command's output files: a CSV table as bytes, and a set of files written into one `--out` directory
that is removed again (when the call created it) if any write fails."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..fileio import discard_partial_output

__all__ = ["csv_bytes", "write_all"]


def write_all(out: Path, writers: Sequence[tuple[str, Callable[[Path], Any]]]) -> None:
    """Call each (name, write(path)) in order; a directory this call created is removed if any write fails."""
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        for name, write in writers:
            write(out / name)
    except BaseException:
        if created:
            discard_partial_output(out, created=True)
        raise


def csv_bytes(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    """UTF-8 CSV of a header row and the rows, lines ended by a bare newline."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")
