"""Performance metrics from binned scores against scikit-learn on the raw scores."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import log_loss, precision_score, recall_score, roc_auc_score

from lakeforge.errors import UsageError
from lakeforge.monitoring.perf import (
    auc_binned,
    calibration_binned,
    log_loss_from_sum,
    precision_recall_at,
    score_edges,
)
from lakeforge.monitoring.stats import LOG_LOSS_EPS

# Float rounding only: the compared computations are the same sums in another order.
ROUNDING = 1e-12
FINE_BINS = 1000


def _labelled(seed: int, n: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """Labels and scores of a fair model: positives score higher on average, probabilities in (0, 1)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=n)
    scores = 1 / (1 + np.exp(-(rng.normal(0, 1.5, n) + 1.2 * (labels - 0.5))))
    return labels, scores


def _bin(labels: np.ndarray, scores: np.ndarray, bins: int = FINE_BINS) -> tuple[np.ndarray, np.ndarray]:
    """Positive and negative counts per score bin, as the monitor computes them."""
    edges = score_edges(bins)
    return np.histogram(scores[labels == 1], edges)[0], np.histogram(scores[labels == 0], edges)[0]


def test_auc_equals_sklearn_when_every_score_has_its_own_bin() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, size=3000)
    # Scores at bin middles, many tied: sklearn's trapezoid counts ties half, as the bins do.
    scores = (np.clip(rng.integers(0, 60, size=3000) + 25 * labels, 0, 99) + 0.5) / 100
    assert auc_binned(*_bin(labels, scores, 100)) == pytest.approx(roc_auc_score(labels, scores), abs=ROUNDING)


@pytest.mark.parametrize("bins", [1000, 20])
def test_auc_of_continuous_scores_within_the_tied_pairs(bins: int) -> None:
    labels, scores = _labelled(2)
    pos, neg = _bin(labels, scores, bins)
    # Pairs sharing a bin count half whatever their order: at most half their share is wrong.
    tied_pairs = 0.5 * float(np.sum(pos * neg)) / (pos.sum() * neg.sum())
    assert auc_binned(pos, neg) == pytest.approx(roc_auc_score(labels, scores), abs=tied_pairs + ROUNDING)


def test_auc_is_none_without_both_classes() -> None:
    assert auc_binned([0, 3, 2], [0, 0, 0]) is None
    assert auc_binned([0, 0], [0, 0]) is None
    assert auc_binned([0, 1], [1, 0]) == 1.0


@pytest.mark.parametrize("threshold", [0.1 + 0.2, 0.5, 0.9, 0.0])
def test_precision_recall_at_a_bin_edge_equal_sklearn(threshold: float) -> None:
    labels, scores = _labelled(3)
    pos, neg = _bin(labels, scores)
    predicted = (scores >= threshold).astype(int)
    expected = (precision_score(labels, predicted), recall_score(labels, predicted))
    # 0.1 + 0.2 is one ulp above linspace's edge 0.3: the edge tolerance makes it that edge, so exact.
    assert precision_recall_at(threshold, FINE_BINS, pos, neg) == pytest.approx(expected, abs=ROUNDING)
    assert precision_recall_at(threshold, score_edges(FINE_BINS), pos, neg) == pytest.approx(expected, abs=ROUNDING)


def test_precision_recall_inside_a_bin_lies_between_its_edges() -> None:
    labels, scores = _labelled(4)
    pos, neg = _bin(labels, scores, 10)
    inside = precision_recall_at(0.55, 10, pos, neg)
    below, above = precision_recall_at(0.5, 10, pos, neg), precision_recall_at(0.6, 10, pos, neg)
    assert inside.recall is not None and below.recall is not None and above.recall is not None
    assert above.recall < inside.recall < below.recall


def test_precision_recall_undefined_parts_are_none() -> None:
    assert precision_recall_at(0.5, 2, [3, 0], [1, 0]) == (None, 0.0)  # nothing predicted positive
    assert precision_recall_at(0.5, 2, [0, 0], [1, 4]) == (0.0, None)  # no positive row
    with pytest.raises(UsageError, match=r"^11 score edges make 10 bins, but the counts have 2$"):
        precision_recall_at(0.5, 10, [1, 2], [2, 1])


def test_calibration_matches_sklearn_uniform_bins() -> None:
    labels, scores = _labelled(5)
    pos, neg = _bin(labels, scores)
    score_sums = np.histogram(scores, score_edges(FINE_BINS), weights=scores)[0]
    calibration = calibration_binned(pos, neg, score_sums, n_bins=10)
    observed, predicted = calibration_curve(labels, scores, n_bins=10, strategy="uniform")
    assert [b.observed_rate for b in calibration.bins] == pytest.approx(observed, abs=ROUNDING)
    assert [b.mean_predicted for b in calibration.bins] == pytest.approx(predicted, abs=ROUNDING)
    counts = np.histogram(scores, np.linspace(0, 1, 11))[0]
    assert [b.count for b in calibration.bins] == counts[counts > 0].tolist()
    ece = float(np.sum(counts[counts > 0] * np.abs(predicted - observed)) / labels.size)
    assert calibration.ece == pytest.approx(ece, abs=ROUNDING)


def test_calibration_without_rows() -> None:
    calibration = calibration_binned([0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], n_bins=2)
    assert (calibration.bins, calibration.ece) == ([], None)


def test_log_loss_from_the_documented_sum_equals_sklearn() -> None:
    labels, scores = _labelled(6)
    scores[:4] = [0.0, 1.0, 0.0, 1.0]  # extreme scores: the clipping must match sklearn's
    labels[:4] = [1, 0, 0, 1]
    clip = lambda p: np.clip(p, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)  # noqa: E731
    total = -float(np.sum(labels * np.log(clip(scores)) + (1 - labels) * np.log(clip(1 - scores))))
    assert log_loss_from_sum(total, labels.size) == pytest.approx(log_loss(labels, scores), rel=1e-12)  # rounding
    assert log_loss_from_sum(0.0, 0) is None
