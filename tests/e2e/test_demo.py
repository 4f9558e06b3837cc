"""`make demo`'s job, run as a real process: real Spark, real Delta tables, then the CLI on them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import REPO_ROOT, run_cli


def test_demo_job_writes_real_tables(lake_root: Path) -> None:
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"}
    root = f"storage.lake_root={lake_root}"
    proc = subprocess.run(
        [sys.executable, "jobs/demo.py", root, "spark.master='local[2]'"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "wrote raw.weather version 0: 26115 rows" in proc.stdout

    counts = run_cli(
        ["sql", "SELECT origin, count(*) AS n FROM raw.weather GROUP BY 1 ORDER BY 1", root, "--format", "csv"],
        check=True,
    )
    assert counts.stdout.splitlines() == ["origin,n", "EWR,8703", "JFK,8706", "LGA,8706"]

    history = run_cli(["history", "raw.weather", root, "--format", "json"], check=True)
    assert '"step": "demo"' in history.stdout or '"step":"demo"' in history.stdout
