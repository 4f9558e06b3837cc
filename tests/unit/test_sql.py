"""`lakeforge sql` with the DuckDB engine: queries, time travel, the read-only guard, errors, formats."""

from __future__ import annotations

import subprocess
import sys

import pyarrow as pa
import pytest

from lakeforge.errors import ReadOnlyViolationError, SqlError, TableError, TableNotFoundError, UsageError
from lakeforge.lake.catalog import Catalog
from lakeforge.lake.sql import ENGINES, TRUNCATED_KEY, format_result, parse_statement, run_sql


class TestQueries:
    def test_select_group_by(self, catalog: Catalog) -> None:
        result = run_sql(catalog, "SELECT carrier, count(*) AS n FROM raw.flights GROUP BY 1 ORDER BY 1")
        assert result.to_pylist() == [
            {"carrier": "AA", "n": 2},
            {"carrier": "DL", "n": 1},
            {"carrier": "UA", "n": 1},
        ]

    def test_join_across_layers(self, catalog: Catalog) -> None:
        result = run_sql(
            catalog,
            "SELECT f.carrier, sum(d.delay_7d) AS delay FROM raw.flights f "
            "JOIN features.flight_delay d USING (id) GROUP BY 1 ORDER BY 1",
        )
        assert result.to_pylist() == [
            {"carrier": "AA", "delay": 4.5},
            {"carrier": "DL", "delay": 0.25},
            {"carrier": "UA", "delay": None},
        ]

    def test_time_travel(self, catalog: Catalog) -> None:
        statement = "SELECT count(*) AS n FROM raw.flights"
        assert run_sql(catalog, statement).column("n").to_pylist() == [4]
        assert run_sql(catalog, statement, versions={"raw.flights": 0}).column("n").to_pylist() == [3]

    def test_version_beyond_latest_says_which_exist(self, catalog: Catalog) -> None:
        expected = r"table 'raw.flights' has no version 9: available versions are 0..1"
        with pytest.raises(TableError, match=expected):
            run_sql(catalog, "SELECT * FROM raw.flights", versions={"raw.flights": 9})

    def test_version_for_unread_table_is_refused(self, catalog: Catalog) -> None:
        expected = r"version was given for 'features.flight_delay'.*reads raw.flights"
        with pytest.raises(UsageError, match=expected):
            run_sql(catalog, "SELECT * FROM raw.flights", versions={"features.flight_delay": 0})

    def test_limit_marks_truncation(self, catalog: Catalog) -> None:
        result = run_sql(catalog, "SELECT id FROM raw.flights ORDER BY id", limit=2)
        assert result.column("id").to_pylist() == [1, 2]
        assert (result.schema.metadata or {}).get(TRUNCATED_KEY) == b"true"
        whole = run_sql(catalog, "SELECT id FROM raw.flights", limit=4)
        assert whole.num_rows == 4
        assert TRUNCATED_KEY not in (whole.schema.metadata or {})

    @pytest.mark.parametrize(
        "statement",
        [
            "DESCRIBE raw.flights",
            "SUMMARIZE raw.flights",
            "EXPLAIN SELECT * FROM raw.flights",
            "EXPLAIN ANALYZE SELECT count(*) FROM raw.flights",
            "EXPLAIN (FORMAT json) SELECT * FROM raw.flights",
            "VALUES (1, 'a')",
            "FROM raw.flights",
            "WITH aa AS (SELECT * FROM raw.flights WHERE carrier = 'AA') SELECT count(*) FROM aa",
            "PIVOT raw.flights ON carrier IN ('AA', 'UA') USING count(*)",
            "SELECT 1;",
        ],
    )
    def test_other_read_only_forms_run(self, catalog: Catalog, statement: str) -> None:
        assert run_sql(catalog, statement).num_columns >= 1

    def test_only_referenced_tables_are_opened(self, catalog: Catalog) -> None:
        parsed = parse_statement(
            "SELECT * FROM raw.flights WHERE id IN (SELECT id FROM features.flight_delay) AND 'raw.x' <> ''"
        )
        assert [str(t) for t in parsed.table_names] == ["raw.flights", "features.flight_delay"]


class TestReadOnly:
    @pytest.mark.parametrize(
        ("statement", "word"),
        [
            ("INSERT INTO raw.flights VALUES (5, 'B6')", "INSERT"),
            ("UPDATE raw.flights SET carrier = 'XX'", "UPDATE"),
            ("DELETE FROM raw.flights", "DELETE"),
            ("CREATE TABLE raw.copy AS SELECT * FROM raw.flights", "CREATE"),
            ("DROP TABLE raw.flights", "DROP"),
            ("ALTER TABLE raw.flights ADD COLUMN x INT", "ALTER"),
            ("COPY raw.flights TO '/tmp/out.csv'", "COPY"),
            ("ATTACH '/tmp/other.duckdb' AS other", "ATTACH"),
            ("INSTALL httpfs", "INSTALL"),
            ("LOAD httpfs", "LOAD"),
            ("SET enable_external_access = true", "SET"),
            ("PRAGMA enable_profiling", "PRAGMA"),
            ("CALL pragma_version()", "CALL"),
            ("EXPORT DATABASE '/tmp/dump'", "EXPORT"),
            ("USE memory", "USE"),
            ("BEGIN TRANSACTION", "BEGIN"),
            ("WITH x AS (SELECT 1) DELETE FROM raw.flights", "DELETE"),
            ("EXPLAIN ANALYZE CREATE TABLE raw.copy AS SELECT 1", "EXPLAIN ANALYZE CREATE"),
            ("explain analyze delete from raw.flights", "EXPLAIN ANALYZE DELETE"),
        ],
    )
    def test_writing_statements_are_refused(self, catalog: Catalog, statement: str, word: str) -> None:
        expected = (
            rf"^lakeforge sql is read-only: '{word}' statements are refused; "
            r"write tables through the pipeline steps$"
        )
        with pytest.raises(ReadOnlyViolationError, match=expected):
            run_sql(catalog, statement)

    def test_multiple_statements_are_refused(self, catalog: Catalog) -> None:
        with pytest.raises(ReadOnlyViolationError, match=r"one statement at a time, got 2"):
            run_sql(catalog, "SELECT 1; DROP TABLE raw.flights")

    @pytest.mark.parametrize(
        "statement",
        [
            "SELECT * FROM read_csv('/etc/passwd')",
            "SELECT * FROM read_text('/etc/passwd')",
            "SELECT * FROM glob('/etc/*')",
            "SELECT * FROM parquet_scan('/etc/*.parquet')",
        ],
    )
    def test_file_access_is_off(self, catalog: Catalog, statement: str) -> None:
        with pytest.raises(ReadOnlyViolationError, match=r"reads lake tables only: file.*access is off"):
            run_sql(catalog, statement)

    def test_file_name_as_table_is_not_a_lake_table(self, catalog: Catalog) -> None:
        # With external access off DuckDB does not treat a quoted path as a file to scan.
        with pytest.raises(TableNotFoundError, match=r"^table '/etc/passwd' is not a lake table"):
            run_sql(catalog, "SELECT * FROM '/etc/passwd'")

    def test_raw_parquet_of_a_table_cannot_be_read(self, catalog: Catalog) -> None:
        files = f"{catalog.table_uri('raw.flights')}/*.parquet"
        with pytest.raises(ReadOnlyViolationError, match=r"Cannot access file"):
            run_sql(catalog, f"SELECT * FROM read_parquet('{files}')")

    def test_python_variables_are_not_visible(self, catalog: Catalog) -> None:
        # DuckDB's replacement scans would otherwise read any DataFrame in the caller's scope.
        secret = pa.table({"x": [1]})
        assert secret.num_rows == 1
        with pytest.raises(TableNotFoundError, match=r"table 'secret' is not a lake table"):
            run_sql(catalog, "SELECT * FROM secret")

    def test_pivot_without_values_is_refused(self, catalog: Catalog) -> None:
        with pytest.raises(ReadOnlyViolationError, match=r"PIVOT without an IN list creates a type"):
            run_sql(catalog, "PIVOT raw.flights ON carrier USING count(*)")


class TestErrors:
    def test_syntax_error_quotes_duckdb_with_caret(self, catalog: Catalog) -> None:
        with pytest.raises(SqlError) as caught:
            run_sql(catalog, "SELECT * FROM raw.flights WHERE")
        assert str(caught.value) == (
            'SQL syntax error: syntax error at or near "WHERE"\n\n'
            "LINE 1: SELECT * FROM raw.flights WHERE\n"
            "                                  ^^^^^"
        )
        assert caught.value.__suppress_context__

    def test_unknown_table_lists_known_tables(self, catalog: Catalog) -> None:
        expected = (
            r"^table 'raw.flight' does not exist under lake root '.*' \(did you mean 'raw.flights'\?\); "
            r"known tables: raw.flights, features.flight_delay$"
        )
        with pytest.raises(TableNotFoundError, match=expected):
            run_sql(catalog, "SELECT * FROM raw.flight")

    def test_unqualified_table_suggests_layer(self, catalog: Catalog) -> None:
        expected = r"name tables as '<layer>.<name>' \(did you mean 'raw.flights'"
        with pytest.raises(TableNotFoundError, match=expected):
            run_sql(catalog, "SELECT * FROM flights")

    def test_unknown_column_offers_candidates(self, catalog: Catalog) -> None:
        with pytest.raises(SqlError, match=r'column "carrir" not found.*\nCandidate bindings: "carrier"'):
            run_sql(catalog, "SELECT carrir FROM raw.flights")

    def test_unknown_engine_lists_engines(self, catalog: Catalog) -> None:
        with pytest.raises(UsageError, match=r"^unknown SQL engine 'trino'; engines are duckdb, spark$"):
            run_sql(catalog, "SELECT 1", engine="trino")

    def test_spark_engine_needs_a_session(self, catalog: Catalog) -> None:
        with pytest.raises(UsageError, match=r"engine 'spark' needs a SparkSession"):
            run_sql(catalog, "SELECT * FROM raw.flights", engine="spark")

    def test_engines_are_imported_only_when_chosen(self, catalog: Catalog) -> None:
        # A fresh interpreter: the DuckDB path must not import the Spark engine or pyspark.
        code = (
            "import sys; from lakeforge.lake.catalog import Catalog; from lakeforge.lake.sql import run_sql; "
            f"run_sql(Catalog({catalog.lake_root!r}), 'SELECT count(*) FROM raw.flights'); "
            "print(sorted(m for m in ('pyspark', 'lakeforge.lake.sql_spark') if m in sys.modules))"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == "[]"
        assert list(ENGINES) == ["duckdb", "spark"]


class TestFormats:
    @pytest.fixture
    def small(self) -> pa.Table:
        return pa.table({"carrier": ["AA", "UA", None], "flights": [12, 3, 100], "delay": [1.5, None, -0.25]})

    def test_table(self, small: pa.Table) -> None:
        assert format_result(small) == (
            "carrier  flights  delay\n"
            "-------  -------  -----\n"
            "AA            12    1.5\n"
            "UA             3   NULL\n"
            "NULL         100  -0.25\n"
            "(3 rows)\n"
        )

    def test_table_says_when_limit_cut_rows(self, small: pa.Table) -> None:
        cut = small.slice(0, 1).replace_schema_metadata({TRUNCATED_KEY: b"true"})
        expected = "AA            12    1.5\n(1 row; limit reached, more rows exist)\n"
        assert format_result(cut).endswith(expected)

    def test_csv(self, small: pa.Table) -> None:
        assert format_result(small, "csv") == "carrier,flights,delay\nAA,12,1.5\nUA,3,\n,100,-0.25\n"

    def test_json_lines(self, small: pa.Table) -> None:
        assert format_result(small, "json") == (
            '{"carrier": "AA", "flights": 12, "delay": 1.5}\n'
            '{"carrier": "UA", "flights": 3, "delay": null}\n'
            '{"carrier": null, "flights": 100, "delay": -0.25}\n'
        )

    def test_unknown_format(self, small: pa.Table) -> None:
        with pytest.raises(UsageError, match=r"^unknown output format 'xml'; formats are table, csv, json$"):
            format_result(small, "xml")


class TestSparkRewrite:
    """The Spark engine's statement rewrite is pure text work: tested here without a JVM."""

    def test_names_are_replaced_at_parser_locations(self) -> None:
        from lakeforge.lake.sql_spark import rewrite_statement

        parsed = parse_statement(
            "SELECT 'é€ raw.flights' AS note, f.id FROM raw.flights f "
            'JOIN "features"."flight_delay" AS d ON f.id = d.id;'
        )
        views = {name: f"v_{name.layer}__{name.name}" for name in parsed.table_names}
        assert rewrite_statement(parsed, views) == (
            "SELECT 'é€ raw.flights' AS note, f.id FROM v_raw__flights f "
            "JOIN v_features__flight_delay AS d ON f.id = d.id"
        )

    def test_explain_and_describe(self) -> None:
        from lakeforge.lake.sql_spark import rewrite_statement

        for statement, expected in [
            ("EXPLAIN SELECT * FROM raw.flights", "EXPLAIN SELECT * FROM v"),
            ("DESCRIBE raw.flights", "DESCRIBE v"),
        ]:
            parsed = parse_statement(statement)
            assert rewrite_statement(parsed, dict.fromkeys(parsed.table_names, "v")) == expected

    def test_empty_statement(self) -> None:
        with pytest.raises(UsageError, match=r"^no SQL statement given$"):
            parse_statement("  -- nothing here\n")
