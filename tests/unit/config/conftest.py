"""Fixtures for config tests: a writable copy of the shipped conf/ (and features/)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
CONF_DIR = REPO_ROOT / "conf"
FEATURES_DIR = REPO_ROOT / "features"


@pytest.fixture
def conf_copy(tmp_path: Path) -> Path:
    """A copy of the repo's conf/ under tmp_path (so messages read ``conf/…``).

    The transforms in features/ are copied next to it, as in the repo: the config checks look
    transform names up in ``<project root>/features/*.py``.
    """
    target = tmp_path / "conf"
    shutil.copytree(CONF_DIR, target)
    shutil.copytree(FEATURES_DIR, tmp_path / "features", ignore=shutil.ignore_patterns("__pycache__"))
    return target


def edit(conf_dir: Path, relpath: str, old: str, new: str) -> None:
    """Replace one exact snippet in a conf file; fails loudly if the snippet is gone."""
    path = conf_dir / relpath
    text = path.read_text()
    assert old in text, f"{old!r} not in {relpath}"
    path.write_text(text.replace(old, new, 1))
