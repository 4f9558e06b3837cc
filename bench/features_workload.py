"""Point-in-time features workload: synthetic events and sensor readings, and the same features in plain DuckDB.

``events.parquet`` is both the spine and the window source; ``readings.parquet`` is the as-of source.
Besides uniform events, the generator plants events exactly on the boundaries the semantics care about
(another event of the entity exactly 0, 1h, 1d, 7d+1h or 30d earlier or later; a reading exactly at the
event, 1µs after it, exactly 6h before it, 6h+1µs before it), so comparing engines on small data checks
every inclusive and exclusive bound. ``WINDOWS`` and ``ASOF`` describe the features in the feature-config
vocabulary; ``duckdb_features`` is the reference implementation of exactly those.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

START: Final = np.datetime64("2024-01-01T00:00:00", "us")
US: Final = 1_000_000  # microseconds per second
HOUR_US: Final = 3600 * US
DAY_US: Final = 24 * HOUR_US
ROW_GROUP: Final = 1 << 17

WINDOWS: Final[tuple[dict[str, Any], ...]] = (
    {"name": "n_1d", "function": "count", "window": "1d", "by": ["entity_id"], "lag": "0s"},
    {
        "name": "amount_mean_7d",
        "function": "avg",
        "column": "amount",
        "window": "7d",
        "by": ["entity_id"],
        "lag": "1h",
    },
    {
        "name": "flagged_30d",
        "function": "sum",
        "column": "is_flagged",
        "window": "30d",
        "by": ["entity_id"],
        "lag": "0s",
    },
)
ASOF: Final[dict[str, Any]] = {
    "dataset": "readings",
    "keys": ["entity_id"],
    "event_time": "reading_ts",
    "columns": ["level"],
    "lag": "0s",
    "max_age": "6h",
    "prefix": "",
}

# Offsets of planted events from another event of the same entity, and from a reading of the same entity.
_EVENT_OFFSETS_US = np.array([0, HOUR_US, DAY_US, 7 * DAY_US + HOUR_US, 30 * DAY_US])
_READING_OFFSETS_US = np.array([0, -1, 6 * HOUR_US, 6 * HOUR_US + 1])

_SQL = f"""
WITH ev AS (
    SELECT event_id, entity_id, event_ts, amount, is_flagged, epoch_us(event_ts) AS us
    FROM read_parquet($events)
),
windowed AS (
    -- A null key or time matches nothing, though SQL windows would group such rows together.
    SELECT
        event_id, entity_id, event_ts,
        CASE WHEN entity_id IS NULL OR us IS NULL THEN 0 ELSE count(*) OVER w_1d END AS n_1d,
        CASE WHEN entity_id IS NOT NULL AND us IS NOT NULL THEN avg(amount) OVER w_7d_lag_1h END AS amount_mean_7d,
        CASE WHEN entity_id IS NOT NULL AND us IS NOT NULL THEN sum(is_flagged) OVER w_30d END::BIGINT AS flagged_30d
    FROM ev
    -- [t - lag - window, t - lag): on integer microseconds the open end is lag + 1 PRECEDING.
    WINDOW
        w_1d AS (PARTITION BY entity_id ORDER BY us RANGE BETWEEN {DAY_US} PRECEDING AND 1 PRECEDING),
        w_7d_lag_1h AS (
            PARTITION BY entity_id ORDER BY us
            RANGE BETWEEN {7 * DAY_US + HOUR_US} PRECEDING AND {HOUR_US + 1} PRECEDING
        ),
        w_30d AS (PARTITION BY entity_id ORDER BY us RANGE BETWEEN {30 * DAY_US} PRECEDING AND 1 PRECEDING)
),
readings AS (
    -- One row per (entity, time): a tie goes to the greatest level, null lowest (max skips nulls).
    SELECT entity_id, reading_ts, max(level) AS level
    FROM read_parquet($readings)
    GROUP BY entity_id, reading_ts
)
SELECT
    w.event_id, w.n_1d, w.amount_mean_7d, w.flagged_30d,
    CASE WHEN r.reading_ts >= w.event_ts - INTERVAL 6 HOUR THEN r.level END AS level
FROM windowed AS w
ASOF LEFT JOIN readings AS r ON w.entity_id = r.entity_id AND w.event_ts >= r.reading_ts
"""


@dataclass(frozen=True)
class Workload:
    """The two Parquet files of a generated workload and their sizes."""

    events_path: Path
    readings_path: Path
    events: int
    entities: int
    days: int
    readings: int


def make_workload(
    root: Path, events: int = 1_000_000, entities: int = 10_000, days: int = 90, seed: int = 7
) -> Workload:
    """Write ``events.parquet`` and ``readings.parquet`` under ``root``; the same files for the same arguments."""
    rng = np.random.default_rng(seed)
    span_us = days * DAY_US
    root.mkdir(parents=True, exist_ok=True)

    # Readings: about two per entity and day, in distinct hour slots, each at a random instant of its hour.
    slots = days * 24
    codes = np.sort(rng.integers(0, entities * slots, size=entities * days * 2))
    codes = codes[np.diff(codes, prepend=-1) != 0]  # as np.unique, without its slow hashing
    reading_entity = codes // slots
    reading_us = codes % slots * HOUR_US + rng.integers(0, HOUR_US, size=len(codes))
    level = rng.normal(50.0, 10.0, size=len(codes))
    readings = pa.table(
        {
            "entity_id": pa.array(reading_entity, pa.int64()),
            "reading_ts": pa.array(START + reading_us.astype("timedelta64[us]"), pa.timestamp("us")),
            "level": pa.array(level, pa.float64(), mask=rng.random(len(codes)) < 0.01),
        }
    )

    # Events: uniform, then 2% planted near other events and 2% near readings (wrapped into the span).
    planted = events // 50
    uniform = events - 2 * planted
    uniform_entity = rng.integers(0, entities, size=uniform)
    uniform_us = rng.integers(0, span_us, size=uniform)
    near_event = rng.integers(0, uniform, size=planted)
    near_reading = rng.integers(0, len(codes), size=planted)
    entity = np.concatenate([uniform_entity, uniform_entity[near_event], reading_entity[near_reading]])
    event_offsets = rng.choice(_EVENT_OFFSETS_US, size=planted)
    reading_offsets = rng.choice(_READING_OFFSETS_US, size=planted)
    us = (
        np.concatenate([uniform_us, uniform_us[near_event] + event_offsets, reading_us[near_reading] + reading_offsets])
        % span_us
    )
    order = rng.permutation(events)
    events_table = pa.table(
        {
            "event_id": pa.array(np.arange(events), pa.int64()),
            "entity_id": pa.array(entity[order], pa.int64()),
            "event_ts": pa.array(START + us[order].astype("timedelta64[us]"), pa.timestamp("us")),
            "amount": pa.array(rng.lognormal(3.0, 1.0, size=events).round(2), mask=rng.random(events) < 0.01),
            "is_flagged": pa.array((rng.random(events) < 0.05).astype(np.int32)),
        }
    )

    events_path, readings_path = root / "events.parquet", root / "readings.parquet"
    pq.write_table(events_table, events_path, row_group_size=ROW_GROUP)
    pq.write_table(readings, readings_path, row_group_size=ROW_GROUP)
    return Workload(events_path, readings_path, events, entities, days, len(codes))


def duckdb_features(workload: Workload, threads: int = 2) -> pa.Table:
    """``WINDOWS`` and ``ASOF`` in DuckDB SQL: event_id, n_1d, amount_mean_7d, flagged_30d, level; one row per event.

    Rows come in no particular order (sorting them by event_id would add about 10% here).
    """
    with duckdb.connect(config={"threads": threads}) as con:
        params = {"events": str(workload.events_path), "readings": str(workload.readings_path)}
        return con.sql(_SQL, params=params).to_arrow_table()
