"""`make airflow` (scripts/airflow_standalone.sh): every Airflow listener on 127.0.0.1, authentication on.

Airflow 3.3's standalone runs the API server (and UI) where ``[api] host`` says, and its scheduler
and triggerer each start a task-log server on every interface (``host=""`` hard-coded in
airflow.utils.serve_logs) unless started with ``--skip-serve-logs``. The script's dry run
(LAKEFORGE_AIRFLOW_DRY_RUN=1) prints the settings and the component command lines that the real
start uses, through the same code: asked from a shell that tries to widen both, it must not.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.e2e.conftest import BIN, REPO_ROOT
from tests.e2e.project import user_env

SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"


def test_standalone_listens_on_loopback_only_with_authentication_on(tmp_path: Path) -> None:
    env = {
        **user_env(),
        "PATH": f"{BIN}:/usr/bin:/bin",
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "LAKEFORGE_AIRFLOW_DRY_RUN": "1",
        # A calling shell that would expose it: the script overrides both.
        "AIRFLOW__API__HOST": "0.0.0.0",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
    }
    proc = subprocess.run(
        [str(REPO_ROOT / "scripts" / "airflow_standalone.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    plan = json.loads(proc.stdout.strip().splitlines()[-1])

    assert (plan["api_host"], plan["all_admins"], plan["auth_manager"]) == ("127.0.0.1", "False", SIMPLE_AUTH_MANAGER)
    assert plan["commands"] == {
        "scheduler": ["airflow", "scheduler", "--skip-serve-logs"],
        "dag-processor": ["airflow", "dag-processor"],
        "api-server": ["airflow", "api-server"],  # binds [api] host: 127.0.0.1
        "triggerer": ["airflow", "triggerer", "--skip-serve-logs"],
    }
