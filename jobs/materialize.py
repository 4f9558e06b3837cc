"""Materialize job: the latest feature row per entity of the pipeline's feature set into the online
store (`lakeforge serve` reads it). Incremental: only the files added to features.<set> since the
last run are read. No Spark session is started.

Usage: python jobs/materialize.py [HYDRA OVERRIDES…]
"""

import sys

from lakeforge.pipeline.runner import run_job
from lakeforge.pipeline.steps import materialize_step

if __name__ == "__main__":
    sys.exit(run_job("materialize", materialize_step, sys.argv[1:]))
