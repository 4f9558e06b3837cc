"""The driver JVM's class-data archive (AppCDS): every Spark start maps the classes it needs from one
file instead of loading them from Spark's jars, about 4 s less per Spark process on 2 cores (a
`dvc repro` of the demo starts seven).

``python -m lakeforge.lake.spark_cds`` (run by `make setup`) starts Spark in a child process with
``-XX:ArchiveClassesAtExit``, runs a small job touching what lakeforge jobs use (Parquet write and
read, SQL, a shuffle, a join, Python workers through Arrow), and stops; the JVM writes the classes
it loaded when it exits. The archive (``<venv>/lakeforge-spark.jsa``, ~160 MB) is valid for one
Java build and one Spark: ``lakeforge.lake.spark`` uses it only when its stamp matches (so a new
JDK or pyspark means no archive, not a JVM warning at every start; rerun this to rebuild it).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORKLOAD = """
import sys, tempfile
from omegaconf import OmegaConf
from lakeforge.config.schema import SparkConfig
from lakeforge.lake.spark import get_spark, log4j_option

# No archive mapped while one is dumped: the driver options are set here, not by driver_java_options().
options = log4j_option() + " -XX:ArchiveClassesAtExit=" + sys.argv[1]
conf = {"spark.driver.extraJavaOptions": options}
spark = get_spark(OmegaConf.structured(SparkConfig(master="local[2]", progress_bar="false", conf=conf)))
with tempfile.TemporaryDirectory() as tmp:
    frame = spark.range(20000).selectExpr("id", "id % 7 AS k", "CAST(id AS DOUBLE) / 3 AS v", "DATE'2013-01-01' AS d")
    frame.write.partitionBy("d").parquet(tmp + "/t")
    read = spark.read.parquet(tmp + "/t")
    agg = read.groupBy("k").agg({"v": "avg"}).join(read.selectExpr("k", "v AS w"), "k")
    agg.selectExpr("percentile_approx(w, array(0.5), 100)", "approx_count_distinct(k)").collect()
    read.mapInArrow(lambda batches: batches, read.schema).count()
    read.limit(10).toPandas()
spark.stop()
"""


def build(archive: Path) -> float:
    """Write the archive (and its stamp) for this Java and Spark; return the seconds it took."""
    from lakeforge.lake.spark import archive_stamp

    started = time.monotonic()
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=archive.parent) as tmp:
        partial = Path(tmp) / archive.name
        proc = subprocess.run(
            [sys.executable, "-c", WORKLOAD, str(partial)], capture_output=True, text=True, timeout=600
        )
        if proc.returncode != 0 or not partial.is_file():
            raise RuntimeError(f"the archive was not written (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
        partial.replace(archive)
    archive.with_suffix(".stamp").write_text(archive_stamp() + "\n")
    return time.monotonic() - started


def main() -> int:
    from lakeforge.errors import EnvironmentSetupError
    from lakeforge.lake.spark import class_data_archive

    archive = class_data_archive()
    try:
        seconds = build(archive)
    except (EnvironmentSetupError, RuntimeError, OSError, subprocess.SubprocessError) as exc:
        # Not fatal: Spark starts without it, only slower.
        print(f"Spark class-data archive not built ({exc}); Spark will start without it", file=sys.stderr)
        return 0
    size = archive.stat().st_size / 1e6
    print(f"Spark class-data archive: {archive} ({size:.0f} MB, built in {seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
