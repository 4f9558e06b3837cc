"""The steps a job, `lakeforge run STEP` or a DVC stage can run, by name.

Each step is a function of (spark, cfg, catalog, lineage) that reads and writes
through the lake; the runner (``lakeforge.pipeline.runner``) gives it those.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MARKER_DIR = "lake_markers"


def _write_json(path: Path, payload: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    return path


def write_marker(cfg: Any, step: str, payload: dict[str, Any]) -> Path:
    """Record what a step wrote (tables, versions, rows) in a small JSON file DVC tracks."""
    return _write_json(Path(str(cfg.project_root)) / MARKER_DIR / f"{step}.json", payload)


def ingest_step(spark: Any, cfg: Any, catalog: Any, lineage: Any) -> None:
    """Ingest every dataset of the pipeline into raw.<name>, bad rows into quarantine.<name>."""
    from lakeforge.data.ingest import ingest_all

    reports = ingest_all(spark, cfg, catalog, lineage)
    width = max((len(r.dataset) for r in reports), default=7)
    print(f"{'dataset':<{width}}  {'rows in':>9}  {'accepted':>9}  {'quarantined':>11}  raw version")
    for r in reports:
        print(
            f"{r.dataset:<{width}}  {r.rows_in:>9,}  {r.rows_accepted:>9,}  {r.rows_quarantined:>11,}"
            f"  {r.raw_table} v{r.raw_version}"
        )
    marker = write_marker(
        cfg,
        "ingest",
        {
            r.dataset: {
                "raw_table": r.raw_table,
                "raw_version": r.raw_version,
                "rows_accepted": r.rows_accepted,
                "quarantine_table": r.quarantine_table,
                "quarantine_version": r.quarantine_version,
                "rows_quarantined": r.rows_quarantined,
            }
            for r in reports
        },
    )
    log.info("ingest: wrote %s", marker)


def features_step(spark: Any, cfg: Any, catalog: Any, lineage: Any) -> None:
    """Build features.<feature_set> for run_date, or start_date..end_date, and its statistics."""
    from lakeforge.features.build import build_features, date_range

    start, end = date_range(cfg)
    built = build_features(spark, cfg, catalog, lineage, start, end)
    print(
        f"{built.table} v{built.version}: {built.rows:,} rows for {built.start}..{built.end}, "
        f"{built.features} features (statistics in {built.stats_table})"
    )
    marker = write_marker(
        cfg,
        "features",
        {
            built.feature_set: {
                "table": built.table,
                "version": built.version,
                "rows": built.rows,
                "start": built.start.isoformat(),
                "end": built.end.isoformat(),
                "stats_table": built.stats_table,
            }
        },
    )
    log.info("features: wrote %s", marker)


def train_step(spark: Any, cfg: Any, catalog: Any, lineage: Any) -> None:
    """Train the composed model for run_date; register it as the challenger."""
    from lakeforge.training.run import train

    result = train(spark, cfg, catalog, lineage)
    shown = ", ".join(f"{k} {v:.4f}" for k, v in result.metrics["test"].items())
    print(f"model {result.model} v{result.version} (alias challenger, run {result.run_id}): test {shown}")
    print("rows: " + ", ".join(f"{k} {v:,}" for k, v in result.rows.items()))
    marker = write_marker(
        cfg,
        "train",
        {
            result.model: {
                "version": result.version,
                "run_id": result.run_id,
                "model_uri": result.model_uri,
                "metrics": result.metrics,
                "rows": result.rows,
                "inputs": result.inputs,
            }
        },
    )
    metrics = Path(str(cfg.project_root)) / "metrics"
    summary = {"model": result.model, "version": int(result.version), "rows": result.rows, **result.metrics}
    if result.baseline_metrics:
        summary["baseline"] = result.baseline_metrics
    _write_json(metrics / "train.json", summary)
    for name, rows in (result.curves or {}).items():
        _write_json(metrics / "plots" / f"test_{name}.json", rows)
    log.info("train: wrote %s and %s", marker, metrics / "train.json")


def evaluate_step(spark: Any, cfg: Any, catalog: Any, lineage: Any) -> None:
    """Gate the challenger against the champion and the baseline; promote it or refuse (exit 3)."""
    from lakeforge.training.evaluate import evaluate, refusal

    evaluation = evaluate(spark, cfg, catalog, lineage)
    if evaluation is None:
        print(f"{cfg.model.name}: the challenger is already the champion; nothing to decide")
        return
    print(evaluation.describe())
    if not evaluation.decision.promote:
        raise refusal(evaluation)


def score_step(spark: Any, cfg: Any, catalog: Any, lineage: Any) -> None:
    """Score run_date (or start_date..end_date) into predictions.<model> with the configured aliases."""
    from lakeforge.scoring.job import score

    result = score(spark, cfg, catalog, lineage)
    print(result.describe())
    marker = write_marker(
        cfg,
        "score",
        {
            result.table: {
                "version": result.version,
                "rows": result.rows,
                "start": result.start.isoformat(),
                "end": result.end.isoformat(),
                "models": result.models,
                "feature_table": result.feature_table,
                "feature_table_version": result.feature_table_version,
                "missing": sum(sum(d.missing.values()) for d in result.days),
            }
        },
    )
    metrics = Path(str(cfg.project_root)) / "metrics" / "score.json"
    _write_json(
        metrics,
        {
            "model": cfg.model.name,
            "versions": {alias: m["version"] for alias, m in result.models.items()},
            "run_dates": len(result.days),
            "population": sum(d.population for d in result.days),
            "scored": sum(d.scored for d in result.days),
            "missing": sum(sum(d.missing.values()) for d in result.days),
        },
    )
    log.info("score: wrote %s and %s", marker, metrics)


def materialize_step(spark: Any, cfg: Any, catalog: Any, lineage: Any) -> None:
    """Copy what changed in features.<feature_set> into the online store (no Spark: delta-rs, pyarrow, SQLite)."""
    from lakeforge.serving.materialize import materialize
    from lakeforge.serving.store import store_from_config

    feature_set = str(cfg.pipeline.feature_set)
    result = materialize(cfg, catalog, feature_set, store_from_config(cfg))
    print(result.describe())
    marker = write_marker(
        cfg,
        "materialize",
        {
            result.feature_table: {
                "version": result.version,
                "store": result.store,
                "entities": result.entities,
                "entities_written": result.entities_written,
            }
        },
    )
    log.info("materialize: wrote %s", marker)


materialize_step.needs_spark = False  # type: ignore[attr-defined]


def monitor_step(spark: Any, cfg: Any, catalog: Any, lineage: Any) -> None:
    """Monitor run_date (or start_date..end_date): drift, data quality, performance, alerts, retrain requests."""
    from lakeforge.monitoring.job import monitor

    result = monitor(spark, cfg, catalog, lineage)
    print(result.describe())
    last = result.days[-1].signals if result.days else {}
    marker = write_marker(
        cfg,
        "monitor",
        {
            result.monitor: {
                "model": result.model,
                "start": result.start.isoformat(),
                "end": result.end.isoformat(),
                "tables": result.versions,
                "retrain_requests": [d.isoformat() for d in result.retrain_requests],
            }
        },
    )
    opened = [e for d in result.days for e in d.events if e.status == "opened"]
    _write_json(
        Path(str(cfg.project_root)) / "metrics" / "monitor.json",
        {
            "monitor": result.monitor,
            "run_dates": len(result.days),
            "last_run_date": result.end.isoformat(),
            "last": {k: v for k, v in last.items() if v is not None and not isinstance(v, bool)},
            "alerts_opened": len(opened),
            "retrain_requests": len(result.retrain_requests),
        },
    )
    log.info("monitor: wrote %s", marker)


def retrain_step(spark: Any, cfg: Any, catalog: Any, lineage: Any) -> None:
    """Train and gate a new model: for run_date, or the day after the latest retrain request of the
    monitor. The gate still decides: a refused challenger fails the step (exit 3), the champion stays."""
    from omegaconf import OmegaConf

    from lakeforge.errors import UsageError
    from lakeforge.monitoring.tables import retrain_requests

    if cfg.get("run_date") is None:
        requests = retrain_requests(catalog, model=str(cfg.model.name))
        if not requests:
            raise UsageError(
                f"no retrain of '{cfg.model.name}' was requested (monitoring.retrain_requests is empty); "
                "pass run_date=YYYY-MM-DD to retrain anyway"
            )
        last = requests[-1]
        run_date = last["run_date"] + timedelta(days=1)  # the labels of the request's date are in by then
        print(f"retrain {cfg.model.name} for {run_date}: requested on {last['run_date']} by {', '.join(last['rules'])}")
        print(f"  {last['reason']}")
        cfg = cfg.copy()
        OmegaConf.set_struct(cfg, False)
        cfg.run_date = run_date.isoformat()
        OmegaConf.set_struct(cfg, True)
    train_step(spark, cfg, catalog, lineage)
    evaluate_step(spark, cfg, catalog, lineage)


def backtest_step(spark: Any, cfg: Any, catalog: Any, lineage: Any) -> None:
    """Replay start_date..end_date with and without the retrain policy (lakeforge.pipeline.backtest)."""
    from lakeforge.features.build import date_range
    from lakeforge.pipeline.backtest import backtest, write_outputs

    start, end = date_range(cfg)
    version = cfg.get("backtest_version")
    result = backtest(spark, cfg, catalog, lineage, start, end, version=None if version is None else str(version))
    print(result.describe())
    json_path, html_path = write_outputs(result, Path(str(cfg.project_root)) / "reports")
    print(f"  table: {json_path}")
    print(f"  chart: {html_path}")


STEPS: dict[str, Callable[[Any, Any, Any, Any], None]] = {
    "ingest": ingest_step,
    "features": features_step,
    "train": train_step,
    "evaluate": evaluate_step,
    "score": score_step,
    "materialize": materialize_step,
    "monitor": monitor_step,
    "retrain": retrain_step,
}
