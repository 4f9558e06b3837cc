"""The monitor step: one run over a range of run dates (``run_date``, or ``start_date..end_date``).

For every date it measures, against the reference (``lakeforge.monitoring.reference``):

* feature drift per feature (``monitor.drift.<kind>``) and the share of drifted features;
* prediction drift per alias (``monitor.drift.prediction``), mean score and positive share;
* data quality: volume against the reference's rows per day, null share per feature, coverage
  (population rows without a prediction, by reason) and freshness against
  ``deadlines.predictions_by``;
* performance on the predictions of ``run_date - deadlines.labels_within`` with the labels known
  by the end of ``run_date``: per alias (served and shadow rows alike) and per slice.

Each Spark query covers the whole range grouped by date; only counts reach the driver. The
date's signals feed the alert rules (``lakeforge.monitoring.alerts``): new episodes and
resolutions go to the channels once, and a rule marked ``retrain`` opens a retrain request
(unless within the cooldown). One commit per table replaces the range's partitions, so a re-run
leaves exactly one set of rows per date and monitor.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from time import perf_counter
from typing import Any

import numpy as np

from lakeforge.config.schema_ml import MONITOR_SIGNALS
from lakeforge.config.values import parse_duration
from lakeforge.errors import ConfigError
from lakeforge.features.build import date_range, ensure_features, spec_from_config
from lakeforge.lake.catalog import Catalog
from lakeforge.lake.delta import Lineage, data_files, read_table
from lakeforge.monitoring import compute, tables
from lakeforge.monitoring.alerts import AlertEvent, evaluate, retrain_request, rules_from_config
from lakeforge.monitoring.binning import Counts, count_files
from lakeforge.monitoring.channels import ChannelResult, channels_from_config, send
from lakeforge.monitoring.perf import auc_binned, calibration_binned, log_loss_from_sum, precision_recall_at
from lakeforge.monitoring.reference import Reference, dates_reference, score_bins, training_reference
from lakeforge.monitoring.stats import drift

log = logging.getLogger(__name__)

MONITOR_FILE = "conf/monitor/{name}.yaml"


@dataclass
class DayResult:
    """What the monitor found on one run date."""

    run_date: date
    signals: dict[str, Any]
    drifted: list[str] = field(default_factory=list)
    events: list[AlertEvent] = field(default_factory=list)
    retrain: bool = False


@dataclass(frozen=True)
class MonitorResult:
    """What one monitor run wrote."""

    monitor: str
    model: str
    start: date
    end: date
    days: list[DayResult]
    versions: dict[str, int]  # table -> version written
    notifications: list[ChannelResult]
    retrain_requests: list[date]
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per phase

    def describe(self) -> str:
        """The run's summary for a person."""
        span = f"{self.start}" if self.start == self.end else f"{self.start}..{self.end} ({len(self.days)} days)"
        lines = [f"monitor {self.monitor} (model {self.model}): {span}"]
        for name, version in self.versions.items():
            lines.append(f"  {name} v{version}")
        shown = self.days if len(self.days) <= 10 else [*self.days[:3], None, *self.days[-5:]]
        lines.append(f"  {'run_date':<10}  {'drift':>5}  {'score drift':>11}  {'missing':>7}  {'AUC':>6}  alerts")
        for d in shown:
            if d is None:
                lines.append("  …")
                continue
            s = d.signals
            auc = s.get("performance.roc_auc")
            alerts = ", ".join(f"{e.rule} {e.status}" for e in d.events) or "-"
            lines.append(
                f"  {d.run_date}  {_pct(s.get('drift_share')):>5}  {_num(s.get('prediction_drift')):>11}  "
                f"{_pct(s.get('missing_share')):>7}  {_num(auc):>6}  {alerts}"
            )
        opened = sum(1 for d in self.days for e in d.events if e.status == "opened")
        lines.append(f"  {opened} alert episode(s) opened; notifications sent: {len(self.notifications)}")
        for day in self.retrain_requests:
            lines.append(f"  retrain requested on {day} (monitoring.retrain_requests; run `lakeforge run retrain`)")
        return "\n".join(lines)


class _Timer:
    """Wall seconds per named phase (summed when a phase repeats)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._current: tuple[str, float] | None = None

    def start(self, name: str) -> None:
        self._current = (name, perf_counter())

    def stop(self) -> None:
        if self._current is not None:
            name, began = self._current
            self.seconds[name] = self.seconds.get(name, 0.0) + perf_counter() - began
            self._current = None

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        self.start(name)
        try:
            yield
        finally:
            self.stop()


def _pct(value: Any) -> str:
    return "-" if value is None else f"{float(value):.0%}"


def _num(value: Any) -> str:
    return "-" if value is None else f"{float(value):.3f}"


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def _serving(cfg: Any) -> str:
    """The alias whose predictions are served (``model.scoring.alias``, ``champion`` by default)."""
    return str((cfg.model.get("scoring") or {}).get("alias") or "champion")


def _features(cfg: Any, spec: Any) -> list[str]:
    declared = [str(f) for f in cfg.monitor.get("features") or []]
    if declared:
        return declared
    return [str(f) for f in cfg.model.get("features") or []] or list(spec.feature_names)


def _window_days(cfg: Any) -> int:
    """Days of the current window (``monitor.current_window``): the run date and the days before it."""
    text = cfg.monitor.get("current_window") or "1d"
    try:
        return max(1, math.ceil(parse_duration(text) / 86400))
    except ValueError as exc:
        raise ConfigError(str(exc), key="monitor.current_window") from exc


def _on_dates(days: Sequence[date]) -> Callable[[Mapping[str, str | None]], bool]:
    """A partition filter keeping the files of ``days`` (``event_date``)."""
    wanted = {d.isoformat() for d in days}
    return lambda values: str(values.get("event_date")) in wanted


def _window_counts(counted: Mapping[tuple[str | None, ...], Counts], day: date, window: int) -> Counts | None:
    """The counts of the ``window`` days ending on ``day``, summed (None when none of them has rows)."""
    parts = [counted[k] for i in range(window) if (k := ((day - timedelta(days=i)).isoformat(),)) in counted]
    if not parts:
        return None
    total = Counts(rows=sum(p.rows for p in parts))
    for p in parts:
        for feature, array in p.counts.items():
            total.counts[feature] = total.counts.get(feature, 0) + array
        for feature, n in p.nulls.items():
            total.nulls[feature] = total.nulls.get(feature, 0) + n
    return total


def _label_delay_days(cfg: Any) -> int:
    text = cfg.monitor.deadlines.get("labels_within") or "0d"
    try:
        return math.ceil(parse_duration(text) / 86400)
    except ValueError as exc:
        raise ConfigError(str(exc), key="monitor.deadlines.labels_within") from exc


def _deadline(cfg: Any, day: date) -> datetime | None:
    """``predictions_by`` (HH:MM UTC) on the day after ``day``, or None."""
    by = cfg.monitor.deadlines.get("predictions_by")
    if not by:
        return None
    hours, minutes = (int(p) for p in str(by).split(":"))
    return datetime.combine(day + timedelta(days=1), time(hours, minutes), tzinfo=UTC)


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _signal_history(spark: Any, catalog: Catalog, monitor: str) -> dict[date, dict[str, Any]]:
    """Every recorded run date's signals of this monitor."""
    from pyspark.sql import functions as F  # noqa: N812

    if not catalog.exists(tables.SIGNALS):
        return {}
    rows = read_table(spark, catalog, tables.SIGNALS).where(F.col("monitor") == monitor).collect()
    return {r["run_date"]: json.loads(r["signals"]) for r in rows}


def _recorded_alerts(spark: Any, catalog: Catalog, monitor: str) -> list[dict[str, Any]]:
    from pyspark.sql import functions as F  # noqa: N812

    if not catalog.exists(tables.ALERTS):
        return []
    rows = read_table(spark, catalog, tables.ALERTS).where(F.col("monitor") == monitor).collect()
    # Rows of the dates being recomputed count as recorded only for dedup of notifications.
    return [
        {
            "rule": r["rule"],
            "episode_id": r["episode_id"],
            "status": r["status"],
            "episode_start": r["episode_start"],
            "run_date": r["run_date"],
        }
        for r in rows
    ]


def _last_request(spark: Any, catalog: Catalog, monitor: str, before: date) -> date | None:
    from pyspark.sql import functions as F  # noqa: N812

    if not catalog.exists(tables.RETRAIN):
        return None
    row = (
        read_table(spark, catalog, tables.RETRAIN)
        .where((F.col("monitor") == monitor) & (F.col("run_date") < F.lit(before)))
        .agg(F.max("run_date").alias("last"))
        .collect()
    )
    return row[0]["last"] if row else None


def monitor(spark: Any, cfg: Any, catalog: Catalog, lineage: Lineage, *, replay: bool | None = None) -> MonitorResult:
    """Monitor the composed model for ``run_date`` (or ``start_date..end_date``) and write the tables.

    ``replay``: the dates are history being replayed (``repro=true``, a backtest): lateness is
    recorded but is not a signal, since predictions for past dates are "late" by construction.
    """
    from omegaconf import OmegaConf

    from lakeforge.config.schema_ml import MonitorConfig

    if cfg.get("monitor") is None:
        raise ConfigError("no monitor is composed; add one to the pipeline (conf/monitor/*.yaml)", key="monitor")
    cfg = cfg.copy()
    cfg.monitor = OmegaConf.merge(OmegaConf.structured(MonitorConfig), cfg.monitor)  # defaults for what is unset
    mon = cfg.monitor
    name, model = str(mon.name), str(mon.model)
    file = MONITOR_FILE.format(name=name)
    if model != str(cfg.model.name):
        raise ConfigError(
            f"monitor '{name}' watches model '{model}', but '{cfg.model.name}' is composed",
            key="monitor.model",
            file=file,
        )
    replay = bool(cfg.get("repro")) if replay is None else replay
    project_root = Path(str(cfg.project_root))
    rules = rules_from_config(OmegaConf.to_container(mon.alerts.rules), file=file, signals=MONITOR_SIGNALS)  # type: ignore[arg-type]
    # Resolved: a webhook URL or an SMTP password comes from ${oc.env:…}.
    declared = OmegaConf.to_container(mon.alerts.channels, resolve=True)
    channels = channels_from_config(declared, file=file, project_root=project_root)  # type: ignore[arg-type]
    start, end = date_range(cfg)
    days = _days(start, end)
    spec = spec_from_config(cfg, str(cfg.model.feature_set))
    features = _features(cfg, spec)
    feature_table = f"features.{spec.name}"
    predictions_table = f"predictions.{model}"
    serving = _serving(cfg)
    delay = _label_delay_days(cfg)
    label_dates = {d - timedelta(days=delay): d for d in days}

    timer = _Timer()
    with timer("served models"):
        predictions = compute.predictions_of(spark, catalog, predictions_table, days)
        served = compute.served_models(predictions)
    with timer("references"):
        references = _references(
            spark, catalog, cfg, days, features, served, serving, feature_table, predictions_table, lineage
        )

    # Feature counts per event date, binned as each date's reference (usually one for the range).
    feature_counts: dict[date, Any] = {}
    by_ref: dict[str, list[date]] = {}
    for d in days:
        by_ref.setdefault(references[d].reference_id, []).append(d)
    window = _window_days(cfg)
    for ref_days in by_ref.values():
        timer.start("feature counts")
        ref = references[ref_days[0]]
        first = min(ref_days) - timedelta(days=window - 1)
        ensure_features(spark, cfg, catalog, lineage, spec, _days(first, max(ref_days)))
        files = data_files(catalog, feature_table, partitions=_on_dates(_days(first, max(ref_days))))
        counted = count_files(
            spark,
            [(path, (str(parts["event_date"]),)) for path, parts in files],
            ref.bins,
            description=f"lakeforge monitor {mon.name}: feature counts",
        )
        for d in ref_days:
            feature_counts[d] = _window_counts(counted, d, window)
        timer.stop()
    with timer("score counts"):
        scores = compute.score_counts(spark, catalog, predictions_table, days)
    with timer("missing counts"):
        missing = compute.missing_counts(spark, catalog, f"{predictions_table}__missing", days)
    timer.start("labelled counts")
    label_predictions = compute.predictions_of(spark, catalog, predictions_table, sorted(label_dates))
    perf_cfg = mon.performance
    labelled = compute.labelled_counts(
        spark,
        catalog,
        spec,
        label_predictions,
        label_dates,
        [str(s) for s in perf_cfg.slices],
        int(perf_cfg.score_bins),
    )
    timer.stop()
    with timer("training levels"):
        training_levels = _training_levels(cfg, served, str(perf_cfg.metric))

    now = datetime.now(UTC)
    out = tables.Rows()
    results: list[DayResult] = []
    for d in days:
        ref = references[d]
        day = DayResult(d, {})
        _drift_rows(cfg, out, name, model, d, ref, feature_counts.get(d), day, now)
        _prediction_rows(cfg, out, name, model, d, ref, served.get(d, {}), scores, day, now)
        _quality_rows(
            cfg,
            out,
            name,
            model,
            d,
            ref,
            feature_counts.get(d),
            served.get(d, {}),
            serving,
            missing.get(d, {}),
            replay,
            day,
            now,
        )
        label_day = d - timedelta(days=delay)
        _performance_rows(cfg, out, name, model, d, label_day, labelled, serving, training_levels, day, now)
        results.append(day)

    with timer("alerts"):
        notifications, requests = _alerts(spark, catalog, cfg, rules, channels, name, model, results, out, replay, now)
    with timer("writes"):
        versions = tables.write_all(catalog, out, name, days, lineage)
    log.info("monitor %s: %s", name, ", ".join(f"{k} {v:.1f} s" for k, v in timer.seconds.items()))
    return MonitorResult(name, model, start, end, results, versions, notifications, requests, timer.seconds)


def _references(
    spark: Any,
    catalog: Catalog,
    cfg: Any,
    days: Sequence[date],
    features: list[str],
    served: Mapping[date, Mapping[str, compute.Served]],
    serving: str,
    feature_table: str,
    predictions_table: str,
    lineage: Lineage,
) -> dict[date, Reference]:
    """The reference of each run date: the served version's (kind training) or the fixed dates'."""
    from lakeforge.errors import FeatureError

    kind = str(cfg.monitor.reference.kind)
    model = str(cfg.monitor.model)
    if kind == "dates":
        ref = dates_reference(
            spark,
            catalog,
            cfg,
            features,
            feature_table=feature_table,
            predictions=predictions_table,
            alias=serving,
            lineage=lineage,
        )
        return dict.fromkeys(days, ref)
    by_version: dict[int, Reference] = {}
    out: dict[date, Reference] = {}
    fallback = _current_champion(cfg, serving)
    for d in days:
        s = served.get(d, {}).get(serving)
        version, run_id = (s.version, s.run_id) if s is not None else fallback
        if version is None:
            raise FeatureError(
                f"monitor '{cfg.monitor.name}': no predictions of '{model}' on {d} and no model with alias "
                f"'{serving}' to take the training reference from; train and score first, or use reference kind 'dates'"
            )
        if version not in by_version:
            by_version[version] = training_reference(
                spark,
                catalog,
                cfg,
                features,
                model=model,
                version=version,
                run_id=str(run_id),
                feature_table=feature_table,
                lineage=lineage,
            )
        out[d] = by_version[version]
    return out


def _current_champion(cfg: Any, alias: str) -> tuple[int | None, str | None]:
    """(version, run id) of the model's serving alias, or (None, None)."""
    from lakeforge.tracking.store import connect

    try:
        client = connect(cfg).client
        mv = client.get_model_version_by_alias(str(cfg.monitor.model), alias)
    except Exception:  # no registered model or alias yet: the caller says what to do
        return None, None
    return int(mv.version), str(mv.run_id)


def _training_levels(cfg: Any, served: Mapping[date, Mapping[str, compute.Served]], metric: str) -> dict[int, float]:
    """Model version -> its test-split value of the headline metric (the report's training-time level)."""
    from lakeforge.tracking.store import connect

    runs = {s.version: s.run_id for day in served.values() for s in day.values()}
    if not runs:
        return {}
    client = connect(cfg).client
    levels = {}
    for version, run_id in runs.items():
        try:
            value = client.get_run(run_id).data.metrics.get(f"test.{metric}")
        except Exception:  # a run deleted from the store: no level to draw
            value = None
        if value is not None:
            levels[version] = float(value)
    return levels


def _drift_rows(
    cfg: Any,
    out: tables.Rows,
    name: str,
    model: str,
    d: date,
    ref: Reference,
    current: Any,
    day: DayResult,
    now: datetime,
) -> None:
    rules = cfg.monitor.drift
    evaluated = 0
    for b in ref.bins:
        rule = rules.numeric if b.kind == "numeric" else rules.categorical
        ref_counts = ref.counts.counts[b.feature]
        cur_counts = current.counts[b.feature] if current is not None else np.zeros(b.size)
        result = drift(str(rule.method), ref_counts, cur_counts, np.asarray(b.edges) if b.kind == "numeric" else None)
        threshold = float(rule.threshold)
        drifted = result.drifted_for(threshold)
        if result.value is not None:
            evaluated += 1
        if drifted:
            day.drifted.append(b.feature)
        rows = current.rows if current is not None else 0
        out.feature_drift.append(
            {
                "monitor": name,
                "model": model,
                "run_date": d,
                "feature": b.feature,
                "kind": b.kind,
                "method": result.method,
                "value": _finite(result.value),
                "p_value": _finite(result.p_value),
                "threshold": threshold,
                "drifted": drifted,
                "reason": result.reason,
                "reference_id": ref.reference_id,
                "reference_rows": ref.counts.rows,
                "rows": rows,
                "reference_null_share": ref.counts.null_share(b.feature),
                "null_share": current.null_share(b.feature) if current is not None else None,
                "bin_labels": b.labels,
                "reference_counts": ref_counts.tolist(),
                "counts": cur_counts.tolist(),
                "computed_at": now,
            }
        )
    day.signals["drifted_features"] = len(day.drifted) if evaluated else None
    day.signals["drift_share"] = len(day.drifted) / evaluated if evaluated else None


def _prediction_rows(
    cfg: Any,
    out: tables.Rows,
    name: str,
    model: str,
    d: date,
    ref: Reference,
    served: Mapping[str, compute.Served],
    scores: Mapping[tuple[str | None, ...], Any],
    day: DayResult,
    now: datetime,
) -> None:
    rule = cfg.monitor.drift.prediction
    serving = _serving(cfg)
    bins = score_bins()
    centres = (np.asarray(bins.edges[:-1]) + np.asarray(bins.edges[1:])) / 2
    threshold_score = float(cfg.monitor.performance.threshold)
    day.signals["prediction_drift"] = None
    for alias, s in served.items():
        counted = scores.get((d.isoformat(), alias))
        counts = counted.counts["score"] if counted is not None else np.zeros(bins.size)
        result = drift(str(rule.method), ref.scores, counts, np.asarray(bins.edges)) if ref.scores is not None else None
        inner = counts[1:-1]
        total = inner.sum()
        mean = float((inner * centres).sum() / total) if total else None
        positive = float(inner[centres >= threshold_score].sum() / total) if total else None
        value = _finite(result.value) if result is not None else None
        drifted = result.drifted_for(float(rule.threshold)) if result is not None else False
        if alias == serving:
            day.signals["prediction_drift"] = value
        out.prediction_drift.append(
            {
                "monitor": name,
                "model": model,
                "run_date": d,
                "model_alias": alias,
                "model_version": s.version,
                "method": str(rule.method),
                "value": value,
                "p_value": _finite(result.p_value) if result is not None else None,
                "threshold": float(rule.threshold),
                "drifted": drifted,
                "reason": (result.reason if result is not None else ref.score_note),
                "rows": int(total),
                "mean_score": mean,
                "positive_share": positive,
                "reference_id": ref.reference_id,
                "reference_counts": ref.scores.tolist() if ref.scores is not None else None,
                "counts": counts.tolist(),
                "computed_at": now,
            }
        )


def _quality_row(name: str, model: str, d: date, check: str, now: datetime, **values: Any) -> dict[str, Any]:
    row = {"monitor": name, "model": model, "run_date": d, "check": check, "feature": None, "value": None}
    row |= {"reference": None, "status": None, "detail": None, "computed_at": now}
    return row | values


def _quality_rows(
    cfg: Any,
    out: tables.Rows,
    name: str,
    model: str,
    d: date,
    ref: Reference,
    current: Any,
    served: Mapping[str, compute.Served],
    serving: str,
    missing: Mapping[str, int],
    replay: bool,
    day: DayResult,
    now: datetime,
) -> None:
    window = _window_days(cfg)
    rows = (current.rows if current is not None else 0) / window
    expected = ref.rows_per_day
    ratio = rows / expected if expected else None
    day.signals["volume_ratio"] = ratio
    per_day = f"{rows:,.0f} rows per day over {window} days" if window > 1 else f"{rows:,.0f} rows"
    detail = f"{per_day}; the reference has {expected:,.0f} per day" if expected else per_day
    out.data_quality.append(_quality_row(name, model, d, "volume", now, value=rows, reference=expected, detail=detail))
    increases = []
    for b in ref.bins:
        cur = current.null_share(b.feature) if current is not None else None
        base = ref.counts.null_share(b.feature)
        if cur is not None and base is not None:
            increases.append(cur - base)
        out.data_quality.append(
            _quality_row(name, model, d, "null_share", now, feature=b.feature, value=cur, reference=base)
        )
    day.signals["null_share_increase"] = max(increases) if increases else None
    s = served.get(serving)
    scored = s.served_rows if s is not None else 0
    lost = sum(missing.values())
    population = scored + lost
    share = lost / population if population else None
    day.signals["missing_share"] = share
    reasons = ", ".join(f"{n:,} {why}" for why, n in sorted(missing.items(), key=lambda kv: -kv[1])) or "none"
    out.data_quality.append(
        _quality_row(
            name,
            model,
            d,
            "coverage",
            now,
            value=share,
            status="ok" if not lost else "incomplete",
            detail=f"{lost:,} of {population:,} without a prediction ({reasons})",
        )
    )
    deadline = _deadline(cfg, d)
    first = _aware(s.first_scored_at) if s is not None else None
    day.signals["predictions_missing"] = s is None
    if s is None:
        status, hours = "missing", None
    elif deadline is None:
        status, hours = "no deadline", None
    else:
        hours = (first - deadline).total_seconds() / 3600 if first else None
        status = "late" if hours is not None and hours > 0 else "on time"
    late = status in ("late", "missing") if deadline is not None else None
    day.signals["predictions_late"] = None if replay else late
    detail = f"first scored at {first:%Y-%m-%d %H:%M} UTC" if first else "no prediction"
    if deadline is not None:
        detail += f"; deadline {deadline:%Y-%m-%d %H:%M} UTC"
    if replay:
        detail += " (replay: lateness not signalled)"
    out.data_quality.append(_quality_row(name, model, d, "freshness", now, value=hours, status=status, detail=detail))


def _performance_rows(
    cfg: Any,
    out: tables.Rows,
    name: str,
    model: str,
    d: date,
    label_day: date,
    labelled: Mapping[tuple[date, str, int, str, str], compute.Labelled],
    serving: str,
    levels: Mapping[int, float],
    day: DayResult,
    now: datetime,
) -> None:
    perf = cfg.monitor.performance
    bins = int(perf.score_bins)
    threshold = float(perf.threshold)
    for m in ("roc_auc", "log_loss", "precision", "recall", "ece", "positive_rate"):
        day.signals[f"performance.{m}"] = None
    for (when, alias, version, slice_name, slice_value), cell in sorted(labelled.items(), key=lambda kv: str(kv[0])):
        if when != label_day:
            continue
        n = cell.rows
        pr = precision_recall_at(threshold, bins, cell.pos, cell.neg)
        metrics = {
            "roc_auc": auc_binned(cell.pos, cell.neg),
            "log_loss": log_loss_from_sum(cell.log_loss_sum, n),
            "precision": pr.precision,
            "recall": pr.recall,
            "ece": calibration_binned(cell.pos, cell.neg, cell.score_sums).ece,
            "positive_rate": float(cell.pos.sum() / n) if n else None,
        }
        if alias == serving and slice_name == compute.ALL:
            for m, v in metrics.items():
                day.signals[f"performance.{m}"] = v
        out.performance.append(
            {
                "monitor": name,
                "model": model,
                "run_date": d,
                "label_date": label_day,
                "model_alias": alias,
                "model_version": version,
                "slice": slice_name,
                "slice_value": slice_value,
                "rows": n,
                "positives": int(cell.pos.sum()),
                **{m: _finite(v) for m, v in metrics.items()},
                "mean_score": float(cell.score_sums.sum() / n) if n else None,
                "training_value": levels.get(version),
                "computed_at": now,
            }
        )


def _alerts(
    spark: Any,
    catalog: Catalog,
    cfg: Any,
    rules: Sequence[Any],
    channels: Sequence[Any],
    name: str,
    model: str,
    results: list[DayResult],
    out: tables.Rows,
    replay: bool,
    now: datetime,
) -> tuple[list[ChannelResult], list[date]]:
    """Evaluate the rules date by date over the recorded history plus this run's signals; notify; request retrains."""
    history = _signal_history(spark, catalog, name)
    for r in results:
        history[r.run_date] = r.signals
    this_run = {r.run_date for r in results}
    # Rows recorded by earlier runs, those of the dates recomputed now included: a re-run gives the
    # same episodes and ids (history decides) but notifies nobody a second time.
    known = _recorded_alerts(spark, catalog, name)
    notifications: list[ChannelResult] = []
    requests: list[date] = []
    last_request = _last_request(spark, catalog, name, min(this_run))
    cooldown = int(cfg.monitor.alerts.retrain.cooldown_days)
    project_root = Path(str(cfg.project_root))
    ordered = sorted(history.items())
    retrains = {rule.name: rule.retrain for rule in rules}
    for r in results:
        events = evaluate(rules, ordered, r.run_date, known)
        r.events = events
        known += [e.to_dict() for e in events]
        sent = send(channels, events, model=model, run_date=r.run_date, project_root=project_root)
        notifications += sent
        delivered = ", ".join(f"{c.kind}:{'ok' if c.ok else 'failed'}" for c in sent)
        for e in events:
            out.alerts.append(
                {
                    "monitor": name,
                    "model": model,
                    "run_date": r.run_date,
                    "rule": e.rule,
                    "signal": e.signal,
                    "status": e.status,
                    "episode_id": e.episode_id,
                    "episode_start": e.episode_start,
                    "value": None if e.value is None else float(e.value),
                    "threshold": float(e.threshold),
                    "severity": e.severity,
                    "message": e.message,
                    "notified": e.notify,
                    "channels": delivered if e.notify else None,
                    "retrain": e.retrain,
                    "computed_at": now,
                }
            )
        # A request belongs to the date its episode opened on, notified or not: a re-run recomputes the
        # same request (its partition is replaced), so none is lost and none is doubled.
        asking = [replace(e, retrain=True) for e in events if e.status == "opened" and retrains.get(e.rule)]
        request = retrain_request(asking, last_request, cooldown)
        if request is not None:
            r.retrain = True
            last_request = request.run_date
            requests.append(request.run_date)
            out.retrain.append(
                {
                    "monitor": name,
                    "model": model,
                    "run_date": request.run_date,
                    "rules": list(request.rules),
                    "episode_ids": list(request.episode_ids),
                    "reason": request.reason,
                    "replay": replay,
                    "requested_at": now,
                }
            )
            log.warning(
                "monitor %s: retrain of '%s' requested on %s: %s", name, model, request.run_date, request.reason
            )
        out.signals.append(
            {
                "monitor": name,
                "model": model,
                "run_date": r.run_date,
                "signals": json.dumps(r.signals, sort_keys=True),
                "replay": replay,
                "computed_at": now,
            }
        )
    return notifications, requests
