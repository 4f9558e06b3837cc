"""Data profile of a Delta table: per-column statistics computed with Spark aggregations.

Two Spark queries per profile, whatever the number of columns:

1. one aggregate select over the table: row count, per-column counts, nulls, approximate
   distinct counts, min/max/mean/stddev, approximate quantiles and the Pearson correlation
   with the target;
2. one grouped query over ``(column, key)`` pairs exploded from each row: histogram bins of
   the numeric and temporal columns (edges from query 1) and the top values of the
   categorical columns, each with the target mean.

Only these small aggregate results reach the driver; the table itself is never collected.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from lakeforge.errors import UsageError, did_you_mean
from lakeforge.lake.catalog import Catalog
from lakeforge.lake.delta import read_table, table_info

log = logging.getLogger(__name__)

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
# Rank error ≤ 1/1000 of the rows: plenty for a profile, and much cheaper than the default 10000.
QUANTILE_ACCURACY = 1_000
DISTINCT_RSD = 0.05  # approx_count_distinct default relative standard deviation

_INTEGRAL = {"byte", "short", "integer", "long"}
_FLOATING = {"float", "double"}
_NUMERIC = _INTEGRAL | _FLOATING | {"decimal"}
_TEMPORAL = {"date", "timestamp", "timestamp_ntz"}
_CATEGORICAL = {"string", "varchar", "char", "boolean"}
# A categorical column with (nearly) one value per row has no meaningful top values, and
# grouping it would shuffle every row: skip it once it is both large and nearly unique.
_UNIQUE_SHARE = 0.9


@dataclass(frozen=True)
class ProfileResult:
    """What ``profile_table`` produced: the figures and where the files are."""

    table: str
    version: int
    rows: int
    json_path: Path
    html_path: Path
    data: dict[str, Any]


@dataclass
class _Column:
    """One profiled column: its positional alias in the Spark queries and what we learn of it."""

    index: int
    name: str
    type: str
    kind: str  # numeric | temporal | categorical | other
    integral: bool
    floating: bool
    stats: dict[str, Any] = field(default_factory=dict)
    # Exact min/max for the bin edges of query 2 (numbers, or 'yyyy-MM-dd…' text for times).
    low: Any = None
    high: Any = None

    @property
    def alias(self) -> str:
        return f"c{self.index}"


def _kind(type_name: str) -> str:
    if type_name in _NUMERIC:
        return "numeric"
    if type_name in _TEMPORAL:
        return "temporal"
    if type_name in _CATEGORICAL:
        return "categorical"
    return "other"


def _plain(value: Any) -> Any:
    """A JSON-safe Python value: non-finite floats become None, times become ISO strings."""
    if isinstance(value, Decimal):
        value = float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def profile_table(
    spark: Any,
    catalog: Catalog,
    table: str,
    *,
    target: str | None = None,
    out_dir: Path,
    version: int | None = None,
    top_k: int = 10,
    bins: int = 20,
) -> ProfileResult:
    """Profile a table version with Spark aggregations; write ``<table>.profile.json`` and ``.html``."""
    from lakeforge.data.profile_html import render_profile_html

    if top_k < 1 or bins < 1:
        raise UsageError(f"profile of '{table}': top_k and bins must be at least 1 (got {top_k}, {bins})")
    started = time.monotonic()
    # Pin the version first so the figures and the version in the report describe one snapshot.
    resolved = table_info(catalog, table).version if version is None else version
    df = read_table(spark, catalog, table, version=resolved)
    columns = [
        _Column(
            i,
            f.name,
            f.dataType.simpleString(),
            _kind(f.dataType.typeName()),
            f.dataType.typeName() in _INTEGRAL,
            f.dataType.typeName() in _FLOATING,
        )
        for i, f in enumerate(df.schema.fields)
    ]
    target_col = _check_target(table, columns, target)
    # Positional aliases: column names may hold dots, spaces or backticks.
    df = df.toDF(*[c.alias for c in columns])

    rows = _scalar_stats(df, columns, target_col)
    if rows:
        _distributions(df, columns, target_col, rows, top_k, bins)

    data: dict[str, Any] = {
        "table": table,
        "version": resolved,
        "rows": rows,
        "column_count": len(columns),
        "target": target,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "session_time_zone": spark.conf.get("spark.sql.session.timeZone"),
        "methods": {
            "distinct": f"approx_count_distinct (HyperLogLog++, rsd {DISTINCT_RSD})",
            "quantiles": f"percentile_approx (accuracy {QUANTILE_ACCURACY})",
            "correlation": "Pearson for numeric columns; target mean per top value for categorical "
            "columns and per histogram bin",
            "missing": "nulls, plus NaN for float columns",
        },
        "columns": [{"name": c.name, "type": c.type, "kind": c.kind, **c.stats} for c in columns],
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"{table}.profile.json"
    html_path = out_dir / f"{table}.profile.html"
    json_path.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    html_path.write_text(render_profile_html(data), encoding="utf-8")
    log.info(
        "profile of '%s' v%d: %d rows, %d columns in %.1f s -> %s",
        table,
        resolved,
        rows,
        len(columns),
        time.monotonic() - started,
        html_path,
    )
    return ProfileResult(table, resolved, rows, json_path, html_path, data)


def _check_target(table: str, columns: list[_Column], target: str | None) -> _Column | None:
    """The target column, which must exist and be numeric or boolean (Pearson needs numbers)."""
    if target is None:
        return None
    by_name = {c.name: c for c in columns}
    if target not in by_name:
        names = list(by_name)
        raise UsageError(
            f"target column '{target}' is not a column of table '{table}'{did_you_mean(target, names)}; "
            f"columns: {', '.join(names)}"
        )
    column = by_name[target]
    if column.kind != "numeric" and column.type != "boolean":
        raise UsageError(
            f"target column '{target}' of table '{table}' has type {column.type}: "
            "pick a numeric or boolean column (e.g. a 0/1 label)"
        )
    return column


def _value(column: _Column) -> Any:
    """The column as profiled: NaN counts as missing in float columns (as pandas does)."""
    from pyspark.sql import functions as F  # noqa: N812

    raw = F.col(column.alias)
    return F.when(F.isnan(raw), F.lit(None)).otherwise(raw) if column.floating else raw


def _target_value(target: _Column | None) -> Any:
    """The target as a double (booleans become 0/1), or None without a target."""
    return None if target is None else _value(target).cast("double")


def _pearson(x: Any, y: Any) -> Any:
    """Pearson correlation over the rows where both are set; null when either is constant.

    Spark's ``corr`` divides by zero for a constant column, which ANSI mode (Spark 4's
    default) turns into a failed job; ``try_divide`` of the covariance by the spreads
    gives the same figure and a null instead.
    """
    from pyspark.sql import functions as F  # noqa: N812

    x_paired, y_paired = F.when(y.isNotNull(), x), F.when(x.isNotNull(), y)
    return F.try_divide(F.covar_samp(x, y), F.stddev_samp(x_paired) * F.stddev_samp(y_paired))


def _scalar_stats(df: Any, columns: list[_Column], target: _Column | None) -> int:
    """Query 1: one aggregate select for every column's scalar figures; returns the row count."""
    from pyspark.sql import functions as F  # noqa: N812

    target_value = _target_value(target)
    exprs = [F.count(F.lit(1)).alias("rows")]
    for c in columns:
        value = _value(c)
        exprs.append(F.count(value).alias(f"{c.alias}_count"))
        if c.floating:
            exprs.append(F.count_if(F.isnan(F.col(c.alias))).alias(f"{c.alias}_nans"))
        if c.kind != "other":
            exprs.append(F.approx_count_distinct(value, DISTINCT_RSD).alias(f"{c.alias}_distinct"))
        if c.kind == "numeric":
            exprs += [F.min(value).alias(f"{c.alias}_min"), F.max(value).alias(f"{c.alias}_max")]
        if c.kind == "temporal":
            # As text in the session time zone, the zone date_format buckets by in query 2.
            exprs += [
                F.min(value).cast("string").alias(f"{c.alias}_min"),
                F.max(value).cast("string").alias(f"{c.alias}_max"),
            ]
        if c.kind == "numeric":
            number = value.cast("double")
            exprs += [
                F.avg(number).alias(f"{c.alias}_mean"),
                F.stddev_samp(number).alias(f"{c.alias}_stddev"),
                F.percentile_approx(number, list(QUANTILES), QUANTILE_ACCURACY).alias(f"{c.alias}_q"),
            ]
            if target is not None and c is not target:
                exprs.append(_pearson(number, target_value).alias(f"{c.alias}_corr"))
    row = df.agg(*exprs).collect()[0].asDict()
    rows = int(row["rows"])
    for c in columns:
        count = int(row[f"{c.alias}_count"])
        stats: dict[str, Any] = {
            "count": count,
            "nulls": rows - count,
            "missing_share": (rows - count) / rows if rows else 0.0,
        }
        if c.floating:
            stats["nans"] = int(row[f"{c.alias}_nans"])
        if c.kind != "other":
            stats["distinct_approx"] = int(row[f"{c.alias}_distinct"])
        if c.kind in ("numeric", "temporal"):
            c.low, c.high = row[f"{c.alias}_min"], row[f"{c.alias}_max"]
            stats["min"], stats["max"] = c.low, c.high
        if c.kind == "numeric":
            stats["mean"] = row[f"{c.alias}_mean"]
            stats["stddev"] = row[f"{c.alias}_stddev"]
            quantiles = row[f"{c.alias}_q"]
            stats["quantiles"] = {str(q): v for q, v in zip(QUANTILES, quantiles, strict=True)} if quantiles else None
            if target is not None and c is not target:
                corr = row[f"{c.alias}_corr"]
                # Rounding can push a perfect correlation a hair past ±1.
                stats["target_corr"] = None if corr is None else max(-1.0, min(1.0, corr))
        c.stats = {
            key: {k: _plain(x) for k, x in v.items()} if isinstance(v, dict) else _plain(v) for key, v in stats.items()
        }
    return rows


def _time_unit(low: date, high: date) -> str:
    """Day buckets for spans up to two months, month buckets up to ten years, else years."""
    span = (high - low).days
    return "day" if span <= 62 else "month" if span <= 3660 else "year"


_UNIT_FORMAT = {"day": "yyyy-MM-dd", "month": "yyyy-MM", "year": "yyyy"}


def _time_labels(low: date, high: date, unit: str) -> list[str]:
    """Every bucket label from low to high, so empty periods show as gaps, not as nothing."""
    labels: list[str] = []
    if unit == "day":
        return [(low + timedelta(days=d)).isoformat() for d in range((high - low).days + 1)]
    if unit == "month":
        year, month = low.year, low.month
        while (year, month) <= (high.year, high.month):
            labels.append(f"{year:04d}-{month:02d}")
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return labels
    return [f"{y:04d}" for y in range(low.year, high.year + 1)]


def _numeric_edges(column: _Column, bins: int) -> list[float] | None:
    """Histogram edges from min/max; integer columns with a narrow range get one bin per value."""
    if column.low is None or column.high is None:
        return None
    low, high = float(column.low), float(column.high)
    if not (math.isfinite(low) and math.isfinite(high)):
        return None  # infinities leave no finite range to bin
    if column.integral and high - low + 1 <= bins:
        return [low + i for i in range(int(high - low) + 2)]  # one bin per value
    if high == low:
        return [low, high]  # a constant float column: one bin of width zero
    width = (high - low) / bins
    return [low + i * width for i in range(bins)] + [high]


def _distributions(df: Any, columns: list[_Column], target: _Column | None, rows: int, top_k: int, bins: int) -> None:
    """Query 2: histograms and top values of all columns in one grouped pass over the table."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F  # noqa: N812

    keyed: list[Any] = []
    binned: dict[int, dict[str, Any]] = {}
    target_value = _target_value(target)
    for c in columns:
        value = _value(c)
        if c.kind == "numeric":
            edges = _numeric_edges(c, bins)
            if edges is None:
                continue
            width = (edges[-1] - edges[0]) / (len(edges) - 1) if len(edges) > 2 else 1.0
            # least() folds the max into the last bin, as numpy.histogram does; it also skips
            # nulls (least(null, 19) = 19), hence the explicit null guard.
            index = F.least(F.floor((value.cast("double") - F.lit(edges[0])) / F.lit(width)), F.lit(len(edges) - 2))
            key = F.when(value.isNotNull(), index.cast("string"))
            binned[c.index] = {"edges": edges, "per_value": edges[-1] == float(c.high) + 1}
        elif c.kind == "temporal":
            if c.low is None or c.high is None:
                continue
            low, high = date.fromisoformat(c.low[:10]), date.fromisoformat(c.high[:10])
            unit = _time_unit(low, high)
            key = F.date_format(value, _UNIT_FORMAT[unit])
            binned[c.index] = {"unit": unit, "labels": _time_labels(low, high, unit)}
        elif c.kind == "categorical":
            nonnull, distinct = c.stats["count"], c.stats["distinct_approx"]
            if nonnull > 10 * top_k and distinct > _UNIQUE_SHARE * nonnull:
                c.stats["top_values_skipped"] = "nearly every value is unique"
                continue
            key = value.cast("string")
        else:
            continue
        parts = [F.lit(c.index).alias("c"), key.alias("k")]
        if target_value is not None:
            parts.append(target_value.alias("t"))
        keyed.append(F.struct(*parts))
    if not keyed:
        return

    pairs = df.select(F.inline(F.array(*keyed))).where(F.col("k").isNotNull())
    aggs = [F.count(F.lit(1)).alias("n")]
    if target is not None:
        aggs.append(F.avg("t").alias("t_mean"))
    counted = pairs.groupBy("c", "k").agg(*aggs)
    rank = F.row_number().over(Window.partitionBy("c").orderBy(F.desc("n"), F.asc("k")))
    wanted = F.col("c").isin(list(binned)) | (F.col("rank") <= top_k) if binned else F.col("rank") <= top_k
    result = counted.withColumn("rank", rank).where(wanted).collect()

    by_column: dict[int, list[Any]] = {}
    for r in result:
        by_column.setdefault(int(r["c"]), []).append(r)
    for c in columns:
        found = by_column.get(c.index, [])
        if c.index in binned:
            c.stats["histogram"] = _histogram(binned[c.index], found, target is not None)
        elif c.kind == "categorical" and "top_values_skipped" not in c.stats:
            ordered = sorted(found, key=lambda r: r["rank"])
            c.stats["top_values"] = [
                {"value": r["k"], "count": int(r["n"]), "share": int(r["n"]) / rows}
                | ({"target_mean": _plain(r["t_mean"])} if target is not None else {})
                for r in ordered
            ]


def _histogram(spec: dict[str, Any], found: list[Any], with_target: bool) -> dict[str, Any]:
    """Bins in order with zero counts filled in, from the grouped rows of one column."""
    counts = {r["k"]: int(r["n"]) for r in found}
    means = {r["k"]: _plain(r["t_mean"]) for r in found} if with_target else {}
    if "edges" in spec:
        keys = [str(i) for i in range(len(spec["edges"]) - 1)]
        edges = spec["edges"]
        # One bin per value of a narrow integer range: the page labels bins by value.
        out: dict[str, Any] = {"edges": edges, "per_value": spec["per_value"]}
    else:
        keys = spec["labels"]
        out = {"unit": spec["unit"], "labels": keys}
    out["counts"] = [counts.get(k, 0) for k in keys]
    if with_target:
        out["target_mean"] = [means.get(k) for k in keys]
    return out
