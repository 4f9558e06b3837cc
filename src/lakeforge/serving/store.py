"""The online feature store: the latest feature row per entity of a feature set, in SQLite.

One SQLite table per feature set (``features__<set>``), keyed by the set's entity columns, with
every column of ``features.<set>`` except the date partition. Values keep their exact types: the
Arrow schema of the feature table is stored with the rows, integers and floats are stored as
SQLite INTEGER and REAL (64-bit), timestamps as microseconds since the epoch, dates as days,
so a row read back is the row the Delta table holds, bit for bit (what online/offline parity
needs). A meta table records, per feature set, the Delta version and the data files last
materialized, which makes `lakeforge.serving.materialize` incremental.

The file is opened in WAL mode, so `lakeforge serve` keeps reading while a materialization writes;
each thread has its own connection.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from lakeforge.errors import ConfigError, FeatureError, UsageError

META = "_lakeforge_materialized"


@dataclass(frozen=True)
class StoreState:
    """What the store holds of one feature set."""

    feature_table: str
    delta_version: int
    files: tuple[str, ...]
    keys: tuple[str, ...]
    event_time: str
    schema: pa.Schema
    entities: int
    materialized_at: str


class OnlineStore(Protocol):
    """What `materialize` and `serve` need of an online store (`SqliteStore`, `RedisStore`)."""

    path: Any  # where it is, for messages

    def state(self, feature_set: str) -> StoreState | None: ...

    def write(
        self,
        feature_set: str,
        rows: pa.Table,
        keys: Sequence[str],
        event_time: str,
        delta_version: int,
        files: Iterable[str],
        replace: bool = False,
    ) -> int: ...

    def lookup(self, feature_set: str, entities: Sequence[Sequence[Any]]) -> tuple[pa.Table, list[int]]: ...

    def close(self) -> None: ...


def table_of(feature_set: str) -> str:
    """The SQLite table of a feature set."""
    return f"features__{feature_set}"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _storage_type(field: pa.Field) -> pa.DataType:
    """The Arrow type a column is stored as (and read back through)."""
    t = field.type
    if pa.types.is_integer(t) or pa.types.is_boolean(t):
        return pa.int64()
    if pa.types.is_floating(t):
        return pa.float64()
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return pa.string()
    if pa.types.is_timestamp(t):
        return pa.int64()
    if pa.types.is_date32(t):
        return pa.int32()
    raise FeatureError(
        f"column '{field.name}' has type {t}, which the online store does not hold "
        "(numbers, booleans, strings, timestamps and dates only)"
    )


def _sql_type(field: pa.Field) -> str:
    stored = _storage_type(field)
    if stored == pa.float64():
        return "REAL"
    if stored == pa.string():
        return "TEXT"
    return "INTEGER"


def _to_storage(column: pa.ChunkedArray | pa.Array, field: pa.Field) -> list[Any]:
    t = field.type
    if pa.types.is_timestamp(t):
        column = column.cast(pa.timestamp("us", t.tz)).cast(pa.int64())
    elif pa.types.is_date32(t):
        column = column.cast(pa.int32())
    elif pa.types.is_boolean(t):
        column = column.cast(pa.int64())
    return column.to_pylist()


def _from_storage(values: list[Any], field: pa.Field) -> pa.Array:
    t = field.type
    stored = _storage_type(field)
    array = pa.array(values, stored)
    if pa.types.is_timestamp(t):
        return array.cast(pa.timestamp("us", t.tz)).cast(t)
    return array if stored == t else array.cast(t)


class SqliteStore:
    """An online store in one SQLite file (created on first write)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()

    def _connect(self, create: bool = False) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        if not self.path.exists():
            if not create:
                raise FeatureError(
                    f"the online store {self.path} does not exist; run `lakeforge materialize FEATURE_SET` first"
                )
            self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {META} (feature_table TEXT PRIMARY KEY, delta_version INTEGER NOT NULL, "
            "files TEXT NOT NULL, keys TEXT NOT NULL, event_time TEXT NOT NULL, schema BLOB NOT NULL, "
            "entities INTEGER NOT NULL, materialized_at TEXT NOT NULL)"
        )
        self._local.conn = conn
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def state(self, feature_set: str) -> StoreState | None:
        """What was last materialized of ``feature_set``; None if nothing was."""
        if not self.path.exists():
            return None
        row = (
            self._connect()
            .execute(
                f"SELECT feature_table, delta_version, files, keys, event_time, schema, entities, materialized_at "
                f"FROM {META} WHERE feature_table = ?",
                (f"features.{feature_set}",),
            )
            .fetchone()
        )
        if row is None:
            return None
        return StoreState(
            feature_table=row[0],
            delta_version=int(row[1]),
            files=tuple(json.loads(row[2])),
            keys=tuple(json.loads(row[3])),
            event_time=row[4],
            schema=pa.ipc.read_schema(pa.py_buffer(row[5])),
            entities=int(row[6]),
            materialized_at=row[7],
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
        """Upsert the rows (one per entity) where they are at least as recent as what the store holds,
        and record the Delta version and files they came from; one transaction. ``replace`` starts
        the feature set's table afresh (its columns changed). Returns the entities written."""
        fields = list(rows.schema)
        columns = [f.name for f in fields]
        absent = [k for k in [*keys, event_time] if k not in columns]
        if absent:
            raise FeatureError(f"features.{feature_set} has no column(s) {', '.join(absent)}: cannot key the store")
        table = _quote(table_of(feature_set))
        conn = self._connect(create=True)
        names = ", ".join(_quote(c) for c in columns)
        updates = ", ".join(f"{_quote(c)} = excluded.{_quote(c)}" for c in columns if c not in keys)
        upsert = (
            f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(columns))}) "
            f"ON CONFLICT ({', '.join(_quote(k) for k in keys)}) DO UPDATE SET {updates} "
            f"WHERE excluded.{_quote(event_time)} >= {table}.{_quote(event_time)}"
        )
        data = [_to_storage(rows.column(f.name), f) for f in fields]
        before = conn.total_changes
        with conn:
            if replace:
                conn.execute(f"DROP TABLE IF EXISTS {table}")
            definition = ", ".join(f"{_quote(f.name)} {_sql_type(f)}" for f in fields)
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {table} ({definition}, PRIMARY KEY ({', '.join(_quote(k) for k in keys)}))"
            )
            conn.executemany(upsert, zip(*data, strict=True))
            written = conn.total_changes - before
            entities = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            conn.execute(
                f"INSERT OR REPLACE INTO {META} VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    f"features.{feature_set}",
                    int(delta_version),
                    json.dumps(sorted(files)),
                    json.dumps(list(keys)),
                    event_time,
                    rows.schema.serialize().to_pybytes(),
                    int(entities),
                    datetime.now(UTC).isoformat(timespec="seconds"),
                ),
            )
        return int(written)

    def lookup(self, feature_set: str, entities: Sequence[Sequence[Any]]) -> tuple[pa.Table, list[int]]:
        """The stored rows of the given entity key tuples, in request order, and the indexes of
        the entities the store does not hold."""
        if not self.path.exists():
            self._connect()  # raises: the store does not exist
        conn = self._connect()
        # Only the keys and the schema (not the file list) on this per-request path.
        meta = conn.execute(
            f"SELECT keys, schema FROM {META} WHERE feature_table = ?", (f"features.{feature_set}",)
        ).fetchone()
        if meta is None:
            raise FeatureError(
                f"the online store {self.path} holds nothing of feature set '{feature_set}'; "
                f"run `lakeforge materialize {feature_set}`"
            )
        keys, schema = json.loads(meta[0]), pa.ipc.read_schema(pa.py_buffer(meta[1]))
        fields = list(schema)
        where = " AND ".join(f"{_quote(k)} = ?" for k in keys)
        query = f"SELECT {', '.join(_quote(f.name) for f in fields)} FROM {_quote(table_of(feature_set))} WHERE {where}"
        found: list[tuple[Any, ...]] = []
        unknown: list[int] = []
        for i, key in enumerate(entities):
            row = conn.execute(query, tuple(key)).fetchone()
            if row is None:
                unknown.append(i)
            else:
                found.append(row)
        columns: list[Sequence[Any]] = list(zip(*found, strict=True)) if found else [[] for _ in fields]
        arrays = [_from_storage(list(values), f) for values, f in zip(columns, fields, strict=True)]
        return pa.Table.from_arrays(arrays, schema=schema), unknown


def latest_per_entity(rows: pa.Table, keys: Sequence[str], event_time: str) -> tuple[pa.Table, int]:
    """One row per entity, the one with the latest event time; rows with a null key are dropped
    (nothing could look them up). Returns the rows and how many were dropped."""
    valid = pc.is_valid(rows.column(keys[0]))
    for key in keys[1:]:
        valid = pc.and_(valid, pc.is_valid(rows.column(key)))
    kept = rows.filter(valid)
    dropped = rows.num_rows - kept.num_rows
    if not kept.num_rows:
        return kept, dropped
    order = pc.sort_indices(kept, sort_keys=[*((k, "ascending") for k in keys), (event_time, "ascending")])
    ordered = kept.take(order).append_column("_lf_i", pa.array(range(kept.num_rows), pa.int64()))
    last = ordered.group_by(list(keys)).aggregate([("_lf_i", "max")]).column("_lf_i_max")
    return ordered.take(last).drop_columns(["_lf_i"]), dropped


def store_from_config(cfg: Any) -> OnlineStore:
    """The online store ``online`` configures: ``sqlite`` (a file) or ``redis`` (``online.url``)."""
    from lakeforge.config import resolve_path

    online = cfg.get("online")
    kind = str(online.kind) if online is not None else "sqlite"
    if kind == "redis":
        from lakeforge.serving.store_redis import RedisStore

        url = online.get("url")
        if not url or not str(url).startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(
                f"online.url '{url}' is not a Redis URL: use redis://host:port/db (e.g. redis://127.0.0.1:6379/0)",
                key="online.url",
            )
        return RedisStore(str(url), str(online.get("prefix") or "lakeforge"))
    if kind != "sqlite":
        raise ConfigError(f"online.kind '{kind}' is not supported: use 'sqlite' or 'redis'", key="online.kind")
    path = str(online.path) if online is not None else "online/features.sqlite"
    if "://" in path:
        raise UsageError(f"online.path '{path}' must be a file path for the sqlite store")
    from lakeforge.lake.confine import confine

    storage = cfg.get("storage") or {}
    lake_root = str(storage.get("lake_root") or "")
    roots = [Path(str(cfg.project_root))] if cfg.get("project_root") else []
    if lake_root and "://" not in lake_root:
        roots.append(Path(resolve_path(cfg, lake_root)))
    file = Path(resolve_path(cfg, path))
    if roots:
        confine(
            file,
            roots,
            what="the online store file",
            key="online.path",
            allow_external=bool(storage.get("allow_external_locations", False)),
        )
    return SqliteStore(file)
