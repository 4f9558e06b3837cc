"""The evaluate step: score the challenger, the champion and the baseline on the challenger's test
window, apply the gate's checks, record the decision, and move ``champion`` only on a pass.

The test rows are the challenger's test split as its training run logged them (``data/test.parquet``),
so all three models are judged on the rows training measured, whatever was ingested since. When
that artifact is missing (a split too large to log, a run of an older lakeforge) or lacks a column
a model reads, they are rebuilt through the features code path at the raw table versions the
challenger was trained on (its run's ``lakeforge.inputs``), for its test window (its run's
``window.test``): the same rows, at the cost of a feature computation. Each model reads the
features of its own signature, so a champion may use other features than the challenger. The gate
itself (``model.gate``) is the one composed now: the policy in force decides.

Recorded for every decision: an MLflow run ``evaluate <model> v<N>`` (metrics per model, each
check, ``gate/report.json``), tags ``lakeforge.gate.*`` on the challenger version, the champion
history (``lakeforge.tracking.registry``), and ``metrics/gate.json`` for DVC. The step raises
``refusal(evaluation)`` (ModelGateError, exit 3) for a refused challenger, after all of that is written.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from lakeforge.errors import ConfigError, ModelGateError, RegistryError
from lakeforge.features.build import RawTables, spec_from_config
from lakeforge.training.data import Window, collect_training_data, model_label, training_frame
from lakeforge.training.fit import metric
from lakeforge.training.gate import BASELINE, CHALLENGER, CHAMPION, Decision, decide
from lakeforge.training.mllib import score_model
from lakeforge.training.run import BASELINE_TAG, TEST_ROWS

log = logging.getLogger(__name__)

GATE_METRICS = Path("metrics") / "gate.json"


@dataclass(frozen=True)
class Evaluation:
    """What the gate decided, on which versions, and where it is recorded."""

    model: str
    challenger: str
    champion: str | None
    decision: Decision
    metrics: dict[str, dict[str, float]]  # role -> metric -> value on the test rows
    rows: int
    run_id: str
    report_path: Path
    warnings: tuple[str, ...] = ()

    def describe(self) -> str:
        """The decision and every check, for a person."""
        verdict = "PROMOTED to champion" if self.decision.promote else "REFUSED"
        against = f"champion v{self.champion}" if self.champion else "no champion yet"
        lines = [f"{self.model} v{self.challenger} vs {against} on {self.rows:,} test rows: {verdict}"]
        lines += [f"  warning: {w}" for w in self.warnings]
        for check in self.decision.checks:
            lines.append(f"  {check.status:<7} {check.name:<22} {check.reason}")
        lines.append("  test metrics:")
        for role, values in self.metrics.items():
            lines.append(f"    {role:<10} " + ", ".join(f"{m} {v:.4f}" for m, v in values.items()))
        lines.append(f"  recorded in MLflow run {self.run_id} and {self.report_path}")
        return "\n".join(lines)


def _window(params: dict[str, str], version: str, split: str = "test") -> Window:
    text = params.get(f"window.{split}")
    if not text:
        raise RegistryError(f"v{version}'s training run has no window.{split} param; was it trained by lakeforge?")
    start, _, end = text.partition("..")
    return Window(split, datetime.strptime(start, "%Y-%m-%d %H:%M"), datetime.strptime(end, "%Y-%m-%d %H:%M"))


def _overlap(client: Any, name: str, champion: str, test: Window) -> str | None:
    """A warning when the champion learnt from rows of the test window (its scores there are optimistic)."""
    params = client.get_run(client.get_model_version(name, champion).run_id).data.params
    for split in ("train", "validation"):
        if f"window.{split}" not in params:
            continue
        seen = _window(params, champion, split)
        if seen.start < test.end and test.start < seen.end:
            return (
                f"champion v{champion}'s {split} window {seen.start:%Y-%m-%d}..{seen.end:%Y-%m-%d} overlaps the test "
                f"window {test.start:%Y-%m-%d}..{test.end:%Y-%m-%d}: its test scores are optimistic, which favours it"
            )
    return None


def _input_names(uri: str) -> list[str]:
    from mlflow.models import get_model_info

    signature = get_model_info(uri).signature
    if signature is None:
        raise RegistryError(f"model {uri} has no signature; lakeforge cannot tell which features it reads")
    return list(signature.inputs.input_names())


def _logged_test_rows(client: Any, run_id: str, columns: list[str]) -> pd.DataFrame | None:
    """The run's logged test split, if it has every one of ``columns``."""
    import tempfile

    folder = TEST_ROWS.rsplit("/", 1)[0]
    if TEST_ROWS not in {a.path for a in client.list_artifacts(run_id, folder)}:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        frame = pd.read_parquet(client.download_artifacts(run_id, TEST_ROWS, tmp))
    lacking = [c for c in columns if c not in frame.columns]
    if lacking:
        log.info("run %s: the logged test rows lack %s; rebuilding them", run_id, ", ".join(lacking))
        return None
    log.info("evaluate: the test rows of run %s (%s, %d rows)", run_id, TEST_ROWS, len(frame))
    return frame


def _test_rows(
    spark: Any, cfg: Any, catalog: Any, client: Any, run: Any, version: str, columns: list[str]
) -> tuple[pd.DataFrame, str, dict[str, int]]:
    """The challenger's test rows (keys, features in ``columns``, label): logged by its training run, else
    rebuilt at its recorded data versions."""
    model = cfg.model
    spec = spec_from_config(cfg, str(model.feature_set))
    label = model_label(model, spec)
    features = [c for c in columns if c in spec.feature_names]
    missing = [c for c in columns if c not in spec.feature_names and c not in spec.entity]
    if missing:
        raise ConfigError(
            f"the models being compared read {', '.join(missing)}, which feature set '{spec.name}' no longer has",
            key="model.features",
        )
    pinned = json.loads(run.data.tags.get("lakeforge.inputs") or "{}")
    logged = _logged_test_rows(client, run.info.run_id, [*spec.entity, *features, label])
    if logged is not None:
        return logged, label, {str(k): int(v) for k, v in pinned.items()}
    run_date = date.fromisoformat(run.data.tags["lakeforge.run_date"])
    tables = RawTables(spark, catalog, pinned)
    window = _window(run.data.params, version)
    frame = training_frame(spark, spec, tables, [window], features, run_date, Path(str(cfg.project_root)))
    data = collect_training_data(frame, spec, [window], features, label, float(model.max_driver_mb), str(model.name))
    return data.frames["test"], label, dict(tables.versions)


def evaluate(
    spark: Any, cfg: Any, catalog: Any, lineage: Any, version: str | None = None, *, write_metrics: bool = True
) -> Evaluation | None:
    """Judge ``version`` (default: the ``challenger`` alias) against the champion and the baseline.

    ``write_metrics``: write the decision to ``metrics/gate.json`` (DVC's metric; a backtest does not).

    None when that version already is the champion (a rerun after a promotion: nothing to decide).
    """
    import mlflow

    from lakeforge.tracking.lineage import run_tags
    from lakeforge.tracking.registry import (
        alias_version,
        model_version,
        move_champion,
        record_decision,
    )
    from lakeforge.tracking.store import connect

    model = cfg.model
    name, task = str(model.name), str(model.task)
    tracking = connect(cfg)
    client = tracking.client
    challenger = str(version or alias_version(client, name, CHALLENGER) or "")
    if not challenger:
        raise RegistryError(f"model '{name}' has no challenger; train one with `lakeforge run train` first")
    registered = model_version(client, name, challenger)
    challenger = str(registered.version)
    champion = alias_version(client, name, CHAMPION)
    if champion == challenger:
        log.info("evaluate %s: v%s is already the champion; nothing to decide", name, challenger)
        return None
    run = client.get_run(registered.run_id)

    uris = {CHALLENGER: f"models:/{name}/{challenger}"}
    if champion is not None:
        uris[CHAMPION] = f"models:/{name}/{champion}"
    if model.gate.get("baseline") is not None and run.data.tags.get(BASELINE_TAG):
        uris[BASELINE] = run.data.tags[BASELINE_TAG]
    inputs = {role: _input_names(uri) for role, uri in uris.items()}
    gate = model.gate
    judged = [str(c.column) for group in ("slices", "fairness") for c in (gate.get(group) or [])]
    columns = list(dict.fromkeys([c for names in inputs.values() for c in names] + judged))
    test, label, versions = _test_rows(spark, cfg, catalog, client, run, challenger, columns)

    overlap = _overlap(client, name, champion, _window(run.data.params, challenger)) if champion else None
    warnings = [overlap] if overlap else []
    frame = test[[label, *dict.fromkeys(judged)]].copy()
    for role, uri in uris.items():
        frame[role] = score_model(spark, uri, test, inputs[role], task)
    primary = str(model.get("primary_metric") or model.metrics[0])
    decision = decide(gate, frame, label, primary)
    y = frame[label].to_numpy()
    measured = {role: {str(m): metric(str(m), y, frame[role].to_numpy()) for m in model.metrics} for role in uris}
    report = {
        "model": name,
        "challenger": challenger,
        "champion": champion,
        "primary_metric": primary,
        "rows": len(frame),
        "data_versions": versions,
        "metrics": measured,
        "warnings": warnings,
        **decision.report(),
    }
    failed = "; ".join(f"{c.name}: {c.reason}" for c in decision.failed)
    reason = failed or "every check passed or was skipped"

    with mlflow.start_run(experiment_id=tracking.experiment_id, run_name=f"evaluate {name} v{challenger}") as gate_run:
        mlflow.set_tags(
            run_tags(
                lineage,
                Path(str(cfg.project_root)),
                versions,
                int(model.seed),
                run.data.tags["lakeforge.run_date"],
                spark,
            )
        )
        mlflow.set_tags(
            {
                "lakeforge.model": name,
                "lakeforge.challenger_version": challenger,
                "lakeforge.champion_version": champion or "",
                "lakeforge.gate.decision": "promoted" if decision.promote else "refused",
            }
        )
        mlflow.log_metrics(
            {
                f"gate.{role}.test.{m}": v
                for role, values in measured.items()
                for m, v in values.items()
                if not math.isnan(v)
            }
        )
        mlflow.log_metrics(
            {f"gate.check.{c.name.replace(':', '.')}": c.value for c in decision.checks if c.value is not None}
        )
        mlflow.log_metric("gate.passed", 1.0 if decision.promote else 0.0)
        mlflow.log_dict(report, "gate/report.json")
    checks = {c.name: f"{c.status}: {c.reason}" for c in decision.checks}
    record_decision(
        client, name, challenger, "promoted" if decision.promote else "refused", reason, gate_run.info.run_id, checks
    )
    if decision.promote:
        move_champion(
            client, name, challenger, kind="gate", reason=reason, expected=champion, gate_run=gate_run.info.run_id
        )

    path = Path(str(cfg.project_root)) / GATE_METRICS
    if write_metrics:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(_dvc_metrics(report), indent=2, sort_keys=True) + "\n")
    evaluation = Evaluation(
        name, challenger, champion, decision, measured, len(frame), gate_run.info.run_id, path, tuple(warnings)
    )
    log.info("evaluate %s v%s: %s", name, challenger, "promoted" if decision.promote else "refused")
    return evaluation


def refusal(evaluation: Evaluation) -> ModelGateError:
    """The error of a refused challenger: the failed checks, and which champion stays."""
    kept = f"champion stays v{evaluation.champion}" if evaluation.champion else "there is still no champion"
    failed = ", ".join(c.name for c in evaluation.decision.failed)
    return ModelGateError(
        f"{evaluation.model} v{evaluation.challenger} refused by the gate ({kept}): failed {failed} "
        f"(each check's values in {evaluation.report_path} and MLflow run {evaluation.run_id})"
    )


def _dvc_metrics(report: dict[str, Any]) -> dict[str, Any]:
    """The report as DVC metrics: numbers and booleans per model and per check."""
    return {
        "model": report["model"],
        "challenger": int(report["challenger"]),
        "champion": int(report["champion"]) if report["champion"] else None,
        "promoted": report["promote"],
        "rows": report["rows"],
        "metrics": report["metrics"],
        "checks": {
            c["name"]: {"passed": c["status"] != "fail", "status": c["status"], "value": c["value"]}
            for c in report["checks"]
        },
    }
