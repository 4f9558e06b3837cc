"""The cluster run of tests/e2e/test_runs_airflow_and_cluster.py, in its own process (one SparkContext per process):
``python -m tests.e2e.helpers_cluster ROOT MASTER`` builds the small training project under ROOT with the
session on MASTER, trains, promotes, scores three dates, monitors them, and prints one JSON line."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from lakeforge.config.schema import SparkConfig
from lakeforge.lake.delta import Lineage, arrow_dataset
from lakeforge.lake.spark import get_spark
from lakeforge.monitoring.job import monitor
from lakeforge.scoring.job import score
from lakeforge.tracking.registry import promote_by_hand
from lakeforge.training.run import train
from tests.spark.helpers_train import make_project


def main(root: Path, master: str) -> None:
    import mlflow

    spark = get_spark(OmegaConf.structured(SparkConfig(master=master, app_name="cluster-test", progress_bar="false")))
    try:
        sc = spark.sparkContext
        started = time.monotonic()
        while sc._jsc.sc().getExecutorMemoryStatus().size() < 3 and time.monotonic() - started < 60:
            time.sleep(0.5)  # the driver counts itself: 3 means both workers have an executor
        executors = int(sc._jsc.sc().getExecutorMemoryStatus().size()) - 1
        cfg, catalog = make_project(spark, root)
        cfg.model.features = ["hour_of_day", "key", "n_1d"]
        cfg.model.gate.baseline = None
        cfg.model.scoring = {}

        def lineage(step: str) -> Lineage:
            return Lineage(f"cluster-{step}-{time.monotonic_ns()}", step=step)

        train(spark, cfg, catalog, lineage("train"))
        promote_by_hand(cfg, "demo_model", "1", "cluster test")
        span = cfg.copy()
        span.run_date, span.start_date, span.end_date = None, "2024-06-07", "2024-06-09"
        scored = score(spark, span, catalog, lineage("score"))
        span.monitor = {
            "name": "demo_monitor",
            "model": "demo_model",
            "deadlines": {"labels_within": "1d"},
            "alerts": {"rules": [], "channels": []},
        }
        monitored = monitor(spark, span, catalog, lineage("monitor"), replay=True)
        # The scores the executors wrote, against the model applied here to the same feature rows.
        predictions = arrow_dataset(catalog, "predictions.demo_model").to_table().to_pandas()
        features = arrow_dataset(catalog, "features.demo").to_table().to_pandas()
        joined = predictions.merge(features, on="id")
        estimator = mlflow.sklearn.load_model("models:/demo_model@champion")
        expected = estimator.predict_proba(joined[list(cfg.model.features)])[:, 1]
        print(
            json.dumps(
                {
                    "master": sc.master,
                    "executors": executors,
                    "rows": scored.rows,
                    "population": sum(d.population for d in scored.days),
                    "max_score_diff": float(np.max(np.abs(joined["score"].to_numpy() - expected))),
                    "monitored_dates": [str(d.run_date) for d in monitored.days],
                    "drift_share": [d.signals["drift_share"] for d in monitored.days],
                    "auc": [d.signals["performance.roc_auc"] for d in monitored.days],
                }
            )
        )
    finally:
        spark.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
