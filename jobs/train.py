"""Training job: train the composed model for run_date, log it to MLflow, register it as challenger.

Usage: python jobs/train.py run_date=2013-10-15 [HYDRA OVERRIDES…]
"""

import sys

from lakeforge.pipeline.runner import run_job
from lakeforge.pipeline.steps import train_step

if __name__ == "__main__":
    sys.exit(run_job("train", train_step, sys.argv[1:]))
