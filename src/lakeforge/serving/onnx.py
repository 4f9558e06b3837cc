"""Portable models: a registered version as an ONNX file, and an ONNX file as a model to serve.

`export_onnx` (``lakeforge export MODEL --format onnx``) converts a LightGBM version (lakeforge's
own converter, `lightgbm_to_onnx`: float64 thresholds, as LightGBM compares) or a scikit-learn
one (skl2onnx, float32) to ONNX, with one input ``features`` of shape (rows, model features) in
the order of the version's signature, and the model's name, version, run, task and feature names
in the file's metadata (``lakeforge.*`` keys). Before anything is written it scores up to 10,000
rows of ``features.<feature_set>`` with both the original model and the ONNX file under
onnxruntime, and refuses the export when a score differs by more than 1e-5. The file goes to ``--out`` and
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
TARGET_OPSET = 15  # the default ONNX opset of the graphs (the highest onnxmltools supports with onnx 1.23)
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
        self._dtype: Any = None  # the input's numpy type: float64 (lakeforge's LightGBM graphs) or float32

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
        if self._dtype is None:
            self._dtype = np.float64 if self.session.get_inputs()[0].type == "tensor(double)" else np.float32
        return list(self.session.run(None, {INPUT: np.ascontiguousarray(x, dtype=self._dtype)}))

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
    """``estimator`` as an ONNX ModelProto taking ``INPUT`` (rows, n_features).

    LightGBM models through `lightgbm_to_onnx` (float64 input), anything else through skl2onnx
    (float32 input; pipelines included as far as skl2onnx knows their steps, LightGBM steps through
    onnxmltools); probabilities as a plain tensor, not a ZipMap.
    """
    kind = type(estimator).__name__
    try:
        if is_lightgbm(estimator):
            return lightgbm_to_onnx(estimator, n_features, task)
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
    except ModelExportError:
        raise
    except Exception as exc:  # the converters raise RuntimeError, NameError, TypeError…: say which model
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelExportError(
            f"cannot convert {kind} to ONNX: {first[:300].rstrip('.')}; lakeforge converts LightGBM binary "
            "classifiers and regressors and the scikit-learn estimators and pipelines skl2onnx supports"
        ) from exc


def lightgbm_to_onnx(estimator: Any, n_features: int, task: str) -> Any:
    """A LightGBM binary classifier or regressor as one ``ai.onnx.ml`` TreeEnsembleRegressor on a
    float64 input, with the split thresholds and leaf values as float64 tensors.

    Why not onnxmltools: its converter casts the input and the thresholds to float32, and a value
    within float32 rounding of a threshold then takes the other branch (0.06 off on 10,000 rows of
    the demo's features). Compared in float64, as LightGBM compares, the scores differ only by the
    float32 output (~1e-7). Missing values go where LightGBM sends them: the default side for
    ``missing_type`` NaN, the side of 0.0 for None (LightGBM reads NaN as 0 there).
    """
    from onnx import TensorProto, helper, numpy_helper

    booster = estimator.booster_
    best = int(getattr(booster, "best_iteration", 0) or 0)
    dump = booster.dump_model(num_iteration=best if best > 0 else None)
    objective = str(dump.get("objective", "")).split()
    name = objective[0] if objective else ""
    if int(dump.get("num_tree_per_iteration", 1)) != 1:
        raise ModelExportError(f"cannot convert a LightGBM model with objective '{name}' (several trees per iteration)")
    nodes: dict[str, list[Any]] = {k: [] for k in ("tree", "node", "feature", "mode", "value", "yes", "no", "missing")}
    leaves: dict[str, list[Any]] = {"tree": [], "node": [], "weight": []}

    def walk(tree: int, node: dict[str, Any], ids: list[int]) -> int:
        me = ids[0]
        ids[0] += 1
        nodes["tree"].append(tree)
        nodes["node"].append(me)
        at = len(nodes["tree"]) - 1
        if "split_index" not in node:  # a leaf (a tree of one leaf is a bare {"leaf_value": v})
            if "leaf_coeff" in node:
                raise ModelExportError("cannot convert a LightGBM model with linear trees (linear_tree=true)")
            for key, value in (("feature", 0), ("mode", "LEAF"), ("value", 0.0), ("yes", 0), ("no", 0), ("missing", 0)):
                nodes[key].append(value)
            leaves["tree"].append(tree)
            leaves["node"].append(me)
            leaves["weight"].append(float(node.get("leaf_value", 0.0)))
            return me
        if node["decision_type"] != "<=":
            raise ModelExportError("cannot convert a LightGBM model with categorical splits (decision_type '==')")
        threshold = float(node["threshold"])
        if abs(threshold) >= 1e300:  # LightGBM dumps an infinite threshold (NaN vs the rest) as ±1e300
            threshold = float(np.copysign(np.inf, threshold))
        missing = str(node["missing_type"])
        if missing == "NaN":
            to_left = bool(node["default_left"])
        elif missing == "None":
            to_left = threshold >= 0.0
        else:  # Zero: zeros go the default side, which a threshold comparison cannot say
            raise ModelExportError("cannot convert a LightGBM model trained with zero_as_missing=true")
        for key, value in (("feature", int(node["split_feature"])), ("mode", "BRANCH_LEQ"), ("value", threshold)):
            nodes[key].append(value)
        nodes["missing"].append(int(to_left))
        nodes["yes"].append(0)
        nodes["no"].append(0)
        nodes["yes"][at] = walk(tree, node["left_child"], ids)
        nodes["no"][at] = walk(tree, node["right_child"], ids)
        return me

    for tree, info in enumerate(dump["tree_info"]):
        walk(tree, info["tree_structure"], [0])
    ensemble = helper.make_node(
        "TreeEnsembleRegressor",
        [INPUT],
        ["raw"],
        domain="ai.onnx.ml",
        n_targets=1,
        aggregate_function="AVERAGE" if dump.get("average_output") else "SUM",
        nodes_treeids=nodes["tree"],
        nodes_nodeids=nodes["node"],
        nodes_featureids=nodes["feature"],
        nodes_modes=nodes["mode"],
        nodes_values_as_tensor=numpy_helper.from_array(np.array(nodes["value"], dtype=np.float64), "thresholds"),
        nodes_truenodeids=nodes["yes"],
        nodes_falsenodeids=nodes["no"],
        nodes_missing_value_tracks_true=nodes["missing"],
        target_treeids=leaves["tree"],
        target_nodeids=leaves["node"],
        target_ids=[0] * len(leaves["node"]),
        target_weights_as_tensor=numpy_helper.from_array(np.array(leaves["weight"], dtype=np.float64), "leaves"),
    )
    graph_nodes = [ensemble]
    initializers = []
    if task == "classification":
        if name not in ("binary", "cross_entropy"):
            raise ModelExportError(f"cannot convert a LightGBM classifier with objective '{name}' (binary only)")
        sigmoid = next((float(p.split(":")[1]) for p in objective[1:] if p.startswith("sigmoid:")), 1.0)
        initializers += [
            numpy_helper.from_array(np.array([sigmoid], dtype=np.float32), "sigmoid"),
            numpy_helper.from_array(np.array([1.0], dtype=np.float32), "one"),
        ]
        graph_nodes += [
            helper.make_node("Mul", ["raw", "sigmoid"], ["scaled"]),
            helper.make_node("Sigmoid", ["scaled"], ["p1"]),
            helper.make_node("Sub", ["one", "p1"], ["p0"]),
            helper.make_node("Concat", ["p0", "p1"], ["probabilities"], axis=1),
            helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0),
        ]
        outputs = [
            helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2]),
        ]
    else:
        if name in ("poisson", "gamma", "tweedie"):
            graph_nodes.append(helper.make_node("Exp", ["raw"], ["variable"]))
        elif name.startswith("regression") or name in ("huber", "fair", "quantile", "mape"):
            graph_nodes.append(helper.make_node("Identity", ["raw"], ["variable"]))
        else:
            raise ModelExportError(f"cannot convert a LightGBM regressor with objective '{name}'")
        outputs = [helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, 1])]
    graph = helper.make_graph(
        graph_nodes,
        "lightgbm",
        [helper.make_tensor_value_info(INPUT, TensorProto.DOUBLE, [None, n_features])],
        outputs,
        initializer=initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", TARGET_OPSET), helper.make_opsetid("ai.onnx.ml", 3)],
        producer_name="lakeforge",
    )
    model.ir_version = 8  # what onnxruntime and opset 15 readers expect
    return model


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
    input_type: str  # float64 | float32

    def describe(self) -> str:
        check = (
            f"parity: max |score difference| {self.parity.max_abs_diff:.2e} over {self.parity.source} "
            f"(limit {TOLERANCE:g})"
            if self.parity.rows
            else f"parity: not checked ({self.parity.source} does not exist; build the features first to check)"
        )
        return (
            f"exported {self.model} v{self.version} to {self.path} ({self.size_bytes / 1e6:.1f} MB, ONNX, "
            f"input '{INPUT}' {self.input_type} [rows, features])\n{check}\nlogged as {self.artifact} "
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
    from onnx import TensorProto

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
    input_type = "float64" if proto.graph.input[0].type.tensor_type.elem_type == TensorProto.DOUBLE else "float32"
    artifact = f"runs:/{model.run_id}/{ARTIFACT_DIR}/{ARTIFACT_FILE}"
    return Exported(name, model.version, path, artifact, check, len(data), input_type)


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
