"""Histogram counts in Spark: the monitor's passes over the scoring data, with no collect of rows.

* :func:`reference_bins` decides how each feature is binned, from the reference rows: one
  aggregate select gives the 0.5% and 99.5% quantiles (approximate, rank error 1/10,000), min
  and max of every numeric feature (edges by ``stats.make_edges``); one grouped count gives the
  ``top_k`` values of every categorical feature (the rest go to ``__other__``).
* :func:`count_bins` counts every feature of every row in one pass: each Spark task bins its
  Arrow batches with numpy (the layout of ``lakeforge.monitoring.stats``: underflow, the inner
  bins, overflow; categories in order, ``__other__`` last) and emits one small row per
  ``(group, feature, bin)``; one ``groupBy`` sums them. Nulls and NaNs are counted apart.

Only the sums reach the driver: a few hundred numbers per feature and group.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from lakeforge.errors import FeatureError
from lakeforge.monitoring.stats import CATEGORICAL, DEFAULT_BINS, NUMERIC, TAIL_SHARE, make_edges

OTHER = "__other__"
TOP_K = 20
QUANTILE_ACCURACY = 10_000
TASKS_PER_CORE = 2  # count_files: Spark tasks per core
# Special "feature" indexes of the emitted rows: the row count of a group.
_ROWS = -1
# Bin index of nulls and NaNs.
_NULL_BIN = -1

_NUMERIC_TYPES = {"float", "double", "tinyint", "smallint", "int", "bigint", "decimal", "boolean"}
_CATEGORICAL_TYPES = {"string", "varchar", "char"}


@dataclass(frozen=True)
class FeatureBins:
    """How one feature is binned: numeric ``edges`` (B + 1 of them) or categorical ``categories``."""

    feature: str
    kind: str  # numeric | categorical
    edges: tuple[float, ...] = ()
    categories: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        """Entries of a counts array: B + 2 (under- and overflow) or the categories and ``__other__``."""
        return len(self.edges) + 1 if self.kind == NUMERIC else len(self.categories) + 1

    @property
    def labels(self) -> list[str]:
        """A readable label per counts entry (for the report)."""
        if self.kind == CATEGORICAL:
            return [*self.categories, OTHER]
        e = self.edges
        return [f"< {e[0]:.4g}", *[f"[{a:.4g}, {b:.4g})" for a, b in itertools.pairwise(e)], f"> {e[-1]:.4g}"]


@dataclass
class Counts:
    """One group's counts: rows, nulls (and NaNs) per feature, and the bin counts per feature."""

    rows: int = 0
    nulls: dict[str, int] = field(default_factory=dict)
    counts: dict[str, npt.NDArray[np.float64]] = field(default_factory=dict)

    def null_share(self, feature: str) -> float | None:
        return self.nulls.get(feature, 0) / self.rows if self.rows else None


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def feature_kinds(frame: Any, features: Sequence[str]) -> dict[str, str]:
    """``numeric`` or ``categorical`` for each feature, from the frame's Spark types."""
    types = dict(frame.dtypes)
    kinds = {}
    for name in features:
        if name not in types:
            raise FeatureError(f"feature '{name}' is not a column of the monitored table (columns: {', '.join(types)})")
        base = types[name].split("(")[0]
        if base in _NUMERIC_TYPES:
            kinds[name] = NUMERIC
        elif base in _CATEGORICAL_TYPES:
            kinds[name] = CATEGORICAL
        else:
            raise FeatureError(f"feature '{name}' has type {types[name]}; monitoring bins numeric and string features")
    return kinds


def reference_bins(
    frame: Any, kinds: Mapping[str, str], *, bins: int = DEFAULT_BINS, top_k: int = TOP_K
) -> list[FeatureBins]:
    """The binning of every feature, decided on the reference rows of ``frame`` (two Spark queries)."""
    from pyspark.sql import functions as F  # noqa: N812

    numeric = [f for f, k in kinds.items() if k == NUMERIC]
    categorical = [f for f, k in kinds.items() if k == CATEGORICAL]
    edges: dict[str, tuple[float, ...]] = {}
    if numeric:
        aggs = []
        for i, name in enumerate(numeric):
            x = F.col(_quote(name)).cast("double")
            finite = F.when(~F.isnan(x) & (F.abs(x) != F.lit(float("inf"))), x)
            aggs += [
                F.percentile_approx(finite, [TAIL_SHARE, 1 - TAIL_SHARE], QUANTILE_ACCURACY).alias(f"q{i}"),
                F.min(finite).alias(f"lo{i}"),
                F.max(finite).alias(f"hi{i}"),
            ]
        row = frame.agg(*aggs).collect()[0]
        for i, name in enumerate(numeric):
            quantiles = row[f"q{i}"]
            if quantiles is None or row[f"lo{i}"] is None:
                edges[name] = tuple(
                    float(e) for e in make_edges([0.0], 1)
                )  # no finite reference value: its counts stay empty
                continue
            given = [row[f"lo{i}"], *quantiles, row[f"hi{i}"]]
            edges[name] = tuple(float(e) for e in make_edges(given, bins, probs=[0.0, TAIL_SHARE, 1 - TAIL_SHARE, 1.0]))
    categories: dict[str, list[str]] = {name: [] for name in categorical}
    if categorical:
        pairs = F.explode(
            F.array(*[F.struct(F.lit(i).alias("f"), F.col(_quote(n)).alias("v")) for i, n in enumerate(categorical)])
        )
        counted = (
            frame.select(pairs.alias("p")).select("p.f", "p.v").where(F.col("v").isNotNull()).groupBy("f", "v").count()
        )
        from pyspark.sql import Window

        ranked = counted.withColumn("r", F.row_number().over(Window.partitionBy("f").orderBy(F.desc("count"), "v")))
        for r in ranked.where(F.col("r") <= top_k).orderBy("f", "r").collect():
            categories[categorical[int(r["f"])]].append(str(r["v"]))
    out = []
    for name, kind in kinds.items():
        if kind == NUMERIC:
            out.append(FeatureBins(name, NUMERIC, edges=edges[name]))
        else:
            out.append(FeatureBins(name, CATEGORICAL, categories=tuple(categories[name])))
    return out


def _numeric_counts(values: npt.NDArray[np.float64], edges: npt.NDArray[np.float64]) -> tuple[npt.NDArray[Any], int]:
    """Counts in the B + 2 bins of ``edges`` (as ``stats.bin_values``) and the NaN count."""
    missing = np.isnan(values)
    present = values[~missing]
    index = np.searchsorted(edges, present, side="right")
    index[present == edges[-1]] = len(edges) - 1  # the last inner bin is closed
    return np.bincount(index, minlength=len(edges) + 1), int(missing.sum())


def _categorical_counts(values: Any, categories: Sequence[str]) -> tuple[npt.NDArray[Any], int]:
    """Counts per category, ``__other__`` last, and the null count."""
    import pandas as pd

    missing = values.isna().to_numpy()
    codes = pd.Categorical(values[~missing].astype(str), categories=list(categories)).codes.astype(np.int64)
    codes[codes < 0] = len(categories)
    return np.bincount(codes, minlength=len(categories) + 1), int(missing.sum())


def _bin_task(bins: Sequence[FeatureBins], group_by: Sequence[str]) -> Any:
    """The mapInArrow function: per task, the counts of its rows, as (group..., f, bin, n) rows."""
    edges = [np.asarray(b.edges, dtype=np.float64) for b in bins]

    def run(batches: Iterator[Any]) -> Iterator[Any]:
        import pandas as pd
        import pyarrow as pa

        totals: dict[tuple[Any, ...], list[Any]] = {}

        def add(key: tuple[Any, ...], part: Any) -> None:
            acc = totals.setdefault(key, [0] + [None] * len(bins))
            acc[0] += len(part)
            for i, b in enumerate(bins):
                if b.kind == NUMERIC:
                    values = part[b.feature].to_numpy(dtype=np.float64, na_value=np.nan)
                    counts, nulls = _numeric_counts(values, edges[i])
                else:
                    counts, nulls = _categorical_counts(part[b.feature], b.categories)
                if acc[i + 1] is None:
                    acc[i + 1] = [counts, nulls]
                else:
                    acc[i + 1][0] += counts
                    acc[i + 1][1] += nulls

        for batch in batches:
            if batch.num_rows == 0:
                continue
            frame = batch.to_pandas()
            if group_by:
                for key, part in frame.groupby(list(group_by), dropna=False, sort=False):
                    add(tuple(key) if isinstance(key, tuple) else (key,), part)
            else:
                add((), frame)
        columns: dict[str, list[Any]] = {g: [] for g in group_by}
        columns |= {"f": [], "bin": [], "n": []}

        def emit(key: tuple[Any, ...], f: int, b: int, n: float) -> None:
            for g, v in zip(group_by, key, strict=True):
                columns[g].append(None if v is None or pd.isna(v) else str(v))
            columns["f"].append(f)
            columns["bin"].append(b)
            columns["n"].append(float(n))

        for key, acc in totals.items():
            emit(key, _ROWS, 0, acc[0])
            for i, entry in enumerate(acc[1:]):
                if entry is None:
                    continue
                counts, nulls = entry
                emit(key, i, _NULL_BIN, nulls)
                for b in np.flatnonzero(counts):
                    emit(key, i, int(b), counts[b])
        yield pa.RecordBatch.from_pydict(
            columns,
            schema=pa.schema(
                [*[(g, pa.string()) for g in group_by], ("f", pa.int32()), ("bin", pa.int32()), ("n", pa.float64())]
            ),
        )

    return run


def count_bins(
    frame: Any, bins: Sequence[FeatureBins], group_by: Sequence[str] = ()
) -> dict[tuple[str | None, ...], Counts]:
    """The counts of every feature of ``bins`` in ``frame``, per value of the ``group_by`` columns (as text)."""
    from pyspark.sql import functions as F  # noqa: N812

    columns = [F.col(_quote(g)).cast("string").alias(g) for g in group_by]
    for spec in bins:
        c = F.col(_quote(spec.feature))
        columns.append(c.cast("double" if spec.kind == NUMERIC else "string").alias(spec.feature))
    schema = ", ".join([*[f"{_quote(g)} string" for g in group_by], "f int", "bin int", "n double"])
    partial = frame.select(*columns).mapInArrow(_bin_task(list(bins), list(group_by)), schema)
    rows = partial.groupBy(*[_quote(g) for g in group_by], "f", "bin").agg(F.sum("n").alias("n")).collect()
    out: dict[tuple[str | None, ...], Counts] = {}
    for r in rows:
        key = tuple(r[g] for g in group_by)
        counts = out.setdefault(key, Counts())
        f, b, n = int(r["f"]), int(r["bin"]), float(r["n"])
        if f == _ROWS:
            counts.rows += int(n)
            continue
        feature = bins[f]
        if b == _NULL_BIN:
            counts.nulls[feature.feature] = counts.nulls.get(feature.feature, 0) + int(n)
            continue
        array = counts.counts.setdefault(feature.feature, np.zeros(feature.size, dtype=np.float64))
        array[b] += n
    for counts in out.values():
        for declared in bins:
            counts.counts.setdefault(declared.feature, np.zeros(declared.size, dtype=np.float64))
            counts.nulls.setdefault(declared.feature, 0)
    return out


# --- Straight from the table's Parquet files: each task reads its row groups with pyarrow (as the
# scoring tasks do), so the values never pass through the JVM. ---


def _arrow_counts(column: Any, spec: FeatureBins, edges: npt.NDArray[np.float64]) -> tuple[npt.NDArray[Any], int]:
    """Counts and nulls of one Arrow column (``stats.bin_values`` semantics; NaN counts as null)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if spec.kind == NUMERIC:
        values = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
        return _numeric_counts(np.asarray(values, dtype=np.float64), edges)
    valid = pc.is_valid(column).to_numpy(zero_copy_only=False)
    text = pc.cast(column, pa.string())
    index = pc.index_in(text, value_set=pa.array(list(spec.categories), pa.string()))
    codes = pc.fill_null(index, len(spec.categories)).to_numpy(zero_copy_only=False).astype(np.int64)
    return np.bincount(codes[valid], minlength=len(spec.categories) + 1), int((~valid).sum())


@dataclass(frozen=True)
class FileUnit:
    """One row group of one Parquet file, and the group its rows count for."""

    path: str
    row_group: int
    key: tuple[str | None, ...]


def file_units(files: Sequence[tuple[str, tuple[str | None, ...]]]) -> list[FileUnit]:
    """One unit per row group of the (path, group key) files; footers read on the driver."""
    import pyarrow.parquet as pq

    return [FileUnit(path, g, key) for path, key in files for g in range(pq.ParquetFile(path).metadata.num_row_groups)]


def _file_task(bins: Sequence[FeatureBins], split_by: str | None) -> Any:
    edges = [np.asarray(b.edges, dtype=np.float64) for b in bins]
    columns = [b.feature for b in bins] + ([split_by] if split_by else [])

    def run(units: Iterator[FileUnit]) -> Iterator[tuple[tuple[str | None, ...], int, list[Any]]]:
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        for unit in units:
            table = pq.ParquetFile(unit.path).read_row_group(unit.row_group, columns=columns)
            parts = [(unit.key, table)]
            if split_by:
                parts = [
                    ((*unit.key, None if v is None else str(v)), table.filter(pc.equal(table[split_by], v)))
                    for v in pc.unique(table[split_by]).to_pylist()
                ]
            for key, part in parts:
                counted = [_arrow_counts(part[b.feature], b, edges[i]) for i, b in enumerate(bins)]
                yield key, part.num_rows, [(c.astype(np.float64), n) for c, n in counted]

    return run


def count_files(
    spark: Any,
    files: Sequence[tuple[str, tuple[str | None, ...]]],
    bins: Sequence[FeatureBins],
    *,
    split_by: str | None = None,
    description: str = "lakeforge monitor: counts",
) -> dict[tuple[str | None, ...], Counts]:
    """The counts of every feature of ``bins`` in the Parquet ``files``, per file key (e.g. the event
    date), each key further split by the values of the column ``split_by`` when given (e.g. the alias).

    One Spark task per row group reads it with pyarrow and bins it with numpy; the driver sums the
    small per-task arrays. Same result as :func:`count_bins` over the table's rows.
    """
    units = file_units(files)
    out: dict[tuple[str | None, ...], Counts] = {}
    if not units:
        return out
    context = spark.sparkContext
    context.setJobDescription(description)
    try:
        # A few tasks per core, each over a run of row groups: a task per row group would spend more
        # time in Spark's per-task overhead than in binning (261 row groups of predictions: 11 s vs 0.6 s).
        tasks = min(len(units), TASKS_PER_CORE * context.defaultParallelism)
        results = context.parallelize(units, tasks).mapPartitions(_file_task(list(bins), split_by)).collect()
    finally:
        context.setJobDescription(None)
    for key, rows, counted in results:
        total = out.setdefault(tuple(key), Counts())
        total.rows += int(rows)
        for spec, (counts, nulls) in zip(bins, counted, strict=True):
            total.counts[spec.feature] = total.counts.get(spec.feature, 0) + counts
            total.nulls[spec.feature] = total.nulls.get(spec.feature, 0) + int(nulls)
    for total in out.values():
        for spec in bins:
            total.counts.setdefault(spec.feature, np.zeros(spec.size, dtype=np.float64))
            total.nulls.setdefault(spec.feature, 0)
    return out
