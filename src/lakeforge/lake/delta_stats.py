"""Delta file statistics (numRecords, minValues, maxValues, nullCount) from Parquet footers."""

from __future__ import annotations

import datetime as dt
import json
import math
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

# Delta truncates string statistics; a longer max would need a careful upper bound, so it is skipped.
MAX_STRING_STAT = 32


def _stat_value(value: Any, *, is_max: bool) -> Any:
    """A JSON-ready Delta stat value, or None when no safe bound can be written."""
    if isinstance(value, bool) or value is None:
        return None  # Delta keeps no min/max for booleans
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        # Delta stats have millisecond precision: round the bound outwards so skipping stays safe.
        micros = value.microsecond % 1000
        if micros:
            value -= dt.timedelta(microseconds=micros)
            if is_max:
                value += dt.timedelta(milliseconds=1)
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        if len(value) <= MAX_STRING_STAT:
            return value
        return None if is_max else value[:MAX_STRING_STAT]
    if isinstance(value, Decimal):
        return None  # a float could round past the true bound; omitting a stat is always safe
    return None


def _collects_min_max(arrow_type: pa.DataType) -> bool:
    return not (
        pa.types.is_nested(arrow_type)
        or pa.types.is_binary(arrow_type)
        or pa.types.is_large_binary(arrow_type)
        or pa.types.is_boolean(arrow_type)
        or pa.types.is_decimal(arrow_type)
    )


def file_stats(path: str) -> tuple[int, str]:
    """Return (row count, Delta stats JSON) of one local Parquet file, from its footer only."""
    parquet = pq.ParquetFile(path)
    meta = parquet.metadata
    schema = parquet.schema_arrow
    # Footer columns are leaves; only top-level primitive columns get stats.
    leaf_index = {meta.schema.column(i).path: i for i in range(meta.num_columns)}
    mins: dict[str, Any] = {}
    maxs: dict[str, Any] = {}
    nulls: dict[str, int] = {}
    for arrow_field in schema:
        index = leaf_index.get(arrow_field.name)
        if index is None or pa.types.is_nested(arrow_field.type):
            continue
        low: Any = None
        high: Any = None
        null_count = 0
        have_bounds = _collects_min_max(arrow_field.type) and meta.num_row_groups > 0
        have_nulls = True
        for group in range(meta.num_row_groups):
            stats = meta.row_group(group).column(index).statistics
            if stats is None:
                have_bounds = have_nulls = False
                break
            if stats.has_null_count:
                null_count += stats.null_count
            else:
                have_nulls = False
            if not have_bounds:
                continue
            if not stats.has_min_max:
                # An all-null row group has no bounds but does not widen them either.
                if stats.num_values == 0:  # num_values counts non-null values
                    continue
                have_bounds = False
                continue
            low = stats.min if low is None else min(low, stats.min)
            high = stats.max if high is None else max(high, stats.max)
        if have_nulls:
            nulls[arrow_field.name] = null_count
        if have_bounds and low is not None:
            low_value = _stat_value(low, is_max=False)
            high_value = _stat_value(high, is_max=True)
            if low_value is not None and high_value is not None:
                mins[arrow_field.name] = low_value
                maxs[arrow_field.name] = high_value
    stats_json = {"numRecords": meta.num_rows, "minValues": mins, "maxValues": maxs, "nullCount": nulls}
    return meta.num_rows, json.dumps(stats_json, separators=(",", ":"))
