"""`lakeforge lineage` as a user runs it (no JVM): a prediction table and a feature table written by
delta-rs with lakeforge's commit metadata, a training run and model version made by hand in a real
SQLite MLflow store. Text and JSON output, exit 1 when nothing matches, one line per mistake."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from lakeforge.lake.lineage import Lineage, commit_metadata
from tests.e2e.conftest import REPO_ROOT, run_cli


def _write(uri: str, table: Any, lineage: Lineage, partition_by: list[str] | None = None) -> None:
    from deltalake import CommitProperties, write_deltalake

    meta = CommitProperties(custom_metadata=commit_metadata(lineage, {}))
    write_deltalake(uri, table, partition_by=partition_by, commit_properties=meta)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], str]:
    """The CLI arguments pointing at the lake and store; the training run's id."""
    import mlflow
    import pyarrow as pa

    from lakeforge.lake.catalog import Catalog

    tmp_path = tmp_path_factory.mktemp("lineage")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("lakeforge/flight_delay", artifact_location=str(tmp_path / "mlartifacts"))
    tags = {
        "lakeforge.run_date": "2013-10-15",
        "lakeforge.inputs": '{"raw.flights": 0, "raw.weather": 2}',
        "lakeforge.git_commit": "0123456789abcdef",
        "lakeforge.git_dirty": "false",
        "lakeforge.config_hash": "c0nf1g",
        "dvc.data/raw/flights.csv": "9f8e7d",
    }
    run_id = client.create_run(experiment, run_name="train delay 2013-10-15", tags=tags).info.run_id
    client.log_metric(run_id, "test.log_loss", 0.41)
    client.log_metric(run_id, "test.roc_auc", 0.7629)
    client.log_text(run_id, "model:\n  name: delay\n  primary_metric: roc_auc\n", "config/composed.yaml")
    client.set_terminated(run_id)
    client.create_registered_model("delay")
    client.create_model_version("delay", source=str(tmp_path / "model"), run_id=run_id)
    client.set_registered_model_alias("delay", "champion", "1")

    lake = Catalog(tmp_path / "lake")
    features = pa.table({"id": [1, 2], "dep_hour": [7, 9]})
    _write(lake.table_uri("features.flight_delay"), features, Lineage("job-f", "fea7", False, "hf", {"raw.flights": 0}))
    n = 3
    predictions = pa.table(
        {
            "carrier": ["AA", "AA", "UA"],
            "flight": [1545, 1141, 725],
            "prediction": [1, 0, 0],
            "score": [0.8, 0.2, 0.3],
            "model_name": ["delay"] * n,
            "model_alias": ["champion"] * n,
            "model_version": pa.array([1] * n, pa.int32()),
            "model_run_id": [run_id] * n,
            "feature_table": ["features.flight_delay"] * n,
            "feature_table_version": pa.array([0] * n, pa.int64()),
            "scored_at": pa.array([datetime(2013, 10, 16, 6, tzinfo=UTC)] * n, pa.timestamp("us", "UTC")),
            "job_run_id": ["job-s"] * n,
            "run_date": [date(2013, 10, 16)] * n,
        }
    )
    scoring = Lineage("job-s", "5c0e", True, "hs", {"features.flight_delay": 0}, "score")
    _write(lake.table_uri("predictions.delay"), predictions, scoring, ["run_date"])
    args = [f"storage.lake_root={lake.lake_root}", f"tracking.uri={uri}", "--conf-dir", str(REPO_ROOT / "conf")]
    return args, run_id


def test_lineage_prints_text_and_json_and_exits_1_when_nothing_matches(
    project: tuple[list[str], str], tmp_path: Path
) -> None:
    args, run_id = project
    text = run_cli(["lineage", "predictions.delay", "--where", "carrier = 'AA'", *args], cwd=tmp_path, check=True)
    lines = text.stdout.splitlines()
    assert lines[0] == "predictions.delay (version 0) where carrier = 'AA': 2 rows in 1 lineage"
    assert lines[2] == "lineage 1 of 1: 2 rows, run_date 2013-10-16, scored 2013-10-16 06:00:00 UTC"
    assert lines[3] == "  model           delay v1, scored as 'champion' (now: champion); gate: not evaluated"
    assert lines[4].startswith(f"  training run    {run_id} 'train delay 2013-10-15', started ")
    assert lines[5:9] == [
        "  test metrics    roc_auc 0.7629 (primary), log_loss 0.4100",
        "  training data   raw.flights v0, raw.weather v2",
        "  raw data (dvc)  data/raw/flights.csv 9f8e7d",
        "  training code   0123456789ab (clean)",
    ]
    assert lines[9].startswith("  config          hash c0nf1g, ") and lines[9].endswith("/config/composed.yaml")
    assert lines[10:] == [
        "  feature table   features.flight_delay v0: job job-f, step -, code fea7 (clean), config hash hf",
        "    read          raw.flights v0",
        "  scoring job     job-s wrote predictions.delay v0: step score, code 5c0e (dirty), config hash hs",
        "    read          features.flight_delay v0",
    ]

    with_config = run_cli(["lineage", "delay", "--config", "--format", "json", *args], cwd=tmp_path, check=True)
    data = json.loads(with_config.stdout)
    assert data["rows"] == 3 and data["where"] is None
    assert data["lineages"][0]["training_run"]["config"].startswith("model:\n  name: delay")

    none = run_cli(["lineage", "predictions.delay", "--where", "flight = 1", *args], cwd=tmp_path)
    assert (none.returncode, none.stdout) == (1, "")
    assert none.stderr == "no rows of 'predictions.delay' (version 0) match --where \"flight = 1\"\n"
    import mlflow

    uri = args[1].removeprefix("tracking.uri=")
    experiments = {e.name for e in mlflow.MlflowClient(tracking_uri=uri).search_experiments()}
    assert "lakeforge/default" not in experiments and not (tmp_path / "mlruns").exists()  # read-only


@pytest.mark.parametrize(
    ("table", "where", "code", "message"),
    [
        ("predictions.dealy", "true", 3, "error: table 'predictions.dealy' does not exist under lake root"),
        ("features.flight_delay", "true", 3, "error: table 'features.flight_delay' is not a prediction table"),
        ("delay", "carier = 'AA'", 3, "error: --where \"carier = 'AA'\" on 'predictions.delay' failed: Referenced"),
        ("delay", "true; DROP TABLE x", 2, 'error: --where "true; DROP TABLE x": the predicate must be one SQL'),
    ],
)
def test_each_mistake_is_one_line(
    project: tuple[list[str], str], tmp_path: Path, table: str, where: str, code: int, message: str
) -> None:
    proc = run_cli(["lineage", table, "--where", where, *project[0]], cwd=tmp_path)
    assert proc.returncode == code and proc.stderr.startswith(message)
    assert len(proc.stderr.splitlines()) == 1 and proc.stdout == ""
