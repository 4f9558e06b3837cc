"""Portable models: a registered version as an ONNX file, and an ONNX file as a model to serve.

`export_onnx` (``lakeforge export MODEL --format onnx``) converts a LightGBM (onnxmltools) or
scikit-learn (skl2onnx) version to ONNX, with one float input ``features`` of shape
(rows, model features) in the order of the version's signature, and the model's name, version,
run, task and feature names in the file's metadata (``lakeforge.*`` keys). Before anything is
written it scores up to 10,000 rows of ``features.<feature_set>`` with both the original model and
the ONNX file under onnxruntime, and refuses the export when a score differs by more than 1e-5
(ONNX tree ensembles compare in float32, LightGBM in float64). The file goes to ``--out`` and
into the version's MLflow run as the artifact ``onnx/model.onnx``, where ``lakeforge serve
--runtime onnx`` finds it; the version gets the tags ``lakeforge.onnx.*`` (parity figures).

`OnnxModel` is that file with the two methods the `lakeforge.scoring.predict.Scorer` calls
(``predict_proba``, ``predict``) on a float matrix, so the server scores with it exactly as it
scores with the original. Its reasons are by occlusion: the file keeps the trees' leaf values but
not the node values path attribution needs.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from lakeforge.errors import ModelExportError
from lakeforge.scoring.model import ScoringModel
from lakeforge.scoring.predict import _call, is_lightgbm, positive_proba

FORMATS = ("onnx",)
INPUT = "features"  # the ONNX graph's one input: (rows, features) float32
ARTIFACT_DIR = "onnx"  # the folder of the artifact in the version's MLflow run
ARTIFACT_FILE = "model.onnx"
# The largest |score difference| an export accepts (for a regressor relative to max(1, |value|)).
TOLERANCE = 1e-5
PARITY_ROWS = 10_000
TARGET_OPSET = 15  # the highest onnxmltools' LightGBM converter supports (onnx 1.23)
TAG = "lakeforge.onnx"


class OnnxModel:
    """An ONNX model with the scikit-learn methods `Scorer` calls, on a float matrix.

    Pickles as its bytes; the onnxruntime session (one thread: the server's requests are the
    parallelism) is created on first use in each process.
    """

    takes_matrix = True  # `lakeforge.scoring.predict._call` passes the matrix, not a DataFrame

    def __init__(self, data: bytes, task: str) -> None:
        self.data = data
        self.task = task
        self._session: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {"data": self.data, "task": self.task}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["data"], state["task"])  # type: ignore[misc]

    @property
    def session(self) -> Any:
        if self._session is None:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            options.log_severity_level = 3  # converters declare a fixed label shape: a warning per call
            self._session = ort.InferenceSession(self.data, options, providers=["CPUExecutionProvider"])
        return self._session

    @property
    def metadata(self) -> dict[str, str]:
        return dict(self.session.get_modelmeta().custom_metadata_map)

    def _run(self, x: np.ndarray) -> list[Any]:
        return list(self.session.run(None, {INPUT: np.ascontiguousarray(x, dtype=np.float32)}))

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """(rows, classes) probabilities: the second output of a converted classifier."""
        return np.asarray(self._run(x)[1], dtype=np.float64)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class labels of a classifier, values of a regressor."""
        out = self._run(x)
        return (
            np.asarray(out[0]).reshape(-1) if self.task == "classification" else np.asarray(out[0], np.float64).ravel()
        )


def convert(estimator: Any, n_features: int, task: str) -> Any:
    """``estimator`` as an ONNX ModelProto taking ``INPUT`` (rows, n_features) float32.

    LightGBM models through onnxmltools, anything else through skl2onnx (pipelines included,
    as far as skl2onnx knows their steps); probabilities as a plain tensor, not a ZipMap.
    """
    kind = type(estimator).__name__
    try:
        if is_lightgbm(estimator):
            from onnxmltools import convert_lightgbm
            from onnxmltools.convert.common.data_types import FloatTensorType

            types = [(INPUT, FloatTensorType([None, n_features]))]
            return convert_lightgbm(estimator, initial_types=types, zipmap=False, target_opset=TARGET_OPSET)
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType as SklFloat

        _register_lightgbm_in_skl2onnx()

        options = {"zipmap": False} if task == "classification" else None
        return convert_sklearn(
            estimator,
            initial_types=[(INPUT, SklFloat([None, n_features]))],
            options=options,
            target_opset={"": TARGET_OPSET, "ai.onnx.ml": 3},
        )
    except Exception as exc:  # the converters raise RuntimeError, NameError, TypeError…: say which model
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelExportError(
            f"cannot convert {kind} to ONNX: {first[:300].rstrip('.')}; lakeforge converts LightGBM models "
            "(onnxmltools) and the scikit-learn estimators and pipelines skl2onnx supports"
        ) from exc


def _register_lightgbm_in_skl2onnx() -> None:
    """Let skl2onnx convert LightGBM steps of a scikit-learn pipeline (skl2onnx's documented recipe)."""
    from lightgbm import LGBMClassifier, LGBMRegressor
    from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    update_registered_converter(
        LGBMClassifier,
        "LightGbmLGBMClassifier",
        calculate_linear_classifier_output_shapes,
        convert_lightgbm,
        options={"nocl": [True, False], "zipmap": [True, False, "columns"]},
    )
    update_registered_converter(
        LGBMRegressor, "LightGbmLGBMRegressor", calculate_linear_regressor_output_shapes, convert_lightgbm
    )


def original_scores(estimator: Any, x: np.ndarray, features: tuple[str, ...], task: str) -> np.ndarray:
    """The scores the batch job computes: P(class 1), or the regression value."""
    if task == "classification":
        return positive_proba(estimator, x, features)
    return np.asarray(_call(estimator.predict, estimator, x, features, 0), dtype=np.float64)


def onnx_scores(model: OnnxModel, x: np.ndarray, task: str) -> np.ndarray:
    if task == "classification":
        proba = model.predict_proba(x)
        return proba[:, 1] if proba.ndim == 2 else proba
    return model.predict(x)


@dataclass(frozen=True)
class Parity:
    """The original model and its ONNX file scored on the same rows."""

    rows: int
    max_abs_diff: float
    source: str  # where the rows came from

    def ok(self) -> bool:
        return self.rows > 0 and self.max_abs_diff <= TOLERANCE


def parity(
    estimator: Any, model: OnnxModel, x: np.ndarray, features: tuple[str, ...], task: str, source: str
) -> Parity:
    if not len(x):
        return Parity(0, float("nan"), source)
    original = original_scores(estimator, x, features, task)
    diff = np.abs(original - onnx_scores(model, x, task))
    if task != "classification":
        # A regressor's value is not bounded like a probability: ONNX returns float32, ~7 digits.
        diff = diff / np.maximum(1.0, np.abs(original))
    both_nan = np.isnan(original) & np.isnan(diff)
    # A NaN on one side only is a disagreement; NaN on both sides is not.
    worst = float(np.max(np.where(both_nan, 0.0, np.where(np.isnan(diff), np.inf, diff))))
    return Parity(len(x), worst, source)


def parity_rows(
    catalog: Any, feature_set: str, features: tuple[str, ...], limit: int = PARITY_ROWS
) -> tuple[np.ndarray, str]:
    """Up to ``limit`` rows of ``features.<feature_set>``, spread over the whole table, as the float
    matrix the scorer builds (nulls NaN). An empty matrix when the table is missing."""
    import pyarrow as pa

    from lakeforge.lake.delta import arrow_dataset
    from lakeforge.scoring.predict import feature_matrix

    table_name = f"features.{feature_set}"
    if not catalog.exists(table_name):
        return np.empty((0, len(features))), table_name
    dataset = arrow_dataset(catalog, table_name)
    missing = [f for f in features if f not in dataset.schema.names]
    if missing:
        raise ModelExportError(
            f"{table_name} has no column(s) {', '.join(missing)} the model was trained on; "
            "build the features of the model's feature set first"
        )
    table = dataset.to_table(columns=list(features))
    if table.num_rows > limit:
        table = table.take(pa.array(np.linspace(0, table.num_rows - 1, limit).astype(np.int64)))
    batch = table.combine_chunks().to_batches()
    x = feature_matrix(batch[0], features) if batch else np.empty((0, len(features)))
    return x, f"{len(x):,} rows of {table_name}"


@dataclass(frozen=True)
class Exported:
    """What `export_onnx` wrote."""

    model: str
    version: int
    path: Path
    artifact: str
    parity: Parity
    size_bytes: int

    def describe(self) -> str:
        check = (
            f"parity: max |score difference| {self.parity.max_abs_diff:.2e} over {self.parity.source} "
            f"(limit {TOLERANCE:g})"
            if self.parity.rows
            else f"parity: not checked ({self.parity.source} does not exist; build the features first to check)"
        )
        return (
            f"exported {self.model} v{self.version} to {self.path} ({self.size_bytes / 1e6:.1f} MB, ONNX, "
            f"input '{INPUT}' float32 [rows, features])\n{check}\nlogged as {self.artifact} "
            f"(`lakeforge serve {self.model} --runtime onnx` serves it)"
        )


def _metadata(model: ScoringModel, feature_set: str, check: Parity) -> dict[str, str]:
    return {
        "lakeforge.model": model.name,
        "lakeforge.version": str(model.version),
        "lakeforge.run_id": model.run_id,
        "lakeforge.source_uri": model.uri,
        "lakeforge.task": model.task,
        "lakeforge.features": json.dumps(list(model.features)),
        "lakeforge.feature_set": feature_set,
        "lakeforge.estimator": f"{type(model.estimator).__module__}.{type(model.estimator).__name__}",
        "lakeforge.parity_rows": str(check.rows),
        "lakeforge.parity_max_abs_diff": repr(check.max_abs_diff),
        "lakeforge.exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def export_onnx(
    client: Any, catalog: Any, model_cfg: Any, version: str | None, alias: str, out: Path | None, project_dir: Path
) -> Exported:
    """Convert version ``version`` (or the one ``alias`` points at) to ONNX, check it, write it."""
    from lakeforge.scoring.model import load_model, load_version

    name, task = str(model_cfg.name), str(model_cfg.task)
    model = load_version(client, name, version, task) if version is not None else load_model(client, name, alias, task)
    proto = convert(model.estimator, len(model.features), task)
    onnx_model = OnnxModel(proto.SerializeToString(), task)
    feature_set = str(model_cfg.feature_set)
    x, source = parity_rows(catalog, feature_set, model.features)
    check = parity(model.estimator, onnx_model, x, model.features, task, source)
    if check.rows and not check.ok():
        raise ModelExportError(
            f"{name} v{model.version} as ONNX scores {check.source} up to {check.max_abs_diff:.3g} away from the "
            f"original (limit {TOLERANCE:g}); nothing written. A feature value within float32 rounding of a "
            "split threshold takes the other branch in ONNX; serve this version with the native runtime"
        )
    for key, value in _metadata(model, feature_set, check).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = f"lakeforge model {name} v{model.version} ({model.uri}, run {model.run_id})"
    data = proto.SerializeToString()
    path = (out if out is not None else project_dir / "exports" / f"{name}-v{model.version}.onnx").absolute()
    _write_atomically(path, data)
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / ARTIFACT_FILE
        staged.write_bytes(data)
        client.log_artifact(model.run_id, str(staged), ARTIFACT_DIR)
    client.set_model_version_tag(name, str(model.version), f"{TAG}.parity_rows", str(check.rows))
    client.set_model_version_tag(name, str(model.version), f"{TAG}.parity_max_abs_diff", repr(check.max_abs_diff))
    return Exported(name, model.version, path, f"runs:/{model.run_id}/{ARTIFACT_DIR}/{ARTIFACT_FILE}", check, len(data))


def load_onnx(client: Any, model: ScoringModel) -> OnnxModel:
    """The ONNX file `export_onnx` logged for ``model``'s version; an error saying how to make it."""
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = client.download_artifacts(model.run_id, f"{ARTIFACT_DIR}/{ARTIFACT_FILE}", tmp)
            data = Path(local).read_bytes()
        except (MlflowException, OSError) as exc:
            raise ModelExportError(
                f"{model.name} v{model.version} (alias {model.alias}) has no ONNX export; run "
                f"`lakeforge export {model.name} --version {model.version} --format onnx` first"
            ) from exc
    onnx_model = OnnxModel(data, model.task)
    meta = onnx_model.metadata
    if meta.get("lakeforge.features") != json.dumps(list(model.features)):
        raise ModelExportError(
            f"the ONNX export of {model.name} v{model.version} lists other features than the version's "
            f"signature; export it again with `lakeforge export {model.name} --version {model.version} --format onnx`"
        )
    return onnx_model
