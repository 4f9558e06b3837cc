"""The Airflow DAG file with real Airflow: a DAG per schedule, parsed without Spark, MLflow or
Hydra; a broken schedule file is an import error naming it while the other DAGs load; and the
job operator's retry rule on a real spark-submit (only transient exits are retried)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import BIN, REPO_ROOT


def _project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    shutil.copytree(REPO_ROOT / "conf", project / "conf")
    shutil.copytree(REPO_ROOT / "dags", project / "dags", ignore=shutil.ignore_patterns("__pycache__"))
    return project


def _env(tmp_path: Path, project: Path) -> dict[str, str]:
    home = tmp_path / "airflow"
    home.mkdir(exist_ok=True)
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(project / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def _airflow(env: dict[str, str], *args: str, exit_code: int = 0) -> list[dict[str, str]]:
    proc = subprocess.run(
        [str(BIN / "airflow"), *args, "-o", "json"], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == exit_code, proc.stdout[-2000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


PARSE = """
import json, sys, time
from airflow.dag_processing.dagbag import DagBag
started = time.perf_counter()
bag = DagBag(sys.argv[1])
seconds = time.perf_counter() - started
dags = {
    dag_id: {
        "tasks": [t.task_id for t in dag.topological_sort()],
        "args": [getattr(t, "application_args", None) for t in dag.topological_sort()],
        "outlets": {t.task_id: [a.uri for a in t.outlets] for t in dag.tasks if t.outlets},
        "retries": dag.tasks[0].retries,
        "owner": dag.tasks[0].owner,
        "timeout": dag.tasks[0].execution_timeout.total_seconds(),
        "schedule": repr(dag.timetable),
        "tags": sorted(dag.tags),
    }
    for dag_id, dag in bag.dags.items()
}
heavy = sorted(m for m in ("pyspark", "mlflow", "hydra", "lakeforge.lake.spark") if m in sys.modules)
print(json.dumps({"dags": dags, "errors": bag.import_errors, "heavy": heavy, "seconds": seconds}))
"""


def _parse(env: dict[str, str], project: Path) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, "-c", PARSE, str(project / "dags")], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_dag_per_schedule_parsed_without_spark_mlflow_or_hydra(tmp_path: Path) -> None:
    project = _project(tmp_path)
    parsed = _parse(_env(tmp_path, project), project)
    assert parsed["errors"] == {} and parsed["heavy"] == []
    dags = parsed["dags"]
    assert isinstance(dags, dict) and sorted(dags) == ["flight_delay__daily_score", "flight_delay__weekly_train"]
    daily, weekly = dags["flight_delay__daily_score"], dags["flight_delay__weekly_train"]
    assert daily["tasks"] == ["ingest", "features", "score", "materialize", "monitor", "retrain_request"]
    # The monitor's retrain request becomes the asset event that starts training.
    assert daily["outlets"] == {"retrain_request": ["lakeforge://flight_delay/retrain"]}
    assert daily["args"][0] == ["run_date={{ ds }}", "pipeline=flight_delay"]
    assert (daily["retries"], daily["owner"], daily["timeout"]) == (2, "lakeforge", 7200.0)
    assert daily["tags"] == ["flight_delay", "score"]
    assert weekly["tasks"] == ["ingest", "features", "train", "evaluate"]
    # Training also starts when monitoring asks for a retraining (the asset event).
    assert "'lakeforge://flight_delay/retrain'" in weekly["schedule"] and "'0 0 * * 0'" in weekly["schedule"]
    assert "'0 6 * * *'" in daily["schedule"] and "retrain" not in daily["schedule"]


def test_a_broken_schedule_is_an_import_error_naming_its_file(tmp_path: Path) -> None:
    project = _project(tmp_path)
    daily = project / "conf" / "schedule" / "daily_score.yaml"
    daily.write_text(daily.read_text().replace("retries: 2", "retries: lots"))
    env = _env(tmp_path, project)
    subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, capture_output=True, check=True, timeout=300)
    errors = _airflow(env, "dags", "list-import-errors", "--local", exit_code=1)  # 1: there are errors
    assert len(errors) == 1 and errors[0]["filepath"].endswith("dags/lakeforge_dags.py")
    message = errors[0]["error"]
    assert "conf/schedule/daily_score.yaml: retries: not a valid schedule" in message and "'lots'" in message
    # The other schedule's DAG still loads.
    assert [d["dag_id"] for d in _airflow(env, "dags", "list", "--local")] == ["flight_delay__weekly_train"]


@pytest.mark.parametrize(("exit_code", "retried"), [(0, None), (75, True), (3, False)])
def test_only_transient_job_failures_are_retried(tmp_path: Path, exit_code: int, retried: bool | None) -> None:
    """A real spark-submit of a script exiting with ``exit_code``: 75 (a TransientError) is left
    to Airflow's retries, any other failure fails the task at once."""
    script = tmp_path / "job.py"
    script.write_text(f"import sys\nprint('job ran')\nsys.exit({exit_code})\n")
    code = f"""
import sys
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from lakeforge.pipeline.dags import LakeforgeJobOperator
op = LakeforgeJobOperator(task_id="t", application={str(script)!r}, conn_id="spark_default",
                          env_vars={{"PYSPARK_PYTHON": sys.executable}})
try:
    op.execute({{}})
    print("OUTCOME ok")
except AirflowFailException as exc:
    print("OUTCOME fail", exc)
except AirflowException as exc:
    print("OUTCOME retry", exc)
"""
    env = {
        **_env(tmp_path, _project(tmp_path)),
        "AIRFLOW_CONN_SPARK_DEFAULT": json.dumps({"conn_type": "spark", "host": "local"}),
        "SPARK_LOCAL_IP": "127.0.0.1",
    }
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    outcome = [line for line in proc.stdout.splitlines() if line.startswith("OUTCOME")]
    assert outcome, proc.stdout[-2000:] + proc.stderr[-3000:]
    expected = {None: "OUTCOME ok", True: "OUTCOME retry", False: "OUTCOME fail"}[retried]
    assert outcome[0].startswith(expected), outcome[0]
    if retried is False:
        assert outcome[0].startswith(f"OUTCOME fail exit code {exit_code}: not a transient error, not retried.")


def test_a_retrain_request_of_the_monitor_becomes_the_asset_event(tmp_path: Path) -> None:
    """``retrain_request`` succeeds (Airflow then emits its outlet, the retrain asset) on a date the
    monitor recorded a request for, and skips (no event) on any other date."""
    from datetime import date, datetime

    import pyarrow as pa
    from deltalake import write_deltalake

    from lakeforge.lake.catalog import Catalog

    project = _project(tmp_path)
    rows = {
        "monitor": ["flight_delay"],
        "model": ["flight_delay"],
        "run_date": [date(2013, 11, 2)],
        "rules": [["auc_floor"]],
        "episode_ids": [["auc_floor:2013-11-02"]],
        "reason": ["auc_floor: performance.roc_auc 0.61 < 0.65"],
        "replay": [False],
        "requested_at": [datetime(2013, 11, 3, 6, 30)],
    }
    uri = Catalog(project / "lake").table_uri("monitoring.retrain_requests")
    write_deltalake(uri, pa.table(rows), partition_by=["run_date", "monitor"])
    code = f"""
from airflow.sdk.exceptions import AirflowSkipException
from lakeforge.pipeline.dags import RetrainRequestOperator, retrain_asset
op = RetrainRequestOperator(task_id="retrain_request", project={str(project)!r}, pipeline="flight_delay",
                            outlets=[retrain_asset("flight_delay")])
for ds in ("2013-11-02", "2013-11-03"):
    try:
        print("OUTCOME", ds, "ok", op.execute({{"ds": ds}}))
    except AirflowSkipException as exc:
        print("OUTCOME", ds, "skipped", exc)
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], env=_env(tmp_path, project), capture_output=True, text=True, timeout=120
    )
    outcome = [line for line in proc.stdout.splitlines() if line.startswith("OUTCOME")]
    assert len(outcome) == 2, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert outcome[0].startswith("OUTCOME 2013-11-02 ok {'model': 'flight_delay', 'run_date': '2013-11-02'")
    assert outcome[1] == "OUTCOME 2013-11-03 skipped no retrain of 'flight_delay' requested on 2013-11-03"


def test_a_failed_task_alerts_the_monitor_channels(tmp_path: Path) -> None:
    """Every task's failure callback sends one critical alert to the monitor's channels (here the
    JSON-lines file of conf/monitor/flight_delay.yaml, under the project)."""
    project = _project(tmp_path)
    code = f"""
from pathlib import Path
from types import SimpleNamespace
from lakeforge.pipeline.dags import build_dags
dag = build_dags(Path({str(project)!r}))["flight_delay__daily_score"]
task = dag.get_task("score")
callbacks = task.on_failure_callback
callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
ti = SimpleNamespace(dag_id=dag.dag_id, task_id="score")
for callback in callbacks:
    callback({{"ds": "2013-10-16", "task_instance": ti, "exception": RuntimeError("exit code 3")}})
print("CALLED", len(callbacks))
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], env=_env(tmp_path, project), capture_output=True, text=True, timeout=120
    )
    assert "CALLED 1" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-3000:]
    lines = (project / "reports" / "alerts.jsonl").read_text().splitlines()
    assert len(lines) == 1
    alert = json.loads(lines[0])
    assert alert["rule"] == "task_failed:flight_delay__daily_score.score" and alert["severity"] == "critical"
    assert alert["message"] == "Airflow task flight_delay__daily_score.score failed for 2013-10-16: exit code 3"
    assert (
        "critical: task_failed:flight_delay__daily_score.score opened" in proc.stdout + proc.stderr
    )  # the log channel
