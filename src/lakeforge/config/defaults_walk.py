"""The defaults lists of conf/, walked before Hydra composes them: cycles, unreadable entries, choices made twice.

Hydra follows a defaults list that includes itself (directly, or through an option that includes
it back) until the stack runs out: a RecursionError, or a fatal abort in a worker thread. An
entry it cannot read (``- {x: _self_}``, ``- {true: a}``) ends in an AssertionError; a group
given two options (``Multiple values for model``) or an entry that is a number names no file.
``check_conf_files`` walks the files the primary config reaches, as Hydra would, reads each with
``conf_files.parse_file`` and returns every such problem as a ConfigError naming the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from lakeforge.config.conf_files import node_kind, parse_file
from lakeforge.errors import ConfigError

_PREFIXES = ("override ", "optional ")

ENTRY_HELP = (
    "an entry is a config name ('- schema'), '- _self_', or one 'group: option' pair whose option "
    "is a name, a list of names or null (e.g. '- storage: local', '- /dataset@dataset.flights: flights')"
)


def _entry_problem(entry: yaml.Node) -> str | None:
    """Why one defaults entry is not one Hydra can read, or None (Hydra's own checks end in asserts)."""
    if isinstance(entry, yaml.ScalarNode):
        if node_kind(entry) != "text" or not entry.value.strip():
            return f"{node_kind(entry)} {entry.value!r:.60} is not a config name"
        return None
    if isinstance(entry, yaml.SequenceNode) or len(entry.value) != 1:
        return f"{node_kind(entry)} of {len(entry.value)} items is not one 'group: option' pair"
    key, value = entry.value[0]
    if node_kind(key) != "text":
        return f"the group {key.value!r:.60} is {node_kind(key)}, not a group name"
    if not _strip(key.value).split("@", 1)[0].strip("/ "):
        return f"'{key.value:.60}' names no config group"
    if node_kind(value) in ("null", "text"):
        options = [value] if node_kind(value) == "text" else []
    else:
        options = value.value if isinstance(value, yaml.SequenceNode) else [value]
    for option in options:
        if node_kind(option) != "text":
            return f"an option of '{key.value:.60}' is {node_kind(option)}, not a name"
        if option.value.strip() == "_self_":
            return f"'_self_' is not an option of '{key.value:.60}': write '- _self_' as an entry of its own"
    return None


def _defaults_node(root: yaml.Node | None) -> yaml.Node | None:
    if not isinstance(root, yaml.MappingNode):
        return None
    for key, value in root.value:
        if isinstance(key, yaml.ScalarNode) and key.value == "defaults":
            return value
    return None


def _entry_data(item: yaml.Node) -> Any:
    """A valid defaults entry as data: a string, or ``{group: option | [options] | None}``."""
    if isinstance(item, yaml.ScalarNode):
        return item.value
    key, value = item.value[0]
    if isinstance(value, yaml.SequenceNode):
        return {key.value: [option.value for option in value.value]}
    return {key.value: None if node_kind(value) == "null" else value.value}


def read_defaults(root: yaml.Node | None, file: str) -> tuple[list[Any], list[ConfigError]]:
    """The defaults list of a parsed file as data, and the problems of its entries."""
    node = _defaults_node(root)
    if node is None:
        return [], []
    if not isinstance(node, yaml.SequenceNode):
        shown = f" {node.value!r:.60}" if isinstance(node, yaml.ScalarNode) and node_kind(node) != "null" else ""
        message = f"'defaults' is {node_kind(node)}{shown}, not a list; {ENTRY_HELP}"
        return [], [ConfigError(message, file=file, key="defaults")]
    entries: list[Any] = []
    problems = []
    for index, item in enumerate(node.value):
        problem = _entry_problem(item)
        if problem is None:
            entries.append(_entry_data(item))
        else:
            problems.append(ConfigError(f"{problem}; {ENTRY_HELP}", file=file, key=f"defaults[{index}]"))
    return entries, problems


def _strip(key: str) -> str:
    """``optional /dataset@dataset.flights`` -> ``/dataset@dataset.flights``."""
    text = key.strip()
    while text.startswith(_PREFIXES):
        text = text.split(" ", 1)[1].strip()
    return text


def _join(group: str, path: str) -> str:
    """A defaults entry's config path: ``/x`` is absolute, anything else is under the file's group."""
    if path.startswith("/"):
        return path[1:]
    return f"{group}/{path}" if group else path


def entry_targets(entry: Any, group: str) -> list[tuple[str, str]]:
    """The (config path, entry as written) pairs one defaults entry includes; [] for ``_self_`` and the unusable."""
    if isinstance(entry, str):
        name = entry.strip()
        return [] if not name or name == "_self_" else [(_join(group, name), name)]
    if not isinstance(entry, dict) or len(entry) != 1:
        return []
    key, value = next(iter(entry.items()))
    if not isinstance(key, str):
        return []
    group_path = _strip(key).split("@", 1)[0]
    options = value if isinstance(value, list) else [value]
    return [
        (_join(group, f"{group_path}/{option}"), f"{key}: {option}")
        for option in options
        if isinstance(option, str) and option.strip() and "${" not in option and option != "???"
    ]


class _Reader:
    """Depth-first over the files the defaults lists reach, remembering the path taken."""

    def __init__(self, conf_dir: Path, primary: str, choices: dict[str, str | None]) -> None:
        self.conf_dir = conf_dir
        self.primary = primary
        self.choices = choices
        self.done: set[str] = set()
        self.stack: list[str] = []
        self.problems: list[ConfigError] = []
        # Group choices by Hydra's override key (``model``, ``dataset@dataset.flights``): first option and file.
        self.chosen: dict[str, tuple[str, str]] = {}
        self.overridden: set[str] = set()
        self.twice: list[tuple[str, str, str, str]] = []  # (key, option, file, first option)

    def display(self, config_path: str) -> str:
        return f"{self.conf_dir.name}/{config_path}.yaml"

    def visit(self, config_path: str) -> ConfigError | None:
        """Read ``config_path`` and what it includes; a cycle is returned (and ends the walk)."""
        path = self.conf_dir / f"{config_path}.yaml"
        if config_path in self.done or not path.is_file():
            return None
        self.done.add(config_path)
        parsed = parse_file(path, self.display(config_path))
        if isinstance(parsed, ConfigError):
            self.problems.append(parsed)
            return None
        entries, problems = read_defaults(parsed, self.display(config_path))
        self.problems += problems
        self.stack.append(config_path)
        group = config_path.rpartition("/")[0]
        for entry in entries:
            self.note_choice(self.choose(entry), group, config_path)
            for target, written in entry_targets(self.choose(entry), group):
                if target in self.stack:
                    return self.cycle(target, written)
                found = self.visit(target)
                if found is not None:
                    return found
        self.stack.pop()
        return None

    def choose(self, entry: Any) -> Any:
        """The primary config's group entry with its option as a ``group=option`` override sets it."""
        if self.stack == [self.primary] and isinstance(entry, dict) and len(entry) == 1:
            key = next(iter(entry))
            if isinstance(key, str) and _strip(key) in self.choices:
                return {key: self.choices[_strip(key)]}
        return entry

    def note_choice(self, entry: Any, group: str, config_path: str) -> None:
        """Remember a group entry's option; a second, different option for the same group is an error in Hydra."""
        if not isinstance(entry, dict):
            return
        written, option = next(iter(entry.items()))
        group_path, _, package = _strip(written).partition("@")
        key = _join(group, group_path.strip()) + (f"@{package.strip()}" if package.strip() else "")
        if "override" in written.split()[:-1]:
            self.overridden.add(key)
        elif isinstance(option, str) and "${" not in option:
            first = self.chosen.setdefault(key, (option, config_path))
            if first[0] != option:
                self.twice.append((key, option, config_path, first[0]))

    def chosen_twice(self) -> list[ConfigError]:
        """Groups given two different options without ``override`` (Hydra: 'Multiple values for …', no file)."""
        return [
            ConfigError(
                f"group '{key}' is already set to '{first}' ({self.display(self.chosen[key][1])}): a defaults "
                f"list sets each group once; keep one, or write 'override /{key}: {option}' to replace the choice",
                file=self.display(config_path),
                key=f"defaults ({key}: {option})",
            )
            for key, option, config_path, first in self.twice
            if key not in self.overridden and key not in self.choices
        ]

    def cycle(self, target: str, written: str) -> ConfigError:
        loop = " -> ".join([*self.stack[self.stack.index(target) :], target])
        return ConfigError(
            f"the defaults list includes itself ({loop}) through the entry '{written}': Hydra would "
            "recurse for ever; a config may include others, never itself or one that includes it back",
            file=self.display(self.stack[-1]),
            key="defaults",
        )


def check_conf_files(conf_dir: Path, primary: str, overrides: Sequence[str] = ()) -> list[ConfigError]:
    """File-level problems of every YAML file composing ``primary`` would read, and the first cyclic defaults list."""
    choices: dict[str, str | None] = {}
    extra: list[str] = []
    for override in overrides:
        name, eq, value = override.partition("=")
        group = name.lstrip("+~").strip()
        if "." in group.split("@", 1)[0]:
            continue
        if name.startswith("~"):
            choices[group] = None
        elif eq and name.startswith("+"):
            extra.append(f"{group.split('@', 1)[0]}/{value.strip()}")
        elif eq:
            choices[group] = value.strip()
    reader = _Reader(conf_dir, primary, choices)
    for config_path in (primary, *extra):
        cycle = reader.visit(config_path)
        if cycle is not None:
            return [*reader.problems, cycle]
    return reader.problems + reader.chosen_twice()
