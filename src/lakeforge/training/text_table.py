"""Plain-text tables for a terminal: aligned columns under optional group headers, wrapped by group
onto further tables when wider than the terminal (``lakeforge compare``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

WIDTH = 100
GAP = "  "


@dataclass(frozen=True)
class Column:
    """A table column: its header (and the group header above it), cells, and alignment."""

    header: str
    cells: list[str]
    right: bool = True
    group: str = ""

    @property
    def width(self) -> int:
        return max([len(self.header), *(len(c) for c in self.cells)])


def fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def table_lines(keys: Sequence[Column], rest: Sequence[Column]) -> list[str]:
    """``keys`` then ``rest`` as aligned rows; a group header line when any column has a group."""
    columns = [*keys, *rest]
    widths = [c.width for c in columns]
    out = []
    if any(c.group for c in columns):
        groups, i = [], 0
        while i < len(columns):
            j = i
            while j + 1 < len(columns) and columns[j + 1].group == columns[i].group:
                j += 1
            span = sum(widths[i : j + 1]) + len(GAP) * (j - i)
            groups.append(columns[i].group.center(span) if columns[i].group else " " * span)
            i = j + 1
        out.append((GAP + GAP.join(groups)).rstrip())
    cells = [[c.header, *c.cells] for c in columns]
    for row in zip(*cells, strict=True):
        parts = [(text.rjust(w) if c.right else text.ljust(w)) for text, w, c in zip(row, widths, columns, strict=True)]
        out.append((GAP + GAP.join(parts)).rstrip())
    return out


def text_table(keys: Sequence[Column], rest: Sequence[Column], width: int = WIDTH) -> list[str]:
    """The table, its ``rest`` columns wrapped by group onto further tables (each repeating ``keys``)."""
    groups: dict[str, list[Column]] = {}
    for column in rest:
        groups.setdefault(column.group or column.header, []).append(column)
    base = len(GAP) + sum(c.width + len(GAP) for c in keys)
    chunks: list[list[Column]] = [[]]
    used = base
    for members in groups.values():
        need = sum(c.width + len(GAP) for c in members)
        if chunks[-1] and used + need > width:
            chunks.append([])
            used = base
        chunks[-1].extend(members)
        used += need
    out: list[str] = []
    for number, chunk in enumerate(chunks):
        out += ([""] if number else []) + table_lines(keys, chunk)
    return out
