"""`dvc repro` runs the whole pipeline; params.yaml follows conf/ and reruns exactly the stages it affects.

One small project (tests/e2e/project.py) in a temporary git repository, run with real DVC,
Spark, Delta and MLflow. The tests run in order and each leaves the project as the next
expects: a no-op repro, then a conf/ edit of one model parameter, then `dvc exp run -S`.
"""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml
from deltalake import DeltaTable

from tests.e2e.conftest import BIN
from tests.e2e.project import SCORE_DATES, run, stages_run

# The first test builds the project (`dvc repro`, minutes): its setup counts against its timeout, and at
# the start of `make test` the other worker builds a project too (seen: 10 minutes on a slow day).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]
DVC = str(BIN / "dvc")
AFTER_TRAIN = ["params", "train", "evaluate", "score", "materialize", "monitor", "report"]


def _num_leaves_of_latest_version(project: Path) -> str:
    from mlflow import MlflowClient

    uri = f"sqlite:///{project / 'mlflow.db'}"
    client = MlflowClient(uri, registry_uri=uri)
    latest = max(client.search_model_versions("name='flight_delay'"), key=lambda v: int(v.version))
    assert latest.run_id is not None
    return str(client.get_run(latest.run_id).data.params["params.num_leaves"])


def test_a_full_repro_runs_every_stage_and_fills_the_lake(repro_project: tuple[Path, str]) -> None:
    project, output = repro_project
    # extract is skipped: the project recorded its own cut of data/raw with `dvc commit`.
    assert stages_run(output) == [
        "params",
        "ingest",
        "features",
        "train",
        "evaluate",
        "score",
        "materialize",
        "monitor",
        "report",
    ]
    predictions = DeltaTable(str(project / "lake" / "predictions" / "flight_delay")).to_pyarrow_table()
    first, last = (date.fromisoformat(d) for d in SCORE_DATES)
    days = [str(first + timedelta(days=n)) for n in range((last - first).days + 1)]
    assert sorted({str(d) for d in predictions.column("run_date").to_pylist()}) == days
    score = json.loads((project / "metrics" / "score.json").read_text())
    assert score["scored"] == predictions.num_rows == score["population"]
    markers = {p.stem for p in (project / "lake_markers").glob("*.json")}
    assert markers == {"ingest", "features", "train", "score", "materialize", "monitor"}
    # The monitor measured every scored date against the model's training window, and the report is written.
    drift = DeltaTable(str(project / "lake" / "monitoring" / "feature_drift")).to_pyarrow_table()
    assert sorted({str(d) for d in drift.column("run_date").to_pylist()}) == days
    assert set(drift.column("reference_id").to_pylist()) == {"flight_delay/v1"}
    monitor = json.loads((project / "metrics" / "monitor.json").read_text())
    assert monitor["run_dates"] == len(days)
    report = (project / "reports" / "flight_delay.html").read_text()
    assert "Monitoring report: flight_delay" in report and 'data-plot="feature drift"' in report
    # Nothing of the lake or MLflow went into git or the DVC cache.
    tracked = run(["git", "ls-files"], project).stdout.split()
    assert not [name for name in tracked if name.startswith(("lake/", "lake_markers/", "mlartifacts/", "mlflow.db"))]


def test_lakeforge_serve_answers_as_the_prediction_table_after_the_repro(repro_project: tuple[Path, str]) -> None:
    # The materialize stage filled the online store; `lakeforge serve` (a real uvicorn process on
    # 127.0.0.1) answers for flights of the last scored date with their batch scores (make demo's check).
    project, _ = repro_project
    output = run([str(BIN / "python"), "scripts/serve_check.py", "4"], project).stdout
    assert "serve_check: 4 online answers equal their predictions.flight_delay rows of 2013-02-04" in output
    assert "curl -s http://127.0.0.1:" in output
    store = json.loads((project / "lake_markers" / "materialize.json").read_text())["features.flight_delay"]
    assert store["entities"] > 1000 and store["store"].endswith("online/features.sqlite")


def test_the_champion_exported_to_onnx_agrees_on_10000_real_feature_rows(repro_project: tuple[Path, str]) -> None:
    import mlflow
    import numpy as np
    import onnxruntime as ort
    from mlflow import MlflowClient

    project, _ = repro_project
    output = run([str(BIN / "lakeforge"), "export", "flight_delay", "--format", "onnx"], project).stdout
    path = project / "exports" / "flight_delay-v1.onnx"
    assert f"exported flight_delay v1 to {path}" in output
    reported = re.search(r"max \|score difference\| (\S+) over 10,000 rows of features.flight_delay", output)
    assert reported and float(reported.group(1)) < 1e-5, output

    # Checked again here, without lakeforge: onnxruntime on the file, LightGBM on the registered
    # model, both on the first 10,000 rows of the feature table.
    session = ort.InferenceSession(path.read_bytes(), providers=["CPUExecutionProvider"])
    features = json.loads(session.get_modelmeta().custom_metadata_map["lakeforge.features"])
    table = DeltaTable(str(project / "lake" / "features" / "flight_delay")).to_pyarrow_table(columns=features)
    x = np.column_stack([table.column(f).to_numpy(zero_copy_only=False).astype(np.float64) for f in features])[:10_000]
    uri = f"sqlite:///{project / 'mlflow.db'}"
    model_uri = MlflowClient(uri, registry_uri=uri).get_model_version_download_uri("flight_delay", "1")
    original = mlflow.sklearn.load_model(model_uri).booster_.predict(x)
    assert session.get_inputs()[0].type == "tensor(double)"  # thresholds compared in float64, as LightGBM does
    onnx_score = session.run(None, {"features": x})[1][:, 1]
    assert len(x) == 10_000 and np.isnan(x).any()  # missing weather values among them
    assert float(np.max(np.abs(onnx_score - original))) < 1e-5

    # (`make demo` then serves the file: `scripts/serve_check.py 3 --runtime onnx`; the runtime's
    # answers are tested in tests/spark/test_serving.py.)


def test_a_second_repro_is_a_no_op(repro_project: tuple[Path, str]) -> None:
    project, _ = repro_project
    lock = (project / "dvc.lock").read_text()
    output = run([DVC, "repro"], project).stdout
    # The params stage always runs (a second or two: it composes conf/) and finds nothing to write.
    assert stages_run(output) == ["params"]
    assert "already matches conf/" in output
    for stage in ("ingest", "features", "train", "evaluate", "score", "materialize", "monitor", "report"):
        assert f"Stage '{stage}' didn't change, skipping" in output
    assert (project / "dvc.lock").read_text() == lock
    assert run(["git", "status", "--porcelain"], project).stdout == ""


def test_editing_one_model_param_reruns_train_onwards_only(repro_project: tuple[Path, str]) -> None:
    project, _ = repro_project
    model = project / "conf" / "model" / "flight_delay.yaml"
    text, count = re.subn(r"num_leaves: 31\b", "num_leaves: 15", model.read_text())
    assert count == 1
    model.write_text(text)
    # Before the repro, `lakeforge check` names the generated file that no longer matches conf/.
    check = run([str(BIN / "lakeforge"), "check"], project, exit_code=2)
    assert "params.yaml: does not match conf/ (differs under: model)" in check.stderr

    # The params stage's command, then DVC's decision of which stages the edit changes: train, whose
    # params changed, and nothing upstream. (A dry run cannot know train's outputs will change, so it
    # stops there; the next test's `dvc exp run` runs train onwards for real, the parameter reaching
    # the job.)
    run([str(BIN / "lakeforge"), "params"], project)
    output = run([DVC, "repro", "--dry"], project).stdout

    assert stages_run(output) == ["params", "train"]
    for stage in ("ingest", "features"):
        assert f"Stage '{stage}' didn't change, skipping" in output
    assert yaml.safe_load((project / "params.yaml").read_text())["model"]["params"]["num_leaves"] == 15
    run([str(BIN / "lakeforge"), "check"], project)
    run(["git", "commit", "-q", "-am", "num_leaves 15"], project)


def test_dvc_exp_run_set_param_reaches_the_jobs(repro_project: tuple[Path, str]) -> None:
    project, _ = repro_project

    # Up to the gate: evaluate reruns because train's output changed (score, monitor and report would
    # follow the same way, a minute and a half more of the suite).
    output = run([DVC, "exp", "run", "-S", "model.params.num_leaves=63", "evaluate"], project).stdout

    assert stages_run(output) == AFTER_TRAIN[:3]
    assert "kept 1 override(s) model.params.num_leaves=63" in output
    assert _num_leaves_of_latest_version(project) == "63"
    params = (project / "params.yaml").read_text()
    # DVC's composition resolved interpolations; the params stage wrote them back as written in conf/.
    assert "${oc.env:LAKEFORGE_HOME,.}/mlflow.db" in params
    assert yaml.safe_load(params)["model"]["params"]["num_leaves"] == 63
    # The workspace now differs from conf/ until the change is written into conf/.
    check = run([str(BIN / "lakeforge"), "check"], project, exit_code=2)
    assert "params.yaml: does not match conf/ (differs under: model)" in check.stderr


# The chaos tier's kills of every writing step, on a copy of this file's `dvc repro` project: imported
# here so that they run on the worker that built it (`make test` hands out whole files).
from tests.chaos.kill_trials import (  # noqa: E402
    chaos_project,
    test_a_backfill_and_the_daily_run_scoring_at_once_lose_nothing_and_double_nothing,
    test_sigkill_of_every_writing_step_at_random_moments_loses_and_doubles_nothing,
)

__all__ = [
    "chaos_project",
    "test_a_backfill_and_the_daily_run_scoring_at_once_lose_nothing_and_double_nothing",
    "test_sigkill_of_every_writing_step_at_random_moments_loses_and_doubles_nothing",
]
