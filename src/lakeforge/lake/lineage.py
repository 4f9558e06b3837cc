"""Lineage recorded in every Delta commit: who wrote it, from which code, config and inputs."""

from __future__ import annotations

import contextlib
import json
import subprocess
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lakeforge

# Commit-metadata keys carry this prefix so they never clash with commitInfo's own fields.
META_PREFIX = "lakeforge."
_LINEAGE_KEYS = ("job_run_id", "git_commit", "git_dirty", "config_hash", "inputs", "step")


@dataclass(frozen=True)
class Lineage:
    """What produced a commit: the job run, the code (git), the config and the input versions."""

    job_run_id: str
    git_commit: str | None = None
    git_dirty: bool | None = None
    config_hash: str | None = None
    inputs: Mapping[str, int] = field(default_factory=dict)
    step: str | None = None


def new_job_run_id() -> str:
    """A sortable, unique job run id: UTC timestamp plus a random suffix."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def current_git(repo_dir: Path | None = None) -> tuple[str | None, bool | None]:
    """Return (commit, dirty) of the git checkout at ``repo_dir``; (None, None) if unknown. Never raises."""
    cwd = str(repo_dir) if repo_dir else None
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
        if head.returncode != 0:
            return None, None
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
        return head.stdout.strip() or None, dirty
    except (OSError, subprocess.SubprocessError):
        return None, None


def commit_metadata(lineage: Lineage | None, extra: Mapping[str, Any]) -> dict[str, Any]:
    """The commitInfo custom metadata of one lakeforge commit (lineage plus write facts)."""
    meta: dict[str, Any] = {f"{META_PREFIX}version": lakeforge.__version__}
    if lineage is not None:
        meta.update(
            {
                f"{META_PREFIX}job_run_id": lineage.job_run_id,
                f"{META_PREFIX}git_commit": lineage.git_commit,
                f"{META_PREFIX}git_dirty": lineage.git_dirty,
                f"{META_PREFIX}config_hash": lineage.config_hash,
                # A JSON string: readers of commitInfo (Spark, delta-rs) keep it verbatim.
                f"{META_PREFIX}inputs": json.dumps(dict(lineage.inputs), sort_keys=True),
                f"{META_PREFIX}step": lineage.step,
            }
        )
    meta.update({f"{META_PREFIX}{key}": value for key, value in extra.items()})
    return meta


def lineage_from_commit(commit_info: Mapping[str, Any]) -> dict[str, Any]:
    """The lineage dict stored in a commit's metadata ({} for commits not made by lakeforge)."""
    found: dict[str, Any] = {}
    for key in _LINEAGE_KEYS:
        full = f"{META_PREFIX}{key}"
        if full in commit_info:
            found[key] = commit_info[full]
    if isinstance(found.get("inputs"), str):
        # Keep the raw text when it is not JSON: history must show what is there, not fail.
        with contextlib.suppress(ValueError):
            found["inputs"] = json.loads(found["inputs"])
    return found
