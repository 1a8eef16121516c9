"""Seeds for independent random streams.

Two generators seeded with the same integer produce the same numbers; a synthetic world and a model both
seeded with 0 would then share their random directions (and the model would "recover" the world at step 0).
Each stream therefore derives its own seed from a purpose string and the user's seed.
"""

from __future__ import annotations

import hashlib


def derive_seed(purpose: str, *seeds: int) -> int:
    """A 63-bit seed that is a deterministic function of `purpose` and `seeds`, independent across purposes."""
    text = purpose + ":" + ":".join(str(int(s)) for s in seeds)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1
