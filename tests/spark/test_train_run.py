"""The train step end to end on a real SQLite MLflow store and real Delta tables: lineage on the run,
the Delta inputs with their versions, plots and config as artifacts, the model registered as
challenger and loadable, and the same metrics from the same data and seed."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from omegaconf import OmegaConf

from lakeforge.lake.catalog import Catalog
from lakeforge.lake.delta import Lineage, write_table
from lakeforge.training.run import train

T0 = datetime(2024, 5, 1)


@pytest.fixture
def project(spark: Any, tmp_path: Path) -> tuple[Any, Catalog]:
    """40 days of hourly events for 3 keys; late when v is high (learnable from the hour)."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(40 * 24):
        t = T0 + timedelta(hours=i)
        for k in range(3):
            v = float(t.hour / 24 + k * 0.2 + rng.normal(0, 0.2))
            rows.append((i * 3 + k, k, t, v))
    catalog = Catalog(tmp_path / "lake")
    write_table(spark.createDataFrame(rows, "id int, k int, t timestamp, v double"), catalog, "raw.ev")
    cfg = OmegaConf.create(
        {
            "project_root": str(tmp_path),
            "run_date": "2024-06-10",
            "pipeline": {"name": "demo"},
            "tracking": {"uri": "sqlite:///mlflow.db", "artifact_location": "mlartifacts"},
            "dataset": {"ev": {"event_time": "t"}},
            "features": {
                "name": "demo",
                "entity": ["id"],
                "spine": {"dataset": "ev", "event_time": "t"},
                "expressions": [{"name": "hour_of_day", "expr": "hour(t)"}, {"name": "key", "expr": "k"}],
                "windows": [{"name": "n_1d", "function": "count", "window": "1d", "by": ["k"]}],
                "label": {"name": "late", "expr": "CAST(v > 0.7 AS INT)", "available_after": "1h"},
            },
            "model": {
                "name": "demo_model",
                "estimator": {"_target_": "lightgbm.LGBMClassifier"},
                "params": {"n_estimators": 20, "num_leaves": 7, "verbose": -1},
                "feature_set": "demo",
                "features": [],
                "label": "late",
                "task": "classification",
                "splits": {
                    "train": {"start": "-40d", "end": "-10d"},
                    "validation": {"start": "-10d", "end": "-5d"},
                    "test": {"start": "-5d", "end": "-1d"},
                },
                "metrics": ["roc_auc", "log_loss"],
                "seed": 3,
                "max_driver_mb": 100,
            },
        }
    )
    return cfg, catalog


def test_a_training_run_records_its_lineage_and_registers_the_challenger(
    spark: Any, project: tuple[Any, Catalog]
) -> None:
    import mlflow

    cfg, catalog = project
    lineage = Lineage("job-1", git_commit="abc123", git_dirty=False, config_hash="h1", step="train")
    result = train(spark, cfg, catalog, lineage)

    client = mlflow.MlflowClient()
    run = client.get_run(result.run_id)
    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    assert tags["lakeforge.git_commit"] == "abc123" and tags["lakeforge.git_dirty"] == "false"
    assert tags["lakeforge.inputs"] == '{"raw.ev": 0}' and tags["lakeforge.run_date"] == "2024-06-10"
    assert tags["lakeforge.seed"] == "3" and tags["spark_version"] == spark.version
    assert int(tags["machine.cores"]) >= 1 and int(tags["java_version"]) >= 17
    assert tags["pkg.lightgbm"] and tags["pkg.mlflow"] and tags["pkg.pyspark"]
    assert params["estimator"] == "lightgbm.LGBMClassifier" and params["params.num_leaves"] == "7"
    assert params["window.test"] == "2024-06-05 00:00..2024-06-09 00:00"
    assert metrics["test.roc_auc"] > 0.7 and metrics["train.rows"] == result.rows["train"]

    sources = {d.dataset.name: (d.dataset.source_type, d.dataset.source) for d in run.inputs.dataset_inputs}
    assert sources["raw.ev"][0] == "delta_table" and '"delta_table_version": 0' in sources["raw.ev"][1]
    assert {"demo.train", "demo.validation", "demo.test"} <= set(sources)

    artifacts = {a.path for a in client.list_artifacts(result.run_id, "plots/test")}
    assert artifacts == {f"plots/test/{n}.png" for n in ("roc", "pr", "calibration", "confusion")}
    composed = mlflow.artifacts.load_text(f"runs:/{result.run_id}/config/composed.yaml")
    assert "demo_model" in composed and "project_root" not in composed

    registered = client.get_registered_model("demo_model")
    assert registered.aliases == {"challenger": int(result.version)}
    loaded = mlflow.sklearn.load_model("models:/demo_model@challenger")
    assert loaded.predict_proba(np.zeros((2, 3)))[:, 1].shape == (2,)

    again = train(spark, cfg, catalog, Lineage("job-2", step="train"))
    assert again.metrics == result.metrics  # same data versions and seed: same model
    assert (again.version, client.get_registered_model("demo_model").aliases) == ("2", {"challenger": 2})
