"""`lakeforge doctor` as a user runs it: a healthy project (Spark really starts) is all ok; a broken
one names each problem with its fix and exits 4."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from lakeforge.pipeline.scaffold import init_pipeline
from tests.e2e.conftest import BIN


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project made by `lakeforge init` (conf/, dags/, params.yaml), in a DVC repository."""
    root = tmp_path / "shop"
    root.mkdir()
    rows = ["day,store,price,units"]
    rows += [f"2024-01-{d:02d},{s},{d % 5 + 1.5},{d * 3 % 7}" for d in range(1, 31) for s in ("a", "b")]
    (root / "sales.csv").write_text("\n".join(rows) + "\n")
    init_pipeline("sales", root / "sales.csv", root / "conf", label="units")
    subprocess.run([str(BIN / "dvc"), "init", "--no-scm", "-q"], cwd=root, check=True, timeout=120)
    return root


def _doctor(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEFORGE_", "AIRFLOW__CORE__DAGS"))}
    base.update(SPARK_LOCAL_IP="127.0.0.1", AIRFLOW_HOME=str(project / ".airflow"), **env)
    return subprocess.run(
        [str(BIN / "lakeforge"), "doctor", *args], cwd=project, env=base, capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_healthy_project_is_all_ok(project: Path) -> None:
    proc = _doctor(project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"lakeforge doctor: {project}"
    assert [line.split()[:2] for line in lines[1:7]] == [
        ["ok", name] for name in ("java", "spark", "lake", "mlflow", "dvc", "airflow")
    ]
    assert "Spark 4." in proc.stdout and "ran a job" in proc.stdout
    assert lines[-1] == "ok: ready to run pipelines"
    assert not (project / "lake").exists() and not (project / "mlflow.db").exists()  # doctor writes nothing


def test_broken_project_names_each_fix(project: Path, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("not a folder")
    proc = _doctor(project, f"storage.lake_root={tmp_path / 'afile' / 'lake'}", JAVA_HOME=str(tmp_path / "nowhere"))
    assert proc.returncode == 4
    out = proc.stdout
    assert f"PROBLEM  java     JAVA_HOME={tmp_path / 'nowhere'} has no bin/java" in out
    assert "fix: point JAVA_HOME at a Java 17+ installation" in out
    assert "PROBLEM  spark    not started: it needs Java" in out
    assert "fix: point storage.lake_root (conf/storage/) at a folder you can write" in out
    assert "ok       mlflow" in out and "ok       dvc" in out
    assert proc.stderr.strip() == "3 problem(s) (java, spark, lake): fix them, then run `lakeforge doctor` again"
    assert "Traceback" not in proc.stderr
