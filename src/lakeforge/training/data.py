"""Training data: the model's train / validation / test windows relative to ``run_date``, computed
through the features code path (``compute_features`` with the label), then brought to the driver
only when they fit the declared limit.

A window ``{start: -240d, end: -60d}`` holds the spine rows whose event time is in
``[run_date + start, run_date + end)`` (run_date at 00:00 UTC) and whose label was known by
run_date; rows with a null label (e.g. a cancelled flight) have nothing to learn and are left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from lakeforge.config.values import parse_duration
from lakeforge.errors import ConfigError, DataValidationError
from lakeforge.features.compute import compute_features
from lakeforge.features.spec import FeatureSetSpec

SPLITS = ("train", "validation", "test")
SPLIT = "_split"
LABEL = "_label"  # MLlib: the label as a double
BYTES_PER_VALUE = 8  # pandas holds every feature and the label as a float64 (or int64)


@dataclass(frozen=True)
class Window:
    """One split: event times in ``[start, end)`` (UTC)."""

    name: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class TrainingData:
    """The split frames on the driver, and what they were computed from."""

    frames: dict[str, Any]  # split name -> pandas DataFrame (keys, event time, features, label)
    windows: tuple[Window, ...]
    features: tuple[str, ...]
    label: str
    rows: dict[str, int]
    dropped_null_labels: int


def split_windows(splits: Any, run_date: date) -> tuple[Window, ...]:
    """The declared windows as instants; ``model.splits.<name>.start``/``end`` are signed offsets."""
    midnight = datetime(run_date.year, run_date.month, run_date.day, tzinfo=UTC).replace(tzinfo=None)
    windows = []
    for name in SPLITS:
        window = splits.get(name)
        if window is None:
            raise ConfigError(f"model.splits.{name} is missing: declare its start and end offsets", key="model.splits")
        bounds = []
        for side in ("start", "end"):
            try:
                bounds.append(midnight + timedelta(seconds=parse_duration(window.get(side), signed=True)))
            except ValueError as exc:
                raise ConfigError(f"model.splits.{name}.{side}: {exc}", key=f"model.splits.{name}.{side}") from exc
        windows.append(Window(name, bounds[0], bounds[1]))
    return tuple(windows)


def model_features(model: Any, spec: FeatureSetSpec) -> tuple[str, ...]:
    """The features the model uses: its list, or every feature of the set."""
    declared = [str(f) for f in model.get("features") or []]
    unknown = [f for f in declared if f not in spec.feature_names]
    if unknown:
        raise ConfigError(
            f"model '{model.name}': feature(s) {', '.join(unknown)} are not in feature set '{spec.name}'",
            key="model.features",
        )
    return tuple(declared or spec.feature_names)


def model_label(model: Any, spec: FeatureSetSpec) -> str:
    """The label column: the model's, which must be the feature set's."""
    if spec.label is None:
        raise ConfigError(f"feature set '{spec.name}' declares no label; a model needs one", key="features.label")
    declared = model.get("label")
    if declared and str(declared) != spec.label.name:
        raise ConfigError(
            f"model '{model.name}': label '{declared}' is not feature set '{spec.name}''s label ('{spec.label.name}')",
            key="model.label",
        )
    return spec.label.name


def training_frame(
    spark: Any,
    spec: FeatureSetSpec,
    tables: Any,
    windows: Sequence[Window],
    features: Sequence[str],
    run_date: date,
    project_root: Path,
) -> Any:
    """Every split's rows as one Spark frame with a ``_split`` column, label known by run_date."""
    from pyspark.sql import functions as F  # noqa: N812

    assert spec.label is not None
    first, last = min(w.start for w in windows), max(w.end for w in windows)
    known_by = datetime(run_date.year, run_date.month, run_date.day)
    frame = compute_features(
        spark,
        spec,
        tables,
        first.date(),
        (last - timedelta(microseconds=1)).date(),
        project_root=project_root,
        with_label=True,
        label_known_by=known_by,
    )
    t = F.col(f"`{spec.event_time}`").cast("timestamp")
    split = None
    for w in windows:
        inside = (t >= F.lit(w.start)) & (t < F.lit(w.end))
        split = F.when(inside, F.lit(w.name)) if split is None else split.when(inside, F.lit(w.name))
    columns = [*spec.entity, spec.event_time, *features, spec.label.name]
    frame = frame.select(*[F.col(f"`{c}`") for c in dict.fromkeys(columns)], split.alias(SPLIT))  # type: ignore[union-attr]
    return frame.where(F.col(SPLIT).isNotNull())


def _labelled_rows(frame: Any, windows: Sequence[Window], label: str) -> tuple[dict[str, int], int]:
    """Labelled rows per split, and how many rows had no label (one aggregation)."""
    from pyspark.sql import functions as F  # noqa: N812

    counts = {
        r[SPLIT]: (r["rows"], r["labelled"])
        for r in frame.groupBy(SPLIT)
        .agg(F.count(F.lit(1)).alias("rows"), F.count(F.col(f"`{label}`")).alias("labelled"))
        .collect()
    }
    rows = {w.name: int(counts.get(w.name, (0, 0))[1]) for w in windows}
    dropped = sum(int(total - labelled) for total, labelled in counts.values())
    return rows, dropped


def _refuse_empty(rows: dict[str, int], spec: FeatureSetSpec, windows: Sequence[Window], model_name: str) -> None:
    empty = [w for w in windows if rows[w.name] == 0]
    if empty:
        shown = ", ".join(f"{w.name} [{w.start:%Y-%m-%d %H:%M}, {w.end:%Y-%m-%d %H:%M})" for w in empty)
        raise DataValidationError(
            f"model '{model_name}': no labelled rows in split window(s) {shown}; check run_date, model.splits "
            f"and that features.{spec.name} covers those dates (labels must be known by run_date)"
        )


def _driver_mb(rows: int, spec: FeatureSetSpec, features: Sequence[str]) -> tuple[float, int]:
    """The estimated size in MB of ``rows`` rows on the driver, and their width (columns)."""
    width = len(features) + 1 + len(spec.entity) + 1
    return rows * width * BYTES_PER_VALUE / 2**20, width


def _sorted_pandas(frame: Any, spec: FeatureSetSpec, features: Sequence[str]) -> Any:
    """``frame`` on the driver sorted by event time and entity keys (the same data gives the same
    frame, so the same seed gives the same model), every feature a float64 (nulls as NaN), which is
    the models' signature type."""
    from pyspark.sql import functions as F  # noqa: N812

    collected = frame.orderBy(*[F.col(f"`{c}`") for c in (spec.event_time, *spec.entity)]).toPandas()
    collected[list(features)] = collected[list(features)].astype("float64")
    return collected


def collect_training_data(
    frame: Any,
    spec: FeatureSetSpec,
    windows: Sequence[Window],
    features: Sequence[str],
    label: str,
    max_driver_mb: float,
    model_name: str,
) -> TrainingData:
    """Count the splits, refuse what would not fit the driver, then bring each split over as pandas.

    Rows are sorted by event time and entity keys, so the same data gives the same frames (and,
    with the same seed, the same model). The frame is computed once: the counts and the collect
    read the persisted rows.
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions as F  # noqa: N812

    frame = frame.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        rows, dropped = _labelled_rows(frame, windows, label)
        _refuse_empty(rows, spec, windows, model_name)
        estimate_mb, width = _driver_mb(sum(rows.values()), spec, features)
        if estimate_mb > max_driver_mb:
            raise DataValidationError(
                f"model '{model_name}': the training data is about {estimate_mb:,.0f} MB "
                f"({sum(rows.values()):,} rows x {width} columns), over model.max_driver_mb={max_driver_mb:,.0f}; "
                "raise the limit if the driver has the memory (spark.driver.memory), shorten model.splits, or "
                "train on the executors with a Spark MLlib estimator "
                "(model.estimator._target_: pyspark.ml.classification.GBTClassifier, which brings only the test "
                "split to the driver)"
            )
        collected = _sorted_pandas(frame.where(F.col(f"`{label}`").isNotNull()), spec, features)
        frames = {
            w.name: collected[collected[SPLIT] == w.name].drop(columns=[SPLIT]).reset_index(drop=True) for w in windows
        }
        return TrainingData(frames, tuple(windows), tuple(features), label, rows, dropped)
    finally:
        frame.unpersist()


def spark_training_data(
    frame: Any,
    spec: FeatureSetSpec,
    windows: Sequence[Window],
    features: Sequence[str],
    label: str,
    max_driver_mb: float,
    model_name: str,
) -> tuple[Any, TrainingData]:
    """For a Spark MLlib estimator: the labelled rows stay in Spark, and only the test split comes to
    the driver (for plots, slice metrics and the gate), refused above ``max_driver_mb``.

    Returns the persisted Spark frame (features cast to double, the label also as a double in
    ``LABEL``, the split in ``_split``) and the TrainingData whose ``frames`` hold only ``test``.
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions as F  # noqa: N812

    cast = {f: F.col(f"`{f}`").cast("double") for f in features}
    frame = frame.withColumns({**cast, LABEL: F.col(f"`{label}`").cast("double")})
    frame = frame.persist(StorageLevel.MEMORY_AND_DISK)
    rows, dropped = _labelled_rows(frame, windows, label)
    _refuse_empty(rows, spec, windows, model_name)
    estimate_mb, width = _driver_mb(rows["test"], spec, features)
    if estimate_mb > max_driver_mb:
        frame.unpersist()
        raise DataValidationError(
            f"model '{model_name}': the test split is about {estimate_mb:,.3g} MB ({rows['test']:,} rows x {width} "
            f"columns), over model.max_driver_mb={max_driver_mb:g}; a Spark MLlib estimator trains on the "
            "executors but brings the test split to the driver for the plots, the slice metrics and the gate: "
            "shorten model.splits.test or raise the limit if the driver has the memory (spark.driver.memory)"
        )
    labelled = frame.where(F.col(f"`{label}`").isNotNull())
    test = _sorted_pandas(labelled.where(F.col(SPLIT) == "test").drop(SPLIT, LABEL), spec, features)
    return labelled, TrainingData({"test": test}, tuple(windows), tuple(features), label, rows, dropped)
