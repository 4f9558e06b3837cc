"""Brute-force reference for lakeforge's point-in-time features; slow on purpose, for small test data.

Timestamps are naive UTC instants, durations whole seconds. Each spine row e (rows may repeat) gets:

- Window: ``function(column)`` over the source rows whose ``by`` keys all equal e's (a null key matches
  nothing), whose ``filter`` is true (null counts as false) and whose time is in
  ``[e.t - lag - window, e.t - lag)``: a row stamped exactly ``e.t - lag`` is not used. Nulls in ``column``
  are skipped. No values: 0 for count and count_distinct, else null; stddev (ddof=1) is null below 2 values.
- As-of: the source row with all keys equal and the greatest time ``<= e.t - lag`` (inclusive) and, with a
  max age, ``>= e.t - lag - max_age``; a tie at that time goes to the greatest tuple of ``columns`` (null
  lowest). Columns come out as ``prefix + column``, all null without a candidate.

A spine row with a null time gets the empty-window values and a null as-of. Results keep the spine's index.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

FUNCTIONS = ("count", "sum", "avg", "min", "max", "stddev", "count_distinct")

Key = tuple[Hashable, ...]
_NO_ROWS = np.array([], dtype=np.int64)


@dataclass(frozen=True)
class Window:
    """``function(column)`` over the source rows of the last ``window_s`` seconds ending ``lag_s`` before t."""

    name: str
    function: str  # one of FUNCTIONS
    column: str | None  # None only for count: count the rows
    window_s: int
    by: Sequence[str]
    lag_s: int = 0
    filter: Callable[[pd.DataFrame], pd.Series] | None = None  # a boolean mask over the source
    time_column: str | None = None  # the source's time column; None: the spine's (the spine is the source)


@dataclass(frozen=True)
class AsOf:
    """The latest source row at or before ``t - lag_s`` with equal keys, at most ``max_age_s`` older."""

    prefix: str
    keys: Sequence[str]
    time_column: str
    columns: Sequence[str]
    lag_s: int = 0
    max_age_s: int | None = None


def window_feature(spine: pd.DataFrame, t: str, source: pd.DataFrame, w: Window) -> pd.Series:
    """``w`` for each spine row, by scanning every source row of the row's key."""
    if w.function not in FUNCTIONS:
        raise ValueError(f"unknown function '{w.function}'; allowed: {', '.join(FUNCTIONS)}")
    if w.column is None and w.function != "count":
        raise ValueError(f"function '{w.function}' needs a column")
    source_t = _times(source, w.time_column or t)
    usable = ~np.isnat(source_t)
    if w.filter is not None:
        usable &= w.filter(source).fillna(False).to_numpy(dtype=bool)
    rows_of = _rows_by_key(source, w.by, usable)
    lag, length = np.timedelta64(w.lag_s, "s"), np.timedelta64(w.window_s, "s")
    out = []
    for key, event_t in zip(_keys(spine, w.by), _times(spine, t), strict=True):
        rows = rows_of.get(key, _NO_ROWS)  # a key with a null is never in rows_of
        end = event_t - lag  # NaT for a null spine time: every comparison is false, the window is empty
        rows = rows[(source_t[rows] >= end - length) & (source_t[rows] < end)]
        values = None if w.column is None else source[w.column].iloc[rows]
        out.append(_aggregate(w.function, values, len(rows)))
    return pd.Series(out, index=spine.index, name=w.name)


def asof_feature(spine: pd.DataFrame, t: str, source: pd.DataFrame, j: AsOf) -> pd.DataFrame:
    """``j``'s columns for each spine row, by scanning every source row of the row's keys."""
    source_t = _times(source, j.time_column)
    rows_of = _rows_by_key(source, j.keys, ~np.isnat(source_t))
    lag = np.timedelta64(j.lag_s, "s")
    picked = []
    for key, event_t in zip(_keys(spine, j.keys), _times(spine, t), strict=True):
        rows = rows_of.get(key, _NO_ROWS)
        cutoff = event_t - lag
        ok = source_t[rows] <= cutoff
        if j.max_age_s is not None:
            ok &= source_t[rows] >= cutoff - np.timedelta64(j.max_age_s, "s")
        candidates = rows[ok].tolist()
        best = max(candidates, key=lambda r: (source_t[r], _null_lowest(source, j.columns, r)), default=-1)
        picked.append(best)
    return pd.DataFrame(
        {j.prefix + c: source[c].reset_index(drop=True).reindex(picked).to_numpy() for c in j.columns},
        index=spine.index,
    )


def _aggregate(function: str, values: pd.Series | None, n_rows: int) -> Any:
    """``function`` over the non-null ``values`` (None: count the ``n_rows`` rows); the empty value when none."""
    if values is None:
        return n_rows
    values = values.dropna()
    if function == "count":
        return len(values)
    if function == "count_distinct":
        return values.nunique()
    if len(values) < (2 if function == "stddev" else 1):
        return None
    if function == "stddev":
        return values.std(ddof=1)
    return {"sum": values.sum, "avg": values.mean, "min": values.min, "max": values.max}[function]()


def _times(frame: pd.DataFrame, column: str) -> np.ndarray:
    """``frame[column]`` as datetime64[us], NaT for nulls."""
    return pd.to_datetime(frame[column]).to_numpy(dtype="datetime64[us]")


def _rows_by_key(source: pd.DataFrame, keys: Sequence[str], usable: np.ndarray) -> dict[Key, np.ndarray]:
    """Positions of the ``usable`` source rows for each key tuple; rows with a null key are left out."""
    usable = usable & source[list(keys)].notna().all(axis=1).to_numpy()
    rows: dict[Key, list[int]] = {}
    for pos, key in enumerate(_keys(source, keys)):
        if usable[pos]:
            rows.setdefault(key, []).append(pos)
    return {key: np.array(positions, dtype=np.int64) for key, positions in rows.items()}


def _keys(frame: pd.DataFrame, keys: Sequence[str]) -> list[Key]:
    """Each row's tuple of ``keys`` values."""
    return list(frame[list(keys)].itertuples(index=False, name=None))


def _null_lowest(source: pd.DataFrame, columns: Sequence[str], row: int) -> tuple[tuple[int, Any], ...]:
    """Row ``row``'s ``columns`` as a sort key where null sorts below any value."""
    values = (source[c].iloc[row] for c in columns)
    return tuple((0, None) if pd.isna(v) else (1, v) for v in values)
