"""Point-in-time feature build: `lakeforge.features.compute.compute_features` vs the same features in DuckDB SQL.

The workload (`bench/features_workload.py`): 1M synthetic events over 10k entities and 90 days
(``events.parquet``, the spine and the window source) and ~1.7M sensor readings
(``readings.parquet``, the as-of source). The feature set has 3 window aggregations (count 1d,
avg 7d with a 1h lag, sum 30d) and 1 as-of join (latest reading at or before the event, at most
6h old), declared in lakeforge's config vocabulary (``WINDOWS``, ``ASOF``) and compiled by
`feature_set_spec`. Runs alternate in one process: lakeforge (Spark ``local[2]``) builds the
features of the workload's whole date range and writes them to Parquet; the reference,
`duckdb_features` (2 threads), computes the same features in DuckDB SQL and writes them to
Parquet too (both ways: Arrow + `pyarrow.parquet.write_table`, and DuckDB's own ``COPY ... TO``;
the faster median is the reference). Before timing, every feature value of the two results is
compared (joined on ``event_id``, relative tolerance 1e-6, nulls equal) and the run fails loudly
on any difference.

Memory: the peak RSS of the Spark driver JVM (the ``java`` child of the Python process, polled
every 50 ms in a background thread) during one build in a fresh process at N and 2N events (the
readings stay the same), and the Python process's RSS alongside (``spark.driver.memory`` is
fixed at 4g, so the JVM's RSS is bounded by the heap it chooses to commit).

Where the time goes: the full build, windows only, the as-of join only and a bare scan of both
files, each computed without writing (Spark's ``noop`` sink), runs alternating.

Floor: Spark reading both inputs and writing a result of the same shape with no feature logic
(``spark_floor``, timed in the same alternation): what any Spark plan of this build costs at least.

Target: lakeforge time / DuckDB time <= 2.0, and the driver's peak RSS at 2N within 1.25x of N.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import psutil
import pyarrow.parquet as pq

from bench.features_workload import _SQL, ASOF, WINDOWS, Workload, duckdb_features, make_workload
from bench.harness import REPO_ROOT, Result, RssPeak, bench_spark, driver_jvm, median, report, time_alternating

NAME = "features"
TARGET_RATIO = 2.0
TARGET_MEMORY_RATIO = 1.25
SHUFFLE_PARTITIONS = 8  # conf/spark/local.yaml
DUCKDB_THREADS = 2
START = date(2024, 1, 1)  # the workload's first day (features_workload.START)
TIME_COLUMNS = {"events": "event_ts", "readings": "reading_ts"}
FEATURES = ("n_1d", "amount_mean_7d", "flagged_30d", "level")
REL_TOL = 1e-6
MB = 2**20
_PROBE_FLAG = "--memory-probe"
_PROBE_MARK = "MEMORY-PROBE "


def feature_set_node(windows: bool = True, asof: bool = True) -> Any:
    """The feature set as a config node: ``WINDOWS`` and ``ASOF`` over the events spine."""
    from omegaconf import OmegaConf

    node: dict[str, Any] = {
        "name": "bench_pit",
        "entity": ["event_id"],
        "spine": {"dataset": "events", "event_time": "event_ts"},
    }
    if windows:
        node["windows"] = [dict(w) for w in WINDOWS]
    if asof:
        node["asof_joins"] = [dict(ASOF)]
    return OmegaConf.create(node)


def datasets_node() -> Any:
    """The ``dataset`` node: each dataset's event time."""
    from omegaconf import OmegaConf

    return OmegaConf.create({name: {"event_time": column} for name, column in TIME_COLUMNS.items()})


def spec_for(windows: bool = True, asof: bool = True) -> Any:
    """The compiled feature set (windows and/or the as-of join)."""
    from lakeforge.features.spec import feature_set_spec

    return feature_set_spec(feature_set_node(windows, asof), datasets_node())


def parquet_tables(spark: Any, events_path: Path, readings_path: Path) -> Callable[[str], Any]:
    """``tables(name)`` for compute_features: the workload's Parquet files read by Spark.

    pyarrow writes naive timestamps (``isAdjustedToUTC=false``), which Spark 4 reads as
    TIMESTAMP_NTZ; lakeforge's raw tables hold TIMESTAMP (ingest casts to it) and
    compute_features needs it (``unix_micros``). The session time zone is UTC, so the cast keeps
    every instant.
    """
    from pyspark.sql import functions as F  # noqa: N812

    paths = {"events": events_path, "readings": readings_path}

    def tables(name: str) -> Any:
        column = TIME_COLUMNS[name]
        return spark.read.parquet(str(paths[name])).withColumn(column, F.col(column).cast("timestamp"))

    return tables


def build(spark: Any, spec: Any, tables: Callable[[str], Any], days: int) -> Any:
    """The features of every event of the workload's range, 2024-01-01 .. 2024-01-01 + days (inclusive)."""
    from lakeforge.features.compute import compute_features

    return compute_features(spark, spec, tables, START, START + timedelta(days=days))


def duckdb_copy(workload: Workload, target: Path) -> None:
    """The reference SQL, written by DuckDB itself (``COPY (...) TO``)."""
    params = {"events": str(workload.events_path), "readings": str(workload.readings_path)}
    with duckdb.connect(config={"threads": DUCKDB_THREADS}) as con:
        con.execute(f"COPY ({_SQL}) TO '{target}' (FORMAT parquet)", params)


def compare(lakeforge_dir: Path, duckdb_file: Path, events: int) -> dict[str, Any]:
    """Compare every feature of the two results on event_id; raise AssertionError on any difference."""

    def differs(column: str) -> str:
        a, b = f"l.{column}", f"d.{column}"
        same = (
            f"({a} IS NULL AND {b} IS NULL) OR ({a} IS NOT NULL AND {b} IS NOT NULL AND "
            f"abs({a} - {b}) <= {REL_TOL} * greatest(abs({a}), abs({b})))"
        )
        return f"NOT ({same})"

    joined = (
        f"read_parquet('{lakeforge_dir}/*.parquet') AS l "
        f"FULL OUTER JOIN read_parquet('{duckdb_file}') AS d ON l.event_id = d.event_id"
    )
    counts = ", ".join(
        [
            "count(*) AS rows",
            "count(*) FILTER (d.event_id IS NULL) AS only_lakeforge",
            "count(*) FILTER (l.event_id IS NULL) AS only_duckdb",
            *[f"count(*) FILTER ({differs(c)}) AS {c}_mismatches" for c in FEATURES],
            *[f"count(d.{c}) AS {c}_non_null" for c in FEATURES],
        ]
    )
    with duckdb.connect() as con:
        relation = con.sql(f"SELECT {counts} FROM {joined}")
        found = dict(zip(relation.columns, relation.fetchall()[0], strict=True))
        bad = (
            found["rows"] != events
            or found["only_lakeforge"]
            or found["only_duckdb"]
            or any(found[f"{c}_mismatches"] for c in FEATURES)
        )
        if bad:
            any_diff = " OR ".join(f"({differs(c)})" for c in FEATURES)
            cols = ", ".join(f"l.{c} AS lf_{c}, d.{c} AS dd_{c}" for c in FEATURES)
            examples = con.sql(
                f"SELECT coalesce(l.event_id, d.event_id) AS event_id, {cols} FROM {joined} "
                f"WHERE l.event_id IS NULL OR d.event_id IS NULL OR {any_diff} ORDER BY 1 LIMIT 5"
            ).fetchall()
            raise AssertionError(
                f"lakeforge and DuckDB features differ ({events:,} events expected): {found}; e.g. {examples}"
            )
    return found


def memory_probe(events_path: Path, readings_path: Path, days: int, warmup: bool = False) -> dict[str, Any]:
    """In a fresh process: start Spark, then one lakeforge build written to Parquet, RSS polled throughout
    (``warmup``: the first day built first, untimed, so the clock sees the steady state)."""
    spark = bench_spark(SHUFFLE_PARTITIONS)
    out = Path(tempfile.mkdtemp(prefix="lakeforge-bench-features-probe-"))
    try:
        tables = parquet_tables(spark, events_path, readings_path)
        spec = spec_for()
        jvm = driver_jvm()
        if jvm is None:
            raise RuntimeError("no java child process found: is Spark running in this process?")
        jvm_before = jvm.memory_info().rss
        python_before = psutil.Process().memory_info().rss
        # The heap the build used, besides what the JVM committed: peak per heap pool, reset first.
        management = spark.sparkContext._jvm.java.lang.management.ManagementFactory
        pools = [p for p in management.getMemoryPoolMXBeans() if str(p.getType().name()) == "HEAP"]
        for pool in pools:
            pool.resetPeakUsage()
        with RssPeak() as peak:
            if warmup:  # the first day only, untimed: workers started, code generated (peaks cover it)
                build(spark, spec, tables, 1).write.mode("overwrite").parquet(str(out / "warmup"))
            start = time.perf_counter()
            build(spark, spec, tables, days).write.mode("overwrite").parquet(str(out / "features"))
            seconds = time.perf_counter() - start
        return {
            "jvm_peak_bytes": peak.peaks["jvm"],
            # Sum of each heap pool's peak: an upper bound of the heap in use at any one time.
            "jvm_heap_peak_used_bytes": sum(pool.getPeakUsage().getUsed() for pool in pools),
            "jvm_heap_pool_peaks_mb": {str(pool.getName()): pool.getPeakUsage().getUsed() / MB for pool in pools},
            "jvm_before_bytes": jvm_before,
            "python_peak_bytes": peak.peaks["python"],
            "python_before_bytes": python_before,
            "build_s": seconds,
            "jvm_pid": jvm.pid,
        }
    finally:
        spark.stop()
        shutil.rmtree(out, ignore_errors=True)


def run_probe(workload: Workload, warmup: bool = False) -> dict[str, Any]:
    """Run `memory_probe` in a new Python process (a fresh driver JVM) and return what it measured."""
    cmd = [
        sys.executable,
        "-m",
        "bench.bench_features",
        _PROBE_FLAG,
        str(workload.events_path),
        str(workload.readings_path),
        str(workload.days),
        *(["warmup"] if warmup else []),
    ]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=REPO_ROOT)
    lines = [line for line in done.stdout.splitlines() if line.startswith(_PROBE_MARK)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"memory probe failed ({done.returncode}): {done.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix(_PROBE_MARK))


def _memory_summary(memory: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], float | None]:
    """The probes' peaks in MB and the driver JVM's ratio (2N / N); ({}, None) without probes."""
    if not memory:
        return {}, None
    jvm_n, jvm_2n = memory["n"]["jvm_peak_bytes"], memory["2n"]["jvm_peak_bytes"]
    return {
        **memory,
        "jvm_peak_mb_n": jvm_n / MB,
        "jvm_peak_mb_2n": jvm_2n / MB,
        "jvm_ratio": jvm_2n / jvm_n,
        "jvm_heap_peak_used_mb_n": memory["n"]["jvm_heap_peak_used_bytes"] / MB,
        "jvm_heap_peak_used_mb_2n": memory["2n"]["jvm_heap_peak_used_bytes"] / MB,
        "python_peak_mb_n": memory["n"]["python_peak_bytes"] / MB,
        "python_peak_mb_2n": memory["2n"]["python_peak_bytes"] / MB,
        "driver_memory": "4g",
        "note": "fresh process per size; readings (as-of source) do not double",
    }, jvm_2n / jvm_n


def floor_frame(spark: Any, tables: Callable[[str], Any]) -> Any:
    """Both inputs read in full and one output row per event with the result's columns, no feature logic.

    The readings are counted into the plan through a cross join with their row count (a 1-row
    aggregate), so Spark must scan them as a build does.
    """
    from pyspark.sql import functions as F  # noqa: N812

    readings = tables("readings").agg(F.count(F.col("level")).alias("_n"))
    events = tables("events").crossJoin(F.broadcast(readings))
    return events.select(
        "event_id",
        "event_ts",
        F.to_date("event_ts").alias("event_date"),
        F.col("_n").alias("n_1d"),
        F.col("amount").alias("amount_mean_7d"),
        F.col("is_flagged").cast("long").alias("flagged_30d"),
        F.col("amount").alias("level"),
    )


def plan_summary(frame: Any) -> dict[str, Any]:
    """How many shuffles, sorts and window operators Spark plans for ``frame``, and the plan text."""
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        frame.explain()
    plan = text.getvalue()
    count = {op: len(re.findall(rf"^\W*{op}\b", plan, flags=re.MULTILINE)) for op in ("Exchange", "Sort", "Window")}
    return {**{f"{k.lower()}s": v for k, v in count.items()}, "physical_plan": plan.strip()}


def _short(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k"


@contextlib.contextmanager
def _tracked(peaks: dict[str, list[int]], name: str) -> Iterator[None]:
    with RssPeak() as peak:
        yield
    peaks.setdefault(f"{name}.python", []).append(peak.peaks["python"])
    peaks.setdefault(f"{name}.jvm", []).append(peak.peaks["jvm"])


def main(quick: bool = False, workspace: Path | None = None) -> bool:
    """Run the benchmark, record it, and return whether time and memory met their targets.

    Under `python -m bench` (a ``workspace``) the memory probes are the scale benchmark's (the
    same build at 1M, 5M and 20M events), so they are not run here."""
    events = 100_000 if quick else 1_000_000
    runs = 3
    root = Path(tempfile.mkdtemp(prefix="lakeforge-bench-features-"))
    spark = None
    try:
        workload = make_workload(root / "n", events=events)
        out = root / "out"
        lakeforge_out, duckdb_out, copy_out = out / "lakeforge", out / "duckdb.parquet", out / "copy.parquet"
        floor_out = out / "floor"

        # Memory first, each size in a fresh process (a JVM's RSS only grows with what it has run).
        memory = {}
        if workspace is None:
            memory = {"n": run_probe(workload), "2n": run_probe(make_workload(root / "2n", events=2 * events))}

        spark = bench_spark(SHUFFLE_PARTITIONS)
        tables = parquet_tables(spark, workload.events_path, workload.readings_path)
        spec = spec_for()
        plan = plan_summary(build(spark, spec, tables, workload.days))
        peaks: dict[str, list[int]] = {}  # peak RSS per timed run

        def lakeforge() -> None:
            with _tracked(peaks, "lakeforge"):
                build(spark, spec, tables, workload.days).write.mode("overwrite").parquet(str(lakeforge_out))

        def reference() -> None:
            with _tracked(peaks, "duckdb"):
                pq.write_table(duckdb_features(workload, threads=DUCKDB_THREADS), duckdb_out)

        def reference_copy() -> None:
            duckdb_copy(workload, copy_out)

        def spark_floor() -> None:
            floor_frame(spark, tables).write.mode("overwrite").parquet(str(floor_out))

        def clean() -> None:
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)

        # Both results must agree before any timing means anything.
        clean()
        lakeforge()
        reference()
        agreement = compare(lakeforge_out, duckdb_out, events)
        reference_copy()
        copy_agreement = compare(lakeforge_out, copy_out, events)
        clean()
        peaks.clear()

        timings = time_alternating(
            {"lakeforge": lakeforge, "duckdb": reference, "duckdb_copy": reference_copy, "spark_floor": spark_floor},
            runs=runs,
            warmup=0,  # the agreement check above was the warm-up
            between=clean,
        )
        ours = median(timings["lakeforge"])
        arrow_s, copy_s = median(timings["duckdb"]), median(timings["duckdb_copy"])
        theirs = min(arrow_s, copy_s)
        ratio = ours / theirs

        # Where lakeforge's time goes: computed without writing, runs alternating.
        only_windows, only_asof = spec_for(asof=False), spec_for(windows=False)

        def noop(spec_: Any) -> Callable[[], None]:
            return lambda: build(spark, spec_, tables, workload.days).write.format("noop").mode("overwrite").save()

        def scan() -> None:
            for name in TIME_COLUMNS:
                tables(name).write.format("noop").mode("overwrite").save()

        split = time_alternating(
            {"full": noop(spec), "windows_only": noop(only_windows), "asof_only": noop(only_asof), "scan_only": scan},
            runs=runs,
            warmup=0,
        )
        split_medians = {name: median(values) for name, values in split.items()}
        timings.update({f"split.{name}": values for name, values in split.items()})

        memory_details, memory_ratio = _memory_summary(memory)
        details = {
            "events": events,
            "events_doubled": 2 * events if memory else None,
            "entities": workload.entities,
            "days": workload.days,
            "readings": workload.readings,
            "windows": len(WINDOWS),
            "asof_joins": 1,
            "shuffle_partitions": SHUFFLE_PARTITIONS,
            "duckdb_threads": DUCKDB_THREADS,
            "lakeforge_median_s": ours,
            "duckdb_arrow_write_median_s": arrow_s,
            "duckdb_copy_median_s": copy_s,
            "reference": "duckdb_copy" if copy_s < arrow_s else "duckdb (arrow + pyarrow write_table)",
            "ratio": ratio,
            "ratio_vs_arrow_write": ours / arrow_s,
            "ratio_vs_copy": ours / copy_s,
            "spark_floor_median_s": median(timings["spark_floor"]),
            "spark_floor_ratio": median(timings["spark_floor"]) / theirs,
            "spark_floor_note": (
                "Spark reading both inputs and writing a result of the same shape (1 row per event, "
                "same columns), no feature logic: the least any Spark plan of this build costs here"
            ),
            "agreement": {"rel_tol": REL_TOL, "rows_compared": agreement["rows"], **agreement},
            "agreement_copy": copy_agreement,
            "split_noop_median_s": split_medians,
            "split_note": "compute only (noop sink); write cost ~ lakeforge_median_s - split full",
            "memory": memory_details,
            "timed_run_peaks_mb": {name: [v / MB for v in values] for name, values in peaks.items()},
            "plan": plan,
        }
        result = Result(
            name=NAME,
            figure=(
                f"{events:,} events: lakeforge {ours:.1f} s vs DuckDB {theirs:.1f} s (x{ratio:.2f}; "
                f"Spark's bare read+write x{median(timings['spark_floor']) / theirs:.2f}); "
                + (
                    f"driver RSS {_short(events)} {memory_details['jvm_peak_mb_n']:,.0f} MB, "
                    f"{_short(2 * events)} {memory_details['jvm_peak_mb_2n']:,.0f} MB (x{memory_ratio:.2f})"
                    if memory_ratio is not None
                    else "driver memory: see scale"
                )
            ),
            target=f"ratio <= {TARGET_RATIO:.1f}"
            + (f" and driver RSS x<={TARGET_MEMORY_RATIO:.2f}" if memory_ratio is not None else ""),
            passed=ratio <= TARGET_RATIO and (memory_ratio is None or memory_ratio <= TARGET_MEMORY_RATIO),
            ratio=ratio,
            timings=timings,
            details=details,
        )
        report(result)
        return result.passed
    finally:
        if spark is not None:
            spark.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    if _PROBE_FLAG in sys.argv:
        at = sys.argv.index(_PROBE_FLAG)
        args = sys.argv[at + 1 :]
        measured = memory_probe(Path(args[0]), Path(args[1]), int(args[2]), warmup=args[3:] == ["warmup"])
        print(_PROBE_MARK + json.dumps(measured), flush=True)
        sys.exit(0)
    sys.exit(0 if main(quick="--quick" in sys.argv) else 1)
