"""The MLflow tracking store of a project: one explicit URI per process, the experiment with its
artifact root, and a file lock around a SQLite store's first use.

Why each step (measured, docs/design/training.md §1):

- MLflow's fluent API (``start_run``, ``load_model``, ``spark_udf``) uses the process-wide URI;
  without one it silently creates ``./mlflow.db``, so ``connect`` always sets it.
- An experiment created without ``artifact_location`` puts artifacts in ``<cwd>/mlruns``.
- The first use of a missing SQLite store runs MLflow's schema migrations; several processes doing
  that at once (a sweep, two Airflow tasks) left the file half-migrated and unusable. The first
  access happens under ``fcntl.flock`` on ``<db>.lock``; a ``<db>.ready`` marker lets later
  processes skip the lock.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lakeforge.config.compose import resolve_path
from lakeforge.config.secrets import mask_credentials
from lakeforge.errors import EnvironmentSetupError, TransientError

# tqdm bars from artifact downloads would garble job logs.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

SQLITE = "sqlite:///"


@dataclass(frozen=True)
class Tracking:
    """A connected store: the client and the experiment runs of this pipeline go to."""

    client: Any  # mlflow.MlflowClient
    uri: str
    experiment_id: str
    experiment_name: str
    artifact_location: str


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:////abs/path.db`` URI (None for other stores)."""
    return Path(uri.removeprefix(SQLITE)) if uri.startswith(SQLITE) else None


@contextmanager
def _first_use_lock(uri: str) -> Iterator[None]:
    """Hold an exclusive lock next to a SQLite store until it is migrated (no-op afterwards)."""
    db = sqlite_path(uri)
    if db is None or (db.exists() and db.with_name(db.name + ".ready").exists()):
        yield
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
            db.with_name(db.name + ".ready").touch()
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _experiment(client: Any, name: str, artifact_location: str) -> str:
    """The experiment's id, created with its artifact root when missing (a lost creation race is fine)."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    try:
        return str(client.create_experiment(name, artifact_location=artifact_location))
    except MlflowException as exc:
        if getattr(exc, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
            raise
        return str(client.get_experiment_by_name(name).experiment_id)


PROBE_TIMEOUT = 5.0


def probe_health(uri: str, timeout: float = PROBE_TIMEOUT) -> int:
    """The HTTP status of an MLflow server's ``/health``, asked once within ``timeout`` seconds.

    Credentials in ``uri`` are left out of the request (they are for MLflow's client). Raises
    ``OSError`` (``urllib.error.URLError`` included) when the server does not answer.
    """
    import urllib.error
    import urllib.parse
    import urllib.request

    parts = urllib.parse.urlsplit(uri)
    host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else parts.hostname
    netloc = f"{host}:{parts.port}" if parts.port else str(host)
    probe = urllib.parse.urlunsplit((parts.scheme, netloc, f"{parts.path.rstrip('/')}/health", "", ""))
    try:
        with urllib.request.urlopen(probe, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def require_reachable(cfg: Any) -> None:
    """Fail fast, before any work, when the configured MLflow server does not answer.

    A tracking server that is down would otherwise cost the whole step and then minutes of MLflow's
    own HTTP retries (7, with exponential backoff). Asks ``/health`` once (``probe_health``); a
    local store (SQLite, files) needs no probe. Any answer will do: MLflow's own calls give the
    precise error. Raises a TransientError (exit 75: Airflow retries it) naming the server, with
    credentials in its URI masked.
    """
    uri = resolve_path(cfg, str(cfg.tracking.uri))
    if not uri.startswith(("http://", "https://")):
        return
    try:
        probe_health(uri)
    except OSError as exc:
        reason = mask_credentials(str(getattr(exc, "reason", exc)))
        raise TransientError(
            f"MLflow tracking server {mask_credentials(uri)} is unreachable ({reason}); nothing was logged. "
            "Start it (`mlflow server --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1`) or fix "
            "tracking.uri (conf/tracking/), then rerun"
        ) from None


def connect(cfg: Any) -> Tracking:
    """Point MLflow at the configured store and return the pipeline's experiment.

    Errors: a store that can't be reached or is busy is a TransientError (retryable, exit 75);
    one that can't be opened at all (a broken file, a bad URI) an EnvironmentSetupError naming it.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    require_reachable(cfg)
    uri = resolve_path(cfg, str(cfg.tracking.uri))
    registry = resolve_path(cfg, str(cfg.tracking.registry_uri)) if cfg.tracking.get("registry_uri") else uri
    pipeline = str(cfg.pipeline.name) if cfg.get("pipeline") is not None else "default"
    name = f"{cfg.tracking.get('experiment_prefix') or 'lakeforge'}/{pipeline}"
    root = resolve_path(cfg, str(cfg.tracking.artifact_location))
    artifact_location = f"{root.rstrip('/')}/{pipeline}"
    try:
        # Setting the registry URI and creating the client already open (and migrate) the store.
        with _first_use_lock(uri):
            mlflow.set_tracking_uri(uri)
            mlflow.set_registry_uri(registry)
            client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=registry)
            experiment_id = _experiment(client, name, artifact_location)
    except MlflowException as exc:
        # A server's URI may carry credentials (https://user:token@host, from ${oc.env:…}): never shown.
        shown, detail = mask_credentials(uri), mask_credentials(str(exc).splitlines()[0])
        if getattr(exc, "error_code", "") == "TEMPORARILY_UNAVAILABLE":
            raise TransientError(f"MLflow tracking store {shown} is busy or unreachable: {detail}; retry") from exc
        raise EnvironmentSetupError(
            f"MLflow tracking store {shown} cannot be used: {detail}; check tracking.uri "
            "(conf/tracking/), or move a broken SQLite file aside so it is recreated"
        ) from exc
    except Exception as exc:  # SQLAlchemy/alembic errors on a broken file surface as themselves
        raise EnvironmentSetupError(
            f"MLflow tracking store {mask_credentials(uri)} cannot be opened: {type(exc).__name__}: "
            f"{mask_credentials(str(exc).splitlines()[0])}; move the file aside so it is recreated, or fix tracking.uri"
        ) from exc
    return Tracking(client, uri, experiment_id, name, artifact_location)
