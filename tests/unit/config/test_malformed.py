"""Malformed configs: every message names the file (or override) and key, says what is allowed.

The feature-set and model cases edit the frozen fixture (``fixtures/project``, via ``fixture_conf``),
not the shipped demo files; the other groups are the shipped ones.
"""
# ruff: noqa: E501

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

import pytest

from lakeforge.config import check_all, load_config
from lakeforge.errors import ConfigError

from .conftest import edit

JDBC = "  format: jdbc\n  url: jdbc:postgresql://db:5432/air?user=etl&password=hunter2\n  table: airlines"


class Case(NamedTuple):
    """One broken config: the edit (or overrides) and the text the message must contain."""

    file: str | None
    old: str
    new: str
    overrides: tuple[str, ...]
    expected: tuple[str, ...]


M, F, D, S, P = (
    "model/flight_delay.yaml",
    "features/flight_delay.yaml",
    "dataset/flights.yaml",
    "schedule/daily_score.yaml",
    "pipeline/flight_delay.yaml",
)
CM, CF, CD, CS, CP = (f"conf/{x}: " for x in (M, F, D, S, P))

CASES: dict[str, Case] = {
    "unknown key": Case(
        M,
        "params:",
        "params_typo: 1\nparams:",
        (),
        (f"{CM}model.params_typo: unknown key (did you mean 'params'?); allowed keys: name, estimator,",),
    ),
    "unknown key in list item": Case(
        F,
        "prefix: wx_",
        "prefx: wx_",
        (),
        (
            f"{CF}features.asof_joins[0].prefx: unknown key (did you mean 'prefix'?)",
            "allowed keys: dataset, keys",
        ),
    ),
    "wrong type int": Case(
        M, "seed: 42", "seed: abc", (), (f"{CM}model.seed: wrong type: Value 'abc'", "(expected int)")
    ),
    "wrong type bool in list item": Case(
        D,
        "{name: year, type: int, nullable: false",
        "{name: year, type: int, nullable: maybe",
        (),
        (f"{CD}dataset.flights.columns[0].nullable: wrong type", "(expected bool)"),
    ),
    "list where string expected": Case(
        M,
        "feature_set: flight_delay",
        "feature_set: [a]",
        (),
        (f"{CM}model.feature_set: wrong type", "(expected str)"),
    ),
    "wrong type in list": Case(
        M,
        "  - hour_cos",
        "  - {a: 1}",
        (),
        (f"{CM}model.features[16]: wrong type: got a mapping, expected str",),
    ),
    "missing required key": Case(
        M,
        "feature_set: flight_delay\n",
        "",
        (),
        (f"{CM}model.feature_set: required value is missing (str); set 'feature_set'",),
    ),
    "missing required in dataset": Case(
        "dataset/planes.yaml",
        "  format: csv\n",
        "",
        (),
        ("conf/dataset/planes.yaml: dataset.planes.source.format: required value is missing",),
    ),
    "unknown group option": Case(
        P,
        "/dataset@dataset.flights: flights",
        "/dataset@dataset.flights: flightz",
        (),
        (
            f"{CP}defaults (dataset: flightz): unknown option 'flightz' for config group 'dataset' "
            "(did you mean 'flights'?); available: airlines, airports, flights, planes, weather",
        ),
    ),
    "missing defaults entry": Case(
        "config.yaml",
        "  - tracking: local\n",
        "",
        (),
        (
            "conf/config.yaml: tracking.uri: required value is missing",
            "add '- tracking: <option>' to the defaults list (options: local, server)",
        ),
    ),
    "defaults entry to a missing file": Case(
        "config.yaml",
        "  - tracking: local\n",
        "  - tracking: lokal\n",
        (),
        ("conf/config.yaml: defaults (tracking: lokal): unknown option 'lokal'", "(did you mean 'local'?)"),
    ),
    "unparsable yaml flow": Case(
        M, "seed: 42", "seed: [42", (), (f"{CM}line 45, column 5: invalid YAML: expected ',' or ']'",)
    ),
    "unparsable yaml indentation": Case(
        M,
        "seed: 42",
        "  seed: 42\n bad",
        (),
        (f"{CM}line 44, column 7: invalid YAML: mapping values are not allowed here",),
    ),
    "unknown spine dataset": Case(
        F,
        "  dataset: flights",
        "  dataset: flightz",
        (),
        (
            f"{CF}features.spine.dataset: 'flightz' is not a composed dataset of this pipeline (did you mean 'flights'?)",
        ),
    ),
    "unknown window column": Case(
        F,
        "column: dep_delay, window: 7d",
        "column: dep_delai, window: 7d",
        (),
        (
            f"{CF}features.windows[0].column: 'dep_delai' is not a column or expression feature of dataset 'flights' "
            "(did you mean 'dep_delay'?)",
        ),
    ),
    "unknown group-by column": Case(
        F,
        "by: [origin, dest]",
        "by: [origin, dst]",
        (),
        (f"{CF}features.windows[3].by[1]: 'dst' is not a column of dataset 'flights' (did you mean 'dest'?)",),
    ),
    "unknown join column": Case(
        F,
        "columns: [temp, wind_speed",
        "columns: [tmp, wind_speed",
        (),
        (f"{CF}features.asof_joins[0].columns[0]: 'tmp' is not a column of dataset 'weather' (did you mean 'temp'?)",),
    ),
    "unknown entity key": Case(
        F,
        "entity: [carrier, flight, origin]",
        "entity: [carrier, flight_no, origin]",
        (),
        (f"{CF}features.entity[1]: 'flight_no' is not a column of spine dataset 'flights' (did you mean 'flight'?)",),
    ),
    "unknown model feature": Case(
        M,
        "  - distance_km",
        "  - dep_hour",
        (),
        (
            f"{CM}model.features[3]: 'dep_hour' is not defined by feature set 'flight_delay' "
            "(did you mean 'sched_dep_hour'?) (defined: sched_dep_hour,",
        ),
    ),
    "model feature set not composed": Case(
        M,
        "feature_set: flight_delay",
        "feature_set: flights",
        (),
        (f"{CM}model.feature_set: feature set 'flights' is not composed (composed: 'flight_delay')",),
    ),
    "pipeline model not composed": Case(
        P,
        "  model: flight_delay",
        "  model: flight_delai",
        (),
        (f"{CP}pipeline.model: 'flight_delai' is not composed", "add '- /model: flight_delai'"),
    ),
    "pipeline dataset not composed": Case(
        P,
        "datasets: [flights,",
        "datasets: [flight,",
        (),
        (f"{CP}pipeline.datasets[0]: 'flight' is not a composed dataset", "(did you mean 'flights'?)"),
    ),
    "bad start date": Case(
        S,
        '"2013-06-01"',
        '"2013-13-01"',
        (),
        (f"{CS}schedule.daily_score.start_date: '2013-13-01' is not a valid date", "write YYYY-MM-DD"),
    ),
    "non-ISO start date": Case(
        S,
        '"2013-06-01"',
        '"06/01/2013"',
        (),
        (f"{CS}schedule.daily_score.start_date: '06/01/2013' is not an ISO date; write YYYY-MM-DD",),
    ),
    "negative window": Case(
        F,
        "window: 7d, by: [carrier]",
        "window: -7d, by: [carrier]",
        (),
        (f"{CF}features.windows[0].window: '-7d' is negative; durations here must be positive",),
    ),
    "zero window": Case(
        F,
        "window: 7d, by: [carrier]",
        "window: 0d, by: [carrier]",
        (),
        (f"{CF}features.windows[0].window: '0d' is zero; durations here must be positive",),
    ),
    "unparsable duration": Case(
        F,
        "available_after: 1d",
        "available_after: one day",
        (),
        (f"{CF}features.label.available_after: 'one day' is not a duration; use a number and a unit",),
    ),
    "bad cron": Case(
        S,
        '"0 6 * * *"',
        '"0 6 * *"',
        (),
        (f"{CS}schedule.daily_score.cron: '0 6 * *' is not a cron expression: it needs 5 fields",),
    ),
    "bad cron preset": Case(
        "schedule/weekly_train.yaml",
        '"@weekly"',
        '"@weeky"',
        (),
        ("conf/schedule/weekly_train.yaml: schedule.weekly_train.cron: unknown cron preset '@weeky'",),
    ),
    "unknown step": Case(
        S,
        "features, score, materialize, monitor]",
        "features, scor, materialize, monitor]",
        (),
        (
            f"{CS}schedule.daily_score.steps[2]: unknown step 'scor' (did you mean 'score'?); allowed: ingest, features,",
        ),
    ),
    "step without a job": Case(
        S,
        "features, score, materialize, monitor]",
        "features, score, materialize, monitor, report]",
        (),
        (f"{CS}schedule.daily_score.steps[5]: step 'report' has no job to run yet (jobs: ingest, features,",),
    ),
    "duplicate feature name": Case(
        F,
        "name: distance_km",
        "name: sched_dep_hour",
        (),
        (f"{CF}features: duplicate feature name 'sched_dep_hour'",),
    ),
    "overlapping split windows": Case(
        M,
        "validation: {start: -60d",
        "validation: {start: -90d",
        (),
        (f"{CM}model.splits.validation.start: validation window starts at -90d, before the train window ends",),
    ),
    "split start after end": Case(
        M,
        "test: {start: -30d, end: -1d}",
        "test: {start: -1d, end: -30d}",
        (),
        (f"{CM}model.splits.test: start -1d must be before end -30d",),
    ),
    "unknown metric": Case(
        M,
        "metrics: [roc_auc, pr_auc,",
        "metrics: [roc_auc, pr_acu,",
        (),
        (f"{CM}model.metrics[1]: unknown metric 'pr_acu' (did you mean 'pr_auc'",),
    ),
    "unknown source format": Case(
        D,
        "format: csv",
        "format: xls",
        (),
        (f"{CD}dataset.flights.source.format: unknown format 'xls'; allowed: csv, parquet, json, jdbc, delta",),
    ),
    "unknown column type": Case(
        D,
        "{name: dep_delay, type: double, checks",
        "{name: dep_delay, type: dubble, checks",
        (),
        (f"{CD}dataset.flights.columns[5].type: unknown column type 'dubble' (did you mean 'double'?)",),
    ),
    "literal password": Case(
        "dataset/airlines.yaml",
        "  options:\n",
        "  password: hunter2\n  options:\n",
        (),
        ("conf/dataset/airlines.yaml: dataset.airlines.source.password: literal credential", "${oc.env:"),
    ),
    "password in jdbc url": Case(
        "dataset/airlines.yaml",
        "  format: csv\n  path: data/raw/airlines.csv",
        JDBC,
        (),
        ("conf/dataset/airlines.yaml: dataset.airlines.source.url: literal credential in the value",),
    ),
    "interpolation to a missing env var": Case(
        "storage/local.yaml",
        "lake_root: lake",
        "lake_root: ${oc.env:LAKEFORGE_TEST_UNSET_VAR}",
        (),
        (
            "conf/storage/local.yaml: storage.lake_root: cannot resolve '${oc.env:LAKEFORGE_TEST_UNSET_VAR}': "
            "Environment variable 'LAKEFORGE_TEST_UNSET_VAR' not found",
        ),
    ),
    "interpolation to a missing key": Case(
        M,
        "seed: 42",
        "seed: ${model.no_such_key}",
        (),
        (f"{CM}model.seed: cannot resolve '${{model.no_such_key}}'",),
    ),
    "bad deadline time": Case(
        "monitor/flight_delay.yaml",
        '"07:00"',
        '"7am"',
        (),
        ("conf/monitor/flight_delay.yaml: monitor.deadlines.predictions_by: '7am' is not a time of day",),
    ),
    "unknown alert signal": Case(
        "monitor/flight_delay.yaml",
        "signal: drift_share,",
        "signal: drift_shar,",
        (),
        (
            "conf/monitor/flight_delay.yaml: monitor.alerts.rules[0].signal: unknown signal 'drift_shar' "
            "(did you mean 'drift_share'",
        ),
    ),
    "drift method for the wrong kind": Case(
        "monitor/flight_delay.yaml",
        "categorical: {method: jensenshannon",
        "categorical: {method: ks",
        (),
        (
            "conf/monitor/flight_delay.yaml: monitor.drift.categorical.method: 'ks' does not apply to categorical values",
        ),
    ),
    "bad override syntax": Case(
        None,
        "",
        "",
        ("model.params.num_leaves=63=",),
        ("override 'model.params.num_leaves=63=': cannot parse override", "write key=value"),
    ),
    "override without value": Case(None, "", "", ("model.seed",), ("override 'model.seed': cannot parse override",)),
    "unknown override key": Case(
        None,
        "",
        "",
        ("model.seedz=1",),
        ("override 'model.seedz=1': model.seedz: unknown key (did you mean 'seed'?)",),
    ),
    "unknown appended override key": Case(
        None,
        "",
        "",
        ("+model.seedz=1",),
        ("override '+model.seedz=1': model.seedz: unknown key (did you mean 'seed'?)",),
    ),
    "override of wrong type": Case(
        None,
        "",
        "",
        ("model.seed=abc",),
        ("override 'model.seed=abc': model.seed: wrong type", "(expected int)"),
    ),
    "override unknown group option": Case(
        None,
        "",
        "",
        ("storage=lokal",),
        (
            "override 'storage=lokal': unknown option 'lokal' for config group 'storage' (did you mean 'local'?); "
            "available: local, s3",
        ),
    ),
    "override bad run_date": Case(
        None,
        "",
        "",
        ("run_date=2013/07/01",),
        ("override 'run_date=2013/07/01': run_date: '2013/07/01' is not an ISO date",),
    ),
}


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_malformed_config_is_reported(case: Case, fixture_conf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAKEFORGE_TEST_UNSET_VAR", raising=False)
    if case.file:
        edit(fixture_conf, case.file, case.old, case.new)
    with pytest.raises(ConfigError, match=re.escape(case.expected[0])) as info:
        load_config(list(case.overrides), conf_dir=fixture_conf)
    message = str(info.value)
    for part in case.expected:
        assert part in message
    assert "Traceback" not in message
    assert 'File "' not in message


CHECK_ALL_CASES = [
    "unknown key",
    "unparsable yaml flow",
    "unknown group option",
    "unknown model feature",
    "bad cron",
    "literal password",
    "bad override syntax",
    "override of wrong type",
]


@pytest.mark.parametrize("name", CHECK_ALL_CASES)
def test_check_all_reports_without_raising(name: str, fixture_conf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    case = CASES[name]
    monkeypatch.delenv("LAKEFORGE_TEST_UNSET_VAR", raising=False)
    if case.file:
        edit(fixture_conf, case.file, case.old, case.new)
    _, problems = check_all(list(case.overrides), fixture_conf)
    assert problems
    assert any(case.expected[0] in str(p) for p in problems)
    for problem in problems:
        assert problem.key, str(problem)
        assert problem.file or str(problem).startswith("override '"), str(problem)
