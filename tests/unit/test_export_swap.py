"""File exports: a run date's folder is swapped in one step, and crashed exports' leftovers are cleaned."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from lakeforge.scoring import export
from lakeforge.scoring.export import _clean_leftovers, _exchange, _Spec, _staging_name, _swap_in

SPEC = _Spec("model.scoring.exports[0]", "parquet", "p", None, None, None, None, {}, (), True)
DAY = date(2013, 2, 4)


def _folder(path: Path, content: str) -> Path:
    path.mkdir(parents=True)
    (path / "part-0.parquet").write_text(content)
    return path


def test_exchange_swaps_two_folders_at_once(tmp_path: Path) -> None:
    a, b = _folder(tmp_path / "a", "new"), _folder(tmp_path / "b", "old")
    assert _exchange(a, b)  # Linux: renameat2(RENAME_EXCHANGE)
    assert (b / "part-0.parquet").read_text() == "new"
    assert (a / "part-0.parquet").read_text() == "old"


def test_a_run_date_is_replaced_and_the_old_folder_deleted(tmp_path: Path) -> None:
    root, staging = tmp_path / "p", tmp_path / "p" / "_staging" / _staging_name()
    _folder(root / "run_date=2013-02-04", "old")
    _folder(staging / "run_date=2013-02-04", "new")
    inode = (staging / "run_date=2013-02-04").stat().st_ino
    _swap_in(staging, root, DAY, SPEC, tmp_path)
    assert (root / "run_date=2013-02-04").stat().st_ino == inode  # the staged folder itself, moved in
    assert (root / "run_date=2013-02-04" / "part-0.parquet").read_text() == "new"
    assert not (staging / "run_date=2013-02-04").exists()


def test_without_the_atomic_swap_two_renames_do_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export, "_exchange", lambda a, b: False)  # a system without renameat2
    root, staging = tmp_path / "p", tmp_path / "p" / "_staging" / "s"
    _folder(root / "run_date=2013-02-04", "old")
    _folder(staging / "run_date=2013-02-04", "new")
    _swap_in(staging, root, DAY, SPEC, tmp_path)
    assert (root / "run_date=2013-02-04" / "part-0.parquet").read_text() == "new"
    assert not (staging / "replaced-run_date=2013-02-04").exists()


def test_leftovers_of_crashed_exports_of_this_machine_go_others_stay(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(ended.stdout)
    host = socket.gethostname()
    staging = tmp_path / "_staging"
    crashed = _folder(staging / f"{host}-{dead_pid}-0123abcd", "half")
    running = _folder(staging / f"{host}-{os.getpid()}-4567ef01", "in progress")
    elsewhere = _folder(staging / f"other-host-{dead_pid}-89ab", "another machine's")
    unnamed = _folder(staging / "0123456789abcdef", "an older lakeforge's")
    with caplog.at_level(logging.INFO, logger="lakeforge.scoring.export"):
        _clean_leftovers(staging)
    assert not crashed.exists()
    assert running.exists() and elsewhere.exists() and unnamed.exists()
    assert "deleted 1 staging folder(s) of crashed exports" in caplog.text
    assert "holds 3 staging folder(s) of running exports or of other machines" in caplog.text
