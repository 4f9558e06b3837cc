"""The model versions a scoring job uses, found by registry alias and loaded once on the driver.

The features a version scores on come from its logged signature, not from today's config: a
champion trained before a feature was added still gets exactly the columns it was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lakeforge.errors import RegistryError, UsageError
from lakeforge.scoring.predict import Scorer, resolve_method


@dataclass(frozen=True)
class ScoringModel:
    """One registered model version behind an alias, with what the prediction rows record of it."""

    name: str
    alias: str
    version: int
    run_id: str
    uri: str
    features: tuple[str, ...]
    task: str
    estimator: Any  # scikit-learn API (LightGBM's included)


def composed_model(cfg: Any, model_name: str) -> Any:
    """The composed pipeline's model, which must be ``model_name`` (checked before anything connects)."""
    model_cfg = cfg.get("model")
    if model_cfg is None or str(model_cfg.name) != model_name:
        composed = None if model_cfg is None else str(model_cfg.name)
        raise UsageError(
            f"model '{model_name}' is not the composed pipeline's model ({composed}); "
            "choose the pipeline with the override pipeline=<name>"
        )
    return model_cfg


def model_features(info: Any, uri: str) -> tuple[str, ...]:
    signature = getattr(info, "signature", None)
    names = signature.inputs.input_names() if signature is not None and signature.inputs is not None else []
    if not names:
        raise RegistryError(f"{uri} was logged without named input columns in its signature; retrain it with lakeforge")
    return tuple(str(n) for n in names)


def load_model(client: Any, name: str, alias: str, task: str) -> ScoringModel:
    """The version ``alias`` of registered model ``name`` points at, loaded.

    Errors name the model and alias and say how to get one: no such model (train it), no such
    alias (promote, or choose another alias), a Spark MLlib model (not scored in batch yet).
    """
    from lakeforge.tracking.registry import alias_version

    version = alias_version(client, name, alias)
    if version is None:
        hint = (
            "promote a version (`lakeforge run evaluate` or `lakeforge promote`)"
            if alias == "champion"
            else "set it in the registry, or remove it from model.scoring"
        )
        raise RegistryError(f"model '{name}' has no version with alias '{alias}'; {hint}")
    return _load(client, name, version, alias, task)


def load_version(client: Any, name: str, version: str, task: str) -> ScoringModel:
    """Version ``version`` of registered model ``name``, loaded (a RegistryError listing the
    versions when there is no such version)."""
    return _load(client, name, version, "", task)


def _load(client: Any, name: str, version: str, alias: str, task: str) -> ScoringModel:
    import mlflow.sklearn
    from mlflow.models import get_model_info

    from lakeforge.tracking.registry import model_version

    mv = model_version(client, name, version)
    version = str(mv.version)
    uri = f"models:/{name}/{version}"
    info = get_model_info(uri)
    if "spark" in (info.flavors or {}):
        raise RegistryError(
            f"{uri}{f' (alias {alias})' if alias else ''} is a Spark MLlib model; batch scoring runs "
            "scikit-learn-API models (LightGBM, scikit-learn) only"
        )
    return ScoringModel(
        name=name,
        alias=alias,
        version=int(version),
        run_id=str(mv.run_id),
        uri=uri,
        features=model_features(info, uri),
        task=task,
        estimator=mlflow.sklearn.load_model(uri),
    )


def scorer_for(
    model: ScoringModel, scoring: Any, payload: Any, passthrough: tuple[str, ...], num_threads: int
) -> Scorer:
    """The `Scorer` of a model version under ``model.scoring``'s settings: batch scoring hands it
    to the tasks (``payload`` a Spark broadcast of the pickled estimator), online serving calls
    it in process (``payload`` the pickled bytes). One construction, so both score alike."""
    reasons = scoring.reasons
    method = resolve_method(str(reasons.method), model.estimator, int(reasons.top_k))
    settings = f"{method}|{reasons.top_k}|{reasons.exact_min_score}|{scoring.threshold}"
    return Scorer(
        key=f"{model.uri}|{model.run_id}|{settings}",
        label=f"{model.name} v{model.version} (alias {model.alias})",
        model=payload,
        features=model.features,
        task=model.task,
        threshold=float(scoring.threshold),
        method=method,
        top_k=int(reasons.top_k),
        exact_min_score=None if reasons.exact_min_score is None else float(reasons.exact_min_score),
        num_threads=num_threads,
        passthrough=passthrough,
    )
