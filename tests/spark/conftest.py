"""The Spark tier: one local SparkSession for the whole test session."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from omegaconf import OmegaConf

from lakeforge.config.schema import SparkConfig
from tests.spark.postgres import JDBC_JAR


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/spark/" in str(item.fspath):
            item.add_marker(pytest.mark.spark)


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """A real local SparkSession (2 cores), built by lakeforge's own factory."""
    from lakeforge.lake.spark import get_spark

    # Debian's PostgreSQL JDBC driver (scripts/ensure_test_deps.sh), for the JDBC ingest tests.
    jars = {"spark.jars": str(JDBC_JAR)} if JDBC_JAR.is_file() else {}
    cfg = OmegaConf.structured(
        SparkConfig(
            master="local[2]", app_name="lakeforge-tests", shuffle_partitions=4, progress_bar="false", conf=jars
        )
    )
    session = get_spark(cfg)
    yield session
    session.stop()
