"""Shared Delta helpers: opening tables, protocol checks, schema conversion, file listings."""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import pyarrow as pa
from deltalake import DeltaTable, Schema
from deltalake.exceptions import DeltaError
from deltalake.exceptions import TableNotFoundError as DeltaTableNotFound

from lakeforge.errors import TableError, UnsupportedTableFeatureError

if TYPE_CHECKING:
    from lakeforge.lake.catalog import Catalog, TableName

log = logging.getLogger(__name__)

# Reader features that do not change how a data file maps to rows; anything else is refused.
SAFE_READER_FEATURES = frozenset({"timestampNtz", "v2Checkpoint", "vacuumProtocolCheck"})
# Partition column types whose values round-trip through Hive-style folder names.
PARTITION_TYPES = frozenset({"string", "date", "byte", "short", "integer", "long", "boolean"})


@dataclass(frozen=True)
class FileEntry:
    """One data file of a snapshot, with its partition values as Delta strings."""

    path: str
    size: int
    num_records: int | None
    partition_values: dict[str, str | None]


def open_table(catalog: Catalog, name: TableName, version: int | None = None) -> DeltaTable:
    """Load a table snapshot (latest, or ``version``); a missing version lists what exists."""
    uri = catalog.table_uri(name)
    try:
        return DeltaTable(uri, version=version, storage_options=catalog.storage_options or None)
    except (DeltaError, DeltaTableNotFound, OSError, ValueError) as exc:
        if version is None:
            raise TableError(f"table '{name}' at '{uri}' cannot be opened: {exc}") from exc
        latest = DeltaTable(uri, storage_options=catalog.storage_options or None)
        versions = [int(entry["version"]) for entry in latest.history() if "version" in entry]
        low = min(versions, default=0)
        raise TableError(
            f"table '{name}' has no version {version}: available versions are {low}..{latest.version()}"
        ) from exc


def check_reader_features(name: TableName | str, table: DeltaTable) -> None:
    """Refuse tables whose protocol needs reader features this read/write path cannot honour."""
    protocol = table.protocol()
    features = set(protocol.reader_features or [])
    mapping_mode = (table.metadata().configuration or {}).get("delta.columnMapping.mode")
    if mapping_mode not in (None, "none") or protocol.min_reader_version == 2:
        features.add("columnMapping")
    unsupported = sorted(features - SAFE_READER_FEATURES)
    if unsupported:
        raise UnsupportedTableFeatureError(
            f"table '{name}' uses Delta reader feature(s) {', '.join(repr(f) for f in unsupported)}, "
            "which lakeforge's Spark read path cannot honour; read it with a Delta-native engine "
            "(delta-rs, DuckDB) or rewrite it without that feature"
        )


def _nullable(type_json: Any) -> Any:
    """Mark every field nullable: Spark's nullability depends on the query plan, not the data."""
    if isinstance(type_json, dict):
        kind = type_json.get("type")
        if kind == "struct":
            return {
                **type_json,
                "fields": [
                    {**f, "nullable": True, "metadata": {}, "type": _nullable(f["type"])} for f in type_json["fields"]
                ],
            }
        if kind == "array":
            return {**type_json, "containsNull": True, "elementType": _nullable(type_json["elementType"])}
        if kind == "map":
            return {
                **type_json,
                "valueContainsNull": True,
                "keyType": _nullable(type_json["keyType"]),
                "valueType": _nullable(type_json["valueType"]),
            }
    return type_json


def delta_schema_from_spark(spark_schema: Any) -> Schema:
    """Convert a Spark StructType to a Delta schema (Spark's JSON is Delta's schema format)."""
    as_json = _nullable(json.loads(spark_schema.json()))
    return Schema.from_json(json.dumps(as_json))


def delta_schema_from_arrow(arrow_schema: Any) -> Schema:
    """Convert a pyarrow schema to a Delta schema, every field nullable (as from Spark)."""
    as_json = _nullable(json.loads(Schema.from_arrow(arrow_schema).to_json()))
    return Schema.from_json(json.dumps(as_json))


def spark_schema_from_delta(schema: Schema) -> Any:
    """Convert a Delta schema to a Spark StructType."""
    from pyspark.sql.types import StructType

    return StructType.fromJson(json.loads(schema.to_json()))


def field_types(schema_json: str) -> dict[str, str]:
    """Top-level column name -> compact type string, ignoring nullability and metadata."""
    fields = _nullable(json.loads(schema_json))["fields"]
    return {f["name"]: json.dumps(f["type"], sort_keys=True) for f in fields}


def schema_differences(table_schema: Schema, data_schema: Schema) -> list[str]:
    """Human-readable differences between a table's columns and a DataFrame's columns."""
    table_cols = field_types(table_schema.to_json())
    data_cols = field_types(data_schema.to_json())
    diffs = [f"'{c}' missing from the data" for c in table_cols if c not in data_cols]
    diffs += [f"'{c}' not in the table" for c in data_cols if c not in table_cols]
    diffs += [
        f"'{c}' is {_short(data_cols[c])} in the data but {_short(table_cols[c])} in the table"
        for c in table_cols
        if c in data_cols and table_cols[c] != data_cols[c]
    ]
    return diffs


def _short(type_json: str) -> str:
    value = json.loads(type_json)
    return value if isinstance(value, str) else str(value.get("type", value))


def partition_string(value: Any) -> str | None:
    """Format a partition value the way the Delta protocol stores it (strings; None for null)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def snapshot_files(table: DeltaTable) -> list[FileEntry]:
    """Every data file of the loaded snapshot, with partition values as Delta strings."""
    actions = pa.table(table.get_add_actions(flatten=True))
    part_cols = [c for c in actions.column_names if c.startswith("partition.")]
    entries: list[FileEntry] = []
    for row in actions.to_pylist():
        parts = {c.removeprefix("partition."): partition_string(row[c]) for c in part_cols}
        # The log holds URL-encoded paths; callers work with the path as it is on disk.
        entries.append(FileEntry(unquote(row["path"]), int(row["size_bytes"]), row.get("num_records"), parts))
    return entries
