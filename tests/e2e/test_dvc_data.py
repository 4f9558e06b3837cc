"""The raw data under DVC: a fresh repository reproduces `extract` to the hashes in dvc.lock, pushes, pulls."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.conftest import BIN, REPO_ROOT

# What a fresh checkout needs for the `extract` stage; the installed lakeforge package supplies the rest.
STAGE_FILES = ("dvc.yaml", ".dvcignore", ".dvc/config", "jobs/extract_data.py", "src/lakeforge/data/raw_files.py")
RAW_FILES = {"airlines.csv", "airports.csv", "flights.csv", "planes.csv", "weather.csv"}


def _run(args: list[str], cwd: Path) -> str:
    """Run a command as a user would (the venv first on PATH, as `dvc repro` runs `python …`)."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "DVC_NO_ANALYTICS": "1"}
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _raw_out(lock: dict[str, Any]) -> dict[str, Any]:
    """The `data/raw` entry of a dvc.lock's `extract` stage."""
    (out,) = [o for o in lock["stages"]["extract"]["outs"] if o["path"] == "data/raw"]
    return out


def _check_files_match(repo: Path, dir_md5: str) -> None:
    """Every raw file's md5 equals the one in the cached directory manifest named by ``dir_md5``."""
    manifest_path = repo / ".dvc" / "cache" / "files" / "md5" / dir_md5[:2] / dir_md5[2:]
    assert _md5(manifest_path) == dir_md5.removesuffix(".dir")
    manifest = {entry["relpath"]: entry["md5"] for entry in json.loads(manifest_path.read_text())}
    assert set(manifest) == RAW_FILES
    on_disk = {path.name: _md5(path) for path in (repo / "data" / "raw").iterdir()}
    assert on_disk == manifest


def test_extract_push_pull_round_trip(tmp_path: Path) -> None:
    committed = _raw_out(yaml.safe_load((REPO_ROOT / "dvc.lock").read_text()))
    repo = tmp_path / "repo"
    for name in STAGE_FILES:
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO_ROOT / name, repo / name)
    _run(["git", "init", "-q"], repo)
    dvc = str(BIN / "dvc")
    # .dvc/config's remote is relative to .dvc/, so it lands beside this repository, inside tmp_path.
    remote = tmp_path / "lakeforge-dvc-remote"

    _run([dvc, "repro", "extract"], repo)
    fresh = _raw_out(yaml.safe_load((repo / "dvc.lock").read_text()))
    assert (fresh["md5"], fresh["size"], fresh["nfiles"]) == (committed["md5"], committed["size"], 5)
    assert (repo / "data" / ".gitignore").read_text().split() == ["/raw"]
    _check_files_match(repo, committed["md5"])

    assert "6 files pushed" in _run([dvc, "push"], repo)
    assert remote.is_dir()
    shutil.rmtree(repo / "data" / "raw")
    shutil.rmtree(repo / ".dvc" / "cache")
    _run([dvc, "pull"], repo)
    _check_files_match(repo, committed["md5"])
    assert "up to date" in _run([dvc, "status", "extract"], repo)
