"""A tiny benchmark harness: alternating timed runs, machine facts, results under bench/results/."""

from __future__ import annotations

import contextlib
import gc
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
LATEST = RESULTS_DIR / "latest.md"
LATEST_JSON = RESULTS_DIR / "latest.json"
MIN_RUNS = 3
_LATEST_HEADER = (
    "# Latest benchmark results\n\n"
    "Written by `make bench` (`.venv/bin/python -m bench`); one row per benchmark, replaced each time "
    "it runs. The same rows with the machine facts: `bench/results/latest.json`; every timing and "
    "detail: `bench/results/<name>.json`.\n\n"
    "| benchmark | figure | ratio to reference | target | result | when | commit |\n"
    "| --- | --- | --- | --- | --- | --- | --- |\n"
)


@dataclass
class Result:
    """One benchmark's headline: a figure, its ratio to the reference run, and whether it met its target."""

    name: str
    figure: str
    target: str
    passed: bool
    ratio: float | None = None
    timings: dict[str, list[float]] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


def time_alternating(
    candidates: Mapping[str, Callable[[], None]],
    *,
    runs: int = MIN_RUNS,
    warmup: int = 1,
    between: Callable[[], None] | None = None,
) -> dict[str, list[float]]:
    """Time each candidate ``runs`` times, interleaved (a, b, a, b, …) so drift hits all alike.

    ``between`` runs untimed after every timed call (cleanup, e.g. deleting written files).
    """
    if runs < MIN_RUNS:
        raise ValueError(f"use at least {MIN_RUNS} runs for a median, got {runs}")
    for _ in range(warmup):
        for run in candidates.values():
            run()
            if between:
                between()
    timings: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(runs):
        for name, run in candidates.items():
            gc.collect()
            start = time.perf_counter()
            run()
            timings[name].append(time.perf_counter() - start)
            if between:
                between()
    return timings


def median(values: list[float]) -> float:
    """The median of timed runs."""
    return statistics.median(values)


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _run(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=30, cwd=REPO_ROOT)
    except (OSError, subprocess.SubprocessError):
        return ""
    return (out.stdout + out.stderr).strip()


def machine_facts() -> dict[str, Any]:
    """Cores, memory, versions and the git commit: what a reader needs to compare two results."""
    import psutil

    java = _run(["java", "-version"])
    java_match = re.search(r'version "([^"]+)"', java)
    return {
        "cpu_count": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "java": java_match.group(1) if java_match else None,
        "pyspark": _version("pyspark"),
        "deltalake": _version("deltalake"),
        "duckdb": _version("duckdb"),
        "pyarrow": _version("pyarrow"),
        "lakeforge": _version("lakeforge"),
        "git_commit": _run(["git", "rev-parse", "--short=12", "HEAD"]) or None,
        # Other work on the machine skews timings; the 1/5/15-minute load shows whether there was any.
        "load_average": [round(x, 2) for x in os.getloadavg()],
        # Results written by earlier benchmarks of the same run do not make the code dirty.
        "git_dirty": bool(_run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench/results"])),
    }


def record(result: Result) -> Path:
    """Write ``bench/results/<name>.json`` and update the row of ``latest.md``; return the JSON path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    facts = machine_facts()
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    payload = {"recorded_at": when, "machine": facts, **asdict(result)}
    path = RESULTS_DIR / f"{result.name}.json"
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    commit = str(facts["git_commit"]) + ("+dirty" if facts["git_dirty"] else "")
    _update_latest(result, when, commit)
    _update_latest_json(result, when, commit, facts)
    return path


def _update_latest_json(result: Result, when: str, commit: str, facts: dict[str, Any]) -> None:
    """``latest.json``: the headline of every benchmark (as in latest.md) and each one's machine facts."""
    latest = json.loads(LATEST_JSON.read_text()) if LATEST_JSON.exists() else {}
    rows = latest.get("benchmarks", {})
    rows[result.name] = {
        "figure": result.figure,
        "ratio": result.ratio,
        "target": result.target,
        "passed": result.passed,
        "recorded_at": when,
        "commit": commit,
        "machine": facts,
    }
    payload = {"benchmarks": dict(sorted(rows.items())), "all_passed": all(r["passed"] for r in rows.values())}
    LATEST_JSON.write_text(json.dumps(payload, indent=2, default=str) + "\n")


def _update_latest(result: Result, when: str, commit: str) -> None:
    rows: dict[str, str] = {}
    if LATEST.exists():
        for line in LATEST.read_text().splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if line.startswith("| ") and cells[0] not in ("benchmark", "---"):
                rows[cells[0]] = line
    ratio = f"{result.ratio:.2f}" if result.ratio is not None else "–"
    verdict = "pass" if result.passed else "short"
    rows[result.name] = (
        f"| {result.name} | {result.figure} | {ratio} | {result.target} | {verdict} | {when} | {commit} |"
    )
    LATEST.write_text(_LATEST_HEADER + "\n".join(rows[name] for name in sorted(rows)) + "\n")


def report(result: Result) -> None:
    """Print the headline and record it."""
    path = record(result)
    ratio = f", ratio {result.ratio:.2f}" if result.ratio is not None else ""
    verdict = "pass" if result.passed else "SHORT"
    print(f"{result.name}: {result.figure}{ratio} (target {result.target}) -> {verdict}  [{path}]")
    sys.stdout.flush()


def bench_spark(shuffle_partitions: int) -> Any:
    """The SparkSession every benchmark uses: lakeforge's own factory, local[2], quiet."""
    from omegaconf import OmegaConf

    from lakeforge.config.schema import SparkConfig
    from lakeforge.lake.spark import get_spark

    cfg = SparkConfig(
        master="local[2]",
        app_name="lakeforge-bench",
        driver_memory="4g",
        shuffle_partitions=shuffle_partitions,
        log_level="ERROR",
        progress_bar="false",
    )
    return get_spark(OmegaConf.structured(cfg))


# --- memory ------------------------------------------------------------------------------------------

POLL_S = 0.05


class RssPeak:
    """Poll the peak RSS of this Python process and its driver JVM, and the JVM's Python workers' summed PSS."""

    def __init__(self, interval: float = POLL_S) -> None:
        self.interval = interval
        self.me = psutil.Process()
        self.jvm = driver_jvm()
        self.peaks = {"python": 0, "jvm": 0, "workers": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _sample(self) -> None:
        self.peaks["python"] = max(self.peaks["python"], self.me.memory_info().rss)
        if self.jvm is None:
            return
        with contextlib.suppress(psutil.Error):
            self.peaks["jvm"] = max(self.peaks["jvm"], self.jvm.memory_info().rss)
            workers = 0
            for child in self.jvm.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    # PSS: the workers fork from one daemon and share its pages; RSS would count them per worker.
                    workers += child.memory_full_info().pss
            self.peaks["workers"] = max(self.peaks["workers"], workers)

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> RssPeak:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def driver_jvm() -> psutil.Process | None:
    """The Spark driver: the ``java`` descendant of this process (the largest, should there be several)."""
    found = []
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):  # the spark-submit shell lingers as a zombie
            if child.name() == "java":
                found.append((child.memory_info().rss, child))
    return max(found, key=lambda x: x[0])[1] if found else None
