"""Ingest job: every dataset of the pipeline into raw.<name>, bad rows into quarantine.<name>.

Usage: python jobs/ingest.py [HYDRA OVERRIDES…]   (spark-submit jobs/ingest.py … on a cluster)
"""

import sys

from lakeforge.pipeline.runner import run_job
from lakeforge.pipeline.steps import ingest_step

if __name__ == "__main__":
    sys.exit(run_job("ingest", ingest_step, sys.argv[1:]))
