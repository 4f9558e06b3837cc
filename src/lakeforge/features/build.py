"""Build ``features.<feature_set>``: compute a date range point-in-time, replace its partitions, save
the feature statistics of the build (``features.<feature_set>__stats``) for monitoring's reference."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from lakeforge.errors import ConfigError, FeatureError
from lakeforge.features.compute import EVENT_DATE, compute_features
from lakeforge.features.spec import FeatureSetSpec, feature_set_spec
from lakeforge.features.stats import feature_stats, write_stats
from lakeforge.lake.catalog import Catalog
from lakeforge.lake.delta import Lineage, read_table, write_table
from lakeforge.lake.delta_common import open_table, snapshot_files

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeatureBuild:
    """What one build wrote."""

    feature_set: str
    table: str
    version: int
    rows: int
    start: date
    end: date
    stats_table: str
    features: int


class RawTables:
    """Dataset name -> its ``raw.<name>`` table as a Spark DataFrame, at a pinned version or the
    latest; ``versions`` records each table and version read (the lineage of what is built from them).
    """

    def __init__(self, spark: Any, catalog: Catalog, pinned: Mapping[str, int] | None = None) -> None:
        self.spark = spark
        self.catalog = catalog
        self.pinned = dict(pinned or {})
        self.versions: dict[str, int] = {}

    def __call__(self, name: str) -> Any:
        table = f"raw.{name}"
        if not self.catalog.exists(table):
            raise FeatureError(
                f"table '{table}' does not exist; run `lakeforge run ingest` (or `dvc repro ingest`) first"
            )
        version = self.versions.get(table, self.pinned.get(table))
        if version is None:
            version = int(open_table(self.catalog, self.catalog.require(table)).version())
        self.versions[table] = version
        return read_table(self.spark, self.catalog, table, version)


def spec_from_config(cfg: Any, name: str | None = None) -> FeatureSetSpec:
    """The composed feature set (``name`` must match it when given)."""
    fs = cfg.get("features")
    if fs is None:
        raise ConfigError("no feature set is composed; add '- /features: <name>' to the pipeline", key="features")
    if name is not None and str(fs.name) != name:
        raise ConfigError(
            f"feature set '{name}' is not composed (the pipeline's is '{fs.name}'); "
            f"choose it with the override features={name}",
            key="features",
        )
    return feature_set_spec(fs, cfg.get("dataset"))


def date_range(cfg: Any, start: str | None = None, end: str | None = None) -> tuple[date, date]:
    """[start, end] from arguments, else ``start_date``/``end_date``, else the single ``run_date``."""
    start = start or cfg.get("start_date")
    end = end or cfg.get("end_date")
    if start is None and end is None and cfg.get("run_date"):
        start = end = cfg.get("run_date")
    if start is None or end is None:
        raise ConfigError(
            "which dates? set run_date=YYYY-MM-DD for one day, or start_date=… end_date=… for a range", key="run_date"
        )
    try:
        first, last = date.fromisoformat(str(start)), date.fromisoformat(str(end))
    except ValueError as exc:
        raise ConfigError(f"dates must be YYYY-MM-DD: {exc}", key="start_date") from exc
    if last < first:
        raise ConfigError(f"end date {last} is before start date {first}", key="end_date")
    return first, last


def build_features(
    spark: Any, cfg: Any, catalog: Catalog, lineage: Lineage, start: date, end: date, name: str | None = None
) -> FeatureBuild:
    """Compute and write the feature table's partitions for [start, end]; one commit, then the stats."""
    spec = spec_from_config(cfg, name)
    tables = RawTables(spark, catalog)
    frame = compute_features(spark, spec, tables, start, end, project_root=Path(str(cfg.project_root)))
    lineage = replace(lineage, inputs={**lineage.inputs, **tables.versions})
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    # One file per date: without this every task writes a small file into every date it holds.
    frame = frame.repartition(frame[EVENT_DATE])
    table = f"features.{spec.name}"
    result = write_table(
        frame,
        catalog,
        table,
        mode="overwrite_partitions",
        partition_by=[EVENT_DATE],
        replace_partitions=[{EVENT_DATE: d} for d in days],
        lineage=lineage,
    )
    log.info("features %s: %d rows for %s..%s (version %d)", spec.name, result.rows, start, end, result.version)
    written = read_table(spark, catalog, table, result.version)
    built = written.where((written[EVENT_DATE] >= start) & (written[EVENT_DATE] <= end))
    stats_table = f"features.{spec.name}__stats"
    stats = feature_stats(built, spec.feature_names)
    write_stats(
        spark,
        catalog,
        stats_table,
        stats,
        feature_set=spec.name,
        build_id=lineage.job_run_id,
        start=start,
        end=end,
        source_version=result.version,
        lineage=replace(lineage, inputs={table: result.version}),
    )
    return FeatureBuild(spec.name, table, result.version, result.rows, start, end, stats_table, len(stats))


def missing_dates(catalog: Catalog, table: str, days: Sequence[date]) -> list[date]:
    """The event dates of ``days`` the feature table holds no file for."""
    if not catalog.exists(table):
        return list(days)
    present = {e.partition_values.get(EVENT_DATE) for e in snapshot_files(open_table(catalog, catalog.require(table)))}
    return [d for d in days if d.isoformat() not in present]


def ensure_features(
    spark: Any, cfg: Any, catalog: Catalog, lineage: Lineage, spec: FeatureSetSpec, days: Sequence[date]
) -> int:
    """The feature table's version holding every date of ``days``, building the dates it lacks first
    (scoring and monitoring read features through this, so they never read a half-built table)."""
    table = f"features.{spec.name}"
    missing = missing_dates(catalog, table, days)
    if missing:
        log.info(
            "%s: %s lacks %d of the %d dates; building %s..%s",
            lineage.step or "job",
            table,
            len(missing),
            len(days),
            missing[0],
            missing[-1],
        )
        built = build_features(spark, cfg, catalog, replace(lineage, step="features"), missing[0], missing[-1])
        return built.version
    return int(open_table(catalog, catalog.require(table)).version())
