"""Online serving on real components: features built and scored by the batch job (local Spark, Delta,
a SQLite MLflow registry), materialized into the SQLite online store, served by the FastAPI app
(in process through Starlette's TestClient, and by a real uvicorn server on 127.0.0.1).

The parity tests hold online answers to the batch prediction table's rows: the same score, bit
for bit, the same prediction and the same reasons."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from datetime import date, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from lakeforge.lake.delta import arrow_dataset
from lakeforge.scoring.hashing import bucket
from lakeforge.scoring.job import score
from lakeforge.serving.app import create_app
from lakeforge.serving.materialize import materialize
from lakeforge.serving.store import SqliteStore, latest_per_entity
from lakeforge.tracking.registry import promote_by_hand
from lakeforge.training.run import train
from tests.redis_server import redis_url  # noqa: F401
from tests.spark.helpers_train import job_lineage as _lineage
from tests.spark.helpers_train import make_project

DAY = date(2024, 6, 9)
ONLINE = "predictions.demo_model__online"


@pytest.fixture(scope="module")
def project(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """v1 champion, v2 (weaker) challenger; DAY scored by v1; the store materialized from it."""
    import mlflow

    tmp = tmp_path_factory.mktemp("serve")
    cfg, catalog = make_project(spark, tmp)
    cfg.model.features = ["hour_of_day", "key", "n_1d"]
    cfg.model.gate.baseline = None
    cfg.online = {
        "kind": "sqlite",
        "path": "online/features.sqlite",
        "serve": {
            "host": "127.0.0.1",
            "port": 0,
            "max_batch_rows": 100,
            "alias_poll_s": 0.2,
            "log_flush_rows": 50,
            "log_flush_s": 0.5,
        },
    }
    v1 = train(spark, cfg, catalog, _lineage("train"))
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri, registry_uri=uri)
    promote_by_hand(cfg, "demo_model", "1", "test: the first champion")
    weaker = cfg.copy()
    weaker.model.params = {"n_estimators": 3, "num_leaves": 2, "verbose": -1}
    v2 = train(spark, weaker, catalog, _lineage("train"))
    client.set_registered_model_alias("demo_model", "challenger", str(v2.version))
    store = SqliteStore(tmp / "online" / "features.sqlite")
    project = SimpleNamespace(cfg=cfg, catalog=catalog, client=client, tmp=tmp, v1=v1, v2=v2, store=store)
    _score(spark, project, DAY)
    project.ids = sorted(r["id"] for r in _predictions(project, DAY))  # the entities of DAY
    first = materialize(cfg, catalog, "demo", store)
    project.first = first
    return project


def _score(spark: Any, project: SimpleNamespace, day: date, scoring: dict[str, Any] | None = None) -> Any:
    cfg = project.cfg.copy()
    cfg.run_date = day.isoformat()
    cfg.model.scoring = scoring or {}
    return score(spark, cfg, project.catalog, _lineage("score"))


def _predictions(project: SimpleNamespace, day: date, served_only: bool = True) -> list[dict[str, Any]]:
    rows = arrow_dataset(project.catalog, "predictions.demo_model").to_table().to_pylist()
    return [r for r in rows if r["run_date"] == day and (r["served"] or not served_only)]


def _client(project: SimpleNamespace, scoring: dict[str, Any] | None = None, **kwargs: Any) -> TestClient:
    cfg = project.cfg.copy()
    cfg.model.scoring = scoring or {}
    app = create_app(cfg, project.catalog, "demo_model", project.store, project.client, **kwargs)
    return TestClient(app)


def test_materialize_keeps_the_latest_row_per_entity_and_reads_only_new_files(
    spark: Any, project: SimpleNamespace
) -> None:
    first = project.first
    assert first.full and first.entities == first.entities_written == 72 and first.rows_read == 72
    again = materialize(project.cfg, project.catalog, "demo", project.store)
    assert again.files_read == 0 and again.entities == 72
    assert "already materialized" in again.describe()

    _score(spark, project, DAY - timedelta(days=1))  # builds another date's features partition
    more = materialize(project.cfg, project.catalog, "demo", project.store)
    assert not more.full and more.previous_version == first.version and more.version > first.version
    assert more.rows_read == 72 and more.entities_written == 72 and more.entities == 144
    assert f"since v{first.version}" in more.describe()

    full = materialize(project.cfg, project.catalog, "demo", project.store, full=True)
    assert full.full and full.entities == full.rows_read >= 144


def test_latest_per_entity_keeps_the_newest_row_and_drops_null_keys() -> None:
    import pyarrow as pa

    rows = pa.table(
        {
            "k": pa.array([1, 1, 2, None, 2], pa.int64()),
            "t": pa.array([3, 5, 1, 9, 0], pa.int64()),
            "x": pa.array([0.3, 0.5, 0.1, 0.9, 0.0]),
        }
    )
    latest, dropped = latest_per_entity(rows, ["k"], "t")
    assert dropped == 1
    assert sorted(zip(latest.column("k").to_pylist(), latest.column("x").to_pylist(), strict=True)) == [
        (1, 0.5),
        (2, 0.1),
    ]


def test_online_answers_equal_the_batch_prediction_rows(project: SimpleNamespace) -> None:
    batch = {r["id"]: r for r in _predictions(project, DAY)}
    with _client(project) as client:
        answer = client.post("/predict", json={"entities": [{"id": i} for i in sorted(batch)]})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model"] == {"name": "demo_model", "alias": "champion", "version": 1, "run_id": project.v1.run_id}
    assert len(body["predictions"]) == 72
    for got in body["predictions"]:
        want = batch[got["entity"]["id"]]
        assert got["score"] == want["score"]  # bit for bit: the same matrix, the same predict call
        assert got["prediction"] == want["prediction"]
        assert got["reasons"] == want["reasons"] and got["reasons_method"] == want["reasons_method"] == "path"
        assert got["model_version"] == 1 and got["model_alias"] == "champion"
        assert got["event_time"].startswith(want["t"].isoformat()[:19])


def test_the_redis_store_serves_the_same_answers(project: SimpleNamespace, redis_url: str) -> None:  # noqa: F811
    from lakeforge.serving.store_redis import RedisStore

    store = RedisStore(redis_url)
    done = materialize(project.cfg, project.catalog, "demo", store)
    assert done.full and done.entities == done.entities_written >= 72 and done.store == redis_url
    assert materialize(project.cfg, project.catalog, "demo", store).files_read == 0  # incremental here too
    batch = {r["id"]: r for r in _predictions(project, DAY)}
    cfg = project.cfg.copy()
    cfg.model.scoring = {}
    app = create_app(cfg, project.catalog, "demo_model", store, project.client, log_predictions=False)
    with TestClient(app) as client:
        answer = client.post("/predict", json={"entities": [{"id": i} for i in sorted(batch)]})
    assert answer.status_code == 200, answer.text
    for got in answer.json()["predictions"]:
        want = batch[got["entity"]["id"]]
        assert (got["score"], got["reasons"]) == (want["score"], want["reasons"])


def test_feature_values_sent_in_the_request_score_like_the_batch(project: SimpleNamespace) -> None:
    features = arrow_dataset(project.catalog, "features.demo").to_table().to_pylist()
    rows = [r for r in features if r["event_date"] == DAY][:10]
    batch = {r["id"]: r for r in _predictions(project, DAY)}
    payload = [{"hour_of_day": r["hour_of_day"], "key": r["key"], "n_1d": r["n_1d"]} for r in rows]
    with _client(project) as client:
        answer = client.post("/predict", json={"features": payload})
    assert answer.status_code == 200, answer.text
    for row, got in zip(rows, answer.json()["predictions"], strict=True):
        assert got["entity"] is None and got["score"] == batch[row["id"]]["score"]


def test_the_canary_serves_the_same_entities_as_batch(spark: Any, project: SimpleNamespace) -> None:
    scoring = {"canary": {"alias": "challenger", "fraction": 0.3}}
    _score(spark, project, DAY, scoring)
    batch = {r["id"]: r for r in _predictions(project, DAY)}  # the served row per entity
    with _client(project, scoring) as client:
        answer = client.post("/predict", json={"entities": [{"id": i} for i in sorted(batch)]})
    assert answer.status_code == 200, answer.text
    canary = set()
    for got in answer.json()["predictions"]:
        want = batch[got["entity"]["id"]]
        assert (got["model_alias"], got["model_version"], got["score"]) == (
            want["model_alias"],
            want["model_version"],
            want["score"],
        )
        if got["model_alias"] == "challenger":
            canary.add(got["entity"]["id"])
    assert canary == {i for i in batch if bucket([i], "canary") < 0.3} and 0 < len(canary) < 72
    _score(spark, project, DAY)  # back to the champion alone for the other tests


BAD_REQUESTS = [
    ("not json", 400, "not valid JSON"),
    ('["a list"]', 422, "expected a JSON object"),
    ("{}", 422, "exactly one of 'entities'"),
    ('{"entities": [{"id": 3}], "features": []}', 422, "exactly one of"),
    ('{"rows": []}', 422, "unknown field"),
    ('{"entities": []}', 422, "no rows"),
    ('{"entities": [{"id": "three"}]}', 422, "entities[0].id: expected an integer, got string 'three'"),
    ('{"entities": [{"id": true}]}', 422, "expected an integer, got boolean"),
    ('{"entities": [{"key": 1}]}', 422, "unknown field(s) key"),
    ('{"entities": [{}]}', 422, "missing entity key(s) id"),
    ('{"entities": [{"id": 99999999}]}', 404, "1 entity not in the online store (id=99999999)"),
    ('{"entities": [{"id": [1]}]}', 422, "entities.0.id"),
    ('{"features": [{"hour_of_day": 1, "key": 0}]}', 422, "missing feature(s) n_1d"),
    ('{"features": [{"hour_of_day": "1", "key": 0, "n_1d": 2}]}', 422, "hour_of_day: expected a number or null"),
    ('{"features": [{"hour_of_day": 1, "key": 0, "n_1d": 2, "extra": 1}]}', 422, "unknown field(s) extra"),
]


def test_a_bad_request_gets_a_4xx_that_says_what_is_wrong(project: SimpleNamespace) -> None:
    # One server takes every bad request in turn, and stays up after each.
    with _client(project, log_predictions=False) as client:
        for body, status, message in BAD_REQUESTS:
            answer = client.post("/predict", content=body, headers={"content-type": "application/json"})
            assert answer.status_code == status, (body, answer.text)
            assert message in answer.json()["error"], (body, answer.json())
            assert client.get("/health").json() == {"status": "ok"}


def test_an_oversized_batch_is_refused(project: SimpleNamespace) -> None:
    with _client(project, log_predictions=False) as client:
        answer = client.post("/predict", json={"entities": [{"id": i} for i in range(101)]})
    assert answer.status_code == 413 and "at most 100 (online.serve.max_batch_rows)" in answer.json()["error"]


def test_ready_and_metadata_describe_what_is_served(project: SimpleNamespace) -> None:
    with _client(project, log_predictions=False) as client:
        assert client.get("/ready").json() == {"ready": True}
        meta = client.get("/metadata").json()
    assert meta["aliases"]["champion"]["version"] == 1 and meta["features"] == ["hour_of_day", "key", "n_1d"]
    assert meta["entity"] == ["id"] and meta["online_store"]["entities"] >= 72
    assert meta["reasons"] == {"method": "path", "top_k": 5}


def test_moving_the_alias_swaps_the_model_without_failing_a_request(project: SimpleNamespace) -> None:
    statuses: list[int] = []
    versions: list[int] = []
    seen: dict[int, list[int]] = {0: [], 1: []}  # per worker, in the order it got its answers
    stop = threading.Event()
    with _client(project, log_predictions=False) as client:

        def load(worker: int) -> None:
            while not stop.is_set():
                answer = client.post("/predict", json={"entities": [{"id": i} for i in project.ids[:2]]})
                statuses.append(answer.status_code)
                if answer.status_code == 200:
                    version = answer.json()["model"]["version"]
                    versions.append(version)
                    seen[worker].append(version)

        workers = [threading.Thread(target=load, args=(w,)) for w in range(2)]
        for w in workers:
            w.start()
        try:
            time.sleep(0.5)
            promote_by_hand(project.cfg, "demo_model", "2", "test: hot swap")
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and (not versions or versions[-1] != 2):
                time.sleep(0.1)
            time.sleep(0.3)
        finally:
            stop.set()
            for w in workers:
                w.join()
            promote_by_hand(project.cfg, "demo_model", "1", "test: back")
        swaps = client.app.state.lakeforge.models.swaps  # type: ignore[attr-defined]
    assert statuses and set(statuses) == {200}
    assert versions[0] == 1 and versions[-1] == 2 and swaps >= 1
    assert all(s == sorted(s) for s in seen.values())  # once a worker saw the new version, never the old


def test_every_served_prediction_is_logged_to_delta(project: SimpleNamespace) -> None:
    def logged() -> list[dict[str, Any]]:
        if not project.catalog.exists(ONLINE):
            return []
        return arrow_dataset(project.catalog, ONLINE).to_table().to_pylist()

    before = len(logged())
    with _client(project) as client:
        single = project.ids[:10]
        ids = [client.post("/predict", json={"entities": [{"id": i}]}).json()["request_id"] for i in single]
        batch = client.post("/predict", json={"entities": [{"id": i} for i in project.ids[10:70]]})
        assert batch.status_code == 200
    rows = logged()
    assert len(rows) == before + 70
    mine = [r for r in rows if r["request_id"] in set(ids)]
    assert sorted(r["id"] for r in mine) == single
    row = mine[0]
    assert row["model_name"] == "demo_model" and row["model_version"] == 1 and row["served"]
    assert set(json.loads(row["features"])) == {"hour_of_day", "key", "n_1d"} and row["latency_ms"] > 0
    assert row["request_date"] == row["requested_at"].date() and row["t"] is not None


def test_the_champion_exported_to_onnx_serves_the_batch_scores(project: SimpleNamespace) -> None:
    from lakeforge.serving.onnx import OnnxModel, export_onnx

    out = project.tmp / "exports" / "demo_model.onnx"
    done = export_onnx(project.client, project.catalog, project.cfg.model, None, "champion", out, project.tmp)
    assert (done.version, done.path) == (1, out) and out.is_file()
    # Checked on every row of features.demo (fewer than the 10,000 rows of the sample).
    assert done.parity.rows == arrow_dataset(project.catalog, "features.demo").count_rows() >= 72
    assert done.parity.max_abs_diff < 1e-5
    assert f"over {done.parity.rows} rows of features.demo (limit 1e-05)" in done.describe()
    meta = OnnxModel(out.read_bytes(), "classification").metadata
    assert json.loads(meta["lakeforge.features"]) == ["hour_of_day", "key", "n_1d"]
    assert (meta["lakeforge.model"], meta["lakeforge.version"], meta["lakeforge.run_id"]) == (
        "demo_model",
        "1",
        project.v1.run_id,
    )
    tags = project.client.get_model_version("demo_model", "1").tags
    assert float(tags["lakeforge.onnx.parity_max_abs_diff"]) == done.parity.max_abs_diff

    # `serve --runtime onnx` loads that file from the version's run and scores with onnxruntime:
    # the batch's scores, and the reasons the native model gives by occlusion.
    batch = {r["id"]: r for r in _predictions(project, DAY)}
    request = {"entities": [{"id": i} for i in sorted(batch)]}
    with _client(project, log_predictions=False, runtime="onnx") as client:
        answer = client.post("/predict", json=request)
        meta = client.get("/metadata").json()
    with _client(project, {"reasons": {"method": "occlusion"}}, log_predictions=False) as client:
        native = {p["entity"]["id"]: p for p in client.post("/predict", json=request).json()["predictions"]}
    assert answer.status_code == 200, answer.text
    assert meta["runtime"] == "onnx" and meta["reasons"]["method"] == "occlusion"
    explained = 0
    for got in answer.json()["predictions"]:
        want = batch[got["entity"]["id"]]
        assert abs(got["score"] - want["score"]) < 1e-5 and got["prediction"] == want["prediction"]
        reasons = native[got["entity"]["id"]]["reasons"]
        assert got["reasons_method"] == "occlusion" and len(got["reasons"]) == len(reasons)
        for mine, theirs in zip(got["reasons"], reasons, strict=True):
            assert mine["feature"] == theirs["feature"]
            assert abs(mine["contribution"] - theirs["contribution"]) < 1e-5
        explained += bool(reasons)
    assert explained > 36  # most rows have a feature whose absence moves the score


def test_serving_a_version_with_no_onnx_export_says_how_to_make_one(project: SimpleNamespace) -> None:
    from lakeforge.errors import ModelExportError

    expected = r"demo_model v2 \(alias challenger\) has no ONNX export; run `lakeforge export demo_model --version 2"
    with pytest.raises(ModelExportError, match=expected):
        _client(project, alias="challenger", log_predictions=False, runtime="onnx")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_real_uvicorn_server_on_loopback_answers(project: SimpleNamespace) -> None:
    import httpx
    import uvicorn

    cfg = project.cfg.copy()
    cfg.model.scoring = {}
    app = create_app(cfg, project.catalog, "demo_model", project.store, project.client, log_predictions=False)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host=str(cfg.online.serve.host), port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        answer = httpx.post(f"http://127.0.0.1:{port}/predict", json={"entities": [{"id": project.ids[0]}]}, timeout=10)
        assert answer.status_code == 200 and answer.json()["predictions"][0]["entity"] == {"id": project.ids[0]}
        spec = httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=10).json()
        assert "/predict" in spec["paths"]
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_the_committed_openapi_spec_is_the_served_one(project: SimpleNamespace) -> None:
    with _client(project, log_predictions=False) as client:
        served = client.get("/openapi.json").json()
    served["info"]["title"] = "lakeforge: MODEL"
    committed = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
    text = json.dumps(served, indent=2, sort_keys=True) + "\n"
    if os.environ.get("LAKEFORGE_WRITE_OPENAPI") == "1":
        committed.write_text(text)
    if not committed.exists() or committed.read_text() != text:
        pytest.fail(
            "docs/openapi.json is not the served spec; rewrite it with LAKEFORGE_WRITE_OPENAPI=1 pytest -k openapi"
        )
