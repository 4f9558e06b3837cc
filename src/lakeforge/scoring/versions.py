"""``registry.model_versions``: the model registry as a Delta table, so SQL can join predictions to
their models.

One row per registered version of a model: its training run, the data and code it was trained
on (the run's lineage tags) and the gate's decision. The scoring job rewrites the model's rows
(partition ``model_name``) each time it scores, so the table always holds every version a
prediction can name. ``lakeforge sql`` can then answer, in one join, which training run, data
versions and git commit stand behind any prediction row:

    SELECT p.model_version, m.git_commit, m.training_inputs, count(*)
    FROM predictions.flight_delay p JOIN registry.model_versions m USING (model_name, model_version)
    GROUP BY ALL
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from lakeforge.lake.catalog import Catalog
from lakeforge.lake.delta import Lineage, write_table

TABLE = "registry.model_versions"
SCHEMA = (
    "model_name string, model_version int, model_run_id string, aliases string, training_run_date string, "
    "git_commit string, git_dirty boolean, config_hash string, training_inputs string, dvc_hashes string, "
    "primary_metric string, test_metric double, gate_decision string, registered_at timestamp"
)


def _row(client: Any, name: str, mv: Any, aliases: dict[str, list[str]], primary: str) -> tuple[Any, ...]:
    run = client.get_run(mv.run_id) if mv.run_id else None
    tags = dict(run.data.tags) if run else {}
    metrics = dict(run.data.metrics) if run else {}
    dvc = {k.removeprefix("dvc."): v for k, v in sorted(tags.items()) if k.startswith("dvc.")}
    dirty = tags.get("lakeforge.git_dirty")
    return (
        name,
        int(mv.version),
        mv.run_id,
        ",".join(sorted(aliases.get(str(mv.version), []))) or None,
        tags.get("lakeforge.run_date"),
        tags.get("lakeforge.git_commit"),
        None if dirty is None else dirty == "true",
        tags.get("lakeforge.config_hash"),
        tags.get("lakeforge.inputs"),
        json.dumps(dvc, sort_keys=True) if dvc else None,
        primary,
        metrics.get(f"test.{primary}"),
        (mv.tags or {}).get("lakeforge.gate.decision"),
        datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC).replace(tzinfo=None),
    )


def write_model_versions(spark: Any, catalog: Catalog, client: Any, name: str, primary: str, lineage: Lineage) -> int:
    """Replace model ``name``'s rows of ``registry.model_versions`` with the registry's versions (their
    test ``primary`` metric included); the count."""
    from lakeforge.tracking.registry import registered_model

    aliases: dict[str, list[str]] = {}
    for alias, version in registered_model(client, name).aliases.items():
        aliases.setdefault(str(version), []).append(alias)
    quoted = name.replace("'", "''")
    versions = sorted(client.search_model_versions(f"name = '{quoted}'"), key=lambda mv: int(mv.version))
    rows = [_row(client, name, mv, aliases, primary) for mv in versions]
    frame = spark.createDataFrame(rows, SCHEMA).coalesce(1)
    write_table(
        frame,
        catalog,
        TABLE,
        mode="overwrite_partitions",
        partition_by=["model_name"],
        replace_partitions=[{"model_name": name}],
        lineage=lineage,
    )
    return len(rows)
