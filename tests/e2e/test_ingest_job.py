"""The ingest job as `make demo` and `dvc repro` run it: real files, real Spark, real Delta tables."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import REPO_ROOT, run_cli


def test_ingest_job_loads_all_five_real_datasets(tmp_path: Path) -> None:
    # A project of its own: conf/ copied, the raw files extracted beside it, its own lake.
    shutil.copytree(REPO_ROOT / "conf", tmp_path / "conf")
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "LAKEFORGE_CONF": str(tmp_path / "conf")}
    extract = subprocess.run(
        [sys.executable, "jobs/extract_data.py", str(tmp_path / "data" / "raw")],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert extract.returncode == 0, extract.stderr

    ingest = subprocess.run(
        [sys.executable, "jobs/ingest.py", "spark.master='local[2]'"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ingest.returncode == 0, ingest.stderr
    lines = ingest.stdout.splitlines()
    assert lines[0].split() == ["dataset", "rows", "in", "accepted", "quarantined", "raw", "version"]
    by_dataset = {line.split()[0]: line.split()[1:4] for line in lines[1:]}
    assert by_dataset == {
        "flights": ["336,776", "336,772", "4"],
        "weather": ["26,115", "26,114", "1"],
        "planes": ["3,322", "3,322", "0"],
        "airlines": ["16", "16", "0"],
        "airports": ["1,458", "1,458", "0"],
    }

    marker = json.loads((tmp_path / "lake_markers" / "ingest.json").read_text())
    assert marker["flights"]["raw_table"] == "raw.flights"
    assert marker["flights"]["rows_quarantined"] == 4

    env_cli = {"LAKEFORGE_CONF": str(tmp_path / "conf")}
    reasons = run_cli(
        [
            "sql",
            "SELECT _failed_checks AS checks, count(*) AS n FROM quarantine.flights GROUP BY ALL",
            "--format",
            "csv",
        ],
        env=env_cli,
        check=True,
    )
    assert reasons.stdout.splitlines()[1:] == ['"[""tailnum:regex""]",4']
    accepted = run_cli(["sql", "SELECT count(*) AS n FROM raw.flights", "--format", "csv"], env=env_cli, check=True)
    assert accepted.stdout.splitlines() == ["n", "336772"]
