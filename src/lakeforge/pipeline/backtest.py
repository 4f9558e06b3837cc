"""``lakeforge backtest``: replay run dates over history, with and without the retrain policy.

Two arms, each a copy of the production names so that nothing of production is touched: the
registered model ``<model>__bt_<arm>`` (its first version points at the starting champion's
artifacts and run), the prediction table ``predictions.<model>__bt_<arm>`` and the monitor
``<monitor>__bt_<arm>`` (rows of the ``monitoring.*`` tables under that name).

* ``static``: the starting champion scores every date; the monitor measures them (no retraining).
* ``policy``: the same, and when the monitor's retrain policy asks on date R (labels of the
  past arriving after their delay, as the schedule would see them), a model is trained for
  R + 1 and gated against the arm's champion; a promoted model scores the dates after R. Scoring
  and monitoring a date depend only on the dates before it, so the arm scores and monitors the
  remaining range in one pass per model and restarts after each promotion: the same result as
  replaying the dates one by one, at a few passes' cost.

The comparison is the performance of each arm per run date (``monitoring.performance``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from lakeforge.errors import ConfigError, RegistryError
from lakeforge.lake.catalog import Catalog
from lakeforge.lake.delta import Lineage

log = logging.getLogger(__name__)

ARMS = ("static", "policy")


@dataclass
class ArmResult:
    """One arm's replay: the model version serving each date, the retrains, the performance per date."""

    arm: str
    model: str
    monitor: str
    serving: dict[date, int] = field(default_factory=dict)
    retrains: list[dict[str, Any]] = field(default_factory=list)
    performance: dict[date, float | None] = field(default_factory=dict)


@dataclass(frozen=True)
class BacktestResult:
    """Both arms over the same dates."""

    model: str
    metric: str
    start: date
    end: date
    arms: dict[str, ArmResult]

    def rows(self) -> list[dict[str, Any]]:
        """One row per run date: each arm's metric and serving version."""
        days = [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]
        return [
            {
                "run_date": d.isoformat(),
                **{f"{a}_{self.metric}": arm.performance.get(d) for a, arm in self.arms.items()},
                **{f"{a}_version": arm.serving.get(d) for a, arm in self.arms.items()},
            }
            for d in days
        ]

    def describe(self) -> str:
        """A monthly table, the retrains and the overall means, for a person."""
        lines = [
            f"backtest of {self.model} {self.start}..{self.end}: "
            f"{self.metric} per run date, with and without retraining"
        ]
        months: dict[str, dict[str, list[float]]] = {}
        for row in self.rows():
            month = row["run_date"][:7]
            for a in self.arms:
                value = row[f"{a}_{self.metric}"]
                if value is not None:
                    months.setdefault(month, {}).setdefault(a, []).append(value)
        header = f"  {'month':<8}" + "".join(f"  {a:>10}" for a in self.arms)
        lines.append(header)
        for month, values in sorted(months.items()):
            cells = "".join(
                f"  {sum(values.get(a, [])) / len(values[a]):>10.4f}" if values.get(a) else f"  {'-':>10}"
                for a in self.arms
            )
            lines.append(f"  {month:<8}{cells}")
        means = []
        for a, arm in self.arms.items():
            known = [v for v in arm.performance.values() if v is not None]
            means.append(f"{a} {sum(known) / len(known):.4f} over {len(known)} dates" if known else f"{a} -")
        lines.append("  mean: " + "; ".join(means))
        for r in self.arms["policy"].retrains if "policy" in self.arms else []:
            outcome = "promoted" if r["promoted"] else "refused by the gate"
            lines.append(
                f"  retrain requested {r['requested_on']}: trained v{r['version']} for {r['run_date']}, {outcome}"
            )
        return "\n".join(lines)


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def _arm_config(cfg: Any, arm: str) -> Any:
    """The config of one arm: the production config under the arm's model and monitor names."""
    arm_cfg = cfg.copy()
    OmegaConf.set_struct(arm_cfg, False)
    arm_cfg.model.name = f"{cfg.model.name}__bt_{arm}"
    arm_cfg.monitor.name = f"{cfg.monitor.name}__bt_{arm}"
    arm_cfg.monitor.model = arm_cfg.model.name
    arm_cfg.model.scoring.exports = []  # a replay exports nothing
    arm_cfg.model.scoring.shadow = []
    arm_cfg.model.scoring.canary = None
    arm_cfg.repro = True  # a replay: lateness is not a signal
    arm_cfg.monitor.alerts.channels = []  # a replay notifies nobody (its alerts are in monitoring.alerts)
    return arm_cfg


def _seed_arm(cfg: Any, arm_cfg: Any, version: str) -> str:
    """Register the starting champion's artifacts under the arm's model name as its champion; its version."""
    from lakeforge.tracking.models import set_alias
    from lakeforge.tracking.registry import model_version
    from lakeforge.tracking.store import connect

    client = connect(cfg).client
    source = model_version(client, str(cfg.model.name), version)
    name = str(arm_cfg.model.name)
    try:
        client.create_registered_model(name, description=f"backtest arm of {cfg.model.name}")
    except Exception:  # already there from an earlier backtest: a new version starts this one
        log.info("backtest: registered model '%s' exists; adding a version", name)
    copy = client.create_model_version(
        name, source.source, run_id=source.run_id, tags={"lakeforge.backtest_of": f"{cfg.model.name}/v{version}"}
    )
    for key, value in (source.tags or {}).items():
        if key.startswith("lakeforge.run"):
            client.set_model_version_tag(name, copy.version, key, value)
    set_alias(client, name, "champion", copy.version)
    return str(copy.version)


def _score_and_monitor(spark: Any, arm_cfg: Any, catalog: Catalog, lineage: Lineage, start: date, end: date) -> Any:
    from lakeforge.monitoring.job import monitor
    from lakeforge.scoring.job import score

    span = arm_cfg.copy()
    OmegaConf.set_struct(span, False)
    span.run_date, span.start_date, span.end_date = None, start.isoformat(), end.isoformat()
    score(spark, span, catalog, lineage)
    return monitor(spark, span, catalog, lineage, replay=True)


def _retrain(spark: Any, arm_cfg: Any, catalog: Catalog, lineage: Lineage, run_date: date) -> tuple[str, bool]:
    """Train for ``run_date`` under the arm's name and gate it; (version, promoted)."""
    from lakeforge.training.evaluate import evaluate
    from lakeforge.training.run import train

    day_cfg = arm_cfg.copy()
    OmegaConf.set_struct(day_cfg, False)
    day_cfg.run_date, day_cfg.start_date, day_cfg.end_date = run_date.isoformat(), None, None
    trained = train(spark, day_cfg, catalog, lineage)
    evaluation = evaluate(spark, day_cfg, catalog, lineage, trained.version, write_metrics=False)
    promoted = evaluation is not None and evaluation.decision.promote
    return trained.version, promoted


def _performance(catalog: Catalog, monitor: str, metric: str) -> dict[date, float | None]:
    import pyarrow.dataset as ds

    from lakeforge.lake.delta_read import arrow_dataset
    from lakeforge.monitoring import tables

    if not catalog.exists(tables.PERFORMANCE):
        return {}
    where = (ds.field("monitor") == monitor) & (ds.field("slice") == "all") & (ds.field("model_alias") == "champion")
    rows = arrow_dataset(catalog, tables.PERFORMANCE).to_table(filter=where).to_pylist()
    return {r["run_date"]: r[metric] for r in rows}


def backtest(
    spark: Any,
    cfg: Any,
    catalog: Catalog,
    lineage: Lineage,
    start: date,
    end: date,
    *,
    version: str | None = None,
    arms: Sequence[str] = ARMS,
) -> BacktestResult:
    """Replay ``start..end`` in each arm from the champion (or ``version``); see the module docstring."""
    from lakeforge.tracking.registry import alias_version
    from lakeforge.tracking.store import connect

    if cfg.get("monitor") is None:
        raise ConfigError(
            "a backtest replays the monitor too; add one to the pipeline (conf/monitor/*.yaml)", key="monitor"
        )
    if end < start:
        raise ConfigError(f"end {end} is before start {start}", key="end_date")
    name = str(cfg.model.name)
    first = version or alias_version(connect(cfg).client, name, "champion")
    if first is None:
        raise RegistryError(f"model '{name}' has no champion to start the backtest from; pass --model-version")
    metric = str((cfg.monitor.get("performance") or {}).get("metric") or "roc_auc")
    results: dict[str, ArmResult] = {}
    for arm in arms:
        arm_cfg = _arm_config(cfg, arm)
        serving = _seed_arm(cfg, arm_cfg, str(first))
        result = ArmResult(arm, str(arm_cfg.model.name), str(arm_cfg.monitor.name))
        log.info("backtest %s: arm %s from %s v%s (as %s v%s)", name, arm, name, first, result.model, serving)
        day = start
        handled: set[date] = set()
        while day <= end:
            monitored = _score_and_monitor(spark, arm_cfg, catalog, lineage, day, end)
            for d in _days(day, end):
                result.serving[d] = int(serving)
            pending = [r for r in monitored.retrain_requests if r not in handled] if arm == "policy" else []
            promoted = False
            for requested in pending:
                handled.add(requested)
                run_date = requested + timedelta(days=1)
                if run_date > end:
                    break
                trained, promoted = _retrain(spark, arm_cfg, catalog, lineage, run_date)
                result.retrains.append(
                    {"requested_on": requested, "run_date": run_date, "version": trained, "promoted": promoted}
                )
                if promoted:
                    serving, day = trained, run_date
                    break
            if not promoted:
                break
        result.performance = _performance(catalog, result.monitor, metric)
        results[arm] = result
    return BacktestResult(name, metric, start, end, results)


def write_outputs(result: BacktestResult, out_dir: Path) -> tuple[Path, Path]:
    """``<model>__backtest.json`` (the rows) and ``.html`` (the metric over time per arm) in ``out_dir``."""
    from html import escape

    from lakeforge.monitoring.report import _STYLE, line_chart

    out_dir.mkdir(parents=True, exist_ok=True)
    rows = result.rows()
    data = {
        "model": result.model,
        "metric": result.metric,
        "start": result.start.isoformat(),
        "end": result.end.isoformat(),
        "rows": rows,
        "retrains": [
            {k: (v.isoformat() if isinstance(v, date) else v) for k, v in r.items()}
            for arm in result.arms.values()
            for r in arm.retrains
        ],
    }
    json_path = out_dir / f"{result.model}__backtest.json"
    json_path.write_text(json.dumps(data, indent=2) + "\n")
    dates = [r["run_date"] for r in rows]
    series = {f"{a} {result.metric}": [r[f"{a}_{result.metric}"] for r in rows] for a in result.arms}
    table = escape(result.describe())
    html = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>lakeforge backtest: {escape(result.model)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>Backtest: {escape(result.model)}</h1>"
        f"<h2>{escape(result.metric)} per run date, with and without the retrain policy</h2>"
        + line_chart("backtest", dates, series)
        + f"<pre>{table}</pre></body></html>\n"
    )
    html_path = out_dir / f"{result.model}__backtest.html"
    html_path.write_text(html, encoding="utf-8")
    return json_path, html_path
