"""Per-row reasons for LightGBM scores: path attribution (Saabas) or exact TreeSHAP.

Path attribution credits each split on a row's decision path with the change in
the node's expected raw score, ``value(child) - value(node)``, to the split's
feature; the bias is the sum of the trees' root values (LightGBM folds the init
score into the first tree, so this is the model's expected raw score). A row's
contributions plus its bias sum to its raw score exactly (up to float rounding).

Because a row's path through a tree is fixed by the leaf it reaches, each tree's
attribution is a table ``leaf -> contribution vector`` computed once at compile
time; scoring is then (1) find every row's leaf in every tree, level by level
with numpy, and (2) sum the looked-up rows of the tables, a sparse one-hot
matrix times a dense table. Exact TreeSHAP (LightGBM's ``pred_contrib=True``)
is ~100x slower than ``predict`` and is meant for a configured subset of rows.

Note: ``dump_model`` prints internal node values with 6 significant digits, so
individual path contributions carry that rounding; their sum with the bias does
not (it telescopes to the full-precision leaf value).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from lakeforge.errors import ConfigError, did_you_mean

METHODS = ("path", "treeshap")
"""Names of the reason methods, as written in config and in the ``reasons_method`` column."""

REASONS_TYPE = pa.list_(pa.struct([("feature", pa.string()), ("contribution", pa.float64())]))
"""Arrow type of the ``reasons`` column: Delta ``array<struct<feature:string, contribution:double>>``."""

# LightGBM's kZeroThreshold: dense inputs with |x| <= this are dropped, i.e. read as 0.
_ZERO_THRESHOLD = 1e-35
# Rows per block: keeps each level's working arrays (rows x trees) in cache.
_BLOCK_ROWS = 4096


@dataclass(frozen=True)
class CompiledTrees:
    """A LightGBM model flattened into numpy arrays, one node table for all trees.

    Nodes of every tree share one index space; a leaf points to itself on both
    sides, so walking ``max_depth`` levels parks every row at its leaf.
    """

    feature_names: tuple[str, ...]
    split_feature: np.ndarray  # int64 per node (0 at leaves)
    threshold: np.ndarray  # float64 per node (+inf at leaves)
    nan_left: np.ndarray  # bool per node: where a NaN goes
    zero_left: np.ndarray  # bool per node: where an exact 0 goes (differs only for missing_type Zero)
    left: np.ndarray  # int64 per node
    right: np.ndarray  # int64 per node
    leaf_slot: np.ndarray  # int64 per node: row of ``leaf_table`` (-1 at internal nodes)
    leaf_index: np.ndarray  # int64 per node: LightGBM's leaf index within its tree (-1 at internal nodes)
    roots: np.ndarray  # int64 per tree
    max_depth: int
    has_zero_missing: bool
    leaf_table: np.ndarray  # float64 (n_leaves_total, n_features + 1): contributions, bias last
    leaf_offset: np.ndarray  # int64 per tree: slot of its leaf 0 (slot = offset + LightGBM leaf index)
    booster: Any = None  # the source Booster: lets `path_contributions` take leaves from LightGBM's C++

    @property
    def n_features(self) -> int:
        """Number of input features the model expects."""
        return len(self.feature_names)

    @property
    def n_trees(self) -> int:
        """Number of trees (iterations) compiled."""
        return len(self.roots)


def _booster(model: Any) -> Any:
    """The ``lightgbm.Booster`` behind a fitted sklearn wrapper or a Booster."""
    import lightgbm

    booster = getattr(model, "booster_", model)
    if not isinstance(booster, lightgbm.Booster):
        raise ConfigError(
            "reasons need a fitted LightGBM model (LGBMClassifier, LGBMRegressor or Booster), "
            f"got '{type(model).__name__}'"
        )
    return booster


class _Builder:
    """Accumulates the node arrays while walking ``dump_model`` trees."""

    def __init__(self, feature_names: Sequence[str]) -> None:
        self.feature_names = list(feature_names)
        self.n_features = len(feature_names)
        self.cols: dict[str, list[Any]] = {
            k: [] for k in ("feature", "threshold", "nan_left", "zero_left", "left", "right", "slot", "leaf_index")
        }
        self.table_rows: dict[int, np.ndarray] = {}
        self.leaf_offset: list[int] = []
        self.max_depth = 0
        self.has_zero_missing = False

    def _new_node(self) -> int:
        for values in self.cols.values():
            values.append(None)
        return len(self.cols["feature"]) - 1

    def _set(self, node: int, **values: Any) -> None:
        for key, value in values.items():
            self.cols[key][node] = value

    def add_tree(self, tree: dict[str, Any]) -> int:
        """Add one tree; return its root node id."""
        root = tree["tree_structure"]
        bias = float(root["internal_value"] if "split_index" in root else root["leaf_value"])
        path = np.zeros(self.n_features + 1)
        path[-1] = bias
        self.leaf_offset.append(len(self.table_rows))
        return self._add(root, path, depth=0)

    def _add(self, spec: dict[str, Any], path: np.ndarray, depth: int) -> int:
        node = self._new_node()
        if "split_index" not in spec:
            self.max_depth = max(self.max_depth, depth)
            self._set(node, feature=0, threshold=np.inf, nan_left=True, zero_left=True, left=node, right=node)
            leaf_index = int(spec.get("leaf_index", 0))  # a single-leaf tree has no index
            slot = self.leaf_offset[-1] + leaf_index
            self._set(node, slot=slot, leaf_index=leaf_index)
            self.table_rows[slot] = path
            return node
        feature = int(spec["split_feature"])
        if spec["decision_type"] != "<=":
            raise ConfigError(
                f"the model splits on feature '{self.feature_names[feature]}' as categorical; path reasons "
                "support numerical splits only: use reasons method 'treeshap', or train without categorical_feature"
            )
        threshold = float(spec["threshold"])
        missing = spec["missing_type"]
        default_left = bool(spec["default_left"])
        # LightGBM's NumericalDecision: NaN is read as 0 unless missing_type is NaN; then a missing
        # value (NaN for 'NaN', NaN or 0 for 'Zero') follows default_left, anything else x <= threshold.
        zero_left = default_left if missing == "Zero" else threshold >= 0.0
        nan_left = default_left if missing in ("NaN", "Zero") else threshold >= 0.0
        self.has_zero_missing |= missing == "Zero"
        value = float(spec["internal_value"])
        children = []
        for side in ("left_child", "right_child"):
            child = spec[side]
            child_value = float(child["internal_value"] if "split_index" in child else child["leaf_value"])
            child_path = path.copy()
            child_path[feature] += child_value - value
            children.append(self._add(child, child_path, depth + 1))
        self._set(node, feature=feature, threshold=threshold, nan_left=nan_left, zero_left=zero_left)
        self._set(node, left=children[0], right=children[1], slot=-1, leaf_index=-1)
        return node


def compile_trees(model: Any) -> CompiledTrees:
    """Flatten a fitted LightGBM model (sklearn wrapper or Booster) for `path_contributions`, once."""
    booster = _booster(model)
    dump = booster.dump_model()
    if dump["num_tree_per_iteration"] != 1:
        raise ConfigError(
            f"path reasons support binary classification and regression; this model has "
            f"{dump['num_tree_per_iteration']} trees per iteration (multiclass): use reasons method 'treeshap'"
        )
    if dump.get("average_output"):
        raise ConfigError("path reasons do not support random-forest mode (average_output): use method 'treeshap'")
    builder = _Builder(dump["feature_names"])
    roots = []
    for tree in dump["tree_info"]:
        if tree.get("is_linear"):
            raise ConfigError("path reasons do not support linear trees (linear_tree=true): use method 'treeshap'")
        roots.append(builder.add_tree(tree))
    cols = builder.cols
    return CompiledTrees(
        feature_names=tuple(builder.feature_names),
        split_feature=np.asarray(cols["feature"], dtype=np.int64),
        threshold=np.asarray(cols["threshold"], dtype=np.float64),
        nan_left=np.asarray(cols["nan_left"], dtype=bool),
        zero_left=np.asarray(cols["zero_left"], dtype=bool),
        left=np.asarray(cols["left"], dtype=np.int64),
        right=np.asarray(cols["right"], dtype=np.int64),
        leaf_slot=np.asarray(cols["slot"], dtype=np.int64),
        leaf_index=np.asarray(cols["leaf_index"], dtype=np.int64),
        roots=np.asarray(roots, dtype=np.int64),
        max_depth=builder.max_depth,
        has_zero_missing=builder.has_zero_missing,
        leaf_table=np.vstack([builder.table_rows[slot] for slot in range(len(builder.table_rows))]),
        leaf_offset=np.asarray(builder.leaf_offset, dtype=np.int64),
        booster=booster,
    )


def _as_matrix(compiled: CompiledTrees, x: Any) -> np.ndarray:
    matrix = np.ascontiguousarray(x, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] != compiled.n_features:
        raise ValueError(f"x must have shape (n_rows, {compiled.n_features}), got {matrix.shape}")
    return matrix


def _leaf_nodes(compiled: CompiledTrees, block: np.ndarray) -> np.ndarray:
    """Node ids of the leaves each row of ``block`` reaches, shape (rows, trees)."""
    n_rows, n_features = block.shape
    # As LightGBM's dense row reader: values within kZeroThreshold of 0 are read as 0.
    block = np.where(np.abs(block) <= _ZERO_THRESHOLD, 0.0, block)
    flat = block.ravel()
    row_base = (np.arange(n_rows, dtype=np.int64) * n_features)[:, None]
    nodes = np.broadcast_to(compiled.roots, (n_rows, compiled.n_trees)).copy()
    check_nan = bool(np.isnan(block).any())
    for _ in range(compiled.max_depth):
        values = flat[row_base + compiled.split_feature[nodes]]
        go_left = values <= compiled.threshold[nodes]
        if check_nan:
            go_left = np.where(np.isnan(values), compiled.nan_left[nodes], go_left)
        if compiled.has_zero_missing:
            go_left = np.where(values == 0.0, compiled.zero_left[nodes], go_left)
        nodes = np.where(go_left, compiled.left[nodes], compiled.right[nodes])
    return nodes


def leaf_indices(compiled: CompiledTrees, x: Any) -> np.ndarray:
    """LightGBM leaf index each row reaches in each tree, as ``predict(x, pred_leaf=True)``."""
    matrix = _as_matrix(compiled, x)
    out = np.empty((matrix.shape[0], compiled.n_trees), dtype=np.int64)
    for start in range(0, matrix.shape[0], _BLOCK_ROWS):
        stop = start + _BLOCK_ROWS
        out[start:stop] = compiled.leaf_index[_leaf_nodes(compiled, matrix[start:stop])]
    return out


def path_contributions(
    compiled: CompiledTrees, x: Any, *, lightgbm_leaves: bool = True, num_threads: int = 0
) -> np.ndarray:
    """Path-attribution (Saabas) contributions, shape (n_rows, n_features + 1), bias last.

    Each row's values sum to its raw score, ``booster.predict(x, raw_score=True)``. With
    ``lightgbm_leaves`` (and a compiled Booster) the leaves come from LightGBM's multithreaded
    ``pred_leaf``, ~4x faster than the numpy walk (`leaf_indices`), which gives the same leaves;
    ``num_threads`` is LightGBM's (0: its default, every core).
    """
    from scipy import sparse

    matrix = _as_matrix(compiled, x)
    n_rows = matrix.shape[0]
    n_trees = compiled.n_trees
    booster_leaves = None
    if lightgbm_leaves and compiled.booster is not None:
        booster_leaves = compiled.booster.predict(matrix, pred_leaf=True, num_threads=num_threads)
        booster_leaves = booster_leaves.reshape(n_rows, n_trees)
    # Sum of each row's leaf-table rows = one-hot (rows x leaves) @ table, in scipy's C loop;
    # in blocks of rows, so the index arrays stay in cache and the one-hot's arrays are reused.
    out = np.empty((n_rows, compiled.leaf_table.shape[1]))
    block = min(_BLOCK_ROWS, max(n_rows, 1))  # a one-row online request needs no block-sized arrays
    ones = np.ones(block * n_trees)
    indptr = np.arange(0, block * n_trees + 1, n_trees, dtype=np.int32)
    offsets = compiled.leaf_offset.astype(np.int32)
    for start in range(0, n_rows, _BLOCK_ROWS):
        stop = min(start + _BLOCK_ROWS, n_rows)
        if booster_leaves is not None:
            slots = booster_leaves[start:stop].astype(np.int32, copy=False) + offsets
        else:
            slots = compiled.leaf_slot[_leaf_nodes(compiled, matrix[start:stop])].astype(np.int32)
        one_hot = sparse.csr_matrix(
            (ones[: slots.size], slots.ravel(), indptr[: stop - start + 1]),
            shape=(stop - start, compiled.leaf_table.shape[0]),
        )
        out[start:stop] = one_hot @ compiled.leaf_table
    return out


def exact_contributions(model: Any, x: Any, *, num_threads: int = 0) -> np.ndarray:
    """Exact TreeSHAP contributions from LightGBM (``pred_contrib=True``), bias last; slow."""
    matrix = np.asarray(x, dtype=np.float64)
    return np.asarray(_booster(model).predict(matrix, pred_contrib=True, num_threads=num_threads))


def contribution_method(name: str) -> Callable[[Any, Any], np.ndarray]:
    """The ``(model, x) -> contributions`` function for a reason method named in config."""
    if name == "path":
        return lambda model, x: path_contributions(compile_trees(model), x)
    if name == "treeshap":
        return exact_contributions
    allowed = ", ".join(f"'{m}'" for m in METHODS)
    raise ConfigError(f"unknown reasons method '{name}'{did_you_mean(name, METHODS)}; allowed: {allowed}")


def top_reasons(contributions: np.ndarray, feature_names: Sequence[str], k: int) -> pa.ListArray:
    """Top-``k`` features per row by |contribution| (bias excluded, zeros dropped), as the ``reasons`` column.

    Returns an Arrow ``list<struct<feature: string, contribution: double>>`` array (`REASONS_TYPE`),
    one list per row, largest |contribution| first (ties among the chosen in feature order); ``.to_pylist()`` gives
    ``[[{"feature": ..., "contribution": ...}, ...], ...]``.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    features = np.asarray(contributions, dtype=np.float64)[:, : len(feature_names)]
    n_rows, n_features = features.shape
    take = min(k, n_features)
    magnitude = np.abs(features)
    if take < n_features:
        # Partition first, then order only the k winners: a full sort of every row is slower.
        chosen = np.argpartition(-magnitude, take - 1, axis=1)[:, :take]
        chosen.sort(axis=1)
    else:
        chosen = np.broadcast_to(np.arange(n_features), (n_rows, n_features))
    order = np.argsort(-np.take_along_axis(magnitude, chosen, axis=1), axis=1, kind="stable")
    chosen = np.take_along_axis(chosen, order, axis=1)
    values = np.take_along_axis(features, chosen, axis=1)
    keep = values != 0.0
    offsets = np.zeros(n_rows + 1, dtype=np.int32)
    np.cumsum(keep.sum(axis=1), out=offsets[1:])
    names = pa.array(list(feature_names), type=pa.string()).take(pa.array(chosen[keep]))
    entries = pa.StructArray.from_arrays([names, pa.array(values[keep])], fields=list(REASONS_TYPE.value_type))
    return pa.ListArray.from_arrays(pa.array(offsets), entries, type=REASONS_TYPE)
