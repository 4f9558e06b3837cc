"""The monitor's Spark queries over a range of run dates: each one pass, grouped by date, no row collected.

* :func:`served_models` — per run date and alias: the model version, rows, first ``scored_at``.
* :func:`score_counts` — per run date and alias: the score histogram (``reference.score_bins``).
* :func:`missing_counts` — per run date and reason: the population rows without a prediction.
* :func:`labelled_counts` — per label date, alias, version and slice: positives and negatives
  per fine score bin, their score sums and the clipped log-loss sum (``lakeforge.monitoring.perf``).

Feature and score histograms come from ``lakeforge.monitoring.binning.count_files``: tasks reading
the tables' Parquet files with pyarrow, grouped by the date partition (and the alias).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np

from lakeforge.features.build import RawTables
from lakeforge.lake.catalog import Catalog
from lakeforge.lake.delta import data_files, read_table
from lakeforge.monitoring.binning import count_files
from lakeforge.monitoring.reference import score_bins
from lakeforge.monitoring.stats import LOG_LOSS_EPS

RUN_DATE = "run_date"
ALL = "all"  # the slice of every row


def _in_dates(column: str, days: Sequence[date]) -> Any:
    wanted = {d.isoformat() for d in days}
    return lambda values: str(values.get(column)) in wanted


def predictions_of(spark: Any, catalog: Catalog, table: str, days: Sequence[date]) -> Any:
    """The prediction table's rows of ``days`` (only those partitions listed), or None without the table."""
    if not catalog.exists(table):
        return None
    return read_table(spark, catalog, table, partitions=_in_dates(RUN_DATE, days))


@dataclass(frozen=True)
class Served:
    """One alias's predictions on one run date."""

    alias: str
    version: int
    run_id: str
    rows: int
    served_rows: int
    first_scored_at: datetime | None


def served_models(frame: Any) -> dict[date, dict[str, Served]]:
    """Run date -> alias -> what the alias predicted that day (one grouped query)."""
    from pyspark.sql import functions as F  # noqa: N812

    if frame is None:
        return {}
    rows = (
        frame.groupBy(RUN_DATE, "model_alias", "model_version", "model_run_id")
        .agg(
            F.count(F.lit(1)).alias("rows"),
            F.sum(F.col("served").cast("long")).alias("served_rows"),
            F.min("scored_at").alias("first"),
        )
        .collect()
    )
    out: dict[date, dict[str, Served]] = {}
    for r in rows:
        day = out.setdefault(r[RUN_DATE], {})
        current = day.get(r["model_alias"])
        # One version per alias and date (a re-run replaces the partition); keep the larger if not.
        if current is None or r["rows"] > current.rows:
            day[r["model_alias"]] = Served(
                r["model_alias"],
                int(r["model_version"]),
                r["model_run_id"],
                r["rows"],
                r["served_rows"] or 0,
                r["first"],
            )
    return out


def score_counts(spark: Any, catalog: Catalog, table: str, days: Sequence[date]) -> dict[tuple[str | None, ...], Any]:
    """(run date, alias) -> Counts of the scores over ``score_bins()``, read from the table's files."""
    if not catalog.exists(table):
        return {}
    files = data_files(catalog, table, partitions=_in_dates(RUN_DATE, days))
    keyed = [(path, (str(parts[RUN_DATE]),)) for path, parts in files]
    return count_files(spark, keyed, [score_bins()], split_by="model_alias", description="lakeforge monitor: scores")


def missing_counts(spark: Any, catalog: Catalog, table: str, days: Sequence[date]) -> dict[date, dict[str, int]]:
    """Run date -> reason -> rows of the population without a prediction (``predictions.<model>__missing``)."""
    if not catalog.exists(table):
        return {}
    frame = read_table(spark, catalog, table, partitions=_in_dates(RUN_DATE, days))
    out: dict[date, dict[str, int]] = {}
    for r in frame.groupBy(RUN_DATE, "reason").count().collect():
        out.setdefault(r[RUN_DATE], {})[str(r["reason"])] = int(r["count"])
    return out


@dataclass
class Labelled:
    """Binned scores of one (label date, alias, version, slice value)."""

    pos: np.ndarray
    neg: np.ndarray
    score_sums: np.ndarray
    log_loss_sum: float = 0.0

    @property
    def rows(self) -> int:
        return int(self.pos.sum() + self.neg.sum())


def labelled_counts(
    spark: Any,
    catalog: Catalog,
    spec: Any,
    predictions: Any,
    label_dates: dict[date, date],
    slices: Sequence[str],
    bins: int,
) -> dict[tuple[date, str, int, str, str], Labelled]:
    """(label date, alias, version, slice, slice value) -> binned labelled scores.

    ``label_dates`` maps each label date to the monitor date it is measured on: a label counts
    when it was known by the end of that date (event time + the label's delay). The labels are
    the feature set's label expression over the spine rows, joined to the predictions by key
    and date; only rows with a label count (a cancelled flight has none).
    """
    from pyspark.sql import functions as F  # noqa: N812

    if predictions is None or not label_dates or spec.label is None:
        return {}
    days = sorted(label_dates)
    t = F.col(f"`{spec.event_time}`").cast("timestamp")
    spine = RawTables(spark, catalog)(spec.spine).where(F.to_date(t).isin(days))
    known_by = F.create_map(
        *[
            x
            for d, m in label_dates.items()
            for x in (F.lit(d), F.lit(datetime.combine(m + timedelta(days=1), datetime.min.time())))
        ]
    )
    known_at = t + F.make_dt_interval(secs=F.lit(spec.label.available_after_s))
    labels = spine.select(
        *[F.col(f"`{k}`").alias(f"_k{i}") for i, k in enumerate(spec.entity)],
        F.to_date(t).alias("_d"),
        F.expr(spec.label.expr).cast("double").alias("_y"),
        (known_at <= known_by[F.to_date(t)]).alias("_known"),
    )
    preds = predictions.where(F.col(RUN_DATE).isin(days))
    from_features = [c for c in slices if c not in preds.columns]
    if from_features:  # slice by a feature: its value from the feature table, by key and date
        table = f"features.{spec.name}"
        feats = read_table(spark, catalog, table, partitions=_in_dates("event_date", days)).select(
            *[F.col(f"`{k}`") for k in spec.entity],
            F.col("event_date").alias(RUN_DATE),
            *[F.col(f"`{c}`") for c in from_features],
        )
        preds = preds.join(feats, on=[*spec.entity, RUN_DATE], how="left")
    on = [preds[f"`{k}`"] == labels[f"_k{i}"] for i, k in enumerate(spec.entity)]
    joined = preds.join(labels, on=[*on, preds[RUN_DATE] == labels["_d"]], how="inner")
    known = joined.where(F.col("_known") & F.col("_y").isNotNull())
    s = F.least(F.greatest(F.col("score"), F.lit(0.0)), F.lit(1.0))
    clipped = F.least(F.greatest(s, F.lit(LOG_LOSS_EPS)), F.lit(1.0 - LOG_LOSS_EPS))
    y = (F.col("_y") > 0).cast("int")
    pairs = [F.struct(F.lit(ALL).alias("n"), F.lit(ALL).alias("v"))]
    pairs += [F.struct(F.lit(c).alias("n"), F.col(f"`{c}`").cast("string").alias("v")) for c in slices]
    exploded = known.select(
        F.col(RUN_DATE),
        F.col("model_alias"),
        F.col("model_version"),
        F.explode(F.array(*pairs)).alias("sl"),
        F.least(F.floor(s * bins), F.lit(bins - 1)).cast("int").alias("bin"),
        y.alias("y"),
        s.alias("s"),
        (-(y * F.log(clipped) + (1 - y) * F.log(1 - clipped))).alias("ll"),
    )
    grouped = (
        exploded.groupBy(RUN_DATE, "model_alias", "model_version", "sl.n", "sl.v", "bin", "y")
        .agg(F.count(F.lit(1)).alias("c"), F.sum("s").alias("s"), F.sum("ll").alias("ll"))
        .collect()
    )
    out: dict[tuple[date, str, int, str, str], Labelled] = {}
    for r in grouped:
        key = (r[RUN_DATE], r["model_alias"], int(r["model_version"]), r["n"], "null" if r["v"] is None else r["v"])
        cell = out.get(key)
        if cell is None:
            cell = out[key] = Labelled(np.zeros(bins), np.zeros(bins), np.zeros(bins))
        target = cell.pos if r["y"] == 1 else cell.neg
        target[r["bin"]] += r["c"]
        cell.score_sums[r["bin"]] += r["s"]
        cell.log_loss_sum += r["ll"]
    return out
