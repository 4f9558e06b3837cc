"""Feature job: build features.<feature_set> for run_date (or start_date..end_date) and its statistics.

Usage: python jobs/build_features.py run_date=2013-06-01 [HYDRA OVERRIDES…]
       python jobs/build_features.py start_date=2013-01-01 end_date=2013-12-31   (backfill)
"""

import sys

from lakeforge.pipeline.runner import run_job
from lakeforge.pipeline.steps import features_step

if __name__ == "__main__":
    sys.exit(run_job("features", features_step, sys.argv[1:]))
