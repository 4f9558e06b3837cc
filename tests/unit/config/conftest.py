"""Fixtures for config tests: a writable copy of the shipped conf/."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CONF_DIR = Path(__file__).resolve().parents[3] / "conf"


@pytest.fixture
def conf_copy(tmp_path: Path) -> Path:
    """A copy of the repo's conf/ under tmp_path (so messages read ``conf/…``)."""
    target = tmp_path / "conf"
    shutil.copytree(CONF_DIR, target)
    return target


def edit(conf_dir: Path, relpath: str, old: str, new: str) -> None:
    """Replace one exact snippet in a conf file; fails loudly if the snippet is gone."""
    path = conf_dir / relpath
    text = path.read_text()
    assert old in text, f"{old!r} not in {relpath}"
    path.write_text(text.replace(old, new, 1))
