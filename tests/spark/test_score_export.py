"""Exports of batch predictions: parquet/csv folders per run date and PostgreSQL tables, replaced per run date."""

from __future__ import annotations

import csv
import json
import logging
import os
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from lakeforge.config.schema_ml import ExportConfig
from lakeforge.errors import ConfigError, TableError
from lakeforge.scoring.export import ExportResult, export_predictions
from tests.spark.postgres import INSTALL_HINT, JDBC_JAR, PostgresServer, postgres_server  # noqa: F401

DAY1, DAY2 = date(2013, 10, 15), date(2013, 10, 16)
SCHEMA = (
    "carrier string, flight int, origin string, time_hour timestamp, prediction int, score double, "
    "reasons array<struct<feature:string, contribution:double>>, reasons_method string, model_name string, "
    "model_alias string, model_version int, model_run_id string, served boolean, feature_table string, "
    "feature_table_version long, scored_at timestamp, job_run_id string, run_date date"
)
ENV_USER, ENV_PASSWORD = "LAKEFORGE_TEST_EXPORT_USER", "LAKEFORGE_TEST_EXPORT_PASSWORD"
WRONG_PASSWORD = "not-the-Pw-42"

needs_jdbc = pytest.mark.skipif(not JDBC_JAR.is_file(), reason=f"no PostgreSQL JDBC jar at {JDBC_JAR}: {INSTALL_HINT}")


def _row(carrier: str, flight: int, run_date: date, *, alias: str = "champion", version: int = 1) -> tuple[Any, ...]:
    served = alias == "champion"
    score = round(0.1 * (flight % 10) + (0.05 if served else 0.0), 3)
    reasons = [("dep_hour", 0.25), ("carrier_delay_rate", -0.125)] if flight % 2 else []
    hour = datetime(run_date.year, run_date.month, run_date.day, 8 + flight % 10)
    scored_at = datetime(2013, 10, 17, 2, 0, 0)
    return (
        carrier, flight, "JFK", hour, int(score >= 0.5), score, reasons, "path", "flight_delay", alias, version,
        f"run-{version}", served, "features.flight_delay", 7, scored_at, "job-1", run_date,
    )  # fmt: skip


@pytest.fixture(scope="module")
def predictions(spark: Any) -> Any:
    """Two run dates: 2 + 1 served rows, and a shadow (challenger) row on each date."""
    rows = [
        _row("AA", 101, DAY1),
        _row("B6", 202, DAY1),
        _row("AA", 101, DAY1, alias="challenger", version=2),
        _row("DL", 303, DAY2),
        _row("DL", 303, DAY2, alias="challenger", version=2),
    ]
    return spark.createDataFrame(rows, SCHEMA)


def _export(spark: Any, frame: Any, tmp_path: Path, dates: list[date], **export: Any) -> ExportResult:
    [result] = export_predictions(spark, frame, [export], dates, tmp_path)
    return result


def _sorted_rows(frame: Any, columns: list[str]) -> list[dict[str, Any]]:
    rows = [r.asDict(recursive=True) for r in frame.select(*columns).collect()]
    return sorted(rows, key=lambda r: (r["run_date"], r["carrier"], r["flight"], r.get("model_alias") or ""))


def _data_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith((".", "_")))


def test_parquet_export_is_a_folder_per_run_date_that_reads_back_equal(
    spark: Any, predictions: Any, tmp_path: Path
) -> None:
    result = _export(spark, predictions, tmp_path, [DAY2, DAY1], format="parquet", path="exports/p", served_only=False)

    root = tmp_path / "exports" / "p"
    assert result == ExportResult("parquet", str(root), 5, (DAY1, DAY2))
    assert sorted(p.name for p in root.iterdir()) == ["run_date=2013-10-15", "run_date=2013-10-16"]
    for folder in root.iterdir():
        files = _data_files(folder)
        assert files and all(f.startswith("part-") and f.endswith(".parquet") for f in files)
    back = spark.read.parquet(str(root))
    assert back.schema["reasons"].dataType == predictions.schema["reasons"].dataType
    assert _sorted_rows(back, predictions.columns) == _sorted_rows(predictions, predictions.columns)


def test_reexport_replaces_only_its_run_date_and_an_empty_date_empties_its_folder(
    spark: Any, predictions: Any, tmp_path: Path
) -> None:
    root = tmp_path / "p"
    _export(spark, predictions, tmp_path, [DAY1, DAY2], format="parquet", path=str(root))
    day2_files = _data_files(root / "run_date=2013-10-16")

    rescored = spark.createDataFrame([_row("UA", 404, DAY1, version=3)], SCHEMA)
    for _ in range(2):  # twice: still exactly one copy
        result = _export(spark, rescored, tmp_path, [DAY1], format="parquet", path=str(root))
        assert result.rows == 1
    back = spark.read.parquet(str(root))
    assert [(r.run_date, r.carrier, r.model_version) for r in back.orderBy("run_date").collect()] == [
        (DAY1, "UA", 3),
        (DAY2, "DL", 1),
    ]
    assert _data_files(root / "run_date=2013-10-16") == day2_files  # untouched

    result = _export(spark, rescored, tmp_path, [DAY2], format="parquet", path=str(root))
    assert result.rows == 0
    assert (root / "run_date=2013-10-16").is_dir() and _data_files(root / "run_date=2013-10-16") == []
    assert sorted(p.name for p in root.iterdir()) == ["run_date=2013-10-15", "run_date=2013-10-16"]  # no _staging


def test_a_failed_write_or_swap_leaves_every_run_date_complete(
    spark: Any, predictions: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lakeforge.scoring.export as export_module

    root = tmp_path / "p"
    _export(spark, predictions, tmp_path, [DAY1, DAY2], format="parquet", path="p")
    before = {folder.name: _data_files(folder) for folder in root.iterdir()}

    with pytest.raises(TableError, match=r"exports\[0\] \(parquet\) to '.*/p': Spark could not write the export: "):
        _export(spark, predictions, tmp_path, [DAY1], format="parquet", path="p", options={"compression": "nope"})
    assert {folder.name: _data_files(folder) for folder in root.iterdir()} == before  # and no _staging

    def exchange_fails(a: Any, b: Any) -> bool:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(export_module, "_exchange", exchange_fails)  # the one-step swap (Linux)
    with pytest.raises(TableError, match=r"cannot replace '.*run_date=2013-10-15': Permission denied\. .*previous"):
        _export(spark, predictions, tmp_path, [DAY1], format="parquet", path="p")
    assert {folder.name: _data_files(folder) for folder in root.iterdir()} == before

    # Where the one-step swap is not supported: two renames, the old folder put back on failure.
    monkeypatch.setattr(export_module, "_exchange", lambda a, b: False)
    real_rename = os.rename

    def rename_in_fails(src: Any, dst: Any) -> None:
        if Path(src).name.startswith("run_date="):  # the new folder, never the old one going aside or back
            raise PermissionError(13, "Permission denied")
        real_rename(src, dst)

    monkeypatch.setattr(export_module.os, "rename", rename_in_fails)
    with pytest.raises(TableError, match=r"cannot replace '.*run_date=2013-10-15': Permission denied\. .*previous"):
        _export(spark, predictions, tmp_path, [DAY1], format="parquet", path="p")
    assert {folder.name: _data_files(folder) for folder in root.iterdir()} == before


def test_csv_export_has_a_header_and_reasons_as_json_text(spark: Any, predictions: Any, tmp_path: Path) -> None:
    result = _export(spark, predictions, tmp_path, [DAY1, DAY2], format="csv", path="c")

    assert result.rows == 3  # served rows only (the default)
    rows = []
    for file in sorted((tmp_path / "c").glob("run_date=*/part-*.csv")):
        with file.open(newline="") as handle:  # Python's csv: RFC 4180 quoting must round-trip
            reader = csv.DictReader(handle)
            assert reader.fieldnames == [c for c in predictions.columns if c != "run_date"]
            rows += [{**r, "run_date": file.parent.name.split("=")[1]} for r in reader]
    by_flight = {(r["run_date"], r["flight"]): r for r in rows}
    assert set(by_flight) == {("2013-10-15", "101"), ("2013-10-15", "202"), ("2013-10-16", "303")}
    assert json.loads(by_flight["2013-10-15", "101"]["reasons"]) == [
        {"feature": "dep_hour", "contribution": 0.25},
        {"feature": "carrier_delay_rate", "contribution": -0.125},
    ]
    assert json.loads(by_flight["2013-10-15", "202"]["reasons"]) == []
    assert {r["served"] for r in rows} == {"true"}


def test_served_only_drops_shadow_rows_and_columns_selects(spark: Any, predictions: Any, tmp_path: Path) -> None:
    export = OmegaConf.structured(ExportConfig(format="parquet", path="s", columns=["flight", "carrier", "score"]))
    [result] = export_predictions(spark, predictions, [export], [DAY1, DAY2], tmp_path)

    assert result.rows == 3
    back = spark.read.parquet(str(tmp_path / "s"))
    assert back.columns == ["flight", "carrier", "score", "run_date"]  # run_date: the folder, always kept
    served = predictions.where("served").select(*back.columns)
    assert _sorted_rows(back, back.columns) == _sorted_rows(served, back.columns)


@pytest.mark.parametrize(
    ("export", "message"),
    [
        (
            {"format": "parquet", "path": "x", "columns": ["carrier", "scor"]},
            r"^model\.scoring\.exports\[0\]\.columns\[1\]: 'scor' is not a column of the predictions "
            r"\(did you mean 'score', 'scored_at'\?\) \(available: carrier, flight, origin, time_hour, .*, run_date\)$",
        ),
        (
            {"format": "parqet", "path": "x"},
            r"^model\.scoring\.exports\[0\]\.format: 'parqet' is not an export format \(did you mean 'parquet'\?\) "
            r"\(allowed: parquet, csv, jdbc\)$",
        ),
        ({"format": "csv"}, r"^model\.scoring\.exports\[0\]\.path: a csv export needs 'path'$"),
        ({"format": "jdbc", "url": "jdbc:postgresql://h/db"}, r"exports\[0\]\.table: a jdbc export needs 'table'$"),
        ({"format": "parquet", "path": "s3://bucket/p"}, r"exports\[0\]\.path: 's3://bucket/p' is a URI"),
        (
            {"format": "jdbc", "url": "jdbc:postgresql://h/db", "table": "t", "password": "${oc.env:LF_TEST_UNSET_PW}"},
            r"^model\.scoring\.exports\[0\]\.password: cannot be resolved: "
            r"Environment variable 'LF_TEST_UNSET_PW' not found; set that variable in the job's environment$",
        ),
    ],
)
def test_bad_export_configs_fail_before_writing(
    spark: Any, predictions: Any, tmp_path: Path, export: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        export_predictions(spark, predictions, OmegaConf.create([export]), [DAY1], tmp_path)
    assert list(tmp_path.iterdir()) == []


# ---- jdbc ------------------------------------------------------------------------------------


@pytest.fixture
def pg(postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> PostgresServer:  # noqa: F811
    """The test database; credentials reach the export config only through the environment."""
    monkeypatch.setenv(ENV_USER, postgres_server.user)
    monkeypatch.setenv(ENV_PASSWORD, postgres_server.password)
    return postgres_server


def _jdbc_export(server: PostgresServer, table: str, **extra: Any) -> Any:
    export = ExportConfig(
        format="jdbc",
        url=server.jdbc_url,
        table=table,
        user=f"${{oc.env:{ENV_USER}}}",
        password=f"${{oc.env:{ENV_PASSWORD}}}",
        options={"driver": "org.postgresql.Driver"},
        **extra,
    )
    return OmegaConf.structured(export)


def _counts(server: PostgresServer, table: str) -> str:
    return server.psql(f"SELECT run_date, count(*) FROM {table} GROUP BY run_date ORDER BY run_date")


def _staging_tables(server: PostgresServer) -> str:
    return server.psql("SELECT table_name FROM information_schema.tables WHERE table_name LIKE '%lf_staging%'")


@needs_jdbc
def test_jdbc_export_replaces_exactly_the_run_dates_rows(
    spark: Any, predictions: Any, pg: PostgresServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    exports = [_jdbc_export(pg, "public.flight_delay_predictions", served_only=False)]
    with caplog.at_level(logging.INFO, logger="lakeforge.scoring.export"):
        [result] = export_predictions(spark, predictions, exports, [DAY1, DAY2], tmp_path)

    assert result.target == f"{pg.jdbc_url} table public.flight_delay_predictions"
    assert result.rows == 5
    assert _counts(pg, "flight_delay_predictions") == "2013-10-15|3\n2013-10-16|2\n"
    reasons = pg.psql("SELECT reasons FROM flight_delay_predictions WHERE flight = 101 AND model_version = 1")
    assert json.loads(reasons) == [
        {"feature": "dep_hour", "contribution": 0.25},
        {"feature": "carrier_delay_rate", "contribution": -0.125},
    ]
    [line] = [r.getMessage() for r in caplog.records if r.name == "lakeforge.scoring.export"]
    assert "5 rows" in line and result.target in line and pg.password not in line

    rescored = spark.createDataFrame([_row("UA", 404, DAY1, version=3)], SCHEMA)
    for _ in range(2):  # idempotent
        [again] = export_predictions(spark, rescored, exports, [DAY1], tmp_path)
        assert again.rows == 1
    assert _counts(pg, "flight_delay_predictions") == "2013-10-15|1\n2013-10-16|2\n"
    assert _staging_tables(pg) == ""


@needs_jdbc
def test_jdbc_failures_keep_the_previous_rows_and_never_show_credentials(
    spark: Any, predictions: Any, pg: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A target whose extra NOT NULL column the export does not fill: the INSERT fails after the DELETE.
    pg.psql(
        "CREATE TABLE strict_predictions (carrier text, flight integer, score double precision, run_date date, "
        "reviewer text NOT NULL); INSERT INTO strict_predictions VALUES ('AA', 1, 0.5, '2013-10-15', 'ann'); "
        f"ALTER TABLE strict_predictions OWNER TO {pg.user}"
    )
    exports = [_jdbc_export(pg, "strict_predictions", columns=["carrier", "flight", "score"])]
    refused = (
        r"exports\[0\] \(jdbc\) to '.*table strict_predictions': the write failed: "
        r"ERROR: null value in column \"reviewer\".*SQLSTATE 23502.*rolled back"
    )
    with pytest.raises(TableError, match=refused) as failed:
        export_predictions(spark, predictions, exports, [DAY1], tmp_path)
    assert pg.password not in str(failed.value)
    assert _counts(pg, "strict_predictions") == "2013-10-15|1\n"
    assert _staging_tables(pg) == ""

    monkeypatch.setenv(ENV_PASSWORD, WRONG_PASSWORD)
    exports = [_jdbc_export(pg, "strict_predictions")]
    with pytest.raises(
        TableError, match=r"cannot connect: FATAL: password authentication failed for user \"\*\*\*\""
    ) as denied:
        export_predictions(spark, predictions, exports, [DAY1], tmp_path)
    message = str(denied.value)
    assert pg.jdbc_url in message and "${oc.env:" in message and "\n" not in message
    assert WRONG_PASSWORD not in message and f'"{pg.user}"' not in message
    assert _counts(pg, "strict_predictions") == "2013-10-15|1\n"
