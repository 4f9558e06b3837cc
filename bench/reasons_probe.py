"""Probe: cost of per-row reasons vs plain LightGBM predict (not wired into the bench harness).

Trains LightGBM (100 trees, 31 leaves) on 200k synthetic rows x 30 features, then times on
the same data, alternating, median of 3: ``predict_proba``; ``path_contributions`` + top-5;
the same with leaves found by the numpy walk instead of LightGBM's ``pred_leaf``; exact TreeSHAP
(``pred_contrib=True``) on a 20k-row subset. Run:
``PYTHONDONTWRITEBYTECODE=1 .venv/bin/python bench/reasons_probe.py [--profile]``
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import time
from collections.abc import Callable

import lightgbm as lgb
import numpy as np

from lakeforge.scoring.reasons import compile_trees, exact_contributions, path_contributions, top_reasons

N_ROWS = 200_000
N_FEATURES = 30
SHAP_ROWS = 20_000
REPEATS = 3


def make_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic binary task with some NaNs (LightGBM default missing handling)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N_ROWS, N_FEATURES))
    logit = x[:, :10] @ rng.normal(size=10) + 0.5 * x[:, 10] * x[:, 11] + np.sin(x[:, 12] * 2)
    y = (logit + rng.logistic(size=N_ROWS) > 0).astype(int)
    x[rng.random(x.shape) < 0.02] = np.nan
    return x, y


def main() -> None:
    """Train, then time the three ways of scoring and print rows/s and ratios."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", action="store_true", help="cProfile one path_contributions + top-5 call")
    args = parser.parse_args()

    x, y = make_data()
    model = lgb.LGBMClassifier(n_estimators=100, num_leaves=31, verbose=-1).fit(x, y)
    started = time.perf_counter()
    compiled = compile_trees(model)
    compile_s = time.perf_counter() - started
    names = list(compiled.feature_names)
    subset = x[:SHAP_ROWS]

    def path_reasons() -> None:
        top_reasons(path_contributions(compiled, x), names, 5)

    def path_reasons_numpy_walk() -> None:
        top_reasons(path_contributions(compiled, x, lightgbm_leaves=False), names, 5)

    runs: dict[str, Callable[[], object]] = {
        "predict_proba": lambda: model.predict_proba(x),
        "path + top-5": path_reasons,
        "path numpy walk": path_reasons_numpy_walk,
        "treeshap (20k)": lambda: exact_contributions(model, subset),
    }
    rows = {"predict_proba": N_ROWS, "path + top-5": N_ROWS, "path numpy walk": N_ROWS, "treeshap (20k)": SHAP_ROWS}
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(REPEATS):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)

    print(f"{N_ROWS} rows x {N_FEATURES} features, 100 trees x 31 leaves, max depth {compiled.max_depth}")
    print(f"compile_trees: {compile_s:.3f} s (once per model)")
    base = statistics.median(times["predict_proba"]) / N_ROWS
    for name, samples in times.items():
        median = statistics.median(samples)
        per_row = median / rows[name]
        print(f"{name:16s} median {median:7.3f} s  {rows[name] / median:10,.0f} rows/s  {per_row / base:6.1f}x predict")

    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(path_reasons)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(12)


if __name__ == "__main__":
    main()
