"""Python feature transforms: registered by name with ``@transform("name")``, loaded from ``features/``.

A transform receives the frame (spine columns and every feature computed so far), the names of
its inputs and outputs, and its declared params; it returns the frame with the outputs added.
``lakeforge check`` finds the names by reading the files (``lakeforge.config.transforms``) without
running them; a build imports them here.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lakeforge.errors import FeatureError, did_you_mean

Transform = Callable[..., Any]
_REGISTRY: dict[str, Transform] = {}


def transform(name: str) -> Callable[[Transform], Transform]:
    """Register the decorated function as the transform ``name``; the function is returned unchanged."""

    def register(func: Transform) -> Transform:
        known = _REGISTRY.get(name)
        if known is not None and known.__qualname__ != func.__qualname__:
            raise FeatureError(f"transform '{name}' is registered twice ({known.__module__} and {func.__module__})")
        _REGISTRY[name] = func
        return func

    return register


def load_transforms(project_root: Path) -> dict[str, Transform]:
    """Import every ``features/*.py`` of the project once; return the registry."""
    folder = Path(project_root) / "features"
    for path in sorted(folder.glob("*.py")) if folder.is_dir() else []:
        module = f"lakeforge_user_features.{path.stem}"
        if module in sys.modules:
            continue
        spec = importlib.util.spec_from_file_location(module, path)
        if spec is None or spec.loader is None:
            raise FeatureError(f"cannot import transforms from {path}")
        loaded = importlib.util.module_from_spec(spec)
        sys.modules[module] = loaded
        try:
            spec.loader.exec_module(loaded)
        except Exception as exc:
            del sys.modules[module]
            raise FeatureError(f"importing transforms from {path} failed: {type(exc).__name__}: {exc}") from exc
    return dict(_REGISTRY)


def get_transform(name: str, project_root: Path) -> Transform:
    """The transform registered as ``name``; an unknown name lists the known ones."""
    known = load_transforms(project_root)
    if name not in known:
        raise FeatureError(
            f"unknown transform '{name}'{did_you_mean(name, list(known))}; "
            f"known transforms: {', '.join(sorted(known)) or 'none (add one under features/)'}"
        )
    return known[name]
