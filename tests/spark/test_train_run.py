"""The train step end to end on a real SQLite MLflow store and real Delta tables: lineage on the run,
the Delta inputs with their versions, plots and config as artifacts, the model registered as
challenger and loadable, and the same metrics from the same data and seed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from lakeforge.lake.catalog import Catalog
from lakeforge.lake.delta import Lineage
from lakeforge.tracking.lineage import split_digest
from lakeforge.training.run import train
from tests.spark.helpers_train import make_project


@pytest.fixture
def project(spark: Any, tmp_path: Path) -> tuple[Any, Catalog]:
    return make_project(spark, tmp_path)


def test_a_training_run_records_its_lineage_and_registers_the_challenger(
    spark: Any, project: tuple[Any, Catalog], tmp_path: Path
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
    assert {f"test.slice.key.{k}.0.roc_auc" for k in range(3)}  # a float feature: 0.0, 1.0, 2.0 <= set(metrics)
    assert metrics["baseline.test.roc_auc"] == result.baseline_metrics["test"]["roc_auc"]  # type: ignore[index]
    baseline = mlflow.sklearn.load_model(tags["lakeforge.baseline_model_uri"])
    assert [type(step).__name__ for step in baseline] == ["SimpleImputer", "StandardScaler", "DummyClassifier"]

    sources = {d.dataset.name: (d.dataset.source_type, d.dataset.source) for d in run.inputs.dataset_inputs}
    assert sources["raw.ev"][0] == "delta_table" and '"delta_table_version": 0' in sources["raw.ev"][1]
    assert {"demo.train", "demo.validation", "demo.test"} <= set(sources)
    test_input = next(d.dataset for d in run.inputs.dataset_inputs if d.dataset.name == "demo.test")
    assert json.loads(test_input.profile)["num_rows"] == result.rows["test"]
    # The digest covers every row: that of the test rows the run logged for the gate.
    logged = pd.read_parquet(client.download_artifacts(result.run_id, "data/test.parquet", str(tmp_path / "dl")))
    assert test_input.digest == split_digest(logged)
    columns = {c["name"] for c in json.loads(test_input.schema)["mlflow_colspec"]}
    assert {"id", "late"} <= columns

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
