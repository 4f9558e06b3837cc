"""`lakeforge reproduce` on real Delta tables and a real SQLite MLflow store: a version retrained from
its recorded config and data versions (after the table moved on) gives the very same metrics and
leaves the registry alone; vacuumed data and a nondeterministic feature are refused with the reason;
the config rebuild works on the shipped project's composed config."""

from __future__ import annotations

import copy
import re
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from lakeforge.errors import ConfigError, ReproductionError
from lakeforge.lake.catalog import Catalog
from lakeforge.lake.delta import Lineage, vacuum, write_table
from lakeforge.training.reproduce import check_readable, rebuild_config, reproduce
from lakeforge.training.run import TrainResult, train
from tests.conftest import CONF_DIR
from tests.spark.helpers_train import make_project

REPRODUCE = Lineage("job-reproduce", git_commit="abc123", git_dirty=False, config_hash="ignored", step="reproduce")


def _train(spark: Any, cfg: Any, catalog: Catalog) -> TrainResult:
    return train(spark, cfg, catalog, Lineage("job-train", git_commit="abc123", git_dirty=False, step="train"))


@pytest.fixture(scope="module")
def trained(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Catalog, TrainResult]:
    """v1 trained on raw.ev version 0, then raw.ev moved on: version 1 adds rows to every split's window."""
    cfg, catalog = make_project(spark, tmp_path_factory.mktemp("reproduce"))
    v1 = _train(spark, cfg, catalog)
    later = [(100_000 + i, i % 3, datetime(2024, 5, 2) + timedelta(hours=7 * i), 2.0) for i in range(150)]
    write_table(spark.createDataFrame(later, "id int, k int, t timestamp, v double"), catalog, "raw.ev", mode="append")
    return cfg, catalog, v1


def test_a_version_reproduces_exactly_from_its_record_and_leaves_the_registry_alone(
    spark: Any, trained: tuple[Any, Catalog, TrainResult]
) -> None:
    import mlflow

    cfg, catalog, v1 = trained
    now = copy.deepcopy(cfg)  # the project has moved on too: neither change may leak into the reproduction
    now.model.seed = 99
    now.model.params.num_leaves = 2

    result = reproduce(spark, now, catalog, REPRODUCE, "demo_model", "1")

    assert result.matched and result.differences == [] and result.recorded == result.reproduced
    assert result.recorded["test"]["roc_auc"] == v1.metrics["test"]["roc_auc"]
    assert result.recorded["test"]["rows"] == v1.rows["test"]  # raw.ev version 1 has more test rows
    assert result.recorded["baseline.test"]["roc_auc"] == v1.baseline_metrics["test"]["roc_auc"]  # type: ignore[index]
    assert {"test.slice.key.0.0", "test.slice.key.2.0"} <= set(result.recorded)
    assert (result.inputs, result.run_date) == ({"raw.ev": 0}, "2024-06-10")

    client = mlflow.MlflowClient()
    assert [int(v.version) for v in client.search_model_versions("name = 'demo_model'")] == [1]
    assert client.get_registered_model("demo_model").aliases == {"challenger": 1}
    run = client.get_run(result.run_id)
    assert run.data.tags["lakeforge.reproduces"] == "demo_model/v1"
    assert run.data.tags["lakeforge.reproduction.matched"] == "true"
    assert run.data.tags["lakeforge.step"] == "reproduce" and run.data.tags["lakeforge.inputs"] == '{"raw.ev": 0}'
    assert run.data.params["seed"] == "3" and run.data.params["params.num_leaves"] == "7"
    assert run.info.run_name == "reproduce demo_model v1"

    report = result.describe()
    assert report.startswith("demo_model v1 reproduced exactly: all ")
    auc = re.escape(repr(v1.metrics["test"]["roc_auc"]))
    assert re.search(rf"^  test\.roc_auc +{auc} +{auc}  0$", report, re.MULTILINE)
    assert "slice metrics (test.slice.*): " in report and "all equal" in report


def test_a_vacuumed_table_version_is_refused_naming_the_table_and_version(
    spark: Any, trained: tuple[Any, Catalog, TrainResult], tmp_path: Path
) -> None:
    cfg, catalog, _ = trained
    lake = Catalog(tmp_path / "lake")  # a copy, so the other tests keep their data
    shutil.copytree(catalog.lake_root, lake.lake_root)
    frame = spark.createDataFrame([(1, 0, datetime(2024, 6, 1), 0.1)], "id int, k int, t timestamp, v double")
    write_table(frame, lake, "raw.ev", mode="overwrite")
    vacuum(lake, "raw.ev", retention_hours=0)

    with pytest.raises(
        ReproductionError,
        match=r"^cannot reproduce demo_model v1: it was trained on table 'raw.ev' version 0, but \d+ of that "
        r"version's \d+ data files are gone \(e.g. '.*\.parquet'\), most likely removed by `lakeforge vacuum`",
    ):
        reproduce(spark, cfg, lake, REPRODUCE, "demo_model", "v1")
    with pytest.raises(
        ReproductionError,
        match=r"^cannot reproduce demo_model v1: it was trained on table 'raw.ev' version 7, which can no "
        r"longer be read: table 'raw.ev' has no version 7: available versions are 0\.\.2$",
    ):
        check_readable(lake, {"raw.ev": 7}, "demo_model v1")


def test_metrics_that_do_not_come_back_are_a_reproduction_error(
    spark: Any, trained: tuple[Any, Catalog, TrainResult], tmp_path: Path
) -> None:
    import mlflow

    cfg, catalog = make_project(spark, tmp_path)
    store = Path(str(trained[0].project_root))  # the module's MLflow store: no second migration (~5 s)
    cfg.tracking = {"uri": f"sqlite:///{store / 'mlflow.db'}", "artifact_location": str(store / "mlartifacts")}
    # rand() without a seed: the feature, so the model, differs on every run; the seed cannot help.
    cfg.features.expressions.append({"name": "noise", "expr": "rand()"})
    cfg.model.name = "noisy_model"
    _train(spark, cfg, catalog)

    with pytest.raises(
        ReproductionError, match=r"^noisy_model v1 did not reproduce: \d+ of \d+ recorded metrics differ: "
    ):
        reproduce(spark, cfg, catalog, REPRODUCE, "noisy_model", "1")

    client = mlflow.MlflowClient()
    (run,) = client.search_runs(
        [client.get_experiment_by_name("lakeforge/demo").experiment_id],
        filter_string="tags.`lakeforge.reproduces` = 'noisy_model/v1'",
    )
    assert run.data.tags["lakeforge.reproduction.matched"] == "false"
    assert client.get_registered_model("noisy_model").aliases == {"challenger": 1}


def test_the_shipped_projects_composed_config_is_rebuilt_with_the_current_environment() -> None:
    from lakeforge.config import config_hash, load_config
    from lakeforge.config.params import params_data, render_params

    recorded = load_config(["run_date=2013-10-15", "model.params.num_leaves=15"], conf_dir=CONF_DIR)
    text = render_params(recorded)

    same = rebuild_config(text, recorded, run_date="2013-10-15")  # the call keys are the run's tags, not its config
    assert params_data(same) == params_data(recorded) and config_hash(same) == config_hash(recorded)

    now = load_config(["storage.lake_root=/elsewhere/lake", "model.seed=7"], conf_dir=CONF_DIR)
    rebuilt = rebuild_config(text, now, run_date="2013-10-16")
    assert rebuilt.model.params.num_leaves == 15 and rebuilt.model.seed == 42  # the recording's
    assert rebuilt.storage.lake_root == "/elsewhere/lake" and rebuilt.project_root == now.project_root
    assert rebuilt.run_date == "2013-10-16"
    assert list(rebuilt.model.features) == list(recorded.model.features)

    old = text.replace("    min_improvement:", "    max_regression:")
    with pytest.raises(
        ConfigError,
        match=r"^run X: model\.gate\.max_regression: unknown key; allowed keys: min_metrics, max_metrics, "
        r"min_improvement, require_champion, slices, fairness, baseline; the recorded config no longer fits "
        r"this lakeforge's schema$",
    ):
        rebuild_config(old, now, origin="run X")
