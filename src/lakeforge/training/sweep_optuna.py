"""The Optuna half of sweeps: Hydra's Optuna sweeper plugin (``hydra-optuna-sweeper``, which pins
optuna 2.10) driving ``hydra.main`` in this process, each trial run by ``lakeforge.training.sweep``.

Its settings are checked before Spark starts (``check_optuna_settings``); those the command line does
not give are set so that a sweep is reproducible and tidy (``_settings``): the primary metric's
direction, the sampler seeded with ``model.seed``, one trial at a time, files only under ``reports/``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from lakeforge.errors import ConfigError, did_you_mean
from lakeforge.training.sweep import SWEEP_DIR, SweepRun, SweepSpec, checked_config, primary_metric


def check_optuna_settings(spec: SweepSpec, model: Any) -> None:
    """Refuse an unknown Optuna sweeper setting, and a direction against the primary metric's (the sweep
    would optimise one way and pick the best the other), before Spark starts."""
    from dataclasses import fields

    from hydra_plugins.hydra_optuna_sweeper.config import OptunaSweeperConf

    allowed = [f.name for f in fields(OptunaSweeperConf) if f.name not in ("_target_", "defaults")]
    settings = {h.split("=", 1)[0].lstrip("+"): h for h in spec.hydra}
    for key, text in settings.items():
        name = key.removeprefix("hydra.sweeper.").split(".")[0]
        if key.startswith("hydra.sweeper.") and name not in allowed:
            raise ConfigError(
                f"the Optuna sweeper has no setting '{name}'{did_you_mean(name, allowed)}; it has {', '.join(allowed)}",
                key=f"override '{text}'",
            )
    metric, lower = primary_metric(model)
    direction = "minimize" if lower else "maximize"
    given = settings.get("hydra.sweeper.direction", f"={direction}").split("=", 1)[1]
    if given != direction:
        raise ConfigError(
            f"the best trial is the one with the {'lowest' if lower else 'highest'} validation.{metric}: "
            f"drop the override or set hydra.sweeper.direction={direction}",
            key=f"override 'hydra.sweeper.direction={given}'",
        )


def _settings(sweep: SweepRun) -> list[str]:
    """Hydra settings for an Optuna sweep in this process, where the command line sets none: the primary
    metric's direction, the sampler seeded with ``model.seed``, one trial at a time, files only under
    ``reports/``."""
    cfg, given = sweep.plan.cfg, {h.split("=", 1)[0].lstrip("+") for h in sweep.plan.spec.hydra}
    sweep_dir = Path(str(cfg.project_root)) / SWEEP_DIR / sweep.model / str(sweep.lineage.job_run_id)
    settings = {
        "hydra.sweeper.direction": "minimize" if sweep.lower else "maximize",
        "hydra.sweeper.sampler.seed": str(int(cfg.model.seed)),
        "hydra.sweeper.n_jobs": "1",  # ask for one trial at a time, told the last one's result
        "hydra.sweep.dir": "'" + str(sweep_dir).replace("\\", "\\\\").replace("'", "\\'") + "'",
        "hydra.sweep.subdir": ".",  # no folder per trial
        "hydra.output_subdir": "null",  # no .hydra/ copies of the config
        "hydra/job_logging": "none",  # the job's logging stays (no log file, no reconfiguration)
        "hydra/hydra_logging": "none",
    }
    return [f"{k}={v}" for k, v in settings.items() if k not in given]


def run_optuna(sweep: SweepRun, conf_dir: Path) -> None:
    """Drive Hydra's Optuna sweeper through ``hydra.main`` in this process: each trial composes its
    config with the plan's ``compose`` and returns its validation primary metric."""
    import hydra
    import optuna
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from lakeforge.config import register_schemas

    spec = sweep.plan.spec
    keys = {a.key for a in spec.axes}

    def objective(_: Any) -> float:
        runtime = HydraConfig.get()  # read before compose(), which resets Hydra's global state
        overrides = [str(o) for o in runtime.overrides.task]
        swept = [o for o in overrides if o.split("=", 1)[0] in keys]
        cfg = checked_config(sweep.plan.compose, overrides, swept, spec.axes)
        return sweep.trial(cfg, swept, int(runtime.job.num)).value

    optuna.logging.disable_default_handler()  # its records go to the job's log, not a second coloured one
    optuna.logging.enable_propagation()
    register_schemas()
    app = hydra.main(config_path=str(conf_dir.absolute()), config_name="config", version_base="1.3")(objective)
    argv = [*spec.fixed, *(a.text for a in spec.axes), *spec.hydra, *_settings(sweep)]
    saved_argv, saved_full_error = sys.argv, os.environ.get("HYDRA_FULL_ERROR")
    sys.argv = [saved_argv[0] if saved_argv else "lakeforge", "--multirun", *argv]
    os.environ["HYDRA_FULL_ERROR"] = "1"  # raise errors to our boundary, don't print them and exit
    try:
        app()
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(f"the Optuna sweeper refused the sweep: {'; '.join(str(exc).splitlines()[:2])}") from exc
    finally:
        sys.argv = saved_argv
        if saved_full_error is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = saved_full_error
        GlobalHydra.instance().clear()
