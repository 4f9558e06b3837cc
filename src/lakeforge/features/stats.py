"""Feature statistics saved at each feature build: monitoring's drift reference.

``feature_stats`` runs two Spark queries per call, whatever the number of features:

1. one aggregate select over the frame (no grouping): the row count, the approximate
   quantiles and the finite min/max of every numeric feature, the approximate distinct count
   of every categorical feature;
2. one grouped query over ``(feature, bin, value)`` keys exploded from each row (one key per
   feature): the histogram bins of the numeric features (edges from query 1), each with its
   count, mean and variance, their nulls, NaNs and infinities as keys of their own, and the
   values and nulls of the categorical features; ranked per feature with a group limit, so
   only each feature's bins and top values leave the executors.

Mean and stddev come from the per-bin moments, combined exactly on the driver (the parallel
variance formula); nulls and NaNs from the special keys. Only these small aggregates reach the
driver; the frame itself is never collected. Per-value work happens in one code-generated
projection before the explode, and query 2 holds each aggregate once whatever the number of
features, so the plans stay small for hundreds of features. Query 2 is skipped for an empty frame.

Conventions, so that monitoring can bin current data exactly as the reference was binned:

* ``kind`` is ``numeric`` for numeric and boolean columns (booleans as 0/1, decimals as
  doubles), ``categorical`` for strings; other types are refused.
* ``count`` is the number of rows; ``nulls`` the SQL nulls; ``nans`` the NaNs of float columns.
  NaN is missing for every other figure (mean, quantiles, histogram), as in pandas.
* Histogram: ``bins`` equal-width bins between the finite min and max (one bin when they are
  equal); bin ``i`` holds ``bin_edges[i] <= x < bin_edges[i + 1]``, the last bin is closed, as
  ``numpy.histogram``. Infinite values are counted in the outer bins, so the bin counts add up
  to ``count - nulls - nans`` (unless no value is finite: then there are no bins).
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
# Keys of query 2 for what is neither a histogram bin nor a value.
_NULL, _NAN, _NEG_INF, _POS_INF = -1, -2, -3, -4
_SPECIAL_KEYS = (_NULL, _NAN, _NEG_INF, _POS_INF)

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

    Two Spark queries whatever the number of features (one for an empty frame); only
    aggregates reach the driver. The frame is read twice: cache it first if it is expensive
    to compute and not cached already.
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
    # Positional aliases: feature names may hold dots, spaces or backticks.
    frame = df.selectExpr(*[f"{_quote(c.name)} AS {c.alias}" for c in columns])
    rows = _scalar_pass(frame, columns, probs)
    for c in columns:
        if c.kind == NUMERIC:
            c.edges = _edges(c.figures["low"], c.figures["high"], bins)
    # Every special key and bin of a numeric feature, the null key and top_k values of a categorical one.
    limit = max(bins + len(_SPECIAL_KEYS), top_k + 1)
    groups = _distribution_pass(frame, columns, limit) if rows else {}
    return [
        _numeric_stats(c, rows, probs, groups.get(c.index, []))
        if c.kind == NUMERIC
        else _categorical_stats(c, rows, groups.get(c.index, []), top_k)
        for c in columns
    ]


_INF = "CAST('Infinity' AS DOUBLE)"


def _double(value: float) -> str:
    """A finite float as an exact Spark SQL double literal (repr round-trips)."""
    return f"({value!r}D)"


def _clean(column: _Feature) -> str:
    """SQL for the column as query 1 sees it: a double for numeric kinds, NaN as null."""
    a = column.alias
    if column.kind == CATEGORICAL:
        return a
    if column.floating:
        return f"CASE WHEN isnan({a}) THEN NULL ELSE CAST({a} AS DOUBLE) END"
    return f"CAST({a} AS DOUBLE)"


def _scalar_pass(frame: Any, columns: list[_Feature], probs: list[float]) -> int:
    """Query 1: one aggregate select with the quantiles, ranges and distinct counts; returns the row count.

    The expressions go to Spark as SQL text: one call for the whole select, where building
    Column objects would cost a Py4J round trip per operator and literal.
    """
    percentages = "array(" + ", ".join(_double(q) for q in probs) + ")"
    exprs = ["count(1) AS rows"]
    for c in columns:
        a = c.alias
        if c.kind == CATEGORICAL:
            exprs.append(f"approx_count_distinct({a}) AS {a}_distinct")
            continue
        value = _clean(c)
        # The histogram spans the finite values; infinities are counted apart in query 2.
        finite = (
            f"CASE WHEN isnan({a}) OR abs({a}) = {_INF} THEN NULL ELSE CAST({a} AS DOUBLE) END" if c.floating else value
        )
        exprs += [
            f"percentile_approx({value}, {percentages}, {QUANTILE_ACCURACY}) AS {a}_q",
            f"min({finite}) AS {a}_low",
            f"max({finite}) AS {a}_high",
        ]
    row = frame.selectExpr(*exprs).collect()[0].asDict()
    for c in columns:
        a = c.alias
        if c.kind == CATEGORICAL:
            c.figures = {"distinct": int(row[f"{a}_distinct"])}
        else:
            found = row[f"{a}_q"]
            c.figures = {
                "quantiles": [float(q) for q in found] if found is not None else [],
                "low": _number(row[f"{a}_low"]),
                "high": _number(row[f"{a}_high"]),
            }
    return int(row["rows"])


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


def _bin_index(value: str, edges: list[float]) -> str:
    """SQL for the histogram bin of a finite value: ``edges[i] <= value < edges[i + 1]``, last bin closed.

    The arithmetic guess ``floor((value - low) / width)`` can be one off where a value sits on an
    edge; one step against the edges themselves makes the bin exact, as numpy.histogram does.
    """
    last = len(edges) - 2
    if last == 0:
        return "0"
    low, width = edges[0], edges[1] - edges[0]
    guess = f"CAST(least(greatest(floor(({value} - {_double(low)}) / {_double(width)}), 0), {last}) AS INT)"
    bounds = "array(" + ", ".join(_double(e) for e in edges) + ")"
    return (
        f"CASE WHEN {value} < element_at({bounds}, {guess} + 1) THEN {guess} - 1 "
        f"WHEN {guess} < {last} AND {value} >= element_at({bounds}, {guess} + 2) THEN {guess} + 1 "
        f"ELSE {guess} END"
    )


def _key(column: _Feature) -> str:
    """SQL for query 2's key of a feature's value: a special key, a histogram bin, or null for a value."""
    a = column.alias
    cases = [f"WHEN {a} IS NULL THEN {_NULL}"]
    if column.kind == NUMERIC and column.floating:
        cases += [
            f"WHEN isnan({a}) THEN {_NAN}",
            f"WHEN {a} = {_INF} THEN {_POS_INF}",
            f"WHEN {a} = -{_INF} THEN {_NEG_INF}",
        ]
    # Without edges, no value is finite: every row has a special key. Categorical values key by value.
    otherwise = f" ELSE {_bin_index(f'CAST({a} AS DOUBLE)', column.edges)}" if column.edges else ""
    return f"CASE {' '.join(cases)}{otherwise} END"


@dataclass(frozen=True)
class _Group:
    """One row of query 2: a feature's bin (or special key) or value, its count and moments."""

    bin: int | None
    value: str | None
    n: int
    mean: float | None
    var_pop: float | None


def _distribution_pass(frame: Any, columns: list[_Feature], limit: int) -> dict[int, list[_Group]]:
    """Query 2: per feature, the counts of every bin and special key, and of the top values.

    A projection computes each feature's key (and numeric value) once, code-generated; each row
    then explodes into one ``(c, b, k, x)`` struct per feature, which are counted with their
    mean and population variance. Per feature, special keys rank first, then the most frequent
    bins/values; only the first ``limit`` of each feature are kept, which Spark applies before
    the shuffle (WindowGroupLimit). Expressions go to Spark as SQL text: one Py4J call per step
    instead of one per operator and literal. Returns {feature index: groups in rank order}.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F  # noqa: N812

    projected, keyed = [], []
    for c in columns:
        i, a = c.index, c.alias
        projected.append(f"{_key(c)} AS b{i}")
        if c.kind == NUMERIC:
            projected.append(f"CAST({a} AS DOUBLE) AS x{i}")
            keyed.append(f"named_struct('c', {i}, 'b', b{i}, 'k', CAST(NULL AS STRING), 'x', x{i})")
        else:
            projected.append(f"{a} AS k{i}")
            keyed.append(f"named_struct('c', {i}, 'b', b{i}, 'k', k{i}, 'x', CAST(NULL AS DOUBLE))")
    pairs = frame.selectExpr(*projected).selectExpr(f"inline(array({', '.join(keyed)}))")
    counted = pairs.groupBy("c", "b", "k").agg(
        F.count(F.lit(1)).alias("n"), F.avg("x").alias("mean"), F.var_pop("x").alias("var_pop")
    )
    special_first = F.when(F.col("b") < 0, F.lit(0)).otherwise(F.lit(1))
    order = Window.partitionBy("c").orderBy(special_first, F.desc("n"), F.asc("b"), F.asc("k"))
    ranked = counted.withColumn("rank", F.row_number().over(order)).where(F.col("rank") <= limit)
    found: dict[int, list[_Group]] = {}
    # At most ``limit`` rows per feature: ordered here rather than by one more shuffle.
    for r in sorted(ranked.collect(), key=lambda r: (r["c"], r["rank"])):
        group = _Group(r["b"], r["k"], int(r["n"]), r["mean"], r["var_pop"])
        found.setdefault(int(r["c"]), []).append(group)
    return found


def _moments(groups: list[_Group]) -> tuple[float | None, float | None]:
    """Mean and sample stddev of the union of groups, from each group's count, mean and variance."""
    n = sum(g.n for g in groups)
    if n == 0:
        return None, None
    mean = sum(g.n * float(g.mean or 0.0) for g in groups) / n
    m2 = sum(g.n * (float(g.var_pop or 0.0) + (float(g.mean or 0.0) - mean) ** 2) for g in groups)
    return mean, math.sqrt(m2 / (n - 1)) if n > 1 else None


def _numeric_stats(c: _Feature, rows: int, probs: list[float], groups: list[_Group]) -> FeatureStats:
    """A numeric feature's FeatureStats from both queries."""
    special = {g.bin: g.n for g in groups if g.bin is not None and g.bin < 0}
    finite = [g for g in groups if g.bin is not None and g.bin >= 0]
    negative, positive = special.get(_NEG_INF, 0), special.get(_POS_INF, 0)
    counts = [0] * (len(c.edges) - 1 if c.edges else 0)
    for g in finite:
        counts[int(g.bin or 0)] = g.n
    if counts:
        counts[0] += negative
        counts[-1] += positive
    mean, stddev = _moments(finite)
    if negative or positive:
        # As numpy and Spark: an infinity makes the mean infinite (NaN with both signs), the stddev NaN.
        mean = math.nan if negative and positive else math.inf if positive else -math.inf
        total = sum(g.n for g in finite) + negative + positive
        stddev = math.nan if total > 1 else None
    low, high = c.figures["low"], c.figures["high"]
    nulls = special.get(_NULL, 0)
    return FeatureStats(
        feature=c.name,
        kind=NUMERIC,
        count=rows,
        nulls=nulls,
        null_share=nulls / rows if rows else None,
        nans=special.get(_NAN, 0),
        mean=mean,
        stddev=stddev,
        min=-math.inf if negative else low if low is not None else math.inf if positive else None,
        max=math.inf if positive else high if high is not None else -math.inf if negative else None,
        quantile_probs=list(probs) if c.figures["quantiles"] else [],
        quantiles=c.figures["quantiles"],
        bin_edges=list(c.edges),
        bin_counts=counts,
    )


def _categorical_stats(c: _Feature, rows: int, groups: list[_Group], top_k: int) -> FeatureStats:
    """A categorical feature's FeatureStats from both queries."""
    nulls = sum(g.n for g in groups if g.bin == _NULL)
    top = [(str(g.value), g.n) for g in groups if g.bin is None][:top_k]  # by count, then value
    return FeatureStats(
        feature=c.name,
        kind=CATEGORICAL,
        count=rows,
        nulls=nulls,
        null_share=nulls / rows if rows else None,
        nans=0,
        distinct=c.figures["distinct"],
        top_values=top,
        other_count=rows - nulls - sum(n for _, n in top),
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
