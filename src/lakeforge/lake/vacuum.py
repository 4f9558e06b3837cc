"""Vacuum: delete files under a table folder that no retained version references."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from deltalake import DeltaTable

from lakeforge.errors import UsageError
from lakeforge.lake.catalog import Catalog, TableName
from lakeforge.lake.delta_common import open_table, snapshot_files
from lakeforge.lake.delta_write import STAGING_DIR

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VacuumResult:
    """Files a vacuum deleted (or would delete, when ``dry_run``) from one table."""

    table: str
    files: list[str] = field(default_factory=list)  # paths relative to the table folder
    bytes: int = 0
    dry_run: bool = False


def _retained_versions(table: DeltaTable, cutoff_ms: float) -> set[int]:
    """Versions still reachable by time travel: all newer than the cutoff, and the one current at it."""
    stamps = {int(c["version"]): int(c["timestamp"]) for c in table.history() if "version" in c}
    retained = {v for v, ts in stamps.items() if ts >= cutoff_ms}
    older = [v for v, ts in stamps.items() if ts < cutoff_ms]
    if older:
        retained.add(max(older))
    retained.add(table.version())
    return retained


def _is_data_file(relative: str) -> bool:
    """Only data files and staging leftovers are ever deleted; anything else a user put there stays."""
    return relative.startswith(f"{STAGING_DIR}/") or relative.endswith(".parquet")


def _vacuum_table(catalog: Catalog, name: TableName, retention_hours: float, dry_run: bool) -> VacuumResult:
    root = Path(catalog.table_uri(name))
    cutoff = time.time() - retention_hours * 3600
    latest = open_table(catalog, name)
    referenced: set[str] = set()
    for version in sorted(_retained_versions(latest, cutoff * 1000)):
        snapshot = latest if version == latest.version() else open_table(catalog, name, version)
        referenced.update(entry.path for entry in snapshot_files(snapshot))
    doomed: list[str] = []
    freed = 0
    for folder, dirs, files in os.walk(root):
        if Path(folder) == root and "_delta_log" in dirs:
            dirs.remove("_delta_log")
        for file_name in files:
            path = Path(folder) / file_name
            relative = path.relative_to(root).as_posix()
            if relative in referenced or not _is_data_file(relative):
                continue
            info = path.stat()
            if info.st_mtime > cutoff:
                continue  # possibly a write in progress, or a version still inside retention
            doomed.append(relative)
            freed += info.st_size
            if not dry_run:
                path.unlink()
    if not dry_run:
        _remove_empty_dirs(root)
    log.info(
        "vacuum of table '%s': %s %d files (%d bytes)",
        name,
        "would delete" if dry_run else "deleted",
        len(doomed),
        freed,
    )
    return VacuumResult(str(name), sorted(doomed), freed, dry_run)


def _remove_empty_dirs(root: Path) -> None:
    for folder, _dirs, _files in os.walk(root, topdown=False):
        path = Path(folder)
        if path != root and path.name != "_delta_log" and not any(path.iterdir()):
            path.rmdir()


def vacuum(
    catalog: Catalog, table: str | None = None, *, retention_hours: float = 168, dry_run: bool = False
) -> list[VacuumResult]:
    """Delete unreferenced files older than the retention from one table (or every table)."""
    if not catalog.is_local:
        raise UsageError(f"vacuum of object-store lakes ('{catalog.lake_root}') is not supported yet")
    if retention_hours < 0:
        raise UsageError(f"retention_hours must be >= 0, got {retention_hours}")
    names = [catalog.require(table)] if table else catalog.list_tables()
    return [_vacuum_table(catalog, name, retention_hours, dry_run) for name in names]
