"""Training data: split windows relative to run_date, labels only once known, null labels left
out, the driver-memory guard, and the same frames every time."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from lakeforge.errors import ConfigError, DataValidationError
from lakeforge.features.build import RawTables
from lakeforge.features.spec import feature_set_spec
from lakeforge.lake.catalog import Catalog
from lakeforge.lake.delta import write_table
from lakeforge.training.data import (
    collect_training_data,
    model_features,
    model_label,
    split_windows,
    training_frame,
)

RUN_DATE = date(2024, 6, 11)
T0 = datetime(2024, 6, 1)
FEATURES = {
    "name": "demo",
    "entity": ["id"],
    "spine": {"dataset": "ev", "event_time": "t"},
    "expressions": [{"name": "hour_of_day", "expr": "hour(t)"}],
    "windows": [{"name": "n_1d", "function": "count", "window": "1d", "by": ["k"]}],
    # v null: no label (a cancelled flight).
    "label": {"name": "late", "expr": "CAST(v > 1 AS INT)", "available_after": "1d"},
}
SPLITS = {
    "train": {"start": "-10d", "end": "-4d"},  # 06-01 .. 06-06
    "validation": {"start": "-4d", "end": "-2d"},  # 06-07 .. 06-08
    "test": {"start": "-2d", "end": "0d"},  # 06-09 .. 06-10 (06-10's labels are not known yet)
}


@pytest.fixture
def lake(spark: Any, tmp_path: Path) -> Catalog:
    """Ten days of events, two a day (00:00 and 12:00), every fifth with a null value."""
    catalog = Catalog(tmp_path / "lake")
    rows = [(i, i % 2, T0 + timedelta(hours=12 * i), None if i % 5 == 4 else float(i % 3)) for i in range(20)]
    write_table(spark.createDataFrame(rows, "id int, k int, t timestamp, v double"), catalog, "raw.ev")
    return catalog


def _model(**extra: Any) -> Any:
    return OmegaConf.create({"name": "m", "features": [], "label": "late", "splits": SPLITS, **extra})


def _data(spark: Any, catalog: Catalog, tmp_path: Path, max_mb: float = 100.0, model: Any = None) -> Any:
    spec = feature_set_spec(OmegaConf.create(FEATURES), OmegaConf.create({"ev": {"event_time": "t"}}))
    model = model or _model()
    windows = split_windows(model.splits, RUN_DATE)
    features = model_features(model, spec)
    frame = training_frame(spark, spec, RawTables(spark, catalog), windows, features, RUN_DATE, tmp_path)
    return collect_training_data(frame, spec, windows, features, model_label(model, spec), max_mb, "m")


def test_splits_hold_their_windows_and_only_known_labels(spark: Any, lake: Catalog, tmp_path: Path) -> None:
    data = _data(spark, lake, tmp_path)
    days = {name: sorted({str(t.date()) for t in frame["t"]}) for name, frame in data.frames.items()}
    assert days["train"] == [f"2024-06-0{d}" for d in range(1, 7)]
    assert days["validation"] == ["2024-06-07", "2024-06-08"]
    # 06-10 00:00's label is known at 06-11 00:00 (kept); 06-10 12:00's only later (left out).
    assert days["test"] == ["2024-06-09", "2024-06-10"]
    assert [str(t) for t in data.frames["test"]["t"]][-1] == "2024-06-10 00:00:00"
    assert all(frame["late"].notna().all() for frame in data.frames.values())
    assert data.dropped_null_labels == 3  # ids 4, 9, 14 have no value (19 is 06-10 12:00: not known yet)
    assert data.rows == {name: len(frame) for name, frame in data.frames.items()}
    assert data.features == ("hour_of_day", "n_1d")
    assert list(data.frames["train"].columns) == ["id", "t", "hour_of_day", "n_1d", "late"]


def test_the_same_data_gives_the_same_frames(spark: Any, lake: Catalog, tmp_path: Path) -> None:
    first, second = _data(spark, lake, tmp_path), _data(spark, lake, tmp_path)
    for name in first.frames:
        assert first.frames[name].equals(second.frames[name])


def test_training_data_over_the_driver_limit_is_refused(spark: Any, lake: Catalog, tmp_path: Path) -> None:
    with pytest.raises(DataValidationError) as exc:
        _data(spark, lake, tmp_path, max_mb=0.0001)
    message = str(exc.value)
    assert "over model.max_driver_mb=0" in message and "rows x 5 columns" in message
    assert "Spark MLlib estimator" in message and "pyspark.ml.classification.GBTClassifier" in message


def test_an_empty_split_names_its_window(spark: Any, lake: Catalog, tmp_path: Path) -> None:
    model = _model(splits={**SPLITS, "train": {"start": "-40d", "end": "-30d"}})
    with pytest.raises(DataValidationError, match=r"no labelled rows in split window\(s\) train \[2024-05-02"):
        _data(spark, lake, tmp_path, model=model)


def test_bad_model_declarations_name_the_key() -> None:
    spec = feature_set_spec(OmegaConf.create(FEATURES), OmegaConf.create({"ev": {"event_time": "t"}}))
    with pytest.raises(ConfigError, match=r"feature\(s\) n_7d are not in feature set 'demo'"):
        model_features(_model(features=["n_1d", "n_7d"]), spec)
    with pytest.raises(ConfigError, match="label 'is_late' is not feature set 'demo''s label"):
        model_label(_model(label="is_late"), spec)
    with pytest.raises(ConfigError, match=r"model.splits.test.end: '-2 days' is not a duration"):
        split_windows(OmegaConf.create({**SPLITS, "test": {"start": "-2d", "end": "-2 days"}}), RUN_DATE)
