"""Typed, validated configuration: Hydra composition of conf/ over dataclass schemas.

The names below load their module on first use, so that code needing only the light parts
(the schemas, the value parsers, the checks: e.g. the Airflow DAG file at parse time) does not
import Hydra.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lakeforge.config.compose import (
        check_all,
        check_all_with_default,
        config_hash,
        find_conf_dir,
        load_config,
        load_lake_config,
        pipeline_names,
        resolve_path,
    )
    from lakeforge.config.schema import LakeforgeConfig, register_schemas

_MODULES = {
    "LakeforgeConfig": "schema",
    "check_all": "compose",
    "check_all_with_default": "compose",
    "config_hash": "compose",
    "find_conf_dir": "compose",
    "load_config": "compose",
    "load_lake_config": "compose",
    "pipeline_names": "compose",
    "register_schemas": "schema",
    "resolve_path": "compose",
}

__all__ = [
    "LakeforgeConfig",
    "check_all",
    "check_all_with_default",
    "config_hash",
    "find_conf_dir",
    "load_config",
    "load_lake_config",
    "pipeline_names",
    "register_schemas",
    "resolve_path",
]


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module 'lakeforge.config' has no attribute '{name}'")
    return getattr(importlib.import_module(f"lakeforge.config.{module}"), name)
