"""Pipeline steps of the small flight-delay project in one process, for the cluster equality test:
``python -m tests.e2e.helpers_cluster_steps PROJECT MASTER LAKE STEP[@RUN_DATE] …`` composes the
project's conf/ with ``storage.lake_root=LAKE`` and, for a ``spark://`` master, ``spark=cluster``,
then runs each step on one SparkSession; prints the number of executors as its last line."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from lakeforge.config import load_config
from lakeforge.lake.catalog import catalog_from_config
from lakeforge.lake.lineage import Lineage, new_job_run_id
from lakeforge.lake.spark import get_spark
from lakeforge.pipeline.steps import STEPS


def main(project: Path, master: str, lake: str, steps: list[str]) -> None:
    os.chdir(project)
    cluster = master.startswith("spark://")
    base = [f"storage.lake_root={lake}", "spark.progress_bar=false"]
    base += (
        ["spark=cluster", f"spark.master={master}", "spark.shuffle_partitions=8"]
        if cluster
        else [f"spark.master='{master}'"]
    )
    first = load_config(base, conf_dir=project / "conf")
    spark = get_spark(first.spark)
    try:
        sc = spark.sparkContext
        started = time.monotonic()
        while cluster and sc._jsc.sc().getExecutorMemoryStatus().size() < 3 and time.monotonic() - started < 60:
            time.sleep(0.5)  # the driver counts itself: wait for both workers' executors
        for item in steps:
            step, _, run_date = item.partition("@")
            cfg = load_config([*base, f"run_date={run_date}"] if run_date else base, conf_dir=project / "conf")
            STEPS[step](spark, cfg, catalog_from_config(cfg.storage, project), Lineage(new_job_run_id(), step=step))
        print(int(sc._jsc.sc().getExecutorMemoryStatus().size()) - 1)
    finally:
        spark.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:])
