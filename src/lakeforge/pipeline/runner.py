"""The error boundary of every job in jobs/: compose config, start Spark, run, map errors to exit codes."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from lakeforge.errors import report_error

log = logging.getLogger(__name__)

JobBody = Callable[[Any, Any, Any, Any], None]


def compose_for_job(step: str, argv: Sequence[str], conf_dir: Any) -> Any:
    """The job's config: conf/ with ``argv``, the experiment's overrides under ``dvc exp run``, and
    the step's ``pipeline.repro`` dates when ``repro=true`` (what dvc.yaml's stages pass)."""
    from omegaconf import OmegaConf

    from lakeforge.config import load_config
    from lakeforge.config.params import in_dvc_experiment, params_overrides
    from lakeforge.errors import ConfigError

    cfg = load_config(list(argv), conf_dir=conf_dir)
    if in_dvc_experiment():
        extra = params_overrides(cfg, conf_dir.parent)
        if extra:
            log.info("%s: dvc exp run overrides from params.yaml: %s", step, " ".join(extra))
            cfg = load_config([*argv, *extra], conf_dir=conf_dir)
    if not cfg.repro:
        return cfg
    given = [key for key in ("run_date", "start_date", "end_date") if cfg.get(key) is not None]
    if given:
        raise ConfigError(
            f"repro=true takes the dates from pipeline.repro.{step}; drop {', '.join(given)}", key="repro"
        )
    dates = cfg.pipeline.repro.get(step)
    if dates is None:
        raise ConfigError(
            f"repro=true, but pipeline.repro has no dates for step '{step}' "
            f"(it has: {', '.join(cfg.pipeline.repro) or 'none'})",
            key=f"pipeline.repro.{step}",
        )
    OmegaConf.set_struct(cfg, False)
    for key in ("run_date", "start_date", "end_date"):
        cfg[key] = dates[key]
    OmegaConf.set_struct(cfg, True)
    return cfg


def run_job(step: str, body: JobBody, argv: Sequence[str], *, spark: Any = None) -> int:
    """Run ``body(spark, cfg, catalog, lineage)`` with ``argv`` as Hydra overrides; return an exit code.

    A user error prints one line and returns its class's exit code (75 for
    transient errors, which Airflow retries); anything else is a bug and prints
    its traceback. ``spark``: a session already started (kept running afterwards);
    by default the job starts its own from ``cfg.spark`` and stops it.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)  # one INFO line per gateway call otherwise
    try:
        from lakeforge.config import config_hash, find_conf_dir
        from lakeforge.lake.catalog import catalog_from_config
        from lakeforge.lake.delta import Lineage, current_git, new_job_run_id
        from lakeforge.lake.spark import get_spark

        conf_dir = find_conf_dir()
        cfg = compose_for_job(step, argv, conf_dir)
        catalog = catalog_from_config(cfg.storage, conf_dir.parent)
        commit, dirty = current_git(conf_dir.parent)
        lineage = Lineage(
            job_run_id=new_job_run_id(),
            git_commit=commit,
            git_dirty=dirty,
            config_hash=config_hash(cfg),
            step=step,
        )
        log.info("%s: job run %s, lake %s", step, lineage.job_run_id, catalog.lake_root)
        # A step that reads and writes without Spark (materialize) says so: no JVM is started.
        needs_spark = getattr(body, "needs_spark", True)
        own = get_spark(cfg.spark) if needs_spark and spark is None else None
        try:
            body(own or (spark if needs_spark else None), cfg, catalog, lineage)
        finally:
            if own is not None:
                own.stop()
    except (Exception, KeyboardInterrupt) as exc:
        return report_error(exc, prefix=step)
    return 0


def run_sweep_job(argv: Sequence[str]) -> int:
    """``train -m``: plan the sweep (every trial's config checked before Spark starts), then run every
    trial in one job (``lakeforge.training.sweep``); return an exit code."""
    from functools import partial

    try:
        from lakeforge.config import find_conf_dir, load_config
        from lakeforge.training.sweep import plan_sweep, run_sweep, trials_table, without_multirun_flag

        conf_dir = find_conf_dir()
        plan = plan_sweep(without_multirun_flag(argv), partial(load_config, conf_dir=conf_dir))
    except (Exception, KeyboardInterrupt) as exc:
        return report_error(exc, prefix="train")

    def body(spark: Any, cfg: Any, catalog: Any, lineage: Any) -> None:
        print(trials_table(run_sweep(spark, catalog, lineage, plan, conf_dir=conf_dir)))

    return run_job("train", body, plan.spec.fixed)
