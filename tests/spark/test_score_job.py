"""The scoring job end to end on a real SQLite MLflow store, real Delta tables and local Spark: the
contract's columns and lineage, idempotent re-runs, shadow and canary rows, missing-prediction
accounting, output validation, exports, a SIGKILLed job, and a rollback re-score."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from datetime import date, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from deltalake import DeltaTable
from omegaconf import OmegaConf

from lakeforge.errors import DataValidationError, RegistryError
from lakeforge.lake.delta import data_files, read_table, write_table
from lakeforge.scoring.hashing import bucket
from lakeforge.scoring.job import score
from lakeforge.tracking.registry import promote_by_hand, rollback
from lakeforge.training.run import train
from tests.spark.helpers_train import job_lineage as _lineage
from tests.spark.helpers_train import make_project

ROOT = Path(__file__).resolve().parents[2]
TABLE = "predictions.demo_model"
COLUMNS = [
    "id",
    "t",
    "prediction",
    "score",
    "reasons",
    "reasons_method",
    "model_name",
    "model_alias",
    "model_version",
    "model_run_id",
    "served",
    "feature_table",
    "feature_table_version",
    "scored_at",
    "job_run_id",
    "run_date",
]
DAY = date(2024, 6, 9)  # 72 events: 24 hours x 3 keys


@pytest.fixture(scope="module")
def project(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """Two registered versions: v1 (champion) and v2 (challenger, a weaker model)."""
    import mlflow

    tmp = tmp_path_factory.mktemp("score")
    cfg, catalog = make_project(spark, tmp)
    # Not a model feature: a column that is sometimes null, for required_features.
    cfg.features.expressions.append({"name": "v_or_null", "expr": "CASE WHEN id % 5 = 0 THEN NULL ELSE v END"})
    cfg.model.features = ["hour_of_day", "key", "n_1d"]
    cfg.model.gate.baseline = None  # no baseline model to fit and log: scoring never reads it
    v1 = train(spark, cfg, catalog, _lineage("train"))
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri, registry_uri=uri)
    promote_by_hand(cfg, "demo_model", "1", "test: the first champion")
    weaker = cfg.copy()
    weaker.model.params = {"n_estimators": 3, "num_leaves": 2, "verbose": -1}
    v2 = train(spark, weaker, catalog, _lineage("train"))
    return SimpleNamespace(cfg=cfg, catalog=catalog, client=client, tmp=tmp, v1=v1, v2=v2)


def _cfg(project: SimpleNamespace, scoring: dict[str, Any] | None = None, **dates: str) -> Any:
    cfg = project.cfg.copy()
    cfg.run_date = dates.get("run_date", DAY.isoformat())
    cfg.start_date = dates.get("start_date")
    cfg.end_date = dates.get("end_date")
    cfg.model.scoring = scoring or {}
    return cfg


def _rows(spark: Any, project: SimpleNamespace, day: date = DAY) -> Any:
    frame = read_table(spark, project.catalog, TABLE)
    return frame.where(frame.run_date == day).toPandas()


def test_a_scored_date_carries_lineage_reasons_and_coverage(spark: Any, project: SimpleNamespace) -> None:
    export_dir = project.tmp / "exports" / "parquet"
    scoring = {"exports": [{"format": "parquet", "path": str(export_dir)}]}
    result = score(spark, _cfg(project, scoring), project.catalog, _lineage("score"))

    rows = _rows(spark, project)
    assert list(rows.columns) == COLUMNS
    assert len(rows) == result.rows == 72 and rows.set_index(["id", "t"]).index.is_unique
    assert (rows.model_name == "demo_model").all() and (rows.model_alias == "champion").all()
    assert (rows.model_version == 1).all() and (rows.model_run_id == project.v1.run_id).all() and rows.served.all()
    assert (rows.feature_table == "features.demo").all()
    assert (rows.feature_table_version == result.feature_table_version).all()
    assert rows.score.between(0, 1).all() and (rows.prediction == (rows.score >= 0.5).astype(int)).all()
    assert (rows.reasons_method == "path").all()
    features = {"hour_of_day", "key", "n_1d"}
    for reasons in rows.reasons:
        assert 1 <= len(reasons) <= 3 and {r["feature"] for r in reasons} <= features
        magnitudes = [abs(r["contribution"]) for r in reasons]
        assert magnitudes == sorted(magnitudes, reverse=True)

    # The commit repeats the lineage and the coverage.
    commit = DeltaTable(project.catalog.table_uri(TABLE)).history(1)[0]
    assert commit["lakeforge.step"] == "score" and commit["lakeforge.git_commit"] == "abc"
    models = json.loads(commit["lakeforge.models"])
    assert models["champion"]["version"] == 1 and models["champion"]["run_id"] == project.v1.run_id
    coverage = json.loads(commit["lakeforge.coverage"])
    assert coverage == {DAY.isoformat(): {"population": 72, "scored": 72, "missing": {}}}
    inputs = json.loads(commit["lakeforge.inputs"])
    assert inputs["features.demo"] == result.feature_table_version and "raw.ev" in inputs
    missing = read_table(spark, project.catalog, f"{TABLE}__missing")
    assert missing.where(missing.run_date == DAY).count() == 0

    # One SQL join takes a prediction back to its training run, data versions and git commit.
    from lakeforge.lake.sql import run_sql

    joined = run_sql(
        project.catalog,
        "SELECT p.model_version, m.model_run_id, m.git_commit, m.training_inputs, m.aliases, count(*) AS n "
        "FROM predictions.demo_model p JOIN registry.model_versions m USING (model_name, model_version) GROUP BY ALL",
    )
    assert [tuple(r.values()) for r in joined.to_pylist()] == [
        (1, project.v1.run_id, "abc", '{"raw.ev": 0}', "champion", 72)
    ]

    # The export holds the served rows of the date.
    exported = spark.read.parquet(str(export_dir / f"run_date={DAY}"))
    assert exported.count() == 72 and result.exports[0].rows == 72
    assert "population 72; scored 72; without a prediction 0" in result.describe()


def test_explain_recomputes_exact_reasons_for_chosen_rows(spark: Any, project: SimpleNamespace) -> None:
    import math

    from lakeforge.errors import TableError, UsageError
    from lakeforge.scoring.explain import explain

    (found,) = explain(project.cfg, project.catalog, TABLE, "id = 2810 AND model_alias = 'champion'")
    stored = _rows(spark, project).set_index("id").loc[2810]
    assert found.keys["id"] == 2810 and found.keys["t"].replace(tzinfo=None) == stored.t.to_pydatetime()
    assert found.run_date == DAY
    assert found.model == "demo_model v1 (alias champion)" and found.method == "treeshap"
    assert abs(found.score - stored.score) <= 1e-9 and "matches the stored score" in found.describe()
    assert {f for f, _, _ in found.contributions} == {"hour_of_day", "key", "n_1d"}
    raw = found.bias + sum(c for _, _, c in found.contributions)
    assert 1 / (1 + math.exp(-raw)) == pytest.approx(found.score, abs=1e-9)
    assert found.stored_method == "path" and found.stored_reasons == list(stored.reasons)
    with pytest.raises(UsageError, match="matches more than 5 rows"):
        explain(project.cfg, project.catalog, TABLE, "TRUE", limit=5)
    with pytest.raises(TableError, match=r"'features\.demo' is not a prediction table"):
        explain(project.cfg, project.catalog, "features.demo", "TRUE")


def test_rerun_replaces_only_its_dates_leaving_one_set_of_rows(spark: Any, project: SimpleNamespace) -> None:
    first = score(spark, _cfg(project, start_date="2024-06-08", end_date="2024-06-09"), project.catalog, _lineage("s"))
    assert first.rows == 144 and [d.run_date for d in first.days] == [date(2024, 6, 8), DAY]
    before = _rows(spark, project, date(2024, 6, 8))

    again = score(spark, _cfg(project), project.catalog, _lineage("score"))
    assert again.version == first.version + 1
    table = read_table(spark, project.catalog, TABLE).toPandas()
    per_day = table.groupby("run_date").size()
    assert per_day[date(2024, 6, 8)] == per_day[DAY] == 72
    assert table.set_index(["id", "t", "model_alias"]).index.is_unique
    # 8 June untouched (same job), 9 June all from the re-run.
    assert (_rows(spark, project, date(2024, 6, 8)).job_run_id == before.job_run_id.iloc[0]).all()
    assert _rows(spark, project).job_run_id.nunique() == 1
    assert _rows(spark, project).job_run_id.iloc[0] != before.job_run_id.iloc[0]


def test_shadow_scores_the_same_rows_without_serving_them(spark: Any, project: SimpleNamespace) -> None:
    result = score(spark, _cfg(project, {"shadow": ["challenger"]}), project.catalog, _lineage("score"))
    assert result.models["challenger"] == {**result.models["challenger"], "version": 2, "role": "shadow"}
    rows = _rows(spark, project)
    champion, shadow = rows[rows.model_alias == "champion"], rows[rows.model_alias == "challenger"]
    assert len(champion) == len(shadow) == 72
    assert champion.served.all() and not shadow.served.any() and (shadow.model_version == 2).all()
    assert set(zip(champion.id, champion.t, strict=True)) == set(zip(shadow.id, shadow.t, strict=True))
    assert not (champion.sort_values("id").score.to_numpy() == shadow.sort_values("id").score.to_numpy()).all()


def test_canary_serves_a_stable_hash_selected_share(spark: Any, project: SimpleNamespace) -> None:
    scoring = {"canary": {"alias": "challenger", "fraction": 0.3}}
    score(spark, _cfg(project, scoring), project.catalog, _lineage("score"))
    rows = _rows(spark, project)
    served = rows[rows.served]
    assert len(rows) == 144 and len(served) == 72 and served.set_index(["id", "t"]).index.is_unique
    canary_ids = set(served[served.model_alias == "challenger"].id)
    assert canary_ids == {i for i in rows.id if bucket([i], "canary") < 0.3}  # the same hash as online serving
    assert 0.1 < len(canary_ids) / 72 < 0.5

    score(spark, _cfg(project, scoring), project.catalog, _lineage("score"))
    again = _rows(spark, project)
    assert set(again[again.served & (again.model_alias == "challenger")].id) == canary_ids


def test_rows_without_a_prediction_are_counted_and_recorded(spark: Any, project: SimpleNamespace) -> None:
    day = date(2024, 6, 7)
    score(spark, _cfg(project, run_date=day.isoformat()), project.catalog, _lineage("score"))  # builds 7 June
    # Two flights appear after the feature table was built: no feature row.
    late = spark.createDataFrame(
        [(90_001, 0, datetime(2024, 6, 7, 10), 0.5), (90_002, 1, datetime(2024, 6, 7, 11), 0.5)],
        "id int, k int, t timestamp, v double",
    )
    write_table(late, project.catalog, "raw.ev", mode="append")
    result = score(
        spark,
        _cfg(project, {"required_features": ["v_or_null"]}, run_date=day.isoformat()),
        project.catalog,
        _lineage("s"),
    )
    (counts,) = result.days
    null_rows = sum(1 for i in range(37 * 72, 38 * 72) if i % 5 == 0)  # ids of 7 June (day 37 after 1 May)
    assert counts.population == 74 and counts.scored == 72 - null_rows
    assert counts.missing == {
        "missing required feature(s): v_or_null": null_rows,
        f"no feature row in features.demo v{result.feature_table_version}": 2,
    }
    missing = read_table(spark, project.catalog, f"{TABLE}__missing").toPandas()
    missing = missing[missing.run_date == day]
    assert len(missing) == null_rows + 2 and {90_001, 90_002} <= set(missing.id)
    assert (missing.job_run_id == _rows(spark, project, day).job_run_id.iloc[0]).all()
    assert len(_rows(spark, project, day)) == 72 - null_rows
    commit = DeltaTable(project.catalog.table_uri(TABLE)).history(1)[0]
    assert json.loads(commit["lakeforge.coverage"])[day.isoformat()]["population"] == 74
    assert f"without a prediction {null_rows + 2:,}" in result.describe()


class _Overconfident:
    """A 'model' whose scores leave [0, 1]: the worker's validation must stop the commit."""

    def predict_proba(self, x: Any) -> Any:
        import numpy as np

        p = np.full(len(x), 1.5)
        return np.column_stack([1 - p, p])


def test_output_validation_failure_commits_nothing(spark: Any, project: SimpleNamespace) -> None:
    import cloudpickle

    from lakeforge.scoring import job
    from lakeforge.scoring.model import ScoringModel
    from lakeforge.scoring.predict import Scorer

    before = DeltaTable(project.catalog.table_uri(TABLE)).version()
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers need not import this file
    features = ("hour_of_day", "key", "n_1d")
    keys = ["id", "t"]
    scorer = Scorer(
        key="overconfident",
        label="demo_model v9 (alias champion)",
        model=cloudpickle.dumps(_Overconfident()),
        features=features,
        task="classification",
        threshold=0.5,
        method="none",
        top_k=0,
        exact_min_score=None,
        num_threads=1,
        passthrough=(*keys, job.RUN_DATE, job.BUCKET),
    )
    model = ScoringModel("demo_model", "champion", 9, "run", "models:/demo_model/9", features, "classification", None)
    rows = read_table(spark, project.catalog, "features.demo").withColumnRenamed("event_date", job.RUN_DATE)
    schema = job.output_schema(rows, keys, "classification")
    constants = {"feature_table": "features.demo", "feature_table_version": 0, "scored_at": datetime(2024, 6, 10)}
    plan = job._plan(
        SimpleNamespace(entity=["id"]),
        keys,
        [(model, scorer, "serving")],
        job.scoring_config({}),
        [],
        schema,
        {**constants, "job_run_id": "bad"},
    )
    files = data_files(project.catalog, "features.demo", partitions=lambda p: p["event_date"] == DAY.isoformat())
    sources = job._Sources(files=[(path, DAY.isoformat()) for path, _ in files], aside=None)
    with pytest.raises(DataValidationError) as caught:
        job._write(spark, plan, sources, schema, project.catalog, TABLE, [DAY], _lineage("score"), dict)
    message = str(caught.value)
    assert "failed output validation: demo_model v9 (alias champion): score: in_range(0.0, 1.0)" in message
    assert "failed for 72 row(s)" in message and "nothing was committed" in message
    assert DeltaTable(project.catalog.table_uri(TABLE)).version() == before
    assert not list((Path(project.catalog.table_uri(TABLE)) / "_staging").glob("*/*"))


def test_sigkill_during_scoring_leaves_the_previous_version(spark: Any, project: SimpleNamespace) -> None:
    score(spark, _cfg(project), project.catalog, _lineage("score"))
    uri = project.catalog.table_uri(TABLE)
    before = DeltaTable(uri).version()
    config = project.tmp / "score-kill.yaml"
    OmegaConf.save(_cfg(project), config)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    job = subprocess.Popen(
        [sys.executable, "-m", "tests.spark.helpers_score_job", str(config)],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    staging = Path(uri) / "_staging"
    deadline = time.monotonic() + 120
    while not any(staging.glob("*")) and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(random.uniform(0, 0.5))  # somewhere in Spark's write, the file moves or the commit
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()

    after = DeltaTable(uri).version()
    assert after in (before, before + 1)
    rows = _rows(spark, project)
    assert len(rows) == 72 and rows.set_index(["id", "t"]).index.is_unique  # one committed set, whichever
    score(spark, _cfg(project), project.catalog, _lineage("score"))
    rows = _rows(spark, project)
    assert len(rows) == 72 and rows.job_run_id.nunique() == 1


def test_rollback_then_rescore_serves_the_previous_champion(spark: Any, project: SimpleNamespace) -> None:
    promote_by_hand(project.cfg, "demo_model", "2", "test: promote v2")
    assert score(spark, _cfg(project), project.catalog, _lineage("score")).models["champion"]["version"] == 2
    assert set(_rows(spark, project).model_version) == {2}

    rollback(project.cfg, "demo_model", "test: v2 was worse")
    score(spark, _cfg(project), project.catalog, _lineage("score"))
    rows = _rows(spark, project)
    assert len(rows) == 72 and set(rows.model_version) == {1} and (rows.model_run_id == project.v1.run_id).all()


def test_an_alias_nobody_set_is_a_clear_error(spark: Any, project: SimpleNamespace) -> None:
    with pytest.raises(RegistryError, match="model 'demo_model' has no version with alias 'canary-x'"):
        score(spark, _cfg(project, {"alias": "canary-x"}), project.catalog, _lineage("score"))


def test_rows_a_model_raises_on_are_recorded_not_lost(spark: Any, project: SimpleNamespace) -> None:
    """A logistic regression fitted without missing values raises on the rows where v_or_null is null:
    those rows are retried one by one, recorded as missing with the error, and the others scored."""
    import mlflow
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from lakeforge.tracking.models import log_model, set_alias
    from lakeforge.tracking.store import connect

    features = ["hour_of_day", "key", "v_or_null"]
    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.normal(size=(200, 3)), columns=features)
    fragile = LogisticRegression().fit(x, (x.v_or_null > 0).astype(int))
    tracking = connect(project.cfg)
    with mlflow.start_run(experiment_id=tracking.experiment_id):
        info = log_model(fragile, x.head(3), features, "classification", "demo_model")
    set_alias(project.client, "demo_model", "fragile", info.registered_model_version)

    result = score(spark, _cfg(project, {"alias": "fragile"}), project.catalog, _lineage("score"))
    null_ids = {i for i in range(39 * 72, 40 * 72) if i % 5 == 0}
    (day,) = result.days
    reason = (
        f"model error (demo_model v{info.registered_model_version} (alias fragile)): ValueError: Input X contains NaN"
    )
    assert day.population == 72 and day.scored == 72 - len(null_ids)
    assert len(day.missing) == 1 and next(iter(day.missing)).startswith(reason)
    rows = _rows(spark, project)
    assert set(rows.id) == set(range(39 * 72, 40 * 72)) - null_ids
    # Occlusion blanks one feature at a time: this model cannot take that, so no reasons, said so.
    assert (rows.reasons_method == "error").all() and rows.reasons.isna().all()
    missing = read_table(spark, project.catalog, f"{TABLE}__missing").toPandas()
    missing = missing[missing.run_date == DAY]
    assert set(missing.id) == null_ids and missing.reason.str.startswith(reason).all()
    commit = DeltaTable(project.catalog.table_uri(TABLE)).history(1)[0]
    assert json.loads(commit["lakeforge.coverage"])[DAY.isoformat()]["scored"] == 72 - len(null_ids)
