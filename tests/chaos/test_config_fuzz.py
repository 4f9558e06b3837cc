"""Config fuzzing: hypothesis mutates the shipped conf/ and `lakeforge check` must stay a clean gate.

Each example copies the project (conf/, the transforms in features/, a params.yaml matching the
unmutated conf/) and applies one to three mutations to one YAML file: a value of the wrong type,
an unknown key at any depth, a deleted key, a defaults entry to a missing option, a cyclic
defaults list (a file including itself, or two options including each other), a huge number, a
hostile string (emoji, right-to-left, NUL, 100,000 characters, broken ``${``), a document that is
not a mapping, broken YAML (syntax, tags, aliases, deep nesting, duplicate keys) or bytes that are
not UTF-8. Then `lakeforge check` runs through its real entry point, ``lakeforge.cli.main``, in
this process (a subprocess costs ~3 s of imports per case; the two subprocess runs at the end show
it answers the same), and must exit 0, or exit 2 with every problem naming a file: never a
traceback, never exit 70, never a hang (CASE_TIMEOUT_S per case).

Reproducible: ``derandomize=True`` fixes the examples. A failure prints the mutation, the exit
code and the output; ``--hypothesis-show-statistics`` counts the outcomes. One check composes
conf/ through Hydra in ~0.7 s of CPU: `make test` runs 50 cases (what the suite's 20 minutes
allow), `make chaos` the issue's 200 (2-3 minutes); ``LAKEFORGE_FUZZ_EXAMPLES=1000`` runs more.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from lakeforge.cli import main

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED_CONF = REPO_ROOT / "conf"
CONF_FILES = sorted(p.relative_to(SHIPPED_CONF).as_posix() for p in SHIPPED_CONF.rglob("*.yaml"))
EXAMPLES = int(os.environ.get("LAKEFORGE_FUZZ_EXAMPLES", "50"))  # `make chaos`: 200
# A check takes about a second; a case still running after this is a hang.
CASE_TIMEOUT_S = 30.0
EXIT_OK, EXIT_CONFIG = 0, 2
# What a problem line starts with: the file it is in (conf/…yaml, params.yaml, a transforms module).
_NAMES_A_FILE = re.compile(r"^error: (conf/[^:\n]+\.yaml|params\.yaml|features/[^:\n]+\.py(?::\d+)?)(?::|$)")


def _load(relpath: str) -> Any:
    return yaml.safe_load((SHIPPED_CONF / relpath).read_text())


SHIPPED_DATA = {relpath: _load(relpath) for relpath in CONF_FILES}


def _header(relpath: str) -> str:
    """The ``# @package`` line Hydra reads from a file's top comment, kept through a rewrite."""
    first = (SHIPPED_CONF / relpath).read_text().splitlines()[0]
    return first + "\n" if first.startswith("# @package") else ""


def dump(relpath: str, data: Any) -> str:
    """YAML text for ``data`` as file ``relpath`` (its package header kept)."""
    return _header(relpath) + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=10**6)


# --- values --------------------------------------------------------------------------------------

HOSTILE_TEXT = [
    "",
    " ",
    "🔥💥" * 3,
    "\u202eevil\u202c",  # right-to-left override
    "שלום עולם",
    "nul\x00char",
    "new\nline",
    "${",
    "${oops",
    "${oc.env:LAKEFORGE_FUZZ_UNSET}",
    "${nonexistent.key}",
    "${oc.decode:'[1, 2'}",
    "???",
    "@weekly",
    "-7d",
    "0d",
    "10000000000000000000000000000000d",
    "9999-99-99",
    "'",
    '"',
    "\\",
    "*",
    "[",
    "(?P<x",
    "a{1000000000}",
    "%(x)s",
    "{name}",
    "null",
    "~",
    "${model.seed}",
    "${oc.create:'{a: 1}'}",
    "${oc.deprecated:model.seed}",
    "${hydra:runtime.cwd}",
    "${now:%Y}",
]
HUGE_NUMBERS: list[Any] = [1e308, -1e308, 10**30, -(10**30), 2**63, -(2**63) - 1, math.inf, -math.inf, math.nan, 1e-320]
# Built when drawn: a 100,000-character literal would fill every repr of the strategies.
TEXT = st.one_of(st.sampled_from(HOSTILE_TEXT), st.just(100_000).map(lambda n: "x" * n))
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.sampled_from(HUGE_NUMBERS),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    TEXT,
    st.text(max_size=12),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(min_size=1, max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
KEYS = st.one_of(
    st.text(min_size=1, max_size=10),
    st.sampled_from(["defaults", "_target_", "_self_", "schema", "name", "hydra", "🔥", "a.b", "x" * 300]),
    st.integers(min_value=-5, max_value=5),
    st.booleans(),
    st.none(),
)


# --- where to mutate -----------------------------------------------------------------------------

Path_ = tuple[Any, ...]


def paths(node: Any, prefix: Path_ = ()) -> list[Path_]:
    """Every key path in a YAML document (containers and leaves), depth first."""
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += paths(value, (*prefix, index))
    return found


def get(node: Any, path: Path_) -> Any:
    for part in path:
        node = node[part]
    return node


def put(doc: Any, path: Path_, value: Any) -> Any:
    """``doc`` with the value at ``path`` replaced (``path == ()`` replaces the document)."""
    if not path:
        return value
    get(doc, path[:-1])[path[-1]] = value
    return doc


def delete(doc: Any, path: Path_) -> Any:
    del get(doc, path[:-1])[path[-1]]
    return doc


# --- mutations -----------------------------------------------------------------------------------


@dataclass
class Mutation:
    """What was done (readable, for the failure report) and the files it writes."""

    description: str
    files: dict[str, str | bytes] = field(default_factory=dict)
    # The file the message should name when the mutation breaks the file itself (syntax, shape).
    must_name: str | None = None

    def __repr__(self) -> str:
        return f"Mutation({self.description!r})"


def _copy(relpath: str) -> Any:
    return copy.deepcopy(SHIPPED_DATA[relpath])


@st.composite
def wrong_type(draw: st.DrawFn, relpath: str) -> Mutation:
    doc = _copy(relpath)
    path = draw(st.sampled_from(paths(doc)[1:]))
    value = draw(VALUES)
    return Mutation(f"{relpath}: {list(path)} = {value!r:.200}", {relpath: dump(relpath, put(doc, path, value))})


@st.composite
def unknown_key(draw: st.DrawFn, relpath: str) -> Mutation:
    doc = _copy(relpath)
    containers = [p for p in paths(doc) if isinstance(get(doc, p), dict)]
    path = draw(st.sampled_from(containers))
    key, value = draw(KEYS), draw(VALUES)
    get(doc, path)[key] = value
    return Mutation(f"{relpath}: {list(path)} + {{{key!r:.100}: {value!r:.100}}}", {relpath: dump(relpath, doc)})


@st.composite
def deleted_key(draw: st.DrawFn, relpath: str) -> Mutation:
    doc = _copy(relpath)
    path = draw(st.sampled_from(paths(doc)[1:]))
    return Mutation(f"{relpath}: del {list(path)}", {relpath: dump(relpath, delete(doc, path))})


def _group_and_name(relpath: str) -> tuple[str, str]:
    group, _, name = relpath.removesuffix(".yaml").rpartition("/")
    return group, name


@st.composite
def missing_default(draw: st.DrawFn, relpath: str) -> Mutation:
    doc = _copy(relpath)
    groups = sorted({_group_and_name(f)[0] for f in CONF_FILES if "/" in f})
    entry = draw(
        st.one_of(
            st.builds(lambda g, o: {f"/{g}": o}, st.sampled_from(groups), st.sampled_from(["nope", "🔥", "..", ""])),
            st.builds(lambda g: {f"/{g}": None}, st.sampled_from(groups)),
            st.sampled_from(["no_such_config", "/no/such/config", "schema_typo", "override nope: x", "../config"]),
            st.builds(lambda o: {"/nosuchgroup": o}, st.sampled_from(["a", "b"])),
            st.builds(lambda v: {"optional /storage": v}, st.sampled_from(["nope", "local"])),
        )
    )
    defaults = doc.get("defaults") if isinstance(doc, dict) else None
    if not isinstance(defaults, list):
        defaults = []
    position = draw(st.integers(min_value=0, max_value=len(defaults)))
    defaults.insert(position, entry)
    doc["defaults"] = defaults
    return Mutation(f"{relpath}: defaults.insert({position}, {entry!r})", {relpath: dump(relpath, doc)})


@st.composite
def cyclic_defaults(draw: st.DrawFn, relpath: str) -> Mutation:
    """A file whose defaults include itself, or two group options that include each other."""
    group, name = _group_and_name(relpath)
    doc = _copy(relpath)
    siblings = [f for f in CONF_FILES if _group_and_name(f)[0] == group and f != relpath]
    self_entry = f"/{group}/{name}" if group else name
    if not group or not siblings or draw(st.booleans()):
        doc.setdefault("defaults", []).insert(0, self_entry)
        return Mutation(f"{relpath}: defaults includes itself ({self_entry})", {relpath: dump(relpath, doc)})
    other = draw(st.sampled_from(siblings))
    other_doc = _copy(other)
    _, other_name = _group_and_name(other)
    doc.setdefault("defaults", []).insert(0, {f"/{group}@fuzz_a": other_name})
    other_doc.setdefault("defaults", []).insert(0, {f"/{group}@fuzz_b": name})
    return Mutation(
        f"{relpath} includes {other}, which includes it back",
        {relpath: dump(relpath, doc), other: dump(other, other_doc)},
    )


@st.composite
def huge_number(draw: st.DrawFn, relpath: str) -> Mutation:
    doc = _copy(relpath)
    leaves = [p for p in paths(doc)[1:] if not isinstance(get(doc, p), (dict, list))]
    path = draw(st.sampled_from(leaves))
    value = draw(st.sampled_from(HUGE_NUMBERS))
    return Mutation(f"{relpath}: {list(path)} = {value!r}", {relpath: dump(relpath, put(doc, path, value))})


@st.composite
def unicode_text(draw: st.DrawFn, relpath: str) -> Mutation:
    doc = _copy(relpath)
    leaves = [p for p in paths(doc)[1:] if isinstance(get(doc, p), str)]
    path = draw(st.sampled_from(leaves))
    value = draw(st.one_of(TEXT, st.text(min_size=1, max_size=30)))
    where = draw(st.sampled_from(["replace", "append", "key"]))
    if where == "replace":
        put(doc, path, value)
    elif where == "append":
        put(doc, path, get(doc, path) + value)
    else:  # rename the key holding the string
        parent = get(doc, path[:-1])
        if isinstance(parent, dict):
            parent[value] = parent.pop(path[-1])
        else:
            parent[path[-1]] = {value: parent[path[-1]]}
    return Mutation(f"{relpath}: {list(path)} {where} {value!r:.80}", {relpath: dump(relpath, doc)})


@st.composite
def not_a_mapping(draw: st.DrawFn, relpath: str) -> Mutation:
    doc = draw(
        st.one_of(
            st.lists(SCALARS, max_size=3),
            SCALARS.filter(lambda v: not isinstance(v, str) or v.strip() not in ("", "~", "null")),
            st.just([_copy(relpath)]),
        )
    )
    return Mutation(f"{relpath}: document = {doc!r:.100}", {relpath: dump(relpath, doc)}, must_name=relpath)


# 9**6 values once its aliases are expanded.
ALIAS_BOMB = "\n".join(
    ["a0: &a0 [x, x, x, x, x, x, x, x, x]"] + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 6)]
)
BROKEN_SNIPPETS = [
    "key: [unclosed",
    "key: {unclosed: 1",
    "  bad_indent: 1\n wrong: 2",
    "\tkey: tab",
    "key: value: other",
    "- item\nkey: mapping",
    "&anchor key: 1\nother: *missing_alias",
    "key: *undefined_alias",
    "? [complex, key]\n: value",
    "!!python/object:os.system 'echo pwned'",
    "key: !!binary not_base64!",
    "%YAML 9.9\n---",
    "---\na: 1\n---\nb: 2",
    "'unterminated",
    'key: "bad \\escape"',
    "@reserved",
    "`reserved",
    "defaults: 1\ndefaults: 2",
    "loop: &loop [1, *loop]",
    "tagged: !!set {a, b}",
    "tagged: !!timestamp 2001-12-14",
    "tagged: !!float abc",
    "tagged: !!bool maybe",
    "tagged: !!map [1]",
    "tagged: !custom x",
    "<<: {merged: 1}",
    "~: null key",
    ALIAS_BOMB,
    "deep: " + "[" * 300 + "]" * 300,
    "deep: " + "{a: " * 100 + "1" + "}" * 100,
    "deep: " + "[" * 200_000,
]


@st.composite
def invalid_yaml(draw: st.DrawFn, relpath: str) -> Mutation:
    lines = (SHIPPED_CONF / relpath).read_text().splitlines()
    at = draw(st.integers(min_value=0, max_value=len(lines)))
    snippet = draw(st.sampled_from(BROKEN_SNIPPETS))
    text = "\n".join([*lines[:at], snippet, *lines[at:]]) + "\n"
    return Mutation(f"{relpath}: line {at + 1} inserted {snippet!r}", {relpath: text})


@st.composite
def bad_bytes(draw: st.DrawFn, relpath: str) -> Mutation:
    raw = (SHIPPED_CONF / relpath).read_bytes()
    junk = draw(st.sampled_from([b"\xff\xfe", b"\x00", b"\xc3\x28", b"\x1b[31m", b"\xef\xbb\xbf", b"\x85", b""]))
    at = draw(st.integers(min_value=0, max_value=len(raw)))
    truncate = draw(st.booleans())
    data = raw[:at] + junk + (b"" if truncate else raw[at:])
    what = "truncated after" if truncate else "inserted"
    return Mutation(f"{relpath}: byte {at} {what} {junk!r}", {relpath: data})


@st.composite
def duplicate_key(draw: st.DrawFn, relpath: str) -> Mutation:
    doc = SHIPPED_DATA[relpath]
    keys = [k for k in doc if isinstance(k, str)] if isinstance(doc, dict) else []
    key = draw(st.sampled_from(keys or ["defaults"]))
    value = draw(st.sampled_from(["1", "again", "[]", "{}", "null"]))
    text = (SHIPPED_CONF / relpath).read_text() + f"{key}: {value}\n"
    return Mutation(f"{relpath}: {key!r} written twice", {relpath: text}, must_name=relpath)


MUTATORS: list[Callable[[str], st.SearchStrategy[Mutation]]] = [
    wrong_type,
    unknown_key,
    deleted_key,
    missing_default,
    cyclic_defaults,
    huge_number,
    unicode_text,
    not_a_mapping,
    invalid_yaml,
    bad_bytes,
    duplicate_key,
]


@st.composite
def mutations(draw: st.DrawFn) -> list[Mutation]:
    """One to three mutations of one file (a cyclic one may touch a second file)."""
    relpath = draw(st.sampled_from(CONF_FILES))
    count = draw(st.integers(min_value=1, max_value=3))
    return [draw(st.sampled_from(MUTATORS).flatmap(lambda mutate: mutate(relpath))) for _ in range(count)]


def combine(steps: list[Mutation]) -> Mutation:
    """The steps' files written in order: a later mutation of a file replaces an earlier one."""
    files: dict[str, str | bytes] = {}
    for step in steps:
        files.update(step.files)
    return Mutation("; ".join(s.description for s in steps), files, must_name=steps[-1].must_name)


# --- running the check ---------------------------------------------------------------------------


@dataclass
class Outcome:
    """How one `lakeforge check` ended: exit code, stdout, stderr."""

    code: int
    out: str
    err: str


class CaseTimeout(BaseException):
    """Raised in the main thread when a case outlives CASE_TIMEOUT_S (not an Exception: nothing catches it)."""


@contextlib.contextmanager
def time_bound(seconds: float) -> Iterator[None]:
    """Raise CaseTimeout after ``seconds``; pytest-timeout's own alarm (the same signal) is put back after."""

    def on_alarm(signum: int, frame: object) -> None:
        raise CaseTimeout

    started = time.monotonic()
    previous = signal.signal(signal.SIGALRM, on_alarm)
    outer_delay, outer_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_delay:
            left = max(outer_delay - (time.monotonic() - started), 0.001)
            signal.setitimer(signal.ITIMER_REAL, left, outer_interval)


def run_check(conf_dir: Path, timeout: float = CASE_TIMEOUT_S) -> Outcome:
    """`lakeforge check --conf-dir DIR` through ``lakeforge.cli.main`` in this process, with a time bound.

    In process (not a subprocess per case, ~3 s of imports each), in the main thread: a worker
    thread has a smaller stack, and Python aborts the whole interpreter when a thread's RecursionError
    cannot unwind. Each check starts from a cleared Hydra (``lakeforge.config.compose`` clears it).
    """
    out, err = io.StringIO(), io.StringIO()
    code = 0
    try:
        with time_bound(timeout), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main(["check", "--conf-dir", str(conf_dir)])
    except SystemExit as exc:
        code = 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1
    except CaseTimeout:
        pytest.fail(f"`lakeforge check` still running after {timeout:.0f} s (a hang)\n{err.getvalue()[-2000:]}")
    return Outcome(code, out.getvalue(), err.getvalue())


def assert_clean(outcome: Outcome, mutation: Mutation | None = None) -> None:
    """Exit 0, or exit 2 with every problem naming a file; never a traceback or an internal error."""
    what = f"\nmutation: {mutation.description:.3000}" if mutation else ""
    report = f"{what}\nexit code: {outcome.code}\nstderr:\n{outcome.err[-4000:]}\nstdout:\n{outcome.out[-1000:]}"
    assert "Traceback" not in outcome.err + outcome.out, report
    assert "internal error" not in outcome.err, report
    assert outcome.code in (EXIT_OK, EXIT_CONFIG), report
    if outcome.code == EXIT_OK:
        assert outcome.out.startswith("ok: "), report
        return
    problems = [line for line in outcome.err.splitlines() if line.startswith("error: ")]
    assert problems, report
    for line in problems:
        assert _NAMES_A_FILE.match(line), f"problem does not name a file: {line[:500]!r}{report}"
    if mutation is not None and mutation.must_name:
        assert f"conf/{mutation.must_name}" in outcome.err, f"the broken file is not named{report}"


@pytest.fixture(scope="module")
def project_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """conf/ and features/ copied, with a params.yaml matching them: the unmutated copy checks ok."""
    root = tmp_path_factory.mktemp("fuzz_template")
    shutil.copytree(SHIPPED_CONF, root / "conf")
    shutil.copytree(REPO_ROOT / "features", root / "features", ignore=shutil.ignore_patterns("__pycache__"))
    with contextlib.redirect_stdout(io.StringIO()), pytest.raises(SystemExit) as written:
        main(["params", "--conf-dir", str(root / "conf")])
    assert written.value.code in (0, None)
    return root


def mutated_project(template: Path, target: Path, mutation: Mutation) -> Path:
    """A fresh copy of the template project at ``target`` with the mutation's files written."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(template, target)
    for relpath, content in mutation.files.items():
        path = target / "conf" / relpath
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return target / "conf"


def test_unmutated_copy_checks_ok(project_template: Path) -> None:
    # The round trip through yaml.safe_dump changes nothing Hydra sees.
    target = project_template.parent / "roundtrip"
    identity = Mutation("every file rewritten unchanged", {f: dump(f, SHIPPED_DATA[f]) for f in CONF_FILES})
    outcome = run_check(mutated_project(project_template, target, identity))
    assert outcome.code == EXIT_OK, outcome.err


# oc.deprecated, one of the hostile interpolations, warns when the check resolves it.
@pytest.mark.filterwarnings("ignore::UserWarning")
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)
@given(steps=mutations())
def test_check_survives_mutated_conf(steps: list[Mutation], project_template: Path) -> None:
    mutation = combine(steps)
    conf = mutated_project(project_template, project_template.parent / "case", mutation)
    outcome = run_check(conf)
    event(f"exit {outcome.code}")
    assert_clean(outcome, mutation)


MODEL = "model/flight_delay.yaml"
SUBPROCESS_CASES = {
    "wrong type": Mutation(f"{MODEL}: seed = 'abc'", {MODEL: dump(MODEL, {**_copy(MODEL), "seed": "abc"})}),
    "invalid yaml": Mutation(
        "dataset/planes.yaml: unclosed flow", {"dataset/planes.yaml": "columns: [unclosed\n"}, "dataset/planes.yaml"
    ),
}


@pytest.mark.parametrize("name", list(SUBPROCESS_CASES))
def test_subprocess_check_matches_in_process(name: str, project_template: Path, tmp_path: Path) -> None:
    mutation = SUBPROCESS_CASES[name]
    conf = mutated_project(project_template, tmp_path / "project", mutation)
    in_process = run_check(conf)
    script = Path(sys.executable).with_name("lakeforge")
    proc = subprocess.run(
        [str(script), "check", "--conf-dir", str(conf)], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == in_process.code == EXIT_CONFIG, proc.stderr
    assert proc.stderr == in_process.err
    assert_clean(Outcome(proc.returncode, proc.stdout, proc.stderr), mutation)


def test_a_hang_fails_the_case(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def busy(argv: list[str]) -> None:
        while True:
            pass

    monkeypatch.setattr(sys.modules[__name__], "main", busy)
    with pytest.raises(pytest.fail.Exception, match=r"still running after 1 s \(a hang\)"):
        run_check(tmp_path, timeout=1.0)
