"""The pipeline on a real Spark standalone cluster (a master and two workers started by the test from
the Spark that pyspark bundles, scripts/spark_standalone.sh), with its tasks on the workers' executors:

* ingest -> features -> score of one date of the small flight-delay project (tests/e2e/project.py)
  gives the same tables as local mode (the model trained once, in local mode);
* training, scoring and monitoring of the small synthetic project, the executors' scores equal to the
  model's own on the same feature rows.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from deltalake import DeltaTable

from tests.e2e.conftest import BIN, REPO_ROOT, free_port
from tests.e2e.project import SCORE_DATES, TRAIN_RUN_DATE, small_project

pytestmark = pytest.mark.slow
DAY = SCORE_DATES[0]


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
        env={**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYTHONPATH": str(REPO_ROOT)},
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


def test_ingest_features_and_score_equal_local_mode(master: str, tmp_path: Path) -> None:
    project = small_project(tmp_path / "project")
    local, cluster = tmp_path / "lake_local", tmp_path / "lake_cluster"
    _steps(
        project,
        "local[2]",
        local,
        "ingest",
        f"train@{TRAIN_RUN_DATE}",
        f"evaluate@{TRAIN_RUN_DATE}",
        f"features@{DAY}",
        f"score@{DAY}",
    )
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
        assert _rows(cluster, table, lineage) == _rows(local, table, lineage), table


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
