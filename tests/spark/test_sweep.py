"""Sweeps end to end on a real SQLite MLflow store and real Delta tables: a grid and an Optuna sweep
each nest their trials under one parent run, build the training data once, and register exactly one
version, the best on validation, as challenger; a trial that fails leaves the parent FAILED."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from lakeforge.errors import ConfigError, DataValidationError
from lakeforge.lake.delta import Lineage
from lakeforge.training.sweep import Compose, plan_sweep, run_sweep, trials_table
from tests.spark.helpers_train import make_project


def _composer(base: Any) -> Compose:
    """Overrides applied to the small project's config, as Hydra would apply them to conf/."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()

    def compose(overrides: Sequence[str]) -> Any:
        cfg = copy.deepcopy(base)
        for override in parser.parse_overrides(list(overrides)):
            OmegaConf.update(cfg, override.key_or_group, override.value(), force_add=override.is_add())
        return cfg

    return compose


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory: a sweep must leave nothing in it (no mlflow.db, mlruns/, multirun/)."""
    folder = tmp_path / "cwd"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def _conf_dir(tmp_path: Path, cfg: Any) -> Path:
    """A conf/ holding the small project's config, for hydra.main (the Optuna sweeper)."""
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    return conf


def _lineage() -> Lineage:
    return Lineage("job-sweep", git_commit="abc", git_dirty=False, config_hash="h", step="train")


def _children(client: Any, parent: str) -> list[Any]:
    runs = client.search_runs(
        [client.get_run(parent).info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent}'"
    )
    return sorted(runs, key=lambda r: int(r.data.tags["lakeforge.sweep.trial"]))


def test_a_grid_nests_its_trials_and_registers_the_best_on_validation(spark: Any, tmp_path: Path, cwd: Path) -> None:
    import mlflow

    cfg, catalog = make_project(spark, tmp_path)
    plan = plan_sweep(["model.params.num_leaves=2,7,15", "model.params.n_estimators=10"], _composer(cfg))
    assert [t.overrides for t in plan.trials] == [(f"model.params.num_leaves={n}",) for n in (2, 7, 15)]

    result = run_sweep(spark, catalog, _lineage(), plan)

    client = mlflow.MlflowClient()
    parent = client.get_run(result.parent_run_id)
    children = _children(client, result.parent_run_id)
    assert [c.data.params["params.num_leaves"] for c in children] == ["2", "7", "15"]
    assert {c.info.experiment_id for c in children} == {parent.info.experiment_id}
    assert all(c.info.status == "FINISHED" for c in [parent, *children]) and result.data_builds == 1
    assert parent.info.run_name == "sweep demo_model 2024-06-10"

    validation = {c.info.run_id: c.data.metrics["validation.roc_auc"] for c in children}
    best = max(validation, key=lambda run_id: validation[run_id])
    assert result.best.result.run_id == best and result.best.value == validation[best]
    versions = client.search_model_versions("name = 'demo_model'")
    assert [str(v.version) for v in versions] == ["1"] and versions[0].run_id == best
    assert client.get_registered_model("demo_model").aliases == {"challenger": 1}
    assert versions[0].tags["lakeforge.run_id"] == best and versions[0].tags["lakeforge.run_date"] == "2024-06-10"
    assert (
        parent.data.tags["lakeforge.sweep.best_run_id"] == best
        and parent.data.tags["lakeforge.sweep.best_version"] == "1"
    )
    assert json.loads(parent.data.tags["lakeforge.sweep.best_params"]) == result.best.params
    assert parent.data.metrics["best.validation.roc_auc"] == validation[best]
    assert parent.data.params["sweep.model.params.num_leaves"] == "2,7,15"
    assert mlflow.sklearn.load_model("models:/demo_model@challenger").get_params()["num_leaves"] == int(
        result.best.params["model.params.num_leaves"]
    )

    table = trials_table(result).splitlines()
    assert table[0].split() == ["trial", "model.params.num_leaves", "validation.roc_auc", "test.roc_auc", "run"]
    assert [line.startswith("*") for line in table[1:4]] == [t is result.best for t in result.trials]
    assert table[-1].startswith(f"best: trial {result.best.number} (higher validation.roc_auc is better)")
    assert list(cwd.iterdir()) == [] and not (tmp_path / "mlruns").exists()


def test_a_failing_trial_leaves_the_parent_failed_and_registers_nothing(spark: Any, tmp_path: Path, cwd: Path) -> None:
    import mlflow

    cfg, catalog = make_project(spark, tmp_path)
    compose = _composer(cfg)
    with pytest.raises(ConfigError, match=r"sweep override 'model.params.num_leaves=7,many': value many: "):
        plan_sweep(["model.params.num_leaves=7,many"], compose)  # refused before any data is read or run logged
    # A validation window that ends before it starts is empty: found when the second trial builds its data.
    plan = plan_sweep(["model.params.n_estimators=5", "model.splits.validation.end=-5d,-12d"], compose)
    with pytest.raises(DataValidationError, match=r"no labelled rows in split window\(s\) validation"):
        run_sweep(spark, catalog, _lineage(), plan)
    # The same error from a trial of the Optuna sweeper reaches the caller as itself (Hydra neither prints nor exits).
    optuna = ["hydra/sweeper=optuna", "hydra.sweeper.n_trials=2", "model.splits.validation.end=choice(-12d)"]
    with pytest.raises(DataValidationError, match=r"no labelled rows in split window\(s\) validation"):
        run_sweep(spark, catalog, _lineage(), plan_sweep(optuna, compose), conf_dir=_conf_dir(tmp_path, cfg))

    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name("lakeforge/demo").experiment_id
    grid, sampled = sorted(
        client.search_runs([experiment], filter_string="tags.`lakeforge.step` = 'sweep'"),
        key=lambda r: r.data.tags["lakeforge.sweep.sampler"] == "optuna",
    )
    assert (grid.info.status, sampled.info.status) == ("FAILED", "FAILED")
    assert [c.info.status for c in _children(client, grid.info.run_id)] == ["FINISHED"]
    assert _children(client, sampled.info.run_id) == []
    assert client.search_registered_models() == [] and list(cwd.iterdir()) == []


def test_an_optuna_sweep_is_seeded_and_nests_its_trials(spark: Any, tmp_path: Path, cwd: Path) -> None:
    import mlflow
    import optuna

    cfg, catalog = make_project(spark, tmp_path)
    overrides = [
        "hydra/sweeper=optuna",
        "hydra.sweeper.n_trials=3",
        "model.params.n_estimators=10",
        "model.params.num_leaves=int(interval(2,15))",
    ]
    plan = plan_sweep(overrides, _composer(cfg))

    result = run_sweep(spark, catalog, _lineage(), plan, conf_dir=_conf_dir(tmp_path, cfg))

    client = mlflow.MlflowClient()
    parent = client.get_run(result.parent_run_id)
    children = _children(client, result.parent_run_id)
    assert len(children) == 3 and result.data_builds == 1
    assert parent.info.status == "FINISHED" and parent.data.tags["lakeforge.sweep.sampler"] == "optuna"
    # The sampler is seeded with model.seed (3): the trials are what that seed draws.
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=3), direction="maximize")
    expected = []
    for _ in range(3):
        trial = study.ask()
        expected.append(str(trial.suggest_int("model.params.num_leaves", 2, 15)))
        study.tell(trial, 0.5)
    assert [c.data.params["params.num_leaves"] for c in children] == expected
    versions = client.search_model_versions("name = 'demo_model'")
    best = max(children, key=lambda c: c.data.metrics["validation.roc_auc"])
    assert [v.run_id for v in versions] == [best.info.run_id] == [result.best.result.run_id]
    assert client.get_registered_model("demo_model").aliases == {"challenger": 1}
    # Hydra wrote only the sweeper's result, under the git-ignored reports/.
    written = sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "reports").rglob("*") if p.is_file())
    assert written == ["reports/sweeps/demo_model/job-sweep/optimization_results.yaml"]
    assert list(cwd.iterdir()) == [] and not (tmp_path / "multirun").exists()
