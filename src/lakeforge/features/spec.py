"""A feature-set declaration as plain, validated values (durations in seconds), and the Spark SQL each
feature compiles to.

Semantics (docs/features.md):

- window: ``function(column)`` over the source rows with the same ``by`` keys whose time (the
  source's event time, or ``available_at``) is in ``[t - lag - window, t - lag)``: strictly before
  ``t - lag``. A null key matches nothing. Empty: 0 for count/count_distinct, else null.
- as-of join: the source row with the same keys and the greatest time ``<= t - lag`` (inclusive:
  Feast's convention), no older than ``max_age``; ties go to the greatest tuple of the columns.
- static join: a left join on the keys; ``on_missing`` says what an unmatched row gets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from lakeforge.config.values import parse_duration, parse_positive_duration
from lakeforge.errors import FeatureError
from lakeforge.features.columns import TIME

MICROS = 1_000_000
# Window functions (``mean`` is ``avg``); lakeforge.features.kernel computes them.
FUNCTIONS = ("count", "sum", "avg", "mean", "min", "max", "stddev", "count_distinct")


@dataclass(frozen=True)
class WindowSpec:
    """One window aggregation; ``block`` is the source block whose rows it aggregates."""

    index: int
    name: str
    function: str
    column: str | None
    window_s: int
    by: tuple[str, ...]
    lag_s: int
    source: str
    filter: str | None
    available_at: str | None
    time: str = ""  # the source rows' time expression (event time, or available_at)
    block: int = 0

    @property
    def ok(self) -> str:
        """Internal column: the row counts for this window."""
        return f"_w{self.index}_ok"

    @property
    def value(self) -> str:
        """Internal column: the value aggregated."""
        return f"_w{self.index}_v"

    def sql(self) -> str:
        """The Spark SQL selecting the rows and values this window aggregates, then what the kernel does."""
        keys = ", ".join(_quote(b) for b in self.by)
        value = self.column or "1"
        not_null = [f"({self.time})", *[_quote(b) for b in self.by], *([f"({value})"] if self.column else [])]
        where = " AND ".join(f"{c} IS NOT NULL" for c in dict.fromkeys(not_null))
        if self.filter:
            where += f" AND ({self.filter})"
        return (
            f"SELECT {keys}, {self.time} AS {TIME}, {value} AS _v FROM raw.{self.source} WHERE {where}; "
            f"{self.name} = {self.function}(_v) of the rows with the same {keys} and "
            f"{TIME} in [t - {_human(self.lag_s + self.window_s)}, t - {_human(self.lag_s)})"
        )


@dataclass(frozen=True)
class AsOfSpec:
    """One as-of join; ``block`` is its source block."""

    index: int
    dataset: str
    keys: tuple[str, ...]
    event_time: str
    columns: tuple[str, ...]
    lag_s: int
    max_age_s: int | None
    prefix: str
    block: int = 0

    def column(self, name: str) -> str:
        """Internal column holding a source column on this join's block rows."""
        return f"_a{self.index}_{name}"

    def sql(self) -> str:
        """The Spark SQL selecting the source rows, then the row the kernel picks for an event at t."""
        keys = ", ".join(_quote(k) for k in self.keys)
        columns = ", ".join(_quote(c) for c in self.columns)
        age = f" and {TIME} >= t - {_human(self.lag_s + self.max_age_s)}" if self.max_age_s is not None else ""
        return (
            f"SELECT {keys}, {_quote(self.event_time)} AS {TIME}, {columns} FROM raw.{self.dataset} "
            f"WHERE {' AND '.join(f'{_quote(k)} IS NOT NULL' for k in (*self.keys, self.event_time))}; "
            f"the row with the same {keys} and the greatest {TIME} <= t - {_human(self.lag_s)}{age} "
            f"(ties: the greatest ({columns}), nulls lowest)"
        )

    @property
    def outputs(self) -> list[str]:
        """The feature names this join adds."""
        return [f"{self.prefix}{c}" for c in self.columns]


@dataclass(frozen=True)
class StaticSpec:
    """A join to a dimension table on keys."""

    dataset: str
    keys: tuple[str, ...]
    columns: tuple[str, ...]
    prefix: str
    on_missing: str

    @property
    def outputs(self) -> list[str]:
        """The feature names this join adds."""
        return [f"{self.prefix}{c}" for c in self.columns]


@dataclass(frozen=True)
class TransformSpec:
    """A registered Python transform applied to the frame."""

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LabelSpec:
    """The training target, known ``available_after_s`` after the event."""

    name: str
    expr: str
    available_after_s: int


@dataclass(frozen=True)
class FeatureSetSpec:
    """A compiled feature-set declaration."""

    name: str
    entity: tuple[str, ...]
    spine: str
    event_time: str
    expressions: tuple[tuple[str, str], ...]
    windows: tuple[WindowSpec, ...]
    asofs: tuple[AsOfSpec, ...]
    statics: tuple[StaticSpec, ...]
    transforms: tuple[TransformSpec, ...]
    label: LabelSpec | None
    # Source blocks after the spine dataset (block 0): (dataset, time expression) per block.
    blocks: tuple[tuple[str, str], ...] = ()

    @property
    def feature_names(self) -> list[str]:
        """Every feature, in declaration order."""
        names = [n for n, _ in self.expressions] + [w.name for w in self.windows]
        for asof in self.asofs:
            names += asof.outputs
        for static in self.statics:
            names += static.outputs
        for transform in self.transforms:
            names += transform.outputs
        return names

    def stages(self) -> list[tuple[tuple[str, ...], list[WindowSpec], list[AsOfSpec]]]:
        """Windows and as-of joins grouped by key set, in declaration order: one shuffle and sort each."""
        stages: dict[tuple[str, ...], tuple[list[WindowSpec], list[AsOfSpec]]] = {}
        for w in self.windows:
            stages.setdefault(w.by, ([], []))[0].append(w)
        for j in self.asofs:
            stages.setdefault(j.keys, ([], []))[1].append(j)
        return [(keys, windows, asofs) for keys, (windows, asofs) in stages.items()]


def _quote(name: str) -> str:
    """A column name quoted for Spark SQL."""
    return "`" + name.replace("`", "``") + "`"


def _seconds(value: Any, what: str, positive: bool = True) -> int:
    """Seconds in a duration, 0 when unset; a bad one is a FeatureError naming ``what``."""
    if value is None or value == "":
        return 0
    try:
        return parse_positive_duration(value) if positive else parse_duration(value)
    except ValueError as exc:
        raise FeatureError(f"{what}: {exc}") from exc


def _names(values: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in (values or []))


def feature_set_spec(fs: Any, datasets: Any = None) -> FeatureSetSpec:
    """Compile a ``features`` config node; ``datasets`` (the composed ``dataset`` node) gives event times."""
    name = str(fs.name)
    spine = str(fs.spine.dataset)
    event_time = str(fs.spine.event_time)
    blocks: list[tuple[str, str]] = []

    def block_of(dataset: str, time_expr: str) -> int:
        if dataset == spine and time_expr == event_time:
            return 0
        if (dataset, time_expr) not in blocks:
            blocks.append((dataset, time_expr))
        return blocks.index((dataset, time_expr)) + 1

    windows = []
    for i, w in enumerate(fs.get("windows") or []):
        source = str(w.get("source") or spine)
        time_expr = str(w.get("available_at") or _event_time(datasets, source, spine, event_time))
        function = str(w.function)
        if function not in FUNCTIONS:
            raise FeatureError(f"features.windows[{i}].function: unknown function '{function}'")
        function = "avg" if function == "mean" else function
        windows.append(
            WindowSpec(
                index=i,
                name=str(w.name),
                function=function,
                column=str(w.column) if w.get("column") else None,
                window_s=_seconds(w.window, f"features.windows[{i}].window"),
                by=_names(w.by),
                lag_s=_seconds(w.get("lag"), f"features.windows[{i}].lag", positive=False),
                source=source,
                filter=str(w.filter) if w.get("filter") else None,
                available_at=str(w.available_at) if w.get("available_at") else None,
                time=time_expr,
                block=block_of(source, time_expr),
            )
        )
    asofs = []
    for i, j in enumerate(fs.get("asof_joins") or []):
        max_age = j.get("max_age")
        asofs.append(
            AsOfSpec(
                index=i,
                dataset=str(j.dataset),
                keys=_names(j["keys"]),
                event_time=str(j.event_time),
                columns=_names(j.columns),
                lag_s=_seconds(j.get("lag"), f"features.asof_joins[{i}].lag", positive=False),
                max_age_s=_seconds(max_age, f"features.asof_joins[{i}].max_age") if max_age else None,
                prefix=str(j.get("prefix") or ""),
                block=block_of(str(j.dataset), f"asof:{i}"),
            )
        )
    statics = [
        StaticSpec(
            dataset=str(s.dataset),
            keys=_names(s["keys"]),
            columns=_names(s.columns),
            prefix=str(s.get("prefix") or ""),
            on_missing=str(s.get("on_missing") or "null"),
        )
        for s in fs.get("static_joins") or []
    ]
    transforms = [
        TransformSpec(str(t.name), _names(t.inputs), _names(t.outputs), dict(t.get("params") or {}))
        for t in fs.get("transforms") or []
    ]
    label = None
    if fs.get("label") is not None:
        label = LabelSpec(
            str(fs.label.name),
            str(fs.label.expr),
            _seconds(fs.label.available_after, "features.label.available_after"),
        )
    return FeatureSetSpec(
        name=name,
        entity=_names(fs.entity),
        spine=spine,
        event_time=event_time,
        expressions=tuple((str(e.name), str(e.expr)) for e in fs.get("expressions") or []),
        windows=tuple(windows),
        asofs=tuple(asofs),
        statics=tuple(statics),
        transforms=tuple(transforms),
        label=label,
        blocks=tuple(blocks),
    )


def _event_time(datasets: Any, source: str, spine: str, spine_time: str) -> str:
    """A window source's time column: its declared event_time (the spine's for the spine dataset)."""
    if source == spine:
        return spine_time
    declared = datasets.get(source).get("event_time") if datasets is not None and source in datasets else None
    if not declared:
        raise FeatureError(
            f"window source '{source}' has no event_time: declare dataset.{source}.event_time "
            "or the window's available_at"
        )
    return str(declared)


def _entry(feature: str, kind: str, source: str, sql: str, window: str = "", lag: str = "") -> dict[str, str]:
    """One row of ``describe``."""
    return {"feature": feature, "kind": kind, "source": source, "window": window, "lag": lag, "sql": sql}


def describe(spec: FeatureSetSpec) -> list[dict[str, str]]:
    """One entry per feature: name, kind, source, window, lag and the Spark SQL it compiles to."""
    rows = [_entry(n, "expression", spec.spine, e) for n, e in spec.expressions]
    for w in spec.windows:
        where = f" WHERE {w.filter}" if w.filter else ""
        rows.append(
            _entry(
                w.name,
                f"window {w.function}({w.column or '1'}{where}) by {', '.join(w.by)}",
                f"{w.source} at {w.available_at or 'event time'}",
                w.sql(),
                window=f"[t - {_human(w.lag_s + w.window_s)}, t - {_human(w.lag_s)}) strictly before",
                lag=_human(w.lag_s),
            )
        )
    for j in spec.asofs:
        age = f", not older than {_human(j.max_age_s)}" if j.max_age_s is not None else ""
        for column, out in zip(j.columns, j.outputs, strict=True):
            rows.append(
                _entry(
                    out,
                    f"as-of {column} by {', '.join(j.keys)}",
                    f"{j.dataset} at {j.event_time}",
                    j.sql(),
                    window=f"latest at or before t - {_human(j.lag_s)} (inclusive){age}",
                    lag=_human(j.lag_s),
                )
            )
    for s in spec.statics:
        kind = f"by {', '.join(s.keys)} (missing: {s.on_missing})"
        sql = f"LEFT JOIN raw.{s.dataset} USING ({', '.join(s.keys)})"
        rows += [_entry(out, f"static {c} {kind}", s.dataset, sql) for c, out in zip(s.columns, s.outputs, strict=True)]
    for t in spec.transforms:
        kind = f"transform {t.name}({', '.join(t.inputs)})"
        rows += [_entry(out, kind, "features/", "(python)") for out in t.outputs]
    return rows


def _human(seconds: int) -> str:
    """A duration as people write it: 7d, 3h, 90s, 0s."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def check_entity(spec: FeatureSetSpec, columns: Sequence[str]) -> None:
    """The spine must carry the entity and event-time columns."""
    missing = [c for c in (*spec.entity, spec.event_time) if c not in columns]
    if missing:
        raise FeatureError(
            f"feature set '{spec.name}': spine dataset '{spec.spine}' lacks column(s) {', '.join(missing)}"
        )
