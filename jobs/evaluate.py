"""Evaluate job: gate the challenger against the champion and the baseline; promote it or refuse.

Usage: python jobs/evaluate.py run_date=2013-10-15 [HYDRA OVERRIDES…]
Exit 0: promoted (alias champion moved); exit 3: refused (the failed checks are printed).
"""

import sys

from lakeforge.pipeline.runner import run_job
from lakeforge.pipeline.steps import evaluate_step

if __name__ == "__main__":
    sys.exit(run_job("evaluate", evaluate_step, sys.argv[1:]))
