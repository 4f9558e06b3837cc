"""One conf/ YAML file read before Hydra loads it: what Hydra would report badly, or never.

Bytes that are not UTF-8, a control character, a document that is a list or a single value, a
null key, a broken ``${`` or an explicit tag such as ``!!set`` end, in Hydra, in an OSError or an
error naming no file (blamed on conf/config.yaml); lists nested a few hundred levels deep or a
YAML alias inside its own anchor recurse until the stack runs out (libyaml's composer segfaults
at ~100,000 levels); an alias bomb expands for ever. ``parse_file`` reads a file with libyaml's
parser (~10 ms for the shipped conf/) and turns each into a ConfigError naming the file and the
line. ``defaults_walk`` calls it for every file the defaults lists reach.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from omegaconf import OmegaConf, grammar_parser
from omegaconf.errors import GrammarParseError, OmegaConfBaseException

from lakeforge.errors import ConfigError

_FAST_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# Per file, aliases expanded: the shipped conf/ has ~4,000 YAML nodes in all and nests 6 levels deep.
# Past these, composing would take minutes (OmegaConf) or exhaust the stack (YAML, OmegaConf: ~100 levels).
MAX_EXPANDED_NODES = 100_000
MAX_DEPTH = 32
# A YAML tag ('!!set', '!foo') can only start after a blank or a flow indicator.
_TAG = re.compile(r"(?:^|[\s\[{,])!", re.M)
_FULL_KEY = re.compile(r"full_key: (?P<key>[^\n]+)")


def yaml_syntax_error(exc: yaml.MarkedYAMLError, file: str) -> ConfigError:
    """A YAML syntax error in ``file`` with its line and column."""
    mark = exc.problem_mark or exc.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "line ?"
    detail = f"invalid YAML: {exc.problem or 'syntax error'}"
    if exc.context:
        detail += f" ({exc.context})"
    return ConfigError(detail + "; fix the syntax (quote values containing ':' or '#')", file=file, key=where)


def _line_column(text: str, offset: int) -> str:
    line = text.count("\n", 0, offset) + 1
    return f"line {line}, column {offset - (text.rfind(chr(10), 0, offset) + 1) + 1}"


def parse_file(path: Path, file: str) -> yaml.Node | ConfigError | None:
    """The YAML node tree of one config file (None when empty), or the ConfigError saying why it is unusable."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start].decode("utf-8", errors="replace")
        where = _line_column(before, len(before))
        return ConfigError(
            f"not UTF-8 text: byte 0x{data[exc.start]:02x} cannot be decoded; save the file as UTF-8",
            file=file,
            key=where,
        )
    try:
        too_deep = _nesting_problem(text, file)
        if too_deep is not None:
            return too_deep
        node = yaml.compose(text, Loader=_FAST_LOADER)
    except yaml.YAMLError:
        try:  # Hydra reads with PyYAML's own parser: its message and position, if it agrees
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            return yaml_syntax_error(exc, file)
        except RecursionError:  # PyYAML read deeper than libyaml, which stopped at an error first
            message = f"lists and mappings nested more than {MAX_DEPTH} levels deep; a config nests a few levels"
            return ConfigError(message, file=file, key="(top level)")
        except yaml.reader.ReaderError as exc:
            return ConfigError(
                f"invalid YAML: character U+{exc.character:04X} is not allowed in YAML text; remove it, "
                'or write it as an escape in a double-quoted string ("\\x07")',
                file=file,
                key=_line_column(text, exc.position),
            )
    if node is None:
        return None
    if isinstance(node, yaml.MappingNode):
        problem = _tree_problem(node, file)
        if problem is None and _TAG.search(text):
            problem = _tag_problem(path, file)
        return problem or node
    what = "a list" if isinstance(node, yaml.SequenceNode) else f"the single value '{node.value[:60]}'"
    return ConfigError(
        f"the file holds {what}, not a mapping: a config file is 'key: value' lines (or empty)",
        file=file,
        key="(top level)",
    )


def _tag_problem(path: Path, file: str) -> ConfigError | None:
    """A value whose explicit YAML tag OmegaConf cannot load (``!!set``, ``!!timestamp``, ``!!float abc``).

    Hydra loads each file with ``OmegaConf.load`` too, but what fails there reaches lakeforge without
    the file's name; so a file that may hold a tag is loaded here the same way first.
    """
    try:
        OmegaConf.load(path)
    except yaml.MarkedYAMLError as exc:  # an unknown tag, or a tag on the wrong kind of node
        return yaml_syntax_error(exc, file)
    except (ValueError, KeyError, TypeError, OmegaConfBaseException) as exc:  # what the tag's constructor made of it
        key = _FULL_KEY.search(str(exc))
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return ConfigError(
            f"a tagged value cannot be loaded ({type(exc).__name__}: {first:.200}); a config holds text, "
            "numbers, booleans, null, lists and mappings: drop the '!!' tag, or fix the value it tags",
            file=file,
            key=key[1] if key else "(load)",
        )
    return None


def _node_problem(node: yaml.Node, file: str) -> ConfigError | None:
    """What OmegaConf would refuse, without a file name, when it loads this node: a null key, a broken ``${``."""
    if isinstance(node, yaml.MappingNode):
        for key, _ in node.value:
            if node_kind(key) == "null":
                message = "a key is null ('~', 'null' or nothing before the ':'): every key needs a name"
                return ConfigError(message, file=file, key=_mark(key))
    elif isinstance(node, yaml.ScalarNode) and "${" in node.value and node_kind(node) == "text":
        try:
            grammar_parser.parse(node.value)
        except GrammarParseError as exc:
            return ConfigError(
                f"invalid interpolation in {node.value!r:.100}: {str(exc).splitlines()[0]}; write ${{key.path}} "
                "or ${oc.env:NAME,default}, and escape a literal '${' as '\\${'",
                file=file,
                key=_mark(node),
            )
    return None


def _tree_problem(root: yaml.Node, file: str) -> ConfigError | None:
    """The first node OmegaConf would refuse, an alias inside its own anchor, or too much once aliases expand."""
    sizes: dict[int, tuple[int, int]] = {}  # node id -> (values, nesting depth) once aliases are expanded
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:  # iterative: a deep document must not exhaust the stack here either
        node, closing = stack.pop()
        children = node.value if isinstance(node, yaml.SequenceNode) else []
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        if closing:
            open_nodes.discard(id(node))
            values = 1 + sum(sizes[id(child)][0] for child in children)
            depth = 1 + max((sizes[id(child)][1] for child in children), default=0)
            sizes[id(node)] = (values, depth)
            if values > MAX_EXPANDED_NODES or depth > MAX_DEPTH:
                return ConfigError(
                    f"more than {MAX_EXPANDED_NODES:,} values or {MAX_DEPTH} nested levels once YAML aliases "
                    "are expanded (an alias bomb?); write the values out, or use fewer nested aliases",
                    file=file,
                    key=_mark(node),
                )
            continue
        if id(node) in sizes:
            continue
        if id(node) in open_nodes:
            return ConfigError(
                "a YAML alias refers to the anchor it is inside of, so the value would contain itself; "
                "point the alias to another anchor",
                file=file,
                key=_mark(node),
            )
        problem = _node_problem(node, file)
        if problem is not None:
            return problem
        if isinstance(node, yaml.ScalarNode):
            sizes[id(node)] = (1, 0)
            continue
        open_nodes.add(id(node))
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(children))  # popped in document order
    return None


def _nesting_problem(text: str, file: str) -> ConfigError | None:
    """Lists and mappings nested deeper than MAX_DEPTH, found from libyaml's event stream (it does not recurse).

    Checked before any YAML node tree is built: libyaml's composer segfaults at ~100,000 levels,
    PyYAML's and OmegaConf's raise RecursionError at a few hundred.
    """
    depth = 0
    for event in yaml.parse(text, Loader=_FAST_LOADER):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                return ConfigError(
                    f"lists and mappings nested more than {MAX_DEPTH} levels deep; a config nests a few levels",
                    file=file,
                    key=_mark(event),
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    return None


def _mark(node: yaml.Node | yaml.Event) -> str:
    mark = node.start_mark
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "line ?"


def node_kind(node: yaml.Node) -> str:
    """What a YAML node holds, as a user reads it: text, a number, a boolean, null, a list or a mapping."""
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    name = node.tag.rsplit(":", 1)[-1]
    return {"int": "a number", "float": "a number", "bool": "a boolean", "null": "null"}.get(name, "text")
