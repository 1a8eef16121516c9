"""Text corpora for activation caching: one document per line (.txt), a "text" field per line (.jsonl), or a
"text" column (.parquet, needs pyarrow). Documents are yielded lazily, so a corpus never has to fit in memory.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..errors import DataError

__all__ = ["CORPUS_SUFFIXES", "batched", "check_corpus", "iter_documents"]

CORPUS_SUFFIXES = (".txt", ".jsonl", ".parquet")
TEXT_FIELD = "text"


def check_corpus(path: str | Path) -> Path:
    """Return the corpus path if it is a readable file of a supported kind, else raise DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: corpus file not found; give a .txt, .jsonl or .parquet file")
    suffix = path.suffix.lower()
    if suffix not in CORPUS_SUFFIXES:
        raise DataError(f"{path}: unsupported corpus format {suffix or '(no suffix)'!r}; use .txt (one document "
                        "per line), .jsonl (a 'text' field per line) or .parquet (a 'text' column)")
    if suffix == ".parquet":
        _pyarrow_parquet(path)
    return path


def _pyarrow_parquet(path: Path):
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(f"{path}: reading .parquet corpora needs pyarrow, which is not installed; "
                        "run `pip install pyarrow` or convert the corpus to .txt or .jsonl") from None
    return pq


def iter_documents(path: str | Path) -> Iterator[str]:
    """Yield the non-empty documents of a corpus file in order."""
    path = check_corpus(path)
    suffix = path.suffix.lower()
    if suffix == ".txt":
        yield from _txt(path)
    elif suffix == ".jsonl":
        yield from _jsonl(path)
    else:
        yield from _parquet(path)


def batched(documents: Iterable[str], size: int) -> Iterator[list[str]]:
    """Lists of `size` consecutive documents, read lazily; the last list may be shorter."""
    batch: list[str] = []
    for doc in documents:
        batch.append(doc)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _open_text(path: Path):
    return path.open(encoding="utf-8")


def _txt(path: Path) -> Iterator[str]:
    with _open_text(path) as f:
        try:
            for line in f:
                text = line.rstrip("\r\n")
                if text.strip():
                    yield text
        except UnicodeDecodeError as e:
            raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); re-encode the corpus") from None


def _jsonl(path: Path) -> Iterator[str]:
    with _open_text(path) as f:
        number = 0
        try:
            for number, line in enumerate(f, 1):  # noqa: B007 - number is read in the decode error below
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataError(
                        f"{path}:{number}: not valid JSON ({e.msg}); each line must be one JSON object"
                    ) from None
                if not isinstance(record, dict) or not isinstance(record.get(TEXT_FIELD), str):
                    raise DataError(f"{path}:{number}: each line must be a JSON object with a string "
                                    f"{TEXT_FIELD!r} field")
                if record[TEXT_FIELD].strip():
                    yield record[TEXT_FIELD]
        except UnicodeDecodeError as e:
            where = f"{path}:{number + 1}"
            raise DataError(f"{where}: not UTF-8 text ({e.reason}); re-encode the corpus") from None


def _parquet(path: Path) -> Iterator[str]:
    pq = _pyarrow_parquet(path)
    try:
        file = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises ArrowInvalid (a ValueError) or OSError for a bad file
        raise DataError(f"{path}: cannot read the parquet file ({e})") from None
    if TEXT_FIELD not in file.schema_arrow.names:
        raise DataError(f"{path}: the parquet file has no {TEXT_FIELD!r} column (columns: "
                        f"{', '.join(file.schema_arrow.names)})")
    for batch in file.iter_batches(columns=[TEXT_FIELD], batch_size=1024):
        for text in batch.column(0).to_pylist():
            if isinstance(text, str) and text.strip():
                yield text
