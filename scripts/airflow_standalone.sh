#!/usr/bin/env bash
# `make airflow`: Airflow standalone (scheduler, DAG processor, API server and UI) for this
# project's DAGs, every listener on 127.0.0.1, authentication on, low parallelism; its state lives
# in .airflow/. LAKEFORGE_AIRFLOW_DRY_RUN=1 prints what would run (as JSON) instead of starting it.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$root/.airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$root/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=false
export AIRFLOW__CORE__PARALLELISM=2
export AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG=1
# The API server and UI: loopback only (Airflow's default is 0.0.0.0).
export AIRFLOW__API__HOST=127.0.0.1
export AIRFLOW__API__PORT="${AIRFLOW_PORT:-8080}"
# Authentication stays on whatever the calling shell says: the simple auth manager (standalone
# forces it) with a generated admin password, never "everyone is admin".
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=False
# Tasks report to the API server's execution API: without a base URL they call localhost:8080,
# which is refused when the port differs or localhost resolves to ::1.
export AIRFLOW__API__BASE_URL="http://127.0.0.1:${AIRFLOW__API__PORT}"
# The connection the tasks spark-submit through; the jobs take Spark's master from conf/spark.
local_spark='{"conn_type": "spark", "host": "local"}'
export AIRFLOW_CONN_SPARK_DEFAULT="${AIRFLOW_CONN_SPARK_DEFAULT:-$local_spark}"
airflow_bin="$(command -v airflow)" || { echo "airflow is not on PATH: run \`make setup\` first" >&2; exit 1; }
python="$(dirname "$airflow_bin")/python"
[[ -x "$python" ]] || python=python3
mkdir -p "$AIRFLOW_HOME"

# `airflow standalone`, except that its scheduler and triggerer start with --skip-serve-logs: each
# would otherwise run a task-log server on every interface (Airflow 3.3 hard-codes host "" in
# airflow.utils.serve_logs; ports 8793 and 8794). On one machine the UI reads the log files itself.
standalone='
import json, os, sys
from airflow.configuration import conf, write_default_airflow_configuration_if_needed

write_default_airflow_configuration_if_needed()  # first, as `airflow` itself does
from airflow.cli.commands import standalone_command

SKIP_SERVE_LOGS = ("scheduler", "triggerer")


class LoopbackSubCommand(standalone_command.SubCommand):
    def __init__(self, parent, name, command, env):
        extra = ["--skip-serve-logs"] if command[:1] and command[0] in SKIP_SERVE_LOGS else []
        super().__init__(parent, name, [*command, *extra], env)


standalone_command.SubCommand = LoopbackSubCommand
if os.environ.get("LAKEFORGE_AIRFLOW_DRY_RUN"):
    parent = standalone_command.StandaloneCommand()
    env = parent.calculate_env()
    names = ("scheduler", "dag-processor", "api-server", "triggerer")
    print(json.dumps({
        "api_host": conf.get("api", "host"),
        "api_port": conf.getint("api", "port"),
        "auth_manager": env.get("AIRFLOW__CORE__AUTH_MANAGER") or conf.get("core", "auth_manager"),
        "all_admins": conf.get("core", "simple_auth_manager_all_admins"),
        "commands": {n: ["airflow", *standalone_command.SubCommand(parent, n, [n], env).command] for n in names},
    }))
    sys.exit(0)
from airflow.__main__ import main

sys.argv = ["airflow", "standalone"]
sys.exit(main())
'
if [[ -n "${LAKEFORGE_AIRFLOW_DRY_RUN:-}" ]]; then
  exec "$python" - <<<"$standalone"
fi
group="$(ps -o pgid= $$ | tr -d ' ')"
cat <<MSG
Airflow UI:  http://127.0.0.1:${AIRFLOW__API__PORT}  (user admin)
Password:    printed by Airflow below, and kept in ${AIRFLOW_HOME}/simple_auth_manager_passwords.json.generated
DAGs:        ${AIRFLOW__CORE__DAGS_FOLDER} (one per conf/schedule file of each pipeline)
Stop it:     Ctrl-C here, or from another shell: kill -- -${group}  (its whole process group)
MSG
exec "$python" - <<<"$standalone"
