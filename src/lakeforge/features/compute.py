"""Compute a feature set point-in-time, in Spark: the one code path for training sets, feature
tables and scoring.

Plan: windows and as-of joins are grouped by key set (``FeatureSetSpec.stages``). For each key
set, the spine rows that need features and the source rows its windows and as-of joins read
(tagged with their source block and time) are unioned, hash-partitioned by the keys and sorted
by (keys, time); ``lakeforge.features.kernel`` then computes every feature of the stage per
partition in ``mapInArrow``, with binary searches over the sorted rows: one shuffle and one sort
per key set, no join back, no collect, memory bounded by a chunk of whole key groups. The spine
rows come out with the stage's features and feed the next stage. Static joins and transforms
follow; only the spine rows of the requested dates are kept.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from lakeforge.errors import FeatureError
from lakeforge.features.columns import BLOCK, SPINE, TIME
from lakeforge.features.kernel import AsOfTask, Stage, WindowTask, stage_kernel
from lakeforge.features.registry import get_transform
from lakeforge.features.spec import MICROS, AsOfSpec, FeatureSetSpec, WindowSpec, check_entity

log = logging.getLogger(__name__)

EVENT_DATE = "event_date"
LABEL_KNOWN_AT = "label_known_at"
Tables = Callable[[str], Any]


def _ts(day: date) -> datetime:
    """Midnight UTC of ``day`` (naive, as Spark's UTC session hands timestamps back)."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC).replace(tzinfo=None)


def _col(name: str) -> Any:
    """A column by name, whatever characters it holds."""
    from pyspark.sql import functions as F  # noqa: N812

    return F.col("`" + name.replace("`", "``") + "`")


def _not_null(columns: Sequence[str]) -> Any:
    """All of ``columns`` non-null (a null key matches nothing)."""
    from pyspark.sql import functions as F  # noqa: N812

    cond = F.lit(True)
    for c in columns:
        cond = cond & _col(c).isNotNull()
    return cond


def _expressions(spec: FeatureSetSpec, frame: Any) -> Any:
    """The spine dataset's rows with the expression features (windows may filter on them)."""
    from pyspark.sql import functions as F  # noqa: N812

    for name, expr in spec.expressions:
        frame = frame.withColumn(name, F.expr(expr))
    return frame


def _spine_rows(spec: FeatureSetSpec, tables: Tables, start: date, until: datetime) -> tuple[Any, list[str]]:
    """The spine rows features are computed for (event time in [start, until)), with the expression
    features, and the spine dataset's columns.

    The time is cast to TIMESTAMP, so a TIMESTAMP_NTZ or DATE event time works too (read as UTC).
    """
    from pyspark.sql import functions as F  # noqa: N812

    frame = tables(spec.spine)
    check_entity(spec, frame.columns)
    columns = list(frame.columns)
    t = _col(spec.event_time).cast("timestamp")
    frame = _expressions(spec, frame.where(t.isNotNull() & (t >= F.lit(_ts(start))) & (t < F.lit(until))))
    return frame.withColumns({TIME: t, SPINE: F.lit(True), BLOCK: F.lit(-1)}), columns


def _ok_column(w: WindowSpec) -> str | None:
    """The internal column saying whether a row passes the window's filter (None: no filter)."""
    return w.ok if w.filter else None


def _value_column(w: WindowSpec, columns: Sequence[str]) -> str | None:
    """The column holding the window's value: a source column as it is, else an internal column
    computed from the expression (None: count rows)."""
    if w.column is None:
        return None
    return w.column if w.column in columns else w.value


def _window_columns(windows: Sequence[WindowSpec], columns: Sequence[str]) -> dict[str, Any]:
    """The internal columns the windows need on their source rows (filters and computed values).

    A null key, a null time or a null value never counts; the kernel skips those rows itself.
    """
    from pyspark.sql import functions as F  # noqa: N812

    out: dict[str, Any] = {}
    for w in windows:
        ok = _ok_column(w)
        if ok is not None:
            out[ok] = F.coalesce(F.expr(str(w.filter)), F.lit(False))
        value = _value_column(w, columns)
        if value is not None and value not in columns:
            out[value] = F.expr(str(w.column))
    return out


def _source_block(
    spec: FeatureSetSpec,
    tables: Tables,
    block: int,
    keys: Sequence[str],
    windows: Sequence[WindowSpec],
    asofs: Sequence[AsOfSpec],
    since: datetime | None,
    until: datetime,
) -> Any:
    """The rows of a source block that ``windows`` or ``asofs`` read: keys, time and their columns.

    Block 0 is the spine dataset at its event time; other blocks are another dataset, or the
    spine dataset at another time (``available_at``). Only rows of [since, until) are read
    (since None: all history): older or later rows are never in a window or an as-of pick.
    """
    from pyspark.sql import functions as F  # noqa: N812

    if block == 0:
        frame = _expressions(spec, tables(spec.spine)).withColumn(TIME, _col(spec.event_time).cast("timestamp"))
        dataset = spec.spine
    else:
        dataset, time_expr = spec.blocks[block - 1]
        frame = tables(dataset)
    if asofs:
        join = asofs[0]
        missing = [c for c in (*join.keys, join.event_time, *join.columns) if c not in frame.columns]
        if missing:
            raise FeatureError(f"as-of join to '{dataset}': column(s) {', '.join(missing)} not in raw.{dataset}")
        frame = frame.withColumn(TIME, _col(join.event_time).cast("timestamp")).where(_not_null(join.keys))
        added = {join.column(c): _col(c) for c in join.columns}
        kept: list[str] = []
    else:
        if block:
            frame = frame.withColumn(TIME, F.expr(time_expr).cast("timestamp"))
        added = _window_columns(windows, frame.columns)
        kept = [v for w in windows if (v := _value_column(w, frame.columns)) is not None and v not in added]
    keep = F.col(TIME).isNotNull() & (F.col(TIME) < F.lit(until))
    if since is not None:
        keep = keep & (F.col(TIME) >= F.lit(since))
    frame = frame.where(keep).withColumns(added)
    columns = dict.fromkeys([*keys, TIME, *kept, *added])
    return frame.select(*[_col(c) for c in columns], F.lit(False).alias(SPINE), F.lit(block).alias(BLOCK))


def _since(start: date, windows: Sequence[WindowSpec], asofs: Sequence[AsOfSpec]) -> datetime | None:
    """The oldest source time any of these features reads for events from ``start`` on (None: all)."""
    spans = [w.lag_s + w.window_s for w in windows]
    for j in asofs:
        if j.max_age_s is None:
            return None
        spans.append(j.lag_s + j.max_age_s)
    return _ts(start) - timedelta(seconds=max(spans, default=0))


def _sum_type(value_type: Any) -> Any:
    """Spark type of a window sum: BIGINT for integral values, else DOUBLE."""
    from pyspark.sql import types as T  # noqa: N812

    integral = (T.ByteType, T.ShortType, T.IntegerType, T.LongType)
    return T.LongType() if isinstance(value_type, integral) else T.DoubleType()


def _window_type(w: WindowSpec, value_type: Any) -> Any:
    """The Spark type of a window feature, as the kernel returns it."""
    from pyspark.sql import types as T  # noqa: N812

    if w.function in ("count", "count_distinct"):
        return T.LongType()
    if w.function in ("min", "max"):
        return value_type
    if w.function == "sum":
        return _sum_type(value_type)
    return T.DoubleType()


def _run_stage(
    spec: FeatureSetSpec,
    tables: Tables,
    spine: Any,
    stage: tuple[tuple[str, ...], list[WindowSpec], list[AsOfSpec]],
    start: date,
    until: datetime,
    first: bool,
) -> Any:
    """The spine rows (``_spine`` true) with the features of one key set added.

    In the first stage the spine rows are still the spine dataset's own rows, so they double as
    the source rows of windows over it (block 0), which then only adds the older history rows.
    """
    from pyspark.sql import functions as F  # noqa: N812
    from pyspark.sql import types as T  # noqa: N812

    keys, windows, asofs = stage
    passthrough = [c for c in spine.columns if c not in (SPINE, BLOCK)]
    missing = [k for k in keys if k not in passthrough]
    if missing:
        what = f"window '{windows[0].name}'" if windows else f"as-of join to '{asofs[0].dataset}'"
        raise FeatureError(f"{what}: key column(s) {', '.join(missing)} not in the spine dataset '{spec.spine}'")
    since = _since(start, windows, asofs)
    own = [w for w in windows if w.block == 0]
    merged = first and bool(own)
    if merged:
        spine = spine.withColumns({BLOCK: F.lit(0), **_window_columns(own, spine.columns)})
    parts = []
    for b in sorted({w.block for w in windows}):
        of_block = [w for w in windows if w.block == b]
        parts.append(
            _source_block(spec, tables, b, keys, of_block, [], since, _ts(start) if merged and b == 0 else until)
        )
    parts += [_source_block(spec, tables, j.block, keys, [], [j], since, until) for j in asofs]
    frame = spine
    for part in parts:
        frame = frame.unionByName(part, allowMissingColumns=True)
    types = {f.name: f.dataType for f in frame.schema.fields}
    fields = [f for f in frame.schema.fields if f.name in passthrough]
    tasks = []
    for w in windows:
        value = _value_column(w, frame.columns)
        value_type = types[value] if value is not None else T.LongType()
        fields.append(T.StructField(w.name, _window_type(w, value_type)))
        tasks.append(
            WindowTask(w.name, w.function, w.block, _ok_column(w), value, w.lag_s * MICROS, w.window_s * MICROS)
        )
    for j in asofs:
        fields += [T.StructField(out, types[j.column(c)]) for c, out in zip(j.columns, j.outputs, strict=True)]
    kernel = Stage(
        keys=keys,
        windows=tuple(tasks),
        asofs=tuple(
            AsOfTask(
                j.block,
                j.lag_s * MICROS,
                None if j.max_age_s is None else j.max_age_s * MICROS,
                tuple((j.column(c), out) for c, out in zip(j.columns, j.outputs, strict=True)),
            )
            for j in asofs
        ),
        passthrough=tuple(passthrough),
    )
    frame = frame.repartition(*[_col(k) for k in keys]).sortWithinPartitions(*[_col(k) for k in keys], TIME)
    return frame.mapInArrow(stage_kernel(kernel), T.StructType(fields))


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
    until = _ts(end) + timedelta(days=1)
    frame, spine_columns = _spine_rows(spec, tables, start, until)
    for i, stage in enumerate(spec.stages()):
        frame = _run_stage(spec, tables, frame, stage, start, until, first=i == 0)
        frame = frame.withColumns({SPINE: F.lit(True), BLOCK: F.lit(-1)})
    # Spine columns stay until static joins and transforms have used them.
    keep = [*spine_columns, *[n for n, _ in spec.expressions], *[w.name for w in spec.windows]]
    keep += [out for j in spec.asofs for out in j.outputs]
    frame = frame.select(*[_col(c) for c in dict.fromkeys(keep)])
    frame = _static_joins(spec, tables, frame)
    for t in spec.transforms:
        frame = _apply_transform(spec, t, frame, project_root)
    out = [_col(c) for c in spec.entity]
    event_time = _col(spec.event_time)
    out += [event_time, F.to_date(event_time.cast("timestamp")).alias(EVENT_DATE)]
    out += [_col(n) for n in spec.feature_names]
    if with_label:
        if spec.label is None:
            raise FeatureError(f"feature set '{spec.name}' declares no label (features.label)")
        known = event_time.cast("timestamp") + F.make_dt_interval(secs=F.lit(spec.label.available_after_s))
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
