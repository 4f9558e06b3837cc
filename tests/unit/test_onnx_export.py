"""The ONNX converters of `lakeforge export --format onnx`: each kind of model the platform trains,
converted and scored by onnxruntime on 10,000 rows (missing values included), agrees with the
original within 1e-5; what cannot be converted is refused with a message naming the model."""

from __future__ import annotations

import pickle
from typing import Any

import lightgbm as lgb
import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from lakeforge.errors import ModelExportError
from lakeforge.serving.onnx import TOLERANCE, OnnxModel, convert, parity

ROWS, WIDTH = 10_000, 6
FEATURES = tuple(f"f{i}" for i in range(WIDTH))


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(2 * ROWS, WIDTH))
    x[:, 1] = rng.integers(0, 24, 2 * ROWS)  # an hour-like integer feature: thresholds between integers
    x[rng.random(x.shape) < 0.05] = np.nan
    signal = np.nan_to_num(x[:, 0]) + np.nan_to_num(x[:, 1]) / 12 + rng.normal(size=2 * ROWS)
    return x, (signal > 1).astype(int), 50 + 20 * signal  # a regression target in "minutes"


MODELS = [
    ("lightgbm classifier", lambda: lgb.LGBMClassifier(n_estimators=60, num_leaves=15, verbose=-1), "classification"),
    ("lightgbm regressor", lambda: lgb.LGBMRegressor(n_estimators=60, num_leaves=15, verbose=-1), "regression"),
    (
        "scikit-learn pipeline",
        lambda: make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression()),
        "classification",
    ),
    ("scikit-learn regressor", lambda: make_pipeline(SimpleImputer(), Ridge()), "regression"),
    (
        "random forest",
        lambda: make_pipeline(SimpleImputer(), RandomForestClassifier(n_estimators=10, max_depth=6, random_state=0)),
        "classification",
    ),
    (
        "lightgbm inside a pipeline",
        lambda: make_pipeline(SimpleImputer(), lgb.LGBMClassifier(n_estimators=30, verbose=-1)),
        "classification",
    ),
]


@pytest.mark.parametrize(("kind", "make", "task"), MODELS, ids=[m[0] for m in MODELS])
def test_each_kind_of_model_scores_alike_under_onnxruntime(
    data: tuple[np.ndarray, np.ndarray, np.ndarray], kind: str, make: Any, task: str
) -> None:
    x, label, value = data
    estimator = make().fit(x[ROWS:], label[ROWS:] if task == "classification" else value[ROWS:])
    model = pickle.loads(pickle.dumps(OnnxModel(convert(estimator, WIDTH, task).SerializeToString(), task)))
    check = parity(estimator, model, x[:ROWS], FEATURES, task, "held-out rows")
    assert check.rows == ROWS and check.ok(), (kind, check)
    assert check.max_abs_diff < TOLERANCE


def test_lightgbm_compares_in_float64_as_lightgbm_does(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    # Rows sitting one float64 step above a split threshold: float32 rounds them onto the threshold
    # and takes the other branch (what onnxmltools' float32 graph does); lakeforge's graph does not.
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    x, label, _ = data
    estimator = lgb.LGBMClassifier(n_estimators=60, num_leaves=15, verbose=-1).fit(x[ROWS:], label[ROWS:])
    crafted = np.array(x[:ROWS])
    splits = [
        (node["split_feature"], node["threshold"])
        for tree in estimator.booster_.dump_model()["tree_info"]
        for node in _internal_nodes(tree["tree_structure"])
    ]
    for row, (feature, threshold) in enumerate(splits[:ROWS]):
        crafted[row, feature] = np.nextafter(threshold, np.inf)
    ours = OnnxModel(convert(estimator, WIDTH, "classification").SerializeToString(), "classification")
    assert parity(estimator, ours, crafted, FEATURES, "classification", "crafted").ok()
    types = [("features", FloatTensorType([None, WIDTH]))]
    float32 = OnnxModel(
        convert_lightgbm(estimator, initial_types=types, zipmap=False, target_opset=15).SerializeToString(),
        "classification",
    )
    with np.errstate(over="ignore"):  # LightGBM's "infinite" thresholds (1e300) overflow float32
        assert parity(estimator, float32, crafted, FEATURES, "classification", "crafted").max_abs_diff > 1e-3


def _internal_nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    if "split_index" not in node:
        return []
    return [node, *_internal_nodes(node["left_child"]), *_internal_nodes(node["right_child"])]


def test_lightgbm_sends_missing_values_where_lightgbm_does(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    # Trained without missing values (missing_type None: LightGBM reads NaN as 0), scored with them;
    # and a Poisson regressor (the exp of the trees' sum).
    x, label, value = data
    complete = np.nan_to_num(x[ROWS:])
    classifier = lgb.LGBMClassifier(n_estimators=40, verbose=-1).fit(complete, label[ROWS:])
    model = OnnxModel(convert(classifier, WIDTH, "classification").SerializeToString(), "classification")
    assert parity(classifier, model, x[:ROWS], FEATURES, "classification", "rows").ok()
    poisson = lgb.LGBMRegressor(objective="poisson", n_estimators=40, verbose=-1)
    poisson.fit(x[ROWS:], np.abs(value[ROWS:]) / 10)
    model = OnnxModel(convert(poisson, WIDTH, "regression").SerializeToString(), "regression")
    assert parity(poisson, model, x[:ROWS], FEATURES, "regression", "rows").ok()


def test_lightgbm_models_the_graph_cannot_express_are_refused(
    data: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    x, label, _ = data
    zero = lgb.LGBMClassifier(n_estimators=5, zero_as_missing=True, verbose=-1).fit(x[ROWS:], label[ROWS:])
    with pytest.raises(ModelExportError, match="zero_as_missing=true"):
        convert(zero, WIDTH, "classification")
    hours = np.nan_to_num(x[ROWS:]).copy()
    categorical = lgb.LGBMClassifier(n_estimators=5, min_data_per_group=5, cat_smooth=1, verbose=-1)
    categorical.fit(hours, label[ROWS:], categorical_feature=[1])
    with pytest.raises(ModelExportError, match="categorical splits"):
        convert(categorical, WIDTH, "classification")


def test_a_disagreeing_copy_fails_the_parity_check(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    x, label, _ = data
    one = lgb.LGBMClassifier(n_estimators=20, verbose=-1).fit(x[ROWS:], label[ROWS:])
    other = lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(x[ROWS:], label[ROWS:])
    model = OnnxModel(convert(other, WIDTH, "classification").SerializeToString(), "classification")
    check = parity(one, model, x[:ROWS], FEATURES, "classification", "rows")
    assert not check.ok() and check.max_abs_diff > 1e-3


def test_a_model_no_converter_knows_is_refused_by_name() -> None:
    class HandWritten:
        def predict_proba(self, x: np.ndarray) -> np.ndarray:
            return np.zeros((len(x), 2))

    with pytest.raises(ModelExportError, match=r"cannot convert HandWritten to ONNX: .*lakeforge converts LightGBM"):
        convert(HandWritten(), WIDTH, "classification")
