"""The monitor job end to end on real Delta tables, a real SQLite MLflow store and local Spark:
Spark histograms equal numpy's, a stable week raises nothing, a drifted week opens one alert episode,
notifies once and requests a retrain, a re-run replaces its rows and notifies nobody twice,
performance arrives with the labels, and the report renders from the tables in headless Chromium."""

from __future__ import annotations

import json
import re
import subprocess
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from omegaconf import OmegaConf

from lakeforge.errors import ConfigError
from lakeforge.lake.delta import Lineage, read_table, write_table
from lakeforge.lake.delta_common import open_table
from lakeforge.monitoring import tables
from lakeforge.monitoring.binning import FeatureBins, count_bins, count_files
from lakeforge.monitoring.job import monitor
from lakeforge.monitoring.report import write_report
from lakeforge.monitoring.stats import bin_values
from lakeforge.scoring.job import score
from lakeforge.tracking.registry import promote_by_hand
from lakeforge.training.run import train
from tests.spark.helpers_train import make_project

STABLE = (date(2024, 6, 10), date(2024, 6, 14))
DRIFTED = (date(2024, 6, 15), date(2024, 6, 19))
CHROMIUM = Path("/usr/bin/chromium")


def _lineage(step: str) -> Lineage:
    return Lineage(f"job-{step}-{time.monotonic_ns()}", git_commit="abc", git_dirty=False, config_hash="h", step=step)


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def test_spark_histograms_equal_numpy(spark: Any, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=3000)
    x[::97] = np.nan
    x[5], x[6], x[7] = np.inf, -np.inf, 1e9
    cats = rng.choice(["a", "b", "c", "d", None], size=3000)
    groups = rng.integers(0, 3, size=3000)
    rows = [
        (int(g), None if i % 50 == 0 else float(v), c) for i, (g, v, c) in enumerate(zip(groups, x, cats, strict=True))
    ]
    frame = spark.createDataFrame(rows, "g int, x double, c string").repartition(4)
    edges = tuple(float(e) for e in np.linspace(-2, 2, 11))
    bins = [FeatureBins("x", "numeric", edges=edges), FeatureBins("c", "categorical", categories=("a", "b"))]
    counted = count_bins(frame, bins, ["g"])
    for g in range(3):
        part = [r for r in rows if r[0] == g]
        values = np.array([np.nan if r[1] is None else r[1] for r in part])
        got = counted[(str(g),)]
        assert got.rows == len(part)
        assert got.counts["x"].tolist() == bin_values(values, edges).tolist()
        assert got.nulls["x"] == int(np.isnan(values).sum())
        labels = [r[2] for r in part]
        expected = [labels.count("a"), labels.count("b"), labels.count("c") + labels.count("d")]
        assert got.counts["c"].tolist() == expected
        assert got.nulls["c"] == labels.count(None)
    # The same counts straight from Parquet files (how the monitor reads the feature table).
    frame.write.partitionBy("g").parquet(str(tmp_path / "files"))
    files = [(str(p), (p.parent.name.split("=")[1],)) for p in sorted((tmp_path / "files").glob("g=*/*.parquet"))]
    from_files = count_files(spark, files, bins)
    assert sorted(from_files) == sorted(counted)
    for key, got in counted.items():
        assert from_files[key].rows == got.rows
        for name in ("x", "c"):
            assert from_files[key].counts[name].tolist() == got.counts[name].tolist()
            assert from_files[key].nulls[name] == got.nulls[name]


def _append_days(spark: Any, catalog: Any, days: list[date], drifted: bool, start_id: int) -> None:
    """Hourly events for 3 keys (as make_project writes them); drifted days have twice the events, all in
    hours 0-5, and a higher v, so hour_of_day and n_1d drift."""
    rng = np.random.default_rng(start_id)
    rows, i = [], start_id
    for day in days:
        for slot in range(48 if drifted else 24):
            hour, minute = (slot % 6, (slot // 6) * 5) if drifted else (slot, 0)
            t = datetime(day.year, day.month, day.day, hour, minute)
            for k in range(3):
                v = float(t.hour / 24 + k * 0.2 + rng.normal(0, 0.2) + (0.3 if drifted else 0.0))
                rows.append((i, k, t, v))
                i += 1
    write_table(spark.createDataFrame(rows, "id int, k int, t timestamp, v double"), catalog, "raw.ev", mode="append")


@pytest.fixture(scope="module")
def project(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A champion trained on May 2024, ten more days of events (five stable, five drifted), all scored."""
    tmp = tmp_path_factory.mktemp("monitor")
    cfg, catalog = make_project(spark, tmp)
    _append_days(spark, catalog, _days(*STABLE), drifted=False, start_id=100_000)
    _append_days(spark, catalog, _days(*DRIFTED), drifted=True, start_id=200_000)
    cfg.model.features = ["hour_of_day", "key", "n_1d"]
    cfg.model.gate.baseline = None
    cfg.model.scoring = {}
    train(spark, cfg, catalog, _lineage("train"))
    promote_by_hand(cfg, "demo_model", "1", "test: the champion")
    scoring = cfg.copy()
    scoring.run_date = None
    scoring.start_date, scoring.end_date = str(STABLE[0]), str(DRIFTED[1])
    score(spark, scoring, catalog, _lineage("score"))
    alerts_file = tmp / "alerts.jsonl"
    cfg.monitor = OmegaConf.create(
        {
            "name": "demo_monitor",
            "model": "demo_model",
            "reference": {"kind": "training"},
            "current_window": "1d",
            "features": [],
            "drift": {
                "numeric": {"method": "psi", "threshold": 0.2},
                "categorical": {"method": "jensenshannon", "threshold": 0.1},
                "prediction": {"method": "psi", "threshold": 0.2},
                "bins": 10,
                "top_k": 20,
            },
            "performance": {"metric": "roc_auc", "threshold": 0.5, "slices": ["key"], "score_bins": 50},
            "deadlines": {"predictions_by": "07:00", "labels_within": "1d"},
            "alerts": {
                "rules": [
                    {
                        "name": "feature_drift",
                        "signal": "drift_share",
                        "above": 0.5,
                        "n_of": 2,
                        "last": 3,
                        "retrain": True,
                    },
                    {"name": "predictions_missing", "signal": "predictions_missing", "when_true": True},
                ],
                "channels": ["log", {"kind": "file", "path": str(alerts_file)}],
                "retrain": {"cooldown_days": 7},
            },
        }
    )
    return SimpleNamespace(cfg=cfg, catalog=catalog, tmp=tmp, alerts_file=alerts_file)


def _run(spark: Any, project: SimpleNamespace, first: date, last: date, **changes: Any) -> Any:
    cfg = project.cfg.copy()
    cfg.run_date = None
    cfg.start_date, cfg.end_date = str(first), str(last)
    cfg.repro = True  # a replay of past dates: lateness is recorded, not signalled
    for key, value in changes.items():
        OmegaConf.update(cfg, key, value)
    return monitor(spark, cfg, project.catalog, _lineage("monitor"))


def _table(spark: Any, project: SimpleNamespace, table: str) -> list[dict[str, Any]]:
    return [r.asDict(recursive=True) for r in read_table(spark, project.catalog, table).collect()]


def _notes(project: SimpleNamespace) -> list[dict[str, Any]]:
    if not project.alerts_file.exists():
        return []
    return [json.loads(line) for line in project.alerts_file.read_text().splitlines()]


def test_a_stable_week_raises_nothing_and_measures_performance(spark: Any, project: SimpleNamespace) -> None:
    result = _run(spark, project, *STABLE)
    assert [d.run_date for d in result.days] == _days(*STABLE)
    assert result.retrain_requests == []
    for day in result.days:
        assert day.signals["drift_share"] is not None and day.signals["drift_share"] < 0.5, day
        assert day.signals["predictions_missing"] is False
        assert day.signals["predictions_late"] is None  # a replay
        assert day.signals["missing_share"] == 0.0
        assert 0.9 < day.signals["volume_ratio"] < 1.1
    # Labels of a date count the next day: the first date has no scored label date before it.
    assert result.days[0].signals["performance.roc_auc"] is None
    for day in result.days[1:]:
        assert 0.6 < day.signals["performance.roc_auc"] <= 1.0
        assert day.signals["performance.log_loss"] > 0
    drift_rows = _table(spark, project, tables.FEATURE_DRIFT)
    assert len(drift_rows) == 5 * 3
    assert {r["feature"] for r in drift_rows} == {"hour_of_day", "key", "n_1d"}
    assert all(r["reference_id"] == "demo_model/v1" and r["rows"] == 72 for r in drift_rows)
    perf = _table(spark, project, tables.PERFORMANCE)
    assert {(r["slice"], r["slice_value"]) for r in perf} == {("all", "all"), ("key", "0"), ("key", "1"), ("key", "2")}
    assert all(r["label_date"] == r["run_date"] - timedelta(days=1) for r in perf)
    assert all(r["training_value"] is not None for r in perf)
    fresh = [r for r in _table(spark, project, tables.DATA_QUALITY) if r["check"] == "freshness"]
    assert {r["status"] for r in fresh} == {"late"} and all("replay" in r["detail"] for r in fresh)
    assert _notes(project) == []
    # Saved once: the reference is read back, not recomputed.
    assert len({r["created_at"] for r in _table(spark, project, "monitoring.reference")}) == 1


def test_a_drifted_week_opens_one_episode_and_requests_one_retrain(spark: Any, project: SimpleNamespace) -> None:
    result = _run(spark, project, *DRIFTED)
    shares = [d.signals["drift_share"] for d in result.days]
    assert all(s >= 2 / 3 for s in shares), shares
    assert {"hour_of_day", "n_1d"} <= set(result.days[0].drifted)
    statuses = [[(e.rule, e.status) for e in d.events] for d in result.days]
    # Fires on 2 of the last 3 dates: the second drifted date opens the episode.
    assert statuses[0] == [] and statuses[1] == [("feature_drift", "opened")]
    assert all(s == [("feature_drift", "ongoing")] for s in statuses[2:])
    assert result.retrain_requests == [DRIFTED[0] + timedelta(days=1)]
    notes = _notes(project)
    assert [(n["rule"], n["status"]) for n in notes] == [("feature_drift", "opened")]
    score_drift = [r for r in _table(spark, project, tables.PREDICTION_DRIFT) if r["run_date"] >= DRIFTED[0]]
    assert all(r["value"] is not None and r["model_alias"] == "champion" for r in score_drift)


def test_a_rerun_replaces_its_rows_and_notifies_nobody_twice(spark: Any, project: SimpleNamespace) -> None:
    before = {t: len(_table(spark, project, t)) for t in (tables.FEATURE_DRIFT, tables.ALERTS, tables.RETRAIN)}
    result = _run(spark, project, *DRIFTED)
    after = {t: len(_table(spark, project, t)) for t in before}
    assert after == before
    assert [e.status for e in result.days[1].events] == ["opened"]  # the same episode, recomputed
    assert not any(e.notify for d in result.days for e in d.events)
    assert len(_notes(project)) == 1
    episodes = {r["episode_id"] for r in _table(spark, project, tables.ALERTS)}
    assert episodes == {f"feature_drift:{DRIFTED[0] + timedelta(days=1)}"}


def test_a_rule_on_an_unknown_signal_fails_before_anything_is_written(spark: Any, project: SimpleNamespace) -> None:
    def versions() -> dict[str, int]:
        return {t: open_table(project.catalog, t).version() for t in (tables.SIGNALS, tables.FEATURE_DRIFT)}

    before = versions()
    bad = [{"name": "x", "signal": "drift_shares", "above": 0.1}]
    with pytest.raises(ConfigError, match=r"drift_shares.*did you mean 'drift_share'"):
        _run(spark, project, *STABLE, **{"monitor.alerts.rules": bad})
    assert versions() == before


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium not installed: run scripts/ensure_test_deps.sh")
def test_the_report_renders_its_plots_offline(spark: Any, project: SimpleNamespace) -> None:
    page, data = write_report(project.catalog, "demo_model", project.tmp / "reports" / "demo_model.html")
    html = page.read_text()
    assert "http://" not in html and "https://" not in html and "<script" not in html  # self-contained
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
    flags += [f"--user-data-dir={project.tmp / 'chromium'}", "--dump-dom", page.as_uri()]
    dom = subprocess.run([str(CHROMIUM), *flags], capture_output=True, text=True, timeout=30, check=True).stdout
    plots = dict(re.findall(r'<svg class="lf-plot[^"]*" data-plot="([^"]*)"[^>]*>(.*?)</svg>', dom, re.S))
    assert {"drift", "feature drift", "scores champion", "performance", "quality", "volume"} <= set(plots)
    assert plots["drift"].count("<polyline") >= 2
    assert plots["feature drift"].count("<rect") == 10 * 3  # a cell per date and feature
    assert plots["performance"].count("<polyline") >= 1 and 'class="lf-level"' in plots["performance"]
    assert "feature_drift" in dom  # the open alert
    assert len({str(r["run_date"]) for r in data.signals}) == 10


def test_a_short_backtest_replays_both_arms_without_touching_production(spark: Any, project: SimpleNamespace) -> None:
    from lakeforge.pipeline.backtest import backtest, write_outputs

    production = sorted(
        (str(r["run_date"]), r["feature"])
        for r in _table(spark, project, tables.FEATURE_DRIFT)
        if r["monitor"] == "demo_monitor"
    )
    notes = _notes(project)
    cfg = project.cfg.copy()
    result = backtest(spark, cfg, project.catalog, _lineage("backtest"), STABLE[0], DRIFTED[1])
    assert _notes(project) == notes  # a replay notifies nobody

    static, policy = result.arms["static"], result.arms["policy"]
    days = _days(STABLE[0], DRIFTED[1])
    assert sorted(static.serving) == days and set(static.serving.values()) == {1}
    assert static.retrains == []
    # The drifted week's second date asks for a retraining; the model is trained for the day after it.
    asked = DRIFTED[0] + timedelta(days=1)
    assert [(r["requested_on"], r["run_date"]) for r in policy.retrains][:1] == [(asked, asked + timedelta(days=1))]
    first = policy.retrains[0]
    if first["promoted"]:
        assert policy.serving[asked + timedelta(days=1)] == int(first["version"])
        assert policy.serving[asked] == 1
    else:
        assert set(policy.serving.values()) == {1}
    # Both arms measured every date whose labels were in (the first date's label date was not scored).
    for arm in (static, policy):
        measured = sorted(d for d, v in arm.performance.items() if v is not None)
        assert measured == days[1:], arm.arm
    rows = result.rows()
    assert [r["run_date"] for r in rows] == [d.isoformat() for d in days]
    json_path, html_path = write_outputs(result, project.tmp / "reports")
    assert json.loads(json_path.read_text())["rows"] == rows
    assert 'data-plot="backtest"' in html_path.read_text()
    # Production's model, predictions and monitor rows are untouched.
    assert (
        sorted(
            (str(r["run_date"]), r["feature"])
            for r in _table(spark, project, tables.FEATURE_DRIFT)
            if r["monitor"] == "demo_monitor"
        )
        == production
    )
    assert project.catalog.exists("predictions.demo_model__bt_policy")
    assert "policy" in result.describe() and "mean:" in result.describe()
