"""A small training project on real Delta tables for the training, gate, sweep and reproduce tests:
40 days of hourly events for 3 keys, late when ``v`` is high (learnable from the hour and the key)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from lakeforge.lake.catalog import Catalog
from lakeforge.lake.delta import Lineage, write_table

T0 = datetime(2024, 5, 1)


def make_project(spark: Any, tmp_path: Path) -> tuple[Any, Catalog]:
    """The raw table ``raw.ev`` written under ``tmp_path/lake`` and the composed config of a model on it."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(40 * 24):
        t = T0 + timedelta(hours=i)
        for k in range(3):
            v = float(t.hour / 24 + k * 0.2 + rng.normal(0, 0.2))
            rows.append((i * 3 + k, k, t, v))
    catalog = Catalog(tmp_path / "lake")
    write_table(spark.createDataFrame(rows, "id int, k int, t timestamp, v double"), catalog, "raw.ev")
    cfg = OmegaConf.create(
        {
            "project_root": str(tmp_path),
            "run_date": "2024-06-10",
            "pipeline": {"name": "demo"},
            "tracking": {"uri": "sqlite:///mlflow.db", "artifact_location": "mlartifacts"},
            "dataset": {"ev": {"event_time": "t"}},
            "features": {
                "name": "demo",
                "entity": ["id"],
                "spine": {"dataset": "ev", "event_time": "t"},
                "expressions": [{"name": "hour_of_day", "expr": "hour(t)"}, {"name": "key", "expr": "k"}],
                "windows": [{"name": "n_1d", "function": "count", "window": "1d", "by": ["k"]}],
                "label": {"name": "late", "expr": "CAST(v > 0.7 AS INT)", "available_after": "1h"},
            },
            "model": {
                "name": "demo_model",
                "estimator": {"_target_": "lightgbm.LGBMClassifier"},
                "params": {"n_estimators": 20, "num_leaves": 7, "verbose": -1},
                "feature_set": "demo",
                "features": [],
                "label": "late",
                "task": "classification",
                "splits": {
                    "train": {"start": "-40d", "end": "-10d"},
                    "validation": {"start": "-10d", "end": "-5d"},
                    "test": {"start": "-5d", "end": "-1d"},
                },
                "metrics": ["roc_auc", "log_loss"],
                "seed": 3,
                "max_driver_mb": 100,
                "primary_metric": "roc_auc",
                "gate": {
                    "min_metrics": {"roc_auc": 0.6},
                    "min_improvement": -0.01,
                    "slices": [{"column": "key", "max_degradation": 0.05, "min_rows": 20}],
                    "fairness": [{"column": "key", "max_gap": 0.5, "min_rows": 20}],
                    "baseline": {
                        "estimator": {"_target_": "sklearn.dummy.DummyClassifier"},
                        "params": {"strategy": "prior"},
                        "min_margin": 0.0,
                    },
                },
            },
        }
    )
    return cfg, catalog


def job_lineage(step: str) -> Lineage:
    """A lineage for a job run of ``step`` in a test (a unique run id, a fixed git commit and config hash)."""
    import time

    return Lineage(f"job-{step}-{time.monotonic_ns()}", git_commit="abc", git_dirty=False, config_hash="h", step=step)
