"""Batch scoring: `lakeforge.scoring.job.score` end to end vs LightGBM's own predict and MLflow's spark_udf.

The workload (`bench/score_workload.py`): 5M rows x 30 numeric features (~2% nulls) in
``features.bench_score`` (one date, one file, as `build_features` lays it out) over the spine
``raw.events``, and a LightGBM classifier (100 trees, 31 leaves) trained on 200k of them, registered in
a SQLite MLflow store as ``bench_score@champion``. Runs alternate in one process (Spark ``local[2]``):

- ``limit``: ``predict_proba`` of the same rows as one in-memory float64 numpy array, LightGBM's
  default threads (all cores): the most any scoring of this model can do here;
- ``lakeforge``: `score` with ``model.scoring.reasons.method=none``: the model loaded by alias, the
  Delta read of the date's feature rows, the coverage accounting against the spine (whose key is
  declared, as a dataset config declares it), ``mapInArrow`` scoring with per-batch validation, one
  Delta commit to ``predictions.bench_score`` and one to its ``__missing`` table;
- ``lakeforge_reasons``: the same with the default reasons (``auto`` -> path attribution, top 5);
- ``spark_udf``: ``mlflow.pyfunc.spark_udf(spark, model_uri, result_type="array<double>")``, otherwise
  its defaults (the default result type, inferred from the signature, fails), on the same Delta
  feature frame (features passed as one struct), ``id, ts, score`` written to Parquet.

Writes go to folders removed between runs. Before timing, a warm-up on the 1M-row date checks every
score of lakeforge and spark_udf against ``predict_proba`` (1e-9).

Where the time of ``lakeforge`` goes: each step of `score` timed in every timed run (by wrapping
the functions `score` calls; the rest is "other"). ``--diagnose`` adds the scoring stage's pieces
in isolation (Spark's ``noop`` sink): the Delta read, an Arrow round trip through a Python worker,
a bare ``mapInArrow`` predict, and lakeforge's `Scorer` with and without reasons.

Memory: one `score` (default reasons) in a fresh process at 1M and at 5M rows: the Python driver's
peak RSS (polled; ``getrusage``'s is recorded but not judged, as it keeps the launching process's
peak across ``exec``), the driver JVM's (polled) and its peak heap in use, and the Python workers'
(polled, PSS summed over the workers). Under `python -m bench` the scale benchmark measures this
(1M, 5M, 20M) and the probes are not run here.

Targets: lakeforge rows/s >= 0.75 x the limit's (no reasons); with reasons <= 2x the time without;
the Python driver's peak RSS at 5M <= 1.10 x at 1M.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from bench.harness import REPO_ROOT, Result, RssPeak, bench_spark, median, report, time_alternating
from bench.score_workload import (
    DAY,
    FEATURE_SET,
    FEATURES,
    LGBM_PARAMS,
    MODEL,
    SMALL_DAY,
    TRAIN_EVERY,
    feature_matrix,
    register_model,
    score_config,
    write_tables,
)

NAME = "score"
TARGET_THROUGHPUT = 0.75  # lakeforge (no reasons) rows/s / limit rows/s, at least
TARGET_REASONS = 2.0  # lakeforge with reasons time / without, at most
TARGET_MEMORY = 1.10  # Python driver peak RSS at 5M / at 1M, at most
SHUFFLE_PARTITIONS = 8  # conf/spark/local.yaml
AGREEMENT_TOL = 1e-9
UDF_RESULT_TYPE = "array<double>"
MB = 2**20
# The functions `score` calls whose time the breakdown reports (those of lakeforge.scoring.job's module
# attributes that exist: the job is still changing).
STEPS = (
    "load_model",
    "_features_for",
    "population_of",
    "account",
    "duplicate_keys",
    "day_counts",
    "_write",
    "_write_missing",
    "write_model_versions",
    "_exports",
)
_PROBE_FLAG = "--memory-probe"
_PROBE_MARK = "MEMORY-PROBE "


# --- the candidates -------------------------------------------------------------------------------


@contextlib.contextmanager
def timed_steps(into: dict[str, float]) -> Iterator[None]:
    """Time the steps of `score` (`STEPS`) while inside; seconds per step summed into ``into``."""
    from lakeforge.scoring import job

    originals = {name: getattr(job, name) for name in STEPS if callable(getattr(job, name, None))}

    def wrap(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                into[name] = into.get(name, 0.0) + time.perf_counter() - started

        return timed

    for name, fn in originals.items():
        setattr(job, name, wrap(name, fn))
    try:
        yield
    finally:
        for name, fn in originals.items():
            setattr(job, name, fn)
        for name in originals:
            into.setdefault(name, 0.0)


def run_score(spark: Any, cfg: Any, catalog: Any) -> Any:
    """One scoring job, as `lakeforge run score` runs it (a fresh job run id)."""
    from lakeforge.lake.delta import Lineage, new_job_run_id
    from lakeforge.scoring.job import score

    return score(spark, cfg, catalog, Lineage(job_run_id=new_job_run_id(), step="score"))


def feature_frame(spark: Any, catalog: Any, day: date) -> Any:
    """The date's rows of features.bench_score, read as the job reads them."""
    from lakeforge.lake.delta import read_table

    iso = day.isoformat()
    return read_table(spark, catalog, f"features.{FEATURE_SET}", partitions=lambda p: p.get("event_date") == iso)


def spark_udf_scores(spark: Any, catalog: Any, model_uri: str, day: date, target: Path) -> None:
    """MLflow's spark_udf (defaults but the result type): features as one struct in, P(class 1) to Parquet."""
    import mlflow.pyfunc
    from pyspark.sql import functions as F  # noqa: N812

    # The one setting that is not a default: with the result type inferred from the signature's output
    # (a float64 tensor of shape (-1, 2)) MLflow asks for array<array<double>> and every batch fails
    # ("'numpy.float64' object is not iterable"); array<double> is what predict_proba returns per row.
    predict = mlflow.pyfunc.spark_udf(spark, model_uri, result_type=UDF_RESULT_TYPE)
    frame = feature_frame(spark, catalog, day)
    scored = frame.select("id", "ts", predict(F.struct(*FEATURES)).getItem(1).alias("score"))
    scored.write.mode("overwrite").parquet(str(target))


# --- agreement -------------------------------------------------------------------------------------


def check_agreement(catalog: Any, estimator: Any, day: date, udf_out: Path | None, reasons: bool) -> dict[str, Any]:
    """Every score of predictions.bench_score (``day``) and of spark_udf's output (when given) vs
    ``predict_proba``; the reasons method of every prediction row. Raises AssertionError on a difference."""
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    from lakeforge.lake.delta import arrow_dataset

    x = feature_matrix(catalog, day)
    ids = arrow_dataset(catalog, f"features.{FEATURE_SET}").to_table(
        columns=["id"], filter=ds.field("event_date") == day
    )
    expected = dict(zip(ids.column("id").to_numpy(), estimator.predict_proba(x)[:, 1], strict=True))
    found: dict[str, Any] = {"rows": len(expected)}
    predictions = arrow_dataset(catalog, f"predictions.{MODEL}").to_table(
        columns=["id", "score", "reasons", "reasons_method"]
    )
    tables = [("lakeforge", predictions)]
    if udf_out is not None:
        tables.append(("spark_udf", pq.read_table(udf_out, columns=["id", "score"])))
    for name, table in tables:
        got = table.column("score").to_numpy()
        want = np.array([expected[i] for i in table.column("id").to_numpy()])
        if table.num_rows != len(expected) or not np.allclose(got, want, rtol=0, atol=AGREEMENT_TOL):
            raise AssertionError(
                f"{name}: {table.num_rows:,} scores, {len(expected):,} expected; "
                f"max |difference| {np.max(np.abs(got - want)) if len(got) == len(want) else 'n/a'}"
            )
        found[f"{name}_max_abs_diff"] = float(np.max(np.abs(got - want)))
    methods = set(predictions.column("reasons_method").to_pylist())
    if methods != ({"path"} if reasons else {"none"}):
        raise AssertionError(f"reasons_method {methods}, expected {'path' if reasons else 'none'}")
    return found


# --- memory ------------------------------------------------------------------------------------------


def memory_probe(root: Path, day: date, reasons: str = "auto", warmup: date | None = None) -> dict[str, Any]:
    """In a fresh process: start Spark, then one `score` of ``day`` (reasons method ``reasons``, default
    ``auto``: path attribution), RSS polled throughout. ``warmup``: a date scored first, untimed
    (Python workers started, modules imported, model loaded), so the clock sees the steady state;
    the peaks still cover it."""
    from lakeforge.lake.catalog import Catalog

    spark = bench_spark(SHUFFLE_PARTITIONS)
    try:
        catalog = Catalog(root / "lake")
        cfg = score_config(root, run_date=day, reasons={"method": reasons})
        management = spark.sparkContext._jvm.java.lang.management.ManagementFactory
        pools = [p for p in management.getMemoryPoolMXBeans() if str(p.getType().name()) == "HEAP"]
        for pool in pools:
            pool.resetPeakUsage()
        before = {"python": psutil.Process().memory_info().rss, "maxrss": _maxrss()}
        with RssPeak() as peak:
            if warmup is not None:
                run_score(spark, score_config(root, run_date=warmup, reasons={"method": reasons}), catalog)
            started = time.perf_counter()
            result = run_score(spark, cfg, catalog)
            seconds = time.perf_counter() - started
        return {
            "rows": result.rows,
            "warmup": warmup.isoformat() if warmup else None,
            "score_s": seconds,
            "python_maxrss_bytes": _maxrss(),
            "python_maxrss_before_bytes": before["maxrss"],
            "python_before_bytes": before["python"],
            "python_peak_bytes": peak.peaks["python"],
            "jvm_peak_bytes": peak.peaks["jvm"],
            # Sum of each heap pool's peak: an upper bound of the heap in use at any one time.
            "jvm_heap_peak_used_bytes": sum(pool.getPeakUsage().getUsed() for pool in pools),
            "workers_peak_bytes": peak.peaks["workers"],
        }
    finally:
        spark.stop()


def _memory_summary(memory: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], float | None]:
    """The probes' peaks in MB and the Python driver's ratio (5M / 1M); ({}, None) without probes.

    The ratio uses the polled peak RSS: ``ru_maxrss`` survives ``exec`` on Linux, so a probe
    started from this (large) process would report this process's own peak as its floor."""
    if not memory:
        return {}, None
    ratio = memory["full"]["python_peak_bytes"] / memory["small"]["python_peak_bytes"]
    return {
        **memory,
        "python_peak_mb": {k: memory[k]["python_peak_bytes"] / MB for k in memory},
        "python_ratio": ratio,
        "jvm_peak_mb": {k: memory[k]["jvm_peak_bytes"] / MB for k in memory},
        "jvm_heap_peak_used_mb": {k: memory[k]["jvm_heap_peak_used_bytes"] / MB for k in memory},
        "workers_peak_pss_mb": {k: memory[k]["workers_peak_bytes"] / MB for k in memory},
        "driver_memory": "4g",
        "note": "one score() (default reasons) in a fresh process per size; cold JVM and workers",
    }, ratio


def _maxrss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def run_probe(root: Path, day: date, reasons: str = "auto", warmup: date | None = None) -> dict[str, Any]:
    """Run `memory_probe` in a new Python process (a fresh driver JVM) and return what it measured."""
    cmd = [sys.executable, "-m", "bench.bench_score", _PROBE_FLAG, str(root), day.isoformat(), reasons]
    cmd += [warmup.isoformat()] if warmup else []
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=REPO_ROOT)
    lines = [line for line in done.stdout.splitlines() if line.startswith(_PROBE_MARK)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"memory probe failed ({done.returncode}): {done.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix(_PROBE_MARK))


# --- diagnosis: the scoring stage's pieces ---------------------------------------------------------


def stage_pieces(spark: Any, catalog: Any, root: Path, runs: int) -> dict[str, list[float]]:
    """The scoring stage's pieces on `DAY`, Spark's noop sink, runs alternating (see the module doc).

    ``scorer_*`` run lakeforge's `Scorer` as the job configures it (pass-through keys, run date and
    canary bucket; ``_b<rows>``: another Arrow batch size, ``_t2``: 2 LightGBM threads per task).
    """
    import pickle

    import pyarrow as pa
    from pyspark.sql import functions as F  # noqa: N812
    from pyspark.sql import types as T  # noqa: N812

    from lakeforge.scoring.model import load_model
    from lakeforge.scoring.predict import Scorer
    from lakeforge.tracking.store import connect

    cfg = score_config(root)
    model = load_model(connect(cfg).client, MODEL, "champion", "classification")
    default_rows = int(cfg.model.scoring.batch_rows)
    passthrough = ("id", "ts", "run_date", "_lf_bucket")

    def inputs() -> Any:
        frame = feature_frame(spark, catalog, DAY).withColumnRenamed("event_date", "run_date")
        return frame.withColumn("_lf_bucket", F.lit(0.5))

    def noop(frame: Any, batch_rows: int = default_rows) -> None:
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(batch_rows))
        frame.write.format("noop").mode("overwrite").save()

    def read() -> None:
        noop(feature_frame(spark, catalog, DAY))

    def arrow_round_trip() -> None:
        frame = inputs().select("id", "ts", *FEATURES)

        def first_column(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            for batch in batches:
                yield pa.RecordBatch.from_arrays([batch.column(0)], names=["id"])

        noop(frame.mapInArrow(first_column, "id long"))

    booster_text = spark.sparkContext.broadcast(model.estimator.booster_.model_to_string())

    def bare_predict() -> None:
        frame = inputs().select("id", *FEATURES)

        def predict(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            import lightgbm as lgb

            booster = lgb.Booster(model_str=booster_text.value)
            for batch in batches:
                x = np.column_stack(
                    [batch.column(j).to_numpy(zero_copy_only=False) for j in range(1, len(FEATURES) + 1)]
                )
                score = booster.predict(x, num_threads=1)
                yield pa.RecordBatch.from_arrays([batch.column(0), pa.array(score)], names=["id", "score"])

        noop(frame.mapInArrow(predict, "id long, score double"))

    payload = spark.sparkContext.broadcast(pickle.dumps(model.estimator))
    reason = T.StructType([T.StructField("feature", T.StringType()), T.StructField("contribution", T.DoubleType())])

    def scorer(method: str, batch_rows: int = default_rows, threads: int = 1) -> Callable[[], None]:
        def run() -> None:
            job_scorer = Scorer(
                key=f"bench|{model.uri}|{method}",
                label="bench",
                model=payload,
                features=model.features,
                task="classification",
                threshold=0.5,
                method=method,
                top_k=5,
                exact_min_score=None,
                num_threads=threads,
                passthrough=passthrough,
            )
            frame = inputs().select(*passthrough, *model.features)
            schema = T.StructType(
                [
                    *(frame.schema[name] for name in passthrough),
                    T.StructField("score", T.DoubleType()),
                    T.StructField("prediction", T.IntegerType()),
                    T.StructField("reasons", T.ArrayType(reason)),
                    T.StructField("reasons_method", T.StringType()),
                ]
            )
            noop(frame.mapInArrow(job_scorer, schema), batch_rows)

        return run

    return time_alternating(
        {
            "read": read,
            "arrow_round_trip": arrow_round_trip,
            "bare_predict": bare_predict,
            "scorer_none": scorer("none"),
            "scorer_none_b100k": scorer("none", batch_rows=100_000),
            "scorer_none_t2": scorer("none", threads=2),
            "scorer_path": scorer("path"),
        },
        runs=runs,
        warmup=0,  # the workers and the JVM are warm from the main runs
    )


# --- the benchmark ----------------------------------------------------------------------------------


def main(
    quick: bool = False,
    rows: int | None = None,
    small_rows: int | None = None,
    runs: int = 3,
    diagnose: bool = False,
    build: bool = False,
    keep: Path | None = None,
    workspace: Path | None = None,
) -> bool:
    """Run the benchmark, record it, and return whether it met its targets. ``keep``: the project
    folder, reused when it holds one; ``workspace``: `python -m bench`'s, whose ``score`` folder
    the monitor and scale benchmarks use too. Under `python -m bench` the memory probes are the
    scale benchmark's (the same workload at 1M, 5M and 20M rows), so they are not run here."""
    import mlflow

    from lakeforge.lake.catalog import Catalog

    keep = keep or (workspace / "score" if workspace is not None else None)
    probe_memory = workspace is None
    rows = rows or (500_000 if quick else 5_000_000)
    small_rows = small_rows or max(1, rows // 5)
    root = keep or Path(tempfile.mkdtemp(prefix="lakeforge-bench-score-"))
    spark = None
    started_all = time.perf_counter()
    try:
        catalog = Catalog(root / "lake")
        spark = bench_spark(SHUFFLE_PARTITIONS)
        setup: dict[str, float] = {}
        reused = catalog.exists(f"features.{FEATURE_SET}")
        if not reused:
            _, setup = write_tables(spark, root, catalog, rows, small_rows, build)

        started = time.perf_counter()
        x = feature_matrix(catalog, DAY)
        setup["read_matrix_s"] = time.perf_counter() - started
        if len(x) != rows:
            raise RuntimeError(f"features.{FEATURE_SET} holds {len(x):,} rows of {DAY}, expected {rows:,}")
        started = time.perf_counter()
        cfg = score_config(root)
        if reused:
            from lakeforge.tracking.store import connect

            connect(cfg)
            model_uri = f"models:/{MODEL}@champion"
        else:
            _, model_uri = register_model(cfg, np.ascontiguousarray(x[::TRAIN_EVERY]))
        estimator = mlflow.sklearn.load_model(model_uri)
        setup["train_register_s"] = time.perf_counter() - started

        # Memory first, each size in a fresh process (a JVM's RSS only grows with what it has run).
        started = time.perf_counter()
        memory = {"small": run_probe(root, SMALL_DAY), "full": run_probe(root, DAY)} if probe_memory else {}
        setup["memory_probes_s"] = time.perf_counter() - started

        out = root / "out"
        plain = {"reasons": {"method": "none"}}
        steps: dict[str, list[dict[str, float]]] = {"lakeforge": [], "lakeforge_reasons": []}

        def lakeforge_run(scoring: dict[str, Any], name: str, day: date) -> Callable[[], None]:
            day_cfg = score_config(root, run_date=day, **scoring)  # reasons default: auto -> path, top 5

            def run() -> None:
                parts: dict[str, float] = {}
                with timed_steps(parts):
                    run_score(spark, day_cfg, catalog)
                if day == DAY:
                    steps[name].append(parts)

            return run

        def limit() -> None:
            estimator.predict_proba(x)

        def reference_udf(day: date) -> Callable[[], None]:
            return lambda: spark_udf_scores(spark, catalog, model_uri, day, out / "udf")

        def clean() -> None:
            shutil.rmtree(root / "lake" / "predictions", ignore_errors=True)
            shutil.rmtree(out, ignore_errors=True)

        # Warm-up on the small date, doubling as the agreement check of every score.
        started = time.perf_counter()
        clean()
        lakeforge_run({}, "lakeforge_reasons", SMALL_DAY)()
        agreement = {"reasons": check_agreement(catalog, estimator, SMALL_DAY, None, reasons=True)}
        clean()
        lakeforge_run(plain, "lakeforge", SMALL_DAY)()
        reference_udf(SMALL_DAY)()
        agreement["none"] = check_agreement(catalog, estimator, SMALL_DAY, out / "udf", reasons=False)
        clean()
        estimator.predict_proba(x[:100_000])
        setup["warmup_check_s"] = time.perf_counter() - started

        timings = time_alternating(
            {
                "limit": limit,
                "lakeforge": lakeforge_run(plain, "lakeforge", DAY),
                "lakeforge_reasons": lakeforge_run({}, "lakeforge_reasons", DAY),
                "spark_udf": reference_udf(DAY),
            },
            runs=runs,
            warmup=0,  # the warm-up above
            between=clean,
        )
        seconds = {name: median(values) for name, values in timings.items()}
        rate = {name: rows / s for name, s in seconds.items()}
        throughput = rate["lakeforge"] / rate["limit"]
        reasons_ratio = seconds["lakeforge_reasons"] / seconds["lakeforge"]
        udf_ratio = rate["spark_udf"] / rate["limit"]
        for name, runs_ in steps.items():  # one dict per timed run, in the order of timings[name]
            for run, total in zip(runs_, timings[name], strict=True):
                run["other"] = total - sum(run.values())
        breakdown = {
            name: {step: median([run[step] for run in runs_]) for step in runs_[0]} for name, runs_ in steps.items()
        }

        pieces: dict[str, list[float]] = {}
        if diagnose:
            pieces = stage_pieces(spark, catalog, root, runs)
            timings.update({f"stage.{name}": values for name, values in pieces.items()})

        memory_details, memory_ratio = _memory_summary(memory)
        details = {
            "rows": rows,
            "small_rows": small_rows,
            "features": len(FEATURES),
            "model": {**LGBM_PARAMS, "train_rows": len(range(0, rows, TRAIN_EVERY))},
            "feature_table": "build_features" if build else "written directly (build_features' layout)",
            "reused_project": reused,
            "median_s": seconds,
            "rows_per_s": rate,
            "ratios": {
                "lakeforge_vs_limit_rows_per_s": throughput,
                "lakeforge_reasons_vs_limit_rows_per_s": rate["lakeforge_reasons"] / rate["limit"],
                "reasons_time_vs_no_reasons": reasons_ratio,
                "spark_udf_vs_limit_rows_per_s": udf_ratio,
                "lakeforge_vs_spark_udf_rows_per_s": rate["lakeforge"] / rate["spark_udf"],
            },
            "score_steps_median_s": breakdown,
            "score_steps_note": (
                "time inside each function score() calls (lakeforge.scoring.job); _write is the scoring stage "
                "(read, mapInArrow predict + validation + reasons, Parquet write, Delta commit); _counts and "
                "_write_missing each run the population join (raw spine x feature keys); duplicate_keys one "
                "aggregation over the keys"
            ),
            "stage_pieces_median_s": {name: median(values) for name, values in pieces.items()},
            "spark_udf": (
                f"mlflow.pyfunc.spark_udf defaults (env_manager local) but result_type='{UDF_RESULT_TYPE}' (the "
                "default inferred from the signature, array<array<double>>, fails on every batch); the 30 features "
                "as one struct; id, ts, score (element 1) written to Parquet"
            ),
            "lakeforge_writes": "Delta predictions.bench_score (keys, score, prediction, reasons, lineage columns) "
            "and predictions.bench_score__missing",
            "arrow_max_records_per_batch_session": spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch"),
            "agreement": {"tolerance": AGREEMENT_TOL, "date": SMALL_DAY.isoformat(), **agreement},
            "memory": memory_details,
            "setup_s": setup,
            "wall_s": time.perf_counter() - started_all,
        }
        short = f"{small_rows // 1_000_000}M" if small_rows % 1_000_000 == 0 else f"{small_rows // 1000}k"
        full = f"{rows // 1_000_000}M" if rows % 1_000_000 == 0 else f"{rows // 1000}k"
        result = Result(
            name=NAME,
            figure=(
                f"{rows:,} rows: lakeforge {rate['lakeforge']:,.0f} rows/s (x{throughput:.2f} of LightGBM's "
                f"{rate['limit']:,.0f}), with reasons x{reasons_ratio:.2f} the time, spark_udf x{udf_ratio:.2f}; "
                + (
                    f"Python driver peak {short} {memory_details['python_peak_mb']['small']:,.0f} MB, "
                    f"{full} {memory_details['python_peak_mb']['full']:,.0f} MB"
                    if memory
                    else "driver memory: see scale"
                )
            ),
            target=(
                f"rows/s >= {TARGET_THROUGHPUT:.2f}x LightGBM, reasons <= {TARGET_REASONS:.1f}x"
                + (f", driver RSS x<={TARGET_MEMORY:.2f}" if memory else "")
            ),
            passed=throughput >= TARGET_THROUGHPUT
            and reasons_ratio <= TARGET_REASONS
            and (memory_ratio is None or memory_ratio <= TARGET_MEMORY),
            ratio=throughput,
            timings=timings,
            details=details,
        )
        report(result)
        return result.passed
    finally:
        if spark is not None:
            spark.stop()
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_score", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="500k rows: checks the benchmark works")
    parser.add_argument("--rows", type=int, help="rows on the scored date (default 5,000,000)")
    parser.add_argument("--small-rows", type=int, help="rows on the memory probe's small date (default rows / 5)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per candidate (median; at least 3)")
    parser.add_argument("--diagnose", action="store_true", help="also time the scoring stage's pieces")
    parser.add_argument(
        "--build-features",
        action="store_true",
        help="build the feature table with build_features (+~5 min at 5M) instead of writing it directly",
    )
    parser.add_argument(
        "--project", type=Path, help="keep the project in this folder, or reuse the one there (skips setup)"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    if _PROBE_FLAG in sys.argv:
        at = sys.argv.index(_PROBE_FLAG)
        args = sys.argv[at + 1 :]
        warm = date.fromisoformat(args[3]) if len(args) > 3 else None
        measured = memory_probe(Path(args[0]), date.fromisoformat(args[1]), args[2], warm)
        print(_PROBE_MARK + json.dumps(measured), flush=True)
        sys.exit(0)
    args = _parse(sys.argv[1:])
    passed = main(
        quick=args.quick,
        rows=args.rows,
        small_rows=args.small_rows,
        runs=args.runs,
        diagnose=args.diagnose,
        build=args.build_features,
        keep=args.project,
    )
    sys.exit(0 if passed else 1)
