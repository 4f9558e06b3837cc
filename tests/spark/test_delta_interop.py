"""Tables written by lakeforge read back identically through delta-rs, polars and DuckDB."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import polars as pl
import pytest
from deltalake import DeltaTable

from lakeforge.lake.catalog import Catalog
from lakeforge.lake.delta import arrow_dataset, write_table
from tests.spark.helpers_delta import SAMPLE_SCHEMA, sample_rows


def _normalise(frame: pd.DataFrame, columns: list[str]) -> list[tuple[Any, ...]]:
    frame = frame[columns].astype(object).where(frame[columns].notna(), None)
    # pandas has no date dtype: some engines hand dates over as midnight timestamps.
    frame["event_date"] = [d.date() if isinstance(d, pd.Timestamp) else d for d in frame["event_date"]]
    return sorted((tuple(row) for row in frame.itertuples(index=False)), key=lambda row: row[0])


@pytest.mark.parametrize("partition", ["event_date", "name"])
def test_other_engines_read_what_lakeforge_wrote(spark: Any, lake_root: Path, partition: str) -> None:
    catalog = Catalog(lake_root)
    df = spark.createDataFrame(sample_rows(), SAMPLE_SCHEMA)
    write_table(df, catalog, "raw.events", partition_by=[partition])
    uri = catalog.table_uri("raw.events")
    columns = df.columns
    expected = _normalise(pd.DataFrame(sample_rows(), columns=columns), columns)

    via_delta_rs = DeltaTable(uri).to_pandas()
    via_polars = pl.read_delta(uri).to_pandas()
    dataset = arrow_dataset(catalog, "raw.events")
    via_duckdb = duckdb.connect().sql("select * from dataset").df()

    for frame in (via_delta_rs, via_polars, via_duckdb):
        got = _normalise(frame, columns)
        assert [r[:5] + r[6:] for r in got] == [r[:5] + r[6:] for r in expected]
        # Timestamps compare as instants (engines differ in tz representation, not value).
        assert [pd.Timestamp(r[5]).value if r[5] is not None else None for r in got] == [
            pd.Timestamp(r[5]).value if r[5] is not None else None for r in expected
        ]
    arrow_types = {f.name: str(f.type) for f in dataset.schema}
    assert arrow_types["event_ts"] == "timestamp[us, tz=UTC]" and arrow_types["event_date"] == "date32[day]"
    assert arrow_types["n"] == "int32" and arrow_types["flag"] == "bool"
