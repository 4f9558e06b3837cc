"""params.yaml: the composed conf/, generated for DVC, never edited by hand.

DVC tracks parameters in params.yaml, so lakeforge writes the composed config
there (`lakeforge params`) and `lakeforge check` reports a params.yaml that no
longer matches conf/. Interpolations such as ``${oc.env:DB_PASSWORD}`` are kept
as written, so secrets never land in the file (:mod:`lakeforge.config.secrets` masks any credential
that is not such a reference).

Under ``dvc exp run -S key=value`` DVC writes params.yaml itself, composing conf/
with the override through Hydra and resolving every interpolation. The difference
between that file and conf/ is then the experiment's overrides
(``params_overrides``): the ``params`` stage rewrites the file from conf/ plus
those overrides, unresolved again, and every job composes them in. A credential is never one of
them: DVC's copy holds its value, resolved from the environment, and conf/'s reference replaces it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from lakeforge.config.secrets import redact
from lakeforge.errors import ConfigError

PARAMS_FILE = "params.yaml"
HEADER = (
    "# Generated from conf/ by `lakeforge params`: do not edit (edit conf/ instead).\n"
    "# DVC reads it; `lakeforge check` reports it when it no longer matches conf/.\n"
)


# Keys that say how one job is called (its dates, the machine's paths), not what the pipeline is.
CALL_KEYS = ("project_root", "run_date", "start_date", "end_date", "repro")


def params_data(cfg: DictConfig) -> dict[str, Any]:
    """The composed config as plain data, interpolations unresolved and credentials masked, without
    the call keys."""
    data = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(data, dict)
    return {str(k): redact(v, k) for k, v in data.items() if k not in CALL_KEYS}


def render_params(cfg: DictConfig) -> str:
    """The text of params.yaml for ``cfg``."""
    return HEADER + yaml.safe_dump(params_data(cfg), sort_keys=False, default_flow_style=False)


def write_params(cfg: DictConfig, project_dir: Path) -> Path:
    """Write params.yaml into ``project_dir``; return its path."""
    path = project_dir / PARAMS_FILE
    path.write_text(render_params(cfg))
    return path


def write_params_if_changed(cfg: DictConfig, project_dir: Path) -> bool:
    """Write params.yaml only when its content would change (DVC then sees the same file); True if written."""
    path = project_dir / PARAMS_FILE
    text = render_params(cfg)
    if path.is_file() and path.read_text() == text:
        return False
    path.write_text(text)
    return True


def in_dvc_experiment() -> bool:
    """True inside a stage of ``dvc exp run``, where DVC composed params.yaml with the experiment's overrides."""
    return bool(os.environ.get("DVC_EXP_NAME"))


def _leaves(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of every leaf of plain data.

    Lists, empty mappings and mappings with a key that is not a plain name (``spark.conf``'s
    ``spark.executor.memory``) are leaves: a dotted override cannot address inside them.
    """
    if isinstance(node, dict) and node and all(_PLAIN_KEY.fullmatch(str(k)) for k in node):
        for key, value in node.items():
            yield from _leaves(value, f"{prefix}{key}.")
    else:
        yield prefix[:-1], node


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


_UNRESOLVED = object()


def _resolved(cfg: DictConfig, key: str) -> Any:
    """The resolved plain value at ``key``, or a marker no file value equals when it cannot be resolved."""
    try:
        node = OmegaConf.select(cfg, key, throw_on_missing=True)
    except Exception:  # an interpolation that cannot resolve here (e.g. an unset environment variable)
        return _UNRESOLVED
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def _keep_references(key: str, value: Any, written: Any) -> Any:
    """params.yaml's ``value`` with each credential in it replaced by conf/'s ``written`` one (its
    ``${oc.env:…}`` reference), or left out (``_UNRESOLVED``) where conf/ has none.

    DVC writes credentials resolved from the environment; as overrides they would be echoed to the
    job log and refused as literals. A list holding one is conf/'s as a whole.
    """
    if isinstance(value, dict):
        known = written if isinstance(written, dict) else {}
        kept = {k: _keep_references(str(k), v, known.get(k, _UNRESOLVED)) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v is not _UNRESOLVED}
    return value if redact(value, key) == value else written


def hydra_value(value: Any) -> str:
    """``value`` in Hydra's override grammar (strings quoted, lists and mappings spelled out)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{hydra_value(v)}" for k, v in value.items()) + "}"
    # Quoted string: a quote is escaped, and so is every backslash right before a quote or the end.
    text = re.sub(r"(\\+)(?='|$)", lambda m: m.group(1) * 2, str(value))
    return "'" + text.replace("'", "\\'") + "'"


def params_overrides(cfg: DictConfig, project_dir: Path) -> list[str]:
    """Hydra overrides turning ``cfg`` into params.yaml: one per leaf whose value differs.

    A leaf equal to conf/'s value as written or as resolved is no override, so
    DVC's resolved copy of ``${oc.env:…}`` values and lakeforge's unresolved one
    both give only the experiment's own changes.
    """
    path = project_dir / PARAMS_FILE
    if not path.is_file():
        return []
    try:
        on_disk = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"unreadable ({exc})", file=PARAMS_FILE) from exc
    if not isinstance(on_disk, dict):
        raise ConfigError("is not a mapping of config groups", file=PARAMS_FILE)
    for key in CALL_KEYS:
        on_disk.pop(key, None)
    written = dict(_leaves(params_data(cfg)))
    overrides = []
    for key, found in _leaves(on_disk):
        value = _keep_references(key.rsplit(".", 1)[-1], found, written.get(key, _UNRESOLVED))
        if value is _UNRESOLVED:
            continue
        if key in written and value == written[key]:
            continue
        if key in written and value == _resolved(cfg, key):
            continue
        # ++ sets a whole mapping, merged into conf/'s (a plain = refuses keys it does not have).
        overrides.append(f"{'++' if isinstance(value, dict) else ''}{key}={hydra_value(value)}")
    return overrides


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
