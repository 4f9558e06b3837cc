"""Node-level checks on a composed config: missing values, interpolations, types, credentials."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator
from typing import Any

from omegaconf import DictConfig, ListConfig, Node, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from lakeforge.config.hydra_errors import expected_type, unknown_key_message
from lakeforge.config.locate import Locator
from lakeforge.config.secrets import is_secret_key, literal_default
from lakeforge.errors import ConfigError

_SECRET_KEY = re.compile(r"(password|passwd|secret|token|api_key|access_key)", re.I)
_SECRET_IN_TEXT = re.compile(r"(password|pwd|secret|token)=(?!\$\{)[^;&\s]+|://[^/:@\s]+:(?!\$\{)[^@/\s]+@", re.I)
_ENV_ONLY = re.compile(r"^\$\{oc\.env:[^}]+\}$")
_SCALARS = {str, int, float, bool}

Report = Callable[[str, str], None]


def walk(node: Node, path: str = "") -> Iterator[tuple[str, Node]]:
    """Every node under ``node`` with its key path (``a.b[0].c``), without resolving."""
    yield path, node
    if isinstance(node, DictConfig):
        if node._is_missing() or node._is_none() or node._is_interpolation():
            return
        for key in node:
            child = node._get_node(key)
            if isinstance(child, Node):
                yield from walk(child, f"{path}.{key!s}" if path else str(key))
    elif isinstance(node, ListConfig):
        if node._is_missing() or node._is_none() or node._is_interpolation():
            return
        for index in range(len(node)):
            item = node._get_node(index)
            if isinstance(item, Node):
                yield from walk(item, f"{path}[{index}]")


def _owner_type(node: Node) -> type | None:
    """The dataclass schema of the DictConfig holding ``node``, if any."""
    parent = node._get_parent()
    if isinstance(parent, DictConfig):
        owner = OmegaConf.get_type(parent)
        if owner is not None and dataclasses.is_dataclass(owner):
            return owner
    return None


def _check_missing(path: str, node: Node, loc: Locator, report: Report) -> None:
    """A required (``???``) value nobody set."""
    owner = _owner_type(node)
    leaf = path.rsplit(".", 1)[-1]
    declared = expected_type(owner.__name__, leaf) if owner else None
    hint = f" ({declared})" if declared else ""
    if not loc.has_package(path) and "." in path:
        group = path.split(".", 1)[0]
        options = ", ".join(o for o in loc.options(group) if o != "schema")
        report(
            path,
            f"required value is missing{hint}; no '{group}' config is composed: add "
            f"'- {group}: <option>' to the defaults list (options: {options or 'none'})",
        )
        return
    report(path, f"required value is missing{hint}; set '{leaf}'")


def _check_interpolation(path: str, node: Node, cfg: DictConfig, report: Report) -> None:
    """An interpolation that does not resolve (unset env var, unknown key)."""
    try:
        OmegaConf.select(cfg, path, throw_on_resolution_failure=True)
    except OmegaConfBaseException as exc:
        raw = node._value()
        detail = str(exc).strip().splitlines()[0].split("resolving interpolation: ", 1)[-1].strip('"')
        fix = (
            "set the variable or give a default: ${oc.env:NAME,default}"
            if "oc.env" in str(raw)
            else ("point it to an existing key")
        )
        report(path, f"cannot resolve '{raw}': {detail}; {fix}")


def _check_extra_keys(path: str, node: DictConfig, report: Report) -> None:
    """Keys added with ``+key=…`` that the schema does not declare."""
    owner = OmegaConf.get_type(node)
    if owner is None or not dataclasses.is_dataclass(owner):
        return
    declared = {f.name for f in dataclasses.fields(owner)}
    for key in node:
        if str(key) not in declared:
            report(f"{path}.{key!s}" if path else str(key), unknown_key_message(str(key), owner.__name__))


def _check_list_items(path: str, node: ListConfig, report: Report) -> None:
    """Scalar lists (``list[str]``) holding dicts or lists."""
    element = node._metadata.element_type
    if element not in _SCALARS:
        return
    for index in range(len(node)):
        child = node._get_node(index)
        if isinstance(child, (DictConfig, ListConfig)) and not child._is_none():
            kind = "mapping" if isinstance(child, DictConfig) else "list"
            report(f"{path}[{index}]", f"wrong type: got a {kind}, expected {element.__name__}")


def _check_secret(path: str, node: Node, report: Report) -> None:
    """Credentials must come from the environment, never be written in conf/."""
    raw = node._value()
    if not isinstance(raw, str) or not raw:
        return
    leaf = path.rsplit(".", 1)[-1].split("[", 1)[0]
    # The whole key too: spark.conf's spark.hadoop.fs.s3a.secret.key, storage's AZURE_STORAGE_ACCOUNT_KEY.
    secret = _SECRET_KEY.search(leaf) or is_secret_key(node._key())
    if secret and not _ENV_ONLY.match(raw) and not raw.startswith("${oc.env:"):
        report(
            path,
            "literal credential: secrets must come from the environment, "
            f"e.g. {leaf}: ${{oc.env:LAKEFORGE_{leaf.upper()}}}",
        )
    elif secret and literal_default(raw) is not None:
        name = raw[len("${oc.env:") :].split(",", 1)[0]
        report(
            path,
            "literal credential as the default of an environment reference: a default is written in the "
            f'file; drop it (${{oc.env:{name}}}) or leave it empty (${{oc.env:{name},""}})',
        )
    elif _SECRET_IN_TEXT.search(raw):
        report(
            path,
            "literal credential in the value: move the password out of the URL and into "
            "'password: ${oc.env:NAME}' (credentials only through ${oc.env:...})",
        )


def check_nodes(cfg: DictConfig, loc: Locator) -> list[ConfigError]:
    """Every node-level problem in a composed config."""
    problems: list[ConfigError] = []

    def report(key: str, message: str) -> None:
        problems.append(ConfigError(message, file=loc.file_for(key), key=key))

    for path, node in walk(cfg):
        if not path:
            continue
        if node._is_missing():
            _check_missing(path, node, loc, report)
            continue
        if node._is_interpolation():
            _check_interpolation(path, node, cfg, report)
        if isinstance(node, DictConfig):
            _check_extra_keys(path, node, report)
        elif isinstance(node, ListConfig):
            _check_list_items(path, node, report)
        else:
            _check_secret(path, node, report)
    return problems


def plain(cfg: DictConfig) -> dict[str, Any]:
    """The config as plain containers, unresolved (``???`` for missing values)."""
    data = OmegaConf.to_container(cfg, resolve=False, throw_on_missing=False)
    assert isinstance(data, dict)
    return {str(k): v for k, v in data.items()}
