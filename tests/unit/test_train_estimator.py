"""Estimators from model config: clear errors for bad declarations, seed and class weights passed on,
metrics against scikit-learn, and the same fit twice from the same data and seed."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from lakeforge.errors import ConfigError
from lakeforge.training.data import TrainingData
from lakeforge.training.estimator import build_estimator
from lakeforge.training.fit import fit_and_measure, metric


def _model(target: str = "lightgbm.LGBMClassifier", **extra: Any) -> Any:
    return OmegaConf.create({"name": "m", "estimator": {"_target_": target}, "params": {}, "seed": 7, **extra})


def test_unknown_class_suggests_the_nearest() -> None:
    with pytest.raises(ConfigError) as exc:
        build_estimator(_model("lightgbm.LGBMClasifier"))
    assert exc.value.key == "model.estimator._target_"
    assert "module 'lightgbm' has no class 'LGBMClasifier'" in str(exc.value)
    assert "LGBMClassifier" in str(exc.value)


def test_unknown_module_and_bare_name() -> None:
    with pytest.raises(ConfigError, match=r"cannot import 'lightgbmx\.LGBMClassifier': no module 'lightgbmx'"):
        build_estimator(_model("lightgbmx.LGBMClassifier"))
    with pytest.raises(ConfigError, match="'LGBMClassifier' is not a class path"):
        build_estimator(_model("LGBMClassifier"))


def test_param_of_the_wrong_type_names_the_key() -> None:
    with pytest.raises(ConfigError) as exc:
        build_estimator(_model(params={"num_leaves": "abc"}))
    assert exc.value.key == "model.params.num_leaves"
    assert "LGBMClassifier expects an integer (default 31), got 'abc' (str)" in str(exc.value)
    with pytest.raises(ConfigError, match="expects a number"):
        build_estimator(_model(params={"learning_rate": True}))


def test_unknown_param_of_a_closed_signature() -> None:
    with pytest.raises(ConfigError) as exc:
        build_estimator(_model("sklearn.linear_model.LogisticRegression", params={"Cx": 1.0}))
    assert exc.value.key == "model.params.Cx"
    assert "LogisticRegression has no parameter 'Cx'" in str(exc.value)


def test_lightgbm_open_kwargs_accept_its_parameters_and_refuse_the_rest() -> None:
    # LightGBM takes **kwargs and would only warn "Unknown parameter: foo_bar" (or silently ignore
    # an alias next to the canonical name); lakeforge refuses both before any data is read.
    est = build_estimator(_model(params={"max_bin": 63, "feature_fraction_bynode": 0.5}))
    assert est.get_params()["max_bin"] == 63
    with pytest.raises(ConfigError) as exc:
        build_estimator(_model(params={"foo_bar": 1}))
    assert exc.value.key == "model.params.foo_bar" and "LGBMClassifier has no parameter 'foo_bar'" in str(exc.value)
    with pytest.raises(
        ConfigError, match=r"'num_leaf' is LightGBM's alias of 'num_leaves'.*write model.params.num_leaves"
    ):
        build_estimator(_model(params={"num_leaf": 15}))
    with pytest.raises(ConfigError, match="did you mean 'num_leaves'"):
        build_estimator(_model(params={"num_leavs": 15}))


def test_the_baseline_names_its_own_keys() -> None:
    from lakeforge.training.estimator import build_baseline

    gate = {"baseline": {"estimator": {"_target_": "sklearn.linear_model.LogisticRegresion"}, "params": {}}}
    with pytest.raises(ConfigError) as exc:
        build_baseline(_model(gate=gate))
    assert exc.value.key == "model.gate.baseline.estimator._target_" and "LogisticRegression" in str(exc.value)
    gate = {"baseline": {"estimator": {"_target_": "sklearn.dummy.DummyClassifier"}, "params": {"strategy": "prior"}}}
    steps = [type(step).__name__ for step in build_baseline(_model(gate=gate))]
    assert steps == ["SimpleImputer", "StandardScaler", "DummyClassifier"]
    assert build_baseline(_model()) is None


def test_scikit_learn_constraints_are_checked_before_fitting() -> None:
    with pytest.raises(ConfigError, match="The 'C' parameter of LogisticRegression must be a float in the range"):
        build_estimator(_model("sklearn.linear_model.LogisticRegression", params={"C": -1.0}))


def test_seed_and_class_weights_reach_the_estimator() -> None:
    est = build_estimator(_model(params={"num_leaves": 15}, class_weight={0: 1, 1: 3}))
    assert (est.num_leaves, est.random_state, est.class_weight) == (15, 7, {0: 1.0, 1: 3.0})
    assert build_estimator(_model(class_weight="balanced")).class_weight == "balanced"
    with pytest.raises(ConfigError, match="DummyClassifier takes no class weights"):
        build_estimator(_model("sklearn.dummy.DummyClassifier", class_weight="balanced"))


def _data(seed: int = 0) -> TrainingData:
    rng = np.random.default_rng(seed)

    def frame(n: int) -> pd.DataFrame:
        x = rng.normal(size=(n, 2))
        y = (x[:, 0] + 0.5 * rng.normal(size=n) > 0).astype(int)
        return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": y})

    frames = {"train": frame(400), "validation": frame(100), "test": frame(100)}
    return TrainingData(frames, (), ("a", "b"), "y", {k: len(v) for k, v in frames.items()}, 0)


def test_fit_measures_every_split_and_is_deterministic() -> None:
    model = _model(params={"n_estimators": 20, "verbose": -1})
    first = fit_and_measure(build_estimator(model), _data(), "classification", ["roc_auc", "log_loss"])
    second = fit_and_measure(build_estimator(model), _data(), "classification", ["roc_auc", "log_loss"])
    assert set(first.metrics) == {"train", "validation", "test"}
    assert first.metrics == second.metrics
    assert first.metrics["test"]["roc_auc"] > 0.8


def test_metrics_match_scikit_learn() -> None:
    from sklearn import metrics as m

    y = np.array([0, 1, 1, 0, 1])
    s = np.array([0.1, 0.8, 0.4, 0.6, 0.9])
    assert metric("roc_auc", y, s) == pytest.approx(m.roc_auc_score(y, s))
    assert metric("brier", y, s) == pytest.approx(m.brier_score_loss(y, s))
    assert metric("f1", y, s) == pytest.approx(m.f1_score(y, s >= 0.5))
    assert np.isnan(metric("roc_auc", np.array([1, 1]), np.array([0.2, 0.3])))  # one class: undefined
    with pytest.raises(ConfigError, match="unknown metric 'auc'"):
        metric("auc", y, s)


def test_mllib_params_are_checked_like_scikit_learn() -> None:
    import inspect

    from pyspark.ml.classification import GBTClassifier

    from lakeforge.training.estimator import is_mllib

    # @keyword_only keeps the signature: every MLlib param with its default, so the same checks apply
    # (before the class is built, which needs a SparkContext).
    assert inspect.signature(GBTClassifier).parameters["maxDepth"].default == 5
    assert is_mllib(GBTClassifier) and not is_mllib(pd.DataFrame)
    target = "pyspark.ml.classification.GBTClassifier"
    with pytest.raises(ConfigError, match=r"GBTClassifier has no parameter 'maxDepht'.*maxDepth") as exc:
        build_estimator(_model(target, params={"maxDepht": 3}))
    assert exc.value.key == "model.params.maxDepht"
    with pytest.raises(ConfigError, match=r"GBTClassifier expects an integer \(default 20\), got 'ten'") as exc:
        build_estimator(_model(target, params={"maxIter": "ten"}))
    assert exc.value.key == "model.params.maxIter"
    with pytest.raises(ConfigError, match="GBTClassifier takes no class weights"):
        build_estimator(_model(target, class_weight={"0": 1.0, "1": 2.0}))
