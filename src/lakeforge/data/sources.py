"""Sources: a short-name registry of readers (csv, json, parquet, delta, jdbc), imported when chosen.

Text sources (csv, json) read every declared column as a string, with a corrupt-record column,
so unparsable values and malformed lines reach validation (and quarantine) instead of being
dropped or nulled silently: CSV through Spark's reader in PERMISSIVE mode, JSON lines through
lakeforge's strict line parser (``source_json``). Typed sources (parquet, delta) must match the
declared types exactly; jdbc values are cast to the declared types like text.

Blank lines are no records: in CSV a line of nothing but characters up to U+0020 (univocity skips
it), in JSON lines one of JSON whitespace only.
"""

from __future__ import annotations

import glob
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lakeforge.data.schema import ColumnSpec
from lakeforge.errors import DataValidationError, UsageError, did_you_mean

CORRUPT_COLUMN = "_corrupt_record"

# Short name -> "module:function"; the module is imported only when a dataset chooses it.
SOURCES: dict[str, str] = {
    "csv": "lakeforge.data.sources:read_csv",
    "json": "lakeforge.data.source_json:read_json",
    "parquet": "lakeforge.data.sources:read_parquet",
    "delta": "lakeforge.data.sources:read_delta",
    "jdbc": "lakeforge.data.source_jdbc:read_jdbc",
}

# Declared type -> Spark SQL simple string (what DataType.simpleString() reports).
SPARK_TYPES = {
    "string": "string",
    "int": "int",
    "long": "bigint",
    "float": "float",
    "double": "double",
    "boolean": "boolean",
    "date": "date",
    "timestamp": "timestamp",
    "decimal": "decimal(10,0)",
}


def spark_type_name(declared: str) -> str:
    """The Spark SQL type of a declared column type (``decimal(p,s)`` passes through)."""
    return SPARK_TYPES.get(declared, declared.replace(" ", ""))


@dataclass(frozen=True)
class SourceRequest:
    """Everything a reader needs: which dataset, its source config, declared columns, where."""

    dataset: str
    source: Any  # the dataset's ``source`` config node
    columns: Sequence[ColumnSpec]
    project_root: Path
    new_columns: str = "error"


@dataclass(frozen=True)
class SourceFrame:
    """A source read as a Spark DataFrame whose columns carry the source's names."""

    df: Any
    # True: columns already have the declared types (checked); False: cast them (text, jdbc).
    typed: bool
    corrupt_column: str | None = None
    # A column of check names the reader itself found (``SEP``-joined, null = none), e.g. an
    # object where JSON should hold a string: ``name:type``.
    checks_column: str | None = None


Reader = Callable[[Any, SourceRequest], SourceFrame]


def get_reader(fmt: str) -> Reader:
    """The reader registered under ``fmt``, importing its module now."""
    if fmt not in SOURCES:
        raise UsageError(f"unknown source format '{fmt}'{did_you_mean(fmt, SOURCES)}; allowed: {', '.join(SOURCES)}")
    module, func = SOURCES[fmt].split(":")
    reader: Reader = getattr(importlib.import_module(module), func)
    return reader


def resolve_source_path(req: SourceRequest) -> str:
    """The source path made absolute against the project root; a missing local file says how to get it."""
    raw = str(req.source.path)
    if "://" in raw and not raw.startswith("file://"):
        return raw  # object store: Spark reports what is missing
    path = Path(raw.removeprefix("file://"))
    if not path.is_absolute():
        path = req.project_root / path
    exists = bool(glob.glob(str(path))) if any(ch in str(path) for ch in "*?[") else path.exists()
    if not exists:
        raise DataValidationError(
            f"dataset '{req.dataset}': source '{raw}' not found at '{path}'; "
            f"fetch it with `dvc pull` or build it with `dvc repro` (or fix dataset.{req.dataset}.source.path)"
        )
    return str(path)


def reader_options(req: SourceRequest) -> dict[str, str]:
    """The declared reader options as strings."""
    return {str(k): str(v) for k, v in dict(req.source.options or {}).items()}


def check_columns(req: SourceRequest, found: Sequence[str]) -> None:
    """Every declared column present; undeclared ones refused unless ``new_columns: ignore``."""
    declared = [c.source for c in req.columns]
    missing = [name for name in declared if name not in found]
    if missing:
        hints = "".join(did_you_mean(m, [f for f in found if f not in declared]) for m in missing[:1])
        raise DataValidationError(
            f"dataset '{req.dataset}': declared column(s) {', '.join(repr(m) for m in missing)} missing "
            f"from the source{hints}; source columns: {', '.join(found) or 'none'}"
        )
    extra = [name for name in found if name not in declared and name != CORRUPT_COLUMN]
    if extra and req.new_columns != "ignore":
        raise DataValidationError(
            f"dataset '{req.dataset}': source has undeclared column(s) {', '.join(repr(e) for e in extra)}; "
            f"declare them under dataset.{req.dataset}.columns or set "
            f"dataset.{req.dataset}.new_columns: ignore"
        )


def string_schema(names: Sequence[str]) -> Any:
    """All-string struct plus the corrupt-record column."""
    from pyspark.sql import types as T  # noqa: N812

    fields = [T.StructField(n, T.StringType(), True) for n in names]
    return T.StructType([*fields, T.StructField(CORRUPT_COLUMN, T.StringType(), True)])


def permissive(reader: Any) -> Any:
    """Keep malformed records, with their raw text in the corrupt-record column."""
    return reader.option("mode", "PERMISSIVE").option("columnNameOfCorruptRecord", CORRUPT_COLUMN)


def empty_source(req: SourceRequest, path: str, detail: str = "no header, no rows") -> DataValidationError:
    """The error for a source without a single row."""
    return DataValidationError(f"dataset '{req.dataset}': source '{path}' is empty ({detail}); nothing written")


def read_failure(req: SourceRequest, exc: BaseException) -> DataValidationError | None:
    """Spark's failure to read the whole source, said plainly; None when ``exc`` is something else.

    Spark's CSV parser refuses a line of more than ``maxColumns`` fields even in PERMISSIVE mode:
    the job fails instead of quarantining the line.
    """
    if str(req.source.format) != "csv" or "MALFORMED_CSV_RECORD" not in str(exc):
        return None
    limit = int(reader_options(req).get("maxColumns", "20480"))
    return DataValidationError(
        f"dataset '{req.dataset}': a line of '{resolve_source_path(req)}' has more than {limit:,} fields; "
        f"nothing written. Spark's CSV parser reads at most maxColumns ({limit:,}) fields a line: fix that "
        f"line, or raise dataset.{req.dataset}.source.options.maxColumns"
    )


def read_csv(spark: Any, req: SourceRequest) -> SourceFrame:
    """CSV as strings: the header decides the column order, each declared column is checked for."""
    path = resolve_source_path(req)
    options = reader_options(req)
    if options.get("header", "false").lower() == "true":
        # Reading without a schema (and without inference) only looks at the first line.
        header = spark.read.options(**options).option("inferSchema", "false").csv(path).columns
        if not header:
            raise empty_source(req, path)
        check_columns(req, header)
    else:
        header = [c.source for c in req.columns]
    options.pop("inferSchema", None)
    reader = permissive(spark.read.options(**options)).option("enforceSchema", "true")
    df = reader.schema(string_schema(header)).csv(path)
    return SourceFrame(df, typed=False, corrupt_column=CORRUPT_COLUMN)


def check_types(req: SourceRequest, df: Any) -> None:
    """Declared vs actual types of a typed source; names dataset, column, expected and found."""
    check_columns(req, df.columns)
    actual = {f.name: f.dataType.simpleString() for f in df.schema.fields}
    for col in req.columns:
        expected = spark_type_name(col.type)
        if actual[col.source] != expected:
            raise DataValidationError(
                f"dataset '{req.dataset}': column '{col.source}' has type {actual[col.source]} in the source, "
                f"declared {expected}; fix the source or dataset.{req.dataset}.columns ('{col.name}')"
            )


def read_parquet(spark: Any, req: SourceRequest) -> SourceFrame:
    """Parquet files: typed, checked against the declaration."""
    df = spark.read.options(**reader_options(req)).parquet(resolve_source_path(req))
    check_types(req, df)
    return SourceFrame(df, typed=True)


def read_delta(spark: Any, req: SourceRequest) -> SourceFrame:
    """A Delta table folder (``<root>/<layer>/<name>``), read through lakeforge's reader."""
    from lakeforge.lake.catalog import Catalog, TableName
    from lakeforge.lake.delta import read_table

    folder = Path(resolve_source_path(req))
    catalog = Catalog(folder.parent.parent, allow_external=True)  # a source is only read, never written
    if not catalog.exists(TableName(folder.parent.name, folder.name)):
        raise DataValidationError(f"dataset '{req.dataset}': '{folder}' is not a Delta table (no _delta_log)")
    version = reader_options(req).get("version")
    # The folder need not sit under a lakeforge layer, so build the name without parsing it.
    name: Any = TableName(folder.parent.name, folder.name)
    df = read_table(spark, catalog, name, int(version) if version is not None else None)
    check_types(req, df)
    return SourceFrame(df, typed=True)
