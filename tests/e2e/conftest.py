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


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for a server a test starts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
