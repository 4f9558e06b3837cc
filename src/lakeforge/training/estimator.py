"""The model's estimator from ``model.estimator._target_`` and ``model.params``, checked before any data
is read: an unknown class, an unknown parameter or a value of the wrong type is a ConfigError naming
the key, not a stack trace from inside the library at fit time.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from lakeforge.errors import ConfigError, did_you_mean


def estimator_class(target: str, where: str = "model") -> type:
    """The class ``target`` names (``package.module.Class``); errors name ``<where>.estimator._target_``."""
    module_name, _, class_name = target.rpartition(".")
    key = f"{where}.estimator._target_"
    if not module_name:
        raise ConfigError(f"'{target}' is not a class path; write e.g. lightgbm.LGBMClassifier", key=key)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import '{target}': no module '{module_name}' ({exc})", key=key) from exc
    found = getattr(module, class_name, None)
    if not isinstance(found, type):
        public = [n for n in dir(module) if not n.startswith("_") and isinstance(getattr(module, n, None), type)]
        raise ConfigError(
            f"cannot import '{target}': module '{module_name}' has no class '{class_name}'"
            f"{did_you_mean(class_name, public)}",
            key=key,
        )
    return found


def is_mllib(cls: type) -> bool:
    """Whether ``cls`` is a Spark MLlib estimator (trained on the executors, not on the driver)."""
    if not cls.__module__.startswith("pyspark."):
        return False
    from pyspark.ml import Estimator

    return issubclass(cls, Estimator)


def is_mllib_model(model: Any) -> bool:
    """Whether ``model.estimator._target_`` names a Spark MLlib estimator."""
    estimator = model.get("estimator")
    target = estimator.get("_target_") if estimator is not None else None
    return bool(target) and is_mllib(estimator_class(str(target)))


def _type_error(name: str, value: Any, default: Any) -> str | None:
    """Why ``value`` can't replace a parameter whose default is ``default`` (None: it can)."""
    if default is None or default is inspect.Parameter.empty:
        return None
    kinds: tuple[tuple[type, tuple[type, ...], str], ...] = (
        (bool, (bool,), "a boolean"),
        (int, (int,), "an integer"),
        (float, (int, float), "a number"),
        (str, (str,), "a string"),
    )
    for default_type, accepted, words in kinds:
        if isinstance(default, default_type):
            ok = isinstance(value, accepted) and not (default_type is not bool and isinstance(value, bool))
            if not ok:
                return f"expects {words} (default {default!r}), got {value!r} ({type(value).__name__})"
            return None
    return None


def _extra_params(cls: type) -> dict[str, str] | None:
    """Name -> canonical name of the parameters an open ``**kwargs`` accepts, where the library lists
    them: LightGBM's 141 parameters with their aliases (a private API, pinned by a test). None: unknown.
    """
    if not cls.__module__.startswith("lightgbm"):
        return None
    from lightgbm.basic import _ConfigAliases

    aliases = _ConfigAliases._get_all_param_aliases()
    return {alias: canonical for canonical, names in aliases.items() for alias in (canonical, *names)}


def build_estimator(model: Any, where: str = "model") -> Any:
    """An unfitted estimator: ``_target_`` built with its params, the seed and the class weights.

    ``model`` holds ``estimator``, ``params``, ``seed`` and ``class_weight``; errors name their keys
    under ``where`` (``model``, or ``model.gate.baseline`` for the baseline).
    """
    from omegaconf import OmegaConf

    spec = OmegaConf.to_container(model.estimator, resolve=True) if model.get("estimator") is not None else {}
    if not isinstance(spec, dict) or not spec.get("_target_"):
        raise ConfigError("the estimator needs '_target_' (e.g. lightgbm.LGBMClassifier)", key=f"{where}.estimator")
    cls = estimator_class(str(spec.pop("_target_")), where)
    params: dict[str, Any] = {str(k): v for k, v in spec.items()}
    if model.get("params") is not None:
        params.update(OmegaConf.to_container(model.params, resolve=True))  # type: ignore[arg-type]
    signature = inspect.signature(cls)
    accepted = {n: p for n, p in signature.parameters.items() if n != "self"}
    open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    extra = _extra_params(cls) if open_ended else None
    for name, value in params.items():
        if name not in accepted:
            if open_ended and extra is None:  # an open **kwargs the library does not enumerate
                continue
            if extra and name in extra:
                canonical = extra[name]
                if canonical != name and canonical in accepted:
                    raise ConfigError(
                        f"'{name}' is LightGBM's alias of '{canonical}', which LightGBM would ignore "
                        f"next to the estimator's own '{canonical}'; write {where}.params.{canonical}",
                        key=f"{where}.params.{name}",
                    )
                continue
            raise ConfigError(
                f"{cls.__name__} has no parameter '{name}'{did_you_mean(name, [*accepted, *(extra or ())])}",
                key=f"{where}.params.{name}",
            )
        problem = _type_error(name, value, accepted[name].default)
        if problem:
            raise ConfigError(f"{cls.__name__} {problem}", key=f"{where}.params.{name}")
    if "random_state" in accepted and "random_state" not in params:
        params["random_state"] = int(model.get("seed", 0))
    if is_mllib(cls) and "seed" in accepted and "seed" not in params:  # MLlib's keyword-only ``seed``
        params["seed"] = int(model.get("seed", 0))
    class_weight = model.get("class_weight")
    if class_weight is not None:
        if "class_weight" not in accepted:
            raise ConfigError(f"{cls.__name__} takes no class weights", key=f"{where}.class_weight")
        weights = OmegaConf.to_container(class_weight) if not isinstance(class_weight, str) else class_weight
        params["class_weight"] = (
            {int(str(k)): float(v) for k, v in weights.items()} if isinstance(weights, dict) else weights
        )
    try:
        estimator = cls(**params)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{cls.__name__}({', '.join(params)}): {exc}", key=f"{where}.params") from exc
    # scikit-learn's declared parameter constraints, where the class declares them.
    validate = getattr(estimator, "_validate_params", None)
    if callable(validate) and hasattr(estimator, "_parameter_constraints"):
        try:
            validate()
        except (TypeError, ValueError) as exc:
            raise ConfigError(str(exc), key=f"{where}.params") from exc
    return estimator


def build_baseline(model: Any) -> Any | None:
    """The gate's baseline (``model.gate.baseline``), unfitted, behind a median imputer and a scaler
    (a linear baseline needs both; a tree would not mind them), or None when none is declared."""
    from omegaconf import OmegaConf
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    gate = model.get("gate")
    baseline = gate.get("baseline") if gate is not None else None
    if baseline is None:
        return None
    view = OmegaConf.create(
        {"estimator": baseline.get("estimator"), "params": baseline.get("params"), "seed": model.get("seed", 0)}
    )
    estimator = build_estimator(view, "model.gate.baseline")
    return make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler(), estimator)
