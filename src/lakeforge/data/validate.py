"""Row-level validation in Spark: cast, parse-level checks, then pandera per Arrow batch (a pandas UDF).

Parse-level checks (``type``, ``finite``, ``encoding``, ``range``, ``_row:malformed``) and the
duplicate-key check are Spark expressions: they need the raw value or the whole dataset, which pandas
can't see (a null and a failed cast are both NaN there). ``type`` fails wherever Spark's cast would
change the text instead of refusing it: a date followed by anything but a valid time
(``2013-01-01 lol``), a decimal with more fraction digits than its scale (``1.239`` as
``decimal(10,2)``), a Java float suffix (``1d``, ``2.5f``). Declared value checks run as one lazy pandera
validation per Arrow batch of the checked columns only (a scalar-iterator pandas UDF: Spark keeps
the rest of the row), so a row's outcome is vectorised and the work stays distributed. Duplicate
keys are counted on the persisted frame (key columns only) and joined back when there are any.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

import pandas as pd

from lakeforge.data.schema import (
    DUPLICATE_KEY,
    ENCODING,
    FINITE,
    MALFORMED,
    NOT_NULL,
    RANGE,
    SEP,
    TYPE,
    ColumnSpec,
    arrow_strings,
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
    """The internal column holding a declared column's raw (string) value (null on rows that passed)."""
    return f"{RAW_PREFIX}{column}"


_DECIMAL = re.compile(r"decimal\(\s*(\d+)\s*,\s*(\d+)\s*\)")
# A number Spark parses although it is not one: Java's float and double suffixes.
_NUMBER_SUFFIX = r"[0-9.][dDfF]\s*$"


def _altered(spec: ColumnSpec, raw: Any, typed: Any) -> Any:
    """Where Spark's cast of ``raw`` succeeded but changed or guessed the value (a ``type`` failure), else None."""
    text = raw.cast("string")  # a jdbc source hands over typed values
    if spec.type == "date":
        # Spark's date cast keeps the date and drops whatever follows a space or a 'T'.
        return raw.try_cast("timestamp").isNull()
    if spec.type in ("float", "double"):
        return text.rlike(_NUMBER_SUFFIX)
    if spec.type.startswith("decimal"):
        match = _DECIMAL.fullmatch(spec.type.replace(" ", ""))
        scale = int(match.group(2)) if match else 0
        # More non-zero fraction digits than the scale: the cast would round them away.
        plain = text.rlike(rf"^\s*[+-]?[0-9]*\.[0-9]{{{scale}}}[0-9]*[1-9][0-9]*\s*$")
        exponent = text.rlike("[eE]") & (typed.cast("double") != raw.try_cast("double"))
        return plain | exponent
    return None


def _parse_checks(src: SourceFrame, spec: ColumnSpec, typed: Any) -> list[Any]:
    """Spark expressions yielding a check name where the row fails it, else null."""
    from pyspark.sql import functions as F  # noqa: N812

    raw = F.col(f"`{spec.source}`")
    found = []
    if not src.typed:
        unparsed = typed.isNull()
        altered = _altered(spec, raw, typed)
        if altered is not None:
            unparsed = unparsed | altered
        found.append(F.when(raw.isNotNull() & unparsed, F.lit(check_name(spec.name, TYPE))))
        if spec.type == "string":
            found.append(F.when(raw.contains(_REPLACEMENT_CHAR), F.lit(check_name(spec.name, ENCODING))))
    if spec.type in ("date", "timestamp"):
        found.append(F.when(~F.year(typed).between(1, 9999), F.lit(check_name(spec.name, RANGE))))
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
    if src.checks_column:
        failures.append(F.col(src.checks_column))
    return src.df.select(*selected, _joined(failures).alias(_PRE))


def _joined(names: Sequence[Any]) -> Any:
    """Check-name columns (null = passed) joined by ``SEP``; null when none failed.

    A string, not an array: ``concat_ws`` skips nulls and compiles to JVM code, where filtering
    an array would run Spark's interpreted higher-order functions on every row.
    """
    from pyspark.sql import functions as F  # noqa: N812

    if not names:
        return F.lit(None).cast("string")
    return F.nullif(F.concat_ws(SEP, *names), F.lit(""))


def _explained(pre: str | None, found: list[str]) -> list[str]:
    """pandera's failures of a row, less a column's not_null when its type/finite check said why."""
    names = pre.split(SEP) if pre else []
    explained = {n.rsplit(":", 1)[0] for n in names if n.endswith((f":{TYPE}", f":{FINITE}"))}
    kept = []
    for name in found:
        column, _, check = name.rpartition(":")
        if check == NOT_NULL and column in explained:
            continue
        kept.append(name)
    return kept


def _is_checked(spec: ColumnSpec) -> bool:
    """Whether pandera checks anything on the column (nullability or a value check)."""
    values = (spec.ge, spec.le, spec.gt, spec.lt, spec.isin, spec.regex, spec.min_length, spec.max_length)
    return not spec.nullable or any(v is not None for v in values)


def pandera_failures(dataset: str, specs: Sequence[ColumnSpec]) -> Any:
    """The pandas UDF: per row, the pandera checks it fails (after ``_explained``), joined by ``SEP``.

    Only the checked columns (and the parse-level failures) cross to Python; Spark keeps the rest
    of the row and zips the result back, so no join and no wide Arrow transfer. A passing row
    yields null, so a clean batch returns one all-null column.
    """
    from pyspark.sql import functions as F  # noqa: N812
    from pyspark.sql import types as T  # noqa: N812

    def run(batches: Iterator[tuple[pd.DataFrame, pd.Series]]) -> Iterator[pd.Series]:
        schema = build_schema(specs, dataset)  # once per task, not per batch
        for frame, pre in batches:
            out = pd.Series(None, index=pd.RangeIndex(len(frame)), dtype=object)
            batch = arrow_strings(frame.reset_index(drop=True), specs)
            for position, found in row_failures(schema, batch).items():
                kept = _explained(pre.iat[position], found)
                if kept:
                    out.iat[position] = SEP.join(kept)
            yield out

    return F.pandas_udf(run, T.StringType())  # type: ignore[call-overload]


def validate(src: SourceFrame, specs: Sequence[ColumnSpec], dataset: str) -> Any:
    """Every row with its parse-level (``_pre_failed``) and pandera (``_found_checks``) failures.

    Raw strings are kept only on rows that failed a check (null elsewhere): they are what the
    quarantine shows, and a clean row's copy would double what the ingest caches. Distributed,
    nothing collected; the duplicate-key check and the final ``_failed_checks`` come from
    ``duplicate_keys`` and ``failed_checks``, run on this frame once persisted.
    """
    from pyspark.sql import functions as F  # noqa: N812

    prepared = prepare(src, specs)
    checked = [s for s in specs if _is_checked(s)]
    failed = F.col(_PRE).isNotNull()
    if checked:
        udf = pandera_failures(dataset, checked)
        prepared = prepared.withColumn(_FOUND, udf(F.struct(*[F.col(s.name) for s in checked]), F.col(_PRE)))
        failed = failed | F.col(_FOUND).isNotNull()
    if src.typed:
        return prepared
    return prepared.withColumns({raw_name(s.name): F.when(failed, F.col(raw_name(s.name))) for s in specs})


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
    found = [F.col(_FOUND)] if _FOUND in checked.columns else []
    if dups is None:
        return checked.select(*columns, _as_array(_joined([F.col(_PRE), *found])).alias(FAILED))
    on = None
    for i, key in enumerate(unique_key):
        cond = F.col(key) == F.col(f"{_DUP_KEY}{i}")
        on = cond if on is None else on & cond
    joined = checked.join(dups, on=on, how="left")
    dup = F.when(F.col(f"{_DUP_KEY}0").isNotNull(), F.lit(DUPLICATE_KEY))
    return joined.select(*columns, _as_array(_joined([F.col(_PRE), dup, *found])).alias(FAILED))


def _as_array(joined: Any) -> Any:
    """A ``SEP``-joined name string (null = none) as ``array<string>`` with no null element."""
    from pyspark.sql import functions as F  # noqa: N812

    empty = F.array().cast("array<string>")
    return F.when(joined.isNull(), empty).otherwise(F.split(joined, SEP))
