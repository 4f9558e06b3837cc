"""Model performance from binned scores: pure numpy, so the monitor never collects rows.

The monitor bins the scores (probabilities in [0, 1], clipped there) into ``S`` bins on
``edges`` — :func:`score_edges` for ``S`` equal bins, bin ``i`` holding ``[i / S, (i + 1) / S)``,
the last closed, as ``least(floor(score * S), S - 1)`` in SQL up to rounding on the edges —
and counts per bin the rows labelled positive (``pos_counts``) and negative (``neg_counts``),
both in ascending score order. Metrics a sample cannot define (an AUC with one class, anything
of no rows) are None, never NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from lakeforge.errors import UsageError
from lakeforge.monitoring.stats import EDGE_TOLERANCE, Array, as_counts, as_edges


def score_edges(bins: int) -> Array:
    """The ``bins + 1`` edges of ``bins`` equal score bins on [0, 1]."""
    if bins < 1:
        raise UsageError(f"score bins must be at least 1 (got {bins})")
    return np.linspace(0.0, 1.0, bins + 1)


def _labels(pos_counts: npt.ArrayLike, neg_counts: npt.ArrayLike) -> tuple[Array, Array]:
    pos, neg = as_counts(pos_counts, "positive counts"), as_counts(neg_counts, "negative counts")
    if pos.shape != neg.shape:
        raise UsageError(f"positive and negative counts must be over the same bins (got {pos.size} and {neg.size})")
    return pos, neg


def auc_binned(pos_counts: npt.ArrayLike, neg_counts: npt.ArrayLike) -> float | None:
    """Area under the ROC curve: the chance a positive scores above a negative, ties counted half.

    Rows in one bin are ties: this is the trapezoid ROC through the bin edges, equal to
    ``sklearn.metrics.roc_auc_score`` (up to float rounding) when every distinct score has a
    bin of its own, and otherwise off by at most half the share of positive-negative pairs that
    share a bin. None without both classes.
    """
    pos, neg = _labels(pos_counts, neg_counts)
    n_pos, n_neg = pos.sum(), neg.sum()
    if n_pos <= 0 or n_neg <= 0:
        return None
    negatives_below = np.cumsum(neg) - neg
    return float(np.sum(pos * (negatives_below + neg / 2)) / (n_pos * n_neg))


class PrecisionRecall(NamedTuple):
    """Precision and recall at a threshold; None where undefined (no predicted positive, no positive)."""

    precision: float | None
    recall: float | None


def precision_recall_at(
    threshold: float, edges_or_bins: npt.ArrayLike | int, pos_counts: npt.ArrayLike, neg_counts: npt.ArrayLike
) -> PrecisionRecall:
    """Precision and recall of predicting positive when ``score >= threshold``.

    Exact when the threshold is a bin edge (within ``EDGE_TOLERANCE`` of the bin width, as
    ``0.1`` is of ``linspace``'s edge): the bins above it are predicted positive. Otherwise the
    bin holding the threshold is split in proportion, as if its scores were uniform in it.
    At the last edge (a threshold of 1), scores of exactly 1 are missed: they share the last bin.

    Args:
        threshold: The decision threshold on the score.
        edges_or_bins: The score edges, or the number of equal bins on [0, 1].
        pos_counts: Positive rows per bin.
        neg_counts: Negative rows per bin.
    """
    pos, neg = _labels(pos_counts, neg_counts)
    edges = score_edges(edges_or_bins) if isinstance(edges_or_bins, int) else as_edges(edges_or_bins)
    if edges.size != pos.size + 1:
        raise UsageError(f"{edges.size} score edges make {edges.size - 1} bins, but the counts have {pos.size}")
    width = np.diff(edges)
    nearest = int(np.argmin(np.abs(edges - threshold)))
    if abs(edges[nearest] - threshold) <= EDGE_TOLERANCE * width.min():
        threshold = float(edges[nearest])
    # Share of each bin at or above the threshold: 1 above it, 0 below it, a fraction across it.
    above = np.clip((edges[1:] - threshold) / width, 0.0, 1.0)
    true_positives, false_positives = float(np.sum(pos * above)), float(np.sum(neg * above))
    predicted = true_positives + false_positives
    n_pos = float(pos.sum())
    return PrecisionRecall(
        precision=true_positives / predicted if predicted > 0 else None,
        recall=true_positives / n_pos if n_pos > 0 else None,
    )


@dataclass(frozen=True)
class CalibrationBin:
    """One coarse score bin of a calibration curve."""

    mean_predicted: float
    observed_rate: float
    count: int  # rows


@dataclass(frozen=True)
class Calibration:
    """A calibration curve over the non-empty coarse bins, and its expected calibration error."""

    bins: list[CalibrationBin]
    ece: float | None  # None without rows


def calibration_binned(
    pos_counts: npt.ArrayLike, neg_counts: npt.ArrayLike, score_sum_per_bin: npt.ArrayLike, n_bins: int = 10
) -> Calibration:
    """Calibration curve on ``n_bins`` coarse bins, each a run of consecutive fine bins.

    Fine bin ``i`` of ``S`` goes to coarse bin ``floor(i * n_bins / S)``: with ``S`` a multiple
    of ``n_bins`` (1000 and 10) the coarse bins are equal, ``[0, 0.1)``… as
    ``sklearn.calibration.calibration_curve(strategy='uniform')`` (which leaves out empty bins too,
    and puts a score exactly on an inner edge in the bin below it). The mean predicted score of
    a bin comes from the exact per-bin score sums. ECE is
    ``sum(count / n * |mean predicted - observed rate|)`` over the coarse bins.
    """
    pos, neg = _labels(pos_counts, neg_counts)
    score_sums = as_counts(score_sum_per_bin, "score sums")
    if score_sums.shape != pos.shape:
        raise UsageError(f"score sums must be over the same {pos.size} bins as the counts (got {score_sums.size})")
    if n_bins < 1:
        raise UsageError(f"calibration needs at least 1 bin (got {n_bins})")
    group = (np.arange(pos.size) * n_bins) // max(pos.size, 1)
    counts = np.bincount(group, weights=pos + neg, minlength=n_bins)
    positives = np.bincount(group, weights=pos, minlength=n_bins)
    sums = np.bincount(group, weights=score_sums, minlength=n_bins)
    seen = counts > 0
    if not np.any(seen):
        return Calibration(bins=[], ece=None)
    predicted, observed = sums[seen] / counts[seen], positives[seen] / counts[seen]
    ece = float(np.sum(counts[seen] * np.abs(predicted - observed)) / counts[seen].sum())
    curve = [
        CalibrationBin(float(p), float(o), round(float(c)))
        for p, o, c in zip(predicted, observed, counts[seen], strict=True)
    ]
    return Calibration(bins=curve, ece=ece)


def log_loss_from_sum(log_loss_sum: float, n: int) -> float | None:
    """Mean log loss from its sum over ``n`` rows; None without rows.

    Spark sums, per row of label ``y`` and score ``s``, ``-(y * ln(clip(s)) + (1 - y) * ln(clip(1 - s)))``
    with ``clip`` to ``[LOG_LOSS_EPS, 1 - LOG_LOSS_EPS]`` (:mod:`lakeforge.monitoring.stats`), as
    ``sklearn.metrics.log_loss`` clips float64 probabilities.
    """
    if n <= 0:
        return None
    if not np.isfinite(log_loss_sum) or log_loss_sum < 0:
        raise UsageError(f"a log loss sum must be finite and non-negative (got {log_loss_sum})")
    return float(log_loss_sum) / n
