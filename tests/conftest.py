"""Shared fixtures for every tier."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = REPO_ROOT / "conf"

# Never let a test touch the user's MLflow store or bind a public interface.
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
# Test JVMs are short-lived and work on small data: the C1 compiler alone and the serial GC
# start them faster (tests/spark/test_score_job.py + test_features_build.py: 148 s -> 124 s).
# SPARK_SUBMIT_OPTS reaches the driver JVM of in-process sessions and of every job subprocess.
os.environ.setdefault("SPARK_SUBMIT_OPTS", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")


@pytest.fixture
def lake_root(tmp_path: Path) -> Path:
    """An empty lake root for one test."""
    root = tmp_path / "lake"
    root.mkdir()
    return root


@pytest.fixture
def catalog(lake_root: Path) -> Any:
    """A small lake written by delta-rs (no JVM): raw.flights (versions 0 and 1), features.flight_delay."""
    import pyarrow as pa
    from deltalake import write_deltalake

    from lakeforge.lake.catalog import Catalog

    lake = Catalog(lake_root)
    flights = lake.table_uri("raw.flights")
    write_deltalake(flights, pa.table({"id": [1, 2, 3], "carrier": ["AA", "UA", "AA"]}))
    write_deltalake(flights, pa.table({"id": [4], "carrier": ["DL"]}), mode="append")
    write_deltalake(
        lake.table_uri("features.flight_delay"),
        pa.table({"id": [1, 2, 3, 4], "delay_7d": [1.5, None, 3.0, 0.25]}),
    )
    return lake


@pytest.fixture(scope="session")
def repro_project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The small flight-delay project (tests/e2e/project.py) after a full `dvc repro`; with its output.

    Shared by the DVC tests and the chaos tier's kills (each run of the pipeline costs minutes;
    tests/e2e/test_dvc_pipeline.py imports the kill tests of tests/chaos/kill_trials.py, so that
    `make test`'s --dist loadfile runs them on the worker that built it); tests that change it say
    so, and the others assert only what holds whatever ran before them.
    """
    from tests.e2e.conftest import BIN
    from tests.e2e.project import run, small_project

    project = small_project(tmp_path_factory.mktemp("repro") / "project")
    proc = run([str(BIN / "dvc"), "repro"], project, timeout=900)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-q", "-m", "dvc repro"], project)
    return project, proc.stdout


# The longest files first (about their minutes on 2 cores): `make test` hands whole files to two
# workers in collection order (Makefile: --no-loadscope-reorder), so the short ones fill the end
# instead of a long one starting last. Figures: `make test`'s --durations, summed per file.
LONGEST_FIRST = (
    "tests/e2e/test_dvc_pipeline.py",
    "tests/e2e/test_runs_airflow_and_cluster.py",
    "tests/e2e/test_init.py",
    "tests/unit/config/test_malformed.py",
    "tests/spark/test_monitor_job.py",
    "tests/chaos/test_config_fuzz.py",
    "tests/chaos/test_faults.py",
    "tests/unit/config/test_features_config.py",
    "tests/e2e/test_cli_registry.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable: file order kept
