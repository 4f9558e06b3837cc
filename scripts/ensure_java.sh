#!/usr/bin/env bash
# Make sure Java 17+ is on this machine: Spark 4 needs it.
# As root on Debian/Ubuntu, install openjdk-17-jre-headless; otherwise say what to install.
set -euo pipefail

java_major() {
  local bin="$1"
  "$bin" -version 2>&1 | sed -nE 's/.*version "([0-9]+)(\.([0-9]+))?.*/\1 \3/p' | head -n1 |
    awk '{ if ($1 == 1) print $2; else print $1 }'
}

find_java() {
  if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then echo "$JAVA_HOME/bin/java"; return; fi
  command -v java || true
}

JAVA_BIN="$(find_java)"
if [[ -n "$JAVA_BIN" ]]; then
  MAJOR="$(java_major "$JAVA_BIN")"
  if [[ -n "$MAJOR" && "$MAJOR" -ge 17 ]]; then
    echo "java: $JAVA_BIN (Java $MAJOR) ok"
    exit 0
  fi
  echo "java: $JAVA_BIN is Java ${MAJOR:-unknown}; Spark 4 needs Java 17 or newer." >&2
fi

if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
  echo "java: installing Debian's openjdk-17-jre-headless (Spark 4 needs Java 17+) ..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless >/dev/null
  echo "java: $(java -version 2>&1 | head -n1)"
  exit 0
fi

cat >&2 <<'MSG'
java: Java 17+ is required (Spark 4) and is not installed.
  Debian/Ubuntu:  sudo apt-get install openjdk-17-jre-headless
  macOS:          brew install openjdk@17
  or set JAVA_HOME to a Java 17+ installation, then run `make setup` again.
MSG
exit 1
