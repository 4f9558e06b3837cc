"""The Spark engine of `lakeforge sql`: Delta snapshots as temp views, for scans too big for one process.

Spark temp views cannot have dotted names, and a database (``CREATE DATABASE raw``)
can only hold permanent views, which may not refer to temp views. So each lake
table the parser found is replaced, at the byte span DuckDB's parser reported, by
the name of a temp view private to this call. The statement must therefore parse
with DuckDB's parser too (that is where the read-only check happens).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from lakeforge.errors import SqlError
from lakeforge.lake.catalog import Catalog, TableName
from lakeforge.lake.sql import QUALIFIED_NAME, ParsedStatement, TableRef, limit_arrow

if TYPE_CHECKING:
    import pyarrow as pa


def _unquote(identifier: str) -> str:
    return identifier.strip().strip('"').replace('""', '"').lower()


def rewrite_statement(parsed: ParsedStatement, view_names: Mapping[TableName, str]) -> str:
    """The statement with each lake table name replaced by its temp view name."""
    text = parsed.text
    located = [ref for ref in parsed.tables if ref.start is not None and ref.end is not None]
    if len(located) < len(parsed.tables):
        # DESCRIBE/SHOW forms carry no locations: replace every qualified name that is a lake table.
        return QUALIFIED_NAME.sub(lambda m: _view_for(m.group(0), view_names) or m.group(0), text)
    for ref in sorted(located, key=_start, reverse=True):
        text = text[: ref.start] + view_names[ref.name] + text[ref.end :]
    return text


def _start(ref: TableRef) -> int:
    return ref.start or 0


def _view_for(qualified: str, view_names: Mapping[TableName, str]) -> str | None:
    layer, _, name = qualified.partition(".")
    wanted = f"{_unquote(layer)}.{_unquote(name)}"
    for table, view in view_names.items():
        if str(table) == wanted:
            return view
    return None


class SparkEngine:
    """Runs statements with Spark SQL over ``lakeforge.lake.delta.read_table`` temp views."""

    def __init__(self, spark: Any) -> None:
        self.spark = spark

    def run(
        self,
        catalog: Catalog,
        parsed: ParsedStatement,
        versions: Mapping[TableName, int | None],
        limit: int | None,
    ) -> pa.Table:
        """Register temp views, run the rewritten statement, collect at most ``limit`` rows to Arrow."""
        from pyspark.errors import PySparkException

        from lakeforge.lake.delta import read_table

        token = uuid.uuid4().hex[:8]
        view_names = {name: f"lakeforge_{token}_{name.layer}__{name.name}" for name in versions}
        try:
            for name, version in versions.items():
                read_table(self.spark, catalog, str(name), version).createOrReplaceTempView(view_names[name])
            try:
                with _quiet_query_context_log():
                    frame = self.spark.sql(rewrite_statement(parsed, view_names))
                    if limit is not None:
                        # One extra row tells whether the limit cut the result.
                        frame = frame.limit(limit + 1)
                    table = frame.toArrow()
            except PySparkException as exc:
                raise SqlError(f"SQL error: {_readable(str(exc), view_names)}") from None
            return limit_arrow(iter(table.to_batches()), table.schema, limit)
        finally:
            for view in view_names.values():
                self.spark.catalog.dropTempView(view)


@contextmanager
def _quiet_query_context_log() -> Iterator[None]:
    """Mute PySpark's ERROR log of a failed query (with JVM trace): the SqlError raised says it all."""
    logger = logging.getLogger("SQLQueryContextLogger")
    was_disabled = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = was_disabled


def _readable(message: str, view_names: Mapping[TableName, str]) -> str:
    """Spark's message without its plan or JVM trace, temp view names turned back into table names."""
    for name, view in view_names.items():
        message = message.replace(f"`{view}`", str(name)).replace(view, str(name))
    # Spark's "line 1 pos N" counts in the rewritten statement, so it is left out.
    headline = re.match(r"(?s)(.*?SQLSTATE: \w+)", message)
    if headline:
        return headline.group(1).strip()
    return re.split(r"\n\s*(?:JVM stacktrace:|at org\.apache)", message, maxsplit=1)[0].strip()
