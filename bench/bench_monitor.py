"""Monitoring one run date against scoring the same rows (issue 8): 5M prediction rows x 30 features.

The scoring benchmark's project (`bench.score_workload`: ``features.bench_score`` with 30 numeric
features, a LightGBM champion). Untimed set-up: score the reference date (`SMALL_DAY`) and the
measured date (`DAY`), then one monitor run of `DAY`, which computes and saves the reference
(``reference.kind: dates`` on `SMALL_DAY`: features and served scores). Timed, alternating:
``lakeforge.scoring.job.score`` of `DAY` (no reasons) and ``lakeforge.monitoring.job.monitor`` of
`DAY` (feature drift of the 30 features, score drift, data quality, coverage, freshness, alerts,
seven Delta commits; no labels in this project, so no performance pass).

Target: monitor time <= 0.5 x scoring time, medians of the same run.

    .venv/bin/python -m bench monitor [--quick]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import Result, bench_spark, median, report, time_alternating
from bench.score_workload import (
    DAY,
    FEATURE_SET,
    FEATURES,
    SMALL_DAY,
    TRAIN_EVERY,
    feature_matrix,
    register_model,
    score_config,
    write_tables,
)

NAME = "monitor"
TARGET = 0.5  # monitor seconds / score seconds, at most
SHUFFLE_PARTITIONS = 8


def monitor_config(root: Path) -> Any:
    """The scoring benchmark's config with a monitor: reference = `SMALL_DAY`, PSI on 20 bins."""
    from omegaconf import OmegaConf

    cfg = score_config(root, run_date=DAY, reasons={"method": "none"})
    cfg.monitor = OmegaConf.create(
        {
            "name": "bench_monitor",
            "model": str(cfg.model.name),
            "reference": {"kind": "dates", "start_date": SMALL_DAY.isoformat(), "end_date": SMALL_DAY.isoformat()},
            "current_window": "1d",
            "deadlines": {"predictions_by": "07:00", "labels_within": "1d"},
            "alerts": {
                "rules": [{"name": "feature_drift", "signal": "drift_share", "above": 0.3}],
                "channels": ["log"],
            },
        }
    )
    return cfg


def main(
    quick: bool = False, rows: int | None = None, runs: int = 3, keep: Path | None = None, workspace: Path | None = None
) -> bool:
    """Run the benchmark, record it, and return whether it met its target (``keep``, ``workspace``:
    as `bench.bench_score.main`'s)."""
    keep = keep or (workspace / "score" if workspace is not None else None)
    from lakeforge.lake.catalog import Catalog
    from lakeforge.lake.delta import Lineage, new_job_run_id
    from lakeforge.monitoring.job import monitor
    from lakeforge.scoring.job import score

    rows = rows or (500_000 if quick else 5_000_000)
    small_rows = max(1, rows // 5)
    root = keep or Path(tempfile.mkdtemp(prefix="lakeforge-bench-monitor-"))
    spark = None
    started_all = time.perf_counter()
    try:
        catalog = Catalog(root / "lake")
        spark = bench_spark(SHUFFLE_PARTITIONS)
        setup: dict[str, float] = {}
        started = time.perf_counter()
        cfg = monitor_config(root)
        if not catalog.exists(f"features.{FEATURE_SET}"):
            write_tables(spark, root, catalog, rows, small_rows, False)
            x = feature_matrix(catalog, DAY)
            register_model(cfg, x[::TRAIN_EVERY].copy())
            del x
        setup["tables_model_s"] = time.perf_counter() - started

        def score_day(day: Any) -> None:
            day_cfg = cfg.copy()
            day_cfg.run_date = day.isoformat()
            score(spark, day_cfg, catalog, Lineage(new_job_run_id(), step="score"))

        phases: list[dict[str, float]] = []

        def monitor_day() -> None:
            result = monitor(spark, cfg, catalog, Lineage(new_job_run_id(), step="monitor"))
            phases.append(result.seconds)
            drifted = result.days[0].signals["drift_share"]
            if drifted is None:
                raise RuntimeError("the monitor measured no drift share: the benchmark is broken")

        started = time.perf_counter()
        score_day(SMALL_DAY)
        score_day(DAY)
        monitor_day()  # computes and saves the reference
        setup["warmup_s"] = time.perf_counter() - started

        timings = time_alternating({"score": lambda: score_day(DAY), "monitor": monitor_day}, runs=runs, warmup=0)
        seconds = {name: median(values) for name, values in timings.items()}
        ratio = seconds["monitor"] / seconds["score"]
        result = Result(
            name=NAME,
            figure=(
                f"{rows:,} rows x {len(FEATURES)} features: monitor {seconds['monitor']:.1f} s, "
                f"score {seconds['score']:.1f} s (x{ratio:.2f})"
            ),
            target=f"monitor time <= {TARGET:.1f}x scoring time",
            passed=ratio <= TARGET,
            ratio=ratio,
            timings=timings,
            details={
                "rows": rows,
                "reference_rows": small_rows,
                "features": len(FEATURES),
                "median_s": seconds,
                "score": "lakeforge.scoring.job.score, reasons off, champion only",
                "monitor": "lakeforge.monitoring.job.monitor, one run date, reference read back from "
                "monitoring.reference, 7 Delta commits",
                "monitor_phases_median_s": {k: median([p.get(k, 0.0) for p in phases[1:]]) for k in phases[-1]},
                "setup_s": setup,
                "wall_s": time.perf_counter() - started_all,
            },
        )
        report(result)
        return result.passed
    finally:
        if spark is not None:
            spark.stop()
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.bench_monitor", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rows", type=int)
    parser.add_argument("--keep", type=Path, help="build the project here once and reuse it")
    args = parser.parse_args()
    sys.exit(0 if main(quick=args.quick, rows=args.rows, keep=args.keep) else 1)
