"""`lakeforge lineage` on a real training run (SQLite MLflow store, registered model) and real Delta
tables: a feature table written twice with its raw inputs recorded, and a prediction table written by
two scoring jobs. Each prediction is traced back to its model version, training run, data versions,
DVC hashes, code and config; each mistake is one clear error."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from lakeforge.errors import SqlError, TableError, TableNotFoundError, UsageError
from lakeforge.lake.catalog import Catalog
from lakeforge.lake.delta import Lineage, write_table
from lakeforge.scoring.lineage import prediction_lineage
from lakeforge.scoring.lineage_text import no_match_message, render_json, render_text
from lakeforge.training.run import train
from tests.spark.helpers_train import make_project

PREDICTIONS = (
    "carrier string, flight int, origin string, time_hour timestamp, prediction int, score double, "
    "reasons array<struct<feature:string, contribution:double>>, reasons_method string, model_name string, "
    "model_alias string, model_version int, model_run_id string, served boolean, feature_table string, "
    "feature_table_version long, scored_at timestamp, job_run_id string, run_date date"
)


def _predictions(spark: Any, run_id: str, day: date, feature_version: int, job: str, flights: list[int]) -> Any:
    reasons = [("hour_of_day", 0.4), ("key", -0.1)]
    rows = [
        (
            carrier,
            flight,
            "EWR",
            datetime(day.year, day.month, day.day, 7),
            1,
            0.71,
            reasons,
            "path",
            "demo_model",
            "champion",
            1,
            run_id,
            True,
            "features.demo",
            feature_version,
            datetime(day.year, day.month, day.day, 6, 30),
            job,
            day,
        )
        for carrier in ("AA", "UA")
        for flight in flights
    ]
    return spark.createDataFrame(rows, PREDICTIONS)


@pytest.fixture(scope="module")
def project(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Catalog, str]:
    """A trained demo_model v1, features.demo v0 and v1, and predictions.demo_model from two scoring jobs."""
    tmp_path = tmp_path_factory.mktemp("lineage")
    cfg, catalog = make_project(spark, tmp_path)
    (tmp_path / "dvc.lock").write_text(
        "stages:\n  extract:\n    outs:\n    - path: data/raw/ev.csv\n      md5: d1ce5\n"
    )
    features = spark.createDataFrame([(1, 7, 0)], "id int, hour_of_day int, key int")
    for job in ("job-features-1", "job-features-2"):
        lineage = Lineage(job, "fea7e5", False, "hf", {"raw.ev": 0}, "features")
        write_table(features, catalog, "features.demo", mode="overwrite", lineage=lineage)
    trained = train(spark, cfg, catalog, Lineage("job-train", "abc123", False, "h1", step="train"))
    for day, feature_version, job, commit in ((10, 0, "job-score-1", "5c0re1"), (11, 1, "job-score-2", "5c0re2")):
        frame = _predictions(spark, trained.run_id, date(2024, 6, day), feature_version, job, [7, 8])
        lineage = Lineage(job, commit, True, "hs", {"features.demo": feature_version}, "score")
        write_table(frame, catalog, "predictions.demo_model", partition_by=["run_date"], lineage=lineage)
    return cfg, catalog, trained.run_id


def test_each_prediction_is_traced_to_its_model_run_data_code_and_config(project: tuple[Any, Catalog, str]) -> None:
    cfg, catalog, run_id = project
    report = prediction_lineage(cfg, catalog, "predictions.demo_model", "carrier = 'AA' AND flight = 7")
    assert (report.table, report.table_version, report.rows) == ("predictions.demo_model", 1, 2)
    first, second = report.lineages
    assert (first.rows, first.run_dates, second.run_dates) == (1, [date(2024, 6, 10)], [date(2024, 6, 11)])
    assert (first.model.version, first.model.alias, first.model.aliases_now) == (1, "champion", ["challenger"])
    run = first.training_run
    assert run.found and run.run_id == run_id and second.training_run is run
    assert run.run_date == "2024-06-10" and run.inputs == {"raw.ev": 0} and run.dvc == {"data/raw/ev.csv": "d1ce5"}
    assert (run.git_commit, run.git_dirty, run.config_hash, run.primary_metric) == ("abc123", False, "h1", "roc_auc")
    assert next(iter(run.metrics)) == "test.roc_auc" and "test.slice.key.0.0.roc_auc" not in run.metrics
    assert run.config_uri and run.config_uri.endswith(f"{run_id}/artifacts/config/composed.yaml") and run.config is None
    sources = {d["name"]: d for d in run.datasets}
    assert sources["raw.ev"]["version"] == 0 and sources["raw.ev"]["path"].endswith("lake/raw/ev")
    assert sources["demo.train"]["context"] == "train" and sources["demo.train"]["rows"] > 0
    assert (first.feature_table.versions, second.feature_table.versions) == ([0], [1])
    assert (first.feature_table.job_run_id, first.feature_table.inputs) == ("job-features-1", {"raw.ev": 0})
    assert (second.scoring_job.job_run_id, second.scoring_job.versions) == ("job-score-2", [1])
    assert (second.scoring_job.git_commit, second.scoring_job.git_dirty) == ("5c0re2", True)
    assert second.scoring_job.inputs == {"features.demo": 1}

    text = render_text(report)
    assert text.startswith("predictions.demo_model (version 1) where carrier = 'AA' AND flight = 7: 2 rows in 2")
    assert "lineage 1 of 2: 1 row, run_date 2024-06-10, scored 2024-06-10 06:30:00 UTC" in text
    assert "  model           demo_model v1, scored as 'champion' (now: challenger); gate: not evaluated" in text
    assert f"  training run    {run_id} 'train demo_model 2024-06-10', started " in text
    assert "  test metrics    roc_auc 0." in text and "(primary), log_loss 0." in text
    assert "  training data   raw.ev v0\n" in text and "  raw data (dvc)  data/raw/ev.csv d1ce5\n" in text
    assert "  training code   abc123 (clean)\n" in text and f"  config          hash h1, {run.config_uri}\n" in text
    assert (
        "  feature table   features.demo v0: job job-features-1, step features, code fea7e5 (clean), config hash hf\n"
        "    read          raw.ev v0\n"
    ) in text
    assert "  scoring job     job-score-2 wrote predictions.demo_model v1: step score, code 5c0re2 (dirty)" in text
    assert f"  training run    {run_id}, as in lineage 1\n" in text

    data = json.loads(render_json(report))
    assert data["rows"] == 2 and data["lineages"][1]["feature_table"]["versions"] == [1]
    assert (
        data["lineages"][0]["run_dates"] == ["2024-06-10"] and data["lineages"][0]["training_run"]["run_id"] == run_id
    )


def test_all_rows_by_model_name_and_the_composed_config(project: tuple[Any, Catalog, str]) -> None:
    cfg, catalog, _ = project
    report = prediction_lineage(cfg, catalog, "demo_model", with_config=True)
    assert report.rows == 8 and [g.rows for g in report.lineages] == [4, 4]
    config = report.lineages[0].training_run.config
    assert config is not None and "name: demo_model" in config
    assert "\n    model:\n" in render_text(report)


def test_no_match_and_each_mistake_is_one_clear_error(project: tuple[Any, Catalog, str]) -> None:
    cfg, catalog, _ = project
    empty = prediction_lineage(cfg, catalog, "predictions.demo_model", "flight = 404")
    assert empty.lineages == [] and no_match_message(empty) == (
        "no rows of 'predictions.demo_model' (version 1) match --where \"flight = 404\""
    )
    with pytest.raises(
        TableNotFoundError, match=r"table 'predictions\.nope' does not exist .*did you mean 'predictions\.demo_model'"
    ):
        prediction_lineage(cfg, catalog, "predictions.nope")
    with pytest.raises(TableError, match=r"table 'raw\.ev' is not a prediction table: it lacks column\(s\) model_name"):
        prediction_lineage(cfg, catalog, "raw.ev")
    with pytest.raises(SqlError, match=r"--where \"flihgt = 7\" on 'predictions\.demo_model' failed: .*\"flihgt\""):
        prediction_lineage(cfg, catalog, "predictions.demo_model", "flihgt = 7")
    with pytest.raises(SqlError, match=r"--where \"flight = = 7\" is not a valid SQL predicate: syntax error"):
        prediction_lineage(cfg, catalog, "predictions.demo_model", "flight = = 7")
    with pytest.raises(UsageError, match=r"one SQL expression, without ';'"):
        prediction_lineage(cfg, catalog, "predictions.demo_model", "flight = 7; SELECT 1")
    with pytest.raises(UsageError, match=r"closes a parenthesis it did not open"):
        prediction_lineage(cfg, catalog, "predictions.demo_model", "true) UNION SELECT * FROM raw.ev WHERE (true")
    with pytest.raises(UsageError, match=r"comments are not allowed"):
        prediction_lineage(cfg, catalog, "predictions.demo_model", "true) --")
    assert prediction_lineage(cfg, catalog, "predictions.demo_model", "reasons_method = 'a;b'").lineages == []


def test_a_missing_run_and_commit_are_notes_not_failures(
    spark: Any, project: tuple[Any, Catalog, str], tmp_path: Path
) -> None:
    cfg, _, run_id = project
    frame = _predictions(spark, "0" * 32, date(2024, 6, 12), 7, "job-lost", [9]).drop("model_alias", "scored_at")
    lake = Catalog(tmp_path / "lake")
    write_table(frame, lake, "predictions.demo_model")  # no lineage; features.demo not in this lake
    report = prediction_lineage(cfg, lake, "predictions.demo_model", "flight = 9")
    text = render_text(report)
    assert f"  training run    {'0' * 32}: not found in MLflow store sqlite:///" in text
    assert (
        f"  model           demo_model v1; the registry says v1 was trained by run {run_id}, the rows say 000" in text
    )
    assert "  feature table   features.demo v7: table 'features.demo' does not exist" in text
    assert "  scoring job     job-lost: no commit of 'predictions.demo_model' records this job" in text
