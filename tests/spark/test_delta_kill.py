"""Atomicity: a writer SIGKILLed at a random moment never leaves a half-written table."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from deltalake import DeltaTable
from pyspark.sql import functions as F  # noqa: N812

from lakeforge.lake.catalog import Catalog
from lakeforge.lake.delta import read_table, write_table
from tests.spark.helpers_delta import WriterProcess

TRIALS = 6  # tests/chaos/kill_trials.py kills whole steps too
ROWS = 500
APP_ID = "killtest.write.p0"


def _batch(spark: Any, k: int) -> Any:
    """The same rows the writer process writes for batch ``k``."""
    return (
        spark.range(k * ROWS, (k + 1) * ROWS, numPartitions=3)
        .withColumn("part", F.lit("p0"))
        .withColumn("writer", F.lit("w"))
    )


def _command(lake: Path, k: int) -> dict[str, Any]:
    return {
        "lake": str(lake),
        "table": "raw.kill",
        "start": k * ROWS,
        "rows": ROWS,
        "files": 3,
        "app_id": APP_ID,
        "app_version": k,
    }


def test_sigkill_at_random_moments_keeps_the_table_consistent(spark: Any, lake_root: Path) -> None:
    catalog = Catalog(lake_root)
    uri = catalog.table_uri("raw.kill")
    seed = int(time.time())
    rng = random.Random(seed)
    # Writers start one trial ahead: Spark start-up (~5 s) overlaps the previous trial.
    upcoming = WriterProcess(slow_ms=60)
    upcoming.wait_ready()
    upcoming.send(_command(lake_root, 0))  # calibration: one full, unkilled write
    calibration = upcoming.result()
    assert calibration["ok"], calibration
    duration = calibration["seconds"]
    upcoming.close()
    upcoming = WriterProcess(slow_ms=60)
    outcomes = []
    for k in range(1, TRIALS + 1):
        writer, upcoming = upcoming, (WriterProcess(slow_ms=60) if k < TRIALS else None)
        writer.wait_ready()
        # Stratified: trial k's kill falls in the k-th slice of [0, 1.6 x write time], so the kills
        # spread over Spark's write, the file moves, the commit and after it (killed writers run
        # slower than the calibration: the next writer's JVM starts beside them).
        delay = duration * 1.6 * (k - 1 + rng.random()) / TRIALS
        writer.send(_command(lake_root, k))
        time.sleep(delay)
        writer.kill()

        # Readable, at a committed version: either before this batch or with all of it.
        rows = DeltaTable(uri).to_pyarrow_table().num_rows
        assert rows in (k * ROWS, (k + 1) * ROWS), f"seed {seed}, trial {k}: {rows} rows"
        assert read_table(spark, catalog, "raw.kill").count() == rows
        outcomes.append((round(delay, 2), rows == (k + 1) * ROWS))

        # The job's retry (same app transaction) lands the batch exactly once.
        retry = write_table(_batch(spark, k), catalog, "raw.kill", partition_by=["part"], app_id=APP_ID, app_version=k)
        assert retry.skipped == (rows == (k + 1) * ROWS)
        table = read_table(spark, catalog, "raw.kill")
        assert table.count() == table.select("id").distinct().count() == (k + 1) * ROWS
    print(f"seed {seed}, write {duration:.2f}s, (delay, committed before kill): {outcomes}")
