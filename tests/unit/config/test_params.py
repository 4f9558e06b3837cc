"""params.yaml is generated from conf/ and reported when stale."""

from __future__ import annotations

from pathlib import Path

from lakeforge.config import load_config
from lakeforge.config.params import stale_params, write_params
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
