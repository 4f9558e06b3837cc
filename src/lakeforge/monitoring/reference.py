"""The monitor's reference: what each run date's features and scores are compared with.

``reference.kind: training`` (default): the rows of ``features.<feature_set>`` in the training
window of the model version that served the run date (the run's ``window.train`` param), and
the scores that version gave its test split (``monitoring/score_reference.json``, logged at
training). ``reference.kind: dates``: the feature rows and the served scores of fixed dates.

A reference is computed once (binning decided on it, then its counts) and saved in
``monitoring.reference``, one row per feature, keyed by monitor and reference id, so later run
dates and re-runs read it back instead of scanning months of features again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np

from lakeforge.errors import ConfigError, FeatureError
from lakeforge.features.build import ensure_features, spec_from_config
from lakeforge.lake.catalog import Catalog
from lakeforge.lake.delta import Lineage, read_table, write_rows
from lakeforge.monitoring.binning import Counts, FeatureBins, count_bins, feature_kinds, reference_bins
from lakeforge.monitoring.stats import NUMERIC

log = logging.getLogger(__name__)

REFERENCE_TABLE = "monitoring.reference"
SCORE = "__score__"  # the reference's row for the scores
SCORE_BINS = 20
SCORE_REFERENCE_ARTIFACT = "monitoring/score_reference.json"  # logged by training (lakeforge.training.run)
EVENT_DATE = "event_date"
REFERENCE_SCHEMA = (
    "monitor string, reference_id string, description string, start_date date, end_date date, days int, "
    "rows bigint, feature string, kind string, edges array<double>, categories array<string>, "
    "counts array<double>, nulls bigint, created_at timestamp"
)


@dataclass(frozen=True)
class Reference:
    """Binning and counts of the reference rows; ``scores`` is None when there is no score reference."""

    reference_id: str
    description: str
    start: date
    end: date
    days: int
    bins: list[FeatureBins]
    counts: Counts
    scores: np.ndarray | None  # counts over score_bins() (under/overflow included)
    score_rows: int
    score_note: str | None = None  # why there is no score reference

    @property
    def rows_per_day(self) -> float | None:
        return self.counts.rows / self.days if self.days else None


def score_bins() -> FeatureBins:
    """The bins of scores: 20 equal bins on [0, 1] (the training run logs its test scores so)."""
    return FeatureBins("score", NUMERIC, edges=tuple(float(e) for e in np.linspace(0.0, 1.0, SCORE_BINS + 1)))


def parse_window(text: str) -> tuple[date, date]:
    """A run's ``window.train`` param (``2013-01-01 00:00..2013-09-01 00:00``) as inclusive dates."""
    try:
        first, last = (datetime.strptime(part.strip(), "%Y-%m-%d %H:%M") for part in text.split(".."))
    except ValueError as exc:
        raise FeatureError(f"training window '{text}' is not 'YYYY-MM-DD HH:MM..YYYY-MM-DD HH:MM'") from exc
    return first.date(), (last - timedelta(microseconds=1)).date()


def _dates_filter(start: date, end: date) -> Any:
    first, last = start.isoformat(), end.isoformat()
    return lambda values: values.get(EVENT_DATE) is not None and first <= str(values[EVENT_DATE]) <= last


def feature_rows(spark: Any, catalog: Catalog, feature_table: str, start: date, end: date) -> Any:
    """The feature table's rows of the event dates [start, end] (only those partitions are listed)."""
    if not catalog.exists(feature_table):
        raise FeatureError(
            f"table '{feature_table}' does not exist; build the features first (`lakeforge run features`)"
        )
    return read_table(spark, catalog, feature_table, partitions=_dates_filter(start, end))


def _saved(spark: Any, catalog: Catalog, monitor: str, reference_id: str, features: list[str]) -> Reference | None:
    """The saved reference of exactly these features, or None."""
    if not catalog.exists(REFERENCE_TABLE):
        return None
    from pyspark.sql import functions as F  # noqa: N812

    rows = (
        read_table(spark, catalog, REFERENCE_TABLE)
        .where((F.col("monitor") == monitor) & (F.col("reference_id") == reference_id))
        .collect()
    )
    if not rows:
        return None
    first = rows[0]
    bins, counts, scores, score_rows = [], Counts(rows=int(first["rows"])), None, 0
    for r in sorted(rows, key=lambda r: r["feature"]):
        array = np.asarray(r["counts"], dtype=np.float64)
        if r["feature"] == SCORE:
            scores, score_rows = array, int(array.sum())
            continue
        b = FeatureBins(r["feature"], r["kind"], tuple(r["edges"] or ()), tuple(r["categories"] or ()))
        bins.append(b)
        counts.counts[b.feature] = array
        counts.nulls[b.feature] = int(r["nulls"])
    if sorted(b.feature for b in bins) != sorted(features):
        return None  # monitored features changed: the reference is computed again
    note = None if scores is not None else "no score reference saved"
    return Reference(
        reference_id,
        str(first["description"]),
        first["start_date"],
        first["end_date"],
        int(first["days"]),
        bins,
        counts,
        scores,
        score_rows,
        note,
    )


def _save(catalog: Catalog, monitor: str, ref: Reference, lineage: Lineage | None) -> None:
    now = datetime.now(UTC)
    head = (monitor, ref.reference_id, ref.description, ref.start, ref.end, ref.days, ref.counts.rows)
    data = [
        (
            *head,
            b.feature,
            b.kind,
            list(b.edges),
            list(b.categories),
            ref.counts.counts[b.feature].tolist(),
            ref.counts.nulls.get(b.feature, 0),
            now,
        )
        for b in ref.bins
    ]
    if ref.scores is not None:
        s = score_bins()
        data.append((*head, SCORE, NUMERIC, list(s.edges), [], ref.scores.tolist(), 0, now))
    write_rows(
        data,
        REFERENCE_SCHEMA,
        catalog,
        REFERENCE_TABLE,
        mode="append",
        app_id=f"monitoring.reference.{monitor}.{ref.reference_id}",
        app_version=1,
        lineage=lineage,
    )


def _score_reference_from_run(run_id: str) -> tuple[np.ndarray | None, str | None]:
    """The test-split score counts a training run logged, or None and why."""
    import mlflow

    try:
        logged = mlflow.artifacts.load_dict(f"runs:/{run_id}/{SCORE_REFERENCE_ARTIFACT}")
    except Exception as exc:  # an older run without the artifact, or a store problem: say which
        return None, f"run {run_id} has no {SCORE_REFERENCE_ARTIFACT} ({type(exc).__name__}); retrain to get one"
    inner = np.asarray(logged.get("counts") or [], dtype=np.float64)
    if inner.size != SCORE_BINS:
        return None, f"run {run_id}'s {SCORE_REFERENCE_ARTIFACT} has {inner.size} bins, expected {SCORE_BINS}"
    return np.concatenate([[0.0], inner, [0.0]]), None


def _served_scores(spark: Any, catalog: Catalog, predictions: str, alias: str, start: date, end: date) -> np.ndarray:
    from pyspark.sql import functions as F  # noqa: N812

    frame = read_table(
        spark,
        catalog,
        predictions,
        partitions=lambda v: start.isoformat() <= str(v.get("run_date")) <= end.isoformat(),
    ).where((F.col("model_alias") == alias) & F.col("served"))
    counted = count_bins(frame, [score_bins()])
    return counted[()].counts["score"] if counted else np.zeros(score_bins().size)


def training_reference(
    spark: Any,
    catalog: Catalog,
    cfg: Any,
    features: list[str],
    *,
    model: str,
    version: int,
    run_id: str,
    feature_table: str,
    lineage: Lineage | None,
) -> Reference:
    """The reference of model ``version``: its training window's features and its test scores."""
    reference_id = f"{model}/v{version}"
    saved = _saved(spark, catalog, str(cfg.monitor.name), reference_id, features)
    if saved is not None:
        return saved
    from lakeforge.tracking.store import connect

    client = connect(cfg).client
    params = client.get_run(run_id).data.params
    window = params.get("window.train")
    if not window:
        raise FeatureError(
            f"run {run_id} of model '{model}' v{version} has no 'window.train' param to take a reference from"
        )
    start, end = parse_window(window)
    scores, note = _score_reference_from_run(run_id)
    description = f"training window of {model} v{version} ({start}..{end}), test-split scores"
    return _build(
        spark, catalog, cfg, features, feature_table, reference_id, description, start, end, scores, note, lineage
    )


def dates_reference(
    spark: Any,
    catalog: Catalog,
    cfg: Any,
    features: list[str],
    *,
    feature_table: str,
    predictions: str,
    alias: str,
    lineage: Lineage | None,
) -> Reference:
    """The reference of ``reference.start_date..end_date``: those dates' features and served scores."""
    ref_cfg = cfg.monitor.reference
    try:
        start, end = date.fromisoformat(str(ref_cfg.start_date)), date.fromisoformat(str(ref_cfg.end_date))
    except ValueError as exc:
        raise ConfigError(f"reference dates must be YYYY-MM-DD: {exc}", key="monitor.reference.start_date") from exc
    reference_id = f"dates/{start}..{end}"
    saved = _saved(spark, catalog, str(cfg.monitor.name), reference_id, features)
    if saved is not None:
        return saved
    scores: np.ndarray | None = None
    note = None
    if catalog.exists(predictions):
        scores = _served_scores(spark, catalog, predictions, alias, start, end)
    if scores is None or scores.sum() == 0:
        scores, note = None, f"no served predictions in {predictions} for {start}..{end}"
    description = f"dates {start}..{end}"
    return _build(
        spark, catalog, cfg, features, feature_table, reference_id, description, start, end, scores, note, lineage
    )


def _build(
    spark: Any,
    catalog: Catalog,
    cfg: Any,
    features: list[str],
    feature_table: str,
    reference_id: str,
    description: str,
    start: date,
    end: date,
    scores: np.ndarray | None,
    note: str | None,
    lineage: Lineage | None,
) -> Reference:
    """Decide the binning on the reference rows, count them, save the result in monitoring.reference."""
    spec = spec_from_config(cfg, feature_table.split(".", 1)[1])
    dates = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    ensure_features(spark, cfg, catalog, lineage or Lineage(f"monitor-{reference_id}", step="monitor"), spec, dates)
    frame = feature_rows(spark, catalog, feature_table, start, end).select(*[f"`{f}`" for f in features])
    kinds = feature_kinds(frame, features)
    drift = cfg.monitor.drift
    bins = reference_bins(frame, kinds, bins=int(drift.bins), top_k=int(drift.top_k))
    counted = count_bins(frame, bins)
    if not counted or counted[()].rows == 0:
        raise FeatureError(
            f"the reference ({description}) has no rows in '{feature_table}'; build the features for those dates "
            f"first: lakeforge run features start_date={start} end_date={end}"
        )
    log.info("monitor: reference %s: %d rows, %d features", reference_id, counted[()].rows, len(bins))
    days = (end - start).days + 1
    score_rows = int(scores.sum()) if scores is not None else 0
    ref = Reference(reference_id, description, start, end, days, bins, counted[()], scores, score_rows, note)
    _save(catalog, str(cfg.monitor.name), ref, lineage)
    return ref
