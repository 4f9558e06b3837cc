"""The scoring stage's data plane: Spark schedules the tasks, pyarrow moves the rows.

Each task gets a `Unit`: one row group of a Parquet file that holds feature rows of one run
date (a file of ``features.<set>``, or of the rows the job set aside for a date whose feature
rows differ from the population). The task reads the columns the models need with pyarrow, in
batches of ``batch_rows``; drops the rows with a null required feature (the job counted them as
missing already); scores each batch with every alias (`lakeforge.scoring.predict.Scorer`: the
model loaded once per worker, each batch validated); adds the served flag and the lineage
columns; and writes one Parquet file into the write's staging folder,
``run_date=<date>/part-<unit>.parquet``, under a hidden name first and then renamed, so a retried
task replaces its file whole. The driver commits the staged files in one Delta transaction
(`lakeforge.lake.delta_write.write_staged`).

Why not a DataFrame through ``mapInArrow`` and Spark's Parquet writer: every row would cross
between the JVM and Python twice and go through Spark's writer. On 5M rows
(``python -m bench.bench_score``) that path ran at 0.45x the rows/s of LightGBM's own predict in
one process; reading and writing with pyarrow in the task is what closes most of the gap. Spark
still places and retries the tasks, so the stage scales out like any Spark job on a file system
the executors share (as Spark's own writes to the lake require).

A task returns the number of rows it wrote and the rows a model raised on (with the error). They
travel with the task's result, so a retried task is not counted twice.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from lakeforge.scoring.hashing import bucket
from lakeforge.scoring.predict import EXACT, Scorer

RUN_DATE = "run_date"
BUCKET = "_lf_bucket"
SERVED = "served"
CANARY_SALT = "canary"
EXACT_SALT = "exact-reasons"
# Which of an alias's rows are served: every row, those outside or inside the canary, none.
ServedRule = Literal["all", "outside-canary", "inside-canary", "none"]


@dataclass(frozen=True)
class Unit:
    """One task's input: rows ``start:stop`` of a row group of a Parquet file whose rows all
    belong to ``run_date``."""

    path: str
    row_group: int
    run_date: str  # YYYY-MM-DD
    start: int
    stop: int


class ErrorRows(list[Any]):
    """The rows a model raised on in one task: (key values, model label, reason)."""

    def add(self, rows: list[Any]) -> None:
        self.extend(rows)


@dataclass(frozen=True)
class Alias:
    """One model version's part of the output: its scorer, its constant columns, which rows it serves."""

    scorer: Scorer
    columns: dict[str, Any]  # model_name, model_alias, model_version, model_run_id
    served: ServedRule


@dataclass(frozen=True)
class Plan:
    """Everything a task needs; pickled into each task (the models travel as broadcasts)."""

    aliases: tuple[Alias, ...]
    entity: tuple[str, ...]
    columns: tuple[str, ...]  # read from the files: keys and every alias's features
    required: tuple[str, ...]  # a null here: the row is not scored
    canary: float | None  # the canary's fraction of entities
    exact_fraction: float  # the stable sample of entities that get exact TreeSHAP reasons
    constants: dict[str, Any]  # feature_table, feature_table_version, scored_at, job_run_id
    schema: pa.Schema  # the prediction table's columns, in order
    staging: str
    batch_rows: int

    def __call__(self, units: Iterable[tuple[int, Unit]]) -> Iterator[tuple[int, list[Any]]]:
        """``mapPartitions`` body: one (rows written, model errors) per unit."""
        for number, unit in units:
            yield self.run(number, unit)

    def run(self, number: int, unit: Unit) -> tuple[int, list[Any]]:
        """Score one unit into ``<staging>/run_date=<date>/part-<number>.parquet``."""
        import pyarrow.parquet as pq

        errors = ErrorRows()
        scorers = [replace(a.scorer, errors=errors) for a in self.aliases]
        folder = Path(self.staging) / f"{RUN_DATE}={unit.run_date}"
        folder.mkdir(parents=True, exist_ok=True)
        hidden = folder / f".part-{number:05d}.parquet.tmp"
        rows = 0
        writer = None
        try:
            for batch in self.batches(unit):
                for alias, scorer in zip(self.aliases, scorers, strict=True):
                    out = self.rows(alias, scorer.score_batch(batch))
                    if writer is None:
                        # Dictionaries for the text columns (the lineage repeats on every row); the
                        # scores and keys are unique, a dictionary would only be tried and dropped.
                        text = [f.name for f in self.schema if pa.types.is_string(f.type)]
                        writer = pq.ParquetWriter(hidden, self.schema, compression="snappy", use_dictionary=text)
                    writer.write_table(out)
                    rows += out.num_rows
        finally:
            if writer is not None:
                writer.close()
        if writer is not None:
            os.replace(hidden, folder / f"part-{number:05d}.parquet")
        return rows, list(errors)

    def batches(self, unit: Unit) -> Iterator[pa.RecordBatch]:
        """The unit's rows to score, with their run date, canary bucket and exact-reasons mark."""
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        day = pa.scalar(date.fromisoformat(unit.run_date), pa.date32())
        source = pq.ParquetFile(unit.path)
        offset = 0  # of the batch read, in the row group
        # One thread: the task has its core, the other cores run other tasks.
        batches = source.iter_batches(
            self.batch_rows, row_groups=[unit.row_group], columns=list(self.columns), use_threads=False
        )
        for read in batches:
            first, offset = offset, offset + read.num_rows
            if offset <= unit.start:
                continue  # before the unit's rows: decoded, not scored
            if first >= unit.stop:
                break
            batch = read.slice(max(0, unit.start - first), unit.stop - max(first, unit.start))
            if self.required:
                complete = pc.is_valid(batch.column(self.required[0]))
                for name in self.required[1:]:
                    complete = pc.and_(complete, pc.is_valid(batch.column(name)))
                batch = batch.filter(complete)
            n = batch.num_rows
            if not n:
                continue
            extra = {RUN_DATE: pa.repeat(day, n)}
            hashed = self.canary is not None or self.exact_fraction > 0
            keys = list(zip(*(batch.column(c).to_pylist() for c in self.entity), strict=True)) if hashed else []
            if self.canary is not None:
                extra[BUCKET] = pa.array([bucket(k, CANARY_SALT) for k in keys], pa.float64())
            else:
                extra[BUCKET] = pa.repeat(pa.scalar(0.0), n)
            if self.exact_fraction > 0:
                extra[EXACT] = pa.array([bucket(k, EXACT_SALT) < self.exact_fraction for k in keys], pa.bool_())
            yield pa.RecordBatch.from_arrays([*batch.columns, *extra.values()], names=[*batch.schema.names, *extra])

    def rows(self, alias: Alias, scored: pa.RecordBatch) -> pa.Table:
        """A scored batch as prediction-table rows: the served flag and the lineage columns added."""
        n = scored.num_rows
        values: dict[str, Any] = {**alias.columns, **self.constants}
        arrays = []
        for field in self.schema:
            if field.name == SERVED:
                column = self._served(alias.served, scored.column(BUCKET))
            elif field.name in values:
                column = pa.repeat(pa.scalar(values[field.name], field.type), n)
            else:
                column = scored.column(field.name)
            arrays.append(column if column.type == field.type else column.cast(field.type))
        return pa.Table.from_arrays(arrays, schema=self.schema)

    def _served(self, rule: ServedRule, buckets: pa.Array) -> pa.Array:
        n = len(buckets)
        if rule == "all" or (rule == "outside-canary" and self.canary is None):
            return pa.repeat(pa.scalar(True), n)
        if rule == "none":
            return pa.repeat(pa.scalar(False), n)
        b = buckets.to_numpy(zero_copy_only=False)
        fraction = float(self.canary or 0.0)
        return pa.array(b >= fraction if rule == "outside-canary" else b < fraction, pa.bool_())


def units_of(files: Iterable[tuple[str, str]], min_units: int = 1, min_rows: int = 1) -> list[Unit]:
    """The units of the (path, run date) files: one per row group, footers read on the driver.

    With fewer row groups than ``min_units``, each is split into row ranges (of ``min_rows`` rows
    at least), so that the tasks are many and alike and no core idles while the last big one
    runs. A range after the first decodes the rows before it without scoring them, a small cost
    next to the model's."""
    import pyarrow.parquet as pq

    groups = []
    for path, run_date in files:
        meta = pq.ParquetFile(path).metadata
        groups += [(path, g, meta.row_group(g).num_rows, run_date) for g in range(meta.num_row_groups)]
    parts = max(1, -(-min_units // max(1, len(groups))))
    units = []
    for path, group, rows, run_date in groups:
        step = -(-rows // max(1, min(parts, rows // max(1, min_rows))))
        units += [Unit(path, group, run_date, start, min(rows, start + step)) for start in range(0, rows, step)]
    return units


def run_tasks(spark: Any, plan: Plan, units: list[Unit], description: str) -> tuple[int, list[Any]]:
    """Run the plan's tasks on the executors, one per unit; (rows written, model-error rows)."""
    if not units:
        return 0, []
    context = spark.sparkContext
    context.setJobDescription(description)
    try:
        results = context.parallelize(list(enumerate(units)), len(units)).mapPartitions(plan).collect()
    finally:
        context.setJobDescription(None)
    return int(np.sum([r for r, _ in results])), [e for _, errors in results for e in errors]
