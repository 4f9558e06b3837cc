"""Every server lakeforge starts listens on 127.0.0.1 unless told otherwise.

`lakeforge serve`: ``--host``, else online.serve.host, else 127.0.0.1 (a real server started on
127.0.0.1 is in tests/spark/test_serving.py). `make airflow`: scripts/airflow_standalone.sh (what it
would run is in tests/e2e/test_airflow_loopback.py). The MLflow UI is never started by lakeforge: the
commands it suggests bind 127.0.0.1.
"""

from __future__ import annotations

import re

import pytest
from omegaconf import OmegaConf

from lakeforge.config import load_config
from lakeforge.serving.app import DEFAULT_HOST, bind_address
from tests.conftest import REPO_ROOT


def test_serve_binds_loopback_unless_told_otherwise() -> None:
    assert DEFAULT_HOST == "127.0.0.1"
    assert bind_address(None) == ("127.0.0.1", 8000)
    assert bind_address(OmegaConf.create({"host": None, "port": None})) == ("127.0.0.1", 8000)
    assert bind_address(OmegaConf.create({"host": "127.0.0.1", "port": 8123})) == ("127.0.0.1", 8123)
    assert bind_address(OmegaConf.create({"host": "127.0.0.1", "port": 8123}), "0.0.0.0", 9000) == ("0.0.0.0", 9000)


@pytest.mark.parametrize("online", ["sqlite", "redis"])
def test_every_shipped_online_store_serves_on_loopback(online: str) -> None:
    cfg = load_config([f"online={online}"], conf_dir=REPO_ROOT / "conf")
    assert bind_address(cfg.online.serve) == ("127.0.0.1", 8000)


def _documented_commands(name: str) -> list[tuple[str, str]]:
    """(file, command line) of every `mlflow ui` / `mlflow server` lakeforge tells users to run."""
    found = []
    files = [REPO_ROOT / "Makefile", REPO_ROOT / "README.md", *(REPO_ROOT / "docs").rglob("*.md")]
    files += [*(REPO_ROOT / "src" / "lakeforge").rglob("*.py"), *(REPO_ROOT / "scripts").glob("*")]
    for path in files:
        text = path.read_text(errors="replace").replace("\n", " ")
        found += [(str(path.relative_to(REPO_ROOT)), m) for m in re.findall(rf"mlflow {name}\b[^`\"]*", text)]
    return found


@pytest.mark.parametrize("name", ["ui", "server"])
def test_suggested_mlflow_commands_bind_loopback(name: str) -> None:
    commands = _documented_commands(name)
    assert commands or name == "server"
    for where, command in commands:
        assert "--host 127.0.0.1" in command, f"{where}: {command}"


def test_make_airflow_pins_loopback_and_authentication() -> None:
    script = (REPO_ROOT / "scripts" / "airflow_standalone.sh").read_text()
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert re.search(r"^airflow: .*\n\t@scripts/airflow_standalone\.sh$", makefile, re.M)
    # Exported unconditionally: a value inherited from the calling shell cannot widen them.
    assert re.search(r"^export AIRFLOW__API__HOST=127\.0\.0\.1$", script, re.M)
    assert re.search(r"^export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=False$", script, re.M)
    assert not re.search(r"^export AIRFLOW__CORE__AUTH_MANAGER=", script, re.M)  # standalone's SimpleAuthManager
    assert (REPO_ROOT / "scripts" / "airflow_standalone.sh").stat().st_mode & 0o111
