"""The json source: JSON lines, each line parsed strictly on the executors.

Spark's JSON reader is lenient where a validating ingest can't be. Of a line it keeps the first
of two objects and drops the second, ignores text after the object, keeps the last of two values
of one field, turns a lone surrogate escape (``"\\ud800"``) into ``?``, and hands an object or an
array over as its JSON text where a string is declared; and its schema inference fails the whole
read when one line repeats a field. So lakeforge reads the file as text lines and parses each one
with Python's ``json`` in a pandas UDF, on the executors: a line that is not exactly one JSON
object, repeats a field or holds a lone surrogate is ``_row:malformed`` (the line is kept as the
raw record); an object or array where a string is declared fails ``<column>:type``. Values keep
their text (``1.10`` stays ``1.10``, ``1e400`` stays ``1e400``, so validation casts them as it
casts CSV); ``NaN``, ``Infinity`` and ``-Infinity`` are read, as by Spark, unless
``allowNonNumericNumbers`` is false. A line of JSON whitespace only is no record; a BOM starting a
line is dropped.

Options that need Spark's own parser read through Spark's JSON reader, leniency included:
``multiLine`` (documents or arrays of records), a non-UTF-8 ``encoding``, or one of Jackson's
leniencies set to true (``allowSingleQuotes``, ``allowComments``, …).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pandas as pd

from lakeforge.data.schema import SEP, TYPE, ColumnSpec, check_name
from lakeforge.data.sources import (
    CORRUPT_COLUMN,
    SourceFrame,
    SourceRequest,
    check_columns,
    empty_source,
    permissive,
    reader_options,
    resolve_source_path,
    string_schema,
)
from lakeforge.errors import DataValidationError

CHECKS_COLUMN = "_json_checks"
_LINE = "_line"
_PARSED = "_parsed"
_LENIENCIES = (
    "allowComments",
    "allowUnquotedFieldNames",
    "allowSingleQuotes",
    "allowNumericLeadingZeros",
    "allowBackslashEscapingAnyCharacter",
    "allowUnquotedControlChars",
)


def _needs_spark_parser(options: dict[str, str]) -> bool:
    """Whether the options ask for what only Spark's JSON reader does."""
    if options.get("multiLine", "false").lower() == "true":
        return True
    encoding = options.get("encoding", options.get("charset", "UTF-8"))
    if encoding.upper().replace("-", "").replace("_", "") != "UTF8":
        return True
    return any(options.get(name, "false").lower() == "true" for name in _LENIENCIES)


def read_json(spark: Any, req: SourceRequest) -> SourceFrame:
    """JSON lines as strings (values keep their text), one record per non-blank line."""
    from pyspark.sql import functions as F  # noqa: N812

    path = resolve_source_path(req)
    options = reader_options(req)
    if _needs_spark_parser(options):
        return _read_with_spark(spark, req, path, options)
    text = spark.read.options(**{k: v for k, v in options.items() if k == "lineSep"}).text(path)
    lines = text.select(F.regexp_replace("value", "^\ufeff", "").alias(_LINE)).where(F.col(_LINE).rlike("[^ \t\r\n]"))
    _check_fields(req, lines, path)
    non_numeric = options.get("allowNonNumericNumbers", "true").lower() != "false"
    parse = _line_parser(req.columns, non_numeric)
    parsed = lines.select(parse(F.col(_LINE)).alias(_PARSED))
    names = [*dict.fromkeys(c.source for c in req.columns), CORRUPT_COLUMN, CHECKS_COLUMN]
    df = parsed.select(*[F.col(_PARSED).getField(n).alias(n) for n in names])
    return SourceFrame(df, typed=False, corrupt_column=CORRUPT_COLUMN, checks_column=CHECKS_COLUMN)


def _check_fields(req: SourceRequest, lines: Any, path: str) -> None:
    """The source's field names (every line's top-level keys, one aggregation) against the declaration."""
    from pyspark.sql import functions as F  # noqa: N812

    declared = [c.source for c in req.columns]
    key = F.col("key")
    known = key.isin(declared)
    keys = lines.select(F.explode(F.json_object_keys(F.col(_LINE))).alias("key"))
    found = keys.agg(
        F.collect_set(F.when(known, key)).alias("declared"),
        F.collect_set(F.when(~known, key)).alias("other"),
    ).first()
    present = [*found["declared"], *sorted(found["other"])] if found is not None else []
    if present:
        check_columns(req, present)
    elif lines.limit(1).count() == 0:
        raise empty_source(req, path, "no JSON lines")
    # Lines but no object among them: every line is malformed, and quarantined as such.


class _Number(str):
    """A JSON number, kept as the text it was written as."""

    __slots__ = ()


class _RepeatedField(ValueError):
    """An object names a field twice: there is no telling which value is meant."""


def _fields_once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for key, value in pairs:
        if key in record:
            raise _RepeatedField(key)
        record[key] = value
    return record


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _has_lone_surrogate(value: Any) -> bool:
    """Whether a decoded JSON value holds an unpaired UTF-16 surrogate (not encodable as UTF-8)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


def _text(value: Any) -> str | None:
    """A field's value as text: strings as they are, numbers as written, objects and arrays as JSON."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, _Number):
        return str.__str__(value)
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        items = ",".join(f"{json.dumps(k, ensure_ascii=False)}:{_json(v)}" for k, v in value.items())
        return "{" + items + "}"
    return "[" + ",".join(_json(v) for v in value) + "]"


def _json(value: Any) -> str:
    """A nested value back as JSON text (numbers as written)."""
    if value is None:
        return "null"
    if isinstance(value, str) and not isinstance(value, _Number):
        return json.dumps(value, ensure_ascii=False)
    return _text(value) or ""


def parse_line(line: str, names: Sequence[str], strings: dict[str, str], non_numeric: bool) -> list[str | None]:
    """One JSON line as ``[value of each name…, corrupt record, reader checks]``, all text or None."""
    malformed: list[str | None] = [*([None] * len(names)), line, None]
    constant = _Number if non_numeric else _refuse_constant
    try:
        record = json.loads(
            line, object_pairs_hook=_fields_once, parse_float=_Number, parse_int=_Number, parse_constant=constant
        )
        if not isinstance(record, dict) or ("\\u" in line and _has_lone_surrogate(record)):
            return malformed
        values: list[str | None] = []
        checks = []
        for name in names:
            value = record.get(name)
            if isinstance(value, dict | list) and name in strings:
                checks.append(strings[name])
            values.append(_text(value))
    except (ValueError, RecursionError):  # JSONDecodeError and _RepeatedField are ValueErrors
        return malformed
    return [*values, None, SEP.join(checks) if checks else None]


def _line_parser(columns: Sequence[ColumnSpec], non_numeric: bool) -> Any:
    """The pandas UDF parsing each line into a struct of the declared fields, corrupt record and checks."""
    from pyspark.sql import functions as F  # noqa: N812
    from pyspark.sql import types as T  # noqa: N812

    names = list(dict.fromkeys(c.source for c in columns))
    strings = {c.source: check_name(c.name, TYPE) for c in columns if c.type == "string"}
    fields = [*names, CORRUPT_COLUMN, CHECKS_COLUMN]
    schema = T.StructType([T.StructField(n, T.StringType(), True) for n in fields])

    def parse(lines: pd.Series) -> pd.DataFrame:
        rows = [parse_line(line, names, strings, non_numeric) for line in lines]
        frame = pd.DataFrame(rows, columns=range(len(fields)), dtype=object)
        frame.columns = pd.Index(fields)
        return frame

    return F.pandas_udf(parse, schema)  # type: ignore[call-overload]


def _read_with_spark(spark: Any, req: SourceRequest, path: str, options: dict[str, str]) -> SourceFrame:
    """Spark's JSON reader, for what the line parser doesn't do (documents, encodings, leniencies)."""
    from pyspark.errors import AnalysisException

    try:
        found = [c for c in spark.read.options(**options).json(path).columns if c != CORRUPT_COLUMN]
    except AnalysisException as exc:
        raise DataValidationError(
            f"dataset '{req.dataset}': Spark's JSON reader can't infer the fields of '{path}' "
            f"({str(exc).splitlines()[0]}); nothing written. A record names a field twice (or two fields "
            "differ only in case): fix the source, or read it as JSON lines (without multiLine, encoding "
            "and the allow* options), where such a line is quarantined alone"
        ) from exc
    if not found:
        # Inference sees no field at all: an empty file, or nothing but malformed lines.
        probe = spark.read.text(path)
        if probe.limit(1).count() == 0:
            raise empty_source(req, path)
    else:
        check_columns(req, found)
    df = permissive(spark.read.options(**options)).schema(string_schema([c.source for c in req.columns])).json(path)
    return SourceFrame(df, typed=False, corrupt_column=CORRUPT_COLUMN)
