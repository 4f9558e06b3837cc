"""The online store's contract, on both stores: exact types back, only-as-recent-or-newer writes,
the recorded version and files, unknown entities named by position. SQLite in a temporary file;
Redis on a real `redis-server` started for the module (tests/redis_server.py)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from lakeforge.errors import ConfigError, FeatureError
from lakeforge.serving.store import OnlineStore, SqliteStore, store_from_config
from tests.redis_server import redis_url  # noqa: F401

SCHEMA = pa.schema(
    [
        ("carrier", pa.string()),
        ("flight", pa.int32()),
        ("t", pa.timestamp("us", tz="UTC")),
        ("x", pa.float64()),
        ("y", pa.float32()),
        ("n", pa.int64()),
        ("ok", pa.bool_()),
        ("d", pa.date32()),
    ]
)
KEYS = ["carrier", "flight"]


def _rows(*rows: tuple[Any, ...]) -> pa.Table:
    return pa.Table.from_pylist([dict(zip(SCHEMA.names, r, strict=True)) for r in rows], schema=SCHEMA)


def _t(hour: int) -> datetime:
    return datetime(2013, 10, 16, hour, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OnlineStore]:
    if request.param == "sqlite":
        found: OnlineStore = SqliteStore(tmp_path / "online.sqlite")
    else:
        from lakeforge.serving.store_redis import RedisStore

        found = RedisStore(request.getfixturevalue("redis_url"), prefix=f"t{abs(hash(tmp_path))}")
    yield found
    found.close()


def test_rows_come_back_with_their_exact_types_and_values(store: OnlineStore) -> None:
    third = 1 / 3
    rows = _rows(
        ("UA", 1545, _t(6), third, 0.1, 2**40, True, date(2013, 10, 16)),
        ("AA", 11, _t(7), None, float("nan"), None, None, None),
    )
    assert store.write("fs", rows, KEYS, "t", 4, ["a.parquet"]) == 2
    found, unknown = store.lookup("fs", [("AA", 11), ("ZZ", 1), ("UA", 1545)])
    assert unknown == [1] and found.schema == SCHEMA
    got = found.to_pylist()
    assert got[1] == {
        "carrier": "UA",
        "flight": 1545,
        "t": _t(6),
        "x": third,
        "y": pa.scalar(0.1, pa.float32()).as_py(),
        "n": 2**40,
        "ok": True,
        "d": date(2013, 10, 16),
    }
    # NaN: SQLite stores it as NULL (it has no NaN); both reach the model as a missing value.
    assert got[0]["y"] is None or math.isnan(got[0]["y"])
    assert got[0]["x"] is None and got[0]["n"] is None and got[0]["ok"] is None
    state = store.state("fs")
    assert state is not None and state.delta_version == 4 and state.files == ("a.parquet",) and state.entities == 2
    assert state.keys == ("carrier", "flight") and state.event_time == "t" and state.schema == SCHEMA


def test_a_row_replaces_the_stored_one_only_when_at_least_as_recent(store: OnlineStore) -> None:
    store.write("fs", _rows(("UA", 1, _t(8), 1.0, 1.0, 1, True, None)), KEYS, "t", 1, ["a"])
    older = store.write("fs", _rows(("UA", 1, _t(7), 2.0, 2.0, 2, True, None)), KEYS, "t", 2, ["a", "b"])
    assert older == 0 and store.lookup("fs", [("UA", 1)])[0].column("x").to_pylist() == [1.0]
    same = store.write("fs", _rows(("UA", 1, _t(8), 3.0, 3.0, 3, True, None)), KEYS, "t", 3, ["a", "b", "c"])
    assert same == 1 and store.lookup("fs", [("UA", 1)])[0].column("x").to_pylist() == [3.0]
    state = store.state("fs")
    assert state is not None and state.delta_version == 3 and state.files == ("a", "b", "c") and state.entities == 1


def test_replace_starts_the_feature_set_afresh(store: OnlineStore) -> None:
    store.write(
        "fs",
        _rows(("UA", 1, _t(8), 1.0, 1.0, 1, True, None), ("UA", 2, _t(8), 1.0, 1.0, 1, True, None)),
        KEYS,
        "t",
        1,
        ["a"],
    )
    store.write("fs", _rows(("AA", 3, _t(1), 1.0, 1.0, 1, True, None)), KEYS, "t", 2, ["b"], replace=True)
    assert store.lookup("fs", [("UA", 1), ("AA", 3)])[1] == [0]
    state = store.state("fs")
    assert state is not None and state.entities == 1


def test_a_feature_set_never_materialized_is_named(store: OnlineStore) -> None:
    assert store.state("nothing") is None
    store.write("fs", _rows(("UA", 1, _t(8), 1.0, 1.0, 1, True, None)), KEYS, "t", 1, ["a"])
    with pytest.raises(FeatureError, match="holds nothing of feature set 'other'; run `lakeforge materialize other`"):
        store.lookup("other", [("UA", 1)])


def test_a_column_type_the_store_cannot_hold_is_refused_by_name(store: OnlineStore) -> None:
    rows = pa.table({"carrier": ["UA"], "flight": [1], "t": [_t(1)], "tags": [["a"]]})
    with pytest.raises(FeatureError, match="column 'tags' has type list<item: string>"):
        store.write("fs", rows, KEYS, "t", 1, ["a"])


def test_the_config_chooses_the_store_and_refuses_a_bad_one(tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"project_root": str(tmp_path), "online": {"kind": "sqlite", "path": "o/f.sqlite"}})
    assert isinstance(store_from_config(cfg), SqliteStore)
    cfg.online = {"kind": "memcached"}
    with pytest.raises(
        ConfigError, match=re.escape("online.kind 'memcached' is not supported: use 'sqlite' or 'redis'")
    ):
        store_from_config(cfg)
    cfg.online = {"kind": "redis", "url": "127.0.0.1:6379"}
    with pytest.raises(ConfigError, match=re.escape("online.url '127.0.0.1:6379' is not a Redis URL")):
        store_from_config(cfg)


def test_an_unreachable_redis_is_one_clear_error() -> None:
    from lakeforge.errors import EnvironmentSetupError
    from lakeforge.serving.store_redis import RedisStore

    with pytest.raises(
        EnvironmentSetupError, match=re.escape("the online store at redis://127.0.0.1:1/0 cannot be reached")
    ):
        RedisStore("redis://127.0.0.1:1/0").state("fs")
