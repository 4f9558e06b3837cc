"""The CLI as a user meets it: exit codes, one-line errors, readable output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from deltalake import write_deltalake

from lakeforge.lake.catalog import Catalog
from tests.e2e.conftest import REPO_ROOT, run_cli


@pytest.fixture
def small_lake(lake_root: Path) -> Path:
    """A lake with raw.airlines (two versions), written by delta-rs: no JVM needed."""
    catalog = Catalog(lake_root)
    uri = catalog.table_uri("raw.airlines")
    write_deltalake(uri, pd.DataFrame({"carrier": ["AA", "DL"], "name": ["American", "Delta"]}))
    write_deltalake(uri, pd.DataFrame({"carrier": ["UA"], "name": ["United"]}), mode="append")
    return lake_root


def test_check_passes_on_shipped_conf() -> None:
    proc = run_cli(["check"])
    assert proc.returncode == 0, proc.stderr
    assert "ok:" in proc.stdout and "flight_delay" in proc.stdout


def test_check_reports_bad_override_without_traceback() -> None:
    proc = run_cli(["check", "model.params_typo=3"])
    assert proc.returncode == 2
    assert "params_typo" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_sql_reads_catalog_names_and_time_travels(small_lake: Path) -> None:
    root = f"storage.lake_root={small_lake}"
    latest = run_cli(["sql", "SELECT count(*) AS n FROM raw.airlines", root, "--format", "csv"], check=True)
    assert latest.stdout.splitlines() == ["n", "3"]
    first = run_cli(
        ["sql", "SELECT count(*) AS n FROM raw.airlines", root, "--version", "raw.airlines=0", "--format", "csv"],
        check=True,
    )
    assert first.stdout.splitlines() == ["n", "2"]


def test_sql_refuses_writes(small_lake: Path) -> None:
    proc = run_cli(["sql", "DELETE FROM raw.airlines", f"storage.lake_root={small_lake}"])
    assert proc.returncode == 2
    assert "read-only" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_sql_unknown_table_lists_known_ones(small_lake: Path) -> None:
    proc = run_cli(["sql", "SELECT * FROM raw.airline", f"storage.lake_root={small_lake}"])
    assert proc.returncode == 3
    assert "raw.airline" in proc.stderr and "raw.airlines" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_version_pin_is_a_usage_error(small_lake: Path) -> None:
    proc = run_cli(["sql", "SELECT 1", f"storage.lake_root={small_lake}", "--version", "raw.airlines=x"])
    assert proc.returncode == 2
    assert "TABLE=N" in proc.stderr


def test_tables_and_history(small_lake: Path) -> None:
    tables = run_cli(["tables", f"storage.lake_root={small_lake}", "--format", "csv"], check=True)
    header, row = tables.stdout.splitlines()[:2]
    assert header.startswith("table,version,rows")
    assert row.startswith("raw.airlines,1,3,")
    history = run_cli(["history", "raw.airlines", f"storage.lake_root={small_lake}", "--format", "csv"], check=True)
    assert len(history.stdout.splitlines()) == 3  # header + 2 commits


def test_history_of_unknown_table(small_lake: Path) -> None:
    proc = run_cli(["history", "raw.nope", f"storage.lake_root={small_lake}"])
    assert proc.returncode == 3
    assert "table 'raw.nope' does not exist" in proc.stderr


def test_bad_table_name_is_a_usage_error(small_lake: Path) -> None:
    proc = run_cli(["history", "weather", f"storage.lake_root={small_lake}"])
    assert proc.returncode == 2
    assert "'<layer>.<name>'" in proc.stderr


def test_vacuum_removes_orphans_of_failed_writes(small_lake: Path) -> None:
    table_dir = Path(Catalog(small_lake).table_uri("raw.airlines"))
    orphan = table_dir / "part-00000-deadbeef.snappy.parquet"  # as a killed writer leaves it
    orphan.write_bytes(b"PAR1")
    old = 1_600_000_000
    os.utime(orphan, (old, old))
    root = f"storage.lake_root={small_lake}"

    dry = run_cli(["vacuum", "raw.airlines", root, "--retention-hours", "1", "--dry-run"], check=True)
    assert "raw.airlines: would remove 1 file(s)" in dry.stdout
    assert orphan.exists()

    done = run_cli(["vacuum", root, "--retention-hours", "1"], check=True)
    assert "raw.airlines: removed 1 file(s)" in done.stdout
    assert not orphan.exists()
    still = run_cli(["sql", "SELECT count(*) AS n FROM raw.airlines", root, "--format", "csv"], check=True)
    assert still.stdout.splitlines() == ["n", "3"]


def test_features_show_prints_the_compiled_plan_without_a_jvm() -> None:
    proc = run_cli(["features", "show", "flight_delay"])
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "strictly before t - lag" in out and "inclusive, as Feast" in out
    assert "carrier_dep_delay_7d: window avg(dep_delay) by carrier" in out
    # Delay windows see a flight only once it has left (departure delays) or landed (delay rates).
    at = "source: flights at time_hour + make_dt_interval(0, 0, CAST(minute + dep_delay{} AS INT), 0)"
    departed, landed = at.format(""), at.format(" + air_time + 120")
    assert f"origin_dep_delay_3h: window avg(dep_delay) by origin\n  {departed}\n" in out
    assert f"carrier_delay_rate_7d: window avg(CAST(arr_delay > 15 AS DOUBLE)) by carrier\n  {landed}\n" in out
    assert f"route_delay_rate_30d: window avg(CAST(arr_delay > 15 AS DOUBLE)) by origin, dest\n  {landed}\n" in out
    assert "plane_age: transform age_in_years(plane_year, time_hour)" in out
    # The Spark SQL selecting the source rows (a null available_at never counts), then the range.
    assert "AS _t, dep_delay AS _v FROM raw.flights WHERE (time_hour + make_dt_interval(" in out
    ranged = "carrier_delayed_flights_30d = count(_v) of the rows with the same `carrier` and _t in [t - 31d, t - 1d)"
    assert ranged in out
    assert "wx_temp: as-of temp by origin" in out and "not older than 3h" in out
    assert "label is_delayed = CAST(arr_delay > 15 AS INT)" in out and "never in the feature table" in out


def test_features_show_unknown_set_names_the_composed_one() -> None:
    proc = run_cli(["features", "show", "flight_delays"])
    assert proc.returncode == 2
    assert "feature set 'flight_delays' is not composed (the pipeline's is 'flight_delay')" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_sweep_with_a_bad_value_is_refused_before_spark_starts(tmp_path: Path) -> None:
    """`lakeforge run train -m` and `python jobs/train.py -m` check every trial's config first."""
    args = ["run_date=2013-10-15", "model.params.num_leaves=15,many", f"storage.lake_root={tmp_path / 'lake'}"]
    cli = run_cli(["run", "train", "-m", *args])
    job = subprocess.run(
        [sys.executable, str(REPO_ROOT / "jobs" / "train.py"), "-m", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    for proc in (cli, job):
        assert proc.returncode == 2, proc.stderr
        assert "sweep override 'model.params.num_leaves=15,many': value many" in proc.stderr
        assert "Traceback" not in proc.stderr and "starting Spark" not in proc.stderr
    wrong = run_cli(["run", "ingest", "-m"])
    assert wrong.returncode == 2 and "--multirun sweeps the train step only" in wrong.stderr


def test_the_script_exits_with_the_command_code_after_pythons_own_cleanup(tmp_path: Path) -> None:
    """The `lakeforge` script skips only the native teardown at exit (lakeforge.cli.script): the exit
    code is the command's, atexit handlers still run, and printed output is all there."""
    code = (
        "import atexit, sys\n"
        "from lakeforge import cli\n"
        "atexit.register(lambda: print('atexit handler ran', flush=True))\n"
        # A thread pool left open (as `lakeforge lineage`'s libraries leave one) must not hang the exit.
        "import concurrent.futures; pool = concurrent.futures.ThreadPoolExecutor(1); pool.submit(int)\n"
        f"sys.argv = ['lakeforge', 'check', '--conf-dir', {str(tmp_path)!r}]\n"
        "cli.script()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert f"--conf-dir '{tmp_path}' has no config.yaml" in proc.stderr
    assert proc.stdout.strip().endswith("atexit handler ran")
    ok = run_cli(["version"])
    assert ok.returncode == 0 and ok.stdout.strip()
