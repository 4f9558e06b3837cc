"""The session factory applies lakeforge's settings."""

from __future__ import annotations

from typing import Any


def test_session_uses_micros_and_utc(spark: Any) -> None:
    assert spark.conf.get("spark.sql.parquet.outputTimestampType") == "TIMESTAMP_MICROS"
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    assert spark.range(3).count() == 3
