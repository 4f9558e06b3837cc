"""Sweep command lines, parsed by Hydra's parser and checked against the shipped conf/ before any data
is read: grid values, plain overrides passed through, what the grid refuses, and a bad trial named."""

from __future__ import annotations

from functools import partial

import pytest

from lakeforge.config import load_config
from lakeforge.errors import ConfigError
from lakeforge.training.sweep import is_multirun, parse_sweep, plan_sweep, without_multirun_flag
from tests.conftest import CONF_DIR

compose = partial(load_config, conf_dir=CONF_DIR)


def test_the_multirun_flag_is_hydras() -> None:
    assert is_multirun(["-m", "a=1,2"]) and is_multirun(["a=1,2", "--multirun"]) and not is_multirun(["a=1,2"])
    assert without_multirun_flag(["-m", "run_date=2013-10-15", "a=1,2"]) == ["run_date=2013-10-15", "a=1,2"]


def test_a_grid_is_every_combination_of_its_axes() -> None:
    spec = parse_sweep(
        ["model.params.num_leaves=15,31", "run_date=2013-10-15", "model.params.learning_rate=choice(0.05,0.1)"]
    )
    assert not spec.optuna and spec.fixed == ("run_date=2013-10-15",) and spec.hydra == ()
    assert spec.grid() == [
        ("model.params.num_leaves=15", "model.params.learning_rate=0.05"),
        ("model.params.num_leaves=15", "model.params.learning_rate=0.1"),
        ("model.params.num_leaves=31", "model.params.learning_rate=0.05"),
        ("model.params.num_leaves=31", "model.params.learning_rate=0.1"),
    ]


def test_range_and_an_added_key_keep_hydras_spelling() -> None:
    spec = parse_sweep(
        ["+model.params.max_depth=range(3,9,2)", "model.params.num_leaves=15", "model.params.num_leaves=7,63"]
    )
    assert spec.grid() == [
        ("+model.params.max_depth=3", "model.params.num_leaves=7"),
        ("+model.params.max_depth=3", "model.params.num_leaves=63"),
        ("+model.params.max_depth=5", "model.params.num_leaves=7"),
        ("+model.params.max_depth=5", "model.params.num_leaves=63"),
        ("+model.params.max_depth=7", "model.params.num_leaves=7"),
        ("+model.params.max_depth=7", "model.params.num_leaves=63"),
    ]
    assert spec.fixed == ()  # the later override of num_leaves won, as in Hydra


def test_the_grid_refuses_an_interval_and_hydra_settings() -> None:
    with pytest.raises(
        ConfigError,
        match=r"^override 'model.params.learning_rate=interval\(0.01,0.1\)': interval\(\) is a continuous range, "
        r"which the grid cannot enumerate .* or sample it with hydra/sweeper=optuna$",
    ):
        parse_sweep(["model.params.learning_rate=interval(0.01,0.1)"])
    with pytest.raises(ConfigError, match=r"^override 'hydra.sweeper.n_trials=5': Hydra's own settings only matter"):
        parse_sweep(["hydra.sweeper.n_trials=5", "model.params.num_leaves=15,31"])
    with pytest.raises(ConfigError, match=r"^override 'hydra/sweeper=basic': the sweepers are the grid"):
        parse_sweep(["hydra/sweeper=basic"])
    with pytest.raises(ConfigError, match=r"^override 'model.params.num_leaves=choice\(15,': cannot parse it"):
        parse_sweep(["model.params.num_leaves=choice(15,"])


def test_optuna_takes_intervals_and_keeps_hydra_settings_apart() -> None:
    spec = parse_sweep(
        [
            "hydra/sweeper=optuna",
            "hydra.sweeper.n_trials=5",
            "run_date=2013-10-15",
            "model.params.num_leaves=int(interval(8,64))",
        ]
    )
    assert spec.optuna and spec.hydra == ("hydra/sweeper=optuna", "hydra.sweeper.n_trials=5")
    assert spec.fixed == ("run_date=2013-10-15",)
    ((axis),) = spec.axes
    assert (axis.key, axis.values) == ("model.params.num_leaves", ("8", "64"))


def test_a_plain_override_passes_through_to_every_trial() -> None:
    plan = plan_sweep(["run_date=2013-10-15", "model.params.n_estimators=20", "model.params.num_leaves=15,63"], compose)
    assert [t.overrides for t in plan.trials] == [("model.params.num_leaves=15",), ("model.params.num_leaves=63",)]
    assert [t.cfg.model.params.num_leaves for t in plan.trials] == [15, 63]
    assert {t.cfg.model.params.n_estimators for t in plan.trials} == {20} and plan.cfg.run_date == "2013-10-15"


def test_an_ill_typed_trial_is_refused_up_front_naming_its_override() -> None:
    with pytest.raises(
        ConfigError,
        match=r"^sweep override 'model.params.num_leaves=many,15': value many: "
        r"LGBMClassifier expects an integer \(default 31\), got 'many' \(str\)$",
    ):
        plan_sweep(["run_date=2013-10-15", "model.params.num_leaves=many,15"], compose)


def test_an_unknown_key_or_class_is_refused_naming_its_override() -> None:
    with pytest.raises(
        ConfigError, match=r"^sweep override 'model.params.num_leaf=15,31': value 15: .*add a key the config lacks"
    ):
        plan_sweep(["run_date=2013-10-15", "model.params.num_leaf=15,31"], compose)
    with pytest.raises(
        ConfigError,
        match=r"^sweep override 'model.estimator._target_=lightgbm.LGBMClasifier,lightgbm.LGBMClassifier': "
        r"value lightgbm.LGBMClasifier: cannot import .*did you mean 'LGBMClassifier'",
    ):
        plan_sweep(
            ["run_date=2013-10-15", "model.estimator._target_=lightgbm.LGBMClasifier,lightgbm.LGBMClassifier"], compose
        )


def test_optuna_bounds_are_checked_and_a_float_interval_on_an_integer_is_explained() -> None:
    with pytest.raises(
        ConfigError,
        match=r"^sweep override 'model.params.num_leaves=interval\(8,64\)': value 8.0: LGBMClassifier expects an "
        r"integer .*; sample integers with int\(interval\(low,high\)\)$",
    ):
        plan_sweep(["hydra/sweeper=optuna", "run_date=2013-10-15", "model.params.num_leaves=interval(8,64)"], compose)


def test_optuna_settings_are_checked_before_the_sweep_starts() -> None:
    with pytest.raises(
        ConfigError,
        match=r"^override 'hydra.sweeper.n_trial=3': the Optuna sweeper has no setting 'n_trial' "
        r"\(did you mean 'n_trials'.*\?\); it has sampler, direction, ",
    ):
        plan_sweep(["hydra/sweeper=optuna", "hydra.sweeper.n_trial=3", "run_date=2013-10-15"], compose)
    with pytest.raises(
        ConfigError,
        match=r"^override 'hydra.sweeper.direction=minimize': the best trial is the one with the highest "
        r"validation.roc_auc: drop the override or set hydra.sweeper.direction=maximize$",
    ):
        plan_sweep(
            [
                "hydra/sweeper=optuna",
                "hydra.sweeper.direction=minimize",
                "run_date=2013-10-15",
                "model.params.num_leaves=7,15",
            ],
            compose,
        )
