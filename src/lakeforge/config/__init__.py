"""Typed, validated configuration: Hydra composition of conf/ over dataclass schemas."""

from lakeforge.config.compose import (
    check_all,
    config_hash,
    find_conf_dir,
    load_config,
    load_lake_config,
    pipeline_names,
    resolve_path,
)
from lakeforge.config.schema import LakeforgeConfig, register_schemas

__all__ = [
    "LakeforgeConfig",
    "check_all",
    "config_hash",
    "find_conf_dir",
    "load_config",
    "load_lake_config",
    "pipeline_names",
    "register_schemas",
    "resolve_path",
]
