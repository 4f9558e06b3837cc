"""The DuckDB engine of `lakeforge sql`: delta-rs Arrow datasets behind views named like the catalog."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from lakeforge.errors import ReadOnlyViolationError, SqlError, TableError, TableNotFoundError, did_you_mean
from lakeforge.lake.catalog import Catalog, TableName
from lakeforge.lake.sql import ParsedStatement, limit_arrow, strip_error_label

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

_BATCH_ROWS = 64 * 1024
# Off: no file, extension or Python-variable access from SQL. Registered Arrow datasets are
# read by pyarrow, not DuckDB's file system, so they still work.
_LOCKED_CONFIG = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}
_MISSING_TABLE = re.compile(r"Table with name (\S+) does not exist")


class DuckDBEngine:
    """Runs statements in a fresh in-memory DuckDB with external access off and the configuration locked."""

    def run(
        self,
        catalog: Catalog,
        parsed: ParsedStatement,
        versions: Mapping[TableName, int | None],
        limit: int | None,
    ) -> pa.Table:
        """Register the referenced tables, run the statement, return at most ``limit`` rows."""
        import duckdb

        con = duckdb.connect(":memory:", config=dict(_LOCKED_CONFIG))
        try:
            self._register(con, catalog, versions)
            con.execute("SET lock_configuration = true")
            try:
                relation = con.sql(parsed.text)
                if relation is None:  # unreachable for checked statements; kept for the type checker
                    raise SqlError("the statement returned no result")
                # A streaming reader: with `limit`, only the rows kept are materialised. Closed
                # before the connection, so no scan thread outlives the query (an abandoned
                # stream is the suspect of a rare native abort at interpreter exit).
                reader = relation.to_arrow_reader(_BATCH_ROWS)
                try:
                    return limit_arrow(iter(reader), reader.schema, limit)
                finally:
                    reader.close()
            except duckdb.Error as exc:
                raise _friendly_error(exc, catalog) from None
        finally:
            con.close()

    @staticmethod
    def _register(con: duckdb.DuckDBPyConnection, catalog: Catalog, versions: Mapping[TableName, int | None]) -> None:
        from deltalake.exceptions import DeltaError

        from lakeforge.lake.delta import arrow_dataset

        # A view per table in a schema named after its layer, so `raw.flights` resolves as written.
        for name, version in versions.items():
            arrow_name = f"__lakeforge_{name.layer}__{name.name}"
            try:
                dataset = arrow_dataset(catalog, str(name), version)
            except DeltaError as exc:  # e.g. a reader feature delta-rs cannot turn into a dataset
                raise TableError(f"table '{name}' cannot be read for SQL: {exc}") from exc
            con.register(arrow_name, dataset)
            con.execute(f'CREATE SCHEMA IF NOT EXISTS "{name.layer}"')
            con.execute(f'CREATE VIEW "{name.layer}"."{name.name}" AS SELECT * FROM "{arrow_name}"')


def _friendly_error(exc: Exception, catalog: Catalog) -> Exception:
    """Translate a DuckDB error into a lakeforge error that keeps DuckDB's own hint and caret."""
    import duckdb

    message = str(exc)
    if isinstance(exc, duckdb.PermissionException):
        return ReadOnlyViolationError(
            "lakeforge sql reads lake tables only: file, network and extension access is off "
            f"({message.splitlines()[0]}); name tables as '<layer>.<name>'"
        )
    if isinstance(exc, duckdb.CatalogException):
        missing = _MISSING_TABLE.search(message)
        if missing:
            table = missing.group(1)
            known = [str(t) for t in catalog.list_tables()] if catalog.is_local else []
            listing = ", ".join(known) if known else "none yet"
            return TableNotFoundError(
                f"table '{table}' is not a lake table: name tables as '<layer>.<name>'"
                f"{did_you_mean(table, known) or _suffix_match(table, known)}; known tables: {listing}"
            )
    if isinstance(exc, duckdb.ParserException):
        return SqlError(f"SQL syntax error: {strip_error_label(message)}")
    return SqlError(f"SQL error: {strip_error_label(message)}")


def _suffix_match(table: str, known: list[str]) -> str:
    """Suggest 'raw.flights' for a bare 'flights'."""
    matches = [k for k in known if k.split(".", 1)[1] == table.lower()]
    return (" (did you mean " + ", ".join(f"'{m}'" for m in matches) + "?)") if matches else ""
