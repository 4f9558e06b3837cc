"""The chaos tier: hostile inputs and failures against the real library.

Tests that take the ``spark`` fixture share the Spark tier's one local SparkSession and carry its
``spark`` marker, so ``-m "not spark"`` leaves them out as it does tests/spark.
"""

from __future__ import annotations

import pytest

from tests.spark.conftest import spark

__all__ = ["spark"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/chaos/" in str(item.fspath) and "spark" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.spark)
