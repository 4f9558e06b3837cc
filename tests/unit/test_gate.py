"""The promotion gate's checks, each passing and failing, on hand-made scores."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from lakeforge.training.gate import decide, gain

RNG = np.random.default_rng(1)
N = 2000


def _frame(challenger_noise: float = 0.3, champion_noise: float | None = 0.5, baseline: bool = True) -> pd.DataFrame:
    """Labels, an airport per row, and scores whose quality falls with their noise."""
    y = RNG.integers(0, 2, size=N)
    frame = pd.DataFrame({"y": y, "origin": RNG.choice(["EWR", "JFK", "LGA"], size=N)})
    frame["challenger"] = y + RNG.normal(0, challenger_noise, size=N)
    if champion_noise is not None:
        frame["champion"] = y + RNG.normal(0, champion_noise, size=N)
    if baseline:
        frame["baseline"] = RNG.random(N)
    return frame


def _gate(**extra: Any) -> Any:
    return OmegaConf.create({"min_metrics": {"roc_auc": 0.6}, "min_improvement": 0.0, **extra})


def _check(decision: Any, name: str) -> Any:
    return next(c for c in decision.checks if c.name == name)


def test_a_better_challenger_passes_every_check() -> None:
    gate = _gate(
        baseline={"min_margin": 0.05},
        slices=[{"column": "origin", "max_degradation": 0.02, "min_rows": 100}],
        fairness=[{"column": "origin", "max_gap": 0.1, "min_rows": 100}],
    )
    decision = decide(gate, _frame(), "y", "roc_auc")
    assert decision.promote, decision.report()
    assert [c.name for c in decision.checks] == [
        "absolute:roc_auc",
        "baseline",
        "champion",
        "slice:origin",
        "fairness:origin",
    ]
    assert all(c.status == "pass" for c in decision.checks)


def test_absolute_thresholds_in_both_directions() -> None:
    frame = _frame(challenger_noise=5.0, champion_noise=None, baseline=False)  # barely better than chance
    decision = decide(_gate(max_metrics={"log_loss": 0.1}), frame, "y", "roc_auc")
    assert not decision.promote
    assert _check(decision, "absolute:roc_auc").status == "fail"
    assert "needs at least 0.6" in _check(decision, "absolute:roc_auc").reason
    assert _check(decision, "absolute:log_loss").status == "fail"


def test_the_baseline_must_be_beaten() -> None:
    frame = _frame(champion_noise=None)
    frame["baseline"] = frame["challenger"] + 0.0  # as good as the challenger
    decision = decide(_gate(baseline={"min_margin": 0.01}), frame, "y", "roc_auc")
    assert _check(decision, "baseline").status == "fail" and not decision.promote


def test_a_worse_challenger_is_refused_and_a_first_model_needs_no_champion() -> None:
    worse = decide(_gate(), _frame(challenger_noise=0.8, champion_noise=0.3), "y", "roc_auc")
    champion = _check(worse, "champion")
    assert (worse.promote, champion.status) == (False, "fail")
    assert champion.value is not None and champion.value < 0 and "vs champion" in champion.reason
    first = decide(_gate(), _frame(champion_noise=None), "y", "roc_auc")
    assert first.promote and _check(first, "champion").status == "skipped"
    required = decide(_gate(require_champion=True), _frame(champion_noise=None), "y", "roc_auc")
    assert not required.promote and "require_champion" in _check(required, "champion").reason


def test_allowed_regression_vs_the_champion() -> None:
    frame = _frame(challenger_noise=0.45, champion_noise=0.4)
    assert decide(_gate(min_improvement=-0.2), frame, "y", "roc_auc").promote


def test_one_degraded_slice_fails_and_small_slices_are_not_judged() -> None:
    frame = _frame(challenger_noise=0.3, champion_noise=0.3)
    frame["champion"] = frame["challenger"]
    jfk = frame["origin"] == "JFK"
    frame.loc[jfk, "challenger"] = frame.loc[jfk, "y"] + RNG.normal(0, 2.0, size=int(jfk.sum()))
    gate = _gate(min_improvement=-1.0, slices=[{"column": "origin", "max_degradation": 0.02, "min_rows": 100}])
    check = _check(decide(gate, frame, "y", "roc_auc"), "slice:origin")
    assert check.status == "fail" and "worst origin JFK" in check.reason
    tiny = _gate(min_improvement=-1.0, slices=[{"column": "origin", "max_degradation": 0.02, "min_rows": 10_000}])
    assert _check(decide(tiny, frame, "y", "roc_auc"), "slice:origin").status == "skipped"


def test_fairness_gap_between_groups() -> None:
    frame = _frame(champion_noise=None)
    lga = frame["origin"] == "LGA"
    frame.loc[lga, "challenger"] = frame.loc[lga, "y"] + RNG.normal(0, 3.0, size=int(lga.sum()))
    check = _check(
        decide(_gate(fairness=[{"column": "origin", "max_gap": 0.1, "min_rows": 100}]), frame, "y", "roc_auc"),
        "fairness:origin",
    )
    assert check.status == "fail" and "(LGA)" in check.reason and check.value is not None and check.value > 0.1


def test_lower_is_better_metrics_compare_the_other_way() -> None:
    assert gain("log_loss", 0.3, 0.4) > 0 and gain("roc_auc", 0.7, 0.8) < 0
