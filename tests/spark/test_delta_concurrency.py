"""Concurrent writers: appends both land; conflicting overwrites fail cleanly and retryably."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable

from lakeforge.errors import CommitConflictError
from lakeforge.lake import delta_write
from lakeforge.lake.catalog import Catalog
from lakeforge.lake.delta import read_table, write_table
from tests.spark.helpers_delta import WriterProcess


def _frame(spark: Any, start: int, part: str, writer: str) -> Any:
    return spark.createDataFrame(
        [(i, part, writer) for i in range(start, start + 5)], "id long, part string, writer string"
    )


def _race(monkeypatch: pytest.MonkeyPatch, competing: Any) -> None:
    """Make another writer commit between this write's snapshot and its commit, once."""
    real = delta_write._commit_once
    fired: list[bool] = []

    def commit_after_rival(write: Any, snapshot: Any) -> tuple[int, int]:
        if not fired:
            fired.append(True)
            competing()
        return real(write, snapshot)

    monkeypatch.setattr(delta_write, "_commit_once", commit_after_rival)


@pytest.mark.parametrize("partition_exists", [True, False])
def test_conflicting_overwrite_of_a_partition_loses_cleanly(
    spark: Any, lake_root: Path, monkeypatch: pytest.MonkeyPatch, partition_exists: bool
) -> None:
    catalog = Catalog(lake_root)
    write_table(_frame(spark, 0, "a" if partition_exists else "z", "seed"), catalog, "raw.t", partition_by=["part"])
    seed_files = set(DeltaTable(catalog.table_uri("raw.t")).file_uris())
    rival = _frame(spark, 100, "a", "rival")
    rival_files: list[str] = []

    def rival_commit() -> None:
        monkeypatch.setattr(delta_write, "_commit_once", real)
        write_table(rival, catalog, "raw.t", mode="overwrite_partitions")
        rival_files.extend(DeltaTable(catalog.table_uri("raw.t")).file_uris())
        monkeypatch.setattr(delta_write, "_commit_once", patched)

    real = delta_write._commit_once
    _race(monkeypatch, rival_commit)
    patched = delta_write._commit_once
    with pytest.raises(
        CommitConflictError, match=r"table 'raw.t': another writer committed a conflicting change.*Retry"
    ):
        write_table(_frame(spark, 200, "a", "loser"), catalog, "raw.t", mode="overwrite_partitions")

    rows = read_table(spark, catalog, "raw.t").where("part = 'a'").collect()
    assert {r.writer for r in rows} == {"rival"} and len(rows) == 5
    # The loser's files were deleted; only committed files remain in the partition folder.
    on_disk = {str(p) for p in (Path(catalog.table_uri("raw.t")) / "part=a").iterdir()}
    assert on_disk <= set(rival_files) | seed_files


def test_overwrite_retries_when_the_race_touched_other_partitions(
    spark: Any, lake_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = Catalog(lake_root)
    write_table(_frame(spark, 0, "a", "seed"), catalog, "raw.t", partition_by=["part"])
    other = _frame(spark, 100, "b", "other")
    real = delta_write._commit_once

    def rival() -> None:
        monkeypatch.setattr(delta_write, "_commit_once", real)
        write_table(other, catalog, "raw.t")

    _race(monkeypatch, rival)
    result = write_table(_frame(spark, 200, "a", "mine"), catalog, "raw.t", mode="overwrite_partitions")
    table = read_table(spark, catalog, "raw.t")
    assert result.version == 2
    assert sorted((r.part, r.writer) for r in table.select("part", "writer").distinct().collect()) == [
        ("a", "mine"),
        ("b", "other"),
    ]


def test_two_spark_processes_append_and_overwrite_concurrently(spark: Any, lake_root: Path) -> None:
    catalog = Catalog(lake_root)
    write_table(_frame(spark, 0, "p0", "seed"), catalog, "raw.t", partition_by=["part"])
    writers = [WriterProcess(), WriterProcess()]
    try:
        for writer in writers:
            writer.wait_ready()
        go = lake_root / "go-append"
        for n, writer in enumerate(writers):
            writer.send(
                {
                    "lake": str(lake_root),
                    "table": "raw.t",
                    "start": 1000 * (n + 1),
                    "rows": 300,
                    "part": "p0",
                    "writer": f"w{n}",
                    "wait_for": str(go),
                }
            )
        go.touch()
        results = [w.result() for w in writers]
        assert all(r["ok"] for r in results), results
        assert read_table(spark, catalog, "raw.t").count() == 5 + 600

        go = lake_root / "go-overwrite"
        for n, writer in enumerate(writers):
            writer.send(
                {
                    "lake": str(lake_root),
                    "table": "raw.t",
                    "start": 5000 * (n + 1),
                    "rows": 300,
                    "part": "p0",
                    "writer": f"w{n}",
                    "mode": "overwrite_partitions",
                    "wait_for": str(go),
                }
            )
        go.touch()
        results = [w.result() for w in writers]
    finally:
        for writer in writers:
            writer.close()
    for result in results:
        assert result["ok"] or result["error"] == "CommitConflictError", result
    # Whoever won (or committed last), the partition holds exactly one writer's batch.
    table = read_table(spark, catalog, "raw.t")
    assert table.count() == 300 and table.select("writer").distinct().count() == 1
    assert DeltaTable(catalog.table_uri("raw.t")).to_pyarrow_table().num_rows == 300
