"""write_table: modes, idempotence, lineage, stats, layout, schema checks and vacuum."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from lakeforge.errors import SchemaMismatchError, UsageError
from lakeforge.lake.catalog import Catalog
from lakeforge.lake.delta import Lineage, read_table, table_history, table_info, vacuum, write_table
from tests.spark.helpers_delta import SAMPLE_SCHEMA, sample_rows


def _ids(spark: Any, catalog: Catalog, table: str) -> list[int]:
    return sorted(r.id for r in read_table(spark, catalog, table).select("id").collect())


@pytest.fixture
def sample_df(spark: Any) -> Any:
    return spark.createDataFrame(sample_rows(), SAMPLE_SCHEMA)


def test_first_write_creates_a_standard_partitioned_table(spark: Any, lake_root: Path, sample_df: Any) -> None:
    catalog = Catalog(lake_root)
    result = write_table(sample_df, catalog, "raw.events", partition_by=["event_date"])

    assert (result.version, result.mode, result.rows, result.files_removed, result.skipped) == (
        0,
        "append",
        12,
        0,
        False,
    )
    table_dir = Path(catalog.table_uri("raw.events"))
    assert sorted(p.name for p in table_dir.iterdir()) == [
        "_delta_log",
        "event_date=2024-03-01",
        "event_date=2024-03-02",
        "event_date=2024-03-03",
    ]  # no staging leftovers
    files = DeltaTable(str(table_dir)).file_uris()
    assert len(files) == result.files_added
    assert all(f.endswith(".snappy.parquet") for f in files)
    assert pq.ParquetFile(files[0]).metadata.row_group(0).column(0).compression == "SNAPPY"
    info = table_info(catalog, "raw.events")
    assert (info.rows, info.files, info.partition_by) == (12, result.files_added, ["event_date"])
    assert str(info.schema.field("event_ts").type) == "timestamp[us, tz=UTC]"


def test_stats_are_delta_json_from_the_footers(spark: Any, lake_root: Path, sample_df: Any) -> None:
    catalog = Catalog(lake_root)
    write_table(sample_df.coalesce(1), catalog, "raw.events")
    log = (Path(catalog.table_uri("raw.events")) / "_delta_log" / "00000000000000000000.json").read_text()
    adds = [json.loads(line)["add"] for line in log.splitlines() if '"add"' in line]
    stats = json.loads(adds[0]["stats"])

    assert stats["numRecords"] == 12
    assert stats["minValues"]["id"] == 0 and stats["maxValues"]["id"] == 11
    assert stats["minValues"]["event_date"] == "2024-03-01"
    # Millisecond precision, rounded outwards so data skipping never drops a row.
    assert stats["minValues"]["event_ts"] == "2024-03-01T08:30:15.123Z"
    assert stats["maxValues"]["event_ts"] == "2024-03-01T19:30:15.124Z"
    assert stats["nullCount"] == {
        "id": 0,
        "name": 2,
        "score": 3,
        "flag": 2,
        "event_date": 0,
        "event_ts": 1,
        "n": 1,
    }
    assert "flag" not in stats["minValues"]


def test_append_overwrite_and_overwrite_partitions(spark: Any, lake_root: Path, sample_df: Any) -> None:
    catalog = Catalog(lake_root)
    write_table(sample_df, catalog, "raw.events", partition_by=["event_date"])
    write_table(sample_df.where("id < 3"), catalog, "raw.events")
    assert len(_ids(spark, catalog, "raw.events")) == 15

    # Only 2024-03-01 is in the new data: the other dates are kept.
    new_day = spark.createDataFrame([(r[0] + 100, *r[1:]) for r in sample_rows()[:1]], SAMPLE_SCHEMA)
    result = write_table(new_day, catalog, "raw.events", mode="overwrite_partitions")
    kept = read_table(spark, catalog, "raw.events")
    assert result.files_removed > 0
    assert sorted(r.id for r in kept.where("event_date = '2024-03-01'").collect()) == [100]
    assert kept.where("event_date != '2024-03-01'").count() == 10

    result = write_table(sample_df.where("id >= 10"), catalog, "raw.events", mode="overwrite")
    assert _ids(spark, catalog, "raw.events") == [10, 11]
    assert result.version == 3


def test_empty_writes_commit_and_overwrite_empties(spark: Any, lake_root: Path, sample_df: Any) -> None:
    catalog = Catalog(lake_root)
    empty = sample_df.where("id < 0")
    first = write_table(empty, catalog, "raw.events", partition_by=["name"])
    assert (first.version, first.files_added, first.rows) == (0, 0, 0)
    assert read_table(spark, catalog, "raw.events").count() == 0

    write_table(sample_df, catalog, "raw.events")
    assert write_table(empty, catalog, "raw.events").version == 2
    assert read_table(spark, catalog, "raw.events").count() == 12
    wiped = write_table(empty, catalog, "raw.events", mode="overwrite")
    assert wiped.files_removed > 0 and read_table(spark, catalog, "raw.events").count() == 0


def test_app_transaction_makes_retries_idempotent(spark: Any, lake_root: Path, sample_df: Any) -> None:
    catalog = Catalog(lake_root)
    first = write_table(sample_df, catalog, "raw.events", app_id="ingest.events.2024-03-01", app_version=7)
    again = write_table(sample_df, catalog, "raw.events", app_id="ingest.events.2024-03-01", app_version=7)
    older = write_table(sample_df, catalog, "raw.events", app_id="ingest.events.2024-03-01", app_version=3)
    newer = write_table(sample_df, catalog, "raw.events", app_id="ingest.events.2024-03-01", app_version=8)

    assert not first.skipped and again.skipped and older.skipped and not newer.skipped
    assert (again.version, again.rows) == (0, 0)
    assert read_table(spark, catalog, "raw.events").count() == 24
    assert DeltaTable(catalog.table_uri("raw.events")).transaction_version("ingest.events.2024-03-01") == 8


def test_every_commit_carries_lineage(spark: Any, lake_root: Path, sample_df: Any) -> None:
    catalog = Catalog(lake_root)
    lineage = Lineage(
        "run-42",
        git_commit="abc123",
        git_dirty=False,
        config_hash="cfg9",
        inputs={"raw.flights": 4},
        step="features.build",
    )
    write_table(sample_df, catalog, "features.events", lineage=lineage, app_id="p.s.x", app_version=1)
    write_table(sample_df, catalog, "features.events", mode="overwrite")

    newest, oldest = table_history(catalog, "features.events")
    assert oldest.lineage == {
        "job_run_id": "run-42",
        "git_commit": "abc123",
        "git_dirty": False,
        "config_hash": "cfg9",
        "inputs": {"raw.flights": 4},
        "step": "features.build",
    }
    assert (oldest.mode, oldest.rows_added, oldest.app_id, oldest.app_version) == ("append", 12, "p.s.x", 1)
    assert (newest.version, newest.mode, newest.rows_removed, newest.lineage) == (1, "overwrite", 12, {})
    raw = DeltaTable(catalog.table_uri("features.events")).history(1)[0]
    assert raw["lakeforge.version"] and raw["lakeforge.write_id"]
    assert len(table_history(catalog, "features.events", limit=1)) == 1


def test_schema_mismatch_names_table_and_columns(spark: Any, lake_root: Path, sample_df: Any) -> None:
    catalog = Catalog(lake_root)
    write_table(sample_df, catalog, "raw.events", partition_by=["event_date"])
    changed = sample_df.drop("flag").withColumn("n", sample_df["n"].cast("string")).withColumn("extra", sample_df.id)

    with pytest.raises(
        SchemaMismatchError,
        match=r"table 'raw.events'.*'flag' missing.*'extra' not in the table"
        r".*'n' is string in the data but integer in the table",
    ):
        write_table(changed, catalog, "raw.events")
    with pytest.raises(
        SchemaMismatchError,
        match=r"'raw.events' is partitioned by \['event_date'\] but the write asks for \['name'\]",
    ):
        write_table(sample_df, catalog, "raw.events", partition_by=["name"])
    # Column order and nullability do not matter.
    reordered = sample_df.select(*reversed(sample_df.columns))
    assert write_table(reordered, catalog, "raw.events").rows == 12


def test_bad_arguments_are_usage_errors(spark: Any, lake_root: Path, sample_df: Any) -> None:
    catalog = Catalog(lake_root)
    with pytest.raises(UsageError, match="pass app_id and app_version together"):
        write_table(sample_df, catalog, "raw.events", app_id="a.b.c")
    with pytest.raises(UsageError, match="write mode 'upsert' is not one of"):
        write_table(sample_df, catalog, "raw.events", mode="upsert")  # type: ignore[arg-type]
    with pytest.raises(SchemaMismatchError, match="partition column 'score' has type double"):
        write_table(sample_df, catalog, "raw.events", partition_by=["score"])
    assert not catalog.exists("raw.events")


def test_vacuum_removes_unreferenced_old_files_only(spark: Any, lake_root: Path, sample_df: Any) -> None:
    catalog = Catalog(lake_root)
    write_table(sample_df, catalog, "raw.events", partition_by=["event_date"])
    write_table(sample_df, catalog, "raw.events", mode="overwrite")
    table_dir = Path(catalog.table_uri("raw.events"))
    # Leftovers of a killed write: a staging folder and a moved-but-uncommitted file.
    stale = table_dir / "_staging" / "dead" / "event_date=2024-03-01" / "part-0.parquet"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"x")
    orphan = table_dir / "event_date=2024-03-01" / "part-99999-dead.snappy.parquet"
    orphan.write_bytes(b"y")
    (table_dir / "NOTES.txt").write_text("not ours")
    two_days_ago = time.time() - 48 * 3600
    for path in table_dir.rglob("*"):
        if path.is_file() and "_delta_log" not in path.parts:
            os.utime(path, (two_days_ago, two_days_ago))
    current = set(DeltaTable(str(table_dir)).file_uris())
    v0_files = len(DeltaTable(str(table_dir), version=0).file_uris())

    assert vacuum(catalog, "raw.events", retention_hours=72)[0].files == []  # all inside retention
    # Version 0 was committed within the hour, so time travel to it must keep working.
    planned = vacuum(catalog, retention_hours=1, dry_run=True)[0]
    assert planned.dry_run and stale.exists()
    assert planned.files == [
        "_staging/dead/event_date=2024-03-01/part-0.parquet",
        "event_date=2024-03-01/part-99999-dead.snappy.parquet",
    ]
    assert read_table(spark, catalog, "raw.events", version=0).count() == 12
    done = vacuum(catalog, "raw.events", retention_hours=0)[0]

    assert set(planned.files) < set(done.files)
    assert len(done.files) == 2 + v0_files  # leftovers + the files only version 0 had
    assert not (table_dir / "_staging").exists() and (table_dir / "NOTES.txt").exists()
    assert all(Path(f).exists() for f in current)
    assert read_table(spark, catalog, "raw.events").count() == 12
    assert dt.datetime.now(dt.UTC) >= table_info(catalog, "raw.events").last_write  # type: ignore[operator]


def test_write_rows_commits_driver_rows_like_a_dataframe(spark: Any, lake_root: Path, sample_df: Any) -> None:
    """Rows written by pyarrow (write_rows) land as Spark's would: same schema, Hive partitions (a null,
    a value that needs escaping), readable by Spark and delta-rs, and appendable to a table Spark created."""
    from pyspark.sql.types import StructType

    from lakeforge.lake.delta import write_rows

    catalog = Catalog(lake_root)
    schema = StructType.fromDDL(SAMPLE_SCHEMA + ", tags array<string>, part string")
    names = schema.fieldNames()
    rows = [
        {**dict(zip(names, r, strict=False)), "tags": [f"t{r[0]}"], "part": ["a/b c", None][r[0] % 2]}
        for r in sample_rows()
    ]
    by_spark = spark.createDataFrame([tuple(row[n] for n in names) for row in rows], schema)
    write_table(by_spark, catalog, "raw.by_spark", partition_by=["event_date", "part"])
    result = write_rows(rows, schema, catalog, "raw.by_rows", partition_by=["event_date", "part"])
    assert (result.version, result.rows) == (0, 12)

    def content(table: str) -> list[tuple[Any, ...]]:
        frame = read_table(spark, catalog, table)
        return sorted(tuple(r) for r in frame.select(*names).collect())

    assert content("raw.by_rows") == content("raw.by_spark")
    assert (
        DeltaTable(catalog.table_uri("raw.by_rows")).schema() == DeltaTable(catalog.table_uri("raw.by_spark")).schema()
    )
    assert DeltaTable(catalog.table_uri("raw.by_rows")).to_pyarrow_table().num_rows == 12
    # Into the table Spark wrote: replacing one partition keeps the others.
    first_day = [r for r in rows if r["event_date"] == dt.date(2024, 3, 1)]
    write_rows(
        first_day[:1],
        schema,
        catalog,
        "raw.by_spark",
        mode="overwrite_partitions",
        replace_partitions=[{"event_date": dt.date(2024, 3, 1), "part": None}],
    )
    assert len(content("raw.by_spark")) == 12 - len(first_day) + 1
