"""The brute-force feature reference on hand-made cases, and the DuckDB workload features checked against it."""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from bench.features_workload import ASOF, WINDOWS, Workload, duckdb_features, make_workload

from lakeforge.config.values import parse_duration
from tests.features.reference import AsOf, Window, asof_feature, window_feature

H = 3600
T0 = pd.Timestamp("2024-01-01")
EPS = pd.Timedelta(microseconds=1)
FEATURES = ["n_1d", "amount_mean_7d", "flagged_30d", "level"]


def at(*offsets: str | pd.Timedelta | None) -> np.ndarray:
    """Instants ``offsets`` after T0 (``"9h"``, a Timedelta, or None for null) as datetime64[us]."""
    return np.array([None if o is None else T0 + pd.Timedelta(o) for o in offsets], dtype="datetime64[us]")


def spine_at(*offsets: str | None, k: list[object] | None = None) -> pd.DataFrame:
    """A spine of events at ``offsets``, all of key ``k`` = 1 unless given."""
    return pd.DataFrame({"k": k or [1] * len(offsets), "t": at(*offsets)})


def nulls_as_none(values: pd.Series) -> list[object]:
    """``values`` as a list with every null (NaN, NaT, None, NA) as None."""
    return [None if pd.isna(v) else v for v in values]


def count_in(window_s: int, lag_s: int = 0) -> Window:
    """``count`` of the source rows (time ``ts``, key ``k``) in a window."""
    return Window("n", "count", None, window_s, ["k"], lag_s=lag_s, time_column="ts")


class TestWindowBounds:
    def test_closed_left_open_right(self) -> None:
        """[t - lag - window, t - lag): the row exactly at t - lag is out, the one at the start is in."""
        inside = ["7h", "8h", pd.Timedelta("9h") - EPS]
        outside = [pd.Timedelta("7h") - EPS, "9h", "9h30m", "10h", "11h"]
        source = pd.DataFrame({"k": 1, "ts": at(*inside, *outside)})
        got = window_feature(spine_at("10h"), "t", source, count_in(2 * H, lag_s=H))
        assert got.tolist() == [len(inside)]

    def test_own_row_and_duplicates_not_counted_index_kept(self) -> None:
        """With no lag an event never sees itself or a duplicate at its own instant; rows keep their index."""
        spine = pd.DataFrame({"k": [1, 1, 1, 2], "t": at("5h", "5h", "6h", "5h")}, index=[30, 10, 20, 40])
        got = window_feature(spine, "t", spine, Window("n", "count", None, 24 * H, ["k"]))
        assert got.to_dict() == {30: 0, 10: 0, 20: 2, 40: 0}
        assert got.name == "n"

    def test_null_times(self) -> None:
        """A source row without time is never used; a spine row without time gets the empty value."""
        source = pd.DataFrame({"k": 1, "ts": at("9h", None), "x": [2.0, 5.0]})
        got = window_feature(spine_at("10h", None), "t", source, Window("m", "avg", "x", 2 * H, ["k"], 0, None, "ts"))
        assert nulls_as_none(got) == [2.0, None]


class TestWindowValues:
    SOURCE = pd.DataFrame({"k": 1, "ts": at("1h", "2h", "3h", "4h", "5h"), "x": [4.0, None, 1.0, 4.0, 2.0]})

    @pytest.mark.parametrize(
        ("function", "column", "expected"),
        [
            ("count", None, 5),
            ("count", "x", 4),
            ("count_distinct", "x", 3),
            ("sum", "x", 11.0),
            ("avg", "x", 2.75),
            ("min", "x", 1.0),
            ("max", "x", 4.0),
            ("stddev", "x", statistics.stdev([4.0, 1.0, 4.0, 2.0])),
        ],
    )
    def test_function_skips_nulls(self, function: str, column: str | None, expected: float) -> None:
        """Every function over the same five rows, one of them with a null value."""
        w = Window("f", function, column, 24 * H, ["k"], time_column="ts")
        assert window_feature(spine_at("6h"), "t", self.SOURCE, w).tolist() == [pytest.approx(expected)]

    @pytest.mark.parametrize(
        ("function", "column", "expected"),
        [("count", None, 0), ("count", "x", 0), ("count_distinct", "x", 0)]
        + [(f, "x", None) for f in ("sum", "avg", "min", "max", "stddev")],
    )
    def test_empty_window(self, function: str, column: str | None, expected: int | None) -> None:
        """No row in the window: 0 for the counts, null for the rest."""
        w = Window("f", function, column, H, ["k"], time_column="ts")
        assert nulls_as_none(window_feature(spine_at("30m"), "t", self.SOURCE, w)) == [expected]

    @pytest.mark.parametrize(("function", "expected"), [("count", 0), ("sum", None), ("stddev", None)])
    def test_only_null_values(self, function: str, expected: int | None) -> None:
        """Rows in the window whose values are all null count as an empty window."""
        source = pd.DataFrame({"k": 1, "ts": at("1h", "2h"), "x": [None, None]})
        got = window_feature(spine_at("3h"), "t", source, Window("f", function, "x", H * 24, ["k"], 0, None, "ts"))
        assert nulls_as_none(got) == [expected]

    def test_stddev_needs_two_values(self) -> None:
        """Sample stddev: null with one value, defined from two."""
        w = Window("s", "stddev", "x", 2 * H, ["k"], time_column="ts")
        got = nulls_as_none(window_feature(spine_at("2h", "5h"), "t", self.SOURCE, w))
        assert got == [None, pytest.approx(statistics.stdev([1.0, 4.0]))]  # only 4.0 at 1h; 1.0 and 4.0


class TestWindowRows:
    def test_null_keys_never_match(self) -> None:
        """A null key on either side matches nothing, not even another null."""
        source = pd.DataFrame({"k": ["a", None, None], "ts": at("1h", "1h", "2h")})
        got = window_feature(spine_at("3h", "3h", k=["a", None]), "t", source, count_in(24 * H))
        assert got.tolist() == [1, 0]

    def test_every_by_column_must_match(self) -> None:
        """With two ``by`` columns only rows equal on both count; a partly null key matches nothing."""
        source = pd.DataFrame({"a": [1, 1, 2, 1], "b": ["x", "y", "x", None], "ts": at("1h", "1h", "1h", "1h")})
        spine = pd.DataFrame({"a": [1, 1], "b": ["x", None], "t": at("2h", "2h")})
        got = window_feature(spine, "t", source, Window("n", "count", None, H * 24, ["a", "b"], time_column="ts"))
        assert got.tolist() == [1, 0]

    def test_filter_null_is_false(self) -> None:
        """Only rows where ``filter`` is true count; a null filter result drops the row."""
        source = pd.DataFrame({"k": 1, "ts": at("1h", "1h", "1h", "1h"), "x": pd.array([0, 2, 3, None], "Float64")})
        w = Window("n", "count", None, 24 * H, ["k"], filter=lambda df: df["x"] > 1, time_column="ts")
        assert window_feature(spine_at("2h"), "t", source, w).tolist() == [2]

    @pytest.mark.parametrize(("function", "column"), [("median", "x"), ("sum", None)])
    def test_invalid_window(self, function: str, column: str | None) -> None:
        """An unknown function, or a function other than count without a column, is refused."""
        with pytest.raises(ValueError, match=function):
            window_feature(spine_at("1h"), "t", spine_at("1h"), Window("f", function, column, H, ["k"]))


class TestAsOf:
    def test_cutoff_inclusive_with_lag(self) -> None:
        """The row exactly at t - lag is picked; a row 1µs later is not."""
        source = pd.DataFrame({"k": 1, "ts": at("8h", "9h", pd.Timedelta("9h") + EPS), "v": [1.0, 2.0, 3.0]})
        got = asof_feature(spine_at("10h"), "t", source, AsOf("r_", ["k"], "ts", ["v"], lag_s=H))
        assert got.to_dict("list") == {"r_v": [2.0]}

    def test_max_age_inclusive(self) -> None:
        """A row exactly max_age before the cutoff is picked; 1µs older is not."""
        source = pd.DataFrame({"k": [1, 2], "ts": at("8h", pd.Timedelta("8h") - EPS), "v": [1.0, 2.0]})
        got = asof_feature(spine_at("10h", "10h", k=[1, 2]), "t", source, AsOf("", ["k"], "ts", ["v"], 0, 2 * H))
        assert nulls_as_none(got["v"]) == [1.0, None]

    def test_latest_row_wins_even_with_null_value(self) -> None:
        """The latest row is picked even when its value is null: no fall-back to an older value."""
        source = pd.DataFrame({"k": 1, "ts": at("1h", "2h"), "v": [1.0, None]})
        got = asof_feature(spine_at("3h"), "t", source, AsOf("", ["k"], "ts", ["v"]))
        assert nulls_as_none(got["v"]) == [None]

    @pytest.mark.parametrize(
        ("tied", "expected"),
        [
            ([(1, None), (2, None), (2, 0)], (2, 0)),
            ([(None, 5), (None, 3)], (None, 5)),
            ([(None, 9), (1, 0), (None, None)], (1, 0)),
        ],
    )
    def test_ties_take_greatest_tuple_null_lowest(self, tied: list[tuple[int | None, ...]], expected: tuple) -> None:
        """Rows tied at the latest time: the greatest (a, b), null below any value."""
        source = pd.DataFrame(
            {
                "k": 1,
                "ts": at(*["2h"] * len(tied), "1h"),
                "a": [r[0] for r in tied] + [99],
                "b": [r[1] for r in tied] + [99],
            }
        ).astype({"a": "Int64", "b": "Int64"})
        got = asof_feature(spine_at("3h"), "t", source, AsOf("", ["k"], "ts", ["a", "b"]))
        assert tuple(nulls_as_none(got.iloc[0])) == expected

    def test_null_keys_times_and_no_candidate(self) -> None:
        """Null keys and times match nothing; rows without a candidate get nulls; the spine index is kept."""
        source = pd.DataFrame({"k": [1.0, None, 1.0], "ts": at("1h", "1h", None), "v": ["a", "b", "c"]})
        spine = pd.DataFrame(
            {"k": [1.0, None, 1.0, 2.0, 1.0], "t": at("2h", "2h", None, "2h", "2h")}, index=list("edcba")
        )
        got = asof_feature(spine, "t", source, AsOf("s_", ["k"], "ts", ["v"]))
        assert got.index.tolist() == list("edcba")
        assert nulls_as_none(got["s_v"]) == ["a", None, None, None, "a"]


def _window(spec: dict) -> Window:
    """A reference window from a ``WINDOWS`` entry."""
    lag = parse_duration(spec["lag"])
    return Window(spec["name"], spec["function"], spec.get("column"), parse_duration(spec["window"]), spec["by"], lag)


def reference_features(workload: Workload) -> pd.DataFrame:
    """The workload's features by the brute-force reference, in event_id order."""
    events = pq.read_table(workload.events_path).to_pandas()
    readings = pq.read_table(workload.readings_path).to_pandas()
    out = events[["event_id"]].copy()
    for spec in WINDOWS:
        out[spec["name"]] = window_feature(events, "event_ts", events, _window(spec))
    max_age = parse_duration(ASOF["max_age"])
    join = AsOf(ASOF["prefix"], ASOF["keys"], ASOF["event_time"], ASOF["columns"], parse_duration(ASOF["lag"]), max_age)
    out = out.join(asof_feature(events, "event_ts", readings, join))
    return out.sort_values("event_id", ignore_index=True)


def assert_matches_reference(got: pa.Table, workload: Workload) -> pd.DataFrame:
    """``got`` has one row per event with the reference's features (floats to 1e-9); returned in event_id order."""
    expected = reference_features(workload)
    actual = got.to_pandas().sort_values("event_id", ignore_index=True)
    assert actual.columns.tolist() == ["event_id", *FEATURES]
    assert actual["event_id"].tolist() == expected["event_id"].tolist()
    for name in FEATURES:
        np.testing.assert_allclose(
            actual[name].to_numpy(float), expected[name].to_numpy(float), rtol=1e-9, equal_nan=True, err_msg=name
        )
    return actual


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Workload:
    """A small generated workload: 3,000 events, 50 entities, 45 days (so the 30d window has a start)."""
    return make_workload(tmp_path_factory.mktemp("features"), events=3000, entities=50, days=45)


class TestWorkload:
    def test_shape_and_determinism(self, small: Workload, tmp_path: Path) -> None:
        """Declared columns and types, unique ids and reading keys, the same files again for the same seed."""
        events, readings = pq.read_table(small.events_path), pq.read_table(small.readings_path)
        assert events.schema == pa.schema(
            {
                "event_id": pa.int64(),
                "entity_id": pa.int64(),
                "event_ts": pa.timestamp("us"),
                "amount": pa.float64(),
                "is_flagged": pa.int32(),
            }
        )
        assert readings.schema == pa.schema(
            {"entity_id": pa.int64(), "reading_ts": pa.timestamp("us"), "level": pa.float64()}
        )
        ev, rd = events.to_pandas(), readings.to_pandas()
        assert (len(ev), len(rd)) == (small.events, small.readings)
        assert ev["event_id"].is_unique and not rd.duplicated(["entity_id", "reading_ts"]).any()
        assert ev["entity_id"].between(0, small.entities - 1).all()
        assert ev["event_ts"].between(T0, T0 + pd.Timedelta(days=small.days) - EPS).all()
        assert 0 < ev["amount"].isna().sum() < 0.03 * len(ev)
        assert abs(len(rd) / (small.entities * small.days * 2) - 1) < 0.1
        again = make_workload(tmp_path, events=3000, entities=50, days=45)
        assert pq.read_table(again.events_path).equals(events)
        assert pq.read_table(again.readings_path).equals(readings)

    def test_boundaries_are_planted(self, small: Workload) -> None:
        """Events lie exactly on each window bound and each as-of bound, so the comparison checks them."""
        ev = pq.read_table(small.events_path).to_pandas()
        pairs = ev.merge(ev, on="entity_id")
        pairs = pairs[pairs["event_id_x"] != pairs["event_id_y"]]
        gaps = (pairs["event_ts_x"] - pairs["event_ts_y"]).to_numpy()
        assert np.isin(pd.to_timedelta(["0s", "1h", "1d", "7d1h", "30d"]), gaps).all()
        near = ev.merge(pq.read_table(small.readings_path).to_pandas(), on="entity_id")
        ages = (near["event_ts"] - near["reading_ts"]).to_numpy()
        assert np.isin(pd.to_timedelta(["0s", "-1us", "6h", "6h1us"]), ages).all()


class TestDuckDB:
    def test_matches_reference(self, small: Workload) -> None:
        """The DuckDB features equal the reference's on the generated workload."""
        got = assert_matches_reference(duckdb_features(small), small)
        assert got[FEATURES].notna().any().all()

    def test_matches_reference_on_bounds_nulls_and_ties(self, tmp_path: Path) -> None:
        """Exact bounds, null keys and times, duplicate events and tied readings: DuckDB equals the reference."""
        ten = pd.Timedelta("10h")
        event_rows = [  # entity_id, event_ts, amount, is_flagged
            (1, "10h", 1.0, 1),
            (1, "10h", 2.0, 1),  # a duplicate instant: the two never count each other
            (1, "9h", 4.0, 1),
            (1, "-14h", 8.0, 1),  # exactly 1d before 10h: in n_1d
            (None, "10h", 16.0, 1),  # null keys match nothing, not even each other
            (None, "10h", 32.0, 1),
            (1, None, 64.0, 1),  # no time: never counted, empty features
            (2, "10h", None, 1),
            (3, "10h", 1.0, 0),  # every bound of its three windows below
            (3, "9h", 100.0, 1),  # exactly t - 1h: not in amount_mean_7d
            (3, ten - pd.Timedelta("7d1h"), 10.0, 1),  # the start of amount_mean_7d: in
            (3, ten - pd.Timedelta("7d1h") - EPS, 1000.0, 1),
            (3, ten - pd.Timedelta("30d"), 1.0, 1),  # the start of flagged_30d: in
            (3, ten - pd.Timedelta("30d") - EPS, 1.0, 1),
        ]
        reading_rows = [  # entity_id, reading_ts, level
            (1, "10h", 1.0),  # three tied at 10h: the greatest level wins
            (1, "10h", None),
            (1, "10h", 3.0),
            (1, None, 9.0),
            (None, "10h", 9.0),
            (2, "4h", 7.0),  # exactly max_age before 10h: picked
            (2, "11h", 9.0),
            (3, "9h", None),
            (3, "9h", None),
        ]
        entity, ts, amount, flagged = zip(*event_rows, strict=True)
        events = pa.table(
            {
                "event_id": pa.array(range(len(event_rows)), pa.int64()),
                "entity_id": pa.array(entity, pa.int64()),
                "event_ts": pa.array(at(*ts), pa.timestamp("us")),
                "amount": pa.array(amount, pa.float64()),
                "is_flagged": pa.array(flagged, pa.int32()),
            }
        )
        entity, ts, level = zip(*reading_rows, strict=True)
        readings = pa.table(
            {
                "entity_id": pa.array(entity, pa.int64()),
                "reading_ts": pa.array(at(*ts), pa.timestamp("us")),
                "level": pa.array(level, pa.float64()),
            }
        )
        workload = Workload(
            tmp_path / "events.parquet", tmp_path / "readings.parquet", len(events), 3, 1, len(readings)
        )
        pq.write_table(events, workload.events_path)
        pq.write_table(readings, workload.readings_path)
        got = assert_matches_reference(duckdb_features(workload), workload)
        assert got["n_1d"].tolist()[:9] == [2, 2, 1, 0, 0, 0, 0, 0, 1]
        assert nulls_as_none(got["level"])[:9] == [3.0, 3.0, None, None, None, None, None, 7.0, None]
        assert got.loc[8, ["amount_mean_7d", "flagged_30d"]].tolist() == [10.0, 4]
