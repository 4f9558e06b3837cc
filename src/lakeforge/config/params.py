"""params.yaml: the composed conf/, generated for DVC, never edited by hand.

DVC tracks parameters in params.yaml, so lakeforge writes the composed config
there (`lakeforge params`) and `lakeforge check` reports a params.yaml that no
longer matches conf/. Interpolations such as ``${oc.env:DB_PASSWORD}`` are kept
as written, so secrets never land in the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from lakeforge.errors import ConfigError

PARAMS_FILE = "params.yaml"
HEADER = (
    "# Generated from conf/ by `lakeforge params`: do not edit (edit conf/ instead).\n"
    "# DVC reads it; `lakeforge check` reports it when it no longer matches conf/.\n"
)


def params_data(cfg: DictConfig) -> dict[str, Any]:
    """The composed config as plain data, interpolations unresolved, without machine paths."""
    data = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(data, dict)
    data.pop("project_root", None)
    return {str(k): v for k, v in data.items()}


def render_params(cfg: DictConfig) -> str:
    """The text of params.yaml for ``cfg``."""
    return HEADER + yaml.safe_dump(params_data(cfg), sort_keys=False, default_flow_style=False)


def write_params(cfg: DictConfig, project_dir: Path) -> Path:
    """Write params.yaml into ``project_dir``; return its path."""
    path = project_dir / PARAMS_FILE
    path.write_text(render_params(cfg))
    return path


def stale_params(cfg: DictConfig, project_dir: Path) -> ConfigError | None:
    """A ConfigError when params.yaml is missing or differs from the composed conf/, else None."""
    path = project_dir / PARAMS_FILE
    if not path.is_file():
        return ConfigError("missing: run `lakeforge params` to generate it from conf/", file=PARAMS_FILE)
    try:
        on_disk = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        return ConfigError(f"unreadable ({exc}); regenerate it with `lakeforge params`", file=PARAMS_FILE)
    expected = params_data(cfg)
    if on_disk == expected:
        return None
    on_disk = on_disk if isinstance(on_disk, dict) else {}
    changed = sorted(k for k in set(expected) | set(on_disk) if expected.get(k) != on_disk.get(k))
    return ConfigError(
        f"does not match conf/ (differs under: {', '.join(changed)}); run `lakeforge params` "
        "(params.yaml is generated, never edited by hand)",
        file=PARAMS_FILE,
    )
