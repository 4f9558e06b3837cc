"""Evaluation plots of a classifier on one split, as matplotlib figures (headless, no pyplot state):
ROC, precision-recall, calibration, confusion matrix and feature importance."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from lakeforge.training.fit import THRESHOLD

os.environ.setdefault("MPLBACKEND", "Agg")  # before scikit-learn's displays import pyplot


def _figure() -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4.5), layout="constrained")
    return figure, figure.subplots()


def classifier_plots(y: np.ndarray, score: np.ndarray, split: str) -> dict[str, Any]:
    """``roc``, ``pr``, ``calibration`` and ``confusion`` figures of scores against labels."""
    from sklearn.calibration import CalibrationDisplay
    from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay

    figures = {}
    for name, draw in (
        ("roc", lambda ax: RocCurveDisplay.from_predictions(y, score, ax=ax)),
        ("pr", lambda ax: PrecisionRecallDisplay.from_predictions(y, score, ax=ax)),
        ("calibration", lambda ax: CalibrationDisplay.from_predictions(y, score, n_bins=10, ax=ax)),
        (
            "confusion",
            lambda ax: ConfusionMatrixDisplay.from_predictions(y, (score >= THRESHOLD).astype(int), ax=ax),
        ),
    ):
        figure, ax = _figure()
        draw(ax)
        ax.set_title(f"{name} ({split})")
        figures[name] = figure
    return figures


def importance_plot(estimator: Any, features: Sequence[str], top: int = 20) -> Any | None:
    """The estimator's feature importances (or |coefficients|), largest first; None if it has neither."""
    values = getattr(estimator, "feature_importances_", None)
    if values is None and getattr(estimator, "coef_", None) is not None:
        values = np.abs(np.ravel(estimator.coef_))
    if values is None or len(values) != len(features):
        return None
    order = np.argsort(values)[::-1][:top][::-1]
    figure, ax = _figure()
    ax.barh([features[i] for i in order], np.asarray(values)[order])
    ax.set_title("feature importance")
    return figure


def curve_points(y: np.ndarray, score: np.ndarray, points: int = 101) -> dict[str, list[dict[str, float]]]:
    """ROC, precision-recall and calibration curves as rows for ``dvc plots`` (at most ``points`` rows
    each: the curves are resampled on an even grid, so the files stay small and diffable)."""
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import precision_recall_curve, roc_curve

    grid = np.linspace(0.0, 1.0, points)
    fpr, tpr, _ = roc_curve(y, score)
    precision, recall, _ = precision_recall_curve(y, score)
    order = np.argsort(recall)
    observed, predicted = calibration_curve(y, score, n_bins=10)
    return {
        "roc": [{"fpr": float(x), "tpr": float(v)} for x, v in zip(grid, np.interp(grid, fpr, tpr), strict=True)],
        "pr": [
            {"recall": float(x), "precision": float(v)}
            for x, v in zip(grid, np.interp(grid, recall[order], precision[order]), strict=True)
        ],
        "calibration": [
            {"predicted": float(p), "observed": float(o)} for p, o in zip(predicted, observed, strict=True)
        ],
    }
