"""Write + commit throughput of `lakeforge.lake.delta.write_table` vs plain `df.write.parquet`.

The same cached DataFrame (synthetic flights, ~10 columns) is written both ways, runs
alternating, partitioned by a date column with 30 values and unpartitioned. The ratio
is lakeforge time / plain Parquet time: what staging, moving files, reading footers for
statistics and the delta-rs commit cost on top of Spark's own write. Target: <= 1.10.
"""

from __future__ import annotations

import itertools
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.harness import Result, bench_spark, median, report, time_alternating
from lakeforge.lake.catalog import Catalog

NAME = "lake_write"
TARGET_RATIO = 1.10
DATES = 30
WRITE_TASKS = 8


def make_flights(spark: Any, rows: int) -> Any:
    """A cached synthetic flights DataFrame: 10 columns, ``event_date`` takes 30 values."""
    from pyspark.sql import functions as F  # noqa: N812

    carriers = F.array(*[F.lit(c) for c in ("AA", "B6", "DL", "EV", "MQ", "UA", "US", "WN", "9E", "VX")])
    frame = spark.range(rows, numPartitions=WRITE_TASKS).select(
        F.col("id").alias("flight_id"),
        F.date_add(F.lit("2024-01-01").cast("date"), (F.col("id") % DATES).cast("int")).alias("event_date"),
        F.element_at(carriers, (F.col("id") % 10 + 1).cast("int")).alias("carrier"),
        F.concat(F.lit("O"), (F.col("id") % 3).cast("string")).alias("origin"),
        F.concat(F.lit("D"), (F.col("id") % 97).cast("string")).alias("dest"),
        (F.randn(seed=1) * 30 + 10).alias("dep_delay"),
        (F.randn(seed=2) * 35 + 5).alias("arr_delay"),
        (F.rand(seed=3) * 4900 + 80).cast("int").alias("distance"),
        (F.rand(seed=4) < 0.02).alias("cancelled"),
        (F.lit("2024-01-01 00:00:00").cast("timestamp") + F.make_interval(secs=F.col("id") % 86400)).alias(
            "scheduled_at"
        ),
    )
    frame = frame.cache()
    frame.count()
    return frame


def _bench_case(frame: Any, root: Path, partition_by: list[str], runs: int) -> dict[str, list[float]]:
    from lakeforge.lake.delta import write_table

    catalog = Catalog(root / "lake")
    counter = itertools.count()
    plain_root = root / "plain"

    def lakeforge_write() -> None:
        table = f"scratch.bench_{next(counter)}"
        write_table(frame, catalog, table, mode="overwrite", partition_by=partition_by)

    def plain_write() -> None:
        writer = frame.write.mode("overwrite")
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        writer.parquet(str(plain_root / str(next(counter))))

    def clean() -> None:
        shutil.rmtree(root / "lake", ignore_errors=True)
        shutil.rmtree(plain_root, ignore_errors=True)

    return time_alternating({"lakeforge": lakeforge_write, "parquet": plain_write}, runs=runs, between=clean)


def main(quick: bool = False) -> bool:
    """Run the benchmark, record it, and return whether both cases met the target."""
    rows = 300_000 if quick else 3_000_000
    runs = 3 if quick else 5
    spark = bench_spark(WRITE_TASKS)
    root = Path(tempfile.mkdtemp(prefix="lakeforge-bench-write-"))
    try:
        frame = make_flights(spark, rows)
        cases = {"partitioned": ["event_date"], "unpartitioned": []}
        timings: dict[str, list[float]] = {}
        details: dict[str, Any] = {"rows": rows, "columns": len(frame.columns), "partitions": DATES}
        ratios: dict[str, float] = {}
        for case, partition_by in cases.items():
            case_timings = _bench_case(frame, root / case, partition_by, runs)
            ours, plain = median(case_timings["lakeforge"]), median(case_timings["parquet"])
            ratios[case] = ours / plain
            timings.update({f"{case}.{name}": values for name, values in case_timings.items()})
            details[case] = {
                "lakeforge_median_s": ours,
                "parquet_median_s": plain,
                "ratio": ours / plain,
                "lakeforge_rows_per_s": rows / ours,
            }
        frame.unpersist()
        worst = max(ratios.values())
        figure = "; ".join(
            f"{case} {details[case]['lakeforge_median_s']:.2f} s vs "
            f"{details[case]['parquet_median_s']:.2f} s (x{ratios[case]:.2f})"
            for case in cases
        )
        result = Result(
            name=NAME,
            figure=f"{rows:,} rows: {figure}",
            target=f"ratio <= {TARGET_RATIO:.2f}",
            passed=worst <= TARGET_RATIO,
            ratio=worst,
            timings=timings,
            details=details,
        )
        report(result)
        return result.passed
    finally:
        spark.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(0 if main(quick="--quick" in sys.argv) else 1)
