"""`lakeforge doctor`: is this machine and project ready to run pipelines? Each check says ok, or
what is wrong and what to do about it.

The checks: Java, a Spark session starting and running a job (in a child process, killed after
``spark_timeout`` seconds), the lake root, the MLflow store, DVC and Airflow's home. None of
them writes anything that stays: a probe file in the lake root is removed, the MLflow store is
only read.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lakeforge.config.secrets import mask_credentials
from lakeforge.errors import LakeforgeError

SPARK_TIMEOUT = 180.0
# The child that starts Spark: compose the lake groups, start a session, run a job, print the facts.
_SPARK_PROBE = """
import json, sys, time
from pathlib import Path
from lakeforge.config import load_lake_config
from lakeforge.lake.spark import get_spark
cfg = load_lake_config(sys.argv[2:], conf_dir=Path(sys.argv[1]))
started = time.perf_counter()
spark = get_spark(cfg.spark)
rows = spark.range(1000).selectExpr("sum(id) AS s").collect()[0]["s"]
print(json.dumps({"version": spark.version, "seconds": time.perf_counter() - started, "sum": rows}))
spark.stop()
"""


@dataclass(frozen=True)
class Check:
    """One check's outcome: ``fix`` says what to do when it is not ok."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


def _tool(name: str) -> str | None:
    """An executable installed next to this Python (the venv), else on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


def check_java() -> Check:
    """Java 17+ where Spark looks for it (JAVA_HOME, else PATH)."""
    from lakeforge.lake.spark import java_version

    java_version.cache_clear()  # JAVA_HOME may have changed since it was asked
    home = os.environ.get("JAVA_HOME")
    if home and not (Path(home) / "bin" / "java").exists():
        return Check(
            "java",
            False,
            f"JAVA_HOME={home} has no bin/java",
            "point JAVA_HOME at a Java 17+ installation (e.g. /usr/lib/jvm/java-17-openjdk-amd64), or unset it "
            "to use the `java` on PATH",
        )
    try:
        major = java_version()
    except LakeforgeError as exc:
        detail, _, fix = str(exc).partition(": ")
        return Check("java", False, detail, fix or str(exc))
    where = f"JAVA_HOME={home}" if home else shutil.which("java") or "PATH"
    return Check("java", True, f"Java {major} ({where})")


def check_spark(conf_dir: Path, overrides: Sequence[str] = (), timeout: float = SPARK_TIMEOUT) -> Check:
    """Start a session with the project's ``spark`` config and run a job, in a child process bounded by ``timeout``."""
    env = {**os.environ, "SPARK_LOCAL_IP": os.environ.get("SPARK_LOCAL_IP", "127.0.0.1")}
    argv = [sys.executable, "-c", _SPARK_PROBE, str(conf_dir), *overrides]
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the child and the JVM it started
        proc.communicate()
        return Check(
            "spark",
            False,
            f"no Spark session within {timeout:.0f} s",
            "check spark.master (conf/spark/) is reachable, that the machine is not out of memory "
            "(spark.driver_memory), or allow longer: `lakeforge doctor --spark-timeout 600`",
        )
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        last = next((line for line in reversed(err.splitlines()) if line.strip()), "no output")
        return Check(
            "spark",
            False,
            f"Spark did not start (exit {proc.returncode}): {last.strip()[:300]}",
            "run `lakeforge run ingest -v` to see the whole log; check Java and conf/spark/",
        )
    facts = json.loads(lines[-1])
    took = time.perf_counter() - started
    from lakeforge.lake.spark import usable_archive

    archive = (
        "class-data archive in use"
        if usable_archive() is not None
        else "no class-data archive for this Java: `python -m lakeforge.lake.spark_cds` starts Spark ~4 s faster"
    )
    return Check(
        "spark",
        True,
        f"Spark {facts['version']} ran a job in {facts['seconds']:.1f} s ({took:.1f} s with start-up; {archive})",
    )


def _writable_folder(path: Path) -> tuple[bool, str]:
    """Whether files can be written at ``path`` (a folder, or one a write would create), and why not."""
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            return False, f"no part of '{path}' exists"
        existing = existing.parent
    if not existing.is_dir():
        return False, f"'{existing}' is a file, not a folder"
    if existing != path:
        return (True, "") if os.access(existing, os.W_OK | os.X_OK) else (False, f"'{existing}' is not writable")
    probe = path / f".lakeforge-doctor-{os.getpid()}"
    try:
        probe.write_text("probe")
        probe.unlink()
    except OSError as exc:
        return False, f"cannot write in '{path}': {exc.strerror or exc}"
    return True, ""


def check_lake(cfg: Any) -> Check:
    """The lake root: a writable local folder (or one a first write can create); object stores are named."""
    from lakeforge.lake.catalog import catalog_from_config

    catalog = catalog_from_config(cfg.storage, Path(str(cfg.project_root)))
    if not catalog.is_local:
        return Check("lake", True, f"lake root {catalog.lake_root} (object store: not probed)")
    root = Path(catalog.lake_root.removeprefix("file://"))
    ok, why = _writable_folder(root)
    if not ok:
        return Check(
            "lake",
            False,
            f"lake root {root} cannot be written: {why}",
            "point storage.lake_root (conf/storage/) at a folder you can write, e.g. "
            "`storage.lake_root=/path/to/lake`, or fix its permissions",
        )
    if not root.exists():
        return Check("lake", True, f"lake root {root} (created by the first write)")
    tables = len(catalog.list_tables())
    return Check("lake", True, f"lake root {root} is writable ({tables} table(s))")


def _mlflow_sqlite(db: Path) -> Check:
    """A SQLite store: readable with MLflow's schema, or absent in a writable folder."""
    if not db.exists():
        ok, why = _writable_folder(db.parent)
        if not ok:
            return Check("mlflow", False, f"{db} cannot be created: {why}", "point tracking.uri at a writable folder")
        return Check("mlflow", True, f"{db} (created by the first run)")
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            revision = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error as exc:
        return Check(
            "mlflow",
            False,
            f"{db} is not a usable MLflow store ({exc})",
            f"move {db} aside (it is recreated at the next run) or fix tracking.uri",
        )
    return Check("mlflow", True, f"{db} (MLflow schema {revision[0] if revision else 'unknown'})")


def check_mlflow(cfg: Any, timeout: float = 5.0) -> Check:
    """The tracking store: a SQLite file MLflow can open, or a server answering its health check."""
    from lakeforge.config import resolve_path
    from lakeforge.tracking.store import probe_health

    uri = resolve_path(cfg, str(cfg.tracking.uri))
    if uri.startswith("sqlite:///"):
        return _mlflow_sqlite(Path(uri.removeprefix("sqlite:///")))
    if uri.startswith(("http://", "https://")):
        try:
            status = probe_health(uri, timeout)
        except OSError as exc:
            reason = mask_credentials(str(getattr(exc, "reason", exc)))
            return Check(
                "mlflow",
                False,
                f"MLflow server {mask_credentials(uri)} does not answer ({reason})",
                "start it (`mlflow server --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1`) "
                "or set MLFLOW_TRACKING_URI / tracking.uri to a running one",
            )
        shown = mask_credentials(uri)
        return Check("mlflow", status == 200, f"MLflow server {shown} (health: HTTP {status})", "see its log")
    return Check("mlflow", True, f"tracking store {mask_credentials(uri)} (not probed)")


def _dvc_root(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        if (folder / ".dvc").is_dir():
            return folder
    return None


def check_dvc(project_root: Path) -> Check:
    """DVC installed, and the project inside a DVC repository."""
    if _tool("dvc") is None:
        return Check("dvc", False, "dvc is not installed in this environment", "install the project (`make setup`)")
    root = _dvc_root(project_root)
    if root is None:
        return Check(
            "dvc",
            False,
            f"{project_root} is not in a DVC repository",
            f"run `dvc init` in {project_root} (`dvc init --no-scm` outside git), then `dvc add` the raw data",
        )
    stages = "dvc.yaml" if (root / "dvc.yaml").is_file() else "no dvc.yaml yet"
    return Check("dvc", True, f"DVC repository {root} ({stages})")


def check_airflow(project_root: Path) -> Check:
    """Airflow installed, its home writable, and this project's DAG folder the one it reads."""
    if _tool("airflow") is None:
        return Check(
            "airflow", False, "airflow is not installed in this environment", "install the project (`make setup`)"
        )
    home = Path(os.environ.get("AIRFLOW_HOME") or project_root / ".airflow")
    ok, why = _writable_folder(home)
    if not ok:
        return Check(
            "airflow",
            False,
            f"AIRFLOW_HOME {home} cannot be written: {why}",
            "export AIRFLOW_HOME=<a writable folder> (`make airflow` uses .airflow/ in the project)",
        )
    dags = project_root / "dags"
    if not any(dags.glob("*.py")):
        return Check(
            "airflow",
            False,
            f"no DAG file in {dags}",
            "add dags/lakeforge_dags.py: `from lakeforge.pipeline.dags import build_dags` (see this repository's)",
        )
    folder = os.environ.get("AIRFLOW__CORE__DAGS_FOLDER")
    if folder and Path(folder).absolute() != dags.absolute():
        return Check(
            "airflow",
            False,
            f"AIRFLOW__CORE__DAGS_FOLDER={folder} is not this project's {dags}",
            f"export AIRFLOW__CORE__DAGS_FOLDER={dags}",
        )
    return Check("airflow", True, f"AIRFLOW_HOME {home}, DAGs from {dags}")


def run_checks(
    conf_dir: Path,
    overrides: Sequence[str] = (),
    *,
    spark_timeout: float = SPARK_TIMEOUT,
    on_check: Callable[[Check], None] | None = None,
) -> list[Check]:
    """Every check in order; Spark is skipped when Java is missing, the project checks when conf/ does not compose."""
    from lakeforge.config import load_lake_config

    report = on_check or (lambda check: None)
    checks: list[Check] = []

    def add(check: Check) -> None:
        checks.append(check)
        report(check)

    java = check_java()
    add(java)
    try:
        cfg = load_lake_config(list(overrides), conf_dir=conf_dir)
    except LakeforgeError as exc:
        add(Check("conf", False, str(exc), "`lakeforge check` lists every problem"))
        return checks
    project_root = Path(str(cfg.project_root))
    if java.ok:
        add(check_spark(conf_dir, overrides, spark_timeout))
    else:
        add(Check("spark", False, "not started: it needs Java", "fix Java first"))
    add(check_lake(cfg))
    add(check_mlflow(cfg))
    add(check_dvc(project_root))
    add(check_airflow(project_root))
    return checks
