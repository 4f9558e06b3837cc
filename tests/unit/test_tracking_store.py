"""The MLflow store of a project (a real SQLite store in tmp_path): explicit URI, the experiment's
artifact root, concurrent first use, and a broken store file."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from lakeforge.errors import EnvironmentSetupError
from lakeforge.tracking.store import connect


def _cfg(root: Path) -> Any:
    return OmegaConf.create(
        {
            "project_root": str(root),
            "pipeline": {"name": "demo"},
            "tracking": {"uri": "sqlite:///store/mlflow.db", "artifact_location": "artifacts"},
        }
    )


def test_connect_sets_the_uri_and_the_experiment_artifact_root(tmp_path: Path, monkeypatch: Any) -> None:
    import mlflow

    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # MLflow's defaults would land here
    cfg = OmegaConf.merge(_cfg(tmp_path), {"tracking": {"experiment_prefix": "lakeforge"}})
    tracking = connect(cfg)

    assert tracking.uri == f"sqlite:///{tmp_path}/store/mlflow.db"
    assert mlflow.get_tracking_uri() == tracking.uri
    assert tracking.experiment_name == "lakeforge/demo"
    experiment = tracking.client.get_experiment(tracking.experiment_id)
    assert experiment.artifact_location == f"{tmp_path}/artifacts/demo"
    with mlflow.start_run(experiment_id=tracking.experiment_id) as run:
        mlflow.log_text("hello", "notes/hello.txt")
    assert (tmp_path / "artifacts" / "demo" / run.info.run_id / "artifacts" / "notes" / "hello.txt").exists()
    assert connect(cfg).experiment_id == tracking.experiment_id  # found, not created again
    assert sorted(p.name for p in elsewhere.iterdir()) == []  # no ./mlflow.db, no ./mlruns


def test_concurrent_first_use_of_a_fresh_store(tmp_path: Path) -> None:
    """Four processes open a store that does not exist yet; all succeed on one experiment."""
    script = textwrap.dedent(
        f"""
        from omegaconf import OmegaConf
        from lakeforge.tracking.store import connect
        cfg = OmegaConf.create({{"project_root": {str(tmp_path)!r}, "pipeline": {{"name": "demo"}},
            "tracking": {{"uri": "sqlite:///store/mlflow.db", "artifact_location": "artifacts",
                          "experiment_prefix": "lakeforge"}}}})
        print("EXPERIMENT", connect(cfg).experiment_id)
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], [err[-2000:] for _, err in outs]
    ids = {line.split()[1] for out, _ in outs for line in out.splitlines() if line.startswith("EXPERIMENT")}
    assert len(ids) == 1


def test_a_broken_store_file_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "mlflow.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(EnvironmentSetupError) as exc:
        connect(OmegaConf.merge(_cfg(tmp_path), {"tracking": {"experiment_prefix": "lakeforge"}}))
    message = str(exc.value)
    assert f"sqlite:///{tmp_path}/store/mlflow.db" in message
    assert "move the file aside" in message or "move a broken SQLite file aside" in message
