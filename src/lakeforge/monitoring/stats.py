"""Drift statistics on binned counts: pure numpy, so the monitor never collects rows.

The monitor counts values per bin in Spark and hands these small count arrays here. Layout:

* **Numeric features.** The reference's ``edges`` (:func:`make_edges`, strictly increasing,
  ``B + 1`` of them) define ``B`` inner bins. A counts array has ``B + 2`` entries: index 0
  counts the values ``< edges[0]`` (underflow, ``-inf`` included), index ``i`` in ``1..B`` the
  values in ``[edges[i - 1], edges[i])`` (the last inner bin closed on the right, as
  ``numpy.histogram``), index ``B + 1`` the values ``> edges[-1]`` (overflow, ``+inf``
  included). :func:`bin_values` does the same in numpy.
* **Categorical features.** Counts over one aligned list of categories, the same for the
  reference and the current data (the monitor puts an ``__other__`` bucket last).
* Nulls and NaNs are in no bin: they are a data-quality figure of their own.

Counts may be any non-negative finite numbers (weights work too). A statistic that needs both
sides returns None when either side has no values; :func:`drift` then gives the reason.
Performance metrics from binned scores are in :mod:`lakeforge.monitoring.perf`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import special
from scipy import stats as scipy_stats

from lakeforge.errors import UsageError, did_you_mean

Array = npt.NDArray[np.float64]

# --- Every tolerance and floor of the monitoring statistics, in one place. ---
# Share below which a PSI bin counts as this share, so an empty bin costs a bounded term
# (Evidently's 0.0001; it only replaces zeros, a floor keeps the term monotone in the share).
PSI_EPSILON = 1e-4
# Floor of the reference's standard deviation dividing the normed Wasserstein distance
# (Evidently's ``max(np.std(reference), 0.001)``): a constant reference does not divide by zero.
WASSERSTEIN_STD_FLOOR = 1e-3
# Share of the reference left out at each end of the equal-width range of make_edges: outliers
# go to the under/overflow bins instead of stretching every bin.
TAIL_SHARE = 0.005
# Half-width of the one bin of a constant feature, relative to max(|value|, 1): the bin holds
# the reference value (and float noise around it), any other value is under- or overflow.
CONSTANT_HALF_WIDTH = 1e-9
# Scores are clipped to [eps, 1 - eps] in the log loss, as scikit-learn does for float64.
LOG_LOSS_EPS = float(np.finfo(np.float64).eps)
# A threshold this close to a score edge (relative to the bin width) is taken as the edge.
EDGE_TOLERANCE = 1e-9

DEFAULT_BINS = 20
# Feature kinds, as lakeforge.features.stats names them.
NUMERIC = "numeric"
CATEGORICAL = "categorical"

NO_REFERENCE = "no values in the reference"
NO_CURRENT = "no values in the current data"


def as_counts(values: npt.ArrayLike, name: str = "counts") -> Array:
    """The counts as a 1-D float array; UsageError if negative, not finite or not 1-D."""
    counts = np.asarray(values, dtype=np.float64)
    if counts.ndim != 1:
        raise UsageError(f"{name} must be a 1-D array of counts (got shape {counts.shape})")
    if not np.all(np.isfinite(counts)) or np.any(counts < 0):
        shown = ", ".join(str(c) for c in counts[:10]) + (", …" if counts.size > 10 else "")
        raise UsageError(f"{name} must be finite non-negative counts (got [{shown}])")
    return counts


def _pair(ref_counts: npt.ArrayLike, cur_counts: npt.ArrayLike) -> tuple[Array, Array]:
    ref, cur = as_counts(ref_counts, "reference counts"), as_counts(cur_counts, "current counts")
    if ref.shape != cur.shape:
        raise UsageError(
            f"reference and current counts must be over the same bins (got {ref.size} and {cur.size} bins)"
        )
    return ref, cur


def _shares(ref: Array, cur: Array) -> tuple[Array, Array] | None:
    """Both sides as shares summing to 1, or None when a side has no values."""
    n_ref, n_cur = ref.sum(), cur.sum()
    if n_ref <= 0 or n_cur <= 0:
        return None
    return ref / n_ref, cur / n_cur


def as_edges(edges: npt.ArrayLike, n_counts: int | None = None) -> Array:
    """Numeric-feature edges as an array; UsageError unless finite, strictly increasing and matching."""
    array = np.asarray(edges, dtype=np.float64)
    if array.ndim != 1 or array.size < 2 or not np.all(np.isfinite(array)) or np.any(np.diff(array) <= 0):
        raise UsageError(f"bin edges must be at least 2 finite, strictly increasing numbers (got {array.tolist()})")
    if n_counts is not None and n_counts != array.size + 1:
        raise UsageError(
            f"{array.size} edges make {array.size - 1} bins, so counts need {array.size + 1} entries "
            f"(underflow, the bins, overflow); got {n_counts}"
        )
    return array


def make_edges(
    quantiles_or_values: npt.ArrayLike, bins: int = DEFAULT_BINS, *, probs: npt.ArrayLike | None = None
) -> Array:
    """Reference edges of a numeric feature: ``bins`` equal-width bins between its 0.5% and 99.5% quantiles.

    Equal width keeps the Wasserstein error small (it is bounded by the widest bin) and the
    edges readable; the 0.5% tails on each side go to the under/overflow bins rather than
    stretching the range over outliers. Fallbacks: when the two quantiles are equal (a feature
    that is mostly one value), the range runs from the smallest to the largest value given;
    when those are equal too (a constant feature), one narrow bin holds the value
    (``CONSTANT_HALF_WIDTH``), so any other value falls in the under- or overflow bin. Edges
    that rounding makes equal are merged, so there may be fewer than ``bins`` bins.

    Args:
        quantiles_or_values: Without ``probs``, the reference values themselves (NaN and
            infinities ignored). With ``probs``, the reference quantiles at those probabilities,
            e.g. a ``FeatureStats``'s quantiles, with its min and max at probabilities 0 and 1.
            The tail quantiles are interpolated linearly between the quantiles given inside
            (0, 1), or take the outermost of them (the 1% and 99% ones of ``FeatureStats``);
            min and max only serve the fallback.
        bins: Number of equal-width bins.
        probs: Probabilities of the quantiles given, in [0, 1].

    Returns:
        The ``B + 1`` edges, strictly increasing. UsageError if no finite value is given.
    """
    if bins < 1:
        raise UsageError(f"make_edges: bins must be at least 1 (got {bins})")
    given = np.asarray(quantiles_or_values, dtype=np.float64).ravel()
    if probs is None:
        values = given[np.isfinite(given)]
        if values.size == 0:
            raise UsageError("make_edges: the reference has no finite value to bin")
        with np.errstate(over="ignore", invalid="ignore"):  # a range wider than the largest double
            low, high = (float(q) for q in np.quantile(values, [TAIL_SHARE, 1 - TAIL_SHARE]))
        lowest, highest = float(values.min()), float(values.max())
    else:
        at = np.asarray(probs, dtype=np.float64).ravel()
        if at.shape != given.shape or np.any((at < 0) | (at > 1)):
            raise UsageError(
                f"make_edges: probs must be probabilities in [0, 1], one per quantile "
                f"(got {at.size} probs for {given.size} quantiles)"
            )
        keep = np.isfinite(given)
        if not np.any(keep):
            raise UsageError("make_edges: the reference has no finite quantile to bin")
        order = np.argsort(at[keep], kind="stable")
        at, quantiles = at[keep][order], np.maximum.accumulate(given[keep][order])
        # Min and max (probabilities 0 and 1) only serve the fallback: interpolating towards an outlier
        # would stretch the range as much as using it.
        inner = (at > 0) & (at < 1) if np.any((at > 0) & (at < 1)) else np.ones_like(at, dtype=bool)
        low, high = (float(np.interp(p, at[inner], quantiles[inner])) for p in (TAIL_SHARE, 1 - TAIL_SHARE))
        lowest, highest = float(quantiles[0]), float(quantiles[-1])
    if not low < high:  # NaN (an overflowing quantile) falls back too
        low, high = lowest, highest
    if low >= high:
        half = CONSTANT_HALF_WIDTH * max(abs(low), 1.0)
        return np.array([low - half, low + half])
    # A weighted mean rather than low + i * width: exact ends, and no overflow for huge ranges.
    fractions = np.linspace(0.0, 1.0, bins + 1)
    return np.unique(low * (1.0 - fractions) + high * fractions)


def bin_values(values: npt.ArrayLike, edges: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Counts of ``values`` in the ``B + 2`` bins of ``edges`` (module docstring); NaN is left out."""
    array = np.asarray(values, dtype=np.float64).ravel()
    bounds = as_edges(edges)
    array = array[~np.isnan(array)]
    inner = array[(array >= bounds[0]) & (array <= bounds[-1])]
    histogram = np.histogram(inner, bins=bounds)[0]
    return np.concatenate([[np.sum(array < bounds[0])], histogram, [np.sum(array > bounds[-1])]]).astype(np.int64)


def psi(ref_counts: npt.ArrayLike, cur_counts: npt.ArrayLike) -> float | None:
    """Population stability index: ``sum((cur% - ref%) * ln(cur% / ref%))`` over the bins.

    Shares below ``PSI_EPSILON`` count as ``PSI_EPSILON`` (an empty bin would make the term
    infinite). None when either side has no values.
    """
    shares = _shares(*_pair(ref_counts, cur_counts))
    if shares is None:
        return None
    ref, cur = (np.maximum(s, PSI_EPSILON) for s in shares)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def ks_p_value(statistic: float, n_ref: float, n_cur: float) -> float:
    """Two-sided p-value of a two-sample KS statistic, as ``scipy.stats.ks_2samp(method='asymp')``.

    The exact one-sample Kolmogorov distribution ``kstwo`` at the effective size
    ``round(n * m / (n + m))`` (at least 1, where scipy would return NaN).
    """
    effective = max(float(np.round(n_ref * n_cur / (n_ref + n_cur))), 1.0)
    return float(np.clip(scipy_stats.kstwo.sf(statistic, effective), 0.0, 1.0))


def ks_binned(ref_counts: npt.ArrayLike, cur_counts: npt.ArrayLike) -> tuple[float, float] | None:
    """Kolmogorov–Smirnov test on binned counts: ``(statistic, p_value)``, None if a side is empty.

    The statistic is the largest ``|F_ref - F_cur|`` at the bin boundaries: a lower bound of the
    statistic of the raw values, short of it by at most the largest ``min(ref share, current
    share)`` of a bin (within a bin both CDFs move by at most their bin's share). The p-value is
    :func:`ks_p_value` of the row counts (counts must be rows, not weights); with many tied values
    (coarse bins, discrete features) the test is conservative, as the KS test always is on ties.
    """
    ref, cur = _pair(ref_counts, cur_counts)
    shares = _shares(ref, cur)
    if shares is None:
        return None
    statistic = float(np.clip(np.max(np.abs(np.cumsum(shares[0]) - np.cumsum(shares[1]))), 0.0, 1.0))
    return statistic, ks_p_value(statistic, ref.sum(), cur.sum())


def wasserstein_binned(edges: npt.ArrayLike, ref_counts: npt.ArrayLike, cur_counts: npt.ArrayLike) -> float | None:
    """Wasserstein-1 distance ``∫|F_ref - F_cur| dx`` from binned counts, in the feature's unit.

    Values are taken as uniform within each inner bin (the CDFs are linear there, exact at the
    edges) and the under/overflow values as sitting on the outer edges. So the result is the
    distance between the values clipped to ``[edges[0], edges[-1]]``, within
    ``sum(width_i * (ref share_i + current share_i)) / 2`` ≤ the widest inner bin (a monotone
    CDF strays from its chord by at most half the bin's area). Beyond the outer edges nothing
    is seen: how far the tails reach does not count. None when either side has no values.
    """
    ref, cur = _pair(ref_counts, cur_counts)
    bounds = as_edges(edges, ref.size)
    shares = _shares(ref, cur)
    if shares is None:
        return None
    gap = np.cumsum(shares[0]) - np.cumsum(shares[1])  # F_ref - F_cur at each inner bin's right edge
    start, end, width = gap[:-2], gap[1:-1], np.diff(bounds)
    same_sign = start * end >= 0
    magnitude = np.abs(start) + np.abs(end)
    # |linear| over a bin: a trapezoid when it keeps its sign, two triangles when it crosses zero.
    crossing = np.divide(start**2 + end**2, magnitude, out=np.zeros_like(magnitude), where=magnitude > 0)
    return float(np.sum(width * np.where(same_sign, magnitude, crossing) / 2))


def binned_std(edges: npt.ArrayLike, counts: npt.ArrayLike) -> float | None:
    """Population standard deviation of binned values at the bin midpoints (under/overflow on the edges).

    With bins of at most 5% of the range the midpoint rounding adds ~w²/12 to the variance (Sheppard), well
    under 1% of the std for a bell shape; clipping the 0.5% tails removes a little more. None without values.
    """
    weights = as_counts(counts)
    bounds = as_edges(edges, weights.size)
    if weights.sum() <= 0:
        return None
    points = np.concatenate([[bounds[0]], (bounds[:-1] + bounds[1:]) / 2, [bounds[-1]]])
    mean = np.average(points, weights=weights)
    return math.sqrt(float(np.average((points - mean) ** 2, weights=weights)))


def wasserstein_normed(
    edges: npt.ArrayLike, ref_counts: npt.ArrayLike, cur_counts: npt.ArrayLike, *, ref_std: float | None = None
) -> float | None:
    """Wasserstein distance divided by the reference's standard deviation (Evidently's "normed" one).

    ``ref_std`` is the reference's std when known exactly (e.g. ``FeatureStats.stddev``);
    without it (None or NaN), :func:`binned_std` of the reference counts. Either is floored at
    ``WASSERSTEIN_STD_FLOOR``. None when either side has no values.
    """
    distance = wasserstein_binned(edges, ref_counts, cur_counts)
    if distance is None:
        return None
    std = ref_std if ref_std is not None and math.isfinite(ref_std) else binned_std(edges, ref_counts)
    return distance / max(std or 0.0, WASSERSTEIN_STD_FLOOR)


def jensen_shannon(ref_counts: npt.ArrayLike, cur_counts: npt.ArrayLike) -> float | None:
    """Jensen–Shannon distance in base 2, in [0, 1], as ``scipy.spatial.distance.jensenshannon``.

    The square root of the mean Kullback–Leibler divergence of each side from their mixture;
    empty bins need no epsilon (``0 · log 0 = 0``). None when either side has no values.
    """
    shares = _shares(*_pair(ref_counts, cur_counts))
    if shares is None:
        return None
    ref, cur = shares
    mixture = (ref + cur) / 2
    divergence = (special.rel_entr(ref, mixture).sum() + special.rel_entr(cur, mixture).sum()) / (2 * math.log(2))
    return float(np.sqrt(np.clip(divergence, 0.0, 1.0)))


def chi2_homogeneity(ref_counts: npt.ArrayLike, cur_counts: npt.ArrayLike) -> tuple[float, float] | None:
    """Chi-square test that both sides share one distribution: ``(statistic, p_value)``.

    The 2×k contingency test without continuity correction, over the categories seen on
    either side, as ``scipy.stats.chi2_contingency(table, correction=False)``; one category
    seen gives ``(0.0, 1.0)``. Counts should be counts of rows: the test's scale depends on
    them. None when either side has no values.
    """
    ref, cur = _pair(ref_counts, cur_counts)
    if ref.sum() <= 0 or cur.sum() <= 0:
        return None
    seen = (ref + cur) > 0
    table = np.vstack([ref[seen], cur[seen]])
    if table.shape[1] < 2:
        return 0.0, 1.0
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    statistic = float(np.sum((table - expected) ** 2 / expected))
    return statistic, float(scipy_stats.chi2.sf(statistic, table.shape[1] - 1))


# --- The registry: config names of the drift methods, and one entry point. ---

# (reference counts, current counts, edges or None, reference std or None) -> value or (statistic, p_value).
_Compute = Callable[[Array, Array, Array | None, float | None], float | tuple[float, float] | None]


@dataclass(frozen=True)
class DriftMethod:
    """A drift statistic as config names it: what it applies to and how it decides."""

    name: str
    kinds: frozenset[str]  # feature kinds it applies to: numeric and/or categorical
    is_test: bool  # a hypothesis test (drift when p_value < threshold), else a distance (value > threshold)
    default_threshold: float  # Evidently's default for the same statistic
    compute: _Compute


def _wasserstein(ref: Array, cur: Array, edges: Array | None, ref_std: float | None) -> float | None:
    if edges is None:  # drift() passes edges to every numeric-only method
        raise UsageError("drift method 'wasserstein' needs the feature's bin edges")
    return wasserstein_normed(edges, ref, cur, ref_std=ref_std)


_BOTH = frozenset({NUMERIC, CATEGORICAL})
DRIFT_METHODS: dict[str, DriftMethod] = {
    m.name: m
    for m in (
        DriftMethod("psi", _BOTH, False, 0.1, lambda ref, cur, edges, ref_std: psi(ref, cur)),
        DriftMethod("ks", frozenset({NUMERIC}), True, 0.05, lambda ref, cur, edges, ref_std: ks_binned(ref, cur)),
        DriftMethod("wasserstein", frozenset({NUMERIC}), False, 0.1, _wasserstein),
        DriftMethod(
            "jensenshannon",
            frozenset({CATEGORICAL}),
            False,
            0.1,
            lambda ref, cur, edges, ref_std: jensen_shannon(ref, cur),
        ),
        DriftMethod(
            "chi2",
            frozenset({CATEGORICAL}),
            True,
            0.05,
            lambda ref, cur, edges, ref_std: chi2_homogeneity(ref, cur),
        ),
    )
}


@dataclass(frozen=True)
class DriftResult:
    """The drift statistic of one feature: value (p_value for tests), or None and the reason."""

    method: str
    value: float | None
    p_value: float | None = None
    reason: str | None = None  # why value is None

    def drifted_for(self, threshold: float) -> bool:
        """Whether this is drift at ``threshold``: ``p_value < threshold`` for a test, else ``value > threshold``.

        A result without a value is never drift.
        """
        if self.value is None:
            return False
        if drift_method(self.method).is_test:
            return self.p_value is not None and self.p_value < threshold
        return self.value > threshold


def drift_method(name: str) -> DriftMethod:
    """The registered method of that config name; UsageError naming the known ones otherwise."""
    try:
        return DRIFT_METHODS[name]
    except KeyError:
        raise UsageError(
            f"unknown drift method '{name}'{did_you_mean(name, DRIFT_METHODS)}; "
            f"known methods: {', '.join(DRIFT_METHODS)}"
        ) from None


def drift(
    method: str,
    ref_counts: npt.ArrayLike,
    cur_counts: npt.ArrayLike,
    edges: npt.ArrayLike | None = None,
    *,
    ref_std: float | None = None,
) -> DriftResult:
    """Drift of one feature by the config-named ``method``, from its reference and current counts.

    A feature with ``edges`` is numeric (counts laid out as in the module docstring), one
    without is categorical; a method that does not apply to that kind is a UsageError.
    ``ref_std`` is only used by ``wasserstein`` (see :func:`wasserstein_normed`). When a side
    has no values the result has no value and says why, and is never drift.
    """
    spec = drift_method(method)
    kind = CATEGORICAL if edges is None else NUMERIC
    if kind not in spec.kinds:
        fitting = [m.name for m in DRIFT_METHODS.values() if kind in m.kinds]
        raise UsageError(
            f"drift method '{method}' does not apply to {kind} features; "
            f"methods for {kind} features: {', '.join(fitting)}"
        )
    ref, cur = _pair(ref_counts, cur_counts)
    bounds = None if edges is None else as_edges(edges, ref.size)
    if ref.sum() <= 0:
        return DriftResult(method, None, reason=NO_REFERENCE)
    if cur.sum() <= 0:
        return DriftResult(method, None, reason=NO_CURRENT)
    computed = spec.compute(ref, cur, bounds, ref_std)
    if isinstance(computed, tuple):
        return DriftResult(method, computed[0], computed[1])
    return DriftResult(method, computed)
