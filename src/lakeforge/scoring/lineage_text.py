"""Rendering of a `lakeforge lineage` report: text for a person, JSON for tools, and the no-match message.

The report itself is gathered by :func:`lakeforge.scoring.lineage.prediction_lineage`.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, date, datetime
from typing import Any

from lakeforge.scoring.lineage import CommitLineage, LineageGroup, LineageReport, ModelInfo, TrainingRun


def no_match_message(report: LineageReport) -> str:
    """What to say when no row matched."""
    where = f' match --where "{report.where}"' if report.where else " exist"
    return f"no rows of '{report.table}' (version {report.table_version}){where}"


def render_json(report: LineageReport) -> str:
    """The report as one JSON document (dates and times in ISO 8601)."""
    data = {"table": report.table, "table_version": report.table_version, "where": report.where or None}
    data["rows"] = report.rows
    data["lineages"] = [asdict(group) for group in report.lineages]
    return json.dumps(data, indent=2, default=_iso, ensure_ascii=False) + "\n"


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, date | datetime) else str(value)


def render_text(report: LineageReport) -> str:
    """The report for a person: a heading, then one block per lineage (a training run or feature commit
    already shown is referred back to, not repeated)."""
    count = len(report.lineages)
    where = f" where {report.where}" if report.where else ""
    lines = [
        f"{report.table} (version {report.table_version}){where}: {report.rows:,} row{'s' * (report.rows != 1)} "
        f"in {count} lineage{'s' * (count != 1)}"
    ]
    shown: dict[str, int] = {}
    for number, group in enumerate(report.lineages, start=1):
        lines += ["", f"lineage {number} of {count}: {_rows_line(group)}"]
        lines += _model_lines(group.model)
        run = group.training_run
        if run.run_id in shown:
            lines.append(_pair("training run", f"{run.run_id}, as in lineage {shown[run.run_id]}"))
        else:
            shown[run.run_id] = number
            lines += _run_lines(run)
        feature = group.feature_table
        key = f"{feature.table}@{feature.versions}"
        if key in shown:
            lines.append(_pair("feature table", f"{_versions(feature)}, as in lineage {shown[key]}"))
        else:
            shown[key] = number
            lines += _commit_lines("feature table", feature, _versions(feature))
        scoring = group.scoring_job
        wrote = f" wrote {_versions(scoring)}" if scoring.versions else ""
        lines += _commit_lines("scoring job", scoring, f"{scoring.job_run_id}{wrote}")
    return "\n".join(lines) + "\n"


def _pair(key: str, value: str, indent: int = 2) -> str:
    return f"{' ' * indent}{key:<{18 - indent}}{value}"


def _rows_line(group: LineageGroup) -> str:
    dates = group.run_dates
    if not dates:
        when = "no run_date"
    elif len(dates) == 1:
        when = f"run_date {dates[0]}"
    else:
        when = f"run_date {dates[0]}..{dates[-1]} ({len(dates)} dates)"
    text = f"{group.rows:,} row{'s' * (group.rows != 1)}, {when}"
    first, last = group.first_scored_at, group.last_scored_at
    if first is not None:
        text += f", scored {_time(first)}" + (f"..{_time(last)}" if last is not None and last != first else "")
    return text


def _time(value: datetime, minutes: bool = False) -> str:
    utc = value.astimezone(UTC) if value.tzinfo else value
    return f"{utc:%Y-%m-%d %H:%M}" + ("" if minutes else f":{utc:%S}") + " UTC"


def _code(commit: str | None, dirty: bool | None) -> str:
    if commit is None:
        return "unknown (not a git checkout)"
    return f"{commit[:12]} ({ {True: 'dirty', False: 'clean'}.get(dirty, 'state unknown') })"  # type: ignore[arg-type]


def _tables(inputs: dict[str, Any]) -> str:
    return ", ".join(f"{table} v{version}" for table, version in sorted(inputs.items())) or "none recorded"


def _model_lines(model: ModelInfo) -> list[str]:
    text = f"{model.name} v{model.version}"
    text += f", scored as '{model.alias}'" if model.alias else ""
    if model.note:
        return [_pair("model", f"{text}; {model.note}")]
    text += f" (now: {', '.join(model.aliases_now)})" if model.aliases_now else " (no alias now)"
    return [_pair("model", text + f"; gate: {model.gate or 'not evaluated'}")]


def _run_lines(run: TrainingRun) -> list[str]:
    if not run.found:
        return [_pair("training run", f"{run.run_id}: {run.note}")]
    started = f", started {_time(run.started, minutes=True)}" if run.started else ""
    lines = [_pair("training run", f"{run.run_id} '{run.run_name}'{started}, run_date {run.run_date or '-'}")]
    metrics = [
        f"{k.removeprefix('test.')} {v:,.0f}" if k == "test.rows" else f"{k.removeprefix('test.')} {v:.4f}"
        for k, v in run.metrics.items()
    ]
    if metrics and run.primary_metric and next(iter(run.metrics)) == f"test.{run.primary_metric}":
        metrics[0] += " (primary)"
    lines.append(_pair("test metrics", ", ".join(metrics) or "none logged"))
    lines.append(_pair("training data", _tables(run.inputs)))
    for i, dataset in enumerate(run.datasets):
        if dataset["source_type"] == "delta_table" and dataset["rows"] is None:
            text = f"{dataset['name']}: {dataset['path']} v{dataset['version']}"
        else:
            rows = f"{dataset['rows']:,} rows, " if dataset["rows"] is not None else ""
            text = f"{dataset['name']}: {rows}digest {dataset['digest']}"
        lines.append(_pair("datasets" if i == 0 else "", f"{text} ({dataset['context'] or 'no context'})"))
    dvc = [f"{path} {md5}" for path, md5 in run.dvc.items()] or ["not recorded"]
    lines += [_pair("raw data (dvc)" if i == 0 else "", text) for i, text in enumerate(dvc)]
    lines.append(_pair("training code", _code(run.git_commit, run.git_dirty)))
    lines.append(_pair("config", f"hash {run.config_hash or '-'}, {run.config_uri or run.note}"))
    if run.config is not None:
        lines += [f"    {line}".rstrip() for line in run.config.splitlines()]
    return lines


def _versions(commit: CommitLineage) -> str:
    return f"{commit.table} " + (", ".join(f"v{v}" for v in commit.versions) or "(no version)")


def _commit_lines(key: str, commit: CommitLineage, heading: str) -> list[str]:
    if commit.note:
        return [_pair(key, f"{heading}: {commit.note}")]
    job = f"job {commit.job_run_id}, " if key != "scoring job" else ""
    text = f"{heading}: {job}step {commit.step or '-'}, code {_code(commit.git_commit, commit.git_dirty)}"
    text += f", config hash {commit.config_hash or '-'}"
    return [_pair(key, text), _pair("read", _tables(commit.inputs), indent=4)]
