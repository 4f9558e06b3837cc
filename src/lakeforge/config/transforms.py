"""The Python transforms declared in ``features/*.py``, found by parsing the files, never importing them.

``lakeforge check`` must stay fast and must not run user code (nor need Spark), so it reads the
``@transform("name")`` decorators with :mod:`ast`. Recognised forms, on any function in the file::

    @transform("cyclic_hour")                       # from lakeforge.features.registry import transform
    @transform(name="cyclic_hour")
    @register("cyclic_hour")                        # from lakeforge.features[.registry] import transform as register
    @features.transform("cyclic_hour")              # any attribute named ``transform``
    @lakeforge.features.registry.transform("cyclic_hour")

Other decorators are ignored. A transform decorator whose name is not a string literal, or that
is used without a name, is a problem: the name could only be known by running the file.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

from lakeforge.errors import ConfigError, ConfigErrors

FEATURES_DIR = "features"
DECORATOR = "transform"
# Modules a ``from … import transform`` must come from for an alias to count.
_REGISTRY_MODULES = ("lakeforge.features", "lakeforge.features.registry")


@dataclass
class TransformScan:
    """What scanning ``features/*.py`` found: ``{name: "features/file.py:LINE"}`` and the problems."""

    declared: dict[str, str] = field(default_factory=dict)
    # Each problem names its file (``features/x.py``) and ``key`` (``line N, column M``).
    problems: list[ConfigError] = field(default_factory=list)


def _decorator_names(tree: ast.Module) -> set[str]:
    """Plain names that mean the transform decorator in this file (``transform`` and its aliases)."""
    names = {DECORATOR}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in _REGISTRY_MODULES:
            names.update(a.asname for a in node.names if a.name == DECORATOR and a.asname)
    return names


def _is_transform(func: ast.expr, names: set[str]) -> bool:
    """True for ``transform``/an imported alias, or any ``<something>.transform``."""
    if isinstance(func, ast.Name):
        return func.id in names
    return isinstance(func, ast.Attribute) and func.attr == DECORATOR


def _literal_name(call: ast.Call) -> str | None:
    """The transform name of ``@transform("x")`` / ``@transform(name="x")``, if a string literal."""
    args = [*call.args[:1], *(k.value for k in call.keywords if k.arg == "name")]
    if args and isinstance(args[0], ast.Constant) and isinstance(args[0].value, str):
        return args[0].value
    return None


def _where(node: ast.AST) -> str:
    """``line N, column M`` of a node (1-based), as config problems name a place in a file."""
    return f"line {getattr(node, 'lineno', '?')}, column {getattr(node, 'col_offset', -1) + 1}"


def _scan_file(path: Path, rel: str, scan: TransformScan) -> None:
    """Add one file's transforms (or its problems) to ``scan``."""
    try:
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source, filename=rel)
    except SyntaxError as exc:
        where = f"line {exc.lineno or '?'}" + (f", column {exc.offset}" if exc.offset else "")
        scan.problems.append(
            ConfigError(
                f"invalid Python syntax: {exc.msg}; lakeforge reads the @transform names in "
                f"{FEATURES_DIR}/*.py without importing them, so every file there must parse",
                file=rel,
                key=where,
            )
        )
        return
    except (OSError, UnicodeDecodeError) as exc:
        scan.problems.append(ConfigError(f"cannot read the file: {exc}", file=rel))
        return
    names = _decorator_names(tree)
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for deco in node.decorator_list:
            call = deco if isinstance(deco, ast.Call) else None
            if not _is_transform(call.func if call else deco, names):
                continue
            name = _literal_name(call) if call else None
            if name is None:
                scan.problems.append(
                    ConfigError(
                        f"the @transform decorator of '{node.name}' needs its name as a string "
                        f'literal, e.g. @transform("{node.name}"): names are read without running the file',
                        file=rel,
                        key=_where(deco),
                    )
                )
                continue
            here = f"{rel}:{node.lineno}"
            if name in scan.declared:
                scan.problems.append(
                    ConfigError(
                        f"transform '{name}' is declared twice: at {scan.declared[name]} and {here}; rename one",
                        file=rel,
                        key=_where(deco),
                    )
                )
                continue
            scan.declared[name] = here


def scan_transforms(project_root: Path) -> TransformScan:
    """Every transform in ``<project_root>/features/*.py`` (files in name order), with the problems found."""
    scan = TransformScan()
    folder = Path(project_root) / FEATURES_DIR
    if not folder.is_dir():
        return scan
    for path in sorted(folder.glob("*.py")):
        _scan_file(path, f"{FEATURES_DIR}/{path.name}", scan)
    return scan


def declared_transforms(project_root: Path) -> dict[str, str]:
    """``{name: "features/file.py:LINE"}`` of every ``@transform("name")`` in ``features/*.py``.

    Raises ConfigError (naming the file and line) for a file that does not parse, a transform
    name that is not a string literal, or a name declared twice; ConfigErrors for several.
    """
    scan = scan_transforms(project_root)
    if len(scan.problems) == 1:
        raise scan.problems[0]
    if scan.problems:
        raise ConfigErrors(scan.problems)
    return scan.declared


def has_features_dir(project_root: Path) -> bool:
    """True when the project has a ``features/`` folder to scan."""
    return (Path(project_root) / FEATURES_DIR).is_dir()
