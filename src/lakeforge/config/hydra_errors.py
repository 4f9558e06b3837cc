"""Translate Hydra, OmegaConf and YAML exceptions into ConfigErrors naming file, key and fix."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from lakeforge.config import schema
from lakeforge.config.conf_files import yaml_syntax_error
from lakeforge.config.locate import Locator
from lakeforge.errors import ConfigError, did_you_mean

_IN_CONFIG = re.compile(r"In '(?P<cfg>[^']+)': (?P<etype>\w+) raised while composing config:\n(?P<msg>.*)", re.S)
_IN_FILE = re.compile(r"In '?(?P<cfg>[^':\s]+)'?: (?P<msg>.+)", re.S)
_NOT_FOUND = re.compile(r"In '(?P<cfg>[^']+)': Could not (?:find|load) '(?P<path>[^']+)'")
_KEY_NOT_IN = re.compile(r"Key '(?P<key>[^']+)' not in '(?P<obj>\w+)'")
_FULL_KEY = re.compile(r"full_key: (?P<key>[^\n]*)")
_OBJECT_TYPE = re.compile(r"object_type=(?P<obj>\w+)")


def _schema_classes() -> dict[str, type]:
    """Every dataclass schema by class name."""
    return {
        name: obj
        for name in dir(schema)
        if dataclasses.is_dataclass(obj := getattr(schema, name)) and isinstance(obj, type)
    }


def allowed_keys(type_name: str) -> list[str]:
    """The field names of a schema class, or [] if unknown."""
    cls = _schema_classes().get(type_name)
    return [f.name for f in dataclasses.fields(cls)] if cls else []


def expected_type(type_name: str, key: str) -> str | None:
    """The declared type of ``key`` in a schema class, as written in the dataclass."""
    cls = _schema_classes().get(type_name)
    for f in dataclasses.fields(cls) if cls else ():
        if f.name == key:
            return str(f.type)
    return None


def unknown_key_message(key: str, type_name: str) -> str:
    """``unknown key (did you mean …?); allowed keys: …`` for a key not in a schema."""
    allowed = allowed_keys(type_name)
    return f"unknown key{did_you_mean(key, allowed)}; allowed keys: {', '.join(allowed)}"


def wrong_type_message(detail: str, leaf: str, type_name: str) -> str:
    """``wrong type: … (expected int)`` for a value that does not fit its schema."""
    expected = expected_type(type_name, leaf)
    return f"wrong type: {detail}" + (f" (expected {expected})" if expected else "")


def _find_in_yaml(path: Path, leaf: str) -> str | None:
    """The first key path in a YAML file whose last part is ``leaf`` (for list items)."""
    try:
        data = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except (OSError, yaml.YAMLError, OmegaConfBaseException):
        return None
    found: list[str] = []

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "defaults":
                    continue
                sub = f"{prefix}.{k}" if prefix else str(k)
                if str(k) == leaf and "[" in sub:
                    found.append(sub)
                walk(v, sub)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{prefix}[{i}]")

    walk(data, "")
    return found[0] if found else None


def _full_key(loc: Locator, config_path: str, key: str) -> str:
    """The full key path: OmegaConf loses the path inside list items, so recover it."""
    package = loc.package_of(config_path)
    if package is None:
        package = config_path.split("/", 1)[0]
    if key and (not package or key == package or key.startswith(package + ".")):
        return key
    inner = _find_in_yaml(loc.conf_dir / f"{config_path}.yaml", key)
    if inner:
        return f"{package}.{inner}" if package else inner
    return f"{package}.{key}" if package and key else key or package


def _omegaconf_problem(etype: str, msg: str, leaf: str, obj: str) -> str:
    """The what-is-wrong part for an OmegaConf error type and message."""
    first = msg.strip().splitlines()[0] if msg.strip() else etype
    if (m := _KEY_NOT_IN.search(first)) is not None:
        return unknown_key_message(m["key"], m["obj"])
    if etype == "ValidationError":
        return wrong_type_message(first, leaf, obj)
    if etype == "MissingMandatoryValue":
        return f"required value is missing; set '{leaf}'"
    return f"{etype}: {first}"


def _in_config(config_path: str, etype: str, detail: str, loc: Locator) -> ConfigError:
    """An OmegaConf error Hydra met merging ``config_path``: in the file, or in where an entry placed it."""
    key_m, obj_m = _FULL_KEY.search(detail), _OBJECT_TYPE.search(detail)
    full = key_m["key"] if key_m else ""
    problem = _omegaconf_problem(etype, detail, full.rsplit(".", 1)[-1], obj_m["obj"] if obj_m else "")
    placed = loc.placement(config_path, full)
    if placed is not None:  # the key is part of the package a defaults entry chose, not of the file
        chooser, config, package = placed
        return ConfigError(
            f"'{full}': {problem}; the package this entry puts '{config}' at ('@{package}') must be a key "
            "the schema has",
            file=loc.display(chooser),
            key=f"defaults ({config}@{package})",
        )
    if not (loc.conf_dir / f"{config_path}.yaml").is_file():  # a schema of the config store: no file to name
        return ConfigError(problem, file=loc.file_for(full), key=full)
    return ConfigError(problem, file=loc.display(config_path), key=_full_key(loc, config_path, full))


def _missing_config(exc: Exception, loc: Locator, overrides: Sequence[str]) -> ConfigError:
    """``Could not find 'group/option'`` → unknown option with the available ones."""
    text = str(exc)
    m = _NOT_FOUND.search(text)
    if m is None:
        return ConfigError(text.splitlines()[0], file=loc.display(loc.primary), key="defaults")
    group, _, option = m["path"].rpartition("/")
    options = [o for o in loc.options(group) if o != "schema"] if group else loc.options("")
    detail = (
        f"unknown option '{option}' for config group '{group or '(root)'}'{did_you_mean(option, options)}; "
        f"available: {', '.join(options) or '(none)'}"
    )
    for override in overrides:
        name, _, value = override.lstrip("+~").partition("=")
        if value == option and name.split("@", 1)[0] == group:
            return ConfigError(detail, key=f"override '{override}'")
    return ConfigError(detail, file=loc.display(m["cfg"]), key=f"defaults ({group}: {option})")


def _yaml_error(exc: yaml.MarkedYAMLError, loc: Locator) -> ConfigError:
    """A YAML syntax error with its file, line and column."""
    mark = exc.problem_mark or exc.context_mark
    file = loc.display(loc.primary)
    if mark is not None:
        path = Path(mark.name)
        try:
            file = path.resolve().relative_to(loc.conf_dir.resolve().parent).as_posix()
        except ValueError:
            file = path.as_posix()
    return yaml_syntax_error(exc, file)


def _bad_override(exc: BaseException, overrides: Sequence[str]) -> tuple[str, str]:
    """The first override Hydra's grammar refuses, and the parser's reason (no doc links)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for override in overrides:
        try:
            parser.parse_overrides([override])
        except OverrideParseException as single:
            return override, str(single).splitlines()[0]
    lines = [line for line in str(exc).splitlines() if not line.startswith("See https://")]
    return ", ".join(overrides), lines[-1] if lines else str(exc)


def translate(exc: BaseException, loc: Locator, overrides: Sequence[str] = ()) -> ConfigError:
    """Turn any composition error into one ConfigError; never includes a traceback."""
    if isinstance(exc, ConfigError):
        return exc
    if isinstance(exc, yaml.MarkedYAMLError):
        return _yaml_error(exc, loc)
    if isinstance(exc, OverrideParseException):
        override, reason = _bad_override(exc, overrides)
        return ConfigError(
            f"cannot parse override: {reason}; write key=value, +key=value, ~key or group=option, "
            "and quote values holding brackets, commas or spaces (e.g. spark.master='local[2]')",
            key=f"override '{override}'",
        )
    if isinstance(exc, MissingConfigException):
        return _missing_config(exc, loc, overrides)
    text = str(exc)
    if isinstance(exc, ConfigCompositionException) and (m := _IN_CONFIG.search(text)) is not None:
        return _in_config(m["cfg"], m["etype"], m["msg"], loc)
    cause = exc.__cause__
    if isinstance(exc, ConfigCompositionException) and cause is not None:
        blamed = next((o for o in overrides if o.lstrip("+~").split("=", 1)[0] in text), None)
        ctext = str(cause)
        key_m, obj_m = _FULL_KEY.search(ctext), _OBJECT_TYPE.search(ctext)
        key = key_m["key"] if key_m else ""
        problem = _omegaconf_problem(type(cause).__name__, ctext, key.rsplit(".", 1)[-1], obj_m["obj"] if obj_m else "")
        if blamed:
            return ConfigError(problem, key=f"override '{blamed}': {key}")
        return ConfigError(problem, file=loc.display(loc.primary), key=key)
    if isinstance(exc, ConfigCompositionException) and text.startswith("Error resolving interpolation"):
        return ConfigError(
            f"{text.strip().splitlines()[0]}; an interpolation in a defaults list names another group's "
            "choice (e.g. ${storage}) or a set environment variable",
            file=_file_holding(loc, text) or loc.display(loc.primary),
            key="defaults",
        )
    if isinstance(exc, ConfigCompositionException) and (m := _IN_FILE.match(text)) is not None:
        return ConfigError(m["msg"].strip().splitlines()[0], file=loc.display(m["cfg"]), key="defaults")
    if isinstance(exc, (yaml.YAMLError, OmegaConfBaseException, ConfigCompositionException)):
        return ConfigError(text.strip().splitlines()[0], file=loc.display(loc.primary), key="(composition)")
    return ConfigError(
        f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}",
        file=loc.display(loc.primary),
        key="(composition)",
    )


def _file_holding(loc: Locator, text: str) -> str | None:
    """The conf/ file holding the first ``${…}`` a message quotes (Hydra's message names none)."""
    quoted = re.search(r"'[^'\n]*?(\$\{[^'\n]*)'", text)
    if quoted is None:
        return None
    for path in sorted(loc.conf_dir.rglob("*.yaml")):
        try:
            if quoted[1] in path.read_text(encoding="utf-8"):
                return path.relative_to(loc.conf_dir.parent).as_posix()
        except (OSError, UnicodeDecodeError):
            continue
    return None
