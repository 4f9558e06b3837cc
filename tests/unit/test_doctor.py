"""`lakeforge doctor`'s checks one by one, on real files, folders and sockets (no JVM: Spark's start is
tested end to end in tests/e2e/test_doctor.py)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from lakeforge.pipeline.doctor import (
    check_airflow,
    check_dvc,
    check_java,
    check_lake,
    check_mlflow,
    run_checks,
)


def _cfg(tmp_path: Path, lake_root: str = "lake", uri: str = "sqlite:///mlflow.db") -> Any:
    return OmegaConf.create(
        {
            "storage": {"kind": "local", "lake_root": lake_root, "options": {}},
            "tracking": {"uri": uri, "artifact_location": "mlartifacts"},
            "project_root": str(tmp_path),
        }
    )


def test_java_found_and_java_home_pointing_nowhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    found = check_java()
    assert found.ok and found.detail.startswith("Java "), found
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "nowhere"))
    broken = check_java()
    assert not broken.ok
    assert broken.detail == f"JAVA_HOME={tmp_path / 'nowhere'} has no bin/java"
    assert "point JAVA_HOME at a Java 17+ installation" in broken.fix and "unset it" in broken.fix


def test_lake_root_writable_created_later_or_not_writable(tmp_path: Path) -> None:
    (tmp_path / "lake").mkdir()
    assert check_lake(_cfg(tmp_path)).detail == f"lake root {tmp_path / 'lake'} is writable (0 table(s))"
    later = check_lake(_cfg(tmp_path, "new/lake"))
    assert later.ok and "created by the first write" in later.detail
    (tmp_path / "afile").write_text("x")
    broken = check_lake(_cfg(tmp_path, "afile/lake"))
    assert not broken.ok
    assert f"'{tmp_path / 'afile'}' is a file, not a folder" in broken.detail
    assert "point storage.lake_root (conf/storage/) at a folder you can write" in broken.fix
    assert check_lake(_cfg(tmp_path, "s3://bucket/lake")).detail.endswith("(object store: not probed)")
    assert list((tmp_path / "lake").iterdir()) == []  # the probe file is gone


def test_mlflow_sqlite_store(tmp_path: Path) -> None:
    assert check_mlflow(_cfg(tmp_path)).detail == f"{tmp_path / 'mlflow.db'} (created by the first run)"
    db = tmp_path / "mlflow.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE alembic_version (version_num TEXT)")
        conn.execute("INSERT INTO alembic_version VALUES ('abc123')")
    assert check_mlflow(_cfg(tmp_path)).detail == f"{db} (MLflow schema abc123)"
    db.write_bytes(b"not a database, just bytes " * 100)
    broken = check_mlflow(_cfg(tmp_path))
    assert not broken.ok and "is not a usable MLflow store" in broken.detail
    assert broken.fix == f"move {db} aside (it is recreated at the next run) or fix tracking.uri"


@pytest.fixture
def health_server() -> Iterator[str]:
    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_mlflow_server_answering_or_not(tmp_path: Path, health_server: str) -> None:
    assert check_mlflow(_cfg(tmp_path, uri=health_server)).ok
    # Credentials in the URI are for MLflow's client: the probe leaves them out, the report masks them.
    with_user = health_server.replace("http://", "http://ops:s3cret@")
    answered = check_mlflow(_cfg(tmp_path, uri=with_user))
    assert answered.ok and "s3cret" not in answered.detail and "HTTP 200" in answered.detail
    closed = HTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = closed.server_port
    closed.server_close()  # nothing listens there now
    down = check_mlflow(_cfg(tmp_path, uri=f"http://127.0.0.1:{port}"), timeout=2)
    assert not down.ok and f"MLflow server http://127.0.0.1:{port} does not answer" in down.detail
    assert "mlflow server" in down.fix


def test_dvc_repository(tmp_path: Path) -> None:
    missing = check_dvc(tmp_path)
    assert not missing.ok and missing.fix.startswith(f"run `dvc init` in {tmp_path}")
    (tmp_path / ".dvc").mkdir()
    (tmp_path / "project").mkdir()
    found = check_dvc(tmp_path / "project")
    assert found.ok and found.detail == f"DVC repository {tmp_path} (no dvc.yaml yet)"


def test_airflow_home_and_dags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW__CORE__DAGS_FOLDER", raising=False)
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow"))
    no_dags = check_airflow(tmp_path)
    assert not no_dags.ok and no_dags.detail == f"no DAG file in {tmp_path / 'dags'}"
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags" / "lakeforge_dags.py").write_text("")
    assert check_airflow(tmp_path).ok
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", "/somewhere/else")
    elsewhere = check_airflow(tmp_path)
    assert not elsewhere.ok and elsewhere.fix == f"export AIRFLOW__CORE__DAGS_FOLDER={tmp_path / 'dags'}"
    monkeypatch.delenv("AIRFLOW__CORE__DAGS_FOLDER")
    (tmp_path / "afile").write_text("x")
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "afile" / "airflow"))
    broken = check_airflow(tmp_path)
    assert not broken.ok and "AIRFLOW_HOME" in broken.detail and "export AIRFLOW_HOME=" in broken.fix


def test_run_checks_skips_spark_without_java_and_reports_a_broken_conf(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "conf"
    (conf / "storage").mkdir(parents=True)
    (conf / "config.yaml").write_text("defaults:\n  - lakeforge_schema\n  - storage: local\n  - _self_\n")
    (conf / "storage" / "local.yaml").write_text("defaults:\n  - schema\n  - _self_\nkind: local\nlake_root: lake\n")
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "nowhere"))
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow"))
    checks = run_checks(conf, ["tracking.uri=sqlite:///mlflow.db", "tracking.artifact_location=mlartifacts"])
    by_name = {c.name: c for c in checks}
    assert list(by_name) == ["java", "spark", "lake", "mlflow", "dvc", "airflow"]
    assert by_name["spark"].detail == "not started: it needs Java" and by_name["lake"].ok
    (conf / "storage" / "local.yaml").write_text("defaults:\n  - schema\n  - _self_\nkind: local\nlake_rot: lake\n")
    broken = run_checks(conf)
    assert [c.name for c in broken] == ["java", "conf"]
    assert "lake_rot" in broken[1].detail and broken[1].fix == "`lakeforge check` lists every problem"
