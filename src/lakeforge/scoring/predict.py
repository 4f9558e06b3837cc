"""Scoring on the executors: Arrow batches of feature rows in; score, prediction and reasons out.

The job hands every scoring task (`lakeforge.scoring.tasks`) a `Scorer` per model version. The
model's pickled bytes travel once per executor in a Spark broadcast; each Python worker unpickles
them once into a module-level cache (keyed by the model version and the settings) that lives as
long as the worker, and Spark reuses its Python workers across tasks, so a model is loaded once
per worker, not once per batch or task. Each batch is turned into one float64 matrix (nulls as
NaN), scored with LightGBM's threads capped at ``num_threads`` (the task slots already use the
cores), and its reasons computed by the configured method; the batch's scores are checked with
the pandera schema of `lakeforge.scoring.validate` before they leave the worker.

Reason methods (the ``reasons_method`` column says which one produced each row):
- ``path``: path attribution (Saabas) from the trees' node values, `lakeforge.scoring.reasons`;
- ``treeshap``: LightGBM's exact TreeSHAP, for every row or, on top of ``path``, for the rows
  scored at least ``exact_min_score`` and the rows the job marked (a stable sample);
- ``occlusion``: any model: a feature's contribution is how much the score drops when that
  feature is missing (NaN); one extra predict per feature, so ~(features + 1)x the cost of a
  plain predict. A model that cannot take a missing value keeps its predictions, with null
  reasons and ``reasons_method`` ``error``.
"""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

SCORE = "score"
PREDICTION = "prediction"
REASONS = "reasons"
REASONS_METHOD = "reasons_method"
EXACT = "_lf_exact"  # optional input column: True where the reasons must be exact TreeSHAP
TREE_METHODS = ("path", "treeshap")

ERROR_TEXT = 300  # characters of a model error kept per row
OCCLUSION_STACK_ROWS = 4096  # up to this many rows x (features + 1), occlusion predicts once
# Per Python worker: model key -> (estimator, compiled trees or None). Lives as long as the worker.
_LOADED: dict[str, tuple[Any, Any]] = {}


def is_lightgbm(estimator: Any) -> bool:
    """True for a LightGBM scikit-learn model (scored on numpy with a thread cap, path reasons)."""
    return type(estimator).__module__.startswith("lightgbm")


def resolve_method(method: str, estimator: Any, top_k: int) -> str:
    """``auto`` -> ``path`` for LightGBM, ``occlusion`` otherwise; ``none`` when no reasons are asked."""
    from lakeforge.errors import ConfigError

    if top_k == 0 or method == "none":
        return "none"
    if method == "auto":
        return "path" if is_lightgbm(estimator) else "occlusion"
    if method in TREE_METHODS and not is_lightgbm(estimator):
        raise ConfigError(
            f"reasons method '{method}' needs a LightGBM model, not {type(estimator).__name__}; "
            "use 'occlusion' (any model) or 'auto'",
            key="model.scoring.reasons.method",
        )
    return method


@dataclass(frozen=True)
class Scorer:
    """Everything a worker needs to score one model version; small, pickled into each task."""

    key: str  # cache key: model version + settings
    label: str  # the model as messages name it, e.g. "flight_delay v3 (alias champion)"
    model: Any  # a Spark Broadcast of the pickled estimator (or the bytes themselves)
    features: tuple[str, ...]
    task: str  # classification | regression
    threshold: float
    method: str  # path | treeshap | occlusion | none (resolved)
    top_k: int
    exact_min_score: float | None
    num_threads: int
    passthrough: tuple[str, ...]  # input columns copied to the output (keys)
    errors: Any = None  # collects the rows the model raised on (``add(list)``); None: raise

    def load(self) -> tuple[Any, Any]:
        """The estimator and its compiled trees, unpickled once per worker."""
        found = _LOADED.get(self.key)
        if found is None:
            from lakeforge.scoring.reasons import compile_trees

            payload = self.model.value if hasattr(self.model, "value") else self.model
            # Bytes the job pickled itself from the model it loaded from the registry.
            estimator = pickle.loads(payload)
            compiled = compile_trees(estimator) if self.method == "path" else None
            found = _LOADED[self.key] = (estimator, compiled)
        return found

    def output_fields(self, input_schema: pa.Schema) -> list[pa.Field]:
        """The Arrow fields of a scored batch: pass-through columns, then the scoring columns."""
        from lakeforge.scoring.reasons import REASONS_TYPE

        prediction = pa.int32() if self.task == "classification" else pa.float64()
        fields = [input_schema.field(name) for name in self.passthrough]
        return [
            *fields,
            pa.field(SCORE, pa.float64()),
            pa.field(PREDICTION, prediction),
            pa.field(REASONS, REASONS_TYPE),
            pa.field(REASONS_METHOD, pa.string()),
        ]

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """Score every batch of an iterator (e.g. as a ``mapInArrow`` body: the benchmark's diagnosis)."""
        for batch in batches:
            if batch.num_rows:
                yield self.score_batch(batch)

    def score_batch(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """One batch scored, validated and laid out as `output_fields`."""
        from lakeforge.scoring.validate import check_scores

        estimator, compiled = self.load()
        x = feature_matrix(batch, self.features)
        try:
            score, prediction = self._predict(estimator, x)
        except Exception:
            if self.errors is None:
                raise
            batch, x, score, prediction = self._row_by_row(estimator, batch, x)
        check_scores(score, prediction, self.task, self.label)
        reasons, methods = self._reasons(estimator, compiled, x, score, batch)
        fields = self.output_fields(batch.schema)
        arrays = [batch.column(name) for name in self.passthrough]
        score_array = (
            pa.array(score, type=pa.float64()) if self.task == "classification" else pa.nulls(len(score), pa.float64())
        )
        arrays += [score_array, pa.array(prediction, type=fields[len(arrays) + 1].type), reasons, methods]
        return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))

    def _row_by_row(self, estimator: Any, batch: pa.RecordBatch, x: np.ndarray) -> tuple[Any, ...]:
        """The model raised on the batch: score it row by row, keep the rows it scores and send the
        others, with the error, to the driver (``errors``)."""
        keep = np.ones(batch.num_rows, dtype=bool)
        score = np.zeros(batch.num_rows)
        prediction = np.zeros(batch.num_rows, dtype=np.int32 if self.task == "classification" else np.float64)
        failed = []
        for i in range(batch.num_rows):
            try:
                s, p = self._predict(estimator, x[i : i + 1])
                score[i], prediction[i] = s[0], p[0]
            except Exception as exc:  # any error of the user's model is recorded, not raised
                keep[i] = False
                row = batch.slice(i, 1).select(list(self.passthrough)).to_pylist()[0]
                failed.append(
                    (row, self.label, f"model error ({self.label}): {type(exc).__name__}: {exc}"[:ERROR_TEXT])
                )
        self.errors.add(failed)
        mask = pa.array(keep)
        return batch.filter(mask), x[keep], score[keep], prediction[keep]

    def _predict(self, estimator: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.task == "classification":
            score = positive_proba(estimator, x, self.features, self.num_threads)
            return score, (score >= self.threshold).astype(np.int32)
        booster = _plain_booster(estimator)
        if booster is not None:
            value = booster.predict(x, num_threads=self.num_threads)
        else:
            value = _call(estimator.predict, estimator, x, self.features, self.num_threads)
        return np.asarray(value, dtype=np.float64), np.asarray(value, dtype=np.float64)

    def _reasons(
        self, estimator: Any, compiled: Any, x: np.ndarray, score: np.ndarray, batch: pa.RecordBatch
    ) -> tuple[pa.Array, pa.Array]:
        from lakeforge.scoring.reasons import REASONS_TYPE, exact_contributions, path_contributions, top_reasons

        n = x.shape[0]
        if self.method == "none":
            return pa.nulls(n, REASONS_TYPE), pa.repeat(pa.scalar("none"), n)
        if self.method == "occlusion":
            try:
                contributions = occlusion_contributions(estimator, x, self.features, self.task, self.num_threads)
            except Exception:  # a model that cannot take a missing value: the predictions still stand
                return pa.nulls(n, REASONS_TYPE), pa.array(["error"] * n, pa.string())
            return top_reasons(contributions, self.features, self.top_k), pa.array(["occlusion"] * n)
        if self.method == "treeshap":
            contributions = exact_contributions(estimator, x, num_threads=self.num_threads)
            return top_reasons(contributions, self.features, self.top_k), pa.array(["treeshap"] * n)
        contributions = path_contributions(compiled, x, num_threads=self.num_threads)
        exact = np.zeros(n, dtype=bool)
        if self.exact_min_score is not None:
            exact |= score >= self.exact_min_score
        if EXACT in batch.schema.names:
            exact |= batch.column(EXACT).to_numpy(zero_copy_only=False).astype(bool)
        if exact.any():
            contributions[exact] = exact_contributions(estimator, x[exact], num_threads=self.num_threads)
        methods = np.where(exact, "treeshap", "path")
        return top_reasons(contributions, self.features, self.top_k), pa.array(methods, pa.string())


def feature_matrix(batch: pa.RecordBatch, features: Sequence[str]) -> np.ndarray:
    """The batch's feature columns as one C-ordered float64 matrix; nulls become NaN."""
    x = np.empty((batch.num_rows, len(features)), dtype=np.float64)
    for j, name in enumerate(features):
        column = batch.column(name)
        if column.type != pa.float64():
            column = column.cast(pa.float64())
        x[:, j] = column.to_numpy(zero_copy_only=False)
    return x


def _call(method: Any, estimator: Any, x: np.ndarray, features: Sequence[str], num_threads: int) -> Any:
    """``method(x)``: LightGBM on numpy with its threads capped; other models on a named DataFrame
    (pipelines may select columns by name)."""
    with warnings.catch_warnings():
        # "X does not have valid feature names": the columns are the model's own, in its order.
        warnings.simplefilter("ignore", UserWarning)
        if is_lightgbm(estimator):
            return method(x, num_threads=num_threads)
        if getattr(estimator, "takes_matrix", False):  # e.g. lakeforge.serving.onnx.OnnxModel
            return method(x)
        import pandas as pd

        return method(pd.DataFrame(x, columns=list(features)))


def _plain_booster(estimator: Any) -> Any:
    """The Booster of a fitted LightGBM binary classifier or regressor with a built-in objective,
    whose ``predict`` is what the scikit-learn wrapper returns (P(class 1), or the prediction)
    without the wrapper's input checks (~0.4 ms a call: most of a one-row online request). None
    for anything else."""
    if not is_lightgbm(estimator) or not isinstance(getattr(estimator, "objective_", None), str):
        return None
    if hasattr(estimator, "classes_") and len(estimator.classes_) != 2:
        return None
    return estimator.booster_


def positive_proba(estimator: Any, x: np.ndarray, features: Sequence[str], num_threads: int = 0) -> np.ndarray:
    """P(class 1) per row."""
    booster = _plain_booster(estimator)
    if booster is not None:
        return np.asarray(booster.predict(x, num_threads=num_threads), dtype=np.float64)
    proba = np.asarray(_call(estimator.predict_proba, estimator, x, features, num_threads))
    return proba[:, 1] if proba.ndim == 2 else proba


def occlusion_contributions(
    estimator: Any, x: np.ndarray, features: Sequence[str], task: str, num_threads: int = 0
) -> np.ndarray:
    """Per feature, the score minus the score with that feature missing; shape (rows, features + 1),
    the last column the remainder, so a row sums to its score."""

    def predict(m: np.ndarray) -> np.ndarray:
        if task == "classification":
            return positive_proba(estimator, m, features, num_threads)
        return np.asarray(_call(estimator.predict, estimator, m, features, num_threads), dtype=np.float64)

    n, k = x.shape[0], len(features)
    out = np.empty((n, k + 1))
    if n * (k + 1) <= OCCLUSION_STACK_ROWS:
        # Few rows (an online request): the row and its k masked copies in one predict call, not k + 1.
        stacked = np.repeat(x[None, :, :], k + 1, axis=0)
        for j in range(k):
            stacked[j + 1, :, j] = np.nan
        scores = predict(stacked.reshape(-1, x.shape[1])).reshape(k + 1, n)
        base = scores[0]
        out[:, :k] = (base - scores[1:]).T
    else:
        base = predict(x)
        masked = x.copy()
        for j in range(k):
            masked[:, j] = np.nan
            out[:, j] = base - predict(masked)
            masked[:, j] = x[:, j]
    out[:, -1] = base - out[:, :-1].sum(axis=1)
    return out
