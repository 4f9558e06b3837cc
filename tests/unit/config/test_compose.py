"""The shipped conf/ composes cleanly; overrides, hashing, paths and Hydra hygiene."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra

from lakeforge.config import (
    check_all,
    config_hash,
    find_conf_dir,
    load_config,
    register_schemas,
    resolve_path,
)
from lakeforge.errors import ConfigError, ConfigErrors

from .conftest import CONF_DIR, edit


def test_shipped_conf_has_no_problems() -> None:
    names, problems = check_all(conf_dir=CONF_DIR)
    assert names == ["flight_delay"]
    assert [str(p) for p in problems] == []


def test_load_config_composes_every_group() -> None:
    cfg = load_config(conf_dir=CONF_DIR)
    assert cfg.pipeline.name == "flight_delay"
    assert set(cfg.dataset) == {"flights", "weather", "planes", "airlines", "airports"}
    assert set(cfg.schedule) == {"daily_score", "weekly_train"}
    assert cfg.model.estimator._target_ == "lightgbm.LGBMClassifier"
    assert cfg.features.spine.dataset == "flights"
    assert cfg.storage.lake_root == "lake"
    assert cfg.spark.master == "local[*]"
    assert cfg.tracking.uri.startswith("sqlite:///")
    assert cfg.project_root == str(CONF_DIR.parent)


def test_overrides_apply() -> None:
    cfg = load_config(
        ["model.params.num_leaves=63", "storage.lake_root=/tmp/x", "run_date=2013-07-01"], conf_dir=CONF_DIR
    )
    assert cfg.model.params.num_leaves == 63
    assert cfg.storage.lake_root == "/tmp/x"
    assert cfg.run_date == "2013-07-01"


def test_group_switch_overrides() -> None:
    cfg = load_config(["storage=s3", "spark=cluster", "tracking=server"], conf_dir=CONF_DIR)
    assert cfg.storage.kind == "s3"
    assert cfg.spark.shuffle_partitions == 200
    assert cfg.tracking.uri


def test_pipeline_argument(conf_copy: Path) -> None:
    cfg = load_config(conf_dir=conf_copy, pipeline="flight_delay")
    assert cfg.pipeline.name == "flight_delay"


def test_hydra_is_left_clean_and_cwd_untouched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    load_config(conf_dir=CONF_DIR)
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(["model.nope=1"], conf_dir=CONF_DIR)
    assert not GlobalHydra.instance().is_initialized()
    assert Path.cwd() == tmp_path
    assert list(tmp_path.iterdir()) == []


def test_config_hash_is_stable_and_sensitive() -> None:
    first = config_hash(load_config(conf_dir=CONF_DIR))
    assert first == config_hash(load_config(conf_dir=CONF_DIR))
    assert len(first) == 12
    assert first != config_hash(load_config(["model.seed=7"], conf_dir=CONF_DIR))


def test_config_hash_ignores_project_root(conf_copy: Path) -> None:
    assert config_hash(load_config(conf_dir=conf_copy)) == config_hash(load_config(conf_dir=CONF_DIR))


def test_find_conf_dir_walks_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, conf_copy: Path) -> None:
    monkeypatch.delenv("LAKEFORGE_CONF", raising=False)
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    assert find_conf_dir(nested) == conf_copy


def test_find_conf_dir_env_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEFORGE_CONF", str(CONF_DIR))
    assert find_conf_dir(tmp_path) == CONF_DIR


def test_find_conf_dir_env_without_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEFORGE_CONF", str(tmp_path))
    with pytest.raises(ConfigError, match=r"LAKEFORGE_CONF=.* has no config\.yaml"):
        find_conf_dir()


def test_find_conf_dir_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAKEFORGE_CONF", raising=False)
    with pytest.raises(ConfigError, match=r"no conf/config.yaml in .* or any parent"):
        find_conf_dir(tmp_path)


def test_resolve_path() -> None:
    cfg = load_config(conf_dir=CONF_DIR)
    root = CONF_DIR.parent
    assert resolve_path(cfg, "lake") == str(root / "lake")
    assert resolve_path(cfg, "/abs/lake") == "/abs/lake"
    assert resolve_path(cfg, "s3://bucket/lake") == "s3://bucket/lake"
    assert resolve_path(cfg, "sqlite:///./mlflow.db") == f"sqlite:///{root}/mlflow.db"
    assert resolve_path(cfg, cfg.tracking.artifact_location).startswith(str(root))


def test_register_schemas_is_idempotent() -> None:
    register_schemas()
    register_schemas()
    assert load_config(conf_dir=CONF_DIR).pipeline.name == "flight_delay"


def test_several_problems_are_all_reported(fixture_conf: Path) -> None:
    edit(fixture_conf, "schedule/daily_score.yaml", '"0 6 * * *"', '"0 6 * *"')
    edit(fixture_conf, "model/flight_delay.yaml", "  - distance_km", "  - dep_hour")
    with pytest.raises(ConfigErrors, match=r"2 config problem\(s\)") as info:
        load_config(conf_dir=fixture_conf)
    assert {p.file for p in info.value.problems} == {
        "conf/schedule/daily_score.yaml",
        "conf/model/flight_delay.yaml",
    }


def test_check_all_covers_every_pipeline(conf_copy: Path) -> None:
    second = conf_copy / "pipeline" / "flight_delay_v2.yaml"
    second.write_text(
        (conf_copy / "pipeline" / "flight_delay.yaml").read_text().replace("  model: flight_delay", "  model: nope")
    )
    names, problems = check_all(conf_dir=conf_copy)
    assert names == ["flight_delay", "flight_delay_v2"]
    assert [p.file for p in problems] == ["conf/pipeline/flight_delay_v2.yaml"]
    assert "pipeline.model: 'nope' is not composed" in str(problems[0])


def test_config_package_imports_no_heavy_dependencies() -> None:
    code = (
        "import sys, lakeforge.config as c; c.load_config(conf_dir=__import__('pathlib').Path(sys.argv[1]));"
        "bad = [m for m in ('pyspark', 'mlflow', 'airflow', 'deltalake', 'duckdb') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(CONF_DIR)],
        capture_output=True,
        text=True,
        check=False,
        env=os.environ.copy(),
    )
    assert result.returncode == 0, result.stdout + result.stderr
