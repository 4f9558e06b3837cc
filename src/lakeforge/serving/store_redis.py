"""The online store in Redis (``online.kind: redis``): the same contract as `SqliteStore`, for a
store several servers share.

Layout, per feature set ``<set>`` under the configured key prefix (default ``lakeforge``):
- ``<prefix>:features:<set>:<keys as JSON>``: a hash with ``t`` (the row's event time in the
  store's integer encoding) and ``row`` (the row's values in storage encoding, as JSON; Python
  writes floats as their shortest round-trip repr, so a float read back is the float written);
- ``<prefix>:meta:<set>``: a hash with the Delta version, the data files, the keys, the event time
  column, the Arrow schema (IPC, base64), the entity count and when it was materialized.

An entity is written by a Lua script that compares event times inside Redis, so "only where at
least as recent" holds against a concurrent materialization too.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from lakeforge.config.secrets import mask_credentials
from lakeforge.errors import EnvironmentSetupError, FeatureError
from lakeforge.serving.store import StoreState, _from_storage, _storage_type, _to_storage

_UPSERT = """
local current = redis.call('HGET', KEYS[1], 't')
if (not current) or tonumber(ARGV[1]) >= tonumber(current) then
  redis.call('HSET', KEYS[1], 't', ARGV[1], 'row', ARGV[2])
  if not current then return 2 end
  return 1
end
return 0
"""
_BATCH = 5000  # entities per pipeline round trip
_NO_TIME = -(2**62)  # a null event time: older than any real one


class RedisStore:
    """An online store in a Redis server (``redis://host:port/db``)."""

    def __init__(self, url: str, prefix: str = "lakeforge") -> None:
        import redis

        self.url = url
        self.path = mask_credentials(url)  # what messages and `Materialized.store` show: no password
        self.prefix = prefix
        self._client = redis.Redis.from_url(url)
        self._upsert = self._client.register_script(_UPSERT)

    def _check(self) -> None:
        import redis

        try:
            self._client.ping()
        except redis.RedisError as exc:
            raise EnvironmentSetupError(
                f"the online store at {self.path} cannot be reached: {exc}; start Redis or fix online.url"
            ) from exc

    def _meta_key(self, feature_set: str) -> str:
        return f"{self.prefix}:meta:{feature_set}"

    def _row_key(self, feature_set: str, key: Sequence[Any]) -> str:
        return f"{self.prefix}:features:{feature_set}:{json.dumps(list(key), separators=(',', ':'))}"

    def close(self) -> None:
        self._client.close()

    def state(self, feature_set: str) -> StoreState | None:
        self._check()
        meta: dict[bytes, bytes] = self._client.hgetall(self._meta_key(feature_set))  # type: ignore[assignment]
        if not meta:
            return None
        m = {k.decode(): v for k, v in meta.items()}
        return StoreState(
            feature_table=m["feature_table"].decode(),
            delta_version=int(m["delta_version"]),
            files=tuple(json.loads(m["files"])),
            keys=tuple(json.loads(m["keys"])),
            event_time=m["event_time"].decode(),
            schema=pa.ipc.read_schema(pa.py_buffer(base64.b64decode(m["schema"]))),
            entities=int(m["entities"]),
            materialized_at=m["materialized_at"].decode(),
        )

    def write(
        self,
        feature_set: str,
        rows: pa.Table,
        keys: Sequence[str],
        event_time: str,
        delta_version: int,
        files: Iterable[str],
        replace: bool = False,
    ) -> int:
        """As `SqliteStore.write`: upsert where at least as recent, then record the version and files."""
        self._check()
        fields = list(rows.schema)
        for f in fields:
            _storage_type(f)  # refuses types the store does not hold, naming the column
        absent = [k for k in [*keys, event_time] if k not in rows.column_names]
        if absent:
            raise FeatureError(f"features.{feature_set} has no column(s) {', '.join(absent)}: cannot key the store")
        if replace:
            self._drop(feature_set)
        data = [_to_storage(rows.column(f.name), f) for f in fields]
        names = [f.name for f in fields]
        key_at = [names.index(k) for k in keys]
        time_at = names.index(event_time)
        written = added = 0
        values = list(zip(*data, strict=True))
        for start in range(0, len(values), _BATCH):
            pipe = self._client.pipeline(transaction=False)
            for row in values[start : start + _BATCH]:
                self._upsert(
                    keys=[self._row_key(feature_set, [row[i] for i in key_at])],
                    args=[_NO_TIME if row[time_at] is None else row[time_at], json.dumps(row, separators=(",", ":"))],
                    client=pipe,
                )
            for outcome in pipe.execute():
                written += outcome > 0
                added += outcome == 2
        previous = self.state(feature_set)
        entities = (0 if previous is None or replace else previous.entities) + added
        self._client.hset(
            self._meta_key(feature_set),
            mapping={
                "feature_table": f"features.{feature_set}",
                "delta_version": int(delta_version),
                "files": json.dumps(sorted(files)),
                "keys": json.dumps(list(keys)),
                "event_time": event_time,
                "schema": base64.b64encode(rows.schema.serialize().to_pybytes()),
                "entities": entities,
                "materialized_at": datetime.now(UTC).isoformat(timespec="seconds"),
            },
        )
        return written

    def _drop(self, feature_set: str) -> None:
        pattern = f"{self.prefix}:features:{feature_set}:*"
        batch = []
        for key in self._client.scan_iter(match=pattern, count=10_000):
            batch.append(key)
            if len(batch) >= 10_000:
                self._client.delete(*batch)
                batch = []
        if batch:
            self._client.delete(*batch)
        self._client.delete(self._meta_key(feature_set))

    def lookup(self, feature_set: str, entities: Sequence[Sequence[Any]]) -> tuple[pa.Table, list[int]]:
        """As `SqliteStore.lookup`: the rows of the entities, in request order, and the unknown ones."""
        meta = self._client.hmget(self._meta_key(feature_set), ["schema"])
        if meta[0] is None:
            raise FeatureError(
                f"the online store {self.path} holds nothing of feature set '{feature_set}'; "
                f"run `lakeforge materialize {feature_set}`"
            )
        schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(meta[0])))
        pipe = self._client.pipeline(transaction=False)
        for key in entities:
            pipe.hget(self._row_key(feature_set, key), "row")
        found: list[list[Any]] = []
        unknown: list[int] = []
        for i, row in enumerate(pipe.execute()):
            if row is None:
                unknown.append(i)
            else:
                found.append(json.loads(row))
        fields = list(schema)
        columns: list[Sequence[Any]] = list(zip(*found, strict=True)) if found else [[] for _ in fields]
        arrays = [_from_storage(list(values), f) for values, f in zip(columns, fields, strict=True)]
        return pa.Table.from_arrays(arrays, schema=schema), unknown
