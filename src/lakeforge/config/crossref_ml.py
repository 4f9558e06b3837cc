"""Cross-reference checks for the pipeline, model, schedule and monitor groups."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any, TypeGuard

from lakeforge.config.crossref import (
    Report,
    _choice,
    _duration,
    _list,
    _ref,
    _set,
    _short,
    feature_names,
    label_is_not_a_feature,
)
from lakeforge.config.schema_ml import (
    ALERT_CHANNELS,
    DRIFT_METHOD_KINDS,
    DRIFT_METHODS,
    EXPORT_FORMATS,
    METRICS,
    MONITOR_METRICS,
    MONITOR_SIGNALS,
    REASON_METHODS,
    STEP_JOBS,
    STEPS,
)
from lakeforge.config.values import check_cron, check_time_of_day, parse_date, parse_duration
from lakeforge.errors import did_you_mean

STORAGE_KINDS = ("local", "s3", "gcs", "azure")
TASKS = ("classification", "regression")


def _date(report: Report, key: str, value: Any) -> None:
    """Report a value that is not an ISO date."""
    if _set(value):
        try:
            parse_date(value)
        except ValueError as exc:
            report(key, str(exc))


def _check_dates(node: dict[str, Any], base: str, report: Report) -> None:
    """run_date, start_date and end_date of ``node`` are ISO dates, the range in order."""
    for key in ("run_date", "start_date", "end_date"):
        _date(report, f"{base}{key}", node.get(key))
    first, last = node.get("start_date"), node.get("end_date")
    if _set(first) and _set(last) and str(first) > str(last):
        report(f"{base}end_date", f"end_date {last} is before start_date {first}")


def check_pipeline(cfg: dict[str, Any], report: Report) -> None:
    """The pipeline's references must all be composed, and run_date/storage must be valid."""
    pipe = cfg.get("pipeline") or {}
    datasets = list((cfg.get("dataset") or {}).keys())
    for i, name in enumerate(_list(pipe.get("datasets"))):
        _ref(
            report,
            f"pipeline.datasets[{i}]",
            name,
            datasets,
            "composed dataset",
            "this pipeline (add '- /dataset@dataset.<name>: <name>' to its defaults)",
        )
    for key, group in (("feature_set", "features"), ("model", "model"), ("monitor", "monitor")):
        want, node = pipe.get(key), cfg.get(group)
        have = node.get("name") if isinstance(node, dict) else None
        if _set(want) and want != have:
            state = f"the composed {group} is '{have}'" if _set(have) else f"no {group} config is composed"
            report(
                f"pipeline.{key}",
                f"'{want}' is not composed ({state}); add '- /{group}: {want}' to the pipeline's defaults list",
            )
    for i, name in enumerate(_list(pipe.get("schedules"))):
        _ref(
            report,
            f"pipeline.schedules[{i}]",
            name,
            list((cfg.get("schedule") or {}).keys()),
            "composed schedule",
            "this pipeline (add '- /schedule@schedule.<name>: <name>')",
        )
    _check_dates(cfg, "", report)
    for step, node in (pipe.get("repro") or {}).items():
        base = f"pipeline.repro.{step}"
        if step not in STEP_JOBS:
            report(base, f"unknown step '{step}'{did_you_mean(str(step), STEP_JOBS)} (steps: {', '.join(STEP_JOBS)})")
        dates = node if isinstance(node, dict) else {}
        if not _set(dates.get("run_date")) and not (_set(dates.get("start_date")) and _set(dates.get("end_date"))):
            report(base, "give a run_date, or a start_date and an end_date")
        _check_dates(dates, f"{base}.", report)
    _choice(report, "storage.kind", (cfg.get("storage") or {}).get("kind"), STORAGE_KINDS, "storage kind")


def _check_splits(splits: dict[str, Any], report: Report) -> None:
    """Split windows: signed offsets from run_date, each start < end, ordered, no overlap."""
    previous: tuple[str, int] | None = None
    for part in ("train", "validation", "test"):
        window = splits.get(part) or {}
        base = f"model.splits.{part}"
        start = _duration(report, f"{base}.start", window.get("start"), positive=False, signed=True)
        end = _duration(report, f"{base}.end", window.get("end"), positive=False, signed=True)
        if start is None or end is None:
            previous = None
            continue
        if start >= end:
            report(
                base,
                f"start {window.get('start')} must be before end {window.get('end')} (offsets from run_date)",
            )
        if end > 0:
            report(f"{base}.end", f"{window.get('end')} lies after run_date; offsets must be <= 0d")
        if previous is not None and start < previous[1]:
            report(
                f"{base}.start",
                f"{part} window starts at {window.get('start')}, before the {previous[0]} "
                "window ends: split windows must be ordered train, validation, test and not overlap",
            )
        previous = (part, end)


def check_model(cfg: dict[str, Any], report: Report) -> None:
    """Estimator, feature set and features, label, metrics, splits and gate."""
    model = cfg.get("model")
    if not isinstance(model, dict):
        return
    fs: dict[str, Any] = cfg["features"] if isinstance(cfg.get("features"), dict) else {}
    estimator = model.get("estimator")
    if isinstance(estimator, dict) and not _set(estimator.get("_target_")):
        report(
            "model.estimator._target_",
            "the estimator needs '_target_' (a class path, e.g. lightgbm.LGBMClassifier)",
        )
    fs_name = fs.get("name")
    if _set(model.get("feature_set")) and model.get("feature_set") != fs_name:
        report(
            "model.feature_set",
            f"feature set '{model.get('feature_set')}' is not composed "
            f"(composed: '{fs_name}'); add '- /features: {model.get('feature_set')}' to the pipeline",
        )
    else:
        defined = feature_names(fs)
        label: dict[str, Any] = fs["label"] if isinstance(fs.get("label"), dict) else {}
        for i, name in enumerate(_list(model.get("features"))):
            if _set(label.get("name")) and name == label.get("name"):
                report(f"model.features[{i}]", label_is_not_a_feature(name, fs_name))
            elif isinstance(name, str) and name not in defined:
                report(
                    f"model.features[{i}]",
                    f"'{name}' is not defined by feature set '{fs_name}'"
                    f"{did_you_mean(str(name), defined)} (defined: {_short(defined, 8)})",
                )
        if _set(model.get("label")) and model.get("label") != label.get("name"):
            report(
                "model.label",
                f"'{model.get('label')}' is not the label of feature set '{fs_name}' "
                f"(its label: '{label.get('name')}')",
            )
    _choice(report, "model.task", model.get("task"), TASKS, "task")
    metrics = _list(model.get("metrics"))
    for i, metric in enumerate(metrics):
        _choice(report, f"model.metrics[{i}]", metric, METRICS, "metric")
    if _set(model.get("primary_metric")) and model.get("primary_metric") not in metrics:
        report(
            "model.primary_metric",
            f"'{model.get('primary_metric')}' is not in model.metrics ({', '.join(map(str, metrics))})",
        )
    gate = model.get("gate") or {}
    for bound in ("min_metrics", "max_metrics"):
        for name in gate.get(bound) or {}:
            _choice(report, f"model.gate.{bound}.{name}", name, METRICS, "metric")
    columns = [str(c) for c in _list(fs.get("entity"))] + feature_names(fs)
    for group in ("slices", "fairness"):
        for i, check in enumerate(_list(gate.get(group))):
            if not isinstance(check, dict):
                continue
            key = f"model.gate.{group}[{i}]"
            column = check.get("column")
            if _set(column) and columns and column not in columns:
                report(
                    f"{key}.column",
                    f"'{column}' is neither an entity key nor a feature of '{fs.get('name')}'"
                    f"{did_you_mean(str(column), columns)}",
                )
            _choice(report, f"{key}.metric", check.get("metric"), METRICS, "metric")
    _check_splits(model.get("splits") or {}, report)
    limit = model.get("max_driver_mb")
    if isinstance(limit, int | float) and not isinstance(limit, bool) and limit <= 0:
        report("model.max_driver_mb", f"{limit} must be > 0 (MB of training data the driver may hold)")
    _check_scoring(model, report)


def _number(value: Any) -> TypeGuard[int | float]:
    """A number given in the config (not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_fraction(report: Report, key: str, value: Any, what: str, *, open_low: bool) -> None:
    """A fraction in (0, 1] (``open_low``) or [0, 1]."""
    if _number(value) and (value > 1 or value < 0 or (open_low and value == 0)):
        low = "0 <" if open_low else "0 <="
        report(key, f"{value} is not a fraction: {what} must be {low} x <= 1")


def _check_scoring(model: dict[str, Any], report: Report) -> None:
    """Aliases (serving, shadow, canary), reasons, required features and exports of model.scoring."""
    scoring = model.get("scoring")
    if not isinstance(scoring, dict):
        return
    key = "model.scoring"
    alias = scoring.get("alias")
    shadow = [str(a) for a in _list(scoring.get("shadow"))]
    for i, name in enumerate(shadow):
        if name == alias:
            report(f"{key}.shadow[{i}]", f"'{name}' is the serving alias; a shadow must be another alias")
        elif name in shadow[:i]:
            report(f"{key}.shadow[{i}]", f"'{name}' is listed twice")
    canary = scoring.get("canary")
    if isinstance(canary, dict):
        if _set(canary.get("alias")) and canary.get("alias") == alias:
            report(f"{key}.canary.alias", f"'{alias}' is the serving alias; the canary must be another alias")
        _check_fraction(report, f"{key}.canary.fraction", canary.get("fraction"), "the canary share", open_low=True)
        if _number(canary.get("fraction")) and canary.get("fraction") == 1:
            report(f"{key}.canary.fraction", f"1 serves the canary everywhere; promote it instead ({key}.alias)")
    threshold = scoring.get("threshold")
    if _number(threshold) and not 0 <= threshold <= 1:
        report(f"{key}.threshold", f"{threshold} must be within [0, 1] (a score is a probability)")
    reasons = scoring.get("reasons") or {}
    _choice(report, f"{key}.reasons.method", reasons.get("method"), REASON_METHODS, "reasons method")
    top_k = reasons.get("top_k")
    if _number(top_k) and top_k < 0:
        report(f"{key}.reasons.top_k", f"{top_k} must be >= 0 (0 writes no reasons)")
    _check_fraction(report, f"{key}.reasons.exact_fraction", reasons.get("exact_fraction"), "the share", open_low=False)
    features = [str(f) for f in _list(model.get("features"))]
    for i, name in enumerate(_list(scoring.get("required_features"))):
        if features and name not in features:
            report(
                f"{key}.required_features[{i}]",
                f"'{name}' is not a feature of model '{model.get('name')}'{did_you_mean(str(name), features)}",
            )
    for name in ("batch_rows", "threads_per_task"):
        value = scoring.get(name)
        if _number(value) and value < 1:
            report(f"{key}.{name}", f"{value} must be >= 1")
    for i, export in enumerate(_list(scoring.get("exports"))):
        if isinstance(export, dict):
            _check_export(report, f"{key}.exports[{i}]", export)


def _check_export(report: Report, key: str, export: dict[str, Any]) -> None:
    """Each format needs its location: a folder, or a JDBC url and table."""
    fmt = export.get("format")
    _choice(report, f"{key}.format", fmt, EXPORT_FORMATS, "export format")
    needed = ("url", "table") if fmt == "jdbc" else ("path",) if fmt in EXPORT_FORMATS else ()
    for name in needed:
        if not _set(export.get(name)):
            report(f"{key}.{name}", f"a {fmt} export needs '{name}'")


def check_schedules(cfg: dict[str, Any], report: Report) -> None:
    """Cron, dates, steps and retry timings of every schedule."""
    for name, sched in (cfg.get("schedule") or {}).items():
        base = f"schedule.{name}"
        if sched.get("cron") != "???":
            try:
                check_cron(sched.get("cron"))
            except ValueError as exc:
                report(f"{base}.cron", str(exc))
        _date(report, f"{base}.start_date", sched.get("start_date"))
        _date(report, f"{base}.end_date", sched.get("end_date"))
        if sched.get("steps") == []:
            report(f"{base}.steps", "a schedule needs at least one step")
        for i, step in enumerate(_list(sched.get("steps"))):
            _choice(report, f"{base}.steps[{i}]", step, STEPS, "step")
            if step in STEPS and step not in STEP_JOBS:
                report(f"{base}.steps[{i}]", f"step '{step}' has no job to run yet (jobs: {', '.join(STEP_JOBS)})")
        _duration(report, f"{base}.retry_delay", sched.get("retry_delay"))
        _duration(report, f"{base}.execution_timeout", sched.get("execution_timeout"))
        if isinstance(sched.get("retries"), int) and sched["retries"] < 0:
            report(f"{base}.retries", "retries must be >= 0")


def check_monitor(cfg: dict[str, Any], report: Report) -> None:
    """Monitored model, reference window, drift rules and deadlines."""
    mon = cfg.get("monitor")
    if not isinstance(mon, dict):
        return
    model: dict[str, Any] = cfg["model"] if isinstance(cfg.get("model"), dict) else {}
    if _set(mon.get("model")) and mon.get("model") != model.get("name"):
        report("monitor.model", f"model '{mon.get('model')}' is not composed (composed: '{model.get('name')}')")
    fs: dict[str, Any] = cfg["features"] if isinstance(cfg.get("features"), dict) else {}
    defined = feature_names(fs)
    for i, name in enumerate(_list(mon.get("features"))):
        _ref(report, f"monitor.features[{i}]", name, defined, "feature", f"feature set '{fs.get('name')}'")
    ref = mon.get("reference") or {}
    _choice(report, "monitor.reference.kind", ref.get("kind"), ("training", "dates"), "reference kind")
    if ref.get("kind") == "dates":
        _reference_dates(ref, report)
    _duration(report, "monitor.current_window", mon.get("current_window"))
    drift = mon.get("drift") or {}
    for kind in ("numeric", "categorical", "prediction"):
        rule = drift.get(kind) or {}
        method = rule.get("method")
        _choice(report, f"monitor.drift.{kind}.method", method, DRIFT_METHODS, "drift method")
        applies = "numeric" if kind == "prediction" else kind
        if method in DRIFT_METHOD_KINDS and applies not in DRIFT_METHOD_KINDS[method]:
            fitting = [m for m, kinds in DRIFT_METHOD_KINDS.items() if applies in kinds]
            report(
                f"monitor.drift.{kind}.method",
                f"'{method}' does not apply to {applies} values; use one of {', '.join(fitting)}",
            )
        threshold = rule.get("threshold")
        if isinstance(threshold, (int, float)) and threshold <= 0:
            report(f"monitor.drift.{kind}.threshold", f"threshold must be > 0, got {threshold}")
    for key, low in (("bins", 2), ("top_k", 1)):
        value = drift.get(key)
        if isinstance(value, int) and value < low:
            report(f"monitor.drift.{key}", f"must be at least {low}, got {value}")
    perf = mon.get("performance") or {}
    _choice(report, "monitor.performance.metric", perf.get("metric"), MONITOR_METRICS, "monitor metric")
    threshold = perf.get("threshold")
    if isinstance(threshold, (int, float)) and not 0 < threshold < 1:
        report("monitor.performance.threshold", f"must be a score strictly between 0 and 1, got {threshold}")
    bins = perf.get("score_bins")
    if isinstance(bins, int) and bins < 2:
        report("monitor.performance.score_bins", f"must be at least 2, got {bins}")
    columns = [str(k) for k in _list(fs.get("entity"))] + defined
    for i, name in enumerate(_list(perf.get("slices"))):
        where = f"feature set '{fs.get('name')}'"
        _ref(report, f"monitor.performance.slices[{i}]", name, columns, "key or feature", where)
    _check_alerts(mon.get("alerts") or {}, report)
    deadlines = mon.get("deadlines") or {}
    if _set(deadlines.get("predictions_by")):
        try:
            check_time_of_day(deadlines["predictions_by"])
        except ValueError as exc:
            report("monitor.deadlines.predictions_by", str(exc))
    for key in ("max_feature_staleness", "labels_within"):
        _duration(report, f"monitor.deadlines.{key}", deadlines.get(key))


def _reference_dates(ref: dict[str, Any], report: Report) -> None:
    """A fixed reference window: both dates set, ISO, in order."""
    parsed = []
    for key in ("start_date", "end_date"):
        value = ref.get(key)
        if not _set(value):
            report(f"monitor.reference.{key}", "reference kind 'dates' needs start_date and end_date (YYYY-MM-DD)")
            continue
        try:
            parsed.append(date.fromisoformat(str(value)))
        except ValueError:
            report(f"monitor.reference.{key}", f"'{value}' is not a date; write YYYY-MM-DD")
    if len(parsed) == 2 and parsed[1] < parsed[0]:
        report("monitor.reference.end_date", f"end_date {parsed[1]} is before start_date {parsed[0]}")


def _check_alerts(alerts: Any, report: Report) -> None:
    """Alert rules name known signals with one threshold; channels are known kinds (the monitor job
    checks every channel option when it starts: lakeforge.monitoring.channels)."""
    if not isinstance(alerts, dict):
        report("monitor.alerts", "must be a mapping with rules, channels and retrain (e.g. rules: [], channels: [log])")
        return
    for i, rule in enumerate(_list(alerts.get("rules"))):
        key = f"monitor.alerts.rules[{i}]"
        if not isinstance(rule, dict):
            report(key, "must be a mapping with name, signal and one of above, below or when_true")
            continue
        if not _set(rule.get("name")):
            report(f"{key}.name", "every rule needs a name")
        signal = rule.get("signal")
        _choice(report, f"{key}.signal", signal, MONITOR_SIGNALS, "signal")
        given = [k for k in ("above", "below", "when_true") if rule.get(k) not in (None, False)]
        if len(given) != 1:
            report(key, f"needs exactly one of above, below or when_true (got {', '.join(given) or 'none'})")
    for i, channel in enumerate(_list(alerts.get("channels"))):
        kind = channel if isinstance(channel, str) else channel.get("kind") if isinstance(channel, dict) else None
        _choice(report, f"monitor.alerts.channels[{i}]", kind, ALERT_CHANNELS, "alert channel")
    cooldown = (alerts.get("retrain") or {}).get("cooldown_days")
    if isinstance(cooldown, int) and cooldown < 0:
        report("monitor.alerts.retrain.cooldown_days", f"must be >= 0, got {cooldown}")


def check_references(cfg: dict[str, Any], report: Report, project_root: Path | None = None) -> None:
    """Run every cross-reference check on a plain (unresolved) config.

    ``project_root`` (the folder holding conf/) lets the feature checks find the transforms
    declared in ``features/*.py``; without it transform names are not checked.
    """
    from lakeforge.config.crossref import check_datasets, check_features

    check_pipeline(cfg, report)
    check_datasets(cfg, report)
    check_features(cfg, report, project_root)
    check_model(cfg, report)
    check_schedules(cfg, report)
    check_monitor(cfg, report)


__all__ = ["check_references", "parse_duration"]
