"""A Spark MLlib estimator trained on the executors: only the test split on the driver, its metrics as
Spark aggregations equal to scikit-learn's, the Spark-flavour model registered as challenger and
promoted by the gate (which has no baseline to compare with for an MLlib model)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from omegaconf import OmegaConf

from lakeforge.errors import DataValidationError
from lakeforge.lake.catalog import Catalog
from lakeforge.lake.delta import Lineage
from lakeforge.tracking.store import connect
from lakeforge.training.fit import metric
from lakeforge.training.mllib import SCORE, score_model, spark_metrics
from lakeforge.training.run import TrainResult, prepare, train
from tests.spark.helpers_train import make_project

METRICS = ["roc_auc", "pr_auc", "log_loss", "brier", "accuracy", "precision", "recall", "f1"]
# Same formulas over the same rows: only the order of floating-point sums differs.
TOLERANCE = 1e-9


def _mllib_project(spark: Any, tmp_path: Path, max_driver_mb: float) -> tuple[Any, Catalog]:
    cfg, catalog = make_project(spark, tmp_path)
    cfg = OmegaConf.merge(cfg, {"model": {"metrics": METRICS, "max_driver_mb": max_driver_mb}})
    cfg.model.estimator = {"_target_": "pyspark.ml.classification.GBTClassifier"}
    cfg.model.params = {"maxIter": 10, "maxDepth": 3}
    return cfg, catalog


@pytest.fixture(scope="module")
def trained(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Catalog, TrainResult]:
    # 0.05 MB: the whole data (~0.13 MB) is over it, the test split (~0.013 MB) is not.
    cfg, catalog = _mllib_project(spark, tmp_path_factory.mktemp("mllib"), max_driver_mb=0.05)
    lineage = Lineage("job-1", git_commit="abc", git_dirty=False, config_hash="h", step="train")
    return cfg, catalog, train(spark, cfg, catalog, lineage)


def test_trains_on_the_executors_and_registers_a_spark_model(
    spark: Any, trained: tuple[Any, Catalog, TrainResult]
) -> None:
    import mlflow
    from mlflow.models import get_model_info

    cfg, _, result = trained
    connect(cfg)
    client = mlflow.MlflowClient()
    run = client.get_run(result.run_id)
    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    assert params["estimator"] == "pyspark.ml.classification.GBTClassifier" and params["params.maxIter"] == "10"
    assert metrics["test.roc_auc"] > 0.7 and metrics["train.rows"] == result.rows["train"]
    assert {f"test.{m}" for m in METRICS} <= set(metrics)
    assert {f"test.slice.key.{k}.0.roc_auc" for k in range(3)} <= set(metrics)
    assert "lakeforge.baseline_model_uri" not in tags and result.baseline_metrics is None
    assert tags["lakeforge.inputs"] == '{"raw.ev": 0}'
    assert run.inputs is not None
    sources = {d.dataset.name: d.dataset.source_type for d in run.inputs.dataset_inputs}
    assert {"demo.train", "demo.validation", "demo.test"} <= set(sources) and sources["raw.ev"] == "delta_table"
    plots = {a.path for a in client.list_artifacts(result.run_id, "plots/test")}
    assert plots == {f"plots/test/{n}.png" for n in ("roc", "pr", "calibration", "confusion")}
    assert {a.path for a in client.list_artifacts(result.run_id, "plots")} >= {"plots/feature_importance.png"}

    assert client.get_registered_model("demo_model").aliases == {"challenger": int(result.version)}
    info = get_model_info("models:/demo_model@challenger")
    assert "spark" in info.flavors and info.signature.inputs.input_names() == ["hour_of_day", "key", "n_1d"]
    assert client.get_model_version("demo_model", result.version).tags["lakeforge.run_id"] == result.run_id


def test_run_metrics_equal_scikit_learn_on_the_test_rows(spark: Any, trained: tuple[Any, Catalog, TrainResult]) -> None:
    cfg, catalog, result = trained
    connect(cfg)
    test = prepare(spark, cfg, catalog, {"raw.ev": 0}).data.frames["test"]
    features = ["hour_of_day", "key", "n_1d"]
    scores = score_model(spark, "models:/demo_model@challenger", test, features, "classification")
    y = test["late"].to_numpy()
    for name in METRICS:
        assert result.metrics["test"][name] == pytest.approx(metric(name, y, scores), abs=TOLERANCE), name


def test_spark_metrics_equal_scikit_learn_with_ties_and_edge_scores(spark: Any) -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 500).astype(float)
    # Scores on a coarse grid (many ties) with exact 0, 1 and the threshold itself.
    score = np.clip(np.round(0.5 * y + rng.normal(0.25, 0.3, 500), 1), 0.0, 1.0)
    frame = spark.createDataFrame(
        [(float(a), float(b)) for a, b in zip(y, score, strict=True)], f"y double, {SCORE} double"
    )
    measured = spark_metrics(frame, "y", METRICS)
    for name in METRICS:
        assert measured[name] == pytest.approx(metric(name, y, score), abs=TOLERANCE), name
    one_class = spark.createDataFrame([(1.0, 0.2), (1.0, 0.7)], f"y double, {SCORE} double")
    assert np.isnan(spark_metrics(one_class, "y", ["roc_auc"])["roc_auc"])


def test_only_the_test_split_is_held_to_max_driver_mb(spark: Any, tmp_path: Path) -> None:
    cfg, catalog = _mllib_project(spark, tmp_path, max_driver_mb=0.05)
    prepared = prepare(spark, cfg, catalog)
    assert set(prepared.data.frames) == {"test"} and prepared.splits.count() == sum(prepared.data.rows.values())
    tiny, _ = _mllib_project(spark, tmp_path, max_driver_mb=0.001)
    with pytest.raises(DataValidationError, match=r"the test split is about .* over model.max_driver_mb=0.001"):
        prepare(spark, tiny, catalog)


def test_the_gate_scores_and_promotes_a_first_mllib_model(
    spark: Any, trained: tuple[Any, Catalog, TrainResult]
) -> None:
    from lakeforge.training.evaluate import evaluate

    cfg, catalog, result = trained
    evaluation = evaluate(
        spark, cfg, catalog, Lineage("job-2", git_commit="abc", git_dirty=False, config_hash="h", step="evaluate")
    )
    assert evaluation is not None and evaluation.decision.promote, evaluation and evaluation.describe()
    checks = {c.name: c for c in evaluation.decision.checks}
    assert checks["baseline"].status == "skipped" and checks["baseline"].reason == "no baseline scores"
    assert evaluation.metrics["challenger"]["roc_auc"] == pytest.approx(
        result.metrics["test"]["roc_auc"], abs=TOLERANCE
    )
