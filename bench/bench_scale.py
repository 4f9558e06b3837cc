"""Scale: batch scoring and the point-in-time feature build at 1M, 5M and 20M rows; cost per row and memory.

Each size runs once in a fresh Python process (a fresh driver JVM: a JVM's RSS only grows with
what it has run), with the process's peak memory polled throughout (`bench.harness.RssPeak`):

- **scoring**: `lakeforge.scoring.job.score` of one date of the scoring workload
  (`bench/score_workload.py`: 30 features, LightGBM 100 trees, reasons off: the data plane's
  cost; the `score` benchmark prices the reasons), through `bench.bench_score.run_probe`. The
  dates of 1M and 5M rows are the scoring benchmark's own (one file each); the 20M date is added
  to the same project, in files of 5M rows. The model is the workload's (trained on every 25th
  row of the 5M date).
- **features**: the feature benchmark's build (`bench/bench_features.py`: 3 trailing windows and
  1 as-of join over 90 days) of N events written to Parquet, through
  `bench.bench_features.run_probe`. Every input grows with N: N / 100 entities, each with ~2
  readings a day (1.8M readings at 1M events, 36M at 20M).

Each process first runs the job once on a small input, untimed (a 100k-row date; the first
day of the events), so the clock sees the steady state: Python workers up, modules imported,
the model loaded, Spark's code generated. The peaks cover the warm-up too. Per size: seconds, microseconds per row, the
Python driver's and the driver JVM's peak RSS. Targets: per job, the time per row at every size
within 25% of the smallest per-row time at any size (cost grows linearly), and each process's
peak RSS within 25% of its smallest (memory stays flat). The plot, ``bench/results/scale.png``,
shows both against rows on a log axis.

Repetition: one run per size (20M rows take minutes; three would not fit `make bench`'s 30
minutes); the sizes themselves are the repeated measurement of the cost per row.
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

from bench.harness import RESULTS_DIR, Result, bench_spark, report

NAME = "scale"
SIZES = (1_000_000, 5_000_000, 20_000_000)
QUICK_SIZES = (100_000, 500_000, 2_000_000)
TARGET_SPREAD = 1.25  # largest / smallest, for time per row and for each peak RSS
LARGE_DAY = date(2013, 10, 17)  # the scoring workload's third date (SMALL_DAY, DAY are the other two)
WARMUP_DAY = date(2013, 10, 14)  # a small date each scoring probe scores first, untimed
WARMUP_ROWS = 100_000
EVENTS_PER_ENTITY = 100  # the feature workload grows in entities (and their readings) with the events
SHUFFLE_PARTITIONS = 8  # conf/spark/local.yaml
PLOT = RESULTS_DIR / "scale.png"
MB = 2**20


def scoring_project(root: Path, sizes: tuple[int, int, int]) -> dict[int, date]:
    """The scoring workload under ``root`` (reused when present) with a date of each size; {rows: date}."""
    from bench.score_workload import (
        DAY,
        FEATURE_SET,
        SMALL_DAY,
        TRAIN_EVERY,
        add_day,
        feature_matrix,
        register_model,
        score_config,
        write_tables,
    )
    from lakeforge.lake.catalog import Catalog
    from lakeforge.lake.delta import arrow_dataset

    small, medium, large = sizes
    catalog = Catalog(root / "lake")
    spark = bench_spark(SHUFFLE_PARTITIONS)
    try:
        if not catalog.exists(f"features.{FEATURE_SET}"):
            write_tables(spark, root, catalog, medium, small, False)
            register_model(score_config(root), feature_matrix(catalog, DAY)[::TRAIN_EVERY].copy())
        written = arrow_dataset(catalog, f"features.{FEATURE_SET}").to_table(columns=["event_date"])
        dates = set(written.column("event_date").unique().to_pylist())
        if LARGE_DAY not in dates:
            add_day(spark, catalog, LARGE_DAY, large, first_id=10 * large, seed=3)
        if WARMUP_DAY not in dates:
            add_day(spark, catalog, WARMUP_DAY, WARMUP_ROWS, first_id=20 * large, seed=4)
    finally:
        spark.stop()
    return {small: SMALL_DAY, medium: DAY, large: LARGE_DAY}


def measure(root: Path, sizes: tuple[int, int, int], reuse: Path | None) -> dict[str, dict[int, dict[str, Any]]]:
    """Seconds and peak RSS per job and size, each size in a fresh process."""
    from bench import bench_features, bench_score
    from bench.features_workload import make_workload

    found: dict[str, dict[int, dict[str, Any]]] = {"scoring": {}, "features": {}}
    project = reuse or root / "score"
    for rows, day in scoring_project(project, sizes).items():
        probe = bench_score.run_probe(project, day, reasons="none", warmup=WARMUP_DAY)
        if probe["rows"] != rows:
            raise RuntimeError(f"scoring {day}: {probe['rows']:,} rows scored, expected {rows:,}")
        found["scoring"][rows] = {
            "seconds": probe["score_s"],
            "python": probe["python_peak_bytes"],
            "jvm": probe["jvm_peak_bytes"],
            "probe": probe,
        }
    for rows in sizes:
        started = time.perf_counter()
        entities = max(1, rows // EVENTS_PER_ENTITY)
        workload = make_workload(root / f"features-{rows}", events=rows, entities=entities)
        generated = time.perf_counter() - started
        probe = bench_features.run_probe(workload, warmup=True)
        found["features"][rows] = {
            "seconds": probe["build_s"],
            "python": probe["python_peak_bytes"],
            "jvm": probe["jvm_peak_bytes"],
            "generate_s": generated,
            "inputs": {"entities": entities, "readings": workload.readings},
            "probe": probe,
        }
        shutil.rmtree(root / f"features-{rows}", ignore_errors=True)
    return found


def marginal_us_per_row(per_size: dict[int, dict[str, Any]]) -> list[float]:
    """Microseconds per added row between consecutive sizes: the cost per row without the fixed cost
    every run pays once (session, model, commit), which the time per row at the smallest size includes."""
    sizes = sorted(per_size)
    return [
        (per_size[big]["seconds"] - per_size[small]["seconds"]) / (big - small) * 1e6
        for small, big in itertools.pairwise(sizes)
    ]


def spreads(per_size: dict[int, dict[str, Any]]) -> dict[str, float]:
    """Largest / smallest of the time per row and of each peak RSS, over the sizes."""
    us = [m["seconds"] / rows * 1e6 for rows, m in per_size.items()]
    out = {"us_per_row": max(us) / min(us)}
    for process in ("python", "jvm"):
        peaks = [m[process] for m in per_size.values()]
        out[process] = max(peaks) / min(peaks)
    return out


def plot(found: dict[str, dict[int, dict[str, Any]]], target: Path) -> None:
    """Time per row and peak RSS against rows, one line per job (and process), log x axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for color, (job, per_size) in enumerate(found.items()):
        sizes = sorted(per_size)
        left.plot(sizes, [per_size[n]["seconds"] / n * 1e6 for n in sizes], marker="o", color=f"C{color}", label=job)
        for process, style in (("python", "--"), ("jvm", "-")):
            peaks = [per_size[n][process] / MB for n in sizes]
            right.plot(sizes, peaks, style, marker="o", color=f"C{color}", label=f"{job}: driver {process}")
    left.set(xscale="log", xlabel="rows", ylabel="microseconds per row", title="Cost per row")
    left.set_ylim(bottom=0)
    right.set(xscale="log", xlabel="rows", ylabel="peak RSS (MB)", title="Driver memory")
    right.set_ylim(bottom=0)
    for axis in (left, right):
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle("lakeforge at scale (local[2], 2 cores)")
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, dpi=100)
    plt.close(figure)


def _short(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k"


def main(quick: bool = False, workspace: Path | None = None) -> bool:
    """Run the benchmark, record it, and return whether cost per row and memory stayed flat."""
    sizes = QUICK_SIZES if quick else SIZES
    root = Path(tempfile.mkdtemp(prefix="lakeforge-bench-scale-"))
    # Under `python -m bench` the scoring project is the one the score and monitor benchmarks built.
    reuse = workspace / "score" if workspace is not None else None
    started = time.perf_counter()
    try:
        found = measure(root, sizes, reuse)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        if reuse is not None:
            shutil.rmtree(reuse / "lake" / "predictions", ignore_errors=True)
    plot(found, PLOT)
    spread = {job: spreads(per_size) for job, per_size in found.items()}
    passed = all(v <= TARGET_SPREAD for s in spread.values() for v in s.values())
    parts = []
    for job, per_size in found.items():
        us = ", ".join(f"{_short(n)} {m['seconds'] / n * 1e6:.1f}" for n, m in sorted(per_size.items()))
        rss = ", ".join(f"{m['jvm'] / MB:,.0f}" for _, m in sorted(per_size.items()))
        steps = ", ".join(f"{u:.1f}" for u in marginal_us_per_row(per_size))
        parts.append(
            f"{job} µs/row {us} (x{spread[job]['us_per_row']:.2f}; per added row {steps}), driver JVM MB {rss} "
            f"(x{spread[job]['jvm']:.2f}, Python x{spread[job]['python']:.2f})"
        )
    result = Result(
        name=NAME,
        figure="; ".join(parts),
        target=(
            f"time per row and peak RSS: largest/smallest <= {TARGET_SPREAD:.2f} over {', '.join(map(_short, sizes))}"
        ),
        passed=passed,
        ratio=max(s["us_per_row"] for s in spread.values()),
        timings={f"{job}.{_short(n)}": [m["seconds"]] for job, per_size in found.items() for n, m in per_size.items()},
        details={
            "sizes": list(sizes),
            "spreads": spread,
            "marginal_us_per_row": {job: marginal_us_per_row(per_size) for job, per_size in found.items()},
            "per_size": {
                job: {
                    _short(n): {
                        "seconds": m["seconds"],
                        "us_per_row": m["seconds"] / n * 1e6,
                        "python_peak_mb": m["python"] / MB,
                        "jvm_peak_mb": m["jvm"] / MB,
                        **{k: m[k] for k in ("generate_s", "inputs") if k in m},
                    }
                    for n, m in sorted(per_size.items())
                }
                for job, per_size in found.items()
            },
            "probes": {job: {_short(n): m["probe"] for n, m in per_size.items()} for job, per_size in found.items()},
            "plot": str(PLOT.relative_to(RESULTS_DIR.parent.parent)),
            "note": (
                "one run per size, each in a fresh process; driver memory 4g; "
                "scoring without reasons (the score benchmark prices them)"
            ),
            "wall_s": time.perf_counter() - started,
        },
    )
    report(result)
    return passed


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.bench_scale", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k, 500k and 2M rows: checks the benchmark works")
    parser.add_argument("--workspace", type=Path, help="reuse the scoring project at WORKSPACE/score (built if absent)")
    args = parser.parse_args()
    sys.exit(0 if main(quick=args.quick, workspace=args.workspace) else 1)
