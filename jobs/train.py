"""Training job: train the composed model for run_date, log it to MLflow, register it as challenger.

Usage: python jobs/train.py run_date=2013-10-15 [HYDRA OVERRIDES…]

Sweeps (every trial nested under one MLflow run, the best on validation registered as challenger):
    python jobs/train.py -m run_date=2013-10-15 model.params.num_leaves=15,31,63
    python jobs/train.py -m run_date=2013-10-15 hydra/sweeper=optuna hydra.sweeper.n_trials=20 \\
        'model.params.num_leaves=int(interval(8,128))' 'model.params.learning_rate=tag(log,interval(0.01,0.3))'
"""

import sys
from collections.abc import Sequence
from typing import Any

from lakeforge.pipeline.runner import run_job
from lakeforge.pipeline.steps import train_step
from lakeforge.training.sweep import is_multirun


def sweep(argv: Sequence[str]) -> int:
    """Plan the sweep (every trial's config checked before Spark starts), then run it in one job."""
    from functools import partial

    from lakeforge.config import find_conf_dir, load_config
    from lakeforge.errors import report_error
    from lakeforge.training.sweep import plan_sweep, run_sweep, trials_table, without_multirun_flag

    try:
        conf_dir = find_conf_dir()
        plan = plan_sweep(without_multirun_flag(argv), partial(load_config, conf_dir=conf_dir))
    except (Exception, KeyboardInterrupt) as exc:
        return report_error(exc, prefix="train")

    def body(spark: Any, cfg: Any, catalog: Any, lineage: Any) -> None:
        print(trials_table(run_sweep(spark, catalog, lineage, plan, conf_dir=conf_dir)))

    return run_job("train", body, plan.spec.fixed)


if __name__ == "__main__":
    args = sys.argv[1:]
    sys.exit(sweep(args) if is_multirun(args) else run_job("train", train_step, args))
