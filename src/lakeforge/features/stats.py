"""Feature statistics saved at each feature build: monitoring's drift reference.

``feature_stats`` runs two Spark queries per call, whatever the number of features:

1. one aggregate select over the frame: row count, per-feature nulls, NaNs, min/max/mean/stddev
   and approximate quantiles (numeric), approximate distinct counts (categorical);
2. one grouped query over ``(feature, bin)`` / ``(feature, value)`` pairs exploded from each row:
   the histogram bin counts of every numeric feature (edges from query 1) and the top values of
   every categorical feature, ranked per feature with a group limit so only the top rows move.

Only these small aggregate results reach the driver; the frame itself is never collected.
Query 2 is skipped when no feature has a value to bin or count (an empty or all-null frame).

Conventions, so that monitoring can bin current data exactly as the reference was binned:

* ``kind`` is ``numeric`` for numeric and boolean columns (booleans as 0/1, decimals as
  doubles), ``categorical`` for strings; other types are refused.
* ``count`` is the number of rows; ``nulls`` the SQL nulls; ``nans`` the NaNs of float columns.
  NaN is missing for every other figure (mean, quantiles, histogram), as in pandas.
* Histogram: ``bins`` equal-width bins between the finite min and max (one bin when they are
  equal); bin ``i`` holds ``bin_edges[i] <= x < bin_edges[i + 1]``, the last bin is closed, as
  ``numpy.histogram``. Infinite values fall in the outer bins, so the bin counts always add up
  to ``count - nulls - nans``.
* Counts are ints whenever they apply to the kind (``distinct`` and ``other_count`` for
  categorical features only); a figure undefined without values (mean, min, ``null_share`` of
  an empty frame…) is None; lists are empty when there is nothing to put in them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from lakeforge.errors import FeatureError, UsageError, did_you_mean
from lakeforge.lake.catalog import Catalog
from lakeforge.lake.delta import CommitResult, Lineage, read_table, write_table

log = logging.getLogger(__name__)

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
# Rank error ≤ 1/10000 of the values: the reference for drift tests deserves the precision.
QUANTILE_ACCURACY = 10_000
TOP_K = 20

NUMERIC = "numeric"
CATEGORICAL = "categorical"
_FLOATING = {"float", "double"}
_NUMERIC_TYPES = _FLOATING | {"byte", "short", "integer", "long", "decimal", "boolean"}
_CATEGORICAL_TYPES = {"string", "varchar", "char"}

# The stats table's schema as a Spark DDL string: explicit, so an all-null feature still writes.
STATS_SCHEMA = (
    "feature_set string, build_id string, start_date date, end_date date, feature_table_version bigint, "
    "feature string, kind string, count bigint, nulls bigint, null_share double, nans bigint, "
    "mean double, stddev double, min double, max double, "
    "quantile_probs array<double>, quantiles array<double>, bin_edges array<double>, bin_counts array<bigint>, "
    "distinct bigint, top_values array<struct<value:string,count:bigint>>, other_count bigint, "
    "computed_at timestamp"
)


@dataclass(frozen=True)
class FeatureStats:
    """The statistics of one feature column at one build (see the module docstring)."""

    feature: str
    kind: str  # numeric | categorical
    count: int
    nulls: int
    null_share: float | None
    nans: int = 0
    mean: float | None = None
    stddev: float | None = None
    min: float | None = None
    max: float | None = None
    quantile_probs: list[float] = field(default_factory=list)
    quantiles: list[float] = field(default_factory=list)
    bin_edges: list[float] = field(default_factory=list)
    bin_counts: list[int] = field(default_factory=list)
    distinct: int | None = None
    top_values: list[tuple[str, int]] = field(default_factory=list)
    other_count: int | None = None

    def to_row(self) -> dict[str, Any]:
        """The feature's columns of a stats-table row (top values as ``{value, count}`` structs)."""
        return {
            "feature": self.feature,
            "kind": self.kind,
            "count": self.count,
            "nulls": self.nulls,
            "null_share": self.null_share,
            "nans": self.nans,
            "mean": self.mean,
            "stddev": self.stddev,
            "min": self.min,
            "max": self.max,
            "quantile_probs": list(self.quantile_probs),
            "quantiles": list(self.quantiles),
            "bin_edges": list(self.bin_edges),
            "bin_counts": list(self.bin_counts),
            "distinct": self.distinct,
            "top_values": [{"value": v, "count": n} for v, n in self.top_values],
            "other_count": self.other_count,
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> FeatureStats:
        """Rebuild from a stats-table row (a dict or a Spark Row's ``asDict()``)."""

        def floats(key: str) -> list[float]:
            return [float(x) for x in row.get(key) or []]

        top = []
        for item in row.get("top_values") or []:
            value, count = (item["value"], item["count"]) if isinstance(item, Mapping) else (item[0], item[1])
            top.append((str(value), int(count)))
        return cls(
            feature=str(row["feature"]),
            kind=str(row["kind"]),
            count=int(row["count"]),
            nulls=int(row["nulls"]),
            null_share=_opt_float(row.get("null_share")),
            nans=int(row.get("nans") or 0),
            mean=_opt_float(row.get("mean")),
            stddev=_opt_float(row.get("stddev")),
            min=_opt_float(row.get("min")),
            max=_opt_float(row.get("max")),
            quantile_probs=floats("quantile_probs"),
            quantiles=floats("quantiles"),
            bin_edges=floats("bin_edges"),
            bin_counts=[int(x) for x in row.get("bin_counts") or []],
            distinct=_opt_int(row.get("distinct")),
            top_values=top,
            other_count=_opt_int(row.get("other_count")),
        )


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclass
class _Feature:
    """One feature column: its positional alias in the Spark queries and what query 1 found."""

    index: int
    name: str
    kind: str
    floating: bool
    figures: dict[str, Any] = field(default_factory=dict)
    edges: list[float] = field(default_factory=list)

    @property
    def alias(self) -> str:
        return f"c{self.index}"


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _resolve(df: Any, features: Sequence[str]) -> list[_Feature]:
    """Check the features are distinct columns of supported types; classify them."""
    fields = {f.name: f for f in df.schema.fields}
    resolved: list[_Feature] = []
    seen: set[str] = set()
    for index, name in enumerate(features):
        if name in seen:
            raise UsageError(f"feature '{name}' is listed twice; list each feature column once")
        seen.add(name)
        if name not in fields:
            raise FeatureError(
                f"feature '{name}' is not a column of the frame{did_you_mean(name, list(fields))}; "
                f"columns: {', '.join(fields)}"
            )
        type_name = fields[name].dataType.typeName()
        if type_name in _NUMERIC_TYPES:
            kind = NUMERIC
        elif type_name in _CATEGORICAL_TYPES:
            kind = CATEGORICAL
        else:
            raise FeatureError(
                f"feature '{name}' has type {fields[name].dataType.simpleString()}: statistics cover numeric, "
                "boolean and string columns; cast it (e.g. a date to its day number) or leave it out"
            )
        resolved.append(_Feature(index, name, kind, type_name in _FLOATING))
    return resolved


def _number(value: Any) -> float | None:
    """A driver-side figure as a float (decimals, ints) or None."""
    if value is None:
        return None
    return float(value) if isinstance(value, int | float | Decimal) else None


def feature_stats(
    df: Any,
    features: Sequence[str],
    *,
    bins: int = 20,
    quantiles: Sequence[float] = QUANTILES,
    top_k: int = TOP_K,
) -> list[FeatureStats]:
    """Statistics of each feature column of a Spark DataFrame, in the order of ``features``.

    Two Spark queries whatever the number of features (one when nothing can be binned or
    counted); only aggregates reach the driver. The frame is read twice: cache it first if it
    is expensive to compute and not cached already.
    """
    if isinstance(features, str):
        raise UsageError(f"features must be a list of column names, not the string '{features}'")
    if bins < 1 or top_k < 1:
        raise UsageError(f"feature statistics: bins and top_k must be at least 1 (got {bins}, {top_k})")
    probs = [float(q) for q in quantiles]
    if not probs or not all(0.0 <= q <= 1.0 for q in probs):
        raise UsageError(f"feature statistics: quantiles must be probabilities in [0, 1] (got {list(quantiles)})")
    columns = _resolve(df, features)
    if not columns:
        return []
    from pyspark.sql import functions as F  # noqa: N812

    # Positional aliases: feature names may hold dots, spaces or backticks.
    frame = df.select(*[F.col(_quote(c.name)).alias(c.alias) for c in columns])
    rows = _scalar_pass(frame, columns, probs)
    for c in columns:
        if c.kind == NUMERIC:
            c.edges = _edges(c.figures["low"], c.figures["high"], bins)
    counts = _distribution_pass(frame, columns, max(top_k, bins))
    return [_result(c, rows, probs, counts.get(c.index, {}), top_k) for c in columns]


def _clean(column: _Feature) -> Any:
    """The column as its statistics see it: a double for numeric kinds, NaN as null."""
    from pyspark.sql import functions as F  # noqa: N812

    raw = F.col(column.alias)
    if column.kind == CATEGORICAL:
        return raw
    if column.floating:
        return F.when(~F.isnan(raw), raw).cast("double")
    return raw.cast("double")


def _scalar_pass(frame: Any, columns: list[_Feature], probs: list[float]) -> int:
    """Query 1: one aggregate select with every feature's scalar figures; returns the row count."""
    from pyspark.sql import functions as F  # noqa: N812

    infinity = F.lit(math.inf)
    exprs = [F.count(F.lit(1)).alias("rows")]
    for c in columns:
        raw, value, a = F.col(c.alias), _clean(c), c.alias
        exprs.append(F.count(raw).alias(f"{a}_set"))  # NaN is set here: nulls are SQL nulls only
        if c.floating:
            exprs.append(F.count_if(F.isnan(raw)).alias(f"{a}_nans"))
        if c.kind == CATEGORICAL:
            exprs.append(F.approx_count_distinct(value).alias(f"{a}_distinct"))
            continue
        exprs += [
            F.min(value).alias(f"{a}_min"),
            F.max(value).alias(f"{a}_max"),
            F.avg(value).alias(f"{a}_mean"),
            F.stddev_samp(value).alias(f"{a}_stddev"),
            F.percentile_approx(value, probs, QUANTILE_ACCURACY).alias(f"{a}_q"),
        ]
        if c.floating:
            # The histogram spans the finite values; infinities go to the outer bins.
            finite = F.when(F.abs(value) < infinity, value)
            exprs += [F.min(finite).alias(f"{a}_low"), F.max(finite).alias(f"{a}_high")]
    row = frame.agg(*exprs).collect()[0].asDict()
    rows = int(row["rows"])
    for c in columns:
        a = c.alias
        figures: dict[str, Any] = {
            "nulls": rows - int(row[f"{a}_set"]),
            "nans": int(row[f"{a}_nans"]) if c.floating else 0,
        }
        figures["present"] = rows - figures["nulls"] - figures["nans"]
        if c.kind == CATEGORICAL:
            figures["distinct"] = int(row[f"{a}_distinct"])
        else:
            for key in ("min", "max", "mean", "stddev"):
                figures[key] = _number(row[f"{a}_{key}"])
            figures["quantiles"] = [float(q) for q in row[f"{a}_q"]] if row[f"{a}_q"] is not None else []
            low, high = (f"{a}_low", f"{a}_high") if c.floating else (f"{a}_min", f"{a}_max")
            figures["low"], figures["high"] = _number(row[low]), _number(row[high])
        c.figures = figures
    return rows


def _edges(low: float | None, high: float | None, bins: int) -> list[float]:
    """``bins`` equal-width edges from low to high (as numpy.linspace), one bin when they are equal."""
    if low is None or high is None:
        return []
    if low == high:
        return [low, high]
    width = (high - low) / bins
    if not math.isfinite(width):  # a range wider than the largest double
        width = high / bins - low / bins
    return [low + i * width for i in range(bins)] + [high]


def _bin_index(value: Any, edges: list[float], floating: bool) -> Any:
    """The histogram bin of a (non-null, non-NaN) value: ``edges[i] <= value < edges[i + 1]``.

    The arithmetic guess ``floor((value - low) / width)`` can be one off where a value sits on an
    edge; one step against the edges themselves makes the bin exact, as numpy.histogram does.
    """
    from pyspark.sql import functions as F  # noqa: N812

    last = len(edges) - 2
    if last == 0:
        return F.lit(0)
    low, width = edges[0], (edges[-1] - edges[0]) / (len(edges) - 1)
    if not math.isfinite(width):
        width = edges[1] - edges[0]
    guess = F.least(F.greatest(F.floor((value - F.lit(low)) / F.lit(width)), F.lit(0)), F.lit(last)).cast("int")
    bounds = F.array(*[F.lit(e) for e in edges])
    index = (
        F.when(value < F.element_at(bounds, guess + 1), guess - 1)
        .when((guess < last) & (value >= F.element_at(bounds, guess + 2)), guess + 1)
        .otherwise(guess)
    )
    if floating:
        index = F.when(value == F.lit(math.inf), F.lit(last)).when(value == F.lit(-math.inf), F.lit(0)).otherwise(index)
    return index


def _distribution_pass(frame: Any, columns: list[_Feature], limit: int) -> dict[int, dict[Any, int]]:
    """Query 2: histogram bins and top values of all features in one grouped pass.

    Each row yields one ``(c, b, k)`` struct per feature (``b`` a bin for numeric features, ``k``
    the value for categorical ones); the pairs are counted, and per feature only the ``limit``
    most frequent are kept (every bin, since ``limit`` ≥ bins). Returns {index: {bin or value: n}}.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F  # noqa: N812

    numeric = [c for c in columns if c.kind == NUMERIC and c.edges]
    categorical = [c for c in columns if c.kind == CATEGORICAL and c.figures["present"] > 0]
    if not numeric and not categorical:
        return {}
    # Stage 1 computes each cleaned value and bin guess once; stage 2 only references them.
    values = frame.select(*[_clean(c).alias(c.alias) for c in numeric + categorical])
    no_bin, no_value = F.lit(None).cast("int"), F.lit(None).cast("string")
    keyed = []
    for c in numeric:
        value = F.col(c.alias)
        index = F.when(value.isNotNull(), _bin_index(value, c.edges, c.floating))
        keyed.append(F.struct(F.lit(c.index).alias("c"), index.alias("b"), no_value.alias("k")))
    for c in categorical:
        keyed.append(F.struct(F.lit(c.index).alias("c"), no_bin.alias("b"), F.col(c.alias).alias("k")))
    pairs = values.select(F.inline(F.array(*keyed))).where(F.col("b").isNotNull() | F.col("k").isNotNull())
    counted = pairs.groupBy("c", "b", "k").agg(F.count(F.lit(1)).alias("n"))
    # A pure rank filter: Spark limits each group before the shuffle (WindowGroupLimit).
    rank = F.row_number().over(Window.partitionBy("c").orderBy(F.desc("n"), F.asc("b"), F.asc("k")))
    result = counted.withColumn("rank", rank).where(F.col("rank") <= limit).orderBy("c", "rank").collect()
    found: dict[int, dict[Any, int]] = {}
    for r in result:
        key = r["b"] if r["b"] is not None else r["k"]
        found.setdefault(int(r["c"]), {})[key] = int(r["n"])
    return found


def _result(c: _Feature, rows: int, probs: list[float], counts: dict[Any, int], top_k: int) -> FeatureStats:
    """The FeatureStats of one feature from the figures of both queries."""
    f = c.figures
    base: dict[str, Any] = {
        "feature": c.name,
        "kind": c.kind,
        "count": rows,
        "nulls": f["nulls"],
        "null_share": f["nulls"] / rows if rows else None,
        "nans": f["nans"],
    }
    if c.kind == CATEGORICAL:
        top = list(counts.items())[:top_k]  # already ordered by count, then value
        return FeatureStats(
            **base,
            distinct=f["distinct"],
            top_values=[(str(v), n) for v, n in top],
            other_count=f["present"] - sum(n for _, n in top),
        )
    return FeatureStats(
        **base,
        mean=f["mean"],
        stddev=f["stddev"],
        min=f["min"],
        max=f["max"],
        quantile_probs=list(probs) if f["quantiles"] else [],
        quantiles=f["quantiles"],
        bin_edges=list(c.edges),
        bin_counts=[counts.get(i, 0) for i in range(len(c.edges) - 1)],
    )


def write_stats(
    spark: Any,
    catalog: Catalog,
    table: str,
    stats: list[FeatureStats],
    *,
    feature_set: str,
    build_id: str,
    start: date,
    end: date,
    source_version: int | None,
    lineage: Lineage | None,
) -> CommitResult:
    """Append one row per feature to the stats table, once per ``(feature_set, build_id)``.

    The write carries the Delta app transaction ``features.<feature_set>.stats.<build_id>``
    (version 1), so a retried build commits nothing the second time (``skipped`` is True).
    """
    from pyspark.sql.types import StructType

    computed_at = datetime.now(UTC)
    header = {
        "feature_set": feature_set,
        "build_id": build_id,
        "start_date": start,
        "end_date": end,
        "feature_table_version": source_version,
    }
    schema = StructType.fromDDL(STATS_SCHEMA)
    if not isinstance(schema, StructType):  # fromDDL is typed as returning any DataType
        raise TypeError("STATS_SCHEMA must describe a struct")
    rows = [{**header, **s.to_row(), "computed_at": computed_at} for s in stats]
    data = [tuple(row[name] for name in schema.fieldNames()) for row in rows]
    # One small file per build.
    df = spark.createDataFrame(data, schema).coalesce(1)
    result = write_table(
        df,
        catalog,
        table,
        mode="append",
        app_id=f"features.{feature_set}.stats.{build_id}",
        app_version=1,
        lineage=lineage,
    )
    if result.skipped:
        log.info("stats of feature set '%s' build '%s' already in '%s'; nothing written", feature_set, build_id, table)
    return result


def read_stats(
    spark: Any, catalog: Catalog, table: str, feature_set: str, build_id: str | None = None
) -> list[FeatureStats]:
    """The stats of one build of a feature set (default: its latest by ``computed_at``), by feature name."""
    from pyspark.sql import functions as F  # noqa: N812

    df = read_table(spark, catalog, table).where(F.col("feature_set") == F.lit(feature_set))
    if build_id is None:
        latest = df.orderBy(F.desc("computed_at"), F.desc("build_id")).select("build_id").limit(1).collect()
        if not latest:
            sets = read_table(spark, catalog, table).select("feature_set").distinct().collect()
            known = [r["feature_set"] for r in sets]
            raise FeatureError(
                f"no statistics for feature set '{feature_set}' in table '{table}'"
                f"{did_you_mean(feature_set, known)}; feature sets there: {', '.join(sorted(known)) or 'none'}"
            )
        build_id = str(latest[0]["build_id"])
    rows = df.where(F.col("build_id") == F.lit(build_id)).orderBy("feature").collect()
    if not rows:
        builds = df.groupBy("build_id").agg(F.max("computed_at").alias("at")).orderBy(F.desc("at")).limit(5).collect()
        listing = ", ".join(str(r["build_id"]) for r in builds) or "none"
        raise FeatureError(
            f"no statistics for build '{build_id}' of feature set '{feature_set}' in table '{table}'; "
            f"latest builds: {listing}"
        )
    return [FeatureStats.from_row(r.asDict(recursive=True)) for r in rows]
