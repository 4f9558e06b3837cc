"""Compute a feature set point-in-time, in Spark: the one code path for training sets, feature
tables and scoring.

Plan: the spine dataset's rows (those of the requested dates, plus the history windows look back
over) and each other source's rows are unioned into one frame, each row tagged with its source
block and its time. Every window aggregation is then a RANGE window over that frame partitioned
by its keys and ordered by time, and every as-of join a running ``last`` over its keys: Spark
sorts once per distinct key set, with no join back and no collect. Static joins and transforms
follow; only the spine rows of the requested dates are kept.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from lakeforge.errors import FeatureError
from lakeforge.features.registry import get_transform
from lakeforge.features.spec import BLOCK, SPINE, TIME, TIME_US, FeatureSetSpec, check_entity

log = logging.getLogger(__name__)

EVENT_DATE = "event_date"
LABEL_KNOWN_AT = "label_known_at"
Tables = Callable[[str], Any]


def _ts(day: date) -> datetime:
    """Midnight UTC of ``day`` (naive, as Spark's UTC session hands timestamps back)."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC).replace(tzinfo=None)


def _not_null(columns: tuple[str, ...] | list[str]) -> Any:
    """All of ``columns`` non-null (a null key matches nothing)."""
    from pyspark.sql import functions as F  # noqa: N812

    cond = F.lit(True)
    for c in columns:
        cond = cond & F.col(f"`{c}`").isNotNull()
    return cond


def _spine_rows(spec: FeatureSetSpec, tables: Tables, start: date, end: date) -> tuple[Any, list[str]]:
    """Block 0: the spine dataset's rows of [start - lookback, end], with the expression features."""
    from pyspark.sql import functions as F  # noqa: N812

    frame = tables(spec.spine)
    check_entity(spec, frame.columns)
    columns = list(frame.columns)
    t = F.col(f"`{spec.event_time}`")
    lookback = spec.lookback_s()
    until = _ts(end) + timedelta(days=1)
    keep = t < F.lit(until)
    if lookback is not None:
        keep = keep & (t >= F.lit(_ts(start) - timedelta(seconds=lookback)))
    frame = frame.where(keep)
    for name, expr in spec.expressions:
        frame = frame.withColumn(name, F.expr(expr))
    in_range = t.isNotNull() & (t >= F.lit(_ts(start))) & (t < F.lit(until))
    return frame.withColumns({TIME: t, SPINE: in_range, BLOCK: F.lit(0)}), columns


def _window_columns(spec: FeatureSetSpec, block: int) -> dict[str, Any]:
    """Per window on ``block``: whether a row counts (``_w{i}_ok``) and the value it brings."""
    from pyspark.sql import functions as F  # noqa: N812

    out: dict[str, Any] = {}
    for w in spec.windows:
        if w.block != block:
            continue
        ok = F.col(TIME).isNotNull() & _not_null(list(w.by))
        if w.filter:
            ok = ok & F.coalesce(F.expr(w.filter), F.lit(False))
        out[w.ok] = ok
        out[w.value] = F.expr(w.column) if w.column else F.lit(1)
    return out


def _source_block(spec: FeatureSetSpec, tables: Tables, block: int, until: datetime) -> Any:
    """The rows of a source block (another dataset, or another time for the spine's), keys kept."""
    from pyspark.sql import functions as F  # noqa: N812

    dataset, time_expr = spec.blocks[block - 1]
    frame = tables(dataset)
    keys: set[str] = set()
    for w in spec.windows:
        if w.block == block:
            keys.update(w.by)
    asof = [j for j in spec.asofs if j.block == block]
    if asof:
        join = asof[0]
        keys.update(join.keys)
        missing = [c for c in (*join.keys, join.event_time, *join.columns) if c not in frame.columns]
        if missing:
            raise FeatureError(f"as-of join to '{dataset}': column(s) {', '.join(missing)} not in raw.{dataset}")
        time = F.col(f"`{join.event_time}`")
        added = {join.column(c): F.col(f"`{c}`") for c in join.columns}
        ok = time.isNotNull() & _not_null(list(join.keys))
        frame = frame.withColumns({TIME: time, **added}).where(ok & (time < F.lit(until)))
    else:
        added = _window_columns(spec, block)
        frame = frame.withColumn(TIME, F.expr(time_expr)).where(F.col(TIME) < F.lit(until))
        frame = frame.withColumns(added)
    internal = list(added)
    return frame.select(
        *[F.col(f"`{k}`") for k in sorted(keys)],
        F.col(TIME),
        *[F.col(c) for c in internal],
        F.lit(False).alias(SPINE),
        F.lit(block).alias(BLOCK),
    )


def compute_features(
    spark: Any,
    spec: FeatureSetSpec,
    tables: Tables,
    start: date,
    end: date,
    *,
    project_root: Path | None = None,
    with_label: bool = False,
    label_known_by: datetime | None = None,
) -> Any:
    """Features of every spine row whose event time falls on a date in [start, end] (UTC).

    Columns: the entity keys, the event time, ``event_date``, then each feature in declaration
    order; with ``with_label``, the label and ``label_known_at`` too, keeping only rows whose label
    is known by ``label_known_by`` (training). Scoring never asks for the label.
    """
    from pyspark.sql import functions as F  # noqa: N812

    if end < start:
        raise FeatureError(f"feature set '{spec.name}': end {end} is before start {start}")
    spine, spine_columns = _spine_rows(spec, tables, start, end)
    spine = spine.withColumns(_window_columns(spec, 0))
    until = _ts(end) + timedelta(days=1)
    frame = spine
    for block in range(1, len(spec.blocks) + 1):
        frame = frame.unionByName(_source_block(spec, tables, block, until), allowMissingColumns=True)
    # One projection per stage, so Spark plans one Window operator per key set (and sort).
    order_times = {
        j.order_time: F.when(F.col(BLOCK) == j.block, F.col(TIME) + F.make_dt_interval(secs=F.lit(j.lag_s))).otherwise(
            F.col(TIME)
        )
        for j in spec.asofs
    }
    frame = frame.withColumns({TIME_US: F.unix_micros(F.col(TIME)), **order_times})
    windowed = {name: F.expr(sql) for w in spec.windows for name, sql in w.parts().items()}
    windowed.update({j.picked: F.expr(j.sql()) for j in spec.asofs})
    frame = frame.withColumns(windowed) if windowed else frame
    joined: dict[str, Any] = {w.name: F.expr(w.final()) for w in spec.windows}
    for j in spec.asofs:
        picked = F.col(j.picked)
        fresh = picked.isNotNull()
        if j.max_age_s is not None:
            oldest = F.col(TIME) - F.make_dt_interval(secs=F.lit(j.lag_s + j.max_age_s))
            fresh = fresh & (picked["t"] >= oldest)
        joined.update({out: F.when(fresh, picked[c]) for c, out in zip(j.columns, j.outputs, strict=True)})
    frame = frame.withColumns(joined) if joined else frame
    frame = frame.where(F.col(SPINE))
    # Spine columns stay until static joins and transforms have used them.
    keep = [*spine_columns, *[n for n, _ in spec.expressions], *[w.name for w in spec.windows]]
    keep += [out for j in spec.asofs for out in j.outputs]
    frame = frame.select(*[F.col(f"`{c}`") for c in dict.fromkeys(keep)])
    frame = _static_joins(spec, tables, frame)
    for t in spec.transforms:
        frame = _apply_transform(spec, t, frame, project_root)
    out = [F.col(f"`{c}`") for c in spec.entity]
    out += [F.col(f"`{spec.event_time}`"), F.to_date(F.col(f"`{spec.event_time}`")).alias(EVENT_DATE)]
    out += [F.col(f"`{n}`") for n in spec.feature_names]
    if with_label:
        if spec.label is None:
            raise FeatureError(f"feature set '{spec.name}' declares no label (features.label)")
        known = F.col(f"`{spec.event_time}`") + F.make_dt_interval(secs=F.lit(spec.label.available_after_s))
        out += [F.expr(spec.label.expr).alias(spec.label.name), known.alias(LABEL_KNOWN_AT)]
        frame = frame.select(*out)
        if label_known_by is not None:
            frame = frame.where(F.col(LABEL_KNOWN_AT) <= F.lit(label_known_by))
        return frame
    return frame.select(*out)


def _static_joins(spec: FeatureSetSpec, tables: Tables, frame: Any) -> Any:
    """Left-join each dimension table on its keys (one row per key, or the build fails)."""
    from pyspark.sql import functions as F  # noqa: N812

    for s in spec.statics:
        dim = tables(s.dataset)
        missing = [c for c in (*s.keys, *s.columns) if c not in dim.columns]
        if missing:
            raise FeatureError(f"static join to '{s.dataset}': column(s) {', '.join(missing)} not in raw.{s.dataset}")
        marker = f"_matched_{s.dataset}"
        dim = dim.select(
            *[F.col(f"`{k}`").alias(f"_k_{k}") for k in s.keys],
            *[F.col(f"`{c}`").alias(out) for c, out in zip(s.columns, s.outputs, strict=True)],
            F.lit(True).alias(marker),
        )
        dups = dim.groupBy(*[f"_k_{k}" for k in s.keys]).count().where("count > 1").limit(3).collect()
        if dups:
            shown = ", ".join(str(tuple(r)[:-1]) for r in dups)
            raise FeatureError(
                f"static join to '{s.dataset}': keys {list(s.keys)} are not unique there (e.g. {shown}); "
                "a dimension needs one row per key"
            )
        on = None
        for k in s.keys:
            cond = F.col(f"`{k}`") == F.col(f"_k_{k}")
            on = cond if on is None else on & cond
        joined = frame.join(F.broadcast(dim), on=on, how="left")
        unmatched = F.col(marker).isNull()
        if s.on_missing == "fail":
            examples = joined.where(unmatched).select(*[F.col(f"`{k}`") for k in s.keys]).limit(5).collect()
            if examples:
                raise FeatureError(
                    f"static join to '{s.dataset}': rows without a match on {list(s.keys)} "
                    f"(on_missing: fail), e.g. {', '.join(str(tuple(r)) for r in examples)}"
                )
        elif s.on_missing == "drop":
            joined = joined.where(~unmatched)
        frame = joined.drop(marker, *[f"_k_{k}" for k in s.keys])
    return frame


def _apply_transform(spec: FeatureSetSpec, t: Any, frame: Any, project_root: Path | None) -> Any:
    """Run a registered transform and check it added its declared outputs."""
    if project_root is None:
        raise FeatureError(f"feature set '{spec.name}': transform '{t.name}' needs the project root (features/)")
    func = get_transform(t.name, project_root)
    result = func(frame, list(t.inputs), list(t.outputs), **t.params)
    missing = [o for o in t.outputs if o not in getattr(result, "columns", [])]
    if missing:
        raise FeatureError(f"transform '{t.name}' did not add its declared output(s) {', '.join(missing)}")
    return result
