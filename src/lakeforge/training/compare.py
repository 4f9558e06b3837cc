"""`lakeforge compare`: two registered versions of a model side by side, read from the registry and
their training runs: metrics per split and per slice (with the direction-aware difference), the
baseline's metrics, params, data versions, code, config hash and the gate's decision.

By default the version holding the alias ``champion`` is compared with the one holding
``challenger``. The text fits a 100-column terminal: slice metrics are grouped into one table per
slice column (values as rows), whose metric columns wrap onto further tables when they would not fit.
"""

from __future__ import annotations

import json
import math
import textwrap
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lakeforge.config.schema_ml import METRICS
from lakeforge.errors import RegistryError
from lakeforge.tracking.registry import CHALLENGER, CHAMPION, GATE_TAG, model_version, registered_model
from lakeforge.training.gate import LOWER_IS_BETTER
from lakeforge.training.text_table import GAP, WIDTH, Column, fit, table_lines, text_table

SPLIT_NAMES = ("train", "validation", "test")  # as training.data.SPLITS, without importing Spark's side
ROWS = "rows"


# -- the registry ------------------------------------------------------------------------------


def _known_versions(client: Any, model: Any) -> str:
    """``1, 2, 3 (challenger: v3, champion: v2)``: what a user may ask for."""
    quoted = str(model.name).replace("'", "\\'")
    numbers = sorted(int(v.version) for v in client.search_model_versions(f"name = '{quoted}'"))
    aliases = ", ".join(f"{alias}: v{v}" for alias, v in sorted(model.aliases.items()))
    listed = ", ".join(map(str, numbers)) or "none"
    return f"{listed} ({aliases})" if aliases else listed


def pick_version(client: Any, model: Any, wanted: str) -> Any:
    """The ModelVersion ``wanted`` names: ``3``, ``v3`` or an alias such as ``champion``."""
    text = str(wanted).strip()
    if text in model.aliases:
        text = str(model.aliases[text])
    elif not text.removeprefix("v").isdigit():
        raise RegistryError(
            f"model '{model.name}' has no version or alias '{text}'; versions: {_known_versions(client, model)}"
        )
    return model_version(client, str(model.name), text)


def training_run(client: Any, model: Any, version: Any) -> Any:
    """The MLflow run that trained ``version`` (RegistryError when it is not recorded or was deleted)."""
    from mlflow.exceptions import MlflowException

    if not version.run_id:
        raise RegistryError(f"model '{model.name}' v{version.version} records no training run (registered by hand?)")
    try:
        return client.get_run(version.run_id)
    except MlflowException as exc:
        if getattr(exc, "error_code", "") != "RESOURCE_DOES_NOT_EXIST":
            raise
    raise RegistryError(
        f"model '{model.name}' v{version.version}: its training run {version.run_id} no longer exists (deleted?)"
    ) from None


def default_pair(client: Any, model: Any) -> tuple[str, str]:
    """The champion's and the challenger's version numbers, or a RegistryError saying what is missing."""
    name = str(model.name)
    champion, challenger = model.aliases.get(CHAMPION), model.aliases.get(CHALLENGER)
    explicit = f"`lakeforge compare {name} V1 V2` (versions: {_known_versions(client, model)})"
    if champion is None:
        raise RegistryError(
            f"model '{name}' has no champion yet: run the gate with `lakeforge run evaluate` (or "
            f"`lakeforge promote {name} VERSION`), or compare two versions with {explicit}"
        )
    if challenger is None:
        raise RegistryError(
            f"model '{name}' has no challenger: train one with `lakeforge run train`, or compare two versions "
            f"with {explicit}"
        )
    if int(champion) == int(challenger):
        raise RegistryError(
            f"model '{name}': champion and challenger are both v{champion} (the challenger was promoted); "
            f"compare two versions with {explicit}"
        )
    return str(champion), str(challenger)


# -- one side ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Side:
    """One version as compared: its label, aliases, version tags and training run's record."""

    label: str  # v3
    aliases: tuple[str, ...]
    version_tags: dict[str, str]
    run_id: str
    started: datetime | None
    metrics: dict[str, float]
    params: dict[str, str]
    tags: dict[str, str]

    @property
    def heading(self) -> str:
        return f"{self.label} ({', '.join(self.aliases)})" if self.aliases else self.label

    def inputs(self) -> dict[str, int] | None:
        raw = self.tags.get("lakeforge.inputs")
        return {str(k): int(v) for k, v in json.loads(raw).items()} if raw else None


def _side(client: Any, model: Any, wanted: str) -> Side:
    version = pick_version(client, model, wanted)
    run = training_run(client, model, version)
    number = int(version.version)
    aliases = tuple(sorted(a for a, v in model.aliases.items() if int(v) == number))
    start = run.info.start_time
    return Side(
        f"v{number}",
        aliases,
        dict(version.tags or {}),
        str(run.info.run_id),
        datetime.fromtimestamp(start / 1000, tz=UTC) if start else None,
        dict(run.data.metrics),
        dict(run.data.params),
        dict(run.data.tags),
    )


# -- text --------------------------------------------------------------------------------------


def _number(value: float | None, decimals: int, count: bool = False) -> str:
    if value is None:
        return "-"
    if math.isnan(value):
        return "nan"
    return f"{int(value):,}" if count else f"{value:.{decimals}f}"


def _integral(*values: float | None) -> bool:
    """True when every value given is a whole number (a count such as ``dropped_null_labels``)."""
    found = [v for v in values if v is not None]
    return bool(found) and all(math.isfinite(v) and float(v).is_integer() for v in found)


def _delta(metric: str, left: float | None, right: float | None, decimals: int, sides: tuple[Side, Side]) -> str:
    """``right - left``, and for a known metric the label of the side that did better (``=`` on a tie)."""
    if left is None or right is None or math.isnan(left) or math.isnan(right):
        return ""
    diff = right - left
    if metric == ROWS or (metric not in METRICS and _integral(left, right)):
        return f"{int(diff):+,}"
    if metric not in METRICS:  # no known direction (a count, a custom metric): the difference only
        return f"{diff:+.{decimals}f}"
    better = "=" if diff == 0 else (sides[0] if (diff > 0) == (metric in LOWER_IS_BETTER) else sides[1]).label
    return f"{diff:+.{decimals}f} {better}"


@dataclass(frozen=True)
class _Metrics:
    """A run's metrics sorted by kind: per split, the baseline's per split, slices, and the rest."""

    splits: dict[str, dict[str, float]]
    baseline: dict[str, dict[str, float]]
    slices: dict[tuple[str, str], dict[str, dict[str, float]]]  # (split, column) -> value -> metric -> v
    other: dict[str, float]


def sort_metrics(metrics: dict[str, float]) -> _Metrics:
    """Sort ``<split>.<m>``, ``baseline.<split>.<m>``, ``<split>.slice.<column>.<value>.<m>``, the rest."""
    splits: dict[str, dict[str, float]] = defaultdict(dict)
    baseline: dict[str, dict[str, float]] = defaultdict(dict)
    slices: dict[tuple[str, str], dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    other: dict[str, float] = {}
    for key, value in metrics.items():
        parts = key.split(".")
        if len(parts) >= 5 and parts[0] in SPLIT_NAMES and parts[1] == "slice":
            slices[(parts[0], parts[2])][".".join(parts[3:-1])][parts[-1]] = value
        elif len(parts) == 3 and parts[0] == "baseline" and parts[1] in SPLIT_NAMES:
            baseline[parts[1]][parts[2]] = value
        elif len(parts) == 2 and parts[0] in SPLIT_NAMES:
            splits[parts[0]][parts[1]] = value
        else:
            other[key] = value
    return _Metrics(dict(splits), dict(baseline), {k: dict(v) for k, v in slices.items()}, other)


def _ordered(names: Iterable[str], first: str | None = None) -> list[str]:
    """Metric names: ``first`` (the primary metric) first, then by name, ``rows`` last."""
    unique = set(names)
    return sorted(unique, key=lambda n: (n == ROWS, n != first, n))


def _metric_table(
    title: str,
    left: dict[str, dict[str, float]],
    right: dict[str, dict[str, float]],
    sides: tuple[Side, Side],
    primary: str | None,
    prefix: str = "",
) -> list[str]:
    """One row per metric as logged (``<prefix><group>.<metric>``): both values, the difference and the
    side that did better."""
    groups = [s for s in SPLIT_NAMES if s in left or s in right]
    groups += sorted((set(left) | set(right)) - set(groups))
    keys: list[str] = []
    cells: tuple[list[str], list[str], list[str]] = ([], [], [])
    for group in groups:
        a, b = left.get(group, {}), right.get(group, {})
        for metric in _ordered([*a, *b], primary):
            leaf = metric.rsplit(".", 1)[-1]
            count = leaf == ROWS or (leaf not in METRICS and _integral(a.get(metric), b.get(metric)))
            keys.append(f"{prefix}{group}.{metric}" if group else metric)
            cells[0].append(_number(a.get(metric), 6, count))
            cells[1].append(_number(b.get(metric), 6, count))
            cells[2].append(_delta(leaf, a.get(metric), b.get(metric), 6, sides))
    if not keys:
        return []
    rest = [Column(sides[0].heading, cells[0]), Column(sides[1].heading, cells[1])]
    rest.append(Column(f"Δ {sides[1].label} - {sides[0].label}", cells[2]))
    return ["", title, *table_lines([Column("metric", keys, right=False)], rest)]


def _slice_tables(left: _Metrics, right: _Metrics, sides: tuple[Side, Side], primary: str | None) -> list[str]:
    out: list[str] = []
    for split, column in sorted(set(left.slices) | set(right.slices)):
        a, b = left.slices.get((split, column), {}), right.slices.get((split, column), {})
        names = sorted(set(a) | set(b), key=_natural)
        metrics = _ordered([m for v in names for m in (*a.get(v, {}), *b.get(v, {}))], primary)
        rest = []
        for metric in [ROWS] * (ROWS in metrics) + [m for m in metrics if m != ROWS]:  # row counts first
            decimals, count = 4, metric == ROWS
            got = [(a.get(v, {}).get(metric), b.get(v, {}).get(metric)) for v in names]
            rest.append(Column(sides[0].label, [_number(x, decimals, count) for x, _ in got], group=metric))
            rest.append(Column(sides[1].label, [_number(y, decimals, count) for _, y in got], group=metric))
            rest.append(Column("Δ", [_delta(metric, x, y, decimals, sides) for x, y in got], group=metric))
        out += ["", f"{split} slices by '{column}' ({len(names)} values; Δ = {sides[1].label} - {sides[0].label})"]
        out += text_table([Column(column, names, right=False)], rest)
    return out


def _natural(value: str) -> tuple[int, float, str]:
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)


def _pairs_table(title: str, rows: list[tuple[str, str, str]], sides: tuple[Side, Side]) -> list[str]:
    """Key / left / right rows, ``*`` marking the ones that differ; values cut to fit the width."""
    if not rows:
        return []
    keys = [Column("", [f"{'*' if a != b else ' '} {k}" for k, a, b in rows], right=False)]
    room = max(12, (WIDTH - 3 * len(GAP) - keys[0].width) // 2)
    rest = [
        Column(sides[0].heading, [fit(a, room) for _, a, _ in rows], right=False),
        Column(sides[1].heading, [fit(b, room) for _, _, b in rows], right=False),
    ]
    return ["", title, *table_lines(keys, rest)]


def _code(side: Side) -> str:
    commit = side.tags.get("lakeforge.git_commit")
    if not commit or commit == "None":
        return "unknown (not a git checkout)"
    dirty = side.tags.get("lakeforge.git_dirty")
    state = {"true": "dirty", "false": "clean"}.get(str(dirty), "state unknown")
    return f"{commit[:12]} ({state})"


def _gate(side: Side) -> str:
    decision = side.version_tags.get(f"{GATE_TAG}.decision")
    return decision or "not evaluated"


def _summary(sides: tuple[Side, Side]) -> list[tuple[str, str, str]]:
    def row(name: str, get: Any) -> tuple[str, str, str]:
        return (name, str(get(sides[0])), str(get(sides[1])))

    return [
        row("run", lambda s: s.run_id),
        row("trained at", lambda s: f"{s.started:%Y-%m-%d %H:%M} UTC" if s.started else "-"),
        row("run_date", lambda s: s.tags.get("lakeforge.run_date", "-")),
        row("code", _code),
        row("config hash", lambda s: s.tags.get("lakeforge.config_hash", "-")),
        row("seed", lambda s: s.tags.get("lakeforge.seed", s.params.get("seed", "-"))),
        row("gate", _gate),
    ]


def _data_rows(sides: tuple[Side, Side]) -> list[tuple[str, str, str]]:
    inputs = [s.inputs() for s in sides]
    tables = sorted(set(inputs[0] or {}) | set(inputs[1] or {}))
    if not tables:
        return [("tables", "not recorded", "not recorded")]

    def version(found: dict[str, int] | None, table: str) -> str:
        if found is None:
            return "not recorded"
        return f"version {found[table]}" if table in found else "not read"

    return [(t, version(inputs[0], t), version(inputs[1], t)) for t in tables]


def _gate_reasons(sides: tuple[Side, Side]) -> list[str]:
    out = []
    for side in sides:
        reason = side.version_tags.get(f"{GATE_TAG}.reason")
        if reason:
            text = f"gate {side.label}: {_gate(side)}: {reason}"
            out += textwrap.wrap(text, WIDTH - 2, initial_indent=GAP, subsequent_indent=GAP + "  ")
    return out


def render(model: str, sides: tuple[Side, Side], primary: str | None = None) -> str:
    """The comparison of two sides as text (each line at most ~100 columns), ending with a newline."""
    left, right = sort_metrics(sides[0].metrics), sort_metrics(sides[1].metrics)
    lines = [f"model '{model}': {sides[0].heading} vs {sides[1].heading}"]
    lines += _pairs_table("run", _summary(sides), sides)
    lines += _gate_reasons(sides)
    lines += _metric_table("metrics", left.splits, right.splits, sides, primary)
    lines += _metric_table(
        "baseline (the gate's simple model)", left.baseline, right.baseline, sides, primary, "baseline."
    )
    if left.other or right.other:
        lines += _metric_table("other metrics", {"": left.other}, {"": right.other}, sides, primary)
    lines += _slice_tables(left, right, sides, primary)
    params = sorted(set(sides[0].params) | set(sides[1].params))
    rows = [(p, sides[0].params.get(p, "-"), sides[1].params.get(p, "-")) for p in params]
    lines += _pairs_table("params (* differs)", rows, sides)
    lines += _pairs_table("data versions (* differs)", _data_rows(sides), sides)
    return "\n".join(line.replace("\n", " ") for line in lines) + "\n"


def _primary_metric(cfg: Any, model: str) -> str | None:
    """The project's primary metric for ``model`` when the composed config is that model's."""
    composed = cfg.get("model") if cfg is not None else None
    if composed is not None and str(composed.get("name")) == model:
        return str(composed.get("primary_metric") or "") or None
    return None


def compare_versions(cfg: Any, model: str, left: str | None, right: str | None) -> str:
    """The text `lakeforge compare` prints: ``left`` vs ``right`` (default: champion vs challenger)."""
    from lakeforge.tracking.store import connect

    client = connect(cfg).client
    registered = registered_model(client, model)
    if left is None or right is None:
        left, right = default_pair(client, registered)
    sides = (_side(client, registered, left), _side(client, registered, right))
    return render(str(registered.name), sides, _primary_metric(cfg, model))
