"""The e2e tier: real `lakeforge` and job processes, as a user runs them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


def run_cli(
    args: Sequence[str], *, cwd: Path = REPO_ROOT, check: bool = False, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed `lakeforge` script; return the finished process."""
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "COLUMNS": "200", **(env or {})}
    proc = subprocess.run(
        [str(BIN / "lakeforge"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"lakeforge {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def repro_project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The small flight-delay project (tests/e2e/project.py) after a full `dvc repro`; with its output.

    Shared by the DVC and Airflow tests (each run of the pipeline costs minutes); tests that
    change it say so, and the others assert only what holds whatever ran before them.
    """
    from tests.e2e.project import run, small_project

    project = small_project(tmp_path_factory.mktemp("repro") / "project")
    proc = run([str(BIN / "dvc"), "repro"], project, timeout=900)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-q", "-m", "dvc repro"], project)
    return project, proc.stdout


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for a server a test starts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
