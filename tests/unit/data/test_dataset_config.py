"""Dataset declarations: new checks compose, and mistakes in them are reported at compose time."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lakeforge.config import load_config
from lakeforge.errors import ConfigError
from tests.unit.config.conftest import edit

W = "dataset/weather.yaml"
CW = f"conf/{W}: dataset.weather."


def test_shipped_datasets_compose_with_their_checks() -> None:
    cfg = load_config([], conf_dir=Path(__file__).resolve().parents[3] / "conf")
    weather = cfg.dataset.weather
    assert weather.checks.unique == ["origin", "time_hour"]
    assert weather.checks.row_count.min == 20000
    assert weather.max_bad_fraction == 0.01 and weather.new_columns == "error"
    assert cfg.dataset.flights.checks.unique is None  # defaults to the primary key


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("checks: {ge: 0, le: 100}}", "checks: {ge: 100, le: 0}}", "columns[7].checks: ge: 100 is above le: 0"),
        (
            "checks: {isin: [EWR, JFK, LGA]}}",
            'checks: {regex: "[A-"}}',
            "columns[0].checks.regex: '[A-' is not a valid RE2 regular expression",
        ),
        (
            "checks: {isin: [EWR, JFK, LGA]}}",
            r'checks: {regex: "^(.)\\1$"}}',
            r"columns[0].checks.regex: '^(.)\1$' is not a valid RE2 regular expression: invalid escape sequence",
        ),
        (
            "{name: year, type: int, nullable: false, checks: {ge: 2013, le: 2013}}",
            "{name: year, type: int, checks: {regex: x}}",
            "columns[1].checks.regex: 'regex' needs a string column, not int",
        ),
        (
            "unique: [origin, time_hour]",
            "unique: [origin, time_hr]",
            "checks.unique[1]: 'time_hr' is not a column of dataset 'weather' (did you mean 'time_hour'?)",
        ),
        (
            "row_count: {min: 20000, max: 100000}",
            "row_count: {min: 20000, max: 10}",
            "checks.row_count: min 20000 is above max 10",
        ),
        (
            "row_count: {min: 20000, max: 100000}",
            "row_count: {min: 1}\n  freshness: {column: time_hour, max_age: soon}",
            "checks.freshness.max_age: 'soon' is not a duration",
        ),
        (
            "row_count: {min: 20000, max: 100000}",
            "row_count: {min: 1}\n  freshness: {column: tme_hour, max_age: 2h}",
            "checks.freshness.column: 'tme_hour' is not a column",
        ),
        (
            "partition_by: [month]",
            "partition_by: [month]\nmax_bad_fraction: 1.5",
            "max_bad_fraction: 1.5 is not a fraction between 0 and 1",
        ),
        (
            "partition_by: [month]",
            "partition_by: [month]\nnew_columns: ignor",
            "new_columns: unknown policy 'ignor' (did you mean 'ignore'?); allowed: error, ignore",
        ),
        (
            "partition_by: [month]",
            "partition_by: [ym]",
            "partition_by[0]: 'ym' is not a column or derived column of dataset 'weather'",
        ),
        (
            "checks: {ge: -40, le: 130}}",
            "checks: {min: -40}}",
            "checks.min: unknown key; allowed keys: ge, le, gt, lt, isin, regex, str_length",
        ),
    ],
    ids=[
        "ge>le",
        "bad regex",
        "backreference (not RE2)",
        "regex on int",
        "unique column",
        "row_count",
        "freshness age",
        "freshness column",
        "fraction",
        "policy",
        "partition",
        "old min key",
    ],
)
def test_bad_dataset_checks_are_reported(conf_copy: Path, old: str, new: str, expected: str) -> None:
    edit(conf_copy, W, old, new)
    with pytest.raises(ConfigError, match=re.escape(expected)) as info:
        load_config([], conf_dir=conf_copy)
    assert CW in str(info.value)


def test_derived_partition_column_composes(conf_copy: Path) -> None:
    edit(
        conf_copy,
        W,
        "partition_by: [month]",
        "derived_columns:\n  - {name: ym, expr: \"date_format(time_hour, 'yyyy-MM')\"}\npartition_by: [ym]",
    )
    cfg = load_config([], conf_dir=conf_copy)
    assert cfg.dataset.weather.derived_columns[0].name == "ym"
