"""dvc.yaml's stages: every key of params.yaml that changes a result belongs to a stage.

DVC reruns a stage when one of its `params:` keys changes. A key in no stage would be
edited in conf/ and silently ignored by `dvc repro`, so each one is either a stage's or
listed here as not changing any result.
"""

from __future__ import annotations

from typing import Any

import yaml

from lakeforge.config.schema_ml import STEP_JOBS
from tests.unit.config.conftest import REPO_ROOT

# Keys that change how or when steps run, not what they write.
NOT_RESULTS = {
    "spark": "how Spark runs, not what it computes",
    "schedule": "when Airflow runs the steps",
    "pipeline.name": "a label",
    "pipeline.description": "a label",
    "pipeline.model": "checked to equal model.name",
    "pipeline.monitor": "checked to equal monitor.name",
    "pipeline.schedules": "Airflow only",
    "online.serve": "how `lakeforge serve` runs (no stage output)",
    "extra": "free-form; a transform reading it should be listed by its stage",
}


def _stages() -> dict[str, Any]:
    return yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]


def _keys(node: Any, prefix: str = "") -> list[str]:
    if isinstance(node, dict) and node:
        return [key for k, v in node.items() for key in _keys(v, f"{prefix}{k}.")]
    return [prefix[:-1]]


def _covered(key: str, prefixes: set[str]) -> bool:
    return any(key == p or key.startswith(f"{p}.") for p in prefixes)


def test_every_param_is_read_by_a_stage_or_declared_as_no_result() -> None:
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    listed = {p for stage in _stages().values() for p in stage.get("params", [])}
    uncovered = sorted(k for k in _keys(params) if not _covered(k, listed | set(NOT_RESULTS)))
    assert not uncovered, f"params.yaml keys no stage of dvc.yaml lists (add them to a stage's params): {uncovered}"
    unknown = sorted(p for p in listed if not any(_covered(k, {p}) for k in _keys(params)))
    assert not unknown, f"dvc.yaml lists params that are not in params.yaml: {unknown}"


def test_each_dated_stage_runs_its_job_with_the_pipelines_repro_dates() -> None:
    stages = _stages()
    repro = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())["pipeline"]["repro"]
    for step, dates in repro.items():
        stage = stages[step]
        assert stage["cmd"] == f"python {STEP_JOBS[step]} repro=true", step
        assert f"pipeline.repro.{step}" in stage["params"], step
        assert dates, step


def test_the_params_stage_comes_first_and_always_runs() -> None:
    name, stage = next(iter(_stages().items()))
    assert name == "params"
    assert stage["cmd"] == "lakeforge params"
    assert stage["always_changed"] is True
    assert stage["outs"] == [{"params.yaml": {"cache": False, "persist": True}}]
