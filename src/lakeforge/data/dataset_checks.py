"""Dataset-level outcomes as Spark aggregations: counts per check, row-count bounds, freshness, bad share."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from lakeforge.config.values import parse_positive_duration
from lakeforge.data.validate import FAILED, RAW_RECORD
from lakeforge.errors import DataValidationError

EXAMPLE_ROWS = 5
# An example value longer than this is cut: a 10,000-character value would bury the message.
EXAMPLE_CHARS = 80
TOP_CHECKS = 5


@dataclass(frozen=True)
class Outcome:
    """What validation found: rows in, rows quarantined, rows per failed check, newest event time."""

    rows_in: int
    rows_quarantined: int
    check_failures: dict[str, int]
    newest: datetime | None = None

    @property
    def rows_accepted(self) -> int:
        """Rows that passed every check."""
        return self.rows_in - self.rows_quarantined


def summarise(validated: Any, freshness_column: str | None) -> Outcome:
    """Two small aggregations over the (cached) validated rows; nothing but counts reaches the driver."""
    from pyspark.sql import functions as F  # noqa: N812

    bad = F.size(F.col(FAILED)) > 0
    aggs = [F.count(F.lit(1)).alias("rows"), F.sum(F.when(bad, 1).otherwise(0)).alias("bad")]
    if freshness_column:
        aggs.append(F.max(F.when(~bad, F.col(freshness_column))).alias("newest"))
    totals = validated.agg(*aggs).first()
    per_check = validated.select(F.explode(F.col(FAILED)).alias("check")).groupBy("check").count().collect()
    failures = dict(sorted(((r["check"], int(r["count"])) for r in per_check), key=lambda kv: (-kv[1], kv[0])))
    return Outcome(
        rows_in=int(totals["rows"]),
        rows_quarantined=int(totals["bad"] or 0),
        check_failures=failures,
        newest=totals["newest"] if freshness_column else None,
    )


def check_row_count(dataset: str, rows: int, bounds: Any) -> None:
    """Fail when the source's row count is outside the declared bounds (or zero)."""
    if rows == 0:
        raise DataValidationError(f"dataset '{dataset}': the source has no rows; nothing written")
    low, high = bounds.min, bounds.max
    if low is not None and rows < low:
        raise DataValidationError(
            f"dataset '{dataset}': row_count check failed: {rows:,} rows, fewer than the minimum {low:,} "
            f"(dataset.{dataset}.checks.row_count.min); nothing written"
        )
    if high is not None and rows > high:
        raise DataValidationError(
            f"dataset '{dataset}': row_count check failed: {rows:,} rows, more than the maximum {high:,} "
            f"(dataset.{dataset}.checks.row_count.max); nothing written"
        )


def check_freshness(dataset: str, freshness: Any, newest: datetime | None, run_date: date | None) -> None:
    """Fail when the newest accepted event is older than ``max_age`` before the run date's end (or now)."""
    max_age = timedelta(seconds=parse_positive_duration(freshness.max_age))
    if run_date is not None:
        reference = datetime(run_date.year, run_date.month, run_date.day, tzinfo=UTC) + timedelta(days=1)
    else:
        reference = datetime.now(UTC)
    if newest is not None and newest.tzinfo is None:
        newest = newest.replace(tzinfo=UTC)  # Spark hands back session-time (UTC) naive values
    if newest is None or reference - newest > max_age:
        seen = newest.isoformat() if newest is not None else "no accepted rows"
        raise DataValidationError(
            f"dataset '{dataset}': freshness check failed: newest '{freshness.column}' is {seen}, "
            f"more than {freshness.max_age} before {reference.isoformat()}; is the source stale? nothing written"
        )


def _shown(value: Any) -> str:
    """A raw value as an example shows it: repr, cut at ``EXAMPLE_CHARS`` with the full length said."""
    text = repr(value)
    if len(text) <= EXAMPLE_CHARS:
        return text
    return f"{text[:EXAMPLE_CHARS]}… ({len(value):,} characters)"


def _format_row(row: Mapping[str, Any], columns: Sequence[str]) -> str:
    """One quarantined example: its failed checks and raw values."""
    values = ", ".join(f"{c}={_shown(row[c])}" for c in columns if row[c] is not None)
    record = f" record={_shown(row[RAW_RECORD])}" if row[RAW_RECORD] is not None else ""
    return f"  [{', '.join(row[FAILED])}] {values}{record}"


def check_bad_fraction(
    dataset: str, outcome: Outcome, max_fraction: float, quarantined: Any, columns: Sequence[str]
) -> None:
    """Fail, naming the top checks with counts and 5 example rows, when too many rows are bad."""
    if outcome.rows_quarantined == 0 or outcome.rows_quarantined / outcome.rows_in <= max_fraction:
        return
    share = outcome.rows_quarantined / outcome.rows_in
    top = list(outcome.check_failures.items())[:TOP_CHECKS]
    checks = ", ".join(f"{name} ({count:,})" for name, count in top)
    examples = [r.asDict() for r in quarantined.limit(EXAMPLE_ROWS).collect()]
    lines = "\n".join(_format_row(r, columns) for r in examples)
    raise DataValidationError(
        f"dataset '{dataset}': {outcome.rows_quarantined:,} of {outcome.rows_in:,} rows ({share:.2%}) failed "
        f"checks, above max_bad_fraction {max_fraction:g}; nothing written. Top failing checks: {checks}. "
        f"Example rows:\n{lines}\nFix the source, or the checks in conf/dataset/{dataset}.yaml, "
        f"or raise dataset.{dataset}.max_bad_fraction"
    )
