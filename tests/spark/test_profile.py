"""profile_table: figures against pandas/numpy on the same rows, files written, page escaped."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from lakeforge.data.profile import QUANTILES, profile_table
from lakeforge.errors import UsageError
from lakeforge.lake.catalog import Catalog
from lakeforge.lake.delta import write_table

SCHEMA = "id long, amount double, city string, seen_at timestamp, label int"
# The hostile value is the most frequent, so it is among the top values shown.
CITIES = ["<script>alert(1)</script>", "Paris", "Lyon", "Nice"]
N = 200


def _rows() -> list[tuple[Any, ...]]:
    """Ints, doubles with nulls and a NaN, strings with nulls and a hostile value, times, a 0/1 label."""
    rng = np.random.default_rng(7)
    start = dt.datetime(2024, 1, 1, 12, 0)
    rows: list[tuple[Any, ...]] = []
    for i in range(N):
        amount: float | None = float(np.round(rng.normal(50, 15), 3))
        if i % 10 == 3:
            amount = None
        elif i == 5:
            amount = math.nan
        city = None if i % 17 == 0 else CITIES[min(int(rng.exponential(1.0)), 3)]
        seen_at = start + dt.timedelta(days=int(i * 1.5), minutes=i)
        label = int((amount or 0) > 55 or city == "Nice")
        rows.append((i * 3, amount, city, seen_at, label))
    return rows


@pytest.fixture(scope="module")
def profiled(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, pd.DataFrame, Catalog, Path]:
    """The sample table written with write_table, profiled once for the module."""
    lake_root = tmp_path_factory.mktemp("lake")
    catalog = Catalog(lake_root)
    write_table(spark.createDataFrame(_rows(), SCHEMA), catalog, "raw.sample")
    out_dir = tmp_path_factory.mktemp("profile")
    result = profile_table(spark, catalog, "raw.sample", target="label", out_dir=out_dir, top_k=3, bins=8)
    frame = pd.DataFrame(_rows(), columns=["id", "amount", "city", "seen_at", "label"])
    return result, frame, catalog, out_dir


def _column(result: Any, name: str) -> dict[str, Any]:
    return next(c for c in result.data["columns"] if c["name"] == name)


def test_numeric_figures_match_pandas(profiled: tuple[Any, pd.DataFrame, Catalog, Path]) -> None:
    result, frame, _, _ = profiled
    assert result.rows == N and result.version == 0 and result.data["column_count"] == 5
    for name in ("id", "amount"):
        col, series = _column(result, name), frame[name].astype(float)
        assert col["count"] == series.count()
        assert col["nulls"] == series.isna().sum()
        assert col["missing_share"] == pytest.approx(series.isna().mean())
        assert col["min"] == series.min() and col["max"] == series.max()
        assert col["mean"] == pytest.approx(series.mean(), rel=1e-12)
        assert col["stddev"] == pytest.approx(series.std(), rel=1e-9)
        # percentile_approx returns an observed value within 1/accuracy of the rank: compare
        # with the nearest-rank values around the exact quantile.
        values = np.sort(series.dropna().to_numpy())
        for q in QUANTILES:
            low = values[max(math.floor(q * len(values)) - 1, 0)]
            high = values[min(math.ceil(q * len(values)), len(values) - 1)]
            assert low <= col["quantiles"][str(q)] <= high, (name, q)
    amount = _column(result, "amount")
    assert amount["nans"] == 1 and amount["nulls"] == 21
    assert _column(result, "id")["distinct_approx"] == pytest.approx(N, rel=0.1)


def test_histograms_count_every_non_null_value(profiled: tuple[Any, pd.DataFrame, Catalog, Path]) -> None:
    result, frame, _, _ = profiled
    amount = _column(result, "amount")
    hist = amount["histogram"]
    assert len(hist["counts"]) == 8 and sum(hist["counts"]) == amount["count"]
    expected, _ = np.histogram(frame["amount"].dropna(), bins=np.array(hist["edges"]))
    assert hist["counts"] == expected.tolist()
    label = _column(result, "label")["histogram"]
    assert label["per_value"] and label["edges"] == [0.0, 1.0, 2.0]
    assert label["counts"] == [int((frame["label"] == 0).sum()), int(frame["label"].sum())]
    seen = _column(result, "seen_at")
    assert seen["histogram"]["unit"] == "month" and seen["histogram"]["labels"][0] == "2024-01"
    by_month = frame["seen_at"].dt.strftime("%Y-%m").value_counts()
    assert seen["histogram"]["counts"] == [int(by_month.get(m, 0)) for m in seen["histogram"]["labels"]]
    assert seen["min"] == "2024-01-01 12:00:00" and sum(seen["histogram"]["counts"]) == N


def test_top_values_and_target(profiled: tuple[Any, pd.DataFrame, Catalog, Path]) -> None:
    result, frame, _, _ = profiled
    city = _column(result, "city")
    counts = frame["city"].value_counts()
    assert [(t["value"], t["count"]) for t in city["top_values"]] == list(counts.items())[:3]
    means = frame.groupby("city")["label"].mean()
    for top in city["top_values"]:
        assert top["target_mean"] == pytest.approx(means[top["value"]])
        assert top["share"] == pytest.approx(top["count"] / N)
    paired = frame[["amount", "label"]].dropna()
    expected = np.corrcoef(paired["amount"], paired["label"])[0, 1]
    assert _column(result, "amount")["target_corr"] == pytest.approx(expected, rel=1e-9)
    assert _column(result, "id")["target_corr"] == pytest.approx(np.corrcoef(frame["id"], frame["label"])[0, 1])
    assert "target_corr" not in _column(result, "label")


def test_files_written_and_page_escaped(profiled: tuple[Any, pd.DataFrame, Catalog, Path]) -> None:
    result, _, _, out_dir = profiled
    assert result.json_path == out_dir / "raw.sample.profile.json"
    assert json.loads(result.json_path.read_text()) == result.data
    page = result.html_path.read_text()
    assert result.html_path == out_dir / "raw.sample.profile.html"
    plotted = re.findall(r'<svg class="lf-plot[^"]*" data-column="([^"]+)"', page)
    assert sorted(plotted) == sorted(["id", "amount", "city", "seen_at", "label"])
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # Self-contained: nothing is fetched from anywhere.
    assert not re.search(r"<script|<link|\bsrc=|@import|url\(|https?:", page)


def test_hostile_column_names_are_escaped(spark: Any, lake_root: Path, tmp_path: Path) -> None:
    catalog = Catalog(lake_root)
    df = spark.createDataFrame([(1, "a"), (2, "b")], "id long, s string").toDF("<b>x</b>", "two words")
    write_table(df, catalog, "raw.odd")
    result = profile_table(spark, catalog, "raw.odd", out_dir=tmp_path)
    page = result.html_path.read_text()
    assert "<b>x</b>" not in page and 'data-column="&lt;b&gt;x&lt;/b&gt;"' in page
    assert _column(result, "two words")["top_values"][0] == {"value": "a", "count": 1, "share": 0.5}


def test_unknown_or_unusable_target(profiled: tuple[Any, pd.DataFrame, Catalog, Path], spark: Any) -> None:
    _, _, catalog, out_dir = profiled
    with pytest.raises(
        UsageError,
        match=r"target column 'lable' is not a column of table 'raw.sample' "
        r"\(did you mean 'label'\?\); columns: id, amount, city, seen_at, label",
    ):
        profile_table(spark, catalog, "raw.sample", target="lable", out_dir=out_dir)
    with pytest.raises(UsageError, match=r"target column 'city' of table 'raw.sample' has type string"):
        profile_table(spark, catalog, "raw.sample", target="city", out_dir=out_dir)


def test_empty_table_and_time_travel(spark: Any, lake_root: Path, tmp_path: Path) -> None:
    catalog = Catalog(lake_root)
    write_table(spark.createDataFrame([], "x double, d date"), catalog, "raw.grows")
    write_table(spark.createDataFrame([(1.0, dt.date(2024, 5, 1))], "x double, d date"), catalog, "raw.grows")
    empty = profile_table(spark, catalog, "raw.grows", version=0, out_dir=tmp_path)
    assert empty.version == 0 and empty.rows == 0
    assert _column(empty, "x")["count"] == 0 and _column(empty, "x")["mean"] is None
    assert "histogram" not in _column(empty, "x")
    latest = profile_table(spark, catalog, "raw.grows", out_dir=tmp_path)
    assert latest.version == 1 and latest.rows == 1
    assert _column(latest, "x")["histogram"]["counts"] == [1]
    assert _column(latest, "d")["histogram"] == {"unit": "day", "labels": ["2024-05-01"], "counts": [1]}
