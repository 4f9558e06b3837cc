"""Fixtures for config tests: a writable copy of the shipped conf/ (and features/), and the same copy
with the frozen test feature set, model and transforms of ``fixtures/project`` laid over it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
CONF_DIR = REPO_ROOT / "conf"
FEATURES_DIR = REPO_ROOT / "features"
# A frozen feature set (conf/features/flight_delay.yaml), the model over it (conf/model/…) and
# its transforms (features/…): the tests that edit exact lines of those files use these, so the
# shipped demo files can change freely.
FIXTURE_ROOT = Path(__file__).resolve().parent / "fixtures" / "project"
_NO_CACHE = shutil.ignore_patterns("__pycache__")


@pytest.fixture
def conf_copy(tmp_path: Path) -> Path:
    """A copy of the repo's conf/ under tmp_path (so messages read ``conf/…``).

    The transforms in features/ are copied next to it, as in the repo: the config checks look
    transform names up in ``<project root>/features/*.py``.
    """
    target = tmp_path / "conf"
    shutil.copytree(CONF_DIR, target)
    shutil.copytree(FEATURES_DIR, tmp_path / "features", ignore=_NO_CACHE)
    return target


@pytest.fixture
def fixture_conf(conf_copy: Path) -> Path:
    """``conf_copy`` with the fixture's feature set and model, and only the fixture's ``features/``.

    Same paths as the shipped files, so messages still read ``conf/features/flight_delay.yaml: …``
    and ``features/flight_delay_transforms.py:LINE``; the datasets and other groups stay the shipped ones.
    """
    shutil.copytree(FIXTURE_ROOT / "conf", conf_copy, dirs_exist_ok=True)
    features = conf_copy.parent / "features"
    shutil.rmtree(features)
    shutil.copytree(FIXTURE_ROOT / "features", features, ignore=_NO_CACHE)
    return conf_copy


def edit(conf_dir: Path, relpath: str, old: str, new: str) -> None:
    """Replace one exact snippet in a conf file; fails loudly if the snippet is gone."""
    path = conf_dir / relpath
    text = path.read_text()
    assert old in text, f"{old!r} not in {relpath}"
    path.write_text(text.replace(old, new, 1))
