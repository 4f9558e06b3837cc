"""Sniff a CSV file for `lakeforge init`: its dialect, each column's type and nulls, a primary-key
guess and an event-time guess.

The values are read as text, as the ingest reads them (every column a string, then Spark's
``try_cast`` to the declared type), so a type is guessed only when every value of the sample would
cast: a column with one ``n/a`` among numbers stays a string rather than quarantining that row.
"""

from __future__ import annotations

import csv
import gzip
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import combinations
from pathlib import Path
from typing import Any

from lakeforge.errors import UsageError

SAMPLE_ROWS = 100_000  # rows read to guess types, nulls and keys; bigger files are sampled from the top
# Null spellings Spark can be told about (it takes one ``nullValue``); an empty field is always null.
NULL_TOKENS = ("NA", "N/A", "NaN", "nan", "null", "NULL", "None")
DELIMITERS = ",;\t|"
INT32 = 2**31 - 1
INT64 = 2**63 - 1
MAX_KEY_COLUMNS = 4
TIME_TYPES = ("date", "timestamp")
KEY_TYPES = ("string", "int", "long", "date", "timestamp", "boolean")
_INT = r"[+-]?\d+"
_FLOAT = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_DATE = r"\d{4}-\d{2}-\d{2}"
_TIMESTAMP = r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?"
_ID_NAME = re.compile(r"(^|_)(id|key|uuid|code)$")
_TIME_NAME = re.compile(r"(time|date|timestamp|ts|day|at)$")


@dataclass(frozen=True)
class ColumnProfile:
    """One column as sniffed: its name in the file and as declared, its type and what was seen."""

    source: str  # the header's spelling
    name: str  # a lowercase identifier (``source_name`` in the YAML when it differs)
    type: str  # one of the declared column types
    nulls: int
    distinct: int
    minimum: Any = None
    maximum: Any = None
    median: float | None = None
    top: tuple[str, ...] = ()  # most frequent values (strings), for comments and label guesses

    @property
    def binary(self) -> bool:
        """Numbers that are all 0 or 1 (a ready-made classification label)."""
        return self.type in ("int", "long") and self.minimum in (0, 1) and self.maximum in (0, 1)


@dataclass(frozen=True)
class CsvProfile:
    """What `lakeforge init` knows about a CSV file."""

    path: Path
    rows: int  # rows read (at most SAMPLE_ROWS)
    sampled: bool  # True when the file has more rows than were read
    columns: tuple[ColumnProfile, ...]
    options: dict[str, str]  # Spark CSV reader options: header, sep, comment, nullValue
    primary_key: tuple[str, ...]  # column names; () when no unique combination was found
    event_time: str | None
    first_time: datetime | None = None
    last_time: datetime | None = None

    def column(self, name: str) -> ColumnProfile:
        """The column declared (or spelled in the file) as ``name``."""
        for col in self.columns:
            if name in (col.name, col.source):
                return col
        known = ", ".join(c.name for c in self.columns)
        raise UsageError(f"'{self.path.name}' has no column '{name}' (columns: {known})")


def identifier(text: str) -> str:
    """A column name as a lowercase identifier: ``^GSPC`` -> ``gspc``, ``Adj. Close*`` -> ``adj_close``."""
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", text.strip())
    name = re.sub(r"[^0-9A-Za-z]+", "_", snake).strip("_").lower() or "column"
    return f"c_{name}" if name[0].isdigit() else name


def _unique_names(headers: Sequence[str]) -> list[str]:
    """Identifiers for every header, suffixed ``_2``, ``_3``… where two would collide."""
    names: list[str] = []
    for header in headers:
        base = identifier(header)
        name, n = base, 1
        while name in names:
            n += 1
            name = f"{base}_{n}"
        names.append(name)
    return names


def _head(path: Path, size: int = 65536) -> str:
    """The first ``size`` characters of the file (gzip read through), as UTF-8 text."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rt", encoding="utf-8") as stream:
                return stream.read(size)
        with path.open(encoding="utf-8") as stream:
            return stream.read(size)
    except FileNotFoundError:
        raise UsageError(f"--dataset '{path}' does not exist") from None
    except IsADirectoryError:
        raise UsageError(f"--dataset '{path}' is a directory; give one CSV file") from None
    except PermissionError:
        raise UsageError(f"--dataset '{path}' is not readable (permission denied)") from None
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"--dataset '{path}' is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8"
        ) from None
    except (OSError, EOFError) as exc:
        raise UsageError(f"--dataset '{path}' cannot be read: {exc}") from None


def _dialect(head: str) -> tuple[int, str]:
    """Leading ``#`` comment lines, and the delimiter."""
    lines = head.splitlines()
    comments = 0
    while comments < len(lines) and lines[comments].startswith("#"):
        comments += 1
    body = "\n".join(lines[comments : comments + 50])
    try:
        sep = csv.Sniffer().sniff(body, delimiters=DELIMITERS).delimiter
    except csv.Error:
        sep = ","
    return comments, sep


def _read(path: Path, comments: int, sep: str) -> Any:
    """The file's first SAMPLE_ROWS + 1 rows as text (nothing turned into NaN)."""
    import pandas as pd

    try:
        return pd.read_csv(
            path,
            sep=sep,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            skiprows=comments,
            nrows=SAMPLE_ROWS + 1,
            encoding="utf-8",
            on_bad_lines="skip",
        )
    except pd.errors.EmptyDataError:
        raise UsageError(f"--dataset '{path}' is empty: no header line, no rows") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"--dataset '{path}' cannot be read as CSV: {detail}") from None


def _counts(frame: Any) -> dict[str, Any]:
    """Each column's distinct values (stripped, as Spark's casts see them) and how often each occurs."""
    counts = {}
    for column in frame.columns:
        raw = frame[column].value_counts(sort=False)
        raw.index = raw.index.str.strip()
        counts[column] = raw.groupby(level=0, sort=False).sum().sort_values(ascending=False, kind="stable")
    return counts


def _null_token(counts: dict[str, Any]) -> str | None:
    """The null spelling to tell Spark about: the commonest token standing for missing numbers or dates."""
    hits: dict[str, int] = {}
    for values in counts.values():
        for token in NULL_TOKENS:
            if token in values.index and _guess_type(values.index[~values.index.isin((token, ""))]) != "string":
                hits[token] = hits.get(token, 0) + int(values[token])
    return max(hits, key=lambda t: hits[t]) if hits else None


def _all(values: Any, pattern: str) -> bool:
    return bool(values.str.fullmatch(pattern).all())


def _guess_type(values: Any) -> str:
    """The narrowest declared type every (distinct, non-null) value casts to; ``string`` otherwise."""
    import pandas as pd

    values = pd.Series(values, dtype=object)
    if values.empty:
        return "string"
    if values.str.lower().isin(("true", "false")).all():
        return "boolean"
    if _all(values, _INT):
        largest = max(abs(int(v)) for v in values)
        return "int" if largest <= INT32 else "long" if largest <= INT64 else "double"
    if _all(values, _FLOAT):
        return "double"
    if _all(values, _DATE) and pd.to_datetime(values, format="%Y-%m-%d", errors="coerce").notna().all():
        return "date"
    if _all(values, _TIMESTAMP) and pd.to_datetime(values, format="ISO8601", errors="coerce", utc=True).notna().all():
        return "timestamp"
    return "string"


def _weighted_median(numbers: Any, weights: Any) -> float:
    """The median of values given once each with their counts."""
    import numpy as np

    order = np.argsort(numbers)
    cumulative = np.cumsum(weights[order])
    return float(numbers[order][np.searchsorted(cumulative, cumulative[-1] / 2)])


def _profile_column(source: str, name: str, counts: Any, nulls: tuple[str, ...]) -> ColumnProfile:
    """Type, nulls, distinct values, range and top values of one column, from its value counts."""
    import pandas as pd

    missing = counts.index.isin(nulls)
    present = counts[~missing]
    kind = _guess_type(present.index)
    top = tuple(str(v) for v in present.index[:5])
    minimum = maximum = median = None
    if kind in ("int", "long", "double") and not present.empty:
        numbers = pd.to_numeric(present.index).to_numpy(dtype=float)
        minimum, maximum = numbers.min(), numbers.max()
        median = _weighted_median(numbers, present.to_numpy())
        if kind != "double":
            minimum, maximum = int(minimum), int(maximum)
        else:
            minimum, maximum = float(minimum), float(maximum)
    elif kind in TIME_TYPES and not present.empty:
        times = pd.to_datetime(pd.Series(present.index), format="ISO8601", utc=True)
        minimum, maximum = times.min().to_pydatetime(), times.max().to_pydatetime()
    return ColumnProfile(source, name, kind, int(counts[missing].sum()), len(present), minimum, maximum, median, top)


def _hashes(frame: Any, columns: Sequence[ColumnProfile]) -> dict[str, Any]:
    """A 64-bit hash of every value of each column (nulls hash alike): keys are compared on these."""
    import pandas as pd

    return {c.name: pd.util.hash_pandas_object(frame[c.name], index=False).to_numpy() for c in columns}


def _groups(hashes: dict[str, Any], columns: Sequence[str]) -> int:
    """How many distinct combinations of ``columns`` the rows hold (from the value hashes)."""
    import numpy as np

    combined = np.zeros_like(next(iter(hashes.values())))
    for name in columns:
        combined = combined * np.uint64(1_000_003) ^ hashes[name]
    return len(np.unique(combined))


def _key_candidates(columns: Sequence[ColumnProfile], event_time: str | None) -> list[ColumnProfile]:
    """Columns that may be part of a key: never null, not floating point; id-like names, the event
    time and text first."""
    usable = [c for c in columns if c.nulls == 0 and c.type in KEY_TYPES]
    return sorted(usable, key=lambda c: (not _ID_NAME.search(c.name), c.name != event_time, c.type != "string"))


def guess_primary_key(frame: Any, columns: Sequence[ColumnProfile], event_time: str | None) -> tuple[str, ...]:
    """A unique non-null column, else a small unique combination found greedily from the event time."""
    rows = len(frame)
    candidates = _key_candidates(columns, event_time)
    for col in candidates:
        if col.distinct == rows:
            return (col.name,)
    if len(candidates) < 2:
        return ()
    hashes = _hashes(frame, candidates)
    chosen = [event_time] if event_time in hashes else [candidates[0].name]
    while _groups(hashes, chosen) < rows:
        rest = [c.name for c in candidates if c.name not in chosen]
        if len(chosen) == MAX_KEY_COLUMNS or not rest:
            return ()
        closing = [c for c in rest if _groups(hashes, [*chosen, c]) == rows]
        # A column that makes the key unique (text and ids first), else the one splitting the rows most.
        chosen.append(closing[0] if closing else max(rest, key=lambda c: _groups(hashes, [*chosen, c])))
    for size in range(1, len(chosen)):  # drop what the key does not need, keeping its order
        for subset in combinations(chosen, size):
            if _groups(hashes, subset) == rows:
                return tuple(subset)
    return tuple(chosen)


def guess_event_time(columns: Sequence[ColumnProfile]) -> str | None:
    """The date/timestamp column: never null first, then time-like names, then timestamps over dates."""
    times = [c for c in columns if c.type in TIME_TYPES]
    if not times:
        return None
    best = min(times, key=lambda c: (c.nulls > 0, not _TIME_NAME.search(c.name), c.type != "timestamp"))
    return best.name


def profile_csv(path: Path, event_time: str | None = None) -> CsvProfile:
    """Sniff ``path``: dialect, column types and nulls, the primary key and event time guesses.

    ``event_time`` (a column, as spelled in the file or as its identifier) overrides the guess and
    must hold ISO dates or timestamps. Raises UsageError for a file that cannot be used.
    """
    path = Path(path)
    head = _head(path)
    if not head.strip():
        raise UsageError(f"--dataset '{path}' is empty: no header line, no rows")
    comments, sep = _dialect(head)
    raw = _read(path, comments, sep)
    if len(raw.columns) == 0:
        raise UsageError(f"--dataset '{path}' is empty: no header line, no rows")
    if raw.empty:
        raise UsageError(f"--dataset '{path}' has a header but no rows: there is nothing to guess the types from")
    header_line = head.splitlines()[comments] if len(head.splitlines()) > comments else ""
    written = next(csv.reader([header_line], delimiter=sep), [])
    twice = sorted({h for h in written if written.count(h) > 1})
    if twice:
        raise UsageError(
            f"--dataset '{path}' names column(s) {', '.join(repr(h) for h in twice)} twice in its header; "
            "rename one so each column has its own name"
        )
    headers = [str(h) for h in raw.columns]
    if all(re.fullmatch(_FLOAT, h.strip()) for h in headers):
        raise UsageError(
            f"--dataset '{path}' has no header line (the first line is {sep.join(headers)[:60]!r}); "
            "add a first line naming the columns"
        )
    sampled = len(raw) > SAMPLE_ROWS
    raw = raw.iloc[:SAMPLE_ROWS]
    counts = _counts(raw)
    token = _null_token(counts)
    nulls = ("", token) if token else ("",)
    names = _unique_names(headers)
    columns = [_profile_column(h, n, counts[h], nulls) for h, n in zip(headers, names, strict=True)]
    frame = raw.set_axis(names, axis=1)
    options = {"header": "true"}
    if sep != ",":
        options["sep"] = sep
    if comments:
        options["comment"] = "#"
    if token:
        options["nullValue"] = token
    if event_time is not None:
        chosen = CsvProfile(path, len(frame), sampled, tuple(columns), options, (), None).column(event_time)
        if chosen.type not in TIME_TYPES:
            example = chosen.top[0] if chosen.top else ""
            raise UsageError(
                f"--time '{event_time}': values like {example!r} are not ISO dates or timestamps "
                "(YYYY-MM-DD, YYYY-MM-DD HH:MM:SS); the ingest could not read them as times"
            )
        time_name: str | None = chosen.name
    else:
        time_name = guess_event_time(columns)
    key = guess_primary_key(frame, columns, time_name)
    time_col = next((c for c in columns if c.name == time_name), None)
    first = time_col.minimum if time_col else None
    last = time_col.maximum if time_col else None
    return CsvProfile(path, len(frame), sampled, tuple(columns), options, key, time_name, first, last)
