"""Drift statistics on binned counts against scipy (and a direct formula) on the raw samples."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial import distance

from lakeforge.errors import UsageError
from lakeforge.monitoring.stats import (
    DRIFT_METHODS,
    NO_CURRENT,
    NO_REFERENCE,
    PSI_EPSILON,
    TAIL_SHARE,
    bin_values,
    binned_std,
    chi2_homogeneity,
    drift,
    jensen_shannon,
    ks_binned,
    ks_p_value,
    make_edges,
    psi,
    wasserstein_binned,
    wasserstein_normed,
)

# Float rounding only: the compared computations are the same sums in another order.
ROUNDING = 1e-12

Samples = tuple[np.ndarray, np.ndarray]


def _numeric_cases() -> dict[str, Samples]:
    """Seeded reference/current pairs covering the shapes monitoring meets."""
    rng = np.random.default_rng(7)
    return {
        "shifted normal": (rng.normal(0, 1, 5000), rng.normal(0.3, 1, 4000)),
        "identical": (rng.normal(10, 2, 5000), rng.normal(10, 2, 3000)),
        "heavy tails": (rng.standard_t(2, 4000), 1.5 * rng.standard_t(2, 4000)),
        "skewed": (rng.lognormal(0, 1, 3000), rng.lognormal(0.2, 1, 3000)),
        "tiny": (rng.normal(0, 1, 5), rng.normal(1, 1, 7)),
    }


NUMERIC_CASES = _numeric_cases()


def _binned(case: str, bins: int = 20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ref, cur = NUMERIC_CASES[case]
    edges = make_edges(ref, bins)
    return edges, bin_values(ref, edges), bin_values(cur, edges)


def _categorical_counts(seed: int, n: int, exponent: float, categories: int = 12) -> np.ndarray:
    """Counts over ``categories`` categories with zipf-like frequencies ~ 1 / rank**exponent."""
    weights = 1.0 / np.arange(1, categories + 1) ** exponent
    rng = np.random.default_rng(seed)
    return np.bincount(rng.choice(categories, size=n, p=weights / weights.sum()), minlength=categories)


# --- Edges and the count layout ---


def test_bin_values_lays_out_underflow_bins_and_overflow() -> None:
    values = [-np.inf, -1, 0, 0.5, 1, 2, 2.5, np.inf, np.nan]
    # Bins [0, 1) and [1, 2], the last closed; NaN is in no bin.
    assert bin_values(values, [0.0, 1.0, 2.0]).tolist() == [2, 2, 2, 2]


def test_edges_are_equal_width_between_the_tail_quantiles() -> None:
    ref = NUMERIC_CASES["shifted normal"][0]
    edges = make_edges(ref, 20)
    assert edges.size == 21
    assert edges[0] == pytest.approx(np.quantile(ref, TAIL_SHARE), abs=ROUNDING)
    assert edges[-1] == pytest.approx(np.quantile(ref, 1 - TAIL_SHARE), abs=ROUNDING)
    assert np.allclose(np.diff(edges), (edges[-1] - edges[0]) / 20, rtol=1e-9)  # equal widths, up to rounding
    counts = bin_values(ref, edges)
    # The two tails hold the 0.5% each side (±1 value of how np.quantile interpolates).
    assert abs(counts[0] - TAIL_SHARE * ref.size) <= 1
    assert abs(counts[-1] - TAIL_SHARE * ref.size) <= 1


def test_edges_from_stored_quantiles_use_the_inner_ones_and_fall_back_on_min_max() -> None:
    probs = [0.0, 0.01, 0.5, 0.99, 1.0]
    # The 0.5% tail is outside the inner quantiles: the 1% and 99% ones bound the range, not the outliers.
    assert make_edges([-100, -2, 0, 2, 100], 4, probs=probs).tolist() == [-2, -1, 0, 1, 2]
    # Tail quantiles equal (a feature mostly 0): the range runs from min to max.
    assert make_edges([0, 0, 0, 0, 8], 4, probs=probs).tolist() == [0, 2, 4, 6, 8]
    with pytest.raises(UsageError, match=r"probs must be probabilities in \[0, 1\], one per quantile"):
        make_edges([1, 2], probs=[0.5])


def test_edges_of_degenerate_features() -> None:
    constant = make_edges(np.full(100, 3.0))
    assert constant.size == 2 and constant[0] < 3.0 < constant[1]
    # Only the reference value is in the bin; any other value is under- or overflow.
    assert bin_values([3.0, 3.0, 2.99, 3.01], constant).tolist() == [1, 2, 1]
    mostly_zero = make_edges(np.r_[np.zeros(996), [1, 2, 3, 4.0]], 4)
    assert mostly_zero.tolist() == [0, 1, 2, 3, 4]
    huge = make_edges([-1e308, 1e308], 4)
    assert np.all(np.isfinite(huge)) and np.all(np.diff(huge) > 0)
    with pytest.raises(UsageError, match="make_edges: the reference has no finite value to bin"):
        make_edges([np.nan, np.inf])
    with pytest.raises(UsageError, match=r"3 edges make 2 bins, so counts need 4 entries .*; got 3"):
        wasserstein_binned([0, 1, 2], [1, 1, 1], [1, 1, 1])


# --- PSI ---


def _psi_direct(ref: np.ndarray, cur: np.ndarray) -> float:
    """PSI written out bin by bin, with the documented floor on empty bins."""
    total = 0.0
    for ref_share, cur_share in zip(ref / ref.sum(), cur / cur.sum(), strict=True):
        r, c = max(ref_share, PSI_EPSILON), max(cur_share, PSI_EPSILON)
        total += (c - r) * math.log(c / r)
    return total


@pytest.mark.parametrize("case", list(NUMERIC_CASES))
def test_psi_matches_the_direct_formula(case: str) -> None:
    _, ref, cur = _binned(case)
    assert psi(ref, cur) == pytest.approx(_psi_direct(ref, cur), rel=ROUNDING, abs=ROUNDING)


def test_psi_of_categories_with_empty_bins() -> None:
    ref, cur = _categorical_counts(1, 3000, 1.1), _categorical_counts(2, 2000, 1.6)
    ref[5], cur[7] = 0, 0  # a category missing on each side: the floor keeps the terms finite
    assert psi(ref, cur) == pytest.approx(_psi_direct(ref, cur), rel=ROUNDING)
    assert psi(ref, ref) == 0.0


# --- Kolmogorov-Smirnov ---


@pytest.mark.parametrize("case", list(NUMERIC_CASES))
def test_ks_statistic_is_a_lower_bound_within_the_largest_bin_share(case: str) -> None:
    raw_ref, raw_cur = NUMERIC_CASES[case]
    _, ref, cur = _binned(case)
    result = ks_binned(ref, cur)
    assert result is not None
    exact = stats.ks_2samp(raw_ref, raw_cur, method="asymp").statistic
    # Within a bin each CDF moves by at most its bin's share: the documented bound, plus rounding.
    bound = np.max(np.minimum(ref / ref.sum(), cur / cur.sum()))
    assert exact - bound - ROUNDING <= result[0] <= exact + ROUNDING


def test_ks_equals_scipy_when_every_value_has_its_own_bin() -> None:
    rng = np.random.default_rng(3)
    raw_ref, raw_cur = rng.poisson(5, 3000), rng.poisson(5.2, 2000)
    edges = np.arange(-0.5, 30.5)  # integers between half-integer edges: the binned CDFs are the exact ones
    result = ks_binned(bin_values(raw_ref, edges), bin_values(raw_cur, edges))
    expected = stats.ks_2samp(raw_ref, raw_cur, method="asymp")
    assert result == pytest.approx((expected.statistic, expected.pvalue), rel=1e-9)  # rounding in kstwo.sf only


@pytest.mark.parametrize(("statistic", "n_ref", "n_cur"), [(0.02, 5000, 4000), (0.3, 12, 9), (0.001, 10**7, 10**6)])
def test_ks_p_value_is_scipys_asymptotic_one(statistic: float, n_ref: int, n_cur: int) -> None:
    effective = np.round(n_ref * n_cur / (n_ref + n_cur))
    assert ks_p_value(statistic, n_ref, n_cur) == pytest.approx(stats.kstwo.sf(statistic, effective), rel=1e-12)


@pytest.mark.parametrize("case", ["identical", "shifted normal"])
def test_ks_p_value_on_fine_bins_is_close_to_the_raw_samples_one(case: str) -> None:
    raw_ref, raw_cur = NUMERIC_CASES[case]
    _, ref, cur = _binned(case, bins=500)
    result = ks_binned(ref, cur)
    assert result is not None
    exact = stats.ks_2samp(raw_ref, raw_cur, method="asymp")
    # 500 bins put ≤ ~0.4% of a sample in a bin, which moves the statistic by ≤ that; near
    # D ~ 0.02 the p-value changes by ≤ ~0.1 per 0.004 of statistic at these sample sizes.
    assert result[1] >= exact.pvalue - ROUNDING  # a smaller statistic, a larger p-value
    assert result[1] == pytest.approx(exact.pvalue, abs=0.1)


# --- Wasserstein ---


def _wasserstein_bound(edges: np.ndarray, ref: np.ndarray, cur: np.ndarray) -> float:
    """The documented within-bin error: sum(width * (ref share + current share)) / 2."""
    shares = ref / ref.sum() + cur / cur.sum()
    return float(np.sum(np.diff(edges) * shares[1:-1]) / 2)


@pytest.mark.parametrize("case", list(NUMERIC_CASES))
def test_wasserstein_is_the_clipped_samples_distance_within_half_the_bin_mass(case: str) -> None:
    raw_ref, raw_cur = NUMERIC_CASES[case]
    edges, ref, cur = _binned(case)
    binned = wasserstein_binned(edges, ref, cur)
    low, high = edges[0], edges[-1]
    clipped = stats.wasserstein_distance(np.clip(raw_ref, low, high), np.clip(raw_cur, low, high))
    bound = _wasserstein_bound(edges, ref, cur)
    assert bound <= np.diff(edges).max() + ROUNDING  # the bound is at most one bin width
    assert binned == pytest.approx(clipped, abs=bound + ROUNDING)
    if case in ("shifted normal", "identical"):
        # The bound is a worst case (all of a bin's mass on one edge); on a smooth density the
        # chord is close to the CDF: allow a tenth of a bin width (the error seen is ~1/100).
        assert binned == pytest.approx(clipped, abs=0.1 * np.diff(edges).max())
    # On the raw samples, add what clipping moved: E|x - clip(x)| on each side.
    moved = np.mean(np.abs(raw_ref - np.clip(raw_ref, low, high))) + np.mean(
        np.abs(raw_cur - np.clip(raw_cur, low, high))
    )
    raw = stats.wasserstein_distance(raw_ref, raw_cur)
    assert binned == pytest.approx(raw, abs=bound + moved + ROUNDING)


def test_wasserstein_normed_divides_by_the_reference_std() -> None:
    raw_ref, raw_cur = NUMERIC_CASES["shifted normal"]
    edges, ref, cur = _binned("shifted normal")
    binned = wasserstein_binned(edges, ref, cur)
    assert binned is not None
    exact_std = float(np.std(raw_ref))
    assert wasserstein_normed(edges, ref, cur, ref_std=exact_std) == pytest.approx(binned / exact_std, rel=ROUNDING)
    # From the bins: clipping the 0.5% tails and the midpoints move a normal's std by ~1% (docstring).
    assert binned_std(edges, ref) == pytest.approx(exact_std, rel=0.02)
    evidently = stats.wasserstein_distance(raw_ref, raw_cur) / exact_std
    assert wasserstein_normed(edges, ref, cur) == pytest.approx(evidently, rel=0.05)  # the std's 2% + the bins' ~3%
    assert wasserstein_normed([0.0, 1e-12], [0, 5, 0], [0, 3, 2], ref_std=0.0) == pytest.approx(0.4 * 1e-12 / 2e-3)


# --- Jensen-Shannon and chi-square ---


def _categorical_pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    with_gaps = (_categorical_counts(4, 800, 1.2), _categorical_counts(5, 600, 1.2))
    with_gaps[0][3], with_gaps[1][9], with_gaps[0][11], with_gaps[1][11] = 0, 0, 0, 0
    return [
        (_categorical_counts(1, 5000, 1.1), _categorical_counts(2, 4000, 1.1)),
        (_categorical_counts(1, 5000, 1.1), _categorical_counts(3, 4000, 1.5)),
        with_gaps,
        (np.array([3, 0, 1]), np.array([0, 2, 2])),
    ]


@pytest.mark.parametrize("pair", _categorical_pairs())
def test_jensen_shannon_matches_scipy(pair: tuple[np.ndarray, np.ndarray]) -> None:
    ref, cur = pair
    expected = distance.jensenshannon(ref / ref.sum(), cur / cur.sum(), base=2)
    assert jensen_shannon(ref, cur) == pytest.approx(expected, rel=1e-9, abs=1e-9)  # rounding in two log sums


@pytest.mark.parametrize("case", list(NUMERIC_CASES))
def test_jensen_shannon_of_numeric_bins_matches_scipy(case: str) -> None:
    _, ref, cur = _binned(case)
    expected = distance.jensenshannon(ref / ref.sum(), cur / cur.sum(), base=2)
    assert jensen_shannon(ref, cur) == pytest.approx(expected, rel=1e-9, abs=1e-9)  # rounding in two log sums


@pytest.mark.parametrize("pair", _categorical_pairs())
def test_chi2_matches_scipy_contingency(pair: tuple[np.ndarray, np.ndarray]) -> None:
    ref, cur = pair
    table = np.vstack([ref, cur])
    expected = stats.chi2_contingency(table[:, table.sum(axis=0) > 0], correction=False)
    assert chi2_homogeneity(ref, cur) == pytest.approx((expected.statistic, expected.pvalue), rel=1e-9)  # rounding


def test_chi2_with_one_category_seen_is_no_evidence() -> None:
    assert chi2_homogeneity([5, 0], [7, 0]) == (0.0, 1.0)


# --- Drift decisions ---


def test_every_statistic_is_none_with_an_empty_side() -> None:
    edges, some = [0.0, 1.0, 2.0], [1, 2, 3, 4]
    for empty_first in (True, False):
        pair = ([0, 0, 0, 0], some) if empty_first else (some, [0, 0, 0, 0])
        assert psi(*pair) is None and ks_binned(*pair) is None and jensen_shannon(*pair) is None
        assert chi2_homogeneity(*pair) is None and wasserstein_binned(edges, *pair) is None


@pytest.mark.parametrize("method", ["psi", "ks", "wasserstein"])
def test_numeric_methods_flag_a_shift_and_not_the_same_distribution(method: str) -> None:
    threshold = DRIFT_METHODS[method].default_threshold  # 0.1 for distances, 0.05 for tests
    # Half a std of shift: PSI ~0.25, normed Wasserstein ~0.5. (0.3 std gives a PSI of ~0.09: under 0.1.)
    rng = np.random.default_rng(11)
    ref = rng.normal(0, 1, 5000)
    edges = make_edges(ref)
    shifted = drift(method, bin_values(ref, edges), bin_values(rng.normal(0.5, 1, 4000), edges), edges=edges)
    same = drift(method, bin_values(ref, edges), bin_values(rng.normal(0, 1, 4000), edges), edges=edges)
    assert shifted.drifted_for(threshold)
    assert not same.drifted_for(threshold)
    assert (shifted.p_value is not None) == DRIFT_METHODS[method].is_test


@pytest.mark.parametrize("method", ["psi", "jensenshannon", "chi2"])
def test_categorical_methods_flag_a_shift_and_not_the_same_distribution(method: str) -> None:
    threshold = DRIFT_METHODS[method].default_threshold
    ref = _categorical_counts(1, 5000, 1.1)
    assert drift(method, ref, _categorical_counts(3, 4000, 1.8)).drifted_for(threshold)
    assert not drift(method, ref, _categorical_counts(2, 4000, 1.1)).drifted_for(threshold)


@pytest.mark.parametrize("method", list(DRIFT_METHODS))
def test_an_empty_side_gives_a_reason_and_no_drift(method: str) -> None:
    edges = [0.0, 1.0, 2.0] if "numeric" in DRIFT_METHODS[method].kinds else None
    no_reference = drift(method, [0, 0, 0, 0], [1, 2, 3, 4], edges=edges)
    no_current = drift(method, [1, 2, 3, 4], [0, 0, 0, 0], edges=edges)
    assert (no_reference.value, no_reference.reason) == (None, NO_REFERENCE)
    assert (no_current.value, no_current.reason) == (None, NO_CURRENT)
    assert not no_reference.drifted_for(0.0) and not no_current.drifted_for(1.0)


def test_unknown_or_misapplied_methods_are_usage_errors() -> None:
    with pytest.raises(
        UsageError,
        match=r"^unknown drift method 'kss' \(did you mean 'ks'\?\); known methods: psi, ks, wasserstein, "
        r"jensenshannon, chi2$",
    ):
        drift("kss", [1, 2], [2, 1])
    with pytest.raises(
        UsageError,
        match=r"^drift method 'chi2' does not apply to numeric features; methods for numeric features: psi, ks, "
        r"wasserstein$",
    ):
        drift("chi2", [1, 2, 3], [3, 2, 1], edges=[0.0, 1.0])
    with pytest.raises(
        UsageError,
        match=r"^drift method 'ks' does not apply to categorical features; methods for categorical features: psi, "
        r"jensenshannon, chi2$",
    ):
        drift("ks", [1, 2, 3], [3, 2, 1])
    with pytest.raises(UsageError, match=r"reference and current counts must be over the same bins \(got 3 and 2"):
        drift("psi", [1, 2, 3], [3, 2])
    with pytest.raises(UsageError, match=r"^reference counts must be finite non-negative counts \(got \[1\.0, -2\.0"):
        drift("psi", [1, -2, 3], [3, 2, 1])
