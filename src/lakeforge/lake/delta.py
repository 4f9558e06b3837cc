"""Delta tables for lakeforge: the public facade over write, read, history, lineage and vacuum.

Spark executors write Parquet; the driver commits with delta-rs (no delta-spark jars needed).
See ``delta_write`` for the layout and the ``app_id``/``app_version`` idempotence convention.
"""

from __future__ import annotations

from lakeforge.lake.delta_read import (
    HistoryEntry,
    TableInfo,
    arrow_dataset,
    data_files,
    read_table,
    table_history,
    table_info,
)
from lakeforge.lake.delta_write import CommitResult, WriteMode, write_arrow, write_rows, write_staged, write_table
from lakeforge.lake.lineage import Lineage, current_git, new_job_run_id
from lakeforge.lake.vacuum import VacuumResult, vacuum

__all__ = [
    "CommitResult",
    "HistoryEntry",
    "Lineage",
    "TableInfo",
    "VacuumResult",
    "WriteMode",
    "arrow_dataset",
    "current_git",
    "data_files",
    "new_job_run_id",
    "read_table",
    "table_history",
    "table_info",
    "vacuum",
    "write_arrow",
    "write_rows",
    "write_staged",
    "write_table",
]
