"""`lakeforge sql`: read-only SQL over the lake's Delta tables (DuckDB by default, or Spark).

Tables are named in SQL exactly as the catalog names them (``raw.flights``). The
statement is parsed by DuckDB's parser *before* anything runs: only one
SELECT-like statement (SELECT, WITH, VALUES, FROM, SHOW, DESCRIBE, SUMMARIZE,
PIVOT, EXPLAIN of a query) is accepted, and only the tables it names are opened.
The DuckDB engine adds a second wall: external access off and the configuration
locked, so no table function can read files. Engines live behind a short-name
registry (``ENGINES``) and are imported only when chosen.

``format_result`` renders a result as an aligned text table, CSV, or JSON lines
(one object per row, so output streams into ``jq`` and friends).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from importlib import import_module
from typing import TYPE_CHECKING, Any, Protocol

from lakeforge.errors import ReadOnlyViolationError, SqlError, UsageError
from lakeforge.lake.catalog import LAYERS, Catalog, TableName

if TYPE_CHECKING:
    import pyarrow as pa

# Schema metadata key set on a result cut short by ``limit`` (more rows existed).
TRUNCATED_KEY = b"lakeforge.truncated"
FORMATS = ("table", "csv", "json")

# DuckDB parses PIVOT, SHOW, DESCRIBE, SUMMARIZE, VALUES and FROM-first queries as SELECT.
_ALLOWED_TYPES = ("SELECT", "EXPLAIN")
# DuckDB reports "no location" as the largest unsigned 64-bit value.
_NO_LOCATION = 2**63
_EXPLAIN_PREFIX = re.compile(r"^\s*EXPLAIN(\s+ANALY[SZ]E)?(\s*\([^)]*\))?\s*", re.IGNORECASE)
_IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
QUALIFIED_NAME = re.compile(rf"{_IDENT}\s*\.\s*{_IDENT}")


@dataclass(frozen=True)
class TableRef:
    """One lake table named by a statement; ``start``/``end`` locate it in the text (None: unknown)."""

    name: TableName
    start: int | None = None
    end: int | None = None


@dataclass(frozen=True)
class ParsedStatement:
    """A statement that passed the read-only check, with the lake tables it reads."""

    text: str
    kind: str
    tables: tuple[TableRef, ...]

    @property
    def table_names(self) -> list[TableName]:
        """Each referenced table once, in order of first mention."""
        return list(dict.fromkeys(ref.name for ref in self.tables))


class SqlEngine(Protocol):
    """What an engine does: run a parsed, checked statement over the named table versions."""

    def run(
        self,
        catalog: Catalog,
        parsed: ParsedStatement,
        versions: Mapping[TableName, int | None],
        limit: int | None,
    ) -> pa.Table:
        """Return the result as an Arrow table, at most ``limit`` rows."""
        ...


class _EngineRegistry(Mapping[str, type]):
    """Short engine names -> engine classes, each module imported only when its engine is chosen."""

    def __init__(self, targets: dict[str, str]) -> None:
        self._targets = targets

    def __getitem__(self, name: str) -> type:
        module_name, _, class_name = self._targets[name].partition(":")
        return getattr(import_module(module_name), class_name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._targets)

    def __len__(self) -> int:
        return len(self._targets)


ENGINES: Mapping[str, type] = _EngineRegistry(
    {
        "duckdb": "lakeforge.lake.sql_duckdb:DuckDBEngine",
        "spark": "lakeforge.lake.sql_spark:SparkEngine",
    }
)


def run_sql(
    catalog: Catalog,
    statement: str,
    *,
    engine: str = "duckdb",
    versions: Mapping[str, int] | None = None,
    spark: Any = None,
    limit: int | None = None,
) -> pa.Table:
    """Run one read-only statement over the lake and return the result as an Arrow table.

    Args:
        versions: time travel, e.g. ``{"raw.flights": 3}``; other tables are read at their latest version.
        spark: the SparkSession for ``engine="spark"``.
        limit: return at most this many rows (the result's schema metadata says when rows were cut).
    """
    if engine not in ENGINES:
        raise UsageError(f"unknown SQL engine '{engine}'; engines are {', '.join(ENGINES)}")
    if limit is not None and limit < 0:
        raise UsageError(f"limit must be 0 or more, got {limit}")
    parsed = parse_statement(statement)
    for name in parsed.table_names:
        catalog.require(name)
    table_versions = _resolve_versions(parsed, versions or {})
    engine_cls = ENGINES[engine]
    runner: SqlEngine
    if engine == "spark":
        if spark is None:
            raise UsageError("engine 'spark' needs a SparkSession: pass `spark=`")
        runner = engine_cls(spark)
    else:
        runner = engine_cls()
    return runner.run(catalog, parsed, table_versions, limit)


def parse_statement(statement: str) -> ParsedStatement:
    """Check that ``statement`` is one read-only query (DuckDB's parser decides) and find its lake tables."""
    import duckdb

    try:
        statements = duckdb.extract_statements(statement)
    except duckdb.ParserException as exc:
        raise SqlError(f"SQL syntax error: {strip_error_label(str(exc))}") from None
    if not statements:
        raise UsageError("no SQL statement given")
    if len(statements) > 1:
        raise ReadOnlyViolationError(
            f"lakeforge sql runs one statement at a time, got {len(statements)}: "
            "remove the extra ';'-separated statements"
        )
    kind = statements[0].type.name
    if kind == "MULTI":
        # DuckDB expands a PIVOT without an IN list into several statements, one of them a CREATE TYPE.
        raise ReadOnlyViolationError(
            "lakeforge sql is read-only: this statement expands into several (PIVOT without an IN list "
            "creates a type); list the pivot values, e.g. `PIVOT raw.flights ON carrier IN ('AA', 'UA') "
            "USING count(*)`"
        )
    if kind not in _ALLOWED_TYPES:
        raise _refused(_statement_word(statement, kind))
    text = statement.strip().rstrip(";").rstrip()
    if kind == "EXPLAIN":
        _check_explained(text)
    return ParsedStatement(text=text, kind=kind, tables=tuple(_lake_tables(text, kind)))


def _refused(word: str) -> ReadOnlyViolationError:
    return ReadOnlyViolationError(
        f"lakeforge sql is read-only: '{word}' statements are refused; write tables through the pipeline steps"
    )


def _check_explained(text: str) -> None:
    """EXPLAIN ANALYZE runs its statement, so the explained statement must be a query too."""
    import duckdb

    prefix = _EXPLAIN_PREFIX.match(text)
    inner = duckdb.extract_statements(text[prefix.end() :]) if prefix else []
    if len(inner) != 1:
        raise ReadOnlyViolationError(
            "lakeforge sql could not tell which statement this EXPLAIN explains; "
            "write it as `EXPLAIN [ANALYZE] SELECT …`"
        )
    kind = inner[0].type.name
    if kind != "SELECT":
        explain = " ".join(text[: prefix.end()].split()).upper() if prefix else "EXPLAIN"
        raise _refused(f"{explain} {_statement_word(text[prefix.end() :] if prefix else text, kind)}")


# DuckDB files some statements under another type (INSTALL is LOAD, USE and RESET are SET, …).
_RENAMED_TYPES = frozenset({"LOAD", "SET", "CALL", "TRANSACTION", "VARIABLE_SET"})


def _statement_word(statement: str, kind: str) -> str:
    """The keyword the user wrote when DuckDB files it under another type; DuckDB's type otherwise."""
    first = statement.lstrip().split(None, 1)
    word = first[0].upper().rstrip(";") if first else ""
    return word if kind in _RENAMED_TYPES and word.isalpha() else kind


def _lake_tables(text: str, kind: str) -> list[TableRef]:
    """The ``<layer>.<name>`` tables a SELECT-like statement reads, from DuckDB's syntax tree."""
    import duckdb

    offset = 0
    query = text
    if kind == "EXPLAIN":
        # json_serialize_sql only takes SELECTs; the parser already said this is EXPLAIN <query>.
        prefix = _EXPLAIN_PREFIX.match(text)
        if prefix:
            offset = len(text[: prefix.end()].encode())
            query = text[prefix.end() :]
    con = duckdb.connect(":memory:")
    try:
        row = con.execute("SELECT json_serialize_sql(?)", [query]).fetchone()
    finally:
        con.close()
    tree = json.loads(row[0]) if row else {"error": True}
    if tree.get("error"):
        # Not serialisable (rare SELECT forms): fall back to DuckDB's table-name extractor.
        return _tables_by_name(text)
    encoded = text.encode()
    refs: list[TableRef] = []
    for node in _base_tables(tree):
        name = _lake_name(node.get("schema_name", ""), node.get("table_name", ""))
        if name is None or node.get("catalog_name"):
            continue
        location = int(node.get("query_location", _NO_LOCATION))
        if location >= _NO_LOCATION:
            refs.append(TableRef(name))
            continue
        # Locations are byte offsets; the span may include an alias, so match the qualified name only.
        start = len(encoded[: offset + location].decode(errors="ignore"))
        match = QUALIFIED_NAME.match(text, start)
        refs.append(TableRef(name, start, match.end()) if match else TableRef(name))
    return refs


def _tables_by_name(text: str) -> list[TableRef]:
    import duckdb

    try:
        names = duckdb.get_table_names(text, qualified=True)
    except duckdb.Error:
        return []
    refs = []
    for qualified in sorted(names):
        parts = qualified.split(".")
        name = _lake_name(parts[-2], parts[-1]) if len(parts) == 2 else None
        if name is not None:
            refs.append(TableRef(name))
    return refs


def _base_tables(node: Any) -> Iterator[dict[str, Any]]:
    """Every BASE_TABLE node of a json_serialize_sql tree (FROM, JOIN, subqueries, CTEs)."""
    if isinstance(node, dict):
        if node.get("type") == "BASE_TABLE":
            yield node
        for value in node.values():
            yield from _base_tables(value)
    elif isinstance(node, list):
        for value in node:
            yield from _base_tables(value)


def _lake_name(schema: str, table: str) -> TableName | None:
    """A lake table name when ``schema`` is a layer (DuckDB matches identifiers case-insensitively)."""
    layer = schema.lower()
    if layer not in LAYERS:
        return None
    return TableName.parse(f"{layer}.{table.lower()}")


def _resolve_versions(parsed: ParsedStatement, versions: Mapping[str, int]) -> dict[TableName, int | None]:
    """Map every referenced table to its requested version (None: latest); refuse versions for others."""
    wanted: dict[TableName, int | None] = dict.fromkeys(parsed.table_names)
    for key, version in versions.items():
        name = TableName.parse(key)
        if name not in wanted:
            read = ", ".join(str(t) for t in parsed.table_names) or "no lake tables"
            raise UsageError(f"a version was given for '{name}', but the statement reads {read}")
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise UsageError(f"version of '{name}' must be a whole number >= 0, got {version!r}")
        wanted[name] = version
    return wanted


def strip_error_label(message: str) -> str:
    """An engine's message without its leading 'Parser Error: ' style label."""
    return re.sub(r"^[A-Za-z ]+ Error: ", "", message, count=1)


def format_result(table: pa.Table, fmt: str = "table") -> str:
    """Render a result as ``table`` (aligned, with row count), ``csv`` (with header) or ``json`` (lines)."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown output format '{fmt}'; formats are {', '.join(FORMATS)}")
    columns = table.column_names
    rows = table.to_pylist()
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row[c] is None else _scalar_text(row[c]) for c in columns])
        return buffer.getvalue()
    if fmt == "json":
        return "".join(json.dumps(row, default=_json_default, ensure_ascii=False) + "\n" for row in rows)
    return _text_table(table, columns, rows)


def _text_table(table: pa.Table, columns: list[str], rows: list[dict[str, Any]]) -> str:
    import pyarrow.types as pat

    cells = [[_scalar_text(row[c]) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    numeric = [pat.is_integer(t) or pat.is_floating(t) or pat.is_decimal(t) for t in table.schema.types]

    def line(values: list[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()

    out = [line(list(columns)), "  ".join("-" * w for w in widths)] if columns else []
    out.extend(line(r) for r in cells)
    count = f"({len(rows)} row{'' if len(rows) == 1 else 's'}"
    metadata = table.schema.metadata or {}
    if metadata.get(TRUNCATED_KEY) == b"true":
        count += "; limit reached, more rows exist"
    out.append(count + ")")
    return "\n".join(out) + "\n"


def _scalar_text(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, datetime | date | time):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict | list):
        return json.dumps(value, default=_json_default, ensure_ascii=False)
    return str(value)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def limit_arrow(batches: Iterator[pa.RecordBatch], schema: pa.Schema, limit: int | None) -> pa.Table:
    """Collect batches into a table of at most ``limit`` rows, marking it when more rows existed."""
    import pyarrow as pa

    kept: list[pa.RecordBatch] = []
    count = 0
    truncated = False
    for batch in batches:
        if limit is not None and count + batch.num_rows > limit:
            kept.append(batch.slice(0, limit - count))
            truncated = True
            break
        kept.append(batch)
        count += batch.num_rows
    result = pa.Table.from_batches(kept, schema=schema)
    if truncated:
        result = result.replace_schema_metadata({**(schema.metadata or {}), TRUNCATED_KEY: b"true"})
    return result
