"""The Spark session factory's checks and settings, without starting a JVM."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from lakeforge.config.schema import SparkConfig
from lakeforge.errors import EnvironmentSetupError
from lakeforge.lake import spark as spark_module
from lakeforge.lake.spark import archive_stamp, java_release, java_version, spark_settings


@pytest.fixture(autouse=True)
def _fresh_java_check() -> Iterator[None]:
    java_version.cache_clear()
    java_release.cache_clear()
    yield
    java_version.cache_clear()
    java_release.cache_clear()


def _fake_java(home: Path, version_line: str) -> Path:
    java = home / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text(f"#!/bin/sh\necho '{version_line}' >&2\n")
    java.chmod(0o755)
    return home


def test_missing_java_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "nowhere"))
    with pytest.raises(EnvironmentSetupError, match=r"Java not found: JAVA_HOME is '.*nowhere', which has no bin/java"):
        java_version()
    java_version.cache_clear()
    monkeypatch.delenv("JAVA_HOME")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EnvironmentSetupError, match=r"Java not found: Spark needs Java 17 or newer.*openjdk-17"):
        java_version()


def test_old_java_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAVA_HOME", str(_fake_java(tmp_path, 'openjdk version "11.0.2" 2019-01-15')))
    with pytest.raises(EnvironmentSetupError, match=r"Java 11 found at .*needs Java 17\+"):
        java_version()


def test_legacy_version_string(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAVA_HOME", str(_fake_java(tmp_path, 'java version "1.8.0_292"')))
    with pytest.raises(EnvironmentSetupError, match=r"Java 8 found"):
        java_version()


def test_java_21_is_fine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAVA_HOME", str(_fake_java(tmp_path, 'openjdk version "21.0.1" 2023-10-17')))
    assert java_version() == 21


def test_settings_micros_utc_quiet_and_passthrough() -> None:
    cfg = OmegaConf.structured(SparkConfig(progress_bar="false", conf={"spark.sql.adaptive.enabled": "false"}))
    settings = spark_settings(cfg)
    assert settings["spark.sql.parquet.outputTimestampType"] == "TIMESTAMP_MICROS"
    assert settings["spark.sql.session.timeZone"] == "UTC"
    assert settings["spark.ui.showConsoleProgress"] == "false"
    assert "log4j2.properties" in settings["spark.driver.extraJavaOptions"]
    assert settings["spark.sql.adaptive.enabled"] == "false"


def test_progress_bar_on_when_asked() -> None:
    settings = spark_settings(OmegaConf.structured(SparkConfig(progress_bar="true")))
    assert settings["spark.ui.showConsoleProgress"] == "true"


def test_the_class_data_archive_is_used_only_when_made_for_this_java_and_spark(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JAVA_HOME", str(_fake_java(tmp_path / "jdk", 'openjdk version "17.0.9" 2023-10-17')))
    archive = tmp_path / "lakeforge-spark.jsa"
    monkeypatch.setattr(spark_module, "class_data_archive", lambda: archive)
    cfg = OmegaConf.structured(SparkConfig(progress_bar="false"))

    def driver_opts() -> str:
        return spark_settings(cfg)["spark.driver.extraJavaOptions"]

    assert "SharedArchiveFile" not in driver_opts()  # no archive (make setup builds it)
    archive.write_bytes(b"jsa")
    assert "SharedArchiveFile" not in driver_opts()  # no stamp: made by what?
    archive.with_suffix(".stamp").write_text('openjdk version "17.0.8" 2023-07-18 | pyspark 0.0\n')
    assert "SharedArchiveFile" not in driver_opts()  # another Java build: the JVM would warn
    assert archive_stamp().startswith('openjdk version "17.0.9" 2023-10-17 | pyspark ')
    archive.with_suffix(".stamp").write_text(archive_stamp() + "\n")
    settings = spark_settings(cfg)
    assert settings["spark.driver.extraJavaOptions"].endswith(f" -XX:SharedArchiveFile={archive}")
    assert "SharedArchiveFile" not in settings["spark.executor.extraJavaOptions"]  # executors: their own JVMs
