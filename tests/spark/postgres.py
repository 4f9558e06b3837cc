"""A throwaway PostgreSQL server for the JDBC tests: Debian's binaries, a temp dir, 127.0.0.1, no service.

As root the server runs as the ``postgres`` OS user (``initdb`` refuses root); as anyone
else, as that user. It listens on a free port of 127.0.0.1 with its unix socket in its own
temporary folder, and is stopped (``pg_ctl stop -m fast``) and removed afterwards.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

JDBC_JAR = Path("/usr/share/java/postgresql.jar")
INSTALL_HINT = "run `scripts/ensure_test_deps.sh` as root (Debian: apt-get install postgresql libpostgresql-jdbc-java)"
_SUPERUSER = "postgres"
_START_ATTEMPTS = 3


@dataclass(frozen=True)
class PostgresServer:
    """Where the running server is, and the database, user and password made for the tests."""

    host: str
    port: int
    database: str
    user: str
    password: str
    socket_dir: Path
    bin_dir: Path
    os_user: str | None  # run client tools as this OS user (root only)

    @property
    def jdbc_url(self) -> str:
        """The JDBC URL, without credentials (they travel separately, as in a dataset config)."""
        return f"jdbc:postgresql://{self.host}:{self.port}/{self.database}"

    def psql(self, sql: str, *, stdin: bytes | None = None, database: str | None = None) -> str:
        """Run ``sql`` as the superuser over the unix socket; ``stdin`` feeds ``COPY … FROM STDIN``."""
        args = [
            str(self.bin_dir / "psql"),
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-At",
            "-h",
            str(self.socket_dir),
            "-p",
            str(self.port),
            "-U",
            _SUPERUSER,
            "-d",
            database or self.database,
            "-c",
            sql,
        ]
        proc = _run(args, self.os_user, stdin=stdin)
        return proc.stdout.decode()

    def load_csv(self, table: str, ddl: str, csv_bytes: bytes) -> int:
        """Create ``table`` (column DDL), fill it from CSV with a header (NA = NULL), grant it; return its rows."""
        self.psql(f"DROP TABLE IF EXISTS {table}; CREATE TABLE {table} ({ddl})")
        self.psql(f"COPY {table} FROM STDIN WITH (FORMAT csv, HEADER true, NULL 'NA')", stdin=csv_bytes)
        self.psql(f"GRANT SELECT ON {table} TO {self.user}")
        return int(self.psql(f"SELECT count(*) FROM {table}").strip())


def find_bin_dir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` that has initdb, or None."""
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if not found:
        return None

    def version(path: str) -> int:
        match = re.search(r"/postgresql/(\d+)/", path)
        return int(match.group(1)) if match else 0

    return Path(max(found, key=version)).parent


def _run(args: Sequence[str], os_user: str | None, *, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run a PostgreSQL tool, as ``os_user`` when given; fail with its output."""
    cmd = ["runuser", "-u", os_user, "--", *args] if os_user else list(args)
    # Run from / so the postgres user never needs access to the caller's working directory.
    proc = subprocess.run(cmd, input=stdin, capture_output=True, timeout=120, cwd="/", check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {proc.returncode}:\n{proc.stdout.decode()}{proc.stderr.decode()}")
    return proc


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def skip_reason() -> str | None:
    """Why a server cannot be started here, or None when it can."""
    if find_bin_dir() is None:
        return f"Debian's PostgreSQL server is not installed: {INSTALL_HINT}"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return f"running as root but there is no 'postgres' OS user to run the server: {INSTALL_HINT}"
        if shutil.which("runuser") is None:
            return "running as root without `runuser` (util-linux) to start the server as 'postgres'"
    return None


def _start(bin_dir: Path, data: Path, log_file: Path, socket_dir: Path, os_user: str | None) -> int:
    """Start the server on a free port of 127.0.0.1; return the port.

    The port is free when picked but not reserved: another process (a second pytest-xdist
    worker starting its own server, any client's ephemeral port) may take it before the
    server binds it. Then the server log says so, and another port is tried.
    """
    for attempt in range(1, _START_ATTEMPTS + 1):
        port = _free_port()
        # Durability is pointless for a throwaway server; the speed is not.
        opts = f"-h 127.0.0.1 -p {port} -k {socket_dir} -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        try:
            _run(
                [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log_file), "-w", "-t", "60", "-o", opts, "start"],
                os_user,
            )
        except RuntimeError:
            log = log_file.read_text(errors="replace") if log_file.is_file() else ""
            if attempt == _START_ATTEMPTS or "could not bind" not in log:
                raise
            continue
        return port
    raise AssertionError("unreachable")


@contextlib.contextmanager
def running_postgres(
    database: str = "lakeforge_test", user: str = "lakeforge", password: str = "s3cret-Pw"
) -> Iterator[PostgresServer]:
    """Start a throwaway server with ``database`` owned by ``user`` (password auth over TCP); stop it after."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise RuntimeError(f"PostgreSQL not installed: {INSTALL_HINT}")
    os_user = "postgres" if os.geteuid() == 0 else None
    # Under /tmp itself: pytest's own tmp dirs are 0700 root, which 'postgres' cannot enter.
    root = Path(tempfile.mkdtemp(prefix="lakeforge-pg-"))
    if os_user:
        entry = pwd.getpwnam(os_user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    data, log_file = root / "data", root / "server.log"
    pwfile = root / "superuser.pw"
    pwfile.write_text("unused-superuser-password\n")
    if os_user:
        os.chown(pwfile, pwd.getpwnam(os_user).pw_uid, -1)
    started = False
    try:
        _run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                _SUPERUSER,
                f"--pwfile={pwfile}",
                "-E",
                "UTF8",
                "--locale=C",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--no-sync",
            ],
            os_user,
        )
        port = _start(bin_dir, data, log_file, root, os_user)
        started = True
        server = PostgresServer("127.0.0.1", port, database, user, password, root, bin_dir, os_user)
        server.psql(f"CREATE ROLE {user} LOGIN PASSWORD '{password}'", database="postgres")
        server.psql(f"CREATE DATABASE {database} OWNER {user}", database="postgres")
        yield server
    finally:
        if started:
            _run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], os_user)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A running throwaway PostgreSQL for the whole test session (skips, with the reason, where it cannot run)."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    with running_postgres() as server:
        yield server
