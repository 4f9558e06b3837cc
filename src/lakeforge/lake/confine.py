"""Keep the places lakeforge writes inside the lake root (or the project), unless storage allows more.

Table names can't carry ``../`` (``TableName`` allows only ``[a-z0-9_]``), but a folder on the way
can be a symlink, and config paths (export folders, the online store file) are free text. Every
such location is resolved (``..`` and symlinks followed) and must land under one of its allowed
roots; ``storage.allow_external_locations: true`` is the one switch that lifts the rule, for a lake
that deliberately keeps some data on another disk.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lakeforge.errors import ConfigError

SWITCH = "storage.allow_external_locations"


class ExternalLocationError(ConfigError):
    """A configured location resolves outside the roots lakeforge may write to."""


def confine(
    path: str | Path,
    roots: Sequence[str | Path],
    *,
    what: str,
    key: str | None = None,
    allow_external: bool = False,
) -> Path:
    """Return ``path`` made absolute; raise when, resolved, it lies outside every root.

    Args:
        path: an absolute path (resolve relative ones against the project first).
        roots: the folders it may lie in (the lake root, the project root).
        what: the location's name for the message, e.g. ``table 'raw.flights'``.
        key: the config key that set it, named in the message.
        allow_external: ``storage.allow_external_locations``; true skips the check.
    """
    absolute = Path(path).absolute()
    if allow_external:
        return absolute
    real = absolute.resolve()  # follows `..` and every symlink that exists on the way
    real_roots = [Path(root).absolute().resolve() for root in roots]
    if any(real == root or real.is_relative_to(root) for root in real_roots):
        return absolute
    via = f" (it resolves to '{real}')" if real != absolute else ""
    allowed = " or ".join(f"'{root}'" for root in real_roots)
    raise ExternalLocationError(
        f"{what} at '{absolute}'{via} is outside {allowed}; lakeforge writes only there. Move it inside, "
        f"or set {SWITCH}: true in the storage config to allow external locations",
        key=key,
    )
