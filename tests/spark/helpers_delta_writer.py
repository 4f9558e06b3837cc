"""A standalone Spark writer process for the Delta kill and concurrency tests.

Starts Spark once (local[1]), prints ``ready``, then runs one JSON command per stdin line,
printing one JSON result line each. ``slow_ms`` widens the driver's move/commit phase so that
a kill at a random moment lands in it often.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from lakeforge.config.schema import SparkConfig
from lakeforge.errors import LakeforgeError
from lakeforge.lake import delta_write
from lakeforge.lake.catalog import Catalog
from lakeforge.lake.spark import get_spark


def _slow_down(slow_ms: int) -> None:
    """Sleep around every file move and after the commit, to stretch the driver-side phase."""
    real_replace = os.replace
    real_commit_once = delta_write._commit_once

    def slow_replace(src: Any, dst: Any) -> None:
        time.sleep(slow_ms / 1000)
        real_replace(src, dst)

    def slow_commit_once(write: Any, snapshot: Any) -> tuple[int, int]:
        time.sleep(slow_ms / 1000)
        result = real_commit_once(write, snapshot)
        time.sleep(slow_ms / 1000)
        return result

    delta_write.os.replace = slow_replace  # type: ignore[attr-defined]
    delta_write._commit_once = slow_commit_once  # type: ignore[assignment]


def run(command: dict[str, Any], spark: Any) -> dict[str, Any]:
    """Write rows [start, start + rows) tagged with the writer's name to the table."""
    from pyspark.sql import functions as F  # noqa: N812

    if command.get("wait_for"):
        while not Path(command["wait_for"]).exists():
            time.sleep(0.01)
    df = (
        spark.range(command["start"], command["start"] + command["rows"], numPartitions=command.get("files", 2))
        .withColumn("part", F.lit(command.get("part", "p0")))
        .withColumn("writer", F.lit(command.get("writer", "w")))
    )
    began = time.monotonic()
    try:
        result = delta_write.write_table(
            df,
            Catalog(command["lake"]),
            command["table"],
            mode=command.get("mode", "append"),
            partition_by=["part"],
            app_id=command.get("app_id"),
            app_version=command.get("app_version"),
        )
    except LakeforgeError as exc:
        return {"ok": False, "error": type(exc).__name__, "message": str(exc)}
    return {
        "ok": True,
        "version": result.version,
        "skipped": result.skipped,
        "seconds": time.monotonic() - began,
    }


def main() -> None:
    """Serve write commands from stdin until it closes."""
    slow_ms = int(os.environ.get("LAKEFORGE_TEST_SLOW_MS", "0"))
    if slow_ms:
        _slow_down(slow_ms)
    spark = get_spark(OmegaConf.structured(SparkConfig(master="local[1]", shuffle_partitions=1, progress_bar="false")))
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip():
            print(json.dumps(run(json.loads(line), spark)), flush=True)


if __name__ == "__main__":
    main()
