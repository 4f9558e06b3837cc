"""The monitoring tables: schemas, and one idempotent commit per table for a monitor run.

Every table is partitioned by ``run_date`` then ``monitor``; a run replaces the partitions of
its dates and monitor (those it has no rows for too), so re-running a date leaves one set of
rows. ``monitoring.reference`` is written by ``lakeforge.monitoring.reference``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from lakeforge.lake.catalog import Catalog
from lakeforge.lake.delta import Lineage, write_rows

FEATURE_DRIFT = "monitoring.feature_drift"
PREDICTION_DRIFT = "monitoring.prediction_drift"
DATA_QUALITY = "monitoring.data_quality"
PERFORMANCE = "monitoring.performance"
ALERTS = "monitoring.alerts"
SIGNALS = "monitoring.signals"
RETRAIN = "monitoring.retrain_requests"
PARTITION_BY = ("run_date", "monitor")

_HEAD = "monitor string, model string, run_date date"
SCHEMAS = {
    FEATURE_DRIFT: f"{_HEAD}, feature string, kind string, method string, value double, p_value double, "
    "threshold double, drifted boolean, reason string, reference_id string, reference_rows bigint, rows bigint, "
    "reference_null_share double, null_share double, bin_labels array<string>, reference_counts array<double>, "
    "counts array<double>, computed_at timestamp",
    PREDICTION_DRIFT: f"{_HEAD}, model_alias string, model_version int, method string, value double, "
    "p_value double, threshold double, drifted boolean, reason string, rows bigint, mean_score double, "
    "positive_share double, reference_id string, reference_counts array<double>, counts array<double>, "
    "computed_at timestamp",
    # check: volume | null_share | coverage | freshness; status: per check (freshness: on time, late, missing)
    DATA_QUALITY: f"{_HEAD}, check string, feature string, value double, reference double, status string, "
    "detail string, computed_at timestamp",
    PERFORMANCE: f"{_HEAD}, label_date date, model_alias string, model_version int, slice string, "
    "slice_value string, rows bigint, positives bigint, roc_auc double, log_loss double, precision double, "
    "recall double, ece double, positive_rate double, mean_score double, training_value double, "
    "computed_at timestamp",
    ALERTS: f"{_HEAD}, rule string, signal string, status string, episode_id string, episode_start date, "
    "value double, threshold double, severity string, message string, notified boolean, channels string, "
    "retrain boolean, computed_at timestamp",
    SIGNALS: f"{_HEAD}, signals string, replay boolean, computed_at timestamp",
    RETRAIN: f"{_HEAD}, rules array<string>, episode_ids array<string>, reason string, replay boolean, "
    "requested_at timestamp",
}


@dataclass
class Rows:
    """The rows a monitor run writes, per table."""

    feature_drift: list[dict[str, Any]] = field(default_factory=list)
    prediction_drift: list[dict[str, Any]] = field(default_factory=list)
    data_quality: list[dict[str, Any]] = field(default_factory=list)
    performance: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    signals: list[dict[str, Any]] = field(default_factory=list)
    retrain: list[dict[str, Any]] = field(default_factory=list)

    def by_table(self) -> dict[str, list[dict[str, Any]]]:
        return {
            FEATURE_DRIFT: self.feature_drift,
            PREDICTION_DRIFT: self.prediction_drift,
            DATA_QUALITY: self.data_quality,
            PERFORMANCE: self.performance,
            ALERTS: self.alerts,
            SIGNALS: self.signals,
            RETRAIN: self.retrain,
        }


def write_all(
    catalog: Catalog, rows: Rows, monitor: str, days: Sequence[date], lineage: Lineage | None
) -> dict[str, int]:
    """Replace the dates' partitions of this monitor in every table; table -> version written.

    The rows are few (per date, feature, alias…) and already on the driver: pyarrow writes them, no
    Spark job does."""
    versions = {}
    replace = [{"run_date": d, "monitor": monitor} for d in days]
    for table, table_rows in rows.by_table().items():
        if not table_rows and not catalog.exists(table):
            continue  # nothing to write and nothing to clear
        result = write_rows(
            table_rows,
            SCHEMAS[table],
            catalog,
            table,
            mode="overwrite_partitions",
            partition_by=list(PARTITION_BY),
            replace_partitions=replace,
            lineage=lineage,
            metadata={"monitor": monitor, "start_date": str(min(days)), "end_date": str(max(days))},
        )
        versions[table] = result.version
    return versions


def retrain_requests(
    catalog: Catalog, *, model: str | None = None, run_date: date | None = None
) -> list[dict[str, Any]]:
    """The recorded retrain requests (of ``model``, of ``run_date``), oldest first; read with delta-rs (no JVM)."""
    if not catalog.exists(RETRAIN):
        return []
    import pyarrow.dataset as ds

    from lakeforge.lake.delta_read import arrow_dataset

    where = None
    if model is not None:
        where = ds.field("model") == model
    if run_date is not None:
        on_date = ds.field("run_date") == run_date
        where = on_date if where is None else where & on_date
    rows = arrow_dataset(catalog, RETRAIN).to_table(filter=where).to_pylist()
    return sorted(rows, key=lambda r: (r["run_date"], str(r["requested_at"])))
