"""Small inline SVG charts for the profile page: histogram bars and top-value bars.

Drawn as plain SVG text so the page needs no JavaScript, CDN or plotting library. Every
label comes from table data and is escaped here.
"""

from __future__ import annotations

from html import escape

BAR = "#4c78a8"
AXIS = "#888"
TEXT = "#333"
WIDTH = 380


def fmt(value: object) -> str:
    """A short human form of a figure: thousands separators, 4 significant digits, '—' for none."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    if isinstance(value, int):
        # No separators below 10,000, so years and clock times read as 2013 and 2359.
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _open(column: str, kind: str, height: int, label: str) -> str:
    return (
        f'<svg class="lf-plot lf-{kind}" data-column="{escape(column)}" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(label)}">'
    )


def histogram_svg(column: str, counts: list[int], tips: list[str], low_label: str, high_label: str) -> str:
    """Vertical bars, one per bin, with the range under the axis and the tallest count above it."""
    height, top, bottom, left, right = 150, 16, 22, 6, 6
    plot_w, plot_h = WIDTH - left - right, height - top - bottom
    peak = max(counts) if counts else 0
    step = plot_w / max(len(counts), 1)
    gap = 1 if step > 3 else 0
    parts = [_open(column, "histogram", height, f"histogram of {column}")]
    for i, (count, tip) in enumerate(zip(counts, tips, strict=True)):
        bar_h = plot_h * count / peak if peak else 0
        # A non-empty bin stays visible even when it is tiny next to the peak.
        if count and bar_h < 1:
            bar_h = 1
        x, y = left + i * step, top + plot_h - bar_h
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(step - gap, 0.5):.1f}" height="{bar_h:.1f}" '
            f'fill="{BAR}"><title>{escape(tip)}: {count:,}</title></rect>'
        )
    base = top + plot_h
    parts += [
        f'<line x1="{left}" y1="{base}" x2="{WIDTH - right}" y2="{base}" stroke="{AXIS}"/>',
        f'<text x="{left}" y="{height - 6}" font-size="11" fill="{TEXT}">{escape(low_label)}</text>',
        f'<text x="{WIDTH - right}" y="{height - 6}" font-size="11" fill="{TEXT}" '
        f'text-anchor="end">{escape(high_label)}</text>',
        f'<text x="{left}" y="11" font-size="10" fill="{AXIS}">max {peak:,}</text>',
        "</svg>",
    ]
    return "".join(parts)


def top_values_svg(column: str, items: list[tuple[str, int, str]]) -> str:
    """Horizontal bars, one per top value: label, bar, count (and share/target mean as a tooltip)."""
    row_h, label_w, count_w = 18, 130, 70
    height = row_h * len(items) + 4
    bar_w = WIDTH - label_w - count_w
    peak = max((count for _, count, _ in items), default=0)
    parts = [_open(column, "top-values", height, f"top values of {column}")]
    for i, (value, count, tip) in enumerate(items):
        y = 2 + i * row_h
        width = bar_w * count / peak if peak else 0
        parts += [
            f'<text x="{label_w - 6}" y="{y + 13}" font-size="11" fill="{TEXT}" text-anchor="end">'
            f"{escape(_clip(value, 20))}<title>{escape(value)}</title></text>",
            f'<rect x="{label_w}" y="{y + 2}" width="{max(width, 1):.1f}" height="{row_h - 5}" fill="{BAR}">'
            f"<title>{escape(tip)}</title></rect>",
            f'<text x="{label_w + width + 4:.1f}" y="{y + 13}" font-size="11" fill="{TEXT}">{count:,}</text>',
        ]
    parts.append("</svg>")
    return "".join(parts)
