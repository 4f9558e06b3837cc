"""`lakeforge serve MODEL`: the champion behind an HTTP API, scoring exactly as batch scoring does.

``POST /predict`` takes up to ``online.serve.max_batch_rows`` rows, either entity keys
(``{"entities": [{"carrier": "UA", "flight": 1545, "origin": "EWR"}]}``: the entity's latest
feature row is read from the online store, `lakeforge materialize` fills it) or feature values
(``{"features": [{"dep_delay_7d": 3.5, …}]}``, optionally with the entity keys for the canary
and the log). The rows are scored by the same `lakeforge.scoring.predict.Scorer` batch scoring
runs on its executors: the same float64 matrix, the same predict call, the same reasons, the same
score validation; so for a row the store holds, the answer equals the row of
``predictions.<model>`` scored from the same feature row.

The canary (``model.scoring.canary``) serves the same stable-hash share of entities as in batch;
the exact-reasons sample is the same too. The served versions follow the registry: a poller
checks the aliases every ``alias_poll_s`` seconds and swaps a moved alias in without dropping a
request (`lakeforge.serving.models`). Every served row is logged to
``predictions.<model>__online`` (`lakeforge.serving.log`).

Errors are 4xx with a message that says what to change: body not JSON (400), unknown or mistyped
fields (422), too many rows (413), an entity the store does not hold (404), a row missing a
required feature (422). A model failure is a 500 naming the model version; the server keeps running.
"""

from __future__ import annotations

import gc
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from lakeforge.errors import FeatureError
from lakeforge.features.spec import FeatureSetSpec
from lakeforge.lake.catalog import Catalog
from lakeforge.scoring.hashing import bucket
from lakeforge.scoring.model import composed_model
from lakeforge.scoring.predict import EXACT
from lakeforge.scoring.tasks import CANARY_SALT, EXACT_SALT
from lakeforge.serving.log import REQUEST_DATE, OnlineLog, features_json, log_schema
from lakeforge.serving.models import Models, Poller, Served, ServedSet
from lakeforge.serving.store import OnlineStore

log = logging.getLogger(__name__)

Scalar = str | int | float | bool | None
INLINE_ROWS = 8  # requests of at most this many rows are scored on the event loop
# Loopback unless `--host` or online.serve.host says otherwise (a deployment behind a proxy sets 0.0.0.0).
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def bind_address(serve_cfg: Any, host: str | None = None, port: int | None = None) -> tuple[str, int]:
    """Where ``lakeforge serve`` listens: ``--host``/``--port``, else online.serve's, else 127.0.0.1:8000."""
    serve_cfg = serve_cfg if serve_cfg is not None else {}
    if port is None:
        port = serve_cfg.get("port")
    return str(host or serve_cfg.get("host") or DEFAULT_HOST), int(port if port is not None else DEFAULT_PORT)


class PredictRequest(BaseModel):
    """Rows to score: entity keys (features from the online store) or feature values; one of the two."""

    model_config = ConfigDict(extra="forbid")

    entities: list[dict[str, Scalar]] | None = Field(
        default=None, description="Entity keys, e.g. {'carrier': 'UA', 'flight': 1545, 'origin': 'EWR'}"
    )
    features: list[dict[str, Scalar]] | None = Field(
        default=None, description="Every model feature by name (null for missing), optionally the entity keys"
    )


class Reason(BaseModel):
    feature: str
    contribution: float


class Prediction(BaseModel):
    entity: dict[str, Scalar] | None = Field(description="The entity keys (null for feature rows without them)")
    event_time: str | None = Field(description="The event time of the feature row used (entity requests)")
    score: float | None = Field(description="P(positive) for classification; null for regression")
    prediction: float | int
    reasons: list[Reason] | None
    reasons_method: str
    model_alias: str
    model_version: int


class ModelInfo(BaseModel):
    name: str
    alias: str
    version: int
    run_id: str


class PredictResponse(BaseModel):
    request_id: str
    model: ModelInfo = Field(description="The serving alias's version (canary rows name theirs in model_alias)")
    predictions: list[Prediction]


class HttpError(Exception):
    """A request the server refuses, with its status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class ServerState:
    """What the handlers share: the models, the store, the feature set, the log."""

    models: Models
    poller: Poller
    store: OnlineStore
    spec: FeatureSetSpec
    required: tuple[str, ...]
    max_rows: int
    exact_fraction: float
    online_log: OnlineLog | None
    key_schema: pa.Schema | None = None  # the entity keys and event time as the store types them


def _key_schema(state: ServerState) -> pa.Schema:
    if state.key_schema is None:
        try:
            stored = state.store.state(state.spec.name)
        except Exception as exc:  # e.g. Redis unreachable
            raise HttpError(503, f"the online store {state.store.path} cannot be read: {exc}") from exc
        if stored is None:
            raise HttpError(
                503,
                f"the online store holds nothing of feature set '{state.spec.name}'; "
                f"run `lakeforge materialize {state.spec.name}`",
            )
        state.key_schema = pa.schema([stored.schema.field(k) for k in (*state.spec.entity, state.spec.event_time)])
    return state.key_schema


def _check_key(name: str, value: Any, field: pa.Field, row: int) -> Any:
    t = field.type
    ok = (
        (pa.types.is_integer(t) and isinstance(value, int) and not isinstance(value, bool))
        or (pa.types.is_string(t) and isinstance(value, str))
        or (pa.types.is_floating(t) and isinstance(value, int | float) and not isinstance(value, bool))
    )
    if not ok:
        kind = "an integer" if pa.types.is_integer(t) else "a string" if pa.types.is_string(t) else str(t)
        raise HttpError(422, f"entities[{row}].{name}: expected {kind}, got {json_type(value)} {value!r}")
    return value


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string"


def _keys_of(rows: Sequence[dict[str, Any]], keys: Sequence[str], schema: pa.Schema, where: str) -> list[tuple]:
    out = []
    for i, row in enumerate(rows):
        absent = [k for k in keys if k not in row]
        if absent:
            raise HttpError(422, f"{where}[{i}]: missing entity key(s) {', '.join(absent)}; keys are {', '.join(keys)}")
        out.append(tuple(_check_key(k, row[k], schema.field(k), i) for k in keys))
    return out


def _entity_batch(state: ServerState, rows: list[dict[str, Any]]) -> pa.Table:
    keys = list(state.spec.entity)
    schema = _key_schema(state)
    for i, row in enumerate(rows):
        extra = [k for k in row if k not in keys]
        if extra:
            raise HttpError(
                422,
                f"entities[{i}]: unknown field(s) {', '.join(extra)}; an entity is its keys {', '.join(keys)} "
                "(send feature values under 'features')",
            )
    wanted = _keys_of(rows, keys, schema, "entities")
    try:
        found, unknown = state.store.lookup(state.spec.name, wanted)
    except FeatureError as exc:  # nothing materialized (yet)
        raise HttpError(503, str(exc)) from exc
    except Exception as exc:  # the store is unreachable (Redis down, file gone): say so, keep serving
        raise HttpError(
            503, f"the online store {state.store.path} cannot be read: {type(exc).__name__}: {exc}"
        ) from exc
    if unknown:
        shown = "; ".join(", ".join(f"{k}={v!r}" for k, v in zip(keys, wanted[i], strict=True)) for i in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise HttpError(
            404,
            f"{len(unknown)} entit{'y' if len(unknown) == 1 else 'ies'} not in the online store ({shown}{more}); "
            f"the store holds the entities of features.{state.spec.name} as of its last `lakeforge materialize`",
        )
    return found


def _feature_batch(state: ServerState, served: ServedSet, rows: list[dict[str, Any]]) -> tuple[pa.Table, bool]:
    """Feature rows as a table of float64 feature columns (and the keys when every row has them)."""
    features = list(dict.fromkeys(f for s in _all(served) for f in s.model.features))
    keys = list(state.spec.entity)
    allowed = set(features) | set(keys)
    for i, row in enumerate(rows):
        extra = [k for k in row if k not in allowed]
        if extra:
            raise HttpError(
                422,
                f"features[{i}]: unknown field(s) {', '.join(extra)}; the model's features are {', '.join(features)}",
            )
        absent = [f for f in features if f not in row]
        if absent:
            raise HttpError(
                422, f"features[{i}]: missing feature(s) {', '.join(absent)} (send null for a missing value)"
            )
        for f in features:
            value = row[f]
            if value is not None and (
                isinstance(value, str) or (isinstance(value, float) and not math.isfinite(value))
            ):
                raise HttpError(422, f"features[{i}].{f}: expected a number or null, got {json_type(value)} {value!r}")
    columns: dict[str, pa.Array] = {
        f: pa.array([None if r[f] is None else float(r[f]) for r in rows], pa.float64()) for f in features
    }
    with_keys = all(k in row for row in rows for k in keys)
    partial = [i for i, row in enumerate(rows) if any(k in row for k in keys) and not all(k in row for k in keys)]
    if partial:
        raise HttpError(422, f"features[{partial[0]}]: give all entity keys ({', '.join(keys)}) or none")
    if with_keys:
        schema = _key_schema(state)
        values = _keys_of(rows, keys, schema, "features")
        for j, k in enumerate(keys):
            columns[k] = pa.array([v[j] for v in values], schema.field(k).type)
    return pa.table(columns), with_keys


def _all(served: ServedSet) -> list[Served]:
    return [served.serving] + ([served.canary] if served.canary is not None else [])


def _check_required(state: ServerState, table: pa.Table, where: str) -> None:
    for name in state.required:
        if name not in table.column_names:
            continue
        nulls = [i for i, v in enumerate(table.column(name).to_pylist()) if v is None]
        if nulls:
            raise HttpError(
                422,
                f"{where}[{nulls[0]}]: required feature {name} is null (model.scoring.required_features); "
                "batch scoring gives such a row no prediction either",
            )


def score_rows(state: ServerState, body: PredictRequest) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Score a request; returns the response and the rows to log."""
    started = time.perf_counter()
    if (body.entities is None) == (body.features is None):
        raise HttpError(422, "send exactly one of 'entities' (keys: features from the online store) or 'features'")
    rows = body.entities if body.entities is not None else body.features
    assert rows is not None
    if not rows:
        raise HttpError(422, "no rows: send at least one")
    if len(rows) > state.max_rows:
        raise HttpError(413, f"{len(rows)} rows in one request; at most {state.max_rows} (online.serve.max_batch_rows)")
    served = state.models.current
    if served is None:
        raise HttpError(503, "no model loaded yet")
    keys = list(state.spec.entity)
    if body.entities is not None:
        table = _entity_batch(state, rows)
        with_keys, where = True, "entities"
    else:
        table, with_keys = _feature_batch(state, served, rows)
        where = "features"
    _check_required(state, table, where)
    n = table.num_rows
    key_values = list(zip(*(table.column(k).to_pylist() for k in keys), strict=True)) if with_keys else []
    canary = np.zeros(n, dtype=bool)
    if served.canary is not None and with_keys:
        canary = np.array([bucket(k, CANARY_SALT) < served.canary_fraction for k in key_values], dtype=bool)
    if state.exact_fraction > 0 and with_keys:
        exact = [bucket(k, EXACT_SALT) < state.exact_fraction for k in key_values]
        table = table.append_column(EXACT, pa.array(exact, pa.bool_()))
    results: list[dict[str, Any] | None] = [None] * n
    for s, mask in ((served.serving, ~canary), (served.canary, canary)):
        if s is None or not mask.any():
            continue
        index = np.flatnonzero(mask)
        part = table.take(pa.array(index))
        scored = _score(s, part)
        for j, i in enumerate(index.tolist()):
            results[i] = {**scored[j], "model_alias": s.alias, "model_version": s.model.version, "_served": s}
    requested_at = datetime.now(UTC)
    latency_ms = (time.perf_counter() - started) * 1000
    request_id = uuid.uuid4().hex
    event_times = table.column(state.spec.event_time).to_pylist() if body.entities is not None else [None] * n
    predictions = []
    logged = []
    plain = (table.drop_columns([EXACT]) if EXACT in table.column_names else table).to_pylist()
    for i, result in enumerate(results):
        assert result is not None
        s = result.pop("_served")
        entity = dict(zip(keys, key_values[i], strict=True)) if with_keys else None
        event_time = event_times[i]
        predictions.append({"entity": entity, "event_time": None if event_time is None else _iso(event_time), **result})
        source = plain[i]
        logged.append(
            {
                "request_id": request_id,
                "requested_at": requested_at,
                **(entity or {}),
                state.spec.event_time: event_time,
                "features": features_json(source, s.model.features),
                "prediction": result["prediction"],
                "score": result["score"],
                "reasons": result["reasons"],
                "reasons_method": result["reasons_method"],
                "model_name": s.model.name,
                "model_alias": s.alias,
                "model_version": s.model.version,
                "model_run_id": s.model.run_id,
                "served": True,
                "latency_ms": latency_ms,
                REQUEST_DATE: requested_at.date(),
            }
        )
    model = served.serving.model
    info = {"name": model.name, "alias": served.serving.alias, "version": model.version, "run_id": model.run_id}
    # A plain dict (the shape of PredictResponse, which documents it): no second validation pass.
    return {"request_id": request_id, "model": info, "predictions": predictions}, logged


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
    return str(value)


def _score(served: Served, table: pa.Table) -> list[dict[str, Any]]:
    scorer = replace(served.scorer, passthrough=())
    batch = table.combine_chunks().to_batches()[0] if table.num_rows else None
    if batch is None:
        return []
    try:
        out = scorer.score_batch(batch)
    except Exception as exc:
        raise HttpError(500, f"{scorer.label} failed on this request: {type(exc).__name__}: {exc}") from exc
    score = out.column("score").to_pylist()
    prediction = out.column("prediction").to_pylist()
    reasons = out.column("reasons").to_pylist()
    methods = out.column("reasons_method").to_pylist()
    return [
        {"score": score[i], "prediction": prediction[i], "reasons": reasons[i], "reasons_method": methods[i]}
        for i in range(out.num_rows)
    ]


def create_app(
    cfg: Any,
    catalog: Catalog,
    model_name: str,
    store: OnlineStore,
    client: Any,
    alias: str | None = None,
    log_predictions: bool = True,
    runtime: str = "native",
) -> FastAPI:
    """The FastAPI app serving ``model_name``; the model loads before the app is returned."""
    from lakeforge.features.build import spec_from_config
    from lakeforge.scoring.job import scoring_config

    model_cfg = composed_model(cfg, model_name)
    scoring = scoring_config(model_cfg)
    spec = spec_from_config(cfg, str(model_cfg.feature_set))
    serve_cfg = cfg.online.serve
    models = Models(client, model_cfg, scoring, alias, runtime)
    models.refresh()
    online_log = None
    if log_predictions:
        state_now = store.state(spec.name)
        if state_now is not None:
            keys = pa.schema([state_now.schema.field(k) for k in (*spec.entity, spec.event_time)])
            online_log = OnlineLog(
                catalog,
                f"predictions.{model_name}__online",
                log_schema(keys, models.task),
                int(serve_cfg.log_flush_rows),
                float(serve_cfg.log_flush_s),
            )
    state = ServerState(
        models=models,
        poller=Poller(models, float(serve_cfg.alias_poll_s)),
        store=store,
        spec=spec,
        required=tuple(str(f) for f in scoring.get("required_features") or []),
        max_rows=int(serve_cfg.max_batch_rows),
        exact_fraction=float(scoring.reasons.exact_fraction or 0.0),
        online_log=online_log,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Everything loaded so far (MLflow, pandas, the model: millions of objects) lives as long as
        # the server: frozen out of the garbage collector, whose full passes over them otherwise
        # pause every request in flight for ~100 ms now and then (the p99 of bench/bench_serve.py).
        gc.collect()
        gc.freeze()
        state.poller.start()
        if state.online_log is not None:
            state.online_log.start()
        try:
            yield
        finally:
            state.poller.stop()
            if state.online_log is not None:
                state.online_log.stop()

    app = FastAPI(
        title=f"lakeforge: {model_name}",
        description="Online predictions of a lakeforge model, scored as batch scoring scores them.",
        version="1",
        lifespan=lifespan,
    )
    app.state.lakeforge = state

    @app.exception_handler(HttpError)
    async def refused(_: Request, exc: HttpError) -> JSONResponse:
        return JSONResponse(status_code=exc.status, content={"error": exc.message})

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        if first.get("type") == "json_invalid":
            return JSONResponse(
                status_code=400, content={"error": f"the request body is not valid JSON: {first.get('msg')}"}
            )
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
        message = first.get("msg", "invalid request")
        if first.get("type") == "extra_forbidden":
            message = "unknown field; send 'entities' or 'features'"
        if first.get("type") == "model_attributes_type":
            message = "expected a JSON object with 'entities' or 'features'"
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        return JSONResponse(status_code=422, content={"error": f"{where}: {message}{more}"})

    @app.post("/predict", response_model=PredictResponse)
    async def predict(body: PredictRequest) -> JSONResponse:
        rows = len(body.entities or body.features or ())
        if rows <= INLINE_ROWS:
            # A few rows score in ~1-2 ms: on the event loop, without a thread hop and the GIL
            # hand-offs between threads that cost more than the scoring (measured in bench/bench_serve.py).
            response, logged = score_rows(state, body)
        else:
            response, logged = await run_in_threadpool(score_rows, state, body)
        if state.online_log is not None:
            state.online_log.add(logged)
        return JSONResponse(content=response)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> JSONResponse:
        problems = []
        if state.models.current is None:
            problems.append("no model loaded")
        if store.state(spec.name) is None:
            problems.append(f"online store holds nothing of '{spec.name}'; run `lakeforge materialize {spec.name}`")
        if problems:
            return JSONResponse(status_code=503, content={"ready": False, "problems": problems})
        return JSONResponse(content={"ready": True})

    @app.get("/metadata")
    async def metadata() -> dict[str, Any]:
        served = state.models.current
        stored = store.state(spec.name)
        return {
            "model": model_name,
            "task": models.task,
            "runtime": models.runtime,
            "aliases": {
                s.alias: {"role": s.role, "version": s.model.version, "run_id": s.model.run_id, "uri": s.model.uri}
                for s in ([] if served is None else _all(served))
            },
            "canary_fraction": None if served is None or served.canary is None else served.canary_fraction,
            "features": [] if served is None else list(served.serving.model.features),
            "reasons": {
                "method": None if served is None else served.serving.scorer.method,
                "top_k": int(models.scoring.reasons.top_k),
            },
            "entity": list(spec.entity),
            "event_time": spec.event_time,
            "feature_set": spec.name,
            "online_store": {
                "path": str(store.path),
                "feature_table_version": None if stored is None else stored.delta_version,
                "entities": None if stored is None else stored.entities,
                "materialized_at": None if stored is None else stored.materialized_at,
            },
            "max_batch_rows": state.max_rows,
            "alias_poll_s": state.poller.interval,
            "alias_swaps": models.swaps,
            "alias_check_error": state.poller.last_error,
            "online_log": None
            if state.online_log is None
            else {
                "table": state.online_log.table,
                "committed_rows": state.online_log.committed_rows,
                "pending_rows": state.online_log.pending(),
                "last_error": state.online_log.last_error,
            },
        }

    return app


def serve(
    cfg: Any,
    catalog: Catalog,
    model_name: str,
    alias: str | None,
    host: str | None,
    port: int | None,
    runtime: str = "native",
) -> None:
    """Run the API with uvicorn until interrupted (bound to ``online.serve.host``, 127.0.0.1 by default)."""
    import uvicorn

    from lakeforge.serving.store import store_from_config
    from lakeforge.tracking.store import connect

    composed_model(cfg, model_name)
    store = store_from_config(cfg)
    app = create_app(cfg, catalog, model_name, store, connect(cfg).client, alias, runtime=runtime)
    bind_host, bind_port = bind_address(cfg.online.get("serve"), host, port)
    uvicorn.run(
        app,
        host=bind_host,
        port=bind_port,
        log_level="info",
        access_log=False,
    )
