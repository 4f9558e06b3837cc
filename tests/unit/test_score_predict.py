"""The scoring worker without Spark: one Arrow batch in, scores, predictions and reasons out; the reason
methods, the batch validation, and the stable canary hash."""

from __future__ import annotations

import pickle

import lightgbm as lgb
import numpy as np
import pyarrow as pa
import pytest
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from lakeforge.errors import ConfigError
from lakeforge.scoring.hashing import bucket
from lakeforge.scoring.predict import EXACT, Scorer, occlusion_contributions, resolve_method
from lakeforge.scoring.reasons import exact_contributions, top_reasons
from lakeforge.scoring.validate import (
    MARKER,
    PredictionValidationFailed,
    check_scores,
    failure_from,
    passes,
    prediction_schema,
)

FEATURES = ("a", "b", "c", "d")


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2000, 4))
    y = (x[:, 0] + 0.5 * x[:, 1] * x[:, 2] + rng.logistic(size=2000) > 0).astype(int)
    x[rng.random(x.shape) < 0.05] = np.nan
    return x, y


@pytest.fixture(scope="module")
def lgbm(data: tuple[np.ndarray, np.ndarray]) -> lgb.LGBMClassifier:
    x, y = data
    return lgb.LGBMClassifier(n_estimators=30, num_leaves=7, verbose=-1).fit(x, y)


def _scorer(model: object, method: str, **kw: object) -> Scorer:
    settings = {"top_k": 3, "exact_min_score": None, "threshold": 0.5, "task": "classification"} | kw
    return Scorer(
        key=f"test-{id(model)}-{method}-{sorted(kw.items())}",
        label="m v1 (alias champion)",
        model=pickle.dumps(model),
        features=FEATURES,
        method=method,
        num_threads=1,
        passthrough=("id",),
        **settings,  # type: ignore[arg-type]
    )


def _batch(x: np.ndarray, exact: np.ndarray | None = None) -> pa.RecordBatch:
    columns = {"id": pa.array(np.arange(len(x)))}
    # Mixed input types, as feature tables have them: int, float32, double with nulls.
    columns["a"] = pa.array(x[:, 0], from_pandas=True)
    columns["b"] = pa.array(x[:, 1].astype(np.float32), from_pandas=True)
    columns["c"] = pa.array(x[:, 2], from_pandas=True)
    columns["d"] = pa.array(x[:, 3], from_pandas=True)
    if exact is not None:
        columns[EXACT] = pa.array(exact)
    return pa.RecordBatch.from_pydict(columns)


def test_path_reasons_scores_and_layout(lgbm: lgb.LGBMClassifier, data: tuple[np.ndarray, np.ndarray]) -> None:
    x = data[0][:500]
    out = _scorer(lgbm, "path").score_batch(_batch(x))
    assert out.schema.names == ["id", "score", "prediction", "reasons", "reasons_method"]
    matrix = np.column_stack([x[:, 0], x[:, 1].astype(np.float32).astype(float), x[:, 2], x[:, 3]])
    expected = lgbm.predict_proba(matrix)[:, 1]
    np.testing.assert_allclose(out.column("score").to_numpy(), expected, rtol=0, atol=1e-12)
    assert out.column("prediction").to_pylist() == (expected >= 0.5).astype(int).tolist()
    assert out.column("prediction").type == pa.int32()
    assert set(out.column("reasons_method").to_pylist()) == {"path"}
    reasons = out.column("reasons").to_pylist()
    assert all(1 <= len(r) <= 3 and {e["feature"] for e in r} <= set(FEATURES) for r in reasons)


def test_exact_treeshap_for_high_scores_and_marked_rows(
    lgbm: lgb.LGBMClassifier, data: tuple[np.ndarray, np.ndarray]
) -> None:
    x = data[0][:300]
    marked = np.zeros(300, dtype=bool)
    marked[:10] = True
    out = _scorer(lgbm, "path", exact_min_score=0.8).score_batch(_batch(x, marked))
    score = out.column("score").to_numpy()
    methods = np.array(out.column("reasons_method").to_pylist())
    exact = marked | (score >= 0.8)
    assert exact.sum() > 10 and (methods[exact] == "treeshap").all() and (methods[~exact] == "path").all()
    shap = top_reasons(exact_contributions(lgbm, _matrix(x[exact])), FEATURES, 3).to_pylist()
    assert np.array(out.column("reasons").to_pylist(), dtype=object)[exact].tolist() == shap


def _matrix(x: np.ndarray) -> np.ndarray:
    return np.column_stack([x[:, 0], x[:, 1].astype(np.float32).astype(float), x[:, 2], x[:, 3]])


def test_occlusion_for_any_model_sums_to_the_score(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    pipeline = make_pipeline(SimpleImputer(), LogisticRegression()).fit(x, y)
    assert resolve_method("auto", pipeline, 5) == "occlusion"
    contributions = occlusion_contributions(pipeline, x[:200], FEATURES, "classification")
    np.testing.assert_allclose(contributions.sum(axis=1), pipeline.predict_proba(x[:200])[:, 1], atol=1e-12)
    out = _scorer(pipeline, "occlusion").score_batch(_batch(x[:200]))
    assert set(out.column("reasons_method").to_pylist()) == {"occlusion"}
    # The strongest feature of a linear model on x0 is x0 for most rows.
    firsts = [r[0]["feature"] for r in out.column("reasons").to_pylist() if r]
    assert firsts.count("a") > len(firsts) / 2


def test_occlusion_in_one_stacked_call_equals_one_call_per_feature(
    data: tuple[np.ndarray, np.ndarray], lgbm: lgb.LGBMClassifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lakeforge.scoring import predict

    x, _ = data
    stacked = occlusion_contributions(lgbm, x[:50], FEATURES, "classification")  # 50 x 5 rows: stacked
    monkeypatch.setattr(predict, "OCCLUSION_STACK_ROWS", 0)
    looped = occlusion_contributions(lgbm, x[:50], FEATURES, "classification")
    np.testing.assert_allclose(stacked, looped, rtol=0, atol=1e-15)


def test_method_resolution(lgbm: lgb.LGBMClassifier) -> None:
    assert resolve_method("auto", lgbm, 5) == "path"
    assert resolve_method("treeshap", lgbm, 0) == "none"
    out = _scorer(lgbm, "none", top_k=0).score_batch(_batch(np.zeros((3, 4))))
    assert out.column("reasons").null_count == 3 and set(out.column("reasons_method").to_pylist()) == {"none"}
    with pytest.raises(ConfigError, match="reasons method 'path' needs a LightGBM model, not LogisticRegression"):
        resolve_method("path", LogisticRegression(), 5)


def test_a_batch_outside_the_schema_is_refused_with_a_message() -> None:
    with pytest.raises(PredictionValidationFailed) as info:
        check_scores(np.array([0.2, 1.5, np.nan]), np.array([0, 1, 0], dtype=np.int32), "classification", "m v3")
    text = str(info.value)
    assert text.startswith(MARKER) and "m v3: score: in_range(0.0, 1.0) failed for 1 row(s)" in text
    assert "score: not_nullable failed for 1 row(s)" in text and "in a batch of 3 rows" in text
    error = failure_from(RuntimeError(f"Py4JJavaError: ...\n  raise ...\n{text}\n  at ..."), "predictions.m")
    assert error is not None and str(error).startswith("predictions.m: the predictions failed output validation: m v3")
    assert failure_from(RuntimeError("other"), "predictions.m") is None
    with pytest.raises(PredictionValidationFailed, match="prediction: isfinite failed"):
        check_scores(np.array([1.0]), np.array([np.inf]), "regression")


def test_lightgbm_is_scored_through_its_booster_with_the_wrappers_exact_values(
    data: tuple[np.ndarray, np.ndarray], lgbm: lgb.LGBMClassifier
) -> None:
    from lakeforge.scoring.predict import _plain_booster, positive_proba

    x, y = data
    assert np.array_equal(positive_proba(lgbm, x, FEATURES, 1), lgbm.predict_proba(x, num_threads=1)[:, 1])
    regressor = lgb.LGBMRegressor(n_estimators=10, verbose=-1).fit(x, np.nan_to_num(x[:, 0]) + y)
    assert np.array_equal(_plain_booster(regressor).predict(x, num_threads=1), regressor.predict(x, num_threads=1))
    three = lgb.LGBMClassifier(n_estimators=3, verbose=-1).fit(x, y + (x[:, 1] > 0))
    assert _plain_booster(three) is None  # multiclass: through the wrapper


def test_the_numpy_pass_accepts_exactly_what_the_pandera_schema_accepts() -> None:
    import pandas as pd
    import pandera.errors

    rng = np.random.default_rng(5)
    specials = [np.nan, -0.0, 0.0, 1.0, 1.0000001, -1e-9, np.inf, -np.inf, 2.0]
    for trial in range(300):
        n = int(rng.integers(1, 6))
        score = rng.random(n)
        prediction = (score >= 0.5).astype(np.int32)
        if trial % 2:  # plant a special value somewhere
            score[rng.integers(0, n)] = specials[trial % len(specials)]
        if trial % 7 == 0:
            prediction[rng.integers(0, n)] = int(rng.choice([-1, 2, 1]))
        if trial % 11 == 0:
            prediction = prediction.astype(np.int64)
        for task in ("classification", "regression"):
            values = score if task == "regression" else prediction
            frame = pd.DataFrame({"score": score, "prediction": values})
            frame = frame if task == "classification" else frame[["prediction"]]
            try:
                prediction_schema(task).validate(frame, lazy=True)
                accepted = True
            except pandera.errors.SchemaErrors:
                accepted = False
            assert passes(score, values, task) == accepted, (task, score, values)


def test_the_canary_hash_is_stable_and_uniform() -> None:
    assert bucket(["UA", 1545, "EWR"], "canary") == bucket(["UA", "1545", "EWR"], "canary")
    assert bucket(["UA", 1545, "EWR"], "canary") != bucket(["UA", 1545, "EWR"], "exact-reasons")
    values = [bucket([i], "canary") for i in range(20000)]
    assert min(values) >= 0 and max(values) < 1 and abs(np.mean(np.array(values) < 0.1) - 0.1) < 0.01
