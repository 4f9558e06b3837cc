"""declared_transforms: @transform names read from features/*.py with ast, never by importing."""

from __future__ import annotations

import sys
from pathlib import Path
from textwrap import dedent

import pytest
import yaml

from lakeforge.config.transforms import declared_transforms, scan_transforms
from lakeforge.errors import ConfigError, ConfigErrors

from .conftest import FIXTURE_ROOT, REPO_ROOT


def _write(root: Path, name: str, text: str) -> None:
    folder = root / "features"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(dedent(text).lstrip("\n"))


FORMS = """
import functools

import lakeforge
import lakeforge.features
from lakeforge import features
from lakeforge.features.registry import transform


@transform("plain")
def plain(df, inputs, outputs):
    return df


@transform(name="keyword")
def keyword(df, inputs, outputs):
    return df


@features.transform("attribute")
def attribute(df, inputs, outputs):
    return df


@functools.lru_cache(maxsize=1)
@lakeforge.features.transform("dotted")
@functools.wraps(plain)
def dotted(df, inputs, outputs):
    return df


class Holder:
    @staticmethod
    @transform("method")
    def method(df, inputs, outputs):
        return df


def outer():
    @transform("nested")
    async def nested(df, inputs, outputs):
        return df

    return nested
"""


def test_decorator_forms(tmp_path: Path) -> None:
    _write(tmp_path, "forms.py", FORMS)
    found = declared_transforms(tmp_path)
    assert found == {
        "plain": "features/forms.py:10",
        "keyword": "features/forms.py:15",
        "attribute": "features/forms.py:20",
        "dotted": "features/forms.py:27",
        "method": "features/forms.py:34",
        "nested": "features/forms.py:40",
    }


def test_imported_alias_counts_other_decorators_do_not(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "aliases.py",
        """
        import functools
        from lakeforge.features.registry import transform as register
        from elsewhere import transformer, route


        @register("aliased")
        def aliased(df, inputs, outputs):
            return df


        @transformer("not_a_transform")
        @route("/x")
        @functools.cache
        @staticmethod
        def other(df):
            return df


        def undecorated(df):
            return transform("called_not_decorating")
        """,
    )
    _write(
        tmp_path,
        "foreign.py",
        """
        from somewhere import register


        @register("foreign")
        def foreign(df):
            return df
        """,
    )
    assert declared_transforms(tmp_path) == {"aliased": "features/aliases.py:7"}


def test_only_python_files_directly_in_features(tmp_path: Path) -> None:
    _write(tmp_path, "a.py", '@transform("a")\ndef a(df, inputs, outputs):\n    return df\n')
    _write(tmp_path, "notes.txt", '@transform("txt")\ndef t(df):\n    pass\n')
    (tmp_path / "features" / "sub").mkdir()
    (tmp_path / "features" / "sub" / "b.py").write_text('@transform("b")\ndef b(df):\n    pass\n')
    assert declared_transforms(tmp_path) == {"a": "features/a.py:2"}


def test_no_features_folder(tmp_path: Path) -> None:
    assert declared_transforms(tmp_path) == {}


def test_files_are_not_imported(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "side_effects.py",
        """
        import no_such_module_anywhere
        raise SystemExit("imported!")


        @transform("still_found")
        def still_found(df, inputs, outputs):
            return df
        """,
    )
    assert declared_transforms(tmp_path) == {"still_found": "features/side_effects.py:6"}
    assert "side_effects" not in sys.modules


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    _write(tmp_path, "ok.py", '@transform("ok")\ndef ok(df, inputs, outputs):\n    return df\n')
    _write(tmp_path, "broken.py", 'x = 1\n\n@transform("b")\ndef b(df, inputs outputs):\n    return df\n')
    with pytest.raises(ConfigError) as info:
        declared_transforms(tmp_path)
    assert info.value.file == "features/broken.py"
    assert info.value.key is not None and info.value.key.startswith("line 4, column ")
    assert str(info.value).startswith("features/broken.py: line 4, column ")
    assert "invalid Python syntax" in str(info.value)
    scan = scan_transforms(tmp_path)
    assert scan.declared == {"ok": "features/ok.py:2"}
    assert len(scan.problems) == 1


def test_name_must_be_a_literal(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "dynamic.py",
        """
        NAME = "x"


        @transform(NAME)
        def computed(df, inputs, outputs):
            return df


        @transform
        def bare(df, inputs, outputs):
            return df
        """,
    )
    with pytest.raises(ConfigErrors) as info:
        declared_transforms(tmp_path)
    first, second = info.value.problems
    assert str(first) == (
        "features/dynamic.py: line 4, column 2: the @transform decorator of 'computed' needs its name as a "
        'string literal, e.g. @transform("computed"): names are read without running the file'
    )
    assert second.key == "line 9, column 2"
    assert "'bare'" in str(second)


def test_duplicate_name(tmp_path: Path) -> None:
    _write(tmp_path, "a.py", '@transform("dup")\ndef a(df, inputs, outputs):\n    return df\n')
    _write(tmp_path, "b.py", 'x = 1\n\n@transform("dup")\ndef b(df, inputs, outputs):\n    return df\n')
    with pytest.raises(ConfigError) as info:
        declared_transforms(tmp_path)
    assert str(info.value) == (
        "features/b.py: line 3, column 2: transform 'dup' is declared twice: at features/a.py:2 and "
        "features/b.py:4; rename one"
    )


def test_fixture_features_declare_cyclic_hour() -> None:
    """The frozen fixture project the feature-config tests use declares exactly one transform."""
    assert declared_transforms(FIXTURE_ROOT) == {"cyclic_hour": "features/flight_delay_transforms.py:14"}


def test_repo_features_declare_every_transform_the_shipped_feature_sets_use() -> None:
    """The shipped features/ parse cleanly and declare each transform named in conf/features/*.yaml."""
    scan = scan_transforms(REPO_ROOT)
    assert [str(p) for p in scan.problems] == []
    used = {
        str(t["name"])
        for path in sorted((REPO_ROOT / "conf" / "features").glob("*.yaml"))
        for t in (yaml.safe_load(path.read_text()) or {}).get("transforms") or []
    }
    assert used <= set(scan.declared), f"not declared in features/*.py: {sorted(used - set(scan.declared))}"
    assert all(where.startswith("features/") and ".py:" in where for where in scan.declared.values())
