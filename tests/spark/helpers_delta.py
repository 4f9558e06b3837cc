"""Shared helpers for the Delta tests: writer subprocesses and sample data."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

WRITER = Path(__file__).with_name("helpers_delta_writer.py")
REPO = Path(__file__).resolve().parents[2]

SAMPLE_SCHEMA = "id long, name string, score double, flag boolean, event_date date, event_ts timestamp, n int"


def sample_rows() -> list[tuple[Any, ...]]:
    """Rows covering every common type, with nulls in each nullable column."""
    base = dt.datetime(2024, 3, 1, 8, 30, 15, 123456, tzinfo=dt.UTC)
    rows: list[tuple[Any, ...]] = []
    for i in range(12):
        rows.append(
            (
                i,
                None if i % 5 == 4 else f"name-{i}",
                None if i % 4 == 3 else i * 1.25,
                None if i % 6 == 5 else i % 2 == 0,
                dt.date(2024, 3, 1 + i % 3),
                None if i % 7 == 6 else base + dt.timedelta(hours=i, microseconds=i),
                None if i == 0 else i * 10,
            )
        )
    return rows


class WriterProcess:
    """One writer subprocess (its own SparkSession), driven through stdin/stdout."""

    def __init__(self, slow_ms: int = 0) -> None:
        env = {**os.environ, "LAKEFORGE_TEST_SLOW_MS": str(slow_ms), "PYTHONPATH": str(REPO)}
        # A new session makes the writer and its JVM one process group we can kill together.
        self.proc = subprocess.Popen(
            [sys.executable, str(WRITER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
            start_new_session=True,
        )

    def wait_ready(self) -> None:
        """Block until the writer's SparkSession is up."""
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.strip() == "ready", f"writer failed to start: {line!r}"

    def send(self, command: dict[str, Any]) -> None:
        """Start one write."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()

    def result(self) -> dict[str, Any]:
        """Wait for the result of the last write."""
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, "writer exited without a result"
        result: dict[str, Any] = json.loads(line)
        return result

    def kill(self) -> None:
        """SIGKILL the writer and its JVM (the whole process group it leads)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def close(self) -> None:
        """Stop the writer: closing stdin ends its command loop."""
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()
