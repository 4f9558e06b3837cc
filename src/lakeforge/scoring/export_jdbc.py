"""The ``jdbc`` (PostgreSQL) export, and the credential redaction every export's messages use.

:func:`lakeforge.scoring.export.export_predictions` calls :func:`export_jdbc` for each ``jdbc``
export (see that module's docstring for what an export writes). Here: the staging table Spark
writes and the one driver-side transaction that swaps the run dates' rows in; the connection
through the JVM's DriverManager; turning a JDBC failure into a one-line error (transient for
connection trouble, by SQLSTATE); and :func:`redact_url` / :func:`first_line`, which keep user,
password and secret options out of logs, errors and targets. This module does not import
``export``: ``export`` imports it.
"""

from __future__ import annotations

import logging
import re
import uuid
from datetime import date
from pathlib import Path
from typing import Any, Protocol

from lakeforge.errors import LakeforgeError, TableError, TransientError

log = logging.getLogger(__name__)

STAGING_TABLE_MARK = "__lf_staging_"
DEFAULT_JDBC_DRIVER = "org.postgresql.Driver"
# Spark's own JDBC options: not connection properties of the driver-side connection.
_SPARK_JDBC_OPTIONS = {
    "driver", "url", "dbtable", "query", "batchsize", "isolationlevel", "truncate", "cascadetruncate",
    "createtableoptions", "createtablecolumntypes", "numpartitions", "querytimeout", "sessioninitstatement",
    "customschema", "pushdownpredicate",
}  # fmt: skip
_PG_MAX_IDENTIFIER = 63
# SQLSTATE classes worth a retry: connection (08), transaction rollback (40), resources (53), shutdown (57P).
_TRANSIENT_SQLSTATE = ("08", "40", "53", "57P")


class JdbcSpec(Protocol):
    """What the jdbc export reads of an export config (``export._Spec`` has it)."""

    @property
    def key(self) -> str: ...
    @property
    def url(self) -> str | None: ...
    @property
    def table(self) -> str | None: ...
    @property
    def user(self) -> str | None: ...
    @property
    def password(self) -> str | None: ...
    @property
    def options(self) -> dict[str, str]: ...
    @property
    def secrets(self) -> tuple[str, ...]: ...
    def where(self, project_root: Path) -> str: ...


def export_jdbc(
    spark: Any, frame: Any, spec: JdbcSpec, dates: tuple[date, ...], project_root: Path, *, date_column: str
) -> int:
    """Write a staging table with Spark, then swap the run dates' rows in one transaction; return the rows.

    Args:
        date_column: the replacement key: rows of ``table`` whose value is in ``dates`` are replaced.
    """
    target = _quote_table(str(spec.table))
    staging = _quote_table(_staging_name(str(spec.table)))
    conn = _connect(spark, spec, project_root)  # fails fast, before Spark writes anything
    try:
        try:
            writer = frame.write.format("jdbc").options(**spec.options).mode("overwrite")
            writer = writer.option("driver", spec.options.get("driver", DEFAULT_JDBC_DRIVER))
            writer = writer.option("url", str(spec.url)).option("dbtable", staging)
            for name in ("user", "password"):
                if getattr(spec, name) is not None:
                    writer = writer.option(name, getattr(spec, name))
            writer.save()
            columns = ", ".join(_quote(c) for c in frame.columns)
            in_dates = ", ".join(f"DATE '{d.isoformat()}'" for d in dates)  # our own formatting: safe
            stmt = conn.createStatement()
            stmt.execute(f"CREATE TABLE IF NOT EXISTS {target} AS SELECT * FROM {staging} WITH NO DATA")
            # Serialize exporters of this table (delete + insert must not interleave); readers go on.
            stmt.execute(f"LOCK TABLE {target} IN SHARE ROW EXCLUSIVE MODE")
            stmt.executeUpdate(f"DELETE FROM {target} WHERE {_quote(date_column)} IN ({in_dates})")
            rows = int(stmt.executeUpdate(f"INSERT INTO {target} ({columns}) SELECT {columns} FROM {staging}"))
            stmt.execute(f"DROP TABLE {staging}")
            conn.commit()
            return rows
        except BaseException as exc:
            _quietly(conn.rollback)
            left = None if _drop_quietly(conn, staging) else staging
            if isinstance(exc, Exception) and not isinstance(exc, LakeforgeError):
                raise _database_error(spark, exc, spec, project_root, "the write failed", left) from None
            raise
    finally:
        _quietly(conn.close)


def _connect(spark: Any, spec: JdbcSpec, project_root: Path) -> Any:
    """A driver-side JDBC connection (autocommit off), through the JVM's DriverManager."""
    jvm = spark._jvm
    driver = spec.options.get("driver", DEFAULT_JDBC_DRIVER)
    # Spark loads spark.jars in its own class loader; its registry makes the driver visible to DriverManager.
    _quietly(lambda: jvm.org.apache.spark.sql.execution.datasources.jdbc.DriverRegistry.register(driver))
    props = jvm.java.util.Properties()
    for name, value in spec.options.items():
        if name.lower() not in _SPARK_JDBC_OPTIONS:
            props.setProperty(name, value)
    for name in ("user", "password"):
        if getattr(spec, name) is not None:
            props.setProperty(name, getattr(spec, name))
    try:
        conn = jvm.java.sql.DriverManager.getConnection(str(spec.url), props)
        conn.setAutoCommit(False)
    except Exception as exc:
        raise _database_error(spark, exc, spec, project_root, "cannot connect") from None
    return conn


def _database_error(
    spark: Any, exc: BaseException, spec: JdbcSpec, project_root: Path, what: str, staging_left: str | None = None
) -> LakeforgeError:
    """A one-line error from a JDBC failure: transient for connection trouble, credentials never shown."""
    sql_state, message = _sql_failure(spark, exc)
    detail = (_redact(message, spec) if message else first_line(exc, spec)).rstrip(".")
    where = spec.where(project_root)
    if "No suitable driver" in detail:
        return TableError(
            f"{where}: {what}: no JDBC driver for this url in the JVM. Add the PostgreSQL JDBC jar to the "
            "Spark session (spark.conf: spark.jars: /usr/share/java/postgresql.jar)."
        )
    dropped = f"staging table {staging_left} could not be dropped: drop it" if staging_left else "staging table dropped"
    if sql_state.startswith(("08", "28")):
        text = (
            f"{where}: {what}: {detail} [SQLSTATE {sql_state}]. Check that the server at that url is up and "
            f"reachable, and the user and password (they come from ${{oc.env:…}} in {spec.key}: are those "
            "environment variables set and right?)."
        )
    else:
        state = f" [SQLSTATE {sql_state}]" if sql_state else ""
        text = (
            f"{where}: {what}: {detail}{state}. Nothing was changed: the transaction was rolled back and the "
            f"{dropped}. If the target table's columns differ from the export's, alter or drop it."
        )
    return TransientError(text) if sql_state.startswith(_TRANSIENT_SQLSTATE) else TableError(text)


def _sql_failure(spark: Any, exc: BaseException) -> tuple[str, str]:
    """The SQLSTATE and first message line of the first java.sql.SQLException under ``exc``, or ('', '')."""
    from py4j.java_gateway import is_instance_of

    java = getattr(exc, "java_exception", None) or getattr(exc, "_origin", None)  # py4j, or pyspark's captured
    gateway = spark.sparkContext._gateway
    for _ in range(20):  # a cause chain is short; never loop forever
        if java is None:
            break
        if is_instance_of(gateway, java, "java.sql.SQLException"):
            # A batch insert's real error is its next exception.
            chosen = java.getNextException() or java
            text = str(chosen.getMessage() or "").strip()
            return str(chosen.getSQLState() or ""), text.splitlines()[0] if text else ""
        java = java.getCause()
    return "", ""


def _drop_quietly(conn: Any, staging: str) -> bool:
    """Drop the staging table (after a rollback undid the transaction's own drop); never raise."""

    def drop() -> None:
        conn.createStatement().execute(f"DROP TABLE IF EXISTS {staging}")
        conn.commit()

    return _quietly(drop)


def _quietly(action: Any) -> bool:
    """Run a cleanup step, returning whether it worked; its failure must not hide the error being raised."""
    try:
        action()
    except Exception as exc:  # cleanup is best effort; the staging name makes leftovers easy to find
        log.debug("export cleanup step failed: %s", type(exc).__name__)
        return False
    return True


def _staging_name(table: str) -> str:
    """``<table>__lf_staging_<id>`` in the same schema, within PostgreSQL's 63-byte identifiers."""
    schema, _, name = table.rpartition(".")
    suffix = f"{STAGING_TABLE_MARK}{uuid.uuid4().hex[:8]}"
    short = name.encode()[: _PG_MAX_IDENTIFIER - len(suffix)].decode(errors="ignore")
    return f"{schema}.{short}{suffix}" if schema else f"{short}{suffix}"


def _quote(identifier: str) -> str:
    """A PostgreSQL quoted identifier."""
    return '"' + identifier.replace('"', '""') + '"'


def _quote_table(table: str) -> str:
    """``schema.table`` or ``table``, each part quoted."""
    return ".".join(_quote(part) for part in table.split("."))


# ---- redaction: credentials never shown -------------------------------------------------------


def redact_url(url: str) -> str:
    """The url without credentials: no ``user:pass@`` and no user, password or secret parameters."""
    url = re.sub(r"//[^/@?]*@", "//", url)
    base, _, query = url.partition("?")
    kept = [p for p in query.split("&") if p and not re.match(r"(user|.*password|.*secret|.*token)=", p, re.I)]
    return f"{base}?{'&'.join(kept)}" if kept else base


def _redact(text: str, spec: JdbcSpec) -> str:
    """``text`` with every credential of ``spec`` replaced by ***."""
    if spec.url:
        text = text.replace(spec.url, redact_url(spec.url))
    for secret in sorted(spec.secrets, key=len, reverse=True):
        text = re.sub(rf"(?<!\w){re.escape(secret)}(?!\w)", "***", text)
    return text


def first_line(exc: BaseException, spec: JdbcSpec) -> str:
    """The first line of an exception's message, credentials removed."""
    lines = str(exc).strip().splitlines()
    # py4j: "An error occurred while calling o12.save.\n: java.…Exception: the message"
    line = next((ln for ln in lines if ln.startswith(": ")), lines[0] if lines else type(exc).__name__)
    return _redact(line.removeprefix(": ").strip(), spec)
