"""Row-level validation in Spark: cast, parse-level checks, then pandera per partition (mapInPandas).

Parse-level checks (``type``, ``finite``, ``encoding``, ``_row:malformed``) and the duplicate-key
check are Spark expressions: they need the raw value or the whole dataset, which pandas can't
see (a null and a failed cast are both NaN there). Declared value checks run as one lazy pandera
validation per Arrow batch, so a row's outcome is vectorised and the work stays distributed.
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


def prepare(src: SourceFrame, specs: Sequence[ColumnSpec], unique_key: Sequence[str]) -> Any:
    """Typed declared columns, their raw strings (when cast here) and the parse-level failures."""
    from pyspark.sql import Window
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
    df = src.df.select(*selected, pre.cast("array<string>").alias(_PRE))
    if unique_key:
        # All rows sharing a key are flagged: there is no telling which of them is right.
        has_key = F.lit(True)
        for key in unique_key:
            has_key = has_key & F.col(key).isNotNull()
        dup = has_key & (F.count(F.lit(1)).over(Window.partitionBy(*unique_key)) > 1)
        pre = F.when(dup, F.concat(F.col(_PRE), F.array(F.lit(DUPLICATE_KEY)))).otherwise(F.col(_PRE))
        df = df.withColumn(_PRE, pre)
    return df


def _merge(pre: Any, found: list[str]) -> list[str]:
    """Parse-level failures first; a column's not_null is dropped when its type/finite check said why."""
    names = [str(n) for n in pre] if pre is not None else []
    if not found:
        return names
    explained = {n.rsplit(":", 1)[0] for n in names if n.endswith((f":{TYPE}", f":{FINITE}"))}
    for name in found:
        column, _, check = name.rpartition(":")
        if check == NOT_NULL and column in explained:
            continue
        names.append(name)
    return names


def validate_partitions(dataset: str, specs: Sequence[ColumnSpec]) -> Any:
    """The mapInPandas function: each batch gets ``_failed_checks`` (empty list = accepted)."""
    columns = [s.name for s in specs]

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        schema = build_schema(specs, dataset)  # once per task, not per batch
        for incoming in batches:
            batch = incoming.reset_index(drop=True)
            found = row_failures(schema, batch[columns])
            batch[FAILED] = [_merge(p, f) for p, f in zip(batch[_PRE], found, strict=True)]
            yield batch.drop(columns=[_PRE])

    return run


def validate(src: SourceFrame, specs: Sequence[ColumnSpec], dataset: str, unique_key: Sequence[str]) -> Any:
    """The source with every row's failed checks in ``_failed_checks`` (distributed, nothing collected)."""
    from pyspark.sql import types as T  # noqa: N812

    prepared = prepare(src, specs, unique_key)
    fields = [f for f in prepared.schema.fields if f.name != _PRE]
    out = T.StructType([*fields, T.StructField(FAILED, T.ArrayType(T.StringType(), False), False)])
    return prepared.mapInPandas(validate_partitions(dataset, specs), out)
