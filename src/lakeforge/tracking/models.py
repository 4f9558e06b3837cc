"""Models in MLflow: logged with an explicit signature and an input example, registered, aliased.

Every scikit-learn-API estimator (LightGBM's included) is logged with the sklearn flavour and
``pyfunc_predict_fn="predict_proba"``: the LightGBM flavour's pyfunc returns class labels, not
scores. Models are saved with skops; the types it must trust are limited to an allow-list of
packages, and the pip requirements are pinned from the installed versions (inferring them took
~15 s per model). See docs/design/training.md §3.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import metadata
from typing import Any

from lakeforge.errors import ConfigError

TRUSTED_PREFIXES = ("lightgbm.", "sklearn.", "numpy.", "collections.", "builtins.", "scipy.")
REQUIREMENTS = ("lightgbm", "scikit-learn", "numpy", "pandas", "scipy", "skops")


def _trusted_types(estimator: Any) -> list[str]:
    """The types skops must trust to load ``estimator``; refuses any outside the allow-list."""
    import skops.io

    found = skops.io.get_untrusted_types(data=skops.io.dumps(estimator))
    foreign = [t for t in found if not t.startswith(TRUSTED_PREFIXES)]
    if foreign:
        raise ConfigError(
            f"the model holds types lakeforge will not trust when loading it: {', '.join(foreign)} "
            f"(allowed: {', '.join(p.rstrip('.') for p in TRUSTED_PREFIXES)})",
            key="model.estimator",
        )
    return list(found)


def _pinned_requirements() -> list[str]:
    """``package==version`` of what a model needs to load, from this environment."""
    pins = []
    for name in REQUIREMENTS:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return pins


def signature(features: Sequence[str], task: str) -> Any:
    """Every feature an optional double; the output P(class) per class, or the prediction."""
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    inputs = Schema([ColSpec("double", name, required=False) for name in features])
    shape = (-1, 2) if task == "classification" else (-1,)
    return ModelSignature(inputs=inputs, outputs=Schema([TensorSpec(np.dtype(np.float64), shape)]))


def log_model(
    estimator: Any,
    example: Any,
    features: Sequence[str],
    task: str,
    registered_name: str | None,
    name: str = "model",
) -> Any:
    """Log ``estimator`` as ``name`` in the active run (registered as ``registered_name`` when given);
    the ModelInfo."""
    import mlflow.sklearn

    return mlflow.sklearn.log_model(
        estimator,
        name=name,
        signature=signature(features, task),
        input_example=example,
        pyfunc_predict_fn="predict_proba" if task == "classification" else "predict",
        pip_requirements=_pinned_requirements(),
        skops_trusted_types=_trusted_types(estimator),
        registered_model_name=registered_name,
    )


def set_alias(client: Any, name: str, alias: str, version: str | int) -> None:
    """Point ``alias`` of registered model ``name`` at ``version`` (moving it if it pointed elsewhere)."""
    client.set_registered_model_alias(name, alias, str(version))
