"""Schemas of the ``model``, ``schedule`` and ``monitor`` config groups."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

METRICS = (
    "roc_auc",
    "pr_auc",
    "log_loss",
    "brier",
    "accuracy",
    "f1",
    "precision",
    "recall",
    "rmse",
    "mae",
    "r2",
)
STEPS = ("ingest", "features", "train", "evaluate", "score", "materialize", "monitor", "report")
# The job script each step runs (relative to the project root); the report has none (it reads tables only).
STEP_JOBS = {
    "ingest": "jobs/ingest.py",
    "features": "jobs/build_features.py",
    "train": "jobs/train.py",
    "evaluate": "jobs/evaluate.py",
    "score": "jobs/score.py",
    "materialize": "jobs/materialize.py",
    "monitor": "jobs/monitor.py",
}
CRON_PRESETS = ("@once", "@hourly", "@daily", "@weekly", "@monthly", "@yearly")
# The drift methods (lakeforge.monitoring.stats.DRIFT_METHODS) and the feature kinds each applies to.
DRIFT_METHOD_KINDS = {
    "psi": ("numeric", "categorical"),
    "ks": ("numeric",),
    "wasserstein": ("numeric",),
    "jensenshannon": ("categorical",),
    "chi2": ("categorical",),
}
DRIFT_METHODS = tuple(DRIFT_METHOD_KINDS)
# Performance metrics the monitor computes from binned scores once labels arrive.
MONITOR_METRICS = ("roc_auc", "log_loss", "precision", "recall", "ece", "positive_rate")
# The signals a monitor run computes per run date: what alert rules can watch.
MONITOR_SIGNALS = (
    "drift_share",  # share of the monitored features that drifted
    "drifted_features",  # how many drifted
    "prediction_drift",  # the serving alias's score drift (drift.prediction.method)
    "volume_ratio",  # rows of the run date's features / the reference's rows per day
    "null_share_increase",  # largest rise of a feature's null share over the reference
    "missing_share",  # share of the population without a prediction
    "predictions_missing",  # true when the run date has no served prediction
    "predictions_late",  # true when they came after deadlines.predictions_by (unknown in replays)
    *(f"performance.{m}" for m in MONITOR_METRICS),  # on run_date - labels_within, serving alias
)
ALERT_CHANNELS = ("log", "file", "webhook", "email")
REASON_METHODS = ("auto", "path", "treeshap", "occlusion", "none")
EXPORT_FORMATS = ("parquet", "csv", "jdbc")


@dataclass
class SplitWindow:
    """A time window relative to ``run_date``: signed offsets like ``-180d`` .. ``-30d``."""

    start: str = MISSING
    end: str = MISSING


@dataclass
class SplitConfig:
    """Train / validation / test windows; ordered and non-overlapping."""

    train: SplitWindow = field(default_factory=SplitWindow)
    validation: SplitWindow = field(default_factory=SplitWindow)
    test: SplitWindow = field(default_factory=SplitWindow)


@dataclass
class SliceCheckConfig:
    """Per value of ``column`` (with at least ``min_rows`` test rows): the challenger's metric may
    fall at most ``max_degradation`` below the champion's on the same rows."""

    column: str = MISSING
    max_degradation: float = 0.02
    min_rows: int = 200
    metric: str | None = None  # default: the model's primary_metric


@dataclass
class FairnessCheckConfig:
    """Across the values of ``column`` (each with at least ``min_rows`` test rows): the largest gap
    of the challenger's metric between two groups is at most ``max_gap``."""

    column: str = MISSING
    max_gap: float = 0.1
    min_rows: int = 200
    metric: str | None = None


@dataclass
class BaselineConfig:
    """A simple model the challenger must beat by ``min_margin`` on the primary metric."""

    estimator: dict[str, Any] = field(default_factory=lambda: {"_target_": "sklearn.dummy.DummyClassifier"})
    params: dict[str, Any] = field(default_factory=dict)
    min_margin: float = 0.0


@dataclass
class GateConfig:
    """Promotion gate: absolute thresholds, the baseline, the champion, slices and fairness."""

    min_metrics: dict[str, float] = field(default_factory=dict)  # higher-is-better floors, e.g. roc_auc
    max_metrics: dict[str, float] = field(default_factory=dict)  # lower-is-better ceilings, e.g. log_loss
    # On primary_metric vs the champion, in the metric's better direction; negative allows a regression.
    min_improvement: float = 0.0
    require_champion: bool = False
    slices: list[SliceCheckConfig] = field(default_factory=list)
    fairness: list[FairnessCheckConfig] = field(default_factory=list)
    baseline: BaselineConfig | None = None


@dataclass
class ReasonsConfig:
    """Per-row reasons: the ``top_k`` features by absolute contribution to the row's score.

    ``method``: ``auto`` (path attribution for tree models, occlusion otherwise), ``path``
    (Saabas, O(depth) per tree), ``treeshap`` (exact, ~100x the cost of predict), ``occlusion``
    (any model: the score's change when one feature is missing, one predict per feature) or
    ``none``. Exact TreeSHAP for a subset of rows on top of ``path``: those scored at least
    ``exact_min_score``, and a stable hash-selected ``exact_fraction`` of entities.
    """

    top_k: int = 5
    method: str = "auto"
    exact_min_score: float | None = None
    exact_fraction: float = 0.0


@dataclass
class CanaryConfig:
    """Serve ``alias``'s prediction for a stable hash-selected ``fraction`` of entities."""

    alias: str = MISSING
    fraction: float = MISSING


@dataclass
class ExportConfig:
    """A copy of each scored run date for a consumer, replaced idempotently per run date.

    ``parquet``/``csv``: files under ``path``/run_date=YYYY-MM-DD/. ``jdbc``: rows of ``table`` at
    ``url`` (credentials through ``${oc.env:…}``). ``reasons`` is written as JSON text in csv and jdbc.
    ``served_only``: only the rows served to consumers (no shadow rows).
    """

    format: str = MISSING
    path: str | None = None
    url: str | None = None
    table: str | None = None
    user: str | None = None
    password: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    columns: list[str] = field(default_factory=list)  # empty: every column
    served_only: bool = True


@dataclass
class ScoringConfig:
    """Batch scoring of the model into ``predictions.<model>``."""

    alias: str = "champion"  # the registry alias whose version serves
    shadow: list[str] = field(default_factory=list)  # more aliases scored on the same rows, not served
    canary: CanaryConfig | None = None
    threshold: float = 0.5  # classification: prediction = score >= threshold
    reasons: ReasonsConfig = field(default_factory=ReasonsConfig)
    # Rows with a null in any of these get no prediction (recorded in predictions.<model>__missing).
    required_features: list[str] = field(default_factory=list)
    exports: list[ExportConfig] = field(default_factory=list)
    batch_rows: int = 20000  # rows per Arrow batch handed to the model
    threads_per_task: int | None = None  # LightGBM threads in each Python worker; default: cores / task slots


@dataclass
class ModelConfig:
    """A model: estimator, feature set and features, label, splits, metrics and gate.

    The estimator is built as ``instantiate(estimator, **params)``.
    """

    name: str = MISSING
    estimator: dict[str, Any] = MISSING  # needs _target_
    params: dict[str, Any] = field(default_factory=dict)
    feature_set: str = MISSING
    features: list[str] = field(default_factory=list)  # empty: every feature of the set
    label: str | None = None  # default: the feature set's label
    task: str = "classification"  # classification | regression
    splits: SplitConfig = field(default_factory=SplitConfig)
    metrics: list[str] = field(default_factory=lambda: ["roc_auc"])
    primary_metric: str = "roc_auc"
    seed: int = 42
    class_weight: Any = None  # e.g. balanced, or {0: 1.0, 1: 3.0}; passed to estimators that take it
    gate: GateConfig = field(default_factory=GateConfig)
    # The training data comes to the driver as pandas; above this estimate the job refuses.
    max_driver_mb: float = 2048.0
    scoring: ScoringConfig = field(default_factory=ScoringConfig)


@dataclass
class ScheduleConfig:
    """An Airflow schedule: when, which steps, and how failures are retried."""

    cron: str | None = MISSING  # 5 fields, a preset (@daily …), or null for manual runs
    start_date: str = MISSING  # YYYY-MM-DD
    steps: list[str] = MISSING
    end_date: str | None = None
    catchup: bool = False
    retries: int = 2
    retry_delay: str = "5m"
    execution_timeout: str = "2h"
    max_active_runs: int = 1
    owner: str = "lakeforge"
    tags: list[str] = field(default_factory=list)


@dataclass
class DriftRule:
    """How drift is measured for one feature kind (or the scores), and the threshold that calls it drift."""

    method: str = MISSING
    threshold: float = MISSING


@dataclass
class DriftConfig:
    """Drift rules per feature kind, for the scores, and the bins of numeric features."""

    numeric: DriftRule = field(default_factory=lambda: DriftRule(method="psi", threshold=0.2))
    categorical: DriftRule = field(default_factory=lambda: DriftRule(method="chi2", threshold=0.05))
    prediction: DriftRule = field(default_factory=lambda: DriftRule(method="psi", threshold=0.2))
    bins: int = 20  # equal-width bins between the reference's 0.5% and 99.5% quantiles
    top_k: int = 20  # categories kept per categorical feature; the rest are __other__


@dataclass
class ReferenceConfig:
    """What current data is compared with: the served model's training window, or fixed dates."""

    kind: str = "training"  # training | dates
    start_date: str | None = None  # for kind=dates, YYYY-MM-DD (inclusive)
    end_date: str | None = None


@dataclass
class PerformanceConfig:
    """Model quality on the served predictions (and the shadows'), once the labels arrive."""

    metric: str = "roc_auc"  # the headline metric of the report
    threshold: float = 0.5  # score above which a row counts as predicted positive (precision/recall)
    slices: list[str] = field(default_factory=list)  # feature columns to break metrics down by
    score_bins: int = 100


@dataclass
class DeadlineConfig:
    """When outputs must exist; a miss is a signal the alert rules can use."""

    predictions_by: str | None = None  # HH:MM UTC on the day after run_date
    max_feature_staleness: str = "1d"
    labels_within: str = "2d"  # label delay: performance on run_date is measured for run_date - this


@dataclass
class RetrainPolicy:
    """How alerts of rules marked ``retrain: true`` become retrain requests."""

    cooldown_days: int = 7  # no new request within this many days of the last one


@dataclass
class AlertsConfig:
    """Alert rules over the monitor's signals, the channels they notify, and the retrain policy."""

    # Each: {name, signal, above | below | when_true, n_of, last, severity, retrain}
    rules: list[Any] = field(default_factory=list)
    # Each: log, or {kind: log | file | webhook | email, ...}
    channels: list[Any] = field(default_factory=lambda: ["log"])
    retrain: RetrainPolicy = field(default_factory=RetrainPolicy)


@dataclass
class MonitorConfig:
    """Monitoring of one model: drift, data quality, performance, deadlines and alerts."""

    name: str = MISSING
    model: str = MISSING
    reference: ReferenceConfig = field(default_factory=ReferenceConfig)
    current_window: str = "1d"
    features: list[str] = field(default_factory=list)  # empty: the model's features
    drift: DriftConfig = field(default_factory=DriftConfig)
    performance: PerformanceConfig = field(default_factory=PerformanceConfig)
    deadlines: DeadlineConfig = field(default_factory=DeadlineConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
