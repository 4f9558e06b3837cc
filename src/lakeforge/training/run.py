"""The train step: training data through the features code path, fit, measure, and one MLflow run
with the lineage, the plots and the model, registered with the alias ``challenger``.

The estimator is built (and its declaration checked) before any data is read; the MLflow store is
opened only once the model is fitted, so a bad config or bad data fails fast and leaves no run.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from lakeforge.config.params import render_params
from lakeforge.config.secrets import redact_value
from lakeforge.errors import ConfigError
from lakeforge.features.build import RawTables, spec_from_config
from lakeforge.features.spec import FeatureSetSpec
from lakeforge.training.data import (
    LABEL,
    SPLIT,
    SPLITS,
    TrainingData,
    Window,
    collect_training_data,
    model_features,
    model_label,
    spark_training_data,
    split_windows,
    training_frame,
)
from lakeforge.training.estimator import build_baseline, build_estimator, is_mllib_model
from lakeforge.training.fit import fit_and_measure, scores, slice_metrics
from lakeforge.training.plots import classifier_plots, curve_points, importance_plot

log = logging.getLogger(__name__)

CHALLENGER = "challenger"
COMPOSED_CONFIG = "config/composed.yaml"  # the run's artifact holding its composed config
BASELINE_TAG = "lakeforge.baseline_model_uri"
# The test split's score histogram (20 equal bins on [0, 1]): monitoring's prediction-drift reference.
SCORE_REFERENCE = "monitoring/score_reference.json"
# The test split's rows (keys, event time, features, label): the gate judges every model on them
# (lakeforge.training.evaluate) instead of rebuilding them from the raw tables. Not logged above
# TEST_ROWS_MAX_MB in memory: the gate then rebuilds them.
TEST_ROWS = "data/test.parquet"
TEST_ROWS_MAX_MB = 256.0
SCORE_REFERENCE_BINS = 20


@dataclass(frozen=True)
class TrainResult:
    """What one training run produced."""

    model: str
    version: str
    run_id: str
    model_uri: str
    metrics: dict[str, dict[str, float]]
    rows: dict[str, int]
    inputs: dict[str, int]
    baseline_metrics: dict[str, dict[str, float]] | None = None
    curves: dict[str, list[dict[str, float]]] | None = None  # test ROC/PR/calibration points (dvc plots)


def run_date_of(cfg: Any) -> date:
    """The composed run_date, required for training (the split windows hang off it)."""
    value = cfg.get("run_date")
    if not value:
        raise ConfigError("training needs run_date=YYYY-MM-DD (the split windows are offsets from it)", key="run_date")
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise ConfigError(f"run_date '{value}' is not a date; write YYYY-MM-DD", key="run_date") from exc


def window_text(window: Window) -> str:
    """A split window as logged in the run's params (``window.<split>``)."""
    return f"{window.start:%Y-%m-%d %H:%M}..{window.end:%Y-%m-%d %H:%M}"


def _flat(metrics: dict[str, dict[str, float]], prefix: str = "") -> dict[str, float]:
    """``{split: {metric: v}}`` as MLflow metrics ``<prefix><split>.<metric>`` (undefined ones left out)."""
    return {f"{prefix}{s}.{m}": v for s, values in metrics.items() for m, v in values.items() if not math.isnan(v)}


def _prefixed(metrics: dict[str, float], prefix: str) -> dict[str, float]:
    return {f"{prefix}{k}": v for k, v in metrics.items()}


def _params(model: Any) -> dict[str, str]:
    """The MLflow params of a run: estimator, its params (credentials masked), seed and class weights."""
    params = {"estimator": str(model.estimator._target_), "seed": str(model.seed)}
    for key, value in (model.get("params") or {}).items():
        params[f"params.{key}"] = str(redact_value(key, value))
    if model.get("class_weight") is not None:
        params["class_weight"] = str(model.class_weight)
    return params


@dataclass(frozen=True)
class Prepared:
    """Everything a fit needs, built once (a sweep fits many models on the same data)."""

    run_date: date
    spec: FeatureSetSpec
    features: tuple[str, ...]
    label: str
    data: TrainingData  # with a Spark MLlib estimator, ``frames`` holds only ``test``
    inputs: dict[str, int]  # raw table -> version read
    splits: Any = None  # Spark MLlib: every labelled row, persisted in Spark (``data.spark_training_data``)


def prepare(spark: Any, cfg: Any, catalog: Any, pinned: Mapping[str, int] | None = None) -> Prepared:
    """Check the estimator and the baseline, then build and collect the split windows' rows, reading the
    raw tables at ``pinned`` versions (the latest where not pinned).

    A Spark MLlib estimator collects only the test split; the others stay in Spark (``Prepared.splits``).
    """
    run_date = run_date_of(cfg)
    model = cfg.model
    spec = spec_from_config(cfg, str(model.feature_set))
    build_estimator(model)
    build_baseline(model)
    mllib = is_mllib_model(model)
    if mllib and str(model.task) != "classification":
        raise ConfigError(
            f"a Spark MLlib estimator ('{model.estimator._target_}') is supported for classification only; "
            "use a scikit-learn or LightGBM regressor",
            key="model.task",
        )
    features = model_features(model, spec)
    label = model_label(model, spec)
    windows = split_windows(model.splits, run_date)
    tables = RawTables(spark, catalog, pinned)
    frame = training_frame(spark, spec, tables, windows, features, run_date, Path(str(cfg.project_root)))
    if mllib:
        limit, name = float(model.max_driver_mb), str(model.name)
        splits, test = spark_training_data(frame, spec, windows, features, label, limit, name)
        return Prepared(run_date, spec, features, label, test, dict(tables.versions), splits)
    data = collect_training_data(frame, spec, windows, features, label, float(model.max_driver_mb), str(model.name))
    return Prepared(run_date, spec, features, label, data, dict(tables.versions))


def fit_and_log(
    spark: Any,
    cfg: Any,
    catalog: Any,
    lineage: Any,
    prepared: Prepared,
    *,
    parent_run_id: str | None = None,
    register: bool = True,
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> TrainResult:
    """Fit the composed model (and the gate's baseline) on ``prepared`` and log one MLflow run.

    ``register``: register the model and point ``challenger`` at it (a sweep's trials are logged
    unregistered under ``parent_run_id``, and only the best is registered). ``run_name`` and ``tags``
    are set when the run starts (a sweep trial, a reproduction), so even a run that fails has them.
    """
    import mlflow

    from lakeforge.tracking.lineage import log_delta_inputs, log_split, run_tags
    from lakeforge.tracking.models import log_model
    from lakeforge.tracking.store import connect

    model, data, features, label = cfg.model, prepared.data, list(prepared.features), prepared.label
    task = str(model.task)
    metric_names = [str(m) for m in model.metrics]
    mllib = prepared.splits is not None
    if mllib:
        from lakeforge.training import mllib as ml

        fitted = ml.fit_and_measure(build_estimator(model), prepared.splits, features, metric_names)
        baseline = None
        if build_baseline(model) is not None:
            log.warning(
                "train %s: no baseline for a Spark MLlib model (a scikit-learn baseline would need the training "
                "data on the driver); the gate's baseline check will be skipped",
                model.name,
            )
    else:
        fitted = fit_and_measure(build_estimator(model), data, task, metric_names)
        baseline_estimator = build_baseline(model)
        baseline = fit_and_measure(baseline_estimator, data, task, metric_names) if baseline_estimator else None

    project_root = Path(str(cfg.project_root))
    tracking = connect(cfg)
    spine = f"raw.{prepared.spec.spine}"
    run_name = run_name or f"train {model.name} {prepared.run_date}"
    with mlflow.start_run(
        experiment_id=tracking.experiment_id, run_name=run_name, parent_run_id=parent_run_id, tags=dict(tags or {})
    ) as run:
        seed, run_date = int(model.seed), str(prepared.run_date)
        mlflow.set_tags(run_tags(lineage, project_root, prepared.inputs, seed, run_date, spark))
        mlflow.set_tag("lakeforge.model", str(model.name))
        mlflow.log_params(_params(model))
        mlflow.log_params({f"window.{w.name}": window_text(w) for w in data.windows})
        mlflow.log_metrics(_flat(fitted.metrics))
        mlflow.log_metrics({f"{s}.rows": float(n) for s, n in data.rows.items()})
        mlflow.log_metric("dropped_null_labels", float(data.dropped_null_labels))
        mlflow.log_text(render_params(cfg), COMPOSED_CONFIG)
        log_delta_inputs(catalog, prepared.inputs)
        for split in SPLITS:
            name = f"{prepared.spec.name}.{split}"
            if split in data.frames:
                log_split(data.frames[split], name, label, catalog, spine, prepared.inputs[spine], split)
            else:
                rows = prepared.splits.where(f"{SPLIT} = '{split}'").drop(SPLIT, LABEL)
                ml.log_spark_split(rows, name, label, catalog, spine, prepared.inputs[spine], split)
        test = data.frames["test"]
        _log_test_rows(test)
        if mllib:
            test_scores = ml.score_frame(fitted.estimator, spark, test, features)
        else:
            test_scores = scores(fitted.estimator, test[features], task)
        gate = model.get("gate") or {}
        columns = [str(c.column) for group in ("slices", "fairness") for c in (gate.get(group) or [])]
        mlflow.log_metrics(_prefixed(slice_metrics(test, label, test_scores, columns, metric_names), "test."))
        curves = None
        if task == "classification":
            # The monitor's reference for prediction drift (lakeforge.monitoring.reference).
            counts, _ = np.histogram(np.clip(test_scores, 0.0, 1.0), bins=SCORE_REFERENCE_BINS, range=(0.0, 1.0))
            mlflow.log_dict(
                {"split": "test", "rows": len(test_scores), "bins": SCORE_REFERENCE_BINS, "counts": counts.tolist()},
                SCORE_REFERENCE,
            )
            curves = curve_points(test[label].to_numpy(), test_scores)
            for name, figure in classifier_plots(test[label].to_numpy(), test_scores, "test").items():
                mlflow.log_figure(figure, f"plots/test/{name}.png")
        importance = importance_plot(ml.importances(fitted.estimator) if mllib else fitted.estimator, prepared.features)
        if importance is not None:
            mlflow.log_figure(importance, "plots/feature_importance.png")
        example = data.frames["train"][features].head(5) if not mllib else None
        if baseline is not None:
            mlflow.log_metrics(_flat(baseline.metrics, "baseline."))
            baseline_info = log_model(baseline.estimator, example, features, task, None, name="baseline")
            mlflow.set_tag(BASELINE_TAG, str(baseline_info.model_uri))
        registered = str(model.name) if register else None
        if mllib:
            info = ml.log_spark_model(fitted.estimator, features, registered)
        else:
            info = log_model(fitted.estimator, example, features, task, registered)
        version = ""
        if register:
            version = str(info.registered_model_version)
            mark_challenger(tracking.client, str(model.name), version, run_date, run.info.run_id)
    log.info("train %s: version %s (run %s), test %s", model.name, version, run.info.run_id, fitted.metrics["test"])
    return TrainResult(
        str(model.name),
        version,
        run.info.run_id,
        str(info.model_uri),
        fitted.metrics,
        dict(data.rows),
        dict(prepared.inputs),
        baseline.metrics if baseline is not None else None,
        curves,
    )


def _log_test_rows(test: Any) -> None:
    """The test split as the run's ``TEST_ROWS`` artifact, when it is small enough."""
    import tempfile

    import mlflow

    size_mb = float(test.memory_usage(deep=True).sum()) / 1e6
    if size_mb > TEST_ROWS_MAX_MB:
        log.info("test split of %.0f MB not logged (over %.0f MB): the gate rebuilds it", size_mb, TEST_ROWS_MAX_MB)
        return
    folder, name = TEST_ROWS.rsplit("/", 1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        test.to_parquet(path, index=False)
        mlflow.log_artifact(str(path), folder)


def mark_challenger(client: Any, name: str, version: str, run_date: str, run_id: str) -> None:
    """Point ``challenger`` of registered model ``name`` at ``version`` and tag the version with the run
    date and the run that logged it (a sweep registers its best trial's model this way too)."""
    from lakeforge.tracking.models import set_alias

    set_alias(client, name, CHALLENGER, version)
    client.set_model_version_tag(name, version, "lakeforge.run_date", run_date)
    client.set_model_version_tag(name, version, "lakeforge.run_id", run_id)


def train(spark: Any, cfg: Any, catalog: Any, lineage: Any, pinned: Mapping[str, int] | None = None) -> TrainResult:
    """Train the composed model for ``run_date`` and register it as ``challenger``."""
    from lakeforge.tracking.store import require_reachable

    require_reachable(cfg)  # before the features and the fit, not after them
    return fit_and_log(spark, cfg, catalog, lineage, prepare(spark, cfg, catalog, pinned))
