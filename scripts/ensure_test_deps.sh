#!/usr/bin/env bash
# Debian packages some tests need, none of them downloaded at test time:
#   postgresql              a throwaway server for the JDBC ingest tests (tests/spark/postgres.py)
#   libpostgresql-jdbc-java the PostgreSQL JDBC driver jar for Spark (/usr/share/java/postgresql.jar)
#   chromium                headless browser that checks the HTML profile report renders
#   redis-server            a throwaway server for the Redis online-store tests (tests/redis_server.py)
# As root with apt-get, install whichever is missing; otherwise print what to install and
# exit 0: the tests that need a missing package skip and say which one.
set -euo pipefail

JDBC_JAR=/usr/share/java/postgresql.jar

have_postgresql() { compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; }
have_jdbc() { [[ -f "$JDBC_JAR" ]]; }
have_chromium() { command -v chromium >/dev/null 2>&1; }
have_redis() { command -v redis-server >/dev/null 2>&1 || [[ -x /usr/bin/redis-server ]]; }

missing=()
have_postgresql || missing+=(postgresql)
have_jdbc || missing+=(libpostgresql-jdbc-java)
have_chromium || missing+=(chromium)
have_redis || missing+=(redis-server)

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "test deps: postgresql, libpostgresql-jdbc-java ($JDBC_JAR), chromium, redis-server ok"
  exit 0
fi

if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
  echo "test deps: installing Debian's ${missing[*]} ..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # The tests start their own throwaway server (own dir, own port); a service the
  # package may start does not get in their way.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "test deps: installed ${missing[*]}"
  exit 0
fi

cat >&2 <<MSG
test deps: missing ${missing[*]}; the tests that need them will be skipped.
  Debian/Ubuntu:  sudo apt-get install ${missing[*]}
  then run \`make test\` again.
MSG
exit 0
