"""The train step: training data through the features code path, fit, measure, and one MLflow run
with the lineage, the plots and the model, registered with the alias ``challenger``.

The estimator is built (and its declaration checked) before any data is read; the MLflow store is
opened only once the model is fitted, so a bad config or bad data fails fast and leaves no run.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from lakeforge.config.params import render_params
from lakeforge.errors import ConfigError
from lakeforge.features.build import RawTables, spec_from_config
from lakeforge.training.data import (
    SPLITS,
    collect_training_data,
    model_features,
    model_label,
    split_windows,
    training_frame,
)
from lakeforge.training.estimator import build_estimator
from lakeforge.training.fit import fit_and_measure, scores
from lakeforge.training.plots import classifier_plots, importance_plot

log = logging.getLogger(__name__)

CHALLENGER = "challenger"


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


def run_date_of(cfg: Any) -> date:
    """The composed run_date, required for training (the split windows hang off it)."""
    value = cfg.get("run_date")
    if not value:
        raise ConfigError("training needs run_date=YYYY-MM-DD (the split windows are offsets from it)", key="run_date")
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise ConfigError(f"run_date '{value}' is not a date; write YYYY-MM-DD", key="run_date") from exc


def _params(model: Any) -> dict[str, str]:
    """The MLflow params of a run: estimator, its params, seed and class weights."""
    params = {"estimator": str(model.estimator._target_), "seed": str(model.seed)}
    for key, value in (model.get("params") or {}).items():
        params[f"params.{key}"] = str(value)
    if model.get("class_weight") is not None:
        params["class_weight"] = str(model.class_weight)
    return params


def train(spark: Any, cfg: Any, catalog: Any, lineage: Any) -> TrainResult:
    """Train the composed model for ``run_date`` and register it as ``challenger``."""
    import mlflow

    from lakeforge.tracking.lineage import log_delta_inputs, log_split, run_tags
    from lakeforge.tracking.models import log_model, set_alias
    from lakeforge.tracking.store import connect

    run_date = run_date_of(cfg)
    model = cfg.model
    spec = spec_from_config(cfg, str(model.feature_set))
    estimator = build_estimator(model)
    features = model_features(model, spec)
    label = model_label(model, spec)
    windows = split_windows(model.splits, run_date)
    project_root = Path(str(cfg.project_root))
    tables = RawTables(spark, catalog)
    frame = training_frame(spark, spec, tables, windows, features, run_date, project_root)
    data = collect_training_data(frame, spec, windows, features, label, float(model.max_driver_mb), str(model.name))
    for split in SPLITS:  # the signature's type: every feature a double (nulls as NaN)
        data.frames[split][list(features)] = data.frames[split][list(features)].astype("float64")
    task = str(model.task)
    fitted = fit_and_measure(estimator, data, task, [str(m) for m in model.metrics])

    tracking = connect(cfg)
    spine = f"raw.{spec.spine}"
    with mlflow.start_run(experiment_id=tracking.experiment_id, run_name=f"train {model.name} {run_date}") as run:
        mlflow.set_tags(run_tags(lineage, project_root, tables.versions, int(model.seed), str(run_date), spark))
        mlflow.log_params(_params(model))
        mlflow.log_params({f"window.{w.name}": f"{w.start:%Y-%m-%d %H:%M}..{w.end:%Y-%m-%d %H:%M}" for w in windows})
        mlflow.log_metrics(
            {f"{s}.{m}": v for s, values in fitted.metrics.items() for m, v in values.items() if not math.isnan(v)}
        )
        mlflow.log_metrics({f"{s}.rows": float(n) for s, n in data.rows.items()})
        mlflow.log_metric("dropped_null_labels", float(data.dropped_null_labels))
        mlflow.log_text(render_params(cfg), "config/composed.yaml")
        log_delta_inputs(catalog, tables.versions)
        for split in SPLITS:
            log_split(data.frames[split], f"{spec.name}.{split}", label, catalog, spine, tables.versions[spine], split)
        test = data.frames["test"]
        if task == "classification":
            test_scores = scores(estimator, test[list(features)], task)
            for name, figure in classifier_plots(test[label].to_numpy(), test_scores, "test").items():
                mlflow.log_figure(figure, f"plots/test/{name}.png")
        importance = importance_plot(estimator, features)
        if importance is not None:
            mlflow.log_figure(importance, "plots/feature_importance.png")
        info = log_model(estimator, data.frames["train"][list(features)].head(5), features, task, str(model.name))
        version = str(info.registered_model_version)
        set_alias(tracking.client, str(model.name), CHALLENGER, version)
        tracking.client.set_model_version_tag(str(model.name), version, "lakeforge.run_date", str(run_date))
        tracking.client.set_model_version_tag(str(model.name), version, "lakeforge.run_id", run.info.run_id)
    log.info("train %s: version %s (run %s), test %s", model.name, version, run.info.run_id, fitted.metrics["test"])
    return TrainResult(
        str(model.name),
        version,
        run.info.run_id,
        str(info.model_uri),
        fitted.metrics,
        dict(data.rows),
        dict(tables.versions),
    )
