"""The small flight-delay project (tests/e2e/project.py) scheduled by real Airflow and run on a real
Spark standalone cluster. Its raw tables are ingested, a champion trained, and one date's features
and predictions built once, in local mode, for the whole module (one Spark process); the tests
then hold the other ways of running the same steps to that:

* on the cluster (a master and two workers started by the test from the Spark that pyspark
  bundles, scripts/spark_standalone.sh), ingest -> features -> score of that date, with their
  tasks on the workers' executors, give the same tables as local mode; and training, scoring and
  monitoring of the small synthetic project give the model's own scores on the executors;
* ``airflow dags test`` of the daily DAG for that date (features, score, materialize, monitor,
  retrain_request; ingest marked done, the fixture having ingested the same files) writes that
  date's partitions;
* a backfill over two dates run by ``airflow standalone`` (the ``make airflow`` script) writes
  two partitions exactly once, although the score task of the second date is SIGKILLed while it
  writes: Airflow retries it, and the retry leaves no duplicate.

The cluster tests come first: they compare with the local tables before the Airflow runs add dates.
The project's daily schedule is edited the way a user would, in conf/: it starts with the data
(2013), has a one-second retry delay, and for the backfill runs the score step only (which builds
the dates' features it lacks).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest
from deltalake import DeltaTable

from tests.e2e.conftest import BIN, REPO_ROOT, free_port
from tests.e2e.project import SCORE_DATES, TRAIN_RUN_DATE, run, small_project, user_env

# The first test's setup builds the project and starts the cluster (minutes, while the other worker
# builds a project of its own): it counts against that test's timeout.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]
DAG_ID = "flight_delay__daily_score"
DAY = SCORE_DATES[0]  # built by the fixture, on the cluster, and by `airflow dags test`
BACKFILL = ("2013-02-03", "2013-02-04")
KILLED = BACKFILL[1]


def _edit_schedule(project: Path, **changes: str) -> None:
    path = project / "conf" / "schedule" / "daily_score.yaml"
    text = path.read_text()
    for key, value in changes.items():
        text, count = re.subn(rf"(?m)^{key}: .*$", f"{key}: {value}", text)
        if count == 0:
            text += f"{key}: {value}\n"
    path.write_text(text)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small project with its raw tables ingested, a champion trained and DAY's features and
    predictions built, in local mode (one Spark process)."""
    project = small_project(tmp_path_factory.mktemp("airflow") / "project")
    _edit_schedule(project, start_date='"2013-01-01"', end_date='"2013-12-31"', retry_delay="1s")
    steps = ["ingest", f"train@{TRAIN_RUN_DATE}", f"evaluate@{TRAIN_RUN_DATE}", f"features@{DAY}", f"score@{DAY}"]
    _steps(project, "local[2]", project / "lake", *steps)
    return project


@pytest.fixture(scope="module")
def master(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A standalone master with two workers of one core each, stopped after the module."""
    where = tmp_path_factory.mktemp("standalone")
    port = free_port()
    env = {**os.environ, "PYTHON": str(BIN / "python"), "SPARK_WORKERS": "2"}
    env |= {"SPARK_WORKER_CORES": "1", "SPARK_WORKER_MEMORY": "2g"}
    script = str(REPO_ROOT / "scripts" / "spark_standalone.sh")
    started = subprocess.run(
        [script, "start", str(port)], cwd=where, env=env, capture_output=True, text=True, timeout=120
    )
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield f"spark://127.0.0.1:{port}"
    finally:
        subprocess.run([script, "stop"], cwd=where, env=env, capture_output=True, text=True, timeout=60)
    logs = "".join(p.read_text() for p in (where / ".spark-standalone").glob("worker*.log"))
    assert logs.count("Asked to launch executor") >= 2  # both workers ran executors


def _steps(project: Path, master: str, lake: Path, *steps: str) -> int:
    proc = subprocess.run(
        [str(BIN / "python"), "-m", "tests.e2e.helpers_cluster_steps", str(project), master, str(lake), *steps],
        cwd=REPO_ROOT,
        env={**user_env(), "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return int(proc.stdout.strip().splitlines()[-1])


def _rows(lake: Path, table: str, drop: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    frame = DeltaTable(str(lake / table.replace(".", "/"))).to_pandas()
    frame = frame.drop(columns=[c for c in drop if c in frame.columns])
    frame = frame[sorted(frame.columns)]
    # Floats to 9 decimals (window sums may add in another order), everything as text (so NaN == NaN).
    return sorted(
        tuple(f"{v:.9f}" if isinstance(v, float) else str(v) for v in row) for row in frame.itertuples(index=False)
    )


def test_ingest_features_and_score_on_the_cluster_equal_local_mode(master: str, project: Path, tmp_path: Path) -> None:
    # The same project (and its champion), another lake: the steps the fixture ran locally.
    cluster = tmp_path / "lake_cluster"
    executors = _steps(project, master, cluster, "ingest", f"features@{DAY}", f"score@{DAY}")
    assert executors == 2
    lineage = ("job_run_id", "scored_at", "_ingest_run_id", "_ingested_at", "feature_table_version")
    for table in (
        "raw.flights",
        "quarantine.flights",
        "raw.weather",
        "features.flight_delay",
        "predictions.flight_delay",
    ):
        assert _rows(cluster, table, lineage) == _rows(project / "lake", table, lineage), table


def test_train_score_and_monitor_on_the_cluster(master: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(BIN / "python"), "-m", "tests.e2e.helpers_cluster", str(tmp_path / "project"), master],
        cwd=REPO_ROOT,
        env={**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["master"] == master and result["executors"] == 2
    assert result["rows"] == result["population"] == 3 * 72
    assert result["max_score_diff"] < 1e-9
    assert result["monitored_dates"] == ["2024-06-07", "2024-06-08", "2024-06-09"]
    assert all(s is not None for s in result["drift_share"])
    assert all(a is not None and 0.5 < a <= 1.0 for a in result["auc"][1:])


def _env(project: Path, home: Path) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    return {
        **user_env(),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(project / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
        "AIRFLOW_CONN_SPARK_DEFAULT": json.dumps({"conn_type": "spark", "host": "local"}),
    }


def _airflow(env: dict[str, str], *args: str, timeout: int = 600) -> str:
    proc = subprocess.run([str(BIN / "airflow"), *args], env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"airflow {' '.join(args)}: {proc.stdout[-4000:]}{proc.stderr[-4000:]}"
    return proc.stdout + proc.stderr


def _task_states(home: Path) -> dict[tuple[str, str], tuple[str, int]]:
    """(logical date, task) -> (state, try number), from Airflow's metadata database."""
    with sqlite3.connect(f"file:{home / 'airflow.db'}?mode=ro", uri=True, timeout=30) as db:
        rows = db.execute(
            "SELECT substr(r.logical_date, 1, 10), t.task_id, t.state, t.try_number FROM task_instance t "
            "JOIN dag_run r ON r.dag_id = t.dag_id AND r.run_id = t.run_id WHERE t.dag_id = ?",
            (DAG_ID,),
        ).fetchall()
    return {(day, task): (state, tries) for day, task, state, tries in rows}


def _rows_by_date(project: Path, table: str, column: str) -> dict[str, int]:
    frame = DeltaTable(str(project / "lake" / table)).to_pandas(columns=[column])
    return {str(k): int(v) for k, v in frame[column].astype(str).value_counts().items()}


def _check_predictions(project: Path, days: tuple[str, ...]) -> None:
    """Each day: one copy of each flight, written by one job run, every scheduled flight accounted for."""
    predictions = DeltaTable(str(project / "lake" / "predictions" / "flight_delay")).to_pandas()
    population = _rows_by_date(project, "features/flight_delay", "event_date")
    missing = _rows_by_date(project, "predictions/flight_delay__missing", "run_date")
    keys = ["carrier", "flight", "origin", "time_hour", "model_alias"]
    for day in days:
        rows = predictions[predictions["run_date"].astype(str) == day]
        assert len(rows) > 500 and not rows.duplicated(keys).any(), day
        assert rows["job_run_id"].nunique() == 1, day
        assert len(rows) + missing.get(day, 0) == population[day], day


def test_dags_test_runs_the_daily_dag_for_a_date(project: Path, tmp_path: Path) -> None:
    env = _env(project, tmp_path / "airflow")
    _airflow(env, "db", "migrate")
    # The fixture ingested these very files: Airflow marks ingest done instead of re-ingesting them
    # (ingest's job is the one `dvc repro` runs; every other task here spark-submits its job).
    output = _airflow(env, "dags", "test", DAG_ID, DAY, "--mark-success-pattern", "^ingest$", timeout=900)
    assert "state=success" in output, output[-3000:]
    states = _task_states(tmp_path / "airflow")
    steps = ("ingest", "features", "score", "materialize", "monitor")
    assert {task: states[(DAY, task)][0] for task in steps} == dict.fromkeys(steps, "success")
    # No retrain was asked for on that date: the asset event is not emitted.
    assert states[(DAY, "retrain_request")][0] == "skipped"
    _check_predictions(project, (DAY,))
    assert DAY in _rows_by_date(project, "monitoring/data_quality", "run_date")
    assert DAY in _rows_by_date(project, "features/flight_delay", "event_date")


@contextmanager
def _standalone(project: Path, env: dict[str, str], log: Path) -> Iterator[None]:
    """`make airflow`'s script in its own process group, stopped (the whole group) on exit."""
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(project / "scripts" / "airflow_standalone.sh")],
            cwd=project,
            env={**env, "AIRFLOW_PORT": str(free_port())},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 180
        while "Airflow is ready" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-4000:]
            time.sleep(1)
        yield
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                continue


def _kill_score_job(day: str) -> bool:
    """SIGKILL the spark-submit of the score job for ``day`` and everything it started (its Python driver)."""
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or ())
        if (
            "org.apache.spark.deploy.SparkSubmit" in cmdline
            and "jobs/score.py" in cmdline
            and f"run_date={day}" in cmdline
        ):
            victims = [proc, *proc.children(recursive=True)]
            for victim in victims:
                with contextlib.suppress(psutil.NoSuchProcess):
                    victim.kill()
            return True
    return False


def test_a_backfill_writes_each_date_once_and_a_killed_task_is_retried(project: Path, tmp_path: Path) -> None:
    _edit_schedule(project, steps="[score]")  # scoring builds a date's missing features itself
    # Small batches: a date's rows split into many tasks, so the job stages its files one by one
    # over a second or more and the kill below lands between the first file and the commit
    # (with one task the files appear and are published within a few milliseconds).
    model = project / "conf" / "model" / "flight_delay.yaml"
    model.write_text(model.read_text() + "scoring:\n  batch_rows: 40\n")
    home = tmp_path / "airflow"
    env = _env(project, home)
    staging = project / "lake" / "predictions" / "flight_delay" / "_staging"
    killed = False
    with _standalone(project, env, tmp_path / "standalone.log"):
        # The last run is at 06:00 of the last date (the cron), within the inclusive end.
        _airflow(
            env,
            "backfill",
            "create",
            "--dag-id",
            DAG_ID,
            "--from-date",
            BACKFILL[0],
            "--to-date",
            f"{BACKFILL[-1]}T06:00",
        )
        _airflow(env, "dags", "unpause", DAG_ID)
        deadline = time.monotonic() + 900
        checked = 0.0
        while time.monotonic() < deadline:
            # Kill the second date's scoring once its first Parquet file is staged: mid-write.
            if not killed and any(staging.glob(f"*/run_date={KILLED}/*.parquet")):
                killed = _kill_score_job(KILLED)
            if time.monotonic() - checked > 3:
                checked = time.monotonic()
                states = _task_states(home)
                done = [states.get((day, "score"), ("", 0))[0] in ("success", "failed") for day in BACKFILL]
                if all(done):
                    break
            time.sleep(0.02)
    states = _task_states(home)
    assert killed, f"the score job of {KILLED} was never seen staging files: {states}"
    # The killed try died mid-write: its staged files were never published (`lakeforge vacuum` removes them).
    assert any(staging.glob(f"*/run_date={KILLED}/*.parquet"))
    run([str(BIN / "lakeforge"), "vacuum", "predictions.flight_delay", "--retention-hours", "0"], project)
    assert not staging.exists()
    assert {day: states[(day, "score")] for day in BACKFILL} == {
        BACKFILL[0]: ("success", 1),
        KILLED: ("success", 2),  # killed on the first try, retried
    }, (tmp_path / "standalone.log").read_text()[-4000:]
    _check_predictions(project, BACKFILL)
    features = _rows_by_date(project, "features/flight_delay", "event_date")
    assert all(features[day] > 500 for day in BACKFILL)
