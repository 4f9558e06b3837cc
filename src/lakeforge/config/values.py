"""Parsers for the value formats used in conf/: durations, dates, cron, times of day."""

from __future__ import annotations

import re
from datetime import date

from lakeforge.config.schema_ml import CRON_PRESETS

_DURATION = re.compile(r"^(?P<sign>[-+]?)(?P<n>\d+)(?P<unit>[smhdw])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CRON_FIELD = re.compile(r"^[\d*/,\-A-Za-z?LW#]+$")
_HH_MM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")

DURATION_HELP = "a number and a unit s, m, h, d or w, e.g. 30m, 1h, 7d"


def parse_duration(value: object, *, signed: bool = False) -> int:
    """Seconds in a duration like ``7d``; ``signed`` allows ``-30d``. Raises ValueError."""
    text = str(value).strip()
    m = _DURATION.match(text)
    if m is None or (m["sign"] and not signed):
        raise ValueError(f"'{text}' is not a duration; use {DURATION_HELP}")
    seconds = int(m["n"]) * _SECONDS[m["unit"]]
    return -seconds if m["sign"] == "-" else seconds


def parse_positive_duration(value: object) -> int:
    """Seconds in a duration that must be > 0 (windows, delays). Raises ValueError."""
    text = str(value).strip()
    if text.startswith("-") and _DURATION.match(text):
        raise ValueError(f"'{text}' is negative; durations here must be positive ({DURATION_HELP})")
    seconds = parse_duration(text)
    if seconds <= 0:
        raise ValueError(f"'{text}' is zero; durations here must be positive ({DURATION_HELP})")
    return seconds


def parse_date(value: object) -> date:
    """An ISO date ``YYYY-MM-DD``. Raises ValueError."""
    text = str(value).strip()
    if not _DATE.match(text):
        raise ValueError(f"'{text}' is not an ISO date; write YYYY-MM-DD, e.g. 2013-06-01")
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"'{text}' is not a valid date ({exc}); write YYYY-MM-DD") from None


def check_cron(value: object) -> None:
    """A 5-field cron expression, a preset, or None (manual runs). Raises ValueError."""
    if value is None or str(value) == "None":
        return
    text = str(value).strip()
    if text.startswith("@"):
        if text not in CRON_PRESETS:
            raise ValueError(f"unknown cron preset '{text}'; presets: {', '.join(CRON_PRESETS)}, or null")
        return
    fields = text.split()
    if len(fields) != 5 or not all(_CRON_FIELD.match(f) for f in fields):
        raise ValueError(
            f"'{text}' is not a cron expression: it needs 5 fields (minute hour day month weekday), "
            f"e.g. '0 6 * * *', or a preset ({', '.join(CRON_PRESETS)}) or null"
        )


def check_time_of_day(value: object) -> None:
    """A UTC time of day ``HH:MM``. Raises ValueError."""
    if not _HH_MM.match(str(value)):
        raise ValueError(f"'{value}' is not a time of day; write HH:MM (UTC), e.g. 07:00")


def regex_error(pattern: str) -> str | None:
    """Why ``pattern`` is not a valid RE2 regular expression (what regex checks run on), or None.

    RE2 (pyarrow's engine) runs in linear time, so no value can make a check hang; it has no
    backreferences or lookaround. A pattern without escapes or ``(?`` groups that Python's ``re``
    accepts is valid RE2, so pyarrow is imported only for the others.
    """
    try:
        re.compile(pattern)
    except re.error as exc:
        return str(exc)
    if "\\" not in pattern and "(?" not in pattern:
        return None
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        pc.match_substring_regex(pa.array([""]), pattern)
    except pa.ArrowInvalid as exc:
        return str(exc).removeprefix("Invalid regular expression: ")
    return None
