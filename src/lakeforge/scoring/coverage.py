"""Coverage of a scoring run: who should get a prediction (the population), who got none and why.

The population is the spine dataset's rows of the run dates. Joined to the feature rows, each
member gets a reason it cannot be scored, or none: no feature row, or a null required feature
(`account`). Rows a model raises on are found while scoring and come back with the scoring
tasks' results (`unique_errors`, `with_errors`). Everything here is a Spark aggregation or works
on those few error rows: nothing collects the scoring data to the driver.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from lakeforge.features.build import RawTables
from lakeforge.lake.catalog import Catalog
from lakeforge.scoring.tasks import RUN_DATE

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


@dataclass(frozen=True)
class Accounting:
    """The outcome of `account`: the rows to score, the rows that get no prediction (keys, run
    date, reason), the day counts, whether the keys to score are known unique already, and the
    dates whose feature rows differ from the population (their rows to score come from a join)."""

    to_score: Any
    missing: Any
    counts: list[DayCount]
    unique: bool
    mismatched: list[date]


def _digests(frame: Any, keys: Sequence[str], by: Sequence[str]) -> list[Any]:
    """Per group: the row count and an order-free digest of the keys (the sum of their 64-bit hashes).

    The keys are hashed as they are typed: the feature build passes the spine's key columns through
    unchanged, so equal rows hash equal; a type that differed would only send the date to the join.
    """
    from pyspark.sql import functions as F  # noqa: N812

    hashed = F.xxhash64(*[F.col(k) for k in keys])
    # The exact sum as two long sums (high and low 32 bits): cheaper than a decimal sum, no overflow.
    high, low = F.shiftright(hashed, 32), hashed.bitwiseAND(F.lit(0xFFFFFFFF))
    sums = [F.count(F.lit(1)).alias("n"), F.sum(high).alias("high"), F.sum(low).alias("low")]
    return [
        {**row.asDict(), "digest": (row["high"] << 32) + row["low"]} for row in frame.groupBy(*by).agg(*sums).collect()
    ]


def account(
    population: Any, features: Any, keys: list[str], required: Sequence[str], no_row: str, population_unique: bool
) -> Accounting:
    """Which members of the population get a prediction, and why the others don't.

    Two aggregations, no join, when the feature rows of a date are exactly the population's (same
    count, same key digest): the usual case, a feature table built from the same raw data. Only
    the dates where they differ are joined: population members without a feature row get the
    ``no_row`` reason, and feature rows outside the population are not scored. With
    ``population_unique`` (the spine's unique key, checked at ingest, is within ``keys``) and no
    such date, the keys to score are unique by construction.
    """
    from pyspark.sql import functions as F  # noqa: N812

    features = features.withColumn(REASON, _required_null(required) if required else F.lit(None).cast("string"))
    expected = {r[RUN_DATE]: (r["n"], r["digest"]) for r in _digests(population, keys, [RUN_DATE])}
    found: dict[date, dict[str | None, tuple[int, Any]]] = {}
    for r in _digests(features, keys, [RUN_DATE, REASON]):
        found.setdefault(r[RUN_DATE], {})[r[REASON]] = (r["n"], r["digest"])
    counts: dict[date, DayCount] = {}
    mismatched = []
    for day in sorted(set(expected) | set(found)):  # a date with feature rows but no population: mismatched
        rows, digest = expected.get(day, (0, 0))
        groups = found.get(day, {})
        if (sum(n for n, _ in groups.values()), sum(h for _, h in groups.values())) != (rows, digest):
            mismatched.append(day)
        missing_by_reason = {str(reason): n for reason, (n, _) in groups.items() if reason is not None}
        counts[day] = DayCount(day, rows, groups.get(None, (0, 0))[0], missing_by_reason)
    to_score = features.where(F.col(REASON).isNull()).drop(REASON)
    missing = features.where(F.col(REASON).isNotNull()).select(*keys, RUN_DATE, REASON)
    if mismatched:
        days = F.col(RUN_DATE).isin(mismatched)
        members = population.where(days).select(*keys)
        absent = population.where(days).join(features.where(days).select(*keys), on=keys, how="left_anti")
        absent = absent.select(*keys, RUN_DATE, F.lit(no_row).alias(REASON))
        missing = missing.unionByName(absent)
        # Feature rows outside the population (e.g. raw rows deleted since the build) are not scored.
        to_score = to_score.where(~days).unionByName(to_score.where(days).join(members, on=keys, how="left_semi"))
        lost = {r[RUN_DATE]: r["count"] for r in absent.groupBy(RUN_DATE).count().collect()}
        scored = {r[RUN_DATE]: r["count"] for r in to_score.where(days).groupBy(RUN_DATE).count().collect()}
        for d in mismatched:
            gone = {no_row: lost[d]} if lost.get(d) else {}
            counts[d] = DayCount(d, counts[d].population, scored.get(d, 0), {**counts[d].missing, **gone})
    unique = population_unique and not mismatched
    return Accounting(to_score, missing, [counts[d] for d in sorted(counts)], unique, mismatched)


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
