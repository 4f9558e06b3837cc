"""`lakeforge reproduce`: retrain a registered version from what its training run recorded and check
that every recorded metric comes out exactly the same.

What is reused from the recording: the composed config (artifact ``config/composed.yaml``: model,
features, datasets, pipeline, seed), the data versions read (tag ``lakeforge.inputs``, read again by
Delta time travel) and the ``run_date`` (tag ``lakeforge.run_date``). What comes from the project
as it is now: where the lake, the MLflow store and Spark are (``storage``, ``tracking``, ``spark``)
and the project root. The reproduction is logged as a run of its own, tagged
``lakeforge.reproduces=<model>/v<version>``, and never registered: ``challenger`` does not move.
"""

from __future__ import annotations

import logging
import math
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from lakeforge.config import config_hash
from lakeforge.config.hydra_errors import unknown_key_message
from lakeforge.config.schema import LakeforgeConfig
from lakeforge.errors import ConfigError, ReproductionError, TableError
from lakeforge.lake.delta_common import open_table, snapshot_files
from lakeforge.tracking.registry import registered_model
from lakeforge.training.compare import pick_version, training_run
from lakeforge.training.run import COMPOSED_CONFIG, fit_and_log, prepare

log = logging.getLogger(__name__)

ENVIRONMENT = ("storage", "tracking", "spark")  # where things are: the current project's, not the recording's
TRAINING_SECTIONS = ("dataset", "features", "model")  # what training reads, resolved before any data is
REPRODUCES_TAG = "lakeforge.reproduces"
MATCHED_TAG = "lakeforge.reproduction.matched"
SHOWN_DIFFERENCES = 5


def rebuild_config(recorded: str, current: Any, *, run_date: str | None = None, origin: str = COMPOSED_CONFIG) -> Any:
    """The config to retrain with: ``recorded`` (the text of a run's composed config) with the
    current project's ``storage``/``tracking``/``spark``/``project_root``, merged on the schema.

    The merge onto ``LakeforgeConfig`` is what Hydra's compose does with conf/'s YAML files: keys
    get their schema types and a key the schema no longer has is refused, naming it. ``run_date``,
    when given, replaces the recorded one (the run's tag is the authority).
    """
    try:
        data = yaml.safe_load(recorded)
    except yaml.YAMLError as exc:
        raise ConfigError(f"unreadable recorded config: {exc}", file=origin) from exc
    if not isinstance(data, dict):
        raise ConfigError("the recorded config is not a mapping", file=origin)
    kept = {str(k): v for k, v in data.items() if str(k) not in (*ENVIRONMENT, "project_root")}
    here = {k: current[k] for k in ENVIRONMENT if current.get(k) is not None}
    if current.get("project_root") is not None:
        here["project_root"] = str(current.project_root)
    if run_date is not None:
        here["run_date"] = str(run_date)
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(LakeforgeConfig), kept, here)
    except ConfigKeyError as exc:
        owner = getattr(exc.object_type, "__name__", "")
        detail = unknown_key_message(str(exc.key), owner) if owner else str(exc).splitlines()[0]
        raise ConfigError(
            f"{detail}; the recorded config no longer fits this lakeforge's schema", file=origin, key=exc.full_key
        ) from exc
    except OmegaConfBaseException as exc:
        raise ConfigError(
            f"{str(exc).splitlines()[0]}; the recorded config no longer fits this lakeforge's schema",
            file=origin,
            key=getattr(exc, "full_key", None),
        ) from exc
    assert isinstance(cfg, DictConfig)
    for section in TRAINING_SECTIONS:  # an interpolation that no longer resolves fails here, not mid-run
        if cfg.get(section) is None:
            continue
        try:
            OmegaConf.to_container(cfg[section], resolve=True)
        except OmegaConfBaseException as exc:
            raise ConfigError(f"cannot resolve: {str(exc).splitlines()[0]}", file=origin, key=section) from exc
    OmegaConf.set_struct(cfg, True)  # as load_config returns it: a typo'd key read later is an error
    return cfg


def nest(metrics: dict[str, float]) -> dict[str, dict[str, float]]:
    """``{"test.roc_auc": v}`` as ``{"test": {"roc_auc": v}}``; the group is all but the last part."""
    nested: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        group, _, name = key.rpartition(".")
        nested.setdefault(group, {})[name] = value
    return nested


def flatten(nested: dict[str, dict[str, float]]) -> dict[str, float]:
    """The inverse of ``nest``."""
    return {(f"{g}.{m}" if g else m): v for g, values in nested.items() for m, v in values.items()}


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))  # an undefined metric (nan) reproduces as nan


@dataclass(frozen=True)
class Reproduction:
    """A version retrained from its record, and how its metrics compare with the recorded ones.

    Every recorded metric must come out exactly equal; metrics only the reproduction has (logged by
    a newer lakeforge) are reported but do not count against it.
    """

    model: str
    version: str
    recorded_run_id: str
    run_id: str  # the reproduction's run
    run_date: str
    inputs: dict[str, int]
    recorded: dict[str, dict[str, float]]  # group (split, baseline.<split>, slice …) -> metric -> value
    reproduced: dict[str, dict[str, float]]

    @property
    def differences(self) -> list[tuple[str, float, float | None]]:
        """(metric, recorded, reproduced or None when missing) for each recorded metric that differs."""
        got = flatten(self.reproduced)
        return [
            (key, value, got.get(key))
            for key, value in sorted(flatten(self.recorded).items())
            if key not in got or not _same(value, got[key])
        ]

    @property
    def matched(self) -> bool:
        """True when every recorded metric was reproduced exactly."""
        return not self.differences

    @property
    def new_metrics(self) -> list[str]:
        """Metrics the reproduction logged that the recorded run did not."""
        return sorted(set(flatten(self.reproduced)) - set(flatten(self.recorded)))

    def _summary(self) -> str:
        recorded = flatten(self.recorded)
        what = f"{self.model} v{self.version}"
        if self.matched:
            return f"{what} reproduced exactly: all {len(recorded)} recorded metrics match"
        return f"{what} did not reproduce: {len(self.differences)} of {len(recorded)} recorded metrics differ"

    def mismatch(self) -> str:
        """One line naming the differing metrics (the ReproductionError's message)."""
        shown = [f"{k} {a!r} -> {'missing' if b is None else repr(b)}" for k, a, b in self.differences]
        more = len(shown) - SHOWN_DIFFERENCES
        listed = "; ".join(shown[:SHOWN_DIFFERENCES]) + (f"; and {more} more" if more > 0 else "")
        return (
            f"{self._summary()}: {listed} (recorded run {self.recorded_run_id}, reproduction run {self.run_id}); "
            "the config, data versions and seed were the recorded ones, so look for randomness the seed does not "
            "control (rand() in a feature, an estimator without a seed) or changed packages (the runs' pkg.* tags)"
        )

    def describe(self) -> str:
        """The report: each split and baseline metric recorded vs reproduced; slices summarized."""
        recorded, got = flatten(self.recorded), flatten(self.reproduced)
        data = ", ".join(f"{t} version {v}" for t, v in sorted(self.inputs.items())) or "none"
        lines = [
            self._summary(),
            f"  recorded run {self.recorded_run_id}, reproduction run {self.run_id}",
            f"  run_date {self.run_date}; data read at the recorded versions: {data}",
        ]
        detailed = [k for k in recorded if ".slice." not in k]
        key_width = max([len("metric"), *(len(k) for k in detailed)])
        lines.append(f"  {'metric':<{key_width}}  {'recorded':>22}  {'reproduced':>22}  difference")
        for key in sorted(detailed):
            lines.append(self._row(key, recorded[key], got.get(key), key_width))
        slices = sorted(k for k in recorded if ".slice." in k)
        if slices:
            off = [k for k, _, _ in self.differences if k in slices]
            state = "all equal" if not off else f"{len(off)} differ"
            lines.append(f"  slice metrics (test.slice.*): {len(slices)}, {state}")
            lines += [self._row(k, recorded[k], got.get(k), key_width) for k in off]
        if self.new_metrics:
            lines.append(f"  not in the recorded run (new since): {', '.join(self.new_metrics)}")
        return "\n".join(lines)

    @staticmethod
    def _row(key: str, recorded: float, reproduced: float | None, width: int) -> str:
        if reproduced is None:
            diff = "missing"
        elif _same(recorded, reproduced):
            diff = "0"
        else:
            diff = f"{reproduced - recorded:+.3g}"
        shown = "-" if reproduced is None else repr(reproduced)
        return f"  {key:<{width}}  {recorded!r:>22}  {shown:>22}  {diff}"


def _recorded_text(tracking: Any, run_id: str, what: str) -> str:
    """The run's composed config artifact as text."""
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory(prefix="lakeforge-reproduce-") as folder:
        try:
            path = tracking.client.download_artifacts(run_id, COMPOSED_CONFIG, folder)
            return Path(path).read_text()
        except (MlflowException, OSError) as exc:
            raise ReproductionError(
                f"cannot reproduce {what}: its training run {run_id} has no '{COMPOSED_CONFIG}' artifact "
                f"({str(exc).splitlines()[0]}); only runs of `lakeforge run train` record their config"
            ) from exc


def _recorded_inputs(run: Any, what: str) -> dict[str, int]:
    """The Delta table versions the run read (tag ``lakeforge.inputs``)."""
    import json

    raw = run.data.tags.get("lakeforge.inputs")
    if not raw:
        raise ReproductionError(
            f"cannot reproduce {what}: its training run {run.info.run_id} records no data versions "
            "(tag 'lakeforge.inputs')"
        )
    return {str(table): int(version) for table, version in json.loads(raw).items()}


def check_readable(catalog: Any, inputs: dict[str, int], what: str) -> None:
    """Each recorded table version must still exist with all its data files (vacuum removes them)."""
    for table, version in sorted(inputs.items()):
        try:
            name = catalog.require(table)
            snapshot = open_table(catalog, name, version)
        except TableError as exc:
            raise ReproductionError(
                f"cannot reproduce {what}: it was trained on table '{table}' version {version}, which can no "
                f"longer be read: {exc}"
            ) from exc
        if not catalog.is_local:
            continue  # object stores: a missing file surfaces when Spark reads it
        root = Path(catalog.table_uri(name))
        files = snapshot_files(snapshot)
        missing = [f.path for f in files if not (root / f.path).is_file()]
        if missing:
            raise ReproductionError(
                f"cannot reproduce {what}: it was trained on table '{table}' version {version}, but "
                f"{len(missing)} of that version's {len(files)} data files are gone (e.g. '{missing[0]}'), "
                "most likely removed by `lakeforge vacuum`; time travel to that version is no longer possible"
            )


def reproduce(spark: Any, cfg: Any, catalog: Any, lineage: Any, model: str, version: str) -> Reproduction:
    """Retrain ``model`` ``version`` from its recorded config, data versions and run_date; log the run
    (tagged, unregistered) and compare every recorded metric exactly.

    Raises ReproductionError (after logging the run) when a recorded metric differs, and before
    training when the recorded data can no longer be read.
    """
    from lakeforge.tracking.store import connect

    tracking = connect(cfg)
    registered = registered_model(tracking.client, model)
    found = pick_version(tracking.client, registered, version)
    run = training_run(tracking.client, registered, found)
    number, run_id = str(found.version), str(run.info.run_id)
    what = f"{registered.name} v{number}"
    inputs = _recorded_inputs(run, what)
    recorded_run_date = run.data.tags.get("lakeforge.run_date")
    origin = f"{COMPOSED_CONFIG} of {what} (run {run_id})"
    rebuilt = rebuild_config(_recorded_text(tracking, run_id, what), cfg, run_date=recorded_run_date, origin=origin)
    check_readable(catalog, inputs, what)
    log.info("reproduce %s: run %s, run_date %s, data %s", what, run_id, rebuilt.run_date, inputs)

    prepared = prepare(spark, rebuilt, catalog, pinned=inputs)
    if prepared.inputs != inputs:
        raise ReproductionError(
            f"cannot reproduce {what}: the recorded config read tables {prepared.inputs}, but the run recorded {inputs}"
        )
    result = fit_and_log(
        spark,
        rebuilt,
        catalog,
        replace(lineage, config_hash=config_hash(rebuilt)),
        prepared,
        register=False,
        run_name=f"reproduce {registered.name} v{number}",
        tags={REPRODUCES_TAG: f"{registered.name}/v{number}"},
    )
    outcome = Reproduction(
        str(registered.name),
        number,
        run_id,
        result.run_id,
        str(rebuilt.run_date),
        inputs,
        nest(dict(run.data.metrics)),
        nest(dict(tracking.client.get_run(result.run_id).data.metrics)),
    )
    tracking.client.set_tag(result.run_id, MATCHED_TAG, str(outcome.matched).lower())
    if not outcome.matched:
        raise ReproductionError(outcome.mismatch())
    return outcome
