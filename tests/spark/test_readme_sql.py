"""The README's example queries on predictions.flight_delay run, through `lakeforge sql`'s engine, against
a prediction table and registry.model_versions with the scoring job's schema (written here by hand:
two days of two flights, two model versions)."""

from __future__ import annotations

import importlib.util
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from lakeforge.lake.catalog import Catalog
from lakeforge.lake.delta import write_table
from lakeforge.lake.sql import run_sql
from lakeforge.scoring.versions import SCHEMA as VERSIONS_SCHEMA

ROOT = Path(__file__).resolve().parents[2]
PREDICTIONS = (
    "carrier string, flight int, origin string, time_hour timestamp, prediction int, score double, "
    "reasons array<struct<feature:string, contribution:double>>, reasons_method string, model_name string, "
    "model_alias string, model_version int, model_run_id string, served boolean, feature_table string, "
    "feature_table_version long, scored_at timestamp, job_run_id string, run_date date"
)


def _queries() -> list[tuple[str, str]]:
    spec = importlib.util.spec_from_file_location("readme_sql", ROOT / "scripts" / "readme_sql.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.queries()


@pytest.fixture(scope="module")
def lake(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    catalog = Catalog(tmp_path_factory.mktemp("readme") / "lake")
    reasons = [("origin_dep_delay_3h", 0.81), ("wx_visib", -0.12)]
    rows = []
    for day, version in ((date(2013, 12, 30), 1), (date(2013, 12, 31), 2)):
        for carrier, flight, p in (("UA", 1545, 0.71), ("DL", 461, 0.12)):
            t = datetime(day.year, day.month, day.day, 10)
            rows.append(
                (carrier, flight, "EWR", t, int(p >= 0.5), p, reasons, "path", "flight_delay", "champion", version,
                 f"run{version}", True, "features.flight_delay", 5, t, "job", day)
            )  # fmt: skip
    write_table(
        spark.createDataFrame(rows, PREDICTIONS), catalog, "predictions.flight_delay", partition_by=["run_date"]
    )
    versions = [
        ("flight_delay", v, f"run{v}", "champion" if v == 2 else None, "2013-10-15", "abc123", False, "h",
         '{"raw.flights": 2}', '{"data/raw": "md5"}', "roc_auc", 0.76, "promoted", datetime(2026, 11, 21))
        for v in (1, 2)
    ]  # fmt: skip
    write_table(spark.createDataFrame(versions, VERSIONS_SCHEMA), catalog, "registry.model_versions")
    return catalog


def test_the_readme_has_the_three_example_queries() -> None:
    titles = [title for title, _ in _queries()]
    assert titles == [
        "daily predicted delay share by carrier",
        "one flight's predictions with their reasons",
        "predictions joined with their model versions",
    ]


def test_daily_share_by_carrier(lake: Catalog) -> None:
    rows = run_sql(lake, _queries()[0][1]).to_pylist()
    assert rows == [
        {"run_date": date(2013, 12, 31), "carrier": "UA", "flights": 1, "predicted_late": 1.0, "mean_score": 0.71},
        {"run_date": date(2013, 12, 31), "carrier": "DL", "flights": 1, "predicted_late": 0.0, "mean_score": 0.12},
    ]


def test_one_flight_with_its_reasons(lake: Catalog) -> None:
    rows = run_sql(lake, _queries()[1][1]).to_pylist()
    assert [r["model_version"] for r in rows] == [1, 2]
    assert rows[0]["reasons"] == ["origin_dep_delay_3h +0.81", "wx_visib -0.12"]


def test_predictions_joined_with_model_versions(lake: Catalog) -> None:
    rows = run_sql(lake, _queries()[2][1]).to_pylist()
    assert [(r["model_version"], r["aliases"], r["predictions"], r["git_commit"]) for r in rows] == [
        (1, None, 2, "abc123"),
        (2, "champion", 2, "abc123"),
    ]
