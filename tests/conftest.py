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


# The longest files first (about their minutes on 2 cores): `make test` hands whole files to two
# workers in collection order, so the short ones fill the end instead of a long one starting last.
LONGEST_FIRST = (
    "tests/e2e/test_runs_airflow_and_cluster.py",
    "tests/e2e/test_dvc_pipeline.py",
    "tests/e2e/test_init.py",
    "tests/e2e/test_ingest_job.py",
    "tests/spark/test_delta_kill.py",
    "tests/spark/test_monitor_job.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable: file order kept
