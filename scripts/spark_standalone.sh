#!/usr/bin/env bash
# A one-machine Spark standalone cluster (a master and one worker) from the Spark that pyspark
# bundles, for trying `spark=cluster`. Nothing is downloaded.
#   scripts/spark_standalone.sh start [PORT]   master on 127.0.0.1:PORT (default 7077), UI on PORT+1000;
#                                              SPARK_WORKERS workers (default 1) of SPARK_WORKER_CORES cores
#   scripts/spark_standalone.sh stop
# State (logs, pids, the worker's directory) in .spark-standalone/ under the current directory.
set -euo pipefail

cmd=${1:-}
port=${2:-7077}
here=$(pwd)/.spark-standalone
python=${PYTHON:-.venv/bin/python}
spark_home=$("$python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')
export SPARK_HOME=$spark_home SPARK_LOCAL_IP=127.0.0.1
spark_class="$spark_home/bin/spark-class"

case "$cmd" in
  start)
    mkdir -p "$here"
    nohup "$spark_class" org.apache.spark.deploy.master.Master --host 127.0.0.1 --port "$port" \
      --webui-port $((port + 1000)) >"$here/master.log" 2>&1 &
    echo $! >"$here/master.pid"
    for _ in $(seq 60); do grep -q "I have been elected leader" "$here/master.log" && break; sleep 0.5; done
    workers=${SPARK_WORKERS:-1}
    for i in $(seq "$workers"); do
      nohup "$spark_class" org.apache.spark.deploy.worker.Worker "spark://127.0.0.1:$port" --host 127.0.0.1 \
        --cores "${SPARK_WORKER_CORES:-2}" --memory "${SPARK_WORKER_MEMORY:-4g}" --webui-port $((port + 1000 + i)) \
        --work-dir "$here/work$i" >"$here/worker$i.log" 2>&1 &
      echo $! >"$here/worker$i.pid"
    done
    for i in $(seq "$workers"); do
      for _ in $(seq 60); do grep -q "Successfully registered with master" "$here/worker$i.log" && break; sleep 0.5; done
      if ! grep -q "Successfully registered with master" "$here/worker$i.log"; then
        echo "spark standalone: worker $i did not register; see $here/worker$i.log" >&2
        exit 1
      fi
    done
    echo "spark standalone: master spark://127.0.0.1:$port (UI http://127.0.0.1:$((port + 1000))), $workers worker(s)"
    echo "  run a step on it: lakeforge run score --run-date 2013-10-16 spark=cluster spark.master=spark://127.0.0.1:$port"
    echo "  stop it: scripts/spark_standalone.sh stop"
    ;;
  stop)
    for pid in "$here"/worker*.pid "$here"/master.pid; do
      if [[ -f "$pid" ]]; then
        kill "$(cat "$pid")" 2>/dev/null || true
        rm -f "$pid"
      fi
    done
    echo "spark standalone: stopped"
    ;;
  *)
    echo "usage: scripts/spark_standalone.sh start [PORT] | stop" >&2
    exit 2
    ;;
esac
