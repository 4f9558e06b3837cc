"""The session factory applies lakeforge's settings."""

from __future__ import annotations

from typing import Any


def test_session_uses_micros_and_utc(spark: Any) -> None:
    assert spark.conf.get("spark.sql.parquet.outputTimestampType") == "TIMESTAMP_MICROS"
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    assert spark.range(3).count() == 3


def test_the_driver_jvm_maps_the_class_data_archive_make_setup_built(spark: Any) -> None:
    """`make setup` builds the archive (lakeforge.lake.spark_cds); the session's JVM runs with it."""
    import pytest

    from lakeforge.lake.spark import usable_archive

    archive = usable_archive()
    if archive is None:
        pytest.skip("no class-data archive for this Java and Spark: run `python -m lakeforge.lake.spark_cds`")
    jvm = spark.sparkContext._jvm
    arguments = list(jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments())
    assert f"-XX:SharedArchiveFile={archive}" in arguments
    # Class-data sharing is on (the VM info says "sharing").
    assert "sharing" in str(jvm.java.lang.System.getProperty("java.vm.info"))
    assert spark.range(5).selectExpr("sum(id)").first()[0] == 10
