"""Shared fixtures for every tier."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = REPO_ROOT / "conf"

# Never let a test touch the user's MLflow store or bind a public interface.
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")


@pytest.fixture
def lake_root(tmp_path: Path) -> Path:
    """An empty lake root for one test."""
    root = tmp_path / "lake"
    root.mkdir()
    return root
