"""The point-in-time kernel: window aggregations and as-of joins on key-sorted Arrow batches.

Spark hash-partitions the rows of one key set (the spine rows that need features, and the
source rows windows and as-of joins read) by the keys and sorts each partition by (keys, time);
``stage_kernel`` then runs in ``mapInArrow`` on the executors. It cuts the stream into chunks of
whole key groups (memory is bounded by the chunk size and the largest group, not the data) and
answers every spine row with binary searches over the chunk's sorted source rows, in numpy:

- a window ``[t - lag - window, t - lag)`` is a pair of positions ``lo, hi`` among the source
  rows of the row's group; count is ``hi - lo``, sum and avg are differences of prefix sums,
  min and max come from a sparse table, stddev from centred prefix sums, distinct count from
  the number of rows in ``[lo, hi)`` whose previous equal value lies before ``lo``;
- an as-of join is the last source row with time ``<= t - lag`` in the group, ties broken
  towards the greatest tuple of its columns (nulls lowest), dropped when older than max age.

No Spark import here: the kernel is plain numpy and pyarrow, so it is tested without a JVM too.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakeforge.features.columns import BLOCK, SPINE, TIME

CHUNK_ROWS: Final = 1 << 17  # rows gathered before a chunk is cut at a group boundary
_SAFE_KEY: Final = 1 << 62  # group * span + offset must stay below this in int64


@dataclass(frozen=True)
class WindowTask:
    """One window: rows of ``block`` where ``ok`` holds and ``value`` is not null, aggregated by
    ``function`` over ``[t - lag - window, t - lag)`` (microseconds).

    ``ok`` None: every row of the block (with keys and a time) counts; ``value`` None: count rows.
    """

    name: str
    function: str  # count, sum, avg, min, max, stddev, count_distinct
    block: int
    ok: str | None
    value: str | None
    lag_us: int
    window_us: int


@dataclass(frozen=True)
class AsOfTask:
    """One as-of join: the last row of ``block`` at or before ``t - lag``, at most ``max_age`` old;
    ``columns`` maps the internal column holding each source column to its feature name."""

    block: int
    lag_us: int
    max_age_us: int | None
    columns: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Stage:
    """Every window and as-of join over one key set, and the columns the spine rows keep."""

    keys: tuple[str, ...]
    windows: tuple[WindowTask, ...]
    asofs: tuple[AsOfTask, ...]
    passthrough: tuple[str, ...]


def stage_kernel(stage: Stage, chunk_rows: int = CHUNK_ROWS) -> Any:
    """The ``mapInArrow`` function of ``stage``: key-sorted batches in, spine rows with features out."""

    def run(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for chunk in chunks(batches, stage.keys, chunk_rows):
            out = compute_chunk(chunk, stage)
            if out.num_rows:
                yield from out.to_batches()

    return run


def chunks(batches: Iterable[pa.RecordBatch], keys: Sequence[str], chunk_rows: int) -> Iterator[pa.Table]:
    """Whole key groups, about ``chunk_rows`` rows at a time (more when one group is bigger)."""
    pending: list[pa.RecordBatch] = []
    rows = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        pending.append(batch)
        rows += batch.num_rows
        if rows < chunk_rows:
            continue
        table = pa.Table.from_batches(pending)
        starts = np.flatnonzero(group_starts(table, keys))
        cut = int(starts[-1])
        if cut == 0:
            continue  # a single group so far: keep reading until it ends
        yield table.slice(0, cut)
        rest = table.slice(cut)
        pending, rows = rest.to_batches(), rest.num_rows
    if rows:
        yield pa.Table.from_batches(pending)


def group_starts(table: pa.Table, keys: Sequence[str]) -> np.ndarray:
    """True on each row whose keys differ from the previous row's (and on row 0); null equals null."""
    n = table.num_rows
    starts = np.zeros(n, dtype=bool)
    if n == 0:
        return starts
    starts[0] = True
    for key in keys:
        column = table[key].combine_chunks()
        current, previous = column.slice(1), column.slice(0, n - 1)
        nulls_differ = pc.not_equal(current.is_null(), previous.is_null())
        differs = pc.fill_null(pc.not_equal(current, previous), nulls_differ)
        starts[1:] |= differs.to_numpy(zero_copy_only=False)
    return starts


def _bools(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A boolean column as numpy, null as False."""
    return np.asarray(pc.fill_null(column, False).to_numpy(zero_copy_only=False), dtype=bool)


def _micros(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A timestamp column as int64 microseconds since the epoch (null as 0: never used)."""
    as_int = pc.cast(column, pa.timestamp("us", tz=getattr(column.type, "tz", None))).cast(pa.int64())
    return np.asarray(pc.fill_null(as_int, 0).to_numpy(zero_copy_only=False), dtype=np.int64)


def compute_chunk(table: pa.Table, stage: Stage) -> pa.Table:
    """The spine rows of a chunk of whole key groups, with the stage's features appended."""
    g = np.cumsum(group_starts(table, stage.keys)) - 1
    key_null = np.zeros(table.num_rows, dtype=bool)
    for key in stage.keys:
        key_null |= np.asarray(table[key].is_null().to_numpy(zero_copy_only=False), dtype=bool)
    t = _micros(table[TIME])
    block = np.asarray(table[BLOCK].to_numpy(zero_copy_only=False), dtype=np.int64)
    spine = np.flatnonzero(_bools(table[SPINE]))
    # Spine rows with a null key match nothing; features are computed for the others.
    has_key = ~key_null[spine]
    queries = spine[has_key]
    ctx = _Queries(g[queries], t[queries], has_key)

    out = table.take(pa.array(spine, pa.int64())).select(list(stage.passthrough))
    for w in stage.windows:
        counted = (block == w.block) & ~key_null
        if w.ok is not None:
            counted &= _bools(table[w.ok])
        values = None
        if w.value is not None:
            counted &= np.asarray(table[w.value].is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        rows = np.flatnonzero(counted)
        if w.value is not None:
            values = table[w.value].take(pa.array(rows, pa.int64())).combine_chunks()
        out = out.append_column(w.name, _window(w, g[rows], t[rows], values, ctx))
    for j in stage.asofs:
        rows = np.flatnonzero((block == j.block) & ~key_null)
        for name, array in _asof(j, table, rows, g[rows], t[rows], ctx):
            out = out.append_column(name, array)
    return out


@dataclass(frozen=True)
class _Queries:
    """The spine rows features are computed for: group and time, and where they sit among all spine rows."""

    g: np.ndarray
    t: np.ndarray
    has_key: np.ndarray  # per spine row: whether it is one of these queries

    def spread(self, values: np.ndarray, valid: np.ndarray, type_: pa.DataType) -> pa.Array:
        """Per-query values (null where not ``valid``) as a column over every spine row (null without key)."""
        full = np.zeros(len(self.has_key), dtype=values.dtype)
        mask = np.ones(len(self.has_key), dtype=bool)
        full[self.has_key] = values
        mask[self.has_key] = ~valid
        return pa.array(full, type=type_, mask=mask)

    def pick(self, source: pa.Array | pa.ChunkedArray, index: np.ndarray, valid: np.ndarray) -> pa.Array:
        """``source[index]`` per query (null where not ``valid``), over every spine row."""
        full = np.zeros(len(self.has_key), dtype=np.int64)
        mask = np.ones(len(self.has_key), dtype=bool)
        full[self.has_key] = np.where(valid, index, 0)
        mask[self.has_key] = ~valid
        taken = source.take(pa.array(full, pa.int64(), mask=mask))
        return taken.combine_chunks() if isinstance(taken, pa.ChunkedArray) else taken


def search_keys(
    group: np.ndarray, times: np.ndarray, query_group: np.ndarray, query_times: Sequence[np.ndarray]
) -> tuple[np.ndarray, list[np.ndarray]]:
    """One int64 per (group, time) that sorts like the pair, for sorted source rows and for queries.

    ``group * span + (time - first)`` when that fits in int64 (query times are clipped just
    outside the source times, which keeps every comparison); otherwise dense ranks of all times.
    """
    if len(times) == 0:
        return np.zeros(0, np.int64), [np.zeros(len(q), np.int64) for q in query_times]
    first, last = int(times.min()), int(times.max())
    span = last - first + 3
    groups = int(max(group.max(initial=0), query_group.max(initial=0))) + 1
    if groups * span < _SAFE_KEY:
        source_keys = group * span + (times - first + 1)
        return source_keys, [query_group * span + (np.clip(q, first - 1, last + 1) - first + 1) for q in query_times]
    ranks = np.unique(np.concatenate([times, *query_times]))
    size = len(ranks) + 1
    source_keys = group * size + np.searchsorted(ranks, times)
    return source_keys, [query_group * size + np.searchsorted(ranks, q) for q in query_times]


def _window(w: WindowTask, g: np.ndarray, t: np.ndarray, values: pa.Array | None, q: _Queries) -> pa.Array:
    """One window feature for every spine row of the chunk (``values`` None: count the rows)."""
    near = q.t - w.lag_us
    keys, (far_keys, near_keys) = search_keys(g, t, q.g, [near - w.window_us, near])
    lo = np.searchsorted(keys, far_keys, side="left")
    hi = np.searchsorted(keys, near_keys, side="left")
    n = hi - lo
    some = n > 0
    if w.function == "count":
        return q.spread(n, np.ones(len(n), bool), pa.int64()).fill_null(0)
    if values is None:
        raise ValueError(f"window {w.name!r}: {w.function} needs a value column")
    if w.function == "count_distinct":
        codes, _ = dense_codes(values)
        return q.spread(distinct_in_ranges(g, codes, lo, hi), np.ones(len(n), bool), pa.int64()).fill_null(0)
    if w.function in ("min", "max"):
        codes, decode = dense_codes(values)
        op = np.minimum if w.function == "min" else np.maximum
        return q.pick(decode, range_reduce(codes, lo, hi, op), some)
    if w.function == "sum" and pa.types.is_integer(values.type):
        totals = _prefix(values.cast(pa.int64()).to_numpy())
        return q.spread(totals[hi] - totals[lo], some, pa.int64())
    x = np.asarray(values.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    if w.function in ("sum", "avg"):
        totals = _prefix(x)
        sums = totals[hi] - totals[lo]
        result = sums if w.function == "sum" else np.divide(sums, n, out=np.zeros(len(n)), where=some)
        return q.spread(result, some, pa.float64())
    if w.function == "stddev":
        return q.spread(_stddev(g, x, lo, hi), n >= 2, pa.float64())
    raise ValueError(f"unknown window function {w.function!r}")


def _prefix(x: np.ndarray) -> np.ndarray:
    """Prefix sums with a leading 0: the sum over positions [lo, hi) is ``p[hi] - p[lo]``."""
    out = np.zeros(len(x) + 1, dtype=x.dtype)
    np.cumsum(x, out=out[1:])
    return out


def _stddev(g: np.ndarray, x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Sample standard deviation of x[lo:hi] per range (ranges of fewer than 2 values are masked later).

    Values are centred on their group's mean before the prefix sums, which keeps the
    sum-of-squares formula accurate; a range whose values are all equal is exactly 0.
    """
    n = (hi - lo).astype(np.float64)
    if len(x) == 0:
        return np.zeros(len(lo))
    counts = np.bincount(g, minlength=int(g.max()) + 1)
    means = np.bincount(g, weights=x, minlength=len(counts)) / np.maximum(counts, 1)
    centred = x - means[g]
    s1, s2 = _prefix(centred), _prefix(centred * centred)
    total, squares = s1[hi] - s1[lo], s2[hi] - s2[lo]
    with np.errstate(divide="ignore", invalid="ignore"):
        var = (squares - total * total / n) / (n - 1)
    var = np.where(np.isnan(var) | (var > 0), var, 0.0)  # NaN only from a NaN value, as in Spark
    constant = range_reduce(x, lo, hi, np.minimum) == range_reduce(x, lo, hi, np.maximum)
    return np.where(constant, 0.0, np.sqrt(var))


def range_reduce(values: np.ndarray, lo: np.ndarray, hi: np.ndarray, op: Any) -> np.ndarray:
    """``op.reduce(values[lo:hi])`` for every non-empty range (a sparse table; empty ranges give values[0])."""
    result = np.zeros(len(lo), dtype=values.dtype)
    length = hi - lo
    if len(values) == 0 or not (length > 0).any():
        return result
    levels = [values]
    while (1 << len(levels)) <= len(values):
        half = 1 << (len(levels) - 1)
        previous = levels[-1]
        levels.append(op(previous[:-half], previous[half:]))
    k = np.zeros(len(lo), dtype=np.int64)
    nonempty = length > 0
    k[nonempty] = np.floor(np.log2(length[nonempty])).astype(np.int64)
    for level in np.unique(k[nonempty]):
        at = np.flatnonzero(nonempty & (k == level))
        table = levels[level]
        result[at] = op(table[lo[at]], table[hi[at] - (1 << level)])
    return result


def dense_codes(values: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """Each value's rank among the distinct values (0-based, ascending) and the sorted distinct values.

    NaN equals NaN and sorts above every number, as in Spark.
    """
    if len(values) == 0:
        return np.zeros(0, np.int64), values
    if pa.types.is_integer(values.type) or pa.types.is_floating(values.type) or pa.types.is_boolean(values.type):
        distinct, codes = np.unique(values.to_numpy(zero_copy_only=False), return_inverse=True)
        return codes.astype(np.int64), pa.array(distinct).cast(values.type)
    order = pc.sort_indices(values)
    ordered = values.take(order)
    changed = np.ones(len(ordered), dtype=bool)
    changed[1:] = _bools(pc.not_equal(ordered.slice(1), ordered.slice(0, len(ordered) - 1)))
    codes = np.empty(len(ordered), dtype=np.int64)
    codes[order.to_numpy()] = np.cumsum(changed) - 1
    return codes, ordered.filter(pa.array(changed))


def distinct_in_ranges(g: np.ndarray, codes: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Distinct codes in positions [lo, hi) of each range (every range within one group).

    With ``prev[i]`` the position of the previous equal value in i's group (-1 if none), the
    distinct values of [lo, hi) are the positions in it whose ``prev < lo``; their number is
    ``F(hi, lo) - lo`` with ``F(h, l) = #{i < h: prev[i] < l}`` (every i < lo counts). F sums, over
    the aligned power-of-two blocks that tile [0, h), a binary search in the block's sorted prevs.
    """
    n = len(codes)
    if n == 0:
        return np.zeros(len(lo), np.int64)
    order = np.argsort(g * (int(codes.max()) + 1) + codes, kind="stable")
    same = (g[order][1:] == g[order][:-1]) & (codes[order][1:] == codes[order][:-1])
    prev = np.full(n, -1, dtype=np.int64)
    prev[order[1:][same]] = order[:-1][same]
    width = n + 1  # prev + 1 is in [0, n)
    found = np.zeros(len(lo), dtype=np.int64)
    level = 0
    while (1 << level) <= n:
        size = 1 << level
        block_of = np.arange(n, dtype=np.int64) >> level
        keys = np.sort(block_of * width + prev + 1)
        use = (hi >> level) & 1 == 1
        block = (hi[use] >> (level + 1)) << 1  # the block of this size just below hi's higher bits
        below = np.searchsorted(keys, block * width + lo[use] + 1, side="left") - block * size
        found[use] += below
        level += 1
    return found - lo


def _asof(
    j: AsOfTask, table: pa.Table, rows: np.ndarray, g: np.ndarray, t: np.ndarray, q: _Queries
) -> list[tuple[str, pa.Array]]:
    """The as-of columns for every spine row of the chunk."""
    tied = (g[1:] == g[:-1]) & (t[1:] == t[:-1])
    if tied.any():
        # Equal times in a group: sort them by the columns (nulls lowest) and keep the last one.
        sort = pa.table(
            {"g": g, "t": t, **{f"c{i}": table[c].take(pa.array(rows)) for i, (c, _) in enumerate(j.columns)}}
        )
        order = pc.sort_indices(sort, sort_keys=[(name, "ascending", "at_start") for name in sort.column_names])
        order = order.to_numpy()
        rows, g, t = rows[order], g[order], t[order]
        last = np.ones(len(rows), dtype=bool)
        last[:-1] = (g[1:] != g[:-1]) | (t[1:] != t[:-1])
        rows, g, t = rows[last], g[last], t[last]
    keys, (query_keys,) = search_keys(g, t + j.lag_us, q.g, [q.t])
    at = np.searchsorted(keys, query_keys, side="right") - 1
    safe = np.maximum(at, 0)
    found = (at >= 0) & (g[safe] == q.g) if len(rows) else np.zeros(len(q.g), dtype=bool)
    if j.max_age_us is not None and len(rows):
        found &= t[safe] >= q.t - j.lag_us - j.max_age_us
    picked = rows[safe] if len(rows) else safe
    return [(name, q.pick(table[column], picked, found)) for column, name in j.columns]
