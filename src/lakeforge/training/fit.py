"""Fit the estimator on the train split and measure it on every split (the declared metrics)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lakeforge.errors import ConfigError
from lakeforge.training.data import TrainingData

THRESHOLD = 0.5  # for the metrics of hard predictions (accuracy, f1, precision, recall)


@dataclass(frozen=True)
class Fitted:
    """A fitted estimator and its metrics per split."""

    estimator: Any
    metrics: dict[str, dict[str, float]]  # split -> metric -> value


def scores(estimator: Any, features: Any, task: str) -> np.ndarray:
    """The model's score per row: P(label = 1) for classification, the prediction for regression."""
    if task == "classification":
        return np.asarray(estimator.predict_proba(features))[:, 1]
    return np.asarray(estimator.predict(features), dtype=float)


def metric(name: str, y: np.ndarray, score: np.ndarray) -> float:
    """One declared metric of scores against labels."""
    from sklearn import metrics as m

    hard = (score >= THRESHOLD).astype(int)
    if name in ("roc_auc", "pr_auc") and len(np.unique(y)) < 2:
        return float("nan")  # undefined with a single class in the window
    computed = {
        "roc_auc": lambda: m.roc_auc_score(y, score),
        "pr_auc": lambda: m.average_precision_score(y, score),
        "log_loss": lambda: m.log_loss(y, np.clip(score, 1e-15, 1 - 1e-15), labels=[0, 1]),
        "brier": lambda: m.brier_score_loss(y, score),
        "accuracy": lambda: m.accuracy_score(y, hard),
        "f1": lambda: m.f1_score(y, hard, zero_division=0),
        "precision": lambda: m.precision_score(y, hard, zero_division=0),
        "recall": lambda: m.recall_score(y, hard, zero_division=0),
        "rmse": lambda: float(np.sqrt(m.mean_squared_error(y, score))),
        "mae": lambda: m.mean_absolute_error(y, score),
        "r2": lambda: m.r2_score(y, score),
    }
    if name not in computed:
        raise ConfigError(f"unknown metric '{name}'; allowed: {', '.join(computed)}", key="model.metrics")
    return float(computed[name]())


def fit_and_measure(estimator: Any, data: TrainingData, task: str, metric_names: Sequence[str]) -> Fitted:
    """Fit on ``train``; every metric on every split."""
    train = data.frames["train"]
    estimator.fit(train[list(data.features)], train[data.label].to_numpy())
    results: dict[str, dict[str, float]] = {}
    for split, frame in data.frames.items():
        s = scores(estimator, frame[list(data.features)], task)
        y = frame[data.label].to_numpy()
        results[split] = {name: metric(name, y, s) for name in metric_names}
    return Fitted(estimator, results)


def slice_metrics(
    frame: Any, label: str, score: np.ndarray, columns: Sequence[str], metric_names: Sequence[str]
) -> dict[str, float]:
    """``slice.<column>.<value>.<metric>`` for each value of each column (undefined ones left out)."""
    found: dict[str, float] = {}
    y = frame[label].to_numpy()
    for column in dict.fromkeys(columns):
        values = frame[column].astype("string").fillna("null").to_numpy()
        for value in sorted(set(values)):
            rows = values == value
            for name in metric_names:
                v = metric(name, y[rows], score[rows])
                if not np.isnan(v):
                    found[f"slice.{column}.{value}.{name}"] = v
    return found
