"""Ingest throughput: `lakeforge.data.ingest.ingest` (read, validate, quarantine, commit) vs a plain CSV→Parquet copy.

One synthetic flights-like CSV file (1M rows by default, ``--rows`` for more; 15 columns, ~1% bad rows of four kinds:
out-of-range, not in a set, bad pattern, unparsable number) is generated once. Then,
runs alternating in the same Spark session (`local[2]`), lakeforge ingests it with a
dataset config shaped like conf/dataset/flights.yaml (row checks through pandera, a
unique key, bad rows to quarantine, two Delta commits), and the reference reads it
with the same declared schema and writes Parquet. The ratio is lakeforge time / copy
time: what validation and quarantine cost on top of Spark's own read and write.
Target: <= 2.0.
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

NAME = "ingest"
TARGET_RATIO = 2.0
TASKS = 8
BAD_EVERY = 100  # one row in 100 breaks one check
SCHEMA = (
    "flight_id LONG, year INT, month INT, day INT, dep_time INT, sched_dep_time INT, dep_delay DOUBLE, "
    "arr_delay DOUBLE, carrier STRING, flight INT, tailnum STRING, origin STRING, dest STRING, "
    "distance DOUBLE, time_hour TIMESTAMP"
)


def write_source_csv(spark: Any, rows: int, target: Path) -> int:
    """Write one CSV file (header + ``rows`` rows) at ``target``; return how many rows are bad."""
    from pyspark.sql import functions as F  # noqa: N812

    carriers = F.array(*[F.lit(c) for c in ("AA", "B6", "DL", "EV", "MQ", "UA", "US", "WN", "9E", "VX")])
    origins = F.array(F.lit("EWR"), F.lit("JFK"), F.lit("LGA"))
    bad = (F.col("id") % BAD_EVERY) == BAD_EVERY // 2
    kind = (F.col("id") / BAD_EVERY).cast("long") % 4  # which check a bad row breaks
    minute_of_day = (F.col("id") * 7) % 1440
    frame = spark.range(rows, numPartitions=TASKS).select(
        F.col("id").alias("flight_id"),
        F.lit(2013).alias("year"),
        (F.col("id") % 12 + 1).alias("month"),
        (F.col("id") % 28 + 1).alias("day"),
        F.when(bad & (kind == 0), F.lit(9999))
        .otherwise((minute_of_day / 60).cast("int") * 100 + minute_of_day % 60)
        .alias("dep_time"),
        ((minute_of_day / 60).cast("int") * 100).alias("sched_dep_time"),
        F.round(F.randn(seed=1) * 30 + 10, 1).alias("dep_delay"),
        F.round(F.randn(seed=2) * 35 + 5, 1).alias("arr_delay"),
        F.when(bad & (kind == 2), F.lit("bad carrier"))
        .otherwise(F.element_at(carriers, (F.col("id") % 10 + 1).cast("int")))
        .alias("carrier"),
        (F.col("id") % 9000 + 1).alias("flight"),
        F.concat(F.lit("N"), (F.col("id") % 9973).cast("string")).alias("tailnum"),
        F.when(bad & (kind == 1), F.lit("XYZ"))
        .otherwise(F.element_at(origins, (F.col("id") % 3 + 1).cast("int")))
        .alias("origin"),
        F.concat(F.lit("D"), F.lpad((F.col("id") % 97).cast("string"), 2, "0")).alias("dest"),
        F.when(bad & (kind == 3), F.lit("12x4"))
        .otherwise(F.round(F.rand(seed=3) * 4900 + 80, 0).cast("string"))
        .alias("distance"),
        (F.lit("2013-01-01 00:00:00").cast("timestamp") + F.make_interval(secs=F.col("id") % (365 * 86400))).alias(
            "time_hour"
        ),
    )
    parts = target.with_name(target.name + ".parts")
    frame.write.mode("overwrite").option("header", "false").csv(str(parts))
    # One file, as a raw drop arrives; Spark splits it for reading (128 MB splits) all the same.
    with target.open("wb") as out:
        out.write((",".join(frame.columns) + "\n").encode())
        for part in sorted(parts.glob("part-*")):
            with part.open("rb") as stream:
                shutil.copyfileobj(stream, out, 1 << 22)
    shutil.rmtree(parts)
    return len(range(BAD_EVERY // 2, rows, BAD_EVERY))


def dataset_config(source: Path) -> Any:
    """A dataset config shaped like conf/dataset/flights.yaml, reading ``source``."""
    from omegaconf import OmegaConf

    from lakeforge.config.schema_data import ColumnChecks, ColumnConfig, DatasetConfig, SourceConfig

    def col(name: str, type_: str, nullable: bool = False, **checks: Any) -> ColumnConfig:
        return ColumnConfig(name=name, type=type_, nullable=nullable, checks=ColumnChecks(**checks))

    columns = [
        col("flight_id", "long", ge=0),
        col("year", "int", ge=2013, le=2013),
        col("month", "int", ge=1, le=12),
        col("day", "int", ge=1, le=31),
        col("dep_time", "int", nullable=True, ge=0, le=2400),
        col("sched_dep_time", "int", ge=0, le=2359),
        col("dep_delay", "double", nullable=True, ge=-1440, le=2880),
        col("arr_delay", "double", nullable=True, ge=-1440, le=2880),
        col("carrier", "string", regex="^[A-Z0-9]{2}$"),
        col("flight", "int", ge=1, le=9999),
        col("tailnum", "string", nullable=True, regex="^N[A-Z0-9]{1,5}$"),
        col("origin", "string", isin=["EWR", "JFK", "LGA"]),
        col("dest", "string", regex="^[A-Z0-9]{3}$"),
        col("distance", "double", gt=0, le=10000),
        col("time_hour", "timestamp"),
    ]
    cfg = DatasetConfig(
        source=SourceConfig(format="csv", path=str(source), options={"header": "true", "nullValue": "NA"}),
        columns=columns,
        primary_key=["flight_id"],
        event_time="time_hour",
        max_bad_fraction=0.05,
    )
    return OmegaConf.structured(cfg)


def main(quick: bool = False, rows: int | None = None) -> bool:
    """Run the benchmark, record it, and return whether the ratio met the target."""
    from lakeforge.data.ingest import ingest
    from lakeforge.lake.lineage import Lineage

    # 1M rows keep `make bench` within its 30 minutes (5M rows took 13 of them).
    rows = rows or (200_000 if quick else 1_000_000)
    runs = 3
    spark = bench_spark(TASKS)
    root = Path(tempfile.mkdtemp(prefix="lakeforge-bench-ingest-"))
    try:
        source = root / "flights.csv"
        bad_rows = write_source_csv(spark, rows, source)
        dataset = dataset_config(source)
        counter = itertools.count()
        reports: list[Any] = []

        def lakeforge_ingest() -> None:
            lineage = Lineage(job_run_id=f"bench-{next(counter)}", step="bench")
            reports.append(ingest(spark, Catalog(root / "lake"), "flights", dataset, root, lineage))

        def plain_copy() -> None:
            frame = spark.read.option("header", "true").option("nullValue", "NA").schema(SCHEMA).csv(str(source))
            frame.write.mode("overwrite").parquet(str(root / "plain" / str(next(counter))))

        def clean() -> None:
            shutil.rmtree(root / "lake", ignore_errors=True)
            shutil.rmtree(root / "plain", ignore_errors=True)

        timings = time_alternating({"lakeforge": lakeforge_ingest, "copy": plain_copy}, runs=runs, between=clean)
        last = reports[-1]
        if (last.rows_in, last.rows_quarantined) != (rows, bad_rows):
            raise AssertionError(
                f"ingest counted {last.rows_in} in / {last.rows_quarantined} bad, expected {rows} / {bad_rows}"
            )
        ours, plain = median(timings["lakeforge"]), median(timings["copy"])
        ratio = ours / plain
        details = {
            "rows": rows,
            "bad_rows": bad_rows,
            "columns": len(dataset.columns),
            "csv_bytes": source.stat().st_size,
            "lakeforge_median_s": ours,
            "copy_median_s": plain,
            "lakeforge_rows_per_s": rows / ours,
            "copy_rows_per_s": rows / plain,
            "rows_accepted": last.rows_accepted,
            "rows_quarantined": last.rows_quarantined,
        }
        result = Result(
            name=NAME,
            figure=(
                f"{rows:,} rows ({bad_rows:,} bad): ingest {rows / ours:,.0f} rows/s ({ours:.1f} s) "
                f"vs CSV→Parquet {rows / plain:,.0f} rows/s ({plain:.1f} s)"
            ),
            target=f"ratio <= {TARGET_RATIO:.1f}",
            passed=ratio <= TARGET_RATIO,
            ratio=ratio,
            timings=timings,
            details=details,
        )
        report(result)
        return result.passed
    finally:
        spark.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.bench_ingest", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200k rows: checks the benchmark works")
    parser.add_argument("--rows", type=int, help="rows of the CSV file (default 1,000,000)")
    args = parser.parse_args()
    sys.exit(0 if main(quick=args.quick, rows=args.rows) else 1)
