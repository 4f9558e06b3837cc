"""The jobs on a real Spark standalone cluster (a master and a worker started by the test from the Spark
that pyspark bundles, scripts/spark_standalone.sh): training, scoring and monitoring run with their
tasks on the worker's executors, and the scores the executors wrote equal the model's own."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

from tests.e2e.conftest import BIN, REPO_ROOT


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_train_score_and_monitor_on_a_standalone_cluster(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "PYTHON": str(BIN / "python"), "SPARK_WORKER_MEMORY": "3g"}
    script = str(REPO_ROOT / "scripts" / "spark_standalone.sh")
    started = subprocess.run(
        [script, "start", str(port)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        master = f"spark://127.0.0.1:{port}"
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
        assert result["master"] == master and result["executors"] == 1
        assert result["rows"] == result["population"] == 3 * 72
        assert result["max_score_diff"] < 1e-9
        assert result["monitored_dates"] == ["2024-06-07", "2024-06-08", "2024-06-09"]
        assert all(s is not None for s in result["drift_share"])
        assert all(a is not None and 0.5 < a <= 1.0 for a in result["auc"][1:])
        worker_log = (tmp_path / ".spark-standalone" / "worker.log").read_text()
        assert "Asked to launch executor" in worker_log  # the tasks ran on the worker
    finally:
        subprocess.run([script, "stop"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
