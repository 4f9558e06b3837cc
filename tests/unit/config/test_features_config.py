"""Feature-set config checks: every message names the file and key and says what is allowed.

The broken declarations are edits of the frozen fixture feature set, model and transforms
(``fixtures/project``, laid over a copy of the shipped conf/ by ``fixture_conf``), never of the
shipped demo files.
"""
# ruff: noqa: E501

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import NamedTuple

import pytest

from lakeforge.config import check_all, load_config
from lakeforge.errors import ConfigError

from .conftest import FIXTURE_ROOT, edit

F, M = "features/flight_delay.yaml", "model/flight_delay.yaml"
CF, CM = "conf/features/flight_delay.yaml: ", "conf/model/flight_delay.yaml: "
LABEL = "'is_delayed' is the label of feature set 'flight_delay'; a label is never a feature"
LAST_WINDOW = "  - {name: route_flights_7d, function: count, window: 7d, by: [origin, dest]}\n"
_DEF_LINE = next(
    n
    for n, line in enumerate((FIXTURE_ROOT / "features" / "flight_delay_transforms.py").read_text().splitlines(), 1)
    if line.startswith("def cyclic_hour(")
)
KNOWN = f"known transforms: cyclic_hour (features/flight_delay_transforms.py:{_DEF_LINE})"


def _window(spec: str) -> tuple[str, str, str]:
    """(file, old, new) adding a fifth window (``features.windows[4]``) after the fixture's four."""
    return F, LAST_WINDOW, f"{LAST_WINDOW}  - {{{spec}}}\n"


class Case(NamedTuple):
    """One broken config: the edit and the texts the message must contain (the first, in full)."""

    file: str
    old: str
    new: str
    expected: tuple[str, ...]


CASES: dict[str, Case] = {
    "unknown window column": Case(
        F,
        "column: dep_delay, window: 3h",
        "column: dep_delai, window: 3h",
        (
            f"{CF}features.windows[1].column: 'dep_delai' is not a column or expression feature of dataset 'flights' (did you mean 'dep_delay'?)",
        ),
    ),
    "unknown as-of event_time column": Case(
        F,
        "    event_time: time_hour",
        "    event_time: time_hr",
        (
            f"{CF}features.asof_joins[0].event_time: 'time_hr' is not a column of dataset 'weather' (did you mean 'time_hour'?)",
        ),
    ),
    "unknown window source": Case(
        F,
        "by: [origin, dest]}",
        "by: [origin, dest], source: flightz}",
        (
            f"{CF}features.windows[3].source: 'flightz' is not a composed dataset of this pipeline (did you mean 'flights'?)",
        ),
    ),
    "unknown as-of dataset": Case(
        F,
        "  - dataset: weather",
        "  - dataset: wether",
        (
            f"{CF}features.asof_joins[0].dataset: 'wether' is not a composed dataset of this pipeline (did you mean 'weather'?)",
        ),
    ),
    "bad window lag": Case(
        F,
        "by: [origin], lag: 1h}",
        "by: [origin], lag: 1 hour}",
        (f"{CF}features.windows[1].lag: '1 hour' is not a duration; use a number and a unit",),
    ),
    "bad as-of max_age": Case(
        F,
        "max_age: 3h",
        "max_age: 3 hours",
        (f"{CF}features.asof_joins[0].max_age: '3 hours' is not a duration; use a number and a unit",),
    ),
    "zero as-of max_age": Case(
        F,
        "max_age: 3h",
        "max_age: 0h",
        (f"{CF}features.asof_joins[0].max_age: '0h' is zero; durations here must be positive",),
    ),
    "bad as-of lag": Case(
        F,
        "max_age: 3h",
        "max_age: 3h\n    lag: 1x",
        (f"{CF}features.asof_joins[0].lag: '1x' is not a duration",),
    ),
    "as-of tolerance was renamed": Case(
        F,
        "max_age: 3h",
        "tolerance: 3h",
        (f"{CF}features.asof_joins[0].tolerance: unknown key", "max_age"),
    ),
    "window without by": Case(
        F,
        "by: [origin, dest]}",
        "by: []}",
        (f"{CF}features.windows[3].by: a window needs 'by': the entity columns it aggregates over",),
    ),
    "window by not in the spine": Case(
        *_window("name: origin_temp_1d, function: avg, column: temp, window: 1d, by: [origin, dewp], source: weather"),
        (
            f"{CF}features.windows[4].by[1]: 'dewp' is not a column of spine dataset 'flights' (each spine row is matched to rows of 'weather' by the window's 'by' columns, so both need them)",
        ),
    ),
    "window by not in the source": Case(
        *_window(
            "name: origin_temp_1d, function: avg, column: temp, window: 1d, by: [origin, carrier], source: weather"
        ),
        (f"{CF}features.windows[4].by[1]: 'carrier' is not a column of dataset 'weather'",),
    ),
    "window source without event time": Case(
        *_window("name: tail_rows_30d, function: count, window: 30d, by: [tailnum], source: planes"),
        (
            f"{CF}features.windows[4].available_at: dataset 'planes' declares no event_time, so nothing says when its rows become known",
            "set the window's available_at",
        ),
    ),
    "unknown available_at column": Case(
        F,
        "filter: dep_delay > 15",
        "filter: dep_delay > 15\n    available_at: arr_tme",
        (
            f"{CF}features.windows[2].available_at: 'arr_tme' is not a column of dataset 'flights' (did you mean 'arr_time',",
        ),
    ),
    "label as window column": Case(
        F,
        "column: dep_delay, window: 7d",
        "column: is_delayed, window: 7d",
        (f"{CF}features.windows[0].column: {LABEL}", "lag of at least label.available_after"),
    ),
    "label as transform input": Case(
        F,
        "inputs: [sched_dep_hour]",
        "inputs: [is_delayed]",
        (f"{CF}features.transforms[0].inputs[0]: {LABEL}",),
    ),
    "label in model.features": Case(
        M,
        "  - distance_km",
        "  - is_delayed",
        (f"{CM}model.features[3]: {LABEL}",),
    ),
    "unknown transform": Case(
        F,
        "name: cyclic_hour",
        "name: cyclic_hourz",
        (f"{CF}features.transforms[0].name: unknown transform 'cyclic_hourz' (did you mean 'cyclic_hour'?); {KNOWN}",),
    ),
    "bad on_missing": Case(
        F,
        "prefix: plane_}",
        "prefix: plane_, on_missing: skip}",
        (
            f"{CF}features.static_joins[0].on_missing: unknown policy 'skip'; allowed: null (keep the row, features null), drop (leave the row out), fail (fail the build, naming the unmatched keys)",
        ),
    ),
    "unknown timezone": Case(
        F,
        "entity: [carrier, flight, origin]",
        "entity: [carrier, flight, origin]\ntimezone: America/New_Yrok",
        (
            f"{CF}features.timezone: unknown time zone 'America/New_Yrok' (did you mean 'America/New_York',",
            "; use an IANA name, e.g. UTC, America/New_York",
        ),
    ),
    "timezone that is a folder": Case(
        F,
        "entity: [carrier, flight, origin]",
        "entity: [carrier, flight, origin]\ntimezone: America",
        (f"{CF}features.timezone: unknown time zone 'America'", "America/New_York"),
    ),
    "empty entity": Case(
        F,
        "entity: [carrier, flight, origin]",
        "entity: []",
        (f"{CF}features.entity: a feature set needs 'entity': the spine columns that identify what a row describes",),
    ),
    "bad label delay": Case(
        F,
        "available_after: 1d",
        "available_after: -1d",
        (f"{CF}features.label.available_after: '-1d' is negative; durations here must be positive",),
    ),
}


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_bad_feature_config_is_reported(case: Case, fixture_conf: Path) -> None:
    edit(fixture_conf, case.file, case.old, case.new)
    with pytest.raises(ConfigError, match=re.escape(case.expected[0])) as info:
        load_config([], conf_dir=fixture_conf)
    message = str(info.value)
    for part in case.expected:
        assert part in message
    assert "Traceback" not in message


@pytest.mark.parametrize(
    ("old", "new"),
    [
        # Declared values that must keep composing: the policies, a zone, both as-of durations,
        # a window over another dataset keyed by shared columns, available_at as an expression.
        ("prefix: plane_}", "prefix: plane_, on_missing: drop}"),
        ("prefix: plane_}", "prefix: plane_, on_missing: fail}"),
        ("entity: [carrier, flight, origin]", "entity: [carrier, flight, origin]\ntimezone: America/New_York"),
        ("max_age: 3h", "max_age: 3h\n    lag: 0s"),
        ("max_age: 3h", "lag: 1h"),
    ],
    ids=["on_missing drop", "on_missing fail", "timezone", "as-of lag and max_age", "as-of no max_age"],
)
def test_valid_feature_config_composes(fixture_conf: Path, old: str, new: str) -> None:
    edit(fixture_conf, F, old, new)
    cfg = load_config([], conf_dir=fixture_conf)
    assert cfg.features.name == "flight_delay"


@pytest.mark.parametrize(
    "spec",
    [
        "name: origin_temp_1d, function: avg, column: temp, window: 1d, by: [origin], source: weather",
        "name: tail_rows_30d, function: count, window: 30d, by: [tailnum], source: planes, available_at: 'make_timestamp(year, 1, 1, 0, 0, 0)'",
        "name: arrivals_1d, function: count, window: 1d, by: [origin], available_at: current_timestamp",
    ],
    ids=["other source, shared by", "no event time but available_at", "available_at SQL word"],
)
def test_valid_windows_compose(fixture_conf: Path, spec: str) -> None:
    edit(fixture_conf, *_window(spec))
    cfg = load_config([], conf_dir=fixture_conf)
    assert len(cfg.features.windows) == 5


def test_fixture_has_no_problems(fixture_conf: Path) -> None:
    """The fixture, unedited, composes cleanly: every problem a case expects comes from its edit."""
    names, problems = check_all([], fixture_conf)
    assert names == ["flight_delay"]
    assert [str(p) for p in problems] == []
    cfg = load_config([], conf_dir=fixture_conf)
    assert cfg.features.description.endswith("(test fixture)")
    assert [w.name for w in cfg.features.windows] == [
        "carrier_dep_delay_7d",
        "origin_dep_delay_3h",
        "carrier_delayed_flights_30d",
        "route_flights_7d",
    ]


def test_schema_defaults(fixture_conf: Path) -> None:
    """What a feature set gets for the keys it leaves out."""
    cfg = load_config([], conf_dir=fixture_conf)
    assert cfg.features.timezone == "UTC"
    assert cfg.features.asof_joins[0].max_age == "3h"
    assert cfg.features.asof_joins[0].lag is None
    assert cfg.features.static_joins[0].on_missing == "null"
    assert cfg.features.windows[0].available_at is None


def test_transform_file_with_syntax_error(fixture_conf: Path) -> None:
    (fixture_conf.parent / "features" / "broken.py").write_text(
        'from lakeforge.features.registry import transform\n\n\n@transform("x")\ndef x(df:\n'
    )
    with pytest.raises(ConfigError) as info:
        load_config([], conf_dir=fixture_conf)
    message = str(info.value)
    assert f"{CF}features.transforms: features/broken.py: line 5" in message
    assert "invalid Python syntax: '(' was never closed" in message


def test_transform_in_another_file_is_known(fixture_conf: Path) -> None:
    (fixture_conf.parent / "features" / "more.py").write_text(
        "import lakeforge.features\n\n\n@lakeforge.features.transform('hour_bucket')\ndef hb(df, inputs, outputs):\n    return df\n"
    )
    edit(fixture_conf, F, "name: cyclic_hour", "name: hour_bucket")
    load_config([], conf_dir=fixture_conf)
    edit(fixture_conf, F, "name: hour_bucket", "name: hour_bukket")
    with pytest.raises(
        ConfigError, match=re.escape("known transforms: cyclic_hour (features/flight_delay_transforms.py:")
    ) as info:
        load_config([], conf_dir=fixture_conf)
    assert "hour_bucket (features/more.py:5)" in str(info.value)


def test_no_transforms_declared(fixture_conf: Path) -> None:
    (fixture_conf.parent / "features" / "flight_delay_transforms.py").unlink()
    with pytest.raises(ConfigError) as info:
        load_config([], conf_dir=fixture_conf)
    assert (
        f"{CF}features.transforms[0].name: unknown transform 'cyclic_hour'; known transforms: none "
        '(declare one in features/*.py with @transform("name"))'
    ) in str(info.value)


def test_without_features_folder_names_are_not_checked(fixture_conf: Path) -> None:
    """A conf/ copied alone (no features/ next to it) still composes: there is nothing to check against."""
    shutil.rmtree(fixture_conf.parent / "features")
    edit(fixture_conf, F, "name: cyclic_hour", "name: cyclic_hourz")
    assert load_config([], conf_dir=fixture_conf).features.transforms[0].name == "cyclic_hourz"


def test_check_all_reports_unknown_transform_and_label(fixture_conf: Path) -> None:
    edit(fixture_conf, F, "name: cyclic_hour", "name: cyclic_hourz")
    edit(fixture_conf, M, "  - distance_km", "  - is_delayed")
    _, problems = check_all([], fixture_conf)
    texts = [str(p) for p in problems]
    assert (
        f"{CF}features.transforms[0].name: unknown transform 'cyclic_hourz' (did you mean 'cyclic_hour'?); {KNOWN}"
        in texts
    )
    assert f"{CM}model.features[3]: {LABEL}" in texts
    assert all(p.file and p.key for p in problems)
