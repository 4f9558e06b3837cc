"""`lakeforge compare` on a real SQLite MLflow store (runs logged and versions registered with the
MLflow client, as the train step records them; no JVM): champion vs challenger by default, explicit
versions and aliases, the direction-aware differences, grouped slices within 100 columns, and the
text of every error a user can cause."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from lakeforge.errors import RegistryError
from lakeforge.tracking.store import connect
from lakeforge.training.compare import compare_versions

CARRIERS = ("9E", "AA", "AS", "B6", "DL", "EV", "F9", "FL", "HA", "MQ", "OO", "UA", "US", "VX", "WN", "YV")
METRICS = ("roc_auc", "pr_auc", "log_loss", "brier")


def _metrics(shift: float, test_rows: int) -> dict[str, float]:
    """A training run's metrics: per split, the baseline's, 16 carrier slices; ``shift`` improves them."""
    found: dict[str, float] = {"dropped_null_labels": 12.0}
    for i, split in enumerate(("train", "validation", "test")):
        found |= {f"{split}.roc_auc": 0.70 + shift - i / 100, f"{split}.pr_auc": 0.50 + shift}
        found |= {f"{split}.log_loss": 0.60 - shift, f"{split}.brier": 0.20 - shift / 2}
        found[f"{split}.rows"] = float(test_rows * (10 if split == "train" else 1))
        found |= {f"baseline.{split}.roc_auc": 0.65, f"baseline.{split}.log_loss": 0.66}
    for j, carrier in enumerate(CARRIERS):
        found |= {f"test.slice.carrier.{carrier}.{m}": 0.5 + j / 100 + shift for m in METRICS}
        found[f"test.slice.carrier.{carrier}.rows"] = float(100 + j)
    return found


def _params(num_leaves: int) -> dict[str, str]:
    return {
        "estimator": "lightgbm.LGBMClassifier",
        "seed": "42",
        "params.num_leaves": str(num_leaves),
        "params.learning_rate": "0.05",
        "window.train": "2013-01-01 00:00..2013-08-31 00:00",
        "window.test": "2013-10-01 00:00..2013-10-14 00:00",
    }


def _tags(commit: str, dirty: bool, flights: int) -> dict[str, str]:
    return {
        "lakeforge.git_commit": commit,
        "lakeforge.git_dirty": str(dirty).lower(),
        "lakeforge.config_hash": commit[:6] + "c0ffee",
        "lakeforge.run_date": "2013-10-15",
        "lakeforge.seed": "42",
        "lakeforge.inputs": json.dumps({"raw.flights": flights, "raw.weather": 2}, sort_keys=True),
    }


def _register(
    tracking: Any, model: str, metrics: dict[str, float], params: dict[str, str], tags: dict[str, str]
) -> str:
    """Log a finished run with these metrics, params and tags and register a version from it."""
    from mlflow.entities import Metric, Param, RunTag

    client = tracking.client
    run = client.create_run(tracking.experiment_id, run_name=f"train {model}")
    now = int(time.time() * 1000)
    client.log_batch(
        run.info.run_id,
        metrics=[Metric(k, v, now, 0) for k, v in metrics.items()],
        params=[Param(k, v) for k, v in params.items()],
        tags=[RunTag(k, v) for k, v in tags.items()],
    )
    client.set_terminated(run.info.run_id)
    if not client.search_registered_models(f"name = '{model}'"):
        client.create_registered_model(model)
    version = client.create_model_version(model, f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    return str(version.version)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``flight_delay`` v1 (champion, promoted), v2 (challenger, refused), v3 (no alias); ``only_new`` v1
    (challenger, no champion yet); ``promoted`` v1 (champion and challenger); ``retired`` v1 (champion, no
    challenger)."""
    root = tmp_path_factory.mktemp("compare")
    cfg = OmegaConf.create(
        {
            "project_root": str(root),
            "pipeline": {"name": "flight_delay"},
            "tracking": {"uri": "sqlite:///mlflow.db", "artifact_location": "mlartifacts"},
            "model": {"name": "flight_delay", "primary_metric": "roc_auc"},
        }
    )
    tracking = connect(cfg)
    client = tracking.client
    _register(tracking, "flight_delay", _metrics(0.0, 1000), _params(31), _tags("a" * 40, False, 3))
    _register(tracking, "flight_delay", _metrics(0.02, 1100), _params(63), _tags("b" * 40, True, 4))
    _register(tracking, "flight_delay", _metrics(-0.01, 1000), _params(15), _tags("a" * 40, False, 3))
    client.set_registered_model_alias("flight_delay", "champion", "1")
    client.set_registered_model_alias("flight_delay", "challenger", "2")
    client.set_model_version_tag("flight_delay", "1", "lakeforge.gate.decision", "promoted")
    client.set_model_version_tag("flight_delay", "2", "lakeforge.gate.decision", "refused")
    reason = "failed: slice:carrier (carrier 'HA' roc_auc fell 0.031 below the champion's, max 0.02)"
    client.set_model_version_tag("flight_delay", "2", "lakeforge.gate.reason", reason)
    _register(tracking, "only_new", _metrics(0.0, 10), _params(31), _tags("c" * 40, False, 1))
    client.set_registered_model_alias("only_new", "challenger", "1")
    _register(tracking, "promoted", _metrics(0.0, 10), _params(31), _tags("c" * 40, False, 1))
    client.set_registered_model_alias("promoted", "champion", "1")
    client.set_registered_model_alias("promoted", "challenger", "1")
    _register(tracking, "retired", _metrics(0.0, 10), _params(31), _tags("c" * 40, False, 1))
    client.set_registered_model_alias("retired", "champion", "1")
    return cfg


def _row(text: str, key: str) -> list[str]:
    """The cells of the line whose first cell is ``key`` (cells are separated by 2+ spaces)."""
    for line in text.splitlines():
        cells = re.split(r" {2,}", line.strip())
        if cells[0] == key:
            return cells
    raise AssertionError(f"no row '{key}' in:\n{text}")


def test_champion_vs_challenger_by_default(store: Any) -> None:
    text = compare_versions(store, "flight_delay", None, None)

    assert text.endswith("\n")
    assert text.splitlines()[0] == "model 'flight_delay': v1 (champion) vs v2 (challenger)"
    assert max(len(line) for line in text.splitlines()) <= 100
    # Direction-aware: the challenger is better on roc_auc (higher) and log_loss (lower).
    assert _row(text, "test.roc_auc") == ["test.roc_auc", "0.680000", "0.700000", "+0.020000 v2"]
    assert _row(text, "test.log_loss") == ["test.log_loss", "0.600000", "0.580000", "-0.020000 v2"]
    assert _row(text, "test.rows") == ["test.rows", "1,000", "1,100", "+100"]
    assert _row(text, "baseline.test.roc_auc") == ["baseline.test.roc_auc", "0.650000", "0.650000", "+0.000000 ="]
    assert _row(text, "dropped_null_labels") == ["dropped_null_labels", "12", "12", "+0"]  # a count
    # 16 carriers x 5 metrics: one table per slice column, values as rows, wrapped to fit.
    assert "test slices by 'carrier' (16 values; Δ = v2 - v1)" in text
    assert _row(text, "HA")[:6] == ["HA", "108", "108", "+0", "0.5800", "0.6000"]
    assert len(re.findall(r"^  HA ", text, re.MULTILINE)) == 2  # the metric columns wrap onto a second table
    assert re.search(r"^  carrier +v1 +v2 +Δ +v1 +v2 +Δ", text, re.MULTILINE)
    assert "test.slice." not in text
    # Params, data versions, code, gate: the differing rows are marked.
    assert re.search(r"^  \* +params\.num_leaves +31 +63$", text, re.MULTILINE)
    assert re.search(r"^ +params\.learning_rate +0\.05 +0\.05$", text, re.MULTILINE)
    assert re.search(r"^  \* +raw\.flights +version 3 +version 4$", text, re.MULTILINE)
    assert re.search(r"^ +raw\.weather +version 2 +version 2$", text, re.MULTILINE)
    assert re.search(r"^  \* +code +aaaaaaaaaaaa \(clean\) +bbbbbbbbbbbb \(dirty\)$", text, re.MULTILINE)
    assert re.search(r"^  \* +gate +promoted +refused$", text, re.MULTILINE)
    assert "  gate v2: refused: failed: slice:carrier (carrier 'HA' roc_auc fell 0.031 below" in text
    assert re.search(r"^    +run_date +2013-10-15 +2013-10-15$", text, re.MULTILINE)


def test_explicit_versions_and_aliases(store: Any) -> None:
    text = compare_versions(store, "flight_delay", "v3", "champion")

    assert text.splitlines()[0] == "model 'flight_delay': v3 vs v1 (champion)"
    assert _row(text, "test.roc_auc") == ["test.roc_auc", "0.670000", "0.680000", "+0.010000 v1"]
    assert _row(text, "test.brier") == ["test.brier", "0.205000", "0.200000", "-0.005000 v1"]
    assert re.search(r"^  \* +gate +not evaluated +promoted$", text, re.MULTILINE)
    assert compare_versions(store, "flight_delay", "2", "1").splitlines()[0] == (
        "model 'flight_delay': v2 (challenger) vs v1 (champion)"
    )


@pytest.mark.parametrize(
    ("model", "left", "right", "message"),
    [
        (
            "flight_dela",
            None,
            None,
            r"^no registered model 'flight_dela' \(did you mean 'flight_delay'\?\); "
            r"registered models: flight_delay, only_new, promoted, retired$",
        ),
        (
            "flight_delay",
            "1",
            "7",
            r"^model 'flight_delay' has no version '7'; versions: 1, 2, 3$",
        ),
        (
            "flight_delay",
            "best",
            "1",
            r"^model 'flight_delay' has no version or alias 'best'; versions: 1, 2, 3 "
            r"\(challenger: v2, champion: v1\)$",
        ),
        (
            "only_new",
            None,
            None,
            r"^model 'only_new' has no champion yet: run the gate with `lakeforge run evaluate` \(or "
            r"`lakeforge promote only_new VERSION`\), or compare two versions with "
            r"`lakeforge compare only_new V1 V2` \(versions: 1 \(challenger: v1\)\)$",
        ),
        (
            "retired",
            None,
            None,
            r"^model 'retired' has no challenger: train one with `lakeforge run train`, or compare two versions "
            r"with `lakeforge compare retired V1 V2` \(versions: 1 \(champion: v1\)\)$",
        ),
        (
            "promoted",
            None,
            None,
            r"^model 'promoted': champion and challenger are both v1 \(the challenger was promoted\); "
            r"compare two versions with `lakeforge compare promoted V1 V2`",
        ),
    ],
)
def test_errors_say_what_exists(store: Any, model: str, left: str | None, right: str | None, message: str) -> None:
    with pytest.raises(RegistryError, match=message):
        compare_versions(store, model, left, right)


def test_no_mlflow_db_lands_in_the_working_directory(store: Any, tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    compare_versions(store, "flight_delay", None, None)
    assert list(tmp_path.iterdir()) == []
