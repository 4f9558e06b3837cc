"""The promotion gate's checks, on scores already computed for the same test rows (pure pandas).

Each check passes, fails or is skipped (with the reason: no champion yet, a slice too small, a
metric undefined on one class). The challenger is promoted when no check fails, so a first model
needs only the absolute thresholds and the baseline. Every comparison follows the metric's
direction: higher is better for roc_auc, pr_auc, accuracy, f1, precision, recall and r2; lower for
log_loss, brier, rmse and mae.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from lakeforge.training.fit import metric

LOWER_IS_BETTER = frozenset({"log_loss", "brier", "rmse", "mae"})
CHALLENGER, CHAMPION, BASELINE = "challenger", "champion", "baseline"


@dataclass(frozen=True)
class Check:
    """One gate check and why it ended as it did."""

    name: str
    status: str  # pass | fail | skipped
    value: float | None
    threshold: float | None
    reason: str


@dataclass(frozen=True)
class Decision:
    """The gate's verdict and every check behind it."""

    promote: bool
    checks: tuple[Check, ...]

    @property
    def failed(self) -> list[Check]:
        """The checks that failed."""
        return [c for c in self.checks if c.status == "fail"]

    def report(self) -> dict[str, Any]:
        """The decision as plain data (the JSON report)."""
        return {"promote": self.promote, "checks": [asdict(c) for c in self.checks]}


def gain(name: str, new: float, old: float) -> float:
    """How much better ``new`` is than ``old`` on metric ``name`` (negative: worse)."""
    return old - new if name in LOWER_IS_BETTER else new - old


def _score(frame: pd.DataFrame, label: str, model: str, name: str) -> float:
    return metric(name, frame[label].to_numpy(), frame[model].to_numpy())


def _status(ok: bool) -> str:
    return "pass" if ok else "fail"


def _absolute(gate: Any, frame: pd.DataFrame, label: str) -> list[Check]:
    checks = []
    for bound, higher in (("min_metrics", True), ("max_metrics", False)):
        for name, threshold in (gate.get(bound) or {}).items():
            value = _score(frame, label, CHALLENGER, str(name))
            ok = value >= threshold if higher else value <= threshold
            word = "at least" if higher else "at most"
            checks.append(
                Check(
                    f"absolute:{name}",
                    _status(ok),
                    value,
                    float(threshold),
                    f"{name} {value:.4f}, needs {word} {threshold}",
                )
            )
    return checks


def _against(
    frame: pd.DataFrame, label: str, primary: str, other: str, margin: float, check: str, missing: str
) -> Check:
    if other not in frame:
        return Check(check, "skipped", None, margin, missing)
    new, old = _score(frame, label, CHALLENGER, primary), _score(frame, label, other, primary)
    delta = gain(primary, new, old)
    return Check(
        check,
        _status(delta >= margin),
        delta,
        margin,
        f"{primary} {new:.4f} vs {other} {old:.4f}: gain {delta:+.4f}, needs at least {margin:+.4f}",
    )


def _groups(frame: pd.DataFrame, column: str, min_rows: int) -> tuple[list[tuple[Any, pd.DataFrame]], list[Any]]:
    """The (value, rows) groups of ``column`` with at least ``min_rows`` rows, and the values left out."""
    kept, small = [], []
    for value, rows in frame.groupby(column, dropna=False, sort=True):
        if len(rows) >= min_rows:
            kept.append((value, rows))
        else:
            small.append(value)
    return kept, small


def _slices(gate: Any, frame: pd.DataFrame, label: str, primary: str) -> list[Check]:
    checks = []
    for spec in gate.get("slices") or []:
        name = str(spec.get("metric") or primary)
        check = f"slice:{spec.column}"
        if CHAMPION not in frame:
            checks.append(Check(check, "skipped", None, None, "no champion to compare slices with"))
            continue
        groups, small = _groups(frame, str(spec.column), int(spec.min_rows))
        worst: tuple[float, Any] | None = None
        for value, rows in groups:
            delta = gain(name, _score(rows, label, CHALLENGER, name), _score(rows, label, CHAMPION, name))
            if not math.isnan(delta) and (worst is None or delta < worst[0]):
                worst = (delta, value)
        limit = -float(spec.max_degradation)
        if worst is None:
            checks.append(
                Check(check, "skipped", None, limit, f"no {spec.column} with {spec.min_rows}+ rows and both classes")
            )
            continue
        note = f" ({len(small)} value(s) under {spec.min_rows} rows not judged)" if small else ""
        checks.append(
            Check(
                check,
                _status(worst[0] >= limit),
                worst[0],
                limit,
                f"worst {spec.column} {worst[1]}: {name} {worst[0]:+.4f} vs champion, "
                f"allowed down to {limit:+.4f}{note}",
            )
        )
    return checks


def _fairness(gate: Any, frame: pd.DataFrame, label: str, primary: str) -> list[Check]:
    checks = []
    for spec in gate.get("fairness") or []:
        name = str(spec.get("metric") or primary)
        check = f"fairness:{spec.column}"
        groups, _ = _groups(frame, str(spec.column), int(spec.min_rows))
        values = {value: _score(rows, label, CHALLENGER, name) for value, rows in groups}
        values = {k: v for k, v in values.items() if not math.isnan(v)}
        if len(values) < 2:
            checks.append(
                Check(check, "skipped", None, float(spec.max_gap), f"fewer than 2 {spec.column} groups to compare")
            )
            continue
        best, worst = max(values, key=values.__getitem__), min(values, key=values.__getitem__)
        gap = values[best] - values[worst]
        checks.append(
            Check(
                check,
                _status(gap <= float(spec.max_gap)),
                gap,
                float(spec.max_gap),
                f"{name} from {values[worst]:.4f} ({worst}) to {values[best]:.4f} ({best}): gap {gap:.4f}, "
                f"allowed {spec.max_gap}",
            )
        )
    return checks


def decide(gate: Any, frame: pd.DataFrame, label: str, primary: str) -> Decision:
    """Every check on ``frame``: one row per test row with ``label`` and the scores of ``challenger``,
    and ``champion`` / ``baseline`` when there is one, plus the slice and fairness columns."""
    checks: list[Check] = _absolute(gate, frame, label)
    baseline = gate.get("baseline")
    if baseline is not None:
        checks.append(
            _against(
                frame,
                label,
                primary,
                BASELINE,
                float(baseline.get("min_margin", 0.0)),
                "baseline",
                "no baseline scores",
            )
        )
    champion = _against(frame, label, primary, CHAMPION, float(gate.get("min_improvement", 0.0)), "champion", "")
    if champion.status == "skipped":
        required = bool(gate.get("require_champion"))
        champion = Check(
            "champion",
            "fail" if required else "skipped",
            None,
            champion.threshold,
            "no champion yet and gate.require_champion is true" if required else "no champion yet: first model",
        )
    checks.append(champion)
    checks += _slices(gate, frame, label, primary)
    checks += _fairness(gate, frame, label, primary)
    return Decision(not any(c.status == "fail" for c in checks), tuple(checks))
