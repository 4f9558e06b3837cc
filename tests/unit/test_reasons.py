"""Per-row reasons: path attribution matches LightGBM's raw scores and leaves; top-k; methods."""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
import pyarrow as pa
import pytest

from lakeforge.errors import ConfigError
from lakeforge.scoring.reasons import (
    METHODS,
    REASONS_TYPE,
    compile_trees,
    contribution_method,
    exact_contributions,
    leaf_indices,
    path_contributions,
    top_reasons,
)

N_FEATURES = 6


def _data(seed: int = 0, n_rows: int = 3000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_rows, N_FEATURES))
    x[rng.random(x.shape) < 0.08] = np.nan
    x[rng.random(x.shape) < 0.08] = 0.0
    target = np.nan_to_num(x[:, 0]) + np.where(np.isnan(x[:, 1]), 1.5, x[:, 1] ** 2) - 0.5 * np.nan_to_num(x[:, 2])
    return x, target


def _fit(kind: str, **params: Any) -> tuple[Any, np.ndarray]:
    x, target = _data()
    common: dict[str, Any] = {"n_estimators": 25, "num_leaves": 15, "min_child_samples": 5, "verbose": -1}
    if kind == "binary":
        model: Any = lgb.LGBMClassifier(**common, **params).fit(x, (target > 1.0).astype(int))
    else:
        model = lgb.LGBMRegressor(**common, **params).fit(x, target)
    return model, x


MODELS = [
    pytest.param(("binary", {}), id="binary"),
    pytest.param(("regression", {}), id="regression"),
    pytest.param(("regression", {"zero_as_missing": True}), id="regression-zero-as-missing"),
    pytest.param(("binary", {"use_missing": False}), id="binary-no-missing"),
]


@pytest.fixture(scope="module", params=MODELS)
def fitted(request: pytest.FixtureRequest) -> tuple[Any, np.ndarray]:
    kind, params = request.param
    return _fit(kind, **params)


class TestPathContributions:
    @pytest.mark.parametrize("lightgbm_leaves", [True, False], ids=["lightgbm-leaves", "numpy-walk"])
    def test_rows_sum_to_raw_score(self, fitted: tuple[Any, np.ndarray], lightgbm_leaves: bool) -> None:
        model, x = fitted
        contributions = path_contributions(compile_trees(model), x, lightgbm_leaves=lightgbm_leaves)
        assert contributions.shape == (x.shape[0], N_FEATURES + 1)
        raw = model.booster_.predict(x, raw_score=True)
        np.testing.assert_allclose(contributions.sum(axis=1), raw, rtol=1e-9, atol=1e-12)

    def test_numpy_walk_reaches_lightgbm_leaves(self, fitted: tuple[Any, np.ndarray]) -> None:
        model, x = fitted
        np.testing.assert_array_equal(leaf_indices(compile_trees(model), x), model.booster_.predict(x, pred_leaf=True))

    def test_both_leaf_finders_agree(self, fitted: tuple[Any, np.ndarray]) -> None:
        model, x = fitted
        compiled = compile_trees(model)
        np.testing.assert_array_equal(
            path_contributions(compiled, x), path_contributions(compiled, x, lightgbm_leaves=False)
        )

    def test_nan_rows_follow_lightgbm(self) -> None:
        model, x = _fit("binary")
        all_missing = np.full((4, N_FEATURES), np.nan)
        all_missing[1] = 0.0
        all_missing[2, :3] = 1e-40  # LightGBM reads |x| <= 1e-35 as 0
        all_missing[3] = np.where(np.isnan(x[0]), 0.0, x[0])
        compiled = compile_trees(model)
        contributions = path_contributions(compiled, all_missing, lightgbm_leaves=False)
        np.testing.assert_allclose(contributions.sum(axis=1), model.booster_.predict(all_missing, raw_score=True))
        np.testing.assert_array_equal(
            leaf_indices(compiled, all_missing), model.booster_.predict(all_missing, pred_leaf=True)
        )

    def test_bias_is_expected_raw_score(self) -> None:
        model, x = _fit("regression")
        bias = path_contributions(compile_trees(model), x)[:, -1]
        assert np.all(bias == bias[0])
        # dump_model rounds internal values to 6 significant digits
        np.testing.assert_allclose(bias[0], exact_contributions(model, x[:1])[0, -1], rtol=1e-5)

    def test_accepts_a_booster(self) -> None:
        model, x = _fit("regression")
        contributions = path_contributions(compile_trees(model.booster_), x[:50])
        np.testing.assert_allclose(contributions.sum(axis=1), model.predict(x[:50]), rtol=1e-9)

    def test_wrong_width_is_refused(self) -> None:
        model, x = _fit("regression")
        with pytest.raises(ValueError, match=r"x must have shape \(n_rows, 6\), got \(3000, 5\)"):
            path_contributions(compile_trees(model), x[:, :5])

    def test_categorical_split_is_refused_naming_the_feature(self) -> None:
        rng = np.random.default_rng(1)
        x = np.column_stack([rng.integers(0, 8, 2000), rng.normal(size=2000)]).astype(float)
        y = np.isin(x[:, 0], [1, 3, 5]).astype(float) + 0.1 * x[:, 1]
        booster = lgb.train(
            {"num_leaves": 8, "verbose": -1, "min_data_per_group": 5, "cat_smooth": 1},
            lgb.Dataset(x, y, feature_name=["carrier", "dep_delay"], categorical_feature=["carrier"]),
            num_boost_round=3,
        )
        with pytest.raises(ConfigError, match=r"feature 'carrier' as categorical.*method 'treeshap'"):
            compile_trees(booster)

    def test_non_lightgbm_model_is_refused(self) -> None:
        with pytest.raises(ConfigError, match=r"fitted LightGBM model .* got 'dict'"):
            compile_trees({})


class TestTopReasons:
    def test_sorted_by_magnitude_bias_excluded(self) -> None:
        contributions = np.array([[0.1, -0.5, 0.3, 0.0, 9.0], [0.0, 0.0, 0.0, -2.0, 9.0]])
        reasons = top_reasons(contributions, ["a", "b", "c", "d"], k=2)
        assert reasons.type == REASONS_TYPE
        assert reasons.to_pylist() == [
            [{"feature": "b", "contribution": -0.5}, {"feature": "c", "contribution": 0.3}],
            [{"feature": "d", "contribution": -2.0}],  # zero contributions are not reasons
        ]

    def test_k_larger_than_feature_count(self) -> None:
        contributions = np.array([[0.2, -0.1, 0.4, 1.0]])
        reasons = top_reasons(contributions, ["a", "b", "c"], k=10).to_pylist()
        assert [r["feature"] for r in reasons[0]] == ["c", "a", "b"]

    def test_ties_keep_feature_order(self) -> None:
        reasons = top_reasons(np.array([[1.0, -1.0, 1.0, 0.0]]), ["a", "b", "c"], k=3).to_pylist()
        assert [r["feature"] for r in reasons[0]] == ["a", "b", "c"]

    def test_matches_a_full_sort_on_model_output(self) -> None:
        model, x = _fit("binary")
        compiled = compile_trees(model)
        contributions = path_contributions(compiled, x[:200])
        reasons = top_reasons(contributions, compiled.feature_names, k=3).to_pylist()
        for row, row_reasons in zip(contributions, reasons, strict=True):
            expected = sorted(np.abs(row[:-1][row[:-1] != 0]), reverse=True)[:3]
            np.testing.assert_allclose([abs(r["contribution"]) for r in row_reasons], expected)

    def test_is_a_delta_ready_column(self) -> None:
        reasons = top_reasons(np.array([[0.5, -1.0, 0.0]]), ["a", "b"], k=5)
        table = pa.table({"reasons": reasons})
        assert str(table.schema.field("reasons").type) == ("list<item: struct<feature: string, contribution: double>>")

    def test_k_must_be_positive(self) -> None:
        with pytest.raises(ValueError, match="k must be at least 1, got 0"):
            top_reasons(np.zeros((1, 3)), ["a", "b"], k=0)


class TestMethods:
    def test_methods(self) -> None:
        assert METHODS == ("path", "treeshap")

    @pytest.mark.parametrize("method", METHODS)
    def test_every_method_sums_to_raw_score(self, method: str) -> None:
        model, x = _fit("binary")
        contributions = contribution_method(method)(model, x[:300])
        assert contributions.shape == (300, N_FEATURES + 1)
        raw = model.booster_.predict(x[:300], raw_score=True)
        np.testing.assert_allclose(contributions.sum(axis=1), raw, rtol=1e-9, atol=1e-12)

    def test_unknown_method_names_the_allowed_ones(self) -> None:
        with pytest.raises(
            ConfigError,
            match=r"unknown reasons method 'treeshp' \(did you mean 'treeshap'\?\); allowed: 'path', 'treeshap'",
        ):
            contribution_method("treeshp")
