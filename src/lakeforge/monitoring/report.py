"""``lakeforge report MODEL``: the monitor's tables as one self-contained HTML page.

Read with delta-rs (no JVM), drawn as inline SVG (no JavaScript, no CDN: the page opens
offline, from a file or an e-mail attachment). Sections: open alerts and retrain requests;
drift share and score drift over time; drift per feature over time (a heat map, each cell the
statistic relative to its threshold); the score distribution over time (a heat map per
alias); performance over time with the model's training-time level; coverage and freshness.
Every label comes from table data and is escaped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from html import escape
from pathlib import Path
from typing import Any

from lakeforge.data.profile_svg import fmt
from lakeforge.errors import TableError
from lakeforge.lake.catalog import Catalog
from lakeforge.lake.delta_read import arrow_dataset
from lakeforge.monitoring import tables

LINE_COLORS = ("#4c78a8", "#f58518", "#54a24b", "#b279a2", "#9d755d")
LEVEL = "#888"
HOT = (0xD6, 0x27, 0x28)  # drifted
COOL = (0xF4, 0xF6, 0xF8)  # no drift
SCORE_RGB = (0x4C, 0x78, 0xA8)
WIDTH, HEIGHT, PAD = 760, 220, 44


@dataclass(frozen=True)
class ReportData:
    """The monitor's rows of one model, as plain records sorted by run date."""

    model: str
    monitors: list[str]
    signals: list[dict[str, Any]]
    feature_drift: list[dict[str, Any]]
    prediction_drift: list[dict[str, Any]]
    data_quality: list[dict[str, Any]]
    performance: list[dict[str, Any]]
    alerts: list[dict[str, Any]]
    retrain: list[dict[str, Any]]


def _records(catalog: Catalog, table: str, model: str) -> list[dict[str, Any]]:
    if not catalog.exists(table):
        return []
    import pyarrow.dataset as ds

    rows = arrow_dataset(catalog, table).to_table(filter=ds.field("model") == model).to_pylist()
    return sorted(rows, key=lambda r: (str(r["run_date"]), str(r.get("monitor"))))


def load_report(catalog: Catalog, model: str) -> ReportData:
    """Every monitoring row of ``model``; TableError when the monitor never ran for it."""
    signals = _records(catalog, tables.SIGNALS, model)
    if not signals:
        raise TableError(
            f"no monitoring results for model '{model}' in {tables.SIGNALS}; run the monitor first: "
            "`lakeforge run monitor run_date=YYYY-MM-DD` (or `dvc repro monitor`)"
        )
    return ReportData(
        model,
        sorted({str(r["monitor"]) for r in signals}),
        signals,
        _records(catalog, tables.FEATURE_DRIFT, model),
        _records(catalog, tables.PREDICTION_DRIFT, model),
        _records(catalog, tables.DATA_QUALITY, model),
        _records(catalog, tables.PERFORMANCE, model),
        _records(catalog, tables.ALERTS, model),
        _records(catalog, tables.RETRAIN, model),
    )


# --- SVG pieces ---


def _x(i: int, n: int) -> float:
    return PAD + (WIDTH - 2 * PAD) * (i / max(n - 1, 1))


def _y(value: float, low: float, high: float) -> float:
    return HEIGHT - PAD + (value - low) / (high - low or 1.0) * (2 * PAD - HEIGHT)


def line_chart(
    name: str,
    dates: Sequence[str],
    series: dict[str, list[float | None]],
    *,
    level: float | None = None,
    level_label: str = "",
) -> str:
    """Lines over the dates (gaps where a value is None), an optional dashed level, axis labels."""
    values = [v for s in series.values() for v in s if v is not None]
    if level is not None:
        values.append(level)
    if not values or not dates:
        return f'<p class="lf-note">no values for {escape(name)} yet</p>'
    low, high = min(0.0, *values), max(values) * 1.05 or 1.0
    parts = [
        f'<svg class="lf-plot lf-line" data-plot="{escape(name)}" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(name)} over time">',
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" stroke="#888"/>',
        f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{HEIGHT - PAD}" stroke="#888"/>',
        f'<text x="{PAD - 4}" y="{PAD + 4}" text-anchor="end" font-size="11">{escape(fmt(high))}</text>',
        f'<text x="{PAD - 4}" y="{HEIGHT - PAD}" text-anchor="end" font-size="11">{escape(fmt(low))}</text>',
        f'<text x="{PAD}" y="{HEIGHT - PAD + 16}" font-size="11">{escape(dates[0])}</text>',
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - PAD + 16}" text-anchor="end" font-size="11">{escape(dates[-1])}</text>',
    ]
    if level is not None:
        y = _y(level, low, high)
        parts.append(
            f'<line class="lf-level" x1="{PAD}" y1="{y:.1f}" x2="{WIDTH - PAD}" y2="{y:.1f}" stroke="{LEVEL}" '
            f'stroke-dasharray="6 4"><title>{escape(level_label)} {escape(fmt(level))}</title></line>'
        )
    for k, (label, points) in enumerate(series.items()):
        color = LINE_COLORS[k % len(LINE_COLORS)]
        runs: list[list[str]] = [[]]
        for i, v in enumerate(points):
            if v is None:
                runs.append([])
            else:
                runs[-1].append(f"{_x(i, len(dates)):.1f},{_y(v, low, high):.1f}")
        for run in runs:
            if len(run) > 1:
                parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{" ".join(run)}"/>')
            elif run:
                cx, cy = run[0].split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{color}"/>')
        parts.append(
            f'<text x="{WIDTH - PAD}" y="{14 + 14 * k}" text-anchor="end" font-size="11" fill="{color}">'
            f"{escape(label)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _mix(share: float, hot: tuple[int, int, int] = HOT) -> str:
    s = min(max(share, 0.0), 1.0)
    r, g, b = (round(c0 + (c1 - c0) * s) for c0, c1 in zip(COOL, hot, strict=True))
    return f"#{r:02x}{g:02x}{b:02x}"


def heatmap(
    name: str,
    rows: Sequence[str],
    dates: Sequence[str],
    cells: dict[tuple[str, str], tuple[float, str]],
    hot: tuple[int, int, int] = HOT,
) -> str:
    """One row per label, one column per date; each cell shaded by its share in [0, 1], titled."""
    if not rows or not dates:
        return f'<p class="lf-note">no values for {escape(name)} yet</p>'
    label_w, cell_h = 170, 14
    cell_w = max(3.0, (WIDTH - label_w - 10) / len(dates))
    height = cell_h * len(rows) + 30
    parts = [
        f'<svg class="lf-plot lf-heat" data-plot="{escape(name)}" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(name)}">'
    ]
    for r, label in enumerate(rows):
        y = r * cell_h
        parts.append(f'<text x="{label_w - 6}" y="{y + 11}" text-anchor="end" font-size="11">{escape(label)}</text>')
        for c, day in enumerate(dates):
            cell = cells.get((label, day))
            if cell is None:
                continue
            share, tip = cell
            parts.append(
                f'<rect x="{label_w + c * cell_w:.1f}" y="{y}" width="{cell_w:.1f}" height="{cell_h - 1}" '
                f'fill="{_mix(share, hot)}"><title>{escape(tip)}</title></rect>'
            )
    bottom = cell_h * len(rows) + 14
    parts.append(f'<text x="{label_w}" y="{bottom}" font-size="11">{escape(dates[0])}</text>')
    parts.append(f'<text x="{WIDTH - 10}" y="{bottom}" text-anchor="end" font-size="11">{escape(dates[-1])}</text>')
    parts.append("</svg>")
    return "".join(parts)


# --- sections ---

_STYLE = """
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; margin: 24px; max-width: 820px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border-bottom: 1px solid #e3e3e3; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f4f6f8; }
.lf-note { color: #777; font-size: 12px; }
.lf-critical { color: #b00; font-weight: 600; } .lf-warning { color: #a60; } .lf-info { color: #555; }
"""


def _day(value: Any) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _open_alerts(data: ReportData) -> str:
    latest: dict[str, dict[str, Any]] = {}
    for row in data.alerts:
        latest[row["episode_id"]] = row
    still = [r for r in latest.values() if r["status"] != "resolved"]
    last_day = max((_day(r["run_date"]) for r in data.signals), default=None)
    still = [r for r in still if _day(r["run_date"]) == last_day]
    if not still:
        return '<p class="lf-note">no alert open on the last run date</p>'
    rows = [
        (
            f'<span class="lf-{escape(str(r["severity"]))}">{escape(str(r["severity"]))}</span>',
            escape(str(r["rule"])),
            escape(_day(r["episode_start"])),
            escape(str(r["message"])),
        )
        for r in sorted(still, key=lambda r: str(r["episode_start"]))
    ]
    return _table(["severity", "rule", "since", "message"], rows)


def _retrain(data: ReportData) -> str:
    if not data.retrain:
        return '<p class="lf-note">no retrain requested</p>'
    rows = [
        (
            escape(_day(r["run_date"])),
            escape(", ".join(r["rules"] or [])),
            escape(str(r["reason"])),
            "yes" if r["replay"] else "no",
        )
        for r in data.retrain
    ]
    return _table(["run date", "rules", "reason", "replay"], rows)


def _signal_series(data: ReportData, dates: list[str], key: str) -> list[float | None]:
    by_day = {_day(r["run_date"]): json.loads(r["signals"]) for r in data.signals}
    out: list[float | None] = []
    for d in dates:
        v = by_day.get(d, {}).get(key)
        out.append(float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None)
    return out


def _drift_heat(data: ReportData, dates: list[str]) -> str:
    features = sorted({str(r["feature"]) for r in data.feature_drift})
    cells = {}
    for r in data.feature_drift:
        if r["value"] is None:
            continue
        method, threshold = str(r["method"]), float(r["threshold"])
        if r["p_value"] is not None and method in ("ks", "chi2"):
            share = 1.0 if r["drifted"] else min(threshold / max(float(r["p_value"]), 1e-12), 1.0) * 0.5
            p = float(r["p_value"])
            tip = f"{r['feature']} {_day(r['run_date'])}: {method} p={p:.3g} (drift below {threshold:g})"
        else:
            share = min(float(r["value"]) / threshold, 2.0) / 2.0
            tip = f"{r['feature']} {_day(r['run_date'])}: {method} {float(r['value']):.3g} (drift above {threshold:g})"
        cells[(str(r["feature"]), _day(r["run_date"]))] = (share, tip)
    return heatmap("feature drift", features, dates, cells)


def _score_heat(data: ReportData, dates: list[str]) -> str:
    parts = []
    for alias in sorted({str(r["model_alias"]) for r in data.prediction_drift}):
        rows = [r for r in data.prediction_drift if r["model_alias"] == alias]
        n_bins = max((len(r["counts"] or []) for r in rows), default=0) - 2
        if n_bins < 1:
            continue
        labels = [f"{alias} {(i + 1) / n_bins:.2f}" for i in reversed(range(n_bins))]
        cells = {}
        for r in rows:
            inner = (r["counts"] or [])[1:-1]
            total = sum(inner) or 1.0
            peak = max(inner) / total if inner else 1.0
            for i, c in enumerate(inner):
                cells[(labels[n_bins - 1 - i], _day(r["run_date"]))] = (
                    (c / total) / (peak or 1.0),
                    f"{alias} {_day(r['run_date'])}: {c / total:.1%} of scores in "
                    f"[{i / n_bins:.2f}, {(i + 1) / n_bins:.2f})",
                )
        parts.append(heatmap(f"scores {alias}", labels, dates, cells, SCORE_RGB))
    return "".join(parts) or '<p class="lf-note">no predictions monitored yet</p>'


def _performance(data: ReportData, dates: list[str]) -> str:
    overall = [r for r in data.performance if r["slice"] == "all"]
    aliases = sorted({str(r["model_alias"]) for r in overall})
    series = {}
    for alias in aliases:
        by_day = {_day(r["run_date"]): r["roc_auc"] for r in overall if r["model_alias"] == alias}
        series[f"AUC {alias}"] = [by_day.get(d) for d in dates]
    levels = [r["training_value"] for r in overall if r["training_value"] is not None]
    level = levels[-1] if levels else None
    chart = line_chart("performance", dates, series, level=level, level_label="test AUC at training")
    note = (
        f'<p class="lf-note">dashed: the served model\'s test AUC at training ({fmt(level)}); each date shows the '
        "predictions of its label date (run date minus the label delay)</p>"
    )
    return chart + note


def _coverage(data: ReportData) -> str:
    by_day: dict[str, dict[str, dict[str, Any]]] = {}
    for r in data.data_quality:
        if r["check"] in ("coverage", "freshness", "volume"):
            by_day.setdefault(_day(r["run_date"]), {})[str(r["check"])] = r
    rows = []
    for d, checks in sorted(by_day.items()):
        cov, fresh, vol = checks.get("coverage", {}), checks.get("freshness", {}), checks.get("volume", {})
        share = cov.get("value")
        rows.append(
            (
                escape(d),
                escape(fmt(vol.get("value"))),
                escape("—" if share is None else f"{share:.1%}"),
                escape(str(fresh.get("status") or "—")),
                escape(str(cov.get("detail") or "")),
            )
        )
    return _table(["run date", "rows per day", "without prediction", "freshness", "coverage"], rows)


def render_report_html(data: ReportData) -> str:
    """The whole page."""
    dates = sorted({_day(r["run_date"]) for r in data.signals})
    refs = sorted({str(r["reference_id"]) for r in data.feature_drift})
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    drift_lines = {
        "share of drifted features": _signal_series(data, dates, "drift_share"),
        "score drift (serving)": _signal_series(data, dates, "prediction_drift"),
    }
    quality = {
        "without prediction": _signal_series(data, dates, "missing_share"),
        "null share increase": _signal_series(data, dates, "null_share_increase"),
    }
    volume = {"volume / reference": _signal_series(data, dates, "volume_ratio")}
    body = [
        f"<h1>Monitoring report: {escape(data.model)}</h1>",
        f'<p class="lf-note">monitor {escape(", ".join(data.monitors))}; run dates {escape(dates[0])} to '
        f"{escape(dates[-1])} ({len(dates)}); reference {escape(', '.join(refs) or '—')}; generated {generated}</p>",
        "<h2>Open alerts</h2>",
        _open_alerts(data),
        "<h2>Retrain requests</h2>",
        _retrain(data),
        "<h2>Drift over time</h2>",
        line_chart("drift", dates, drift_lines),
        "<h2>Drift per feature</h2>",
        '<p class="lf-note">each cell: the statistic against its threshold (darker: more drift; full red: drifted)</p>',
        _drift_heat(data, dates),
        "<h2>Score distribution over time</h2>",
        _score_heat(data, dates),
        "<h2>Performance over time</h2>",
        _performance(data, dates),
        "<h2>Data quality, coverage and freshness</h2>",
        line_chart("quality", dates, quality),
        line_chart("volume", dates, volume, level=1.0, level_label="the reference's rows per day"),
        _coverage(data),
    ]
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>lakeforge monitoring: {escape(data.model)}</title><style>{_STYLE}</style></head><body>"
        + "\n".join(body)
        + "</body></html>\n"
    )


def write_report(catalog: Catalog, model: str, out: Path) -> tuple[Path, ReportData]:
    """Render the report of ``model`` to ``out`` (folders created)."""
    data = load_report(catalog, model)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_report_html(data), encoding="utf-8")
    return out, data
