"""The catalog: table names ``<layer>.<name>`` and their folders under the lake root."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lakeforge.errors import TableNotFoundError, UsageError, did_you_mean
from lakeforge.lake.confine import confine

# The layers of DESIGN.md §2, lower first.
LAYERS = ("raw", "quarantine", "features", "predictions", "registry", "monitoring", "scratch")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class TableName:
    """A catalog name, ``layer.name``."""

    layer: str
    name: str

    @classmethod
    def parse(cls, qualified: str) -> TableName:
        """Parse ``'raw.flights'``; a bad name raises a UsageError that says what is allowed."""
        parts = qualified.strip().split(".")
        if len(parts) != 2 or not all(_NAME.match(p) for p in parts):
            raise UsageError(
                f"'{qualified}' is not a table name: use '<layer>.<name>' in lower case "
                f"(letters, digits, _), e.g. 'raw.flights'"
            )
        layer, name = parts
        if layer not in LAYERS:
            raise UsageError(
                f"'{qualified}': unknown layer '{layer}'{did_you_mean(layer, LAYERS)}; layers are {', '.join(LAYERS)}"
            )
        return cls(layer, name)

    def __str__(self) -> str:
        return f"{self.layer}.{self.name}"


class Catalog:
    """Maps table names to folders under ``lake_root`` (``<root>/<layer>/<name>``)."""

    def __init__(
        self,
        lake_root: str | Path,
        storage_options: dict[str, str] | None = None,
        *,
        allow_external: bool = False,
    ) -> None:
        self.lake_root = str(lake_root).rstrip("/")
        self.storage_options = dict(storage_options or {})
        # storage.allow_external_locations: a table folder may then be a symlink leading elsewhere.
        self.allow_external = allow_external

    @property
    def is_local(self) -> bool:
        """True when the lake root is a local path (not an object-store URI)."""
        return "://" not in self.lake_root or self.lake_root.startswith("file://")

    def _local_root(self) -> Path:
        return Path(self.lake_root.removeprefix("file://")).absolute()

    def table_uri(self, table: str | TableName) -> str:
        """The table's folder: an absolute local path, or a URI for object stores."""
        name = table if isinstance(table, TableName) else TableName.parse(table)
        if self.is_local:
            root = self._local_root()
            folder = confine(
                root / name.layer / name.name,
                [root],
                what=f"table '{name}'",
                key="storage.lake_root",
                allow_external=self.allow_external,
            )
            return str(folder)
        return f"{self.lake_root}/{name.layer}/{name.name}"

    def exists(self, table: str | TableName) -> bool:
        """True when the table has a Delta log."""
        uri = self.table_uri(table)
        if self.is_local:
            return (Path(uri) / "_delta_log").is_dir()
        from deltalake import DeltaTable

        return bool(DeltaTable.is_deltatable(uri, storage_options=self.storage_options))

    def list_tables(self) -> list[TableName]:
        """Every Delta table under the lake root, sorted by name (local lakes only for now)."""
        if not self.is_local:
            raise UsageError("listing tables of an object-store lake is not supported yet; name the table")
        root = self._local_root()
        found: list[TableName] = []
        for layer in LAYERS:
            layer_dir = root / layer
            if not layer_dir.is_dir():
                continue
            for child in sorted(layer_dir.iterdir()):
                if (child / "_delta_log").is_dir() and _NAME.match(child.name):
                    found.append(TableName(layer, child.name))
        return found

    def require(self, table: str | TableName) -> TableName:
        """Return the parsed name of an existing table, or say which tables exist."""
        name = table if isinstance(table, TableName) else TableName.parse(table)
        if not self.exists(name):
            known = [str(t) for t in self.list_tables()] if self.is_local else []
            listing = ", ".join(known) if known else "none yet"
            raise TableNotFoundError(
                f"table '{name}' does not exist under lake root '{self.lake_root}'"
                f"{did_you_mean(str(name), known)}; known tables: {listing}"
            )
        return name


def catalog_from_config(storage_cfg: Any, project_dir: Path) -> Catalog:
    """Build the catalog from the ``storage`` group; relative roots resolve against ``project_dir``."""
    root = str(storage_cfg.lake_root)
    if "://" not in root and not Path(root).is_absolute():
        root = str((project_dir / root).resolve())
    options = {str(k): str(v) for k, v in dict(storage_cfg.options or {}).items()}
    return Catalog(root, options, allow_external=bool(storage_cfg.get("allow_external_locations", False)))
