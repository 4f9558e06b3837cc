"""What a run records about where it came from: code, config, data versions, packages, machine.

Every tag is ``lakeforge.*``, ``dvc.*``, ``pkg.*`` or ``machine.*``; the Delta tables a run read
are logged as MLflow dataset inputs whose source is the table path and version (``DeltaDatasetSource``:
it needs neither Spark nor Databricks, unlike ``mlflow.data.load_delta``).
"""

from __future__ import annotations

import json
import os
import platform
import warnings
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

PACKAGES = (
    "lakeforge",
    "pyspark",
    "deltalake",
    "mlflow",
    "lightgbm",
    "scikit-learn",
    "pandas",
    "numpy",
    "pyarrow",
    "hydra-core",
    "pandera",
    "dvc",
)


def dvc_hashes(project_root: Path) -> dict[str, str]:
    """``dvc.<path>`` -> md5 of each stage output recorded in ``dvc.lock`` (the raw data's version)."""
    lock = project_root / "dvc.lock"
    if not lock.exists():
        return {}
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages") or {}
    found = {}
    for stage in stages.values():
        for out in stage.get("outs") or []:
            if out.get("md5"):
                found[f"dvc.{out['path']}"] = str(out["md5"])
    return found


def package_versions() -> dict[str, str]:
    """``pkg.<distribution>`` -> installed version, for the packages a model's numbers depend on."""
    found = {}
    for name in PACKAGES:
        try:
            found[f"pkg.{name}"] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def run_tags(
    lineage: Any, project_root: Path, inputs: Mapping[str, int], seed: int, run_date: str, spark: Any = None
) -> dict[str, str]:
    """The tags of a training or evaluation run."""
    import psutil

    from lakeforge.lake.spark import java_version

    tags = {
        "lakeforge.job_run_id": str(lineage.job_run_id),
        "lakeforge.step": str(lineage.step),
        "lakeforge.git_commit": str(lineage.git_commit),
        "lakeforge.git_dirty": str(lineage.git_dirty).lower(),
        "lakeforge.config_hash": str(lineage.config_hash),
        "lakeforge.run_date": run_date,
        "lakeforge.seed": str(seed),
        "lakeforge.inputs": json.dumps(dict(inputs), sort_keys=True),
        "machine.cores": str(os.cpu_count()),
        "machine.memory_bytes": str(psutil.virtual_memory().total),
        "machine.host": platform.node(),
        "machine.python": platform.python_version(),
        "java_version": str(java_version()),
        **dvc_hashes(project_root),
        **package_versions(),
    }
    if spark is not None:
        tags["spark_version"] = str(spark.version)
    return tags


def delta_source(path: str, version: int) -> Any:
    """An MLflow ``delta_table`` dataset source at ``version``.

    MLflow's own ``to_dict`` drops a version of 0 (``if version:``), which would read back as
    "latest"; the subclass always writes it.
    """
    from mlflow.data.delta_dataset_source import DeltaDatasetSource

    class _Versioned(DeltaDatasetSource):
        def to_dict(self) -> dict[Any, Any]:
            return {**super().to_dict(), "delta_table_version": self.delta_table_version}

    return _Versioned(path=path, delta_table_version=int(version))


def log_delta_inputs(catalog: Any, versions: Mapping[str, int]) -> None:
    """One dataset input per Delta table read, its source the table's path at that version."""
    import mlflow
    from mlflow.data.meta_dataset import MetaDataset

    for table, version in sorted(versions.items()):
        source = delta_source(catalog.table_uri(table), version)
        mlflow.log_input(MetaDataset(source, name=table), context="source")  # type: ignore[abstract]


SCHEMA_SAMPLE_ROWS = 10_000


def split_digest(frame: Any) -> str:
    """An 8-hex-digit digest of every row of a split (MLflow's own hashes only the first rows)."""
    import hashlib

    import pandas as pd

    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    header = "\x1f".join(f"{c}:{t}" for c, t in frame.dtypes.items()).encode()
    return hashlib.md5(header + hashed.tobytes()).hexdigest()[:8]


def log_split(frame: Any, name: str, label: str, catalog: Any, table: str, version: int, context: str) -> None:
    """A split's rows as a dataset input (digest, schema, row count), its source the spine table.

    Each split needs its own name: MLflow drops a dataset already logged under another context.
    MLflow would infer the schema by looking at every value (about 5 s per 100k rows of a split);
    the columns are typed, so the first ``SCHEMA_SAMPLE_ROWS`` rows give the same schema.
    """
    import mlflow
    from mlflow.data.pandas_dataset import PandasDataset
    from mlflow.types.utils import _infer_schema

    source = delta_source(catalog.table_uri(table), version)
    dataset = PandasDataset(df=frame, source=source, targets=label, name=name, digest=split_digest(frame))
    with warnings.catch_warnings():
        # The split's schema is a record, not a model signature: the hint about integer columns
        # (which concerns model inputs) would only confuse whoever reads the job log.
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column", category=UserWarning)
        dataset.__dict__["schema"] = _infer_schema(frame.head(SCHEMA_SAMPLE_ROWS))  # the cached_property's slot
        mlflow.log_input(dataset, context=context)
