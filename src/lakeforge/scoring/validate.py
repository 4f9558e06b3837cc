"""Output validation of a prediction table, before anything is committed.

Two halves, as in ingest: row checks run with pandera's pandas backend on each scored batch in
the worker (a score within [0, 1] for a classifier, no missing score or prediction), and the
table-level check, keys unique per run date, runs as a Spark aggregation over the rows to score
(one scored row per input row and alias, so unique inputs give unique outputs). A failing
batch raises in the worker; the Spark job fails, the write's staged files are discarded and
`failure_from` turns the worker's message back into one clear DataValidationError.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from lakeforge.errors import DataValidationError

MARKER = "lakeforge-prediction-validation:"
EXAMPLES = 5


class PredictionValidationFailed(ValueError):
    """Raised in a worker; its message starts with MARKER so the driver can find it in Spark's error."""


@functools.cache
def prediction_schema(task: str) -> Any:
    """The pandera schema of a batch's scores."""
    import pandera.pandas as pa

    if task == "classification":
        return pa.DataFrameSchema(
            {
                "score": pa.Column(float, pa.Check.in_range(0.0, 1.0), nullable=False),
                "prediction": pa.Column(np.int32, pa.Check.isin([0, 1]), nullable=False),
            }
        )
    return pa.DataFrameSchema({"prediction": pa.Column(float, pa.Check(np.isfinite), nullable=False)})


def passes(score: np.ndarray, prediction: np.ndarray, task: str) -> bool:
    """The checks of `prediction_schema` in numpy: True exactly when pandera would accept the batch
    (types, nulls as NaN, ranges). `check_scores` skips pandera for such a batch: pandera's fixed
    cost (~5 ms a call) would be most of a one-row online request."""
    p = np.asarray(prediction)
    if task == "classification":
        s = np.asarray(score)
        return (
            s.dtype == np.float64
            and p.dtype == np.int32
            and bool(np.all((s >= 0.0) & (s <= 1.0)))  # NaN fails both comparisons
            and bool(np.all((p == 0) | (p == 1)))
        )
    return p.dtype == np.float64 and bool(np.all(np.isfinite(p)))


def check_scores(score: np.ndarray, prediction: np.ndarray, task: str, model: str = "the model") -> None:
    """Validate one batch; raise PredictionValidationFailed naming the failed checks and examples
    (pandera runs, and reports, whenever the numpy pass of `passes` finds a row it would refuse)."""
    import pandas as pd
    import pandera.errors

    if passes(score, prediction, task):
        return

    frame = pd.DataFrame({"score": score, "prediction": prediction})
    if task != "classification":
        frame = frame[["prediction"]]
    try:
        prediction_schema(task).validate(frame, lazy=True)
    except pandera.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        counts = cases.groupby(["column", "check"], dropna=False).size()
        failed = "; ".join(f"{col}: {check} failed for {n:,} row(s)" for (col, check), n in counts.items())
        examples = ", ".join(str(v) for v in cases["failure_case"].head(EXAMPLES).tolist())
        raise PredictionValidationFailed(
            f"{MARKER} {model}: {failed} (in a batch of {len(frame):,} rows; values e.g. {examples})"
        ) from None


def failure_from(exc: BaseException, table: str) -> DataValidationError | None:
    """The worker's validation failure inside a Spark error, as a DataValidationError; else None."""
    text = str(exc)
    at = text.find(MARKER)
    if at < 0:
        return None
    detail = text[at + len(MARKER) :].splitlines()[0].strip()
    return DataValidationError(
        f"{table}: the predictions failed output validation: {detail}; "
        "nothing was committed. Check the model's output on these features (`lakeforge compare`, "
        "`lakeforge reproduce`)"
    )


def duplicate_keys(frame: Any, keys: Sequence[str], table: str, examples: int = EXAMPLES) -> None:
    """Refuse rows to score whose keys repeat, or are null: one Spark aggregation."""
    from pyspark.sql import functions as F  # noqa: N812

    null_key = F.lit(False)
    for key in keys:
        null_key = null_key | F.col(key).isNull()
    bad = frame.groupBy(*keys).count().where((F.col("count") > 1) | null_key).limit(examples).collect()
    if bad:
        shown = "; ".join(f"{ {k: r[k] for k in keys} } x{r['count']}" for r in bad)
        raise DataValidationError(
            f"{table}: the rows to score must have unique, non-null keys ({', '.join(keys)}); found e.g. {shown}. "
            "Nothing was committed: check the feature table's build for those dates"
        )
