"""`lakeforge explain`: exact reasons for chosen prediction rows, recomputed from what scored them.

The scoring job writes cheap path-attribution reasons for every row; for the few rows someone
asks about, this recomputes every feature's contribution exactly (LightGBM's TreeSHAP; occlusion
for other models) from the same model version and the same feature-table version the row was
scored from, read through delta-rs (no Spark). It also re-derives the score and says whether it
matches the stored one, so an explanation can never silently describe a different prediction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lakeforge.errors import TableError, UsageError
from lakeforge.lake.catalog import Catalog
from lakeforge.scoring.lineage import check_predicate

MAX_ROWS = 20
SCORE_TOLERANCE = 1e-9
_META = ("prediction", "score", "reasons", "reasons_method", "model_name", "model_alias", "model_version")


@dataclass(frozen=True)
class Explanation:
    """One prediction row with every feature's exact contribution, largest first."""

    keys: dict[str, Any]
    run_date: Any
    model: str  # e.g. "flight_delay v1 (alias champion)"
    method: str  # treeshap | occlusion
    units: str
    stored_score: float | None
    score: float
    stored_reasons: list[dict[str, Any]]
    stored_method: str | None
    bias: float
    contributions: list[tuple[str, float, float]]  # (feature, value, contribution)

    def describe(self) -> str:
        """The explanation as a person reads it."""
        keys = "  ".join(f"{k}={v}" for k, v in self.keys.items())
        match = (
            "matches the stored score"
            if self.stored_score is not None and abs(self.score - self.stored_score) <= SCORE_TOLERANCE
            else f"DIFFERS from the stored score {self.stored_score}: the features or model changed since scoring"
        )
        lines = [
            f"{keys}  (run_date {self.run_date}, {self.model})",
            f"  score {self.score:.4f} recomputed, {match}",
            f"  {'feature':<28} {'value':>12} {'contribution':>13}   exact {self.method}, in {self.units}",
        ]
        for feature, value, contribution in self.contributions:
            shown = "null" if value is None or np.isnan(value) else f"{value:.6g}"
            lines.append(f"  {feature:<28} {shown:>12} {contribution:>+13.4f}")
        lines.append(f"  {'(bias: the expected value)':<41} {self.bias:>+13.4f}")
        stored = ", ".join(f"{r['feature']} {r['contribution']:+.3f}" for r in self.stored_reasons) or "none"
        lines.append(f"  stored reasons ({self.stored_method}): {stored}")
        return "\n".join(lines)


def _rows(catalog: Catalog, table: str, where: str, limit: int) -> tuple[list[dict[str, Any]], list[str]]:
    """The matching prediction rows (at most ``limit``) and the table's key columns."""
    from lakeforge.lake.delta import table_info
    from lakeforge.lake.sql import run_sql

    name = catalog.require(table)
    columns = list(table_info(catalog, str(name)).schema.names)
    if name.layer != "predictions" or not set(_META) <= set(columns) or "prediction" not in columns:
        raise TableError(
            f"'{name}' is not a prediction table (written by the score step, e.g. predictions.flight_delay)"
        )
    keys = columns[: columns.index("prediction")]
    predicate = check_predicate(name, where)
    statement = f'SELECT * FROM "{name.layer}"."{name.name}" WHERE ({predicate}) ORDER BY ALL LIMIT {limit + 1}'
    rows = list(run_sql(catalog, statement).to_pylist())
    if len(rows) > limit:
        raise UsageError(
            f'--where "{where}" matches more than {limit} rows of {name}; narrow it, or raise --limit '
            "(exact reasons cost ~100x a prediction)"
        )
    return rows, keys


def _feature_rows(catalog: Catalog, table: str, version: int, run_date: Any, event_date: str) -> Any:
    """One date of the feature table at ``version``, as pandas (delta-rs through DuckDB, no Spark)."""
    from lakeforge.lake.sql import run_sql

    statement = f"SELECT * FROM {table} WHERE {event_date} = DATE '{run_date.isoformat()}'"
    return run_sql(catalog, statement, versions={table: int(version)}).to_pandas()


def _model(name: str, version: int) -> tuple[Any, tuple[str, ...]]:
    import mlflow.sklearn
    from mlflow.models import get_model_info

    from lakeforge.scoring.model import model_features

    uri = f"models:/{name}/{version}"
    return mlflow.sklearn.load_model(uri), model_features(get_model_info(uri), uri)


def explain(cfg: Any, catalog: Catalog, table: str, where: str, limit: int = MAX_ROWS) -> list[Explanation]:
    """Exact contributions for the rows of prediction table ``table`` matching ``where``."""
    import mlflow

    from lakeforge.config.compose import resolve_path
    from lakeforge.features.compute import EVENT_DATE
    from lakeforge.scoring.predict import is_lightgbm, occlusion_contributions, positive_proba
    from lakeforge.scoring.reasons import exact_contributions

    rows, keys = _rows(catalog, table, where, limit)
    uri = resolve_path(cfg, str(cfg.tracking.uri))
    registry = cfg.tracking.get("registry_uri")
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(resolve_path(cfg, str(registry)) if registry else uri)
    models: dict[tuple[str, int], tuple[Any, tuple[str, ...]]] = {}
    features: dict[tuple[str, int, Any], Any] = {}
    out = []
    for row in rows:
        model_key = (str(row["model_name"]), int(row["model_version"]))
        if model_key not in models:
            models[model_key] = _model(*model_key)
        estimator, names = models[model_key]
        source = (str(row["feature_table"]), int(row["feature_table_version"]), row["run_date"])
        if source not in features:
            features[source] = _feature_rows(catalog, source[0], source[1], source[2], EVENT_DATE)
        frame = features[source]
        match = frame
        for key in keys:
            match = match[match[key] == row[key]]
        if len(match) != 1:
            raise TableError(
                f"{source[0]} v{source[1]} has {len(match)} rows for { ({k: row[k] for k in keys}) }; "
                "cannot recompute this prediction"
            )
        x = match[list(names)].to_numpy(dtype=np.float64)
        if is_lightgbm(estimator):
            contributions, method, units = exact_contributions(estimator, x)[0], "treeshap", "log-odds"
            score = float(positive_proba(estimator, x, names)[0])
        else:
            contributions = occlusion_contributions(estimator, x, names, "classification")[0]
            method, units = "occlusion", "probability"
            score = float(contributions.sum())
        order = np.argsort(-np.abs(contributions[:-1]), kind="stable")
        out.append(
            Explanation(
                keys={k: row[k] for k in keys},
                run_date=row["run_date"],
                model=f"{model_key[0]} v{model_key[1]} (alias {row['model_alias']})",
                method=method,
                units=units,
                stored_score=row["score"],
                score=score,
                stored_reasons=list(row["reasons"] or []),
                stored_method=row["reasons_method"],
                bias=float(contributions[-1]),
                contributions=[(names[i], float(x[0, i]), float(contributions[i])) for i in order],
            )
        )
    return out
