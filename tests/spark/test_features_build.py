"""Feature table builds: partitions per date replaced idempotently, statistics saved, joins and
transforms as declared, labels only in training sets."""

from __future__ import annotations

import textwrap
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from lakeforge.errors import FeatureError
from lakeforge.features.build import RawTables, build_features
from lakeforge.features.compute import LABEL_KNOWN_AT, compute_features
from lakeforge.features.spec import feature_set_spec
from lakeforge.lake.catalog import Catalog
from lakeforge.lake.delta import Lineage, read_table, table_history, write_table

T0 = datetime(2024, 5, 1, 0, 0)
TRANSFORMS = """
from lakeforge.features.registry import transform


@transform("double_it")
def double_it(df, inputs, outputs, **params):
    from pyspark.sql import functions as F

    return df.withColumn(outputs[0], F.col(inputs[0]) * params.get("factor", 2))
"""


def _features(**extra: Any) -> dict[str, Any]:
    fs: dict[str, Any] = {
        "name": "demo",
        "entity": ["id"],
        "spine": {"dataset": "ev", "event_time": "t"},
        "expressions": [{"name": "hour_of_day", "expr": "hour(t)"}],
        "windows": [{"name": "n_1d", "function": "count", "window": "1d", "by": ["k"]}],
        "static_joins": [{"dataset": "dim", "keys": ["k"], "columns": ["size"], "prefix": "dim_"}],
        "transforms": [
            {"name": "double_it", "inputs": ["hour_of_day"], "outputs": ["hour_x3"], "params": {"factor": 3}}
        ],
        "label": {"name": "late", "expr": "CAST(v > 1 AS INT)", "available_after": "1d"},
    }
    fs.update(extra)
    return fs


def _cfg(root: Path, **extra: Any) -> Any:
    return OmegaConf.create(
        {"features": _features(**extra), "dataset": {"ev": {"event_time": "t"}}, "project_root": str(root)}
    )


@pytest.fixture
def project(spark: Any, tmp_path: Path) -> tuple[Path, Catalog]:
    """A project with features/ and a lake holding raw.ev (3 days of events) and raw.dim."""
    (tmp_path / "features").mkdir()
    (tmp_path / "features" / "demo_transforms.py").write_text(textwrap.dedent(TRANSFORMS))
    catalog = Catalog(tmp_path / "lake")
    events = [(i, i % 2, T0 + timedelta(hours=8 * i), float(i % 3)) for i in range(9)]
    write_table(spark.createDataFrame(events, "id int, k int, t timestamp, v double"), catalog, "raw.ev")
    write_table(spark.createDataFrame([(0, 10)], "k int, size int"), catalog, "raw.dim")
    return tmp_path, catalog


def _rows(spark: Any, catalog: Catalog, table: str) -> list[Any]:
    return sorted(read_table(spark, catalog, table).collect(), key=lambda r: r["id"])


def test_build_writes_one_partition_per_date_and_statistics(spark: Any, project: tuple[Path, Catalog]) -> None:
    root, catalog = project
    built = build_features(
        spark, _cfg(root), catalog, Lineage("b1", step="features"), date(2024, 5, 1), date(2024, 5, 2)
    )

    rows = _rows(spark, catalog, "features.demo")
    assert (built.rows, len(rows)) == (6, 6)  # 3 events a day, 2 days
    assert {str(r["event_date"]) for r in rows} == {"2024-05-01", "2024-05-02"}
    assert [r["n_1d"] for r in rows] == [0, 0, 1, 1, 1, 1]  # same-key events 16 h apart
    assert [r["dim_size"] for r in rows] == [10, None, 10, None, 10, None]  # on_missing: null
    assert [r["hour_x3"] for r in rows] == [0, 24, 48, 0, 24, 48]
    assert "late" not in read_table(spark, catalog, "features.demo").columns  # labels never stored
    stats = read_table(spark, catalog, "features.demo__stats").collect()
    assert sorted(s["feature"] for s in stats) == sorted(["hour_of_day", "n_1d", "dim_size", "hour_x3"])
    assert {s["feature_table_version"] for s in stats} == {built.version}
    # Lineage: the commit names the raw tables and versions it was computed from.
    assert table_history(catalog, "features.demo", limit=1)[0].lineage["inputs"] == {"raw.ev": 0, "raw.dim": 0}
    assert table_history(catalog, "features.demo__stats", limit=1)[0].lineage["inputs"] == {
        "features.demo": built.version
    }


def test_raw_tables_pin_versions_and_record_what_they_read(spark: Any, project: tuple[Path, Catalog]) -> None:
    _, catalog = project
    write_table(spark.createDataFrame([(0, 11)], "k int, size int"), catalog, "raw.dim", mode="overwrite")
    latest, pinned = RawTables(spark, catalog), RawTables(spark, catalog, pinned={"raw.dim": 0})
    assert latest("dim").collect()[0]["size"] == 11
    assert pinned("dim").collect()[0]["size"] == 10  # time travel to the pinned version
    assert (latest.versions, pinned.versions) == ({"raw.dim": 1}, {"raw.dim": 0})


def test_rebuilding_a_date_replaces_only_its_partition(spark: Any, project: tuple[Path, Catalog]) -> None:
    root, catalog = project
    build_features(spark, _cfg(root), catalog, Lineage("b1", step="features"), date(2024, 5, 1), date(2024, 5, 3))
    before = {r["id"]: r for r in _rows(spark, catalog, "features.demo")}
    # The dimension changes; only 2024-05-02 is rebuilt.
    write_table(spark.createDataFrame([(0, 99)], "k int, size int"), catalog, "raw.dim", mode="overwrite")
    build_features(spark, _cfg(root), catalog, Lineage("b2", step="features"), date(2024, 5, 2), date(2024, 5, 2))
    after = {r["id"]: r for r in _rows(spark, catalog, "features.demo")}

    assert sorted(after) == sorted(before) == list(range(9))  # nothing lost, nothing duplicated
    changed = {i for i in after if after[i]["dim_size"] != before[i]["dim_size"]}
    assert changed == {i for i in after if str(after[i]["event_date"]) == "2024-05-02" and after[i]["dim_size"]}


def test_static_join_policies(spark: Any, project: tuple[Path, Catalog]) -> None:
    root, catalog = project
    tables = {"ev": read_table(spark, catalog, "raw.ev"), "dim": read_table(spark, catalog, "raw.dim")}
    dropped = _features(static_joins=[{"dataset": "dim", "keys": ["k"], "columns": ["size"], "on_missing": "drop"}])
    spec = feature_set_spec(OmegaConf.create(dropped))
    got = compute_features(spark, spec, tables.__getitem__, date(2024, 5, 1), date(2024, 5, 3), project_root=root)
    assert sorted(r["id"] for r in got.collect()) == [0, 2, 4, 6, 8]

    failing = _features(static_joins=[{"dataset": "dim", "keys": ["k"], "columns": ["size"], "on_missing": "fail"}])
    spec = feature_set_spec(OmegaConf.create(failing))
    with pytest.raises(FeatureError, match=r"static join to 'dim': rows without a match on \['k'\].*\(1,\)"):
        compute_features(spark, spec, tables.__getitem__, date(2024, 5, 1), date(2024, 5, 3), project_root=root)


def test_unknown_transform_lists_the_known_ones(spark: Any, project: tuple[Path, Catalog]) -> None:
    root, catalog = project
    bad = _features(transforms=[{"name": "double_itt", "inputs": ["hour_of_day"], "outputs": ["x"]}])
    tables = {"ev": read_table(spark, catalog, "raw.ev"), "dim": read_table(spark, catalog, "raw.dim")}
    spec = feature_set_spec(OmegaConf.create(bad))
    with pytest.raises(FeatureError, match=r"unknown transform 'double_itt' \(did you mean 'double_it'\?\); known"):
        compute_features(spark, spec, tables.__getitem__, date(2024, 5, 1), date(2024, 5, 1), project_root=root)


def test_labels_only_in_training_sets_and_only_once_known(spark: Any, project: tuple[Path, Catalog]) -> None:
    root, catalog = project
    tables = {"ev": read_table(spark, catalog, "raw.ev"), "dim": read_table(spark, catalog, "raw.dim")}
    spec = feature_set_spec(OmegaConf.create(_features()))
    scoring = compute_features(spark, spec, tables.__getitem__, date(2024, 5, 1), date(2024, 5, 3), project_root=root)
    assert "late" not in scoring.columns and LABEL_KNOWN_AT not in scoring.columns
    # As of 2024-05-03 08:00 only labels of events up to 2024-05-02 08:00 are known (1d later).
    training = compute_features(
        spark,
        spec,
        tables.__getitem__,
        date(2024, 5, 1),
        date(2024, 5, 3),
        project_root=root,
        with_label=True,
        label_known_by=datetime(2024, 5, 3, 8, 0),
    )
    rows = sorted(training.collect(), key=lambda r: r["id"])
    assert [r["id"] for r in rows] == [0, 1, 2, 3, 4]
    assert [r["late"] for r in rows] == [0, 0, 1, 0, 0]
    shared = scoring.columns
    same = scoring.where("id <= 4").select(*shared).collect()
    assert sorted(map(tuple, same)) == sorted(tuple(r[c] for c in shared) for r in rows)
