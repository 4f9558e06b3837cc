"""`lakeforge materialize FEATURE_SET`: the latest feature row per entity, from ``features.<set>``
into the online store, incrementally.

No Spark: delta-rs names the data files of the table's current snapshot, pyarrow reads the files
the store has not seen (the store records the files of the last materialization and the Delta
version they made up), and only the entities of those files are written, each where its row is
at least as recent as the stored one. A feature build that replaces a date's partition adds new
files, so the replaced rows are read again and overwrite the old values; a build that changed the
table's columns starts the store's table afresh from the whole snapshot.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from lakeforge.features.build import spec_from_config
from lakeforge.features.compute import EVENT_DATE
from lakeforge.lake.catalog import Catalog
from lakeforge.lake.delta import data_files
from lakeforge.lake.delta_common import open_table
from lakeforge.serving.store import OnlineStore, latest_per_entity


@dataclass(frozen=True)
class Materialized:
    """What one materialization did."""

    feature_table: str
    version: int
    previous_version: int | None
    files_read: int
    rows_read: int
    entities_written: int
    entities: int
    null_keys: int
    full: bool
    seconds: float
    store: str

    def describe(self) -> str:
        """The summary for a person."""
        if self.previous_version == self.version and not self.files_read:
            held = f"{self.entities:,} entities in {self.store}"
            return f"{self.feature_table} v{self.version}: already materialized ({held})"
        since = "in full" if self.full else f"since v{self.previous_version}"
        lines = [
            f"{self.feature_table} v{self.version} -> {self.store} ({since}): {self.files_read} file(s), "
            f"{self.rows_read:,} rows read, {self.entities_written:,} entities written, "
            f"{self.entities:,} entities held ({self.seconds:.1f} s)"
        ]
        if self.null_keys:
            lines.append(f"  {self.null_keys:,} rows with a null entity key were left out (nothing can look them up)")
        return "\n".join(lines)


def materialize(cfg: Any, catalog: Catalog, feature_set: str, store: OnlineStore, full: bool = False) -> Materialized:
    """Copy what changed in ``features.<feature_set>`` since the last materialization into ``store``
    (everything with ``full``, or when the table's columns changed)."""
    started = time.perf_counter()
    spec = spec_from_config(cfg, feature_set)
    table = f"features.{feature_set}"
    if not catalog.exists(table):
        from lakeforge.errors import FeatureError

        raise FeatureError(f"table '{table}' does not exist; build it first (`lakeforge features build {feature_set}`)")
    version = int(open_table(catalog, catalog.require(table)).version())
    files = [path for path, _ in data_files(catalog, table, version)]
    state = store.state(feature_set)
    schema = _table_schema(files)
    keys, event_time = list(spec.entity), spec.event_time
    fresh = full or state is None or not state.schema.equals(schema) or list(state.keys) != keys
    seen = set() if fresh or state is None else set(state.files)
    new = [f for f in files if f not in seen]
    if not fresh and not new and state is not None and state.delta_version == version:
        return Materialized(table, version, version, 0, 0, 0, state.entities, 0, False, 0.0, str(store.path))
    rows = pa.concat_tables([_read(f, schema) for f in new]) if new else schema.empty_table()
    latest, null_keys = latest_per_entity(rows, keys, event_time)
    written = store.write(feature_set, latest, keys, event_time, version, files, replace=fresh)
    after = store.state(feature_set)
    return Materialized(
        feature_table=table,
        version=version,
        previous_version=None if state is None else state.delta_version,
        files_read=len(new),
        rows_read=rows.num_rows,
        entities_written=written,
        entities=0 if after is None else after.entities,
        null_keys=null_keys,
        full=fresh,
        seconds=time.perf_counter() - started,
        store=str(store.path),
    )


def _columns(schema: pa.Schema) -> list[str]:
    return [name for name in schema.names if name != EVENT_DATE]


def _table_schema(files: list[str]) -> pa.Schema:
    """The columns the store holds: a data file's, without the date partition."""
    if not files:
        from lakeforge.errors import FeatureError

        raise FeatureError("the feature table has no data files; build a date range first")
    schema = pq.read_schema(_local(files[0]))
    return pa.schema([schema.field(n) for n in _columns(schema)])


def _read(path: str, schema: pa.Schema) -> pa.Table:
    return pq.read_table(_local(path), columns=schema.names).cast(schema)


def _local(uri: str) -> str:
    return uri.removeprefix("file://")
