"""Monitoring job: drift, data quality, performance and alerts of the model for run_date (or a range).

Usage: python jobs/monitor.py run_date=2013-10-20 [HYDRA OVERRIDES…]
       python jobs/monitor.py start_date=2013-10-16 end_date=2013-12-31
"""

import sys

from lakeforge.pipeline.runner import run_job
from lakeforge.pipeline.steps import monitor_step

if __name__ == "__main__":
    sys.exit(run_job("monitor", monitor_step, sys.argv[1:]))
