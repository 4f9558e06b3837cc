"""Hyperparameter sweeps of the train step: every trial nested under one MLflow parent run, the best
on the validation primary metric registered as ``challenger``.

Two samplers, one flow:

- the **grid** (``python jobs/train.py -m model.params.num_leaves=15,31,63``): Hydra's sweep syntax
  (``a,b,c``, ``choice(…)``, ``range(…)``) parsed by Hydra's ``OverridesParser``, every combination
  run in this process on one SparkSession;
- **Optuna** (``… -m hydra/sweeper=optuna 'model.params.num_leaves=int(interval(8,64))'``): Hydra's
  Optuna sweeper plugin driving ``hydra.main`` in this process, its sampler seeded with ``model.seed``.

Every trial's config is composed and its estimator built before any data is read, so a bad value
fails naming its override. The training data is built once per distinct data config (feature set,
features, label, split windows, pinned versions) and the raw tables stay at the versions the first
build read. Trial models are logged unregistered; a sweep that fails marks its parent run FAILED.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from itertools import product
from pathlib import Path
from typing import Any

from lakeforge.config import config_hash
from lakeforge.errors import ConfigError, LakeforgeError
from lakeforge.features.build import spec_from_config
from lakeforge.training.data import model_features, model_label, split_windows
from lakeforge.training.estimator import build_baseline, build_estimator
from lakeforge.training.gate import LOWER_IS_BETTER
from lakeforge.training.run import Prepared, TrainResult, fit_and_log, mark_challenger, prepare, run_date_of

log = logging.getLogger(__name__)

MULTIRUN_FLAGS = ("-m", "--multirun")
SWEEP_DIR = "reports/sweeps"  # git-ignored: where the Optuna sweeper writes optimization_results.yaml

Compose = Callable[[Sequence[str]], Any]  # overrides -> the composed, checked config


def is_multirun(argv: Sequence[str]) -> bool:
    """Whether the command line asks for a sweep (Hydra's ``-m``/``--multirun``)."""
    return any(arg in MULTIRUN_FLAGS for arg in argv)


def without_multirun_flag(argv: Sequence[str]) -> list[str]:
    """The overrides of a sweep's command line."""
    return [arg for arg in argv if arg not in MULTIRUN_FLAGS]


@dataclass(frozen=True)
class Axis:
    """One swept key: ``values`` are the grid's values, or for Optuna the ones checked up front
    (every choice, the bounds of an interval)."""

    key: str  # as Hydra writes it back: with a '+' and '@package' when given
    text: str  # the override as written
    values: tuple[str, ...]


@dataclass(frozen=True)
class SweepSpec:
    """A sweep's command line, parsed."""

    optuna: bool
    fixed: tuple[str, ...]  # plain overrides, part of every trial
    axes: tuple[Axis, ...]
    hydra: tuple[str, ...]  # Hydra's own settings (hydra/sweeper=optuna, hydra.sweeper.n_trials=…)

    def grid(self) -> list[tuple[str, ...]]:
        """Every combination of the axes' values (the last axis varies fastest), as overrides."""
        return [
            tuple(f"{a.key}={v}" for a, v in zip(self.axes, combo, strict=True))
            for combo in product(*(a.values for a in self.axes))
        ]


def parse_sweep(overrides: Sequence[str]) -> SweepSpec:
    """Split a sweep's overrides into plain ones, axes and Hydra settings, with Hydra's parser and
    Hydra's rule (a later override of a key replaces the earlier one)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ValueType
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    parsed: dict[str, tuple[Any, str]] = {}
    hydra: list[tuple[Any, str]] = []
    for text in overrides:
        try:
            (override,) = parser.parse_overrides([text])
        except HydraException as exc:
            raise ConfigError(f"cannot parse it: {str(exc).splitlines()[0]}", key=f"override '{text}'") from exc
        if str(override.key_or_group).split(".")[0].split("/")[0] == "hydra":
            hydra.append((override, text))
        else:
            parsed[override.get_key_element()] = (override, text)
    sweepers = [(o.value(), text) for o, text in hydra if o.key_or_group == "hydra/sweeper"]
    optuna = any(value == "optuna" for value, _ in sweepers)
    if sweepers and not optuna:
        raise ConfigError(
            "the sweepers are the grid (no hydra/sweeper) and 'optuna'", key=f"override '{sweepers[-1][1]}'"
        )
    if hydra and not optuna:
        raise ConfigError(
            "Hydra's own settings only matter to the Optuna sweeper: add hydra/sweeper=optuna or drop it",
            key=f"override '{hydra[0][1]}'",
        )
    fixed, axes = [], []
    for key, (override, text) in parsed.items():
        if not override.is_sweep_override():
            fixed.append(text)
        elif override.value_type is ValueType.GLOB_CHOICE_SWEEP:
            raise ConfigError("glob() is not supported in a sweep: list the options as a,b,c", key=f"override '{text}'")
        elif override.is_interval_sweep() and not optuna:
            raise ConfigError(
                "interval() is a continuous range, which the grid cannot enumerate (Hydra's BasicSweeper does not "
                "support sweep type INTERVAL_SWEEP either): list values as a,b,c, use choice(…) or range(…), or "
                "sample it with hydra/sweeper=optuna",
                key=f"override '{text}'",
            )
        elif override.is_interval_sweep():
            axes.append(Axis(key, text, (str(override.value().start), str(override.value().end))))
        else:
            axes.append(Axis(key, text, tuple(override.sweep_string_iterator())))
    return SweepSpec(optuna, tuple(fixed), tuple(axes), tuple(text for _, text in hydra))


@dataclass(frozen=True)
class TrialPlan:
    """One grid trial: its swept overrides and its composed config."""

    number: int
    overrides: tuple[str, ...]
    cfg: Any


@dataclass(frozen=True)
class SweepPlan:
    """A checked sweep: ``cfg`` (model, metric, seed, tracking) and the grid's trials (none for Optuna,
    whose trials are sampled as it runs)."""

    spec: SweepSpec
    cfg: Any
    trials: tuple[TrialPlan, ...]
    compose: Compose


def _caused_by(key: str | None, override: str) -> bool:
    """Whether a problem at ``key`` comes from ``override`` (its key, a key under it, or the key of
    the node it sets, as in ``model.params`` for ``model.params.num_leaves``)."""
    target = override.split("=", 1)[0].lstrip("+~").split("@", 1)[0]
    return bool(key) and (target == key or target.startswith(f"{key}.") or str(key).endswith(f" {target}"))


def checked_config(compose: Compose, overrides: Sequence[str], swept: Sequence[str], axes: Sequence[Axis]) -> Any:
    """Compose ``overrides``, build the estimator and the baseline and resolve the training data's
    declaration; a problem names the sweep override (as written) and the trial value that caused it."""
    try:
        cfg = compose(list(overrides))
        build_estimator(cfg.model)
        build_baseline(cfg.model)
        data_key(cfg, {})  # the feature set, features, label and split windows
    except ConfigError as exc:
        inner = exc.key or ""
        if inner.startswith("override '") and "': " in inner:  # load_config already blamed the trial value
            inner = inner.split("': ", 1)[1]
        if not swept:
            raise
        culprit = next((s for s in swept if _caused_by(exc.key, s)), None)
        if culprit is None:
            where = f"sweep trial ({', '.join(swept) or 'no swept value'})"
            raise ConfigError(exc.detail, file=exc.file, key=f"{where}: {inner}" if inner else where) from exc
        key, value = culprit.split("=", 1)
        axis = next((a for a in axes if a.key == key), None)
        hint = ""
        if axis is not None and "interval(" in axis.text and "an integer" in exc.detail:
            hint = "; sample integers with int(interval(low,high))"
        elif "not in struct" in exc.detail and not culprit.startswith("+"):
            hint = f"; check the key's spelling, or add a key the config lacks with +{key}=…"
        where = f"sweep override '{axis.text if axis else culprit}'"
        raise ConfigError(f"value {value}: {exc.detail}{hint}", file=exc.file, key=where) from exc
    return cfg


def primary_metric(model: Any) -> tuple[str, bool]:
    """The metric the best trial is picked on (on validation), and whether lower is better."""
    metric = str(model.get("primary_metric") or model.metrics[0])
    return metric, metric in LOWER_IS_BETTER


def plan_sweep(overrides: Sequence[str], compose: Compose) -> SweepPlan:
    """Parse the sweep and check every trial's config (the grid's every combination; for Optuna every
    choice and both bounds of every interval) before any data is read."""
    spec = parse_sweep(overrides)
    cfg = checked_config(compose, spec.fixed, (), ())  # a problem outside the swept values fails as usual
    if spec.optuna:
        from lakeforge.training.sweep_optuna import check_optuna_settings

        check_optuna_settings(spec, cfg.model)
        for axis in spec.axes:
            for value in axis.values:
                trial = (f"{axis.key}={value}",)
                checked_config(compose, [*spec.fixed, *trial], trial, spec.axes)
        return SweepPlan(spec, cfg, (), compose)
    trials = tuple(
        TrialPlan(n, swept, checked_config(compose, [*spec.fixed, *swept], swept, spec.axes))
        for n, swept in enumerate(spec.grid())
    )
    log.info("sweep: %d trial(s) checked", len(trials))
    return SweepPlan(spec, cfg, trials, compose)


@dataclass(frozen=True)
class Trial:
    """A finished trial: its swept values, its run and its validation primary metric."""

    number: int
    params: dict[str, str]  # swept key -> value
    result: TrainResult
    value: float  # nan when undefined (e.g. one class in the validation window)


@dataclass(frozen=True)
class SweepResult:
    """What a sweep produced: the parent run, every trial, and the best one registered."""

    model: str
    version: str
    parent_run_id: str
    metric: str
    lower_is_better: bool
    trials: tuple[Trial, ...]
    best: Trial
    data_builds: int  # how many times the training data was built


def data_key(cfg: Any, pinned: dict[str, int]) -> str:
    """What determines a trial's training data; trials with equal keys share one build."""
    model, run_date = cfg.model, run_date_of(cfg)
    spec = spec_from_config(cfg, str(model.feature_set))
    windows = split_windows(model.splits, run_date)
    features, label = model_features(model, spec), model_label(model, spec)
    parts = (str(cfg.project_root), run_date, spec, features, label, windows, float(model.max_driver_mb))
    return repr((*parts, sorted(pinned.items())))


class SweepRun:
    """The parent run, the built training data and the trials so far."""

    def __init__(self, spark: Any, catalog: Any, lineage: Any, plan: SweepPlan, pinned: dict[str, int]) -> None:
        from lakeforge.tracking.store import connect

        self.spark, self.catalog, self.lineage, self.plan = spark, catalog, lineage, plan
        self.tracking = connect(plan.cfg)
        model = plan.cfg.model
        self.model, self.run_date = str(model.name), str(run_date_of(plan.cfg))
        self.metric, self.lower = primary_metric(model)
        self.given, self.pinned = dict(pinned), dict(pinned)
        self.data: dict[str, Prepared] = {}
        self.trials: list[Trial] = []
        self.parent_id = ""

    @contextmanager
    def parent(self) -> Iterator[SweepRun]:
        """The parent run, open while the trials run; FAILED (KILLED on ^C) if the sweep raises."""
        client, spec = self.tracking.client, self.plan.spec
        tags = {
            "lakeforge.step": "sweep",
            "lakeforge.model": self.model,
            "lakeforge.run_date": self.run_date,
            "lakeforge.job_run_id": str(self.lineage.job_run_id),
            "lakeforge.git_commit": str(self.lineage.git_commit),
            "lakeforge.sweep.sampler": "optuna" if spec.optuna else "grid",
            "lakeforge.sweep.overrides": json.dumps([*spec.fixed, *(a.text for a in spec.axes), *spec.hydra]),
            "lakeforge.sweep.metric": f"validation.{self.metric}",
        }
        run = client.create_run(self.tracking.experiment_id, run_name=f"sweep {self.model} {self.run_date}", tags=tags)
        self.parent_id = run.info.run_id
        for axis in spec.axes:
            client.log_param(self.parent_id, f"sweep.{axis.key.lstrip('+')}", axis.text.split("=", 1)[1])
        try:
            yield self
        except BaseException as exc:
            status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
            try:
                client.set_terminated(self.parent_id, status)
            except Exception:  # the store itself failed: the original error matters more
                log.warning("sweep: could not mark run %s %s", self.parent_id, status, exc_info=True)
            raise
        client.set_terminated(self.parent_id, "FINISHED")

    def trial(self, cfg: Any, overrides: Sequence[str], number: int) -> Trial:
        """Fit and log one trial under the parent run (its data built once per data config)."""
        key = data_key(cfg, self.given)
        prepared = self.data.get(key)
        if prepared is None:
            prepared = prepare(self.spark, cfg, self.catalog, self.pinned)
            self.pinned = {**prepared.inputs, **self.pinned}  # later builds read the same versions
            self.data[key] = prepared
        lineage = replace(self.lineage, config_hash=config_hash(cfg))
        params = {o.split("=", 1)[0]: o.split("=", 1)[1] for o in overrides}
        shown = " ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in params.items())
        result = fit_and_log(
            self.spark,
            cfg,
            self.catalog,
            lineage,
            prepared,
            parent_run_id=self.parent_id,
            register=False,
            run_name=f"trial {number} {self.model} {shown}".strip(),
            tags={"lakeforge.sweep.trial": str(number), "lakeforge.sweep.params": json.dumps(params)},
        )
        value = result.metrics.get("validation", {}).get(self.metric, math.nan)
        trial = Trial(number, params, result, float(value))
        self.trials.append(trial)
        log.info("sweep %s trial %d (%s): validation %s %.4f", self.model, number, shown, self.metric, value)
        return trial

    def finish(self) -> SweepResult:
        """Register the best trial's model as ``challenger`` and record the choice on the parent run."""
        import mlflow

        scored = [t for t in self.trials if not math.isnan(t.value)]
        if not scored:
            raise LakeforgeError(
                f"sweep of '{self.model}': no trial has a validation {self.metric}, so none is registered; "
                "check the validation window (model.splits.validation) has rows of both classes"
            )
        best = (min if self.lower else max)(scored, key=lambda t: t.value)
        client, model = self.tracking.client, self.model
        version = str(mlflow.register_model(best.result.model_uri, model).version)
        mark_challenger(client, model, version, self.run_date, best.result.run_id)
        client.set_model_version_tag(model, version, "lakeforge.sweep_run_id", self.parent_id)
        client.set_tag(self.parent_id, "lakeforge.sweep.best_run_id", best.result.run_id)
        client.set_tag(self.parent_id, "lakeforge.sweep.best_params", json.dumps(best.params))
        client.set_tag(self.parent_id, "lakeforge.sweep.best_version", version)
        client.log_metric(self.parent_id, f"best.validation.{self.metric}", best.value)
        test = best.result.metrics.get("test", {}).get(self.metric, math.nan)
        if not math.isnan(test):
            client.log_metric(self.parent_id, f"best.test.{self.metric}", test)
        client.log_metric(self.parent_id, "trials", float(len(self.trials)))
        return SweepResult(
            model, version, self.parent_id, self.metric, self.lower, tuple(self.trials), best, len(self.data)
        )


def run_sweep(
    spark: Any,
    catalog: Any,
    lineage: Any,
    plan: SweepPlan,
    *,
    conf_dir: Path | None = None,
    pinned: dict[str, int] | None = None,
) -> SweepResult:
    """Run a planned sweep on one SparkSession and register its best trial as ``challenger``.

    ``conf_dir``: the conf/ the Optuna sweeper composes from (``hydra.main`` needs one).
    """
    if plan.spec.optuna and conf_dir is None:
        raise ConfigError("the Optuna sweeper needs the project's conf/ directory", key="hydra/sweeper")
    sweep = SweepRun(spark, catalog, lineage, plan, dict(pinned or {}))
    with sweep.parent():
        if conf_dir is not None and plan.spec.optuna:
            from lakeforge.training.sweep_optuna import run_optuna

            run_optuna(sweep, Path(conf_dir))
        else:
            for trial in plan.trials:
                sweep.trial(trial.cfg, trial.overrides, trial.number)
        return sweep.finish()


def trials_table(result: SweepResult) -> str:
    """The trials, one a line: swept values, validation and test primary metric, run; the best marked."""
    keys = list(result.best.params)
    heads = ["", "trial", *keys, f"validation.{result.metric}", f"test.{result.metric}", "run"]
    rows = [
        [
            "*" if t is result.best else "",
            str(t.number),
            *(t.params.get(k, "") for k in keys),
            f"{t.value:.4f}",
            f"{t.result.metrics.get('test', {}).get(result.metric, math.nan):.4f}",
            t.result.run_id,
        ]
        for t in result.trials
    ]
    widths = [max(len(r[i]) for r in [heads, *rows]) for i in range(len(heads))]
    numeric = {len(heads) - 3, len(heads) - 2}  # the metrics, right-aligned
    lines = [
        "  ".join(
            c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in [heads, *rows]
    ]
    direction = "lower" if result.lower_is_better else "higher"
    lines.append(
        f"best: trial {result.best.number} ({direction} validation.{result.metric} is better), registered as "
        f"model {result.model} v{result.version} (alias challenger); sweep run {result.parent_run_id}"
    )
    return "\n".join(lines)
