"""Reading Delta tables: delta-rs lists a snapshot's files, Spark reads them (time travel included)."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from lakeforge.lake.catalog import Catalog
from lakeforge.lake.delta_common import (
    FileEntry,
    check_reader_features,
    open_table,
    snapshot_files,
    spark_schema_from_delta,
)
from lakeforge.lake.lineage import META_PREFIX, lineage_from_commit

log = logging.getLogger(__name__)

# Characters Spark escapes in partition folder names (ExternalCatalogUtils.escapePathName).
_SPARK_ESCAPED = {chr(c) for c in range(1, 32)} | set("\"#%'*/:=?\\\x7f{[]^")
_HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"


@dataclass(frozen=True)
class TableInfo:
    """A table's current snapshot in figures."""

    name: str
    uri: str
    version: int
    rows: int
    files: int
    size_bytes: int
    last_write: datetime | None
    partition_by: list[str]
    schema: pa.Schema


@dataclass(frozen=True)
class HistoryEntry:
    """One commit of a table, with the lineage lakeforge recorded in it."""

    version: int
    timestamp: datetime
    operation: str
    mode: str | None
    rows_added: int | None
    rows_removed: int | None
    files_added: int | None
    files_removed: int | None
    bytes_added: int | None
    app_id: str | None
    app_version: int | None
    lineage: dict[str, Any] = field(default_factory=dict)


def _spark_escape(value: str | None) -> str:
    if value is None or value == "":
        return _HIVE_NULL
    return "".join(f"%{ord(ch):02X}" if ch in _SPARK_ESCAPED else ch for ch in value)


def _is_hive_path(entry: FileEntry, partition_cols: list[str]) -> bool:
    """True when the file sits in the folder Spark would derive its partition values from."""
    expected = [f"{c}={_spark_escape(entry.partition_values.get(c))}" for c in partition_cols]
    return entry.path.split("/")[:-1] == expected


def _file_uri(base: str, relative: str) -> str:
    return f"{base.rstrip('/')}/{relative}"


def read_table(
    spark: Any,
    catalog: Catalog,
    table: str,
    version: int | None = None,
    partitions: Callable[[Mapping[str, str | None]], bool] | None = None,
) -> Any:
    """Read a table (or one of its versions) as a Spark DataFrame, columns in the table's order.

    ``partitions``: keep only the files whose partition values (Delta strings, e.g. dates as
    YYYY-MM-DD) it accepts, chosen on the driver, so Spark never lists the others.
    """
    name = catalog.require(table)
    snapshot = open_table(catalog, name, version)
    check_reader_features(name, snapshot)
    schema = spark_schema_from_delta(snapshot.schema())
    # Quoted: column names may hold dots, spaces or backticks.
    columns = ["`" + f.name.replace("`", "``") + "`" for f in schema.fields]
    partition_cols = list(snapshot.metadata().partition_columns)
    files = snapshot_files(snapshot)
    if partitions is not None:
        files = [f for f in files if partitions(f.partition_values)]
    base = catalog.table_uri(name)
    log.info("reading table '%s' version %d (%d files)", name, snapshot.version(), len(files))
    if not files:
        return spark.createDataFrame([], schema)
    if not partition_cols:
        return spark.read.schema(schema).parquet(*[_file_uri(base, f.path) for f in files]).select(*columns)
    if all(_is_hive_path(f, partition_cols) for f in files):
        # The full schema makes Spark type the partition columns as the table does.
        reader = spark.read.schema(schema).option("basePath", base)
        return reader.parquet(*[_file_uri(base, f.path) for f in files]).select(*columns)
    return _read_by_partition(spark, schema, partition_cols, files, base).select(*columns)


def _read_by_partition(spark: Any, schema: Any, partition_cols: list[str], files: list[FileEntry], base: str) -> Any:
    """Read tables not laid out Hive-style: partition values come from the log, not folder names."""
    from functools import reduce

    from pyspark.sql import functions as F  # noqa: N812
    from pyspark.sql.types import StructType

    data_schema = StructType([f for f in schema.fields if f.name not in partition_cols])
    types = {f.name: f.dataType for f in schema.fields}
    groups: dict[tuple[str | None, ...], list[str]] = defaultdict(list)
    for entry in files:
        key = tuple(entry.partition_values.get(c) for c in partition_cols)
        groups[key].append(_file_uri(base, entry.path))
    frames = []
    for values, paths in groups.items():
        frame = spark.read.schema(data_schema).parquet(*paths)
        for column, value in zip(partition_cols, values, strict=True):
            frame = frame.withColumn(column, F.lit(value).cast(types[column]))
        frames.append(frame)
    return reduce(lambda left, right: left.unionByName(right), frames)


def data_files(
    catalog: Catalog,
    table: str,
    version: int | None = None,
    partitions: Callable[[Mapping[str, str | None]], bool] | None = None,
) -> list[tuple[str, dict[str, str | None]]]:
    """The local paths of a snapshot's data files and their partition values, for readers that
    open the Parquet files themselves (``partitions`` as in `read_table`)."""
    name = catalog.require(table)
    snapshot = open_table(catalog, name, version)
    check_reader_features(name, snapshot)
    base = catalog.table_uri(name)
    files = [f for f in snapshot_files(snapshot) if partitions is None or partitions(f.partition_values)]
    return [(_file_uri(base, f.path), f.partition_values) for f in files]


def arrow_dataset(catalog: Catalog, table: str, version: int | None = None) -> Any:
    """A pyarrow dataset of a table snapshot via delta-rs (for DuckDB and pandas readers)."""
    name = catalog.require(table)
    snapshot = open_table(catalog, name, version)
    return snapshot.to_pyarrow_dataset()


def _timestamp(millis: Any) -> datetime:
    return datetime.fromtimestamp(int(millis) / 1000, tz=UTC)


def table_info(catalog: Catalog, table: str) -> TableInfo:
    """Figures of a table's latest snapshot: version, rows, files, size, last write, schema."""
    name = catalog.require(table)
    snapshot = open_table(catalog, name)
    files = snapshot_files(snapshot)
    last = snapshot.history(limit=1)
    return TableInfo(
        name=str(name),
        uri=catalog.table_uri(name),
        version=snapshot.version(),
        rows=sum(f.num_records or 0 for f in files),
        files=len(files),
        size_bytes=sum(f.size for f in files),
        last_write=_timestamp(last[0]["timestamp"]) if last else None,
        partition_by=list(snapshot.metadata().partition_columns),
        schema=pa.schema(snapshot.schema().to_arrow()),
    )


def _int_or_none(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def table_history(catalog: Catalog, table: str, limit: int | None = None) -> list[HistoryEntry]:
    """A table's commits, newest first, with lakeforge's lineage where it wrote them."""
    name = catalog.require(table)
    entries = []
    for commit in open_table(catalog, name).history(limit=limit):
        params = commit.get("operationParameters") or {}
        metrics = commit.get("operationMetrics") or {}

        def meta(key: str, fallback: Any = None, commit: dict[str, Any] = commit) -> Any:
            return commit.get(f"{META_PREFIX}{key}", fallback)

        entries.append(
            HistoryEntry(
                version=int(commit["version"]),
                timestamp=_timestamp(commit["timestamp"]),
                operation=str(commit.get("operation", "")),
                mode=meta("mode", params.get("mode")),
                rows_added=_int_or_none(meta("rows_added", metrics.get("num_added_rows"))),
                rows_removed=_int_or_none(meta("rows_removed", metrics.get("num_removed_rows"))),
                files_added=_int_or_none(meta("files_added", metrics.get("num_added_files"))),
                files_removed=_int_or_none(meta("files_removed", metrics.get("num_removed_files"))),
                bytes_added=_int_or_none(meta("bytes_added")),
                app_id=meta("app_id"),
                app_version=_int_or_none(meta("app_version")),
                lineage=lineage_from_commit(commit),
            )
        )
    return entries
