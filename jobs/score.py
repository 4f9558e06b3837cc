"""Scoring job: predictions.<model> for run_date (or start_date..end_date) with the champion.

Usage: python jobs/score.py run_date=2013-10-16 [HYDRA OVERRIDES…]
       python jobs/score.py start_date=2013-10-16 end_date=2013-12-31 model.scoring.alias=challenger
"""

import sys

from lakeforge.pipeline.runner import run_job
from lakeforge.pipeline.steps import score_step

if __name__ == "__main__":
    sys.exit(run_job("score", score_step, sys.argv[1:]))
