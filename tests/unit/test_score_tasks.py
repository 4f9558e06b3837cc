"""A scoring task without Spark: a Parquet row group in, the prediction table's rows out in the
staging folder; required features, the canary and exact-reasons samples, the served flag, the
lineage columns, model errors, and a retried task."""

from __future__ import annotations

import pickle
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import lightgbm as lgb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import types as T  # noqa: N812

from lakeforge.scoring.hashing import bucket
from lakeforge.scoring.job import _plan, output_schema, scoring_config
from lakeforge.scoring.model import ScoringModel
from lakeforge.scoring.predict import Scorer
from lakeforge.scoring.tasks import BUCKET, CANARY_SALT, EXACT_SALT, RUN_DATE, units_of

FEATURES = ("a", "b")
KEYS = ["id", "t"]
DAY = "2024-06-09"
ROWS = 3000


class _Picky:
    """A 'model' that raises on any row whose feature ``a`` is above 2.5."""

    def predict_proba(self, x: Any) -> Any:
        x = np.asarray(x)
        if (x[:, 0] > 2.5).any():
            raise ValueError("a is too large")
        p = 1 / (1 + np.exp(-np.nan_to_num(x[:, 0])))
        return np.column_stack([1 - p, p])


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pa.Table, lgb.LGBMClassifier]:
    """A feature file of one date in two row groups; ``b`` null on every 7th row."""
    rng = np.random.default_rng(3)
    a = rng.normal(size=ROWS)
    b = rng.normal(size=ROWS)
    model = lgb.LGBMClassifier(n_estimators=20, num_leaves=7, verbose=-1)
    model.fit(np.column_stack([a, b]), (a + b + rng.logistic(size=ROWS) > 0).astype(int))
    ids = np.arange(ROWS)
    table = pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "t": pa.array([datetime(2024, 6, 9, tzinfo=UTC)] * ROWS, pa.timestamp("us", tz="UTC")),
            "a": pa.array(a),
            "b": pa.array(np.where(ids % 7 == 0, np.nan, b), from_pandas=True),
        }
    )
    path = tmp_path_factory.mktemp("features") / "part-0.parquet"
    pq.write_table(table, path, row_group_size=ROWS // 2)
    return path, table, model


def _scorer(model: Any, method: str) -> Scorer:
    return Scorer(
        key=f"tasks-{id(model)}-{method}",
        label=f"m v1 ({method})",
        model=pickle.dumps(model),
        features=FEATURES,
        task="classification",
        threshold=0.5,
        method=method,
        top_k=2,
        exact_min_score=None,
        num_threads=1,
        passthrough=(*KEYS, RUN_DATE, BUCKET),
    )


def _model(alias: str, version: int) -> ScoringModel:
    uri = f"models:/m/{version}"
    return ScoringModel("m", alias, version, f"run{version}", uri, FEATURES, "classification", None)


def _plan_for(staging: Path, aliases: list[tuple[ScoringModel, Scorer, str]], scoring: dict[str, Any]) -> Any:
    key_schema = T.StructType([T.StructField("id", T.LongType()), T.StructField("t", T.TimestampType())])
    schema = output_schema(SimpleNamespace(schema=key_schema), KEYS, "classification")
    constants = {
        "feature_table": "features.f",
        "feature_table_version": 4,
        "scored_at": datetime(2024, 6, 10, 1, 2, 3, tzinfo=UTC),
        "job_run_id": "job-1",
    }
    plan = _plan(
        SimpleNamespace(entity=["id"]), KEYS, aliases, scoring_config({"scoring": scoring}), ["b"], schema, constants
    )
    return replace(plan, staging=str(staging))


def _run(plan: Any, path: Path, min_units: int = 1) -> tuple[int, list[Any], pa.Table]:
    units = units_of([(str(path), DAY)], min_units, min_rows=400)
    results = list(plan(enumerate(units)))
    written = pq.read_table(Path(plan.staging) / f"{RUN_DATE}={DAY}")
    return sum(r for r, _ in results), [e for _, errors in results for e in errors], written


def test_a_task_writes_the_prediction_rows_of_every_alias(inputs: Any, tmp_path: Path) -> None:
    path, table, model = inputs
    champion, challenger = _model("champion", 1), _model("challenger", 2)
    scoring = {"canary": {"alias": "challenger", "fraction": 0.3}, "reasons": {"exact_fraction": 0.2}}
    aliases = [(champion, _scorer(model, "path"), "serving"), (challenger, _scorer(model, "path"), "canary 30%")]
    plan = _plan_for(tmp_path / "staging", aliases, scoring)
    rows, errors, out = _run(plan, path)

    complete = table.filter(pa.compute.is_valid(table["b"]))  # b is required: its null rows are not scored
    assert rows == out.num_rows == 2 * complete.num_rows and errors == []
    assert out.schema == plan.schema
    mine = out.filter(pa.compute.equal(out["model_alias"], "champion")).sort_by("id")
    assert mine["id"].to_pylist() == complete["id"].to_pylist()
    x = np.column_stack([complete["a"].to_numpy(), complete["b"].to_numpy()])
    assert np.allclose(mine["score"].to_numpy(), model.predict_proba(x)[:, 1], rtol=0, atol=1e-12)
    assert mine["prediction"].to_pylist() == (model.predict_proba(x)[:, 1] >= 0.5).astype(int).tolist()
    assert {len(r) for r in mine["reasons"].to_pylist()} == {2}
    canary = {i for i in complete["id"].to_pylist() if bucket([i], CANARY_SALT) < 0.3}
    exact = {i for i in complete["id"].to_pylist() if bucket([i], EXACT_SALT) < 0.2}
    for row in out.to_pylist():
        inside = row["id"] in canary
        assert row["served"] == (inside if row["model_alias"] == "challenger" else not inside)
        assert row["reasons_method"] == ("treeshap" if row["id"] in exact else "path")
        assert row["model_version"] == (1 if row["model_alias"] == "champion" else 2)
        assert row["model_run_id"] == f"run{row['model_version']}"
        assert (row["feature_table"], row["feature_table_version"], row["job_run_id"]) == ("features.f", 4, "job-1")
        assert row["scored_at"] == datetime(2024, 6, 10, 1, 2, 3, tzinfo=UTC)
        assert row["run_date"] == date(2024, 6, 9)
    # A retried task replaces its file: still one copy of each row, no hidden leftovers.
    rows_again, _, again = _run(plan, path)
    assert rows_again == rows and again.num_rows == out.num_rows
    assert sorted(p.name for p in (tmp_path / "staging" / f"{RUN_DATE}={DAY}").iterdir()) == [
        "part-00000.parquet",  # one unit per row group
        "part-00001.parquet",
    ]


def test_row_groups_split_into_ranges_give_the_same_rows(inputs: Any, tmp_path: Path) -> None:
    path, _, model = inputs
    units = units_of([(str(path), DAY)], min_units=7, min_rows=400)
    # 2 row groups of 1,500 rows: 4 ranges each would make 7 units, but ranges keep 400 rows at least.
    assert [(u.row_group, u.start, u.stop) for u in units] == [
        (g, start, start + 500) for g in (0, 1) for start in (0, 500, 1000)
    ]
    aliases = [(_model("champion", 1), _scorer(model, "path"), "serving")]
    whole = _run(_plan_for(tmp_path / "whole", aliases, {}), path)[2]
    split = _run(_plan_for(tmp_path / "split", aliases, {}), path, min_units=7)[2]
    assert len(list((tmp_path / "split" / f"{RUN_DATE}={DAY}").iterdir())) == 6
    assert split.sort_by("id").equals(whole.sort_by("id"))


def test_rows_a_model_raises_on_come_back_with_the_task(inputs: Any, tmp_path: Path) -> None:
    path, table, _ = inputs
    plan = _plan_for(tmp_path / "staging", [(_model("champion", 1), _scorer(_Picky(), "none"), "serving")], {})
    rows, errors, out = _run(plan, path)
    complete = table.filter(pa.compute.is_valid(table["b"]))
    raised = {r["id"] for r in complete.to_pylist() if r["a"] > 2.5}
    assert raised  # the data has some
    assert {row["id"] for row, _, _ in errors} == raised
    assert {reason for _, _, reason in errors} == {"model error (m v1 (none)): ValueError: a is too large"}
    assert rows == out.num_rows == complete.num_rows - len(raised)
    assert raised.isdisjoint(out["id"].to_pylist())
