"""The source registry and path resolution (no JVM)."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from lakeforge.config.schema_data import SourceConfig
from lakeforge.data.schema import ColumnSpec
from lakeforge.data.sources import (
    SOURCES,
    SourceRequest,
    check_columns,
    get_reader,
    resolve_source_path,
    spark_type_name,
)
from lakeforge.errors import DataValidationError, UsageError


def _request(tmp_path: Path, path: str = "data/raw/x.csv", new_columns: str = "error") -> SourceRequest:
    source = OmegaConf.structured(SourceConfig(format="csv", path=path))
    return SourceRequest(
        "x", source, [ColumnSpec("a", "int"), ColumnSpec("b", "string", source_name="dep_time")], tmp_path, new_columns
    )


def test_registry_has_every_declared_format_and_imports_lazily() -> None:
    assert set(SOURCES) == {"csv", "json", "parquet", "delta", "jdbc"}
    assert callable(get_reader("jdbc"))
    with pytest.raises(UsageError, match=r"unknown source format 'cvs' \(did you mean 'csv'\?\)"):
        get_reader("cvs")


def test_relative_path_resolves_against_project_root(tmp_path: Path) -> None:
    (tmp_path / "data/raw").mkdir(parents=True)
    (tmp_path / "data/raw/x.csv").write_text("a\n")
    assert resolve_source_path(_request(tmp_path)) == str(tmp_path / "data/raw/x.csv")
    with pytest.raises(DataValidationError, match=r"source 'data/raw/\*.json' not found .*`dvc pull`"):
        resolve_source_path(_request(tmp_path, "data/raw/*.json"))


def test_column_matching_uses_source_names(tmp_path: Path) -> None:
    check_columns(_request(tmp_path), ["a", "dep_time"])
    with pytest.raises(
        DataValidationError,
        match=r"declared column\(s\) 'dep_time' missing from the source \(did you mean 'dep_tim'\?\)",
    ):
        check_columns(_request(tmp_path), ["a", "dep_tim"])
    check_columns(_request(tmp_path, new_columns="ignore"), ["a", "dep_time", "c"])
    with pytest.raises(DataValidationError, match=r"undeclared column\(s\) 'c'"):
        check_columns(_request(tmp_path), ["a", "dep_time", "c"])


def test_declared_types_map_to_spark_types() -> None:
    assert [spark_type_name(t) for t in ("int", "long", "decimal(10, 2)", "timestamp")] == [
        "int",
        "bigint",
        "decimal(10,2)",
        "timestamp",
    ]
