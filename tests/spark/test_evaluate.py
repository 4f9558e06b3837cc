"""The gate end to end on a real SQLite MLflow store and real Delta tables: a first model promoted on
the absolute checks and the baseline, a worse one refused with its reason recorded and the champion
kept, a good one promoted over the champion, then rollback and a promotion by hand, each recorded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lakeforge.errors import ModelGateError, RegistryError
from lakeforge.lake.delta import Lineage
from lakeforge.pipeline.steps import evaluate_step
from lakeforge.tracking.registry import history, promote_by_hand, rollback
from lakeforge.training.evaluate import evaluate
from lakeforge.training.run import train
from tests.spark.helpers_train import make_project


def _lineage(step: str) -> Lineage:
    return Lineage(f"job-{step}", git_commit="abc", git_dirty=False, config_hash="h", step=step)


def test_gate_promotes_refuses_rolls_back_and_records_each_move(spark: Any, tmp_path: Path) -> None:
    import mlflow

    cfg, catalog = make_project(spark, tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri, registry_uri=uri)  # else the registry is the last store connected
    with pytest.raises(RegistryError, match=r"no registered model 'demo_model'.*run `lakeforge run train` first"):
        evaluate(spark, cfg, catalog, _lineage("evaluate"))

    # 1. The first model: no champion, judged on the absolute floor and the baseline.
    v1 = train(spark, cfg, catalog, _lineage("train"))
    first = evaluate(spark, cfg, catalog, _lineage("evaluate"))
    assert first is not None
    checks = {c.name: c for c in first.decision.checks}
    assert first.decision.promote and first.champion is None
    assert checks["absolute:roc_auc"].status == "pass" and checks["baseline"].status == "pass"
    assert checks["champion"].status == "skipped" and "first model" in checks["champion"].reason
    assert checks["slice:key"].status == "skipped" and checks["fairness:key"].status == "pass"
    # Same rows, same model: the gate's test rows are the training run's test split.
    assert first.metrics["challenger"]["roc_auc"] == pytest.approx(v1.metrics["test"]["roc_auc"], abs=1e-12)
    assert client.get_registered_model("demo_model").aliases == {"champion": 1, "challenger": 1}
    tags = client.get_model_version("demo_model", "1").tags
    assert tags["lakeforge.gate.decision"] == "promoted" and tags["lakeforge.gate.run_id"] == first.run_id
    assert tags["lakeforge.gate.check.baseline"].startswith("pass: roc_auc")
    report = json.loads(first.report_path.read_text())
    assert report["promoted"] is True and report["checks"]["baseline"]["passed"] is True
    gate_run = client.get_run(first.run_id)
    assert gate_run.data.metrics["gate.passed"] == 1.0 and gate_run.data.tags["lakeforge.inputs"] == '{"raw.ev": 0}'
    assert json.loads(mlflow.artifacts.load_text(f"runs:/{first.run_id}/gate/report.json"))["promote"] is True
    assert evaluate(spark, cfg, catalog, _lineage("evaluate")) is None  # a rerun: nothing to decide

    # 2. A much worse challenger (one stump): refused, every check recorded, the champion kept.
    worse = cfg.copy()
    worse.model.params = {"n_estimators": 1, "num_leaves": 2, "verbose": -1}
    train(spark, worse, catalog, _lineage("train"))
    with pytest.raises(
        ModelGateError, match=r"demo_model v2 refused by the gate \(champion stays v1\): failed .*champion"
    ):
        evaluate_step(spark, worse, catalog, _lineage("evaluate"))
    aliases = client.get_registered_model("demo_model").aliases
    assert aliases == {"champion": 1, "challenger": 2}
    tags = client.get_model_version("demo_model", "2").tags
    assert tags["lakeforge.gate.decision"] == "refused" and "champion" in tags["lakeforge.gate.reason"]
    assert tags["lakeforge.gate.check.champion"].startswith("fail: roc_auc")
    assert json.loads(first.report_path.read_text())["promoted"] is False

    # 3. As good as the champion (same config, same seed): within min_improvement, promoted.
    train(spark, cfg, catalog, _lineage("train"))
    third = evaluate(spark, cfg, catalog, _lineage("evaluate"))
    assert third is not None and third.warnings == ()  # same windows: the champion never saw the test rows
    assert third.decision.promote and third.champion == "1"
    assert {c.name: c.status for c in third.decision.checks}["slice:key"] == "pass"

    # 4. Rollback pops the history; a second rollback has nowhere to go; a promotion by hand is recorded.
    assert rollback(cfg, "demo_model", "bad night").version == "1"
    assert client.get_registered_model("demo_model").aliases["champion"] == 1
    assert client.get_model_version("demo_model", "3").tags["lakeforge.rolled_back_reason"].startswith("bad night")
    with pytest.raises(RegistryError, match="v1 is the first champion"):
        rollback(cfg, "demo_model", "again")
    moved = promote_by_hand(cfg, "demo_model", "v2", "we know better")
    assert (moved.version, moved.previous, moved.kind) == ("2", "1", "manual")
    assert client.get_model_version("demo_model", "2").tags["lakeforge.gate.decision"] == "promoted_by_hand"
    assert [(e["version"], e["kind"]) for e in history(client, "demo_model")] == [
        ("1", "gate"),
        ("3", "gate"),
        ("1", "rollback"),
        ("2", "manual"),
    ]
    with pytest.raises(RegistryError, match=r"has no version '9'; versions: 1, 2, 3"):
        promote_by_hand(cfg, "demo_model", "9", "typo")
    with pytest.raises(RegistryError, match="no registered model 'demo_modle' \\(did you mean 'demo_model'"):
        rollback(cfg, "demo_modle", "typo")

    # 5. A challenger tested on days the champion (v2) was validated on: judged, with a warning.
    earlier = cfg.copy()
    earlier.run_date = "2024-06-05"
    train(spark, earlier, catalog, _lineage("train"))
    fourth = evaluate(spark, earlier, catalog, _lineage("evaluate"))
    assert fourth is not None and fourth.champion == "2"
    assert "champion v2's validation window 2024-05-31..2024-06-05 overlaps the test window" in fourth.warnings[0]
    assert json.loads(fourth.report_path.read_text())["promoted"] is fourth.decision.promote


def test_the_gate_judges_on_the_logged_test_rows_else_rebuilds_them(spark: Any, tmp_path: Path) -> None:
    """Training logs its test split (``data/test.parquet``); the gate reads it, so it needs no raw table.
    Without the artifact it rebuilds the same rows from the raw tables at the run's versions."""
    import shutil
    from urllib.parse import urlparse

    import mlflow
    import pandas as pd

    from lakeforge.training.run import TEST_ROWS

    cfg, catalog = make_project(spark, tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri, registry_uri=uri)
    v1 = train(spark, cfg, catalog, _lineage("train"))
    logged = pd.read_parquet(client.download_artifacts(v1.run_id, TEST_ROWS, str(tmp_path)))
    assert len(logged) == v1.rows["test"] and {"id", "hour_of_day", "key", "n_1d", "late"} <= set(logged.columns)

    raw = Path(catalog.table_uri("raw.ev"))
    raw.rename(raw.with_name("ev.hidden"))  # the gate must not need it
    first = evaluate(spark, cfg, catalog, _lineage("evaluate"))
    raw.with_name("ev.hidden").rename(raw)
    assert first is not None and first.decision.promote and first.rows == v1.rows["test"]
    assert first.metrics["challenger"]["roc_auc"] == pytest.approx(v1.metrics["test"]["roc_auc"], abs=1e-12)
    assert client.get_run(first.run_id).data.tags["lakeforge.inputs"] == '{"raw.ev": 0}'

    worse = cfg.copy()
    worse.model.params = {"n_estimators": 3, "num_leaves": 3, "verbose": -1}
    v2 = train(spark, worse, catalog, _lineage("train"))
    artifacts = Path(urlparse(client.get_run(v2.run_id).info.artifact_uri).path)
    shutil.rmtree(artifacts / "data")  # an older run, or a split too large to log
    second = evaluate(spark, worse, catalog, _lineage("evaluate"))
    assert second is not None and second.rows == v2.rows["test"]
    assert second.metrics["challenger"]["roc_auc"] == pytest.approx(v2.metrics["test"]["roc_auc"], abs=1e-12)
    assert second.metrics["champion"]["roc_auc"] == pytest.approx(first.metrics["challenger"]["roc_auc"], abs=1e-12)
