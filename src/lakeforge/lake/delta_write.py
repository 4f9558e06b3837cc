"""Writing Delta tables: Spark executors write Parquet, the driver commits it with delta-rs.

Layout: Spark writes ``<table>/_staging/<write_id>/<col>=<val>/part-*.parquet``; the driver
moves each file to ``<table>/<col>=<val>/part-<n>-<write_id>.snappy.parquet`` (Hive layout,
so Spark reads partitions back with ``basePath``), reads each footer for Delta stats, and
commits add/remove actions in one Delta transaction. Until that commit, no reader sees the
files; a crash leaves only unreferenced files, which ``vacuum`` removes. ``write_staged`` commits
files another writer staged in the same layout (batch scoring writes them with pyarrow).

Idempotence: pass ``app_id = "<pipeline>.<step>.<partition>"`` and ``app_version`` = a
number the caller increases monotonically for each new batch of that app_id (e.g. the run
timestamp as an int, or the run date as YYYYMMDD). The commit records the pair as a Delta
application transaction; a write whose ``app_version`` is not above the recorded one is
skipped, so retrying a job that already committed writes nothing twice.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal, TypedDict, Unpack
from urllib.parse import unquote

from deltalake import DeltaTable, Schema
from deltalake.exceptions import CommitFailedError, DeltaError
from deltalake.transaction import (
    AddAction,
    CommitProperties,
    RemoveAction,
    Transaction,
    create_table_with_add_actions,
)

from lakeforge.errors import (
    CommitConflictError,
    EnvironmentSetupError,
    SchemaMismatchError,
    TableError,
    UsageError,
    storage_failure,
)
from lakeforge.lake.catalog import Catalog, TableName
from lakeforge.lake.delta_common import (
    PARTITION_TYPES,
    FileEntry,
    check_reader_features,
    delta_schema_from_arrow,
    delta_schema_from_spark,
    field_types,
    open_table,
    schema_differences,
    snapshot_files,
)
from lakeforge.lake.delta_stats import file_stats
from lakeforge.lake.lineage import Lineage, commit_metadata

log = logging.getLogger(__name__)

WriteMode = Literal["append", "overwrite", "overwrite_partitions"]
WRITE_MODES = ("append", "overwrite", "overwrite_partitions")
STAGING_DIR = "_staging"
_HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"


@dataclass(frozen=True)
class CommitResult:
    """The outcome of one ``write_table`` call."""

    table: str
    version: int
    mode: str
    files_added: int
    files_removed: int
    rows: int
    bytes: int
    skipped: bool  # True when the app transaction had already been applied


@dataclass(frozen=True)
class _Published:
    """A data file moved into the table folder, ready to be committed."""

    action: AddAction
    rows: int


@dataclass
class _Write:
    """Everything one commit attempt needs."""

    name: TableName
    uri: str
    mode: str
    write_id: str
    partition_cols: list[str]
    data_schema: Schema
    files: list[_Published]
    app_id: str | None
    app_version: int | None
    lineage: Lineage | None
    commit_started: bool = False
    # overwrite_partitions: partitions replaced even when this write adds no file to them.
    replace: frozenset[tuple[str | None, ...]] = frozenset()
    extra: Mapping[str, Any] = field(default_factory=dict)  # the caller's facts for the commit metadata

    def touched(self) -> set[tuple[str | None, ...]]:
        """The partition-value tuples this write replaces (overwrite_partitions)."""
        cols = self.partition_cols
        return {tuple(f.action.partition_values.get(c) for c in cols) for f in self.files} | set(self.replace)


def _already_applied(table: DeltaTable, app_id: str | None, app_version: int | None) -> bool:
    """True when the table already holds this app transaction (or a later one)."""
    if app_id is None or app_version is None:
        return False
    applied = table.transaction_version(app_id)
    return applied is not None and applied >= app_version


def _check_target(
    name: TableName, table: DeltaTable, data_schema: Schema, partition_by: Sequence[str] | None
) -> list[str]:
    """Check the data fits an existing table; return the table's partition columns."""
    check_reader_features(name, table)
    table_parts = list(table.metadata().partition_columns)
    if partition_by is not None and list(partition_by) != table_parts:
        raise SchemaMismatchError(
            f"table '{name}' is partitioned by {table_parts} but the write asks for {list(partition_by)}; "
            "pass the table's partition columns (or none)"
        )
    diffs = schema_differences(table.schema(), data_schema)
    if diffs:
        raise SchemaMismatchError(
            f"data written to table '{name}' does not match its schema: {'; '.join(diffs)}. "
            "Select and cast the DataFrame's columns to the table's schema"
        )
    return table_parts


def _check_new_partitions(name: TableName, data_schema: Schema, partition_by: Sequence[str]) -> None:
    """Partition columns of a new table must exist and have a type that folder names carry."""
    types = field_types(data_schema.to_json())
    for column in partition_by:
        if column not in types:
            raise SchemaMismatchError(
                f"table '{name}': partition column '{column}' is not a column of the data (columns: {', '.join(types)})"
            )
        kind = types[column].strip('"')
        if kind not in PARTITION_TYPES:
            raise SchemaMismatchError(
                f"table '{name}': partition column '{column}' has type {kind}; "
                f"partition by one of: {', '.join(sorted(PARTITION_TYPES))}"
            )
    if len(partition_by) == len(types):
        raise SchemaMismatchError(f"table '{name}': every column is a partition column; keep one data column")


def _publish_staged(table_dir: Path, staging: Path, write_id: str, partition_cols: list[str]) -> list[_Published]:
    """Move Spark's staged Parquet files into the table's Hive layout and build their add actions."""
    published: list[_Published] = []
    staged = sorted(
        path
        for path in staging.rglob("*.parquet")
        if not path.name.startswith((".", "_")) and "_temporary" not in path.parts
    )
    for number, source in enumerate(staged):
        relative_dir = source.parent.relative_to(staging)
        partition_values: dict[str, str | None] = {}
        for column, part in zip(partition_cols, relative_dir.parts, strict=True):
            key, _, raw = part.partition("=")
            if key != column:
                raise TableError(f"unexpected staged folder '{part}' for partition column '{column}'")
            # Spark escapes folder names Hive-style; Delta stores the plain value.
            partition_values[column] = None if raw == _HIVE_NULL else unquote(raw)
        rows, stats = file_stats(str(source))
        if rows == 0:
            continue  # Spark writes a schema-only file for an empty DataFrame; Delta needs none
        relative = relative_dir / f"part-{number:05d}-{write_id}.snappy.parquet"
        target = table_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
        info = target.stat()
        action = AddAction(relative.as_posix(), info.st_size, partition_values, int(info.st_mtime * 1000), True, stats)
        published.append(_Published(action, rows))
    return published


def _in_scope(entry: FileEntry, mode: str, touched: set[tuple[str | None, ...]], cols: list[str]) -> bool:
    """True when an existing file is replaced by this write."""
    if mode == "overwrite":
        return True
    if mode == "overwrite_partitions":
        return tuple(entry.partition_values.get(c) for c in cols) in touched
    return False


def _app_transactions(write: _Write) -> list[Transaction] | None:
    if write.app_id is None or write.app_version is None:
        return None
    return [Transaction(write.app_id, write.app_version)]


def _commit_once(write: _Write, snapshot: DeltaTable) -> tuple[int, int]:
    """Try one commit on ``snapshot``; return (files removed, rows removed)."""
    cols = write.partition_cols
    touched = write.touched()
    replaced = [e for e in snapshot_files(snapshot) if _in_scope(e, write.mode, touched, cols)]
    rows_removed = sum(e.num_records or 0 for e in replaced)
    meta = _metadata(write, files_removed=len(replaced), rows_removed=rows_removed)
    txns = _app_transactions(write)
    # Appends never conflict, so delta-rs may rebase them itself; an overwrite must fail on any
    # newer commit so that lakeforge can check whether its partitions changed underneath it.
    retries = None if write.mode == "append" else 0
    props = CommitProperties(custom_metadata=meta, max_commit_retries=retries, app_transactions=txns)
    adds: list[AddAction | RemoveAction] = [f.action for f in write.files]
    write.commit_started = True
    if write.mode == "overwrite":
        # delta-rs derives the removes of a full overwrite from this same snapshot.
        snapshot.create_write_transaction(
            adds, mode="overwrite", schema=snapshot.schema(), partition_by=cols, commit_properties=props
        )
    else:
        removes: list[AddAction | RemoveAction] = [
            RemoveAction(e.path, True, meta["lakeforge.committed_at_ms"], e.size, e.partition_values) for e in replaced
        ]
        snapshot.create_write_transaction(
            adds + removes,
            mode="append",
            schema=snapshot.schema(),
            partition_by=cols,
            commit_properties=props,
        )
    return len(replaced), rows_removed


def _metadata(write: _Write, *, files_removed: int, rows_removed: int) -> dict[str, Any]:
    return commit_metadata(
        write.lineage,
        {
            **write.extra,
            "mode": write.mode,
            "write_id": write.write_id,
            "app_id": write.app_id,
            "app_version": write.app_version,
            "files_added": len(write.files),
            "rows_added": sum(f.rows for f in write.files),
            "bytes_added": sum(f.action.size for f in write.files),
            "files_removed": files_removed,
            "rows_removed": rows_removed,
            "committed_at_ms": int(time.time() * 1000),
        },
    )


def _committed_version(catalog: Catalog, write: _Write) -> int:
    """Find the version our commit landed at (delta-rs does not return it)."""
    latest = open_table(catalog, write.name)
    for entry in latest.history(limit=50):
        if entry.get("lakeforge.write_id") == write.write_id:
            return int(entry["version"])
    return latest.version()


def _result(write: _Write, version: int, files_removed: int, skipped: bool = False) -> CommitResult:
    files = [] if skipped else write.files
    return CommitResult(
        table=str(write.name),
        version=version,
        mode=write.mode,
        files_added=len(files),
        files_removed=files_removed,
        rows=sum(f.rows for f in files),
        bytes=sum(f.action.size for f in files),
        skipped=skipped,
    )


def _scope_paths(table: DeltaTable, write: _Write) -> set[str]:
    cols = write.partition_cols
    touched = write.touched()
    return {e.path for e in snapshot_files(table) if _in_scope(e, write.mode, touched, cols)}


def _commit(catalog: Catalog, write: _Write, partition_by: Sequence[str] | None, max_retries: int) -> CommitResult:
    """Commit the published files, retrying lost races that did not touch this write's data."""
    for attempt in range(max_retries + 1):
        if not catalog.exists(write.name):
            try:
                write.commit_started = True
                create_table_with_add_actions(
                    write.uri,
                    write.data_schema,
                    [f.action for f in write.files],
                    mode="error",
                    partition_by=write.partition_cols or None,
                    storage_options=catalog.storage_options or None,
                    commit_properties=CommitProperties(
                        custom_metadata=_metadata(write, files_removed=0, rows_removed=0),
                        app_transactions=_app_transactions(write),
                    ),
                )
                log.info("created table '%s' (%d files)", write.name, len(write.files))
                return _result(write, _committed_version(catalog, write), 0)
            except DeltaError as exc:
                if not catalog.exists(write.name):
                    raise TableError(f"table '{write.name}' could not be created: {exc}") from exc
                log.info("table '%s' was created concurrently; committing to it", write.name)
        snapshot = open_table(catalog, write.name)
        _check_target(write.name, snapshot, write.data_schema, partition_by or write.partition_cols)
        if _already_applied(snapshot, write.app_id, write.app_version):
            return _skip(write, snapshot)
        try:
            removed, _ = _commit_once(write, snapshot)
        except CommitFailedError as exc:
            latest = open_table(catalog, write.name)
            if _already_applied(latest, write.app_id, write.app_version):
                return _skip(write, latest)
            if write.mode != "append" and _scope_paths(latest, write) != _scope_paths(snapshot, write):
                raise _conflict(write, latest.version()) from exc
            log.info("table '%s': commit raced (attempt %d): %s; retrying", write.name, attempt + 1, exc)
            continue
        except DeltaError as exc:
            raise TableError(f"commit to table '{write.name}' failed: {exc}") from exc
        version = _committed_version(catalog, write)
        log.info(
            "table '%s' version %d: %s, +%d files (%d rows), -%d files",
            write.name,
            version,
            write.mode,
            len(write.files),
            sum(f.rows for f in write.files),
            removed,
        )
        return _result(write, version, removed)
    raise _conflict(write, None)


def _conflict(write: _Write, version: int | None) -> CommitConflictError:
    write.commit_started = False  # the commit is known not to have landed: its files can go
    at = f" (now at version {version})" if version is not None else ""
    return CommitConflictError(
        f"table '{write.name}': another writer committed a conflicting change first{at}; "
        f"this {write.mode} wrote nothing. Retry the write (it is safe to retry)"
    )


def _skip(write: _Write, table: DeltaTable) -> CommitResult:
    write.commit_started = False
    log.info(
        "table '%s': app transaction '%s' version %s already applied; skipping",
        write.name,
        write.app_id,
        write.app_version,
    )
    return _result(write, table.version(), 0, skipped=True)


class WriteOptions(TypedDict, total=False):
    """The keyword options of `write_table`, passed on to `write_staged` (which documents their defaults)."""

    mode: WriteMode
    partition_by: Sequence[str] | None
    app_id: str | None
    app_version: int | None
    lineage: Lineage | None
    max_retries: int
    replace_partitions: Sequence[Mapping[str, Any]]
    metadata: Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None


def write_table(df: Any, catalog: Catalog, table: str, **options: Unpack[WriteOptions]) -> CommitResult:
    """Write a Spark DataFrame to a Delta table (created on first write) in one atomic commit.

    ``mode``: ``append`` (default), ``overwrite`` or ``overwrite_partitions``. ``metadata``: more
    facts for the commit metadata, each stored as ``lakeforge.<key>`` (values that are not
    strings, numbers or booleans as JSON text); a callable is called once the data is written,
    just before the commit (for facts the write itself produces).

    ``overwrite_partitions`` replaces every partition the data lands in, plus those listed in
    ``replace_partitions`` (``{column: value}``; None = the null partition), so a batch whose
    rows for a partition all went elsewhere still clears that partition's old rows.
    """

    def stage(folder: Path, partition_cols: list[str]) -> None:
        # Executors write the data; the driver only lists files and reads footers.
        df.write.mode("errorifexists").option("compression", "snappy").partitionBy(*partition_cols).parquet(str(folder))

    return write_staged(stage, delta_schema_from_spark(df.schema), catalog, table, **options)


def write_rows(
    rows: Sequence[Mapping[str, Any] | Sequence[Any]],
    schema: Any,
    catalog: Catalog,
    table: str,
    **options: Unpack[WriteOptions],
) -> CommitResult:
    """Write a few rows computed on the driver (a job's results: monitoring tables, references) as
    `write_table` writes a DataFrame, in one atomic commit, without a Spark job: pyarrow writes the
    Parquet. As for ``spark.createDataFrame``, ``schema`` is a StructType or a DDL string (parsed by
    the running Spark), and a row is a mapping by column name or a tuple in the schema's order."""
    import pyarrow as pa
    from pyspark.sql.pandas.types import to_arrow_schema
    from pyspark.sql.types import StructType

    spark_schema = StructType.fromDDL(schema) if isinstance(schema, str) else schema
    if not isinstance(spark_schema, StructType):
        raise UsageError(f"write_rows of '{table}': the schema must be a struct, got {spark_schema}")
    arrow_schema = to_arrow_schema(spark_schema, timezone="UTC")
    names = arrow_schema.names
    by_name = [
        {n: row.get(n) for n in names} if isinstance(row, Mapping) else dict(zip(names, row, strict=True))
        for row in rows
    ]
    data = pa.Table.from_pylist(by_name, schema=arrow_schema)
    return write_arrow(data, catalog, table, delta_schema=delta_schema_from_spark(spark_schema), **options)


def write_arrow(
    data: Any, catalog: Catalog, table: str, *, delta_schema: Schema | None = None, **options: Unpack[WriteOptions]
) -> CommitResult:
    """Write a pyarrow Table from this process (no Spark job: pyarrow writes the Parquet) in one
    atomic commit, as `write_table` writes a DataFrame. ``delta_schema``: the table's Delta schema
    when it should not be derived from the Arrow one (every field nullable)."""
    import pyarrow as pa
    import pyarrow.dataset as pads

    def stage(folder: Path, partition_cols: list[str]) -> None:
        partitioning = None
        if partition_cols:
            fields = [data.schema.field(c) for c in partition_cols]
            partitioning = pads.partitioning(pa.schema(fields), flavor="hive")
        folder.mkdir(parents=True, exist_ok=True)
        pads.write_dataset(
            data,
            folder,
            format="parquet",
            partitioning=partitioning,
            basename_template="part-{i}.snappy.parquet",
            existing_data_behavior="error",
        )

    schema = delta_schema if delta_schema is not None else delta_schema_from_arrow(data.schema)
    return write_staged(stage, schema, catalog, table, **options)


def write_staged(
    stage: Callable[[Path, list[str]], None],
    data_schema: Schema,
    catalog: Catalog,
    table: str,
    *,
    mode: WriteMode = "append",
    partition_by: Sequence[str] | None = None,
    app_id: str | None = None,
    app_version: int | None = None,
    lineage: Lineage | None = None,
    max_retries: int = 5,
    replace_partitions: Sequence[Mapping[str, Any]] = (),
    metadata: Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None = None,
) -> CommitResult:
    """`write_table` for a writer of its own: ``stage(folder, partition_cols)`` writes Parquet files
    of ``data_schema`` into ``folder``, Hive-style (``<col>=<value>/<name>.parquet``; names starting
    with ``.`` or ``_`` are ignored), and they are committed as `write_table` commits Spark's."""
    if mode not in WRITE_MODES:
        raise UsageError(f"write mode '{mode}' is not one of {', '.join(WRITE_MODES)}")
    if replace_partitions and mode != "overwrite_partitions":
        raise UsageError("replace_partitions needs mode='overwrite_partitions'")
    if (app_id is None) != (app_version is None):
        raise UsageError("pass app_id and app_version together (or neither)")
    if not catalog.is_local:
        raise UsageError(f"writing to object-store lakes ('{catalog.lake_root}') is not supported yet")
    name = TableName.parse(table)
    uri = catalog.table_uri(name)
    if catalog.exists(name):
        existing = open_table(catalog, name)
        partition_cols = _check_target(name, existing, data_schema, partition_by)
        if _already_applied(existing, app_id, app_version):
            log.info("table '%s': app transaction '%s' v%s already applied; skip", name, app_id, app_version)
            return CommitResult(str(name), existing.version(), mode, 0, 0, 0, 0, skipped=True)
    else:
        partition_cols = list(partition_by or [])
        _check_new_partitions(name, data_schema, partition_cols)
    effective_mode = "overwrite" if mode == "overwrite_partitions" and not partition_cols else mode
    write = _Write(
        name,
        uri,
        effective_mode,
        uuid.uuid4().hex,
        partition_cols,
        data_schema,
        [],
        app_id,
        app_version,
        lineage,
        replace=_partition_tuples(name, partition_cols, replace_partitions),
        extra=_extra(metadata) if isinstance(metadata, Mapping) else {},
    )
    staging = Path(uri) / STAGING_DIR / write.write_id
    try:
        _probe_writable(Path(uri), write.write_id)
        stage(staging, partition_cols)
        write.files = _publish_staged(Path(uri), staging, write.write_id, partition_cols)
        if callable(metadata):
            write.extra = _extra(metadata())
        return _commit(catalog, write, partition_by, max_retries)
    except Exception as exc:
        failure = storage_failure(exc)
        if failure is None:
            raise
        what, todo = failure
        raise EnvironmentSetupError(
            f"table '{name}': cannot write under '{uri}' (the lake root is storage.lake_root): {what}; {todo}, "
            "then rerun. "
            f"The table stays at its last committed version."
        ) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        with contextlib.suppress(OSError):
            staging.parent.rmdir()  # only when empty: another write may be staging too
        # Once a commit started, its outcome may be unknown: never delete files it may reference
        # (vacuum removes them later if the commit did not land).
        if not write.commit_started:
            _discard(Path(uri), write)


def _probe_writable(table_dir: Path, write_id: str) -> None:
    """Create the table folder and a file in it: a read-only or forbidden lake fails here, with its errno.

    (Spark's executors would fail later with "Mkdirs failed to create …", which names no cause.)
    """
    table_dir.mkdir(parents=True, exist_ok=True)
    probe = table_dir / f".lakeforge-probe-{write_id}"
    probe.touch()
    probe.unlink()


def _extra(metadata: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: v if isinstance(v, str | int | float | bool) else json.dumps(v, sort_keys=True, default=str)
        for k, v in metadata.items()
    }


def partition_value(value: Any) -> str | None:
    """A Python value as Delta (and Spark's folder names) write a partition value."""
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _partition_tuples(
    name: TableName, cols: Sequence[str], partitions: Sequence[Mapping[str, Any]]
) -> frozenset[tuple[str | None, ...]]:
    """``{column: value}`` mappings as partition-value tuples in the table's column order."""
    tuples = set()
    for partition in partitions:
        if sorted(partition) != sorted(cols):
            raise UsageError(
                f"table '{name}': replace_partitions entry {dict(partition)} must name exactly the partition "
                f"columns {list(cols)}"
            )
        tuples.add(tuple(partition_value(partition[c]) for c in cols))
    return frozenset(tuples)


def _discard(table_dir: Path, write: _Write) -> None:
    """Delete published files of a write that is known not to have committed."""
    for published in write.files:
        (table_dir / published.action.path).unlink(missing_ok=True)
    if write.files:
        log.info("table '%s': discarded %d uncommitted files", write.name, len(write.files))
