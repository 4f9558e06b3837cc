"""Row-level validation in Spark: cast, parse-level checks, then pandera per Arrow batch (a pandas UDF).

Parse-level checks (``type``, ``finite``, ``encoding``, ``_row:malformed``) and the duplicate-key
check are Spark expressions: they need the raw value or the whole dataset, which pandas can't
see (a null and a failed cast are both NaN there). Declared value checks run as one lazy pandera
validation per Arrow batch of the checked columns only (a scalar-iterator pandas UDF: Spark keeps
the rest of the row), so a row's outcome is vectorised and the work stays distributed. Duplicate
keys are counted on the persisted frame (key columns only) and joined back when there are any.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pandas as pd

from lakeforge.data.schema import (
    DUPLICATE_KEY,
    ENCODING,
    FINITE,
    MALFORMED,
    NOT_NULL,
    TYPE,
    ColumnSpec,
    build_schema,
    check_name,
    row_failures,
)
from lakeforge.data.sources import SourceFrame, spark_type_name

FAILED = "_failed_checks"
RAW_RECORD = "_raw_record"
RAW_PREFIX = "_raw_"
_PRE = "_pre_failed"
_FOUND = "_found_checks"
_DUP_KEY = "_dup_key_"
# Spark replaces bytes that are not valid in the declared encoding with U+FFFD.
_REPLACEMENT_CHAR = "\ufffd"


def raw_name(column: str) -> str:
    """The internal column holding a declared column's raw (string) value."""
    return f"{RAW_PREFIX}{column}"


def _parse_checks(src: SourceFrame, spec: ColumnSpec, typed: Any) -> list[Any]:
    """Spark expressions yielding a check name where the row fails it, else null."""
    from pyspark.sql import functions as F  # noqa: N812

    raw = F.col(f"`{spec.source}`")
    found = []
    if not src.typed:
        found.append(F.when(raw.isNotNull() & typed.isNull(), F.lit(check_name(spec.name, TYPE))))
        if spec.type == "string":
            found.append(F.when(raw.contains(_REPLACEMENT_CHAR), F.lit(check_name(spec.name, ENCODING))))
    if spec.type in ("float", "double"):
        # NaN and ±inf are never measurements; pandas would see NaN as null and let it pass.
        bad = F.isnan(typed) | typed.isin(float("inf"), float("-inf"))
        found.append(F.when(bad, F.lit(check_name(spec.name, FINITE))))
    return found


def prepare(src: SourceFrame, specs: Sequence[ColumnSpec]) -> Any:
    """Typed declared columns, their raw strings (when cast here) and the parse-level failures."""
    from pyspark.sql import functions as F  # noqa: N812

    selected, failures = [], []
    for spec in specs:
        raw = F.col(f"`{spec.source}`")
        typed = raw if src.typed else raw.try_cast(spark_type_name(spec.type))
        selected.append(typed.alias(spec.name))
        if not src.typed:
            selected.append(raw.cast("string").alias(raw_name(spec.name)))
        failures += _parse_checks(src, spec, typed)
    if src.corrupt_column:
        selected.append(F.col(src.corrupt_column).alias(RAW_RECORD))
        failures.append(F.when(F.col(src.corrupt_column).isNotNull(), F.lit(MALFORMED)))
    else:
        selected.append(F.lit(None).cast("string").alias(RAW_RECORD))
    pre = F.filter(F.array(*failures), lambda name: name.isNotNull()) if failures else F.array()
    return src.df.select(*selected, _non_null_names(pre.cast("array<string>")).alias(_PRE))


def _non_null_names(names: Any) -> Any:
    """``array<string>`` typed as never holding a null (what the written ``_failed_checks`` declares)."""
    from pyspark.sql import functions as F  # noqa: N812

    return F.transform(names, lambda name: F.coalesce(name, F.lit("")))


def _explained(pre: Any, found: list[str]) -> list[str]:
    """pandera's failures of a row, less a column's not_null when its type/finite check said why."""
    if not found:
        return []
    names = [str(n) for n in pre] if pre is not None else []
    explained = {n.rsplit(":", 1)[0] for n in names if n.endswith((f":{TYPE}", f":{FINITE}"))}
    kept = []
    for name in found:
        column, _, check = name.rpartition(":")
        if check == NOT_NULL and column in explained:
            continue
        kept.append(name)
    return kept


def _merge(pre: Any, found: list[str]) -> list[str]:
    """Parse-level failures first; a column's not_null is dropped when its type/finite check said why."""
    names = [str(n) for n in pre] if pre is not None else []
    return names + _explained(pre, found)


def _is_checked(spec: ColumnSpec) -> bool:
    """Whether pandera checks anything on the column (nullability or a value check)."""
    values = (spec.ge, spec.le, spec.gt, spec.lt, spec.isin, spec.regex, spec.min_length, spec.max_length)
    return not spec.nullable or any(v is not None for v in values)


def pandera_failures(dataset: str, specs: Sequence[ColumnSpec]) -> Any:
    """The pandas UDF: per row, the pandera checks it fails (after ``_explained``), from its checked columns.

    Only the checked columns (and the parse-level failures) cross to Python; Spark keeps the rest
    of the row and zips the result back, so no join and no wide Arrow transfer.
    """
    from pyspark.sql import functions as F  # noqa: N812
    from pyspark.sql import types as T  # noqa: N812

    def run(batches: Iterator[tuple[pd.DataFrame, pd.Series]]) -> Iterator[pd.Series]:
        schema = build_schema(specs, dataset)  # once per task, not per batch
        for frame, pre in batches:
            found = row_failures(schema, frame.reset_index(drop=True))
            yield pd.Series([_explained(p, f) for p, f in zip(pre, found, strict=True)], dtype=object)

    return F.pandas_udf(run, T.ArrayType(T.StringType(), False))  # type: ignore[call-overload]


def validate(src: SourceFrame, specs: Sequence[ColumnSpec], dataset: str) -> Any:
    """Every row with its parse-level (``_pre_failed``) and pandera (``_found_checks``) failures.

    Distributed, nothing collected; the duplicate-key check and the final ``_failed_checks`` come
    from ``duplicate_keys`` and ``failed_checks``, run on this frame once persisted.
    """
    from pyspark.sql import functions as F  # noqa: N812

    prepared = prepare(src, specs)
    checked = [s for s in specs if _is_checked(s)]
    if not checked:
        return prepared
    udf = pandera_failures(dataset, checked)
    found = udf(F.struct(*[F.col(s.name) for s in checked]), F.col(_PRE))
    return prepared.withColumn(_FOUND, found)


def duplicate_keys(checked: Any, unique_key: Sequence[str]) -> Any:
    """The keys (all parts non-null) carried by more than one row, persisted; None when there are none."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F  # noqa: N812

    if not unique_key:
        return None
    has_key = F.lit(True)
    for key in unique_key:
        has_key = has_key & F.col(key).isNotNull()
    counts = checked.where(has_key).groupBy(*[F.col(k) for k in unique_key]).count()
    dups = counts.where(F.col("count") > 1).select(
        *[F.col(k).alias(f"{_DUP_KEY}{i}") for i, k in enumerate(unique_key)]
    )
    dups = dups.persist(StorageLevel.MEMORY_AND_DISK)
    if dups.count() == 0:
        dups.unpersist()
        return None
    return dups


def failed_checks(checked: Any, dups: Any, unique_key: Sequence[str]) -> Any:
    """The validated rows: declared and raw columns plus ``_failed_checks`` (empty list = accepted).

    Order of the names: parse-level, then ``_key:unique``, then pandera's. All rows sharing a key
    are flagged: there is no telling which of them is right.
    """
    from pyspark.sql import functions as F  # noqa: N812

    columns = [F.col(f"`{c}`") for c in checked.columns if c not in (_PRE, _FOUND)]
    pre = F.col(_PRE)
    parts = [pre]
    if _FOUND in checked.columns:
        parts.append(_non_null_names(F.coalesce(F.col(_FOUND), F.array().cast("array<string>"))))
    failed = F.concat(*parts) if len(parts) > 1 else pre
    if dups is None:
        return checked.select(*columns, failed.alias(FAILED))
    on = None
    for i, key in enumerate(unique_key):
        cond = F.col(key) == F.col(f"{_DUP_KEY}{i}")
        on = cond if on is None else on & cond
    joined = checked.join(dups, on=on, how="left")
    dup = F.col(f"{_DUP_KEY}0").isNotNull()
    flagged = F.concat(pre, _non_null_names(F.array(F.lit(DUPLICATE_KEY))), *parts[1:])
    return joined.select(*columns, F.when(dup, flagged).otherwise(failed).alias(FAILED))
