"""Coverage of a scoring run: who should get a prediction (the population), who got none and why.

The population is the spine dataset's rows of the run dates. Joined to the feature rows, each
member gets a reason it cannot be scored, or none: no feature row, or a null required feature
(`account`). Rows a model raises on are found while scoring and come back from the workers in
a Spark accumulator (`unique_errors`, `with_errors`). Everything here is a Spark aggregation or
works on those few error rows: nothing collects the scoring data to the driver.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from lakeforge.features.build import RawTables
from lakeforge.lake.catalog import Catalog

RUN_DATE = "run_date"
REASON = "reason"


@dataclass(frozen=True)
class DayCount:
    """One run date's accounting: the population, the rows scored per alias, the missing rows by reason."""

    run_date: date
    population: int
    scored: int
    missing: dict[str, int] = field(default_factory=dict)


def population_of(spark: Any, catalog: Catalog, spec: Any, start: date, end: date) -> tuple[Any, dict[str, int]]:
    """The spine rows of the dates: the entities that should get a prediction, with their run date."""
    from pyspark.sql import functions as F  # noqa: N812

    tables = RawTables(spark, catalog)
    t = F.col(spec.event_time).cast("timestamp")
    frame = tables(spec.spine).where(F.to_date(t).between(F.lit(start), F.lit(end)))
    return frame.select(*spec.entity, spec.event_time, F.to_date(t).alias(RUN_DATE)), tables.versions


def _required_null(required: Sequence[str]) -> Any:
    """The reason text for a row with null required features, or null."""
    from pyspark.sql import functions as F  # noqa: N812

    names = [F.when(F.col(f).isNull(), F.lit(f)) for f in required]
    return F.when(
        F.concat_ws(", ", *names) != "", F.concat(F.lit("missing required feature(s): "), F.concat_ws(", ", *names))
    )


def account(population: Any, features: Any, keys: list[str], required: Sequence[str], no_row: str) -> tuple[Any, Any]:
    """(every member of the population with the reason it gets no prediction, or null; the feature
    rows to score)."""
    from pyspark.sql import functions as F  # noqa: N812

    features = features.withColumn(REASON, _required_null(required) if required else F.lit(None).cast("string"))
    accounted = population.join(features.select(*keys, REASON, F.lit(True).alias("_lf_has")), on=keys, how="left")
    accounted = accounted.withColumn(REASON, F.when(F.col("_lf_has").isNull(), F.lit(no_row)).otherwise(F.col(REASON)))
    return accounted.drop("_lf_has"), features.where(F.col(REASON).isNull()).drop(REASON)


def unique_errors(found: list[Any], keys: list[str]) -> list[tuple[dict[str, Any], str, str]]:
    """The rows a model raised on, once each (a retried or speculative task may report them twice)."""
    unique: dict[tuple[Any, ...], tuple[dict[str, Any], str, str]] = {}
    for row, label, reason in found:
        unique.setdefault((*(row[k] for k in (*keys, RUN_DATE)), label), (row, label, reason))
    return list(unique.values())


def with_errors(counts: list[DayCount], failed: list[Any], serving: set[str]) -> list[DayCount]:
    """The day counts with the model errors: missing by reason; not scored when a serving model failed."""
    by_day = {d.run_date: d for d in counts}
    for row, label, reason in failed:
        day = by_day[row[RUN_DATE]]
        missing = {**day.missing, reason: day.missing.get(reason, 0) + 1}
        scored = day.scored - (1 if label in serving else 0)
        by_day[day.run_date] = DayCount(day.run_date, day.population, scored, missing)
    return [by_day[d.run_date] for d in counts]


def day_counts(accounted: Any) -> list[DayCount]:
    """Per run date: the population, how many are scored, the missing by reason (one aggregation)."""
    days: dict[date, dict[str | None, int]] = {}
    for r in accounted.groupBy(RUN_DATE, REASON).count().collect():
        days.setdefault(r[RUN_DATE], {})[r[REASON]] = r["count"]
    return [
        DayCount(d, sum(n.values()), n.get(None, 0), {k: v for k, v in n.items() if k is not None})
        for d, n in sorted(days.items())
    ]
