"""The pandera schema compiled from a dataset declaration: check names and row-level outcomes."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from omegaconf import OmegaConf

from lakeforge.config.schema_data import ColumnConfig, DatasetConfig, SourceConfig, StrLengthCheck
from lakeforge.data.schema import ColumnSpec, arrow_strings, build_schema, column_specs, row_failures
from lakeforge.data.validate import SEP, _explained


def _by_row(specs: list[ColumnSpec], frame: pd.DataFrame) -> list[list[str]]:
    found = row_failures(build_schema(specs, "t"), arrow_strings(frame, specs))
    return [found.get(i, []) for i in range(len(frame))]


def _failures(spec: ColumnSpec, values: list[object]) -> list[list[str]]:
    return _by_row([spec], pd.DataFrame({spec.name: values}))


@pytest.mark.parametrize(
    ("spec", "values", "expected"),
    [
        (ColumnSpec("n", "int", ge=0), [0, -1, None], [[], ["n:ge(0)"], []]),
        (ColumnSpec("n", "int", le=2400), [2400, 2401], [[], ["n:le(2400)"]]),
        (ColumnSpec("x", "double", gt=0.5), [0.6, 0.5], [[], ["x:gt(0.5)"]]),
        (ColumnSpec("x", "double", lt=10), [9.9, 10.0], [[], ["x:lt(10)"]]),
        (ColumnSpec("o", "string", isin=("EWR", "JFK")), ["EWR", "LGA"], [[], ["o:isin"]]),
        (ColumnSpec("c", "string", regex="^[A-Z]{2}$"), ["AA", "A1"], [[], ["c:regex"]]),
        (
            ColumnSpec("s", "string", min_length=2, max_length=3),
            ["ab", "a", "abcd"],
            [[], ["s:str_length(2..3)"], ["s:str_length(2..3)"]],
        ),
        (ColumnSpec("s", "string", min_length=1), ["a", ""], [[], ["s:str_length(1..)"]]),
        (ColumnSpec("c", "string", nullable=False), ["AA", None], [[], ["c:not_null"]]),
    ],
    ids=["ge", "le", "gt", "lt", "isin", "regex", "str_length", "str_length_min", "not_null"],
)
def test_each_check_names_the_failing_rows(spec: ColumnSpec, values: list[object], expected: list[list[str]]) -> None:
    assert _failures(spec, values) == expected


def test_several_failures_on_one_row_are_all_reported() -> None:
    specs = [ColumnSpec("n", "int", nullable=False, ge=0, le=10), ColumnSpec("o", "string", isin=("A",), regex="^A$")]
    frame = pd.DataFrame({"n": [20.0, math.nan, 5.0], "o": ["B", "A", "A"]})
    assert _by_row(specs, frame) == [
        ["n:le(10)", "o:isin", "o:regex"],
        ["n:not_null"],
        [],
    ]


def test_a_clean_batch_has_no_failures() -> None:
    frame = pd.DataFrame({"n": range(1000)})
    assert row_failures(build_schema([ColumnSpec("n", "int", ge=0)], "t"), frame) == {}


def test_not_null_is_dropped_when_the_type_check_explains_the_null() -> None:
    assert _explained(f"arr_time:type{SEP}a:b", ["arr_time:not_null", "dest:isin"]) == ["dest:isin"]
    assert _explained("x:finite", ["x:not_null"]) == []
    assert _explained(None, ["x:not_null"]) == ["x:not_null"]


def test_column_specs_read_the_config_node() -> None:
    node = OmegaConf.structured(
        DatasetConfig(
            source=SourceConfig(format="csv", path="x.csv"),
            columns=[ColumnConfig(name="dep", type="int", source_name="DepTime", nullable=False)],
        )
    )
    node.columns[0].checks.ge = 0
    node.columns[0].checks.str_length = StrLengthCheck(min=1)
    (spec,) = column_specs(node)
    assert (spec.name, spec.source, spec.nullable, spec.ge, spec.min_length) == ("dep", "DepTime", False, 0, 1)
