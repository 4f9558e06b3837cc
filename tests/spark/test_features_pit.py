"""Point-in-time correctness: the compiled Spark plan against the brute-force reference on random data.

Each hypothesis example builds small random events (few keys, clustered times so that ties and
exact window boundaries happen, nulls in keys, times and values) and a second timestamped source,
computes one feature set holding every aggregation function, a filter, a lag, ``available_at``,
a window over another dataset and two as-of joins, and compares every value with
``tests.features.reference``.
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from lakeforge.features.compute import compute_features
from lakeforge.features.spec import feature_set_spec
from tests.features.reference import AsOf, Window, asof_feature, window_feature

BASE = datetime(2024, 3, 9, 0, 0)  # spans the US daylight-saving switch of 2024-03-10: UTC is unaffected
FUNCTIONS = ["count", "sum", "avg", "min", "max", "stddev", "count_distinct"]

FEATURES: dict[str, Any] = {
    "name": "pit",
    "entity": ["id"],
    "spine": {"dataset": "ev", "event_time": "t"},
    "windows": [
        *[{"name": f"{f}_2h", "function": f, "column": "v", "window": "2h", "by": ["k"]} for f in FUNCTIONS],
        {"name": "rows_1h", "function": "count", "window": "1h", "by": ["k"]},
        {"name": "flagged_sum_3h", "function": "sum", "column": "v", "window": "3h", "by": ["k"], "filter": "f = 1"},
        {"name": "lagged_avg_2h", "function": "avg", "column": "v", "window": "2h", "by": ["k"], "lag": "1h"},
        {
            "name": "known_count_3h",
            "function": "count",
            "window": "3h",
            "by": ["k"],
            "available_at": "t + INTERVAL 30 MINUTES",
        },
        {"name": "other_max_2h", "function": "max", "column": "w", "window": "2h", "by": ["k"], "source": "src"},
    ],
    "asof_joins": [
        {"dataset": "src", "keys": ["k"], "event_time": "s", "columns": ["w", "x"], "prefix": "a_"},
        {
            "dataset": "src",
            "keys": ["k"],
            "event_time": "s",
            "columns": ["w"],
            "prefix": "b_",
            "lag": "30m",
            "max_age": "1h",
        },
    ],
}
DATASETS = {"ev": {"event_time": "t"}, "src": {"event_time": "s"}}

REFERENCE_WINDOWS = [
    *[Window(f"{f}_2h", f, "v", 7200, ["k"]) for f in FUNCTIONS],
    Window("rows_1h", "count", None, 3600, ["k"]),
    Window("flagged_sum_3h", "sum", "v", 10800, ["k"], filter=lambda s: s["f"] == 1),
    Window("lagged_avg_2h", "avg", "v", 7200, ["k"], lag_s=3600),
]

# Times on a 15-minute grid (boundaries are hit exactly), some null.
times = st.one_of(st.none(), st.integers(0, 4 * 24 * 4).map(lambda q: BASE + timedelta(minutes=15 * q)))
keys = st.one_of(st.none(), st.integers(0, 2))
values = st.one_of(st.none(), st.integers(-3, 3).map(float))
event_rows = st.lists(st.tuples(keys, times, values, st.integers(0, 1)), min_size=1, max_size=40)
source_rows = st.lists(st.tuples(keys, times, values, st.one_of(st.none(), st.integers(0, 2))), max_size=30)


def _frames(spark: Any, events: list[tuple[Any, ...]], sources: list[tuple[Any, ...]]) -> dict[str, Any]:
    ev = spark.createDataFrame(
        [(i, *row) for i, row in enumerate(events)], "id int, k int, t timestamp, v double, f int"
    )
    src = spark.createDataFrame(sources, "k int, s timestamp, w double, x int")
    return {"ev": ev, "src": src}


def _reference(events: list[tuple[Any, ...]], sources: list[tuple[Any, ...]]) -> pd.DataFrame:
    ev = pd.DataFrame(events, columns=["k", "t", "v", "f"]).astype({"k": "Int64", "v": "float64"})
    ev["t"] = pd.to_datetime(ev["t"])
    ev.insert(0, "id", range(len(ev)))
    src = pd.DataFrame(sources, columns=["k", "s", "w", "x"]).astype({"k": "Int64", "w": "float64", "x": "Int64"})
    src["s"] = pd.to_datetime(src["s"])
    spine = ev[ev["t"].notna()].copy()
    out = spine[["id"]].copy()
    for w in REFERENCE_WINDOWS:
        out[w.name] = window_feature(spine, "t", ev, w)
    shifted = ev.assign(known=ev["t"] + pd.Timedelta(minutes=30))
    out["known_count_3h"] = window_feature(
        spine, "t", shifted, Window("k3", "count", None, 10800, ["k"], time_column="known")
    )
    out["other_max_2h"] = window_feature(spine, "t", src, Window("o", "max", "w", 7200, ["k"], time_column="s"))
    out = out.join(asof_feature(spine, "t", src, AsOf("a_", ["k"], "s", ["w", "x"])))
    out = out.join(asof_feature(spine, "t", src, AsOf("b_", ["k"], "s", ["w"], lag_s=1800, max_age_s=3600)))
    return out.set_index("id").sort_index()


def _same(expected: Any, actual: Any) -> bool:
    missing = expected is None or (isinstance(expected, float) and math.isnan(expected)) or expected is pd.NA
    if missing:
        return actual is None or (isinstance(actual, float) and math.isnan(actual))
    if actual is None:
        return False
    return math.isclose(float(expected), float(actual), rel_tol=1e-9, abs_tol=1e-9)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=event_rows, sources=source_rows)
def test_compiled_features_match_the_reference(spark: Any, events: list[Any], sources: list[Any]) -> None:
    spec = feature_set_spec(OmegaConf.create(FEATURES), OmegaConf.create(DATASETS))
    tables = _frames(spark, events, sources)
    got = compute_features(spark, spec, tables.__getitem__, date(2024, 3, 1), date(2024, 3, 31)).toPandas()
    got = got.set_index("id").sort_index()
    expected = _reference(events, sources)
    assert list(got.index) == list(expected.index)
    for column in expected.columns:
        for row_id in expected.index:
            want, have = expected.at[row_id, column], got.at[row_id, column]
            assert _same(want, None if pd.isna(have) else have), (column, row_id, want, have)


@pytest.fixture
def boundary_tables(spark: Any) -> dict[str, Any]:
    """One key: events exactly at the window edges, a weather-like source exactly at the cutoff."""
    t0 = datetime(2024, 1, 2, 12, 0)
    ev = spark.createDataFrame(
        [
            (1, 1, t0 - timedelta(hours=2), 10.0),  # exactly window-length before: in (closed start)
            (2, 1, t0 - timedelta(hours=1), 20.0),
            (3, 1, t0, 30.0),  # the event itself, and a tie at t0: never in (open end)
            (4, 1, t0, 40.0),
            (5, 2, t0, 50.0),  # a key with no history
        ],
        "id int, k int, t timestamp, v double",
    )
    src = spark.createDataFrame(
        [(1, t0, 7.0), (1, t0 - timedelta(hours=1), 6.0), (2, t0 + timedelta(seconds=1), 9.0)],
        "k int, s timestamp, w double",
    )
    return {"ev": ev, "src": src}


def _boundary_spec() -> Any:
    fs = {
        "name": "edges",
        "entity": ["id"],
        "spine": {"dataset": "ev", "event_time": "t"},
        "windows": [
            {"name": "n_2h", "function": "count", "window": "2h", "by": ["k"]},
            {"name": "sum_2h", "function": "sum", "column": "v", "window": "2h", "by": ["k"]},
        ],
        "asof_joins": [{"dataset": "src", "keys": ["k"], "event_time": "s", "columns": ["w"], "prefix": "wx_"}],
    }
    return feature_set_spec(OmegaConf.create(fs), OmegaConf.create(DATASETS))


def test_window_boundaries_ties_and_empty_history(spark: Any, boundary_tables: dict[str, Any]) -> None:
    got = compute_features(spark, _boundary_spec(), boundary_tables.__getitem__, date(2024, 1, 2), date(2024, 1, 2))
    rows = {r["id"]: r for r in got.collect()}
    # Events at t0 see ids 1 and 2 (t0-2h is in, the tie at t0 is out).
    assert (rows[3]["n_2h"], rows[3]["sum_2h"]) == (2, 30.0)
    assert (rows[4]["n_2h"], rows[4]["sum_2h"]) == (2, 30.0)
    # id 2 at t0-1h sees id 1 (t0-2h, 1h before); id 1 sees nothing: count 0, sum null.
    assert (rows[2]["n_2h"], rows[2]["sum_2h"]) == (1, 10.0)
    assert (rows[1]["n_2h"], rows[1]["sum_2h"]) == (0, None)
    assert (rows[5]["n_2h"], rows[5]["sum_2h"]) == (0, None)


def test_asof_is_inclusive_at_the_event_time(spark: Any, boundary_tables: dict[str, Any]) -> None:
    got = compute_features(spark, _boundary_spec(), boundary_tables.__getitem__, date(2024, 1, 2), date(2024, 1, 2))
    rows = {r["id"]: r for r in got.collect()}
    assert rows[3]["wx_w"] == 7.0  # the reading stamped exactly t0 is used (Feast's convention)
    assert rows[2]["wx_w"] == 6.0
    assert rows[1]["wx_w"] is None  # nothing at or before
    assert rows[5]["wx_w"] is None  # key 2's reading is 1 s after t0: future, not used


def test_late_arriving_rows_wait_for_available_at(spark: Any) -> None:
    """A row whose value is known only later (e.g. a flight's arrival) is not used before then."""
    t0 = datetime(2024, 1, 2, 12, 0)
    ev = spark.createDataFrame(
        [(1, 1, t0 - timedelta(hours=3), 5.0, t0 + timedelta(hours=1)), (2, 1, t0, 1.0, t0 + timedelta(hours=1))],
        "id int, k int, t timestamp, v double, known timestamp",
    )
    fs = {
        "name": "late",
        "entity": ["id"],
        "spine": {"dataset": "ev", "event_time": "t"},
        "windows": [
            {"name": "by_event", "function": "count", "window": "1d", "by": ["k"]},
            {"name": "by_known", "function": "count", "window": "1d", "by": ["k"], "available_at": "known"},
        ],
    }
    spec = feature_set_spec(OmegaConf.create(fs), OmegaConf.create(DATASETS))
    rows = {r["id"]: r for r in compute_features(spark, spec, {"ev": ev}.__getitem__, t0.date(), t0.date()).collect()}
    assert (rows[2]["by_event"], rows[2]["by_known"]) == (1, 0)


def test_training_and_scoring_compute_identical_features(spark: Any, boundary_tables: dict[str, Any]) -> None:
    """A training range and a one-day scoring run give the same values for the same events."""
    spec = _boundary_spec()
    wide = compute_features(spark, spec, boundary_tables.__getitem__, date(2024, 1, 1), date(2024, 1, 3))
    one_day = compute_features(spark, spec, boundary_tables.__getitem__, date(2024, 1, 2), date(2024, 1, 2))
    assert sorted(map(tuple, one_day.collect())) == sorted(
        map(tuple, wide.where("event_date = DATE'2024-01-02'").select(*one_day.columns).collect())
    )
    assert one_day.count() == 5


def test_timestamp_ntz_times_give_the_same_features(spark: Any, boundary_tables: dict[str, Any]) -> None:
    """Parquet written by pandas/pyarrow reads as TIMESTAMP_NTZ; the times are taken as UTC instants."""
    from pyspark.sql import functions as F  # noqa: N812

    ntz = {
        "ev": boundary_tables["ev"].withColumn("t", F.col("t").cast("timestamp_ntz")),
        "src": boundary_tables["src"].withColumn("s", F.col("s").cast("timestamp_ntz")),
    }
    day = date(2024, 1, 2)
    want = compute_features(spark, _boundary_spec(), boundary_tables.__getitem__, day, day)
    got = compute_features(spark, _boundary_spec(), ntz.__getitem__, day, day)
    columns = ["id", "n_2h", "sum_2h", "wx_w", "event_date"]
    assert sorted(tuple(r) for r in got.select(columns).collect()) == sorted(
        tuple(r) for r in want.select(columns).collect()
    )
