"""The point-in-time kernel (numpy and pyarrow, no Spark) against the brute-force reference.

The kernel gets rows as Spark hands them to ``mapInArrow``: spine rows and source rows of one
key set, sorted by (keys, time), in batches of any size. Here they are built in Python, cut into
random batches, and run through ``stage_kernel`` with a small chunk size so chunks end at group
boundaries often; every value is compared with ``tests.features.reference``.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lakeforge.features.kernel import (
    BLOCK,
    SPINE,
    TIME,
    AsOfTask,
    Stage,
    WindowTask,
    chunks,
    dense_codes,
    distinct_in_ranges,
    range_reduce,
    search_keys,
    stage_kernel,
)
from tests.features.reference import FUNCTIONS, AsOf, Window, asof_feature, window_feature

BASE = datetime(2024, 3, 9)
US = 1_000_000
HOUR = 3600


def _windows() -> list[tuple[WindowTask, Window]]:
    """Every function over 2h, an avg with a lag and a row count, over block 1 (the events as a source)."""
    pairs = [
        (WindowTask(f"{f}_2h", f, 1, "_ok", "_v", 0, 2 * HOUR * US), Window(f"{f}_2h", f, "v", 2 * HOUR, ["k", "c"]))
        for f in FUNCTIONS
    ]
    lagged = WindowTask("lagged_avg", "avg", 1, "_ok", "_v", HOUR * US, 2 * HOUR * US)
    pairs.append((lagged, Window("lagged_avg", "avg", "v", 2 * HOUR, ["k", "c"], lag_s=HOUR)))
    # No filter column and no value column: every row of the block with keys counts.
    rows = WindowTask("rows_1h", "count", 1, None, None, 0, HOUR * US)
    pairs.append((rows, Window("rows_1h", "count", None, HOUR, ["k", "c"])))
    return pairs


ASOFS = [
    (AsOfTask(2, 0, None, (("_a_w", "a_w"), ("_a_x", "a_x"))), AsOf("a_", ["k", "c"], "s", ["w", "x"])),
    (AsOfTask(3, 1800 * US, 3600 * US, (("_b_w", "b_w"),)), AsOf("b_", ["k", "c"], "s", ["w"], 1800, 3600)),
]

SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("k", pa.int64()),
        ("c", pa.string()),
        (TIME, pa.timestamp("us", tz="UTC")),
        (SPINE, pa.bool_()),
        (BLOCK, pa.int32()),
        ("_ok", pa.bool_()),
        ("_v", pa.float64()),
        ("_a_w", pa.float64()),
        ("_a_x", pa.int64()),
        ("_b_w", pa.float64()),
    ]
)

# Keys: an int and a string, each sometimes null; times on a 15-minute grid so bounds are hit.
key_int = st.one_of(st.none(), st.integers(0, 2))
key_str = st.one_of(st.none(), st.sampled_from(["a", "b"]))
times = st.integers(0, 48).map(lambda q: BASE + timedelta(minutes=15 * q))
values = st.one_of(st.none(), st.integers(-2, 2).map(float))
events = st.lists(st.tuples(key_int, key_str, times, values), min_size=1, max_size=60)
sources = st.lists(st.tuples(key_int, key_str, times, values, st.one_of(st.none(), st.integers(0, 2))), max_size=40)


def _sorted_union(ev: pd.DataFrame, src: pd.DataFrame) -> pa.Table:
    """Spine rows, the events again as window rows (block 1) and the source once per as-of join
    (blocks 2, 3), sorted by (k, c, time) with nulls first, as Spark's sort leaves them."""
    spine = pd.DataFrame({"id": ev["id"], "k": ev["k"], "c": ev["c"], TIME: ev["t"], SPINE: True, BLOCK: -1})
    window_rows = pd.DataFrame(
        {"k": ev["k"], "c": ev["c"], TIME: ev["t"], SPINE: False, BLOCK: 1, "_ok": ev["k"].notna() & ev["c"].notna()}
    ).assign(_v=ev["v"])
    keyed = src[src["k"].notna() & src["c"].notna()]
    asof_rows = [
        pd.DataFrame({"k": keyed["k"], "c": keyed["c"], TIME: keyed["s"], SPINE: False, BLOCK: block}).assign(
            **{f"{prefix}{c}": keyed[c] for c in columns}
        )
        for block, prefix, columns in ((2, "_a_", ["w", "x"]), (3, "_b_", ["w"]))
    ]
    parts = [p for p in (spine, window_rows, *asof_rows) if len(p)]
    union = pd.concat(parts, ignore_index=True).reindex(columns=[f.name for f in SCHEMA])
    union = union.sort_values(["k", "c", TIME], na_position="first", kind="stable")
    union[TIME] = pd.to_datetime(union[TIME]).dt.tz_localize("UTC")
    return pa.Table.from_pandas(union, schema=SCHEMA, preserve_index=False)


def _same(want: Any, have: Any) -> bool:
    if want is None or want is pd.NA or (isinstance(want, float) and math.isnan(want)):
        return have is None
    return have is not None and math.isclose(float(want), float(have), rel_tol=1e-9, abs_tol=1e-9)


@settings(max_examples=150, deadline=None)
@given(ev_rows=events, src_rows=sources, batch=st.integers(1, 20), chunk=st.integers(1, 40))
def test_kernel_matches_the_reference(ev_rows: list[Any], src_rows: list[Any], batch: int, chunk: int) -> None:
    ev = pd.DataFrame(ev_rows, columns=["k", "c", "t", "v"]).astype({"k": "Int64", "v": "float64"})
    ev.insert(0, "id", range(len(ev)))
    src = pd.DataFrame(src_rows, columns=["k", "c", "s", "w", "x"]).astype({"k": "Int64", "w": "float64", "x": "Int64"})
    windows, asofs = _windows(), ASOFS
    stage = Stage(("k", "c"), tuple(w for w, _ in windows), tuple(j for j, _ in asofs), ("id", "k", "c", TIME))
    union = _sorted_union(ev, src)

    got = pa.Table.from_batches(list(stage_kernel(stage, chunk_rows=chunk)(union.to_batches(max_chunksize=batch))))
    got = got.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get).set_index("id").sort_index()

    assert sorted(got.index) == list(ev["id"])
    expected = pd.DataFrame(index=ev.index)
    for _, ref in windows:
        expected[ref.name] = window_feature(ev, "t", ev, ref)
    for _, ref in asofs:
        expected = expected.join(asof_feature(ev, "t", src, ref))
    for column in expected.columns:
        for row in ev["id"]:
            want, have = expected.at[row, column], got.at[row, column]
            assert _same(want, None if pd.isna(have) else have), (column, row, want, have)


def test_chunks_end_at_group_boundaries_and_keep_every_row() -> None:
    keys = pa.array([1, 1, 1, 2, 2, None, None, 3, 3, 3, 3], pa.int64())
    table = pa.table({"k": keys, "i": pa.array(range(len(keys)))})
    got = list(chunks(table.to_batches(max_chunksize=2), ["k"], chunk_rows=3))
    assert [c["k"].to_pylist() for c in got] == [[1, 1, 1], [2, 2], [None, None], [3, 3, 3, 3]]


def test_one_group_larger_than_a_chunk_stays_whole() -> None:
    table = pa.table({"k": pa.array([7] * 10 + [8], pa.int64())})
    got = list(chunks(table.to_batches(max_chunksize=3), ["k"], chunk_rows=4))
    assert [len(c) for c in got] == [10, 1]


def test_search_keys_fall_back_to_ranks_when_offsets_would_overflow() -> None:
    """Times spread over ~3,000 years in many groups: ``group * span`` would not fit in int64."""
    rng = np.random.default_rng(3)
    groups = np.sort(rng.integers(0, 5000, size=2000))
    times = np.empty(2000, np.int64)
    for g in np.unique(groups):
        at = groups == g
        times[at] = np.sort(rng.integers(-(10**17), 10**17, size=at.sum()))
    query_g = rng.integers(0, 5000, size=500)
    query_t = rng.integers(-(10**17), 10**17, size=500)
    keys, (query_keys,) = search_keys(groups, times, query_g, [query_t])
    assert np.all(np.diff(keys) >= 0)
    got = np.searchsorted(keys, query_keys, side="right")
    want = [np.sum((groups < g) | ((groups == g) & (times <= t))) for g, t in zip(query_g, query_t, strict=True)]
    assert got.tolist() == want


@pytest.mark.parametrize("op", [np.minimum, np.maximum])
def test_range_reduce_matches_slices(op: Any) -> None:
    rng = np.random.default_rng(5)
    values = rng.integers(-50, 50, size=300)
    lo = rng.integers(0, 300, size=400)
    hi = np.minimum(lo + rng.integers(1, 120, size=400), 300)
    got = range_reduce(values, lo, hi, op)
    assert got.tolist() == [op.reduce(values[a:b]) for a, b in zip(lo, hi, strict=True)]


def test_distinct_in_ranges_matches_sets() -> None:
    rng = np.random.default_rng(11)
    groups = np.sort(rng.integers(0, 4, size=257))
    codes = rng.integers(0, 6, size=257)
    starts = np.searchsorted(groups, groups, side="left")
    ends = np.searchsorted(groups, groups, side="right")
    lo = rng.integers(starts, ends)
    hi = rng.integers(lo, ends + 1)
    got = distinct_in_ranges(groups, codes, lo, hi)
    assert got.tolist() == [len(set(codes[a:b])) for a, b in zip(lo, hi, strict=True)]


def test_dense_codes_sort_strings_and_treat_nan_as_one_value() -> None:
    codes, decode = dense_codes(pa.array(["b", "a", "c", "a"]))
    assert codes.tolist() == [1, 0, 2, 0]
    assert decode.to_pylist() == ["a", "b", "c"]
    codes, decode = dense_codes(pa.array([float("nan"), 1.0, float("nan")]))
    assert codes.tolist() == [1, 0, 1]
    assert decode.to_pylist()[0] == 1.0 and math.isnan(decode.to_pylist()[1])


def test_min_max_keep_the_value_type() -> None:
    """min/max over strings and timestamps come back as strings and timestamps."""
    t0 = datetime(2024, 1, 1)
    ts = pa.array([t0, t0 + timedelta(hours=1), t0 + timedelta(hours=2)], pa.timestamp("us", tz="UTC"))
    table = pa.table(
        {
            "k": pa.array([1, 1, 1], pa.int64()),
            TIME: ts,
            SPINE: pa.array([False, False, True]),
            BLOCK: pa.array([1, 1, -1], pa.int32()),
            "_ok": pa.array([True, True, None]),
            "_s": pa.array(["pear", "apple", None]),
            "_d": ts,
        }
    )
    stage = Stage(
        ("k",),
        (
            WindowTask("first_name", "min", 1, "_ok", "_s", 0, 86400 * US),
            WindowTask("last_seen", "max", 1, "_ok", "_d", 0, 86400 * US),
        ),
        (),
        ("k",),
    )
    out = pa.Table.from_batches(list(stage_kernel(stage)(table.to_batches())))
    assert out["first_name"].to_pylist() == ["apple"]
    assert out["last_seen"].type == ts.type
    assert out["last_seen"].to_pylist()[0].replace(tzinfo=None) == t0 + timedelta(hours=1)
