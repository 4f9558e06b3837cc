"""`dvc metrics` and `dvc plots` on the train and evaluate stages' outputs, as committed: DVC reads the
declared files, and `dvc metrics diff` shows what a new run changed against the last commit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.e2e.conftest import BIN, REPO_ROOT
from tests.e2e.test_dvc_data import _run

FILES = ("dvc.yaml", "dvc.lock", "params.yaml", ".dvcignore", ".dvc/config")


def test_dvc_reads_the_committed_train_and_gate_metrics_and_plots(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    for name in FILES:
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO_ROOT / name, repo / name)
    shutil.copytree(REPO_ROOT / "metrics", repo / "metrics")
    _run(["git", "init", "-q"], repo)
    _run(["git", "add", "-A"], repo)
    _run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "demo"], repo)
    dvc = str(BIN / "dvc")

    shown = json.loads(_run([dvc, "metrics", "show", "--json"], repo))
    train = shown[""]["data"]["metrics/train.json"]["data"]
    gate = shown[""]["data"]["metrics/gate.json"]["data"]
    assert train["model"] == "flight_delay" and 0.7 < train["test"]["roc_auc"] < 0.8
    assert gate["promoted"] is True and gate["checks"]["absolute:roc_auc"]["passed"] is True
    assert gate["metrics"]["challenger"]["roc_auc"] == train["test"]["roc_auc"]

    plots = json.loads(_run([dvc, "plots", "show", "--json", "--split"], repo))["data"]
    for name, axis in (("roc", "fpr"), ("pr", "recall"), ("calibration", "predicted")):
        (plot,) = plots[f"metrics/plots/test_{name}.json"]
        assert plot["content"]["encoding"]["x"]["field"] == axis

    # A new (worse) run in the workspace: `dvc metrics diff` compares it with the committed one.
    worse = json.loads((repo / "metrics" / "train.json").read_text())
    worse["test"]["roc_auc"] = round(worse["test"]["roc_auc"] - 0.1, 6)
    (repo / "metrics" / "train.json").write_text(json.dumps(worse))
    diff = json.loads(_run([dvc, "metrics", "diff", "--json"], repo))
    change = diff["metrics/train.json"]["test.roc_auc"]
    assert abs(change["diff"] + 0.1) < 1e-6
