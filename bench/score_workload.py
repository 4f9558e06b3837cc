"""The batch-scoring benchmark's workload: a small lakeforge project on disk, built once per run (untimed).

- ``raw.events``, the spine: ``rows`` rows on `DAY` (ids 0..rows-1, event times spread over the
  day) and ``small_rows`` rows on `SMALL_DAY` (the memory probe's smaller population), generated in
  Spark (``spark.range`` + ``randn``) and written with `lakeforge.lake.delta.write_table`.
- ``features.bench_score``: 30 numeric features ``f<i> = x<i>`` (standard normal, ~2% nulls each)
  per spine row, partitioned by ``event_date``, one file per date (`write_tables`).
- ``bench_score``: a LightGBM classifier (100 trees, 31 leaves) trained on every 25th row of `DAY`
  (200k rows at 5M) with a synthetic label, logged with `lakeforge.tracking.models.log_model` to a
  SQLite MLflow store under the project and aliased ``champion`` (`register_model`).

`score_config` composes the config `lakeforge.scoring.job.score` reads (the model's ``scoring`` node
from its schema, `ScoringConfig`, so every default is lakeforge's own).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np

DAY = date(2013, 10, 16)
SMALL_DAY = date(2013, 10, 15)
N_FEATURES = 30
NULL_FRACTION = 0.02
TRAIN_EVERY = 25  # 5M rows -> a 200k-row training sample
MODEL = "bench_score"
FEATURE_SET = "bench_score"
SPINE = "events"
FEATURES = tuple(f"f{i}" for i in range(N_FEATURES))
LGBM_PARAMS: dict[str, Any] = {"n_estimators": 100, "num_leaves": 31, "verbose": -1, "random_state": 7}


def score_config(root: Path, run_date: date = DAY, **scoring: Any) -> Any:
    """The composed config of the benchmark project; ``scoring`` overrides `ScoringConfig` fields
    (``reasons`` as a dict of `ReasonsConfig` fields)."""
    from omegaconf import OmegaConf

    from lakeforge.config.schema_ml import ScoringConfig

    node = OmegaConf.structured(ScoringConfig)
    node = OmegaConf.merge(node, OmegaConf.create(scoring))
    cfg = OmegaConf.create(
        {
            "project_root": str(root),
            "run_date": run_date.isoformat(),
            "pipeline": {"name": "bench"},
            "tracking": {"uri": "sqlite:///mlflow.db", "artifact_location": "mlartifacts"},
            # The spine's declared key, as a dataset config declares it (ingest checks it unique).
            "dataset": {SPINE: {"event_time": "ts", "primary_key": ["id"]}},
            "features": {
                "name": FEATURE_SET,
                "entity": ["id"],
                "spine": {"dataset": SPINE, "event_time": "ts"},
                "expressions": [{"name": f, "expr": f"x{i}"} for i, f in enumerate(FEATURES)],
            },
            "model": {
                "name": MODEL,
                "task": "classification",
                "feature_set": FEATURE_SET,
                "features": list(FEATURES),
            },
        }
    )
    cfg.model.scoring = node
    return cfg


def _day_frame(spark: Any, day: date, rows: int, first_id: int, seed: int) -> Any:
    """``rows`` rows of ``day``: id, ts spread over the day, x0..x29 ~ N(0, 1) with ~2% nulls."""
    from pyspark.sql import functions as F  # noqa: N812

    midnight = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
    frame = spark.range(first_id, first_id + rows, numPartitions=max(2, rows // 500_000))
    seconds = F.lit(midnight) + ((F.col("id") - F.lit(first_id)) * F.lit(86_400) / F.lit(rows)).cast("long")
    columns = {"ts": F.timestamp_seconds(seconds)}
    for i in range(N_FEATURES):
        value = F.randn(seed * 1000 + 2 * i)
        columns[f"x{i}"] = F.when(F.rand(seed * 1000 + 2 * i + 1) < NULL_FRACTION, F.lit(None)).otherwise(value)
    return frame.withColumns(columns)


def feature_matrix(catalog: Any, day: date, version: int | None = None) -> np.ndarray:
    """The features of ``day`` from features.<set> via delta-rs: a C-ordered float64 matrix, nulls as NaN."""
    import pyarrow.dataset as ds

    from lakeforge.lake.delta import arrow_dataset

    dataset = arrow_dataset(catalog, f"features.{FEATURE_SET}", version)
    table = dataset.to_table(columns=list(FEATURES), filter=ds.field("event_date") == day)
    x = np.empty((table.num_rows, N_FEATURES), dtype=np.float64)
    for j, name in enumerate(FEATURES):
        x[:, j] = table.column(name).to_numpy()  # nulls -> NaN
    return x


def synthetic_label(x: np.ndarray, seed: int = 0) -> np.ndarray:
    """A learnable binary label: linear in 10 features, one interaction, one non-linearity, logistic noise."""
    rng = np.random.default_rng(seed)
    z = np.nan_to_num(x)
    logit = z[:, :10] @ rng.normal(size=10) + 0.5 * z[:, 10] * z[:, 11] + np.sin(2 * z[:, 12])
    return (logit + rng.logistic(size=len(z)) > 0).astype(int)


def register_model(cfg: Any, x_train: np.ndarray) -> tuple[int, str]:
    """Train the classifier on ``x_train``, log and register it, alias it ``champion``; (version, uri)."""
    import lightgbm as lgb
    import mlflow
    import pandas as pd

    from lakeforge.tracking.models import log_model, set_alias
    from lakeforge.tracking.store import connect

    frame = pd.DataFrame(x_train, columns=list(FEATURES))
    estimator = lgb.LGBMClassifier(**LGBM_PARAMS).fit(frame, synthetic_label(x_train))
    tracking = connect(cfg)
    with mlflow.start_run(experiment_id=tracking.experiment_id, run_name="bench_score train"):
        info = log_model(estimator, frame.head(5), FEATURES, "classification", MODEL)
    version = int(info.registered_model_version)
    set_alias(tracking.client, MODEL, "champion", version)
    return version, f"models:/{MODEL}/{version}"


def write_tables(
    spark: Any, root: Path, catalog: Any, rows: int, small_rows: int, build: bool
) -> tuple[int, dict[str, float]]:
    """raw.events and features.bench_score for `SMALL_DAY` and `DAY`; (feature table version, seconds per step).

    ``build``: raw.events holds x0..x29 and `build_features` computes the feature table (with its
    statistics; ~5 min at 5M rows here). Otherwise raw.events holds the spine only (id, ts) and the
    same rows' features are written straight to features.bench_score with the layout
    `build_features` gives it (partitioned by event_date, one file per date, same schema): the
    scoring job reads nothing else of them.
    """
    import time

    from lakeforge.features.build import build_features
    from lakeforge.lake.delta import Lineage, new_job_run_id, write_table

    seconds: dict[str, float] = {}
    frame = _day_frame(spark, SMALL_DAY, small_rows, rows, seed=2).unionByName(_day_frame(spark, DAY, rows, 0, seed=1))
    lineage = Lineage(new_job_run_id(), step="features")
    started = time.perf_counter()
    write_table(frame if build else frame.select("id", "ts"), catalog, f"raw.{SPINE}")
    seconds["raw_s"] = time.perf_counter() - started
    started = time.perf_counter()
    if build:
        version = build_features(spark, score_config(root), catalog, lineage, SMALL_DAY, DAY).version
    else:
        version = _write_features(frame, catalog, lineage)
    seconds["features_s"] = time.perf_counter() - started
    return version, seconds


def _write_features(frame: Any, catalog: Any, lineage: Any, files: int | None = None) -> int:
    """The rows' features straight to features.bench_score, laid out as `build_features` lays them out
    (partitioned by event_date, one file per date; or ``files`` files, for a frame of one date); the
    table version written."""
    from pyspark.sql import functions as F  # noqa: N812

    from lakeforge.features.compute import EVENT_DATE
    from lakeforge.lake.delta import write_table

    features = frame.select(
        "id", "ts", F.to_date("ts").alias(EVENT_DATE), *[F.col(f"x{i}").alias(f) for i, f in enumerate(FEATURES)]
    )
    by_date = features.repartition(files) if files else features.repartition(features[EVENT_DATE])
    written = write_table(
        by_date,
        catalog,
        f"features.{FEATURE_SET}",
        mode="overwrite_partitions",
        partition_by=[EVENT_DATE],
        lineage=lineage,
    )
    return written.version


def add_day(spark: Any, catalog: Any, day: date, rows: int, first_id: int, seed: int) -> float:
    """One more date of ``rows`` rows (ids from ``first_id``) appended to raw.events and written to
    features.bench_score in files of 5M rows at most (the scale benchmark's 20M date); seconds taken."""
    import time

    from lakeforge.lake.delta import Lineage, new_job_run_id, write_table

    started = time.perf_counter()
    frame = _day_frame(spark, day, rows, first_id, seed)
    write_table(frame.select("id", "ts"), catalog, f"raw.{SPINE}")
    _write_features(frame, catalog, Lineage(new_job_run_id(), step="features"), files=-(-rows // 5_000_000))
    return time.perf_counter() - started
