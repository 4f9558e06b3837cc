"""params.yaml is generated from conf/ and reported when stale."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lakeforge.config import load_config
from lakeforge.config.params import hydra_value, params_overrides, stale_params, write_params
from tests.unit.config.conftest import CONF_DIR, edit


def test_committed_params_yaml_matches_conf() -> None:
    problem = stale_params(load_config([], conf_dir=CONF_DIR), CONF_DIR.parent)
    assert problem is None, f"{problem} (run `lakeforge params` and commit params.yaml)"


def test_stale_params_name_the_changed_group(conf_copy: Path) -> None:
    write_params(load_config([], conf_dir=conf_copy), conf_copy.parent)
    edit(conf_copy, "spark/local.yaml", "shuffle_partitions: 8", "shuffle_partitions: 16")
    problem = stale_params(load_config([], conf_dir=conf_copy), conf_copy.parent)
    assert problem is not None
    assert str(problem).startswith("params.yaml: does not match conf/ (differs under: spark)")
    assert "`lakeforge params`" in str(problem)


def test_missing_params_yaml(conf_copy: Path) -> None:
    problem = stale_params(load_config([], conf_dir=conf_copy), conf_copy.parent)
    assert str(problem) == "params.yaml: missing: run `lakeforge params` to generate it from conf/"


def test_secrets_stay_interpolations(conf_copy: Path) -> None:
    text = write_params(load_config([], conf_dir=conf_copy), conf_copy.parent).read_text()
    assert "${oc.env:" in text


def test_call_keys_are_not_params(conf_copy: Path) -> None:
    data = yaml.safe_load(
        write_params(load_config(["run_date=2013-10-16"], conf_dir=conf_copy), conf_copy.parent).read_text()
    )
    assert not set(data) & {"run_date", "start_date", "end_date", "repro", "project_root"}


def _dvc_composed(conf_dir: Path, overrides: list[str]) -> None:
    """params.yaml as `dvc exp run -S` writes it: DVC's own Hydra composition, interpolations resolved."""
    from dvc.utils.hydra import compose_and_dump

    compose_and_dump(
        str(conf_dir.parent / "params.yaml"), str(conf_dir), None, "config", str(conf_dir.parent), overrides
    )


def test_the_overrides_of_a_dvc_experiment_are_recovered_from_its_params_yaml(conf_copy: Path) -> None:
    cfg = load_config([], conf_dir=conf_copy)
    _dvc_composed(conf_copy, ["model.params.num_leaves=63", "model.scoring.reasons.top_k=3"])
    assert "${oc.env:" not in (conf_copy.parent / "params.yaml").read_text()  # DVC resolved them

    overrides = params_overrides(cfg, conf_copy.parent)

    assert overrides == ["model.params.num_leaves=63", "model.scoring.reasons.top_k=3"]
    applied = load_config(overrides, conf_dir=conf_copy)
    assert applied.model.params.num_leaves == 63
    # Written back from conf/ plus the overrides: interpolations as in conf/, no override lost.
    text = write_params(applied, conf_copy.parent).read_text()
    assert "${oc.env:LAKEFORGE_HOME,.}/mlflow.db" in text
    assert params_overrides(cfg, conf_copy.parent) == overrides


def test_a_dvc_composition_without_overrides_matches_conf(conf_copy: Path) -> None:
    _dvc_composed(conf_copy, [])
    assert params_overrides(load_config([], conf_dir=conf_copy), conf_copy.parent) == []


def test_a_switched_config_group_becomes_leaf_overrides(conf_copy: Path) -> None:
    _dvc_composed(conf_copy, ["spark=cluster"])
    overrides = params_overrides(load_config([], conf_dir=conf_copy), conf_copy.parent)
    assert "spark.shuffle_partitions=200" in overrides
    assert load_config(overrides, conf_dir=conf_copy).spark.shuffle_partitions == 200


@pytest.mark.parametrize(
    "value",
    [
        "plain",
        "it's",
        "back\\slash",
        "ends with \\",
        "a,b=c",
        "",
        "null",
        "über",
        3,
        0.5,
        True,
        None,
        [1, "x"],
        {"a": [1]},
    ],
)
def test_hydra_value_round_trips_through_hydras_parser(value: object) -> None:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_override(f"key={hydra_value(value)}").value()
    assert parsed == value
