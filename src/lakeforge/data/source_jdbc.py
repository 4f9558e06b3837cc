"""The jdbc source: a table or a query over JDBC; credentials come from the config (``${oc.env:…}``)."""

from __future__ import annotations

from typing import Any

from lakeforge.data.sources import SourceFrame, SourceRequest, check_columns


def read_jdbc(spark: Any, req: SourceRequest) -> SourceFrame:
    """Read ``source.table`` or ``source.query``; values are cast to the declared types afterwards."""
    src = req.source
    reader = spark.read.format("jdbc").option("url", str(src.url))
    reader = reader.option("query", str(src.query)) if src.query else reader.option("dbtable", str(src.table))
    if src.user is not None:
        reader = reader.option("user", str(src.user))
    if src.password is not None:
        reader = reader.option("password", str(src.password))
    df = reader.options(**{str(k): str(v) for k, v in dict(src.options or {}).items()}).load()
    check_columns(req, df.columns)
    # Database types rarely match exactly (numeric vs double): cast per value, quarantining failures.
    return SourceFrame(df, typed=False)
