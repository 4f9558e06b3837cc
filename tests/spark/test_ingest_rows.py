"""Row-level outcomes of one ingest: every check type lands the row in quarantine with its reason."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from lakeforge.config.schema_data import DatasetConfig
from lakeforge.data import IngestReport, ingest
from lakeforge.errors import SchemaMismatchError
from lakeforge.lake.catalog import Catalog
from lakeforge.lake.delta import Lineage, read_table

HEADER = b"id,code,name,dep,ratio,score,origin,ts\n"
GOOD = b"%d,AA,Alpha,1200,0.5,3.0,EWR,2013-01-01T06:00:00Z\n"
# id -> (line, the reasons the row must carry)
BAD: dict[str, tuple[bytes, list[str]]] = {
    "ge": (b"10,AA,Alpha,-1,0.5,3.0,EWR,2013-01-02T06:00:00Z\n", ["dep:ge(0)"]),
    "le": (b"11,AA,Alpha,2401,0.5,3.0,EWR,2013-01-03T06:00:00Z\n", ["dep:le(2400)"]),
    "gt": (b"12,AA,Alpha,1200,0,3.0,EWR,2013-01-04T06:00:00Z\n", ["ratio:gt(0)"]),
    "lt": (b"13,AA,Alpha,1200,1,3.0,EWR,2013-01-05T06:00:00Z\n", ["ratio:lt(1)"]),
    "isin": (b"14,AA,Alpha,1200,0.5,3.0,XYZ,2013-01-06T06:00:00Z\n", ["origin:isin"]),
    "regex": (b"15,A_,Alpha,1200,0.5,3.0,EWR,2013-01-07T06:00:00Z\n", ["code:regex"]),
    "str_length": (b"16,AA,A,1200,0.5,3.0,EWR,2013-01-08T06:00:00Z\n", ["name:str_length(2..10)"]),
    "not_null": (b"17,,Alpha,1200,0.5,3.0,EWR,2013-01-09T06:00:00Z\n", ["code:not_null"]),
    "unparsable number": (b"18,AA,Alpha,12x0,0.5,3.0,EWR,2013-01-10T06:00:00Z\n", ["dep:type"]),
    "unparsable timestamp": (b"19,AA,Alpha,1200,0.5,3.0,EWR,yesterday\n", ["ts:type"]),
    "type on a not-null column": (
        b"20,AA,Alpha,1200,0.5,3.0,EWR,2013-01-11T06:00:00Z\n".replace(b"20,", b"2o,"),
        ["id:type"],
    ),
    "NaN": (b"21,AA,Alpha,1200,0.5,NaN,EWR,2013-01-12T06:00:00Z\n", ["score:finite"]),
    "infinity": (b"22,AA,Alpha,1200,0.5,Infinity,EWR,2013-01-13T06:00:00Z\n", ["score:finite"]),
    "too few fields": (b"23,AA,Alpha,1200\n", ["_row:malformed"]),
    "too many fields": (b"24,AA,Alpha,1200,0.5,3.0,EWR,2013-01-14T06:00:00Z,extra\n", ["_row:malformed"]),
    "broken quoting": (b'25,"AA,Alpha,1200,0.5,3.0,EWR,2013-01-15T06:00:00Z\n', ["_row:malformed"]),
    "invalid utf-8": (b"26,AA,Al\xff\xfeha,1200,0.5,3.0,EWR,2013-01-16T06:00:00Z\n", ["name:encoding"]),
    "duplicate key a": (b"27,AA,Alpha,1200,0.5,3.0,EWR,2013-01-17T06:00:00Z\n", ["_key:unique"]),
    "duplicate key b": (b"27,AA,Beta,1300,0.5,3.0,EWR,2013-01-17T06:00:00Z\n", ["_key:unique"]),
    "two failures": (b"28,aa,Alpha,9999,0.5,3.0,EWR,2013-01-18T06:00:00Z\n", ["dep:le(2400)", "code:regex"]),
    # Spark parses these, changing them: a Java double suffix, a year Parquet statistics can't hold.
    "number suffix": (b"29,AA,Alpha,1200,0.5,3d,EWR,2013-01-19T06:00:00Z\n", ["score:type"]),
    "year 10000": (b"30,AA,Alpha,1200,0.5,3.0,EWR,+10000-01-20T06:00:00Z\n", ["ts:range"]),
}
GOOD_ROWS = 30

COLUMNS: list[dict[str, Any]] = [
    {"name": "id", "type": "int", "nullable": False},
    {"name": "code", "type": "string", "nullable": False, "checks": {"regex": "^[A-Z]{2}$"}},
    {"name": "name", "type": "string", "checks": {"str_length": {"min": 2, "max": 10}}},
    {"name": "dep", "type": "int", "checks": {"ge": 0, "le": 2400}},
    {"name": "ratio", "type": "double", "checks": {"gt": 0, "lt": 1}},
    {"name": "score", "type": "double"},
    {"name": "origin", "type": "string", "checks": {"isin": ["EWR", "JFK", "LGA"]}},
    {"name": "ts", "type": "timestamp"},
]


def dataset_node(columns: list[dict[str, Any]], path: str = "in.csv", **extra: Any) -> Any:
    """A dataset config node built on the schema (as composition would), csv with a header by default."""
    source = {"format": "csv", "path": path, "options": {"header": "true"}}
    source.update(extra.pop("source", {}))
    return OmegaConf.merge(OmegaConf.structured(DatasetConfig), {"source": source, "columns": columns, **extra})


def ingest_node(spark: Any, root: Path, node: Any, name: str = "t", run_id: str = "run-1") -> IngestReport:
    """Ingest ``node`` from files under ``root`` into the lake ``root/lake``."""
    return ingest(spark, Catalog(root / "lake"), name, node, root, Lineage(run_id, step="ingest"))


@pytest.fixture(scope="module")
def outcome(
    spark: Any, tmp_path_factory: pytest.TempPathFactory
) -> tuple[IngestReport, dict[str, list[str]], Any, Path]:
    """One ingest of good rows plus every bad row above; quarantine reasons by id."""
    root = tmp_path_factory.mktemp("rows")
    body = b"".join(GOOD % (100 + i) for i in range(GOOD_ROWS))
    (root / "in.csv").write_bytes(HEADER + body + b"".join(line for line, _ in BAD.values()))
    node = dataset_node(COLUMNS, primary_key=["id"], max_bad_fraction=1.0)
    report = ingest_node(spark, root, node)
    catalog = Catalog(root / "lake")
    rows = read_table(spark, catalog, "quarantine.t").collect()
    by_id = {}
    for row in rows:
        key = row["id"] if row["id"] is not None else row["_raw_record"]
        by_id[str(key)] = list(row["_failed_checks"])
    return report, by_id, read_table(spark, catalog, "raw.t"), root


def _reasons(by_id: dict[str, list[str]], line: bytes) -> list[str]:
    first = line.split(b",")[0].decode()
    matches = [reasons for key, reasons in by_id.items() if key == first or key.startswith(first + ",")]
    assert matches, f"row {first} not quarantined: {by_id}"
    return matches[0]


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_row_is_quarantined_with_its_reason(outcome: Any, case: str) -> None:
    _, by_id, _, _ = outcome
    line, expected = BAD[case]
    reasons = _reasons(by_id, line)
    if "_row:malformed" in expected:
        # A malformed line's fields are shifted, so value checks may fail too.
        assert set(expected) <= set(reasons)
    else:
        assert sorted(reasons) == sorted(expected)


def test_rows_in_equal_accepted_plus_quarantined(outcome: Any) -> None:
    report, by_id, raw, _ = outcome
    assert report.rows_in == GOOD_ROWS + len(BAD)
    assert report.rows_accepted == GOOD_ROWS == raw.count()
    assert report.rows_quarantined == len(BAD)
    assert len(by_id) == len(BAD) - 1  # the two duplicate-key rows share an id
    assert report.rows_in == report.rows_accepted + report.rows_quarantined
    assert report.check_failures["_key:unique"] == 2
    assert report.check_failures["_row:malformed"] == 3


def test_without_a_unique_key_rows_checks_and_freshness_are_counted(spark: Any, tmp_path: Path) -> None:
    # No key: no duplicate-key check; rows in, bad rows, failures per check and the newest
    # accepted event are still all reported.
    body = b"".join(GOOD % 100 for _ in range(3)) + BAD["le"][0] + BAD["two failures"][0] + BAD["too few fields"][0]
    (tmp_path / "in.csv").write_bytes(HEADER + body)
    # The newest accepted event (2013-01-01) is fresh as of 2013-01-01; the bad rows are newer.
    node = dataset_node(COLUMNS, max_bad_fraction=1.0, checks={"freshness": {"column": "ts", "max_age": "1d"}})
    lineage = Lineage("r", step="ingest")
    report = ingest(spark, Catalog(tmp_path / "lake"), "t", node, tmp_path, lineage, run_date=date(2013, 1, 1))

    assert (report.rows_in, report.rows_accepted, report.rows_quarantined) == (6, 3, 3)
    assert report.check_failures["dep:le(2400)"] == 2
    assert report.check_failures["code:regex"] == 1
    assert report.check_failures["_row:malformed"] == 1
    assert "_key:unique" not in report.check_failures
    assert read_table(spark, Catalog(tmp_path / "lake"), "raw.t").count() == 3  # same id three times: kept


def test_accepted_rows_have_the_declared_types(outcome: Any) -> None:
    _, _, raw, _ = outcome
    assert [f"{f.name}:{f.dataType.simpleString()}" for f in raw.schema.fields] == [
        "id:int",
        "code:string",
        "name:string",
        "dep:int",
        "ratio:double",
        "score:double",
        "origin:string",
        "ts:timestamp",
    ]


def test_quarantine_keeps_raw_strings_and_run_id(spark: Any, outcome: Any) -> None:
    _, _, raw, _ = outcome
    report = outcome[0]
    quarantine = read_table(
        spark,
        Catalog(Path(raw.inputFiles()[0].split("/lake/")[0].removeprefix("file:")) / "lake"),
        report.quarantine_table,
    )
    types = {f.name: f.dataType.simpleString() for f in quarantine.schema.fields}
    assert types["dep"] == "string" and types["_failed_checks"] == "array<string>"
    assert types["_ingest_run_id"] == "string" and types["_ingested_at"] == "timestamp"
    row = quarantine.filter("dep = '12x0'").first()
    assert row is not None and row["_ingest_run_id"] == "run-1"


PART_COLUMNS: list[dict[str, Any]] = [
    {"name": "id", "type": "int", "nullable": False},
    {"name": "dep", "type": "int", "checks": {"ge": 0}},
    {"name": "ts", "type": "timestamp"},
]


def _monthly(root: Path, lines: list[str]) -> Any:
    (root / "in.csv").write_text("id,dep,ts\n" + "".join(f"{line}\n" for line in lines))
    derived = [{"name": "month", "expr": "month(ts)"}]
    return dataset_node(
        PART_COLUMNS, primary_key=["id"], derived_columns=derived, partition_by=["month"], max_bad_fraction=0.9
    )


def _table_rows(spark: Any, root: Path, table: str, *columns: str) -> list[tuple[Any, ...]]:
    frame = read_table(spark, Catalog(root / "lake"), table)
    return sorted(tuple(row) for row in frame.select(*columns).collect())


def test_reingest_replaces_only_the_partitions_its_source_covers(spark: Any, tmp_path: Path) -> None:
    jan = ["1,10,2013-01-05T06:00:00Z", "2,-1,2013-01-06T06:00:00Z", "3,30,2013-01-07T06:00:00Z"]
    ingest_node(spark, tmp_path, _monthly(tmp_path, jan), run_id="jan-1")
    feb = ["4,40,2013-02-01T06:00:00Z", "5,-5,2013-02-02T06:00:00Z", "6,oops,never"]
    ingest_node(spark, tmp_path, _monthly(tmp_path, feb), run_id="feb-1")
    # January again, corrected: row 2 now passes, row 3 is gone, row 7 is new and bad.
    jan_fixed = ["1,10,2013-01-05T06:00:00Z", "2,20,2013-01-06T06:00:00Z", "7,-7,2013-01-08T06:00:00Z"]
    report = ingest_node(spark, tmp_path, _monthly(tmp_path, jan_fixed), run_id="jan-2")

    assert (report.rows_in, report.rows_accepted, report.rows_quarantined) == (3, 2, 1)
    assert _table_rows(spark, tmp_path, "raw.t", "id", "month") == [(1, 1), (2, 1), (4, 2)]
    quarantined = _table_rows(spark, tmp_path, "quarantine.t", "id", "_raw_partition", "_ingest_run_id")
    assert quarantined == [("5", "month=2", "feb-1"), ("6", "month=null", "feb-1"), ("7", "month=1", "jan-2")]


def test_reingest_of_an_unchanged_source_is_a_no_op_on_the_rows(spark: Any, tmp_path: Path) -> None:
    rows = ["1,10,2013-01-05T06:00:00Z", "2,-1,2013-03-06T06:00:00Z"]
    first = ingest_node(spark, tmp_path, _monthly(tmp_path, rows), run_id="a")
    before = _table_rows(spark, tmp_path, "raw.t", "id", "dep", "month")
    second = ingest_node(spark, tmp_path, _monthly(tmp_path, rows), run_id="b")

    assert _table_rows(spark, tmp_path, "raw.t", "id", "dep", "month") == before == [(1, 10, 1)]
    assert _table_rows(spark, tmp_path, "quarantine.t", "id", "_ingest_run_id") == [("2", "b")]
    assert second.raw_version == first.raw_version + 1


def test_a_changed_partitioning_stops_before_writing(spark: Any, tmp_path: Path) -> None:
    rows = ["1,10,2013-01-05T06:00:00Z"]
    node = _monthly(tmp_path, rows)
    flat = OmegaConf.merge(node, {"partition_by": []})
    ingest_node(spark, tmp_path, flat, run_id="flat")
    raw_before = read_table(spark, Catalog(tmp_path / "lake"), "raw.t").count()
    with pytest.raises(
        SchemaMismatchError, match=r"table 'raw.t' is partitioned by nothing, but dataset.t.partition_by"
    ):
        ingest_node(spark, tmp_path, node, run_id="monthly")
    assert read_table(spark, Catalog(tmp_path / "lake"), "raw.t").count() == raw_before
