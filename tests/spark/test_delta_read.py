"""read_table: time travel, typing of partition columns, empty tables, refused features, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import Schema
from deltalake.transaction import AddAction, create_table_with_add_actions

from lakeforge.errors import TableError, TableNotFoundError, UnsupportedTableFeatureError
from lakeforge.lake.catalog import Catalog
from lakeforge.lake.delta import arrow_dataset, read_table, write_table
from tests.spark.helpers_delta import SAMPLE_SCHEMA, sample_rows


def test_time_travel_and_partition_types(spark: Any, lake_root: Path) -> None:
    catalog = Catalog(lake_root)
    df = spark.createDataFrame(sample_rows(), SAMPLE_SCHEMA)
    write_table(df, catalog, "raw.events", partition_by=["event_date", "n"])
    write_table(df.where("id < 2"), catalog, "raw.events", mode="overwrite")

    latest = read_table(spark, catalog, "raw.events")
    assert latest.columns == df.columns and latest.schema.simpleString() == df.schema.simpleString()
    assert latest.count() == 2
    first = read_table(spark, catalog, "raw.events", version=0)
    assert sorted(map(tuple, first.collect())) == sorted(map(tuple, df.collect()))
    assert arrow_dataset(catalog, "raw.events", version=0).count_rows() == 12
    with pytest.raises(TableError, match=r"table 'raw.events' has no version 7: available versions are 0..1"):
        read_table(spark, catalog, "raw.events", version=7)


def test_unknown_and_empty_tables(spark: Any, lake_root: Path) -> None:
    catalog = Catalog(lake_root)
    with pytest.raises(TableNotFoundError, match=r"table 'raw.nope' does not exist"):
        read_table(spark, catalog, "raw.nope")
    write_table(spark.createDataFrame([], "a long, d date"), catalog, "raw.empty", partition_by=["d"])
    empty = read_table(spark, catalog, "raw.empty")
    assert empty.count() == 0 and empty.schema.simpleString() == "struct<a:bigint,d:date>"


def _foreign_table(uri: Path, protocol: dict[str, Any] | None = None, config: dict[str, str] | None = None) -> None:
    """A table not written by lakeforge: files in a flat layout, optionally with a newer protocol."""
    uri.mkdir(parents=True)
    pq.write_table(pa.table({"x": [1, 2]}), uri / "f1.parquet")
    add = AddAction("f1.parquet", (uri / "f1.parquet").stat().st_size, {"k": "7"}, 0, True, '{"numRecords":2}')
    schema = Schema.from_arrow(pa.schema([("x", pa.int64()), ("k", pa.int32())]))
    create_table_with_add_actions(str(uri), schema, [add], partition_by=["k"])
    if protocol or config:
        log = uri / "_delta_log" / "00000000000000000000.json"
        lines = [json.loads(line) for line in log.read_text().splitlines()]
        for action in lines:
            if protocol and "protocol" in action:
                action["protocol"] = protocol
            if config and "metaData" in action:
                action["metaData"]["configuration"] = config
                schema_json = json.loads(action["metaData"]["schemaString"])
                for number, field in enumerate(schema_json["fields"], start=1):
                    field["metadata"] = {
                        "delta.columnMapping.id": number,
                        "delta.columnMapping.physicalName": field["name"],
                    }
                action["metaData"]["schemaString"] = json.dumps(schema_json)
        log.write_text("\n".join(json.dumps(a) for a in lines) + "\n")


def test_non_hive_layout_reads_partition_values_from_the_log(spark: Any, lake_root: Path) -> None:
    catalog = Catalog(lake_root)
    _foreign_table(Path(catalog.table_uri("raw.foreign")))
    rows = read_table(spark, catalog, "raw.foreign").collect()
    assert [(r.x, r.k) for r in rows] == [(1, 7), (2, 7)]


@pytest.mark.parametrize(
    ("protocol", "config", "feature"),
    [
        (
            {
                "minReaderVersion": 3,
                "minWriterVersion": 7,
                "readerFeatures": ["deletionVectors"],
                "writerFeatures": ["deletionVectors"],
            },
            None,
            "deletionVectors",
        ),
        (
            {"minReaderVersion": 2, "minWriterVersion": 5},
            {"delta.columnMapping.mode": "name", "delta.columnMapping.maxColumnId": "2"},
            "columnMapping",
        ),
    ],
)
def test_unsupported_reader_features_are_refused(
    spark: Any, lake_root: Path, protocol: dict[str, Any], config: dict[str, str] | None, feature: str
) -> None:
    catalog = Catalog(lake_root)
    _foreign_table(Path(catalog.table_uri("raw.fancy")), protocol, config)
    with pytest.raises(
        UnsupportedTableFeatureError, match=rf"table 'raw.fancy' uses Delta reader feature\(s\) '{feature}'"
    ):
        read_table(spark, catalog, "raw.fancy")
