"""Table names and config paths cannot lead a write outside the lake root or the project (issue 10)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from lakeforge.errors import UsageError
from lakeforge.lake.catalog import Catalog, TableName, catalog_from_config
from lakeforge.lake.confine import ExternalLocationError
from lakeforge.scoring.export import export_predictions
from lakeforge.serving.store import SqliteStore, store_from_config

SWITCH = "set storage.allow_external_locations: true"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder with its lake, and a folder outside both."""
    (tmp_path / "project" / "lake").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    return tmp_path / "project"


@pytest.mark.parametrize(
    "name", ["raw/../../etc", "../raw.x", "raw.../x", "/etc.passwd", "raw./etc", "raw.x/..", "raw.x y", "raw.X"]
)
def test_a_table_name_cannot_carry_a_path(name: str) -> None:
    with pytest.raises(UsageError, match="is not a table name"):
        TableName.parse(name)


def test_a_symlinked_layer_leading_out_of_the_lake_is_refused(project: Path) -> None:
    outside = project.parent / "outside"
    os.symlink(outside, project / "lake" / "raw")
    catalog = Catalog(project / "lake")
    with pytest.raises(ExternalLocationError) as caught:
        catalog.table_uri("raw.flights")
    message = str(caught.value)
    assert f"table 'raw.flights' at '{project / 'lake' / 'raw' / 'flights'}'" in message
    assert f"resolves to '{outside / 'flights'}'" in message
    assert SWITCH in message
    assert caught.value.exit_code == 2
    # Other layers are untouched, and the switch lets the symlinked one through.
    assert catalog.table_uri("features.f") == str(project / "lake" / "features" / "f")
    allowed = Catalog(project / "lake", allow_external=True)
    assert allowed.table_uri("raw.flights") == str(project / "lake" / "raw" / "flights")


def test_a_symlinked_table_folder_is_refused_but_one_inside_the_lake_is_fine(project: Path) -> None:
    lake = project / "lake"
    (lake / "raw").mkdir()
    (lake / "scratch" / "real").mkdir(parents=True)
    os.symlink(project.parent / "outside", lake / "raw" / "away")
    os.symlink(lake / "scratch" / "real", lake / "raw" / "inside")
    catalog = Catalog(lake)
    with pytest.raises(ExternalLocationError, match=re.escape("table 'raw.away'")):
        catalog.exists("raw.away")
    assert catalog.table_uri("raw.inside") == str(lake / "raw" / "inside")


def test_a_lake_root_that_is_itself_a_symlink_is_its_own_root(project: Path) -> None:
    os.symlink(project / "lake", project.parent / "lake_link")
    catalog = Catalog(project.parent / "lake_link")
    assert catalog.table_uri("raw.flights") == str(project.parent / "lake_link" / "raw" / "flights")


def test_the_switch_comes_from_the_storage_config(project: Path) -> None:
    os.symlink(project.parent / "outside", project / "lake" / "raw")
    strict = catalog_from_config(OmegaConf.create({"lake_root": "lake", "options": {}}), project)
    with pytest.raises(ExternalLocationError):
        strict.table_uri("raw.flights")
    relaxed = OmegaConf.create({"lake_root": "lake", "options": {}, "allow_external_locations": True})
    assert catalog_from_config(relaxed, project).table_uri("raw.flights").endswith("raw/flights")


@pytest.mark.parametrize("path", ["../outside/p", "{outside}/p", "exports/../../outside/p", "link/p"])
def test_an_export_folder_outside_the_project_and_lake_is_refused_before_it_runs(project: Path, path: str) -> None:
    os.symlink(project.parent / "outside", project / "link")
    export = {"format": "parquet", "path": path.format(outside=project.parent / "outside")}
    # No Spark session and no frame: the check runs before the export touches either.
    with pytest.raises(ExternalLocationError) as caught:
        export_predictions(None, None, [export], [], project, lake_root=project / "lake")
    assert "model.scoring.exports[0].path: the parquet export folder at" in str(caught.value)
    assert SWITCH in str(caught.value)


def test_the_online_store_file_cannot_leave_the_project(project: Path) -> None:
    def cfg(path: str, allow: bool = False) -> object:
        storage = {"lake_root": "lake", "allow_external_locations": allow}
        return OmegaConf.create(
            {"project_root": str(project), "storage": storage, "online": {"kind": "sqlite", "path": path}}
        )

    assert isinstance(store_from_config(cfg("online/f.sqlite")), SqliteStore)
    assert isinstance(store_from_config(cfg("lake/online.sqlite")), SqliteStore)
    with pytest.raises(ExternalLocationError, match=re.escape("online.path: the online store file at")):
        store_from_config(cfg("../outside/f.sqlite"))
    assert isinstance(store_from_config(cfg("../outside/f.sqlite", allow=True)), SqliteStore)
