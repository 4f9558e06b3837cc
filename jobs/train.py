"""Training job: train the composed model for run_date, log it to MLflow, register it as challenger.

Usage: python jobs/train.py run_date=2013-10-15 [HYDRA OVERRIDES…]

Sweeps (every trial nested under one MLflow run, the best on validation registered as challenger):
    python jobs/train.py -m run_date=2013-10-15 model.params.num_leaves=15,31,63
    python jobs/train.py -m run_date=2013-10-15 hydra/sweeper=optuna hydra.sweeper.n_trials=20 \\
        'model.params.num_leaves=int(interval(8,128))' 'model.params.learning_rate=tag(log,interval(0.01,0.3))'
"""

import sys

from lakeforge.pipeline.runner import run_job, run_sweep_job
from lakeforge.pipeline.steps import train_step
from lakeforge.training.sweep import is_multirun

if __name__ == "__main__":
    args = sys.argv[1:]
    sys.exit(run_sweep_job(args) if is_multirun(args) else run_job("train", train_step, args))
