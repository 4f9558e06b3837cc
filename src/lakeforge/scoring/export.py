"""Exports: a copy of each scored run date for a consumer, replaced idempotently per run date.

The scoring job writes ``predictions.<model>`` and then calls :func:`export_predictions` with the
rows of the run dates it scored. Each export declared under ``model.scoring.exports`` gets
those rows (only the served ones unless ``served_only: false``; only ``columns`` if given,
plus ``run_date``, the replacement key) and replaces exactly those run dates:

``parquet`` / ``csv``
    ``<path>/run_date=YYYY-MM-DD/part-*.parquet`` (or ``.csv`` with a header row, RFC 4180
    quoting), a folder per run date that Spark, pyarrow, DuckDB and pandas read as a
    hive-partitioned table. Spark writes every date into ``<path>/_staging/<uuid>/`` first;
    then, per date, the new folder and the old one are swapped in one atomic step (Linux's
    ``renameat2(RENAME_EXCHANGE)``) and the old one deleted. A reader or a crash never sees a
    half-written or a missing date, only the old complete folder or the new one. (Elsewhere
    the swap is two renames: a crash between them leaves no folder for that date and a
    ``_staging`` leftover holding both versions.) Readers skip ``_``-folders; the next export
    deletes the staging folders that crashed exports of this machine left behind, and warns
    about any other. A date with no rows gets an empty folder.
    Other dates are never touched. Paths are local (the driver renames the folders).

``jdbc`` (PostgreSQL)
    Spark writes the rows to a fresh staging table ``<table>__lf_staging_<id>``; then one
    transaction on the driver creates ``table`` if missing (same columns as the staging
    table), locks it against other exporters, deletes its rows of the run dates, inserts the
    staging rows and drops the staging table. On any error the transaction is rolled back (the
    target keeps its previous rows) and the staging table dropped. Identifiers are quoted as
    written (so they are case-sensitive). User and password never appear in logs, errors or
    :attr:`ExportResult.target`.

csv and jdbc cannot hold nested values: ``reasons`` (and any other array, struct or map
column) is written as JSON text; parquet keeps the native nested type.

The jdbc export, and the redaction of credentials used by every export's messages, live in
:mod:`lakeforge.scoring.export_jdbc`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from lakeforge.config.schema_ml import EXPORT_FORMATS
from lakeforge.errors import ConfigError, SchemaMismatchError, TableError, did_you_mean
from lakeforge.lake.confine import confine
from lakeforge.scoring.export_jdbc import export_jdbc, first_line, redact_url

log = logging.getLogger(__name__)

RUN_DATE = "run_date"
SERVED = "served"
STAGING_DIR = "_staging"
_FILE_DEFAULTS: dict[str, dict[str, str]] = {
    "parquet": {},
    # escape='"' doubles quotes inside quoted values (RFC 4180), as Python's csv and pandas expect.
    "csv": {"header": "true", "escape": '"'},
}
_SECRET_OPTION = re.compile(r"password|secret|token", re.IGNORECASE)


@dataclass(frozen=True)
class ExportResult:
    """What one export wrote."""

    format: str
    target: str  # folder path, or "<jdbc url without credentials> table <name>"
    rows: int
    run_dates: tuple[date, ...]


@dataclass(frozen=True)
class _Spec:
    """One export config, read and checked."""

    key: str  # e.g. model.scoring.exports[0], for messages
    format: str
    path: str | None
    url: str | None
    table: str | None
    user: str | None
    password: str | None
    options: dict[str, str]
    columns: tuple[str, ...]
    served_only: bool

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never be shown: user, password and secret-looking options."""
        hidden = [self.user, self.password, *(v for k, v in self.options.items() if _SECRET_OPTION.search(k))]
        return tuple(v for v in hidden if v)

    def target(self, project_root: Path) -> str:
        """Where the export goes, safe to show."""
        if self.format == "jdbc":
            return f"{redact_url(str(self.url))} table {self.table}"
        return str(_folder(str(self.path), project_root))

    def where(self, project_root: Path) -> str:
        """Message prefix naming the export."""
        return f"{self.key} ({self.format}) to '{self.target(project_root)}'"


def export_predictions(
    spark: Any,
    frame: Any,
    exports: Sequence[Any] | None,
    run_dates: Sequence[date],
    project_root: Path,
    *,
    config_key: str = "model.scoring.exports",
    lake_root: str | Path | None = None,
    allow_external: bool = False,
) -> list[ExportResult]:
    """Write each declared export of ``frame`` (the rows of these run dates), replacing each run date idempotently.

    Every export is checked before any is written. Rows of ``frame`` outside ``run_dates`` are ignored.

    Args:
        exports: ``ExportConfig`` nodes (OmegaConf) or plain dicts.
        run_dates: the dates to replace; one with no rows in ``frame`` is emptied.
        project_root: relative export paths resolve against it.
        config_key: key path of ``exports`` in the config, for error messages.
        lake_root: a local lake root; export folders may lie under it as well as under the project.
        allow_external: ``storage.allow_external_locations``: folders may lie anywhere.
    """
    dates = tuple(sorted({_as_date(d) for d in run_dates}))
    specs = [_read_spec(export, f"{config_key}[{i}]") for i, export in enumerate(exports or [])]
    roots = [Path(project_root)] + ([Path(lake_root)] if lake_root is not None else [])
    for spec in specs:
        if spec.format != "jdbc":
            what = f"the {spec.format} export folder"
            confine(
                _folder(str(spec.path), project_root),
                roots,
                what=what,
                key=f"{spec.key}.path",
                allow_external=allow_external,
            )
    planned = [(spec, _select(frame, spec, dates)) for spec in specs]
    results = []
    for spec, rows_frame in planned:
        target = spec.target(project_root)
        if not dates:
            rows = 0
        elif spec.format == "jdbc":
            rows = export_jdbc(spark, rows_frame, spec, dates, project_root, date_column=RUN_DATE)
        else:
            rows = _export_files(rows_frame, spec, dates, project_root)
        log.info("export %s: %d rows of run dates %s -> %s", spec.key, rows, _date_span(dates), target)
        results.append(ExportResult(spec.format, target, rows, dates))
    return results


# ---- plan: read and check the configs -------------------------------------------------------


def _read_spec(export: Any, key: str) -> _Spec:
    """Read one export config (DictConfig, dict or dataclass); raise ConfigError naming the bad key."""

    def get(name: str, default: Any = None) -> Any:
        try:
            value = export.get(name, default) if hasattr(export, "get") else getattr(export, name, default)
        except Exception as exc:  # an unresolvable ${oc.env:…}: say which, never echo a value
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            first = re.sub(r"^\w+ raised while resolving interpolation: ", "", first).strip('"')
            hint = "; set that variable in the job's environment" if "Environment variable" in first else ""
            raise ConfigError(f"cannot be resolved: {first}{hint}", key=f"{key}.{name}") from None
        return default if value is None else value

    fmt = str(get("format", "")).lower()
    if fmt not in EXPORT_FORMATS:
        allowed = ", ".join(EXPORT_FORMATS)
        raise ConfigError(
            f"'{fmt}' is not an export format{did_you_mean(fmt, EXPORT_FORMATS)} (allowed: {allowed})",
            key=f"{key}.format",
        )
    for name in ("url", "table") if fmt == "jdbc" else ("path",):
        if not str(get(name, "")).strip():
            raise ConfigError(f"a {fmt} export needs '{name}'", key=f"{key}.{name}")
    spec = _Spec(
        key=key,
        format=fmt,
        path=_text(get("path")),
        url=_text(get("url")),
        table=_text(get("table")),
        user=_text(get("user")),
        password=_text(get("password")),
        options={str(k): _option_text(v) for k, v in dict(get("options", {})).items()},
        columns=tuple(dict.fromkeys(str(c) for c in get("columns", []))),
        served_only=bool(get("served_only", True)),
    )
    if spec.path and "://" in spec.path:
        raise ConfigError(f"'{spec.path}' is a URI; file exports go to a local folder path", key=f"{key}.path")
    if spec.url and not spec.url.startswith("jdbc:postgresql:"):
        shown = redact_url(spec.url)
        raise ConfigError(f"'{shown}': jdbc exports support PostgreSQL (jdbc:postgresql://…)", key=f"{key}.url")
    return spec


def _select(frame: Any, spec: _Spec, dates: tuple[date, ...]) -> Any:
    """The rows and columns this export writes (lazy); checks the columns it needs exist."""
    from pyspark.sql import functions as F  # noqa: N812

    available = list(frame.columns)
    if RUN_DATE not in available:
        raise SchemaMismatchError(f"the predictions given to {spec.key} have no '{RUN_DATE}' column")
    if spec.served_only:
        if SERVED not in available:
            raise ConfigError(
                f"the predictions have no '{SERVED}' column; set served_only: false to export every row",
                key=f"{spec.key}.served_only",
            )
        frame = frame.where(frame[SERVED])  # false and null: not served
    if spec.columns:
        for j, name in enumerate(spec.columns):
            if name not in available:
                raise ConfigError(
                    f"'{name}' is not a column of the predictions{did_you_mean(name, available)} "
                    f"(available: {', '.join(available)})",
                    key=f"{spec.key}.columns[{j}]",
                )
        keep = list(dict.fromkeys([*spec.columns, RUN_DATE]))
        frame = frame.select(*[frame[c] for c in keep])
    frame = frame.where(F.col(RUN_DATE).isin(list(dates))) if dates else frame.limit(0)
    return _nested_as_json(frame) if spec.format in ("csv", "jdbc") else frame


def _nested_as_json(frame: Any) -> Any:
    """Arrays, structs and maps as JSON text (``reasons`` for csv and jdbc); other columns unchanged."""
    from pyspark.sql import functions as F  # noqa: N812
    from pyspark.sql.types import ArrayType, MapType, StructType

    nested = (ArrayType, MapType, StructType)
    return frame.select(
        *[
            F.to_json(frame[f.name]).alias(f.name) if isinstance(f.dataType, nested) else frame[f.name]
            for f in frame.schema.fields
        ]
    )


# ---- parquet / csv: a folder per run date, swapped in by renames ------------------------------


def _export_files(frame: Any, spec: _Spec, dates: tuple[date, ...], project_root: Path) -> int:
    """Write ``frame`` under a staging folder, then swap each run date's folder in; return the rows."""
    from pyspark.sql import Observation
    from pyspark.sql import functions as F  # noqa: N812

    root = _folder(str(spec.path), project_root)
    _clean_leftovers(root / STAGING_DIR)
    staging = root / STAGING_DIR / _staging_name()
    counted = Observation(f"lakeforge_export_{uuid.uuid4().hex}")
    writer = frame.observe(counted, F.count(F.lit(1)).alias("rows")).write.partitionBy(RUN_DATE)
    try:
        try:
            writer.format(spec.format).options(**{**_FILE_DEFAULTS[spec.format], **spec.options}).save(str(staging))
            rows = int(counted.get["rows"])
        except Exception as exc:
            raise TableError(
                f"{spec.where(project_root)}: Spark could not write the export: {first_line(exc, spec)}. "
                "Check that the folder is writable and the options are valid; no run date was changed."
            ) from None
        for run_date in dates:
            _swap_in(staging, root, run_date, spec, project_root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        with contextlib.suppress(OSError):  # only when no other export's staging is in there
            staging.parent.rmdir()
    return rows


def _swap_in(staging: Path, root: Path, run_date: date, spec: _Spec, project_root: Path) -> None:
    """Replace ``root/run_date=…`` with the staged folder (an empty one when the date has no rows)."""
    name = f"{RUN_DATE}={run_date.isoformat()}"
    new, target, aside = staging / name, root / name, staging / f"replaced-{name}"
    try:
        new.mkdir(exist_ok=True)
        for checksum in new.glob(".*.crc"):  # Hadoop's local checksums: noise for consumers
            checksum.unlink()
        if target.exists() and _exchange(new, target):
            shutil.rmtree(new, ignore_errors=True)  # the old folder, swapped out in the same step
            return
        moved_aside = target.exists()
        if moved_aside:
            os.rename(target, aside)
        try:
            os.rename(new, target)
        except OSError:
            if moved_aside:
                os.rename(aside, target)  # put the old complete folder back
            raise
    except OSError as exc:
        raise TableError(
            f"{spec.where(project_root)}: cannot replace '{target}': {exc.strerror or exc}. "
            "Check the folder's permissions; the run date keeps its previous files."
        ) from None
    shutil.rmtree(aside, ignore_errors=True)


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing folders in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``).

    Returns False where the call or the flag is not supported (other systems, some file
    systems); the caller then falls back to two renames, with a moment in which the date has no
    folder. A reader, or a SIGKILL, never sees that moment on Linux.
    """
    import ctypes
    import errno

    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _staging_name() -> str:
    """``<host>-<pid>-<uuid>``: a later export can tell a crashed export's folder from a running one's."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex}"


def _crashed_here(name: str) -> bool:
    """True when staging folder ``name`` belongs to a process of this machine that no longer runs."""
    host, _, rest = name.rpartition("-")[0].rpartition("-")
    if host != socket.gethostname() or not rest.isdigit():
        return False
    try:
        os.kill(int(rest), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    return False


def _clean_leftovers(staging_root: Path) -> None:
    """Delete the staging folders of crashed exports of this machine; warn about any other leftover."""
    leftovers = sorted(staging_root.iterdir()) if staging_root.is_dir() else []
    crashed = [p for p in leftovers if _crashed_here(p.name)]
    for folder in crashed:
        shutil.rmtree(folder, ignore_errors=True)
    if crashed:
        log.info("'%s': deleted %d staging folder(s) of crashed exports", staging_root, len(crashed))
    others = len(leftovers) - len(crashed)
    if others:
        log.warning(
            "'%s' holds %d staging folder(s) of running exports or of other machines; delete them when no "
            "export is running",
            staging_root,
            others,
        )


# ---- small helpers ------------------------------------------------------------------------------


def _folder(path: str, project_root: Path) -> Path:
    """An export folder: relative paths resolve against the project root."""
    folder = Path(path).expanduser()
    return folder if folder.is_absolute() else Path(project_root) / folder


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _option_text(value: Any) -> str:
    """Spark options are strings; booleans as Spark spells them."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _as_date(value: date | str) -> date:
    """A run date from a date, a datetime or an ISO string."""
    if isinstance(value, datetime):
        return value.date()
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _date_span(dates: tuple[date, ...]) -> str:
    if not dates:
        return "(none)"
    return dates[0].isoformat() if len(dates) == 1 else f"{dates[0]}..{dates[-1]} ({len(dates)})"
