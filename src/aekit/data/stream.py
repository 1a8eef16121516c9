"""An endless, reshuffled stream of batches over chunks of rows, with an exact resumable cursor.

Both the in-memory source and the activation store read through this: the rows are split into chunks
(everything, or a few shards that fit the memory buffer), the chunk order and the row order inside each chunk
are fresh permutations every epoch, and the cursor (epoch, chunk, offset) says exactly which rows come next.
All permutations are functions of (seed, epoch, chunk), so a resumed run reads the same batches as an
uninterrupted one without saving any random-generator state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError, DataError
from ..seeding import derive_seed

ChunkLoader = Callable[[int, int], Tensor]  # (epoch, chunk) -> rows of that chunk


class ShuffledChunkStream:
    def __init__(self, n_chunks: int, load_chunk: ChunkLoader, batch_size: int, seed: int, layout: str = ""):
        if batch_size < 1:
            raise ConfigError(f"batch_size must be ≥ 1 (got {batch_size})")
        self.n_chunks = n_chunks
        self.layout = layout or f"{n_chunks} chunks"  # what a cursor's (chunk, offset) refers to
        self.load_chunk = load_chunk
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = self.chunk = self.offset = 0
        self._rows: Tensor | None = None
        self._order: Tensor | None = None
        self.max_resident_rows = 0  # the most rows ever held at once: the memory bound, measured

    def _load(self) -> None:
        self._rows = self._order = None  # drop the previous chunk before reading the next one
        rows = self.load_chunk(self.epoch, self.chunk)
        if self.offset >= len(rows):
            raise DataError(f"cursor offset {self.offset} lies beyond chunk {self.chunk} of {len(rows)} rows; "
                            "the data changed since the cursor was saved")
        g = torch.Generator().manual_seed(derive_seed("rows", self.seed, self.epoch, self.chunk))
        self._rows, self._order = rows, torch.randperm(len(rows), generator=g)
        self.max_resident_rows = max(self.max_resident_rows, len(rows))

    def next_batch(self) -> Tensor:
        parts, need = [], self.batch_size
        while need > 0:
            if self._rows is None:
                self._load()
            take = min(need, len(self._rows) - self.offset)
            parts.append(self._rows[self._order[self.offset : self.offset + take]])
            self.offset += take
            need -= take
            if self.offset == len(self._rows):
                self._rows = self._order = None
                self.offset = 0
                self.chunk += 1
                if self.chunk == self.n_chunks:
                    self.chunk, self.epoch = 0, self.epoch + 1
        batch = parts[0] if len(parts) == 1 else torch.cat(parts)
        return batch.float()

    def __iter__(self) -> Iterator[Tensor]:
        while True:
            yield self.next_batch()

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "chunk": self.chunk, "offset": self.offset, "seed": self.seed,
                "layout": self.layout}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # a cursor only means the same rows under the same seed and chunk layout (buffer_rows, shards)
        for key, mine in (("seed", self.seed), ("layout", self.layout)):
            if key in state and state[key] != mine:
                raise DataError(
                    f"data cursor: saved with {key} {state[key]!r} but this source has {mine!r}; "
                    "resume with the same seed, buffer_rows and data"
                )
        if not (0 <= int(state["chunk"]) < self.n_chunks and int(state["offset"]) >= 0):
            raise DataError(f"data cursor: chunk {state['chunk']}, offset {state['offset']} is out of range "
                            f"for {self.n_chunks} chunks")
        self.epoch, self.chunk, self.offset = int(state["epoch"]), int(state["chunk"]), int(state["offset"])
        self._rows = self._order = None


class StreamBackedSource:
    """Base for sources that read through a `ShuffledChunkStream` (set as `self.stream`)."""

    stream: ShuffledChunkStream

    @property
    def batch_size(self) -> int:
        return self.stream.batch_size

    def __iter__(self) -> Iterator[Tensor]:
        return iter(self.stream)

    def state_dict(self) -> dict[str, Any]:
        return self.stream.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.stream.load_state_dict(state)


def chunk_permutation(n: int, seed: int, epoch: int) -> list[int]:
    """The order in which a source visits its n chunks (shards) in a given epoch."""
    g = torch.Generator().manual_seed(derive_seed("chunks", seed, epoch))
    return torch.randperm(n, generator=g).tolist()
