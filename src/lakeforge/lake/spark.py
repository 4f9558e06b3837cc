"""The one place that builds SparkSessions, from the ``spark`` config group."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakeforge.errors import EnvironmentSetupError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

_LOG4J = Path(__file__).with_name("log4j2.properties")
MIN_JAVA = 17


@lru_cache(maxsize=1)
def java_version() -> int:
    """Return the major version of the Java that Spark will use, or raise a clear error."""
    return _java()[0]


@lru_cache(maxsize=1)
def java_release() -> str:
    """The first line of ``java -version`` of the Java Spark will use (its exact build)."""
    return _java()[1]


def _java() -> tuple[int, str]:
    """(major version, first line of ``java -version``) of the Java Spark will use; raises a clear error."""
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if java_home and not Path(java or "").exists():
        raise EnvironmentSetupError(
            f"Java not found: JAVA_HOME is '{java_home}', which has no bin/java, and Spark needs Java 17 or "
            "newer. Point JAVA_HOME at a Java 17+ installation (`apt-get install openjdk-17-jre-headless`, or "
            "`make setup` as root), or unset it to use the java on PATH."
        )
    if not java or not Path(java).exists():
        raise EnvironmentSetupError(
            "Java not found: Spark needs Java 17 or newer. Install it "
            "(`apt-get install openjdk-17-jre-headless`, or run `make setup` as root) "
            "or set JAVA_HOME to a Java 17+ installation."
        )
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.SubprocessError) as exc:
        raise EnvironmentSetupError(f"Java at '{java}' does not run ({exc}); reinstall Java 17+.") from exc
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        raise EnvironmentSetupError(f"Cannot read the Java version from `{java} -version`: {out.strip()!r}")
    major = int(match.group(1))
    if major == 1 and match.group(2):  # "1.8.0" style
        major = int(match.group(2))
    if major < MIN_JAVA:
        raise EnvironmentSetupError(
            f"Java {major} found at '{java}', Spark 4 needs Java {MIN_JAVA}+: "
            "install `openjdk-17-jre-headless` or point JAVA_HOME to a newer Java."
        )
    return major, out.strip().splitlines()[0]


def class_data_archive() -> Path:
    """Where `make setup` keeps the driver JVM's class-data archive (``lakeforge.lake.spark_cds``)."""
    return Path(sys.prefix) / "lakeforge-spark.jsa"


def archive_stamp() -> str:
    """What a class-data archive is valid for: this Java build and this Spark."""
    from importlib.metadata import version  # not `import pyspark`: Airflow tasks ask this too

    return f"{java_release()} | pyspark {version('pyspark')}"


def usable_archive() -> Path | None:
    """The class-data archive, if it exists and was made by this Java for this Spark (else the JVM
    would warn at every start)."""
    archive = class_data_archive()
    stamp = archive.with_suffix(".stamp")
    try:
        if archive.is_file() and stamp.read_text().strip() == archive_stamp():
            return archive
    except (OSError, EnvironmentSetupError):
        pass
    return None


def log4j_option() -> str:
    """The JVM option pointing log4j at lakeforge's quieter configuration."""
    return f"-Dlog4j.configurationFile=file:{_LOG4J}"


def driver_java_options() -> str:
    """The driver JVM's options lakeforge sets: its log4j configuration, and the class-data archive
    when there is one for this Java (also passed by Airflow's spark-submit of a job)."""
    java_opts = log4j_option()
    # The driver JVM maps the classes Spark loads at start from an archive (AppCDS): about 4 s less
    # per Spark process on 2 cores. Executors of a cluster start their own JVMs, without it.
    archive = usable_archive()
    return java_opts if archive is None else f"{java_opts} -XX:SharedArchiveFile={archive}"


def spark_settings(spark_cfg: Any) -> dict[str, str]:
    """The Spark settings lakeforge applies, from a ``spark`` config node."""
    progress = str(spark_cfg.progress_bar).lower()
    show_progress = sys.stdout.isatty() if progress == "auto" else progress in ("true", "on", "1")
    java_opts = log4j_option()
    settings = {
        "spark.driver.memory": str(spark_cfg.driver_memory),
        "spark.sql.shuffle.partitions": str(spark_cfg.shuffle_partitions),
        # Parquet INT96 timestamps are legacy; every reader understands micros.
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        "spark.sql.session.timeZone": "UTC",
        "spark.ui.showConsoleProgress": str(show_progress).lower(),
        "spark.ui.enabled": "false",
        "spark.driver.extraJavaOptions": driver_java_options(),
        "spark.executor.extraJavaOptions": java_opts,
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        # Bigger Arrow batches for pandas UDFs (validation, scoring): a fixed cost per batch
        # (pandera's validate call, a model's predict) is paid 5x less often than at 10,000.
        "spark.sql.execution.arrow.maxRecordsPerBatch": "50000",
        # Wide declared datasets make long plans; the default truncation only adds a warning.
        "spark.sql.debug.maxToStringFields": "1000",
        # Executors write files; lakeforge's commit is the only thing that makes them visible.
        "spark.sql.sources.commitProtocolClass": (
            "org.apache.spark.sql.execution.datasources.SQLHadoopMapReduceCommitProtocol"
        ),
        "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs": "false",
        "spark.hadoop.parquet.summary.metadata.level": "NONE",
    }
    settings.update({str(k): str(v) for k, v in dict(spark_cfg.conf).items()})
    return settings


def get_spark(spark_cfg: Any) -> SparkSession:
    """Build (or return the running) SparkSession configured by ``spark_cfg``."""
    java_version()
    # Spark otherwise binds the machine's public interface.
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master(str(spark_cfg.master)).appName(str(spark_cfg.app_name))
    for key, value in spark_settings(spark_cfg).items():
        builder = builder.config(key, value)
    log.info("starting Spark (master=%s)", spark_cfg.master)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel(str(spark_cfg.log_level))
    return session
