"""`lakeforge promote`, `rollback` and `compare` as a user runs them, on a real SQLite MLflow store
(no JVM): each move printed and recorded, each mistake one line with exit 3."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO_ROOT, run_cli


@pytest.fixture
def store(tmp_path: Path) -> list[str]:
    """A store with registered model `delay` v1..v3 (no champion yet); the arguments pointing at it."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("delay")
    for _ in range(3):
        client.create_model_version("delay", source=str(tmp_path / "model"))
    conf = ["--conf-dir", str(REPO_ROOT / "conf")]
    return [f"tracking.uri={uri}", f"tracking.artifact_location={tmp_path / 'artifacts'}", *conf]


def test_promote_and_rollback_move_the_champion_and_record_it(store: list[str], tmp_path: Path) -> None:
    import mlflow

    first = run_cli(["promote", "delay", "1", "--reason", "first", *store], cwd=tmp_path, check=True)
    assert "delay: champion v1 (was no champion; manual by" in first.stdout and "first" in first.stdout
    run_cli(["promote", "delay", "v3", *store], cwd=tmp_path, check=True)
    back = run_cli(["rollback", "delay", "--reason", "bad scores", *store], cwd=tmp_path, check=True)
    assert "delay: champion v1 (was v3; rollback by" in back.stdout

    uri = store[0].removeprefix("tracking.uri=")
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    model = client.get_registered_model("delay")
    assert model.aliases == {"champion": 1}
    moves = [(m["version"], m["previous"], m["kind"]) for m in json.loads(model.tags["lakeforge.champion_history"])]
    assert moves == [("1", None, "manual"), ("3", "1", "manual"), ("1", "3", "rollback")]
    assert not (tmp_path / "mlruns").exists()  # nothing falls back to MLflow's defaults in the cwd

    again = run_cli(["rollback", "delay", *store], cwd=tmp_path)
    assert again.returncode == 3 and "v1 is the first champion" in again.stderr
    same = run_cli(["promote", "delay", "1", *store], cwd=tmp_path)
    assert same.returncode == 3 and "v1 is already the champion" in same.stderr


def test_registry_mistakes_are_one_line_errors(store: list[str], tmp_path: Path) -> None:
    for args, message in (
        (["promote", "delay", "9"], "model 'delay' has no version '9'; versions: 1, 2, 3"),
        (["promote", "dealy", "1"], "no registered model 'dealy' (did you mean 'delay'?)"),
        (["rollback", "delay"], "model 'delay' has no champion to roll back"),
        (["compare", "delay", "1"], "compare takes two versions or none"),
    ):
        proc = run_cli([*args, *store], cwd=tmp_path)
        assert proc.returncode in (2, 3), proc.stderr
        assert message in proc.stderr and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
