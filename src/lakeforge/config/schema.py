"""Dataclass schemas for every config group, registered in Hydra's ConfigStore.

The root schema ``LakeforgeConfig`` is the first entry of ``conf/config.yaml``'s
defaults list, so every YAML file merged into it is checked for unknown keys and
wrong types at compose time, before any JVM starts. Group schemas live in
``schema_data`` (datasets, feature sets) and ``schema_ml`` (models, schedules,
monitors); each is also stored as ``<group>/schema`` so a YAML file can start
from it in its own defaults list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from lakeforge.config.schema_data import (
    AsOfJoinConfig,
    ColumnChecks,
    ColumnConfig,
    DatasetConfig,
    ExpressionFeature,
    FeatureSetConfig,
    LabelConfig,
    SourceConfig,
    SpineConfig,
    StaticJoinConfig,
    TransformConfig,
    WindowFeature,
)
from lakeforge.config.schema_ml import (
    DeadlineConfig,
    DriftConfig,
    DriftRule,
    GateConfig,
    ModelConfig,
    MonitorConfig,
    PerformanceConfig,
    ReferenceConfig,
    ScheduleConfig,
    SplitConfig,
    SplitWindow,
)

__all__ = [
    "ROOT_SCHEMA_NAME",
    "AsOfJoinConfig",
    "ColumnChecks",
    "ColumnConfig",
    "DatasetConfig",
    "DeadlineConfig",
    "DriftConfig",
    "DriftRule",
    "ExpressionFeature",
    "FeatureSetConfig",
    "GateConfig",
    "LabelConfig",
    "LakeforgeConfig",
    "ModelConfig",
    "MonitorConfig",
    "OnlineConfig",
    "PerformanceConfig",
    "PipelineConfig",
    "ReferenceConfig",
    "ScheduleConfig",
    "ServeConfig",
    "SourceConfig",
    "SparkConfig",
    "SpineConfig",
    "SplitConfig",
    "SplitWindow",
    "StaticJoinConfig",
    "StorageConfig",
    "TrackingConfig",
    "TransformConfig",
    "WindowFeature",
    "register_schemas",
]

ROOT_SCHEMA_NAME = "lakeforge_schema"


@dataclass
class StorageConfig:
    """Where the lake lives. ``lake_root`` is a local path or an object-store URI.

    A relative ``lake_root`` resolves against the project root (the directory
    holding ``conf/``), see ``lakeforge.config.resolve_path``.
    """

    kind: str = "local"  # local | s3 | gcs | azure
    lake_root: str = MISSING
    # Passed to delta-rs (and to Spark's Hadoop conf for object stores).
    options: dict[str, str] = field(default_factory=dict)
    # A table folder (or a layer folder) that is a symlink leading outside lake_root is refused
    # unless this is true: a lake that deliberately keeps some tables on another disk says so here.
    allow_external_locations: bool = False


@dataclass
class SparkConfig:
    """How to build the SparkSession; one place (``lakeforge.lake.spark``) does it."""

    master: str = "local[*]"
    app_name: str = "lakeforge"
    driver_memory: str = "2g"
    shuffle_partitions: int = 8
    log_level: str = "WARN"
    # "auto": on when stdout is a terminal.
    progress_bar: str = "auto"
    # Any further spark.* settings, passed through unchanged.
    conf: dict[str, str] = field(default_factory=dict)


@dataclass
class TrackingConfig:
    """MLflow tracking: an explicit URI always (MLflow silently creates ./mlflow.db otherwise)."""

    uri: str = MISSING
    artifact_location: str = MISSING
    experiment_prefix: str = "lakeforge"
    registry_uri: str | None = None


@dataclass
class ServeConfig:
    """`lakeforge serve`: where the HTTP API listens and what it accepts."""

    host: str = "127.0.0.1"  # loopback only unless a deployment says otherwise
    port: int = 8000
    max_batch_rows: int = 1000  # rows of one POST /predict
    alias_poll_s: float = 5.0  # how often the server checks whether its alias moved
    # Served predictions go to ``predictions.<model>__online`` in micro-batches of this many rows
    # or this many seconds, whichever comes first.
    log_flush_rows: int = 1000
    log_flush_s: float = 5.0


@dataclass
class OnlineConfig:
    """The online feature store: the latest feature row per entity, filled by `lakeforge materialize`."""

    kind: str = "sqlite"  # sqlite (an embedded file) | redis (a server several API processes share)
    # sqlite: the database file; relative paths resolve against the project root.
    path: str = "online/features.sqlite"
    # redis: the server, e.g. redis://127.0.0.1:6379/0 (a password only through ${oc.env:…}), and
    # the prefix of every key lakeforge writes there.
    url: str | None = None
    prefix: str = "lakeforge"
    serve: ServeConfig = field(default_factory=ServeConfig)


@dataclass
class StepDates:
    """The dates one step runs for under ``dvc repro``: one ``run_date`` or a ``start_date``..``end_date`` range."""

    run_date: str | None = None
    start_date: str | None = None
    end_date: str | None = None


@dataclass
class PipelineConfig:
    """One pipeline: the datasets, feature set, model, schedules and monitor it runs."""

    name: str = MISSING
    description: str = ""
    datasets: list[str] = MISSING
    feature_set: str = MISSING
    model: str = MISSING
    monitor: str | None = None
    schedules: list[str] = field(default_factory=list)
    # The dates each step runs for under `dvc repro` (its jobs get ``repro=true``), keyed by step.
    repro: dict[str, StepDates] = field(default_factory=dict)


@dataclass
class LakeforgeConfig:
    """The composed configuration: every group under its own key."""

    storage: StorageConfig = field(default_factory=StorageConfig)
    spark: SparkConfig = field(default_factory=SparkConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    online: OnlineConfig = field(default_factory=OnlineConfig)
    # Keyed by dataset / schedule name (``/dataset@dataset.flights: flights``).
    dataset: dict[str, DatasetConfig] = field(default_factory=dict)
    features: FeatureSetConfig | None = None
    model: ModelConfig | None = None
    schedule: dict[str, ScheduleConfig] = field(default_factory=dict)
    monitor: MonitorConfig | None = None
    # ISO date (YYYY-MM-DD); Airflow's logical date, or an override elsewhere.
    run_date: str | None = None
    # A date range (ISO, inclusive) for backfills: feature builds, scoring ranges.
    start_date: str | None = None
    end_date: str | None = None
    # true: take the dates from ``pipeline.repro.<step>`` (what the stages of dvc.yaml pass).
    repro: bool = False
    # Set by ``load_config`` to the directory holding conf/; relative paths resolve against it.
    project_root: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


_GROUP_SCHEMAS: dict[str, type] = {
    "storage": StorageConfig,
    "spark": SparkConfig,
    "tracking": TrackingConfig,
    "online": OnlineConfig,
    "dataset": DatasetConfig,
    "features": FeatureSetConfig,
    "model": ModelConfig,
    "schedule": ScheduleConfig,
    "monitor": MonitorConfig,
}


def register_schemas() -> None:
    """Store the root schema and every group schema in Hydra's ConfigStore (idempotent)."""
    store = ConfigStore.instance()
    store.store(name=ROOT_SCHEMA_NAME, node=LakeforgeConfig)
    for group, schema in _GROUP_SCHEMAS.items():
        store.store(group=group, name="schema", node=schema)
