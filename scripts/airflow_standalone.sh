#!/usr/bin/env bash
# `make airflow`: Airflow standalone (scheduler, DAG processor, API server and UI) for this
# project's DAGs, bound to 127.0.0.1, with low parallelism; its state lives in .airflow/.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$root/.airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$root/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=false
export AIRFLOW__CORE__PARALLELISM=2
export AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG=1
export AIRFLOW__API__HOST=127.0.0.1
export AIRFLOW__API__PORT="${AIRFLOW_PORT:-8080}"
# Tasks report to the API server's execution API: without a base URL they call localhost:8080,
# which is refused when the port differs or localhost resolves to ::1.
export AIRFLOW__API__BASE_URL="http://127.0.0.1:${AIRFLOW__API__PORT}"
# The connection the tasks spark-submit through; the jobs take Spark's master from conf/spark.
local_spark='{"conn_type": "spark", "host": "local"}'
export AIRFLOW_CONN_SPARK_DEFAULT="${AIRFLOW_CONN_SPARK_DEFAULT:-$local_spark}"
mkdir -p "$AIRFLOW_HOME"
group="$(ps -o pgid= $$ | tr -d ' ')"
cat <<MSG
Airflow UI:  http://127.0.0.1:${AIRFLOW__API__PORT}  (user admin)
Password:    printed by Airflow below, and kept in ${AIRFLOW_HOME}/simple_auth_manager_passwords.json.generated
DAGs:        ${AIRFLOW__CORE__DAGS_FOLDER} (one per conf/schedule file of each pipeline)
Stop it:     Ctrl-C here, or from another shell: kill -- -${group}  (its whole process group)
MSG
exec airflow standalone
