"""Schemas of the ``dataset`` and ``features`` config groups."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

SOURCE_FORMATS = ("csv", "parquet", "json", "jdbc", "delta")
COLUMN_TYPES = ("string", "int", "long", "float", "double", "boolean", "date", "timestamp", "decimal")
WINDOW_FUNCTIONS = ("count", "sum", "avg", "min", "max", "stddev", "count_distinct", "last")
ON_MISSING = ("null", "drop", "fail")  # static join: what a spine row without a match gets


@dataclass
class SourceConfig:
    """Where a dataset's raw data comes from; credentials only via ``${oc.env:…}``."""

    format: str = MISSING  # csv | parquet | json | jdbc | delta
    path: str | None = None  # files (relative to the project root) or a table folder
    url: str | None = None  # jdbc URL, without credentials
    table: str | None = None
    query: str | None = None
    user: str | None = None
    password: str | None = None
    # Reader options passed through unchanged (header, nullValue, fetchsize, …).
    options: dict[str, str] = field(default_factory=dict)


NEW_COLUMN_POLICIES = ("error", "ignore")


@dataclass
class StrLengthCheck:
    """Bounds on a string's length in characters (inclusive)."""

    min: int | None = None
    max: int | None = None


@dataclass
class ColumnChecks:
    """Declared value checks for one column; the ingest path enforces them (pandera)."""

    ge: float | None = None
    le: float | None = None
    gt: float | None = None
    lt: float | None = None
    isin: list[Any] | None = None
    regex: str | None = None  # RE2 syntax, matched from the start; anchor with ^…$ for a full match
    str_length: StrLengthCheck | None = None


@dataclass
class ColumnConfig:
    """One declared column: its name, type, nullability and checks."""

    name: str = MISSING
    type: str = MISSING  # one of COLUMN_TYPES, or decimal(p,s)
    nullable: bool = True  # False adds the not_null check
    description: str = ""
    source_name: str | None = None  # the column's name in the source, when it differs
    checks: ColumnChecks = field(default_factory=ColumnChecks)


@dataclass
class RowCountCheck:
    """Bounds on the number of source rows; outside them the ingest fails."""

    min: int | None = None
    max: int | None = None


@dataclass
class FreshnessCheck:
    """The newest accepted ``column`` value must be within ``max_age`` of the run date (else now)."""

    column: str = MISSING
    max_age: str = MISSING  # duration: 1h, 2d, …


@dataclass
class DatasetChecks:
    """Dataset-level checks, run as Spark aggregations."""

    unique: list[str] | None = None  # key columns; None = primary_key, [] = no check
    row_count: RowCountCheck = field(default_factory=RowCountCheck)
    freshness: FreshnessCheck | None = None


@dataclass
class DerivedColumn:
    """A column computed from accepted rows by a Spark SQL expression (e.g. a partition key)."""

    name: str = MISSING
    expr: str = MISSING


@dataclass
class DatasetConfig:
    """A raw dataset: its source, declared columns, checks, keys, event time and partitioning."""

    source: SourceConfig = field(default_factory=SourceConfig)
    columns: list[ColumnConfig] = MISSING
    description: str = ""
    primary_key: list[str] = field(default_factory=list)
    event_time: str | None = None
    checks: DatasetChecks = field(default_factory=DatasetChecks)
    # Added to raw.<dataset> after validation; may be named in partition_by.
    derived_columns: list[DerivedColumn] = field(default_factory=list)
    partition_by: list[str] = field(default_factory=list)  # declared or derived columns
    # Above this share of quarantined rows the ingest fails and writes nothing.
    max_bad_fraction: float = 0.01
    new_columns: str = "error"  # error | ignore: source columns nobody declared
    # Rows failing a check go to quarantine.<dataset>; False makes any bad row fail the step.
    quarantine: bool = True


@dataclass
class SpineConfig:
    """The rows features are computed for: a dataset and its event-time column."""

    dataset: str = MISSING
    event_time: str = MISSING


@dataclass
class ExpressionFeature:
    """A row-level feature: a SQL expression over the spine's columns."""

    name: str = MISSING
    expr: str = MISSING
    description: str = ""


@dataclass
class WindowFeature:
    """An aggregation over a trailing time window, grouped by ``by``, ending ``lag`` before the row.

    A source row counts when its time (``available_at``, else the source's event time) is in
    ``[t - lag - window, t - lag)``, where ``t`` is the spine row's event time.
    """

    name: str = MISSING
    function: str = MISSING  # one of WINDOW_FUNCTIONS
    column: str | None = None  # a source column or an expression feature; None only for count
    window: str = MISSING  # duration: 7d, 1h, 30d
    by: list[str] = MISSING  # columns of both the source and the spine dataset
    lag: str | None = None  # e.g. the label delay, so only known outcomes are aggregated
    source: str | None = None  # dataset; default the spine dataset
    filter: str | None = None  # SQL predicate applied before aggregating
    # Spark SQL expression over the source row: when its value becomes known. Default: the
    # source's event time. Rows where it is null are never aggregated.
    available_at: str | None = None


@dataclass
class AsOfJoinConfig:
    """Latest row of ``dataset`` at or before the spine's event time minus ``lag`` (point-in-time)."""

    dataset: str = MISSING
    keys: list[str] = MISSING  # join key columns, same name on both sides
    event_time: str = MISSING  # the joined dataset's time column
    columns: list[str] = MISSING
    lag: str | None = None  # duration: use the latest row at or before event_time - lag
    max_age: str | None = None  # duration: older rows are not used; None = no limit
    prefix: str = ""


@dataclass
class StaticJoinConfig:
    """A join on keys to a dataset without time (dimension table)."""

    dataset: str = MISSING
    keys: list[str] = MISSING  # join key columns, same name on both sides
    columns: list[str] = MISSING
    prefix: str = ""
    # A spine row without a match: null (keep it, features null), drop (leave it out),
    # fail (the build fails, naming the unmatched keys).
    on_missing: str = "null"


@dataclass
class TransformConfig:
    """A Python transform from ``features/``, referenced by its registered name."""

    name: str = MISSING
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = MISSING
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class LabelConfig:
    """The training target: an expression, known only ``available_after`` the event."""

    name: str = MISSING
    expr: str = MISSING
    available_after: str = MISSING  # duration


@dataclass
class FeatureSetConfig:
    """A feature set: entity keys, a spine, and the features computed for each spine row."""

    name: str = MISSING
    entity: list[str] = MISSING  # non-empty: the spine columns identifying what a row describes
    spine: SpineConfig = field(default_factory=SpineConfig)
    description: str = ""
    timezone: str = "UTC"  # IANA name, e.g. America/New_York: the zone of calendar features
    expressions: list[ExpressionFeature] = field(default_factory=list)
    windows: list[WindowFeature] = field(default_factory=list)
    asof_joins: list[AsOfJoinConfig] = field(default_factory=list)
    static_joins: list[StaticJoinConfig] = field(default_factory=list)
    transforms: list[TransformConfig] = field(default_factory=list)
    label: LabelConfig | None = None
