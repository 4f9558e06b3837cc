"""Dataclass schemas for every config group, registered in Hydra's ConfigStore.

The root schema ``LakeforgeConfig`` is the first entry of ``conf/config.yaml``'s
defaults list, so every YAML file merged into it is checked for unknown keys and
wrong types at compose time, before any JVM starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING


@dataclass
class StorageConfig:
    """Where the lake lives. ``lake_root`` is a local path or an object-store URI."""

    kind: str = "local"  # local | s3 | gcs | azure
    lake_root: str = MISSING
    # Passed to delta-rs (and to Spark's Hadoop conf for object stores).
    options: dict[str, str] = field(default_factory=dict)


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
class LakeforgeConfig:
    """The composed configuration: every group under its own key."""

    storage: StorageConfig = field(default_factory=StorageConfig)
    spark: SparkConfig = field(default_factory=SparkConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    run_date: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
