"""A stable bucket in [0, 1) per entity, the same in batch scoring and anywhere else.

Canary serving and the exact-reasons sample pick entities by it: the first 32 bits of
SHA-256 over ``salt`` and the key values as text, joined by the unit separator. It does not
depend on Spark's version, the partitioning or the run, so an entity stays in (or out of) the
canary every day, and online serving can pick the same entities.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

SEPARATOR = "\x1f"
_SPAN = float(2**32)


def bucket(values: Sequence[Any], salt: str) -> float:
    """The bucket of one entity's key values (``None`` hashes as an empty string)."""
    text = SEPARATOR.join([salt, *("" if v is None else str(v) for v in values)])
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:8], 16) / _SPAN
