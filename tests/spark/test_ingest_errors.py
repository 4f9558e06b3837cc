"""Ingest failures: each bad input gives a clear message and writes nothing."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from lakeforge.data import ingest
from lakeforge.errors import DataValidationError
from lakeforge.lake.catalog import Catalog
from lakeforge.lake.delta import Lineage, write_table
from tests.spark.test_ingest_rows import dataset_node, ingest_node

COLS: list[dict[str, Any]] = [
    {"name": "code", "type": "string", "nullable": False, "checks": {"regex": "^[A-Z]{2}$"}},
    {"name": "n", "type": "int", "checks": {"ge": 0}},
    {"name": "ts", "type": "timestamp"},
]
CSV = "code,n,ts\nAA,1,2013-01-01T00:00:00Z\nBB,2,2013-01-02T00:00:00Z\nCC,3,2013-01-03T00:00:00Z\n"


def _write(root: Path, text: str | bytes, name: str = "in.csv") -> None:
    data = text.encode() if isinstance(text, str) else text
    (root / name).write_bytes(data)


def _nothing_written(root: Path) -> bool:
    catalog = Catalog(root / "lake")
    return not catalog.exists("raw.t") and not catalog.exists("quarantine.t")


def _fails(spark: Any, root: Path, node: Any, pattern: str) -> str:
    with pytest.raises(DataValidationError, match=pattern) as info:
        ingest_node(spark, root, node)
    assert _nothing_written(root)
    return str(info.value)


def test_missing_file_names_the_path_and_dvc(spark: Any, tmp_path: Path) -> None:
    message = _fails(spark, tmp_path, dataset_node(COLS, path="data/raw/t.csv"), r"source 'data/raw/t.csv' not found")
    assert str(tmp_path / "data/raw/t.csv") in message and "`dvc pull`" in message and "`dvc repro`" in message


def test_zero_byte_file_is_empty(spark: Any, tmp_path: Path) -> None:
    _write(tmp_path, b"")
    _fails(spark, tmp_path, dataset_node(COLS), r"dataset 't': source '.*in.csv' is empty")


def test_header_only_file_has_no_rows(spark: Any, tmp_path: Path) -> None:
    _write(tmp_path, "code,n,ts\n")
    _fails(spark, tmp_path, dataset_node(COLS), r"dataset 't': the source has no rows; nothing written")


def test_missing_declared_column(spark: Any, tmp_path: Path) -> None:
    _write(tmp_path, "code,num,ts\nAA,1,2013-01-01\n")
    _fails(
        spark,
        tmp_path,
        dataset_node(COLS),
        r"declared column\(s\) 'n' missing from the source; source columns: code, num, ts",
    )


def test_new_column_with_error_policy(spark: Any, tmp_path: Path) -> None:
    _write(tmp_path, "code,n,ts,extra\nAA,1,2013-01-01,x\n")
    _fails(spark, tmp_path, dataset_node(COLS), r"undeclared column\(s\) 'extra'.*new_columns: ignore")


def test_new_column_with_ignore_policy_is_dropped(spark: Any, tmp_path: Path) -> None:
    _write(tmp_path, "extra,code,n,ts\nx,AA,1,2013-01-01\ny,BB,2,2013-01-02\n")
    report = ingest_node(spark, tmp_path, dataset_node(COLS, new_columns="ignore"))
    assert (report.rows_in, report.rows_accepted) == (2, 2)
    raw = Catalog(tmp_path / "lake")
    from lakeforge.lake.delta import read_table

    assert read_table(spark, raw, "raw.t").columns == ["code", "n", "ts"]


def test_source_name_renames_the_column(spark: Any, tmp_path: Path) -> None:
    _write(tmp_path, "CODE,n,ts\nAA,1,2013-01-01\n")
    cols = [{**COLS[0], "source_name": "CODE"}, *COLS[1:]]
    report = ingest_node(spark, tmp_path, dataset_node(cols))
    assert report.rows_accepted == 1


def test_above_max_bad_fraction_names_top_checks_and_examples(spark: Any, tmp_path: Path) -> None:
    rows = [f"X{i},-{i},2013-01-01" for i in range(1, 8)] + ["AA,oops,2013-01-01"] * 2 + ["AA,1,2013-01-01"] * 3
    _write(tmp_path, "code,n,ts\n" + "\n".join(rows) + "\n")
    message = _fails(
        spark,
        tmp_path,
        dataset_node(COLS, max_bad_fraction=0.5),
        r"9 of 12 rows \(75.00%\) failed checks, above max_bad_fraction 0.5; nothing written",
    )
    assert "Top failing checks: code:regex (7), n:ge(0) (7), n:type (2)" in message
    examples = [line for line in message.splitlines() if line.startswith("  [")]
    assert len(examples) == 5
    assert any("code='X" in line for line in examples)


def test_quarantine_off_fails_on_a_single_bad_row(spark: Any, tmp_path: Path) -> None:
    _write(tmp_path, CSV + "ZZZ,1,2013-01-01\n")
    _fails(
        spark,
        tmp_path,
        dataset_node(COLS, quarantine=False),
        r"1 of 4 rows \(25.00%\) failed checks, above max_bad_fraction 0",
    )


def test_row_count_below_minimum(spark: Any, tmp_path: Path) -> None:
    _write(tmp_path, CSV)
    node = dataset_node(COLS, checks={"row_count": {"min": 10}})
    _fails(
        spark,
        tmp_path,
        node,
        re.escape("row_count check failed: 3 rows, fewer than the minimum 10 (dataset.t.checks.row_count.min)"),
    )


def test_row_count_above_maximum(spark: Any, tmp_path: Path) -> None:
    _write(tmp_path, CSV)
    node = dataset_node(COLS, checks={"row_count": {"max": 2}})
    _fails(spark, tmp_path, node, r"row_count check failed: 3 rows, more than the maximum 2")


def test_freshness_stale_against_now(spark: Any, tmp_path: Path) -> None:
    _write(tmp_path, CSV)
    node = dataset_node(COLS, checks={"freshness": {"column": "ts", "max_age": "2d"}})
    _fails(
        spark, tmp_path, node, r"freshness check failed: newest 'ts' is 2013-01-03T00:00:00\+00:00, more than 2d before"
    )


def test_freshness_relative_to_run_date(spark: Any, tmp_path: Path) -> None:
    _write(tmp_path, CSV)
    node = dataset_node(COLS, checks={"freshness": {"column": "ts", "max_age": "2d"}})
    report = ingest(spark, Catalog(tmp_path / "lake"), "t", node, tmp_path, Lineage("r"), run_date=date(2013, 1, 3))
    assert report.rows_accepted == 3
    with pytest.raises(DataValidationError, match=r"more than 2d before 2013-01-10T00:00:00\+00:00"):
        ingest(spark, Catalog(tmp_path / "lake"), "t", node, tmp_path, Lineage("r"), run_date=date(2013, 1, 9))


def test_json_malformed_line_and_unparsable_number(spark: Any, tmp_path: Path) -> None:
    lines = [
        '{"code": "AA", "n": 1, "ts": "2013-01-01"}',
        '{"code": "BB", "n": "two"}',
        '{"code": "CC", "n": 3',
        "not json",
    ]
    _write(tmp_path, "\n".join(lines) + "\n", "in.json")
    node = dataset_node(COLS, path="in.json", source={"format": "json", "options": {}}, max_bad_fraction=1.0)
    report = ingest_node(spark, tmp_path, node)
    assert (report.rows_in, report.rows_accepted) == (4, 1)
    assert report.check_failures["_row:malformed"] == 2 and report.check_failures["n:type"] == 1


def _parquet(spark: Any, root: Path, ddl: str, rows: list[tuple[Any, ...]]) -> None:
    spark.createDataFrame(rows, ddl).write.mode("overwrite").parquet(str(root / "in.parquet"))


def test_parquet_unexpected_type(spark: Any, tmp_path: Path) -> None:
    _parquet(spark, tmp_path, "code string, n string, ts timestamp", [("AA", "1", None)])
    node = dataset_node(COLS, path="in.parquet", source={"format": "parquet", "options": {}})
    _fails(spark, tmp_path, node, re.escape("dataset 't': column 'n' has type string in the source, declared int"))


def test_parquet_missing_column(spark: Any, tmp_path: Path) -> None:
    _parquet(spark, tmp_path, "code string, ts timestamp", [("AA", None)])
    node = dataset_node(COLS, path="in.parquet", source={"format": "parquet", "options": {}})
    _fails(spark, tmp_path, node, r"declared column\(s\) 'n' missing from the source")


def test_parquet_new_column_error_vs_ignore(spark: Any, tmp_path: Path) -> None:
    _parquet(spark, tmp_path, "code string, n int, ts timestamp, wing int", [("AA", 1, None, 2), ("BB", -1, None, 3)])
    node = dataset_node(COLS, path="in.parquet", source={"format": "parquet", "options": {}})
    _fails(spark, tmp_path, node, r"undeclared column\(s\) 'wing'")
    node.new_columns = "ignore"
    node.max_bad_fraction = 0.5
    report = ingest_node(spark, tmp_path, node)
    assert (report.rows_accepted, report.check_failures) == (1, {"n:ge(0)": 1})


def test_delta_source(spark: Any, tmp_path: Path) -> None:
    df = spark.createDataFrame([("AA", 1, None), ("BB", 2, None)], "code string, n int, ts timestamp")
    write_table(df, Catalog(tmp_path / "src"), "raw.upstream", mode="overwrite")
    node = dataset_node(COLS, path="src/raw/upstream", source={"format": "delta", "options": {}})
    assert ingest_node(spark, tmp_path, node).rows_accepted == 2


# The newest row fails a check (n < 0): freshness must judge the newest *accepted* row, 2013-01-02.
CSV_NEWEST_BAD = CSV.replace("CC,3,2013-01-03", "CC,-3,2013-01-03")


def test_freshness_looks_at_accepted_rows_only(spark: Any, tmp_path: Path) -> None:
    # No unique key: only the row checks decide what is accepted.
    _write(tmp_path, CSV_NEWEST_BAD)
    node = dataset_node(COLS, max_bad_fraction=0.5, checks={"freshness": {"column": "ts", "max_age": "1d"}})
    with pytest.raises(DataValidationError, match=r"newest 'ts' is 2013-01-02T00:00:00\+00:00, more than 1d before"):
        ingest(spark, Catalog(tmp_path / "lake"), "t", node, tmp_path, Lineage("r"), run_date=date(2013, 1, 3))
    assert _nothing_written(tmp_path)


def test_freshness_ignores_rows_with_a_duplicate_key(spark: Any, tmp_path: Path) -> None:
    # The newest row shares its key with another: both are flagged _key:unique, so not accepted.
    _write(tmp_path, CSV.replace("CC,3,2013-01-03", "BB,3,2013-01-03"))
    node = dataset_node(
        COLS, primary_key=["code"], max_bad_fraction=1.0, checks={"freshness": {"column": "ts", "max_age": "1d"}}
    )
    with pytest.raises(DataValidationError, match=r"newest 'ts' is 2013-01-01T00:00:00\+00:00, more than 1d before"):
        ingest(spark, Catalog(tmp_path / "lake"), "t", node, tmp_path, Lineage("r"), run_date=date(2013, 1, 2))
    assert _nothing_written(tmp_path)
