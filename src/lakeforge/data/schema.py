"""Compile a dataset declaration into a pandera (pandas backend) schema and name its checks.

pandera is imported only inside ``lakeforge.data``. Check names are what quarantine rows
carry in ``_failed_checks``: ``<column>:<check>``, e.g. ``dep_time:le(2400)``, ``origin:isin``,
``carrier:not_null``; row- and key-level checks use ``_row:`` and ``_key:``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

NOT_NULL = "not_null"
TYPE = "type"
FINITE = "finite"
ENCODING = "encoding"
# A date or timestamp outside years 1-9999: Parquet statistics, Python, pandas and most engines
# can't hold it, so it is never accepted.
RANGE = "range"
# A value that can't name a partition folder of the raw table (too long, empty, NUL, Hive's null name).
PARTITION = "partition"
MALFORMED = "_row:malformed"
DUPLICATE_KEY = "_key:unique"
# Joins check names while they are computed (ASCII unit separator: never part of a name).
SEP = "\x1f"
# pandera's name for a nullable=False failure.
_PANDERA_NOT_NULL = "not_nullable"


def _num(value: Any) -> str:
    """A bound as written by a person: 2400 not 2400.0."""
    return f"{float(value):g}" if isinstance(value, int | float) else str(value)


@dataclass(frozen=True)
class ColumnSpec:
    """What validation needs of one declared column (a plain view of the config node)."""

    name: str
    type: str
    nullable: bool = True
    source_name: str | None = None
    ge: float | None = None
    le: float | None = None
    gt: float | None = None
    lt: float | None = None
    isin: tuple[Any, ...] | None = None
    regex: str | None = None
    min_length: int | None = None
    max_length: int | None = None

    @property
    def source(self) -> str:
        """The column's name in the source."""
        return self.source_name or self.name


def column_specs(dataset_cfg: Any) -> list[ColumnSpec]:
    """Plain column specs from a dataset config node (DictConfig or dataclass)."""
    specs = []
    for col in dataset_cfg.columns:
        checks = col.checks
        length = checks.str_length
        specs.append(
            ColumnSpec(
                name=str(col.name),
                type=str(col.type),
                nullable=bool(col.nullable),
                source_name=str(col.source_name) if col.source_name else None,
                ge=checks.ge,
                le=checks.le,
                gt=checks.gt,
                lt=checks.lt,
                isin=tuple(checks.isin) if checks.isin is not None else None,
                regex=str(checks.regex) if checks.regex is not None else None,
                min_length=length.min if length is not None else None,
                max_length=length.max if length is not None else None,
            )
        )
    return specs


def check_name(column: str, check: str) -> str:
    """The name a failed check carries in quarantine: ``<column>:<check>``."""
    return f"{column}:{check}"


def _column_checks(spec: ColumnSpec) -> list[Any]:
    """The pandera checks of one column, each named (``error``) as quarantine reports it."""
    import pandera.pandas as pa

    named: list[tuple[str, Any, tuple[Any, ...]]] = []
    for op, bound, factory in (
        ("ge", spec.ge, pa.Check.ge),
        ("le", spec.le, pa.Check.le),
        ("gt", spec.gt, pa.Check.gt),
        ("lt", spec.lt, pa.Check.lt),
    ):
        if bound is not None:
            named.append((f"{op}({_num(bound)})", factory, (bound,)))
    if spec.isin is not None:
        named.append(("isin", pa.Check.isin, (list(spec.isin),)))
    if spec.regex is not None:
        named.append(("regex", pa.Check.str_matches, (spec.regex,)))
    if spec.min_length is not None or spec.max_length is not None:
        low = "" if spec.min_length is None else str(spec.min_length)
        high = "" if spec.max_length is None else str(spec.max_length)
        named.append((f"str_length({low}..{high})", pa.Check.str_length, (spec.min_length, spec.max_length)))
    # pandera reports a failed check by its ``error`` text: that is the quarantine reason.
    return [factory(*args, error=check_name(spec.name, label)) for label, factory, args in named]


def build_schema(specs: Sequence[ColumnSpec], dataset: str) -> Any:
    """The pandera DataFrameSchema of a dataset: value checks and nullability, no dtype (Spark cast already)."""
    import pandera.pandas as pa

    columns = {
        spec.name: pa.Column(nullable=spec.nullable, checks=_column_checks(spec), required=True) for spec in specs
    }
    return pa.DataFrameSchema(columns, name=dataset, strict=False, coerce=False)


def arrow_strings(frame: pd.DataFrame, specs: Sequence[ColumnSpec]) -> pd.DataFrame:
    """``frame`` with its string columns as Arrow strings: pandas then runs isin, length and regex
    checks in Arrow's vectorised kernels (regex: RE2, linear time) instead of a Python loop per value."""
    import pyarrow as pa

    arrow = pd.ArrowDtype(pa.string())
    strings = {s.name: arrow for s in specs if s.type == "string" and s.name in frame.columns}
    return frame.astype(strings) if strings else frame


def row_failures(schema: Any, frame: pd.DataFrame) -> dict[int, list[str]]:
    """The failed check names of each failing row of ``frame``, by position; passing rows are absent.

    One vectorised lazy validation; only failing rows cost Python objects, so a clean batch
    returns ``{}`` at pandera's own speed.
    """
    import pandera.errors as pa_errors

    try:
        schema.validate(frame, lazy=True)
    except pa_errors.SchemaErrors as exc:
        cases = exc.failure_cases
        cases = cases[cases["index"].notna()]
        if cases.empty:
            raise
        names = cases["check"].astype(str)
        not_null = names == _PANDERA_NOT_NULL
        names = names.where(~not_null, cases["column"].astype(str) + ":" + NOT_NULL)
        grouped = (
            pd.DataFrame({"index": cases["index"].astype("int64"), "name": names})
            .drop_duplicates()
            .groupby("index", sort=True)["name"]
            .agg(list)
        )
        return {int(i): list(v) for i, v in grouped.items()}
    return {}
