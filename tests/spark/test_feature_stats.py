"""feature_stats against numpy/pandas on the same rows; edge cases; the Delta round trip."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from pyspark.sql.types import StructType

from lakeforge.errors import FeatureError, UsageError
from lakeforge.features.stats import (
    QUANTILE_ACCURACY,
    QUANTILES,
    STATS_SCHEMA,
    FeatureStats,
    feature_stats,
    read_stats,
    write_stats,
)
from lakeforge.lake.catalog import Catalog
from lakeforge.lake.delta import Lineage, read_table, table_history

N = 4000
CITIES = [f"city_{i:02d}" for i in range(30)]
NUMERIC = ["x", "i", "price.usd", "flag", "dec"]


def _sample() -> pa.Table:
    """Doubles with nulls and NaNs, ints on the bin edges, an odd name, booleans, decimals, strings."""
    rng = np.random.default_rng(11)
    x = np.round(rng.normal(10.0, 3.0, N), 1)
    x_mask = rng.random(N) < 0.05
    x[rng.random(N) < 0.02] = np.nan  # NaN, distinct from the nulls of x_mask
    ints = rng.integers(0, 41, N)  # 0..40 in 20 bins of width 2: many values sit on an edge
    i_mask = rng.random(N) < 0.1
    weights = 1.0 / np.arange(1, len(CITIES) + 1)
    cities = rng.choice(CITIES, N, p=weights / weights.sum())
    city_mask = rng.random(N) < 0.03
    flags = rng.random(N) < 0.3
    flag_mask = rng.random(N) < 0.05
    return pa.table(
        {
            "x": pa.array(x, mask=x_mask),
            "i": pa.array(ints, mask=i_mask, type=pa.int64()),
            "price.usd": pa.array(rng.lognormal(3.0, 1.0, N), mask=rng.random(N) < 0.01),
            "flag": pa.array(flags, mask=flag_mask),
            "dec": pa.array(
                [Decimal(f"{v:.2f}") for v in rng.uniform(-50, 50, N)],
                type=pa.decimal128(8, 2),
                mask=rng.random(N) < 0.02,
            ),
            "city": pa.array(cities, mask=city_mask),
        }
    )


@contextmanager
def _jobs(spark: Any, name: str) -> Iterator[list[int]]:
    """Collect the ids of the Spark jobs run inside the block."""
    sc = spark.sparkContext
    found: list[int] = []
    sc.setJobGroup(name, name)
    try:
        yield found
    finally:
        found.extend(sc.statusTracker().getJobIdsForGroup(name))
        sc.setLocalProperty("spark.jobGroup.id", None)


Sample = tuple[pa.Table, dict[str, FeatureStats], int]


@pytest.fixture(scope="module")
def sample(spark: Any) -> Sample:
    """The sample (Arrow keeps NaN and null apart), its stats computed once, and the jobs that took."""
    table = _sample()
    df = spark.createDataFrame(table)
    with _jobs(spark, "feature-stats-sample") as jobs:
        stats = feature_stats(df, [*NUMERIC, "city"])
    assert [s.feature for s in stats] == [*NUMERIC, "city"]
    return table, {s.feature: s for s in stats}, len(jobs)


def _values(table: pa.Table, name: str) -> np.ndarray:
    """The column's non-null, non-NaN values as floats."""
    values = np.array([float(v) for v in table.column(name).drop_null().to_pylist()], dtype=float)
    return values[~np.isnan(values)]


def _check_quantiles(stats: FeatureStats, values: np.ndarray) -> None:
    """percentile_approx returns an observed value whose rank is within n/accuracy of p·n."""
    assert stats.quantile_probs == list(QUANTILES)
    ordered, n = np.sort(values), len(values)
    tolerance = n / QUANTILE_ACCURACY + 1
    for p, q in zip(stats.quantile_probs, stats.quantiles, strict=True):
        assert q in set(ordered), (stats.feature, p, q)
        below, up_to = np.searchsorted(ordered, q, "left"), np.searchsorted(ordered, q, "right")
        assert below - tolerance <= p * n <= up_to + tolerance, (stats.feature, p, q, below, up_to)


def test_numeric_stats_match_numpy(sample: Sample) -> None:
    table, stats, _ = sample
    for name in NUMERIC:
        s, values, column = stats[name], _values(table, name), table.column(name)
        assert s.kind == "numeric" and s.count == N
        assert s.nulls == column.null_count > 0
        assert s.nans == N - column.null_count - len(values)
        assert (s.nans > 0) == (name == "x")
        assert s.null_share == pytest.approx(s.nulls / N)
        assert s.min == values.min() and s.max == values.max()
        assert s.mean == pytest.approx(values.mean(), rel=1e-12, abs=1e-12)
        assert s.stddev == pytest.approx(values.std(ddof=1), rel=1e-9)
        _check_quantiles(s, values)
        # 20 equal-width bins, the same edges numpy makes, the same counts.
        assert s.bin_edges == list(np.linspace(values.min(), values.max(), 21))
        assert s.bin_counts == list(np.histogram(values, bins=np.array(s.bin_edges))[0])
        assert s.bin_counts == list(np.histogram(values, bins=20, range=(values.min(), values.max()))[0])
        assert sum(s.bin_counts) == N - s.nulls - s.nans
        assert s.distinct is None and s.top_values == [] and s.other_count is None
    # The integers really sit on edges (width 2), so the edge rule matters.
    assert stats["i"].bin_edges[:3] == [0.0, 2.0, 4.0]


def test_categorical_stats_match_pandas(sample: Sample) -> None:
    table, stats, _ = sample
    s, city = stats["city"], table.column("city").to_pandas()
    counts = city.value_counts()
    expected = sorted(((str(v), int(n)) for v, n in counts.items()), key=lambda vn: (-vn[1], vn[0]))
    assert s.kind == "categorical" and s.count == N
    assert s.nulls == int(city.isna().sum()) and s.null_share == pytest.approx(city.isna().mean())
    assert s.top_values == expected[:20]
    assert s.other_count == sum(n for _, n in expected[20:]) > 0
    assert abs(s.distinct - city.nunique()) <= 2  # HyperLogLog++, exact-ish at this size
    assert s.mean is None and s.quantiles == [] and s.bin_edges == [] and s.nans == 0


def test_nan_and_infinity(spark: Any) -> None:
    values = [1.0, math.nan, None, math.inf, -math.inf, 2.0, 3.0, math.inf]
    table = pa.table({"v": pa.array(values, type=pa.float64()), "v32": pa.array(values, type=pa.float32())})
    for s in feature_stats(spark.createDataFrame(table), ["v", "v32"], bins=4):
        assert (s.count, s.nulls, s.nans) == (8, 1, 1)
        assert s.min == -math.inf and s.max == math.inf
        assert math.isnan(s.mean) and math.isnan(s.stddev)  # as numpy and Spark
        # Edges span the finite values; the infinities are counted in the outer bins.
        assert s.bin_edges == [1.0, 1.5, 2.0, 2.5, 3.0]
        assert s.bin_counts == [1 + 1, 0, 1, 1 + 2]
        assert sum(s.bin_counts) == s.count - s.nulls - s.nans
        assert s.quantiles[0] == -math.inf and s.quantiles[-1] == math.inf


def test_all_null_constant_and_nan_only_columns(spark: Any) -> None:
    n = 50
    df = spark.createDataFrame(
        pa.table(
            {
                "none_d": pa.array([None] * n, type=pa.float64()),
                "none_s": pa.array([None] * n, type=pa.string()),
                "const_d": pa.array([7.5] * n),
                "const_i": pa.array([3] * (n - 1) + [None], type=pa.int32()),
                "only_nan": pa.array([math.nan] * n),
                "one": pa.array([None] * (n - 1) + [4.0]),
            }
        )
    )
    stats = {s.feature: s for s in feature_stats(df, list(df.columns))}
    none_d = stats["none_d"]
    assert (none_d.count, none_d.nulls, none_d.null_share, none_d.nans) == (n, n, 1.0, 0)
    assert none_d.mean is none_d.stddev is none_d.min is none_d.max is None
    assert none_d.quantiles == none_d.quantile_probs == none_d.bin_edges == none_d.bin_counts == []
    none_s = stats["none_s"]
    assert (none_s.nulls, none_s.distinct, none_s.top_values, none_s.other_count) == (n, 0, [], 0)
    const_d = stats["const_d"]
    assert const_d.bin_edges == [7.5, 7.5] and const_d.bin_counts == [n]  # min == max: one bin
    assert const_d.mean == 7.5 and const_d.stddev == 0.0 and const_d.quantiles == [7.5] * len(QUANTILES)
    const_i = stats["const_i"]
    assert const_i.nulls == 1 and const_i.bin_edges == [3.0, 3.0] and const_i.bin_counts == [n - 1]
    only_nan = stats["only_nan"]
    assert (only_nan.nulls, only_nan.nans, only_nan.bin_counts, only_nan.mean) == (0, n, [], None)
    one = stats["one"]
    assert (one.mean, one.stddev, one.bin_edges, one.bin_counts) == (4.0, None, [4.0, 4.0], [1])


def test_empty_frame(spark: Any) -> None:
    df = spark.createDataFrame([], "v double, s string, f boolean")
    with _jobs(spark, "feature-stats-empty") as jobs:
        stats = feature_stats(df, ["v", "s", "f"])
    for s in stats:
        assert (s.count, s.nulls, s.nans, s.null_share) == (0, 0, 0, None)
        assert s.mean is s.stddev is s.min is s.max is None
        assert s.quantiles == s.bin_edges == s.bin_counts == s.top_values == []
    assert stats[1].distinct == 0 and stats[1].other_count == 0
    assert 1 <= len(jobs) <= 2  # query 1 only: nothing to bin or count


def test_sixty_features_in_a_constant_number_of_jobs(spark: Any, sample: Sample) -> None:
    """The plan does not grow per feature in jobs: 60 features run the same jobs as 6."""
    rng = np.random.default_rng(5)
    rows = 800
    columns: dict[str, Any] = {}
    for j in range(60):
        if j % 4 == 3:
            columns[f"s{j}"] = pa.array(rng.choice(["a", "b", "c", "d", "e"], rows), mask=rng.random(rows) < 0.1)
        else:
            columns[f"x{j}"] = pa.array(rng.normal(j, 1 + j, rows), mask=rng.random(rows) < 0.1)
    table = pa.table(columns)
    df = spark.createDataFrame(table)
    with _jobs(spark, "feature-stats-wide") as jobs:
        stats = feature_stats(df, table.column_names)
    assert len(jobs) == sample[2]
    frame = table.to_pandas()
    assert [s.feature for s in stats] == table.column_names
    for s in stats:
        series = frame[s.feature]
        assert s.nulls == int(series.isna().sum())
        if s.kind == "numeric":
            values = series.dropna().to_numpy()
            assert s.mean == pytest.approx(values.mean(), rel=1e-12)
            assert s.bin_counts == list(np.histogram(values, bins=np.array(s.bin_edges))[0])
        else:
            counts = series.value_counts()
            assert dict(s.top_values) == {str(k): int(v) for k, v in counts.items()}


def test_bad_arguments(spark: Any) -> None:
    df = spark.createDataFrame([(1.0, dt.date(2024, 1, 1))], "amount double, day date")
    with pytest.raises(FeatureError, match="'amount'"):
        feature_stats(df, ["amont"])
    with pytest.raises(FeatureError, match="type date"):
        feature_stats(df, ["day"])
    with pytest.raises(UsageError, match="twice"):
        feature_stats(df, ["amount", "amount"])
    with pytest.raises(UsageError, match="bins"):
        feature_stats(df, ["amount"], bins=0)
    with pytest.raises(UsageError, match="quantiles"):
        feature_stats(df, ["amount"], quantiles=(0.5, 1.5))
    with pytest.raises(UsageError, match="list of column names"):
        feature_stats(df, "amount")
    assert feature_stats(df, []) == []


def test_write_and_read_round_trip(spark: Any, lake_root: Path, sample: Sample) -> None:
    catalog = Catalog(lake_root)
    table = "features.flight_delay__stats"
    first = sorted(sample[1].values(), key=lambda s: s.feature)
    # An all-null feature: every figure null, yet the explicit schema writes it.
    blank = FeatureStats(feature="blank", kind="numeric", count=0, nulls=0, null_share=None)
    stats = sorted([*first, blank], key=lambda s: s.feature)
    lineage = Lineage(job_run_id="run-1", step="features")
    args: dict[str, Any] = {
        "feature_set": "flight_delay",
        "start": dt.date(2024, 1, 1),
        "end": dt.date(2024, 1, 31),
        "source_version": 3,
        "lineage": lineage,
    }
    written = write_stats(spark, catalog, table, stats, build_id="b1", **args)
    assert (written.version, written.rows, written.skipped) == (0, len(stats), False)
    # A retried build writes nothing twice.
    again = write_stats(spark, catalog, table, stats, build_id="b1", **args)
    assert again.skipped and again.version == 0 and read_table(spark, catalog, table).count() == len(stats)
    assert table_history(catalog, table)[0].app_id == "features.flight_delay.stats.b1"

    rows = read_table(spark, catalog, table)
    expected = StructType.fromDDL(STATS_SCHEMA)
    assert [(f.name, f.dataType) for f in rows.schema.fields] == [(f.name, f.dataType) for f in expected.fields]
    head = rows.where("feature = 'x'").first()
    assert (head["feature_set"], head["build_id"], head["feature_table_version"]) == ("flight_delay", "b1", 3)
    assert (head["start_date"], head["end_date"]) == (dt.date(2024, 1, 1), dt.date(2024, 1, 31))
    assert head["computed_at"] is not None

    assert read_stats(spark, catalog, table, "flight_delay") == stats
    later = [FeatureStats(feature="x", kind="numeric", count=1, nulls=1, null_share=1.0)]
    write_stats(spark, catalog, table, later, build_id="b2", **args)
    assert read_stats(spark, catalog, table, "flight_delay") == later  # the latest build by default
    assert read_stats(spark, catalog, table, "flight_delay", build_id="b1") == stats
    with pytest.raises(FeatureError, match="latest builds: b2, b1"):
        read_stats(spark, catalog, table, "flight_delay", build_id="b9")
    with pytest.raises(FeatureError, match="flight_delay"):
        read_stats(spark, catalog, table, "flight_dela")


def test_to_row_round_trip() -> None:
    stats = FeatureStats(
        feature="city",
        kind="categorical",
        count=10,
        nulls=1,
        null_share=0.1,
        distinct=3,
        top_values=[("a", 5), ("b", 3)],
        other_count=1,
    )
    row = stats.to_row()
    assert row["top_values"] == [{"value": "a", "count": 5}, {"value": "b", "count": 3}]
    assert FeatureStats.from_row(row) == stats
