"""A scoring job in its own process, for the SIGKILL test: ``python -m tests.spark.helpers_score_job CFG.yaml``
starts Spark (local[1]), scores the config's run date and exits 0 when the commit landed."""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import OmegaConf

from lakeforge.config.schema import SparkConfig
from lakeforge.lake.catalog import Catalog
from lakeforge.lake.delta import Lineage, new_job_run_id
from lakeforge.lake.spark import get_spark
from lakeforge.scoring.job import score


def main(path: str) -> None:
    cfg = OmegaConf.load(path)
    spark = get_spark(OmegaConf.structured(SparkConfig(master="local[1]", app_name="score-kill", progress_bar="false")))
    try:
        score(spark, cfg, Catalog(Path(str(cfg.project_root)) / "lake"), Lineage(new_job_run_id(), step="score"))
    finally:
        spark.stop()


if __name__ == "__main__":
    main(sys.argv[1])
