"""`lakeforge sql` with the Spark engine: the same statements, run by Spark SQL over temp views."""

from __future__ import annotations

from typing import Any

import pytest

from lakeforge.errors import ReadOnlyViolationError, SqlError
from lakeforge.lake.catalog import Catalog
from lakeforge.lake.sql import TRUNCATED_KEY, run_sql


def test_join_with_time_travel(spark: Any, catalog: Catalog) -> None:
    result = run_sql(
        catalog,
        "SELECT f.carrier, count(*) AS n, sum(d.delay_7d) AS delay FROM raw.flights f "
        "JOIN features.flight_delay AS d ON f.id = d.id GROUP BY f.carrier ORDER BY f.carrier",
        engine="spark",
        spark=spark,
        versions={"raw.flights": 0},
    )
    assert result.to_pylist() == [
        {"carrier": "AA", "n": 2, "delay": 4.5},
        {"carrier": "UA", "n": 1, "delay": None},
    ]
    # The per-call temp views are gone afterwards.
    assert not [t.name for t in spark.catalog.listTables() if t.name.startswith("lakeforge_")]


def test_subquery_limit_and_same_table_twice(spark: Any, catalog: Catalog) -> None:
    result = run_sql(
        catalog,
        "SELECT id FROM raw.flights WHERE id IN (SELECT id FROM raw.flights WHERE carrier <> 'UA') ORDER BY id",
        engine="spark",
        spark=spark,
        limit=2,
    )
    assert result.column("id").to_pylist() == [1, 3]
    assert (result.schema.metadata or {}).get(TRUNCATED_KEY) == b"true"


def test_describe_without_locations(spark: Any, catalog: Catalog) -> None:
    result = run_sql(catalog, "DESCRIBE raw.flights", engine="spark", spark=spark)
    assert result.column("col_name").to_pylist()[:2] == ["id", "carrier"]


def test_unknown_column_offers_candidates_without_plan(spark: Any, catalog: Catalog) -> None:
    expected = (
        r"^SQL error: \[UNRESOLVED_COLUMN.WITH_SUGGESTION\] .*`carrir` cannot be resolved"
        r".*`carrier`.*SQLSTATE: 42703$"
    )
    with pytest.raises(SqlError, match=expected):
        run_sql(catalog, "SELECT carrir FROM raw.flights f", engine="spark", spark=spark)


def test_error_messages_name_lake_tables_not_temp_views(spark: Any, catalog: Catalog) -> None:
    with pytest.raises(SqlError, match=r"raw\.flights") as caught:
        run_sql(catalog, "SELECT raw.flights.id FROM raw.flights", engine="spark", spark=spark)
    assert "lakeforge_" not in str(caught.value)


def test_read_only_check_runs_before_spark(spark: Any, catalog: Catalog) -> None:
    with pytest.raises(ReadOnlyViolationError, match=r"'DROP' statements are refused"):
        run_sql(catalog, "DROP TABLE raw.flights", engine="spark", spark=spark)
