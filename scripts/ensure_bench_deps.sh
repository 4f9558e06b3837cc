#!/usr/bin/env bash
# Debian packages `make bench` needs, none of them downloaded while a benchmark runs:
#   wrk   the HTTP load generator of the serving benchmark (bench/bench_serve.py)
# As root with apt-get, install whichever is missing; otherwise print what to install (the
# serving benchmark then fails with the same hint; the others run).
set -euo pipefail

if command -v wrk >/dev/null 2>&1; then
  echo "bench deps: wrk ok"
  exit 0
fi
if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
  echo "bench deps: installing Debian's wrk ..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends wrk >/dev/null 2>&1 || {
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends wrk >/dev/null
  }
  echo "bench deps: installed wrk"
  exit 0
fi
echo "bench deps: wrk is missing (the serving benchmark needs it): sudo apt-get install wrk" >&2
