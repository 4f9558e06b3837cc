"""The profile as one self-contained HTML page: summary, column table, inline SVG plots.

No scripts, stylesheets, fonts or images are loaded from anywhere, so the page opens offline.
All table-derived text is escaped: column names and values are untrusted.
"""

from __future__ import annotations

from html import escape
from typing import Any

from lakeforge.data.profile_svg import fmt, histogram_svg, top_values_svg

_STYLE = """
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; margin: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
h3 { font-size: 15px; margin: 0 0 6px; } h3 small { color: #777; font-weight: normal; }
.lf-summary { display: flex; gap: 28px; flex-wrap: wrap; margin: 12px 0; }
.lf-summary div { background: #f4f6f8; padding: 8px 14px; border-radius: 6px; }
.lf-summary b { display: block; font-size: 18px; }
table.lf-columns { border-collapse: collapse; font-size: 13px; }
table.lf-columns th, table.lf-columns td { border-bottom: 1px solid #e3e3e3; padding: 4px 10px; text-align: right; }
table.lf-columns th:nth-child(-n+2), table.lf-columns td:first-child,
table.lf-columns td.lf-type { text-align: left; }
table.lf-columns th { background: #f4f6f8; }
.lf-grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap: 16px; }
.lf-col { border: 1px solid #e3e3e3; border-radius: 6px; padding: 12px; }
.lf-col dl { display: grid; grid-template-columns: auto 1fr auto 1fr; gap: 2px 10px; font-size: 12px; margin: 0 0 8px; }
.lf-col dt { color: #777; } .lf-col dd { margin: 0; }
.lf-note { color: #777; font-size: 12px; }
"""


def _cell(value: Any) -> str:
    return f"<td>{escape(fmt(value))}</td>"


def _share(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def _columns_table(columns: list[dict[str, Any]], with_target: bool) -> str:
    head = ["column", "type", "non-null", "nulls", "missing", "distinct ≈", "min", "max", "mean"]
    if with_target:
        head.append("corr. with target")
    rows = ["<table class='lf-columns'><thead><tr>", *(f"<th>{escape(h)}</th>" for h in head), "</tr></thead><tbody>"]
    for i, col in enumerate(columns):
        rows.append(f"<tr><td><a href='#col-{i}'>{escape(col['name'])}</a></td>")
        rows.append(f"<td class='lf-type'>{escape(col['type'])}</td>")
        rows += [_cell(col["count"]), _cell(col["nulls"]), f"<td>{_share(col['missing_share'])}</td>"]
        rows += [_cell(col.get("distinct_approx")), _cell(col.get("min")), _cell(col.get("max"))]
        rows.append(_cell(col.get("mean")))
        if with_target:
            rows.append(_cell(col.get("target_corr")))
        rows.append("</tr>")
    rows.append("</tbody></table>")
    return "".join(rows)


def _facts(col: dict[str, Any]) -> str:
    """The column's figures as a definition list (quantiles included)."""
    facts: list[tuple[str, Any]] = [("non-null", col["count"]), ("missing", _share(col["missing_share"]))]
    if "nans" in col:
        facts.append(("of which NaN", col["nans"]))
    facts.append(("distinct ≈", col.get("distinct_approx")))
    for key in ("min", "max", "mean", "stddev", "target_corr"):
        if key in col:
            facts.append(("corr. with target" if key == "target_corr" else key, col[key]))
    for q, v in (col.get("quantiles") or {}).items():
        facts.append((f"p{round(float(q) * 100)}", v))
    return "<dl>" + "".join(f"<dt>{escape(k)}</dt><dd>{escape(fmt(v))}</dd>" for k, v in facts) + "</dl>"


def _histogram_plot(col: dict[str, Any]) -> str:
    hist = col["histogram"]
    counts: list[int] = hist["counts"]
    means = hist.get("target_mean")
    if "edges" in hist:
        edges = hist["edges"]
        if hist.get("per_value"):
            tips = [fmt(edges[i]) for i in range(len(counts))]
            low, high = tips[0], tips[-1]
        else:
            # numpy.histogram's convention: half-open bins, the last one closed.
            tips = [f"[{fmt(edges[i])}, {fmt(edges[i + 1])})" for i in range(len(counts))]
            tips[-1] = tips[-1][:-1] + "]"
            low, high = fmt(edges[0]), fmt(edges[-1])
    else:
        tips = list(hist["labels"])
        low, high = tips[0], tips[-1]
    if means:
        tips = [f"{tip} (target mean {fmt(m)})" for tip, m in zip(tips, means, strict=True)]
    return histogram_svg(col["name"], counts, tips, low, high)


def _top_plot(col: dict[str, Any]) -> str:
    items = []
    for top in col["top_values"]:
        tip = f"{top['value']}: {top['count']:,} ({_share(top['share'])})"
        if "target_mean" in top:
            tip += f", target mean {fmt(top['target_mean'])}"
        items.append((str(top["value"]), int(top["count"]), tip))
    return top_values_svg(col["name"], items)


def _column_section(i: int, col: dict[str, Any]) -> str:
    parts = [
        f"<section class='lf-col' id='col-{i}'><h3>{escape(col['name'])} <small>{escape(col['type'])}</small></h3>",
        _facts(col),
    ]
    if col.get("histogram") and sum(col["histogram"]["counts"]):
        unit = col["histogram"].get("unit")
        parts.append(f"<div class='lf-note'>rows per {escape(unit)}</div>" if unit else "")
        parts.append(_histogram_plot(col))
    elif col.get("top_values"):
        parts.append(f"<div class='lf-note'>top {len(col['top_values'])} values</div>")
        parts.append(_top_plot(col))
    elif col.get("top_values_skipped"):
        parts.append(f"<div class='lf-note'>no top values: {escape(col['top_values_skipped'])}</div>")
    parts.append("</section>")
    return "".join(parts)


def render_profile_html(data: dict[str, Any]) -> str:
    """The whole page for a profile dict as written by ``profile_table``."""
    table = escape(data["table"])
    columns: list[dict[str, Any]] = data["columns"]
    with_target = data.get("target") is not None
    summary = [
        ("rows", fmt(data["rows"])),
        ("columns", fmt(data["column_count"])),
        ("version", fmt(data["version"])),
        ("generated at", data["generated_at"]),
    ]
    if with_target:
        summary.append(("target", data["target"]))
    methods = "; ".join(f"{k}: {v}" for k, v in data.get("methods", {}).items())
    return "".join(
        [
            "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
            f"<title>Profile of {table}</title><style>{_STYLE}</style></head><body>",
            f"<h1>Profile of {table}</h1>",
            "<div class='lf-summary'>",
            *(f"<div>{escape(k)}<b>{escape(str(v))}</b></div>" for k, v in summary),
            "</div>",
            f"<p class='lf-note'>{escape(methods)}</p>",
            "<h2>Columns</h2>",
            _columns_table(columns, with_target),
            "<h2>Distributions</h2><div class='lf-grid'>",
            *(_column_section(i, col) for i, col in enumerate(columns)),
            "</div></body></html>\n",
        ]
    )
