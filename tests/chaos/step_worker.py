"""One pipeline step in a process of its own, started ahead of time so a test can SIGKILL it mid-run.

Run with the project as the working directory, and Hydra overrides for every step as arguments. It
composes the project's config, starts the SparkSession (the slow part, ~5 s), prints ``ready``,
then reads one JSON command from stdin, ``{"step": "score", "argv": ["run_date=2013-02-04"]}``,
and runs it exactly as ``lakeforge run`` and the jobs do (``lakeforge.pipeline.runner.run_job``),
on the session it already has. It prints ``{"rc": …, "seconds": …}`` when the step ends, and exits.
"""

from __future__ import annotations

import json
import os
import sys
import time


def main() -> int:
    # The protocol keeps stdout to itself: whatever else writes to fd 1 (the step's report, the
    # JVM) goes to stderr instead.
    protocol = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    from lakeforge.config import find_conf_dir, load_config
    from lakeforge.lake.spark import get_spark
    from lakeforge.pipeline.runner import run_job
    from lakeforge.pipeline.steps import STEPS

    # Extra Hydra overrides for every step of this worker (the session is started before the step).
    overrides = sys.argv[1:]
    spark = get_spark(load_config(overrides, conf_dir=find_conf_dir()).spark)
    print("ready", file=protocol, flush=True)
    command = json.loads(sys.stdin.readline())
    started = time.perf_counter()
    rc = run_job(command["step"], STEPS[command["step"]], [*overrides, *command["argv"]], spark=spark)
    print(json.dumps({"rc": rc, "seconds": time.perf_counter() - started}), file=protocol, flush=True)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
