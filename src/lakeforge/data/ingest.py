"""Ingest: read a declared dataset, validate every row, write raw.<name> and quarantine.<name>.

Rows that pass every check land in ``raw.<name>`` (declared types, declared partitions); the
others in ``quarantine.<name>`` as raw strings with the checks they failed.

Re-ingesting never duplicates. A partitioned dataset replaces exactly the partitions its source
covers, in both tables: ingesting February's file leaves January alone, and ingesting January
again replaces January's accepted and quarantined rows (the quarantine is partitioned by
``_raw_partition``, e.g. ``month=1``, or ``month=null`` where a bad row's partition can't be
computed). An unpartitioned dataset is one batch: both tables are overwritten.

A partition value becomes a folder name, so a row whose value can't be one fails
``<column>:partition`` and is quarantined: an empty string or ``__HIVE_DEFAULT_PARTITION__`` (both
read back as null), a NUL character, or a folder name over 255 bytes once Spark has escaped it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from lakeforge.data.dataset_checks import (
    Outcome,
    check_bad_fraction,
    check_freshness,
    check_row_count,
    summarise,
)
from lakeforge.data.schema import PARTITION, ColumnSpec, check_name, column_specs
from lakeforge.data.sources import SourceRequest, get_reader, read_failure
from lakeforge.data.validate import FAILED, RAW_RECORD, duplicate_keys, failed_checks, raw_name, validate
from lakeforge.errors import ConfigError, DataValidationError, LakeforgeError, SchemaMismatchError, did_you_mean
from lakeforge.lake.catalog import Catalog
from lakeforge.lake.delta import Lineage, table_info, write_table

log = logging.getLogger(__name__)

RUN_ID = "_ingest_run_id"
INGESTED_AT = "_ingested_at"
RAW_PARTITION = "_raw_partition"
# Characters Spark writes as %XX in a partition folder name (ExternalCatalogUtils.charToEscape).
_ESCAPED = r"[\x01-\x1f\"#%'*/:=?\\\x7f{\[\]^]"
# Bytes in one folder name on Linux and macOS file systems (NAME_MAX).
MAX_FOLDER_NAME = 255
_HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"


@dataclass(frozen=True)
class IngestReport:
    """What one dataset's ingest wrote."""

    dataset: str
    rows_in: int
    rows_accepted: int
    rows_quarantined: int
    raw_table: str
    raw_version: int
    quarantine_table: str
    quarantine_version: int
    check_failures: dict[str, int] = field(default_factory=dict)


def _unique_key(dataset_cfg: Any) -> list[str]:
    """The declared unique key; None means the primary key."""
    unique = dataset_cfg.checks.unique
    return [str(k) for k in (dataset_cfg.primary_key if unique is None else unique)]


def _partition_exprs(dataset_cfg: Any) -> dict[str, Any]:
    """Each partition column of the raw table as an expression over the typed columns."""
    from pyspark.sql import functions as F  # noqa: N812

    derived = {str(d.name): str(d.expr) for d in dataset_cfg.derived_columns}
    return {str(p): F.expr(derived[str(p)]) if str(p) in derived else F.col(f"`{p}`") for p in dataset_cfg.partition_by}


def _folder_bytes(prefix: str, value: Any) -> Any:
    """Bytes of the folder ``<prefix><value>`` as Spark names it (escaping adds two bytes a character)."""
    from pyspark.sql import functions as F  # noqa: N812

    escaped = F.length(value) - F.length(F.regexp_replace(value, _ESCAPED, ""))
    return F.lit(len(prefix.encode())) + F.octet_length(value) + escaped * 2


def _storable(column: str, value: Any) -> Any:
    """Whether a partition value (a string column) reads back as itself from its folder name."""
    fits = (value != "") & (value != _HIVE_NULL) & ~value.contains("\x00")
    return value.isNull() | (fits & (_folder_bytes(f"{column}=", value) <= MAX_FOLDER_NAME))


def _partition_checked(validated: Any, parts: dict[str, Any]) -> Any:
    """``validated`` with ``<column>:partition`` added to the failed checks of rows a folder can't hold."""
    from pyspark.sql import functions as F  # noqa: N812

    unusable = {c: ~_storable(c, e.cast("string")) for c, e in parts.items()}
    names = F.array(*[F.when(bad, F.lit(check_name(c, PARTITION))) for c, bad in unusable.items()])
    any_unusable = F.lit(False)
    for bad in unusable.values():
        any_unusable = any_unusable | bad
    # Only the rare unusable row pays for the array filter.
    checks = F.when(any_unusable, F.concat(F.col(FAILED), F.array_compact(names))).otherwise(F.col(FAILED))
    return validated.withColumn(FAILED, checks)


def _raw_partition(parts: dict[str, Any]) -> Any:
    """The quarantine's partition label, ``month=1`` (``month=null`` when it can't be computed or
    stored); a label too long for a folder name is replaced by its SHA-256."""
    from pyspark.sql import functions as F  # noqa: N812

    labels = []
    for column, expr in parts.items():
        value = expr.cast("string")
        labels.append(F.concat(F.lit(f"{column}="), F.coalesce(F.when(_storable(column, value), value), F.lit("null"))))
    label = F.concat_ws("/", *labels)
    fits = _folder_bytes(f"{RAW_PARTITION}=", label) <= MAX_FOLDER_NAME
    return F.when(fits, label).otherwise(F.concat(F.lit("sha256="), F.sha2(label, 256)))


def _touched_partitions(validated: Any, parts: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The raw and quarantine partitions this batch covers (a distinct over the cached rows)."""
    rows = validated.select(*[e.alias(c) for c, e in parts.items()], _raw_partition(parts).alias(RAW_PARTITION))
    found = rows.distinct().collect()
    raw = [{c: row[c] for c in parts} for row in found]
    quarantine = [{RAW_PARTITION: label} for label in sorted({row[RAW_PARTITION] for row in found})]
    return raw, quarantine


def _check_layouts(catalog: Catalog, name: str, dataset_cfg: Any) -> None:
    """Existing raw/quarantine tables must have the partitioning this declaration writes, or the
    ingest stops before writing anything (a table can't be re-partitioned in place)."""
    parts = [str(p) for p in dataset_cfg.partition_by]
    for table, wanted in ((f"raw.{name}", parts), (f"quarantine.{name}", [RAW_PARTITION] if parts else [])):
        if not catalog.exists(table):
            continue
        have = table_info(catalog, table).partition_by
        if have != wanted:
            raise SchemaMismatchError(
                f"dataset '{name}': table '{table}' is partitioned by {have or 'nothing'}, but "
                f"dataset.{name}.partition_by now writes it by {wanted or 'nothing'}; nothing written. "
                f"A table can't be re-partitioned in place: move '{catalog.table_uri(table)}' "
                "aside (or delete it) and re-run the ingest to rebuild it from the source"
            )


def _quarantine_frame(
    validated: Any, src_typed: bool, specs: Sequence[ColumnSpec], parts: dict[str, Any], run_id: str, now: datetime
) -> Any:
    """Bad rows as raw strings, with their failed checks, the run id and the ingest time."""
    from pyspark.sql import functions as F  # noqa: N812

    def value(spec: ColumnSpec) -> Any:
        typed = F.col(spec.name)
        if spec.type in ("float", "double"):
            # A NaN in a typed source is kept as null, as for every value pandera sees as missing.
            typed = F.when(~F.isnan(typed), typed)
        if src_typed:
            return typed.cast("string")
        # The raw text where a row check failed; a row failing only the unique key parsed
        # cleanly, so its typed values say the same.
        return F.coalesce(F.col(raw_name(spec.name)), typed.cast("string"))

    values = [value(s).alias(s.name) for s in specs]
    return validated.filter(F.size(F.col(FAILED)) > 0).select(
        *values,
        F.col(RAW_RECORD),
        F.col(FAILED),
        F.lit(run_id).alias(RUN_ID),
        F.lit(now).cast("timestamp").alias(INGESTED_AT),
        *([_raw_partition(parts).alias(RAW_PARTITION)] if parts else []),
    )


def _raw_frame(validated: Any, specs: Sequence[ColumnSpec], dataset_cfg: Any) -> Any:
    """Accepted rows: declared columns with declared types, plus the derived columns."""
    from pyspark.sql import functions as F  # noqa: N812

    accepted = validated.filter(F.size(F.col(FAILED)) == 0)
    derived = [F.expr(str(d.expr)).alias(str(d.name)) for d in dataset_cfg.derived_columns]
    return accepted.select(*[F.col(s.name) for s in specs], *derived)


def ingest(
    spark: Any,
    catalog: Catalog,
    name: str,
    dataset_cfg: Any,
    project_root: Path,
    lineage: Lineage,
    run_date: date | None = None,
) -> IngestReport:
    """Validate one dataset and write its raw and quarantine tables; nothing is written when it fails."""
    from pyspark import StorageLevel

    _check_layouts(catalog, name, dataset_cfg)

    specs = column_specs(dataset_cfg)
    request = SourceRequest(name, dataset_cfg.source, specs, Path(project_root), str(dataset_cfg.new_columns))
    source = get_reader(str(dataset_cfg.source.format))(spark, request)
    freshness = dataset_cfg.checks.freshness
    key = _unique_key(dataset_cfg)
    # Every count, the examples and both writes reuse one checked copy: the source is read once.
    checked = validate(source, specs, name).persist(StorageLevel.MEMORY_AND_DISK)
    dups = None
    try:
        # Duplicate keys from the cached key columns (usually none, or a small set joined back).
        dups = duplicate_keys(checked, key)
        parts = _partition_exprs(dataset_cfg)
        validated = failed_checks(checked, dups, key)
        if parts:
            validated = _partition_checked(validated, parts)
        outcome = summarise(validated, str(freshness.column) if freshness is not None else None)
        check_row_count(name, outcome.rows_in, dataset_cfg.checks.row_count)
        quarantine = _quarantine_frame(validated, source.typed, specs, parts, lineage.job_run_id, datetime.now(UTC))
        max_bad = float(dataset_cfg.max_bad_fraction) if dataset_cfg.quarantine else 0.0
        check_bad_fraction(name, outcome, max_bad, quarantine, [s.name for s in specs])
        if freshness is not None:
            check_freshness(name, freshness, outcome.newest, run_date)
        touched = _touched_partitions(validated, parts) if parts else None
        return _write(validated, quarantine, specs, dataset_cfg, catalog, name, lineage, outcome, touched)
    except LakeforgeError:
        raise
    except Exception as exc:
        # Spark fails a whole read on some inputs (a CSV line past maxColumns): say which and why.
        failure = read_failure(request, exc)
        if failure is None:
            raise
        raise failure from exc
    finally:
        if dups is not None:
            dups.unpersist()
        checked.unpersist()


def _write(
    validated: Any,
    quarantine: Any,
    specs: Sequence[ColumnSpec],
    dataset_cfg: Any,
    catalog: Catalog,
    name: str,
    lineage: Lineage,
    outcome: Outcome,
    touched: tuple[list[dict[str, Any]], list[dict[str, Any]]] | None,
) -> IngestReport:
    """Replace the batch's partitions of raw.<name> and quarantine.<name> (or both tables, when
    unpartitioned); check that every row landed exactly once."""
    raw_table, quarantine_table = f"raw.{name}", f"quarantine.{name}"
    partition_by = [str(p) for p in dataset_cfg.partition_by]
    raw_frame = _raw_frame(validated, specs, dataset_cfg)
    if touched is None:
        raw = write_table(raw_frame, catalog, raw_table, mode="overwrite", lineage=lineage)
        bad = write_table(quarantine, catalog, quarantine_table, mode="overwrite", lineage=lineage)
    else:
        raw_parts, bad_parts = touched
        raw = write_table(
            raw_frame,
            catalog,
            raw_table,
            mode="overwrite_partitions",
            partition_by=partition_by,
            lineage=lineage,
            replace_partitions=raw_parts,
        )
        bad = write_table(
            quarantine,
            catalog,
            quarantine_table,
            mode="overwrite_partitions",
            partition_by=[RAW_PARTITION],
            lineage=lineage,
            replace_partitions=bad_parts,
        )
    if raw.rows + bad.rows != outcome.rows_in:
        raise DataValidationError(
            f"dataset '{name}': row accounting failed: {outcome.rows_in:,} rows in, but {raw.rows:,} accepted "
            f"+ {bad.rows:,} quarantined were written (raw v{raw.version}, quarantine v{bad.version}); "
            f"re-run the ingest"
        )
    log.info(
        "ingest %s: %d rows in, %d accepted (%s v%d), %d quarantined (%s v%d)",
        name,
        outcome.rows_in,
        raw.rows,
        raw_table,
        raw.version,
        bad.rows,
        quarantine_table,
        bad.version,
    )
    return IngestReport(
        dataset=name,
        rows_in=outcome.rows_in,
        rows_accepted=raw.rows,
        rows_quarantined=bad.rows,
        raw_table=raw_table,
        raw_version=raw.version,
        quarantine_table=quarantine_table,
        quarantine_version=bad.version,
        check_failures=outcome.check_failures,
    )


def _run_date(cfg: Any) -> date | None:
    """The composed run_date (ISO), if any."""
    value = cfg.get("run_date")
    return date.fromisoformat(str(value)) if value else None


def ingest_dataset(spark: Any, cfg: Any, catalog: Catalog, name: str, lineage: Lineage) -> IngestReport:
    """Ingest the composed dataset ``name`` (``cfg.dataset[name]``)."""
    datasets = cfg.get("dataset") or {}
    if name not in datasets:
        raise ConfigError(
            f"'{name}' is not a composed dataset{did_you_mean(name, list(datasets))} "
            f"(composed: {', '.join(datasets) or 'none'})",
            key="dataset",
        )
    return ingest(spark, catalog, name, datasets[name], Path(str(cfg.project_root)), lineage, _run_date(cfg))


def ingest_all(
    spark: Any, cfg: Any, catalog: Catalog, lineage: Lineage, names: Sequence[str] | None = None
) -> list[IngestReport]:
    """Ingest ``names`` (default: the pipeline's datasets, else every composed one), in order."""
    if names is None:
        pipeline = cfg.get("pipeline")
        chosen = list(pipeline.get("datasets") or []) if pipeline is not None else []
        names = chosen or list(cfg.get("dataset") or {})
    return [ingest_dataset(spark, cfg, catalog, str(n), lineage) for n in names]
